//! Redis metrics: the circuit breaker, commands, retries and the cluster.
//!
//! Labels come from fixed lists: breaker names and commands are `&'static str` chosen in the
//! code (`get_pet`, `place_order`, …), never keys or values.

use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Gauge, Histogram, Meter, ObservableCounter},
};

/// Command latency buckets, in seconds: a loopback round trip (~50 µs) to the command timeout.
const DURATION_BUCKETS: [f64; 12] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0,
];

/// The Redis and cluster families.
pub struct RedisMetrics {
    breaker_state: Gauge<i64>,
    breaker_transitions: Counter<u64>,
    command_duration: Histogram<f64>,
    errors: Counter<u64>,
    retries: Counter<u64>,
    cluster_nodes: Gauge<u64>,
    pubsub_messages: Counter<u64>,
    replication: Counter<u64>,
    /// Kept alive: its callback reads [`CACHE_EVENTS`].
    _cache: ObservableCounter<u64>,
}

/// What happened in the Redis store's pet cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    /// A read served from the cache.
    Hit,
    /// A read that went to Redis.
    Miss,
    /// A pet evicted because it changed.
    Invalidation,
    /// The whole cache emptied (its invalidations may have been lost, or Redis was flushed).
    Flush,
}

impl CacheEvent {
    const ALL: [Self; 4] = [Self::Hit, Self::Miss, Self::Invalidation, Self::Flush];

    fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Invalidation => "invalidation",
            Self::Flush => "flush",
        }
    }
}

/// The cache's counts, by [`CacheEvent`] in the order of `CacheEvent::ALL`: plain atomics on
/// the read path (a hit costs one increment), read out when `/metrics` is scraped.
static CACHE_EVENTS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Which way a pub/sub message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PubSubDirection {
    /// Published by this node.
    Published,
    /// Received by this node's subscriber.
    Received,
    /// Received but not understood (a bug or a foreign publisher); dropped.
    Malformed,
}

impl PubSubDirection {
    fn label(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Received => "received",
            Self::Malformed => "malformed",
        }
    }
}

impl RedisMetrics {
    pub(super) fn new(meter: &Meter) -> Self {
        let replication = meter
            .u64_counter("petstore.redis.replication")
            .with_description("Writes that waited for replicas before their client was answered, by whether enough replicas confirmed in time (confirmed, unconfirmed: applied on the primary only).")
            .with_unit("{write}")
            .build();
        for result in ["confirmed", "unconfirmed"] {
            replication.add(0, &[KeyValue::new("result", result)]);
        }
        Self {
            breaker_state: meter
                .i64_gauge("petstore.circuit_breaker.state")
                .with_description("Circuit breaker state: 0 closed, 1 half open, 2 open.")
                .build(),
            breaker_transitions: meter
                .u64_counter("petstore.circuit_breaker.transitions")
                .with_description("Circuit breaker state changes, by the state entered.")
                .with_unit("{transition}")
                .build(),
            command_duration: meter
                .f64_histogram("petstore.redis.command.duration")
                .with_description("Time of a Redis call (retries included), by command.")
                .with_unit("s")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            errors: meter
                .u64_counter("petstore.redis.errors")
                .with_description("Redis calls that failed (unreachable, timed out or refused by the breaker), by command.")
                .with_unit("{error}")
                .build(),
            retries: meter
                .u64_counter("petstore.retries")
                .with_description("Retries of idempotent Redis reads, by command.")
                .with_unit("{retry}")
                .build(),
            cluster_nodes: meter
                .u64_gauge("petstore.cluster.nodes")
                .with_description("Live nodes in the registry, as last seen by this node.")
                .with_unit("{node}")
                .build(),
            pubsub_messages: meter
                .u64_counter("petstore.pubsub.messages")
                .with_description("Event messages through Redis pub/sub, by direction.")
                .with_unit("{message}")
                .build(),
            replication,
            _cache: meter
                .u64_observable_counter("petstore.redis.cache")
                .with_description("Events of the Redis store's pet cache, by event (hit, miss, invalidation, flush).")
                .with_unit("{event}")
                .with_callback(|observer| {
                    for event in CacheEvent::ALL {
                        observer.observe(
                            CACHE_EVENTS[event as usize].load(Ordering::Relaxed),
                            &[KeyValue::new("event", event.label())],
                        );
                    }
                })
                .build(),
        }
    }

    /// Records one event of the pet cache.
    pub fn cache(&self, event: CacheEvent) {
        CACHE_EVENTS[event as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Records the breaker's state as the gauge's value: 0 closed, 1 half open, 2 open.
    ///
    /// Plain values rather than the breaker's own state type: the breaker records into the
    /// metrics, so the metrics cannot know the breaker.
    pub fn breaker_state(&self, breaker: &'static str, gauge: i64) {
        self.breaker_state
            .record(gauge, &[KeyValue::new("breaker", breaker)]);
    }

    /// Records a transition into the state named `to` (`closed`, `half_open`, `open`), whose
    /// gauge value is `gauge` (as in [`RedisMetrics::breaker_state`]).
    pub fn breaker_transition(&self, breaker: &'static str, to: &'static str, gauge: i64) {
        self.breaker_state(breaker, gauge);
        self.breaker_transitions.add(
            1,
            &[KeyValue::new("breaker", breaker), KeyValue::new("to", to)],
        );
    }

    /// Records one call of `command` that took `seconds`, and whether it failed.
    pub fn command(&self, command: &'static str, seconds: f64, failed: bool) {
        let labels = [KeyValue::new("command", command)];
        self.command_duration.record(seconds, &labels);
        if failed {
            self.errors.add(1, &labels);
        }
    }

    /// Records a retry of `command`.
    pub fn retry(&self, command: &'static str) {
        self.retries.add(1, &[KeyValue::new("operation", command)]);
    }

    /// Records the number of live nodes.
    pub fn cluster_nodes(&self, nodes: u64) {
        self.cluster_nodes.record(nodes, &[]);
    }

    /// Records one write that waited for replicas: `confirmed` or `unconfirmed`.
    pub fn replication(&self, result: &'static str) {
        self.replication.add(1, &[KeyValue::new("result", result)]);
    }

    /// Records one pub/sub message.
    pub fn pubsub(&self, direction: PubSubDirection) {
        self.pubsub_messages
            .add(1, &[KeyValue::new("direction", direction.label())]);
    }
}
