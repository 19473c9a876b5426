//! Abuse limits, independent of the transport.
//!
//! - [`rate`]: request rate limits behind the [`RateLimiter`] trait, with the in-process GCRA
//!   [`LocalRateLimiter`] and the [`RateDecision`] that becomes `RateLimit-*` headers.
//! - [`redis_rate`]: [`RedisRateLimiter`], the same GCRA run atomically in Redis, so every node
//!   of a cluster counts against one budget per client.
//! - [`login`]: the [`LoginThrottle`] that slows password guessing, per login name and per
//!   address, without revealing which accounts exist.
//! - [`client_ip`]: the client's real address behind [`TrustedProxies`] (and only those), and
//!   the [`ip_bucket`] per-client limits count against.
//! - [`connections`]: the [`ConnectionLimit`] capping concurrent connections per address, held
//!   by the WebSocket upgrade as [`ConnectionLimits`], and the in-process [`ConnectionLimiter`].
//! - [`shared_connections`]: the same cap across a cluster ([`SharedConnectionLimiter`], counts
//!   in Redis that heal when a node dies), built on this node's [`ConnectionLimiter`].
//! - [`origin`]: the [`OriginPolicy`] deciding which web pages may call the API from a browser.
//!
//! These live outside the HTTP edge because the WebSocket endpoint needs the same decisions
//! (a handshake's origin, a client's address, its connection count, its message rate): each
//! takes plain values (addresses, header strings, keys) and returns a plain verdict, and the
//! transport maps a refusal to its own response in one place.
//!
//! The rate limiter and the connection limit are traits because one process's memory is not
//! enough once the server runs as several instances: the cluster-wide GCRA in Redis
//! ([`RedisRateLimiter`]) implements [`RateLimiter`] and replaces [`LocalRateLimiter`], and the
//! Redis counts ([`SharedConnectionLimiter`]) implement [`ConnectionLimit`] in place of
//! [`ConnectionLimiter`], without any caller changing. Each trait has one conformance suite both
//! of its implementations pass.

pub mod client_ip;
pub mod connections;
pub mod login;
pub mod origin;
pub mod rate;
pub mod redis_rate;
pub mod shared_connections;

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
pub(crate) mod connection_conformance;

pub use client_ip::{InvalidNetwork, TrustedProxies, ip_bucket, parse_networks};
pub use connections::{
    ConnectionLimit, ConnectionLimiter, ConnectionLimits, ConnectionPermit, TooManyConnections,
};
pub use login::{LoginThrottle, LoginThrottled};
pub use origin::{InvalidOrigin, OriginPolicy, OriginRejected};
pub use rate::{
    LimitError, LocalRateLimiter, RateDecision, RateKey, RateLimiter, RateQuota, spawn_housekeeping,
};
pub use redis_rate::RedisRateLimiter;
pub use shared_connections::SharedConnectionLimiter;
