//! Redis, the shared backend of a cluster: one connection pool per node behind one circuit
//! breaker, used by the Redis store, the event bus, the node registry and the shared limits.
//!
//! - `client`: [`Redis`], the pool and the single door every command goes through (breaker,
//!   connection state, retries for idempotent reads, metrics, error classification).
//! - `breaker`: the circuit breaker itself.
//! - `links`: which pooled connections are up, from the client's events, so a call fails at
//!   once instead of waiting on a connection known to be down.
//! - `watchdog`: the PING watchdog that replaces a subscriber connection gone silent.
//! - `topology`: what `--redis-url` names (one server, Sentinel, a Redis Cluster) and the
//!   checks each deployment needs at start-up.
//! - `replication`: writes confirmed by replicas (`WAIT`) before their client is answered.
//!
//! A private `redis-server` for tests and benches (`LocalRedis`) is in `petstore-testkit`.
//!
//! Errors are mapped here, once, into the contract's server error, which every component that
//! uses Redis answers with: an outage becomes `UNAVAILABLE` with `Retry-After`, anything else is
//! a bug (`INTERNAL`, the cause logged).

mod breaker;
mod client;
mod links;
mod replication;
pub mod topology;
mod watchdog;

pub use breaker::{Admission, Breaker, BreakerSettings, BreakerState, Permit, Refused};
pub use client::{Idempotence, Redis, RedisError, RedisSettings};
pub use replication::{Confirmation, ReplicationSettings};
pub use topology::Topology;

use petstore_api::error::ServerError;

impl From<RedisError> for ServerError {
    fn from(error: RedisError) -> Self {
        if error.is_unavailable() {
            tracing::warn!(%error, "storage unavailable");
            ServerError::unavailable(
                "storage is unavailable; try again later",
                error.retry_after_secs(),
            )
        } else {
            ServerError::internal(error)
        }
    }
}

impl<R> From<RedisError> for petstore_api::error::Failure<R> {
    fn from(error: RedisError) -> Self {
        Self::Server(error.into())
    }
}
