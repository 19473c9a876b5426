//! The node's cache of pets read from Redis, kept correct by Redis's invalidation messages
//! (server-assisted client-side caching, `CLIENT TRACKING`).
//!
//! `getPetById` is the hottest read and a pet changes rarely compared with how often it is
//! read, so each node keeps the pets it read last ([`PetCache`]) and serves them without a round
//! trip until Redis says they changed.
//!
//! # Tracking: broadcast mode on a connection of its own
//!
//! Redis offers two ways to be told about changes:
//!
//! - *default mode*: Redis remembers every key each tracking connection read and tells that
//!   connection when one changes. Every pooled connection would have to turn tracking on (again
//!   after each reconnection of each of them) and redirect its messages to a listening
//!   connection; a pool connection that reconnected without tracking would silently stop
//!   protecting what it reads next, and Redis would spend memory on a table of who read what.
//! - *broadcast mode* (`BCAST PREFIX {p}:pet:`): Redis tells the connection about every change
//!   to a key under the prefix, whoever read it. One connection ([`Tracking`]) carries all of
//!   it, the pool is untouched, and Redis keeps no per-key state. The price is a message per pet
//!   write to every node, whether it holds that pet or not: small next to the write itself.
//!
//! This module uses broadcast mode. The connection speaks RESP2 and sends the messages to
//! itself as pub/sub messages on `__redis__:invalidate` (`CLIENT TRACKING on REDIRECT <own id>`,
//! then `SUBSCRIBE`): on RESP3, fred drops the message that a `FLUSHALL`/`FLUSHDB` sends (a null
//! instead of a list of keys), and a flush would leave every cached pet in place; as a pub/sub
//! message the null arrives as an invalidation without keys, which empties the cache.
//!
//! # Never caching a value that was already replaced
//!
//! A read goes out on a pooled connection and its invalidations arrive on another, in either
//! order. So a read takes a [`Ticket`] before it is sent (the generation of its shard), and its
//! answer is kept only if no invalidation reached that shard meanwhile ([`PetCache::insert`]):
//! a write that Redis applied after the read has either been announced by the time the answer
//! is kept (the generation moved: the answer is not kept) or will be afterwards (it evicts the
//! answer). Invalidations bump the generation of the shard of the key, not of the whole cache,
//! so a write to one pet does not stop other pets from being cached.
//!
//! # When the messages may have been lost
//!
//! A connection that drops, a reconnection, an invalidation queue that overflowed: any of them
//! may have lost messages, so the cache is flushed and stops caching (disabled) until tracking
//! is set up again on a new connection; only reads that start after that are kept. A connection
//! gone silent without being closed is found by the PING watchdog every subscriber connection
//! has (`--redis-ping-interval-ms`), and replaced like a dropped one. A reconnection of one of
//! the pool's connections flushes too ([`PetCache::follow_pool`]): after a failover a pooled
//! connection may have been reading from the old primary.
//!
//! # Writes through this node
//!
//! The store evicts the pets a commit wrote as soon as Redis answers it ([`PetCache::evict_keys`],
//! which also bumps the generations), so a client that wrote through this node reads its write
//! back at once, without waiting for the invalidation to come round.
//!
//! # Deployments
//!
//! One server and Sentinel (the connection follows the primary through failovers, and each
//! failover is a reconnection, so a flush). On a Redis Cluster the cache is off: a connection
//! tracks the keys of the node it is connected to, and following slot moves with it is not
//! worth the risk for one read.

use std::{
    num::NonZeroUsize,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use fred::{
    clients::SubscriberClient,
    interfaces::{ClientInterface, ClientLike, EventInterface, PubsubInterface, TrackingInterface},
    types::client::Invalidation,
};
use lru::LruCache;
use tokio::{sync::broadcast::error::RecvError, task::JoinHandle};

use petstore_api::models::Pet;

use crate::{
    redis::{Redis, RedisError},
    store::Stored,
    telemetry::metrics::{self, CacheEvent},
};

/// The channel Redis sends invalidations on to a RESP2 connection redirected to itself.
const INVALIDATION_CHANNEL: &str = "__redis__:invalidate";

/// How many independent locks and generations the cache is split into.
const SHARDS: usize = 16;

/// How long to wait before replacing a connection on which tracking could not be set up.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Counts of what one cache did (for tests and `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads served from the cache.
    pub hits: u64,
    /// Reads that went to Redis.
    pub misses: u64,
    /// Pets evicted because Redis (or a write through this node) said they changed.
    pub invalidations: u64,
    /// Times the whole cache was emptied (connection lost or back, flush in Redis, overflow).
    pub flushes: u64,
}

/// What [`PetCache::get`] found.
pub(super) enum Lookup {
    /// The pet as last read, still current as far as the invalidations say.
    Hit(Arc<Stored<Pet>>),
    /// Not cached: read Redis, and hand the answer to [`PetCache::insert`] with the ticket
    /// (`None` while the cache is disabled: the answer is not kept).
    Miss(Option<Ticket>),
}

/// Taken before a read goes out; the read's answer is kept only if its shard saw no
/// invalidation since.
pub(super) struct Ticket {
    generation: u64,
}

struct Shard {
    /// Bumped by every invalidation of a key of this shard and every flush.
    generation: u64,
    entries: LruCache<i64, Arc<Stored<Pet>>>,
}

/// A bounded map of pet id to the pet as read, safe against concurrent invalidations (see the
/// module documentation).
pub(super) struct PetCache {
    shards: Box<[Mutex<Shard>]>,
    /// Whether invalidations are being received; nothing is kept while they are not.
    enabled: AtomicBool,
    /// `{prefix}:pet:`: the keys of pets start with it.
    key_prefix: String,
    /// The pool's reconnection count when the cache last checked ([`PetCache::follow_pool`]).
    pool_reconnections: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
}

impl std::fmt::Debug for PetCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PetCache")
            .field("key_prefix", &self.key_prefix)
            .field("enabled", &self.enabled.load(Ordering::Relaxed))
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl PetCache {
    /// A disabled cache of at most `entries` pets (rounded up to a multiple of the shards)
    /// whose keys start with `key_prefix`.
    pub(super) fn new(key_prefix: String, entries: NonZeroUsize) -> Self {
        let shards = SHARDS.min(entries.get());
        let per_shard =
            NonZeroUsize::new(entries.get().div_ceil(shards)).unwrap_or(NonZeroUsize::MIN);
        Self {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        generation: 0,
                        entries: LruCache::new(per_shard),
                    })
                })
                .collect(),
            enabled: AtomicBool::new(false),
            key_prefix,
            pool_reconnections: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        }
    }

    fn shard(&self, id: i64) -> MutexGuard<'_, Shard> {
        // Ids are mostly consecutive: a multiplicative hash spreads them over the shards.
        let hash = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        let index = usize::try_from(hash).unwrap_or(0) % self.shards.len();
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Flushes the cache when a pooled connection was re-established since the last call
    /// (`reconnections` is the pool's count): a connection that lived through a failover may
    /// have answered from the old primary, and what it read must not outlive the move.
    pub(super) fn follow_pool(&self, reconnections: u64) {
        if self.pool_reconnections.load(Ordering::Acquire) != reconnections
            && self
                .pool_reconnections
                .swap(reconnections, Ordering::AcqRel)
                != reconnections
        {
            tracing::debug!("a redis connection was re-established; the pet cache is emptied");
            self.flush();
        }
    }

    /// Pet `id` if cached; otherwise a ticket for caching what the read finds.
    pub(super) fn get(&self, id: i64) -> Lookup {
        let mut shard = self.shard(id);
        if let Some(pet) = shard.entries.get(&id) {
            let pet = Arc::clone(pet);
            drop(shard);
            self.hits.fetch_add(1, Ordering::Relaxed);
            metrics::global().redis.cache(CacheEvent::Hit);
            return Lookup::Hit(pet);
        }
        // Read under the shard's lock: a flush that disables takes every lock after clearing
        // the flag, so a ticket taken while enabled is older than that flush's generation.
        let ticket = self.enabled.load(Ordering::Acquire).then_some(Ticket {
            generation: shard.generation,
        });
        drop(shard);
        self.misses.fetch_add(1, Ordering::Relaxed);
        metrics::global().redis.cache(CacheEvent::Miss);
        Lookup::Miss(ticket)
    }

    /// Keeps `pet` (read as pet `id` after `ticket` was taken) unless an invalidation of its
    /// shard or a flush came in between.
    pub(super) fn insert(&self, id: i64, ticket: Ticket, pet: Arc<Stored<Pet>>) {
        let mut shard = self.shard(id);
        if shard.generation == ticket.generation && self.enabled.load(Ordering::Acquire) {
            shard.entries.put(id, pet);
        }
    }

    /// The pet id of `key` when it is the key of a pet's hash (`{prefix}:pet:{id}`), not of
    /// its images or holds.
    fn pet_id(&self, key: &[u8]) -> Option<i64> {
        let rest = key.strip_prefix(self.key_prefix.as_bytes())?;
        std::str::from_utf8(rest).ok()?.parse().ok()
    }

    /// Forgets pet `id` and makes reads of its shard under way forget their answer.
    fn invalidate(&self, id: i64) {
        let mut shard = self.shard(id);
        shard.generation += 1;
        shard.entries.pop(&id);
        drop(shard);
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        metrics::global().redis.cache(CacheEvent::Invalidation);
    }

    /// Invalidates the pets among `keys`; other keys are ignored.
    pub(super) fn evict_keys<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) {
        for key in keys {
            if let Some(id) = self.pet_id(key) {
                self.invalidate(id);
            }
        }
    }

    /// Empties the cache and makes every read under way forget its answer.
    fn flush(&self) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.generation += 1;
            shard.entries.clear();
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
        metrics::global().redis.cache(CacheEvent::Flush);
    }

    /// Invalidations may have been lost: flush, and keep nothing until [`PetCache::enable`].
    fn disable(&self) {
        self.enabled.store(false, Ordering::Release);
        self.flush();
    }

    /// Invalidations arrive from now on: start caching what reads that start now find.
    fn enable(&self) {
        // The flush moves every generation, so a read that started before cannot be kept.
        self.flush();
        self.enabled.store(true, Ordering::Release);
    }

    /// Whether the cache is keeping reads (tracking is up).
    pub(super) fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    pub(super) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
        }
    }

    /// Applies one invalidation message: its keys, or everything for a message without keys
    /// (`FLUSHALL`, `FLUSHDB`).
    fn apply(&self, invalidation: &Invalidation) {
        if invalidation.keys.is_empty() {
            tracing::info!("redis was flushed; the pet cache is emptied");
            self.flush();
        } else {
            self.evict_keys(invalidation.keys.iter().map(|key| key.as_bytes()));
        }
    }
}

/// The tracking connection and its tasks; dropping it stops them, and the cache stays
/// disabled.
pub(super) struct Tracking {
    subscriber: SubscriberClient,
    cache: Arc<PetCache>,
    /// The Redis client id of the tracking connection once set up (0 before).
    client_id: Arc<AtomicI64>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Tracking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracking")
            .field("client_id", &self.client_id.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Tracking {
    /// Connects the tracking connection for `cache` and sets tracking up.
    ///
    /// When Redis refuses tracking (an ACL without `CLIENT`, say) the node runs with the cache
    /// disabled, tries again every second and logs why; the store works the same, uncached.
    ///
    /// # Errors
    /// [`RedisError::Config`] if the connection cannot be built, [`RedisError::Unreachable`]
    /// when it does not connect within the connect timeout.
    pub(super) async fn start(redis: &Redis, cache: Arc<PetCache>) -> Result<Self, RedisError> {
        let subscriber = redis.subscriber()?;
        let invalidations = subscriber.invalidation_rx();
        let connect_timeout = redis.connect_timeout();
        Redis::connect_subscriber(
            &subscriber,
            connect_timeout,
            "the cache's tracking connection",
        )
        .await?;
        // Followed from after the first connection, which fred announces as a reconnection
        // too: tracking is set up for it below.
        let errors = subscriber.error_rx();
        let reconnects = subscriber.reconnect_rx();
        let client_id = Arc::new(AtomicI64::new(0));
        let manager = Manager {
            subscriber: subscriber.clone(),
            cache: Arc::clone(&cache),
            prefix: cache.key_prefix.clone(),
            timeout: redis.command_timeout(),
            client_id: Arc::clone(&client_id),
        };
        let set_up = manager.set_up().await;
        let tasks = vec![
            tokio::spawn(listen(invalidations, Arc::clone(&cache))),
            tokio::spawn(manager.run(errors, reconnects, set_up)),
            redis.watch_subscriber(&subscriber, "cache"),
        ];
        Ok(Self {
            subscriber,
            cache,
            client_id,
            tasks,
        })
    }

    /// The Redis client id of the tracking connection (0 while none is set up).
    pub(super) fn client_id(&self) -> i64 {
        self.client_id.load(Ordering::Acquire)
    }
}

impl Drop for Tracking {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.cache.disable();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let subscriber = self.subscriber.clone();
            runtime.spawn(async move {
                let _ = subscriber.quit().await;
            });
        }
    }
}

/// Applies the invalidations as they arrive.
async fn listen(
    mut invalidations: tokio::sync::broadcast::Receiver<Invalidation>,
    cache: Arc<PetCache>,
) {
    loop {
        match invalidations.recv().await {
            Ok(invalidation) => cache.apply(&invalidation),
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "the pet cache fell behind its invalidations; flushing it"
                );
                cache.flush();
            }
            Err(RecvError::Closed) => {
                cache.disable();
                return;
            }
        }
    }
}

/// Sets tracking up on each new connection and disables the cache while there is none.
struct Manager {
    subscriber: SubscriberClient,
    cache: Arc<PetCache>,
    prefix: String,
    timeout: Duration,
    client_id: Arc<AtomicI64>,
}

impl Manager {
    /// Turns broadcast tracking on for the connection, redirected to itself, and subscribes to
    /// the invalidations; enables the cache once both are in place. `false` when it failed (the
    /// cache stays disabled).
    async fn set_up(&self) -> bool {
        let steps = async {
            let id: i64 = self.subscriber.client_id().await?;
            let () = self
                .subscriber
                .client_tracking(
                    "on",
                    Some(id),
                    self.prefix.clone(),
                    true,
                    false,
                    false,
                    false,
                )
                .await?;
            self.subscriber.subscribe(INVALIDATION_CHANNEL).await?;
            Ok::<_, fred::error::Error>(id)
        };
        match tokio::time::timeout(self.timeout, steps).await {
            Ok(Ok(id)) => {
                self.client_id.store(id, Ordering::Release);
                self.cache.enable();
                tracing::info!(client_id = id, "the pet cache tracks changes in redis");
                true
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot set up redis tracking; the pet cache is off");
                false
            }
            Err(_) => {
                tracing::warn!("redis tracking was not set up in time; the pet cache is off");
                false
            }
        }
    }

    /// Follows the connection: disables the cache when it breaks, sets tracking up again when
    /// it is back, and replaces it (after a pause) when that fails.
    async fn run(
        self,
        mut errors: tokio::sync::broadcast::Receiver<(
            fred::error::Error,
            Option<fred::types::config::Server>,
        )>,
        mut reconnects: tokio::sync::broadcast::Receiver<fred::types::config::Server>,
        mut set_up: bool,
    ) {
        loop {
            if !set_up {
                tokio::time::sleep(RETRY_PAUSE).await;
                self.cache.disable();
                // The reconnection below is announced, and sets tracking up again.
                if let Err(error) = self.subscriber.force_reconnection().await {
                    tracing::debug!(%error, "cannot replace the tracking connection yet");
                }
                set_up = true;
            }
            tokio::select! {
                // Errors first: a reconnection is only announced after the error before it.
                biased;
                error = errors.recv() => match error {
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        if self.cache.is_enabled() {
                            tracing::warn!("the tracking connection broke; the pet cache is off until it is back");
                        }
                        self.client_id.store(0, Ordering::Release);
                        self.cache.disable();
                    }
                    Err(RecvError::Closed) => return,
                },
                reconnected = reconnects.recv() => match reconnected {
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        self.client_id.store(0, Ordering::Release);
                        self.cache.disable();
                        set_up = self.set_up().await;
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pet(id: i64, name: &str) -> Arc<Stored<Pet>> {
        Arc::new(Stored::new(Pet {
            id: Some(id),
            name: name.to_owned(),
            category: None,
            photo_urls: Vec::new(),
            tags: None,
            status: None,
        }))
    }

    fn enabled(entries: usize) -> PetCache {
        let cache = PetCache::new(
            "p:pet:".to_owned(),
            NonZeroUsize::new(entries).expect("not zero"),
        );
        cache.enable();
        cache
    }

    fn miss(cache: &PetCache, id: i64) -> Option<Ticket> {
        match cache.get(id) {
            Lookup::Hit(_) => panic!("pet {id} should not be cached"),
            Lookup::Miss(ticket) => ticket,
        }
    }

    fn hit(cache: &PetCache, id: i64) -> Arc<Stored<Pet>> {
        match cache.get(id) {
            Lookup::Hit(pet) => pet,
            Lookup::Miss(_) => panic!("pet {id} should be cached"),
        }
    }

    #[test]
    fn a_read_is_kept_and_served_until_its_key_is_invalidated() {
        let cache = enabled(100);
        let ticket = miss(&cache, 7).expect("enabled");
        cache.insert(7, ticket, pet(7, "Rex"));
        assert_eq!(hit(&cache, 7).value.name, "Rex");
        cache.evict_keys([b"p:pet:7".as_slice()]);
        assert!(miss(&cache, 7).is_some());
        assert_eq!(cache.stats().invalidations, 1);
    }

    #[test]
    fn a_read_that_an_invalidation_overtook_is_not_kept() {
        let cache = enabled(100);
        let ticket = miss(&cache, 7).expect("enabled");
        // The write lands and is announced while the read's answer is on its way.
        cache.evict_keys([b"p:pet:7".as_slice()]);
        cache.insert(7, ticket, pet(7, "old"));
        assert!(miss(&cache, 7).is_some());
    }

    #[test]
    fn a_read_under_way_during_a_flush_or_an_outage_is_not_kept() {
        let cache = enabled(100);
        let ticket = miss(&cache, 1).expect("enabled");
        cache.flush();
        cache.insert(1, ticket, pet(1, "old"));
        assert!(miss(&cache, 1).is_some());

        let ticket = miss(&cache, 1).expect("enabled");
        cache.disable();
        assert!(miss(&cache, 1).is_none(), "no ticket while disabled");
        cache.enable();
        // Tracking is back, but the read began while it was down.
        cache.insert(1, ticket, pet(1, "old"));
        assert!(miss(&cache, 1).is_some());
    }

    #[test]
    fn other_keys_and_other_records_do_not_invalidate_a_pet() {
        let cache = enabled(100);
        let ticket = miss(&cache, 3).expect("enabled");
        cache.insert(3, ticket, pet(3, "Rex"));
        cache.evict_keys([
            b"p:pet:3:images".as_slice(),
            b"p:pet:3:holds".as_slice(),
            b"p:pets".as_slice(),
            b"other:pet:3".as_slice(),
        ]);
        hit(&cache, 3);
        cache.apply(&Invalidation {
            keys: Vec::new(),
            server: fred::types::config::Server::new("localhost", 6379),
        });
        assert!(miss(&cache, 3).is_some(), "a flush in redis empties it");
    }

    #[test]
    fn the_cache_holds_at_most_its_size() {
        let cache = enabled(32);
        for id in 0..1000 {
            if let Some(ticket) = miss(&cache, id) {
                cache.insert(id, ticket, pet(id, "x"));
            }
        }
        let held: usize = cache
            .shards
            .iter()
            .map(|shard| shard.lock().expect("lock").entries.len())
            .sum();
        assert!(held <= 32, "{held}");
        assert!(held > 0);
    }
}
