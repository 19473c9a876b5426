//! Where handlers publish events.
//!
//! A single node delivers straight to its own [`Hub`] ([`LocalEventBus`]). Several nodes behind
//! a load balancer need every node's hub to see every event: a Redis bus will publish the
//! notification's serialized form (`Notification` implements serde) to a pub/sub channel, and a
//! subscriber task on every node, the publishing one included, will read it back and call
//! [`Hub::deliver`]. Handlers do not change: they only see [`EventBus`].

use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{
    Hub, Notification, Topic,
    history::{HistorySettings, LocalHistory, RecoverError, Resume, TopicRecovery},
};

/// Publishes notifications to every subscriber, on this node or all of them.
///
/// Publishing happens after the write it reports has been committed, so it cannot fail the
/// caller: an implementation that can fail (a network bus) logs and counts its errors and
/// returns. A bus places every event it publishes (a sequence number, an offset per topic, see
/// [`super::history`]) and keeps each topic's recent events, so a reconnecting client can be
/// sent what it missed ([`EventBus::recover`]).
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Sends `notification` to its audience.
    async fn publish(&self, notification: Notification);

    /// Sends each of `notifications` to its audience, in order, as [`EventBus::publish`] one
    /// after the other would. A bus that can place several events in one step (one Redis
    /// round trip for the events of one write) overrides it.
    async fn publish_all(&self, notifications: Vec<Notification>) {
        for notification in notifications {
            self.publish(notification).await;
        }
    }

    /// Whether anyone may be following `topic`. Publishers use it to skip building a payload
    /// that costs a store read (the inventory) when nobody would receive it. A bus that cannot
    /// tell cheaply answers `true`, the default.
    fn has_subscribers(&self, topic: &Topic) -> bool {
        let _ = topic;
        true
    }

    /// For a session the hub registered at `horizon` (see [`Hub::subscribe_from`]): each
    /// topic's position and the events after the client's position up to the horizon.
    ///
    /// # Errors
    /// [`RecoverError::Ahead`] for a position the topic never reached,
    /// [`RecoverError::Unavailable`] when the history cannot be read.
    async fn recover(
        &self,
        resumes: &[Resume],
        horizon: u64,
    ) -> Result<Vec<TopicRecovery>, RecoverError>;
}

/// The bus of a single node: places each event in its [`LocalHistory`] and delivers it to the
/// local hub, both under one lock, so placing order and delivery order are the same.
#[derive(Clone)]
pub struct LocalEventBus {
    hub: Arc<Hub>,
    history: Arc<Mutex<LocalHistory>>,
}

impl Default for LocalEventBus {
    fn default() -> Self {
        Self::new(Arc::default())
    }
}

impl LocalEventBus {
    /// A bus delivering to `hub`, keeping the default history.
    #[must_use]
    pub fn new(hub: Arc<Hub>) -> Self {
        Self::with_history(hub, HistorySettings::default())
    }

    /// A bus delivering to `hub`, keeping the history `settings` say.
    #[must_use]
    pub fn with_history(hub: Arc<Hub>, settings: HistorySettings) -> Self {
        Self {
            hub,
            history: Arc::new(Mutex::new(LocalHistory::new(settings))),
        }
    }

    /// The hub it delivers to.
    #[must_use]
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

/// Delivers `notification` to this node's sessions and records the outcome; every bus ends
/// here.
pub(super) fn deliver_here(hub: &Hub, notification: &Notification) {
    let delivery = hub.deliver(notification);
    crate::telemetry::metrics::ws().notifications(delivery.delivered, delivery.overflowed);
    if delivery.overflowed > 0 {
        // The sessions of these connections close them; this is the publisher's view.
        tracing::debug!(
            event = notification.event().as_str(),
            overflowed = delivery.overflowed,
            "slow consumers missed an event"
        );
    }
    tracing::trace!(
        event = notification.event().as_str(),
        delivered = delivery.delivered,
        "event delivered"
    );
}

#[async_trait]
impl EventBus for LocalEventBus {
    async fn publish(&self, notification: Notification) {
        let mut history = self.history.lock();
        match history.place(notification) {
            Some(placed) => deliver_here(&self.hub, &placed),
            None => superseded(),
        }
    }

    fn has_subscribers(&self, topic: &Topic) -> bool {
        self.hub.has_subscribers(topic)
    }

    async fn recover(
        &self,
        resumes: &[Resume],
        horizon: u64,
    ) -> Result<Vec<TopicRecovery>, RecoverError> {
        let now = chrono::Utc::now().timestamp_millis();
        self.history.lock().recover(resumes, horizon, now)
    }
}

/// Records an event not published because a newer version of its entity already was.
pub(super) fn superseded() {
    crate::telemetry::metrics::ws().superseded();
    tracing::debug!("event superseded by a newer version of its entity");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A local bus delivering to `hub`, for the checks every bus shares.
    async fn fresh(hub: Arc<Hub>) -> Arc<dyn EventBus> {
        Arc::new(LocalEventBus::new(hub))
    }

    crate::events::conformance::event_bus_conformance_tests!(fresh);
}
