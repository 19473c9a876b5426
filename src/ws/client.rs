//! A typed client for the WebSocket endpoint, for the tests, the benches and users of the crate.
//!
//! One background task owns the socket. Calls hand it a request over a channel together with a
//! oneshot for the answer, and the task matches responses to calls by `correlationId`, so any
//! number of calls may be in flight at once from clones of one [`WsClient`] and the server may
//! answer them in any order. Notifications go to every [`Notifications`] receiver.
//!
//! A call never hangs: it resolves with the response, with [`ClientError::ConnectionLost`] when the
//! connection goes away first, or with [`ClientError::Timeout`] after the request timeout.
//!
//! Reconnecting is off by default, because many tests want to see the server close the
//! connection. When a [`ReconnectPolicy`] is set, a lost connection is reopened with exponential
//! backoff and the session is restored before any further call goes out: `authenticate` with the
//! last token that was accepted, then `subscribe` to the topics currently subscribed.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use petstore_api::ws::{Action, Event};

/// Requests the socket task may have queued before callers wait for room.
const COMMAND_BUFFER: usize = 1024;

/// Requests written to the socket before one flush, so that many concurrent calls share a
/// write instead of paying one system call each.
const MAX_BATCH: usize = 64;

/// The most topics one `subscribe` may carry (`TopicsPayload` in `asyncapi.yaml`); a restore
/// splits larger sets.
const MAX_TOPICS_PER_REQUEST: usize = 50;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a call or a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL or the upgrade request could not be built.
    #[error("invalid WebSocket request: {0}")]
    InvalidRequest(String),
    /// A header configured in [`ClientOptions`] is not a valid header value.
    #[error("invalid value for the {0} header")]
    InvalidHeader(&'static str),
    /// The server answered the upgrade with an HTTP error instead of switching protocols.
    #[error("the server refused the upgrade with HTTP {status}")]
    Rejected {
        /// The HTTP status, e.g. 403 for a forbidden origin.
        status: u16,
        /// The response body, if there was one.
        body: Option<String>,
    },
    /// The TCP connection or the WebSocket handshake failed.
    #[error("could not connect: {0}")]
    Connect(#[source] Box<tungstenite::Error>),
    /// The handshake did not finish within the connect timeout.
    #[error("the WebSocket handshake timed out")]
    ConnectTimeout,
    /// No response arrived within the request timeout.
    #[error("no response within the request timeout")]
    Timeout,
    /// The connection went away while the call was queued or in flight.
    #[error("the connection was lost before the response arrived")]
    ConnectionLost,
    /// The client was closed, or lost its connection and does not reconnect.
    #[error("the client is closed")]
    Closed,
    /// The answer to a call was not a well-formed response envelope.
    #[error("malformed response: {0}")]
    Protocol(String),
    /// The request could not be encoded as JSON.
    #[error("could not encode the request: {0}")]
    Encode(#[from] serde_json::Error),
}

impl ClientError {
    /// Whether trying the same upgrade again cannot succeed: refused for a reason other than
    /// load or time (401 credentials, 403 origin, 404 path), or not a valid request at all.
    fn is_permanent(&self) -> bool {
        match self {
            Self::Rejected { status, .. } => {
                (400..500).contains(status) && !matches!(status, 408 | 429)
            }
            Self::InvalidRequest(_) | Self::InvalidHeader(_) => true,
            _ => false,
        }
    }

    fn from_handshake(error: tungstenite::Error) -> Self {
        match error {
            tungstenite::Error::Http(response) => Self::Rejected {
                status: response.status().as_u16(),
                body: response
                    .body()
                    .as_deref()
                    .map(|body| String::from_utf8_lossy(body).into_owned()),
            },
            tungstenite::Error::Url(error) => Self::InvalidRequest(error.to_string()),
            tungstenite::Error::HttpFormat(error) => Self::InvalidRequest(error.to_string()),
            other => Self::Connect(Box::new(other)),
        }
    }
}

/// How to retry a lost connection: exponential backoff with jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// The delay before the first attempt.
    pub initial: Duration,
    /// What each failed attempt multiplies the delay by; below 1 counts as 1.
    pub factor: f64,
    /// The longest delay between attempts.
    pub max: Duration,
    /// The fraction of a delay that is randomly taken off, in `0..=1`, so that many clients
    /// dropped at once by a restarting server do not all come back in the same instant.
    pub jitter: f64,
    /// Give up after this many failed attempts in a row; `None` retries for as long as the
    /// client is alive.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            factor: 2.0,
            max: Duration::from_secs(5),
            jitter: 0.2,
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// The delay before attempt number `attempt` (0 for the first), with `random` as the
    /// source of jitter. Never longer than [`max`](Self::max), and never panics on odd values.
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let factor = if self.factor.is_finite() {
            self.factor.max(1.0)
        } else {
            1.0
        };
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX).min(1024);
        let max = self.max.as_secs_f64();
        let base = (self.initial.as_secs_f64() * factor.powi(exponent)).min(max);
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        // The top 53 bits as a fraction in [0, 1).
        let unit = (random >> 11) as f64 / (1u64 << 53) as f64;
        Duration::try_from_secs_f64(base * (1.0 - jitter * unit)).unwrap_or(self.max)
    }
}

/// How to connect, and how long to wait.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    bearer_token: Option<String>,
    origin: Option<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
    reconnect: Option<ReconnectPolicy>,
    notification_buffer: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            bearer_token: None,
            origin: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            reconnect: None,
            notification_buffer: 256,
        }
    }
}

impl ClientOptions {
    /// Sends `Authorization: Bearer <token>` with the upgrade request, and with reconnects
    /// until a token from [`WsClient::authenticate`] or [`WsClient::refresh`] supersedes it.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Sends an `Origin` header with the upgrade request, as a browser would.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// How long the TCP connect and the WebSocket handshake may take together.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a call waits for its response, including time spent queued while reconnecting.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Reconnects lost connections with this policy; off by default.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = Some(policy);
        self
    }

    /// Notifications kept for a slow [`Notifications`] receiver before it starts missing the
    /// oldest ones.
    pub fn notification_buffer(mut self, notifications: usize) -> Self {
        self.notification_buffer = notifications.max(1);
        self
    }
}

/// The close frame that ended a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code, e.g. 1008 (policy), 1009 (too big), 1013 (try again later), 1001 (going
    /// away).
    pub code: u16,
    /// The reason text.
    pub reason: String,
}

impl From<CloseFrame> for CloseInfo {
    fn from(frame: CloseFrame) -> Self {
        Self {
            code: frame.code.into(),
            reason: frame.reason.as_str().to_owned(),
        }
    }
}

/// The outcome of a call, as the server's response envelope states it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `"status": "success"` and its payload.
    Success(Value),
    /// `"status": "error"` and the fields of its error payload.
    Error {
        /// The error code, e.g. `VALIDATION_ERROR`.
        code: String,
        /// The human-readable message.
        message: String,
        /// The matching HTTP status, e.g. 422.
        status: u16,
        /// `null`, a list of `{path, message}`, or `{retryAfter}`.
        details: Value,
    },
}

impl Reply {
    /// The success payload, if this is a success.
    pub fn success(&self) -> Option<&Value> {
        match self {
            Self::Success(payload) => Some(payload),
            Self::Error { .. } => None,
        }
    }

    /// The error code, if this is an error.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Self::Success(_) => None,
            Self::Error { code, .. } => Some(code),
        }
    }

    /// Whether this is a success.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Success(_))
    }
}

/// A response envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The `correlationId` echoed from the request; absent when the server could not read one.
    pub correlation_id: Option<String>,
    /// The server's `timestamp` in milliseconds since the Unix epoch.
    pub timestamp: Option<u64>,
    /// The outcome.
    pub reply: Reply,
}

/// A notification envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The event name, e.g. `pet.created`; kept as text so that events this build does not know
    /// still arrive.
    pub event: String,
    /// The notification's own `correlationId`.
    pub correlation_id: Option<String>,
    /// The server's `timestamp` in milliseconds since the Unix epoch.
    pub timestamp: Option<u64>,
    /// The event payload.
    pub payload: Value,
}

impl Notification {
    /// The event as the typed enum, if this build knows it.
    pub fn kind(&self) -> Option<Event> {
        Event::from_name(&self.event)
    }
}

/// What [`WsClient::call_raw`] got back.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A well-formed response envelope.
    Response(Response),
    /// A text frame that is not a well-formed response or notification envelope.
    Text(String),
    /// A binary frame.
    Binary(Bytes),
}

/// The receiving end of the notifications of one client.
///
/// Each receiver sees the notifications that arrive after it was created. One that falls more
/// than the notification buffer behind skips the oldest ones and counts them in
/// [`missed`](Self::missed), so a forgotten receiver can never grow without bound.
#[derive(Debug)]
pub struct Notifications {
    receiver: broadcast::Receiver<Notification>,
    missed: u64,
}

impl Notifications {
    /// The next notification, or `None` once the client is closed for good.
    pub async fn recv(&mut self) -> Option<Notification> {
        loop {
            match self.receiver.recv().await {
                Ok(notification) => return Some(notification),
                Err(broadcast::error::RecvError::Lagged(skipped)) => self.missed += skipped,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next notification if one has already arrived.
    pub fn try_recv(&mut self) -> Option<Notification> {
        loop {
            match self.receiver.try_recv() {
                Ok(notification) => return Some(notification),
                Err(broadcast::error::TryRecvError::Lagged(skipped)) => self.missed += skipped,
                Err(_) => return None,
            }
        }
    }

    /// Notifications skipped because this receiver fell behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

/// A connection to the WebSocket endpoint. Cheap to clone; clones share the connection, and
/// it is closed when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct WsClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::Sender<Command>,
    session: Arc<Mutex<SessionState>>,
    status: watch::Receiver<Status>,
    notifications: broadcast::WeakSender<Notification>,
    /// Asks the socket task to close, also while it is reconnecting and not reading commands.
    shutdown: Arc<Notify>,
    request_timeout: Duration,
}

/// What the client restores after a reconnect.
#[derive(Debug, Default)]
struct SessionState {
    token: Option<String>,
    topics: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
struct Status {
    connected: bool,
    connections: u64,
    last_close: Option<CloseInfo>,
    finished: bool,
}

#[derive(Debug)]
enum Command {
    /// A typed request, answered by the response with this correlation id.
    Call {
        correlation_id: String,
        text: String,
        reply: oneshot::Sender<Inbound>,
    },
    /// Arbitrary text, answered by the response carrying `key` if there is one, else by the next
    /// frame no one else is waiting for.
    Raw {
        key: Option<String>,
        text: String,
        reply: oneshot::Sender<Inbound>,
    },
}

impl WsClient {
    /// Connects to `url` (`ws://host:port/api/v3/ws`).
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Self, ClientError> {
        let socket = open(url, &options, options.bearer_token.as_deref()).await?;
        let (commands, command_receiver) = mpsc::channel(COMMAND_BUFFER);
        let (notifications, _) = broadcast::channel(options.notification_buffer);
        let (status, status_receiver) = watch::channel(Status {
            connected: true,
            connections: 1,
            ..Status::default()
        });
        let session = Arc::new(Mutex::new(SessionState::default()));
        let shutdown = Arc::new(Notify::new());
        let inner = Inner {
            commands,
            session: session.clone(),
            status: status_receiver,
            notifications: notifications.downgrade(),
            shutdown: shutdown.clone(),
            request_timeout: options.request_timeout,
        };
        let driver = Driver {
            url: url.to_owned(),
            options,
            session,
            commands: command_receiver,
            notifications,
            shutdown,
            status,
            random: Uuid::new_v4().as_u64_pair().0 | 1,
        };
        tokio::spawn(driver.run(socket));
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Sends `action` with `payload` and waits for its response.
    pub async fn call(&self, action: Action, payload: Value) -> Result<Reply, ClientError> {
        let correlation_id = Uuid::new_v4().to_string();
        let text = request_text(&correlation_id, now_ms(), action.as_str(), &payload)?;
        let (reply, answer) = oneshot::channel();
        let command = Command::Call {
            correlation_id,
            text,
            reply,
        };
        match self.exchange(command, answer).await? {
            Inbound::Response(response) => Ok(response.reply),
            Inbound::Text(text) => Err(ClientError::Protocol(text)),
            Inbound::Binary(_) => Err(ClientError::Protocol("a binary frame".to_owned())),
        }
    }

    /// Sends `text` as a text frame as it is, for tests of malformed or hostile input, and
    /// returns what answers it: the response carrying the frame's `correlationId` if the frame
    /// has one and the server echoes it, otherwise the next response or other frame that no
    /// call is waiting for. Notifications are not answers; they go to [`Self::notifications`].
    pub async fn call_raw(&self, text: impl Into<String>) -> Result<Inbound, ClientError> {
        let text = text.into();
        let key = serde_json::from_str::<Value>(&text).ok().and_then(|value| {
            value
                .get("correlationId")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let (reply, answer) = oneshot::channel();
        self.exchange(Command::Raw { key, text, reply }, answer)
            .await
    }

    /// `authenticate` with an access token; remembered for reconnects once the server accepts
    /// it.
    pub async fn authenticate(&self, token: &str) -> Result<Reply, ClientError> {
        let reply = self
            .call(Action::Authenticate, authenticate_payload(token))
            .await?;
        if reply.is_success() {
            self.inner.session.lock().token = Some(token.to_owned());
        }
        Ok(reply)
    }

    /// `refresh`: trades a refresh token for new tokens, and keeps the session (and later
    /// reconnects) on the new access token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Reply, ClientError> {
        let reply = self
            .call(Action::Refresh, json!({ "refreshToken": refresh_token }))
            .await?;
        if let Some(token) = reply
            .success()
            .and_then(|tokens| tokens.get("accessToken"))
            .and_then(Value::as_str)
        {
            self.inner.session.lock().token = Some(token.to_owned());
        }
        Ok(reply)
    }

    /// `subscribe` to topics (`pets`, `pet:5`, `orders`, `order:7`, `inventory`); remembered
    /// for reconnects once the server accepts them.
    pub async fn subscribe(&self, topics: &[&str]) -> Result<Reply, ClientError> {
        let reply = self.call(Action::Subscribe, topics_payload(topics)).await?;
        if reply.is_success() {
            let mut session = self.inner.session.lock();
            session
                .topics
                .extend(topics.iter().map(|topic| (*topic).to_owned()));
        }
        Ok(reply)
    }

    /// `unsubscribe` from topics.
    pub async fn unsubscribe(&self, topics: &[&str]) -> Result<Reply, ClientError> {
        let reply = self
            .call(Action::Unsubscribe, topics_payload(topics))
            .await?;
        if reply.is_success() {
            let mut session = self.inner.session.lock();
            for topic in topics {
                session.topics.remove(*topic);
            }
        }
        Ok(reply)
    }

    /// `ping`.
    pub async fn ping(&self) -> Result<Reply, ClientError> {
        self.call(Action::Ping, json!({})).await
    }

    /// A receiver of the notifications that arrive from now on.
    pub fn notifications(&self) -> Notifications {
        let receiver = match self.inner.notifications.upgrade() {
            Some(sender) => sender.subscribe(),
            // The client is closed for good: a receiver that reports the end at once.
            None => broadcast::channel(1).1,
        };
        Notifications {
            receiver,
            missed: 0,
        }
    }

    /// The topics the client is subscribed to, as the server accepted them.
    pub fn topics(&self) -> Vec<String> {
        self.inner.session.lock().topics.iter().cloned().collect()
    }

    /// Whether the client is connected right now.
    pub fn is_connected(&self) -> bool {
        self.inner.status.borrow().connected
    }

    /// How many connections the client has opened: 1, plus one per successful reconnect.
    pub fn connections(&self) -> u64 {
        self.inner.status.borrow().connections
    }

    /// The close frame of the last disconnect, if the server sent one.
    pub fn last_close(&self) -> Option<CloseInfo> {
        self.inner.status.borrow().last_close.clone()
    }

    /// Waits until the current connection is gone, and returns its close frame if the server
    /// sent one.
    pub async fn closed(&self) -> Option<CloseInfo> {
        let mut status = self.inner.status.clone();
        // The socket task marks the connection gone before it stops, so the value seen when
        // the channel closes is final either way.
        let _ = status.wait_for(|status| !status.connected).await;
        let status = status.borrow();
        status.last_close.clone()
    }

    /// Waits until the client is connected, e.g. again after a reconnect. Fails with
    /// [`ClientError::Closed`] when it has given up.
    pub async fn connected(&self) -> Result<(), ClientError> {
        let mut status = self.inner.status.clone();
        match status
            .wait_for(|status| status.connected || status.finished)
            .await
        {
            Ok(status) if status.connected => Ok(()),
            _ => Err(ClientError::Closed),
        }
    }

    /// Closes the connection with 1000 (normal closure) for every clone, and stops
    /// reconnecting. Calls still waiting fail with [`ClientError::ConnectionLost`].
    pub async fn close(&self) {
        // `notify_one` keeps the signal if the task is busy, so it cannot be missed.
        self.inner.shutdown.notify_one();
        let mut status = self.inner.status.clone();
        let _ = status.wait_for(|status| status.finished).await;
    }

    /// Hands a request to the socket task and waits for its answer, within the request timeout.
    async fn exchange(
        &self,
        command: Command,
        answer: oneshot::Receiver<Inbound>,
    ) -> Result<Inbound, ClientError> {
        let exchange = async {
            self.inner
                .commands
                .send(command)
                .await
                .map_err(|_| ClientError::Closed)?;
            answer.await.map_err(|_| ClientError::ConnectionLost)
        };
        // A call that times out leaves its waiter behind; the router notices the dropped
        // receiver and forgets it (see `Router::prune`).
        tokio::time::timeout(self.inner.request_timeout, exchange)
            .await
            .unwrap_or(Err(ClientError::Timeout))
    }
}

/// Opens a connection with the configured headers, and `bearer` as the credentials.
async fn open(
    url: &str,
    options: &ClientOptions,
    bearer: Option<&str>,
) -> Result<Socket, ClientError> {
    let mut request = url
        .into_client_request()
        .map_err(ClientError::from_handshake)?;
    if let Some(token) = bearer {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ClientError::InvalidHeader("Authorization"))?;
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    if let Some(origin) = &options.origin {
        let value =
            HeaderValue::from_str(origin).map_err(|_| ClientError::InvalidHeader("Origin"))?;
        request.headers_mut().insert(header::ORIGIN, value);
    }
    let (socket, _) = tokio::time::timeout(
        options.connect_timeout,
        tokio_tungstenite::connect_async(request),
    )
    .await
    .map_err(|_| ClientError::ConnectTimeout)?
    .map_err(ClientError::from_handshake)?;
    Ok(socket)
}

/// Milliseconds since the Unix epoch, for the envelope's `timestamp`.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The `authenticate` payload.
fn authenticate_payload(token: &str) -> Value {
    json!({ "token": token })
}

/// The `subscribe` and `unsubscribe` payload.
fn topics_payload<S: AsRef<str>>(topics: &[S]) -> Value {
    let topics: Vec<&str> = topics.iter().map(|topic| topic.as_ref()).collect();
    json!({ "topics": topics })
}

/// A request envelope as it goes on the wire.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestEnvelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    correlation_id: &'a str,
    timestamp: u64,
    action: &'a str,
    payload: &'a Value,
}

/// The text of a request envelope.
fn request_text(
    correlation_id: &str,
    timestamp: u64,
    action: &str,
    payload: &Value,
) -> Result<String, ClientError> {
    Ok(serde_json::to_string(&RequestEnvelope {
        kind: "request",
        correlation_id,
        timestamp,
        action,
        payload,
    })?)
}

/// Any envelope the server sends, read in one pass whatever the order of its fields; which
/// fields matter depends on `type`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEnvelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    timestamp: Option<u64>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    payload: Value,
}

/// The payload of an error response.
#[derive(Deserialize)]
struct ErrorPayload {
    code: String,
    message: String,
    status: u16,
    #[serde(default)]
    details: Value,
}

/// A parsed inbound text frame.
#[derive(Debug, PartialEq)]
enum Frame {
    Notification(Notification),
    /// Anything else, with the correlation id to route it by if the frame had one.
    Answer {
        correlation_id: Option<String>,
        inbound: Inbound,
    },
}

/// Parses a text frame. A response whose error payload is malformed keeps its correlation id,
/// so that the call it answers fails with [`ClientError::Protocol`] instead of timing out.
fn parse_frame(text: &str) -> Frame {
    let Ok(envelope) = serde_json::from_str::<WireEnvelope>(text) else {
        return Frame::Answer {
            correlation_id: None,
            inbound: Inbound::Text(text.to_owned()),
        };
    };
    let reply = match (envelope.kind.as_str(), envelope.status.as_deref()) {
        ("notification", _) => {
            if let Some(event) = envelope.event {
                return Frame::Notification(Notification {
                    event,
                    correlation_id: envelope.correlation_id,
                    timestamp: envelope.timestamp,
                    payload: envelope.payload,
                });
            }
            None
        }
        ("response", Some("success")) => Some(Reply::Success(envelope.payload)),
        ("response", Some("error")) => serde_json::from_value::<ErrorPayload>(envelope.payload)
            .ok()
            .map(|error| Reply::Error {
                code: error.code,
                message: error.message,
                status: error.status,
                details: error.details,
            }),
        _ => None,
    };
    let inbound = match reply {
        Some(reply) => Inbound::Response(Response {
            correlation_id: envelope.correlation_id.clone(),
            timestamp: envelope.timestamp,
            reply,
        }),
        None => Inbound::Text(text.to_owned()),
    };
    Frame::Answer {
        correlation_id: envelope.correlation_id,
        inbound,
    }
}

/// A raw call waiting for an answer.
#[derive(Debug)]
enum RawWaiter {
    /// Its sender lives in `Router::by_id` under this id.
    Keyed(String),
    Unkeyed(oneshot::Sender<Inbound>),
}

/// Matches inbound frames to the calls waiting for them.
#[derive(Debug)]
struct Router {
    /// Typed calls and raw calls with a correlation id, by that id.
    by_id: HashMap<String, oneshot::Sender<Inbound>>,
    /// Raw calls in the order they were sent: they also take frames no one else waits for.
    raw: VecDeque<RawWaiter>,
    /// `by_id` size at which abandoned waiters are swept out next.
    prune_at: usize,
}

impl Default for Router {
    fn default() -> Self {
        Self {
            by_id: HashMap::new(),
            raw: VecDeque::new(),
            prune_at: Self::MIN_PRUNE_AT,
        }
    }
}

impl Router {
    const MIN_PRUNE_AT: usize = 64;

    /// Waits for the response with `correlation_id`.
    fn expect(&mut self, correlation_id: String, reply: oneshot::Sender<Inbound>) {
        self.by_id.insert(correlation_id, reply);
        self.prune();
    }

    /// Waits for the response with `key`, or failing that the next unmatched frame.
    fn expect_raw(&mut self, key: Option<String>, reply: oneshot::Sender<Inbound>) {
        match key {
            // A reused id cannot be told apart; the later call falls back to arrival order.
            Some(key) if !self.by_id.contains_key(&key) => {
                self.by_id.insert(key.clone(), reply);
                self.raw.push_back(RawWaiter::Keyed(key));
            }
            _ => self.raw.push_back(RawWaiter::Unkeyed(reply)),
        }
        self.prune();
    }

    /// Hands a frame to its waiter. Returns whether a waiter took it.
    fn deliver(&mut self, correlation_id: Option<&str>, inbound: Inbound) -> bool {
        if let Some(reply) = correlation_id.and_then(|id| self.by_id.remove(id)) {
            if let Some(id) = correlation_id {
                self.raw
                    .retain(|waiter| !matches!(waiter, RawWaiter::Keyed(key) if key == id));
            }
            return reply.send(inbound).is_ok();
        }
        while let Some(waiter) = self.raw.pop_front() {
            let reply = match waiter {
                RawWaiter::Keyed(key) => match self.by_id.remove(&key) {
                    Some(reply) => reply,
                    None => continue,
                },
                RawWaiter::Unkeyed(reply) => reply,
            };
            if !reply.is_closed() {
                return reply.send(inbound).is_ok();
            }
        }
        false
    }

    /// Forgets waiters whose caller gave up (timed out or was cancelled). Amortised: a sweep
    /// runs only when the map has doubled since the last one.
    fn prune(&mut self) {
        if self.by_id.len() + self.raw.len() < self.prune_at {
            return;
        }
        self.by_id.retain(|_, reply| !reply.is_closed());
        let by_id = &self.by_id;
        self.raw.retain(|waiter| match waiter {
            RawWaiter::Keyed(key) => by_id.contains_key(key),
            RawWaiter::Unkeyed(reply) => !reply.is_closed(),
        });
        self.prune_at = ((self.by_id.len() + self.raw.len()) * 2).max(Self::MIN_PRUNE_AT);
    }

    /// Waiters outstanding, abandoned ones included until the next sweep.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_id.len()
            + self
                .raw
                .iter()
                .filter(|waiter| matches!(waiter, RawWaiter::Unkeyed(_)))
                .count()
    }
}

/// How a connection ended.
enum Ended {
    /// Lost, with the server's close frame if it sent one.
    Lost(Option<CloseInfo>),
    /// Closed on purpose: every handle was dropped or [`WsClient::close`] was called.
    Shutdown(Option<CloseInfo>),
}

/// The outcome of one reconnect attempt.
// One short-lived value per attempt, moved once: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Attempt {
    Reopened(Socket),
    /// Worth another try; with the close frame if the server closed the new connection.
    Failed(Option<CloseInfo>),
    /// The server refused the upgrade for a reason retrying cannot fix.
    Refused(ClientError),
}

/// The background task that owns the socket.
struct Driver {
    url: String,
    options: ClientOptions,
    session: Arc<Mutex<SessionState>>,
    commands: mpsc::Receiver<Command>,
    notifications: broadcast::Sender<Notification>,
    shutdown: Arc<Notify>,
    status: watch::Sender<Status>,
    /// Xorshift state for the backoff jitter.
    random: u64,
}

impl Driver {
    async fn run(mut self, mut socket: Socket) {
        loop {
            // Waiters live in the router of one connection: when it ends they are dropped, and
            // every call still waiting fails with `ConnectionLost`.
            let ended = self.serve(&mut socket).await;
            drop(socket);
            let close = match ended {
                Ended::Shutdown(close) => {
                    self.finish(close);
                    return;
                }
                Ended::Lost(close) => close,
            };
            tracing::debug!(url = %self.url, ?close, "WebSocket connection lost");
            let Some(policy) = self.options.reconnect.clone() else {
                self.finish(close);
                return;
            };
            self.status.send_modify(|status| {
                status.connected = false;
                status.last_close = close;
            });
            match self.reconnect(&policy).await {
                Some(reopened) => socket = reopened,
                None => {
                    self.status.send_modify(|status| status.finished = true);
                    return;
                }
            }
        }
    }

    /// Marks the client closed for good.
    fn finish(&self, close: Option<CloseInfo>) {
        self.status.send_modify(|status| {
            status.connected = false;
            status.finished = true;
            status.last_close = close;
        });
    }

    /// Runs one connection until it ends.
    async fn serve(&mut self, socket: &mut Socket) -> Ended {
        let mut router = Router::default();
        let mut close = None;
        loop {
            tokio::select! {
                () = self.shutdown.notified() => {
                    return Ended::Shutdown(close_gracefully(socket, &self.options).await);
                }
                command = self.commands.recv() => {
                    let Some(command) = command else {
                        return Ended::Shutdown(close_gracefully(socket, &self.options).await);
                    };
                    let mut next = Some(command);
                    let mut batched = 0;
                    while let Some(command) = next.take() {
                        let text = match command {
                            // The caller already gave up (timed out while queued): don't send.
                            Command::Call { reply, .. } | Command::Raw { reply, .. }
                                if reply.is_closed() =>
                            {
                                None
                            }
                            Command::Call { correlation_id, text, reply } => {
                                router.expect(correlation_id, reply);
                                Some(text)
                            }
                            Command::Raw { key, text, reply } => {
                                router.expect_raw(key, reply);
                                Some(text)
                            }
                        };
                        if let Some(text) = text
                            && socket.feed(Message::text(text)).await.is_err()
                        {
                            return Ended::Lost(close);
                        }
                        batched += 1;
                        if batched < MAX_BATCH {
                            next = self.commands.try_recv().ok();
                        }
                    }
                    if socket.flush().await.is_err() {
                        return Ended::Lost(close);
                    }
                }
                frame = socket.next() => match frame {
                    Some(Ok(Message::Text(text))) => match parse_frame(text.as_str()) {
                        Frame::Notification(notification) => {
                            // No receiver is not an error: notifications are optional.
                            let _ = self.notifications.send(notification);
                        }
                        Frame::Answer { correlation_id, inbound } => {
                            if !router.deliver(correlation_id.as_deref(), inbound) {
                                tracing::debug!(?correlation_id, "unclaimed WebSocket frame");
                            }
                        }
                    },
                    Some(Ok(Message::Binary(bytes))) => {
                        router.deliver(None, Inbound::Binary(bytes));
                    }
                    // Keep reading after a close frame: tungstenite answers it, and the stream
                    // ends once the closing handshake is done.
                    Some(Ok(Message::Close(frame))) => close = frame.map(CloseInfo::from),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return Ended::Lost(close),
                },
            }
        }
    }

    /// Reopens the connection with backoff and restores the session. `None` when giving up or
    /// when every handle is gone.
    async fn reconnect(&mut self, policy: &ReconnectPolicy) -> Option<Socket> {
        let mut attempt: u32 = 0;
        loop {
            if policy.max_attempts.is_some_and(|max| attempt >= max) {
                return None;
            }
            let delay = policy.delay(attempt, self.next_random());
            attempt = attempt.saturating_add(1);
            let attempt_once = async {
                tokio::time::sleep(delay).await;
                // A token accepted by `authenticate` or `refresh` supersedes the one configured
                // for the upgrade, which may well have expired by now: the upgrade goes without
                // credentials and the restore re-authenticates with the newer token.
                let bearer = if self.session.lock().token.is_some() {
                    None
                } else {
                    self.options.bearer_token.as_deref()
                };
                match open(&self.url, &self.options, bearer).await {
                    Ok(mut socket) => match self.restore(&mut socket).await {
                        Ok(()) => Attempt::Reopened(socket),
                        Err(close) => Attempt::Failed(close),
                    },
                    Err(error) if error.is_permanent() => Attempt::Refused(error),
                    Err(error) => {
                        tracing::debug!(url = %self.url, %error, attempt, "WebSocket reconnect failed");
                        Attempt::Failed(None)
                    }
                }
            };
            let outcome = tokio::select! {
                // Every handle dropped: there is no one left to reconnect for.
                () = self.status.closed() => return None,
                () = self.shutdown.notified() => return None,
                outcome = attempt_once => outcome,
            };
            match outcome {
                Attempt::Reopened(socket) => {
                    self.status.send_modify(|status| {
                        status.connected = true;
                        status.connections += 1;
                    });
                    return Some(socket);
                }
                // The server closed the new connection during the restore: that close is now
                // the last one.
                Attempt::Failed(Some(close)) => {
                    self.status
                        .send_modify(|status| status.last_close = Some(close));
                }
                Attempt::Failed(None) => {}
                Attempt::Refused(error) => {
                    tracing::warn!(url = %self.url, %error, "WebSocket reconnect refused; giving up");
                    return None;
                }
            }
        }
    }

    /// Re-authenticates and resubscribes on a fresh connection, before any queued call goes
    /// out, so that calls made during the outage run with the session they were made in.
    async fn restore(&self, socket: &mut Socket) -> Result<(), Option<CloseInfo>> {
        let (token, topics) = {
            let session = self.session.lock();
            let topics: Vec<String> = session.topics.iter().cloned().collect();
            (session.token.clone(), topics)
        };
        if let Some(token) = token {
            self.restore_call(socket, Action::Authenticate, authenticate_payload(&token))
                .await?;
        }
        for topics in topics.chunks(MAX_TOPICS_PER_REQUEST) {
            self.restore_call(socket, Action::Subscribe, topics_payload(topics))
                .await?;
        }
        Ok(())
    }

    /// One request of the restore, answered before anything else is sent. A refusal is
    /// logged, not fatal: the session continues without it, as it would have without a
    /// reconnect once the token expired.
    async fn restore_call(
        &self,
        socket: &mut Socket,
        action: Action,
        payload: Value,
    ) -> Result<(), Option<CloseInfo>> {
        let correlation_id = Uuid::new_v4().to_string();
        let text =
            request_text(&correlation_id, now_ms(), action.as_str(), &payload).map_err(|_| None)?;
        socket.send(Message::text(text)).await.map_err(|_| None)?;
        let answer = async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) => match parse_frame(text.as_str()) {
                        Frame::Notification(notification) => {
                            let _ = self.notifications.send(notification);
                        }
                        Frame::Answer {
                            correlation_id: Some(id),
                            inbound,
                        } if id == correlation_id => {
                            if let Inbound::Response(Response {
                                reply: Reply::Error { code, .. },
                                ..
                            }) = inbound
                            {
                                tracing::warn!(action = action.as_str(), %code,
                                    "the server refused restoring the WebSocket session");
                            }
                            return Ok(());
                        }
                        Frame::Answer { .. } => {}
                    },
                    Some(Ok(Message::Close(frame))) => return Err(frame.map(CloseInfo::from)),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return Err(None),
                }
            }
        };
        tokio::time::timeout(self.options.request_timeout, answer)
            .await
            .unwrap_or(Err(None))
    }

    /// The next value of the xorshift generator: jitter needs spread, not unpredictability.
    fn next_random(&mut self) -> u64 {
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        self.random
    }
}

/// Sends a normal close and waits, within the connect timeout, for the server's close frame.
async fn close_gracefully(socket: &mut Socket, options: &ClientOptions) -> Option<CloseInfo> {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    if socket.close(Some(frame)).await.is_err() {
        return None;
    }
    let answer = async {
        let mut close = None;
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(frame) = message {
                close = frame.map(CloseInfo::from);
            }
        }
        close
    };
    tokio::time::timeout(options.connect_timeout, answer)
        .await
        .unwrap_or(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::future::Future;

    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::handshake::server::{
        ErrorResponse, Request, Response as HandshakeResponse,
    };
    use tokio_tungstenite::tungstenite::http::StatusCode;

    // ---- envelopes ---------------------------------------------------------------------------

    #[test]
    fn a_request_envelope_carries_the_contract_fields() {
        let text = request_text(
            "5b7c1f0e-3c1a-4c47-9a61-0c7f3f5e2b11",
            1_700_000_000_123,
            "getPetById",
            &json!({ "petId": 5 }),
        )
        .unwrap();
        let envelope: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            envelope,
            json!({
                "type": "request",
                "correlationId": "5b7c1f0e-3c1a-4c47-9a61-0c7f3f5e2b11",
                "timestamp": 1_700_000_000_123u64,
                "action": "getPetById",
                "payload": { "petId": 5 },
            })
        );
    }

    #[test]
    fn timestamps_are_milliseconds_since_the_epoch() {
        // 2020-01-01 in milliseconds; in seconds or microseconds this would be far off.
        let now = now_ms();
        assert!(
            now > 1_577_836_800_000 && now < 1_577_836_800_000 * 10,
            "{now}"
        );
    }

    #[test]
    fn a_success_response_parses_whatever_the_field_order() {
        let text = r#"{"payload":{"id":5,"name":"Rex"},"status":"success","timestamp":17,
                       "correlationId":"abc","type":"response","extra":true}"#;
        assert_eq!(
            parse_frame(text),
            Frame::Answer {
                correlation_id: Some("abc".to_owned()),
                inbound: Inbound::Response(Response {
                    correlation_id: Some("abc".to_owned()),
                    timestamp: Some(17),
                    reply: Reply::Success(json!({ "id": 5, "name": "Rex" })),
                }),
            }
        );
    }

    #[test]
    fn an_error_response_carries_the_error_payload() {
        let text = r#"{"type":"response","status":"error","correlationId":"abc","timestamp":1,
            "payload":{"status":422,"details":[{"path":"name","message":"is required"}],
                       "message":"invalid pet","code":"VALIDATION_ERROR"}}"#;
        let Frame::Answer {
            inbound: Inbound::Response(response),
            ..
        } = parse_frame(text)
        else {
            panic!("not a response");
        };
        assert_eq!(
            response.reply,
            Reply::Error {
                code: "VALIDATION_ERROR".to_owned(),
                message: "invalid pet".to_owned(),
                status: 422,
                details: json!([{ "path": "name", "message": "is required" }]),
            }
        );
        assert_eq!(response.reply.error_code(), Some("VALIDATION_ERROR"));
        assert!(!response.reply.is_success());
    }

    #[test]
    fn a_response_with_a_malformed_error_payload_still_finds_its_call() {
        // No `code`: not a valid error payload, but the call it answers must not time out.
        let text = r#"{"type":"response","status":"error","correlationId":"abc","payload":{}}"#;
        assert_eq!(
            parse_frame(text),
            Frame::Answer {
                correlation_id: Some("abc".to_owned()),
                inbound: Inbound::Text(text.to_owned()),
            }
        );
    }

    #[test]
    fn a_notification_parses_with_its_event() {
        let text = r#"{"payload":{"id":7},"event":"pet.deleted","type":"notification",
                       "timestamp":9,"correlationId":"n-1"}"#;
        let Frame::Notification(notification) = parse_frame(text) else {
            panic!("not a notification");
        };
        assert_eq!(
            notification,
            Notification {
                event: "pet.deleted".to_owned(),
                correlation_id: Some("n-1".to_owned()),
                timestamp: Some(9),
                payload: json!({ "id": 7 }),
            }
        );
        assert_eq!(notification.kind(), Some(Event::PetDeleted));

        let unknown = r#"{"type":"notification","event":"pet.teleported","payload":null}"#;
        let Frame::Notification(notification) = parse_frame(unknown) else {
            panic!("not a notification");
        };
        assert_eq!(notification.event, "pet.teleported");
        assert_eq!(notification.kind(), None);
    }

    #[test]
    fn frames_that_are_not_envelopes_come_back_as_text() {
        for text in [
            "not json",
            "[1,2]",
            r#"{"no":"type"}"#,
            r#"{"type":"response","status":"maybe","correlationId":"abc"}"#,
            r#"{"type":"request","correlationId":"abc","action":"ping"}"#,
        ] {
            let Frame::Answer { inbound, .. } = parse_frame(text) else {
                panic!("{text} parsed as a notification");
            };
            assert_eq!(inbound, Inbound::Text(text.to_owned()), "{text}");
        }
    }

    // ---- correlation -------------------------------------------------------------------------

    fn success(id: &str, n: u64) -> Inbound {
        Inbound::Response(Response {
            correlation_id: Some(id.to_owned()),
            timestamp: None,
            reply: Reply::Success(json!(n)),
        })
    }

    #[test]
    fn the_router_matches_responses_by_correlation_id_in_any_order() {
        let mut router = Router::default();
        let (a, mut a_answer) = oneshot::channel();
        let (b, mut b_answer) = oneshot::channel();
        let (c, mut c_answer) = oneshot::channel();
        router.expect("a".to_owned(), a);
        router.expect("b".to_owned(), b);
        router.expect("c".to_owned(), c);

        assert!(router.deliver(Some("c"), success("c", 3)));
        assert!(router.deliver(Some("a"), success("a", 1)));
        // Unknown and repeated ids find no one, and don't disturb the rest.
        assert!(!router.deliver(Some("zzz"), success("zzz", 0)));
        assert!(!router.deliver(Some("a"), success("a", 11)));
        assert!(router.deliver(Some("b"), success("b", 2)));

        assert_eq!(a_answer.try_recv().unwrap(), success("a", 1));
        assert_eq!(b_answer.try_recv().unwrap(), success("b", 2));
        assert_eq!(c_answer.try_recv().unwrap(), success("c", 3));
        assert_eq!(router.len(), 0);
    }

    #[test]
    fn raw_waiters_take_unmatched_frames_in_the_order_they_were_sent() {
        let mut router = Router::default();
        let (typed, mut typed_answer) = oneshot::channel();
        let (first, mut first_answer) = oneshot::channel();
        let (second, mut second_answer) = oneshot::channel();
        router.expect("typed".to_owned(), typed);
        router.expect_raw(None, first);
        router.expect_raw(None, second);

        assert!(router.deliver(None, Inbound::Text("one".to_owned())));
        // A response for the typed call is not taken by the raw waiter in between.
        assert!(router.deliver(Some("typed"), success("typed", 1)));
        assert!(router.deliver(Some("unknown"), success("unknown", 2)));
        // No one left.
        assert!(!router.deliver(None, Inbound::Text("three".to_owned())));

        assert_eq!(
            first_answer.try_recv().unwrap(),
            Inbound::Text("one".to_owned())
        );
        assert_eq!(typed_answer.try_recv().unwrap(), success("typed", 1));
        assert_eq!(second_answer.try_recv().unwrap(), success("unknown", 2));
    }

    #[test]
    fn a_raw_waiter_with_an_id_gets_its_own_response_even_out_of_order() {
        let mut router = Router::default();
        let (unkeyed, mut unkeyed_answer) = oneshot::channel();
        let (keyed, mut keyed_answer) = oneshot::channel();
        router.expect_raw(None, unkeyed);
        router.expect_raw(Some("k".to_owned()), keyed);

        assert!(router.deliver(Some("k"), success("k", 1)));
        assert!(router.deliver(None, Inbound::Text("other".to_owned())));
        assert_eq!(keyed_answer.try_recv().unwrap(), success("k", 1));
        assert_eq!(
            unkeyed_answer.try_recv().unwrap(),
            Inbound::Text("other".to_owned())
        );
        assert_eq!(router.len(), 0);
        assert!(
            router.raw.is_empty(),
            "the keyed waiter left its place in line"
        );
    }

    #[test]
    fn a_raw_waiter_whose_id_goes_unanswered_falls_back_to_arrival_order() {
        // A frame the server could not read is answered without its id.
        let mut router = Router::default();
        let (keyed, mut keyed_answer) = oneshot::channel();
        router.expect_raw(Some("k".to_owned()), keyed);
        assert!(router.deliver(None, Inbound::Text("bad frame".to_owned())));
        assert_eq!(
            keyed_answer.try_recv().unwrap(),
            Inbound::Text("bad frame".to_owned())
        );
        assert_eq!(router.len(), 0);
    }

    #[test]
    fn abandoned_waiters_are_skipped_and_swept_out() {
        let mut router = Router::default();
        let (abandoned_raw, abandoned_raw_answer) = oneshot::channel();
        let (live_raw, mut live_raw_answer) = oneshot::channel();
        router.expect_raw(None, abandoned_raw);
        router.expect_raw(None, live_raw);
        // The first raw caller timed out: the frame goes to the next one.
        drop(abandoned_raw_answer);
        assert!(router.deliver(None, Inbound::Text("x".to_owned())));
        assert_eq!(
            live_raw_answer.try_recv().unwrap(),
            Inbound::Text("x".to_owned())
        );

        // Many typed callers time out; the map does not keep all of them.
        let mut live = Vec::new();
        for n in 0..1_000 {
            let (reply, answer) = oneshot::channel();
            router.expect(format!("call-{n}"), reply);
            if n % 100 == 0 {
                live.push((n, answer));
            }
        }
        assert!(router.len() < 200, "{} waiters kept", router.len());
        for (n, mut answer) in live {
            let id = format!("call-{n}");
            assert!(router.deliver(Some(&id), success(&id, n)));
            assert_eq!(answer.try_recv().unwrap(), success(&id, n));
        }
    }

    // ---- backoff -----------------------------------------------------------------------------

    #[test]
    fn the_backoff_doubles_from_100_ms_up_to_5_s() {
        let policy = ReconnectPolicy {
            jitter: 0.0,
            ..ReconnectPolicy::default()
        };
        let delays: Vec<u128> = (0..10)
            .map(|attempt| policy.delay(attempt, 0).as_millis())
            .collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]
        );
        assert_eq!(policy.delay(u32::MAX, 0), Duration::from_secs(5));
    }

    #[test]
    fn jitter_only_ever_shortens_the_delay_and_spreads_it() {
        let policy = ReconnectPolicy::default();
        let mut seen = std::collections::BTreeSet::new();
        let mut random = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..200 {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            let delay = policy.delay(3, random);
            assert!(delay <= Duration::from_millis(800), "{delay:?}");
            assert!(delay >= Duration::from_millis(640), "{delay:?}");
            seen.insert(delay);
        }
        assert!(seen.len() > 100, "jitter must spread the delays");
        assert_eq!(policy.delay(3, u64::MAX).as_millis(), 640);
    }

    #[test]
    fn odd_policies_neither_panic_nor_exceed_the_max() {
        for policy in [
            ReconnectPolicy {
                factor: f64::NAN,
                jitter: f64::INFINITY,
                ..ReconnectPolicy::default()
            },
            ReconnectPolicy {
                factor: 0.1,
                jitter: -3.0,
                ..ReconnectPolicy::default()
            },
            ReconnectPolicy {
                initial: Duration::from_secs(60),
                factor: f64::MAX,
                ..ReconnectPolicy::default()
            },
        ] {
            for attempt in [0, 1, 50, u32::MAX] {
                assert!(
                    policy.delay(attempt, u64::MAX / 3) <= policy.max,
                    "{policy:?}"
                );
            }
        }
    }

    // ---- against a tiny server ---------------------------------------------------------------

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
    async fn next_request(socket: &mut ServerSocket) -> Option<Value> {
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

    /// Answers every request with success and `{"action", "payload"}` echoed.
    async fn echo(socket: &mut ServerSocket) {
        while let Some(request) = next_request(socket).await {
            let echoed = json!({ "action": request["action"], "payload": request["payload"] });
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
                client.call(Action::GetPetById, json!({ "petId": 1 })),
                other.call(Action::GetPetById, json!({ "petId": 2 })),
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
                        client.call(Action::GetPetById, json!({ "petId": n })).await,
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
            assert!(client.ping().await.unwrap().is_success());
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
                .call(Action::AddPet, json!({ "body": { "photoUrls": [] } }))
                .await
                .unwrap();
            assert_eq!(
                reply,
                Reply::Error {
                    code: "VALIDATION_ERROR".to_owned(),
                    message: "the pet is not valid".to_owned(),
                    status: 422,
                    details: json!([{ "path": "name", "message": "is required" }]),
                }
            );
            let Reply::Error {
                code,
                status,
                details,
                ..
            } = client.ping().await.unwrap()
            else {
                panic!("expected an error");
            };
            assert_eq!((code.as_str(), status), ("RATE_LIMITED", 429));
            assert_eq!(details, json!({ "retryAfter": 3 }));

            let error = client
                .call(Action::GetPetById, json!({ "petId": 1 }))
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
            let reply = client.subscribe(&["pets", "pet:5"]).await.unwrap();
            assert_eq!(
                reply,
                Reply::Success(json!({ "topics": ["pets", "pet:5"] }))
            );
            assert_eq!(client.topics(), ["pet:5", "pets"]);

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

            assert!(client.unsubscribe(&["pets"]).await.unwrap().is_success());
            assert_eq!(client.topics(), ["pet:5"]);

            // Once the client is gone, receivers end instead of waiting forever.
            drop(client);
            assert!(first.recv().await.is_none());
        })
        .await;
    }

    #[tokio::test]
    async fn call_raw_returns_whatever_answers_the_frame() {
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

            let Inbound::Response(response) = client.call_raw("{not json").await.unwrap() else {
                panic!("expected a response");
            };
            assert_eq!(response.correlation_id, None);
            assert_eq!(response.reply.error_code(), Some("BAD_REQUEST"));

            let frame = json!({ "type": "request", "correlationId": "raw-1", "action": "ping" });
            let Inbound::Response(response) = client.call_raw(frame.to_string()).await.unwrap()
            else {
                panic!("expected a response");
            };
            assert_eq!(response.correlation_id.as_deref(), Some("raw-1"));
            assert_eq!(response.reply, Reply::Success(json!("echo")));

            assert_eq!(
                client.call_raw("{}").await.unwrap(),
                Inbound::Text("no correlation id".to_owned())
            );
            // Typed calls still work next to raw ones.
            assert!(client.ping().await.unwrap().is_success());
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
                    .call(Action::GetPetById, json!({ "petId": 1 }))
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
                        Some("subscribe") => {
                            respond(&request, "success", request["payload"].clone())
                        }
                        _ => respond(&request, "success", json!({})),
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
            assert!(client.authenticate("token-1").await.unwrap().is_success());
            assert!(
                client
                    .subscribe(&["pets", "pet:5"])
                    .await
                    .unwrap()
                    .is_success()
            );

            let lost = client.call(Action::GetPetById, json!({ "petId": 5 })).await;
            assert!(matches!(lost, Err(ClientError::ConnectionLost)), "{lost:?}");

            // Sent while reconnecting, or after: either way it goes out after the restore.
            assert!(client.ping().await.unwrap().is_success());
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
            let client =
                WsClient::connect(&url, ClientOptions::default().reconnect(fast_retries()))
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

    #[tokio::test]
    async fn a_call_without_an_answer_times_out_and_the_next_one_works() {
        let url = server(|_, mut socket| async move {
            // Ignore the first request, answer the rest.
            let _ = next_request(&mut socket).await;
            echo(&mut socket).await;
        })
        .await;

        guarded(async {
            let options = ClientOptions::default().request_timeout(Duration::from_millis(300));
            let client = WsClient::connect(&url, options).await.unwrap();
            let error = client.ping().await.unwrap_err();
            assert!(matches!(error, ClientError::Timeout), "{error:?}");
            assert!(client.ping().await.unwrap().is_success());
        })
        .await;
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
                                .send(respond(&request, "success", json!({})))
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
            assert!(clone.ping().await.unwrap().is_success());
            client.close().await;
            assert_eq!(closed.recv().await.unwrap(), Some(1000));
            assert!(matches!(clone.ping().await, Err(ClientError::Closed)));
            assert!(!clone.is_connected());

            // By dropping the last handle.
            let client = connect(&url).await;
            let clone = client.clone();
            drop(client);
            assert!(clone.ping().await.unwrap().is_success());
            drop(clone);
            assert_eq!(closed.recv().await.unwrap(), Some(1000));
        })
        .await;
    }
}
