//! Notifications: the events the server pushes, handed to every [`Notifications`] receiver of
//! a client.
//!
//! The socket task broadcasts each one; a receiver that falls behind skips the oldest and
//! counts them, so that one forgotten receiver can never make the client grow without bound.

use petstore_api::ws::Event;
use serde::de::DeserializeOwned;
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
    /// The event payload.
    pub payload: Value,
}

impl Notification {
    /// The event as the typed enum, if this build knows it.
    pub fn kind(&self) -> Option<Event> {
        Event::from_name(&self.event)
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
