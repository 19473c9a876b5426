//! The MCP endpoint judged by a real client: the official MCP Python SDK (PyPI `mcp`, pinned in
//! `contract-tests/requirements.txt`) runs `contract-tests/test_mcp.py` against the server with
//! its demo data: the handshake, every operation listed as a tool with valid JSON Schemas,
//! `getPetById`, `addPet` with a token, an invalid `addPet` and its field errors, a call refused
//! without a token, and a subscribed pet announced after a REST write.
//!
//! It runs through `contract-tests/run.py --mcp-only`, which installs the pinned tools into
//! `contract-tests/.venv` on first use like the rest of the suite; it needs `python3` (3.11+)
//! and no Java.

use petstore_testkit::app::spawn_app;

use crate::suite::{require_tool, run_contract_suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_lists_calls_and_follows_the_tools_and_resources() {
    require_tool(
        "python3",
        &["--version"],
        "python3 (3.11+, with venv and pip; Debian: apt-get install python3 python3-venv)",
    );
    // The demo data gives pet 1 to read and the demo administrator to take a token as.
    let app = spawn_app(|config| config.no_demo_data = false).await;
    let base_url = app.base_url.clone();
    let outcome =
        tokio::task::spawn_blocking(move || run_contract_suite(&base_url, &["--mcp-only"])).await;
    app.shutdown().await;
    match outcome {
        Ok(Ok(status)) => assert!(
            status.success(),
            "contract-tests/run.py --mcp-only failed ({status}); its output above lists every failure"
        ),
        Ok(Err(problem)) => panic!("{problem}"),
        Err(join_error) => panic!("the contract runner thread failed: {join_error}"),
    }
}
