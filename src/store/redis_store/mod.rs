//! The Redis store: every node of a cluster reads and writes the same records.
//!
//! # Data model
//!
//! Every key starts with the configured prefix `{p}` (`petstore` by default).
//!
//! | key                          | type   | holds                                                   |
//! |------------------------------|--------|---------------------------------------------------------|
//! | `{p}:pet:{id}`               | hash   | `json` (as [`Stored::new`] rendered it), `version`      |
//! | `{p}:pets`                   | zset   | every pet id (score = id)                               |
//! | `{p}:pets:status:{status}`   | zset   | the ids of the pets in that status (score = id)         |
//! | `{p}:pets:tag:{name}`        | zset   | the ids of the pets with a tag of that name (score = id)|
//! | `{p}:pet:{id}:images`        | set    | the ids of the pet's uploaded images                    |
//! | `{p}:image:{pet_id}:{uuid}`  | hash   | `content_type`, `bytes` (binary), `metadata` (optional) |
//! | `{p}:pet:{id}:holds`         | set    | the undelivered orders holding the pet                  |
//! | `{p}:order:{id}`             | hash   | `json` (the order's JSON), `owner`, `version`           |
//! | `{p}:user:{username}`        | hash   | `json`, `password_hash` (PHC), `roles` (`a,b`), `version` |
//! | `{p}:user-id:{id}`           | string | the username holding that user id                       |
//! | `{p}:seq:pet`, `{p}:seq:order`, `{p}:seq:user` | string | the last id the sequence handed out |
//! | `{p}:seq:commit`             | string | the number of the last commit                           |
//!
//! `version` is the number of the commit that last wrote the record ([`Stored::version`]).
//!
//! # Reads
//!
//! `getPetById` is one `HMGET` of the JSON and the version, and the JSON bytes are served as
//! they are (they are parsed once, to hand out the [`Pet`] beside them). With a cache
//! ([`RedisStore::with_cache`], `--redis-cache-entries`) a pet read before is served from the
//! node until Redis announces a change to it ([`cache`]: the same bytes and version Redis
//! holds, never a value already replaced). Orders and users are
//! one `HMGET` too. The finders run one script: `ZUNION` of the index sets, then an `HMGET` of
//! each pet they name. The inventory is the `ZCARD` of the three status sets; an order step that
//! moves a pet between statuses counts them inside its commit and returns them
//! ([`OrderWrite::inventory`]), so its `inventory.changed` event costs no round trip of its own.
//!
//! # Writes: optimistic compare-and-set
//!
//! Each [`Store`] method is one atomic step, also between nodes. It reads what it needs (one
//! script reading several keys at one instant), applies the business rules and renders the new
//! JSON in Rust (so the bytes are identical to the memory store's), and then runs ONE script
//! ([`scripts::Commit`]) that checks that every record the decision was based on is still what
//! was read (whole values are compared) and, only then, takes the commit's number (`INCR` of
//! `{p}:seq:commit`, in the same script, so the numbers follow the order commits took effect in,
//! between nodes too) and writes every record and index change, each record with that number as
//! its `version`.
//! When something changed in between, the step reads again and decides again on the fresh state
//! (a `Conflict` or `NotFound` is always decided on the state it is returned for), up to
//! [`MAX_ATTEMPTS`] times with short jittered pauses; then it gives up with `Unavailable`.
//!
//! `WATCH`/`MULTI` is not used: `WATCH` belongs to a connection and the pool's connections are
//! shared by every request of the node.
//!
//! # Ids
//!
//! Records created without an id get theirs from the sequence's counter, which is atomic across
//! nodes, so concurrent creates never contend for it; ids a client chose are skipped while in
//! use, and the commit checks that the id is still free. A single create (`addPet`,
//! `placeOrder`) draws its id inside the snapshot script it reads with (`nextid`: `INCR`, then
//! `EXISTS` of the candidate, in one round trip); a list of users takes a range with `INCRBY`. Ids chosen by clients
//! do not move the counter (a client choosing `i64::MAX` cannot exhaust it). An id drawn by a
//! step that then fails or retries is never handed out.
//!
//! # Cluster
//!
//! The scripts touch several keys. Most are passed in `KEYS`; the pet keys a finder reads and the
//! image keys a pet's deletion drops are built inside the scripts from the ids the index sets
//! hold. On a Redis Cluster all keys must therefore live in one slot: use a hash tag as the
//! prefix (`{petstore}`).

mod cache;
mod scripts;

use std::{collections::HashSet, num::NonZeroUsize, str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use fred::{
    interfaces::{HashesInterface, KeysInterface},
    types::Value,
};
use rand::Rng;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use petstore_api::{
    Image, Role, Serialized,
    error::{Conflict, Failure, Forbidden, Invalid, NotFound, OneOf, ServerError},
    models::{Order, Pet, PetStatus, User},
};

pub use self::cache::CacheStats;
use self::cache::{Lookup, PetCache, Tracking};
use self::scripts::{COMMIT, Commit, FIND, SNAPSHOT, Snapshot};
use super::{
    Inventory, NewImage, NewUser, OrRefuse, OrderUpdate, OrderWrite, Store, StoreResult, Stored,
    StoredUser, normalize_roles, public_user, refuse,
};
use crate::{
    redis::{Idempotence, Redis, RedisError},
    rules::{self, order_not_found, pet_not_found, user_not_found},
};

/// What the store's own reads and bookkeeping answer: a value, or an outage or corrupt data.
type Fallible<T> = Result<T, ServerError>;

/// How often a step reads again after a concurrent change before it gives up. Every retry
/// means another step committed meanwhile, so the system as a whole always moves on; the bound
/// only caps how long one unlucky request waits.
const MAX_ATTEMPTS: u32 = 50;

/// The content types an image can have (the upload handler accepts only these), as the
/// `&'static str` that [`Image`] holds.
const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// The fields of a pet's hash, as reads ask for them.
const PET_FIELDS: [&str; 2] = ["json", "version"];

/// The fields of an order's hash, as reads ask for them.
const ORDER_FIELDS: [&str; 3] = ["json", "owner", "version"];

/// The fields of a user's hash, as reads ask for them: its content, then its version.
const USER_FIELDS: [&str; 4] = ["json", "password_hash", "roles", "version"];

/// The fields of a user's hash that a commit's conditions compare: the content (every write
/// changes the version with it, so the version adds nothing to compare).
const USER_CONTENT: [&str; 3] = ["json", "password_hash", "roles"];

/// The Redis [`Store`]: all state in Redis; optionally a cache of pets in the node, kept
/// correct by Redis's invalidation messages (see [`cache`]).
#[derive(Debug, Clone)]
pub struct RedisStore {
    redis: Redis,
    cache: Option<Arc<Cached>>,
}

/// The pet cache and the connection that keeps it correct; they stop with the last clone of
/// the store.
#[derive(Debug)]
struct Cached {
    cache: Arc<PetCache>,
    tracking: Tracking,
}

/// The kinds of records with an id sequence.
#[derive(Debug, Clone, Copy)]
enum Sequence {
    Pet,
    Order,
    User,
}

impl Sequence {
    fn name(self) -> &'static str {
        match self {
            Self::Pet => "pet",
            Self::Order => "order",
            Self::User => "user",
        }
    }
}

/// What a step decided: the commit that makes it happen and what the step returns then.
struct Plan<T> {
    commit: Commit,
    /// Built before the commit's number is known; [`Stamp`] gives it the number afterwards.
    outcome: T,
}

/// What a step returns: the records it wrote, which carry the commit's number as their version.
///
/// The number is taken inside the commit script, so the records a plan returns are built
/// without it and stamped once the commit went through.
trait Stamp {
    /// Gives every record in `self` version `version`.
    fn stamp(&mut self, version: u64);

    /// Takes what the commit counted ([`Commit::count`]), in the order the plan asked. Plans
    /// that count nothing get an empty slice and ignore it.
    fn counted(&mut self, counts: &[u64]) {
        let _ = counts;
    }
}

impl<T: Clone> Stamp for Arc<Stored<T>> {
    fn stamp(&mut self, version: u64) {
        // The plan's own `Arc`, not shared yet: nothing is copied.
        Arc::make_mut(self).version = version;
    }
}

impl Stamp for Arc<StoredUser> {
    fn stamp(&mut self, version: u64) {
        Arc::make_mut(self).user.version = version;
    }
}

impl<T: Stamp> Stamp for Option<T> {
    fn stamp(&mut self, version: u64) {
        if let Some(record) = self {
            record.stamp(version);
        }
    }
}

impl<T: Stamp> Stamp for Vec<T> {
    fn stamp(&mut self, version: u64) {
        for record in self {
            record.stamp(version);
        }
    }
}

impl Stamp for OrderWrite {
    fn stamp(&mut self, version: u64) {
        self.order.stamp(version);
        self.pet.stamp(version);
    }

    fn counted(&mut self, counts: &[u64]) {
        // Counts that do not fit (never expected) leave the inventory to a read: the write is
        // done and must not fail for a by-product.
        self.inventory = inventory_from(counts);
    }
}

/// What a commit that went through answered: its number, and what it counted.
#[derive(Debug)]
struct Committed {
    version: u64,
    counts: Vec<u64>,
}

impl RedisStore {
    /// A store on `redis`, under its key prefix, without a cache: every read goes to Redis.
    #[must_use]
    pub fn new(redis: Redis) -> Self {
        Self { redis, cache: None }
    }

    /// A store on `redis` that serves `getPetById` from a cache of the last `entries` pets it
    /// read (none when `entries` is 0), invalidated by Redis (see [`cache`]).
    ///
    /// On a Redis Cluster the store runs without the cache (logged once).
    ///
    /// # Errors
    /// [`RedisError`] when the cache's tracking connection cannot be built or does not
    /// connect within the connect timeout.
    pub async fn with_cache(redis: Redis, entries: usize) -> Result<Self, RedisError> {
        let Some(entries) = NonZeroUsize::new(entries) else {
            return Ok(Self::new(redis));
        };
        if redis.is_cluster() {
            tracing::info!("the pet cache is off on a Redis Cluster");
            return Ok(Self::new(redis));
        }
        let cache = Arc::new(PetCache::new(redis.key("pet:"), entries));
        let tracking = Tracking::start(&redis, Arc::clone(&cache)).await?;
        Ok(Self {
            redis,
            cache: Some(Arc::new(Cached { cache, tracking })),
        })
    }

    /// What the pet cache did so far; `None` without a cache.
    #[must_use]
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|cached| cached.cache.stats())
    }

    /// Whether the pet cache is keeping what it reads (its tracking connection is up);
    /// `false` without a cache.
    #[must_use]
    pub fn cache_is_tracking(&self) -> bool {
        self.cache
            .as_ref()
            .is_some_and(|cached| cached.cache.is_enabled())
    }

    /// The Redis client id of the cache's tracking connection (`None` without a cache or
    /// while the connection is being set up), for `CLIENT KILL` in tests.
    #[must_use]
    pub fn cache_client_id(&self) -> Option<i64> {
        self.cache
            .as_ref()
            .map(|cached| cached.tracking.client_id())
            .filter(|id| *id != 0)
    }

    // ---- keys ----

    fn pet_key(&self, id: i64) -> String {
        self.redis.key(format_args!("pet:{id}"))
    }

    fn pet_images_key(&self, id: i64) -> String {
        self.redis.key(format_args!("pet:{id}:images"))
    }

    fn pet_holds_key(&self, id: i64) -> String {
        self.redis.key(format_args!("pet:{id}:holds"))
    }

    fn image_prefix(&self, pet_id: i64) -> String {
        self.redis.key(format_args!("image:{pet_id}:"))
    }

    fn image_key(&self, pet_id: i64, image_id: Uuid) -> String {
        self.redis.key(format_args!("image:{pet_id}:{image_id}"))
    }

    fn pets_key(&self) -> String {
        self.redis.key("pets")
    }

    fn status_key(&self, status: PetStatus) -> String {
        self.redis
            .key(format_args!("pets:status:{}", status.as_str()))
    }

    fn tag_key(&self, name: &str) -> String {
        self.redis.key(format_args!("pets:tag:{name}"))
    }

    fn order_key(&self, id: i64) -> String {
        self.redis.key(format_args!("order:{id}"))
    }

    fn user_key(&self, username: &str) -> String {
        self.redis.key(format_args!("user:{username}"))
    }

    fn user_id_key(&self, id: i64) -> String {
        self.redis.key(format_args!("user-id:{id}"))
    }

    fn seq_key(&self, sequence: Sequence) -> String {
        self.redis.key(format_args!("seq:{}", sequence.name()))
    }

    /// Has `commit` count the pets in each status once its writes are done, in the order of
    /// [`PetStatus::ALL`], which [`inventory_from`] reads them in.
    fn count_inventory(&self, commit: &mut Commit) {
        for status in PetStatus::ALL {
            commit.count(self.status_key(status));
        }
    }

    /// An empty commit, numbered from the store's commit counter.
    fn new_commit(&self) -> Commit {
        Commit::new(self.redis.key("seq:commit"))
    }

    /// The prefix of [`RedisStore::id_key`]: the id follows it.
    fn id_prefix(&self, sequence: Sequence) -> String {
        self.redis.key(match sequence {
            Sequence::Pet => "pet:",
            Sequence::Order => "order:",
            Sequence::User => "user-id:",
        })
    }

    /// The key that, when it exists, holds `id` of this kind.
    fn id_key(&self, sequence: Sequence, id: i64) -> String {
        match sequence {
            Sequence::Pet => self.pet_key(id),
            Sequence::Order => self.order_key(id),
            Sequence::User => self.user_id_key(id),
        }
    }

    // ---- round trips ----

    /// Runs the reads of `snapshot` at one instant; one value per read.
    async fn snapshot(&self, snapshot: Snapshot) -> Fallible<Vec<Value>> {
        let (keys, args) = snapshot.into_parts();
        let values: Value = self
            .redis
            .script("store.snapshot", Idempotence::Read, &SNAPSHOT, keys, args)
            .await?;
        Ok(values.into_array())
    }

    /// Runs `commit`; its number and counts, or `None` when a record it depends on changed
    /// since it was read.
    async fn commit(&self, commit: Commit) -> Fallible<Option<Committed>> {
        let (keys, args) = commit.into_parts();
        let touched = self.cache.as_ref().map(|_| keys.clone());
        let answer = self
            .redis
            .acknowledged_script("store.commit", &COMMIT, keys, args)
            .await;
        // Whatever the answer (a timed-out commit may have been applied), this node reads
        // its own writes from now on, without waiting for the invalidation to come round.
        if let (Some(cached), Some(touched)) = (&self.cache, &touched) {
            cached
                .cache
                .evict_keys(touched.iter().map(|key| key.as_bytes()));
        }
        let answer: Vec<i64> = answer?;
        let mut numbers = answer.iter().map(|number| {
            u64::try_from(*number).map_err(|_| {
                ServerError::internal(format!("the commit script answered {answer:?}"))
            })
        });
        match numbers.next().transpose()? {
            None => Err(ServerError::internal("the commit script answered nothing")),
            Some(0) => Ok(None),
            Some(version) => Ok(Some(Committed {
                version,
                counts: numbers.collect::<Fallible<_>>()?,
            })),
        }
    }

    /// Plans and commits a step until the commit goes through on unchanged records.
    async fn run<T, R, F, Fut>(&self, mut plan: F) -> StoreResult<T, R>
    where
        T: Stamp,
        F: FnMut() -> Fut,
        Fut: Future<Output = StoreResult<Plan<T>, R>>,
    {
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                // Full jitter growing to a few milliseconds, so racing steps spread out.
                let pause = rand::thread_rng().gen_range(0..=200 * u64::from(attempt.min(20)));
                tokio::time::sleep(Duration::from_micros(pause)).await;
            }
            let Plan {
                commit,
                mut outcome,
            } = plan().await?;
            if let Some(committed) = self.commit(commit).await? {
                outcome.stamp(committed.version);
                outcome.counted(&committed.counts);
                return Ok(outcome);
            }
        }
        tracing::warn!(
            attempts = MAX_ATTEMPTS,
            "store step kept meeting concurrent changes"
        );
        Err(ServerError::unavailable("storage is busy; try again later", 1).into())
    }

    /// `count` new ids of `sequence` that no record uses and that are not in `excluded`, taken
    /// with `INCRBY` (atomic across nodes, so concurrent creates never contend for the counter;
    /// an id taken by a step that then fails is simply never used). Adds to `commit` the
    /// condition that each id is still free.
    async fn assign_ids(
        &self,
        sequence: Sequence,
        count: usize,
        excluded: &HashSet<i64>,
        commit: &mut Commit,
    ) -> Fallible<Vec<i64>> {
        let seq_key = self.seq_key(sequence);
        let mut ids = Vec::with_capacity(count);
        while ids.len() < count {
            let wanted = i64::try_from(count - ids.len()).unwrap_or(i64::MAX);
            let key = seq_key.clone();
            let last: i64 = self
                .redis
                .write("store.incr", move |client| {
                    let key = key.clone();
                    async move { client.incr_by(key, wanted).await }
                })
                .await?;
            // Ids chosen by clients do not move the counter: skip the ones in use.
            let candidates: Vec<i64> = (last.saturating_sub(wanted) + 1..=last)
                .filter(|id| !excluded.contains(id))
                .collect();
            let mut reads = Snapshot::new();
            for id in &candidates {
                reads.exists(self.id_key(sequence, *id));
            }
            let taken = self.snapshot(reads).await?;
            for (id, taken) in candidates.into_iter().zip(taken) {
                if integer(&taken)? == 0 {
                    ids.push(id);
                }
            }
        }
        for id in &ids {
            commit.absent(self.id_key(sequence, *id));
        }
        Ok(ids)
    }

    async fn get_bytes(&self, key: String) -> Fallible<Option<Bytes>> {
        Ok(self
            .redis
            .read("store.get", move |client| {
                let key = key.clone();
                async move { client.get(key).await }
            })
            .await?)
    }

    /// `HMGET` of `fields` of the hash at `key`: one value or `None` per field.
    async fn hmget(
        &self,
        key: &str,
        fields: &'static [&'static str],
    ) -> Fallible<Vec<Option<Bytes>>> {
        let key = key.to_owned();
        Ok(self
            .redis
            .read("store.hmget", move |client| {
                let key = key.clone();
                async move { client.hmget(key, fields.to_vec()).await }
            })
            .await?)
    }

    /// Pet `id` and its JSON as stored (what a commit's condition compares).
    async fn read_pet(&self, id: i64) -> Fallible<Option<(Bytes, Stored<Pet>)>> {
        let key = self.pet_key(id);
        let fields = self.hmget(&key, &PET_FIELDS).await?;
        pet_fields(&key, fields)
    }

    async fn read_user(&self, username: &str) -> Fallible<Option<UserRecord>> {
        let key = self.user_key(username);
        let fields = self.hmget(&key, &USER_FIELDS).await?;
        UserRecord::from_fields(&key, fields)
    }

    /// Adds the writes that move pet `id` from `old` to `new` in the index sets (either may be
    /// `None`: created or deleted).
    fn index_pet(&self, commit: &mut Commit, id: i64, old: Option<&Pet>, new: Option<&Pet>) {
        let old_status = old.and_then(|pet| pet.status);
        let new_status = new.and_then(|pet| pet.status);
        if old_status != new_status {
            if let Some(status) = old_status {
                commit.zrem(self.status_key(status), id);
            }
            if let Some(status) = new_status {
                commit.zadd_id(self.status_key(status), id);
            }
        }
        let old_tags = old.map(tag_names).unwrap_or_default();
        let new_tags = new.map(tag_names).unwrap_or_default();
        for name in old_tags.difference(&new_tags) {
            commit.zrem(self.tag_key(name), id);
        }
        for name in new_tags.difference(&old_tags) {
            commit.zadd_id(self.tag_key(name), id);
        }
        match (old, new) {
            (None, Some(_)) => commit.zadd_id(self.pets_key(), id),
            (Some(_), None) => commit.zrem(self.pets_key(), id),
            _ => {}
        }
    }

    /// Replaces pet `id`, read as `old_bytes`/`old`, by `new`, on condition it is unchanged.
    fn replace_pet_in(
        &self,
        commit: &mut Commit,
        id: i64,
        old_bytes: Bytes,
        old: &Pet,
        new: Pet,
    ) -> Arc<Stored<Pet>> {
        let key = self.pet_key(id);
        commit.field_equals(key.clone(), "json", old_bytes);
        self.index_pet(commit, id, Some(old), Some(&new));
        self.write_pet(commit, id, new)
    }

    /// Writes pet `id` as `pet`, numbered by the commit; no index changes.
    fn write_pet(&self, commit: &mut Commit, id: i64, pet: Pet) -> Arc<Stored<Pet>> {
        let key = self.pet_key(id);
        let stored = Stored::new(pet);
        commit.hset(key.clone(), "json", stored.json.bytes().clone());
        commit.version(key, "version");
        Arc::new(stored)
    }

    /// Writes `order` (id `id`), numbered by the commit; its owner only when `owner` is given
    /// (it is written once, when the order is placed).
    fn write_order(
        &self,
        commit: &mut Commit,
        id: i64,
        order: Order,
        owner: Option<&str>,
    ) -> Arc<Stored<Order>> {
        let key = self.order_key(id);
        let stored = Stored::new(order);
        commit.hset(key.clone(), "json", stored.json.bytes().clone());
        if let Some(owner) = owner {
            commit.hset(key.clone(), "owner", owner.to_owned());
        }
        commit.version(key, "version");
        Arc::new(stored)
    }

    /// Writes `user` under its username (every field of the hash), numbered by the commit.
    fn write_user(&self, commit: &mut Commit, user: &StoredUser) {
        let key = self.user_key(&user.user.value.username);
        commit.hset(key.clone(), "json", user.user.json.bytes().clone());
        commit.hset(key.clone(), "password_hash", user.password_hash.clone());
        commit.hset(key.clone(), "roles", encode_roles(&user.roles));
        commit.version(key, "version");
    }

    /// The conditions that user `username` is still exactly `record`.
    fn user_unchanged(&self, commit: &mut Commit, username: &str, record: &UserRecord) {
        let key = self.user_key(username);
        for (field, value) in USER_CONTENT.iter().zip(&record.raw) {
            commit.field_equals(key.clone(), field, value.clone());
        }
    }

    /// Changes user `username` with `change` and writes it back, on condition it is unchanged.
    async fn change_user(
        &self,
        username: &str,
        change: impl Fn(&mut StoredUser),
    ) -> StoreResult<Arc<StoredUser>, NotFound> {
        let change = &change;
        self.run(move || async move {
            let record = self
                .read_user(username)
                .await?
                .or_refuse(|| user_not_found(username))?;
            let mut commit = self.new_commit();
            self.user_unchanged(&mut commit, username, &record);
            let mut user = record.user;
            change(&mut user);
            self.write_user(&mut commit, &user);
            Ok(Plan {
                commit,
                outcome: Arc::new(user),
            })
        })
        .await
    }

    async fn find(&self, indexes: Vec<String>) -> Fallible<Vec<Arc<Stored<Pet>>>> {
        if indexes.is_empty() {
            return Ok(Vec::new());
        }
        let prefix = self.redis.key("pet:");
        let found: Value = self
            .redis
            .script(
                "store.find",
                Idempotence::Read,
                &FIND,
                indexes,
                vec![Value::from(prefix)],
            )
            .await?;
        let values = found.into_array();
        let mut pets = Vec::with_capacity(values.len() / 3);
        let mut values = values.into_iter();
        while let (Some(id), Some(json), Some(version)) =
            (values.next(), values.next(), values.next())
        {
            let id = id.as_str().map(|id| id.into_owned()).unwrap_or_default();
            let key = self.redis.key(format_args!("pet:{id}"));
            let Some((_, pet)) = pet_fields(&key, vec![bytes_of(json), bytes_of(version)])? else {
                return Err(ServerError::internal(format!(
                    "an index names pet {id}, which does not exist"
                )));
            };
            pets.push(Arc::new(pet));
        }
        // The scores order the ids, but a double cannot tell every pair of large ids apart.
        pets.sort_by_key(|pet| pet.value.id);
        Ok(pets)
    }
}

/// A user as read, with the raw values of the fields the commit's conditions compare
/// ([`USER_CONTENT`]).
struct UserRecord {
    user: StoredUser,
    raw: [Bytes; 3],
}

impl UserRecord {
    /// The user from the values of [`USER_FIELDS`]; `None` when it does not exist.
    fn from_fields(key: &str, fields: Vec<Option<Bytes>>) -> Fallible<Option<Self>> {
        let mut fields = fields.into_iter();
        let (Some(json), Some(hash), Some(roles), version) = (
            fields.next().flatten(),
            fields.next().flatten(),
            fields.next().flatten(),
            fields.next().flatten(),
        ) else {
            return Ok(None);
        };
        let user = parse::<User>(key, json.clone(), version)?;
        let password_hash = String::from_utf8(hash.to_vec())
            .map_err(|_| ServerError::internal(format!("{key}: the password hash is not UTF-8")))?;
        let decoded_roles = decode_roles(key, &roles)?;
        Ok(Some(Self {
            user: StoredUser {
                user,
                password_hash,
                roles: decoded_roles,
            },
            raw: [json, hash, roles],
        }))
    }

    fn id(&self, key: &str) -> Fallible<i64> {
        self.user
            .user
            .value
            .id
            .ok_or_else(|| ServerError::internal(format!("{key}: the stored user has no id")))
    }
}

/// Parses a record written by this store, its JSON and its `version` field; anything else
/// (a record without a version included) is corrupt data.
fn parse<T: DeserializeOwned>(
    key: &str,
    json: Bytes,
    version: Option<Bytes>,
) -> Fallible<Stored<T>> {
    let value = serde_json::from_slice(&json)
        .map_err(|error| ServerError::internal(format!("{key}: not a valid record: {error}")))?;
    let version = version
        .as_deref()
        .and_then(|version| std::str::from_utf8(version).ok())
        .and_then(|version| version.parse::<u64>().ok())
        .ok_or_else(|| ServerError::internal(format!("{key}: no valid version")))?;
    Ok(Stored {
        value,
        json: Serialized::from_trusted_bytes(json),
        version,
    })
}

/// A pet from the values of [`PET_FIELDS`], with its JSON as stored; `None` when it does not
/// exist.
fn pet_fields(key: &str, fields: Vec<Option<Bytes>>) -> Fallible<Option<(Bytes, Stored<Pet>)>> {
    let mut fields = fields.into_iter();
    let (Some(json), version) = (fields.next().flatten(), fields.next().flatten()) else {
        return Ok(None);
    };
    let pet = parse(key, json.clone(), version)?;
    Ok(Some((json, pet)))
}

/// The values of a snapshot's `HMGET`, each `None` for nil.
fn fields_of(value: Value) -> Vec<Option<Bytes>> {
    value.into_array().into_iter().map(bytes_of).collect()
}

fn integer(value: &Value) -> Fallible<i64> {
    value.as_i64().ok_or_else(|| {
        ServerError::internal(format!("expected an integer from redis, got {value:?}"))
    })
}

fn tag_names(pet: &Pet) -> HashSet<&str> {
    pet.tags
        .iter()
        .flatten()
        .filter_map(|tag| tag.name.as_deref())
        .collect()
}

fn encode_roles(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|role| role.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn decode_roles(key: &str, raw: &[u8]) -> Fallible<Vec<Role>> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| ServerError::internal(format!("{key}: the roles are not UTF-8")))?;
    let roles = text
        .split(',')
        .filter(|name| !name.is_empty())
        .map(|name| {
            Role::from_str(name).map_err(|error| ServerError::internal(format!("{key}: {error}")))
        })
        .collect::<Fallible<Vec<_>>>()?;
    Ok(normalize_roles(roles))
}

/// The inventory from one count per status in the order of [`PetStatus::ALL`]
/// ([`RedisStore::count_inventory`]); `None` unless there is exactly one per status.
fn inventory_from(counts: &[u64]) -> Option<Inventory> {
    (counts.len() == PetStatus::ALL.len()).then(|| {
        PetStatus::ALL
            .iter()
            .copied()
            .zip(counts.iter().copied())
            .collect()
    })
}

fn with_status(pet: &Pet, status: PetStatus) -> Pet {
    let mut pet = pet.clone();
    pet.status = Some(status);
    pet
}

/// One value of a snapshot as bytes, `None` for nil.
fn bytes_of(value: Value) -> Option<Bytes> {
    if value.is_null() {
        None
    } else {
        value.into_bytes()
    }
}

/// An order from the values of [`ORDER_FIELDS`]: its JSON as stored, the order and its owner;
/// `None` when it does not exist.
fn order_fields(
    key: &str,
    fields: Vec<Option<Bytes>>,
) -> Fallible<Option<(Bytes, Stored<Order>, Bytes)>> {
    let mut fields = fields.into_iter();
    let (Some(json), Some(owner), version) = (
        fields.next().flatten(),
        fields.next().flatten(),
        fields.next().flatten(),
    ) else {
        return Ok(None);
    };
    let order = parse::<Order>(key, json.clone(), version)?;
    Ok(Some((json, order, owner)))
}

fn owner_string(key: &str, owner: &Bytes) -> Fallible<String> {
    String::from_utf8(owner.to_vec())
        .map_err(|_| ServerError::internal(format!("{key}: the owner is not UTF-8")))
}

#[async_trait]
impl Store for RedisStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(self.redis.ping().await?)
    }

    async fn get_pet(&self, id: i64) -> StoreResult<Option<Arc<Stored<Pet>>>> {
        let Some(cached) = &self.cache else {
            return Ok(self.read_pet(id).await?.map(|(_, pet)| Arc::new(pet)));
        };
        cached.cache.follow_pool(self.redis.reconnections());
        match cached.cache.get(id) {
            Lookup::Hit(pet) => Ok(Some(pet)),
            Lookup::Miss(ticket) => {
                let pet = self.read_pet(id).await?.map(|(_, pet)| Arc::new(pet));
                // A missing pet is not cached: its creation would be one more race to guard.
                if let (Some(ticket), Some(pet)) = (ticket, &pet) {
                    cached.cache.insert(id, ticket, Arc::clone(pet));
                }
                Ok(pet)
            }
        }
    }

    async fn create_pet(&self, pet: Pet) -> StoreResult<Arc<Stored<Pet>>, Conflict> {
        let pet = &pet;
        self.run(move || async move {
            let mut commit = self.new_commit();
            let id = match pet.id {
                Some(id) => {
                    let mut reads = Snapshot::new();
                    reads.exists(self.pet_key(id));
                    let exists = self.snapshot(reads).await?;
                    if exists.first().map(integer).transpose()? != Some(0) {
                        return refuse(Conflict(format!("pet {id} already exists")));
                    }
                    commit.absent(self.pet_key(id));
                    id
                }
                None => {
                    // The id in the same round trip as the reads (a create without an id reads
                    // nothing else).
                    let mut reads = Snapshot::new();
                    reads.next_id(self.seq_key(Sequence::Pet), self.id_prefix(Sequence::Pet));
                    let drawn = self.snapshot(reads).await?;
                    let id = drawn
                        .first()
                        .map(integer)
                        .transpose()?
                        .ok_or_else(|| Failure::internal("the snapshot drew no pet id"))?;
                    commit.absent(self.pet_key(id));
                    id
                }
            };
            let mut pet = pet.clone();
            pet.id = Some(id);
            self.index_pet(&mut commit, id, None, Some(&pet));
            let outcome = self.write_pet(&mut commit, id, pet);
            Ok(Plan { commit, outcome })
        })
        .await
    }

    async fn replace_pet(&self, pet: Pet) -> StoreResult<Arc<Stored<Pet>>, NotFound> {
        let id = pet
            .id
            .ok_or_else(|| Failure::internal("replace_pet called for a pet without an id"))?;
        let pet = &pet;
        self.run(move || async move {
            let (old_bytes, old) = self.read_pet(id).await?.or_refuse(|| pet_not_found(id))?;
            let mut commit = self.new_commit();
            let outcome = self.replace_pet_in(&mut commit, id, old_bytes, &old.value, pet.clone());
            Ok(Plan { commit, outcome })
        })
        .await
    }

    async fn update_pet_fields(
        &self,
        id: i64,
        name: Option<String>,
        status: Option<PetStatus>,
    ) -> StoreResult<Arc<Stored<Pet>>, NotFound> {
        let name = &name;
        self.run(move || async move {
            let (old_bytes, old) = self.read_pet(id).await?.or_refuse(|| pet_not_found(id))?;
            let mut pet = old.value.clone();
            if let Some(name) = name {
                pet.name = name.clone();
            }
            if let Some(status) = status {
                pet.status = Some(status);
            }
            let mut commit = self.new_commit();
            let outcome = self.replace_pet_in(&mut commit, id, old_bytes, &old.value, pet);
            Ok(Plan { commit, outcome })
        })
        .await
    }

    async fn delete_pet(&self, id: i64) -> StoreResult<Arc<Stored<Pet>>, NotFound> {
        self.run(move || async move {
            let (old_bytes, old) = self.read_pet(id).await?.or_refuse(|| pet_not_found(id))?;
            let mut commit = self.new_commit();
            let key = self.pet_key(id);
            commit.field_equals(key.clone(), "json", old_bytes);
            commit.del(key);
            self.index_pet(&mut commit, id, Some(&old.value), None);
            commit.del_members(self.pet_images_key(id), self.image_prefix(id));
            // The orders stay, but they no longer hold anything: a new pet created later under
            // this id must not be released by deleting one of them.
            commit.del(self.pet_holds_key(id));
            Ok(Plan {
                commit,
                outcome: Arc::new(old),
            })
        })
        .await
    }

    async fn find_pets_by_status(
        &self,
        statuses: &[PetStatus],
    ) -> StoreResult<Vec<Arc<Stored<Pet>>>> {
        let distinct: HashSet<PetStatus> = statuses.iter().copied().collect();
        self.find(
            distinct
                .into_iter()
                .map(|status| self.status_key(status))
                .collect(),
        )
        .await
        .map_err(Failure::from)
    }

    async fn find_pets_by_tags(&self, tags: &[String]) -> StoreResult<Vec<Arc<Stored<Pet>>>> {
        let distinct: HashSet<&str> = tags.iter().map(String::as_str).collect();
        self.find(distinct.into_iter().map(|tag| self.tag_key(tag)).collect())
            .await
            .map_err(Failure::from)
    }

    async fn inventory(&self) -> StoreResult<Inventory> {
        let mut reads = Snapshot::new();
        for status in PetStatus::ALL {
            reads.zcard(self.status_key(status));
        }
        let counts = self
            .snapshot(reads)
            .await?
            .iter()
            .map(|count| {
                u64::try_from(integer(count)?)
                    .map_err(|_| ServerError::internal("a negative count"))
            })
            .collect::<Fallible<Vec<u64>>>()?;
        Ok(inventory_from(&counts).ok_or_else(|| {
            ServerError::internal(format!("{} counts for the inventory", counts.len()))
        })?)
    }

    async fn add_pet_image(
        &self,
        pet_id: i64,
        image: NewImage,
        max_photos: usize,
    ) -> StoreResult<Arc<Stored<Pet>>, OneOf<NotFound, Conflict>> {
        let image_key = &self.image_key(pet_id, image.id);
        let image = &image;
        self.run(move || async move {
            let mut reads = Snapshot::new();
            let pet_key = self.pet_key(pet_id);
            reads
                .hmget(pet_key.clone(), &PET_FIELDS)
                .exists(image_key.clone());
            let mut values = self.snapshot(reads).await?.into_iter();
            let (old_bytes, old) = match values.next() {
                Some(value) => pet_fields(&pet_key, fields_of(value))?,
                None => None,
            }
            .or_refuse(|| OneOf::First(pet_not_found(pet_id)))?;
            if old.value.photo_urls.len() >= max_photos {
                return refuse(OneOf::Second(Conflict(format!(
                    "pet {pet_id} already has {max_photos} photos, the most it may have"
                ))));
            }
            if values.next().map(|taken| integer(&taken)).transpose()? != Some(0) {
                return refuse(OneOf::Second(Conflict(format!(
                    "image {} of pet {pet_id} already exists",
                    image.id
                ))));
            }
            let mut pet = old.value.clone();
            pet.photo_urls.push(image.url.clone());
            let mut commit = self.new_commit();
            commit.absent(image_key.clone());
            commit.hset(image_key.clone(), "content_type", image.image.content_type);
            commit.hset(image_key.clone(), "bytes", image.image.bytes.clone());
            if let Some(metadata) = &image.metadata {
                commit.hset(image_key.clone(), "metadata", metadata.clone());
            }
            commit.sadd(self.pet_images_key(pet_id), image.id.to_string());
            let outcome = self.replace_pet_in(&mut commit, pet_id, old_bytes, &old.value, pet);
            Ok(Plan { commit, outcome })
        })
        .await
    }

    async fn get_pet_image(&self, pet_id: i64, image_id: Uuid) -> StoreResult<Option<Image>> {
        let key = self.image_key(pet_id, image_id);
        let fields: Vec<Option<Bytes>> = {
            let key = key.clone();
            self.redis
                .read("store.hmget", move |client| {
                    let key = key.clone();
                    async move { client.hmget(key, vec!["content_type", "bytes"]).await }
                })
                .await?
        };
        let mut fields = fields.into_iter();
        let (Some(content_type), Some(bytes)) = (fields.next().flatten(), fields.next().flatten())
        else {
            return Ok(None);
        };
        let content_type = IMAGE_TYPES
            .iter()
            .find(|known| known.as_bytes() == content_type.as_ref())
            .ok_or_else(|| ServerError::internal(format!("{key}: unknown content type")))?;
        Ok(Some(Image {
            content_type,
            bytes,
        }))
    }

    async fn place_order(
        &self,
        order: Order,
        owner: &str,
    ) -> StoreResult<OrderWrite, OneOf<NotFound, Conflict>> {
        let order = &order;
        self.run(move || async move {
            let mut commit = self.new_commit();
            let pet_key = self.pet_key(order.pet_id);
            let mut reads = Snapshot::new();
            reads.hmget(pet_key.clone(), &PET_FIELDS);
            // The order's id is taken in the same round trip as the pet: one round trip
            // before the commit instead of three.
            match order.id {
                Some(id) => reads.exists(self.order_key(id)),
                None => reads.next_id(
                    self.seq_key(Sequence::Order),
                    self.id_prefix(Sequence::Order),
                ),
            };
            let mut values = self.snapshot(reads).await?.into_iter();
            let pet = match values.next() {
                Some(value) => pet_fields(&pet_key, fields_of(value))?,
                None => None,
            };
            let second = values.next().map(|value| integer(&value)).transpose()?;
            let id = match order.id {
                Some(id) => {
                    if second != Some(0) {
                        return refuse(OneOf::Second(Conflict(format!(
                            "order {id} already exists"
                        ))));
                    }
                    id
                }
                None => second.ok_or_else(|| Failure::internal("the snapshot drew no order id"))?,
            };
            commit.absent(self.order_key(id));
            let (pet_bytes, current) =
                pet.or_refuse(|| OneOf::First(pet_not_found(order.pet_id)))?;
            let placement = rules::place_order(order.clone(), id, &current.value)
                .map_err(|conflict| Failure::Refused(OneOf::Second(conflict)))?;

            let pet_id = placement.order.pet_id;
            let pet = self.replace_pet_in(
                &mut commit,
                pet_id,
                pet_bytes,
                &current.value,
                with_status(&current.value, placement.pet_status),
            );
            if placement.holds_pet {
                commit.sadd(self.pet_holds_key(pet_id), id);
            }
            let order = self.write_order(&mut commit, id, placement.order, Some(owner));
            self.count_inventory(&mut commit);
            Ok(Plan {
                commit,
                outcome: OrderWrite {
                    order,
                    pet: Some(pet),
                    inventory: None,
                },
            })
        })
        .await
    }

    async fn get_order(&self, id: i64) -> StoreResult<Option<Arc<Stored<Order>>>> {
        let key = self.order_key(id);
        let fields = self.hmget(&key, &ORDER_FIELDS).await?;
        Ok(order_fields(&key, fields)?.map(|(_, order, _)| Arc::new(order)))
    }

    async fn get_order_with_owner(
        &self,
        id: i64,
    ) -> StoreResult<Option<(Arc<Stored<Order>>, String)>> {
        let key = self.order_key(id);
        let fields = self.hmget(&key, &ORDER_FIELDS).await?;
        match order_fields(&key, fields)? {
            Some((_, order, owner)) => Ok(Some((Arc::new(order), owner_string(&key, &owner)?))),
            None => Ok(None),
        }
    }

    async fn order_owner(&self, id: i64) -> StoreResult<Option<String>> {
        let key = self.order_key(id);
        let owner: Option<Bytes> = {
            let key = key.clone();
            self.redis
                .read("store.hget", move |client| {
                    let key = key.clone();
                    async move { client.hget(key, "owner").await }
                })
                .await?
        };
        Ok(owner.map(|owner| owner_string(&key, &owner)).transpose()?)
    }

    async fn update_order(
        &self,
        id: i64,
        update: OrderUpdate,
    ) -> StoreResult<OrderWrite, OneOf<NotFound, Invalid>> {
        let key = &self.order_key(id);
        let update = &update;
        self.run(move || async move {
            let mut reads = Snapshot::new();
            reads.hmget(key.clone(), &ORDER_FIELDS);
            let value = self.snapshot(reads).await?.into_iter().next();
            let (json, current, _) = match value {
                Some(value) => order_fields(key, fields_of(value))?,
                None => None,
            }
            .or_refuse(|| OneOf::First(order_not_found(id)))?;
            let change = rules::update_order(&current.value, update)
                .map_err(|invalid| Failure::Refused(OneOf::Second(invalid)))?;

            let mut commit = self.new_commit();
            commit.field_equals(key.clone(), "json", json);
            let mut pet = None;
            if change.delivers {
                let pet_id = change.order.pet_id;
                commit.srem(self.pet_holds_key(pet_id), id);
                match self.read_pet(pet_id).await? {
                    Some((pet_bytes, current_pet)) => {
                        pet = Some(self.replace_pet_in(
                            &mut commit,
                            pet_id,
                            pet_bytes,
                            &current_pet.value,
                            with_status(&current_pet.value, PetStatus::Sold),
                        ));
                    }
                    None => commit.absent(self.pet_key(pet_id)),
                }
            }
            let order = self.write_order(&mut commit, id, change.order, None);
            if pet.is_some() {
                self.count_inventory(&mut commit);
            }
            Ok(Plan {
                commit,
                outcome: OrderWrite {
                    order,
                    pet,
                    inventory: None,
                },
            })
        })
        .await
    }

    async fn delete_order(
        &self,
        id: i64,
        only_owner: Option<&str>,
    ) -> StoreResult<OrderWrite, OneOf<NotFound, Forbidden>> {
        let key = &self.order_key(id);
        self.run(move || async move {
            let mut reads = Snapshot::new();
            reads.hmget(key.clone(), &ORDER_FIELDS);
            let value = self.snapshot(reads).await?.into_iter().next();
            let (json, removed, owner) = match value {
                Some(value) => order_fields(key, fields_of(value))?,
                None => None,
            }
            .or_refuse(|| OneOf::First(order_not_found(id)))?;
            if only_owner.is_some_and(|only| only.as_bytes() != owner.as_ref()) {
                return refuse(OneOf::Second(Forbidden(format!(
                    "order {id} belongs to someone else"
                ))));
            }

            let mut commit = self.new_commit();
            commit.field_equals(key.clone(), "json", json);
            commit.field_equals(key.clone(), "owner", owner);
            commit.del(key.clone());
            let pet_id = removed.value.pet_id;
            let mut pet = None;
            if rules::holds_pet(&removed.value) {
                let holds_key = self.pet_holds_key(pet_id);
                let pet_key = self.pet_key(pet_id);
                let mut reads = Snapshot::new();
                reads
                    .member(holds_key.clone(), id)
                    .card(holds_key.clone())
                    .hmget(pet_key.clone(), &PET_FIELDS);
                let mut values = self.snapshot(reads).await?.into_iter();
                let held = values.next().map(|v| integer(&v)).transpose()? == Some(1);
                let holders = values.next().map(|v| integer(&v)).transpose()?.unwrap_or(0);
                let current_pet = match values.next() {
                    Some(value) => pet_fields(&pet_key, fields_of(value))?,
                    None => None,
                };
                commit.membership(holds_key.clone(), id, held);
                commit.cardinality(holds_key.clone(), holders);
                if held {
                    commit.srem(holds_key, id);
                }
                // An order missing from the holds holds nothing: its pet was deleted after it
                // was placed. Only the last hold releases the pet.
                if held && holders == 1 {
                    commit.field_equals_or_absent(
                        pet_key,
                        "json",
                        current_pet.as_ref().map(|(bytes, _)| bytes.clone()),
                    );
                    if let Some((pet_bytes, current)) = current_pet
                        && let Some(status) = rules::released_pet_status(&current.value)
                    {
                        pet = Some(self.replace_pet_in(
                            &mut commit,
                            pet_id,
                            pet_bytes,
                            &current.value,
                            with_status(&current.value, status),
                        ));
                    }
                }
            }
            if pet.is_some() {
                self.count_inventory(&mut commit);
            }
            Ok(Plan {
                commit,
                outcome: OrderWrite {
                    order: Arc::new(removed),
                    pet,
                    inventory: None,
                },
            })
        })
        .await
    }

    async fn create_users(
        &self,
        users: Vec<NewUser>,
    ) -> StoreResult<Vec<Arc<StoredUser>>, Conflict> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut names = HashSet::with_capacity(users.len());
        let mut explicit = HashSet::new();
        for new in &users {
            let username = new.user.username.as_str();
            if !names.insert(username) {
                return refuse(Conflict(format!(
                    "username {username} appears more than once in the list"
                )));
            }
            if let Some(id) = new.user.id
                && !explicit.insert(id)
            {
                return refuse(Conflict(format!(
                    "user id {id} appears more than once in the list"
                )));
            }
        }
        let (users, explicit) = (&users, &explicit);

        self.run(move || async move {
            let mut reads = Snapshot::new();
            for new in users.iter() {
                reads.exists(self.user_key(&new.user.username));
                if let Some(id) = new.user.id {
                    reads.exists(self.user_id_key(id));
                }
            }
            let mut taken = self.snapshot(reads).await?.into_iter();
            let mut commit = self.new_commit();
            for new in users.iter() {
                let username = new.user.username.as_str();
                if taken.next().map(|v| integer(&v)).transpose()? != Some(0) {
                    return refuse(Conflict(format!("username {username} is already taken")));
                }
                commit.absent(self.user_key(username));
                if let Some(id) = new.user.id {
                    if taken.next().map(|v| integer(&v)).transpose()? != Some(0) {
                        return refuse(Conflict(format!("user id {id} is already taken")));
                    }
                    commit.absent(self.user_id_key(id));
                }
            }

            // Assigned ids skip the explicit ids of this list too, so none clashes with them.
            let missing = users.iter().filter(|new| new.user.id.is_none()).count();
            let mut assigned = if missing > 0 {
                self.assign_ids(Sequence::User, missing, explicit, &mut commit)
                    .await?
            } else {
                Vec::new()
            }
            .into_iter();

            let mut created = Vec::with_capacity(users.len());
            for new in users.iter() {
                let id = match new.user.id {
                    Some(id) => id,
                    None => assigned.next().ok_or_else(|| {
                        Failure::internal("fewer user ids assigned than asked for")
                    })?,
                };
                let stored = StoredUser {
                    user: Stored::new(public_user(new.user.clone(), id)),
                    password_hash: new.password_hash.clone(),
                    roles: normalize_roles(new.roles.clone()),
                };
                self.write_user(&mut commit, &stored);
                commit.set(self.user_id_key(id), new.user.username.clone());
                created.push(Arc::new(stored));
            }
            Ok(Plan {
                commit,
                outcome: created,
            })
        })
        .await
    }

    async fn get_user(&self, username: &str) -> StoreResult<Option<Arc<StoredUser>>> {
        Ok(self
            .read_user(username)
            .await?
            .map(|record| Arc::new(record.user)))
    }

    async fn update_user(
        &self,
        username: &str,
        user: User,
        password_hash: Option<String>,
    ) -> StoreResult<Arc<StoredUser>, OneOf<NotFound, Conflict>> {
        let renamed = user.username != username;
        let (user, password_hash) = (&user, &password_hash);
        self.run(move || async move {
            let old_key = self.user_key(username);
            let mut reads = Snapshot::new();
            reads.hmget(old_key.clone(), &USER_FIELDS);
            if renamed {
                reads.exists(self.user_key(&user.username));
            }
            let mut values = self.snapshot(reads).await?.into_iter();
            let fields = values.next().map(fields_of).unwrap_or_default();
            let record = UserRecord::from_fields(&old_key, fields)?
                .or_refuse(|| OneOf::First(user_not_found(username)))?;
            let mut commit = self.new_commit();
            self.user_unchanged(&mut commit, username, &record);
            if renamed {
                if values.next().map(|v| integer(&v)).transpose()? != Some(0) {
                    return refuse(OneOf::Second(Conflict(format!(
                        "username {} is already taken",
                        user.username
                    ))));
                }
                commit.absent(self.user_key(&user.username));
            }

            let old_id = record.id(&old_key)?;
            let id = user.id.unwrap_or(old_id);
            let id_key = self.user_id_key(id);
            let holder = self.get_bytes(id_key.clone()).await?;
            if holder
                .as_ref()
                .is_some_and(|holder| holder.as_ref() != username.as_bytes())
            {
                return refuse(OneOf::Second(Conflict(format!(
                    "user id {id} belongs to another user"
                ))));
            }
            commit.equals_or_absent(id_key.clone(), holder);

            let stored = StoredUser {
                user: Stored::new(public_user(user.clone(), id)),
                password_hash: password_hash
                    .clone()
                    .unwrap_or_else(|| record.user.password_hash.clone()),
                roles: record.user.roles.clone(),
            };
            if renamed {
                commit.del(old_key);
            }
            self.write_user(&mut commit, &stored);
            commit.del(self.user_id_key(old_id));
            commit.set(id_key, stored.user.value.username.clone());
            Ok(Plan {
                commit,
                outcome: Arc::new(stored),
            })
        })
        .await
    }

    async fn set_user_roles(
        &self,
        username: &str,
        roles: Vec<Role>,
    ) -> StoreResult<Arc<StoredUser>, NotFound> {
        let roles = normalize_roles(roles);
        self.change_user(username, |user| user.roles = roles.clone())
            .await
    }

    async fn set_password_hash(
        &self,
        username: &str,
        password_hash: String,
    ) -> StoreResult<Arc<StoredUser>, NotFound> {
        self.change_user(username, |user| user.password_hash = password_hash.clone())
            .await
    }

    async fn delete_user(&self, username: &str) -> StoreResult<Arc<StoredUser>, NotFound> {
        self.run(move || async move {
            let record = self
                .read_user(username)
                .await?
                .or_refuse(|| user_not_found(username))?;
            let key = self.user_key(username);
            let mut commit = self.new_commit();
            self.user_unchanged(&mut commit, username, &record);
            commit.del(key.clone());
            commit.del(self.user_id_key(record.id(&key)?));
            Ok(Plan {
                commit,
                outcome: Arc::new(record.user),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests;
