//! Storage: where pets, orders, users and images live.
//!
//! Handlers talk to storage only through the [`Store`] trait. Its methods are *domain-level
//! atomic steps* ("place this order", "deliver that order"), not generic CRUD, because every
//! step that touches several records (placing an order reserves its pet) must be atomic in every
//! implementation: [`MemoryStore`] serializes such steps behind one writer lock, and a Redis
//! implementation runs each as one Lua script or `MULTI`/`WATCH` transaction.
//!
//! The store applies the rules that need its atomicity (order and pet states move together, ids
//! and usernames are unique), deciding them with the pure functions of [`crate::rules`], so both
//! stores decide alike; schema validation and authorization stay in the handlers.
//!
//! Each step says how it can refuse in its type: [`StoreResult<T, R>`] is `Result<T,
//! Failure<R>>`, where `R` is the step's refusal (`NotFound`, `Conflict`, `OneOf` of two, or
//! none) and `Failure::Server` an outage or a bug. A handler can then `?` a step only if its
//! operation documents the step's refusals. What the
//! handlers need to authorize is kept here though, beside the records it guards: each order's
//! owner (the wire `Order` stays the classic Petstore schema, so the owner is not part of it) and
//! each user's roles.
//!
//! Entities are kept together with their JSON, rendered once when they are written
//! ([`Stored`]): a read hands the pre-rendered bytes to the transport and runs no serializer.
//! Each also carries its version: the number of the store-wide commit that last wrote it, so
//! two events about one entity can be put back in the order their writes committed.
//!
//! - `memory`: the embedded default, [`MemoryStore`].
//! - `redis_store`: the store a cluster of nodes shares, [`RedisStore`] (its module doc
//!   describes the Redis data model).
//! - `demo`: the demo data loaded at start-up unless disabled, [`load_demo_data`].

mod demo;
mod memory;
mod redis_store;

#[cfg(test)]
pub(crate) mod conformance;

use std::{collections::BTreeMap, convert::Infallible, fmt, sync::Arc};

use async_trait::async_trait;
use serde::Serialize;
use uuid::Uuid;

use petstore_api::{
    Image, Role, Serialized,
    error::{Conflict, Failure, Forbidden, Invalid, NotFound, OneOf},
    models::{Order, Pet, PetStatus, User},
};

pub use crate::rules::OrderUpdate;

pub use demo::{
    DEMO_ADMIN_PASSWORD, DEMO_ADMIN_USERNAME, DEMO_PASSWORD, DEMO_USER2_USERNAME, DEMO_USERNAME,
    DemoDataError, DemoLoad, load_demo_data,
};
pub use memory::MemoryStore;
pub use redis_store::RedisStore;

/// The store as the rest of the application holds it.
pub type SharedStore = Arc<dyn Store>;

/// The result of a store step that refuses with `R` (nothing, by default).
pub type StoreResult<T, R = Infallible> = Result<T, Failure<R>>;

/// An entity together with its JSON, rendered once when it was written, and its version.
///
/// `json` is always the rendering of `value` (every write builds a new `Stored` with
/// [`Stored::with_version`]); reads serve `json` as it is. Entities are shared as
/// `Arc<Stored<T>>`, so a reader keeps a consistent copy even while a writer publishes the next
/// one.
///
/// `version` is the number of the store's commit that last wrote the entity (see
/// [`Store`]): every write step takes the next number of one store-wide sequence, so the
/// versions of one entity only grow, across deletion and re-creation too, and two writes of it
/// compare in the order they committed. Events carry it so that the bus can drop an event that
/// arrives after a newer one for the same entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored<T> {
    /// The entity.
    pub value: T,
    /// The JSON text of `value`.
    pub json: Serialized<T>,
    /// The number of the commit that last wrote it; 0 for a value no store has written.
    pub version: u64,
}

impl<T: Serialize> Stored<T> {
    /// Renders `value` and keeps both, at version 0: a value no store has written (a client's
    /// own copy, a test's).
    pub fn new(value: T) -> Self {
        Self::with_version(value, 0)
    }

    /// Renders `value` and keeps both, as written by commit `version`.
    pub fn with_version(value: T, version: u64) -> Self {
        let json = Serialized::new(&value);
        Self {
            value,
            json,
            version,
        }
    }
}

impl<T: Clone> Stored<T> {
    /// The same entity and JSON, as touched by commit `version`: a record deleted by it (the
    /// deletion is the entity's last write) or kept unchanged beside a change to what is stored
    /// with it (a user's roles or password hash).
    #[must_use]
    pub fn at_version(&self, version: u64) -> Self {
        Self {
            value: self.value.clone(),
            json: self.json.clone(),
            version,
        }
    }
}

/// A user as stored: its public record, the hash of its password and its roles.
///
/// The record's `password` is always `None` (the model's field is write-only, and the clear
/// password is never kept), so `user.json` never contains it either. The roles are not part of
/// the public record either: the wire `User` is the classic Petstore schema.
#[derive(Clone, PartialEq)]
pub struct StoredUser {
    /// The public record.
    pub user: Stored<User>,
    /// The password hash (PHC string) that logins are checked against.
    pub password_hash: String,
    /// The roles the user holds, sorted and without duplicates.
    pub roles: Vec<Role>,
}

impl StoredUser {
    /// The number of the commit that last wrote the user (record, hash or roles): the
    /// version of `user`.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.user.version
    }

    /// This user as touched by commit `version` (see [`Stored::at_version`]).
    #[must_use]
    pub fn at_version(&self, version: u64) -> Self {
        Self {
            user: self.user.at_version(version),
            password_hash: self.password_hash.clone(),
            roles: self.roles.clone(),
        }
    }
}

impl fmt::Debug for StoredUser {
    // The hash is kept out of logs: it is offline-attackable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredUser")
            .field("user", &self.user)
            .field("password_hash", &"<redacted>")
            .field("roles", &self.roles)
            .finish()
    }
}

/// A user to create: the record as the client sent it, its already hashed password and the roles
/// it is given.
///
/// Hashing happens before the store is called (it is slow and needs no lock); the store
/// clears `user.password` whatever it holds. Which roles a new user gets is the handler's
/// decision (`createUser` gives [`Role::Customer`]); the store sorts and deduplicates them.
#[derive(Clone, PartialEq)]
pub struct NewUser {
    /// The record; `id` is assigned when `None`.
    pub user: User,
    /// The password hash (PHC string).
    pub password_hash: String,
    /// The roles to give the user, in any order, duplicates allowed.
    pub roles: Vec<Role>,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("user", &self.user)
            .field("password_hash", &"<redacted>")
            .field("roles", &self.roles)
            .finish()
    }
}

/// Roles as every store keeps them: sorted, each once. One canonical form means two users with
/// the same roles compare equal and a backend can store the list as it is.
pub(crate) fn normalize_roles(mut roles: Vec<Role>) -> Vec<Role> {
    roles.sort_unstable();
    roles.dedup();
    roles
}

/// A record the step needs, or its refusal: `self.pet(id).or_refuse(|| pet_not_found(id))?`.
pub(crate) trait OrRefuse<T> {
    /// The value, or the step's refusal.
    fn or_refuse<R>(self, refusal: impl FnOnce() -> R) -> StoreResult<T, R>;
}

impl<T> OrRefuse<T> for Option<T> {
    fn or_refuse<R>(self, refusal: impl FnOnce() -> R) -> StoreResult<T, R> {
        self.ok_or_else(|| Failure::Refused(refusal()))
    }
}

/// A step's refusal, as its result.
pub(crate) fn refuse<T, R>(refusal: R) -> StoreResult<T, R> {
    Err(Failure::Refused(refusal))
}

/// A user record as stored: never with a password.
pub(crate) fn public_user(mut user: User, id: i64) -> User {
    user.id = Some(id);
    user.password = None;
    user
}

/// The number of pets in each status ([`Store::inventory`]).
pub type Inventory = BTreeMap<PetStatus, u64>;

/// What an order operation wrote: the order and, when the step changed it, its pet.
///
/// The pet is returned so the handler can publish the pet's change as an event too (events are
/// emitted by handlers after the write, never by the store).
#[derive(Debug, Clone)]
pub struct OrderWrite {
    /// The order as stored now (for a delete: as it was when it was removed).
    pub order: Arc<Stored<Order>>,
    /// The pet's new version, if this step changed the pet's status.
    pub pet: Option<Arc<Stored<Pet>>>,
    /// The inventory right after the step, when the step changed a pet's status and the store
    /// counted it in the same step at no extra cost (the Redis store does, inside its commit,
    /// which saves the `inventory.changed` event a round trip). `None` otherwise: whoever needs
    /// it asks [`Store::inventory`].
    pub inventory: Option<Inventory>,
}

/// An uploaded image to attach to a pet.
#[derive(Debug, Clone, PartialEq)]
pub struct NewImage {
    /// The id the image is served under (chosen by the handler, usually a random v4).
    pub id: Uuid,
    /// The bytes and their sniffed content type.
    pub image: Image,
    /// The client's `additionalMetadata`, kept with the image.
    pub metadata: Option<String>,
    /// The URL the image is served at; appended to the pet's `photoUrls`.
    pub url: String,
}

/// The storage interface the handlers use.
///
/// Every method is one atomic step: either all of its effects happen or none do, and concurrent
/// steps behave as if they ran one after the other. Ids, when the input has none, come from a
/// sequence that never hands out an id twice and skips ids in use (a client may choose an id;
/// one choosing `i64::MAX` does not exhaust the sequence for everyone else).
///
/// Every step that writes takes the next number of the store's commit sequence inside its
/// atomic step, so the numbers follow the order the steps took effect in (between nodes too),
/// and every entity it wrote carries that number as its [`Stored::version`]: one number for an
/// order and its pet changed together, and for each user of a `create_users` list. A deleted
/// entity a step returns carries the number of the deleting step. Versions are for ordering
/// writes, not for counting them: nothing promises that the sequence has no gaps.
///
/// Reads return shared, immutable copies; a read never blocks behind another read.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the store can serve requests (for `/ready`). Cheap: the memory store always
    /// answers `Ok`.
    async fn ping(&self) -> StoreResult<()>;

    // ---- pets ----

    /// The pet with this id.
    async fn get_pet(&self, id: i64) -> StoreResult<Option<Arc<Stored<Pet>>>>;

    /// Stores a new pet (`addPet`). The id is assigned when `pet.id` is `None`; an id that is
    /// taken is a `Conflict`.
    async fn create_pet(&self, pet: Pet) -> StoreResult<Arc<Stored<Pet>>, Conflict>;

    /// Replaces the pet with `pet.id` by `pet` (`updatePet`). `NotFound` if there is no such
    /// pet; the caller supplies the id (a pet without one is an internal error). Uploaded
    /// images stay stored.
    async fn replace_pet(&self, pet: Pet) -> StoreResult<Arc<Stored<Pet>>, NotFound>;

    /// Changes the given fields of a pet and keeps the others (`updatePetWithForm`).
    async fn update_pet_fields(
        &self,
        id: i64,
        name: Option<String>,
        status: Option<PetStatus>,
    ) -> StoreResult<Arc<Stored<Pet>>, NotFound>;

    /// Deletes a pet and its images; returns the pet as it was. Its orders are kept.
    async fn delete_pet(&self, id: i64) -> StoreResult<Arc<Stored<Pet>>, NotFound>;

    /// Every pet whose status is one of `statuses`, ordered by id. Pets without a status never
    /// match; an empty `statuses` matches nothing (the handler supplies the default).
    async fn find_pets_by_status(
        &self,
        statuses: &[PetStatus],
    ) -> StoreResult<Vec<Arc<Stored<Pet>>>>;

    /// Every pet having a tag whose name is one of `tags` (exact match), each once, ordered by
    /// id.
    async fn find_pets_by_tags(&self, tags: &[String]) -> StoreResult<Vec<Arc<Stored<Pet>>>>;

    /// The number of pets in each status; every status is present, zeros included. Pets without
    /// a status are not counted.
    async fn inventory(&self) -> StoreResult<Inventory>;

    /// Stores an image for a pet and appends `image.url` to its `photoUrls`, in one step;
    /// returns the updated pet. `NotFound` if there is no such pet; `Conflict` if its
    /// `photoUrls` already holds `max_photos` entries or the image id is taken.
    async fn add_pet_image(
        &self,
        pet_id: i64,
        image: NewImage,
        max_photos: usize,
    ) -> StoreResult<Arc<Stored<Pet>>, OneOf<NotFound, Conflict>>;

    /// An image uploaded for a pet.
    async fn get_pet_image(&self, pet_id: i64, image_id: Uuid) -> StoreResult<Option<Image>>;

    // ---- orders ----

    /// Places an order (`placeOrder`) for `owner`, reserving its pet in the same step.
    ///
    /// The id is assigned when `None` (`Conflict` if taken). The pet must exist (`NotFound`);
    /// the rest is [`crate::rules::place_order`].
    ///
    /// `owner` is who placed the order: the caller's username, or a service key's name. It is
    /// stored with the order in the same step, never changes, and goes when the order does.
    async fn place_order(
        &self,
        order: Order,
        owner: &str,
    ) -> StoreResult<OrderWrite, OneOf<NotFound, Conflict>>;

    /// The order with this id.
    async fn get_order(&self, id: i64) -> StoreResult<Option<Arc<Stored<Order>>>>;

    /// The order with this id together with its owner, read in one step.
    async fn get_order_with_owner(
        &self,
        id: i64,
    ) -> StoreResult<Option<(Arc<Stored<Order>>, String)>>;

    /// Who placed the order with this id (the `owner` given to [`Store::place_order`]); `None`
    /// when there is no such order.
    async fn order_owner(&self, id: i64) -> StoreResult<Option<String>>;

    /// Changes an order's status, ship date or completion flag (`updateOrder`).
    ///
    /// [`crate::rules::update_order`] decides (moving back is `Invalid` on `status`);
    /// delivering marks the pet, if it still exists, `sold`.
    async fn update_order(
        &self,
        id: i64,
        update: OrderUpdate,
    ) -> StoreResult<OrderWrite, OneOf<NotFound, Invalid>>;

    /// Deletes an order (`deleteOrder`); returns it as it was. Deleting an order that was not
    /// delivered releases its pet: a `pending` pet becomes `available` again, unless another
    /// undelivered order still holds it.
    ///
    /// With `only_owner`, the order is deleted only if it belongs to that owner (`Forbidden`
    /// otherwise), checked in the same atomic step: ids can be chosen by clients, so a separate
    /// check could pass for one order and the delete hit another placed under the same id.
    async fn delete_order(
        &self,
        id: i64,
        only_owner: Option<&str>,
    ) -> StoreResult<OrderWrite, OneOf<NotFound, Forbidden>>;

    // ---- users ----

    /// Creates every user of the list or none (`createUser`, `createUsersWithListInput`);
    /// returns them as stored, in input order. A username or id that is taken, or that appears
    /// twice in the list, is a `Conflict`. Ids are assigned where `None`.
    async fn create_users(
        &self,
        users: Vec<NewUser>,
    ) -> StoreResult<Vec<Arc<StoredUser>>, Conflict>;

    /// The user with this username (exact, case-sensitive match).
    async fn get_user(&self, username: &str) -> StoreResult<Option<Arc<StoredUser>>>;

    /// Replaces the fields of user `username` with `user`'s (`updateUser`).
    ///
    /// A different `user.username` renames the user (`Conflict` if that name is taken). A `None`
    /// `password_hash` keeps the old password. A `None` `user.id` keeps the old id; an id that
    /// belongs to another user is a `Conflict`. The roles stay as they are (a renamed user keeps
    /// them): only [`Store::set_user_roles`] changes them.
    async fn update_user(
        &self,
        username: &str,
        user: User,
        password_hash: Option<String>,
    ) -> StoreResult<Arc<StoredUser>, OneOf<NotFound, Conflict>>;

    /// Replaces the roles of user `username`; returns the user as stored now. Everything else
    /// stays. `NotFound` if there is no such user. The roles are sorted and deduplicated; an
    /// empty list is allowed and leaves the user without any role.
    async fn set_user_roles(
        &self,
        username: &str,
        roles: Vec<Role>,
    ) -> StoreResult<Arc<StoredUser>, NotFound>;

    /// Replaces the password hash of user `username`; returns the user as stored now. Everything
    /// else stays. `NotFound` if there is no such user. Meant for start-up (giving the
    /// configured administrator its configured password), not for `updateUser`.
    async fn set_password_hash(
        &self,
        username: &str,
        password_hash: String,
    ) -> StoreResult<Arc<StoredUser>, NotFound>;

    /// Deletes a user; returns it as it was.
    async fn delete_user(&self, username: &str) -> StoreResult<Arc<StoredUser>, NotFound>;
}
