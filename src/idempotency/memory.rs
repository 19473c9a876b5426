//! [`MemoryIdempotencyStore`]: the records of one node, in memory, bounded and expiring.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use parking_lot::Mutex;

use super::{
    Begin, Claim, Fingerprint, IdempotencyError, IdempotencyStore, Record, RecordKey,
    StoredResponse,
};

/// Records in this process: at most `capacity` keys, each forgotten when it expires.
///
/// Bounded because every client can make keys: when full, the oldest record goes first (it is
/// the one closest to expiring anyway, and the one least likely to be retried), so memory stays
/// flat under any load and the cost is that a very old key may be forgotten early.
pub struct MemoryIdempotencyStore {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    records: HashMap<RecordKey, Slot>,
    /// Keys in the order they were claimed, with the generation claimed, oldest first; entries
    /// of records since released or replaced are skipped when they come up.
    order: VecDeque<(RecordKey, u64)>,
    next_generation: u64,
}

struct Slot {
    record: Record,
    expires: Instant,
    generation: u64,
}

impl MemoryIdempotencyStore {
    /// A store holding at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Keys held now (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.inner.lock().records.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    /// Drops expired and superseded entries from the front, then the oldest records while the
    /// store is full.
    fn make_room(&mut self, capacity: usize, now: Instant) {
        while let Some((key, generation)) = self.order.front() {
            let live = self
                .records
                .get(key)
                .filter(|slot| slot.generation == *generation);
            match live {
                Some(slot) if slot.expires > now && self.records.len() < capacity => break,
                Some(_) => {
                    self.records.remove(key);
                }
                None => {}
            }
            self.order.pop_front();
        }
    }
}

#[async_trait::async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn begin(
        &self,
        key: &RecordKey,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Result<Begin, IdempotencyError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if let Some(slot) = inner.records.get(key) {
            if slot.expires > now {
                return slot.record.clone().into_begin();
            }
            inner.records.remove(key);
        }
        inner.make_room(self.capacity, now);
        let claim = Claim::new(key, fingerprint);
        let generation = inner.next_generation;
        inner.next_generation += 1;
        inner.records.insert(
            key.clone(),
            Slot {
                record: Record::claim(&claim),
                expires: now + lease,
                generation,
            },
        );
        inner.order.push_back((key.clone(), generation));
        Ok(Begin::Claimed(claim))
    }

    async fn complete(
        &self,
        claim: &Claim,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<(), IdempotencyError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if let Some(slot) = inner.records.get_mut(&claim.key)
            && slot.expires > now
            && slot.record.token.as_deref() == Some(claim.token.as_str())
        {
            slot.record = Record::done(claim, response);
            slot.expires = now + ttl;
        }
        Ok(())
    }

    async fn release(&self, claim: &Claim) -> Result<(), IdempotencyError> {
        let mut inner = self.inner.lock();
        if inner
            .records
            .get(&claim.key)
            .is_some_and(|slot| slot.record.token.as_deref() == Some(claim.token.as_str()))
        {
            inner.records.remove(&claim.key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::*;

    async fn fresh() -> Arc<dyn IdempotencyStore> {
        Arc::new(MemoryIdempotencyStore::new(1000))
    }

    mod conformance {
        crate::idempotency::conformance::idempotency_store_conformance_tests!(super::fresh);
    }

    #[tokio::test]
    async fn a_full_store_forgets_its_oldest_key_first() {
        let store = MemoryIdempotencyStore::new(2);
        let fingerprint = Fingerprint::of(&[b"POST"]);
        let hour = Duration::from_secs(3600);
        for key in ["a", "b", "c"] {
            let begun = store
                .begin(&RecordKey::new("alice", key), &fingerprint, hour)
                .await;
            assert!(matches!(begun, Ok(Begin::Claimed(_))), "{key}: {begun:?}");
        }
        assert_eq!(store.len(), 2);
        let oldest = store
            .begin(&RecordKey::new("alice", "a"), &fingerprint, hour)
            .await;
        assert!(matches!(oldest, Ok(Begin::Claimed(_))), "{oldest:?}");
        let newest = store
            .begin(&RecordKey::new("alice", "c"), &fingerprint, hour)
            .await;
        assert!(matches!(newest, Ok(Begin::Running { .. })), "{newest:?}");
    }
}
