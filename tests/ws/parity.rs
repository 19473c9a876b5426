//! REST and WebSocket answer alike: the same handlers serve both transports, so every operation
//! of `openapi.yaml` gives the same result for the same input over either. The cases are the
//! parity table's (`tests/parity`); this file runs them over WebSocket.
//!
//! Over WebSocket the status of a success is the operation's 2xx, of an error the error
//! payload's `status`; the error code is its `code` and the field errors its `details`; a
//! success's body is the success payload.

use futures_util::{SinkExt, StreamExt};
use petstore_api::ws::{Action, WS_PATH};
use petstore_client::{ClientOptions, Reply, WsClient};
use petstore_testkit::app::{ADMIN_API_KEY, TestApp};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

#[path = "../parity/mod.rs"]
mod table;

use table::{
    Caller::{Admin, AdminKey, Alice, Anonymous},
    Case, Fixture, GROUPS, Input, Outcome, SPEC, Transport, check_cases, check_parity, guarded,
    normalize,
};

/// The WebSocket transport of the table.
struct WebSocket;

impl Transport for WebSocket {
    const NAME: &'static str = "WebSocket";

    async fn run(app: &TestApp, fixture: &Fixture, case: &Case, input: &Input) -> Outcome {
        run_ws(app, fixture, case, input).await
    }
}

/// Runs the case over WebSocket: the client for bearer tokens and no credentials, a raw socket
/// for the service key (the client sends no `api_key` header). The cases send payloads of every
/// shape, valid or not, so the client's raw calls carry them.
async fn run_ws(app: &TestApp, fixture: &Fixture, case: &Case, input: &Input) -> Outcome {
    let Some(action) = Action::from_name(case.operation) else {
        panic!("no action {}", case.operation);
    };
    let url = format!("ws://{}{WS_PATH}", app.addr);
    let payload = input.payload();
    let (success, status_or_code) = if case.caller == AdminKey {
        raw_call(&url, action, payload).await
    } else {
        let options = match case.caller {
            Admin => ClientOptions::default().bearer_token(fixture.admin_token.clone()),
            Alice => ClientOptions::default().bearer_token(fixture.alice_token.clone()),
            Anonymous | AdminKey => ClientOptions::default(),
        };
        let client = match guarded("a WebSocket upgrade", WsClient::connect(&url, options)).await {
            Ok(client) => client,
            Err(error) => panic!("the WebSocket upgrade failed: {error}"),
        };
        let reply = match guarded("a WebSocket call", client.raw().call(action, payload)).await {
            Ok(reply) => reply,
            Err(error) => panic!(
                "{} {}: no WebSocket answer: {error}",
                case.operation, case.what
            ),
        };
        client.close().await;
        match reply {
            Reply::Success(payload) => (true, payload),
            Reply::Error(error) => match serde_json::to_value(&error) {
                Ok(error) => (false, error),
                Err(never) => panic!("an error payload that does not render: {never}"),
            },
        }
    };
    if success {
        let mut body = status_or_code;
        normalize(&mut body);
        Outcome::Success {
            status: SPEC[case.operation].success,
            body,
        }
    } else {
        let error = status_or_code;
        let status = error["status"].as_u64().unwrap_or_default() as u16;
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{} {}: a WebSocket error without a message: {error}",
            case.operation,
            case.what
        );
        Outcome::Error {
            status,
            code: error["code"].as_str().unwrap_or_default().to_owned(),
            field_errors: error["details"]
                .is_array()
                .then(|| error["details"].clone()),
        }
    }
}

/// One request over a raw socket upgraded with the admin service key; returns whether it
/// succeeded and its payload.
async fn raw_call(url: &str, action: Action, payload: Value) -> (bool, Value) {
    let mut request = match url.into_client_request() {
        Ok(request) => request,
        Err(error) => panic!("cannot build the upgrade request: {error}"),
    };
    request
        .headers_mut()
        .insert("api_key", HeaderValue::from_static(ADMIN_API_KEY));
    let (mut socket, _) = match guarded(
        "a raw WebSocket upgrade",
        tokio_tungstenite::connect_async(request),
    )
    .await
    {
        Ok(connected) => connected,
        Err(error) => panic!("the raw WebSocket upgrade failed: {error}"),
    };
    let id = uuid::Uuid::new_v4().to_string();
    let frame = json!({
        "type": "request",
        "correlationId": id,
        "timestamp": chrono::Utc::now().timestamp_millis(),
        "action": action.as_str(),
        "payload": payload,
    });
    if let Err(error) = socket.send(Message::text(frame.to_string())).await {
        panic!("cannot send the request: {error}");
    }
    let response = guarded("a raw WebSocket response", async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = match serde_json::from_str(text.as_str()) {
                        Ok(frame) => frame,
                        Err(error) => panic!("a frame that is not JSON ({error}): {text}"),
                    };
                    if frame["type"] == "response" && frame["correlationId"] == json!(id) {
                        return frame;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("the raw socket failed: {error}"),
                None => panic!("the raw socket closed before the response"),
            }
        }
    })
    .await;
    let _ = socket.close(None).await;
    (response["status"] == "success", response["payload"].clone())
}

#[tokio::test]
async fn pet_writes_and_searches_answer_alike() {
    check_parity::<WebSocket>(GROUPS[0]).await;
}

#[tokio::test]
async fn pet_reads_updates_and_deletes_answer_alike() {
    check_parity::<WebSocket>(GROUPS[1]).await;
}

#[tokio::test]
async fn images_and_the_inventory_answer_alike() {
    check_parity::<WebSocket>(GROUPS[2]).await;
}

#[tokio::test]
async fn orders_answer_alike() {
    check_parity::<WebSocket>(GROUPS[3]).await;
}

#[tokio::test]
async fn user_creation_and_login_answer_alike() {
    check_parity::<WebSocket>(GROUPS[4]).await;
}

#[tokio::test]
async fn user_accounts_and_tokens_answer_alike() {
    check_parity::<WebSocket>(GROUPS[5]).await;
}

#[tokio::test]
async fn a_missing_body_without_credentials_answers_alike() {
    check_cases::<WebSocket>(&table::missing_body_without_credentials()).await;
}

#[tokio::test]
async fn an_upload_without_a_file_answers_alike() {
    check_cases::<WebSocket>(&table::upload_without_a_file()).await;
}
