//! When in-memory credential state (revocations, refresh tokens) drops its expired entries.
//!
//! Expired entries are useless but harmless, so they are dropped opportunistically by writes:
//! at most once a minute, or sooner once the map has grown past a size trigger. The trigger
//! doubles with the live set after each prune, so a large live set does not turn every write
//! into a full scan. There is no hard cap: dropping a live entry would silently un-revoke a
//! token.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

use chrono::{DateTime, Utc};

/// Below this many entries, only the clock triggers a prune.
const PRUNE_MIN_LEN: usize = 1024;

/// A write prunes when the last prune is at least this old, so memory is returned even when
/// writes trickle in below the size trigger.
const PRUNE_INTERVAL_SECS: i64 = 60;

/// The schedule: when the last prune ran and at which size the next one is due.
#[derive(Debug)]
pub(super) struct PruneSchedule {
    at_len: AtomicUsize,
    last_unix: AtomicI64,
    running: AtomicBool,
}

impl PruneSchedule {
    /// A schedule whose first prune is due a minute from now (or at the minimum size).
    pub(super) fn new() -> Self {
        Self {
            at_len: AtomicUsize::new(PRUNE_MIN_LEN),
            last_unix: AtomicI64::new(Utc::now().timestamp()),
            running: AtomicBool::new(false),
        }
    }

    /// Runs `prune` if a prune is due for a map of `len` entries at `now` and no other prune is
    /// running (concurrent writers skip instead of repeating the scan). `prune` must report
    /// what it did through [`PruneSchedule::pruned`].
    pub(super) fn maybe_run(&self, len: usize, now: DateTime<Utc>, prune: impl FnOnce()) {
        let due_by_time =
            now.timestamp() - self.last_unix.load(Ordering::Relaxed) >= PRUNE_INTERVAL_SECS;
        let due_by_size = len >= self.at_len.load(Ordering::Relaxed);
        if !(due_by_time || due_by_size) {
            return;
        }
        if self
            .running
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        prune();
        self.running.store(false, Ordering::Release);
    }

    /// Records a prune at `now` that left `live` entries: the next one is due at twice that.
    pub(super) fn pruned(&self, live: usize, now: DateTime<Utc>) {
        self.at_len
            .store(PRUNE_MIN_LEN.max(live.saturating_mul(2)), Ordering::Relaxed);
        self.last_unix.store(now.timestamp(), Ordering::Relaxed);
    }

    /// The size at which the next prune is due.
    #[cfg(test)]
    pub(super) fn due_at_len(&self) -> usize {
        self.at_len.load(Ordering::Relaxed)
    }

    /// The minimum size trigger.
    #[cfg(test)]
    pub(super) const MIN_LEN: usize = PRUNE_MIN_LEN;

    /// The time trigger, in seconds.
    #[cfg(test)]
    pub(super) const INTERVAL_SECS: i64 = PRUNE_INTERVAL_SECS;
}
