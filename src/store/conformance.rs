//! The behaviour every [`Store`] implementation must show, written against the trait only.
//!
//! Each check takes a fresh, empty store. An implementation runs the whole suite with
//! `store_conformance_tests!(path_to_async_fn_returning_a_fresh_Arc_dyn_Store)` in its test
//! module, so the memory and Redis stores are held to exactly the same behaviour.

use std::{collections::BTreeMap, sync::Arc};

use bytes::Bytes;
use serde::Serialize;
use uuid::Uuid;

use petstore_api::{
    ApiError, Image, Role, Serialized,
    error::{Conflict, Failure, Forbidden, Invalid, NotFound, OneOf, ServerError},
    models::{Category, Order, OrderStatus, Pet, PetStatus, Tag, User},
};

use super::{NewImage, NewUser, OrderUpdate, OrderWrite, Store, StoreResult, Stored, StoredUser};

/// Generates one `#[tokio::test]` per check below, each on a fresh store from `$fresh`.
macro_rules! store_conformance_tests {
    ($fresh:path) => {
        $crate::store::conformance::store_conformance_tests!(@each $fresh;
            ping_answers_ok,
            pet_ids_come_from_a_sequence_that_skips_ids_in_use,
            creating_a_pet_with_a_taken_id_conflicts,
            replacing_a_pet_needs_an_existing_id,
            updating_pet_fields_keeps_the_others,
            deleting_a_pet_drops_it_and_its_images,
            find_by_status_returns_matching_pets_ordered_by_id,
            find_by_tags_returns_each_pet_once_ordered_by_id,
            inventory_counts_every_status_including_zeros,
            images_are_stored_with_their_url_up_to_max_photos,
            placing_an_order_reserves_the_pet_and_fills_defaults,
            placing_an_order_needs_an_available_pet,
            placing_a_delivered_order_sells_the_pet,
            order_ids_are_assigned_and_unique,
            order_status_moves_only_forward,
            delivering_an_order_sells_the_pet_and_completes_it,
            deleting_an_undelivered_order_frees_the_pet,
            deleting_a_delivered_order_keeps_the_pet_sold,
            deleting_an_order_keeps_a_pet_another_order_holds,
            orders_of_a_deleted_pet_do_not_release_a_new_pet_with_its_id,
            a_placed_order_belongs_to_its_owner_for_its_whole_life,
            an_unknown_order_has_no_owner,
            deleting_an_order_drops_its_owner,
            an_order_is_read_together_with_its_owner,
            an_owner_limited_delete_removes_only_that_owners_order,
            creating_users_is_all_or_nothing,
            user_ids_come_from_the_sequence_and_skip_explicit_ones,
            users_never_store_or_serialize_a_password,
            updating_a_user_replaces_fields_and_keeps_id_and_hash,
            renaming_a_user_moves_it_unless_the_name_is_taken,
            updating_a_user_to_another_users_id_conflicts,
            deleting_a_user_removes_it,
            users_are_created_with_their_roles_sorted_and_deduplicated,
            updating_a_user_keeps_its_roles,
            renaming_a_user_carries_its_roles_along,
            setting_roles_replaces_them_and_keeps_the_rest,
            setting_a_password_hash_replaces_it_and_keeps_the_rest,
            every_write_takes_a_version_above_every_earlier_one,
            reads_return_the_version_of_the_last_write,
            a_deletion_and_a_re_creation_each_take_a_higher_version,
            an_order_step_gives_the_order_and_its_pet_one_version,
            user_writes_take_higher_versions_and_a_list_shares_one,
        );
        $crate::store::conformance::store_conformance_tests!(@concurrent $fresh;
            concurrent_orders_for_one_pet_exactly_one_succeeds,
            concurrent_orders_keep_their_own_owners,
            concurrent_changes_to_one_user_are_all_kept,
            concurrent_writes_to_one_pet_take_versions_in_commit_order,
        );
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::store::conformance::$check($fresh().await).await;
            }
        )*
    };
    (@concurrent $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                $crate::store::conformance::$check($fresh().await).await;
            }
        )*
    };
}

pub(crate) use store_conformance_tests;

type S = Arc<dyn Store>;

/// The owner of the orders of checks that are not about owners.
const CUSTOMER: &str = "customer";

/// The stored JSON is exactly what rendering the stored value gives now.
fn assert_fresh<T: Serialize + std::fmt::Debug>(stored: &Stored<T>) {
    assert_eq!(
        stored.json,
        Serialized::new(&stored.value),
        "stale JSON for {:?}",
        stored.value
    );
}

/// Two stored copies hold the same entity and JSON, whatever their versions.
fn assert_same_record<T: PartialEq + std::fmt::Debug>(left: &Stored<T>, right: &Stored<T>) {
    assert_eq!(left.value, right.value);
    assert_eq!(left.json, right.json);
}

fn json_of<T>(stored: &Stored<T>) -> serde_json::Value {
    serde_json::from_slice(stored.json.bytes()).unwrap_or(serde_json::Value::Null)
}

fn pet(name: &str, status: Option<PetStatus>, tags: &[&str]) -> Pet {
    Pet {
        id: None,
        name: name.to_owned(),
        category: Some(Category {
            id: Some(1),
            name: Some("Dogs".to_owned()),
        }),
        photo_urls: Vec::new(),
        tags: Some(
            tags.iter()
                .map(|name| Tag {
                    id: None,
                    name: Some((*name).to_owned()),
                })
                .collect(),
        ),
        status,
    }
}

fn with_id(mut pet: Pet, id: i64) -> Pet {
    pet.id = Some(id);
    pet
}

fn order_for(pet_id: i64) -> Order {
    Order {
        id: None,
        pet_id,
        quantity: None,
        ship_date: None,
        status: None,
        complete: None,
    }
}

fn user(username: &str, id: Option<i64>) -> User {
    User {
        id,
        username: username.to_owned(),
        first_name: Some("First".to_owned()),
        last_name: Some("Last".to_owned()),
        email: Some(format!("{username}@example.com")),
        password: Some("clear-text-password".to_owned()),
        phone: None,
        user_status: Some(1),
    }
}

fn new_user(username: &str, id: Option<i64>) -> NewUser {
    let mut new = with_roles(username, vec![Role::Customer]);
    new.user.id = id;
    new
}

fn with_roles(username: &str, roles: Vec<Role>) -> NewUser {
    NewUser {
        user: user(username, None),
        password_hash: format!("hash-of-{username}"),
        roles,
    }
}

async fn add(store: &S, pet: Pet) -> i64 {
    let stored = store.create_pet(pet).await.unwrap();
    assert_fresh(&stored);
    stored.value.id.unwrap()
}

async fn pet_status(store: &S, id: i64) -> Option<PetStatus> {
    let pet = store.get_pet(id).await.unwrap().unwrap();
    assert_fresh(&pet);
    pet.value.status
}

async fn ids(pets: Vec<Arc<Stored<Pet>>>) -> Vec<i64> {
    pets.iter()
        .inspect(|pet| assert_fresh(pet))
        .map(|pet| pet.value.id.unwrap())
        .collect()
}

fn png(byte: u8) -> Image {
    Image {
        content_type: "image/png",
        bytes: Bytes::from(vec![0x89, b'P', b'N', b'G', byte]),
    }
}

fn new_image(pet_id: i64, id: Uuid, byte: u8) -> NewImage {
    NewImage {
        id,
        image: png(byte),
        metadata: Some("a photo".to_owned()),
        url: format!("/api/v3/pet/{pet_id}/image/{id}"),
    }
}

/// The refusal or failure of a step as the client would see it, whatever the step's refusal
/// type.
fn api_error<T, R: Into<ApiError>>(result: StoreResult<T, R>) -> Option<ApiError> {
    result.err().map(ApiError::from)
}

fn is_not_found<T, R: Into<ApiError>>(result: StoreResult<T, R>) -> bool {
    matches!(api_error(result), Some(ApiError::NotFound(_)))
}

fn is_conflict<T, R: Into<ApiError>>(result: StoreResult<T, R>) -> bool {
    matches!(api_error(result), Some(ApiError::Conflict(_)))
}

/// Moves an order to `delivered`, expecting success.
async fn deliver(store: &S, order_id: i64) -> OrderWrite {
    let update = OrderUpdate {
        status: Some(OrderStatus::Delivered),
        ..OrderUpdate::default()
    };
    store.update_order(order_id, update).await.unwrap()
}

pub(crate) async fn ping_answers_ok(store: S) {
    assert_eq!(store.ping().await, Ok(()));
}

pub(crate) async fn pet_ids_come_from_a_sequence_that_skips_ids_in_use(store: S) {
    assert_eq!(add(&store, pet("a", None, &[])).await, 1);
    assert_eq!(add(&store, with_id(pet("b", None, &[]), 3)).await, 3);
    assert_eq!(add(&store, pet("c", None, &[])).await, 2);
    // 3 is taken by a client-chosen id, so the sequence skips it.
    assert_eq!(add(&store, pet("d", None, &[])).await, 4);
    // An id the server handed out is never handed out again.
    store.delete_pet(4).await.unwrap();
    assert_eq!(add(&store, pet("e", None, &[])).await, 5);
    // A client choosing the largest id does not exhaust the sequence for everyone else.
    assert_eq!(
        add(&store, with_id(pet("f", None, &[]), i64::MAX)).await,
        i64::MAX
    );
    assert_eq!(add(&store, pet("g", None, &[])).await, 6);
}

pub(crate) async fn creating_a_pet_with_a_taken_id_conflicts(store: S) {
    add(&store, with_id(pet("a", None, &[]), 3)).await;
    assert!(is_conflict(
        store.create_pet(with_id(pet("b", None, &[]), 3)).await
    ));
    assert_eq!(store.get_pet(3).await.unwrap().unwrap().value.name, "a");
}

pub(crate) async fn replacing_a_pet_needs_an_existing_id(store: S) {
    let id = add(&store, pet("a", Some(PetStatus::Available), &["x"])).await;
    let replaced = store
        .replace_pet(with_id(pet("b", Some(PetStatus::Sold), &[]), id))
        .await
        .unwrap();
    assert_fresh(&replaced);
    assert_eq!(replaced.value.name, "b");
    assert_eq!(store.get_pet(id).await.unwrap(), Some(replaced));

    assert!(is_not_found(
        store.replace_pet(with_id(pet("c", None, &[]), 99)).await
    ));
    // The handler checks the id is there; a store asked to replace a pet without one has been
    // called wrongly.
    assert!(matches!(
        store.replace_pet(pet("c", None, &[])).await,
        Err(Failure::Server(ServerError::Internal))
    ));
}

pub(crate) async fn updating_pet_fields_keeps_the_others(store: S) {
    let id = add(&store, pet("a", Some(PetStatus::Available), &["x"])).await;
    let renamed = store
        .update_pet_fields(id, Some("b".to_owned()), None)
        .await
        .unwrap();
    assert_fresh(&renamed);
    assert_eq!(renamed.value.name, "b");
    assert_eq!(renamed.value.status, Some(PetStatus::Available));
    let sold = store
        .update_pet_fields(id, None, Some(PetStatus::Sold))
        .await
        .unwrap();
    assert_fresh(&sold);
    assert_eq!(sold.value.name, "b");
    assert_eq!(sold.value.status, Some(PetStatus::Sold));
    assert_eq!(sold.value.tags, renamed.value.tags);
    assert_eq!(json_of(&sold)["status"], "sold");
    assert!(is_not_found(store.update_pet_fields(99, None, None).await));
}

pub(crate) async fn deleting_a_pet_drops_it_and_its_images(store: S) {
    let id = add(&store, pet("a", None, &[])).await;
    let image = Uuid::new_v4();
    store
        .add_pet_image(id, new_image(id, image, 1), 20)
        .await
        .unwrap();
    let removed = store.delete_pet(id).await.unwrap();
    assert_eq!(removed.value.name, "a");
    assert_eq!(store.get_pet(id).await.unwrap(), None);
    assert_eq!(store.get_pet_image(id, image).await.unwrap(), None);
    assert!(is_not_found(store.delete_pet(id).await));

    // A new pet under the same id starts without the old images.
    add(&store, with_id(pet("b", None, &[]), id)).await;
    assert_eq!(store.get_pet_image(id, image).await.unwrap(), None);
}

pub(crate) async fn find_by_status_returns_matching_pets_ordered_by_id(store: S) {
    add(&store, with_id(pet("s", Some(PetStatus::Sold), &[]), 30)).await;
    add(
        &store,
        with_id(pet("a", Some(PetStatus::Available), &[]), 20),
    )
    .await;
    add(&store, with_id(pet("p", Some(PetStatus::Pending), &[]), 10)).await;
    add(
        &store,
        with_id(pet("a2", Some(PetStatus::Available), &[]), 5),
    )
    .await;
    add(&store, with_id(pet("none", None, &[]), 1)).await;

    let available = store
        .find_pets_by_status(&[PetStatus::Available])
        .await
        .unwrap();
    assert_eq!(ids(available).await, [5, 20]);
    let some = store
        .find_pets_by_status(&[PetStatus::Sold, PetStatus::Pending])
        .await
        .unwrap();
    assert_eq!(ids(some).await, [10, 30]);
    let all = store.find_pets_by_status(&PetStatus::ALL).await.unwrap();
    assert_eq!(ids(all).await, [5, 10, 20, 30]);
    assert!(store.find_pets_by_status(&[]).await.unwrap().is_empty());
}

pub(crate) async fn find_by_tags_returns_each_pet_once_ordered_by_id(store: S) {
    add(&store, with_id(pet("both", None, &["tag1", "tag2"]), 7)).await;
    add(&store, with_id(pet("one", None, &["tag2"]), 3)).await;
    add(&store, with_id(pet("other", None, &["tag3"]), 5)).await;
    add(&store, with_id(pet("untagged", None, &[]), 1)).await;
    let mut no_tags = pet("no tags at all", None, &[]);
    no_tags.tags = None;
    add(&store, with_id(no_tags, 2)).await;

    let found = store
        .find_pets_by_tags(&["tag1".to_owned(), "tag2".to_owned()])
        .await
        .unwrap();
    assert_eq!(ids(found).await, [3, 7]);
    let none = store
        .find_pets_by_tags(&["TAG1".to_owned(), "missing".to_owned()])
        .await
        .unwrap();
    assert!(none.is_empty());
}

pub(crate) async fn inventory_counts_every_status_including_zeros(store: S) {
    let expect = |available, pending, sold| {
        BTreeMap::from([
            (PetStatus::Available, available),
            (PetStatus::Pending, pending),
            (PetStatus::Sold, sold),
        ])
    };
    assert_eq!(store.inventory().await.unwrap(), expect(0, 0, 0));
    let a = add(&store, pet("a", Some(PetStatus::Available), &[])).await;
    add(&store, pet("b", Some(PetStatus::Available), &[])).await;
    add(&store, pet("c", Some(PetStatus::Sold), &[])).await;
    add(&store, pet("no status", None, &[])).await;
    assert_eq!(store.inventory().await.unwrap(), expect(2, 0, 1));
    store.place_order(order_for(a), CUSTOMER).await.unwrap();
    assert_eq!(store.inventory().await.unwrap(), expect(1, 1, 1));
}

pub(crate) async fn images_are_stored_with_their_url_up_to_max_photos(store: S) {
    let mut with_photo = pet("a", None, &[]);
    with_photo.photo_urls = vec!["https://example.com/a.png".to_owned()];
    let id = add(&store, with_photo).await;

    let first = Uuid::new_v4();
    let updated = store
        .add_pet_image(id, new_image(id, first, 1), 3)
        .await
        .unwrap();
    assert_fresh(&updated);
    assert_eq!(
        updated.value.photo_urls,
        [
            "https://example.com/a.png".to_owned(),
            format!("/api/v3/pet/{id}/image/{first}")
        ]
    );
    assert_eq!(store.get_pet(id).await.unwrap(), Some(updated));
    assert_eq!(store.get_pet_image(id, first).await.unwrap(), Some(png(1)));

    assert!(is_conflict(
        store.add_pet_image(id, new_image(id, first, 9), 3).await
    ));
    let second = Uuid::new_v4();
    store
        .add_pet_image(id, new_image(id, second, 2), 3)
        .await
        .unwrap();
    let third = Uuid::new_v4();
    assert!(is_conflict(
        store.add_pet_image(id, new_image(id, third, 3), 3).await
    ));
    assert_eq!(store.get_pet_image(id, third).await.unwrap(), None);
    assert_eq!(
        store
            .get_pet(id)
            .await
            .unwrap()
            .unwrap()
            .value
            .photo_urls
            .len(),
        3
    );

    assert_eq!(store.get_pet_image(id, second).await.unwrap(), Some(png(2)));
    assert_eq!(store.get_pet_image(id + 1, second).await.unwrap(), None);
    assert!(is_not_found(
        store.add_pet_image(99, new_image(99, third, 3), 3).await
    ));
}

pub(crate) async fn placing_an_order_reserves_the_pet_and_fills_defaults(store: S) {
    let id = add(&store, pet("a", Some(PetStatus::Available), &[])).await;
    let placed = store.place_order(order_for(id), CUSTOMER).await.unwrap();
    assert_fresh(&placed.order);
    let order = &placed.order.value;
    assert_eq!(order.id, Some(1));
    assert_eq!(order.status, Some(OrderStatus::Placed));
    assert_eq!(order.quantity, Some(1));
    assert_eq!(order.complete, Some(false));
    let json = json_of(&placed.order);
    assert_eq!(json["petId"], id);
    assert_eq!(json["status"], "placed");

    let reserved = placed.pet.unwrap();
    assert_fresh(&reserved);
    assert_eq!(reserved.value.status, Some(PetStatus::Pending));
    assert_eq!(pet_status(&store, id).await, Some(PetStatus::Pending));
    assert_eq!(
        store.get_order(1).await.unwrap(),
        Some(Arc::clone(&placed.order))
    );

    let id = add(&store, pet("b", Some(PetStatus::Available), &[])).await;
    let mut approved = order_for(id);
    approved.status = Some(OrderStatus::Approved);
    approved.quantity = Some(3);
    approved.complete = Some(true);
    let placed = store.place_order(approved, CUSTOMER).await.unwrap();
    assert_eq!(placed.order.value.quantity, Some(3));
    assert_eq!(placed.order.value.complete, Some(true));
    assert_eq!(pet_status(&store, id).await, Some(PetStatus::Pending));
}

pub(crate) async fn placing_an_order_needs_an_available_pet(store: S) {
    let result = store.place_order(order_for(42), CUSTOMER).await;
    assert_eq!(
        result.map(|_| ()),
        Err(Failure::Refused(OneOf::First(NotFound(
            "pet 42 not found".to_owned()
        ))))
    );
    for status in [None, Some(PetStatus::Pending), Some(PetStatus::Sold)] {
        let id = add(&store, pet("a", status, &[])).await;
        let result = store.place_order(order_for(id), CUSTOMER).await;
        assert_eq!(
            result.map(|_| ()),
            Err(Failure::Refused(OneOf::Second(Conflict(format!(
                "pet {id} is not available"
            )))))
        );
        assert_eq!(pet_status(&store, id).await, status);
    }
    assert_eq!(store.get_order(1).await.unwrap(), None);
}

pub(crate) async fn placing_a_delivered_order_sells_the_pet(store: S) {
    let id = add(&store, pet("a", Some(PetStatus::Available), &[])).await;
    let mut order = order_for(id);
    order.status = Some(OrderStatus::Delivered);
    order.complete = Some(false);
    let placed = store.place_order(order, CUSTOMER).await.unwrap();
    assert_fresh(&placed.order);
    assert_eq!(placed.order.value.complete, Some(true));
    assert_eq!(pet_status(&store, id).await, Some(PetStatus::Sold));
    // Nothing holds the pet any more: deleting the order must not make it available.
    store.delete_order(1, None).await.unwrap();
    assert_eq!(pet_status(&store, id).await, Some(PetStatus::Sold));
}

pub(crate) async fn order_ids_are_assigned_and_unique(store: S) {
    for _ in 0..4 {
        add(&store, pet("a", Some(PetStatus::Available), &[])).await;
    }
    let mut explicit = order_for(1);
    explicit.id = Some(10);
    assert_eq!(
        store
            .place_order(explicit, CUSTOMER)
            .await
            .unwrap()
            .order
            .value
            .id,
        Some(10)
    );
    let mut taken = order_for(2);
    taken.id = Some(10);
    assert!(is_conflict(store.place_order(taken, CUSTOMER).await));
    // The failed attempt reserved nothing.
    assert_eq!(pet_status(&store, 2).await, Some(PetStatus::Available));
    assert_eq!(
        store
            .place_order(order_for(2), CUSTOMER)
            .await
            .unwrap()
            .order
            .value
            .id,
        Some(1)
    );
    // An id the server handed out is not handed out again.
    store.delete_order(1, None).await.unwrap();
    assert_eq!(
        store
            .place_order(order_for(3), CUSTOMER)
            .await
            .unwrap()
            .order
            .value
            .id,
        Some(2)
    );
}

pub(crate) async fn order_status_moves_only_forward(store: S) {
    let id = add(&store, pet("a", Some(PetStatus::Available), &[])).await;
    let order = store
        .place_order(order_for(id), CUSTOMER)
        .await
        .unwrap()
        .order;
    let order_id = order.value.id.unwrap();
    let update = |status| OrderUpdate {
        status: Some(status),
        ..OrderUpdate::default()
    };

    let same = store
        .update_order(order_id, update(OrderStatus::Placed))
        .await
        .unwrap();
    assert_eq!(same.order.value.status, Some(OrderStatus::Placed));
    assert!(same.pet.is_none());

    let ship_date = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let approved = store
        .update_order(
            order_id,
            OrderUpdate {
                status: Some(OrderStatus::Approved),
                ship_date: Some(ship_date),
                complete: None,
            },
        )
        .await
        .unwrap();
    assert_fresh(&approved.order);
    assert_eq!(approved.order.value.status, Some(OrderStatus::Approved));
    assert_eq!(approved.order.value.ship_date, Some(ship_date));
    assert_eq!(approved.order.value.complete, Some(false));
    assert!(approved.pet.is_none());
    assert_eq!(pet_status(&store, id).await, Some(PetStatus::Pending));

    let back = store
        .update_order(order_id, update(OrderStatus::Placed))
        .await;
    assert!(matches!(
        back,
        Err(Failure::Refused(OneOf::Second(Invalid { errors, .. }))) if errors[0].path == "status"
    ));
    let kept = store.get_order(order_id).await.unwrap().unwrap();
    assert_eq!(kept.value.status, Some(OrderStatus::Approved));
    assert_eq!(kept.value.ship_date, Some(ship_date));

    store
        .update_order(order_id, update(OrderStatus::Delivered))
        .await
        .unwrap();
    for status in [OrderStatus::Placed, OrderStatus::Approved] {
        assert!(matches!(
            store.update_order(order_id, update(status)).await,
            Err(Failure::Refused(OneOf::Second(Invalid { .. })))
        ));
    }
    assert!(is_not_found(
        store.update_order(99, OrderUpdate::default()).await
    ));
}

pub(crate) async fn delivering_an_order_sells_the_pet_and_completes_it(store: S) {
    let id = add(&store, pet("a", Some(PetStatus::Available), &[])).await;
    let order_id = store
        .place_order(order_for(id), CUSTOMER)
        .await
        .unwrap()
        .order
        .value
        .id
        .unwrap();
    let delivered = store
        .update_order(
            order_id,
            OrderUpdate {
                status: Some(OrderStatus::Delivered),
                ship_date: None,
                complete: Some(false),
            },
        )
        .await
        .unwrap();
    assert_fresh(&delivered.order);
    assert_eq!(delivered.order.value.complete, Some(true));
    let sold = delivered.pet.unwrap();
    assert_fresh(&sold);
    assert_eq!(sold.value.status, Some(PetStatus::Sold));
    assert_eq!(pet_status(&store, id).await, Some(PetStatus::Sold));

    // Delivering again changes nothing on the pet.
    let again = deliver(&store, order_id).await;
    assert!(again.pet.is_none());
    assert_eq!(again.order.value.complete, Some(true));

    // An order whose pet is gone can still be delivered.
    let other = add(&store, pet("b", Some(PetStatus::Available), &[])).await;
    let order_id = store
        .place_order(order_for(other), CUSTOMER)
        .await
        .unwrap()
        .order
        .value
        .id
        .unwrap();
    store.delete_pet(other).await.unwrap();
    let delivered = deliver(&store, order_id).await;
    assert!(delivered.pet.is_none());
    assert_eq!(store.get_pet(other).await.unwrap(), None);
}

pub(crate) async fn deleting_an_undelivered_order_frees_the_pet(store: S) {
    for status in [OrderStatus::Placed, OrderStatus::Approved] {
        let id = add(&store, pet("a", Some(PetStatus::Available), &[])).await;
        let mut order = order_for(id);
        order.status = Some(status);
        let order_id = store
            .place_order(order, CUSTOMER)
            .await
            .unwrap()
            .order
            .value
            .id
            .unwrap();
        let deleted = store.delete_order(order_id, None).await.unwrap();
        assert_eq!(deleted.order.value.id, Some(order_id));
        let freed = deleted.pet.unwrap();
        assert_fresh(&freed);
        assert_eq!(freed.value.status, Some(PetStatus::Available));
        assert_eq!(pet_status(&store, id).await, Some(PetStatus::Available));
        assert_eq!(store.get_order(order_id).await.unwrap(), None);
        assert!(is_not_found(store.delete_order(order_id, None).await));
        // And it can be ordered again.
        store.place_order(order_for(id), CUSTOMER).await.unwrap();
    }
}

pub(crate) async fn deleting_a_delivered_order_keeps_the_pet_sold(store: S) {
    let id = add(&store, pet("a", Some(PetStatus::Available), &[])).await;
    let order_id = store
        .place_order(order_for(id), CUSTOMER)
        .await
        .unwrap()
        .order
        .value
        .id
        .unwrap();
    deliver(&store, order_id).await;
    let deleted = store.delete_order(order_id, None).await.unwrap();
    assert!(deleted.pet.is_none());
    assert_eq!(pet_status(&store, id).await, Some(PetStatus::Sold));
}

pub(crate) async fn deleting_an_order_keeps_a_pet_another_order_holds(store: S) {
    let id = add(&store, pet("a", Some(PetStatus::Available), &[])).await;
    let first = store
        .place_order(order_for(id), CUSTOMER)
        .await
        .unwrap()
        .order;
    // Someone makes the pet available by hand and it is ordered a second time.
    store
        .update_pet_fields(id, None, Some(PetStatus::Available))
        .await
        .unwrap();
    let second = store
        .place_order(order_for(id), CUSTOMER)
        .await
        .unwrap()
        .order;

    let deleted = store
        .delete_order(first.value.id.unwrap(), None)
        .await
        .unwrap();
    assert!(deleted.pet.is_none());
    assert_eq!(pet_status(&store, id).await, Some(PetStatus::Pending));
    let deleted = store
        .delete_order(second.value.id.unwrap(), None)
        .await
        .unwrap();
    assert!(deleted.pet.is_some());
    assert_eq!(pet_status(&store, id).await, Some(PetStatus::Available));

    // A pet whose status was changed by hand while ordered is left as it is.
    let other = add(&store, pet("b", Some(PetStatus::Available), &[])).await;
    let order = store
        .place_order(order_for(other), CUSTOMER)
        .await
        .unwrap()
        .order;
    store
        .update_pet_fields(other, None, Some(PetStatus::Sold))
        .await
        .unwrap();
    let deleted = store
        .delete_order(order.value.id.unwrap(), None)
        .await
        .unwrap();
    assert!(deleted.pet.is_none());
    assert_eq!(pet_status(&store, other).await, Some(PetStatus::Sold));
}

pub(crate) async fn orders_of_a_deleted_pet_do_not_release_a_new_pet_with_its_id(store: S) {
    let id = add(&store, pet("a", Some(PetStatus::Available), &[])).await;
    let order = store
        .place_order(order_for(id), CUSTOMER)
        .await
        .unwrap()
        .order;
    store.delete_pet(id).await.unwrap();
    add(&store, with_id(pet("b", Some(PetStatus::Pending), &[]), id)).await;
    let deleted = store
        .delete_order(order.value.id.unwrap(), None)
        .await
        .unwrap();
    assert!(deleted.pet.is_none());
    assert_eq!(pet_status(&store, id).await, Some(PetStatus::Pending));
}

pub(crate) async fn concurrent_orders_for_one_pet_exactly_one_succeeds(store: S) {
    const ROUNDS: usize = 200;
    const TASKS: usize = 8;
    for round in 0..ROUNDS {
        let id = add(&store, pet("contested", Some(PetStatus::Available), &[])).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let store = Arc::clone(&store);
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    let owner = format!("customer-{task}");
                    let placed = store.place_order(order_for(id), &owner).await;
                    (owner, placed)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (owner, Ok(placed)) => winners.push((owner, placed.order.value.id.unwrap())),
                (_, Err(Failure::Refused(OneOf::Second(Conflict(_))))) => {}
                (_, Err(other)) => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {winners:?} all won pet {id}"
        );
        assert_eq!(pet_status(&store, id).await, Some(PetStatus::Pending));
        // The order belongs to the one who won it, not to a loser.
        let (owner, order_id) = &winners[0];
        assert_eq!(
            store.order_owner(*order_id).await.unwrap().as_ref(),
            Some(owner)
        );
    }
    let placed = store
        .find_pets_by_status(&[PetStatus::Pending])
        .await
        .unwrap();
    assert_eq!(placed.len(), ROUNDS);
}

/// Places an order for a new available pet as `owner`; returns the order's id.
async fn place_as(store: &S, owner: &str) -> i64 {
    let pet_id = add(store, pet("a", Some(PetStatus::Available), &[])).await;
    let placed = store.place_order(order_for(pet_id), owner).await.unwrap();
    placed.order.value.id.unwrap()
}

async fn owner_of(store: &S, order_id: i64) -> Option<String> {
    store.order_owner(order_id).await.unwrap()
}

pub(crate) async fn a_placed_order_belongs_to_its_owner_for_its_whole_life(store: S) {
    let alice = place_as(&store, "alice").await;
    // A service key's name is an owner like any username.
    let service = place_as(&store, "reporting-service").await;
    assert_eq!(owner_of(&store, alice).await.as_deref(), Some("alice"));
    assert_eq!(
        owner_of(&store, service).await.as_deref(),
        Some("reporting-service")
    );

    // Updates keep the owner, up to delivery.
    store
        .update_order(
            alice,
            OrderUpdate {
                status: Some(OrderStatus::Approved),
                ..OrderUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(owner_of(&store, alice).await.as_deref(), Some("alice"));
    deliver(&store, alice).await;
    assert_eq!(owner_of(&store, alice).await.as_deref(), Some("alice"));

    // Placing another order under a taken id fails and does not take the order over.
    let pet_id = add(&store, pet("b", Some(PetStatus::Available), &[])).await;
    let mut taken = order_for(pet_id);
    taken.id = Some(alice);
    assert!(is_conflict(store.place_order(taken, "mallory").await));
    assert_eq!(owner_of(&store, alice).await.as_deref(), Some("alice"));
}

pub(crate) async fn an_unknown_order_has_no_owner(store: S) {
    assert_eq!(owner_of(&store, 1).await, None);
    assert_eq!(owner_of(&store, -1).await, None);
    // A placement that fails leaves no owner behind.
    assert!(is_not_found(
        store.place_order(order_for(42), "alice").await
    ));
    let sold = add(&store, pet("a", Some(PetStatus::Sold), &[])).await;
    assert!(is_conflict(
        store.place_order(order_for(sold), "alice").await
    ));
    assert_eq!(owner_of(&store, 1).await, None);
}

pub(crate) async fn an_order_is_read_together_with_its_owner(store: S) {
    let order_id = place_as(&store, "alice").await;
    let (order, owner) = store
        .get_order_with_owner(order_id)
        .await
        .unwrap()
        .expect("the order exists");
    assert_eq!(order.value.id, Some(order_id));
    assert_eq!(owner, "alice");
    assert!(
        store
            .get_order_with_owner(order_id + 1000)
            .await
            .unwrap()
            .is_none()
    );
}

pub(crate) async fn an_owner_limited_delete_removes_only_that_owners_order(store: S) {
    let order_id = place_as(&store, "alice").await;
    let refused = store.delete_order(order_id, Some("bob")).await;
    assert!(
        matches!(refused, Err(Failure::Refused(OneOf::Second(Forbidden(_))))),
        "{refused:?}"
    );
    assert_eq!(owner_of(&store, order_id).await.as_deref(), Some("alice"));

    let deleted = store.delete_order(order_id, Some("alice")).await.unwrap();
    assert_eq!(deleted.order.value.id, Some(order_id));
    assert!(is_not_found(
        store.delete_order(order_id, Some("alice")).await
    ));
}

pub(crate) async fn deleting_an_order_drops_its_owner(store: S) {
    let order_id = place_as(&store, "alice").await;
    store.delete_order(order_id, None).await.unwrap();
    assert_eq!(owner_of(&store, order_id).await, None);

    // A new order placed under the same id belongs to whoever placed it, not to the old owner.
    let pet_id = add(&store, pet("b", Some(PetStatus::Available), &[])).await;
    let mut reused = order_for(pet_id);
    reused.id = Some(order_id);
    store.place_order(reused, "bob").await.unwrap();
    assert_eq!(owner_of(&store, order_id).await.as_deref(), Some("bob"));
}

pub(crate) async fn concurrent_orders_keep_their_own_owners(store: S) {
    const TASKS: usize = 8;
    const ORDERS_PER_TASK: usize = 25;
    let mut pets = Vec::with_capacity(TASKS * ORDERS_PER_TASK);
    for _ in 0..TASKS * ORDERS_PER_TASK {
        pets.push(add(&store, pet("a", Some(PetStatus::Available), &[])).await);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = pets
        .chunks(ORDERS_PER_TASK)
        .enumerate()
        .map(|(task, pets)| {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            let pets = pets.to_vec();
            tokio::spawn(async move {
                barrier.wait().await;
                let owner = format!("customer-{task}");
                let mut placed = Vec::with_capacity(pets.len());
                for pet_id in pets {
                    let write = store.place_order(order_for(pet_id), &owner).await.unwrap();
                    placed.push(write.order.value.id.unwrap());
                }
                (owner, placed)
            })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for task in tasks {
        let (owner, placed) = task.await.unwrap();
        for order_id in placed {
            assert!(
                seen.insert(order_id),
                "order id {order_id} handed out twice"
            );
            assert_eq!(
                owner_of(&store, order_id).await.as_ref(),
                Some(&owner),
                "owner of order {order_id}"
            );
        }
    }
    assert_eq!(seen.len(), TASKS * ORDERS_PER_TASK);
}

async fn assert_user_stored(store: &S, stored: &StoredUser) {
    assert_fresh(&stored.user);
    assert_eq!(stored.user.value.password, None);
    assert!(json_of(&stored.user).get("password").is_none());
    let fetched = store
        .get_user(&stored.user.value.username)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&*fetched, stored);
}

pub(crate) async fn creating_users_is_all_or_nothing(store: S) {
    let created = store
        .create_users(vec![new_user("user1", None)])
        .await
        .unwrap();
    assert_eq!(created.len(), 1);
    assert_user_stored(&store, &created[0]).await;

    // A taken name late in the list: nothing of the list is created.
    let result = store
        .create_users(vec![new_user("fresh1", None), new_user("user1", None)])
        .await;
    assert!(is_conflict(result));
    assert_eq!(store.get_user("fresh1").await.unwrap(), None);

    // A name twice in the list.
    let result = store
        .create_users(vec![new_user("fresh2", None), new_user("fresh2", None)])
        .await;
    assert!(is_conflict(result));
    assert_eq!(store.get_user("fresh2").await.unwrap(), None);

    // A taken id, and an id twice in the list.
    let taken = created[0].user.value.id;
    let result = store
        .create_users(vec![new_user("fresh3", None), new_user("fresh4", taken)])
        .await;
    assert!(is_conflict(result));
    let result = store
        .create_users(vec![
            new_user("fresh5", Some(50)),
            new_user("fresh6", Some(50)),
        ])
        .await;
    assert!(is_conflict(result));
    for name in ["fresh3", "fresh4", "fresh5", "fresh6"] {
        assert_eq!(store.get_user(name).await.unwrap(), None);
    }

    let created = store
        .create_users(vec![new_user("user2", None), new_user("user3", None)])
        .await
        .unwrap();
    let names: Vec<_> = created
        .iter()
        .map(|stored| stored.user.value.username.as_str())
        .collect();
    assert_eq!(names, ["user2", "user3"]);
    for stored in &created {
        assert_user_stored(&store, stored).await;
    }
    assert!(store.create_users(Vec::new()).await.unwrap().is_empty());
}

pub(crate) async fn user_ids_come_from_the_sequence_and_skip_explicit_ones(store: S) {
    let created = store
        .create_users(vec![
            new_user("first", None),
            new_user("second", Some(10)),
            new_user("third", None),
        ])
        .await
        .unwrap();
    let ids: Vec<_> = created.iter().map(|u| u.user.value.id).collect();
    assert_eq!(ids, [Some(1), Some(10), Some(2)]);
    store.delete_user("third").await.unwrap();
    // The sequence is at 3, which this very list claims explicitly: the assigned id skips it.
    let created = store
        .create_users(vec![new_user("fourth", Some(3)), new_user("fifth", None)])
        .await
        .unwrap();
    let ids: Vec<_> = created.iter().map(|u| u.user.value.id).collect();
    assert_eq!(ids, [Some(3), Some(4)]);
}

pub(crate) async fn users_never_store_or_serialize_a_password(store: S) {
    let created = store
        .create_users(vec![new_user("user1", None)])
        .await
        .unwrap();
    assert_user_stored(&store, &created[0]).await;
    assert_eq!(created[0].password_hash, "hash-of-user1");
    assert!(!format!("{:?}", created[0]).contains("hash-of-user1"));

    let updated = store
        .update_user("user1", user("user1", None), Some("new-hash".to_owned()))
        .await
        .unwrap();
    assert_user_stored(&store, &updated).await;
    assert_eq!(updated.password_hash, "new-hash");
}

pub(crate) async fn updating_a_user_replaces_fields_and_keeps_id_and_hash(store: S) {
    let created = store
        .create_users(vec![new_user("user1", None)])
        .await
        .unwrap();
    let id = created[0].user.value.id;
    let mut changed = user("user1", None);
    changed.first_name = None;
    changed.phone = Some("12345".to_owned());
    let updated = store.update_user("user1", changed, None).await.unwrap();
    assert_user_stored(&store, &updated).await;
    assert_eq!(updated.user.value.id, id);
    assert_eq!(updated.user.value.first_name, None);
    assert_eq!(updated.user.value.phone.as_deref(), Some("12345"));
    assert_eq!(updated.password_hash, "hash-of-user1");

    // A new, unused id is taken over; the old one is free again.
    let moved = store
        .update_user("user1", user("user1", Some(77)), None)
        .await
        .unwrap();
    assert_eq!(moved.user.value.id, Some(77));
    let reuse = store
        .create_users(vec![new_user("other", id)])
        .await
        .unwrap();
    assert_eq!(reuse[0].user.value.id, id);

    assert!(is_not_found(
        store
            .update_user("nobody", user("nobody", None), None)
            .await
    ));
}

pub(crate) async fn renaming_a_user_moves_it_unless_the_name_is_taken(store: S) {
    store
        .create_users(vec![new_user("alice", None), new_user("bob", None)])
        .await
        .unwrap();
    let alice = store.get_user("alice").await.unwrap().unwrap();

    assert!(is_conflict(
        store.update_user("alice", user("bob", None), None).await
    ));
    assert_eq!(
        store.get_user("alice").await.unwrap(),
        Some(Arc::clone(&alice))
    );

    let renamed = store
        .update_user("alice", user("carol", None), None)
        .await
        .unwrap();
    assert_user_stored(&store, &renamed).await;
    assert_eq!(renamed.user.value.id, alice.user.value.id);
    assert_eq!(renamed.password_hash, alice.password_hash);
    assert_eq!(store.get_user("alice").await.unwrap(), None);
    // The old name is free again.
    store
        .create_users(vec![new_user("alice", None)])
        .await
        .unwrap();
}

pub(crate) async fn updating_a_user_to_another_users_id_conflicts(store: S) {
    let created = store
        .create_users(vec![new_user("alice", None), new_user("bob", None)])
        .await
        .unwrap();
    let bob_id = created[1].user.value.id;
    assert!(is_conflict(
        store
            .update_user("alice", user("alice", bob_id), None)
            .await
    ));
    // Its own id is fine.
    let own = created[0].user.value.id;
    store
        .update_user("alice", user("alice", own), None)
        .await
        .unwrap();
}

pub(crate) async fn deleting_a_user_removes_it(store: S) {
    store
        .create_users(vec![new_user("alice", Some(5))])
        .await
        .unwrap();
    let removed = store.delete_user("alice").await.unwrap();
    assert_eq!(removed.user.value.username, "alice");
    assert_eq!(store.get_user("alice").await.unwrap(), None);
    assert!(is_not_found(store.delete_user("alice").await));
    // Its id is free for an explicit reuse.
    store
        .create_users(vec![new_user("bob", Some(5))])
        .await
        .unwrap();
}

pub(crate) async fn users_are_created_with_their_roles_sorted_and_deduplicated(store: S) {
    let created = store
        .create_users(vec![
            with_roles("both", vec![Role::Admin, Role::Customer, Role::Admin]),
            with_roles("admin", vec![Role::Admin]),
            with_roles("nobody", Vec::new()),
        ])
        .await
        .unwrap();
    let roles: Vec<_> = created.iter().map(|user| user.roles.clone()).collect();
    assert_eq!(
        roles,
        [
            vec![Role::Customer, Role::Admin],
            vec![Role::Admin],
            Vec::new()
        ]
    );
    for stored in &created {
        assert_user_stored(&store, stored).await;
        // The roles are kept beside the public record, never in it.
        assert!(json_of(&stored.user).get("roles").is_none());
    }

    // A user created again under a deleted user's name gets the new roles only.
    store.delete_user("admin").await.unwrap();
    let again = store
        .create_users(vec![with_roles("admin", vec![Role::Customer])])
        .await
        .unwrap();
    assert_eq!(again[0].roles, [Role::Customer]);
}

pub(crate) async fn updating_a_user_keeps_its_roles(store: S) {
    store
        .create_users(vec![with_roles("alice", vec![Role::Admin])])
        .await
        .unwrap();
    let mut changed = user("alice", None);
    changed.phone = Some("12345".to_owned());
    let updated = store.update_user("alice", changed, None).await.unwrap();
    assert_user_stored(&store, &updated).await;
    assert_eq!(updated.roles, [Role::Admin]);

    let new_password = store
        .update_user("alice", user("alice", None), Some("new-hash".to_owned()))
        .await
        .unwrap();
    assert_eq!(new_password.roles, [Role::Admin]);
    assert_eq!(new_password.password_hash, "new-hash");
}

pub(crate) async fn renaming_a_user_carries_its_roles_along(store: S) {
    store
        .create_users(vec![
            with_roles("alice", vec![Role::Admin, Role::Customer]),
            with_roles("bob", vec![Role::Customer]),
        ])
        .await
        .unwrap();
    let renamed = store
        .update_user("alice", user("carol", None), None)
        .await
        .unwrap();
    assert_user_stored(&store, &renamed).await;
    assert_eq!(renamed.roles, [Role::Customer, Role::Admin]);
    assert_eq!(store.get_user("alice").await.unwrap(), None);

    // The old name is free again, and a user created under it does not inherit the roles.
    let reborn = store
        .create_users(vec![with_roles("alice", vec![Role::Customer])])
        .await
        .unwrap();
    assert_eq!(reborn[0].roles, [Role::Customer]);

    // A failed rename leaves the roles of both users as they were.
    assert!(is_conflict(
        store.update_user("carol", user("bob", None), None).await
    ));
    let carol = store.get_user("carol").await.unwrap().unwrap();
    assert_eq!(carol.roles, [Role::Customer, Role::Admin]);
    let bob = store.get_user("bob").await.unwrap().unwrap();
    assert_eq!(bob.roles, [Role::Customer]);
}

pub(crate) async fn setting_roles_replaces_them_and_keeps_the_rest(store: S) {
    let created = store
        .create_users(vec![new_user("alice", None)])
        .await
        .unwrap();
    let before = &created[0];

    let admin = store
        .set_user_roles("alice", vec![Role::Admin, Role::Customer, Role::Admin])
        .await
        .unwrap();
    assert_user_stored(&store, &admin).await;
    assert_eq!(admin.roles, [Role::Customer, Role::Admin]);
    assert_same_record(&admin.user, &before.user);
    assert!(admin.version() > before.version());
    assert_eq!(admin.password_hash, before.password_hash);

    let none = store.set_user_roles("alice", Vec::new()).await.unwrap();
    assert!(none.roles.is_empty());
    assert_eq!(
        store.get_user("alice").await.unwrap().unwrap().roles,
        Vec::<Role>::new()
    );

    assert!(is_not_found(
        store.set_user_roles("nobody", vec![Role::Admin]).await
    ));
    assert_eq!(store.get_user("nobody").await.unwrap(), None);
    // After a rename, the old name is no one's.
    store
        .update_user("alice", user("carol", None), None)
        .await
        .unwrap();
    assert!(is_not_found(
        store.set_user_roles("alice", vec![Role::Admin]).await
    ));
    assert_eq!(store.get_user("alice").await.unwrap(), None);
}

pub(crate) async fn setting_a_password_hash_replaces_it_and_keeps_the_rest(store: S) {
    let created = store
        .create_users(vec![with_roles("admin", vec![Role::Admin])])
        .await
        .unwrap();
    let before = &created[0];

    let updated = store
        .set_password_hash("admin", "configured-hash".to_owned())
        .await
        .unwrap();
    assert_user_stored(&store, &updated).await;
    assert_eq!(updated.password_hash, "configured-hash");
    assert_same_record(&updated.user, &before.user);
    assert!(updated.version() > before.version());
    assert_eq!(updated.roles, [Role::Admin]);

    assert!(is_not_found(
        store
            .set_password_hash("nobody", "configured-hash".to_owned())
            .await
    ));
    assert_eq!(store.get_user("nobody").await.unwrap(), None);
    store.delete_user("admin").await.unwrap();
    assert!(is_not_found(
        store
            .set_password_hash("admin", "configured-hash".to_owned())
            .await
    ));
}

pub(crate) async fn concurrent_changes_to_one_user_are_all_kept(store: S) {
    const ROUNDS: usize = 100;
    for round in 0..ROUNDS {
        let username = format!("user-{round}");
        store
            .create_users(vec![new_user(&username, None)])
            .await
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(3));
        let roles = {
            let (store, barrier, username) =
                (Arc::clone(&store), Arc::clone(&barrier), username.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.set_user_roles(&username, vec![Role::Admin]).await
            })
        };
        let password = {
            let (store, barrier, username) =
                (Arc::clone(&store), Arc::clone(&barrier), username.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .set_password_hash(&username, "new-hash".to_owned())
                    .await
            })
        };
        let record = {
            let (store, barrier, username) =
                (Arc::clone(&store), Arc::clone(&barrier), username.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut changed = user(&username, None);
                changed.phone = Some("12345".to_owned());
                store.update_user(&username, changed, None).await
            })
        };
        roles.await.unwrap().unwrap();
        password.await.unwrap().unwrap();
        record.await.unwrap().unwrap();

        let stored = store.get_user(&username).await.unwrap().unwrap();
        assert_eq!(stored.roles, [Role::Admin], "round {round}");
        assert_eq!(stored.password_hash, "new-hash", "round {round}");
        assert_eq!(
            stored.user.value.phone.as_deref(),
            Some("12345"),
            "round {round}"
        );
    }
}

// ---- versions ----

/// Asserts that `versions` strictly increase, naming each by its label.
fn assert_increasing(versions: &[(&str, u64)]) {
    for pair in versions.windows(2) {
        let ((before, low), (after, high)) = (pair[0], pair[1]);
        assert!(
            high > low,
            "{after} has version {high}, not above {before}'s {low}: {versions:?}"
        );
    }
}

pub(crate) async fn every_write_takes_a_version_above_every_earlier_one(store: S) {
    let a = store
        .create_pet(pet("a", Some(PetStatus::Available), &["x"]))
        .await
        .unwrap();
    let a_id = a.value.id.unwrap();
    let b = store.create_pet(pet("b", None, &[])).await.unwrap();
    let b_id = b.value.id.unwrap();
    let renamed = store
        .update_pet_fields(a_id, Some("a2".to_owned()), None)
        .await
        .unwrap();
    let replaced = store
        .replace_pet(with_id(pet("b2", Some(PetStatus::Available), &[]), b_id))
        .await
        .unwrap();
    let pictured = store
        .add_pet_image(a_id, new_image(a_id, Uuid::new_v4(), 1), 20)
        .await
        .unwrap();
    let placed = store.place_order(order_for(b_id), CUSTOMER).await.unwrap();
    let users = store
        .create_users(vec![new_user("alice", None)])
        .await
        .unwrap();
    let delivered = deliver(&store, placed.order.value.id.unwrap()).await;
    let roles = store
        .set_user_roles("alice", vec![Role::Admin])
        .await
        .unwrap();
    assert!(a.version > 0, "a written entity has a version");
    assert_increasing(&[
        ("create pet a", a.version),
        ("create pet b", b.version),
        ("update pet a's fields", renamed.version),
        ("replace pet b", replaced.version),
        ("add an image to pet a", pictured.version),
        ("place an order", placed.order.version),
        ("create a user", users[0].version()),
        ("deliver the order", delivered.order.version),
        ("set the user's roles", roles.version()),
    ]);
}

pub(crate) async fn reads_return_the_version_of_the_last_write(store: S) {
    let id = add(&store, pet("a", Some(PetStatus::Available), &["x"])).await;
    let renamed = store
        .update_pet_fields(id, Some("b".to_owned()), None)
        .await
        .unwrap();
    // A write of another entity moves the sequence, not this pet's version.
    add(&store, pet("other", None, &[])).await;
    let read = store.get_pet(id).await.unwrap().unwrap();
    assert_eq!(read.version, renamed.version);
    let found = store
        .find_pets_by_status(&[PetStatus::Available])
        .await
        .unwrap();
    assert_eq!(found[0].version, renamed.version);
    let tagged = store.find_pets_by_tags(&["x".to_owned()]).await.unwrap();
    assert_eq!(tagged[0].version, renamed.version);

    let placed = store.place_order(order_for(id), CUSTOMER).await.unwrap();
    let order_id = placed.order.value.id.unwrap();
    assert_eq!(
        store.get_order(order_id).await.unwrap().unwrap().version,
        placed.order.version
    );
    let (with_owner, _) = store.get_order_with_owner(order_id).await.unwrap().unwrap();
    assert_eq!(with_owner.version, placed.order.version);

    let created = store
        .create_users(vec![new_user("alice", None)])
        .await
        .unwrap();
    let hashed = store
        .set_password_hash("alice", "another-hash".to_owned())
        .await
        .unwrap();
    assert!(hashed.version() > created[0].version());
    let read = store.get_user("alice").await.unwrap().unwrap();
    assert_eq!(read.version(), hashed.version());
}

pub(crate) async fn a_deletion_and_a_re_creation_each_take_a_higher_version(store: S) {
    let id = add(&store, with_id(pet("a", None, &[]), 7)).await;
    let written = store
        .update_pet_fields(id, None, Some(PetStatus::Available))
        .await
        .unwrap();
    let deleted = store.delete_pet(id).await.unwrap();
    assert_same_record(&deleted, &written);
    let recreated = store
        .create_pet(with_id(pet("a again", Some(PetStatus::Available), &[]), id))
        .await
        .unwrap();
    assert_eq!(
        store.get_pet(id).await.unwrap().unwrap().version,
        recreated.version
    );
    assert_increasing(&[
        ("the pet's last write", written.version),
        ("its deletion", deleted.version),
        ("its re-creation", recreated.version),
    ]);

    let mut order = order_for(id);
    order.id = Some(3);
    let placed = store.place_order(order.clone(), CUSTOMER).await.unwrap();
    let cancelled = store.delete_order(3, None).await.unwrap();
    assert_same_record(&cancelled.order, &placed.order);
    let replaced = store.place_order(order, CUSTOMER).await.unwrap();
    assert_increasing(&[
        ("the order's placing", placed.order.version),
        ("its deletion", cancelled.order.version),
        ("its re-creation", replaced.order.version),
    ]);

    let created = store
        .create_users(vec![new_user("alice", Some(5))])
        .await
        .unwrap();
    let removed = store.delete_user("alice").await.unwrap();
    assert_same_record(&removed.user, &created[0].user);
    let again = store
        .create_users(vec![new_user("alice", Some(5))])
        .await
        .unwrap();
    assert_increasing(&[
        ("the user's creation", created[0].version()),
        ("its deletion", removed.version()),
        ("its re-creation", again[0].version()),
    ]);
}

pub(crate) async fn an_order_step_gives_the_order_and_its_pet_one_version(store: S) {
    let id = add(&store, pet("a", Some(PetStatus::Available), &[])).await;
    let placed = store.place_order(order_for(id), CUSTOMER).await.unwrap();
    let reserved = placed.pet.as_ref().unwrap();
    assert_eq!(reserved.version, placed.order.version);
    assert_eq!(
        store.get_pet(id).await.unwrap().unwrap().version,
        placed.order.version
    );
    let delivered = deliver(&store, placed.order.value.id.unwrap()).await;
    let sold = delivered.pet.as_ref().unwrap();
    assert_eq!(sold.version, delivered.order.version);
    assert!(delivered.order.version > placed.order.version);

    // Deleting an undelivered order frees its pet in the same step, at the deletion's version.
    let other = add(&store, pet("b", Some(PetStatus::Available), &[])).await;
    let held = store.place_order(order_for(other), CUSTOMER).await.unwrap();
    let cancelled = store
        .delete_order(held.order.value.id.unwrap(), None)
        .await
        .unwrap();
    let freed = cancelled.pet.as_ref().unwrap();
    assert_eq!(freed.value.status, Some(PetStatus::Available));
    assert_eq!(freed.version, cancelled.order.version);
    assert!(cancelled.order.version > held.order.version);
    assert_eq!(
        store.get_pet(other).await.unwrap().unwrap().version,
        cancelled.order.version
    );
}

pub(crate) async fn user_writes_take_higher_versions_and_a_list_shares_one(store: S) {
    let created = store
        .create_users(vec![new_user("alice", None), new_user("bob", None)])
        .await
        .unwrap();
    assert_eq!(created[0].version(), created[1].version());
    let updated = store
        .update_user("alice", user("alice", None), None)
        .await
        .unwrap();
    let roles = store
        .set_user_roles("alice", vec![Role::Admin])
        .await
        .unwrap();
    let hashed = store
        .set_password_hash("alice", "new-hash".to_owned())
        .await
        .unwrap();
    let renamed = store
        .update_user("alice", user("carol", None), None)
        .await
        .unwrap();
    assert_increasing(&[
        ("create the list", created[0].version()),
        ("update the record", updated.version()),
        ("set the roles", roles.version()),
        ("set the password hash", hashed.version()),
        ("rename", renamed.version()),
    ]);
    assert_eq!(
        store.get_user("carol").await.unwrap().unwrap().version(),
        renamed.version()
    );
}

pub(crate) async fn concurrent_writes_to_one_pet_take_versions_in_commit_order(store: S) {
    const TASKS: usize = 8;
    const WRITES_PER_TASK: usize = 5;
    let id = add(&store, pet("start", Some(PetStatus::Available), &[])).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::with_capacity(TASKS);
    for task in 0..TASKS {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut written = Vec::with_capacity(WRITES_PER_TASK);
            for write in 0..WRITES_PER_TASK {
                let name = format!("task {task} write {write}");
                let stored = store
                    .update_pet_fields(id, Some(name.clone()), None)
                    .await
                    .unwrap();
                assert_eq!(stored.value.name, name);
                // Whatever commits after this write, a read never goes back before it.
                let read = store.get_pet(id).await.unwrap().unwrap();
                assert!(
                    read.version >= stored.version,
                    "read version {} after writing version {}",
                    read.version,
                    stored.version
                );
                written.push((stored.version, name));
            }
            written
        }));
    }
    let mut written = Vec::with_capacity(TASKS * WRITES_PER_TASK);
    for task in tasks {
        written.extend(task.await.unwrap());
    }
    written.sort_unstable();
    let distinct: std::collections::HashSet<u64> =
        written.iter().map(|(version, _)| *version).collect();
    assert_eq!(distinct.len(), written.len(), "versions handed out twice");

    // The write with the highest version is the one the store kept.
    let last = written.last().unwrap();
    let stored = store.get_pet(id).await.unwrap().unwrap();
    assert_eq!((stored.version, &stored.value.name), (last.0, &last.1));
}
