"""The MCP endpoint driven by the official MCP Python SDK (PyPI `mcp`), as an agent would.

Every call goes through the SDK's own client (`mcp.Client` over its Streamable HTTP transport):
the handshake (the SDK probes `server/discover` first and falls back to `initialize`), the tool
list, tool calls (the SDK checks each structured result against the tool's `outputSchema`),
resource subscriptions and their notifications. Credentials are headers of the SDK's HTTP
client, as an agent configures them: a bearer token, obtained here through the `createToken`
tool.

Run by `run.py --mcp-only` (from `cargo test --test contract`) against a server with the demo
data; the base URL and the demo administrator come from the environment (`run.py` sets them).
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jsonschema
import mcp_types as types
import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.anyio

BASE_URL = os.environ.get("PETSTORE_CONTRACT_BASE_URL", "http://127.0.0.1:8080").rstrip("/")
ENDPOINT = f"{BASE_URL}/mcp"
ADMIN_USER = os.environ.get("PETSTORE_CONTRACT_ADMIN_USER", "admin")
ADMIN_PASSWORD = os.environ.get("PETSTORE_CONTRACT_ADMIN_PASSWORD", "admin-password")
SPEC = Path(__file__).resolve().parent.parent / "openapi.yaml"

# Generous: a bound against hanging, not a measurement.
NOTIFICATION_WITHIN_SECS = 15


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def operation_ids() -> list[str]:
    """The operationIds of `openapi.yaml`, in document order."""
    spec = yaml.safe_load(SPEC.read_text())
    return [
        operation["operationId"]
        for item in spec["paths"].values()
        for method, operation in item.items()
        if method in ("get", "put", "post", "delete", "patch")
    ]


def client(token: str | None = None, **options: Any) -> Client:
    """An SDK client of the endpoint, with a bearer token when given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))
    return Client(streamable_http_client(ENDPOINT, http_client=http), **options)


def error_body(result: types.CallToolResult) -> dict[str, Any]:
    """The `ErrorResponse` an error result carries as its text."""
    assert result.is_error, result
    text = result.content[0]
    assert isinstance(text, types.TextContent), result
    return json.loads(text.text)


async def admin_token() -> str:
    """An access token of the demo administrator, from the `createToken` tool."""
    async with client() as anonymous:
        result = await anonymous.call_tool(
            "createToken", {"body": {"username": ADMIN_USER, "password": ADMIN_PASSWORD}}
        )
    assert not result.is_error, result
    assert result.structured_content is not None
    return result.structured_content["accessToken"]


async def test_initialize_and_list_every_operation_as_a_tool_with_valid_schemas() -> None:
    async with client() as anonymous:
        assert anonymous.server_info is not None
        assert anonymous.server_info.name == "petstore-ws"
        assert anonymous.protocol_version in ("2025-06-18", "2025-11-25")
        capabilities = anonymous.server_capabilities
        assert capabilities.tools is not None
        assert capabilities.resources is not None and capabilities.resources.subscribe
        listed = await anonymous.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    assert list(tools) == operation_ids()
    assert len(tools) == 23
    for tool in tools.values():
        assert tool.description, tool.name
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        assert tool.input_schema["type"] == "object", tool.name
        if tool.output_schema is not None:
            jsonschema.Draft202012Validator.check_schema(tool.output_schema)
            assert tool.output_schema["type"] == "object", tool.name
    assert tools["getPetById"].annotations.read_only_hint is True
    assert tools["deletePet"].annotations.destructive_hint is True
    assert tools["updatePet"].annotations.idempotent_hint is True
    assert tools["addPet"].input_schema["required"] == ["body"]


async def test_get_pet_by_id_returns_the_pet_as_structured_content() -> None:
    async with client() as anonymous:
        # The SDK checks the structured result against the tool's output schema itself.
        result = await anonymous.call_tool("getPetById", {"petId": 1})
    assert not result.is_error, result
    assert result.structured_content is not None
    assert result.structured_content["id"] == 1
    assert result.structured_content["name"]


async def test_add_pet_with_a_token() -> None:
    token = await admin_token()
    name = f"mcp-{uuid.uuid4().hex[:8]}"
    async with client(token) as admin:
        result = await admin.call_tool(
            "addPet", {"body": {"name": name, "photoUrls": [], "status": "available"}}
        )
        assert not result.is_error, result
        assert result.structured_content is not None
        pet = result.structured_content
        assert pet["name"] == name and pet["id"] >= 1
        read = await admin.call_tool("getPetById", {"petId": pet["id"]})
    assert read.structured_content == pet


async def test_an_invalid_pet_comes_back_with_its_field_errors() -> None:
    token = await admin_token()
    async with client(token) as admin:
        result = await admin.call_tool("addPet", {"body": {"name": "", "tags": [{"name": ""}]}})
    body = error_body(result)
    assert body["code"] == 422 and body["type"] == "VALIDATION_ERROR", body
    paths = {error["path"] for error in body["errors"]}
    assert {"name", "photoUrls", "tags[0].name"} <= paths, body


async def test_a_call_that_needs_a_token_is_refused_without_one() -> None:
    async with client() as anonymous:
        result = await anonymous.call_tool(
            "addPet", {"body": {"name": "no-token", "photoUrls": []}}
        )
        inventory = await anonymous.call_tool("getInventory", {})
    assert error_body(result)["type"] == "UNAUTHORIZED"
    assert error_body(result)["code"] == 401
    assert error_body(inventory)["type"] == "UNAUTHORIZED"


def rest_rename(pet: dict[str, Any], name: str, token: str) -> None:
    """Renames a pet through the REST API (`updatePet`)."""
    body = json.dumps({**pet, "name": name}).encode()
    request = urllib.request.Request(
        f"{BASE_URL}/api/v3/pet",
        data=body,
        method="PUT",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


# The server speaks the session revisions (2025-06-18, 2025-11-25), whose way to follow a resource
# is `resources/subscribe`; the SDK warns that 2026-07-28 replaces it with `subscriptions/listen`.
@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
async def test_a_subscribed_pet_is_announced_after_a_rest_write() -> None:
    token = await admin_token()
    send, updates = anyio.create_memory_object_stream[str](16)

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            await send.send(str(message.params.uri))

    async with client(token, message_handler=on_message) as admin:
        templates = await admin.list_resource_templates()
        uri_templates = [template.uri_template for template in templates.resource_templates]
        assert "petstore://pet/{petId}" in uri_templates
        added = await admin.call_tool(
            "addPet", {"body": {"name": "followed", "photoUrls": []}}
        )
        pet = added.structured_content
        assert pet is not None
        uri = f"petstore://pet/{pet['id']}"
        await admin.subscribe_resource(uri)
        # The session's event stream may still be opening: write until the update arrives.
        with anyio.fail_after(NOTIFICATION_WITHIN_SECS):
            attempt = 0
            while True:
                attempt += 1
                await anyio.to_thread.run_sync(rest_rename, pet, f"renamed-{attempt}", token)
                with anyio.move_on_after(2):
                    assert await updates.receive() == uri
                    break
        read = await admin.read_resource(uri)
    contents = read.contents[0]
    assert isinstance(contents, types.TextResourceContents)
    assert json.loads(contents.text)["name"].startswith("renamed-")
