//! The REST API through a TypeScript client generated from `openapi.yaml`: openapi-typescript
//! turns the spec into types, openapi-fetch makes the typed calls, `tsc` checks the test
//! (`clients/typescript/test/rest/crud.test.ts`) against those types, and Node runs it against
//! the server — create/read/update/delete of pets, orders and users, as the Python round trips
//! do with their OpenAPI Generator client.

use petstore_testkit::app::{ADMIN_API_KEY, spawn_app};

use crate::node::{npm_run, prepare_package, run_node_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_typescript_client_creates_reads_updates_and_deletes() {
    prepare_package();
    if let Err(problem) = npm_run("rest:build") {
        panic!("{problem}");
    }
    let app = spawn_app(|config| config.no_demo_data = false).await;
    let outcome = run_node_with(
        "the TypeScript REST round trips",
        &["--test", "dist-test/rest/crud.test.js"],
        &app.base_url,
        vec![("PETSTORE_CONTRACT_API_KEY", ADMIN_API_KEY.to_owned())],
    )
    .await;
    app.shutdown().await;
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
