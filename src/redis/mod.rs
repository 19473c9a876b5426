//! Redis, the shared backend of a cluster: one connection pool per node behind one circuit
//! breaker, used by the Redis store, the event bus, the node registry and the shared limits.
//!
//! - `client`: [`Redis`], the pool and the single door every command goes through (breaker,
//!   retries for idempotent reads, metrics, error classification).
//! - `breaker`: the circuit breaker itself.
//! - `local_server`: [`LocalRedis`], a private `redis-server` for tests and benchmarks.
//!
//! Errors are mapped here, once, into the errors of the components that use Redis: an outage
//! becomes `UNAVAILABLE` with `Retry-After`, anything else is a bug (`INTERNAL`).

mod breaker;
mod client;
mod local_server;

pub use breaker::{Admission, Breaker, BreakerSettings, BreakerState, Refused};
pub use client::{Idempotence, Redis, RedisError, RedisSettings};
pub use local_server::{LocalRedis, Persistence};

use crate::store::StoreError;

impl From<RedisError> for StoreError {
    fn from(error: RedisError) -> Self {
        if error.is_unavailable() {
            tracing::warn!(%error, "store unavailable");
            StoreError::Unavailable {
                message: "storage is unavailable; try again later".to_owned(),
                retry_after_secs: error.retry_after_secs(),
            }
        } else {
            StoreError::Internal(error.to_string())
        }
    }
}
