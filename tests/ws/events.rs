//! Notifications: writes made over REST or over a WebSocket reach the WebSocket connections
//! that follow them, as `asyncapi.yaml` describes.
//!
//! - topics `pets` and `pet:{id}` (pet.created / pet.updated / pet.deleted), `inventory`
//!   (inventory.changed), `orders` and `order:{id}` (order.placed / order.updated /
//!   order.deleted), each authorized when subscribed;
//! - user.updated / user.deleted to the connections of that user, without a subscription;
//! - `unsubscribe`, and the refusals of `subscribe`.
//!
//! "Not delivered" is never asserted by waiting: a connection's notifications arrive in the
//! order their events happened, so after the write that must not reach it a test makes a second
//! write that must, and asserts that the next notification is the second one.

use std::{sync::LazyLock, time::Duration};

use petstore_api::{
    Topic,
    models::Pet,
    models::{PetStatus, User},
    operations::{AddPetRequest, DeletePetRequest, UpdatePetWithFormRequest, UpdateUserRequest},
    ws::Action,
};
use petstore_client::{ClientError, ClientOptions, Notification, Notifications, Reply, WsClient};
use petstore_testkit::app::*;
use petstore_ws::{auth::tokens::generate_ephemeral_key_pem, config::Secret};
use reqwest::Response;
use serde::Serialize;
use serde_json::{Value, json};

/// The administrator account of the test servers.
const ADMIN_USER: &str = "events-admin";
const ADMIN_PASSWORD: &str = "events-admin-password";

/// The password of every customer.
const PASSWORD: &str = "correct-horse-battery";

/// Hang guard for one step; it measures nothing.
const HANG_GUARD: Duration = Duration::from_secs(20);

async fn guarded<F: std::future::Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(HANG_GUARD, future).await {
        Ok(output) => output,
        Err(_) => panic!("hung: {what}"),
    }
}

/// One signing key for every server of this suite (generating one per server is slow).
static SIGNING_KEY: LazyLock<String> = LazyLock::new(|| match generate_ephemeral_key_pem() {
    Ok(pem) => pem,
    Err(error) => panic!("cannot generate the signing key: {error}"),
});

/// A server with the administrator [`ADMIN_USER`], room for `connections` WebSocket
/// connections from this host, and no message rate limit.
async fn spawn_events_app(connections: u32) -> TestApp {
    spawn_events_app_with(connections, |_| {}).await
}

/// [`spawn_events_app`], with the rest of the configuration as `tweak` leaves it.
async fn spawn_events_app_with(
    connections: u32,
    tweak: impl FnOnce(&mut petstore_ws::config::Config) + Send + 'static,
) -> TestApp {
    let key_file =
        std::env::temp_dir().join(format!("petstore-ws-events-{}.pem", uuid::Uuid::new_v4()));
    if let Err(error) = std::fs::write(&key_file, SIGNING_KEY.as_bytes()) {
        panic!("cannot write {}: {error}", key_file.display());
    }
    let configured = key_file.clone();
    let app = spawn_app(move |config| {
        config.jwt_private_key = Some(configured);
        config.admin_user = Some(ADMIN_USER.to_owned());
        config.admin_password = Some(match ADMIN_PASSWORD.parse::<Secret>() {
            Ok(secret) => secret,
            Err(never) => match never {},
        });
        config.ws_max_connections_per_ip = connections;
        config.ws_messages_per_minute = std::num::NonZeroU32::MAX;
        config.ws_message_burst = std::num::NonZeroU32::MAX;
        tweak(config);
    })
    .await;
    if let Err(error) = std::fs::remove_file(&key_file) {
        panic!("cannot remove {}: {error}", key_file.display());
    }
    app
}

// ---- helpers ----

fn ws_url(app: &TestApp) -> String {
    format!("ws://{}/api/v3/ws", app.addr)
}

/// A connection authenticated with `token` on the upgrade, or anonymous.
async fn connect(app: &TestApp, token: Option<&str>) -> WsClient {
    let options = match token {
        Some(token) => ClientOptions::default().bearer_token(token),
        None => ClientOptions::default(),
    };
    match guarded(
        "the WebSocket upgrade",
        WsClient::connect(&ws_url(app), options),
    )
    .await
    {
        Ok(client) => client,
        Err(error) => panic!("the WebSocket upgrade failed: {error}"),
    }
}

/// A connection and a receiver of its notifications.
async fn listener(app: &TestApp, token: &str) -> (WsClient, Notifications) {
    let client = connect(app, Some(token)).await;
    let notifications = client.notifications();
    (client, notifications)
}

/// The administrator's access token.
async fn admin_token(app: &TestApp) -> String {
    app.create_token(ADMIN_USER, ADMIN_PASSWORD).await.0
}

/// Creates customer `username` and returns an access token of theirs.
async fn customer(app: &TestApp, username: &str) -> String {
    app.create_user(username, PASSWORD).await;
    app.create_token(username, PASSWORD).await.0
}

/// A call that must succeed; returns what it answered.
async fn answered<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, ClientError>>,
) -> T {
    match guarded(what, call).await {
        Ok(answer) => answer,
        Err(error) => panic!("{what}: no success: {error}"),
    }
}

/// Subscribes to `topics`, which must be accepted; returns the topics the session follows.
async fn subscribe(client: &WsClient, topics: &[Topic]) -> Vec<Topic> {
    answered(&format!("subscribe {topics:?}"), client.subscribe(topics)).await
}

/// A typed call that must be refused: error `code` with `status`.
async fn refused<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, ClientError>>,
    code: &str,
    status: u16,
) {
    match guarded(what, call).await {
        Err(ClientError::Api(error)) => {
            assert_eq!(
                (error.code.as_str(), error.status),
                (code, status),
                "{what}: {error:?}"
            );
            assert!(
                !error.message.is_empty(),
                "{what}: an error without a message"
            );
        }
        other => panic!("{what}: expected {code}, got {other:?}"),
    }
}

/// Asserts a refused raw request: error `code` with `status`.
fn assert_refused(reply: &Reply, code: &str, status: u16, what: &str) {
    match reply {
        Reply::Error(error) => {
            assert_eq!(
                (error.code.as_str(), error.status),
                (code, status),
                "{what}: {reply:?}"
            );
            assert!(
                !error.message.is_empty(),
                "{what}: an error without a message"
            );
        }
        Reply::Success(_) => panic!("{what}: expected {code}, got {reply:?}"),
    }
}

/// A typed answer as the JSON a notification carries.
fn json_of(value: &impl Serialize) -> Value {
    match serde_json::to_value(value) {
        Ok(json) => json,
        Err(error) => panic!("cannot render {error}"),
    }
}

/// The next notification.
async fn next(notifications: &mut Notifications, what: &str) -> Notification {
    match guarded(what, notifications.recv()).await {
        Some(notification) => notification,
        None => panic!("{what}: the connection closed"),
    }
}

/// Asserts that the next notification is `event` with `payload`.
async fn expect_event(notifications: &mut Notifications, event: &str, payload: &Value) {
    let notification = next(notifications, &format!("waiting for {event}")).await;
    assert_eq!(
        (notification.event.as_str(), &notification.payload),
        (event, payload),
        "expected {event} with {payload}, got {notification:?}"
    );
    assert!(
        notification
            .correlation_id
            .as_deref()
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()),
        "a notification without a UUID correlationId: {notification:?}"
    );
    assert!(
        notification.timestamp.is_some(),
        "no timestamp: {notification:?}"
    );
}

/// Asserts that `notifications` received nothing it was not expected to.
fn assert_nothing_more(notifications: &mut Notifications, who: &str) {
    if let Some(extra) = notifications.try_recv() {
        panic!("{who} received an extra notification: {extra:?}");
    }
    assert_eq!(notifications.missed(), 0, "{who} missed notifications");
}

/// The JSON body of a successful REST response.
async fn ok(response: Response) -> Value {
    ok_json(response).await
}

/// `updatePetWithForm` over REST (`path` carries the query); returns the pet as stored.
async fn form(app: &TestApp, path: &str) -> Value {
    ok_json(app.send_raw(reqwest::Method::POST, path, None, "").await).await
}

/// A REST request with a customer's bearer token.
fn as_user(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> reqwest::RequestBuilder {
    bearer(app.anonymous.request(method, app.api(path)), token)
}

// ---- pets ----

#[tokio::test]
async fn pet_events_follow_rest_and_websocket_writes() {
    let app = spawn_events_app(10).await;
    let alice = customer(&app, "alice").await;
    let admin = admin_token(&app).await;
    let (subscriber, mut events) = listener(&app, &alice).await;
    assert_eq!(subscribe(&subscriber, &[Topic::Pets]).await, [Topic::Pets]);

    // Over REST.
    let created = app
        .add_pet(json!({
            "name": "rex", "photoUrls": [], "tags": [{ "name": "friendly" }]
        }))
        .await;
    let id = id_of(&created);
    expect_event(&mut events, "pet.created", &created).await;
    let updated = ok(app
        .put_json(
            "/pet",
            &json!({ "id": id, "name": "rex", "photoUrls": [], "status": "sold" }),
        )
        .await)
    .await;
    expect_event(&mut events, "pet.updated", &updated).await;
    let renamed = form(&app, &format!("/pet/{id}?name=rexie")).await;
    assert_eq!(renamed["name"], "rexie");
    expect_event(&mut events, "pet.updated", &renamed).await;
    ok_text(app.delete(&format!("/pet/{id}")).await).await;
    expect_event(&mut events, "pet.deleted", &json!({ "id": id })).await;

    // Over another WebSocket connection.
    let writer = connect(&app, Some(&admin)).await;
    let tom = Pet {
        id: None,
        name: "tom".to_owned(),
        category: None,
        photo_urls: Vec::new(),
        tags: None,
        status: None,
    };
    let created = answered("addPet", writer.add_pet(AddPetRequest { body: tom })).await;
    let Some(id) = created.id else {
        panic!("addPet answered a pet without an id: {created:?}");
    };
    expect_event(&mut events, "pet.created", &json_of(&created)).await;
    let form = UpdatePetWithFormRequest {
        pet_id: id,
        name: None,
        status: Some(PetStatus::Pending),
    };
    let updated = answered("updatePetWithForm", writer.update_pet_with_form(form)).await;
    assert_eq!(updated.status, Some(PetStatus::Pending));
    expect_event(&mut events, "pet.updated", &json_of(&updated)).await;
    let deleted: () = answered(
        "deletePet",
        writer.delete_pet(DeletePetRequest { pet_id: id }),
    )
    .await;
    assert_eq!(json_of(&deleted), Value::Null);
    expect_event(&mut events, "pet.deleted", &json!({ "id": id })).await;

    // The writer follows nothing, so it heard none of it.
    let mut writer_events = writer.notifications();
    assert_nothing_more(&mut writer_events, "the writer");
    assert_nothing_more(&mut events, "the subscriber");
    writer.close().await;
    subscriber.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_pet_topic_carries_only_that_pets_events() {
    let app = spawn_events_app(10).await;
    let alice = customer(&app, "alice").await;
    let followed = app.add_available_pet("followed").await;
    let other = app.add_available_pet("other").await;
    let (subscriber, mut events) = listener(&app, &alice).await;
    assert_eq!(
        subscribe(&subscriber, &[Topic::Pet(followed)]).await,
        [Topic::Pet(followed)]
    );

    // Another pet's update, a new pet, then the followed pet's update: only the last arrives.
    form(&app, &format!("/pet/{other}?name=other2")).await;
    app.add_available_pet("newcomer").await;
    let updated = form(&app, &format!("/pet/{followed}?name=followed2")).await;
    expect_event(&mut events, "pet.updated", &updated).await;

    // Another pet's deletion, then the followed pet's.
    ok_text(app.delete(&format!("/pet/{other}")).await).await;
    ok_text(app.delete(&format!("/pet/{followed}")).await).await;
    expect_event(&mut events, "pet.deleted", &json!({ "id": followed })).await;
    assert_nothing_more(&mut events, "the subscriber");
    subscriber.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn following_pets_and_one_pet_delivers_each_event_once() {
    let app = spawn_events_app(10).await;
    let alice = customer(&app, "alice").await;
    let pet = app.add_available_pet("twice").await;
    let (subscriber, mut events) = listener(&app, &alice).await;
    let topic = Topic::Pet(pet);
    let topics = subscribe(&subscriber, &[Topic::Pets, topic.clone()]).await;
    assert_eq!(topics, [Topic::Pets, topic]);

    let updated = form(&app, &format!("/pet/{pet}?status=sold")).await;
    expect_event(&mut events, "pet.updated", &updated).await;
    // Had the update come twice, its copy would be next, not the new pet.
    let marker = app.add_pet(new_pet("marker")).await;
    expect_event(&mut events, "pet.created", &marker).await;
    ok_text(app.delete(&format!("/pet/{pet}")).await).await;
    expect_event(&mut events, "pet.deleted", &json!({ "id": pet })).await;
    let marker = app.add_pet(new_pet("marker2")).await;
    expect_event(&mut events, "pet.created", &marker).await;
    assert_nothing_more(&mut events, "the subscriber");
    subscriber.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_order_step_updates_its_pet_for_pet_followers() {
    let app = spawn_events_app(10).await;
    let alice = customer(&app, "alice").await;
    let pet = app.add_available_pet("reserved").await;
    let (subscriber, mut events) = listener(&app, &alice).await;
    subscribe(&subscriber, &[Topic::Pet(pet)]).await;
    let order = ok(as_user(&app, reqwest::Method::POST, "/store/order", &alice)
        .json(&json!({ "petId": pet, "quantity": 1 }))
        .send()
        .await
        .unwrap_or_else(|error| panic!("placeOrder: {error}")))
    .await;
    assert_eq!(order["petId"], pet);
    expect_event(&mut events, "pet.updated", &app.pet(pet).await).await;
    subscriber.close().await;
    app.shutdown().await;
}

// ---- inventory ----

#[tokio::test]
async fn inventory_followers_get_the_counts_get_inventory_answers() {
    let app = spawn_events_app(10).await;
    let admin = admin_token(&app).await;
    let alice = customer(&app, "alice").await;
    let (subscriber, mut events) = listener(&app, &admin).await;
    assert_eq!(
        subscribe(&subscriber, &[Topic::Inventory]).await,
        [Topic::Inventory]
    );

    let pet = app.add_available_pet("counted").await;
    let inventory = ok(app.get("/store/inventory").await).await;
    assert_eq!(inventory["available"], 1, "{inventory}");
    expect_event(&mut events, "inventory.changed", &inventory).await;

    // An order reserves the pet: the counts move from available to pending.
    ok(as_user(&app, reqwest::Method::POST, "/store/order", &alice)
        .json(&json!({ "petId": pet }))
        .send()
        .await
        .unwrap_or_else(|error| panic!("placeOrder: {error}")))
    .await;
    let inventory = ok(app.get("/store/inventory").await).await;
    assert_eq!(inventory["pending"], 1, "{inventory}");
    expect_event(&mut events, "inventory.changed", &inventory).await;

    ok_text(app.delete(&format!("/pet/{pet}")).await).await;
    let inventory = ok(app.get("/store/inventory").await).await;
    expect_event(&mut events, "inventory.changed", &inventory).await;

    // A customer lacks `inventory:read`.
    let customer_client = connect(&app, Some(&alice)).await;
    refused(
        "a customer following the inventory",
        customer_client.subscribe(&[Topic::Inventory]),
        "FORBIDDEN",
        403,
    )
    .await;
    customer_client.close().await;
    subscriber.close().await;
    app.shutdown().await;
}

// ---- orders ----

#[tokio::test]
async fn the_orders_topic_is_for_administrators() {
    let app = spawn_events_app(10).await;
    let admin = admin_token(&app).await;
    let alice = customer(&app, "alice").await;
    let pet = app.add_available_pet("ordered").await;

    let customer_client = connect(&app, Some(&alice)).await;
    refused(
        "a customer following every order",
        customer_client.subscribe(&[Topic::Orders]),
        "FORBIDDEN",
        403,
    )
    .await;
    // The refusal is whole: a permitted topic asked for with it is not followed either.
    refused(
        "pets with orders",
        customer_client.subscribe(&[Topic::Pets, Topic::Orders]),
        "FORBIDDEN",
        403,
    )
    .await;
    let topics = answered("unsubscribe", customer_client.unsubscribe(&[Topic::Pets])).await;
    assert_eq!(topics, []);

    let (subscriber, mut events) = listener(&app, &admin).await;
    assert_eq!(
        subscribe(&subscriber, &[Topic::Orders]).await,
        [Topic::Orders]
    );

    let placed = ok(as_user(&app, reqwest::Method::POST, "/store/order", &alice)
        .json(&json!({ "petId": pet, "quantity": 2 }))
        .send()
        .await
        .unwrap_or_else(|error| panic!("placeOrder: {error}")))
    .await;
    let order = id_of(&placed);
    expect_event(&mut events, "order.placed", &placed).await;
    let approved = ok(app
        .put_json(
            &format!("/store/order/{order}"),
            &json!({ "petId": pet, "status": "approved" }),
        )
        .await)
    .await;
    expect_event(&mut events, "order.updated", &approved).await;
    ok_text(
        as_user(
            &app,
            reqwest::Method::DELETE,
            &format!("/store/order/{order}"),
            &alice,
        )
        .send()
        .await
        .unwrap_or_else(|error| panic!("deleteOrder: {error}")),
    )
    .await;
    expect_event(&mut events, "order.deleted", &json!({ "id": order })).await;
    assert_nothing_more(&mut events, "the administrator");
    customer_client.close().await;
    subscriber.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn customers_follow_their_own_orders_only() {
    let app = spawn_events_app(10).await;
    let alice = customer(&app, "alice").await;
    let bob = customer(&app, "bob").await;
    let pets = [
        app.add_available_pet("a").await,
        app.add_available_pet("b").await,
    ];
    let place = |token: &str, pet: i64| {
        let request = as_user(&app, reqwest::Method::POST, "/store/order", token)
            .json(&json!({ "petId": pet }));
        async move { id_of(&ok(send(request).await).await) }
    };
    let own = place(&alice, pets[0]).await;
    let others = place(&bob, pets[1]).await;

    let (subscriber, mut events) = listener(&app, &alice).await;
    refused(
        "someone else's order",
        subscriber.subscribe(&[Topic::Order(others)]),
        "FORBIDDEN",
        403,
    )
    .await;
    refused(
        "an order that does not exist",
        subscriber.subscribe(&[Topic::Order(999)]),
        "NOT_FOUND",
        404,
    )
    .await;
    assert_eq!(
        subscribe(&subscriber, &[Topic::Order(own)]).await,
        [Topic::Order(own)]
    );

    // bob's order changes, then alice's: only alice's arrives.
    ok(app
        .put_json(
            &format!("/store/order/{others}"),
            &json!({ "petId": pets[1], "status": "approved" }),
        )
        .await)
    .await;
    let approved = ok(app
        .put_json(
            &format!("/store/order/{own}"),
            &json!({ "petId": pets[0], "status": "approved" }),
        )
        .await)
    .await;
    expect_event(&mut events, "order.updated", &approved).await;
    ok_text(app.delete(&format!("/store/order/{others}")).await).await;
    ok_text(
        as_user(
            &app,
            reqwest::Method::DELETE,
            &format!("/store/order/{own}"),
            &alice,
        )
        .send()
        .await
        .unwrap_or_else(|error| panic!("deleteOrder: {error}")),
    )
    .await;
    expect_event(&mut events, "order.deleted", &json!({ "id": own })).await;
    assert_nothing_more(&mut events, "alice");
    subscriber.close().await;
    app.shutdown().await;
}

// ---- accounts ----

#[tokio::test]
async fn account_events_reach_only_that_users_connections() {
    let app = spawn_events_app(10).await;
    let alice = customer(&app, "alice").await;
    let bob = customer(&app, "bob").await;
    let admin = admin_token(&app).await;
    // Two connections of alice, one of bob, one of the administrator; none subscribes.
    let (alice_one, mut alice_one_events) = listener(&app, &alice).await;
    let (alice_two, mut alice_two_events) = listener(&app, &alice).await;
    let (bob_client, mut bob_events) = listener(&app, &bob).await;
    let (admin_client, mut admin_events) = listener(&app, &admin).await;

    ok_text(
        app.put_json(
            "/user/alice",
            &json!({ "username": "alice", "firstName": "Alice", "email": "alice@example.org" }),
        )
        .await,
    )
    .await;
    let alice_now = ok(app.get("/user/alice").await).await;
    assert!(alice_now.get("password").is_none(), "{alice_now}");
    expect_event(&mut alice_one_events, "user.updated", &alice_now).await;
    expect_event(&mut alice_two_events, "user.updated", &alice_now).await;

    // bob's own update is the first thing bob hears: alice's did not reach him.
    ok_text(
        app.put_json(
            "/user/bob",
            &json!({ "username": "bob", "lastName": "Builder" }),
        )
        .await,
    )
    .await;
    let bob_now = ok(app.get("/user/bob").await).await;
    expect_event(&mut bob_events, "user.updated", &bob_now).await;

    // alice updates herself over her own WebSocket.
    let alice_phone = User {
        id: None,
        username: "alice".to_owned(),
        first_name: None,
        last_name: None,
        email: None,
        password: None,
        phone: Some("555-0199".to_owned()),
        user_status: None,
    };
    let update = UpdateUserRequest {
        username: "alice".to_owned(),
        body: alice_phone,
    };
    let updated: () = answered("updateUser", alice_one.update_user(update)).await;
    assert_eq!(json_of(&updated), Value::Null);
    let alice_now = ok(app.get("/user/alice").await).await;
    expect_event(&mut alice_one_events, "user.updated", &alice_now).await;
    expect_event(&mut alice_two_events, "user.updated", &alice_now).await;

    ok_text(app.delete("/user/alice").await).await;
    let deleted = json!({ "username": "alice" });
    expect_event(&mut alice_one_events, "user.deleted", &deleted).await;
    expect_event(&mut alice_two_events, "user.deleted", &deleted).await;
    ok_text(app.delete("/user/bob").await).await;
    expect_event(
        &mut bob_events,
        "user.deleted",
        &json!({ "username": "bob" }),
    )
    .await;

    // The administrator's own connection heard none of it.
    assert_nothing_more(&mut admin_events, "the administrator");
    assert_nothing_more(&mut bob_events, "bob");
    for client in [alice_one, alice_two, bob_client, admin_client] {
        client.close().await;
    }
    app.shutdown().await;
}

// ---- subscriptions ----

#[tokio::test]
async fn unsubscribing_stops_delivery() {
    let app = spawn_events_app(10).await;
    let alice = customer(&app, "alice").await;
    let marker = app.add_available_pet("marker").await;
    let (subscriber, mut events) = listener(&app, &alice).await;
    let marker_topic = Topic::Pet(marker);
    subscribe(&subscriber, &[Topic::Pets, marker_topic.clone()]).await;
    let created = app.add_pet(new_pet("heard")).await;
    expect_event(&mut events, "pet.created", &created).await;

    let topics = answered("unsubscribe", subscriber.unsubscribe(&[Topic::Pets])).await;
    assert_eq!(topics, [Topic::Pet(marker)]);
    app.add_pet(new_pet("unheard")).await;
    ok_text(app.delete(&format!("/pet/{}", id_of(&created))).await).await;
    let updated = form(&app, &format!("/pet/{marker}?name=marker2")).await;
    expect_event(&mut events, "pet.updated", &updated).await;

    // Unsubscribing from what the session does not follow is no error.
    let topics = answered(
        "unsubscribe",
        subscriber.unsubscribe(&[Topic::Inventory, marker_topic]),
    )
    .await;
    assert_eq!(topics, []);
    ok_text(app.delete(&format!("/pet/{marker}")).await).await;
    // Following pets again: the next event is the new pet, not the deletion above.
    subscribe(&subscriber, &[Topic::Pets]).await;
    let created = app.add_pet(new_pet("heard again")).await;
    expect_event(&mut events, "pet.created", &created).await;
    assert_nothing_more(&mut events, "the subscriber");
    subscriber.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn subscribing_needs_an_authenticated_session() {
    let app = spawn_events_app(10).await;
    let alice = customer(&app, "alice").await;
    let client = connect(&app, None).await;
    refused(
        "an anonymous subscription",
        client.subscribe(&[Topic::Pets]),
        "UNAUTHORIZED",
        401,
    )
    .await;
    refused(
        "an anonymous subscription",
        client.subscribe(&[Topic::Pet(1)]),
        "UNAUTHORIZED",
        401,
    )
    .await;

    // Once authenticated on the same connection, the same subscription is accepted.
    answered("authenticate", client.authenticate(&alice)).await;
    let mut events = client.notifications();
    assert_eq!(subscribe(&client, &[Topic::Pets]).await, [Topic::Pets]);
    let created = app.add_pet(new_pet("seen")).await;
    expect_event(&mut events, "pet.created", &created).await;
    client.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn bad_topic_names_are_refused() {
    let app = spawn_events_app(10).await;
    let alice = customer(&app, "alice").await;
    let client = connect(&app, Some(&alice)).await;
    let mut events = client.notifications();
    for topic in [
        "",
        "pet",
        "pet:",
        "pet:abc",
        "pet:05",
        "pet:+5",
        "pet:1.5",
        "pet: 5",
        "PETS",
        "pets ",
        "order:",
        "order:x",
        "orders:1",
        "inventory:1",
        "users",
        "user:alice",
    ] {
        // Not a topic at all, so not a `Topic`: sent as text.
        let payload = json!({ "topics": [topic] });
        let refused = answered("subscribe", client.raw().call(Action::Subscribe, payload)).await;
        assert_refused(&refused, "BAD_REQUEST", 400, &format!("topic {topic:?}"));
    }
    for payload in [
        json!({}),
        json!({ "topics": [] }),
        json!({ "topics": "pets" }),
        json!({ "topics": [5] }),
        json!({ "topics": ["pets"], "extra": true }),
        json!({ "topics": (0..51).map(|id| format!("pet:{}", id + 1)).collect::<Vec<_>>() }),
        json!(["pets"]),
    ] {
        let refused = answered(
            "subscribe",
            client.raw().call(Action::Subscribe, payload.clone()),
        )
        .await;
        assert_refused(&refused, "BAD_REQUEST", 400, &format!("payload {payload}"));
        let refused = answered(
            "unsubscribe",
            client.raw().call(Action::Unsubscribe, payload.clone()),
        )
        .await;
        assert_refused(
            &refused,
            "BAD_REQUEST",
            400,
            &format!("unsubscribe {payload}"),
        );
    }
    // A bad name refuses the whole request: `pets`, asked for with it, is not followed.
    let payload = json!({ "topics": ["pets", "petz"] });
    let refused = answered("subscribe", client.raw().call(Action::Subscribe, payload)).await;
    assert_refused(&refused, "BAD_REQUEST", 400, "pets with petz");
    let marker = app.add_available_pet("marker").await;
    subscribe(&client, &[Topic::Pet(marker)]).await;
    let updated = form(&app, &format!("/pet/{marker}?name=m2")).await;
    expect_event(&mut events, "pet.updated", &updated).await;
    assert_nothing_more(&mut events, "the client");
    client.close().await;
    app.shutdown().await;
}

/// Pet ids start at 1 (`EntityId`), and `asyncapi.yaml` allows only `pet:{1..}` and
/// `order:{1..}`: a topic for id 0 or a negative id names nothing that can exist.
#[tokio::test]
async fn topics_for_ids_below_one_are_refused() {
    let app = spawn_events_app(10).await;
    let alice = customer(&app, "alice").await;
    let admin = admin_token(&app).await;
    let mut accepted = Vec::new();
    for (who, token) in [("a customer", &alice), ("the administrator", &admin)] {
        let client = connect(&app, Some(token)).await;
        for topic in [
            Topic::Pet(0),
            Topic::Pet(-1),
            Topic::Order(0),
            Topic::Order(-7),
        ] {
            let outcome =
                guarded("subscribe", client.subscribe(std::slice::from_ref(&topic))).await;
            if outcome
                .as_ref()
                .err()
                .and_then(ClientError::api)
                .map(|error| error.code.as_str())
                != Some("BAD_REQUEST")
            {
                accepted.push(format!("{who}, {topic}: {outcome:?}"));
            }
        }
        client.close().await;
    }
    assert!(
        accepted.is_empty(),
        "topics outside `asyncapi.yaml`'s pattern were not refused with BAD_REQUEST:\n{}",
        accepted.join("\n")
    );
    app.shutdown().await;
}

// ---- fan-out ----

#[tokio::test]
async fn fifty_subscribers_each_get_an_event_exactly_once() {
    const SUBSCRIBERS: usize = 50;
    let app = spawn_events_app(SUBSCRIBERS as u32 + 5).await;
    let alice = customer(&app, "alice").await;
    let mut listeners = Vec::with_capacity(SUBSCRIBERS);
    for _ in 0..SUBSCRIBERS {
        let (client, events) = listener(&app, &alice).await;
        assert_eq!(subscribe(&client, &[Topic::Pets]).await, [Topic::Pets]);
        listeners.push((client, events));
    }
    let created = app.add_pet(new_pet("famous")).await;
    let marker = app.add_pet(new_pet("marker")).await;
    let mut correlation_ids = std::collections::BTreeSet::new();
    for (_, events) in &mut listeners {
        let first = next(events, "the event").await;
        assert_eq!(
            (first.event.as_str(), &first.payload),
            ("pet.created", &created),
            "{first:?}"
        );
        correlation_ids.insert(first.correlation_id.clone());
        // A second copy of the event would come before the marker.
        expect_event(events, "pet.created", &marker).await;
        assert_nothing_more(events, "a subscriber");
    }
    // One event, one id, the same on every connection.
    assert_eq!(correlation_ids.len(), 1, "{correlation_ids:?}");
    for (client, _) in listeners {
        client.close().await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_session_follows_at_most_a_hundred_topics() {
    let app = spawn_events_app(4).await;
    let token = admin_token(&app).await;
    let (client, _notifications) = listener(&app, &token).await;
    let first: Vec<Topic> = (1..=50).map(Topic::Pet).collect();
    let second: Vec<Topic> = (51..=100).map(Topic::Pet).collect();
    for (batch, following) in [(&first, 50), (&second, 100)] {
        let listed = subscribe(&client, batch).await;
        assert_eq!(listed.len(), following);
    }
    // Topics already followed do not count again; one more does.
    let again = subscribe(&client, &[Topic::Pet(1), Topic::Pet(100)]).await;
    assert_eq!(again.len(), 100);
    refused(
        "a 101st topic",
        client.subscribe(&[Topic::Pets]),
        "BAD_REQUEST",
        400,
    )
    .await;
    app.shutdown().await;
}

// ---- positions and recovery ----

/// `subscribe` as sent, with the answer's success payload (or the error reply).
async fn subscribe_raw(client: &WsClient, payload: Value) -> Reply {
    answered("subscribe", client.raw().call(Action::Subscribe, payload)).await
}

/// The position the answer of a `subscribe` gives `topic`.
fn position_in(reply: &Reply, topic: &str) -> Value {
    let Reply::Success(answer) = reply else {
        panic!("subscribe refused: {reply:?}");
    };
    answer["positions"]
        .as_array()
        .and_then(|positions| positions.iter().find(|position| position["topic"] == topic))
        .cloned()
        .unwrap_or_else(|| panic!("no position for {topic} in {answer}"))
}

/// A new pet named `name`, through REST.
async fn add_named_pet(app: &TestApp, name: &str) -> i64 {
    let pet = app
        .add_pet(json!({ "name": name, "photoUrls": ["https://example.com/p.jpg"] }))
        .await;
    pet["id"].as_i64().expect("an id")
}

#[tokio::test]
async fn a_client_that_resumes_gets_what_it_missed_in_order_then_live_events() {
    let app = spawn_events_app(10).await;
    let token = admin_token(&app).await;
    let (first, mut seen) = listener(&app, &token).await;
    let answer = subscribe_raw(&first, json!({ "topics": ["pets"] })).await;
    let start = position_in(&answer, "pets");
    let epoch = start["epoch"].as_str().expect("an epoch").to_owned();
    add_named_pet(&app, "before").await;
    let before = next(&mut seen, "the event seen before disconnecting").await;
    let last_seen = before.positions["pets"];
    assert_eq!(last_seen, start["offset"].as_u64().expect("an offset") + 1);
    assert_eq!(before.epoch.as_deref(), Some(epoch.as_str()));
    drop((first, seen));

    // Missed while disconnected.
    let mut missed = Vec::new();
    for n in 0..3 {
        missed.push(add_named_pet(&app, &format!("missed-{n}")).await);
    }

    let (second, mut resumed) = listener(&app, &token).await;
    let answer = subscribe_raw(
        &second,
        json!({ "topics": ["pets"], "since": [{ "topic": "pets", "offset": last_seen, "epoch": epoch }] }),
    )
    .await;
    let position = position_in(&answer, "pets");
    assert_eq!(position["recovered"], true, "{position}");
    assert_eq!(position["replayed"], 3);
    assert_eq!(position["offset"], last_seen + 3);
    for (n, id) in missed.iter().enumerate() {
        let event = next(&mut resumed, "a replayed event").await;
        assert_eq!(event.event, "pet.created");
        assert_eq!(event.payload["id"], *id);
        assert_eq!(event.positions["pets"], last_seen + 1 + n as u64);
    }
    let live = add_named_pet(&app, "live").await;
    let event = next(&mut resumed, "the live event after the replay").await;
    assert_eq!(event.payload["id"], live, "no replayed event twice, no gap");
    assert_eq!(event.positions["pets"], last_seen + 4);
}

#[tokio::test]
async fn a_client_that_missed_more_than_the_history_keeps_is_told_too_old() {
    let app = spawn_events_app_with(10, |config| config.event_history_length = 2).await;
    let token = admin_token(&app).await;
    let (client, _) = listener(&app, &token).await;
    let answer = subscribe_raw(&client, json!({ "topics": ["pets"] })).await;
    let start = position_in(&answer, "pets");
    for n in 0..5 {
        add_named_pet(&app, &format!("p{n}")).await;
    }
    let answer = subscribe_raw(
        &client,
        json!({ "topics": ["pets"], "since": [{
            "topic": "pets", "offset": start["offset"], "epoch": start["epoch"] }] }),
    )
    .await;
    let position = position_in(&answer, "pets");
    assert_eq!(position["recovered"], false, "{position}");
    assert_eq!(position["reason"], "too_old");
    assert_eq!(
        position["offset"],
        start["offset"].as_u64().expect("offset") + 5
    );
}

#[tokio::test]
async fn a_position_from_before_a_restart_is_told_epoch_changed() {
    let app = spawn_events_app(10).await;
    let token = admin_token(&app).await;
    let (client, mut notifications) = listener(&app, &token).await;
    subscribe(&client, &[Topic::Pets]).await;
    add_named_pet(&app, "before the restart").await;
    let seen = next(&mut notifications, "an event").await;
    drop((client, notifications));
    app.shutdown().await;

    // The embedded store starts afresh: its history, and the numbering, are gone.
    let restarted = spawn_events_app(10).await;
    let token = admin_token(&restarted).await;
    let (client, _) = listener(&restarted, &token).await;
    let answer = subscribe_raw(
        &client,
        json!({ "topics": ["pets"], "since": [{
            "topic": "pets", "offset": seen.positions["pets"], "epoch": seen.epoch }] }),
    )
    .await;
    let position = position_in(&answer, "pets");
    assert_eq!(position["recovered"], false, "{position}");
    assert_eq!(position["reason"], "epoch_changed");
    assert_ne!(
        Some(position["epoch"].as_str().unwrap_or_default()),
        seen.epoch.as_deref()
    );
}

#[tokio::test]
async fn bad_positions_are_refused_and_change_nothing() {
    let app = spawn_events_app(10).await;
    let token = admin_token(&app).await;
    let (client, mut notifications) = listener(&app, &token).await;
    let answer = subscribe_raw(&client, json!({ "topics": ["pets"] })).await;
    let epoch = position_in(&answer, "pets")["epoch"].clone();
    let long_epoch = "e".repeat(10 * 1024);
    let cases = [
        (
            json!({ "topics": ["pet:1"], "since": [{ "topic": "pet:2", "offset": 0, "epoch": epoch }] }),
            "does not list",
        ),
        (
            json!({ "topics": ["pet:1"], "since": [{ "topic": "pet:1", "offset": -1, "epoch": epoch }] }),
            "offset",
        ),
        (
            json!({ "topics": ["pet:1"], "since": [{ "topic": "pet:1", "offset": 999, "epoch": epoch }] }),
            "ahead",
        ),
        (
            json!({ "topics": ["pet:1"], "since": [{ "topic": "pet:x", "offset": 1, "epoch": epoch }] }),
            "pet:x",
        ),
        (
            json!({ "topics": ["pet:1"], "since": [{ "topic": "pet:1", "offset": 1, "epoch": long_epoch }] }),
            "epoch",
        ),
        (
            json!({ "topics": ["pet:1"], "since": [
            { "topic": "pet:1", "offset": 0, "epoch": epoch },
            { "topic": "pet:1", "offset": 0, "epoch": epoch }] }),
            "twice",
        ),
        (json!({ "topics": ["pet:1"], "since": "pets" }), "sequence"),
    ];
    for (payload, mentions) in cases {
        let reply = subscribe_raw(&client, payload.clone()).await;
        assert_refused(&reply, "BAD_REQUEST", 400, &payload.to_string());
        let Reply::Error(error) = &reply else {
            unreachable!()
        };
        assert!(
            error.message.contains(mentions),
            "{payload}: {}",
            error.message
        );
    }
    // Nothing of the refused requests stayed: the session follows `pets` only, and still gets
    // its events.
    let answer = subscribe_raw(&client, json!({ "topics": ["pets"] })).await;
    let Reply::Success(answer) = answer else {
        unreachable!()
    };
    assert_eq!(answer["topics"], json!(["pets"]));
    let id = add_named_pet(&app, "after the refusals").await;
    let event = next(&mut notifications, "the event after the refusals").await;
    assert_eq!(event.payload["id"], id);
}

/// Eight clients rename one pet at once: every subscriber sees the same events in the same
/// order, and the last one before a later marker write is the store's final state (an event
/// overtaken by a newer write of the pet is not published after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_of_one_pet_reach_every_subscriber_in_store_order() {
    const WRITERS: usize = 8;
    const EACH: usize = 5;
    let app = spawn_events_app(WRITERS as u32 + 4).await;
    let token = admin_token(&app).await;
    let id = add_named_pet(&app, "contended").await;
    let mut listeners = Vec::new();
    for _ in 0..2 {
        let (client, notifications) = listener(&app, &token).await;
        subscribe(&client, &[Topic::Pet(id)]).await;
        listeners.push((client, notifications));
    }
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let client = connect(&app, Some(&token)).await;
        writers.push(tokio::spawn(async move {
            for n in 0..EACH {
                let form = UpdatePetWithFormRequest {
                    pet_id: id,
                    name: Some(format!("w{writer}-{n}")),
                    status: None,
                };
                answered("updatePetWithForm", client.update_pet_with_form(form)).await;
            }
        }));
    }
    for writer in writers {
        writer.await.expect("the writer finishes");
    }
    let final_name = app.pet(id).await["name"].clone();
    let marker = connect(&app, Some(&token)).await;
    let form = UpdatePetWithFormRequest {
        pet_id: id,
        name: Some("marker".to_owned()),
        status: None,
    };
    answered("the marker write", marker.update_pet_with_form(form)).await;

    let mut sequences = Vec::new();
    for (_, notifications) in &mut listeners {
        let mut names = Vec::new();
        loop {
            let event = next(notifications, "the contended pet's events").await;
            let name = event.payload["name"].clone();
            names.push((name.clone(), event.positions[&format!("pet:{id}")]));
            if name == "marker" {
                break;
            }
        }
        sequences.push(names);
    }
    assert_eq!(sequences[0], sequences[1], "one order for every subscriber");
    let names = &sequences[0];
    assert!(names.len() >= 2, "{names:?}");
    assert_eq!(
        names[names.len() - 2].0,
        final_name,
        "the last event before the marker is the store's final state: {names:?}"
    );
    for pair in names.windows(2) {
        assert_eq!(pair[1].1, pair[0].1 + 1, "contiguous offsets: {names:?}");
    }
}
