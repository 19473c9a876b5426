#!/usr/bin/env python3
"""Contract suite: checks a running petstore-ws server against `openapi.yaml`.

Two parts, both driven from the spec alone:

1. Schemathesis, twice. First the spec's own examples, on the server's fresh demo data: the
   requests documentation UIs fill into "Try it out" must pass every check as they are
   (`schemathesis-examples.toml`). Then it generates valid and invalid requests for every
   operation and runs all of its checks on the answers (status codes, content types, schemas,
   headers, that valid data is accepted and invalid data refused, ...). Settings:
   `schemathesis.toml` beside this file.
2. OpenAPI Generator builds a Python client from the spec, and `test_round_trip.py` drives
   create/read/update/delete workflows through it. It runs after Schemathesis on purpose: the
   store it meets is full of fuzzed data, so it also proves the server still works after that.
3. The official MCP Python SDK (`mcp`) drives the MCP endpoint (`/mcp`) in `test_mcp.py`: the
   handshake, the tool list generated from the spec, tool calls with and without a token, an
   invalid call's field errors, a resource subscription notified after a REST write. Then, when
   `npm` is on PATH, the MCP Inspector CLI (pinned in `inspector/package-lock.json`, installed
   with `npm ci`) lists the tools with its schema-portability check (`--strict`) and calls and
   reads through its own client; without `npm` that check is skipped and says so. `--mcp-only`
   runs this part alone (what `cargo test --test contract` does for the MCP test).

Usage:
    PETSTORE_CONTRACT_API_KEY=<key> python3 contract-tests/run.py --base-url http://127.0.0.1:8080

Both parts authenticate the standard way, with a service key for the spec's `api_key` scheme that
has the `admin` role (every scope): Schemathesis through its OpenAPI-aware auth config, the client
through its generated configuration. The key comes from `PETSTORE_CONTRACT_API_KEY` or
`--api-key`. The round trip of the `auth` tag also logs in as an admin user
(`PETSTORE_CONTRACT_ADMIN_USER` / `PETSTORE_CONTRACT_ADMIN_PASSWORD`, by default the demo data's
`admin` / `admin-password`).

The tools are pinned in `requirements.txt` and installed into `contract-tests/.venv`, which is
created on first use and reinstalled only when `requirements.txt` (or the Python) changes. Only the
standard library is imported here, so this script runs on a bare `python3` (3.11+); the generator
also needs `java` (17+) on PATH. Exit status 0 means both parts passed.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEC = HERE.parent / "openapi.yaml"
REQUIREMENTS = HERE / "requirements.txt"
VENV = HERE / ".venv"
STAMP = VENV / ".requirements.sha256"
MIN_PYTHON = (3, 11)

# Ceilings that turn a hung tool into a failure instead of a stuck CI job.
INSTALL_TIMEOUT_SECS = 600
SCHEMATHESIS_TIMEOUT_SECS = 600
GENERATOR_TIMEOUT_SECS = 120
ROUND_TRIP_TIMEOUT_SECS = 180
MCP_TIMEOUT_SECS = 180
INSPECTOR_TIMEOUT_SECS = 60
INSPECTOR = HERE / "inspector"

# Where the service key travels to the tools: `schemathesis.toml` names this variable in its
# `[auth.openapi.api_key]` section and `test_round_trip.py` reads it, so the key is never on a
# command line of a child process.
API_KEY_ENV = "PETSTORE_CONTRACT_API_KEY"


class ContractError(Exception):
    """A precondition of the suite is not met; the message says how to fix it."""


@dataclass
class PartResult:
    """Outcome of one part of the suite, for the closing summary."""

    name: str
    ok: bool
    detail: str
    seconds: float


def log(message: str) -> None:
    print(f"[contract] {message}", flush=True)


def venv_bin(name: str) -> Path:
    scripts = "Scripts" if os.name == "nt" else "bin"
    suffix = ".exe" if os.name == "nt" else ""
    return VENV / scripts / f"{name}{suffix}"


def requirements_stamp() -> str:
    """What the installed venv must match: the pin list and the interpreter that built it."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def ensure_venv() -> None:
    """Create `.venv` and install the pinned tools, unless it already has exactly these pins.

    Several runs may start at once (the test binary runs the suite and the MCP checks in
    parallel): the first to take the lock builds the venv, the others wait for it and then find
    it up to date, instead of clearing it under each other's feet.
    """
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(HERE / ".venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build_venv()


def build_venv() -> None:
    stamp = requirements_stamp()
    python = venv_bin("python")
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == stamp:
        log(f"tools up to date in {VENV.relative_to(HERE.parent)}")
        return

    started = time.monotonic()
    if not python.exists() or STAMP.exists():
        # No venv yet, or one built from other pins or another Python: start clean so no
        # package from the old pin list lingers.
        log(f"creating virtualenv {VENV.relative_to(HERE.parent)}")
        created = subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(VENV)],
            capture_output=True,
            text=True,
        )
        if created.returncode != 0:
            raise ContractError(
                "could not create a virtualenv (on Debian/Ubuntu: apt-get install python3-venv):\n"
                + created.stderr.strip()
            )
    log("installing pinned tools from contract-tests/requirements.txt")
    run_checked(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "-r",
            str(REQUIREMENTS),
        ],
        timeout=INSTALL_TIMEOUT_SECS,
        what="pip install",
    )
    STAMP.write_text(stamp + "\n")
    log(f"tools installed in {time.monotonic() - started:.0f}s")


def run_checked(args: list[str], *, timeout: int, what: str, **kwargs) -> None:
    try:
        result = subprocess.run(args, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as exc:
        raise ContractError(f"{what} did not finish within {timeout}s") from exc
    if result.returncode != 0:
        raise ContractError(f"{what} failed with exit code {result.returncode}")


def check_java() -> None:
    java = shutil.which("java")
    if java is None:
        raise ContractError(
            "java is not on PATH: OpenAPI Generator needs a Java 17+ runtime "
            "(on Debian/Ubuntu: apt-get install default-jre-headless)"
        )


def wait_for_server(base_url: str, api_key: str, timeout_secs: float = 30.0) -> None:
    """Fail fast with a clear message when nothing answers at the base URL or the key is refused.

    The probe is `getInventory`, which needs the `inventory:read` scope: a 200 proves both that
    the server is up and that the key is one of its admin keys, so a wrong key shows up here as
    one clear error instead of as a 401 on every secured operation.
    """
    probe = f"{base_url}/api/v3/store/inventory"
    request = urllib.request.Request(probe, headers={"api_key": api_key})
    deadline = time.monotonic() + timeout_secs
    last_error = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
                last_error = f"status {response.status}"
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise ContractError(
                    f"the server refused the API key ({exc.code} from {probe}): "
                    f"{API_KEY_ENV} must be a service key with the admin role"
                ) from exc
            last_error = f"status {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last_error = str(exc)
        time.sleep(0.5)
    raise ContractError(f"no petstore-ws answered at {probe}: {last_error}")


def tool_env(api_key: str) -> dict[str, str]:
    """The environment of a tool: ours, plus the service key where the tools look for it."""
    env = dict(os.environ)
    env[API_KEY_ENV] = api_key
    # Fresh idempotency keys per request (see hooks.py).
    env["SCHEMATHESIS_HOOKS"] = str(HERE / "hooks.py")
    return env


def run_schemathesis(
    base_url: str,
    api_key: str,
    report_dir: Path,
    max_examples: int | None,
    *,
    name: str = "schemathesis",
    config: str = "schemathesis.toml",
    phases: str | None = None,
) -> PartResult:
    started = time.monotonic()
    report_json = report_dir / f"{name}.json"
    args = [
        str(venv_bin("st")),
        "--config-file",
        str(HERE / config),
        "run",
        str(SPEC),
        "--url",
        f"{base_url}/api/v3",
        "--checks",
        "all",
        "--report",
        "json,junit",
        "--report-json-path",
        str(report_json),
        "--report-junit-path",
        str(report_dir / f"{name}-junit.xml"),
        "--no-color",
    ]
    if phases is not None:
        args += ["--phases", phases]
    if max_examples is not None:
        args += ["--max-examples", str(max_examples)]
    log(f"{name}: " + " ".join(args[1:]))
    try:
        # cwd in the report dir: anything the tool writes next to itself stays out of the tree.
        result = subprocess.run(
            args, cwd=report_dir, env=tool_env(api_key), timeout=SCHEMATHESIS_TIMEOUT_SECS
        )
        code = result.returncode
    except subprocess.TimeoutExpired:
        code = None
    seconds = time.monotonic() - started
    if code is None:
        timed_out = f"timed out after {SCHEMATHESIS_TIMEOUT_SECS}s"
        return PartResult(name, False, timed_out, seconds)

    detail = f"exit code {code}, no JSON report"
    if report_json.exists():
        report = json.loads(report_json.read_text())
        cases = report.get("test_cases", {})
        operations = report.get("operations", {})
        kinds = ", ".join(
            f"{failure.get('code')} {failure.get('title')} x{failure.get('count')}"
            for failure in report.get("failures", [])
        )
        detail = (
            f"{cases.get('generated', 0)} cases over {operations.get('tested', 0)}/"
            f"{operations.get('total', 0)} operations, "
            f"{cases.get('with_failures', 0)} failing cases, "
            f"{cases.get('errored', 0)} errors, seed {report.get('seed')}"
            + (f"; failures: {kinds}" if kinds else "")
        )
    return PartResult(name, code == 0, detail, seconds)


def run_round_trip(base_url: str, api_key: str, work_dir: Path) -> PartResult:
    started = time.monotonic()
    client_dir = work_dir / "client"
    log("generating the Python client with OpenAPI Generator")
    try:
        run_checked(
            [
                str(venv_bin("openapi-generator-cli")),
                "generate",
                "--input-spec",
                str(SPEC),
                "--generator-name",
                "python",
                "--output",
                str(client_dir),
                "--package-name",
                "petstore_client",
                "--global-property",
                "apiTests=false,modelTests=false,apiDocs=false,modelDocs=false",
            ],
            timeout=GENERATOR_TIMEOUT_SECS,
            what="openapi-generator-cli generate",
            stdout=subprocess.DEVNULL,
        )
    except ContractError as exc:
        return PartResult("round trip", False, str(exc), time.monotonic() - started)

    env = tool_env(api_key)
    env["PETSTORE_BASE_URL"] = base_url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(client_dir), env.get("PYTHONPATH")]))
    return run_pytest(
        "round trip", "test_round_trip.py", env, work_dir, ROUND_TRIP_TIMEOUT_SECS, started
    )


def run_mcp(base_url: str, api_key: str, work_dir: Path) -> PartResult:
    """`test_mcp.py` with the MCP Python SDK against the server's `/mcp`."""
    env = tool_env(api_key)
    env["PETSTORE_CONTRACT_BASE_URL"] = base_url
    return run_pytest("mcp", "test_mcp.py", env, work_dir, MCP_TIMEOUT_SECS, time.monotonic())


def run_pytest(
    part: str, script: str, env: dict[str, str], work_dir: Path, timeout: int, started: float
) -> PartResult:
    """Runs one pytest file of this directory with the venv's Python; its result is read from
    the JUnit report (`started` is when the part began, set-up included)."""
    junit = work_dir / f"{Path(script).stem}-junit.xml"
    args = [
        str(venv_bin("python")),
        "-m",
        "pytest",
        str(HERE / script),
        "-v",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
    ]
    log(f"{part}: pytest {script}")
    try:
        code = subprocess.run(args, env=env, cwd=HERE, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        return PartResult(part, False, f"timed out after {timeout}s", time.monotonic() - started)
    seconds = time.monotonic() - started
    detail = f"exit code {code}, no JUnit report"
    if junit.exists():
        suite = ElementTree.parse(junit).getroot()
        if suite.tag == "testsuites":
            suite = suite[0]
        tests = int(suite.get("tests", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        detail = f"{tests - failed - skipped} passed, {failed} failed, {skipped} skipped"
    return PartResult(part, code == 0, detail, seconds)


def ensure_inspector() -> Path:
    """`npm ci` the pinned MCP Inspector into `inspector/node_modules` unless it is there."""
    lock = INSPECTOR / "package-lock.json"
    stamp_file = INSPECTOR / ".stamp"
    stamp = hashlib.sha256(lock.read_bytes()).hexdigest()
    cli = INSPECTOR / "node_modules" / ".bin" / "mcp-inspector"
    if cli.exists() and stamp_file.exists() and stamp_file.read_text().strip() == stamp:
        return cli
    log("installing the pinned MCP Inspector (npm ci)")
    run_checked(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        timeout=INSTALL_TIMEOUT_SECS,
        what="npm ci (MCP Inspector)",
        cwd=INSPECTOR,
        stdout=subprocess.DEVNULL,
    )
    stamp_file.write_text(stamp + "\n")
    return cli


def run_inspector(base_url: str, api_key: str, work_dir: Path) -> PartResult:
    """The MCP Inspector CLI against `/mcp`: the tool list under its portability check, a call
    with the service key (from a config file, never the command line), an invalid call, a read."""
    started = time.monotonic()
    name = "mcp inspector"
    if shutil.which("npm") is None:
        return PartResult(name, True, "skipped: npm is not on PATH", 0.0)
    try:
        cli = ensure_inspector()
    except ContractError as exc:
        return PartResult(name, False, str(exc), time.monotonic() - started)
    config = work_dir / "inspector.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "petstore": {
                        "type": "streamable-http",
                        "url": f"{base_url}/mcp",
                        "headers": {"api_key": api_key},
                    }
                }
            }
        )
    )
    config.chmod(0o600)
    env = {key: value for key, value in os.environ.items() if key != "MCP_CATALOG_PATH"}
    # No keychain here: the Inspector keeps what it would store in memory, for this run only.
    env["MCP_INSPECTOR_SECRET_STORE"] = "memory"

    # And a home of its own, so it writes nothing into the user's.
    env["HOME"] = str(work_dir)

    def inspect(*args: str, exit_code: int = 0) -> dict:
        command = [str(cli), "--cli", "--config", str(config), "--server", "petstore"]
        result = subprocess.run(
            [*command, *args, "--format", "json", "--quiet"],
            env=env,
            capture_output=True,
            text=True,
            timeout=INSPECTOR_TIMEOUT_SECS,
        )
        if result.returncode != exit_code:
            raise ContractError(
                f"inspector {' '.join(args)}: exit {result.returncode}: "
                f"{result.stdout.strip()} {result.stderr.strip()}"
            )
        return json.loads(result.stdout or result.stderr)

    try:
        tools = inspect("--method", "tools/list", "--strict")["result"]["tools"]
        if len(tools) != 23:
            raise ContractError(f"the Inspector listed {len(tools)} tools, not 23")
        pet = inspect(
            "--method", "tools/call", "--tool-name", "getPetById", "--tool-arg", "petId=1"
        )["result"]
        if pet.get("isError") or pet["structuredContent"]["id"] != 1:
            raise ContractError(f"getPetById through the Inspector: {pet}")
        added = inspect(
            "--method",
            "tools/call",
            "--tool-name",
            "addPet",
            "--tool-args-json",
            json.dumps({"body": {"name": "inspected", "photoUrls": []}}),
        )["result"]
        if added.get("isError") or added["structuredContent"]["name"] != "inspected":
            raise ContractError(f"addPet through the Inspector: {added}")
        # The Inspector exits with 5 when a tool answers an error result, and prints it.
        invalid = inspect(
            "--method", "tools/call", "--tool-name", "addPet",
            "--tool-args-json", json.dumps({"body": {"name": ""}}),
            exit_code=5,
        )["result"]
        error = json.loads(invalid["content"][0]["text"])
        if not invalid.get("isError") or error.get("type") != "VALIDATION_ERROR":
            raise ContractError(f"an invalid addPet through the Inspector: {invalid}")
        read = inspect("--method", "resources/read", "--uri", "petstore://pet/1")["result"]
        if json.loads(read["contents"][0]["text"])["id"] != 1:
            raise ContractError(f"petstore://pet/1 through the Inspector: {read}")
    except (ContractError, KeyError, ValueError, subprocess.TimeoutExpired) as exc:
        return PartResult(name, False, str(exc), time.monotonic() - started)
    detail = "23 tools (portable schemas), calls, field errors and a read"
    return PartResult(name, True, detail, time.monotonic() - started)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base-url",
        required=True,
        help="root of the server, e.g. http://127.0.0.1:8080 (without /api/v3)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV),
        help="service key with the admin role, sent in the `api_key` header "
        f"(default: ${API_KEY_ENV}; prefer the variable, a flag shows in process lists)",
    )
    parser.add_argument(
        "--max-examples",
        type=int,
        help="override schemathesis.toml's examples per operation and phase",
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        help="keep reports (and the generated client) here instead of a temporary directory",
    )
    parser.add_argument("--skip-schemathesis", action="store_true", help="skip Schemathesis")
    parser.add_argument("--skip-round-trip", action="store_true", help="skip the round trip")
    parser.add_argument("--skip-mcp", action="store_true", help="skip the MCP SDK part")
    parser.add_argument(
        "--mcp-only",
        action="store_true",
        help="run only the MCP SDK part (no Java needed)",
    )
    options = parser.parse_args(argv)
    if options.mcp_only:
        options.skip_schemathesis = options.skip_round_trip = True
        options.skip_mcp = False
    return options


def main(argv: list[str]) -> int:
    if sys.version_info < MIN_PYTHON:
        wanted = ".".join(map(str, MIN_PYTHON))
        print(f"[contract] error: needs Python {wanted}+, this is {sys.version}")
        return 2
    options = parse_args(argv)
    base_url = options.base_url.rstrip("/")
    api_key = options.api_key
    started = time.monotonic()
    try:
        if not api_key:
            raise ContractError(
                f"no API key: set {API_KEY_ENV} (or pass --api-key) to a service key of the "
                "server with the admin role; most operations answer 401 without one"
            )
        if not options.skip_round_trip:
            check_java()
        ensure_venv()
        wait_for_server(base_url, api_key)
    except ContractError as exc:
        print(f"[contract] error: {exc}", flush=True)
        return 2

    with tempfile.TemporaryDirectory(prefix="petstore-contract-") as scratch:
        work_dir = options.report_dir.resolve() if options.report_dir else Path(scratch)
        work_dir.mkdir(parents=True, exist_ok=True)
        results: list[PartResult] = []
        if not options.skip_schemathesis:
            # The examples first: they are written for the demo data, before anything changed it.
            results.append(
                run_schemathesis(
                    base_url,
                    api_key,
                    work_dir,
                    None,
                    name="schemathesis-examples",
                    config="schemathesis-examples.toml",
                    phases="examples",
                )
            )
            results.append(run_schemathesis(base_url, api_key, work_dir, options.max_examples))
        if not options.skip_round_trip:
            results.append(run_round_trip(base_url, api_key, work_dir))
        if not options.skip_mcp:
            results.append(run_mcp(base_url, api_key, work_dir))
            results.append(run_inspector(base_url, api_key, work_dir))

    print(flush=True)
    for part in results:
        verdict = "ok" if part.ok else "FAILED"
        log(f"{part.name}: {verdict} in {part.seconds:.0f}s: {part.detail}")
    passed = sum(part.ok for part in results)
    log(f"total {time.monotonic() - started:.0f}s")
    print(f"contract: {passed} passed, {len(results) - passed} failed", flush=True)
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
