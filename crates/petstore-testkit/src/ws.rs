//! WebSocket helpers for the black-box suites: the endpoint's URL, the typed client
//! (`petstore-client`) and what a test asserts about its answers, raw sockets for frames the
//! typed client would never send, and the session count of `/health`.
//!
//! Raw sockets ([`RawSocket`]) are plain tokio-tungstenite streams: a test drives them frame by
//! frame, so it decides exactly what goes on the wire and when it reads.

use std::{future::Future, time::Duration};

use futures_util::{SinkExt, StreamExt};
use petstore_api::ws::WS_PATH;
use petstore_client::{ClientError, ClientOptions, ErrorDetails, ErrorPayload, Reply, WsClient};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue},
};
use uuid::Uuid;

use crate::app::{ADMIN_API_KEY, TestApp, ok_json, send};

/// Longest any single step of a WebSocket test may take before it counts as hung. Every
/// deadline under test is a fraction of this: it guards against hangs, it measures nothing.
pub const HANG_GUARD: Duration = Duration::from_secs(10);

/// A client-side socket driven frame by frame.
pub type RawSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Awaits `future`, failing the test with `what` if it takes longer than [`HANG_GUARD`].
pub async fn guard<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(HANG_GUARD, future).await {
        Ok(output) => output,
        Err(_) => panic!("hung: {what} (nothing after {HANG_GUARD:?})"),
    }
}

impl TestApp {
    /// `ws://127.0.0.1:PORT/api/v3/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{WS_PATH}", self.addr)
    }

    /// Connects the typed client with `options`; the upgrade may be refused.
    pub async fn ws_try_connect(&self, options: ClientOptions) -> Result<WsClient, ClientError> {
        guard(
            "connecting the WebSocket client",
            WsClient::connect(&self.ws_url(), options),
        )
        .await
    }

    /// Connects the typed client without credentials; the upgrade must succeed.
    pub async fn ws_connect(&self) -> WsClient {
        self.ws_connect_with(ClientOptions::default()).await
    }

    /// Connects the typed client with `options`; the upgrade must succeed.
    pub async fn ws_connect_with(&self, options: ClientOptions) -> WsClient {
        match self.ws_try_connect(options).await {
            Ok(client) => client,
            Err(error) => panic!("the WebSocket upgrade failed: {error}"),
        }
    }

    /// Upgrades a raw socket, sending `headers` with the upgrade request.
    pub async fn ws_raw_try_connect(
        &self,
        headers: &[(&'static str, &str)],
    ) -> Result<RawSocket, tungstenite::Error> {
        let mut request = self.ws_url().into_client_request()?;
        for (name, value) in headers {
            let value = match HeaderValue::from_str(value) {
                Ok(value) => value,
                Err(error) => panic!("{name}: {value:?} is not a header value: {error}"),
            };
            request.headers_mut().insert(*name, value);
        }
        guard(
            "the raw WebSocket upgrade",
            tokio_tungstenite::connect_async(request),
        )
        .await
        .map(|(socket, _)| socket)
    }

    /// Upgrades a raw socket with `headers`; the upgrade must succeed.
    pub async fn ws_raw_connect(&self, headers: &[(&'static str, &str)]) -> RawSocket {
        match self.ws_raw_try_connect(headers).await {
            Ok(socket) => socket,
            Err(error) => panic!("the raw WebSocket upgrade failed: {error}"),
        }
    }

    /// Upgrades a raw socket authenticated as the admin service key (`api_key` on the upgrade).
    pub async fn ws_raw_connect_admin(&self) -> RawSocket {
        self.ws_raw_connect(&[("api_key", ADMIN_API_KEY)]).await
    }

    /// Like [`TestApp::ws_raw_connect_admin`], over a TCP connection whose receive buffer is
    /// fixed at `receive_buffer` bytes (the kernel's autotuning would let it grow to megabytes),
    /// so that a client that stops reading backs up the server's writes soon.
    pub async fn ws_raw_connect_admin_narrow(&self, receive_buffer: u32) -> RawSocket {
        let socket = match TcpSocket::new_v4() {
            Ok(socket) => socket,
            Err(error) => panic!("cannot create a TCP socket: {error}"),
        };
        if let Err(error) = socket.set_recv_buffer_size(receive_buffer) {
            panic!("cannot set the receive buffer: {error}");
        }
        let stream = match guard("connecting", socket.connect(self.addr)).await {
            Ok(stream) => stream,
            Err(error) => panic!("cannot connect to {}: {error}", self.addr),
        };
        let mut request = match self.ws_url().into_client_request() {
            Ok(request) => request,
            Err(error) => panic!("cannot build the upgrade request: {error}"),
        };
        request
            .headers_mut()
            .insert("api_key", HeaderValue::from_static(ADMIN_API_KEY));
        let upgrade = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream));
        match guard("the raw WebSocket upgrade", upgrade).await {
            Ok((socket, _)) => socket,
            Err(error) => panic!("the raw WebSocket upgrade failed: {error}"),
        }
    }

    /// Creates a customer and starts a session for it; returns the access and refresh tokens.
    pub async fn customer_tokens(&self, username: &str, password: &str) -> (String, String) {
        self.create_user(username, password).await;
        self.create_token(username, password).await
    }

    /// `connections` of `/health`: open WebSocket sessions, and of those authenticated.
    pub async fn ws_sessions(&self) -> (u64, u64) {
        let health = ok_json(send(self.anonymous.get(self.url("/health"))).await).await;
        let count = |name: &str| match health["connections"][name].as_u64() {
            Some(count) => count,
            None => panic!("no connections.{name} in /health: {health}"),
        };
        (count("active"), count("authenticated"))
    }

    /// Waits until `/health` counts `open` WebSocket sessions (within [`HANG_GUARD`]).
    pub async fn wait_for_ws_sessions(&self, open: u64) {
        guard(&format!("waiting for {open} open sessions"), async {
            while self.ws_sessions().await.0 != open {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A request envelope with a fresh correlation id; returns the id and the frame's text.
pub fn request(action: &str, payload: Value) -> (String, String) {
    let id = Uuid::new_v4().to_string();
    let text = json!({
        "type": "request",
        "correlationId": id,
        "timestamp": now_ms(),
        "action": action,
        "payload": payload,
    })
    .to_string();
    (id, text)
}

/// Queues a text frame without flushing (several frames then leave in one write).
pub async fn feed_text(socket: &mut RawSocket, text: impl Into<String>) {
    if let Err(error) = socket.feed(Message::text(text.into())).await {
        panic!("cannot queue a frame: {error}");
    }
}

/// Sends everything queued by [`feed_text`].
pub async fn flush(socket: &mut RawSocket) {
    if let Err(error) = guard("flushing frames", socket.flush()).await {
        panic!("cannot send frames: {error}");
    }
}

/// Sends one frame.
pub async fn send_frame(socket: &mut RawSocket, message: Message) {
    if let Err(error) = guard("sending a frame", socket.send(message)).await {
        panic!("cannot send a frame: {error}");
    }
}

/// The next text frame as JSON, skipping control frames; anything else fails the test.
pub async fn next_json(socket: &mut RawSocket) -> Value {
    guard("waiting for a text frame", async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => match serde_json::from_str(text.as_str()) {
                    Ok(value) => return value,
                    Err(error) => panic!("a text frame that is not JSON ({error}): {text}"),
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(other)) => panic!("expected a text frame, got {other:?}"),
                Some(Err(error)) => panic!("the socket failed while reading: {error}"),
                None => panic!("the socket ended while a text frame was expected"),
            }
        }
    })
    .await
}

/// The next response envelope, skipping notifications and control frames.
pub async fn next_response(socket: &mut RawSocket) -> Value {
    loop {
        let frame = next_json(socket).await;
        if frame["type"] == "response" {
            return frame;
        }
        assert_eq!(frame["type"], "notification", "unexpected frame {frame}");
    }
}

/// Sends a request and returns its response (the next response must be it).
pub async fn round_trip(socket: &mut RawSocket, action: &str, payload: Value) -> Value {
    let (id, text) = request(action, payload);
    send_frame(socket, Message::text(text)).await;
    let response = next_response(socket).await;
    assert_eq!(response["correlationId"], json!(id), "{response}");
    response
}

/// How a raw socket ended.
#[derive(Debug)]
pub enum Ending {
    /// A close frame with this code and reason.
    Closed(u16, String),
    /// The stream ended or failed without a readable close frame.
    Gone(String),
}

/// Reads until the socket ends, discarding other frames, and returns how it ended. After a
/// close frame it keeps reading until the end of the stream, so that tungstenite answers the
/// close and the server sees a complete closing handshake.
pub async fn read_until_closed(socket: &mut RawSocket) -> Ending {
    guard("waiting for the socket to close", async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => {
                    while let Some(Ok(_)) = socket.next().await {}
                    return match frame {
                        Some(frame) => {
                            Ending::Closed(frame.code.into(), frame.reason.as_str().to_owned())
                        }
                        None => Ending::Gone("a close frame without a code".to_owned()),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Ending::Gone(error.to_string()),
                None => return Ending::Gone("end of stream".to_owned()),
            }
        }
    })
    .await
}

/// The HTTP status of a refused upgrade; an upgrade that succeeded or failed otherwise fails
/// the test.
pub fn refused_status(result: Result<RawSocket, tungstenite::Error>) -> u16 {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(error) => panic!("the upgrade failed without an HTTP answer: {error}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

/// Asserts a success response envelope answering `id`; returns its payload.
pub fn success_payload(response: &Value, id: &str) -> Value {
    assert_eq!(response["type"], "response", "{response}");
    assert_eq!(response["correlationId"], json!(id), "{response}");
    assert_eq!(response["status"], "success", "{response}");
    assert!(response["timestamp"].is_i64(), "{response}");
    response["payload"].clone()
}

/// Asserts an error response envelope with this `code` and `status`; returns its payload.
pub fn error_payload(response: &Value, code: &str, status: u16) -> Value {
    assert_eq!(response["type"], "response", "{response}");
    assert_eq!(response["status"], "error", "{response}");
    assert!(response["timestamp"].is_i64(), "{response}");
    let payload = &response["payload"];
    assert_eq!(payload["code"], json!(code), "{response}");
    assert_eq!(payload["status"], json!(status), "{response}");
    assert!(
        payload["message"].as_str().is_some_and(|m| !m.is_empty()),
        "an error without a message: {response}"
    );
    payload.clone()
}

/// Asserts a raw call's reply is the error `code` with `status`; returns its details.
pub fn reply_error(reply: &Reply, code: &str, status: u16) -> ErrorDetails {
    match reply {
        Reply::Error(error) => {
            assert_refusal(error, code, status);
            error.details.clone()
        }
        Reply::Success(_) => panic!("expected {code}, got a success: {reply:?}"),
    }
}

/// Asserts a raw call's reply is a success; returns its payload.
pub fn reply_success(reply: &Reply) -> Value {
    match reply {
        Reply::Success(payload) => payload.clone(),
        Reply::Error(_) => panic!("expected a success, got {reply:?}"),
    }
}

/// A call of the client that must be answered with a success (or, for a raw call, with any
/// well-formed response); returns what it answered.
pub async fn answered<T>(call: impl Future<Output = Result<T, ClientError>>) -> T {
    match guard("waiting for a response", call).await {
        Ok(answer) => answer,
        Err(error) => panic!("the call did not succeed: {error}"),
    }
}

/// A typed call that must be refused with the error `code` and `status`; returns the error
/// payload.
pub async fn refused<T: std::fmt::Debug>(
    call: impl Future<Output = Result<T, ClientError>>,
    code: &str,
    status: u16,
) -> ErrorPayload {
    match guard("waiting for a response", call).await {
        Err(error) => refusal(&error, code, status).clone(),
        Ok(answer) => panic!("expected {code}, got a success: {answer:?}"),
    }
}

/// Asserts the error of a typed call is the server's refusal with `code`, `status` and a
/// message; returns the error payload.
pub fn refusal<'a>(error: &'a ClientError, code: &str, status: u16) -> &'a ErrorPayload {
    match error {
        ClientError::Api(payload) => {
            assert_refusal(payload, code, status);
            payload
        }
        other => panic!("expected {code}, the call failed: {other}"),
    }
}

/// Asserts a call got no answer: the connection went away (or the call timed out) before a
/// response arrived. A success or a refusal fails the test.
pub fn unanswered<T: std::fmt::Debug>(outcome: Result<T, ClientError>, what: &str) {
    match outcome {
        Ok(answer) => panic!("{what} was answered: {answer:?}"),
        Err(error @ (ClientError::Api(_) | ClientError::Payload { .. })) => {
            panic!("{what} was answered: {error:?}")
        }
        Err(_) => {}
    }
}

/// Asserts an error payload has this `code` and `status` and a message.
fn assert_refusal(error: &ErrorPayload, code: &str, status: u16) {
    assert_eq!(error.code, code, "{error:?}");
    assert_eq!(error.status, status, "{error:?}");
    assert!(
        !error.message.is_empty(),
        "an error without a message: {error:?}"
    );
}
