//! Clients beyond Rust, against the real server on `127.0.0.1:0`:
//!
//! - the TypeScript client (`clients/typescript`): type-checked with `tsc` (its generated
//!   contract, its runtime and the compile-only type tests), then its Node tests — the runtime
//!   against a scripted socket, and typed calls, notifications and a reconnect with recovery
//!   against the server;
//! - real-browser tests in Debian's Chromium driven by Playwright: Swagger UI authorizes with a
//!   token and runs "Try it out" on `getPetById` and `addPet`; the AsyncAPI page lists every
//!   action and event; a page loading the built client is notified of a REST write. A failing
//!   page leaves a screenshot under the target directory (`tmp/browser-screenshots/`).
//!
//! npm packages are pinned by `clients/typescript/package-lock.json` and installed with
//! `npm ci` into `clients/typescript/node_modules` (ignored by git) when the lock file changed,
//! with npm's cache under the target directory; Playwright downloads no browser. A missing
//! tool fails the test with the command that installs it: a suite that silently did not run
//! would pass CI on a broken client.

// Shared with tests/contract (its TypeScript REST round trips), which uses other parts of it.
#[allow(dead_code)]
mod node;

use petstore_testkit::app::{TestApp, spawn_app};

use node::{prepare_package, require_chromium, run_node_with};

/// The server the Node tests talk to: demo data (pets 1–8, the demo administrator whose
/// password the tests exchange for tokens), and any origin, since the client page is served by
/// the test from another port.
async fn app() -> TestApp {
    spawn_app(|config| {
        config.no_demo_data = false;
        config.allowed_origins = vec!["*".to_owned()];
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_client_type_checks_and_passes_its_tests_against_the_server() {
    prepare_package();
    let app = app().await;
    let outcome = run_node_with(
        "the TypeScript client's tests",
        &["--test", "test/runtime.test.mjs", "test/client.test.mjs"],
        &app.base_url,
        Vec::new(),
    )
    .await;
    app.shutdown().await;
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_the_asyncapi_page_and_the_client_work_in_chromium() {
    prepare_package();
    let chromium = require_chromium();
    let screenshots = node::screenshots_dir();
    let app = app().await;
    let outcome = run_node_with(
        "the browser tests",
        &["--test", "test/browser/pages.test.mjs"],
        &app.base_url,
        vec![
            ("PETSTORE_CHROMIUM", chromium),
            ("PETSTORE_SCREENSHOTS", screenshots.display().to_string()),
        ],
    )
    .await;
    app.shutdown().await;
    if let Err(failure) = outcome {
        panic!(
            "{failure} (screenshots of failing pages: {})",
            screenshots.display()
        );
    }
}
