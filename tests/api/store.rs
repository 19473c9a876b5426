//! The store over HTTP: `getInventory`, `placeOrder`, `getOrderById`, `updateOrder` and
//! `deleteOrder`, and the rules that tie an order to its pet's status.

use petstore_testkit::app::*;
use reqwest::Method;
use serde_json::json;

/// An order body for `pet_id` with nothing else set.
fn order_for(pet_id: i64) -> serde_json::Value {
    json!({ "petId": pet_id })
}

// ---- getInventory ----

#[tokio::test]
async fn get_inventory_counts_every_status_and_follows_adds_and_orders() {
    let app = spawn_app(|_| {}).await;
    assert_eq!(app.inventory().await, (0, 0, 0));

    let first = app.add_available_pet("a").await;
    let second = app.add_available_pet("b").await;
    app.add_pet(json!({ "name": "c", "photoUrls": [], "status": "sold" }))
        .await;
    assert_eq!(app.inventory().await, (2, 0, 1));

    let order = app.place_order(order_for(first)).await;
    assert_eq!(app.inventory().await, (1, 1, 1));

    app.place_order(json!({ "petId": second, "status": "delivered" }))
        .await;
    assert_eq!(app.inventory().await, (0, 1, 2));

    ok_text(app.delete(&format!("/store/order/{}", id_of(&order))).await).await;
    assert_eq!(app.inventory().await, (1, 0, 2));

    ok_text(app.delete(&format!("/pet/{first}")).await).await;
    assert_eq!(app.inventory().await, (0, 0, 2));
    app.shutdown().await;
}

#[tokio::test]
async fn get_inventory_is_a_map_of_the_three_statuses() {
    let app = spawn_app(|_| {}).await;
    app.add_available_pet("a").await;
    let inventory = ok_json(app.get("/store/inventory").await).await;
    assert_eq!(
        inventory,
        json!({ "available": 1, "pending": 0, "sold": 0 })
    );
    app.shutdown().await;
}

// ---- placeOrder ----

#[tokio::test]
async fn place_order_stores_the_order_with_defaults_and_marks_the_pet_pending() {
    let app = spawn_app(|_| {}).await;
    let pet = app.add_available_pet("wanted").await;

    let order = app.place_order(order_for(pet)).await;
    let id = id_of(&order);
    assert!(id >= 1);
    assert_eq!(
        order,
        json!({ "id": id, "petId": pet, "quantity": 1, "status": "placed", "complete": false })
    );
    assert_eq!(app.pet(pet).await["status"], "pending");
    let fetched = ok_json(app.get(&format!("/store/order/{id}")).await).await;
    assert_eq!(fetched, order);
    app.shutdown().await;
}

#[tokio::test]
async fn place_order_keeps_the_given_fields() {
    let app = spawn_app(|_| {}).await;
    let pet = app.add_available_pet("wanted").await;
    let body = json!({
        "id": 77,
        "petId": pet,
        "quantity": 3,
        "shipDate": "2030-01-02T03:04:05Z",
        "status": "approved",
        "complete": false
    });
    let order = app.place_order(body.clone()).await;
    assert_eq!(order["id"], 77);
    assert_eq!(order["petId"], pet);
    assert_eq!(order["quantity"], 3);
    assert_eq!(order["status"], "approved");
    assert_eq!(order["complete"], false);
    let ship_date = order["shipDate"].as_str().unwrap_or_default();
    assert!(
        chrono::DateTime::parse_from_rfc3339(ship_date)
            .is_ok_and(|date| date.to_rfc3339() == "2030-01-02T03:04:05+00:00"),
        "shipDate {ship_date:?}"
    );
    assert_eq!(app.pet(pet).await["status"], "pending");
    app.shutdown().await;
}

#[tokio::test]
async fn place_order_as_delivered_marks_the_pet_sold_and_the_order_complete() {
    let app = spawn_app(|_| {}).await;
    let pet = app.add_available_pet("gone").await;
    let order = app
        .place_order(json!({ "petId": pet, "status": "delivered" }))
        .await;
    assert_eq!(order["status"], "delivered");
    assert_eq!(order["complete"], true);
    assert_eq!(app.pet(pet).await["status"], "sold");
    app.shutdown().await;
}

#[tokio::test]
async fn place_order_for_an_unknown_pet_is_not_found() {
    let app = spawn_app(|_| {}).await;
    let response = app.post_json("/store/order", &order_for(999)).await;
    expect_error(response, 404, "NOT_FOUND").await;
    app.shutdown().await;
}

#[tokio::test]
async fn place_order_for_a_pet_that_is_not_available_is_a_conflict() {
    let app = spawn_app(|_| {}).await;
    let ordered = app.add_available_pet("ordered").await;
    app.place_order(order_for(ordered)).await;
    let response = app.post_json("/store/order", &order_for(ordered)).await;
    expect_error(response, 409, "CONFLICT").await;

    for status in ["pending", "sold"] {
        let pet = app
            .add_pet(json!({ "name": status, "photoUrls": [], "status": status }))
            .await;
        let response = app.post_json("/store/order", &order_for(id_of(&pet))).await;
        expect_error(response, 409, "CONFLICT").await;
        assert_eq!(app.pet(id_of(&pet)).await, pet, "the pet is unchanged");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn place_order_with_a_taken_order_id_is_a_conflict_and_leaves_the_pet_available() {
    let app = spawn_app(|_| {}).await;
    let first = app.add_available_pet("first").await;
    let second = app.add_available_pet("second").await;
    let order = app.place_order(json!({ "id": 10, "petId": first })).await;

    let response = app
        .post_json("/store/order", &json!({ "id": 10, "petId": second }))
        .await;
    expect_error(response, 409, "CONFLICT").await;
    assert_eq!(app.pet(second).await["status"], "available");
    assert_eq!(ok_json(app.get("/store/order/10").await).await, order);
    app.shutdown().await;
}

#[tokio::test]
async fn place_order_twice_at_once_for_one_pet_succeeds_exactly_once() {
    let app = spawn_app(|_| {}).await;
    for round in 0..10 {
        let pet = app.add_available_pet(&format!("contested {round}")).await;
        let body = order_for(pet);
        let (left, right) = tokio::join!(
            app.post_json("/store/order", &body),
            app.post_json("/store/order", &body)
        );
        let mut statuses = [left.status().as_u16(), right.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}");
        let (winner, loser) = if left.status() == 200 {
            (left, right)
        } else {
            (right, left)
        };
        expect_error(loser, 409, "CONFLICT").await;
        let order = ok_json(winner).await;
        assert_eq!(order["petId"], pet);
        assert_eq!(app.pet(pet).await["status"], "pending", "round {round}");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn place_order_from_parallel_tasks_for_one_pet_succeeds_exactly_once() {
    let app = spawn_app(|_| {}).await;
    for round in 0..10 {
        let pet = app.add_available_pet(&format!("contested {round}")).await;
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let client = app.client.clone();
                let url = app.api("/store/order");
                tokio::spawn(async move {
                    send(client.post(url).json(&json!({ "petId": pet })))
                        .await
                        .status()
                        .as_u16()
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for task in tasks {
            match task.await {
                Ok(status) => statuses.push(status),
                Err(error) => panic!("an ordering task failed: {error}"),
            }
        }
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409, 409, 409], "round {round}");
        assert_eq!(app.pet(pet).await["status"], "pending", "round {round}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn place_order_with_malformed_json_is_a_bad_request() {
    let app = spawn_app(|_| {}).await;
    let response = app
        .send_raw(
            Method::POST,
            "/store/order",
            Some("application/json"),
            "{\"petId\": ",
        )
        .await;
    expect_error(response, 400, "BAD_REQUEST").await;
    app.shutdown().await;
}

#[tokio::test]
async fn place_order_with_wrong_types_or_broken_constraints_is_a_validation_error() {
    let app = spawn_app(|_| {}).await;
    let pet = app.add_available_pet("p").await;
    let cases = [
        (json!({}), vec!["petId"]),
        (json!({ "petId": "one" }), vec!["petId"]),
        (json!({ "petId": 0 }), vec!["petId"]),
        (
            json!({
                "id": 0,
                "petId": pet,
                "quantity": 0,
                "shipDate": "tomorrow",
                "status": "lost",
                "complete": "yes"
            }),
            vec!["id", "quantity", "shipDate", "status", "complete"],
        ),
        (json!({ "petId": pet, "quantity": 101 }), vec!["quantity"]),
        (
            json!({ "petId": 1.5, "quantity": 2.5 }),
            vec!["petId", "quantity"],
        ),
    ];
    for (body, paths) in cases {
        let response = app.post_json("/store/order", &body).await;
        assert_eq!(validation_paths(response).await, paths, "body {body}");
    }
    assert_eq!(
        app.pet(pet).await["status"],
        "available",
        "no order went in"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn place_order_over_the_json_limit_or_not_json_is_refused() {
    let app = spawn_app(|config| config.max_json_body_bytes = 32).await;
    let pet = app.add_available_pet("p").await;
    let body = json!({ "petId": pet, "shipDate": "2030-01-02T03:04:05Z", "complete": false });
    let response = app.post_json("/store/order", &body).await;
    expect_error(response, 413, "PAYLOAD_TOO_LARGE").await;

    let response = app
        .send_raw(
            Method::POST,
            "/store/order",
            Some("text/plain"),
            order_for(pet).to_string(),
        )
        .await;
    expect_error(response, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    assert_eq!(app.pet(pet).await["status"], "available");
    app.shutdown().await;
}

// ---- getOrderById ----

#[tokio::test]
async fn get_order_by_id_of_an_unknown_or_invalid_id_is_refused() {
    let app = spawn_app(|_| {}).await;
    expect_error(app.get("/store/order/999").await, 404, "NOT_FOUND").await;
    for id in ["abc", "0", "-3"] {
        let response = app.get(&format!("/store/order/{id}")).await;
        expect_error(response, 400, "BAD_REQUEST").await;
    }
    app.shutdown().await;
}

// ---- updateOrder ----

/// A pet and an order for it; returns (pet id, order).
/// Moves the order at `path` (for `pet`) to `delivered` and returns the answer.
async fn deliver(app: &TestApp, pet: i64, path: &str) -> serde_json::Value {
    ok_json(
        app.put_json(path, &json!({ "petId": pet, "status": "delivered" }))
            .await,
    )
    .await
}

async fn pet_with_order(app: &TestApp) -> (i64, serde_json::Value) {
    let pet = app.add_available_pet("ordered").await;
    let order = app.place_order(order_for(pet)).await;
    (pet, order)
}

#[tokio::test]
async fn update_order_moves_forward_and_delivery_sells_the_pet_and_completes_the_order() {
    let app = spawn_app(|_| {}).await;
    let (pet, order) = pet_with_order(&app).await;
    let id = id_of(&order);
    let path = format!("/store/order/{id}");

    let approved = ok_json(
        app.put_json(
            &path,
            &json!({ "id": id, "petId": pet, "status": "approved" }),
        )
        .await,
    )
    .await;
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["complete"], false);
    assert_eq!(app.pet(pet).await["status"], "pending");

    // Staying in the same status is allowed; the ship date may change.
    let shipped = ok_json(
        app.put_json(
            &path,
            &json!({ "petId": pet, "status": "approved", "shipDate": "2030-05-06T07:08:09Z" }),
        )
        .await,
    )
    .await;
    assert_eq!(shipped["status"], "approved");
    assert!(shipped["shipDate"].is_string(), "{shipped}");

    let delivered = deliver(&app, pet, &path).await;
    assert_eq!(delivered["status"], "delivered");
    assert_eq!(delivered["complete"], true);
    assert_eq!(
        delivered["shipDate"], shipped["shipDate"],
        "kept when not given"
    );
    assert_eq!(delivered["quantity"], order["quantity"]);
    assert_eq!(app.pet(pet).await["status"], "sold");
    assert_eq!(ok_json(app.get(&path).await).await, delivered);

    // A delivered order stays complete.
    let again = ok_json(
        app.put_json(&path, &json!({ "petId": pet, "complete": false }))
            .await,
    )
    .await;
    assert_eq!(again["status"], "delivered");
    assert_eq!(again["complete"], true);
    app.shutdown().await;
}

#[tokio::test]
async fn update_order_can_skip_straight_to_delivered() {
    let app = spawn_app(|_| {}).await;
    let (pet, order) = pet_with_order(&app).await;
    let path = format!("/store/order/{}", id_of(&order));
    let delivered = deliver(&app, pet, &path).await;
    assert_eq!(delivered["complete"], true);
    assert_eq!(app.pet(pet).await["status"], "sold");
    app.shutdown().await;
}

#[tokio::test]
async fn update_order_backwards_is_a_validation_error_on_status() {
    let app = spawn_app(|_| {}).await;
    let (pet, order) = pet_with_order(&app).await;
    let path = format!("/store/order/{}", id_of(&order));
    deliver(&app, pet, &path).await;
    for status in ["approved", "placed"] {
        let response = app
            .put_json(&path, &json!({ "petId": pet, "status": status }))
            .await;
        assert_eq!(validation_paths(response).await, ["status"]);
    }

    let (pet, order) = pet_with_order(&app).await;
    let path = format!("/store/order/{}", id_of(&order));
    ok_json(
        app.put_json(&path, &json!({ "petId": pet, "status": "approved" }))
            .await,
    )
    .await;
    let response = app
        .put_json(&path, &json!({ "petId": pet, "status": "placed" }))
        .await;
    assert_eq!(validation_paths(response).await, ["status"]);
    assert_eq!(ok_json(app.get(&path).await).await["status"], "approved");
    app.shutdown().await;
}

#[tokio::test]
async fn update_order_with_an_id_other_than_the_path_is_a_validation_error_on_id() {
    let app = spawn_app(|_| {}).await;
    let (pet, order) = pet_with_order(&app).await;
    let id = id_of(&order);
    let response = app
        .put_json(
            &format!("/store/order/{id}"),
            &json!({ "id": id + 1, "petId": pet, "status": "approved" }),
        )
        .await;
    assert_eq!(validation_paths(response).await, ["id"]);
    assert_eq!(
        ok_json(app.get(&format!("/store/order/{id}")).await).await,
        order
    );
    app.shutdown().await;
}

#[tokio::test]
async fn update_order_cannot_change_the_pet_or_the_quantity() {
    let app = spawn_app(|_| {}).await;
    let (pet, order) = pet_with_order(&app).await;
    let other = app.add_available_pet("other").await;
    let path = format!("/store/order/{}", id_of(&order));
    let response = app
        .put_json(&path, &json!({ "petId": other, "status": "approved" }))
        .await;
    assert_eq!(validation_paths(response).await, ["petId"]);
    let response = app
        .put_json(&path, &json!({ "petId": pet, "quantity": 5 }))
        .await;
    assert_eq!(validation_paths(response).await, ["quantity"]);
    app.shutdown().await;
}

#[tokio::test]
async fn update_order_of_an_unknown_order_is_not_found() {
    let app = spawn_app(|_| {}).await;
    let pet = app.add_available_pet("p").await;
    let response = app
        .put_json(
            "/store/order/999",
            &json!({ "petId": pet, "status": "approved" }),
        )
        .await;
    expect_error(response, 404, "NOT_FOUND").await;
    app.shutdown().await;
}

#[tokio::test]
async fn update_order_rejects_bad_input_with_the_documented_statuses() {
    let app = spawn_app(|config| config.max_json_body_bytes = 128).await;
    let (pet, order) = pet_with_order(&app).await;
    let path = format!("/store/order/{}", id_of(&order));

    let response = app
        .send_raw(Method::PUT, &path, Some("application/json"), "[")
        .await;
    expect_error(response, 400, "BAD_REQUEST").await;
    let response = app
        .put_json("/store/order/abc", &json!({ "petId": pet }))
        .await;
    expect_error(response, 400, "BAD_REQUEST").await;
    let response = app
        .send_raw(
            Method::PUT,
            &path,
            Some("text/plain"),
            json!({ "petId": pet }).to_string(),
        )
        .await;
    expect_error(response, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    let response = app
        .put_json(
            &path,
            &json!({ "petId": pet, "shipDate": format!("2030-01-01T00:00:00.{}Z", "0".repeat(200)) }),
        )
        .await;
    expect_error(response, 413, "PAYLOAD_TOO_LARGE").await;
    let response = app
        .put_json(&path, &json!({ "petId": pet, "status": "shipped" }))
        .await;
    assert_eq!(validation_paths(response).await, ["status"]);
    let response = app.put_json(&path, &json!({ "status": "approved" })).await;
    assert_eq!(validation_paths(response).await, ["petId"]);

    assert_eq!(ok_json(app.get(&path).await).await, order, "unchanged");
    app.shutdown().await;
}

// ---- deleteOrder ----

#[tokio::test]
async fn delete_order_of_an_undelivered_order_makes_the_pet_available_again() {
    let app = spawn_app(|_| {}).await;
    for status in ["placed", "approved"] {
        let pet = app.add_available_pet(status).await;
        let order = app
            .place_order(json!({ "petId": pet, "status": status }))
            .await;
        assert_eq!(app.pet(pet).await["status"], "pending");
        let path = format!("/store/order/{}", id_of(&order));
        ok_text(app.delete(&path).await).await;
        expect_error(app.get(&path).await, 404, "NOT_FOUND").await;
        assert_eq!(app.pet(pet).await["status"], "available", "{status}");
        // …and so it can be ordered again.
        app.place_order(order_for(pet)).await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn delete_order_keeps_the_pet_pending_while_another_order_holds_it() {
    let app = spawn_app(|_| {}).await;
    let (pet, first) = pet_with_order(&app).await;
    // Made available again by hand, the pet takes a second order.
    let response = send(
        app.client
            .post(app.api(&format!("/pet/{pet}")))
            .query(&[("status", "available")]),
    )
    .await;
    ok_json(response).await;
    let second = app.place_order(order_for(pet)).await;

    ok_text(app.delete(&format!("/store/order/{}", id_of(&first))).await).await;
    assert_eq!(app.pet(pet).await["status"], "pending");
    ok_text(
        app.delete(&format!("/store/order/{}", id_of(&second)))
            .await,
    )
    .await;
    assert_eq!(app.pet(pet).await["status"], "available");
    app.shutdown().await;
}

#[tokio::test]
async fn delete_order_of_a_delivered_order_leaves_the_pet_sold() {
    let app = spawn_app(|_| {}).await;
    let (pet, order) = pet_with_order(&app).await;
    let path = format!("/store/order/{}", id_of(&order));
    deliver(&app, pet, &path).await;
    ok_text(app.delete(&path).await).await;
    assert_eq!(app.pet(pet).await["status"], "sold");
    app.shutdown().await;
}

#[tokio::test]
async fn delete_order_of_an_unknown_or_invalid_id_is_refused() {
    let app = spawn_app(|_| {}).await;
    let (_, order) = pet_with_order(&app).await;
    let path = format!("/store/order/{}", id_of(&order));
    ok_text(app.delete(&path).await).await;
    expect_error(app.delete(&path).await, 404, "NOT_FOUND").await;
    expect_error(app.delete("/store/order/999").await, 404, "NOT_FOUND").await;
    expect_error(app.delete("/store/order/abc").await, 400, "BAD_REQUEST").await;
    expect_error(app.delete("/store/order/0").await, 400, "BAD_REQUEST").await;
    app.shutdown().await;
}
