//! Publishing domain events after successful writes.
//!
//! Every helper here runs after the store has committed a write and reports it to the
//! [`EventBus`](crate::events::EventBus); none can fail the request, and none changes its
//! response. Payloads are the entities' JSON as the store rendered it when writing, so an event
//! costs no serialization (the inventory, a count over the store, is built only when somebody
//! follows it).
//!
//! Every event about an entity is [versioned](Notification::versioned) with the entity's key
//! (`pet:{id}`, `order:{id}`, `user:{username}`) and the version the store's write step gave it
//! ([`Stored::version`], for a deletion the deleting step's): two requests writing one entity
//! at once commit in one order but may get here in the other, and the bus uses the version to
//! drop the one that would arrive after a newer one. `inventory.changed` carries none: it is not
//! one entity's state but a count (made by the write's own step when the store can, else read
//! after the write), at no commit of its own, so there is no version to give it; each one is a full count, and a client that must not miss the latest
//! asks `getInventory`.

use bytes::Bytes;

use super::{PetStore, orders};
use crate::{
    events::{Audience, Event, Notification},
    store::{Inventory, OrderWrite, Stored, StoredUser},
};
use petstore_api::{
    Topic,
    models::{Order, Pet},
};

/// The topics of an event about a pet: every pet, and this one.
fn pet_topics(id: Option<i64>) -> Audience {
    Audience::Topics(match id {
        Some(id) => vec![Topic::Pets, Topic::Pet(id)],
        None => vec![Topic::Pets],
    })
}

/// The topics of an event about an order: every order, and this one.
fn order_topics(id: Option<i64>) -> Audience {
    Audience::Topics(match id {
        Some(id) => vec![Topic::Orders, Topic::Order(id)],
        None => vec![Topic::Orders],
    })
}

/// The key a pet's events are versioned under.
fn pet_entity(id: i64) -> String {
    format!("pet:{id}")
}

/// The key an order's events are versioned under.
fn order_entity(id: i64) -> String {
    format!("order:{id}")
}

/// The key a user's events are versioned under.
fn user_entity(username: &str) -> String {
    format!("user:{username}")
}

/// `pet.created` or `pet.updated` with the pet as stored.
fn pet_notification(event: Event, pet: &Stored<Pet>) -> Notification {
    let notification = Notification::new(event, pet_topics(pet.value.id), pet.json.bytes().clone());
    // A stored pet always has its id; without one there would be no entity to order by.
    match pet.value.id {
        Some(id) => notification.versioned(pet_entity(id), pet.version),
        None => notification,
    }
}

/// `inventory.changed` with the inventory's JSON. Not versioned: see the module doc.
fn inventory_changed(inventory: Bytes) -> Notification {
    Notification::new(
        Event::InventoryChanged,
        Audience::Topics(vec![Topic::Inventory]),
        inventory,
    )
}

/// `{"id":…}`, the payload of a deletion.
fn id_payload(id: i64) -> Bytes {
    Bytes::from(format!(r#"{{"id":{id}}}"#))
}

impl PetStore {
    async fn publish(&self, notification: Notification) {
        self.events.publish(notification).await;
    }

    /// `pet.created` or `pet.updated` with the pet as stored.
    pub(super) async fn publish_pet(&self, event: Event, pet: &Stored<Pet>) {
        self.publish(pet_notification(event, pet)).await;
    }

    /// [`PetStore::publish_pet`], then [`PetStore::publish_inventory`], in one call of the bus
    /// (one round trip on Redis).
    pub(super) async fn publish_pet_and_inventory(&self, event: Event, pet: &Stored<Pet>) {
        let mut batch = vec![pet_notification(event, pet)];
        batch.extend(self.inventory_notification().await);
        self.events.publish_all(batch).await;
    }

    /// `pet.deleted`, at `version`: the deleting step's.
    pub(super) async fn publish_pet_deleted(&self, id: i64, version: u64) {
        self.publish(
            Notification::new(Event::PetDeleted, pet_topics(Some(id)), id_payload(id))
                .versioned(pet_entity(id), version),
        )
        .await;
    }

    /// `order.placed` or `order.updated` with the order as stored, then what the step did to the
    /// order's pet (see [`PetStore::pet_change`]), in one call of the bus.
    pub(super) async fn publish_order(&self, event: Event, written: &OrderWrite) {
        let order: &Stored<Order> = &written.order;
        let notification = Notification::new(
            event,
            order_topics(order.value.id),
            order.json.bytes().clone(),
        );
        // A stored order always has its id, as a pet does.
        let mut batch = vec![match order.value.id {
            Some(id) => notification.versioned(order_entity(id), order.version),
            None => notification,
        }];
        self.pet_change(written, &mut batch).await;
        self.events.publish_all(batch).await;
    }

    /// `order.deleted` (at the deleting step's version, which the returned order carries), then
    /// what the deletion did to the order's pet, in one call of the bus.
    pub(super) async fn publish_order_deleted(&self, id: i64, written: &OrderWrite) {
        let mut batch = vec![
            Notification::new(Event::OrderDeleted, order_topics(Some(id)), id_payload(id))
                .versioned(order_entity(id), written.order.version),
        ];
        self.pet_change(written, &mut batch).await;
        self.events.publish_all(batch).await;
    }

    /// Adds `pet.updated` and `inventory.changed` to `batch` when an order step changed its
    /// pet's status (reserved, sold or freed it). The inventory is the one the step counted
    /// when the store gave it (no read), else a read.
    async fn pet_change(&self, written: &OrderWrite, batch: &mut Vec<Notification>) {
        if let Some(pet) = &written.pet {
            batch.push(pet_notification(Event::PetUpdated, pet));
            let notification = match &written.inventory {
                Some(counts) => self.counted_inventory_notification(counts.clone()),
                None => self.inventory_notification().await,
            };
            batch.extend(notification);
        }
    }

    /// The `inventory.changed` of counts the store already made, or `None` when nobody follows
    /// the inventory.
    fn counted_inventory_notification(&self, counts: Inventory) -> Option<Notification> {
        self.events
            .has_subscribers(&Topic::Inventory)
            .then(|| inventory_changed(orders::render_inventory(counts).into_bytes()))
    }

    /// `inventory.changed` with the counts `getInventory` answers, built the same way. Skipped
    /// when nobody follows the inventory, since it counts over every pet; a store failure is
    /// logged and the event is lost (the write it follows has succeeded).
    pub(super) async fn publish_inventory(&self) {
        if let Some(notification) = self.inventory_notification().await {
            self.publish(notification).await;
        }
    }

    /// The `inventory.changed` of [`PetStore::publish_inventory`], or `None` when it is skipped.
    async fn inventory_notification(&self) -> Option<Notification> {
        if !self.events.has_subscribers(&Topic::Inventory) {
            return None;
        }
        match orders::inventory(self).await {
            Ok(inventory) => Some(inventory_changed(inventory.into_bytes())),
            Err(error) => {
                tracing::warn!(%error, "inventory.changed not published: the inventory could not be read");
                None
            }
        }
    }

    /// `user.updated` with the public record (the store never keeps the password in it), to
    /// the connections of the user under its old name and, after a rename, its new one.
    ///
    /// Each of the two is versioned under the name its audience knows: one write, two entity
    /// keys (under one key the second, at the same version, would not be newer and would be
    /// dropped). A rename ends the old name, as a deletion would.
    pub(super) async fn publish_user_updated(&self, old_username: &str, user: &StoredUser) {
        let payload = user.user.json.bytes().clone();
        let new_username = &user.user.value.username;
        self.publish(
            Notification::new(
                Event::UserUpdated,
                Audience::User(old_username.to_owned()),
                payload.clone(),
            )
            .versioned(user_entity(old_username), user.version()),
        )
        .await;
        if new_username != old_username {
            self.publish(
                Notification::new(
                    Event::UserUpdated,
                    Audience::User(new_username.clone()),
                    payload,
                )
                .versioned(user_entity(new_username), user.version()),
            )
            .await;
        }
    }

    /// `user.deleted`, to the connections of that user, at `version`: the deleting step's.
    pub(super) async fn publish_user_deleted(&self, username: &str, version: u64) {
        let payload = serde_json::json!({ "username": username }).to_string();
        self.publish(
            Notification::new(
                Event::UserDeleted,
                Audience::User(username.to_owned()),
                Bytes::from(payload),
            )
            .versioned(user_entity(username), version),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;
    use crate::{
        events::{EventBus, Hub, Outbox, OutboxReceiver},
        handlers::testing::{pet_store, pet_store_over},
        store::{NewUser, Store},
    };
    use petstore_api::{
        ApiError, Ctx, Principal, Role,
        models::{PetStatus, User},
        operations::*,
    };

    /// A connection following `topics`, authenticated as `owner`.
    fn listen(hub: &Hub, topics: &[Topic], owner: Option<&str>) -> OutboxReceiver {
        let id = hub.next_connection_id();
        let (outbox, receiver) = Outbox::new(32);
        hub.attach(id, outbox);
        hub.set_owner(id, owner.map(str::to_owned));
        for topic in topics {
            hub.subscribe(id, topic.clone());
        }
        receiver
    }

    /// The frames queued for a connection, as `(event, payload)`, after checking that each
    /// embeds its payload's raw bytes.
    fn received(receiver: &OutboxReceiver) -> Vec<(String, Value)> {
        let mut events = Vec::new();
        while let Ok(frame) = receiver.try_recv() {
            let envelope: Value = serde_json::from_slice(&frame).expect("frames are JSON");
            assert_eq!(envelope["type"], "notification");
            let event = envelope["event"]
                .as_str()
                .expect("an event name")
                .to_owned();
            events.push((event, envelope["payload"].clone()));
        }
        events
    }

    fn json_of(bytes: &Bytes) -> Value {
        serde_json::from_slice(bytes).expect("JSON")
    }

    fn admin() -> Ctx {
        Ctx {
            principal: Some(Arc::new(Principal::service("ops", Role::Admin))),
            ..Ctx::default()
        }
    }

    fn pet(id: i64, status: Option<PetStatus>) -> Pet {
        Pet {
            id: Some(id),
            name: "Rex".to_owned(),
            category: None,
            photo_urls: Vec::new(),
            tags: None,
            status,
        }
    }

    /// A new order for `pet_id`, with `id` or without.
    fn order(id: Option<i64>, pet_id: i64) -> Order {
        Order {
            id,
            pet_id,
            quantity: None,
            ship_date: None,
            status: None,
            complete: None,
        }
    }

    async fn inventory_json(handlers: &PetStore) -> Value {
        let GetInventoryResponse::Ok(inventory) = handlers
            .get_inventory(&admin(), GetInventoryRequest {})
            .await
            .expect("the inventory");
        json_of(inventory.bytes())
    }

    #[tokio::test]
    async fn add_pet_publishes_the_stored_pet_and_the_inventory() {
        let (handlers, _, hub) = pet_store();
        let everything = listen(&hub, &[Topic::Pets, Topic::Inventory], None);
        let this_pet = listen(&hub, &[Topic::Pet(100)], None);
        let other_pet = listen(&hub, &[Topic::Pet(101)], None);

        let response = handlers
            .add_pet(
                &admin(),
                AddPetRequest {
                    body: pet(100, None),
                },
            )
            .await
            .expect("the pet is added");
        let AddPetResponse::Ok(stored) = response;

        let created = json_of(stored.bytes());
        assert_eq!(created["status"], "available", "the handler's default");
        let inventory = inventory_json(&handlers).await;
        assert_eq!(inventory["available"], 1);
        assert_eq!(
            received(&everything),
            vec![
                ("pet.created".to_owned(), created.clone()),
                ("inventory.changed".to_owned(), inventory),
            ]
        );
        assert_eq!(
            received(&this_pet),
            vec![("pet.created".to_owned(), created)]
        );
        assert!(received(&other_pet).is_empty());
    }

    #[tokio::test]
    async fn the_frame_embeds_the_stored_json_byte_for_byte() {
        let (handlers, _, hub) = pet_store();
        let listener = listen(&hub, &[Topic::Pets], None);
        let AddPetResponse::Ok(stored) = handlers
            .add_pet(&admin(), AddPetRequest { body: pet(5, None) })
            .await
            .expect("the pet is added");
        let frame = listener.try_recv().expect("a frame");
        let mut tail = br#","payload":"#.to_vec();
        tail.extend_from_slice(stored.bytes());
        tail.push(b'}');
        assert!(frame.ends_with(&tail), "{frame:?}");
    }

    /// On Redis the commit counts the inventory: the event carries the counts the order's own
    /// step left, the ones a read then answers.
    #[tokio::test]
    async fn place_order_on_redis_publishes_the_inventory_its_commit_counted() {
        use crate::{
            redis::{Redis, RedisSettings},
            store::RedisStore,
        };
        use petstore_testkit::redis::LocalRedis;

        let mut settings = RedisSettings::new(LocalRedis::shared().url());
        settings.prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        let redis = Redis::connect(settings)
            .await
            .expect("the test redis answers");
        let (handlers, hub) = pet_store_over(Arc::new(RedisStore::new(redis)));
        for id in [7, 8] {
            let AddPetResponse::Ok(_) = handlers
                .add_pet(
                    &admin(),
                    AddPetRequest {
                        body: pet(id, None),
                    },
                )
                .await
                .expect("a pet to order");
        }
        let inventory_view = listen(&hub, &[Topic::Inventory], None);

        let order = order(None, 7);
        handlers
            .place_order(&admin(), PlaceOrderRequest { body: order })
            .await
            .expect("the order is placed");

        let inventory = inventory_json(&handlers).await;
        assert_eq!(inventory, json!({"available": 1, "pending": 1, "sold": 0}));
        assert_eq!(
            received(&inventory_view),
            vec![("inventory.changed".to_owned(), inventory)]
        );
    }

    #[tokio::test]
    async fn place_order_publishes_the_order_and_the_reserved_pet() {
        let (handlers, memory, hub) = pet_store();
        memory
            .create_pet(pet(7, Some(PetStatus::Available)))
            .await
            .expect("a pet to order");
        let admin_view = listen(
            &hub,
            &[Topic::Orders, Topic::Pet(7), Topic::Inventory],
            None,
        );
        let owner_view = listen(&hub, &[Topic::Order(3)], Some("service-key:ops"));

        let order = order(Some(3), 7);
        let PlaceOrderResponse::Ok(placed) = handlers
            .place_order(&admin(), PlaceOrderRequest { body: order })
            .await
            .expect("the order is placed");

        let placed = json_of(placed.bytes());
        let reserved = memory.get_pet(7).await.expect("read").expect("the pet");
        assert_eq!(reserved.value.status, Some(PetStatus::Pending));
        let inventory = inventory_json(&handlers).await;
        assert_eq!(inventory["pending"], 1);
        assert_eq!(inventory["available"], 0);
        assert_eq!(
            received(&admin_view),
            vec![
                ("order.placed".to_owned(), placed.clone()),
                ("pet.updated".to_owned(), json_of(reserved.json.bytes())),
                ("inventory.changed".to_owned(), inventory),
            ]
        );
        assert_eq!(
            received(&owner_view),
            vec![("order.placed".to_owned(), placed)]
        );

        // Cancelling it frees the pet again.
        handlers
            .delete_order(&admin(), DeleteOrderRequest { order_id: 3 })
            .await
            .expect("the order is deleted");
        let events: Vec<_> = received(&admin_view)
            .into_iter()
            .map(|(event, payload)| (event, payload["id"].clone(), payload["status"].clone()))
            .collect();
        assert_eq!(
            events,
            vec![
                ("order.deleted".to_owned(), json!(3), Value::Null),
                ("pet.updated".to_owned(), json!(7), json!("available")),
                ("inventory.changed".to_owned(), Value::Null, Value::Null),
            ]
        );
    }

    #[tokio::test]
    async fn failed_writes_and_reads_publish_nothing() {
        let (handlers, memory, hub) = pet_store();
        memory
            .create_pet(pet(1, Some(PetStatus::Sold)))
            .await
            .expect("a pet that cannot be ordered");
        let listener = listen(
            &hub,
            &[
                Topic::Pets,
                Topic::Pet(404),
                Topic::Orders,
                Topic::Inventory,
            ],
            Some("ghost"),
        );
        let ctx = admin();

        let missing_pet = handlers
            .delete_pet(&ctx, DeletePetRequest { pet_id: 404 })
            .await;
        assert_eq!(
            missing_pet.map_err(|e| ApiError::from(e).status()).err(),
            Some(404)
        );
        let sold_pet = order(None, 1);
        let unavailable = handlers
            .place_order(&ctx, PlaceOrderRequest { body: sold_pet })
            .await;
        assert_eq!(
            unavailable.map_err(|e| ApiError::from(e).status()).err(),
            Some(409)
        );
        let missing_order = handlers
            .delete_order(&ctx, DeleteOrderRequest { order_id: 404 })
            .await;
        assert_eq!(
            missing_order.map_err(|e| ApiError::from(e).status()).err(),
            Some(404)
        );
        let missing_user = handlers
            .delete_user(
                &ctx,
                DeleteUserRequest {
                    username: "ghost".to_owned(),
                },
            )
            .await;
        assert_eq!(
            missing_user.map_err(|e| ApiError::from(e).status()).err(),
            Some(404)
        );
        let renamed_nobody = handlers
            .update_pet_with_form(
                &ctx,
                UpdatePetWithFormRequest {
                    pet_id: 404,
                    name: Some("Nobody".to_owned()),
                    status: None,
                },
            )
            .await;
        assert_eq!(
            renamed_nobody.map_err(|e| ApiError::from(e).status()).err(),
            Some(404)
        );

        // Reads, including the form update that changes nothing.
        handlers
            .get_pet_by_id(&ctx, GetPetByIdRequest { pet_id: 1 })
            .await
            .expect("a read");
        handlers
            .update_pet_with_form(
                &ctx,
                UpdatePetWithFormRequest {
                    pet_id: 1,
                    name: None,
                    status: None,
                },
            )
            .await
            .expect("a read");
        inventory_json(&handlers).await;

        assert!(received(&listener).is_empty());
    }

    #[tokio::test]
    async fn user_events_reach_that_users_connections_without_the_password() {
        let (handlers, memory, hub) = pet_store();
        let user = User {
            id: None,
            username: "alice".to_owned(),
            first_name: Some("Alice".to_owned()),
            last_name: None,
            email: None,
            password: None,
            phone: None,
            user_status: None,
        };
        memory
            .create_users(vec![NewUser {
                user: user.clone(),
                password_hash: "not-a-real-hash".to_owned(),
                roles: vec![Role::Customer],
            }])
            .await
            .expect("a user");
        let under_old_name = listen(&hub, &[], Some("alice"));
        let under_new_name = listen(&hub, &[], Some("alice.b"));
        let someone_else = listen(&hub, &[Topic::Pets], Some("bob"));

        let renamed = User {
            username: "alice.b".to_owned(),
            password: Some("a new secret".to_owned()),
            ..user
        };
        handlers
            .update_user(
                &admin(),
                UpdateUserRequest {
                    username: "alice".to_owned(),
                    body: renamed,
                },
            )
            .await
            .expect("the user is updated");

        let stored = memory
            .get_user("alice.b")
            .await
            .expect("read")
            .expect("the renamed user");
        let record = json_of(stored.user.json.bytes());
        assert_eq!(record["username"], "alice.b");
        assert!(record.get("password").is_none(), "{record}");
        let update = vec![("user.updated".to_owned(), record)];
        assert_eq!(received(&under_old_name), update);
        assert_eq!(received(&under_new_name), update);
        assert!(received(&someone_else).is_empty());

        handlers
            .delete_user(
                &admin(),
                DeleteUserRequest {
                    username: "alice.b".to_owned(),
                },
            )
            .await
            .expect("the user is deleted");
        assert_eq!(
            received(&under_new_name),
            vec![("user.deleted".to_owned(), json!({"username": "alice.b"}))]
        );
        assert!(received(&under_old_name).is_empty());
        assert!(received(&someone_else).is_empty());
    }

    /// A bus that keeps what the handlers hand it: what is under test here is which entity and
    /// version each event carries, not how a bus delivers (the buses' own suites cover that).
    #[derive(Default)]
    struct Recorder(parking_lot::Mutex<Vec<Notification>>);

    #[async_trait::async_trait]
    impl EventBus for Recorder {
        async fn publish(&self, notification: Notification) {
            self.0.lock().push(notification);
        }

        async fn recover(
            &self,
            _resumes: &[crate::events::Resume],
            _horizon: u64,
        ) -> Result<Vec<crate::events::TopicRecovery>, crate::events::RecoverError> {
            Err(crate::events::RecoverError::Unavailable(
                "the recorder keeps no history".to_owned(),
            ))
        }
    }

    impl Recorder {
        /// The events published since the last call, as `(event, entity, version)`.
        fn take(&self) -> Vec<(String, Option<(String, u64)>)> {
            std::mem::take(&mut *self.0.lock())
                .into_iter()
                .map(|notification| {
                    (
                        notification.event().as_str().to_owned(),
                        notification
                            .version()
                            .map(|version| (version.entity.clone(), version.version)),
                    )
                })
                .collect()
        }
    }

    fn at(entity: &str, version: u64) -> Option<(String, u64)> {
        Some((entity.to_owned(), version))
    }

    #[tokio::test]
    async fn entity_events_carry_the_version_of_the_write_they_report() {
        let (handlers, memory, _) = pet_store();
        let recorder = Arc::new(Recorder::default());
        let handlers = handlers.with_events(recorder.clone());
        let ctx = admin();

        handlers
            .add_pet(&ctx, AddPetRequest { body: pet(7, None) })
            .await
            .expect("the pet is added");
        let created = memory.get_pet(7).await.expect("read").expect("the pet");
        assert_eq!(
            recorder.take(),
            vec![
                ("pet.created".to_owned(), at("pet:7", created.version)),
                // A count over every pet, not an entity: never versioned.
                ("inventory.changed".to_owned(), None),
            ]
        );

        let order = order(Some(3), 7);
        handlers
            .place_order(&ctx, PlaceOrderRequest { body: order })
            .await
            .expect("the order is placed");
        let placed = memory.get_order(3).await.expect("read").expect("the order");
        assert!(placed.version > created.version);
        assert_eq!(
            recorder.take(),
            vec![
                ("order.placed".to_owned(), at("order:3", placed.version)),
                ("pet.updated".to_owned(), at("pet:7", placed.version)),
                ("inventory.changed".to_owned(), None),
            ]
        );

        handlers
            .delete_order(&ctx, DeleteOrderRequest { order_id: 3 })
            .await
            .expect("the order is deleted");
        let freed = memory.get_pet(7).await.expect("read").expect("the pet");
        assert!(freed.version > placed.version);
        assert_eq!(
            recorder.take(),
            vec![
                ("order.deleted".to_owned(), at("order:3", freed.version)),
                ("pet.updated".to_owned(), at("pet:7", freed.version)),
                ("inventory.changed".to_owned(), None),
            ]
        );

        handlers
            .delete_pet(&ctx, DeletePetRequest { pet_id: 7 })
            .await
            .expect("the pet is deleted");
        let events = recorder.take();
        let Some((_, Some((entity, deleted)))) = events.first().cloned() else {
            panic!("no versioned pet.deleted: {events:?}");
        };
        assert_eq!(events[0].0, "pet.deleted");
        assert_eq!(entity, "pet:7");
        assert!(deleted > freed.version, "{deleted} after {}", freed.version);
    }

    #[tokio::test]
    async fn a_rename_is_versioned_under_each_name_and_a_deletion_after_it() {
        let (handlers, memory, _) = pet_store();
        let recorder = Arc::new(Recorder::default());
        let handlers = handlers.with_events(recorder.clone());
        let user = User {
            id: None,
            username: "alice".to_owned(),
            first_name: None,
            last_name: None,
            email: None,
            password: None,
            phone: None,
            user_status: None,
        };
        memory
            .create_users(vec![NewUser {
                user: user.clone(),
                password_hash: "not-a-real-hash".to_owned(),
                roles: vec![Role::Customer],
            }])
            .await
            .expect("a user");
        let renamed = User {
            username: "alice.b".to_owned(),
            ..user
        };
        handlers
            .update_user(
                &admin(),
                UpdateUserRequest {
                    username: "alice".to_owned(),
                    body: renamed,
                },
            )
            .await
            .expect("the user is renamed");
        let stored = memory
            .get_user("alice.b")
            .await
            .expect("read")
            .expect("the renamed user");
        assert_eq!(
            recorder.take(),
            vec![
                (
                    "user.updated".to_owned(),
                    at("user:alice", stored.version())
                ),
                (
                    "user.updated".to_owned(),
                    at("user:alice.b", stored.version())
                ),
            ]
        );

        handlers
            .delete_user(
                &admin(),
                DeleteUserRequest {
                    username: "alice.b".to_owned(),
                },
            )
            .await
            .expect("the user is deleted");
        let events = recorder.take();
        assert!(
            matches!(
                events.as_slice(),
                [(event, Some((entity, version)))]
                    if event == "user.deleted" && entity == "user:alice.b" && *version > stored.version()
            ),
            "{events:?}"
        );
    }
}
