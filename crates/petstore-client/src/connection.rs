//! The connection: one background task (the [`Driver`]) owns the socket, writes the calls handed
//! to it over a channel, routes what comes back, and, when a [`ReconnectPolicy`] is set, reopens
//! a lost connection with backoff and restores the session before any further call goes out.
//!
//! Waiters live in the router of one connection: when it ends they are dropped, and every call
//! still waiting fails with [`ClientError::ConnectionLost`].
//!
//! Where a connection comes from is a [`Connector`]: TCP to the URL for every real use, an
//! in-memory pipe in the unit tests, so that the timers the client owns (request timeout,
//! connect timeout, reconnect backoff) can be tested on a paused clock without a socket whose
//! I/O the paused clock would race.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use petstore_api::{
    Topic,
    ws::{Action, limits::SUBSCRIBE_TOPICS_MAX_ITEMS},
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::{
    ClientError, ClientOptions, Inbound, Notification, ReconnectPolicy, Reply, Response,
    control::{authenticate_payload, topics_payload},
    envelope::{Frame, now_ms, parse_frame, request_text},
    notifications::RECOVERY_FAILED,
    router::Router,
};

/// Requests the socket task may have queued before callers wait for room.
const COMMAND_BUFFER: usize = 1024;

/// Requests written to the socket before one flush, so that many concurrent calls share a
/// write instead of paying one system call each.
const MAX_BATCH: usize = 64;

/// Opens the byte stream under a connection and runs the WebSocket handshake over it.
pub(crate) trait Connector: Send + Sync + 'static {
    /// The byte stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Connects and upgrades with `request` (the URL and the headers).
    fn handshake(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<WebSocketStream<Self::Stream>, tungstenite::Error>> + Send;
}

/// TCP to the host and port of the URL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tcp;

impl Connector for Tcp {
    type Stream = MaybeTlsStream<TcpStream>;

    async fn handshake(
        &self,
        request: Request,
    ) -> Result<WebSocketStream<Self::Stream>, tungstenite::Error> {
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(socket)
    }
}

/// The socket the task owns.
type Socket<C> = WebSocketStream<<C as Connector>::Stream>;

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

/// What the client restores after a reconnect.
#[derive(Debug, Default)]
pub(crate) struct SessionState {
    /// The last access token the server accepted.
    pub(crate) token: Option<String>,
    /// The topics the server accepted, by their text: the order they are restored in.
    pub(crate) topics: BTreeMap<String, Topic>,
    /// The last position seen in each followed topic: offset and epoch.
    pub(crate) positions: BTreeMap<String, (u64, String)>,
}

impl SessionState {
    /// Records the positions of a notification in the topics the session follows, and answers
    /// whether it is new: `false` when every followed topic it is in has seen it already (a
    /// replay overlapping what arrived before a reconnect).
    pub(crate) fn advance(&mut self, notification: &Notification) -> bool {
        let Some(epoch) = &notification.epoch else {
            return true;
        };
        let mut followed = false;
        let mut new = false;
        for (topic, offset) in &notification.positions {
            if !self.topics.contains_key(topic) {
                continue;
            }
            followed = true;
            match self.positions.get_mut(topic) {
                Some((seen, seen_epoch)) if seen_epoch == epoch => {
                    if offset > seen {
                        *seen = *offset;
                        new = true;
                    }
                }
                _ => {
                    self.positions
                        .insert(topic.clone(), (*offset, epoch.clone()));
                    new = true;
                }
            }
        }
        new || !followed
    }

    /// Records a topic the server resumed (a `subscribe` answer on a restored connection). The
    /// answer's offset stands after the replayed events that follow it; until they arrive the
    /// client has seen only what came before them, so that is where it is placed (placing the
    /// answer's offset would drop the replay as duplicates).
    pub(crate) fn resume(&mut self, position: &petstore_api::TopicPosition) {
        let mut before_replay = position.clone();
        before_replay.offset = position
            .offset
            .saturating_sub(position.replayed.unwrap_or(0));
        self.place(&before_replay);
    }

    /// Records where the server says a topic stands (a `subscribe` answer).
    pub(crate) fn place(&mut self, position: &petstore_api::TopicPosition) {
        let name = position.topic.to_string();
        let current = self.positions.get(&name);
        let newer = match current {
            Some((offset, epoch)) => *epoch != position.epoch || position.offset > *offset,
            None => true,
        };
        if newer {
            self.positions
                .insert(name, (position.offset, position.epoch.clone()));
        }
    }
}

/// The state of the connection, as the socket task reports it to every handle.
#[derive(Debug, Clone, Default)]
pub(crate) struct Status {
    pub(crate) connected: bool,
    pub(crate) connections: u64,
    pub(crate) last_close: Option<CloseInfo>,
    pub(crate) finished: bool,
}

/// A request for the socket task.
#[derive(Debug)]
pub(crate) enum Command {
    /// A request envelope, answered by the response with this correlation id.
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

/// What the handles of a client hold of its socket task.
#[derive(Debug)]
pub(crate) struct Handle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) session: Arc<Mutex<SessionState>>,
    pub(crate) status: watch::Receiver<Status>,
    pub(crate) notifications: broadcast::WeakSender<Notification>,
    /// Asks the socket task to close, also while it is reconnecting and not reading commands.
    pub(crate) shutdown: Arc<Notify>,
}

/// Opens the connection with `connector` and starts the task that owns it.
pub(crate) async fn start<C: Connector>(
    connector: C,
    url: &str,
    options: ClientOptions,
) -> Result<Handle, ClientError> {
    let socket = open(&connector, url, &options, options.bearer_token.as_deref()).await?;
    let (commands, command_receiver) = mpsc::channel(COMMAND_BUFFER);
    let (notifications, _) = broadcast::channel(options.notification_buffer);
    let (status, status_receiver) = watch::channel(Status {
        connected: true,
        connections: 1,
        ..Status::default()
    });
    let session = Arc::new(Mutex::new(SessionState::default()));
    let shutdown = Arc::new(Notify::new());
    let handle = Handle {
        commands,
        session: session.clone(),
        status: status_receiver,
        notifications: notifications.downgrade(),
        shutdown: shutdown.clone(),
    };
    let driver = Driver {
        connector,
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
    Ok(handle)
}

/// Opens a connection with the configured headers, and `bearer` as the credentials, within the
/// connect timeout.
async fn open<C: Connector>(
    connector: &C,
    url: &str,
    options: &ClientOptions,
    bearer: Option<&str>,
) -> Result<Socket<C>, ClientError> {
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
    tokio::time::timeout(options.connect_timeout, connector.handshake(request))
        .await
        .map_err(|_| ClientError::ConnectTimeout)?
        .map_err(ClientError::from_handshake)
}

/// How a connection ended.
enum Ended {
    /// Lost, with the server's close frame if it sent one.
    Lost(Option<CloseInfo>),
    /// Closed on purpose: every handle was dropped or
    /// [`WsClient::close`](crate::WsClient::close) was called.
    Shutdown(Option<CloseInfo>),
}

/// The outcome of one reconnect attempt.
// One short-lived value per attempt, moved once: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Attempt<C: Connector> {
    Reopened(Socket<C>),
    /// Worth another try; with the close frame if the server closed the new connection.
    Failed(Option<CloseInfo>),
    /// The server refused the upgrade for a reason retrying cannot fix.
    Refused(ClientError),
}

/// The background task that owns the socket.
pub(crate) struct Driver<C: Connector> {
    connector: C,
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

impl<C: Connector> Driver<C> {
    async fn run(mut self, mut socket: Socket<C>) {
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
    async fn serve(&mut self, socket: &mut Socket<C>) -> Ended {
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
                            if self.session.lock().advance(&notification) {
                                // No receiver is not an error: notifications are optional.
                                let _ = self.notifications.send(notification);
                            }
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
    async fn reconnect(&mut self, policy: &ReconnectPolicy) -> Option<Socket<C>> {
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
                match open(&self.connector, &self.url, &self.options, bearer).await {
                    Ok(mut socket) => match self.restore(&mut socket).await {
                        Ok(()) => Attempt::<C>::Reopened(socket),
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
    async fn restore(&self, socket: &mut Socket<C>) -> Result<(), Option<CloseInfo>> {
        let (token, topics, positions) = {
            let session = self.session.lock();
            let topics: Vec<String> = session.topics.keys().cloned().collect();
            (session.token.clone(), topics, session.positions.clone())
        };
        if let Some(token) = token {
            self.restore_call(socket, Action::Authenticate, authenticate_payload(&token))
                .await?;
        }
        for topics in topics.chunks(SUBSCRIBE_TOPICS_MAX_ITEMS) {
            let since: Vec<Value> = topics
                .iter()
                .filter_map(|topic| {
                    let (offset, epoch) = positions.get(topic)?;
                    Some(json!({ "topic": topic, "offset": offset, "epoch": epoch }))
                })
                .collect();
            let mut payload = topics_payload(topics);
            if !since.is_empty() {
                payload["since"] = Value::Array(since);
            }
            if let Some(answer) = self
                .restore_call(socket, Action::Subscribe, payload)
                .await?
            {
                self.resumed(&answer);
            }
        }
        Ok(())
    }

    /// One request of the restore, answered before anything else is sent. A refusal is
    /// logged, not fatal: the session continues without it, as it would have without a
    /// reconnect once the token expired.
    /// Answers the success payload, if the server accepted the request.
    async fn restore_call(
        &self,
        socket: &mut Socket<C>,
        action: Action,
        payload: Value,
    ) -> Result<Option<Value>, Option<CloseInfo>> {
        let correlation_id = Uuid::new_v4().to_string();
        let text =
            request_text(&correlation_id, now_ms(), action.as_str(), &payload).map_err(|_| None)?;
        socket.send(Message::text(text)).await.map_err(|_| None)?;
        let answer = async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) => match parse_frame(text.as_str()) {
                        Frame::Notification(notification) => {
                            if self.session.lock().advance(&notification) {
                                let _ = self.notifications.send(notification);
                            }
                        }
                        Frame::Answer {
                            correlation_id: Some(id),
                            inbound,
                        } if id == correlation_id => {
                            return Ok(match inbound {
                                Inbound::Response(Response {
                                    reply: Reply::Error(error),
                                    ..
                                }) => {
                                    tracing::warn!(action = action.as_str(), code = %error.code,
                                        "the server refused restoring the WebSocket session");
                                    None
                                }
                                Inbound::Response(Response {
                                    reply: Reply::Success(value),
                                    ..
                                }) => Some(value),
                                _ => None,
                            });
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

    /// Takes in a `subscribe` answer on a restored connection: the positions, and a
    /// [`RECOVERY_FAILED`] notification for each topic that could not be resumed. The replayed
    /// events follow the answer as ordinary notifications.
    fn resumed(&self, answer: &Value) {
        let Ok(answer) = petstore_api::SubscribedPayload::deserialize(answer) else {
            return;
        };
        let mut session = self.session.lock();
        for position in &answer.positions {
            if position.recovered == Some(false) {
                tracing::warn!(topic = %position.topic, reason = ?position.reason,
                    "events missed while disconnected could not be replayed");
                // The live events go on from the server's position, in whatever epoch.
                session.positions.insert(
                    position.topic.to_string(),
                    (position.offset, position.epoch.clone()),
                );
                let _ = self.notifications.send(Notification {
                    event: RECOVERY_FAILED.to_owned(),
                    correlation_id: None,
                    timestamp: Some(now_ms()),
                    epoch: None,
                    positions: BTreeMap::new(),
                    payload: serde_json::to_value(position).unwrap_or(Value::Null),
                });
            } else {
                session.resume(position);
            }
        }
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
async fn close_gracefully<S: AsyncRead + AsyncWrite + Unpin>(
    socket: &mut WebSocketStream<S>,
    options: &ClientOptions,
) -> Option<CloseInfo> {
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

    #[test]
    fn a_resumed_topic_takes_its_replayed_events_as_new() {
        let mut session = SessionState::default();
        session.topics.insert("pets".to_owned(), Topic::Pets);
        session
            .positions
            .insert("pets".to_owned(), (4, "e".to_owned()));
        // Resumed from 4: events 5 and 6 follow the answer, which says the topic stands at 6.
        session.resume(&petstore_api::TopicPosition {
            topic: Topic::Pets,
            offset: 6,
            epoch: "e".to_owned(),
            recovered: Some(true),
            replayed: Some(2),
            reason: None,
        });
        let replayed = |offset: u64| Notification {
            event: "pet.created".to_owned(),
            correlation_id: None,
            timestamp: None,
            epoch: Some("e".to_owned()),
            positions: BTreeMap::from([("pets".to_owned(), offset)]),
            payload: Value::Null,
        };
        assert!(
            session.advance(&replayed(5)),
            "the first replayed event is new"
        );
        assert!(session.advance(&replayed(6)), "so is the second");
        assert!(!session.advance(&replayed(6)), "a repeat is not");
    }
}
