//! Notifications: the events the server pushes, handed to every [`Notifications`] receiver of
//! a client.
//!
//! The socket task broadcasts each one; a receiver that falls behind skips the oldest and
//! counts them, so that one forgotten receiver can never make the client grow without bound.
//!
//! Notifications about topics carry their position in each topic; the client keeps the last
//! one per topic it follows, resumes from it after a reconnect (`subscribe` with `since`), and
//! drops an event it has seen already. A topic that cannot be resumed is reported as a
//! [`RECOVERY_FAILED`] notification, never passed over in silence.

use std::collections::BTreeMap;

use petstore_api::{TopicPosition, ws::Event};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;
use tokio::sync::broadcast;

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
    /// The history `positions` belong to (events addressed to topics only).
    pub epoch: Option<String>,
    /// The event's offset in each topic it is addressed to, by topic name. The client keeps
    /// the last one per topic it follows and resumes from it after a reconnect.
    pub positions: BTreeMap<String, u64>,
    /// The event payload.
    pub payload: Value,
}

/// The event name of the notification the client itself emits when a subscription could not
/// be resumed after a reconnect: events were missed and the application should re-read what
/// the topic is about. Its payload is the server's [`petstore_api::TopicPosition`]
/// (`{topic, offset, epoch, recovered: false, reason}`); [`Notification::recovery_failure`]
/// reads it.
pub const RECOVERY_FAILED: &str = "client.recovery_failed";

impl Notification {
    /// The event as the typed enum, if this build knows it.
    pub fn kind(&self) -> Option<Event> {
        Event::from_name(&self.event)
    }

    /// For the client's own [`RECOVERY_FAILED`] notification: the topic that could not be
    /// resumed and why.
    pub fn recovery_failure(&self) -> Option<TopicPosition> {
        if self.event != RECOVERY_FAILED {
            return None;
        }
        TopicPosition::deserialize(&self.payload).ok()
    }

    /// The payload read as `T` (e.g. the `Pet` of a `pet.created`).
    ///
    /// # Errors
    /// When the payload is not a `T`.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.payload)
    }
}

/// The receiving end of the notifications of one client.
///
/// Each receiver sees the notifications that arrive after it was created. One that falls more
/// than the notification buffer behind skips the oldest ones and counts them in
/// [`missed`](Self::missed), so a forgotten receiver can never grow without bound.
#[derive(Debug)]
pub struct Notifications {
    pub(crate) receiver: broadcast::Receiver<Notification>,
    pub(crate) missed: u64,
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
