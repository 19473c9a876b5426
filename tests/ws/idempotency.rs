//! A WebSocket write's `correlationId` is its idempotency key: sent again (after a reconnect,
//! say) it gets the first answer and does not run again; with another payload it is refused.

use petstore_testkit::{
    app::{ids_of, ok_json, spawn_app},
    ws::{next_response, now_ms, send_frame},
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn envelope(id: &str, action: &str, payload: &Value, timestamp: i64) -> Message {
    Message::text(
        json!({
            "type": "request",
            "correlationId": id,
            "timestamp": timestamp,
            "action": action,
            "payload": payload,
        })
        .to_string(),
    )
}

#[tokio::test]
async fn the_same_correlation_id_twice_writes_once_and_answers_the_same() {
    let app = spawn_app(|_| {}).await;
    let tag = format!("t{}", uuid::Uuid::new_v4().simple());
    let payload =
        json!({"body": {"name": "Rex", "photoUrls": [], "tags": [{"id": 1, "name": tag}]}});
    let id = uuid::Uuid::new_v4().to_string();

    let mut socket = app.ws_raw_connect_admin().await;
    send_frame(&mut socket, envelope(&id, "addPet", &payload, now_ms())).await;
    let first = next_response(&mut socket).await;
    assert_eq!(first["status"], "success", "{first}");
    drop(socket);

    // A reconnect, and the same request again.
    let mut socket = app.ws_raw_connect_admin().await;
    send_frame(&mut socket, envelope(&id, "addPet", &payload, now_ms())).await;
    let again = next_response(&mut socket).await;
    assert_eq!(again["payload"], first["payload"], "{again}");
    let found = ok_json(app.get(&format!("/pet/findByTags?tags={tag}")).await).await;
    assert_eq!(ids_of(&found).len(), 1, "one write: {found}");

    // Another payload under the same id.
    let other = json!({"body": {"name": "Fido", "photoUrls": []}});
    send_frame(&mut socket, envelope(&id, "addPet", &other, now_ms())).await;
    let refused = next_response(&mut socket).await;
    assert_eq!(refused["status"], "error", "{refused}");
    assert_eq!(refused["payload"]["status"], 422, "{refused}");
    assert_eq!(refused["payload"]["code"], "VALIDATION_ERROR", "{refused}");

    // Reads are not kept: the same id reads afresh.
    let read = json!({"tags": [tag]});
    send_frame(
        &mut socket,
        envelope(&id, "findPetsByTags", &read, now_ms()),
    )
    .await;
    let listed = next_response(&mut socket).await;
    assert_eq!(listed["status"], "success", "{listed}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_write_older_than_the_idempotency_window_is_refused_as_stale() {
    let app = spawn_app(|config| config.idempotency_ttl_secs = 60).await;
    let mut socket = app.ws_raw_connect_admin().await;
    let id = uuid::Uuid::new_v4().to_string();
    let payload = json!({"body": {"name": "Rex", "photoUrls": []}});
    let stale = now_ms() - 120_000;
    send_frame(&mut socket, envelope(&id, "addPet", &payload, stale)).await;
    let refused = next_response(&mut socket).await;
    assert_eq!(refused["payload"]["status"], 400, "{refused}");
    assert_eq!(refused["payload"]["code"], "BAD_REQUEST", "{refused}");
    assert!(
        refused["payload"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("timestamp"),
        "{refused}"
    );
    app.shutdown().await;
}
