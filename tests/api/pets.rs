//! Pets over HTTP: `addPet`, `updatePet`, `getPetById`, `updatePetWithForm`, `deletePet`,
//! `findPetsByStatus`, `findPetsByTags`, `uploadFile` and `getPetImage`, each with its happy path
//! and every error status the spec documents for it.

use petstore_testkit::app::*;
use reqwest::{Method, header};
use serde_json::json;

// ---- addPet ----

#[tokio::test]
async fn add_pet_assigns_an_id_and_defaults_the_status_to_available() {
    let app = spawn_app(|_| {}).await;
    let body = json!({
        "name": "doggie",
        "category": { "id": 1, "name": "Dogs" },
        "photoUrls": ["https://example.com/doggie.jpg"],
        "tags": [{ "id": 7, "name": "friendly" }]
    });
    let stored = app.add_pet(body.clone()).await;

    let id = id_of(&stored);
    assert!(id >= 1);
    let mut expected = body;
    expected["id"] = json!(id);
    expected["status"] = json!("available");
    assert_eq!(stored, expected);
    assert_eq!(app.pet(id).await, expected);
    app.shutdown().await;
}

#[tokio::test]
async fn tag_and_category_ids_are_the_clients_labels_zero_included() {
    // What Swagger UI fills in for a tag or category without an example, and what suites written
    // for the classic Petstore send.
    let app = spawn_app(|_| {}).await;
    let body = json!({
        "name": "string",
        "category": { "id": 0, "name": "string" },
        "photoUrls": ["string"],
        "tags": [{ "id": 0, "name": "string" }],
        "status": "available"
    });
    let stored = app.add_pet(body.clone()).await;
    assert_eq!(stored["category"], body["category"]);
    assert_eq!(stored["tags"], body["tags"]);
    // A label is still a non-negative int64.
    let negative = app
        .post_json(
            "/pet",
            &json!({"name": "rex", "photoUrls": [], "tags": [{"id": -1, "name": "x"}]}),
        )
        .await;
    assert_eq!(validation_paths(negative).await, ["tags[0].id"]);
    let negative = app
        .post_json(
            "/pet",
            &json!({"name": "rex", "photoUrls": [], "category": {"id": -1, "name": "x"}}),
        )
        .await;
    assert_eq!(validation_paths(negative).await, ["category.id"]);
    app.shutdown().await;
}

#[tokio::test]
async fn add_pet_keeps_an_explicit_id_and_status() {
    let app = spawn_app(|_| {}).await;
    let stored = app
        .add_pet(json!({ "id": 42, "name": "rex", "photoUrls": [], "status": "sold" }))
        .await;
    assert_eq!(stored["id"], 42);
    assert_eq!(stored["status"], "sold");
    assert_eq!(app.pet(42).await, stored);
    app.shutdown().await;
}

#[tokio::test]
async fn add_pet_assigns_distinct_ids() {
    let app = spawn_app(|_| {}).await;
    let first = app.add_available_pet("a").await;
    let second = app.add_available_pet("b").await;
    assert_ne!(first, second);
    app.shutdown().await;
}

#[tokio::test]
async fn add_pet_with_a_taken_id_is_a_conflict_and_keeps_the_first_pet() {
    let app = spawn_app(|_| {}).await;
    let first = app
        .add_pet(json!({ "id": 5, "name": "first", "photoUrls": [] }))
        .await;
    let response = app
        .post_json(
            "/pet",
            &json!({ "id": 5, "name": "second", "photoUrls": [] }),
        )
        .await;
    expect_error(response, 409, "CONFLICT").await;
    assert_eq!(app.pet(5).await, first);
    app.shutdown().await;
}

#[tokio::test]
async fn add_pet_with_malformed_json_is_a_bad_request() {
    let app = spawn_app(|_| {}).await;
    for body in ["{\"name\": \"x\", ", "not json", "{\"name\": \"x\"}}", ""] {
        let response = app
            .send_raw(Method::POST, "/pet", Some("application/json"), body)
            .await;
        expect_error(response, 400, "BAD_REQUEST").await;
    }
    let (available, pending, sold) = app.inventory().await;
    assert_eq!(available + pending + sold, 0, "nothing was stored");
    app.shutdown().await;
}

#[tokio::test]
async fn add_pet_with_json_nested_too_deeply_is_a_bad_request_and_the_server_survives() {
    let app = spawn_app(|_| {}).await;
    let depth = 10_000;
    let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let response = app
        .send_raw(Method::POST, "/pet", Some("application/json"), body)
        .await;
    expect_error(response, 400, "BAD_REQUEST").await;
    app.add_pet(new_pet("still here")).await;
    app.shutdown().await;
}

#[tokio::test]
async fn add_pet_with_wrong_types_is_a_validation_error_naming_each_field() {
    let app = spawn_app(|_| {}).await;
    let response = app
        .post_json(
            "/pet",
            &json!({
                "id": "seven",
                "name": 12,
                "category": "Dogs",
                "photoUrls": "https://example.com/a.jpg",
                "tags": { "name": "t" },
                "status": true
            }),
        )
        .await;
    assert_eq!(
        validation_paths(response).await,
        ["id", "name", "category", "photoUrls", "tags", "status"]
    );
    app.shutdown().await;
}

#[tokio::test]
async fn add_pet_breaking_constraints_is_a_validation_error_with_every_path() {
    let app = spawn_app(|_| {}).await;
    let too_many_urls: Vec<String> = (0..21).map(|i| format!("u{i}")).collect();
    let response = app
        .post_json(
            "/pet",
            &json!({
                "id": 0,
                "name": "",
                "category": { "id": -1, "name": "x".repeat(65) },
                "photoUrls": too_many_urls,
                "tags": [{ "name": "ok" }, { "id": -1, "name": "" }],
                "status": "lost"
            }),
        )
        .await;
    assert_eq!(
        validation_paths(response).await,
        [
            "id",
            "name",
            "category.id",
            "category.name",
            "photoUrls",
            "tags[1].id",
            "tags[1].name",
            "status"
        ]
    );
    app.shutdown().await;
}

#[tokio::test]
async fn add_pet_without_required_fields_is_a_validation_error() {
    let app = spawn_app(|_| {}).await;
    let response = app.post_json("/pet", &json!({})).await;
    assert_eq!(validation_paths(response).await, ["name", "photoUrls"]);

    let response = app
        .post_json(
            "/pet",
            &json!({ "name": "x".repeat(101), "photoUrls": ["x".repeat(2049)] }),
        )
        .await;
    assert_eq!(validation_paths(response).await, ["name", "photoUrls[0]"]);
    app.shutdown().await;
}

#[tokio::test]
async fn add_pet_with_a_body_that_is_not_an_object_is_a_validation_error() {
    let app = spawn_app(|_| {}).await;
    let response = app.post_json("/pet", &json!(["doggie"])).await;
    assert_eq!(validation_paths(response).await, [""]);
    app.shutdown().await;
}

#[tokio::test]
async fn add_pet_over_the_json_body_limit_is_payload_too_large() {
    let app = spawn_app(|config| config.max_json_body_bytes = 64).await;
    let response = app
        .post_json("/pet", &json!({ "name": "x".repeat(100), "photoUrls": [] }))
        .await;
    expect_error(response, 413, "PAYLOAD_TOO_LARGE").await;

    // A body under the limit still goes through.
    app.add_pet(new_pet("small")).await;
    app.shutdown().await;
}

#[tokio::test]
async fn add_pet_over_the_json_body_limit_without_a_content_length_is_payload_too_large() {
    let app = spawn_app(|config| config.max_json_body_bytes = 64).await;
    let big = json!({ "name": "x".repeat(300), "photoUrls": [] }).to_string();
    let (status, body) = app
        .post_chunked("/pet", "application/json", big.as_bytes())
        .await;
    assert_eq!(status, 413, "{body}");
    assert_error_body(&body, 413, "PAYLOAD_TOO_LARGE");

    let small = new_pet("small").to_string();
    let (status, body) = app
        .post_chunked("/pet", "application/json", small.as_bytes())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "small");
    app.shutdown().await;
}

#[tokio::test]
async fn add_pet_with_a_non_json_content_type_is_unsupported_media_type() {
    let app = spawn_app(|_| {}).await;
    let body = r#"{"name": "doggie", "photoUrls": []}"#;
    for content_type in [Some("text/plain"), Some("application/xml"), None] {
        let response = app.send_raw(Method::POST, "/pet", content_type, body).await;
        expect_error(response, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    }
    // JSON with a charset parameter is still JSON.
    let response = app
        .send_raw(
            Method::POST,
            "/pet",
            Some("application/json; charset=utf-8"),
            body,
        )
        .await;
    ok_json(response).await;
    app.shutdown().await;
}

// ---- updatePet ----

#[tokio::test]
async fn update_pet_replaces_the_pet() {
    let app = spawn_app(|_| {}).await;
    let id = app.add_tagged_pet("old", &["a"]).await;
    let replacement = json!({
        "id": id,
        "name": "new",
        "photoUrls": ["https://example.com/new.jpg"],
        "status": "sold"
    });
    let stored = ok_json(app.put_json("/pet", &replacement).await).await;
    assert_eq!(stored, replacement);
    assert_eq!(app.pet(id).await, replacement);
    app.shutdown().await;
}

#[tokio::test]
async fn update_pet_without_a_status_keeps_the_current_one() {
    let app = spawn_app(|_| {}).await;
    let id = id_of(
        &app.add_pet(json!({ "name": "p", "photoUrls": [], "status": "pending" }))
            .await,
    );
    let stored = ok_json(
        app.put_json("/pet", &json!({ "id": id, "name": "q", "photoUrls": [] }))
            .await,
    )
    .await;
    assert_eq!(stored["status"], "pending");
    assert_eq!(stored["name"], "q");
    app.shutdown().await;
}

#[tokio::test]
async fn update_pet_of_an_unknown_id_is_not_found() {
    let app = spawn_app(|_| {}).await;
    let response = app
        .put_json(
            "/pet",
            &json!({ "id": 999, "name": "ghost", "photoUrls": [], "status": "available" }),
        )
        .await;
    expect_error(response, 404, "NOT_FOUND").await;
    let response = app
        .put_json(
            "/pet",
            &json!({ "id": 999, "name": "ghost", "photoUrls": [] }),
        )
        .await;
    expect_error(response, 404, "NOT_FOUND").await;
    app.shutdown().await;
}

#[tokio::test]
async fn update_pet_without_an_id_is_a_validation_error_on_id() {
    let app = spawn_app(|_| {}).await;
    let response = app
        .put_json("/pet", &json!({ "name": "anon", "photoUrls": [] }))
        .await;
    assert_eq!(validation_paths(response).await, ["id"]);
    app.shutdown().await;
}

#[tokio::test]
async fn update_pet_rejects_bad_input_with_the_documented_statuses() {
    let app = spawn_app(|config| config.max_json_body_bytes = 256).await;
    let id = app.add_available_pet("p").await;

    let response = app
        .send_raw(Method::PUT, "/pet", Some("application/json"), "{")
        .await;
    expect_error(response, 400, "BAD_REQUEST").await;

    let body = json!({ "id": id, "name": "p", "photoUrls": [] }).to_string();
    let response = app
        .send_raw(Method::PUT, "/pet", Some("text/plain"), body)
        .await;
    expect_error(response, 415, "UNSUPPORTED_MEDIA_TYPE").await;

    let response = app
        .put_json(
            "/pet",
            &json!({ "id": id, "name": "x".repeat(300), "photoUrls": [] }),
        )
        .await;
    expect_error(response, 413, "PAYLOAD_TOO_LARGE").await;

    let response = app
        .put_json("/pet", &json!({ "id": id, "name": 1, "photoUrls": [] }))
        .await;
    assert_eq!(validation_paths(response).await, ["name"]);

    assert_eq!(app.pet(id).await["name"], "p", "the pet is unchanged");
    app.shutdown().await;
}

// ---- getPetById ----

#[tokio::test]
async fn get_pet_by_id_of_an_unknown_pet_is_not_found() {
    let app = spawn_app(|_| {}).await;
    expect_error(app.get("/pet/12345").await, 404, "NOT_FOUND").await;
    app.shutdown().await;
}

#[tokio::test]
async fn get_pet_by_id_with_an_invalid_id_is_a_bad_request() {
    let app = spawn_app(|_| {}).await;
    for id in ["abc", "0", "-1", "1.5", "99999999999999999999"] {
        let response = app.get(&format!("/pet/{id}")).await;
        expect_error(response, 400, "BAD_REQUEST").await;
    }
    app.shutdown().await;
}

// ---- updatePetWithForm ----

#[tokio::test]
async fn update_pet_with_form_changes_only_the_given_fields() {
    let app = spawn_app(|_| {}).await;
    let id = app.add_tagged_pet("before", &["t"]).await;

    let response = send(
        app.client
            .post(app.api(&format!("/pet/{id}")))
            .query(&[("name", "after")]),
    )
    .await;
    let stored = ok_json(response).await;
    assert_eq!(stored["name"], "after");
    assert_eq!(stored["status"], "available");
    assert_eq!(stored["tags"], json!([{ "name": "t" }]));

    let response = send(
        app.client
            .post(app.api(&format!("/pet/{id}")))
            .query(&[("status", "sold")]),
    )
    .await;
    let stored = ok_json(response).await;
    assert_eq!(stored["name"], "after");
    assert_eq!(stored["status"], "sold");
    assert_eq!(app.pet(id).await, stored);

    // Neither field: the pet as it is.
    let response = send(app.client.post(app.api(&format!("/pet/{id}")))).await;
    assert_eq!(ok_json(response).await, stored);
    app.shutdown().await;
}

#[tokio::test]
async fn update_pet_with_form_rejects_bad_parameters_and_unknown_pets() {
    let app = spawn_app(|_| {}).await;
    let id = app.add_available_pet("p").await;

    for query in [[("status", "lost")], [("name", "")]] {
        let response = send(
            app.client
                .post(app.api(&format!("/pet/{id}")))
                .query(&query),
        )
        .await;
        expect_error(response, 400, "BAD_REQUEST").await;
    }
    let response = send(app.client.post(app.api("/pet/abc")).query(&[("name", "x")])).await;
    expect_error(response, 400, "BAD_REQUEST").await;

    let response = send(app.client.post(app.api("/pet/999")).query(&[("name", "x")])).await;
    expect_error(response, 404, "NOT_FOUND").await;
    let response = send(app.client.post(app.api("/pet/999"))).await;
    expect_error(response, 404, "NOT_FOUND").await;
    app.shutdown().await;
}

// ---- deletePet ----

#[tokio::test]
async fn delete_pet_removes_it_and_a_second_delete_is_not_found() {
    let app = spawn_app(|_| {}).await;
    let id = app.add_available_pet("doomed").await;
    let other = app.add_available_pet("stays").await;

    ok_text(app.delete(&format!("/pet/{id}")).await).await;
    expect_error(app.get(&format!("/pet/{id}")).await, 404, "NOT_FOUND").await;
    app.pet(other).await;

    let response = app.delete(&format!("/pet/{id}")).await;
    expect_error(response, 404, "NOT_FOUND").await;
    app.shutdown().await;
}

#[tokio::test]
async fn delete_pet_with_an_invalid_id_is_a_bad_request() {
    let app = spawn_app(|_| {}).await;
    expect_error(app.delete("/pet/abc").await, 400, "BAD_REQUEST").await;
    expect_error(app.delete("/pet/0").await, 400, "BAD_REQUEST").await;
    app.shutdown().await;
}

#[tokio::test]
async fn delete_pet_also_deletes_its_images() {
    let app = spawn_app(|_| {}).await;
    let id = app.add_available_pet("p").await;
    let uploaded = ok_json(app.upload(id, PNG).await).await;
    let Some(url) = uploaded["message"].as_str() else {
        panic!("no URL in {uploaded}");
    };
    let image_url = app.url(url);
    assert_eq!(send(app.client.get(&image_url)).await.status(), 200);

    ok_text(app.delete(&format!("/pet/{id}")).await).await;
    expect_error(send(app.client.get(&image_url)).await, 404, "NOT_FOUND").await;
    app.shutdown().await;
}

// ---- findPetsByStatus ----

/// Pets in every status: returns (available, pending, sold) ids.
async fn pets_in_every_status(app: &TestApp) -> (i64, i64, i64) {
    let mut ids = Vec::new();
    for status in ["available", "pending", "sold"] {
        let pet = app
            .add_pet(json!({ "name": status, "photoUrls": [], "status": status }))
            .await;
        ids.push(id_of(&pet));
    }
    (ids[0], ids[1], ids[2])
}

#[tokio::test]
async fn find_pets_by_status_defaults_to_available() {
    let app = spawn_app(|_| {}).await;
    let (available, _, _) = pets_in_every_status(&app).await;
    let second = app.add_available_pet("another").await;

    let found = ok_json(app.get("/pet/findByStatus").await).await;
    assert_eq!(ids_of(&found), [available, second]);
    let found = ok_json(app.get("/pet/findByStatus?status=available").await).await;
    assert_eq!(ids_of(&found), [available, second]);
    app.shutdown().await;
}

#[tokio::test]
async fn find_pets_by_status_matches_any_of_several_statuses_ordered_by_id() {
    let app = spawn_app(|_| {}).await;
    let (available, pending, sold) = pets_in_every_status(&app).await;

    let found = ok_json(
        app.get("/pet/findByStatus?status=sold&status=pending")
            .await,
    )
    .await;
    assert_eq!(ids_of(&found), [pending, sold]);
    for pet in found.as_array().into_iter().flatten() {
        assert!(pet["status"] == "sold" || pet["status"] == "pending");
    }
    let found = ok_json(
        app.get("/pet/findByStatus?status=sold&status=available&status=pending")
            .await,
    )
    .await;
    assert_eq!(ids_of(&found), [available, pending, sold]);
    let found = ok_json(app.get("/pet/findByStatus?status=sold").await).await;
    assert_eq!(found, json!([app.pet(sold).await]));
    app.shutdown().await;
}

#[tokio::test]
async fn find_pets_by_status_with_an_invalid_status_is_a_bad_request() {
    let app = spawn_app(|_| {}).await;
    for query in [
        "status=lost",
        "status=available&status=lost",
        "status=AVAILABLE",
        "status=available&status=pending&status=sold&status=sold",
    ] {
        let response = app.get(&format!("/pet/findByStatus?{query}")).await;
        expect_error(response, 400, "BAD_REQUEST").await;
    }
    app.shutdown().await;
}

// ---- findPetsByTags ----

#[tokio::test]
async fn find_pets_by_tags_lists_each_matching_pet_once_ordered_by_id() {
    let app = spawn_app(|_| {}).await;
    let both = app.add_tagged_pet("both", &["a", "b"]).await;
    let only_b = app.add_tagged_pet("b", &["b"]).await;
    let _neither = app.add_tagged_pet("c", &["c"]).await;
    let _untagged = app.add_available_pet("plain").await;

    let found = ok_json(app.get("/pet/findByTags?tags=a&tags=b").await).await;
    assert_eq!(ids_of(&found), [both, only_b]);
    let found = ok_json(app.get("/pet/findByTags?tags=b&tags=a&tags=b").await).await;
    assert_eq!(ids_of(&found), [both, only_b]);
    let found = ok_json(app.get("/pet/findByTags?tags=a").await).await;
    assert_eq!(found, json!([app.pet(both).await]));
    app.shutdown().await;
}

#[tokio::test]
async fn find_pets_by_tags_matches_names_exactly_and_nothing_for_no_tags() {
    let app = spawn_app(|_| {}).await;
    app.add_tagged_pet("p", &["Tag"]).await;
    let found = ok_json(app.get("/pet/findByTags?tags=tag").await).await;
    assert_eq!(found, json!([]));
    let found = ok_json(app.get("/pet/findByTags?tags=missing").await).await;
    assert_eq!(found, json!([]));
    let found = ok_json(app.get("/pet/findByTags").await).await;
    assert_eq!(found, json!([]));
    app.shutdown().await;
}

#[tokio::test]
async fn find_pets_by_tags_with_more_than_twenty_tags_is_a_bad_request() {
    let app = spawn_app(|_| {}).await;
    let query: Vec<String> = (0..21).map(|i| format!("tags=t{i}")).collect();
    let response = app
        .get(&format!("/pet/findByTags?{}", query.join("&")))
        .await;
    expect_error(response, 400, "BAD_REQUEST").await;
    app.shutdown().await;
}

// ---- uploadFile / getPetImage ----

#[tokio::test]
async fn upload_file_stores_each_image_type_and_get_pet_image_serves_it_back() {
    let app = spawn_app(|_| {}).await;
    let id = app.add_available_pet("photogenic").await;
    let samples: [(&[u8], &str); 4] = [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF, "image/gif"),
        (WEBP, "image/webp"),
    ];
    let mut urls = Vec::new();
    for (bytes, content_type) in samples {
        let response = send(
            app.client
                .post(app.api(&format!("/pet/{id}/uploadImage")))
                .query(&[("additionalMetadata", "a photo")])
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes),
        )
        .await;
        let answer = ok_json(response).await;
        assert_eq!(answer["code"], 200, "{answer}");
        assert_eq!(answer["type"], content_type, "{answer}");
        let Some(url) = answer["message"].as_str().map(str::to_owned) else {
            panic!("no URL in {answer}");
        };
        let prefix = format!("{API_BASE}/pet/{id}/image/");
        assert!(url.starts_with(&prefix), "{url} is not under {prefix}");

        let image = send(app.client.get(app.url(&url))).await;
        assert_eq!(image.status(), 200);
        assert_eq!(petstore_testkit::app::content_type(&image), content_type);
        let served = match image.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => panic!("cannot read the image: {error}"),
        };
        assert_eq!(served.as_ref(), bytes);
        urls.push(url);
    }
    let pet = app.pet(id).await;
    assert_eq!(pet["photoUrls"], json!(urls));
    app.shutdown().await;
}

#[tokio::test]
async fn upload_file_keeps_the_existing_photo_urls() {
    let app = spawn_app(|_| {}).await;
    let pet = app
        .add_pet(json!({ "name": "p", "photoUrls": ["https://example.com/old.jpg"] }))
        .await;
    let id = id_of(&pet);
    let answer = ok_json(app.upload(id, PNG).await).await;
    assert_eq!(
        app.pet(id).await["photoUrls"],
        json!(["https://example.com/old.jpg", answer["message"]])
    );
    app.shutdown().await;
}

#[tokio::test]
async fn upload_file_with_an_empty_body_is_not_an_image() {
    let app = spawn_app(|_| {}).await;
    let id = app.add_available_pet("p").await;
    expect_error(
        app.upload(id, Vec::new()).await,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
    assert_eq!(app.pet(id).await["photoUrls"], json!([]));
    app.shutdown().await;
}

#[tokio::test]
async fn upload_file_for_an_unknown_pet_is_not_found() {
    let app = spawn_app(|_| {}).await;
    expect_error(app.upload(404, PNG).await, 404, "NOT_FOUND").await;
    app.shutdown().await;
}

#[tokio::test]
async fn upload_file_with_an_invalid_pet_id_is_a_bad_request() {
    let app = spawn_app(|_| {}).await;
    let response = app
        .send_raw(
            Method::POST,
            "/pet/abc/uploadImage",
            Some("application/octet-stream"),
            PNG,
        )
        .await;
    expect_error(response, 400, "BAD_REQUEST").await;
    app.shutdown().await;
}

#[tokio::test]
async fn upload_file_when_photo_urls_is_full_is_a_conflict() {
    let app = spawn_app(|_| {}).await;
    let urls: Vec<String> = (0..20)
        .map(|i| format!("https://example.com/{i}.jpg"))
        .collect();
    let pet = app
        .add_pet(json!({ "name": "famous", "photoUrls": urls }))
        .await;
    let id = id_of(&pet);
    expect_error(app.upload(id, PNG).await, 409, "CONFLICT").await;
    assert_eq!(app.pet(id).await, pet, "the pet is unchanged");

    // The 20th upload fills the list; the 21st is refused.
    let almost: Vec<String> = urls.iter().take(19).cloned().collect();
    let pet = app
        .add_pet(json!({ "name": "rising", "photoUrls": almost }))
        .await;
    let id = id_of(&pet);
    ok_json(app.upload(id, PNG).await).await;
    expect_error(app.upload(id, PNG).await, 409, "CONFLICT").await;
    app.shutdown().await;
}

#[tokio::test]
async fn upload_file_over_the_image_limit_is_payload_too_large() {
    let app = spawn_app(|config| config.max_image_bytes = 1024).await;
    let id = app.add_available_pet("p").await;
    let mut big = PNG.to_vec();
    big.resize(2048, 0);
    expect_error(app.upload(id, big).await, 413, "PAYLOAD_TOO_LARGE").await;
    assert_eq!(app.pet(id).await["photoUrls"], json!([]));

    // Exactly at the limit is fine.
    let mut at_limit = PNG.to_vec();
    at_limit.resize(1024, 0);
    ok_json(app.upload(id, at_limit).await).await;
    app.shutdown().await;
}

#[tokio::test]
async fn upload_file_over_the_image_limit_without_a_content_length_is_payload_too_large() {
    let app = spawn_app(|config| config.max_image_bytes = 256).await;
    let id = app.add_available_pet("p").await;
    let path = format!("/pet/{id}/uploadImage");
    let mut big = PNG.to_vec();
    big.resize(1000, 0);
    let (status, body) = app
        .post_chunked(&path, "application/octet-stream", &big)
        .await;
    assert_eq!(status, 413, "{body}");
    assert_error_body(&body, 413, "PAYLOAD_TOO_LARGE");
    assert_eq!(app.pet(id).await["photoUrls"], json!([]));

    let (status, body) = app
        .post_chunked(&path, "application/octet-stream", GIF)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "image/gif");
    app.shutdown().await;
}

#[tokio::test]
async fn upload_file_with_too_long_additional_metadata_is_a_bad_request() {
    let app = spawn_app(|_| {}).await;
    let id = app.add_available_pet("p").await;
    let response = send(
        app.client
            .post(app.api(&format!("/pet/{id}/uploadImage")))
            .query(&[("additionalMetadata", "m".repeat(1001))])
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(PNG),
    )
    .await;
    expect_error(response, 400, "BAD_REQUEST").await;
    assert_eq!(app.pet(id).await["photoUrls"], json!([]));
    app.shutdown().await;
}

#[tokio::test]
async fn upload_file_of_non_image_bytes_is_unsupported_media_type() {
    let app = spawn_app(|_| {}).await;
    let id = app.add_available_pet("p").await;
    let not_images: [&[u8]; 3] = [
        b"hello, world",
        b"%PDF-1.7\n%\xe2\xe3",
        b"BM\x3a\x00\x00\x00",
    ];
    for bytes in not_images {
        expect_error(app.upload(id, bytes).await, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    }
    assert_eq!(app.pet(id).await["photoUrls"], json!([]));
    app.shutdown().await;
}

#[tokio::test]
async fn upload_file_with_a_non_octet_stream_content_type_is_unsupported_media_type() {
    let app = spawn_app(|_| {}).await;
    let id = app.add_available_pet("p").await;
    let path = format!("/pet/{id}/uploadImage");
    for content_type in [Some("application/json"), Some("text/plain"), None] {
        let response = app.send_raw(Method::POST, &path, content_type, PNG).await;
        expect_error(response, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn get_pet_image_of_an_unknown_image_or_pet_is_not_found() {
    let app = spawn_app(|_| {}).await;
    let id = app.add_available_pet("p").await;
    let other = app.add_available_pet("q").await;
    let answer = ok_json(app.upload(id, PNG).await).await;
    let Some(url) = answer["message"].as_str() else {
        panic!("no URL in {answer}");
    };
    let Some(image_id) = url.rsplit('/').next() else {
        panic!("no image id in {url}");
    };

    let unknown = "00000000-0000-4000-8000-000000000000";
    let response = app.get(&format!("/pet/{id}/image/{unknown}")).await;
    expect_error(response, 404, "NOT_FOUND").await;
    // The image belongs to `id`, not to `other`.
    let response = app.get(&format!("/pet/{other}/image/{image_id}")).await;
    expect_error(response, 404, "NOT_FOUND").await;
    let response = app.get(&format!("/pet/999/image/{image_id}")).await;
    expect_error(response, 404, "NOT_FOUND").await;
    app.shutdown().await;
}

#[tokio::test]
async fn get_pet_image_with_an_invalid_id_is_a_bad_request() {
    let app = spawn_app(|_| {}).await;
    let id = app.add_available_pet("p").await;
    let response = app.get(&format!("/pet/{id}/image/not-a-uuid")).await;
    expect_error(response, 400, "BAD_REQUEST").await;
    let response = app
        .get("/pet/abc/image/00000000-0000-4000-8000-000000000000")
        .await;
    expect_error(response, 400, "BAD_REQUEST").await;
    app.shutdown().await;
}
