//! What the endpoint decides before the SDK sees a request: credentials (as REST verifies them,
//! on every request), sessions (their caller's own, bounded per client address, ended when idle
//! or old, and with the server), the edge's rules (origin, body size, rate limit per tool call,
//! methods), and the protected-resource metadata the MCP authorization spec asks for.

use std::{num::NonZeroU32, time::Duration};

use petstore_testkit::{
    app::{ADMIN_API_KEY, body_json, header_text, ok_json, send, spawn_app},
    mcp::{Credentials, McpClient, error_body},
};
use reqwest::{Method, StatusCode};
use serde_json::json;

const PASSWORD: &str = "correct-horse-battery";

/// An `initialize` request, as its JSON-RPC message.
fn initialize() -> serde_json::Value {
    json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": { "name": "test", "version": "0" }
        }
    })
}

#[tokio::test]
async fn credentials_that_are_not_valid_are_refused_with_the_resource_metadata() {
    let app = spawn_app(|_| {}).await;
    let forged = McpClient::unconnected(&app.base_url, Credentials::Bearer("not-a-token".into()));
    let response = forged.post(&initialize()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = header_text(&response, "www-authenticate").unwrap_or_default();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let metadata = format!(
        "resource_metadata=\"{}/.well-known/oauth-protected-resource\"",
        app.base_url
    );
    assert!(challenge.contains(&metadata), "{challenge}");
    let body = body_json(response).await;
    assert_eq!(body["type"], json!("UNAUTHORIZED"));
    let wrong_key = McpClient::unconnected(&app.base_url, Credentials::ApiKey("wrong".into()));
    assert_eq!(
        wrong_key.post(&initialize()).await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.shutdown().await;
}

#[tokio::test]
async fn each_call_is_authorized_with_the_credentials_it_carries() {
    let app = spawn_app(|_| {}).await;
    let mut client = McpClient::connect(&app.base_url, Credentials::None).await;
    let refused = client.call_tool("getInventory", json!({})).await;
    assert_eq!(error_body(&refused)["type"], json!("UNAUTHORIZED"));
    app.shutdown().await;

    // A session opened with a token is used with that token (or a later one of the same user).
    let app = spawn_app(|_| {}).await;
    app.create_user("alice", PASSWORD).await;
    let (token, _) = app.create_token("alice", PASSWORD).await;
    let mut client = McpClient::connect(&app.base_url, Credentials::Bearer(token)).await;
    let refused = client.call_tool("getInventory", json!({})).await;
    // A customer lacks `inventory:read`: the same 403 as over REST.
    assert_eq!(error_body(&refused)["type"], json!("FORBIDDEN"));
    let (later, _) = app.create_token("alice", PASSWORD).await;
    client.set_credentials(Credentials::Bearer(later));
    let own = client
        .call_tool("getUserByName", json!({ "username": "alice" }))
        .await;
    assert_eq!(own["isError"], json!(false), "{own}");
    client.set_credentials(Credentials::Bearer("forged".into()));
    let response = client
        .post(&json!({ "jsonrpc": "2.0", "id": 9, "method": "tools/list" }))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    app.shutdown().await;
}

#[tokio::test]
async fn a_session_belongs_to_the_caller_that_opened_it() {
    let app = spawn_app(|_| {}).await;
    app.create_user("alice", PASSWORD).await;
    app.create_user("bob", PASSWORD).await;
    let (alice, _) = app.create_token("alice", PASSWORD).await;
    let (bob, _) = app.create_token("bob", PASSWORD).await;
    let mut client = McpClient::connect(&app.base_url, Credentials::Bearer(alice)).await;
    for stranger in [
        Credentials::Bearer(bob),
        Credentials::None,
        Credentials::ApiKey(ADMIN_API_KEY.to_owned()),
    ] {
        client.set_credentials(stranger.clone());
        let response = client
            .post(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }))
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{stranger:?}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn sessions_are_bounded_per_client_address() {
    let app = spawn_app(|config| config.mcp_max_sessions_per_ip = 2).await;
    let first = McpClient::connect(&app.base_url, Credentials::None).await;
    let _second = McpClient::connect(&app.base_url, Credentials::None).await;
    let third = McpClient::unconnected(&app.base_url, Credentials::None);
    let refused = third.post(&initialize()).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header_text(&refused, "retry-after").is_some());
    assert_eq!(body_json(refused).await["type"], json!("RATE_LIMITED"));
    // A session that ends gives its place back.
    assert!(first.close().await.is_success());
    let _again = McpClient::connect(&app.base_url, Credentials::None).await;
    app.shutdown().await;
}

#[tokio::test]
async fn sessions_end_when_idle_and_when_too_old() {
    let app = spawn_app(|config| config.mcp_session_idle_secs = 1).await;
    let client = McpClient::connect(&app.base_url, Credentials::None).await;
    // Well past the idle time: the session is gone and the client must start a new one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let response = client
        .post(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    app.shutdown().await;

    let app = spawn_app(|config| config.mcp_session_lifetime_secs = 1).await;
    let mut client = McpClient::connect(&app.base_url, Credentials::None).await;
    assert!(client.call("tools/list", json!({})).await.is_ok());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let response = client
        .post(&json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" }))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    app.shutdown().await;
}

#[tokio::test]
async fn a_deleted_session_is_gone() {
    let app = spawn_app(|_| {}).await;
    let client = McpClient::connect(&app.base_url, Credentials::None).await;
    assert!(client.close().await.is_success());
    let response = client
        .post(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    app.shutdown().await;
}

#[tokio::test]
async fn the_edge_checks_origins_body_sizes_and_methods_as_for_every_route() {
    let app = spawn_app(|config| {
        config.allowed_origins = vec!["https://app.example.com".to_owned()];
        config.max_json_body_bytes = 2048;
    })
    .await;
    let client = McpClient::unconnected(&app.base_url, Credentials::None);
    let foreign = send(
        client
            .request(Method::POST)
            .header("origin", "https://evil.example.com")
            .header("content-type", "application/json")
            .body(initialize().to_string()),
    )
    .await;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert_eq!(body_json(foreign).await["type"], json!("FORBIDDEN"));
    let allowed = send(
        client
            .request(Method::POST)
            .header("origin", "https://app.example.com")
            .header("content-type", "application/json")
            .body(initialize().to_string()),
    )
    .await;
    assert_eq!(allowed.status(), StatusCode::OK);

    let mut connected = McpClient::connect(&app.base_url, Credentials::None).await;
    let huge = "x".repeat(4096);
    let response = connected
        .post(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": { "name": "findPetsByTags", "arguments": { "tags": [huge] } }
        }))
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        body_json(response).await["type"],
        json!("PAYLOAD_TOO_LARGE")
    );
    assert!(connected.call("tools/list", json!({})).await.is_ok());

    let put = send(client.request(Method::PUT)).await;
    assert_eq!(put.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        header_text(&put, "allow").as_deref(),
        Some("DELETE, GET, POST")
    );
    app.shutdown().await;
}

#[tokio::test]
async fn tool_calls_count_against_the_callers_rate_limit_like_rest_requests() {
    let app = spawn_app(|config| {
        config.rate_limit_per_minute = NonZeroU32::MIN;
        config.rate_limit_burst = NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN);
    })
    .await;
    let mut client = McpClient::connect(&app.base_url, Credentials::None).await;
    // The handshake and the list are not operations: they do not count.
    assert!(client.call("tools/list", json!({})).await.is_ok());
    let first = client.call_tool("findPetsByStatus", json!({})).await;
    assert_eq!(first["isError"], json!(false), "{first}");
    // A REST request from the same client takes the rest of the burst: one limit for both.
    ok_json(send(app.anonymous.get(app.api("/pet/findByStatus"))).await).await;
    let limited = client.call_tool("findPetsByStatus", json!({})).await;
    let body = error_body(&limited);
    assert_eq!(body["code"], json!(429));
    assert_eq!(body["type"], json!("RATE_LIMITED"));
    app.shutdown().await;
}

#[tokio::test]
async fn the_resource_metadata_names_the_endpoint_its_scopes_and_the_token_endpoint() {
    let app = spawn_app(|_| {}).await;
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let metadata = ok_json(send(app.anonymous.get(app.url(path))).await).await;
        assert_eq!(metadata["resource"], json!(format!("{}/mcp", app.base_url)));
        assert_eq!(metadata["authorization_servers"], json!([app.base_url]));
        assert_eq!(
            metadata["token_endpoint"],
            json!(format!("{}/api/v3/auth/token", app.base_url))
        );
        assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
        let scopes = metadata["scopes_supported"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(scopes.contains(&json!("pets:write")), "{metadata}");
    }
    app.shutdown().await;

    let app = spawn_app(|config| {
        config.public_url = Some("https://petstore.example.com/".to_owned());
    })
    .await;
    let metadata = ok_json(
        send(
            app.anonymous
                .get(app.url("/.well-known/oauth-protected-resource")),
        )
        .await,
    )
    .await;
    assert_eq!(
        metadata["resource"],
        json!("https://petstore.example.com/mcp")
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_shutdown_ends_the_sessions_and_their_event_streams() {
    let app = spawn_app(|_| {}).await;
    let client = McpClient::connect(&app.base_url, Credentials::None).await;
    let mut events = client.events().await;
    // Without the sessions ending, the open event stream would hold the graceful shutdown for
    // its whole grace period.
    let stopped = tokio::time::timeout(Duration::from_secs(8), app.shutdown()).await;
    assert!(
        stopped.is_ok(),
        "the shutdown waited for the MCP event stream"
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while events.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the event stream did not end");
}
