//! Per-client limit on concurrent connections: the interface every such limit offers
//! ([`ConnectionLimit`]), the permit a connection holds, and the in-process limiter.
//!
//! A request rate limit does nothing against a client that opens connections and then sits on
//! them (slow requests, idle WebSockets); this caps how many one address may hold at once.
//! Each accepted connection holds a [`ConnectionPermit`] that gives its slot back when dropped.
//!
//! The cluster-wide limiter (`shared_connections`) builds on this module, never the other way
//! round: it composes a [`ConnectionLimiter`] for this node's share and hangs its Redis slot on
//! the permit as a `RemoteSlot`, which this module knows only as "something to drop".

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::client_ip::ip_bucket;

/// A cap on concurrent connections per client address (per [`ip_bucket`], so an IPv6 client is
/// counted per `/64`): this process's alone ([`ConnectionLimiter`]) or a cluster's
/// ([`SharedConnectionLimiter`](super::SharedConnectionLimiter)). The WebSocket upgrade holds
/// one as [`ConnectionLimits`] and does not know which.
#[async_trait]
pub trait ConnectionLimit: Send + Sync + fmt::Debug + 'static {
    /// Takes a slot for a connection from `ip`, or refuses if the address already holds the
    /// maximum. Concurrent calls never grant more than the maximum; a refusal takes nothing.
    /// The permit gives the slot back when dropped.
    async fn try_acquire(&self, ip: IpAddr) -> Result<ConnectionPermit, TooManyConnections>;

    /// The maximum number of concurrent connections per address.
    fn max_per_ip(&self) -> u32;

    /// The connections this process holds, whichever the limit (for `/health` and metrics).
    /// They change as soon as a permit is granted or dropped.
    fn local(&self) -> &ConnectionLimiter;
}

/// The per-address connection limit the WebSocket upgrade applies: this process's alone, or
/// the cluster's, chosen once at start-up.
pub type ConnectionLimits = Arc<dyn ConnectionLimit>;

/// Counts open connections per client address in this process and refuses those beyond the
/// limit.
#[derive(Debug)]
pub struct ConnectionLimiter {
    max_per_ip: u32,
    /// Shared with the permits, which give their slot back here when dropped.
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    open: DashMap<IpAddr, u32>,
    total: AtomicUsize,
}

/// A connection refused because its address already holds the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many concurrent connections from this address (limit {limit})")]
pub struct TooManyConnections {
    /// The maximum number of concurrent connections per address.
    pub limit: u32,
}

impl ConnectionLimiter {
    /// A limiter allowing `max_per_ip` concurrent connections per address (0 refuses all);
    /// in an `Arc`, as it is shared (and usable as [`ConnectionLimits`] as it is).
    pub fn new(max_per_ip: u32) -> Arc<Self> {
        Arc::new(Self {
            max_per_ip,
            counts: Arc::default(),
        })
    }

    /// The maximum number of concurrent connections per address.
    pub fn max_per_ip(&self) -> u32 {
        self.max_per_ip
    }

    /// [`ConnectionLimit::try_acquire`] without the `async`: counting in memory never waits,
    /// and the shared limiter takes its local slot through this before it asks Redis.
    /// The check and the increment happen under one lock, so concurrent calls never overshoot.
    pub fn try_acquire(&self, ip: IpAddr) -> Result<ConnectionPermit, TooManyConnections> {
        let bucket = ip_bucket(ip);
        let refused = TooManyConnections {
            limit: self.max_per_ip,
        };
        match self.counts.open.entry(bucket) {
            Entry::Occupied(mut open) => {
                if *open.get() >= self.max_per_ip {
                    return Err(refused);
                }
                *open.get_mut() += 1;
            }
            Entry::Vacant(slot) => {
                if self.max_per_ip == 0 {
                    return Err(refused);
                }
                slot.insert(1);
            }
        }
        self.counts.total.fetch_add(1, Ordering::Relaxed);
        Ok(ConnectionPermit {
            local: LocalSlot {
                counts: Arc::clone(&self.counts),
                bucket,
            },
            remote: None,
        })
    }

    /// How many connections `ip` holds now.
    pub fn current(&self, ip: IpAddr) -> u32 {
        self.counts.open.get(&ip_bucket(ip)).map_or(0, |open| *open)
    }

    /// How many connections are open in total, across all addresses.
    pub fn total(&self) -> usize {
        self.counts.total.load(Ordering::Relaxed)
    }

    /// How many addresses hold at least one connection (the number of entries kept).
    pub fn tracked_ips(&self) -> usize {
        self.counts.open.len()
    }
}

#[async_trait]
impl ConnectionLimit for ConnectionLimiter {
    async fn try_acquire(&self, ip: IpAddr) -> Result<ConnectionPermit, TooManyConnections> {
        ConnectionLimiter::try_acquire(self, ip)
    }

    fn max_per_ip(&self) -> u32 {
        self.max_per_ip
    }

    fn local(&self) -> &ConnectionLimiter {
        self
    }
}

impl Counts {
    /// Gives back one slot of `bucket`, removing the entry when it reaches zero.
    fn release(&self, bucket: IpAddr) {
        if let Entry::Occupied(mut open) = self.open.entry(bucket) {
            if *open.get() <= 1 {
                open.remove();
            } else {
                *open.get_mut() -= 1;
            }
            self.total.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The part of a connection's slot a limiter holds outside this process (a count in Redis).
/// The permit owns it and drops it after giving the local slot back; its own `Drop` gives the
/// rest back.
pub(super) trait RemoteSlot: Send + Sync + fmt::Debug {}

/// One open connection's slot; dropping it gives the slot back (in this process, and wherever
/// else the limit that granted it counts, Redis for a shared one).
#[derive(Debug)]
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct ConnectionPermit {
    // Fields drop in order: this process's count first, then the remote one.
    local: LocalSlot,
    remote: Option<Box<dyn RemoteSlot>>,
}

/// This process's share of a permit.
#[derive(Debug)]
struct LocalSlot {
    counts: Arc<Counts>,
    bucket: IpAddr,
}

impl Drop for LocalSlot {
    fn drop(&mut self) {
        self.counts.release(self.bucket);
    }
}

impl ConnectionPermit {
    /// This permit also holding `slot`, given back when the permit is dropped.
    pub(super) fn with_remote(mut self, slot: impl RemoteSlot + 'static) -> Self {
        self.remote = Some(Box::new(slot));
        self
    }

    /// Whether the slot is counted beyond this process (false for a local limiter, and for a
    /// shared one that fell back to this node's count while Redis was unavailable).
    pub fn is_shared(&self) -> bool {
        self.remote.is_some()
    }

    /// The address (per [`ip_bucket`]) this slot is counted against.
    pub fn ip(&self) -> IpAddr {
        self.local.bucket
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh in-process limiter, for the checks every connection limit shares.
    async fn fresh(max_per_ip: u32) -> ConnectionLimits {
        ConnectionLimiter::new(max_per_ip)
    }

    /// The checks every connection limit shares, apart from the ones of this limiter alone.
    mod conformance {
        crate::limits::connection_conformance::connection_limit_conformance_tests!(super::fresh);
    }

    #[test]
    fn permits_of_a_local_limiter_are_not_shared() {
        let limiter = ConnectionLimiter::new(1);
        let permit = limiter.try_acquire(std::net::Ipv4Addr::LOCALHOST.into());
        assert!(permit.is_ok_and(|permit| !permit.is_shared()));
    }

    #[test]
    fn the_error_names_the_limit() {
        assert_eq!(
            TooManyConnections { limit: 4 }.to_string(),
            "too many concurrent connections from this address (limit 4)"
        );
    }
}
