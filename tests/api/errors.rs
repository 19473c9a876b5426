//! The edge of the server: unknown routes and methods, the request id, the operational
//! endpoints (`/health`, the API documents, Swagger UI) and the demo data switch.

use petstore_testkit::app::*;
use petstore_ws::config::Config;
use reqwest::Method;
use serde_json::{Value, json};

// ---- routing errors ----

#[tokio::test]
async fn an_unknown_route_is_a_json_not_found() {
    let app = spawn_app(|_| {}).await;
    for url in [
        app.api("/no/such/route"),
        app.api("/pets"),
        app.url("/"),
        app.url("/nowhere"),
    ] {
        let response = send(app.client.get(&url)).await;
        expect_error(response, 404, "NOT_FOUND").await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_wrong_method_on_a_known_route_is_a_json_method_not_allowed() {
    let app = spawn_app(|_| {}).await;
    let cases = [
        (Method::PATCH, "/pet"),
        (Method::GET, "/pet"),
        (Method::DELETE, "/store/inventory"),
        (Method::POST, "/user/login"),
        (Method::PUT, "/pet/findByStatus"),
        (Method::PATCH, "/pet/1"),
    ];
    for (method, path) in cases {
        let response = send(app.client.request(method.clone(), app.api(path))).await;
        let body = expect_json(response, 405).await;
        assert_error_body(&body, 405, "METHOD_NOT_ALLOWED");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn operational_endpoints_answer_other_methods_with_method_not_allowed() {
    let app = spawn_app(|_| {}).await;
    let urls = [
        app.url("/health"),
        app.api("/openapi.json"),
        app.api("/openapi.yaml"),
    ];
    let mut wrong = Vec::new();
    for url in urls {
        for method in [Method::POST, Method::PUT, Method::DELETE] {
            let response = send(app.client.request(method.clone(), &url)).await;
            if response.status() == 405 {
                let body = expect_json(response, 405).await;
                assert_error_body(&body, 405, "METHOD_NOT_ALLOWED");
            } else {
                wrong.push(format!("{method} {url} -> {}", response.status()));
            }
        }
    }
    assert!(wrong.is_empty(), "not answered with 405: {wrong:#?}");
    app.shutdown().await;
}

// ---- request ids ----

#[tokio::test]
async fn a_request_id_sent_by_the_client_is_echoed() {
    let app = spawn_app(|_| {}).await;
    let pet = app.add_available_pet("p").await;
    for path in [
        format!("/pet/{pet}"),
        "/pet/999".to_owned(),
        "/nope".to_owned(),
    ] {
        let response = send(
            app.client
                .get(app.api(&path))
                .header("x-request-id", "trace-me-42"),
        )
        .await;
        assert_eq!(
            header_text(&response, "x-request-id").as_deref(),
            Some("trace-me-42"),
            "{path}"
        );
    }
    let response = send(
        app.client
            .get(app.url("/health"))
            .header("x-request-id", "health-check"),
    )
    .await;
    assert_eq!(
        header_text(&response, "x-request-id").as_deref(),
        Some("health-check")
    );
    // Errors raised at the edge (routing, content type) carry it too.
    let response = send(
        app.client
            .patch(app.api("/pet"))
            .header("x-request-id", "wrong-method"),
    )
    .await;
    assert_eq!(response.status(), 405);
    assert_eq!(
        header_text(&response, "x-request-id").as_deref(),
        Some("wrong-method")
    );
    let response = send(
        app.client
            .post(app.api("/pet"))
            .header("x-request-id", "wrong-type")
            .header(reqwest::header::CONTENT_TYPE, "text/plain")
            .body("{}"),
    )
    .await;
    assert_eq!(response.status(), 415);
    assert_eq!(
        header_text(&response, "x-request-id").as_deref(),
        Some("wrong-type")
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_request_id_is_generated_when_none_is_sent() {
    let app = spawn_app(|_| {}).await;
    let first = app.get("/store/inventory").await;
    let second = app.get("/pet/999").await;
    let ids: Vec<String> = [&first, &second]
        .iter()
        .map(|response| match header_text(response, "x-request-id") {
            Some(id) if !id.is_empty() => id,
            other => panic!("no generated request id: {other:?}"),
        })
        .collect();
    assert_ne!(ids[0], ids[1], "each request gets its own id");
    app.shutdown().await;
}

#[tokio::test]
async fn an_oversized_request_id_is_replaced_by_a_generated_one() {
    let app = spawn_app(|_| {}).await;
    let long = "x".repeat(129);
    let response = send(
        app.client
            .get(app.api("/store/inventory"))
            .header("x-request-id", &long),
    )
    .await;
    let echoed = header_text(&response, "x-request-id");
    assert!(
        echoed
            .as_ref()
            .is_some_and(|id| !id.is_empty() && *id != long),
        "{echoed:?}"
    );
    app.shutdown().await;
}

// ---- operational endpoints ----

#[tokio::test]
async fn health_answers_ok_with_its_document() {
    let app = spawn_app(|_| {}).await;
    let health = ok_json(send(app.client.get(app.url("/health"))).await).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"), "{health}");
    assert!(
        health["nodeId"].as_str().is_some_and(|id| !id.is_empty()),
        "{health}"
    );
    assert!(health["uptimeSeconds"].is_u64(), "{health}");
    assert_eq!(health["store"]["status"], "ok", "{health}");
    assert!(health["store"]["latencyMs"].is_number(), "{health}");
    app.shutdown().await;
}

#[tokio::test]
async fn the_openapi_document_is_served_as_yaml_and_as_json() {
    let app = spawn_app(|_| {}).await;
    let response = app.get("/openapi.yaml").await;
    assert!(content_type(&response).contains("yaml"), "{response:?}");
    let yaml = ok_text(response).await;
    assert_eq!(yaml, include_str!("../../openapi.yaml"));

    let json = ok_json(app.get("/openapi.json").await).await;
    let from_yaml: Value = match serde_saphyr::from_str(&yaml) {
        Ok(document) => document,
        Err(error) => panic!("the served YAML does not parse: {error}"),
    };
    assert_eq!(
        json, from_yaml,
        "the JSON document is the YAML one, converted"
    );
    assert_eq!(json["openapi"], "3.0.3");
    assert_eq!(json["info"]["title"], "petstore-ws");
    assert_eq!(json["servers"], json!([{ "url": "/api/v3" }]));
    let Some(paths) = json["paths"].as_object() else {
        panic!("no paths in the JSON document");
    };
    for path in [
        "/pet",
        "/pet/findByStatus",
        "/pet/findByTags",
        "/pet/{petId}",
        "/pet/{petId}/uploadImage",
        "/pet/{petId}/image/{imageId}",
        "/store/inventory",
        "/store/order",
        "/store/order/{orderId}",
        "/user",
        "/user/createWithList",
        "/user/login",
        "/user/logout",
        "/user/{username}",
    ] {
        assert!(paths.contains_key(path), "{path} missing from openapi.json");
    }
    assert_eq!(json["paths"]["/pet"]["post"]["operationId"], "addPet");
    app.shutdown().await;
}

#[tokio::test]
async fn the_swagger_ui_is_served_under_docs() {
    let app = spawn_app(|_| {}).await;
    let response = app.get("/docs/").await;
    assert!(
        content_type(&response).starts_with("text/html"),
        "{response:?}"
    );
    let html = ok_text(response).await;
    assert!(html.to_lowercase().contains("swagger"), "not Swagger UI");
    app.shutdown().await;
}

// ---- demo data ----

#[tokio::test]
async fn demo_data_is_loaded_by_default() {
    // `spawn_app` empties the store unless told otherwise; put the server's own default back.
    let app = spawn_app(|config| config.no_demo_data = Config::defaults().no_demo_data).await;

    let pet = app.pet(1).await;
    assert_eq!(pet["name"], "Cat 1");
    for id in 1..=8 {
        app.pet(id).await;
    }
    assert_eq!(app.inventory().await, (4, 2, 2));
    let tagged = ok_json(app.get("/pet/findByTags?tags=tag1").await).await;
    assert_eq!(ids_of(&tagged), [1, 4, 7]);
    for id in 1..=4 {
        ok_json(app.get(&format!("/store/order/{id}")).await).await;
    }
    let delivered = ok_json(app.get("/store/order/3").await).await;
    assert_eq!(delivered["status"], "delivered");
    assert_eq!(delivered["complete"], true);

    for name in ["user1", "user2", "admin"] {
        let user = ok_json(app.get(&format!("/user/{name}")).await).await;
        assert!(user.get("password").is_none(), "{user}");
    }
    ok_json(app.login("user1", "user1-password").await).await;
    ok_json(app.login("admin", "admin-password").await).await;

    // New records get ids above the demo ones.
    let new_pet = app.add_available_pet("newcomer").await;
    assert!(new_pet > 8, "{new_pet}");
    app.shutdown().await;
}

#[tokio::test]
async fn demo_data_is_absent_with_no_demo_data() {
    let app = spawn_app(|config| config.no_demo_data = true).await;
    expect_error(app.get("/pet/1").await, 404, "NOT_FOUND").await;
    expect_error(app.get("/store/order/1").await, 404, "NOT_FOUND").await;
    expect_error(app.get("/user/user1").await, 404, "NOT_FOUND").await;
    expect_error(
        app.login("user1", "user1-password").await,
        400,
        "BAD_REQUEST",
    )
    .await;
    assert_eq!(app.inventory().await, (0, 0, 0));
    let all = ok_json(
        app.get("/pet/findByStatus?status=available&status=pending&status=sold")
            .await,
    )
    .await;
    assert_eq!(all, Value::Array(Vec::new()));
    app.shutdown().await;
}
