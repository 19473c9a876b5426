//! Demo data, so a fresh server answers the classic Petstore examples out of the box.
//!
//! Pets in every status (categories, tags `tag1`–`tag3` as in the Petstore docs), the users
//! `user1` ("use user1 for testing", as the Petstore docs say), `user2` and `admin`, and a few
//! orders. The orders are placed through [`Store::place_order`] and [`Store::update_order`], so
//! every pending or sold pet is held by an order exactly as if a client had bought it.
//!
//! Roles: `admin` is an [`Role::Admin`], `user1` and `user2` are [`Role::Customer`]s. Each
//! customer owns two of the orders, so trying the API out shows both sides of order ownership
//! (one's own orders readable, the other customer's forbidden):
//!
//! | order | pet            | status    | owner   |
//! |-------|----------------|-----------|---------|
//! | 1     | 2 (`Cat 2`)    | placed    | `user1` |
//! | 2     | 5 (`Dog 2`)    | approved  | `user2` |
//! | 3     | 6 (`Dog 3`)    | delivered | `user1` |
//! | 4     | 8 (`Rabbit 1`) | delivered | `user2` |
//!
//! The passwords are public constants: this data is for trying the API out, and a deployment that
//! keeps it is open to anyone who reads this file. Disable it in production.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{NewUser, OrderUpdate, Store};
use petstore_api::{
    ApiError, Role,
    error::Failure,
    models::{Category, Order, OrderStatus, Pet, PetStatus, Tag, User},
};

/// Username of the demo customer; owns orders 1 and 3.
pub const DEMO_USERNAME: &str = "user1";
/// Password of [`DEMO_USERNAME`] (and of [`DEMO_USER2_USERNAME`]).
pub const DEMO_PASSWORD: &str = "user1-password";
/// Username of the second demo customer; owns orders 2 and 4. Its password is [`DEMO_PASSWORD`].
pub const DEMO_USER2_USERNAME: &str = "user2";
/// Username of the demo administrator; owns no order.
pub const DEMO_ADMIN_USERNAME: &str = "admin";
/// Password of [`DEMO_ADMIN_USERNAME`].
pub const DEMO_ADMIN_PASSWORD: &str = "admin-password";

/// A demo pet, before any order touched it.
struct DemoPet {
    id: i64,
    name: &'static str,
    category: (i64, &'static str),
    tags: &'static [(i64, &'static str)],
}

const TAG1: (i64, &str) = (1, "tag1");
const TAG2: (i64, &str) = (2, "tag2");
const TAG3: (i64, &str) = (3, "tag3");
const DOGS: (i64, &str) = (1, "Dogs");
const CATS: (i64, &str) = (2, "Cats");

const DEMO_PETS: [DemoPet; 8] = [
    DemoPet {
        id: 1,
        name: "Cat 1",
        category: CATS,
        tags: &[TAG1, TAG2],
    },
    DemoPet {
        id: 2,
        name: "Cat 2",
        category: CATS,
        tags: &[TAG2, TAG3],
    },
    DemoPet {
        id: 3,
        name: "Cat 3",
        category: CATS,
        tags: &[TAG3],
    },
    DemoPet {
        id: 4,
        name: "Dog 1",
        category: DOGS,
        tags: &[TAG1, TAG2],
    },
    DemoPet {
        id: 5,
        name: "Dog 2",
        category: DOGS,
        tags: &[TAG2],
    },
    DemoPet {
        id: 6,
        name: "Dog 3",
        category: DOGS,
        tags: &[TAG3],
    },
    DemoPet {
        id: 7,
        name: "Lion 1",
        category: (3, "Lions"),
        tags: &[TAG1],
    },
    DemoPet {
        id: 8,
        name: "Rabbit 1",
        category: (4, "Rabbits"),
        tags: &[TAG3],
    },
];

/// What [`load_demo_data`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoLoad {
    /// The demo data was written.
    Loaded,
    /// The store already holds it (e.g. a shared Redis another node filled), so nothing was
    /// written.
    AlreadyPresent,
}

/// Why the demo data could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DemoDataError {
    /// The password hasher failed; nothing was written.
    #[error("hashing the demo password of {username} failed: {source}")]
    Hash {
        /// Whose password.
        username: &'static str,
        /// The hasher's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store refused a write or failed (`Conflict` when another node is loading the same
    /// data into a shared store).
    #[error("storing the demo data failed: {0}")]
    Store(ApiError),
}

impl<R: Into<ApiError>> From<Failure<R>> for DemoDataError {
    fn from(failure: Failure<R>) -> Self {
        Self::Store(failure.into())
    }
}

/// Loads the demo data into `store` unless it is already there.
///
/// `hash_password` turns a clear password into the stored hash; the wiring passes the
/// application's password hasher, so the demo users log in like any other (and the store
/// need not know how passwords are hashed). It runs once per demo user, before anything is
/// written, so a failing hasher leaves the store untouched.
///
/// Meant for an empty store, where the server-assigned ids come out as pets 1–8, orders 1–4 and
/// users 1–3 (the records are created without ids, so those ids are never handed out again). If
/// `user1` or pet 1 already exists nothing is written.
pub async fn load_demo_data<F, E>(
    store: &dyn Store,
    hash_password: F,
) -> Result<DemoLoad, DemoDataError>
where
    F: Fn(&str) -> Result<String, E>,
    E: std::error::Error + Send + Sync + 'static,
{
    if store.get_user(DEMO_USERNAME).await?.is_some() || store.get_pet(1).await?.is_some() {
        return Ok(DemoLoad::AlreadyPresent);
    }

    let users = [
        (
            DEMO_USERNAME,
            DEMO_PASSWORD,
            "John",
            "Smith",
            Role::Customer,
        ),
        (
            DEMO_USER2_USERNAME,
            DEMO_PASSWORD,
            "Jane",
            "Doe",
            Role::Customer,
        ),
        (
            DEMO_ADMIN_USERNAME,
            DEMO_ADMIN_PASSWORD,
            "Store",
            "Admin",
            Role::Admin,
        ),
    ];
    let mut new_users = Vec::with_capacity(users.len());
    for (username, password, first_name, last_name, role) in users {
        let password_hash = hash_password(password).map_err(|source| DemoDataError::Hash {
            username,
            source: Box::new(source),
        })?;
        new_users.push(NewUser {
            user: User {
                id: None,
                username: username.to_owned(),
                first_name: Some(first_name.to_owned()),
                last_name: Some(last_name.to_owned()),
                email: Some(format!("{username}@example.com")),
                password: None,
                phone: Some("555-0100".to_owned()),
                user_status: Some(1),
            },
            password_hash,
            roles: vec![role],
        });
    }
    store.create_users(new_users).await?;

    // Every pet starts available; the orders below move some of them on. `pet_ids` maps the
    // demo numbering to the ids the store assigned.
    let mut pet_ids = BTreeMap::new();
    for pet in DEMO_PETS {
        let stored = store
            .create_pet(Pet {
                id: None,
                name: pet.name.to_owned(),
                category: Some(Category {
                    id: Some(pet.category.0),
                    name: Some(pet.category.1.to_owned()),
                }),
                photo_urls: vec![format!("https://example.com/photos/pet-{}.jpg", pet.id)],
                tags: Some(
                    pet.tags
                        .iter()
                        .map(|&(id, name)| Tag {
                            id: Some(id),
                            name: Some(name.to_owned()),
                        })
                        .collect(),
                ),
                status: Some(PetStatus::Available),
            })
            .await?;
        pet_ids.insert(pet.id, stored.value.id.unwrap_or(pet.id));
    }

    // Pets 2 and 5 end up pending (placed, approved), 6 and 8 sold (delivered after shipping,
    // and placed as delivered). The owners alternate, as in the table of the module docs.
    let ship_date = DateTime::<Utc>::from_timestamp(1_767_225_600, 0);
    let orders = [
        (2, 1, OrderStatus::Placed, DEMO_USERNAME),
        (5, 2, OrderStatus::Approved, DEMO_USER2_USERNAME),
        (6, 1, OrderStatus::Placed, DEMO_USERNAME),
        (8, 1, OrderStatus::Delivered, DEMO_USER2_USERNAME),
    ];
    let mut order_ids = Vec::with_capacity(orders.len());
    for (demo_pet, quantity, status, owner) in orders {
        let placed = store
            .place_order(
                Order {
                    id: None,
                    pet_id: pet_ids.get(&demo_pet).copied().unwrap_or(demo_pet),
                    quantity: Some(quantity),
                    ship_date,
                    status: Some(status),
                    complete: None,
                },
                owner,
            )
            .await?;
        order_ids.extend(placed.order.value.id);
    }
    // The third order (pet 6) has been delivered since.
    store
        .update_order(
            order_ids.get(2).copied().unwrap_or(3),
            OrderUpdate {
                status: Some(OrderStatus::Delivered),
                ..OrderUpdate::default()
            },
        )
        .await?;
    Ok(DemoLoad::Loaded)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::{collections::BTreeMap, convert::Infallible, sync::Arc};

    use super::*;
    use crate::store::MemoryStore;
    use petstore_api::Serialized;

    fn fake_hash(password: &str) -> Result<String, Infallible> {
        Ok(format!("hashed:{password}"))
    }

    #[derive(Debug, thiserror::Error)]
    #[error("no entropy")]
    struct HashFailed;

    #[tokio::test]
    async fn demo_data_is_consistent_and_loaded_once() {
        demo_data_is_consistent_and_loaded_once_in(Arc::new(MemoryStore::new())).await;
    }

    /// The demo data check on any empty store (the Redis store runs it too).
    pub(crate) async fn demo_data_is_consistent_and_loaded_once_in(store: Arc<dyn Store>) {
        assert_eq!(
            load_demo_data(&*store, fake_hash).await.unwrap(),
            DemoLoad::Loaded
        );

        let inventory = store.inventory().await.unwrap();
        assert_eq!(
            inventory,
            BTreeMap::from([
                (PetStatus::Available, 4),
                (PetStatus::Pending, 2),
                (PetStatus::Sold, 2),
            ])
        );
        let tagged = store.find_pets_by_tags(&["tag1".to_owned()]).await.unwrap();
        assert_eq!(tagged.len(), 3);

        let user1 = store.get_user(DEMO_USERNAME).await.unwrap().unwrap();
        assert_eq!(user1.password_hash, format!("hashed:{DEMO_PASSWORD}"));
        let admin = store.get_user(DEMO_ADMIN_USERNAME).await.unwrap().unwrap();
        assert_eq!(admin.password_hash, format!("hashed:{DEMO_ADMIN_PASSWORD}"));

        for id in 1..=4 {
            let order = store.get_order(id).await.unwrap().unwrap();
            assert_eq!(order.json, Serialized::new(&order.value));
        }
        let delivered = store.get_order(3).await.unwrap().unwrap();
        assert_eq!(delivered.value.complete, Some(true));

        // Deleting the placed order frees its pet, as for any client's order.
        store.delete_order(1, None).await.unwrap();
        let pet = store.get_pet(2).await.unwrap().unwrap();
        assert_eq!(pet.value.status, Some(PetStatus::Available));

        assert_eq!(
            load_demo_data(&*store, fake_hash).await.unwrap(),
            DemoLoad::AlreadyPresent
        );
        // New records get ids above the demo ones.
        let placed = store
            .place_order(
                Order {
                    id: None,
                    pet_id: 1,
                    quantity: None,
                    ship_date: None,
                    status: None,
                    complete: None,
                },
                DEMO_USERNAME,
            )
            .await
            .unwrap();
        assert_eq!(placed.order.value.id, Some(5));
    }

    #[tokio::test]
    async fn demo_users_get_their_roles_and_customers_own_the_documented_orders() {
        let store = MemoryStore::new();
        load_demo_data(&store, fake_hash).await.unwrap();

        for (username, roles) in [
            (DEMO_USERNAME, [Role::Customer]),
            (DEMO_USER2_USERNAME, [Role::Customer]),
            (DEMO_ADMIN_USERNAME, [Role::Admin]),
        ] {
            let user = store.get_user(username).await.unwrap().unwrap();
            assert_eq!(user.roles, roles, "roles of {username}");
        }
        let user2 = store.get_user(DEMO_USER2_USERNAME).await.unwrap().unwrap();
        assert_eq!(user2.password_hash, format!("hashed:{DEMO_PASSWORD}"));

        let owners = [
            DEMO_USERNAME,
            DEMO_USER2_USERNAME,
            DEMO_USERNAME,
            DEMO_USER2_USERNAME,
        ];
        for (id, owner) in (1..).zip(owners) {
            assert_eq!(
                store.order_owner(id).await.unwrap().as_deref(),
                Some(owner),
                "owner of order {id}"
            );
        }
    }

    #[tokio::test]
    async fn a_failing_hasher_writes_nothing() {
        let store = MemoryStore::new();
        let result = load_demo_data(&store, |_: &str| Err::<String, _>(HashFailed)).await;
        assert!(matches!(result, Err(DemoDataError::Hash { .. })));
        assert_eq!(store.get_user(DEMO_USERNAME).await.unwrap(), None);
        assert_eq!(store.get_pet(1).await.unwrap(), None);
    }
}
