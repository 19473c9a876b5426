//! Resources followed through the event hub the WebSocket uses: `resources/subscribe` to a pet or
//! an order, and every change to it, through REST, a tool or a WebSocket, arrives on the session's
//! event stream as `notifications/resources/updated`. Who may follow what is the handlers'
//! decision, as for a WebSocket `subscribe`.

use std::time::Duration;

use petstore_testkit::{
    app::{ADMIN_API_KEY, id_of, ok_json, spawn_app},
    mcp::{Credentials, McpClient},
};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

const PASSWORD: &str = "correct-horse-battery";

/// Hang guard for a notification that must come; it measures nothing.
const ARRIVES_WITHIN: Duration = Duration::from_secs(10);

/// The URI of the next resource update on the stream.
async fn next_update(events: &mut UnboundedReceiver<Value>) -> String {
    let update = tokio::time::timeout(ARRIVES_WITHIN, async {
        loop {
            match events.recv().await {
                Some(message) if message["method"] == json!("notifications/resources/updated") => {
                    return message["params"]["uri"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                }
                Some(_) => {}
                None => panic!("the event stream ended"),
            }
        }
    })
    .await;
    match update {
        Ok(uri) => uri,
        Err(_) => panic!("no resource update arrived"),
    }
}

async fn subscribe(client: &mut McpClient, uri: &str) -> Result<Value, Value> {
    client
        .call("resources/subscribe", json!({ "uri": uri }))
        .await
}

#[tokio::test]
async fn a_followed_pet_is_announced_when_rest_or_a_tool_changes_it() {
    let app = spawn_app(|_| {}).await;
    let rex = app.add_available_pet("rex").await;
    let tom = app.add_available_pet("tom").await;
    let mut client =
        McpClient::connect(&app.base_url, Credentials::ApiKey(ADMIN_API_KEY.to_owned())).await;
    let mut events = client.events().await;
    let rex_uri = format!("petstore://pet/{rex}");
    assert!(subscribe(&mut client, &rex_uri).await.is_ok());

    // A change to a pet nobody follows is not announced; the change to rex after it is.
    ok_json(
        app.put_json(
            "/pet",
            &json!({ "id": tom, "name": "tom", "photoUrls": [] }),
        )
        .await,
    )
    .await;
    ok_json(
        app.put_json(
            "/pet",
            &json!({ "id": rex, "name": "rex II", "photoUrls": [] }),
        )
        .await,
    )
    .await;
    assert_eq!(next_update(&mut events).await, rex_uri);

    // Through a tool of another session, and its deletion.
    let mut writer =
        McpClient::connect(&app.base_url, Credentials::ApiKey(ADMIN_API_KEY.to_owned())).await;
    let renamed = writer
        .call_tool(
            "updatePetWithForm",
            json!({ "petId": rex, "name": "rexie" }),
        )
        .await;
    assert_eq!(renamed["isError"], json!(false), "{renamed}");
    assert_eq!(next_update(&mut events).await, rex_uri);
    let read = client
        .call("resources/read", json!({ "uri": rex_uri }))
        .await;
    let text = read
        .map(|read| {
            read["contents"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default();
    assert!(text.contains("rexie"), "{text}");
    let deleted = writer.call_tool("deletePet", json!({ "petId": rex })).await;
    assert_eq!(deleted["isError"], json!(false), "{deleted}");
    assert_eq!(next_update(&mut events).await, rex_uri);
    writer.close().await;
    client.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn unsubscribing_stops_the_updates() {
    let app = spawn_app(|_| {}).await;
    let rex = app.add_available_pet("rex").await;
    let tom = app.add_available_pet("tom").await;
    let mut client =
        McpClient::connect(&app.base_url, Credentials::ApiKey(ADMIN_API_KEY.to_owned())).await;
    let mut events = client.events().await;
    for pet in [rex, tom] {
        assert!(
            subscribe(&mut client, &format!("petstore://pet/{pet}"))
                .await
                .is_ok()
        );
    }
    let unsubscribed = client
        .call(
            "resources/unsubscribe",
            json!({ "uri": format!("petstore://pet/{rex}") }),
        )
        .await;
    assert!(unsubscribed.is_ok(), "{unsubscribed:?}");
    for (pet, name) in [(rex, "rex II"), (tom, "tom II")] {
        ok_json(
            app.put_json("/pet", &json!({ "id": pet, "name": name, "photoUrls": [] }))
                .await,
        )
        .await;
    }
    assert_eq!(
        next_update(&mut events).await,
        format!("petstore://pet/{tom}")
    );
    client.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn following_needs_a_caller_and_an_order_its_owner() {
    let app = spawn_app(|_| {}).await;
    let pet = app.add_available_pet("rex").await;
    app.create_user("alice", PASSWORD).await;
    app.create_user("bob", PASSWORD).await;
    let (alice, _) = app.create_token("alice", PASSWORD).await;
    let (bob, _) = app.create_token("bob", PASSWORD).await;

    let mut anonymous = McpClient::connect(&app.base_url, Credentials::None).await;
    let refused = subscribe(&mut anonymous, &format!("petstore://pet/{pet}")).await;
    assert!(
        matches!(&refused, Err(error) if error["data"]["type"] == json!("UNAUTHORIZED")),
        "{refused:?}"
    );

    let mut as_alice = McpClient::connect(&app.base_url, Credentials::Bearer(alice.clone())).await;
    let placed = as_alice
        .call_tool(
            "placeOrder",
            json!({ "body": { "petId": pet, "quantity": 1 } }),
        )
        .await;
    let order = id_of(&placed["structuredContent"]);
    let order_uri = format!("petstore://order/{order}");
    let mut as_bob = McpClient::connect(&app.base_url, Credentials::Bearer(bob)).await;
    let foreign = subscribe(&mut as_bob, &order_uri).await;
    assert!(
        matches!(&foreign, Err(error) if error["data"]["type"] == json!("FORBIDDEN")),
        "{foreign:?}"
    );

    let mut events = as_alice.events().await;
    assert!(subscribe(&mut as_alice, &order_uri).await.is_ok());
    let cancelled = as_alice
        .call_tool("deleteOrder", json!({ "orderId": order }))
        .await;
    assert_eq!(cancelled["isError"], json!(false), "{cancelled}");
    assert_eq!(next_update(&mut events).await, order_uri);

    let bad = subscribe(&mut as_alice, "petstore://pet/abc").await;
    assert!(
        matches!(&bad, Err(error) if error["code"] == json!(-32602)),
        "{bad:?}"
    );
    for client in [anonymous, as_alice, as_bob] {
        client.close().await;
    }
    app.shutdown().await;
}
