//! The embedded store: everything in process memory, nothing to install.
//!
//! Reads dominate, so they take no global lock: each kind of record lives in a concurrent map
//! (`DashMap`, sharded locks held only for the lookup) of `Arc`s, and a read clones the `Arc`
//! out. Writes are serialized by one writer mutex, so a step touching several records (an order
//! and its pet) is atomic with respect to every other write; each record is then published with
//! a single map insert, so a reader sees either its old or its new version, never a mix.
//!
//! Only writers look at the bookkeeping behind the mutex (id counters, indexes, the commit
//! sequence), which is why it can live there rather than in concurrent structures. Each write
//! step takes its version from the commit sequence while it holds the mutex, after its checks
//! passed and before it publishes anything, so versions follow the order the steps took effect.
//!
//! An order's owner lives in the same map entry as the order ([`OrderEntry`]), so the one insert
//! that publishes an order publishes its owner too, and the one remove that deletes it drops
//! both: no reader can see an order without its owner, or an owner left behind by a deleted order
//! (which a later order placed under the same explicit id would otherwise inherit).

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::Arc,
};

use async_trait::async_trait;
use dashmap::DashMap;
use parking_lot::Mutex;
use uuid::Uuid;

use petstore_api::{
    Image, Role,
    error::{Conflict, Failure, Forbidden, Invalid, NotFound, OneOf},
    models::{Order, Pet, PetStatus, User},
};

use super::{
    Inventory, NewImage, NewUser, OrRefuse, OrderUpdate, OrderWrite, Store, StoreResult, Stored,
    StoredUser, normalize_roles, public_user, refuse,
};
use crate::rules::{self, order_not_found, pet_not_found, user_not_found};

/// The in-memory [`Store`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    pets: DashMap<i64, Arc<Stored<Pet>>>,
    orders: DashMap<i64, OrderEntry>,
    users: DashMap<String, Arc<StoredUser>>,
    images: DashMap<(i64, Uuid), StoredImage>,
    writer: Mutex<WriterState>,
}

/// An order together with who placed it; the owner never changes while the order exists.
#[derive(Debug, Clone)]
struct OrderEntry {
    order: Arc<Stored<Order>>,
    owner: Arc<str>,
}

/// An uploaded image with the metadata the client sent along.
#[derive(Debug, Clone)]
struct StoredImage {
    image: Image,
    #[expect(
        dead_code,
        reason = "kept as the client sent it, like the Redis store does; nothing serves it yet"
    )]
    metadata: Option<String>,
}

/// Bookkeeping only writers need, guarded by the writer mutex.
#[derive(Debug, Default)]
struct WriterState {
    /// The number of the last commit: the version of what the last write step wrote.
    last_commit: u64,
    pet_ids: IdCounter,
    order_ids: IdCounter,
    user_ids: IdCounter,
    /// Which user holds each user id (ids are unique across users).
    usernames_by_id: HashMap<i64, String>,
    /// Undelivered orders per pet: deleting one releases the pet only when none is left.
    open_orders_by_pet: HashMap<i64, BTreeSet<i64>>,
    /// Images per pet, so deleting a pet drops them without scanning every image.
    images_by_pet: HashMap<i64, Vec<Uuid>>,
}

impl WriterState {
    /// The next commit number, for a step that is about to write (its checks have passed).
    fn commit(&mut self) -> u64 {
        self.last_commit += 1;
        self.last_commit
    }

    /// Ends `order_id`'s hold on `pet_id`. True when the order held the pet and no other
    /// undelivered order does: only then may the pet be released. (An order missing from the
    /// index holds nothing: its pet was deleted after it was placed.)
    fn release(&mut self, pet_id: i64, order_id: i64) -> bool {
        let Some(open) = self.open_orders_by_pet.get_mut(&pet_id) else {
            return false;
        };
        if !open.remove(&order_id) {
            return false;
        }
        if !open.is_empty() {
            return false;
        }
        self.open_orders_by_pet.remove(&pet_id);
        true
    }
}

/// Hands out ids to records created without one: a sequence of its own that skips ids in use.
///
/// Client-chosen ids do not move the sequence, so a client that picks `i64::MAX` cannot exhaust
/// it for everyone else; ids the server handed out are never handed out again.
#[derive(Debug, Clone)]
struct IdCounter {
    next: i64,
}

impl Default for IdCounter {
    fn default() -> Self {
        Self { next: 1 }
    }
}

impl IdCounter {
    /// The id the next record without one would get: the first one from the sequence that
    /// `in_use` does not claim. Nothing is reserved until [`IdCounter::claim`].
    fn peek(&self, kind: &str, in_use: impl Fn(i64) -> bool) -> Result<i64, Conflict> {
        let mut id = self.next;
        while in_use(id) {
            id = id
                .checked_add(1)
                .ok_or_else(|| Conflict(format!("no {kind} id is left to assign")))?;
        }
        Ok(id)
    }

    /// Records that `id`, returned by [`IdCounter::peek`], was handed out.
    fn claim(&mut self, id: i64) {
        self.next = id.saturating_add(1);
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // DashMap guards must never be held across an insert into the same map (same shard means
    // deadlock), so lookups clone the `Arc` out and drop the guard at once.
    fn pet(&self, id: i64) -> Option<Arc<Stored<Pet>>> {
        self.pets.get(&id).map(|entry| Arc::clone(entry.value()))
    }

    fn order(&self, id: i64) -> Option<OrderEntry> {
        self.orders.get(&id).map(|entry| entry.value().clone())
    }

    fn user(&self, username: &str) -> Option<Arc<StoredUser>> {
        self.users
            .get(username)
            .map(|entry| Arc::clone(entry.value()))
    }

    /// Publishes pet `id` with a new status, as written by commit `version`. Caller holds the
    /// writer lock.
    fn set_pet_status(
        &self,
        id: i64,
        pet: &Stored<Pet>,
        status: PetStatus,
        version: u64,
    ) -> Arc<Stored<Pet>> {
        let mut value = pet.value.clone();
        value.status = Some(status);
        let stored = Arc::new(Stored::with_version(value, version));
        self.pets.insert(id, Arc::clone(&stored));
        stored
    }

    /// Publishes user `username` with its record kept and `change` applied to a copy of the
    /// rest, as the next commit. Caller holds the writer lock (`writer`); the username and id do
    /// not change, so no index does either.
    fn replace_user(
        &self,
        writer: &mut WriterState,
        username: &str,
        change: impl FnOnce(&mut StoredUser),
    ) -> StoreResult<Arc<StoredUser>, NotFound> {
        let current = self.user(username).or_refuse(|| user_not_found(username))?;
        let mut next = current.at_version(writer.commit());
        change(&mut next);
        let stored = Arc::new(next);
        self.users.insert(username.to_owned(), Arc::clone(&stored));
        Ok(stored)
    }

    /// Pets matching `keep`, ordered by id.
    fn pets_where(&self, keep: impl Fn(&Pet) -> bool) -> Vec<Arc<Stored<Pet>>> {
        let mut found: Vec<(i64, Arc<Stored<Pet>>)> = self
            .pets
            .iter()
            .filter(|entry| keep(&entry.value().value))
            .map(|entry| (*entry.key(), Arc::clone(entry.value())))
            .collect();
        found.sort_unstable_by_key(|(id, _)| *id);
        found.into_iter().map(|(_, pet)| pet).collect()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn get_pet(&self, id: i64) -> StoreResult<Option<Arc<Stored<Pet>>>> {
        Ok(self.pet(id))
    }

    async fn create_pet(&self, mut pet: Pet) -> StoreResult<Arc<Stored<Pet>>, Conflict> {
        let mut writer = self.writer.lock();
        let id = match pet.id {
            Some(id) if self.pets.contains_key(&id) => {
                return refuse(Conflict(format!("pet {id} already exists")));
            }
            Some(id) => id,
            None => {
                let id = writer
                    .pet_ids
                    .peek("pet", |id| self.pets.contains_key(&id))
                    .map_err(Failure::Refused)?;
                writer.pet_ids.claim(id);
                id
            }
        };
        pet.id = Some(id);
        let stored = Arc::new(Stored::with_version(pet, writer.commit()));
        self.pets.insert(id, Arc::clone(&stored));
        Ok(stored)
    }

    async fn replace_pet(&self, pet: Pet) -> StoreResult<Arc<Stored<Pet>>, NotFound> {
        let id = pet
            .id
            .ok_or_else(|| Failure::internal("replace_pet called for a pet without an id"))?;
        let mut writer = self.writer.lock();
        if !self.pets.contains_key(&id) {
            return refuse(pet_not_found(id));
        }
        let stored = Arc::new(Stored::with_version(pet, writer.commit()));
        self.pets.insert(id, Arc::clone(&stored));
        Ok(stored)
    }

    async fn update_pet_fields(
        &self,
        id: i64,
        name: Option<String>,
        status: Option<PetStatus>,
    ) -> StoreResult<Arc<Stored<Pet>>, NotFound> {
        let mut writer = self.writer.lock();
        let current = self.pet(id).or_refuse(|| pet_not_found(id))?;
        let mut pet = current.value.clone();
        if let Some(name) = name {
            pet.name = name;
        }
        if let Some(status) = status {
            pet.status = Some(status);
        }
        let stored = Arc::new(Stored::with_version(pet, writer.commit()));
        self.pets.insert(id, Arc::clone(&stored));
        Ok(stored)
    }

    async fn delete_pet(&self, id: i64) -> StoreResult<Arc<Stored<Pet>>, NotFound> {
        let mut writer = self.writer.lock();
        let (_, removed) = self.pets.remove(&id).or_refuse(|| pet_not_found(id))?;
        for image_id in writer.images_by_pet.remove(&id).unwrap_or_default() {
            self.images.remove(&(id, image_id));
        }
        // The orders stay, but they no longer hold anything: a new pet created later under this
        // id must not be released by deleting one of them.
        writer.open_orders_by_pet.remove(&id);
        Ok(Arc::new(removed.at_version(writer.commit())))
    }

    async fn find_pets_by_status(
        &self,
        statuses: &[PetStatus],
    ) -> StoreResult<Vec<Arc<Stored<Pet>>>> {
        Ok(self.pets_where(|pet| pet.status.is_some_and(|status| statuses.contains(&status))))
    }

    async fn find_pets_by_tags(&self, tags: &[String]) -> StoreResult<Vec<Arc<Stored<Pet>>>> {
        let wanted: HashSet<&str> = tags.iter().map(String::as_str).collect();
        Ok(self.pets_where(|pet| {
            pet.tags.iter().flatten().any(|tag| {
                tag.name
                    .as_deref()
                    .is_some_and(|name| wanted.contains(name))
            })
        }))
    }

    async fn inventory(&self) -> StoreResult<Inventory> {
        let mut counts: Inventory = PetStatus::ALL.iter().map(|status| (*status, 0)).collect();
        for entry in self.pets.iter() {
            if let Some(status) = entry.value().value.status {
                *counts.entry(status).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    async fn add_pet_image(
        &self,
        pet_id: i64,
        image: NewImage,
        max_photos: usize,
    ) -> StoreResult<Arc<Stored<Pet>>, OneOf<NotFound, Conflict>> {
        let mut writer = self.writer.lock();
        let current = self
            .pet(pet_id)
            .or_refuse(|| OneOf::First(pet_not_found(pet_id)))?;
        if current.value.photo_urls.len() >= max_photos {
            return refuse(OneOf::Second(Conflict(format!(
                "pet {pet_id} already has {max_photos} photos, the most it may have"
            ))));
        }
        if self.images.contains_key(&(pet_id, image.id)) {
            return refuse(OneOf::Second(Conflict(format!(
                "image {} of pet {pet_id} already exists",
                image.id
            ))));
        }
        let mut pet = current.value.clone();
        pet.photo_urls.push(image.url);
        // The image goes in first: once the URL is visible, it must resolve.
        self.images.insert(
            (pet_id, image.id),
            StoredImage {
                image: image.image,
                metadata: image.metadata,
            },
        );
        writer
            .images_by_pet
            .entry(pet_id)
            .or_default()
            .push(image.id);
        let stored = Arc::new(Stored::with_version(pet, writer.commit()));
        self.pets.insert(pet_id, Arc::clone(&stored));
        Ok(stored)
    }

    async fn get_pet_image(&self, pet_id: i64, image_id: Uuid) -> StoreResult<Option<Image>> {
        Ok(self
            .images
            .get(&(pet_id, image_id))
            .map(|entry| entry.value().image.clone()))
    }

    async fn place_order(
        &self,
        order: Order,
        owner: &str,
    ) -> StoreResult<OrderWrite, OneOf<NotFound, Conflict>> {
        let mut writer = self.writer.lock();
        let order_id_assigned = order.id.is_none();
        let id = match order.id {
            Some(id) if self.orders.contains_key(&id) => {
                return refuse(OneOf::Second(Conflict(format!(
                    "order {id} already exists"
                ))));
            }
            Some(id) => id,
            None => writer
                .order_ids
                .peek("order", |id| self.orders.contains_key(&id))
                .map_err(|conflict| Failure::Refused(OneOf::Second(conflict)))?,
        };
        let pet = self
            .pet(order.pet_id)
            .or_refuse(|| OneOf::First(pet_not_found(order.pet_id)))?;
        let placement = rules::place_order(order, id, &pet.value)
            .map_err(|conflict| Failure::Refused(OneOf::Second(conflict)))?;

        let version = writer.commit();
        let pet = self.set_pet_status(placement.order.pet_id, &pet, placement.pet_status, version);
        if placement.holds_pet {
            writer
                .open_orders_by_pet
                .entry(placement.order.pet_id)
                .or_default()
                .insert(id);
        }
        let stored = Arc::new(Stored::with_version(placement.order, version));
        self.orders.insert(
            id,
            OrderEntry {
                order: Arc::clone(&stored),
                owner: Arc::from(owner),
            },
        );
        if order_id_assigned {
            writer.order_ids.claim(id);
        }
        Ok(OrderWrite {
            order: stored,
            pet: Some(pet),
            // Counting here would walk every pet under the writer's lock: left to a read by
            // whoever wants it.
            inventory: None,
        })
    }

    async fn get_order(&self, id: i64) -> StoreResult<Option<Arc<Stored<Order>>>> {
        Ok(self.order(id).map(|entry| entry.order))
    }

    async fn get_order_with_owner(
        &self,
        id: i64,
    ) -> StoreResult<Option<(Arc<Stored<Order>>, String)>> {
        Ok(self
            .order(id)
            .map(|entry| (entry.order, entry.owner.to_string())))
    }

    async fn order_owner(&self, id: i64) -> StoreResult<Option<String>> {
        Ok(self.order(id).map(|entry| entry.owner.to_string()))
    }

    async fn update_order(
        &self,
        id: i64,
        update: OrderUpdate,
    ) -> StoreResult<OrderWrite, OneOf<NotFound, Invalid>> {
        let mut writer = self.writer.lock();
        let OrderEntry {
            order: current,
            owner,
        } = self
            .order(id)
            .or_refuse(|| OneOf::First(order_not_found(id)))?;
        let change = rules::update_order(&current.value, &update)
            .map_err(|invalid| Failure::Refused(OneOf::Second(invalid)))?;

        let version = writer.commit();
        let mut pet = None;
        if change.delivers {
            writer.release(change.order.pet_id, id);
            if let Some(current_pet) = self.pet(change.order.pet_id) {
                pet = Some(self.set_pet_status(
                    change.order.pet_id,
                    &current_pet,
                    PetStatus::Sold,
                    version,
                ));
            }
        }
        let stored = Arc::new(Stored::with_version(change.order, version));
        self.orders.insert(
            id,
            OrderEntry {
                order: Arc::clone(&stored),
                owner,
            },
        );
        Ok(OrderWrite {
            order: stored,
            pet,
            inventory: None,
        })
    }

    async fn delete_order(
        &self,
        id: i64,
        only_owner: Option<&str>,
    ) -> StoreResult<OrderWrite, OneOf<NotFound, Forbidden>> {
        let mut writer = self.writer.lock();
        let belongs = |entry: &OrderEntry| only_owner.is_none_or(|owner| &*entry.owner == owner);
        let Some((_, OrderEntry { order: removed, .. })) =
            self.orders.remove_if(&id, |_, entry| belongs(entry))
        else {
            return refuse(match self.orders.contains_key(&id) {
                true => OneOf::Second(Forbidden(format!("order {id} belongs to someone else"))),
                false => OneOf::First(order_not_found(id)),
            });
        };
        let version = writer.commit();
        let mut pet = None;
        let was_last_hold =
            rules::holds_pet(&removed.value) && writer.release(removed.value.pet_id, id);
        if was_last_hold
            && let Some(current_pet) = self.pet(removed.value.pet_id)
            && let Some(status) = rules::released_pet_status(&current_pet.value)
        {
            pet = Some(self.set_pet_status(removed.value.pet_id, &current_pet, status, version));
        }
        Ok(OrderWrite {
            order: Arc::new(removed.at_version(version)),
            pet,
            inventory: None,
        })
    }

    async fn create_users(
        &self,
        users: Vec<NewUser>,
    ) -> StoreResult<Vec<Arc<StoredUser>>, Conflict> {
        let mut writer = self.writer.lock();
        let mut names = HashSet::with_capacity(users.len());
        let mut ids = HashSet::new();
        for new in &users {
            let username = new.user.username.as_str();
            if self.users.contains_key(username) {
                return refuse(Conflict(format!("username {username} is already taken")));
            }
            if !names.insert(username) {
                return refuse(Conflict(format!(
                    "username {username} appears more than once in the list"
                )));
            }
            if let Some(id) = new.user.id {
                if writer.usernames_by_id.contains_key(&id) {
                    return refuse(Conflict(format!("user id {id} is already taken")));
                }
                if !ids.insert(id) {
                    return refuse(Conflict(format!(
                        "user id {id} appears more than once in the list"
                    )));
                }
            }
        }

        // Assigned ids skip the explicit ids of this list too, so none clashes with them.
        let mut counter = writer.user_ids.clone();
        let mut assigned = Vec::with_capacity(users.len());
        for new in users {
            let id = match new.user.id {
                Some(id) => id,
                None => {
                    let id = counter
                        .peek("user", |id| {
                            ids.contains(&id) || writer.usernames_by_id.contains_key(&id)
                        })
                        .map_err(Failure::Refused)?;
                    counter.claim(id);
                    id
                }
            };
            assigned.push((id, new));
        }

        // Everything is checked: from here on nothing fails, so the list goes in whole, as one
        // commit.
        let version = writer.commit();
        let mut created = Vec::with_capacity(assigned.len());
        for (id, new) in assigned {
            let stored = Arc::new(StoredUser {
                user: Stored::with_version(public_user(new.user, id), version),
                password_hash: new.password_hash,
                roles: normalize_roles(new.roles),
            });
            let username = stored.user.value.username.clone();
            writer.usernames_by_id.insert(id, username.clone());
            self.users.insert(username, Arc::clone(&stored));
            created.push(stored);
        }
        writer.user_ids = counter;
        Ok(created)
    }

    async fn get_user(&self, username: &str) -> StoreResult<Option<Arc<StoredUser>>> {
        Ok(self.user(username))
    }

    async fn update_user(
        &self,
        username: &str,
        user: User,
        password_hash: Option<String>,
    ) -> StoreResult<Arc<StoredUser>, OneOf<NotFound, Conflict>> {
        let mut writer = self.writer.lock();
        let current = self
            .user(username)
            .or_refuse(|| OneOf::First(user_not_found(username)))?;
        let renamed = user.username != username;
        if renamed && self.users.contains_key(&user.username) {
            return refuse(OneOf::Second(Conflict(format!(
                "username {} is already taken",
                user.username
            ))));
        }
        let old_id = current
            .user
            .value
            .id
            .ok_or_else(|| Failure::internal(format!("stored user {username} has no id")))?;
        let id = user.id.unwrap_or(old_id);
        if let Some(holder) = writer.usernames_by_id.get(&id)
            && holder != username
        {
            return refuse(OneOf::Second(Conflict(format!(
                "user id {id} belongs to another user"
            ))));
        }

        let stored = Arc::new(StoredUser {
            user: Stored::with_version(public_user(user, id), writer.commit()),
            password_hash: password_hash.unwrap_or_else(|| current.password_hash.clone()),
            roles: current.roles.clone(),
        });
        let new_name = stored.user.value.username.clone();
        // Published under the new name before the old one goes, so the user is never missing.
        self.users.insert(new_name.clone(), Arc::clone(&stored));
        if renamed {
            self.users.remove(username);
        }
        writer.usernames_by_id.remove(&old_id);
        writer.usernames_by_id.insert(id, new_name);
        Ok(stored)
    }

    async fn set_user_roles(
        &self,
        username: &str,
        roles: Vec<Role>,
    ) -> StoreResult<Arc<StoredUser>, NotFound> {
        let mut writer = self.writer.lock();
        let roles = normalize_roles(roles);
        self.replace_user(&mut writer, username, |user| user.roles = roles)
    }

    async fn set_password_hash(
        &self,
        username: &str,
        password_hash: String,
    ) -> StoreResult<Arc<StoredUser>, NotFound> {
        let mut writer = self.writer.lock();
        self.replace_user(&mut writer, username, |user| {
            user.password_hash = password_hash;
        })
    }

    async fn delete_user(&self, username: &str) -> StoreResult<Arc<StoredUser>, NotFound> {
        let mut writer = self.writer.lock();
        let (_, removed) = self
            .users
            .remove(username)
            .or_refuse(|| user_not_found(username))?;
        if let Some(id) = removed.user.value.id {
            writer.usernames_by_id.remove(&id);
        }
        Ok(Arc::new(removed.at_version(writer.commit())))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::MemoryStore;
    use crate::store::Store;

    async fn fresh() -> Arc<dyn Store> {
        Arc::new(MemoryStore::new())
    }

    crate::store::conformance::store_conformance_tests!(fresh);
}
