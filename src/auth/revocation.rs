//! Revoked access tokens, remembered only as long as the tokens themselves could be accepted.
//!
//! Access tokens are stateless, so "log out" has to be a deny-list of token ids (`jti`). An
//! entry is useless once its token has expired, which is what keeps the list small: its size
//! is bounded by the number of revocations within one token lifetime.

use chrono::{DateTime, Utc};
use dashmap::DashMap;

use super::prune::PruneSchedule;

/// Where revoked token ids are kept.
///
/// The methods are synchronous on purpose: [`is_revoked`](RevocationStore::is_revoked) runs on
/// every authenticated request and must stay a memory lookup. A shared (e.g. Redis) backend
/// for several instances fits behind the same shape: it writes through to Redis in `revoke`,
/// publishes the `jti`, and every instance feeds a local [`RevocationList`] from the
/// subscription (plus a load of the live set at start-up), so reads never wait on the network.
pub trait RevocationStore: Send + Sync {
    /// Remember `jti` as revoked until `expires_at`; after that instant the entry may vanish.
    /// Revoking an id twice keeps the later expiry.
    fn revoke(&self, jti: &str, expires_at: DateTime<Utc>);

    /// Whether `jti` has been revoked and its entry has not expired yet.
    fn is_revoked(&self, jti: &str) -> bool;
}

/// In-process [`RevocationStore`]: a concurrent map `jti -> expiry`.
///
/// Expired entries are pruned opportunistically by inserts, at most once a minute unless the
/// map has grown past the size trigger. The size trigger doubles with the number of live
/// entries after each prune, so a large live set does not turn every insert into a full scan.
/// There is no hard cap on purpose: dropping a live entry would silently un-revoke a token.
#[derive(Debug)]
pub struct RevocationList {
    entries: DashMap<String, DateTime<Utc>>,
    prune: PruneSchedule,
}

impl Default for RevocationList {
    fn default() -> Self {
        Self::new()
    }
}

impl RevocationList {
    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        Self {
            entries: DashMap::new(),
            prune: PruneSchedule::new(),
        }
    }

    /// Number of stored entries, expired ones not yet pruned included (for metrics).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drop every entry whose token has expired; returns how many were dropped. Inserts call
    /// this on their own; a periodic task may call it too.
    pub fn prune_expired(&self) -> usize {
        self.prune_expired_at(Utc::now())
    }

    fn revoke_at(&self, jti: &str, expires_at: DateTime<Utc>, now: DateTime<Utc>) {
        if expires_at <= now {
            // The token is already rejected as expired; remembering it would only cost memory.
            return;
        }
        self.entries
            .entry(jti.to_owned())
            .and_modify(|current| {
                if *current < expires_at {
                    *current = expires_at;
                }
            })
            .or_insert(expires_at);
        self.maybe_prune(now);
    }

    fn is_revoked_at(&self, jti: &str, now: DateTime<Utc>) -> bool {
        self.entries
            .get(jti)
            .is_some_and(|expires_at| *expires_at > now)
    }

    fn maybe_prune(&self, now: DateTime<Utc>) {
        self.prune.maybe_run(self.entries.len(), now, || {
            self.prune_expired_at(now);
        });
    }

    fn prune_expired_at(&self, now: DateTime<Utc>) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, expires_at| *expires_at > now);
        let after = self.entries.len();
        self.prune.pruned(after, now);
        before.saturating_sub(after)
    }
}

impl RevocationStore for RevocationList {
    fn revoke(&self, jti: &str, expires_at: DateTime<Utc>) {
        self.revoke_at(jti, expires_at, Utc::now());
    }

    fn is_revoked(&self, jti: &str) -> bool {
        self.is_revoked_at(jti, Utc::now())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeDelta;

    use super::*;

    async fn fresh() -> Arc<dyn RevocationStore> {
        Arc::new(RevocationList::new())
    }

    crate::auth::revocation_conformance::revocation_store_conformance_tests!(fresh);

    fn secs(n: i64) -> TimeDelta {
        TimeDelta::seconds(n)
    }

    #[test]
    fn revoked_id_is_reported_until_its_expiry() {
        let list = RevocationList::new();
        let now = Utc::now();
        list.revoke_at("a", now + secs(60), now);

        assert!(list.is_revoked_at("a", now));
        assert!(list.is_revoked_at("a", now + secs(59)));
        assert!(!list.is_revoked_at("a", now + secs(60)));
        assert!(!list.is_revoked_at("b", now));
    }

    /// That it is not reported revoked is the suite's; that it costs no memory is the list's.
    #[test]
    fn already_expired_revocation_is_not_stored() {
        let list = RevocationList::new();
        let now = Utc::now();
        list.revoke_at("old", now - secs(1), now);
        assert!(list.is_empty());
    }

    #[test]
    fn prune_drops_only_expired_entries() {
        let list = RevocationList::new();
        let now = Utc::now();
        list.revoke_at("short", now + secs(10), now);
        list.revoke_at("long", now + secs(1000), now);

        assert_eq!(list.prune_expired_at(now + secs(20)), 1);
        assert_eq!(list.len(), 1);
        assert!(list.is_revoked_at("long", now + secs(20)));
    }

    #[test]
    fn insert_prunes_once_the_interval_has_passed() {
        let list = RevocationList::new();
        let now = Utc::now();
        list.revoke_at("short", now + secs(5), now);
        list.revoke_at("other", now + secs(5), now + secs(1));
        assert_eq!(list.len(), 2, "no prune before the interval is over");

        list.revoke_at(
            "later",
            now + secs(1000),
            now + secs(PruneSchedule::INTERVAL_SECS + 1),
        );
        assert_eq!(list.len(), 1);
        assert!(list.is_revoked_at("later", now + secs(PruneSchedule::INTERVAL_SECS + 1)));
    }

    #[test]
    fn insert_prunes_when_the_list_grows_past_the_size_trigger() {
        let list = RevocationList::new();
        let now = Utc::now();
        for i in 0..PruneSchedule::MIN_LEN - 1 {
            list.revoke_at(&format!("jti-{i}"), now + secs(2), now);
        }
        assert_eq!(list.len(), PruneSchedule::MIN_LEN - 1);

        // Still within the time interval, but the size trigger fires.
        list.revoke_at("fresh", now + secs(1000), now + secs(3));
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn size_trigger_grows_with_a_large_live_set() {
        let list = RevocationList::new();
        let now = Utc::now();
        for i in 0..PruneSchedule::MIN_LEN + 10 {
            list.revoke_at(&format!("live-{i}"), now + secs(1000), now);
        }
        assert_eq!(list.len(), PruneSchedule::MIN_LEN + 10);
        assert!(list.prune.due_at_len() >= 2 * PruneSchedule::MIN_LEN);
    }
}
