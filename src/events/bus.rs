//! Where handlers publish events.
//!
//! A single node delivers straight to its own [`Hub`] ([`LocalEventBus`]). Several nodes behind
//! a load balancer need every node's hub to see every event: a Redis bus will publish the
//! notification's serialized form (`Notification` implements serde) to a pub/sub channel, and a
//! subscriber task on every node, the publishing one included, will read it back and call
//! [`Hub::deliver`]. Handlers do not change: they only see [`EventBus`].

use std::sync::Arc;

use async_trait::async_trait;

use super::{Hub, Notification, Topic};

/// Publishes notifications to every subscriber, on this node or all of them.
///
/// Publishing happens after the write it reports has been committed, so it cannot fail the
/// caller: an implementation that can fail (a network bus) logs and counts its errors and
/// returns. Subscribers may miss an event then; clients that need certainty re-read the
/// resource.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Sends `notification` to its audience.
    async fn publish(&self, notification: Notification);

    /// Whether anyone may be following `topic`. Publishers use it to skip building a payload
    /// that costs a store read (the inventory) when nobody would receive it. A bus that cannot
    /// tell cheaply answers `true`, the default.
    fn has_subscribers(&self, topic: &Topic) -> bool {
        let _ = topic;
        true
    }
}

/// The bus of a single node: delivers to the local hub, synchronously and in publishing order.
#[derive(Clone, Default)]
pub struct LocalEventBus {
    hub: Arc<Hub>,
}

impl LocalEventBus {
    /// A bus delivering to `hub`.
    #[must_use]
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
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
        deliver_here(&self.hub, &notification);
    }

    fn has_subscribers(&self, topic: &Topic) -> bool {
        self.hub.has_subscribers(topic)
    }
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
