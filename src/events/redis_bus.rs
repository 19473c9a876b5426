//! The event bus of a cluster: every event goes through one Redis pub/sub channel, and every
//! node delivers what it reads back from it to its own [`Hub`].
//!
//! ```text
//! node A: publish ─► PUBLISH {prefix}:events ─► Redis ─┬─► subscriber task of A ─► A's hub
//!                                                      └─► subscriber task of B ─► B's hub
//! ```
//!
//! The publishing node does not deliver locally on the side: it too delivers only what its
//! subscriber reads back, so every node sees the events in the one order Redis assigned them.
//!
//! # Wire format
//!
//! One message per event, on the channel `{prefix}:events`: the serialized [`Notification`]
//! (its serde form), UTF-8 JSON:
//!
//! ```text
//! {"id":"<uuid>","event":"pet.created","timestamp":1700000000123,
//!  "audience":{"topics":["pets","pet:5"]} | {"user":"<owner key>"},
//!  "payload":"<the payload's JSON text, as a JSON string>"}
//! ```
//!
//! `timestamp` is the time the event was created (milliseconds since the Unix epoch) on the
//! publishing node; receivers keep it, so the envelope every subscriber sees is identical on
//! every node. Unknown fields are ignored, so a newer node may add some. A message that does not
//! decode (a foreign publisher, a corrupt payload, an unknown event name) is counted as
//! malformed and dropped.
//!
//! # Delivery guarantees
//!
//! At most once, like the local bus. A publish that fails (Redis down, breaker open) is logged
//! and counted, and reaches nobody, this node included. Messages published while a node's
//! subscriber is reconnecting are lost for that node (Redis pub/sub keeps nothing); the
//! subscriber resubscribes by itself once the connection is back. A subscriber that falls more
//! than 1,024 messages behind loses the oldest (counted as lost).
//!
//! # Cost
//!
//! Publishing serializes the notification once. Each node decodes each message once (one
//! allocation for the payload) and hands it to [`Hub::deliver`], which renders the frame once
//! and shares it with every connection. The subscriber task awaits nothing but the next message.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use async_trait::async_trait;
use bytes::Bytes;
use fred::{
    clients::SubscriberClient,
    interfaces::{ClientLike, EventInterface, PubsubInterface},
    types::Message,
};
use parking_lot::Mutex;
use tokio::{sync::broadcast::error::RecvError, task::JoinHandle};

use super::{EventBus, Hub, Notification, Topic};
use crate::{
    redis::{Redis, RedisError},
    telemetry::metrics::{self, PubSubDirection},
};

/// How long [`RedisEventBus::start`] waits for the subscriber connection.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What one bus has done since it started; a snapshot from [`RedisEventBus::stats`].
///
/// The same counts go to the global metrics (`petstore_pubsub_messages_total`); these are this
/// bus's own, for tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Events published to Redis.
    pub published: u64,
    /// Events whose publish failed; nobody received them.
    pub publish_failed: u64,
    /// Messages read back and delivered to the local hub.
    pub received: u64,
    /// Messages read back that did not decode; dropped.
    pub malformed: u64,
    /// Messages the subscriber fell too far behind to read.
    pub lost: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    publish_failed: AtomicU64,
    received: AtomicU64,
    malformed: AtomicU64,
    lost: AtomicU64,
}

/// The Redis pub/sub [`EventBus`]; see the module documentation.
///
/// [`RedisEventBus::start`] subscribes and spawns the subscriber task. The task ends with
/// [`RedisEventBus::shutdown`] or when the bus is dropped.
pub struct RedisEventBus {
    redis: Redis,
    channel: String,
    subscriber: SubscriberClient,
    counters: Arc<Counters>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for RedisEventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEventBus")
            .field("channel", &self.channel)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl RedisEventBus {
    /// Connects a subscriber to `{prefix}:events`, spawns the task that delivers what it reads
    /// to `hub`, and returns the bus publishing through `redis`.
    ///
    /// Once started, the subscriber reconnects and resubscribes by itself after Redis goes
    /// away and comes back.
    ///
    /// # Errors
    /// [`RedisError::Config`] if the subscriber cannot be built, [`RedisError::Unreachable`]
    /// if it cannot connect or subscribe within ten seconds.
    pub async fn start(redis: Redis, hub: Arc<Hub>) -> Result<Arc<Self>, RedisError> {
        let channel = redis.key("events");
        let subscriber = redis.subscriber()?;
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
            subscriber.init().await?;
            Ok::<_, fred::error::Error>(())
        })
        .await;
        match connected {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                let _ = subscriber.quit().await;
                return Err(RedisError::Unreachable(error.to_string()));
            }
            Err(_) => {
                let _ = subscriber.quit().await;
                return Err(RedisError::Unreachable(
                    "the event subscriber did not connect in time".to_owned(),
                ));
            }
        }
        // Taken before subscribing, so no message can arrive before there is a reader.
        let messages = subscriber.message_rx();
        let counters = Arc::new(Counters::default());
        let resubscriber = subscriber.manage_subscriptions();
        let subscribed =
            tokio::time::timeout(CONNECT_TIMEOUT, subscriber.subscribe(channel.clone())).await;
        let failure = match subscribed {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some("no answer to SUBSCRIBE in time".to_owned()),
        };
        if let Some(message) = failure {
            resubscriber.abort();
            let _ = subscriber.quit().await;
            return Err(RedisError::Unreachable(message));
        }
        let reader = tokio::spawn(read_messages(
            messages,
            channel.clone(),
            hub,
            Arc::clone(&counters),
        ));
        tracing::info!(%channel, "event bus subscribed");
        Ok(Arc::new(Self {
            redis,
            channel,
            subscriber,
            counters,
            tasks: Mutex::new(vec![reader, resubscriber]),
        }))
    }

    /// The channel events go through: `{prefix}:events`.
    #[must_use]
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// This bus's counts so far.
    #[must_use]
    pub fn stats(&self) -> BusStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        BusStats {
            published: read(&self.counters.published),
            publish_failed: read(&self.counters.publish_failed),
            received: read(&self.counters.received),
            malformed: read(&self.counters.malformed),
            lost: read(&self.counters.lost),
        }
    }

    /// Stops delivering: ends the subscriber task and closes the subscriber connection.
    /// Publishing still works (through the shared pool), but this node's hub receives nothing
    /// more. Calling it again does nothing.
    pub async fn shutdown(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock());
        if tasks.is_empty() {
            return;
        }
        for task in tasks {
            task.abort();
        }
        let _ = self.subscriber.unsubscribe(self.channel.clone()).await;
        let _ = self.subscriber.quit().await;
        tracing::info!(channel = %self.channel, "event bus unsubscribed");
    }
}

impl Drop for RedisEventBus {
    /// Ends the subscriber task; the connection is closed in the background if a runtime is
    /// still there to do it.
    fn drop(&mut self) {
        let tasks = std::mem::take(&mut *self.tasks.lock());
        if tasks.is_empty() {
            return;
        }
        for task in tasks {
            task.abort();
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let subscriber = self.subscriber.clone();
            runtime.spawn(async move {
                let _ = subscriber.quit().await;
            });
        }
    }
}

#[async_trait]
impl EventBus for RedisEventBus {
    /// Publishes the serialized notification; the subscriber tasks of every node, this one
    /// included, deliver it. Never fails the caller: a failure is logged and counted, and
    /// waits at most the command timeout (nothing while the breaker is open).
    async fn publish(&self, notification: Notification) {
        let message = match serde_json::to_vec(&notification) {
            Ok(message) => Bytes::from(message),
            Err(error) => {
                // Only a payload that is not UTF-8 gets here: a handler bug.
                self.counters.publish_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, event = notification.event().as_str(), "cannot serialize an event");
                return;
            }
        };
        // The message is reference-counted: handing it to the command copies nothing.
        let published = self
            .redis
            .write("publish_event", |client| {
                let channel = self.channel.clone();
                let message = message.clone();
                async move { client.publish::<u64, _, _>(channel, message).await }
            })
            .await;
        match published {
            Ok(_) => {
                self.counters.published.fetch_add(1, Ordering::Relaxed);
                metrics::global().redis.pubsub(PubSubDirection::Published);
            }
            Err(error) => {
                self.counters.publish_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    %error,
                    event = notification.event().as_str(),
                    id = %notification.id(),
                    "an event could not be published; its subscribers miss it"
                );
            }
        }
    }

    /// `true`: subscribers on other nodes are not known here. (A cluster-wide index of topics
    /// would cost a Redis round trip per question or a replicated set per subscription; the
    /// one publisher that asks, the inventory, is cheap enough to publish regardless.)
    fn has_subscribers(&self, _topic: &Topic) -> bool {
        true
    }
}

/// The subscriber task: decodes each message of `channel` once and delivers it to `hub`.
async fn read_messages(
    mut messages: tokio::sync::broadcast::Receiver<Message>,
    channel: String,
    hub: Arc<Hub>,
    counters: Arc<Counters>,
) {
    loop {
        match messages.recv().await {
            Ok(message) => {
                if &*message.channel != channel.as_str() {
                    continue;
                }
                deliver(&message, &hub, &counters);
            }
            Err(RecvError::Lagged(missed)) => {
                counters.lost.fetch_add(missed, Ordering::Relaxed);
                tracing::warn!(
                    missed,
                    "the event subscriber fell behind; its subscribers missed events"
                );
            }
            Err(RecvError::Closed) => {
                tracing::debug!(%channel, "the event subscriber closed");
                return;
            }
        }
    }
}

/// Decodes one message and delivers it; a message that does not decode is counted and dropped.
fn deliver(message: &Message, hub: &Hub, counters: &Counters) {
    let notification = message
        .value
        .as_bytes()
        .ok_or_else(|| "not a string".to_owned())
        .and_then(|bytes| {
            serde_json::from_slice::<Notification>(bytes).map_err(|error| error.to_string())
        });
    let notification = match notification {
        Ok(notification) => notification,
        Err(error) => {
            counters.malformed.fetch_add(1, Ordering::Relaxed);
            metrics::global().redis.pubsub(PubSubDirection::Malformed);
            tracing::warn!(%error, "dropped a malformed event message");
            return;
        }
    };
    counters.received.fetch_add(1, Ordering::Relaxed);
    metrics::global().redis.pubsub(PubSubDirection::Received);
    super::bus::deliver_here(hub, &notification);
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{
        events::{Audience, Event, Outbox, OutboxReceiver},
        redis::RedisSettings,
    };
    use petstore_testkit::redis::{LocalRedis, Persistence};

    /// A hang guard for awaits that must complete; never a timing assertion.
    const GUARD: Duration = Duration::from_secs(20);

    fn settings(url: String, prefix: &str) -> RedisSettings {
        let mut settings = RedisSettings::new(url);
        settings.prefix = prefix.to_owned();
        settings
    }

    fn unique_prefix() -> String {
        format!("test-{}", uuid::Uuid::new_v4().simple())
    }

    /// One node: its own connection, hub and bus.
    struct Node {
        redis: Redis,
        hub: Arc<Hub>,
        bus: Arc<RedisEventBus>,
    }

    async fn node(settings: RedisSettings) -> Node {
        let redis = Redis::connect(settings).await.expect("connects");
        let hub = Arc::new(Hub::new());
        let bus = RedisEventBus::start(redis.clone(), Arc::clone(&hub))
            .await
            .expect("subscribes");
        Node { redis, hub, bus }
    }

    /// A Redis bus under a prefix of its own delivering to `hub`, for the checks every bus
    /// shares.
    async fn fresh(hub: Arc<Hub>) -> Arc<dyn EventBus> {
        let redis = Redis::connect(settings(LocalRedis::shared().url(), &unique_prefix()))
            .await
            .expect("connects");
        RedisEventBus::start(redis, hub).await.expect("subscribes")
    }

    crate::events::conformance::event_bus_conformance_tests!(fresh);

    fn follow(hub: &Hub, topic: Topic) -> OutboxReceiver {
        let id = hub.next_connection_id();
        let (outbox, receiver) = Outbox::new(64);
        hub.attach(id, outbox);
        assert!(hub.subscribe(id, topic));
        receiver
    }

    fn pet_created(id: i64) -> Notification {
        Notification::new(
            Event::PetCreated,
            Audience::Topics(vec![Topic::Pets, Topic::Pet(id)]),
            Bytes::from(format!(r#"{{"id":{id},"name":"Rex","photoUrls":[]}}"#)),
        )
    }

    async fn next_frame(receiver: &OutboxReceiver) -> Bytes {
        tokio::time::timeout(GUARD, receiver.recv())
            .await
            .expect("a frame arrives")
            .expect("the outbox is open")
    }

    async fn raw_publish(redis: &Redis, channel: &str, message: &'static str) {
        let channel = channel.to_owned();
        redis
            .write("publish", |client| {
                let channel = channel.clone();
                async move { client.publish::<u64, _, _>(channel, message).await }
            })
            .await
            .expect("published");
    }

    #[tokio::test]
    async fn an_event_published_on_one_node_reaches_the_subscribers_of_every_node() {
        let prefix = unique_prefix();
        let url = LocalRedis::shared().url();
        let a = node(settings(url.clone(), &prefix)).await;
        let b = node(settings(url, &prefix)).await;
        let on_a = follow(&a.hub, Topic::Pets);
        let on_b = follow(&b.hub, Topic::Pet(5));

        let notification = pet_created(5);
        a.bus.publish(notification.clone()).await;

        assert_eq!(next_frame(&on_b).await, notification.frame());
        assert_eq!(next_frame(&on_a).await, notification.frame());
        // The publisher delivered it once: what it read back, nothing on the side.
        assert!(on_a.try_recv().is_err());
        assert_eq!(a.bus.stats().published, 1);
        assert_eq!(a.bus.stats().received, 1);
        assert_eq!(b.bus.stats().received, 1);
        assert_eq!(b.bus.stats().published, 0);

        // Events from both nodes arrive everywhere in one order.
        let first = pet_created(5);
        let second = pet_created(5);
        b.bus.publish(first.clone()).await;
        a.bus.publish(second.clone()).await;
        for receiver in [&on_a, &on_b] {
            assert_eq!(next_frame(receiver).await, first.frame());
            assert_eq!(next_frame(receiver).await, second.frame());
        }
        a.bus.shutdown().await;
        b.bus.shutdown().await;
    }

    #[tokio::test]
    async fn malformed_messages_are_dropped_and_later_ones_still_arrive() {
        let prefix = unique_prefix();
        let a = node(settings(LocalRedis::shared().url(), &prefix)).await;
        let receiver = follow(&a.hub, Topic::Pets);

        for garbage in [
            "not json",
            r#"{"id":"x"}"#,
            r#"{"id":"01234567-89ab-cdef-0123-456789abcdef","event":"pet.exploded","timestamp":1,"audience":{"topics":["pets"]},"payload":"{}"}"#,
            r#"{"id":"01234567-89ab-cdef-0123-456789abcdef","event":"pet.created","timestamp":1,"audience":{"topics":["pets"]},"payload":"{\"id\":"}"#,
        ] {
            raw_publish(&a.redis, a.bus.channel(), garbage).await;
        }
        let notification = pet_created(1);
        a.bus.publish(notification.clone()).await;

        assert_eq!(next_frame(&receiver).await, notification.frame());
        // Messages arrive in order: the malformed ones were handled first.
        let stats = a.bus.stats();
        assert_eq!(stats.malformed, 4);
        assert_eq!(stats.received, 1);
        assert!(receiver.try_recv().is_err());
    }

    #[tokio::test]
    async fn the_subscriber_resubscribes_after_redis_comes_back() {
        let mut server = LocalRedis::start(Persistence::None).expect("redis-server");
        let mut settings = settings(server.url(), &unique_prefix());
        settings.command_timeout = Duration::from_millis(300);
        settings.read_retries = 0;
        let a = node(settings).await;
        let receiver = follow(&a.hub, Topic::Pets);

        let before = pet_created(1);
        a.bus.publish(before.clone()).await;
        assert_eq!(next_frame(&receiver).await, before.frame());

        server.kill();
        // Publishing while Redis is down neither panics nor hangs.
        tokio::time::timeout(GUARD, a.bus.publish(pet_created(2)))
            .await
            .expect("publish returns");
        assert!(a.bus.stats().publish_failed >= 1);

        server.restart().expect("redis-server comes back");
        // The subscriber reconnects and resubscribes by itself; until it has, events published
        // meanwhile are lost (pub/sub keeps nothing), so keep publishing until one arrives.
        let deadline = Instant::now() + GUARD;
        let mut sent = Vec::new();
        let frame = loop {
            assert!(
                Instant::now() < deadline,
                "no event arrived after the restart"
            );
            let notification = pet_created(3);
            sent.push(notification.frame());
            a.bus.publish(notification).await;
            if let Ok(frame) =
                tokio::time::timeout(Duration::from_millis(200), receiver.recv()).await
            {
                break frame.expect("the outbox is open");
            }
        };
        // What arrives is one of the events published after the restart, not one from the
        // outage turning up late.
        assert!(sent.contains(&frame));
        assert!(a.bus.stats().received >= 2);
    }

    #[tokio::test]
    async fn shutdown_stops_delivery() {
        let prefix = unique_prefix();
        let url = LocalRedis::shared().url();
        let a = node(settings(url.clone(), &prefix)).await;
        let b = node(settings(url, &prefix)).await;
        let on_a = follow(&a.hub, Topic::Pets);
        let on_b = follow(&b.hub, Topic::Pets);

        b.bus.shutdown().await;
        b.bus.shutdown().await;
        let notification = pet_created(1);
        a.bus.publish(notification.clone()).await;
        assert_eq!(next_frame(&on_a).await, notification.frame());
        // A's subscriber read it; B's, gone, did not.
        let marker = pet_created(2);
        a.bus.publish(marker.clone()).await;
        assert_eq!(next_frame(&on_a).await, marker.frame());
        assert!(on_b.try_recv().is_err());
        assert_eq!(b.bus.stats().received, 0);
    }
}
