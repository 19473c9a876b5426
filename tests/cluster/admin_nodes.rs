//! `GET /admin/nodes`: the cluster's live nodes, for administrators only. A server without
//! Redis lists itself.

use petstore_testkit::app::{
    ADMIN_API_KEY, api_key_spec, expect_error, expect_invalid_token, expect_unauthorized,
    header_text, ok_json, send, spawn_app,
};

const CUSTOMER_KEY: &str = "test-customer-key-0123456789abcdefghijklmnopqrstuvwxyz";

#[tokio::test]
async fn only_admins_list_the_nodes() {
    let app = spawn_app(|config| {
        config.node_id = Some("node-under-test".to_owned());
        config
            .api_keys
            .push(api_key_spec("test-customer", "customer", CUSTOMER_KEY));
    })
    .await;
    let url = app.url("/admin/nodes");

    expect_unauthorized(send(app.anonymous.get(&url)).await).await;
    expect_invalid_token(send(app.anonymous.get(&url).header("api_key", "not-a-key")).await).await;
    expect_error(
        send(app.anonymous.get(&url).header("api_key", CUSTOMER_KEY)).await,
        403,
        "FORBIDDEN",
    )
    .await;

    let response = send(app.anonymous.get(&url).header("api_key", ADMIN_API_KEY)).await;
    assert_eq!(
        header_text(&response, "cache-control").as_deref(),
        Some("no-store")
    );
    let body = ok_json(response).await;
    let nodes = body["nodes"].as_array().expect("a list of nodes");
    assert_eq!(nodes.len(), 1, "{body}");
    let node = &nodes[0];
    assert_eq!(node["id"], "node-under-test");
    assert_eq!(node["version"], env!("CARGO_PKG_VERSION"));
    for field in [
        "address",
        "connections",
        "inFlight",
        "startedAt",
        "lastSeen",
    ] {
        assert!(node.get(field).is_some(), "{field} in {node}");
    }
    // This very request is in flight.
    assert!(node["inFlight"].as_u64().is_some_and(|n| n >= 1), "{node}");
    app.shutdown().await;
}
