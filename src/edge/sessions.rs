//! Live session counts, shared between the transport that keeps sessions open (the WebSocket
//! endpoint) and those who report them (`/health`, the cluster's node registry), which are
//! other transports and the wiring: so they live on the floor every transport shares.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

use crate::telemetry::metrics::QueueMoved;

/// How many sessions are open, and how many of them authenticated, and what their message
/// queues hold: counted by the transport that holds the sessions, read by `/health` and the node
/// registry's load report.
///
/// The process-wide metrics count the same things across every server of the process; these
/// are this server's own, so `/health` describes the node it answers for even when a test runs
/// several servers in one process.
#[derive(Debug, Default)]
pub struct SessionCounts {
    open: AtomicUsize,
    authenticated: AtomicUsize,
    waiting: AtomicI64,
    in_flight: AtomicI64,
    backpressured: AtomicI64,
    overloaded: AtomicU64,
}

/// The message queues of every session, as `/health` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageQueue {
    /// Requests read and waiting for a worker, over all sessions.
    pub waiting: u64,
    /// Requests started and not yet answered, over all sessions.
    pub in_flight: u64,
    /// Sessions under backpressure: told to slow down, queue not yet drained to its low-water
    /// mark.
    pub sessions_under_backpressure: u64,
    /// Requests refused with `OVERLOADED` since the server started.
    pub overloaded: u64,
}

impl SessionCounts {
    /// Open sessions.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Open sessions that have authenticated.
    pub fn authenticated(&self) -> usize {
        self.authenticated.load(Ordering::Relaxed)
    }

    /// A session opened.
    pub(crate) fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    /// A session closed (`authenticated`: it had signed in, and was counted as such).
    pub(crate) fn closed(&self, authenticated: bool) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        if authenticated {
            self.authenticated.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// An open session signed in for the first time.
    pub(crate) fn signed_in(&self) {
        self.authenticated.fetch_add(1, Ordering::Relaxed);
    }

    /// What the sessions' message queues hold now (each session's share as of its last step).
    pub fn message_queue(&self) -> MessageQueue {
        // Every session adds its share before taking it back, so a sum is never below zero;
        // the clamp only keeps a reader's arithmetic safe.
        let level = |counter: &AtomicI64| counter.load(Ordering::Relaxed).max(0) as u64;
        MessageQueue {
            waiting: level(&self.waiting),
            in_flight: level(&self.in_flight),
            sessions_under_backpressure: level(&self.backpressured),
            overloaded: self.overloaded.load(Ordering::Relaxed),
        }
    }

    /// A session's share of the queue figures changed.
    pub(crate) fn queue_moved(&self, moved: QueueMoved) {
        for (counter, delta) in [
            (&self.waiting, moved.waiting),
            (&self.in_flight, moved.in_flight),
            (&self.backpressured, moved.backpressured),
        ] {
            if delta != 0 {
                counter.fetch_add(delta, Ordering::Relaxed);
            }
        }
    }

    /// A session refused a request with `OVERLOADED`.
    pub(crate) fn overloaded(&self) {
        self.overloaded.fetch_add(1, Ordering::Relaxed);
    }
}
