//! The client against tiny servers on loopback sockets: correlation, raw frames, typed
//! success and error payloads, notifications, close frames, reconnects and timeouts.
//!
//! Most run on the real clock: they talk over real sockets, where a paused clock would
//! auto-advance to the next timer (a request timeout, a backoff) while a frame is still on its
//! way. The tests of the client's own timers (the request and connect timeouts, the reconnect
//! backoff) connect through an in-memory pipe instead ([`Memory`]) and run on a paused clock:
//! nothing then waits on the operating system, so time only moves when every task is waiting
//! for a timer, and the timers are checked to the millisecond.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use petstore_api::{
    Topic,
    models::{FieldError, Pet, PetStatus},
    operations::{
        AddPetRequest, DeletePetRequest, GetPetByIdRequest, GetPetImageRequest, LoginUserRequest,
    },
    ws::{Action, Event},
};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request, Response as HandshakeResponse,
};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use uuid::Uuid;

use crate::connection::Connector;
use crate::envelope::now_ms;
use crate::{
    ClientError, ClientOptions, CloseInfo, ErrorDetails, ErrorPayload, Inbound, ReconnectPolicy,
    Reply, WsClient,
};

type ServerSocket = WebSocketStream<TcpStream>;

/// Hang guard: generous, and only there so that a broken test fails instead of hanging.
async fn guarded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), test)
        .await
        .expect("the test hung")
}

/// A listener on an ephemeral loopback port, and the endpoint's URL on it.
async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/api/v3/ws", listener.local_addr().unwrap());
    (listener, url)
}

/// A client with the default options.
async fn connect(url: &str) -> WsClient {
    WsClient::connect(url, ClientOptions::default())
        .await
        .unwrap()
}

/// A handshake refusal with `status` and `body`.
fn refusal(status: StatusCode, body: Option<&str>) -> ErrorResponse {
    let mut response = ErrorResponse::new(body.map(str::to_owned));
    *response.status_mut() = status;
    response
}

/// Reconnects that retry quickly (1 ms, at most 5 ms apart) and without an attempt limit.
fn fast_retries() -> ReconnectPolicy {
    ReconnectPolicy {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(5),
        ..ReconnectPolicy::default()
    }
}

/// What a test server knows about a connection.
#[derive(Debug, Clone)]
struct Connection {
    /// 0 for the first connection to the server.
    index: usize,
    /// The `Authorization` header of the upgrade.
    authorization: Option<String>,
}

/// A server on an ephemeral port that runs `handler` for every connection. Returns the URL.
#[allow(clippy::result_large_err)] // The handshake callback's error type is tungstenite's.
async fn server<F, Fut>(handler: F) -> String
where
    F: Fn(Connection, ServerSocket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (listener, url) = listen().await;
    tokio::spawn(async move {
        for index in 0.. {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let mut authorization = None;
            let capture = |request: &Request, response: HandshakeResponse| {
                authorization = request
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                Ok(response)
            };
            if let Ok(socket) = tokio_tungstenite::accept_hdr_async(tcp, capture).await {
                let connection = Connection {
                    index,
                    authorization,
                };
                tokio::spawn(handler(connection, socket));
            }
        }
    });
    url
}

/// The next text frame as JSON; `None` once the client is gone.
async fn next_request<S: AsyncRead + AsyncWrite + Unpin>(
    socket: &mut WebSocketStream<S>,
) -> Option<Value> {
    loop {
        match socket.next().await? {
            Ok(Message::Text(text)) => return serde_json::from_str(text.as_str()).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// A response envelope answering `request`. `json!` sorts the keys, so `type` comes last:
/// the client must not depend on field order.
fn respond(request: &Value, status: &str, payload: Value) -> Message {
    Message::text(
        json!({
            "type": "response",
            "correlationId": request["correlationId"],
            "timestamp": now_ms(),
            "status": status,
            "payload": payload,
        })
        .to_string(),
    )
}

fn notify(event: &str, payload: Value) -> Message {
    Message::text(
        json!({
            "type": "notification",
            "correlationId": Uuid::new_v4().to_string(),
            "timestamp": now_ms(),
            "event": event,
            "payload": payload,
        })
        .to_string(),
    )
}

/// The success payload the contract documents for a control action (`ping`: the clock;
/// `authenticate`: who the session is; `subscribe`/`unsubscribe`: the topics), `{}` otherwise.
fn contract_answer(request: &Value) -> Value {
    match request["action"].as_str() {
        Some("ping") => json!({ "timestamp": now_ms() }),
        Some("authenticate") => json!({
            "subject": "alice",
            "roles": ["customer"],
            "scopes": ["pets:read"],
            "expiresAt": null,
        }),
        Some("subscribe" | "unsubscribe") => request["payload"].clone(),
        _ => json!({}),
    }
}

/// Answers every request with success and `{"action", "payload"}` echoed, with a `timestamp`
/// so that a typed `ping` reads the echo as its pong.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut WebSocketStream<S>) {
    while let Some(request) = next_request(socket).await {
        let echoed = json!({
            "action": request["action"],
            "payload": request["payload"],
            "timestamp": now_ms(),
        });
        if socket
            .send(respond(&request, "success", echoed))
            .await
            .is_err()
        {
            return;
        }
    }
}

#[tokio::test]
async fn concurrent_calls_get_their_own_responses_when_answered_out_of_order() {
    let (seen, mut requests) = mpsc::unbounded_channel();
    let url = server(move |_, mut socket| {
        let seen = seen.clone();
        async move {
            // Read both requests, then answer the second first.
            let Some(first) = next_request(&mut socket).await else {
                return;
            };
            let Some(second) = next_request(&mut socket).await else {
                return;
            };
            for request in [&second, &first] {
                let echoed = json!({ "payload": request["payload"] });
                socket
                    .send(respond(request, "success", echoed))
                    .await
                    .unwrap();
            }
            seen.send([first, second]).unwrap();
            echo(&mut socket).await;
        }
    })
    .await;

    guarded(async {
        let client = connect(&url).await;
        let other = client.clone();
        let (one, two) = tokio::join!(
            client.raw().call(Action::GetPetById, json!({ "petId": 1 })),
            other.raw().call(Action::GetPetById, json!({ "petId": 2 })),
        );
        assert_eq!(
            one.unwrap(),
            Reply::Success(json!({ "payload": { "petId": 1 } }))
        );
        assert_eq!(
            two.unwrap(),
            Reply::Success(json!({ "payload": { "petId": 2 } }))
        );

        // What went over the wire: request envelopes with distinct v4 correlation ids.
        let sent = requests.recv().await.unwrap();
        let mut ids = Vec::new();
        for request in &sent {
            assert_eq!(request["type"], "request");
            assert_eq!(request["action"], "getPetById");
            assert!(request["timestamp"].as_u64().unwrap() > 1_577_836_800_000);
            let id = Uuid::parse_str(request["correlationId"].as_str().unwrap()).unwrap();
            assert_eq!(id.get_version_num(), 4);
            ids.push(id);
        }
        assert_ne!(ids[0], ids[1]);

        // Many more at once, from many clones.
        let calls = (0..50).map(|n| {
            let client = client.clone();
            async move {
                (
                    n,
                    client
                        .raw()
                        .call(Action::GetPetById, json!({ "petId": n }))
                        .await,
                )
            }
        });
        for (n, reply) in futures_util::future::join_all(calls).await {
            let reply = reply.unwrap();
            assert_eq!(reply.success().unwrap()["payload"]["petId"], n);
        }
    })
    .await;
}

// The handshake callback's error type is tungstenite's, large or not.
#[allow(clippy::result_large_err)]
#[tokio::test]
async fn the_upgrade_carries_the_bearer_token_and_the_origin() {
    let (listener, url) = listen().await;
    let (headers, received) = oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let capture = |request: &Request, response: HandshakeResponse| {
            let header = |name: header::HeaderName| {
                request
                    .headers()
                    .get(name)
                    .and_then(|value: &HeaderValue| value.to_str().ok())
                    .map(str::to_owned)
            };
            let _ = headers.send((
                request.uri().path().to_owned(),
                header(header::AUTHORIZATION),
                header(header::ORIGIN),
            ));
            Ok(response)
        };
        let mut socket = tokio_tungstenite::accept_hdr_async(tcp, capture)
            .await
            .unwrap();
        echo(&mut socket).await;
    });

    guarded(async {
        let options = ClientOptions::default()
            .bearer_token("token-123")
            .origin("https://shop.example");
        let client = WsClient::connect(&url, options).await.unwrap();
        assert_eq!(
            received.await.unwrap(),
            (
                "/api/v3/ws".to_owned(),
                Some("Bearer token-123".to_owned()),
                Some("https://shop.example".to_owned()),
            )
        );
        assert!(client.ping().await.is_ok());
    })
    .await;
}

// The handshake callback's error type is tungstenite's, large or not.
#[allow(clippy::result_large_err)]
#[tokio::test]
async fn a_refused_upgrade_reports_the_http_status() {
    let (listener, url) = listen().await;
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let refuse = |_: &Request, _: HandshakeResponse| -> Result<_, ErrorResponse> {
            Err(refusal(StatusCode::FORBIDDEN, Some("origin not allowed")))
        };
        let _ = tokio_tungstenite::accept_hdr_async(tcp, refuse).await;
    });

    let error = guarded(WsClient::connect(&url, ClientOptions::default()))
        .await
        .unwrap_err();
    let ClientError::Rejected { status, body } = error else {
        panic!("expected a rejection, got {error:?}");
    };
    assert_eq!(status, 403);
    assert_eq!(body.as_deref(), Some("origin not allowed"));

    let error = WsClient::connect("not a url", ClientOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::InvalidRequest(_)), "{error:?}");
    let error = WsClient::connect(&url, ClientOptions::default().origin("bad\norigin"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::InvalidHeader("Origin")),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_error_reply_carries_code_status_and_details() {
    let url = server(|_, mut socket| async move {
        while let Some(request) = next_request(&mut socket).await {
            let answer = if request["action"] == "addPet" {
                respond(
                    &request,
                    "error",
                    json!({
                        "code": "VALIDATION_ERROR",
                        "message": "the pet is not valid",
                        "status": 422,
                        "details": [{ "path": "name", "message": "is required" }],
                    }),
                )
            } else if request["action"] == "getPetById" {
                // A malformed error payload (no code).
                respond(&request, "error", json!({ "message": "?" }))
            } else {
                respond(
                    &request,
                    "error",
                    json!({
                        "code": "RATE_LIMITED",
                        "message": "slow down",
                        "status": 429,
                        "details": { "retryAfter": 3 },
                    }),
                )
            };
            socket.send(answer).await.unwrap();
        }
    })
    .await;

    guarded(async {
        let client = connect(&url).await;
        let reply = client
            .raw()
            .call(Action::AddPet, json!({ "body": { "photoUrls": [] } }))
            .await
            .unwrap();
        let invalid = ErrorPayload {
            code: "VALIDATION_ERROR".to_owned(),
            message: "the pet is not valid".to_owned(),
            status: 422,
            details: ErrorDetails::Fields(vec![FieldError {
                path: "name".to_owned(),
                message: "is required".to_owned(),
            }]),
        };
        assert_eq!(reply, Reply::Error(invalid.clone()));
        // The same refusal of a typed call is the error, carrying the payload.
        let error = client
            .add_pet(AddPetRequest { body: pet("Rex") })
            .await
            .unwrap_err();
        assert_eq!(error.api(), Some(&invalid), "{error:?}");

        let error = client.ping().await.unwrap_err();
        let Some(ErrorPayload {
            code,
            status,
            details,
            ..
        }) = error.api()
        else {
            panic!("expected an error payload, got {error:?}");
        };
        assert_eq!((code.as_str(), *status), ("RATE_LIMITED", 429));
        assert_eq!(details, &ErrorDetails::RetryAfter(3));

        let error = client
            .get_pet_by_id(GetPetByIdRequest { pet_id: 1 })
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::Protocol(_)), "{error:?}");
    })
    .await;
}

#[tokio::test]
async fn notifications_reach_every_receiver() {
    let url = server(|_, mut socket| async move {
        while let Some(request) = next_request(&mut socket).await {
            if request["action"] == "subscribe" {
                // The event races the response, as it may on a real server.
                let pet = json!({ "id": 5, "name": "Rex", "photoUrls": [] });
                socket.send(notify("pet.created", pet)).await.unwrap();
                socket
                    .send(notify("pet.teleported", json!(null)))
                    .await
                    .unwrap();
            }
            let topics = request["payload"].clone();
            socket
                .send(respond(&request, "success", topics))
                .await
                .unwrap();
        }
    })
    .await;

    guarded(async {
        let client = connect(&url).await;
        let mut first = client.notifications();
        let mut second = client.notifications();
        let topics = client
            .subscribe(&[Topic::Pets, Topic::Pet(5)])
            .await
            .unwrap();
        assert_eq!(topics, [Topic::Pets, Topic::Pet(5)]);
        assert_eq!(client.topics(), [Topic::Pet(5), Topic::Pets]);

        for receiver in [&mut first, &mut second] {
            let created = receiver.recv().await.unwrap();
            assert_eq!(created.kind(), Some(Event::PetCreated));
            assert_eq!(created.payload["name"], "Rex");
            assert!(created.correlation_id.is_some() && created.timestamp.is_some());
            let unknown = receiver.recv().await.unwrap();
            assert_eq!(
                (unknown.event.as_str(), unknown.kind()),
                ("pet.teleported", None)
            );
            assert_eq!(receiver.missed(), 0);
        }
        assert!(first.try_recv().is_none());

        assert!(client.unsubscribe(&[Topic::Pets]).await.is_ok());
        assert_eq!(client.topics(), [Topic::Pet(5)]);

        // Once the client is gone, receivers end instead of waiting forever.
        drop(client);
        assert!(first.recv().await.is_none());
    })
    .await;
}

#[tokio::test]
async fn raw_text_returns_whatever_answers_the_frame() {
    let url = server(|_, mut socket| async move {
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let answer = match serde_json::from_str::<Value>(text.as_str()) {
                Ok(request) if request["correlationId"].is_string() => {
                    respond(&request, "success", json!("echo"))
                }
                Ok(_) => Message::text("no correlation id"),
                Err(_) => respond(
                    &Value::Null,
                    "error",
                    json!({ "code": "BAD_REQUEST", "message": "not JSON", "status": 400 }),
                ),
            };
            socket.send(answer).await.unwrap();
        }
    })
    .await;

    guarded(async {
        let client = connect(&url).await;

        let Inbound::Response(response) = client.raw().send_text("{not json").await.unwrap() else {
            panic!("expected a response");
        };
        assert_eq!(response.correlation_id, None);
        assert_eq!(response.reply.error_code(), Some("BAD_REQUEST"));

        let frame = json!({ "type": "request", "correlationId": "raw-1", "action": "ping" });
        let Inbound::Response(response) = client.raw().send_text(frame.to_string()).await.unwrap()
        else {
            panic!("expected a response");
        };
        assert_eq!(response.correlation_id.as_deref(), Some("raw-1"));
        assert_eq!(response.reply, Reply::Success(json!("echo")));

        assert_eq!(
            client.raw().send_text("{}").await.unwrap(),
            Inbound::Text("no correlation id".to_owned())
        );
        // Typed calls still work next to raw ones.
        let login = LoginUserRequest {
            username: "alice".to_owned(),
            password: "secret".to_owned(),
        };
        assert_eq!(client.login_user(login).await.unwrap(), "echo");
    })
    .await;
}

#[tokio::test]
async fn a_lost_connection_fails_the_calls_in_flight_and_reports_the_close_frame() {
    for (code, reason) in [
        (1008, "authentication deadline"),
        (1009, "message too big"),
        (1013, "slow consumer"),
        (1001, "server shutting down"),
    ] {
        let url = server(move |_, mut socket| async move {
            // Read the request, then close instead of answering.
            if next_request(&mut socket).await.is_some() {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                let _ = socket.close(Some(frame)).await;
                while let Some(Ok(_)) = socket.next().await {}
            }
        })
        .await;

        guarded(async {
            let client = connect(&url).await;
            let error = client
                .get_pet_by_id(GetPetByIdRequest { pet_id: 1 })
                .await
                .unwrap_err();
            assert!(matches!(error, ClientError::ConnectionLost), "{error:?}");
            let close = CloseInfo {
                code,
                reason: reason.to_owned(),
            };
            assert_eq!(client.closed().await, Some(close.clone()));
            assert_eq!(client.last_close(), Some(close));
            assert!(!client.is_connected());
            // Without a reconnect policy the client is done.
            assert!(matches!(client.ping().await, Err(ClientError::Closed)));
            assert!(matches!(client.connected().await, Err(ClientError::Closed)));
        })
        .await;
    }
}

#[tokio::test]
async fn an_abrupt_disconnect_has_no_close_frame() {
    let url = server(|_, mut socket| async move {
        let _ = next_request(&mut socket).await;
        drop(socket);
    })
    .await;
    guarded(async {
        let client = connect(&url).await;
        let error = client.ping().await.unwrap_err();
        assert!(matches!(error, ClientError::ConnectionLost), "{error:?}");
        assert_eq!(client.closed().await, None);
    })
    .await;
}

#[tokio::test]
async fn reconnects_and_restores_the_session_before_anything_else() {
    let (seen, mut restored) = mpsc::unbounded_channel();
    let url = server(move |connection, mut socket| {
        let seen = seen.clone();
        async move {
            let index = connection.index;
            while let Some(request) = next_request(&mut socket).await {
                seen.send((connection.clone(), request.clone())).unwrap();
                let answer = match request["action"].as_str() {
                    // The first connection dies with a call in flight.
                    Some("getPetById") if index == 0 => return,
                    Some("subscribe") => respond(&request, "success", request["payload"].clone()),
                    _ => respond(&request, "success", contract_answer(&request)),
                };
                socket.send(answer).await.unwrap();
                if index > 0 && request["action"] == "subscribe" {
                    let pet = json!({ "id": 5, "name": "Rex", "photoUrls": [] });
                    socket.send(notify("pet.updated", pet)).await.unwrap();
                }
            }
        }
    })
    .await;

    guarded(async {
        let policy = ReconnectPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(200),
            ..ReconnectPolicy::default()
        };
        // Signed in on the upgrade first, then with a newer token by `authenticate`.
        let options = ClientOptions::default()
            .bearer_token("token-0")
            .reconnect(policy);
        let client = WsClient::connect(&url, options).await.unwrap();
        let mut notifications = client.notifications();
        assert!(client.authenticate("token-1").await.is_ok());
        assert!(
            client
                .subscribe(&[Topic::Pets, Topic::Pet(5)])
                .await
                .is_ok()
        );

        let lost = client.get_pet_by_id(GetPetByIdRequest { pet_id: 5 }).await;
        assert!(matches!(lost, Err(ClientError::ConnectionLost)), "{lost:?}");

        // Sent while reconnecting, or after: either way it goes out after the restore.
        assert!(client.ping().await.is_ok());
        assert_eq!(client.connections(), 2);
        assert!(client.is_connected());
        assert_eq!(
            client.last_close(),
            None,
            "the first connection was dropped abruptly"
        );

        // What each connection saw, in order.
        let mut requests = Vec::new();
        for _ in 0..6 {
            requests.push(restored.recv().await.unwrap());
        }
        let seen: Vec<(usize, Option<&str>, &str)> = requests
            .iter()
            .map(|(connection, request)| {
                (
                    connection.index,
                    connection.authorization.as_deref(),
                    request["action"].as_str().unwrap(),
                )
            })
            .collect();
        // The second upgrade goes without the first one's token, superseded by
        // `authenticate`, and the restore comes before the ping made during the outage.
        assert_eq!(
            seen,
            [
                (0, Some("Bearer token-0"), "authenticate"),
                (0, Some("Bearer token-0"), "subscribe"),
                (0, Some("Bearer token-0"), "getPetById"),
                (1, None, "authenticate"),
                (1, None, "subscribe"),
                (1, None, "ping"),
            ]
        );
        assert_eq!(requests[3].1["payload"], json!({ "token": "token-1" }));
        assert_eq!(
            requests[4].1["payload"],
            json!({ "topics": ["pet:5", "pets"] })
        );

        // Notifications of the new connection reach receivers made before the outage.
        let updated = notifications.recv().await.unwrap();
        assert_eq!(updated.kind(), Some(Event::PetUpdated));
    })
    .await;
}

/// Accepts one connection, reads one request and hangs up without answering.
async fn serve_one_request_then_hang_up(listener: &TcpListener) {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
    let _ = next_request(&mut socket).await;
    drop(socket);
}

/// A server that reads one request on the first connection and hangs up without answering,
/// then hangs up on every connection before the handshake. It keeps its port, so no other
/// test's server can take it over and accept the reconnects.
async fn gone_after_one_request() -> String {
    let (listener, url) = listen().await;
    tokio::spawn(async move {
        serve_one_request_then_hang_up(&listener).await;
        while let Ok((tcp, _)) = listener.accept().await {
            drop(tcp);
        }
    });
    url
}

#[tokio::test]
async fn closing_while_reconnecting_stops_the_retries() {
    let url = gone_after_one_request().await;
    guarded(async {
        // Retries forever, quickly.
        let client = WsClient::connect(&url, ClientOptions::default().reconnect(fast_retries()))
            .await
            .unwrap();
        let mut notifications = client.notifications();
        let lost = client.ping().await;
        assert!(matches!(lost, Err(ClientError::ConnectionLost)), "{lost:?}");
        client.close().await;
        assert!(matches!(client.connected().await, Err(ClientError::Closed)));
        assert!(matches!(client.ping().await, Err(ClientError::Closed)));
        assert!(notifications.recv().await.is_none());
        assert_eq!(client.connections(), 1);
    })
    .await;
}

// The handshake callback's error type is tungstenite's, large or not.
#[allow(clippy::result_large_err)]
#[tokio::test]
async fn reconnecting_stops_when_the_server_refuses_the_credentials() {
    // Serves one request, hangs up, then answers every upgrade with 401.
    let (listener, url) = listen().await;
    let refusals = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = refusals.clone();
    tokio::spawn(async move {
        serve_one_request_then_hang_up(&listener).await;
        while let Ok((tcp, _)) = listener.accept().await {
            let refuse = |_: &Request, _: HandshakeResponse| -> Result<_, ErrorResponse> {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Err(refusal(StatusCode::UNAUTHORIZED, None))
            };
            let _ = tokio_tungstenite::accept_hdr_async(tcp, refuse).await;
        }
    });

    guarded(async {
        // No limit on attempts: only the refusal can end them.
        let options = ClientOptions::default()
            .bearer_token("expired")
            .reconnect(fast_retries());
        let client = WsClient::connect(&url, options).await.unwrap();
        let lost = client.ping().await;
        assert!(matches!(lost, Err(ClientError::ConnectionLost)), "{lost:?}");
        assert!(matches!(client.connected().await, Err(ClientError::Closed)));
        assert_eq!(refusals.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(client.connections(), 1);
    })
    .await;
}

#[tokio::test]
async fn reconnecting_gives_up_after_the_allowed_attempts() {
    let url = gone_after_one_request().await;
    guarded(async {
        let policy = ReconnectPolicy {
            max_attempts: Some(3),
            ..fast_retries()
        };
        let client = WsClient::connect(&url, ClientOptions::default().reconnect(policy))
            .await
            .unwrap();
        assert!(matches!(
            client.ping().await,
            Err(ClientError::ConnectionLost)
        ));
        assert!(matches!(client.connected().await, Err(ClientError::Closed)));
        assert_eq!(client.connections(), 1);
        assert!(matches!(client.ping().await, Err(ClientError::Closed)));
    })
    .await;
}

// ---- the client's own timers, on a paused clock --------------------------------------------

/// Connections through in-memory pipes: each handshake hands the server's end of a fresh pipe
/// to the test, which may serve it, hold it without answering, or drop it (a refused
/// connection). Every attempt is noted with the (paused) time it was made at.
struct Memory {
    pipes: mpsc::UnboundedSender<DuplexStream>,
    attempts: Arc<parking_lot::Mutex<Vec<Instant>>>,
}

impl Memory {
    /// A connector, the receiver of the server ends, and the attempt times.
    fn new() -> (
        Self,
        mpsc::UnboundedReceiver<DuplexStream>,
        Arc<parking_lot::Mutex<Vec<Instant>>>,
    ) {
        let (pipes, accepted) = mpsc::unbounded_channel();
        let attempts = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let connector = Self {
            pipes,
            attempts: attempts.clone(),
        };
        (connector, accepted, attempts)
    }
}

impl Connector for Memory {
    type Stream = DuplexStream;

    async fn handshake(
        &self,
        request: tungstenite::handshake::client::Request,
    ) -> Result<WebSocketStream<DuplexStream>, tungstenite::Error> {
        self.attempts.lock().push(Instant::now());
        let (client, server) = tokio::io::duplex(64 * 1024);
        if self.pipes.send(server).is_err() {
            return Err(tungstenite::Error::ConnectionClosed);
        }
        let (socket, _) = tokio_tungstenite::client_async(request, client).await?;
        Ok(socket)
    }
}

/// The URL the in-memory connections pretend to reach.
const MEMORY_URL: &str = "ws://memory.invalid/api/v3/ws";

#[tokio::test(start_paused = true)]
async fn a_call_without_an_answer_times_out_and_the_next_one_works() {
    let (connector, mut accepted, _) = Memory::new();
    tokio::spawn(async move {
        let Some(pipe) = accepted.recv().await else {
            return;
        };
        let mut socket = tokio_tungstenite::accept_async(pipe).await.unwrap();
        // Ignore the first request, answer the rest.
        let _ = next_request(&mut socket).await;
        echo(&mut socket).await;
    });

    let timeout = Duration::from_millis(300);
    let options = ClientOptions::default().request_timeout(timeout);
    let client = WsClient::connect_with(connector, MEMORY_URL, options)
        .await
        .unwrap();
    let sent = Instant::now();
    let error = client.ping().await.unwrap_err();
    assert!(matches!(error, ClientError::Timeout), "{error:?}");
    let waited = sent.elapsed();
    assert!(
        waited >= timeout && waited < timeout + Duration::from_millis(5),
        "timed out after {waited:?}"
    );
    assert!(client.ping().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_handshake_that_never_completes_fails_at_the_connect_timeout() {
    let (connector, mut accepted, _) = Memory::new();
    // Holds the server's end open and never answers the upgrade.
    let held = tokio::spawn(async move { accepted.recv().await });

    let timeout = Duration::from_secs(2);
    let started = Instant::now();
    let options = ClientOptions::default().connect_timeout(timeout);
    let error = WsClient::connect_with(connector, MEMORY_URL, options)
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::ConnectTimeout), "{error:?}");
    let waited = started.elapsed();
    assert!(
        waited >= timeout && waited < timeout + Duration::from_millis(5),
        "gave up after {waited:?}"
    );
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn reconnect_attempts_back_off_exponentially_up_to_the_max_then_give_up() {
    let (connector, mut accepted, attempts) = Memory::new();
    tokio::spawn(async move {
        // The first connection reads one request and hangs up; every later one is refused
        // (its pipe dropped before the upgrade).
        if let Some(pipe) = accepted.recv().await {
            let mut socket = tokio_tungstenite::accept_async(pipe).await.unwrap();
            let _ = next_request(&mut socket).await;
        }
        while let Some(pipe) = accepted.recv().await {
            drop(pipe);
        }
    });

    let policy = ReconnectPolicy {
        initial: Duration::from_millis(100),
        factor: 2.0,
        max: Duration::from_secs(1),
        jitter: 0.0,
        max_attempts: Some(5),
    };
    let options = ClientOptions::default().reconnect(policy);
    let client = WsClient::connect_with(connector, MEMORY_URL, options)
        .await
        .unwrap();
    let lost = client.ping().await;
    assert!(matches!(lost, Err(ClientError::ConnectionLost)), "{lost:?}");
    let lost_at = Instant::now();
    assert!(matches!(client.connected().await, Err(ClientError::Closed)));
    assert_eq!(client.connections(), 1);

    // The first attempt is the connection itself; the reconnects follow it 100, 200, 400,
    // 800 and 1000 (the max) ms apart, counted from the loss.
    let attempts = attempts.lock().clone();
    assert_eq!(attempts.len(), 6, "{attempts:?}");
    let mut previous = lost_at;
    for (attempt, expected) in attempts[1..].iter().zip([100, 200, 400, 800, 1000]) {
        let gap = attempt.duration_since(previous);
        let expected = Duration::from_millis(expected);
        assert!(
            gap >= expected && gap < expected + Duration::from_millis(5),
            "{gap:?} instead of {expected:?} before an attempt"
        );
        previous = *attempt;
    }
}

#[tokio::test]
async fn closing_ends_every_clone_with_a_normal_close() {
    let (closes, mut closed) = mpsc::unbounded_channel();
    let url = server(move |_, mut socket| {
        let closes = closes.clone();
        async move {
            while let Some(Ok(message)) = socket.next().await {
                match message {
                    Message::Close(frame) => {
                        let _ = closes.send(frame.map(|frame| u16::from(frame.code)));
                    }
                    Message::Text(text) => {
                        let request: Value = serde_json::from_str(text.as_str()).unwrap();
                        socket
                            .send(respond(&request, "success", contract_answer(&request)))
                            .await
                            .unwrap();
                    }
                    _ => {}
                }
            }
        }
    })
    .await;

    guarded(async {
        // Explicitly.
        let client = connect(&url).await;
        let clone = client.clone();
        assert!(clone.ping().await.is_ok());
        client.close().await;
        assert_eq!(closed.recv().await.unwrap(), Some(1000));
        assert!(matches!(clone.ping().await, Err(ClientError::Closed)));
        assert!(!clone.is_connected());

        // By dropping the last handle.
        let client = connect(&url).await;
        let clone = client.clone();
        drop(client);
        assert!(clone.ping().await.is_ok());
        drop(clone);
        assert_eq!(closed.recv().await.unwrap(), Some(1000));
    })
    .await;
}
/// A valid pet without an id, as `addPet` takes it.
fn pet(name: &str) -> Pet {
    Pet {
        id: None,
        name: name.to_owned(),
        category: None,
        photo_urls: Vec::new(),
        tags: None,
        status: Some(PetStatus::Available),
    }
}

#[tokio::test]
async fn typed_calls_send_the_request_struct_and_read_the_documented_success_type() {
    let (seen, mut requests) = mpsc::unbounded_channel();
    let url = server(move |_, mut socket| {
        let seen = seen.clone();
        async move {
            while let Some(request) = next_request(&mut socket).await {
                seen.send(request.clone()).unwrap();
                let payload = match request["action"].as_str() {
                    Some("addPet") => {
                        let mut pet = request["payload"]["body"].clone();
                        pet["id"] = json!(7);
                        pet
                    }
                    Some("deletePet") => Value::Null,
                    Some("getPetImage") => {
                        json!({ "contentType": "image/png", "data": "iVBORw==" })
                    }
                    // A pet without its required name: not what `getPetById` answers.
                    _ => json!({ "id": 1, "photoUrls": [] }),
                };
                socket
                    .send(respond(&request, "success", payload))
                    .await
                    .unwrap();
            }
        }
    })
    .await;

    guarded(async {
        let client = connect(&url).await;
        let added = client
            .add_pet(AddPetRequest { body: pet("Rex") })
            .await
            .unwrap();
        assert_eq!(added.id, Some(7));
        assert_eq!(added.name, "Rex");
        client
            .delete_pet(DeletePetRequest { pet_id: 7 })
            .await
            .unwrap();
        let image_id = Uuid::new_v4();
        let image = client
            .get_pet_image(GetPetImageRequest {
                pet_id: 7,
                image_id,
            })
            .await
            .unwrap();
        assert_eq!(image.content_type, "image/png");
        assert_eq!(&image.data[..], b"\x89PNG");

        let error = client
            .get_pet_by_id(GetPetByIdRequest { pet_id: 1 })
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                ClientError::Payload {
                    action: "getPetById",
                    ..
                }
            ),
            "{error:?}"
        );

        // The payloads are the request structs' serialized form: parameters by wire name and
        // the body as `body`.
        let mut sent = Vec::new();
        for _ in 0..4 {
            let request = requests.recv().await.unwrap();
            sent.push((request["action"].clone(), request["payload"].clone()));
        }
        assert_eq!(
            sent,
            [
                (
                    json!("addPet"),
                    json!({ "body": { "name": "Rex", "photoUrls": [], "status": "available" } })
                ),
                (json!("deletePet"), json!({ "petId": 7 })),
                (
                    json!("getPetImage"),
                    json!({ "petId": 7, "imageId": image_id.to_string() })
                ),
                (json!("getPetById"), json!({ "petId": 1 })),
            ]
        );
    })
    .await;
}
