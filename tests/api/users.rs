//! Users over HTTP: `createUser`, `createUsersWithListInput`, `loginUser`, `logoutUser`,
//! `getUserByName`, `updateUser` and `deleteUser`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use petstore_testkit::app::*;
use reqwest::{Method, header};
use serde_json::{Value, json};

const PASSWORD: &str = "correct-horse-battery";

/// A valid user body with a password.
fn user_body(username: &str) -> Value {
    json!({
        "username": username,
        "firstName": "Jo",
        "lastName": "Doe",
        "email": format!("{username}@example.com"),
        "password": PASSWORD,
        "phone": "+1 (555) 0100",
        "userStatus": 1
    })
}

/// Decodes one base64url segment of a JWT as JSON.
fn jwt_segment(segment: &str) -> Value {
    let bytes = match URL_SAFE_NO_PAD.decode(segment) {
        Ok(bytes) => bytes,
        Err(error) => panic!("JWT segment {segment:?} is not base64url: {error}"),
    };
    match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(error) => panic!("JWT segment {segment:?} is not JSON: {error}"),
    }
}

// ---- createUser ----

#[tokio::test]
async fn create_user_stores_the_user_and_never_returns_the_password() {
    let app = spawn_app(|_| {}).await;
    let body = user_body("jo.doe");
    let created = ok_json(app.post_json("/user", &body).await).await;

    assert!(created.get("password").is_none(), "{created}");
    let id = id_of(&created);
    let mut expected = body;
    if let Some(object) = expected.as_object_mut() {
        object.remove("password");
    }
    expected["id"] = json!(id);
    assert_eq!(created, expected);

    let fetched = ok_json(app.get("/user/jo.doe").await).await;
    assert_eq!(fetched, expected);
    assert!(!fetched.to_string().contains(PASSWORD));
    app.shutdown().await;
}

#[tokio::test]
async fn create_user_with_a_taken_username_is_a_conflict() {
    let app = spawn_app(|_| {}).await;
    let first = app.create_user("taken", PASSWORD).await;
    let mut again = user_body("taken");
    again["firstName"] = json!("Other");
    expect_error(app.post_json("/user", &again).await, 409, "CONFLICT").await;
    assert_eq!(ok_json(app.get("/user/taken").await).await, first);
    app.shutdown().await;
}

#[tokio::test]
async fn create_user_with_a_taken_id_is_a_conflict() {
    let app = spawn_app(|_| {}).await;
    let mut first = user_body("first");
    first["id"] = json!(50);
    ok_json(app.post_json("/user", &first).await).await;
    let mut second = user_body("second");
    second["id"] = json!(50);
    expect_error(app.post_json("/user", &second).await, 409, "CONFLICT").await;
    expect_error(app.get("/user/second").await, 404, "NOT_FOUND").await;
    app.shutdown().await;
}

#[tokio::test]
async fn create_user_without_a_password_is_a_validation_error_on_password() {
    let app = spawn_app(|_| {}).await;
    let response = app
        .post_json("/user", &json!({ "username": "nopass" }))
        .await;
    assert_eq!(validation_paths(response).await, ["password"]);
    expect_error(app.get("/user/nopass").await, 404, "NOT_FOUND").await;
    app.shutdown().await;
}

#[tokio::test]
async fn create_user_breaking_patterns_and_lengths_is_a_validation_error_with_every_path() {
    let app = spawn_app(|_| {}).await;
    let cases = [
        (json!({ "password": PASSWORD }), vec!["username"]),
        (
            json!({ "username": "a b", "password": PASSWORD }),
            vec!["username"],
        ),
        (
            json!({ "username": "ab", "password": PASSWORD }),
            vec!["username"],
        ),
        (
            json!({ "username": "x".repeat(33), "password": PASSWORD }),
            vec!["username"],
        ),
        (
            json!({ "username": "okay", "password": "short" }),
            vec!["password"],
        ),
        (
            json!({
                "id": 0,
                "username": "bad/name",
                "firstName": "f".repeat(101),
                "lastName": 7,
                "email": "not-an-email",
                "password": "x".repeat(129),
                "phone": "call me",
                "userStatus": "active"
            }),
            vec![
                "id",
                "username",
                "firstName",
                "lastName",
                "email",
                "password",
                "phone",
                "userStatus",
            ],
        ),
    ];
    for (body, paths) in cases {
        let response = app.post_json("/user", &body).await;
        assert_eq!(validation_paths(response).await, paths, "body {body}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn create_user_with_malformed_json_or_another_content_type_is_refused() {
    let app = spawn_app(|config| config.max_json_body_bytes = 200).await;
    let response = app
        .send_raw(
            Method::POST,
            "/user",
            Some("application/json"),
            "{\"username\"",
        )
        .await;
    expect_error(response, 400, "BAD_REQUEST").await;
    let response = app
        .send_raw(
            Method::POST,
            "/user",
            Some("application/x-www-form-urlencoded"),
            "username=abc&password=secret-secret",
        )
        .await;
    expect_error(response, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    let mut big = user_body("big");
    big["firstName"] = json!("f".repeat(300));
    expect_error(app.post_json("/user", &big).await, 413, "PAYLOAD_TOO_LARGE").await;
    app.shutdown().await;
}

// ---- createUsersWithListInput ----

#[tokio::test]
async fn create_users_with_list_input_creates_all_and_returns_the_last() {
    let app = spawn_app(|_| {}).await;
    let list = json!([user_body("alpha"), user_body("bravo"), user_body("charlie")]);
    let last = ok_json(app.post_json("/user/createWithList", &list).await).await;
    assert_eq!(last["username"], "charlie");
    assert!(last.get("password").is_none(), "{last}");

    let mut ids = Vec::new();
    for name in ["alpha", "bravo", "charlie"] {
        let user = ok_json(app.get(&format!("/user/{name}")).await).await;
        assert!(user.get("password").is_none(), "{user}");
        ids.push(id_of(&user));
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "distinct ids");
    for name in ["alpha", "bravo", "charlie"] {
        ok_json(app.login(name, PASSWORD).await).await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn create_users_with_list_input_with_a_taken_username_creates_none() {
    let app = spawn_app(|_| {}).await;
    app.create_user("existing", PASSWORD).await;
    let list = json!([
        user_body("fresh1"),
        user_body("existing"),
        user_body("fresh2")
    ]);
    let response = app.post_json("/user/createWithList", &list).await;
    expect_error(response, 409, "CONFLICT").await;
    for name in ["fresh1", "fresh2"] {
        expect_error(app.get(&format!("/user/{name}")).await, 404, "NOT_FOUND").await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn create_users_with_list_input_with_a_name_twice_creates_none() {
    let app = spawn_app(|_| {}).await;
    let list = json!([user_body("twin"), user_body("single"), user_body("twin")]);
    let response = app.post_json("/user/createWithList", &list).await;
    expect_error(response, 409, "CONFLICT").await;
    for name in ["twin", "single"] {
        expect_error(app.get(&format!("/user/{name}")).await, 404, "NOT_FOUND").await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn create_users_with_list_input_with_an_invalid_user_creates_none() {
    let app = spawn_app(|_| {}).await;
    let list = json!([
        user_body("valid1"),
        { "username": "nopassword" },
        user_body("valid2")
    ]);
    let response = app.post_json("/user/createWithList", &list).await;
    assert_eq!(validation_paths(response).await, ["[1].password"]);

    let list = json!([user_body("valid1"), { "username": "x", "password": PASSWORD }]);
    let response = app.post_json("/user/createWithList", &list).await;
    assert_eq!(validation_paths(response).await, ["[1].username"]);

    for name in ["valid1", "valid2", "nopassword"] {
        expect_error(app.get(&format!("/user/{name}")).await, 404, "NOT_FOUND").await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn create_users_with_list_input_refuses_empty_oversized_and_non_list_bodies() {
    let app = spawn_app(|_| {}).await;
    let response = app.post_json("/user/createWithList", &json!([])).await;
    assert_eq!(validation_paths(response).await, [""]);
    let many: Vec<Value> = (0..101)
        .map(|i| user_body(&format!("user{i:03}")))
        .collect();
    let response = app.post_json("/user/createWithList", &json!(many)).await;
    assert_eq!(validation_paths(response).await, [""]);
    let response = app
        .post_json("/user/createWithList", &user_body("lonely"))
        .await;
    assert_eq!(validation_paths(response).await, [""]);
    let response = app
        .send_raw(
            Method::POST,
            "/user/createWithList",
            Some("application/json"),
            "[{",
        )
        .await;
    expect_error(response, 400, "BAD_REQUEST").await;
    let response = app
        .send_raw(
            Method::POST,
            "/user/createWithList",
            Some("text/csv"),
            "a,b",
        )
        .await;
    expect_error(response, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    app.shutdown().await;
}

#[tokio::test]
async fn create_users_with_list_input_over_the_json_limit_is_payload_too_large() {
    let app = spawn_app(|config| config.max_json_body_bytes = 256).await;
    let list = json!([user_body("one"), user_body("two"), user_body("three")]);
    let response = app.post_json("/user/createWithList", &list).await;
    expect_error(response, 413, "PAYLOAD_TOO_LARGE").await;
    expect_error(app.get("/user/one").await, 404, "NOT_FOUND").await;
    app.shutdown().await;
}

// ---- loginUser ----

#[tokio::test]
async fn login_user_returns_a_jwt_with_rate_limit_and_expiry_headers() {
    let app = spawn_app(|config| {
        config.rate_limit_per_minute = std::num::NonZeroU32::new(20).expect("non-zero");
    })
    .await;
    app.create_user("walker", PASSWORD).await;

    let response = app.login("walker", PASSWORD).await;
    let rate_limit = header_text(&response, "x-rate-limit");
    let expires_after = header_text(&response, "x-expires-after");
    let token = ok_json(response).await;

    let Some(token) = token.as_str() else {
        panic!("the token is not a JSON string: {token}");
    };
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {token}");
    assert!(parts.iter().all(|part| !part.is_empty()), "{token}");
    let header = jwt_segment(parts[0]);
    assert_eq!(header["alg"], "RS256", "{header}");
    let claims = jwt_segment(parts[1]);
    assert_eq!(claims["sub"], "walker", "{claims}");

    // The sustained per-user rate, per hour.
    assert_eq!(rate_limit.as_deref(), Some("1200"));
    let Some(expires_after) = expires_after else {
        panic!("no X-Expires-After header");
    };
    let expires = match chrono::DateTime::parse_from_rfc3339(&expires_after) {
        Ok(expires) => expires,
        Err(error) => panic!("X-Expires-After {expires_after:?} is not RFC 3339: {error}"),
    };
    assert!(
        expires > chrono::Utc::now(),
        "X-Expires-After {expires_after} is not in the future"
    );
    assert_eq!(
        claims["exp"],
        json!(expires.timestamp()),
        "X-Expires-After is the token's expiry"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn login_user_with_a_wrong_password_or_unknown_user_is_the_same_bad_request() {
    let app = spawn_app(|_| {}).await;
    app.create_user("walker", PASSWORD).await;

    let wrong_password = expect_error(
        app.login("walker", "not-the-password").await,
        400,
        "BAD_REQUEST",
    )
    .await;
    let unknown_user = expect_error(app.login("nobody", PASSWORD).await, 400, "BAD_REQUEST").await;
    assert_eq!(wrong_password, unknown_user);
    app.shutdown().await;
}

#[tokio::test]
async fn login_user_with_missing_or_invalid_parameters_is_a_bad_request() {
    let app = spawn_app(|_| {}).await;
    for query in [
        "",
        "?username=walker",
        "?password=secret-password",
        "?username=a%20b&password=secret-password",
        "?username=walker&password=",
    ] {
        let response = app.get(&format!("/user/login{query}")).await;
        expect_error(response, 400, "BAD_REQUEST").await;
    }
    app.shutdown().await;
}

// ---- logoutUser ----

#[tokio::test]
async fn logout_user_succeeds_with_and_without_a_token() {
    let app = spawn_app(|_| {}).await;
    app.create_user("walker", PASSWORD).await;
    let token = ok_json(app.login("walker", PASSWORD).await).await;
    let Some(token) = token.as_str() else {
        panic!("the token is not a JSON string: {token}");
    };

    ok_text(app.get("/user/logout").await).await;
    let with_token = send(
        app.client
            .get(app.api("/user/logout"))
            .header(header::AUTHORIZATION, format!("Bearer {token}")),
    )
    .await;
    ok_text(with_token).await;
    // Logging out again, or with a token that is not one, is still fine.
    for authorization in [format!("Bearer {token}"), "Bearer garbage".to_owned()] {
        let response = send(
            app.client
                .get(app.api("/user/logout"))
                .header(header::AUTHORIZATION, authorization),
        )
        .await;
        ok_text(response).await;
    }
    app.shutdown().await;
}

// ---- getUserByName ----

#[tokio::test]
async fn get_user_by_name_of_an_unknown_or_invalid_name_is_refused() {
    let app = spawn_app(|_| {}).await;
    expect_error(app.get("/user/nobody").await, 404, "NOT_FOUND").await;
    expect_error(app.get("/user/ab").await, 400, "BAD_REQUEST").await;
    expect_error(app.get("/user/a%20b%20c").await, 400, "BAD_REQUEST").await;
    app.shutdown().await;
}

#[tokio::test]
async fn get_user_by_name_is_case_sensitive() {
    let app = spawn_app(|_| {}).await;
    app.create_user("Walker", PASSWORD).await;
    ok_json(app.get("/user/Walker").await).await;
    expect_error(app.get("/user/walker").await, 404, "NOT_FOUND").await;
    app.shutdown().await;
}

// ---- updateUser ----

#[tokio::test]
async fn update_user_replaces_the_fields_and_keeps_the_password_when_none_is_given() {
    let app = spawn_app(|_| {}).await;
    let created = app.create_user("walker", PASSWORD).await;
    let body = json!({ "username": "walker", "firstName": "New", "email": "new@example.com" });
    ok_text(app.put_json("/user/walker", &body).await).await;

    let user = ok_json(app.get("/user/walker").await).await;
    assert_eq!(
        user,
        json!({
            "id": created["id"],
            "username": "walker",
            "firstName": "New",
            "email": "new@example.com"
        })
    );
    ok_json(app.login("walker", PASSWORD).await).await;
    app.shutdown().await;
}

#[tokio::test]
async fn update_user_with_a_new_password_makes_it_the_one_to_log_in_with() {
    let app = spawn_app(|_| {}).await;
    app.create_user("walker", PASSWORD).await;
    let body = json!({ "username": "walker", "password": "a-brand-new-password" });
    ok_text(app.put_json("/user/walker", &body).await).await;

    ok_json(app.login("walker", "a-brand-new-password").await).await;
    expect_error(app.login("walker", PASSWORD).await, 400, "BAD_REQUEST").await;
    app.shutdown().await;
}

#[tokio::test]
async fn update_user_with_another_username_renames_the_user() {
    let app = spawn_app(|_| {}).await;
    let created = app.create_user("before", PASSWORD).await;
    let body = json!({ "username": "after", "firstName": "Renamed" });
    ok_text(app.put_json("/user/before", &body).await).await;

    expect_error(app.get("/user/before").await, 404, "NOT_FOUND").await;
    let renamed = ok_json(app.get("/user/after").await).await;
    assert_eq!(renamed["id"], created["id"]);
    assert_eq!(renamed["firstName"], "Renamed");
    ok_json(app.login("after", PASSWORD).await).await;
    expect_error(app.login("before", PASSWORD).await, 400, "BAD_REQUEST").await;
    // The old name is free again.
    app.create_user("before", PASSWORD).await;
    app.shutdown().await;
}

#[tokio::test]
async fn update_user_renaming_to_a_taken_username_is_a_conflict() {
    let app = spawn_app(|_| {}).await;
    let mover = app.create_user("mover", PASSWORD).await;
    let holder = app.create_user("holder", PASSWORD).await;
    let response = app
        .put_json("/user/mover", &json!({ "username": "holder" }))
        .await;
    expect_error(response, 409, "CONFLICT").await;
    assert_eq!(ok_json(app.get("/user/mover").await).await, mover);
    assert_eq!(ok_json(app.get("/user/holder").await).await, holder);
    app.shutdown().await;
}

#[tokio::test]
async fn update_user_taking_another_users_id_is_a_conflict() {
    let app = spawn_app(|_| {}).await;
    app.create_user("mover", PASSWORD).await;
    let holder = app.create_user("holder", PASSWORD).await;
    let response = app
        .put_json(
            "/user/mover",
            &json!({ "id": holder["id"], "username": "mover" }),
        )
        .await;
    expect_error(response, 409, "CONFLICT").await;
    app.shutdown().await;
}

#[tokio::test]
async fn update_user_of_an_unknown_user_is_not_found() {
    let app = spawn_app(|_| {}).await;
    let response = app
        .put_json("/user/nobody", &json!({ "username": "nobody" }))
        .await;
    expect_error(response, 404, "NOT_FOUND").await;
    app.shutdown().await;
}

#[tokio::test]
async fn update_user_rejects_bad_input_with_the_documented_statuses() {
    let app = spawn_app(|config| config.max_json_body_bytes = 200).await;
    let created = app.create_user("walker", PASSWORD).await;

    let response = app
        .put_json(
            "/user/walker",
            &json!({ "username": "no spaces", "email": "x", "password": "short" }),
        )
        .await;
    assert_eq!(
        validation_paths(response).await,
        ["username", "email", "password"]
    );
    let response = app
        .put_json("/user/walker", &json!({ "firstName": "NoName" }))
        .await;
    assert_eq!(validation_paths(response).await, ["username"]);
    let response = app
        .send_raw(Method::PUT, "/user/walker", Some("application/json"), "{,}")
        .await;
    expect_error(response, 400, "BAD_REQUEST").await;
    let response = app
        .put_json("/user/x", &json!({ "username": "walker" }))
        .await;
    expect_error(response, 400, "BAD_REQUEST").await;
    let response = app
        .send_raw(
            Method::PUT,
            "/user/walker",
            Some("text/plain"),
            json!({ "username": "walker" }).to_string(),
        )
        .await;
    expect_error(response, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    let response = app
        .put_json(
            "/user/walker",
            &json!({ "username": "walker", "lastName": "l".repeat(300) }),
        )
        .await;
    expect_error(response, 413, "PAYLOAD_TOO_LARGE").await;

    assert_eq!(ok_json(app.get("/user/walker").await).await, created);
    app.shutdown().await;
}

// ---- deleteUser ----

#[tokio::test]
async fn delete_user_removes_the_user_and_its_login() {
    let app = spawn_app(|_| {}).await;
    app.create_user("leaver", PASSWORD).await;
    app.create_user("stayer", PASSWORD).await;
    ok_text(app.delete("/user/leaver").await).await;

    expect_error(app.get("/user/leaver").await, 404, "NOT_FOUND").await;
    expect_error(app.login("leaver", PASSWORD).await, 400, "BAD_REQUEST").await;
    expect_error(app.delete("/user/leaver").await, 404, "NOT_FOUND").await;
    ok_json(app.get("/user/stayer").await).await;
    // The name can be registered again.
    app.create_user("leaver", PASSWORD).await;
    app.shutdown().await;
}

#[tokio::test]
async fn delete_user_of_an_unknown_or_invalid_name_is_refused() {
    let app = spawn_app(|_| {}).await;
    expect_error(app.delete("/user/nobody").await, 404, "NOT_FOUND").await;
    expect_error(app.delete("/user/no").await, 400, "BAD_REQUEST").await;
    app.shutdown().await;
}
