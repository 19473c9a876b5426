//! REST and MCP answer alike: a tool call runs through the same generated dispatch and the same
//! handlers as a REST request, so every operation of `openapi.yaml` gives the same result for
//! the same input as a tool. The cases are the parity table's (`tests/parity`); this file runs
//! them as tool calls, each in a session of its own, with the caller's credentials on the MCP
//! requests.
//!
//! Over MCP the status of a success is the operation's 2xx and its body the tool result's text
//! (the JSON REST answers; structured content is checked to carry the same value), an image's
//! the image content, an empty one's nothing; an error is a result with `isError: true` whose
//! text is the `ErrorResponse` REST answers, status, code and field errors included.

use petstore_testkit::{
    app::{ADMIN_API_KEY, TestApp},
    mcp::{Credentials, McpClient, error_body},
};
use serde_json::{Value, json};

#[path = "../parity/mod.rs"]
mod table;

use table::{
    Caller::{Admin, AdminKey, Alice, Anonymous},
    Case, Fixture, GROUPS, Input, Outcome, SPEC, Transport, check_cases, check_parity, guarded,
    normalize,
};

/// The MCP transport of the table.
struct Mcp;

impl Transport for Mcp {
    const NAME: &'static str = "MCP";

    async fn run(app: &TestApp, fixture: &Fixture, case: &Case, input: &Input) -> Outcome {
        let credentials = match case.caller {
            Anonymous => Credentials::None,
            Admin => Credentials::Bearer(fixture.admin_token.clone()),
            Alice => Credentials::Bearer(fixture.alice_token.clone()),
            AdminKey => Credentials::ApiKey(ADMIN_API_KEY.to_owned()),
        };
        let mut client = guarded(
            "an MCP session",
            McpClient::connect(&app.base_url, credentials),
        )
        .await;
        let result = client.call_tool(case.operation, input.payload()).await;
        client.close().await;
        if result["isError"] == json!(true) {
            let body = error_body(&result);
            return Outcome::Error {
                status: body["code"].as_u64().unwrap_or_default() as u16,
                code: body["type"].as_str().unwrap_or_default().to_owned(),
                field_errors: body.get("errors").cloned(),
            };
        }
        let mut body = success_body(case, &result);
        normalize(&mut body);
        Outcome::Success {
            status: SPEC[case.operation].success,
            body,
        }
    }
}

/// What REST's body would be, from a successful tool result: the JSON of its text (checked
/// against its structured content), an image as `{contentType, data}`, nothing as `null`.
fn success_body(case: &Case, result: &Value) -> Value {
    let content = &result["content"][0];
    if content["type"] == json!("image") {
        return json!({ "contentType": content["mimeType"], "data": content["data"] });
    }
    let Some(structured) = result.get("structuredContent") else {
        // No result body: the text says what happened.
        assert!(
            content["text"]
                .as_str()
                .is_some_and(|text| !text.is_empty()),
            "{} {}: an empty result without a message: {result}",
            case.operation,
            case.what
        );
        return Value::Null;
    };
    let text = content["text"].as_str().unwrap_or_default();
    let body: Value = match serde_json::from_str(text) {
        Ok(body) => body,
        Err(error) => panic!(
            "{} {}: the result's text is not JSON ({error}): {result}",
            case.operation, case.what
        ),
    };
    assert!(
        *structured == body || *structured == json!({ "result": body }),
        "{} {}: structured content {structured} does not carry the text's {body}",
        case.operation,
        case.what
    );
    body
}

#[tokio::test]
async fn pet_writes_and_searches_answer_alike() {
    check_parity::<Mcp>(GROUPS[0]).await;
}

#[tokio::test]
async fn pet_reads_updates_and_deletes_answer_alike() {
    check_parity::<Mcp>(GROUPS[1]).await;
}

#[tokio::test]
async fn images_and_the_inventory_answer_alike() {
    check_parity::<Mcp>(GROUPS[2]).await;
}

#[tokio::test]
async fn orders_answer_alike() {
    check_parity::<Mcp>(GROUPS[3]).await;
}

#[tokio::test]
async fn user_creation_and_login_answer_alike() {
    check_parity::<Mcp>(GROUPS[4]).await;
}

#[tokio::test]
async fn user_accounts_and_tokens_answer_alike() {
    check_parity::<Mcp>(GROUPS[5]).await;
}

#[tokio::test]
async fn a_missing_body_without_credentials_answers_alike() {
    check_cases::<Mcp>(&table::missing_body_without_credentials()).await;
}

#[tokio::test]
async fn an_upload_without_a_file_answers_alike() {
    check_cases::<Mcp>(&table::upload_without_a_file()).await;
}
