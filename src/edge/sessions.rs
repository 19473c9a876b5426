//! Live session counts, shared between the transport that keeps sessions open (the WebSocket
//! endpoint) and those who report them (`/health`, the cluster's node registry), which are
//! other transports and the wiring: so they live on the floor every transport shares.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many sessions are open, and how many of them authenticated: counted by the transport
/// that holds the sessions, read by `/health` and the node registry's load report.
#[derive(Debug, Default)]
pub struct SessionCounts {
    open: AtomicUsize,
    authenticated: AtomicUsize,
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
}
