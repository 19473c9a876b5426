//! The direct lane (the reads the generated `DirectRoute` answers before poem-openapi's router)
//! answers exactly as the router does: on each store, two servers prepared alike, one with the
//! lane and one without (`--no-direct-routes`), get the same raw requests and must send back
//! the same bytes, status line, every header in order and body, all but `Date` (each request
//! names its request id, which the servers would otherwise make up differently, and the CORS
//! exposed headers are compared as a set, as poem lists them in a per-process order).
//!
//! The requests cover what the lane takes (a pet, an order, the inventory, logout; with a client request
//! id, an allowed origin, valid, invalid and missing credentials) and what it leaves to the
//! router (ids out of bounds or not numbers, a trailing slash, a query string, `HEAD`, other
//! methods), so a difference in either direction shows.

use std::net::IpAddr;

use ipnet::IpNet;

use petstore_testkit::{
    app::*,
    redis::{LocalRedis, Persistence},
};
use petstore_ws::config::Config;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const ALLOWED_ORIGIN: &str = "https://app.example.com";

/// The requests compared, as method, target and extra header lines; `{pet}` and `{order}` are
/// replaced by the ids the setup created.
const REQUESTS: &[(&str, &str, &[&str])] = &[
    ("GET", "/api/v3/pet/{pet}", &[]),
    ("GET", "/api/v3/pet/999999", &[]),
    ("GET", "/api/v3/pet/+{pet}", &[]),
    ("GET", "/api/v3/pet/0", &[]),
    ("GET", "/api/v3/pet/-1", &[]),
    ("GET", "/api/v3/pet/abc", &[]),
    ("GET", "/api/v3/pet/99999999999999999999", &[]),
    // The router decodes the segment (`1`); the lane, reading it as is, leaves it to the router.
    ("GET", "/api/v3/pet/%31", &[]),
    ("GET", "/api/v3/pet/{pet}/", &[]),
    ("GET", "/api/v3/pet/{pet}?verbose=1", &[]),
    ("HEAD", "/api/v3/pet/{pet}", &[]),
    ("DELETE", "/api/v3/pet/{pet}x", &[]),
    (
        "GET",
        "/api/v3/pet/{pet}",
        &["X-Request-Id: client-chosen-id-1"],
    ),
    (
        "GET",
        "/api/v3/pet/{pet}",
        &["Origin: https://app.example.com"],
    ),
    (
        "GET",
        "/api/v3/pet/{pet}",
        &["Origin: https://evil.example.com"],
    ),
    (
        "GET",
        "/api/v3/pet/{pet}",
        &["Authorization: Bearer not-a-token"],
    ),
    ("GET", "/api/v3/pet/{pet}", &[API_KEY_HEADER]),
    ("GET", "/api/v3/store/order/{order}", &[]),
    (
        "GET",
        "/api/v3/store/order/{order}",
        &["Authorization: Bearer not-a-token"],
    ),
    ("GET", "/api/v3/store/order/{order}", &[API_KEY_HEADER]),
    ("GET", "/api/v3/store/order/999999", &[API_KEY_HEADER]),
    ("GET", "/api/v3/store/order/0", &[API_KEY_HEADER]),
    ("GET", "/api/v3/store/inventory", &[]),
    ("GET", "/api/v3/store/inventory", &[API_KEY_HEADER]),
    (
        "GET",
        "/api/v3/store/inventory",
        &[API_KEY_HEADER, "Origin: https://app.example.com"],
    ),
    ("GET", "/api/v3/user/logout", &[]),
    (
        "GET",
        "/api/v3/user/logout",
        &["Authorization: Bearer not-a-token"],
    ),
];

/// The admin service key of every test server, as a header line.
const API_KEY_HEADER: &str = "api_key: test-admin-key-0123456789abcdefghijklmnopqrstuvwxyz";

#[tokio::test]
async fn the_direct_lane_answers_byte_for_byte_as_the_router_on_the_memory_store() {
    let direct = spawn_app(|config| tweak(config, false)).await;
    let routed = spawn_app(|config| tweak(config, true)).await;
    compare(&direct, &routed).await;
    direct.shutdown().await;
    routed.shutdown().await;
}

#[tokio::test]
async fn the_direct_lane_answers_byte_for_byte_as_the_router_on_the_redis_store() {
    // One Redis each, so both servers assign the same ids.
    let redis = [(); 2].map(|()| {
        LocalRedis::start(Persistence::None)
            .unwrap_or_else(|error| panic!("cannot start a private redis-server: {error}"))
    });
    let key = signing_key_in(redis[0].dir());
    let on_redis = |redis: &LocalRedis, no_direct_routes: bool| {
        let (url, key) = (redis.url(), key.clone());
        move |config: &mut Config| {
            tweak(config, no_direct_routes);
            config.redis_url = Some(url);
            config.jwt_private_key = Some(key);
        }
    };
    let direct = spawn_app(on_redis(&redis[0], false)).await;
    let routed = spawn_app(on_redis(&redis[1], true)).await;
    compare(&direct, &routed).await;
    direct.shutdown().await;
    routed.shutdown().await;
}

fn tweak(config: &mut Config, no_direct_routes: bool) {
    config.no_direct_routes = no_direct_routes;
    config.allowed_origins = vec![ALLOWED_ORIGIN.to_owned()];
}

/// Prepares both servers alike, then sends every request of [`REQUESTS`] to both.
async fn compare(direct: &TestApp, routed: &TestApp) {
    let mut ids = Vec::new();
    for app in [direct, routed] {
        let pet = id_of(
            &app.add_pet(json!({
                "name": "Rex",
                "photoUrls": ["https://example.com/rex.jpg"],
                "tags": [{ "id": 1, "name": "friendly" }]
            }))
            .await,
        );
        let order = id_of(
            &app.place_order(json!({
                "petId": pet,
                "quantity": 2,
                "shipDate": "2026-01-02T03:04:05Z",
                "status": "placed"
            }))
            .await,
        );
        ids.push((pet, order));
    }
    assert_eq!(ids[0], ids[1], "both servers must hold the same records");
    let (pet, order) = ids[0];
    let mut statuses = Vec::new();
    for (case, (method, target, headers)) in REQUESTS.iter().enumerate() {
        let target = target
            .replace("{pet}", &pet.to_string())
            .replace("{order}", &order.to_string());
        // Ids the servers make up are unique per process, so each request brings its own
        // (unless the case is about one).
        let own_id = format!("X-Request-Id: case-{case}");
        let mut headers = headers.to_vec();
        if !headers.iter().any(|line| line.starts_with("X-Request-Id")) {
            headers.push(&own_id);
        }
        let from_direct = exchange(direct, method, &target, &headers).await;
        let from_routed = exchange(routed, method, &target, &headers).await;
        assert_eq!(
            from_direct, from_routed,
            "{method} {target} {headers:?}: the direct lane (left) and the router (right) differ"
        );
        statuses.push(from_direct.lines().next().unwrap_or_default().to_owned());
    }
    // The comparison means something only if the answers are the ones each case is about.
    for (status, expected) in statuses.iter().zip([
        "200", "404", "200", "400", "400", "400", "400", "200", "404", "200", "200", "400", "200",
        "200", "403", "200", "200", "401", "401", "200", "404", "400", "401", "200", "200", "200",
        "200",
    ]) {
        assert!(
            status.starts_with(&format!("HTTP/1.1 {expected} ")),
            "{status}, expected {expected}; all: {statuses:#?}"
        );
    }
}

/// Sends one raw HTTP/1.1 request on a connection of its own and returns the whole answer as
/// text, with the `Date` header (the one part that may differ) taken out.
async fn exchange(app: &TestApp, method: &str, target: &str, headers: &[&str]) -> String {
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", app.addr);
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    let mut stream = TcpStream::connect(app.addr)
        .await
        .unwrap_or_else(|error| panic!("cannot connect: {error}"));
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|error| panic!("cannot send: {error}"));
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .unwrap_or_else(|error| panic!("cannot read the answer: {error}"));
    let answer =
        String::from_utf8(answer).unwrap_or_else(|error| panic!("the answer is not text: {error}"));
    answer
        .split_inclusive("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("date:"))
        .map(sorted_exposed_headers)
        .collect()
}

/// The line as is, unless it lists the exposed headers of a CORS answer: poem's CORS middleware
/// keeps them in a hash set, so each server lists them in an order of its own; sorted here.
fn sorted_exposed_headers(line: &str) -> String {
    const EXPOSED: &str = "access-control-expose-headers: ";
    match line.strip_prefix(EXPOSED) {
        Some(names) => {
            let mut names: Vec<&str> = names.trim_end().split(", ").collect();
            names.sort_unstable();
            format!("{EXPOSED}{}\r\n", names.join(", "))
        }
        None => line.to_owned(),
    }
}

/// A direct read is under the edge's request timeout like any other operation: with Redis
/// holding every command back (`CLIENT PAUSE`) and nothing cached, the read is cut off at the
/// timeout and answered 408, and the server answers again once Redis does.
#[tokio::test]
async fn a_direct_read_that_outlasts_the_request_timeout_is_answered_408() {
    let redis = LocalRedis::start(Persistence::None)
        .unwrap_or_else(|error| panic!("cannot start a private redis-server: {error}"));
    let key = signing_key_in(redis.dir());
    let url = redis.url();
    let app = spawn_app(move |config| {
        config.redis_url = Some(url);
        config.jwt_private_key = Some(key);
        config.redis_cache_entries = 0;
        config.redis_command_timeout_ms = 10_000;
        config.request_timeout_secs = 1;
        // The limiter counts on Redis too, before the operation's timeout starts; exempt, the
        // request reaches the read.
        config.rate_limit_exempt = vec![IpNet::from(IpAddr::from([127, 0, 0, 1]))];
    })
    .await;
    let pet = id_of(&app.add_pet(json!({ "name": "Rex", "photoUrls": [] })).await);

    let pause_ms = "4000";
    if let Err(error) = redis.command(&["CLIENT", "PAUSE", pause_ms, "ALL"]) {
        panic!("cannot pause Redis: {error}");
    }
    let response = app.get(&format!("/pet/{pet}")).await;
    expect_error(response, 408, "TIMEOUT").await;

    if let Err(error) = redis.command(&["CLIENT", "UNPAUSE"]) {
        panic!("cannot unpause Redis: {error}");
    }
    assert_eq!(id_of(&app.pet(pet).await), pet);
    app.shutdown().await;
}
