//! [`WsClient`], the handle callers hold: it hands each call to the socket task (see
//! the `connection` module) and waits for the answer within the request timeout.
//!
//! Every typed call, generated or hand-written, goes through `WsClient::call` and
//! `decode`: one place that sends an action and one that turns a response into the
//! documented success type or [`ClientError::Api`]. [`Raw`] is the way around the types, for
//! tests of what a well-behaved client would never send.

use std::time::Duration;

use petstore_api::{Topic, ws::Action};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};
use uuid::Uuid;

use crate::{
    ClientError, ClientOptions, CloseInfo, Inbound, Notifications, Reply,
    connection::{self, Command, Connector, Handle},
    envelope::{now_ms, request_text},
};

/// A connection to the WebSocket endpoint. Cheap to clone; clones share the connection, and
/// it is closed when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct WsClient {
    pub(crate) inner: std::sync::Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) handle: Handle,
    request_timeout: Duration,
}

impl WsClient {
    /// Connects to `url` (`ws://host:port/api/v3/ws`).
    ///
    /// # Errors
    /// When the URL or a configured header is not valid, the connection or the handshake fails
    /// or times out, or the server refuses the upgrade ([`ClientError::Rejected`]).
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Self, ClientError> {
        Self::connect_with(connection::Tcp, url, options).await
    }

    /// Connects through `connector` (TCP, or an in-memory pipe in the unit tests).
    pub(crate) async fn connect_with(
        connector: impl Connector,
        url: &str,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let request_timeout = options.request_timeout;
        let handle = connection::start(connector, url, options).await?;
        Ok(Self {
            inner: std::sync::Arc::new(Inner {
                handle,
                request_timeout,
            }),
        })
    }

    /// Sends `action` with `request` serialized as its payload (an operation's request struct:
    /// parameters by wire name, the body as `body`) and reads the success payload as `T`. The
    /// one call behind every generated operation method.
    pub(crate) async fn operation<R: Serialize, T: DeserializeOwned>(
        &self,
        action: Action,
        request: &R,
    ) -> Result<T, ClientError> {
        let payload = serde_json::to_value(request)?;
        let reply = self.call(action, payload).await?;
        decode(action, reply)
    }

    /// Sends `action` with `payload` and waits for its response.
    pub(crate) async fn call(&self, action: Action, payload: Value) -> Result<Reply, ClientError> {
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

    /// The way around the types: any payload for an action, or any text frame at all, for
    /// tests of malformed, hostile or out-of-contract input. Nothing sent this way is
    /// remembered for reconnects.
    pub fn raw(&self) -> Raw<'_> {
        Raw { client: self }
    }

    /// A receiver of the notifications that arrive from now on.
    pub fn notifications(&self) -> Notifications {
        let receiver = match self.inner.handle.notifications.upgrade() {
            Some(sender) => sender.subscribe(),
            // The client is closed for good: a receiver that reports the end at once.
            None => broadcast::channel(1).1,
        };
        Notifications {
            receiver,
            missed: 0,
        }
    }

    /// The topics the client is subscribed to, as the server accepted them, in the order of
    /// their text.
    pub fn topics(&self) -> Vec<Topic> {
        self.inner
            .handle
            .session
            .lock()
            .topics
            .values()
            .cloned()
            .collect()
    }

    /// Whether the client is connected right now.
    pub fn is_connected(&self) -> bool {
        self.inner.handle.status.borrow().connected
    }

    /// How many connections the client has opened: 1, plus one per successful reconnect.
    pub fn connections(&self) -> u64 {
        self.inner.handle.status.borrow().connections
    }

    /// The close frame of the last disconnect, if the server sent one.
    pub fn last_close(&self) -> Option<CloseInfo> {
        self.inner.handle.status.borrow().last_close.clone()
    }

    /// Waits until the current connection is gone, and returns its close frame if the server
    /// sent one.
    pub async fn closed(&self) -> Option<CloseInfo> {
        let mut status = self.inner.handle.status.clone();
        // The socket task marks the connection gone before it stops, so the value seen when
        // the channel closes is final either way.
        let _ = status.wait_for(|status| !status.connected).await;
        let status = status.borrow();
        status.last_close.clone()
    }

    /// Waits until the client is connected, e.g. again after a reconnect.
    ///
    /// # Errors
    /// [`ClientError::Closed`] when it has given up.
    pub async fn connected(&self) -> Result<(), ClientError> {
        let mut status = self.inner.handle.status.clone();
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
        self.inner.handle.shutdown.notify_one();
        let mut status = self.inner.handle.status.clone();
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
                .handle
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

/// The success payload of `action` read as `T`, or the server's refusal as
/// [`ClientError::Api`].
pub(crate) fn decode<T: DeserializeOwned>(action: Action, reply: Reply) -> Result<T, ClientError> {
    let payload = reply.into_result()?;
    T::deserialize(payload).map_err(|source| ClientError::Payload {
        action: action.as_str(),
        source,
    })
}

/// Calls that bypass the types ([`WsClient::raw`]). Taken by value, so that
/// `client.raw().call(…)` is a future of its own.
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a> {
    client: &'a WsClient,
}

impl Raw<'_> {
    /// Sends `action` with `payload` as it is and returns the outcome the response states,
    /// success or error, without reading the payload.
    ///
    /// # Errors
    /// When there was no well-formed response.
    pub async fn call(self, action: Action, payload: Value) -> Result<Reply, ClientError> {
        self.client.call(action, payload).await
    }

    /// Sends `text` as a text frame as it is and returns what answers it: the response carrying
    /// the frame's `correlationId` if the frame has one and the server echoes it, otherwise the
    /// next response or other frame that no call is waiting for. Notifications are not answers;
    /// they go to [`WsClient::notifications`].
    ///
    /// # Errors
    /// When there was no answer.
    pub async fn send_text(self, text: impl Into<String>) -> Result<Inbound, ClientError> {
        let text = text.into();
        let key = serde_json::from_str::<Value>(&text).ok().and_then(|value| {
            value
                .get("correlationId")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let (reply, answer) = oneshot::channel();
        self.client
            .exchange(Command::Raw { key, text, reply }, answer)
            .await
    }
}
