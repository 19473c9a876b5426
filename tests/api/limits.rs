//! Abuse limits over HTTP: the request rate limit (per address, per user, exemptions), client
//! addresses behind trusted proxies, the login throttle, the origin policy (CORS) and the
//! request timeout.
//!
//! Body size limits are covered where the bodies are (`api_pets`, `api_store`, `api_users`),
//! and the header-read timeout by `slow_clients`.
//!
//! Rate tests use a sustained rate of one request per minute where they count exactly, so a
//! slow machine cannot refill a budget in the middle of a test; the one test about refilling
//! uses one per second and waits for as long as `Retry-After` says, plus a margin.

use std::{num::NonZeroU32, time::Duration};

use ipnet::IpNet;
use petstore_testkit::app::*;
use reqwest::{Method, RequestBuilder, Response, header};
use serde_json::json;
use tokio::{io::AsyncWriteExt, net::TcpStream};

const PASSWORD: &str = "correct-horse-battery";

fn non_zero(value: u32) -> NonZeroU32 {
    match NonZeroU32::new(value) {
        Some(value) => value,
        None => panic!("a limit of zero"),
    }
}

fn network(text: &str) -> IpNet {
    match text.parse() {
        Ok(network) => network,
        Err(error) => panic!("{text} is not a network: {error}"),
    }
}

/// A server whose API requests are limited to bursts of `burst` and `per_minute` after that.
async fn rate_limited_app(per_minute: u32, burst: u32) -> TestApp {
    spawn_app(|config| {
        config.rate_limit_per_minute = non_zero(per_minute);
        config.rate_limit_burst = non_zero(burst);
    })
    .await
}

/// A public read that needs no fixtures.
fn public_read(app: &TestApp) -> RequestBuilder {
    app.anonymous.get(app.api("/pet/findByStatus"))
}

/// A response header as a number; it must be there.
fn number(response: &Response, name: &str) -> u64 {
    let value = header_text(response, name);
    match value.as_deref().map(str::parse) {
        Some(Ok(number)) => number,
        _ => panic!("{name} of {} is {value:?}", response.url()),
    }
}

/// Asserts a 429 `RATE_LIMITED` with `Retry-After` (at least a second) and the `RateLimit-*`
/// headers of a policy with bursts of `limit`; returns `Retry-After`.
async fn expect_rate_limited(response: Response, limit: u64) -> u64 {
    let retry_after = number(&response, "retry-after");
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    assert_eq!(number(&response, "ratelimit-limit"), limit);
    assert_eq!(number(&response, "ratelimit-remaining"), 0);
    number(&response, "ratelimit-reset");
    expect_error(response, 429, "RATE_LIMITED").await;
    retry_after
}

/// Sends `request()` until it is refused (at most `attempts` times); returns the refusal.
async fn until_refused(mut request: impl FnMut() -> RequestBuilder, attempts: usize) -> Response {
    for _ in 0..attempts {
        let response = send(request()).await;
        if response.status() == 429 {
            return response;
        }
        assert_eq!(
            response.status(),
            200,
            "before the limit: {}",
            response.url()
        );
    }
    panic!("still not rate limited after {attempts} requests");
}

// ---- request rate ----

#[tokio::test]
async fn requests_over_the_burst_are_refused_with_429_and_rate_limit_headers() {
    let app = rate_limited_app(1, 3).await;
    for remaining in [2, 1, 0] {
        let response = send(public_read(&app)).await;
        assert_eq!(number(&response, "ratelimit-limit"), 3);
        assert_eq!(number(&response, "ratelimit-remaining"), remaining);
        number(&response, "ratelimit-reset");
        ok_json(response).await;
    }
    expect_rate_limited(send(public_read(&app)).await, 3).await;
    // Refused on every operation, secured or not: the budget is the client's.
    expect_rate_limited(
        send(app.anonymous.get(app.api("/store/inventory"))).await,
        3,
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_rate_limited_client_is_served_again_once_retry_after_has_passed() {
    let app = rate_limited_app(60, 1).await;
    let refused = until_refused(|| public_read(&app), 5).await;
    let retry_after = expect_rate_limited(refused, 1).await;
    assert!(
        retry_after <= 60,
        "Retry-After {retry_after} for one request a second"
    );

    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(500)).await;
    ok_json(send(public_read(&app)).await).await;
    app.shutdown().await;
}

#[tokio::test]
async fn authenticated_requests_count_against_the_users_own_budget() {
    let app = rate_limited_app(1, 3).await;
    app.create_user("first", PASSWORD).await;
    app.create_user("second", PASSWORD).await;
    let (first, _) = app.create_token("first", PASSWORD).await;
    let (second, _) = app.create_token("second", PASSWORD).await;
    let as_user = |token: &str| bearer(public_read(&app), token);

    // The address has used up its budget...
    let refused = until_refused(|| public_read(&app), 5).await;
    expect_rate_limited(refused, 3).await;
    // ...but the users behind it each have theirs.
    let response = send(as_user(&first)).await;
    assert_eq!(number(&response, "ratelimit-remaining"), 2);
    ok_json(response).await;
    let refused = until_refused(|| as_user(&first), 3).await;
    expect_rate_limited(refused, 3).await;

    let response = send(as_user(&second)).await;
    assert_eq!(number(&response, "ratelimit-remaining"), 2);
    ok_json(response).await;
    app.shutdown().await;
}

#[tokio::test]
async fn clients_in_an_exempt_network_are_not_rate_limited() {
    let app = spawn_app(|config| {
        config.rate_limit_per_minute = non_zero(1);
        config.rate_limit_burst = non_zero(1);
        config.rate_limit_exempt = vec![network("127.0.0.1/32")];
    })
    .await;
    for _ in 0..10 {
        let response = send(public_read(&app)).await;
        assert!(
            header_text(&response, "ratelimit-remaining").is_none(),
            "an exempt client is not counted"
        );
        ok_json(response).await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn operational_endpoints_are_not_rate_limited() {
    let app = rate_limited_app(1, 1).await;
    let refused = until_refused(|| public_read(&app), 3).await;
    expect_rate_limited(refused, 1).await;
    for _ in 0..5 {
        ok_json(send(app.anonymous.get(app.url("/health"))).await).await;
        let jwks = send(app.anonymous.get(app.url("/.well-known/jwks.json"))).await;
        assert_eq!(jwks.status(), 200);
    }
    app.shutdown().await;
}

// ---- client addresses behind proxies ----

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_do_not_buy_a_new_budget() {
    let app = rate_limited_app(1, 2).await;
    let spoofed = [
        ("x-forwarded-for", "203.0.113.1"),
        ("forwarded", "for=203.0.113.2"),
        ("x-forwarded-for", "203.0.113.3"),
        ("forwarded", "for=\"[2001:db8::3]\""),
        ("x-forwarded-for", "198.51.100.7, 203.0.113.4"),
    ];
    for (index, (name, value)) in spoofed.into_iter().enumerate() {
        let response = send(public_read(&app).header(name, value)).await;
        if index < 2 {
            ok_json(response).await;
        } else {
            expect_rate_limited(response, 2).await;
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn each_client_behind_a_trusted_proxy_has_its_own_budget() {
    let app = spawn_app(|config| {
        config.rate_limit_per_minute = non_zero(1);
        config.rate_limit_burst = non_zero(2);
        config.trusted_proxies = vec![network("127.0.0.1/32")];
    })
    .await;
    let clients = [
        ("x-forwarded-for", "203.0.113.1"),
        ("forwarded", "for=203.0.113.2;proto=https"),
        ("x-forwarded-for", "198.51.100.9, 203.0.113.3"),
    ];
    for (name, value) in clients {
        for _ in 0..2 {
            ok_json(send(public_read(&app).header(name, value)).await).await;
        }
    }
    for (name, value) in clients {
        expect_rate_limited(send(public_read(&app).header(name, value)).await, 2).await;
    }
    // The proxy's own requests are a client of their own too.
    ok_json(send(public_read(&app)).await).await;
    app.shutdown().await;
}

// ---- login throttle ----

/// A server allowing `per_username` password attempts a minute per username and
/// `per_address` per client address, with the users `walker` and `runner`.
async fn login_throttled_app(per_username: u32, per_address: u32) -> TestApp {
    let app = spawn_app(|config| {
        config.login_attempts_per_minute = non_zero(per_username);
        config.login_attempts_per_ip_per_minute = non_zero(per_address);
    })
    .await;
    app.create_user("walker", PASSWORD).await;
    app.create_user("runner", PASSWORD).await;
    app
}

#[tokio::test]
async fn login_user_is_throttled_per_username_even_with_the_right_password() {
    let app = login_throttled_app(3, 1000).await;
    for _ in 0..3 {
        expect_error(
            app.login("walker", "wrong-password").await,
            400,
            "BAD_REQUEST",
        )
        .await;
    }
    expect_rate_limited_login(app.login("walker", PASSWORD).await).await;
    // Another account is not affected.
    ok_json(app.login("runner", PASSWORD).await).await;
    app.shutdown().await;
}

#[tokio::test]
async fn create_token_is_throttled_per_username_even_with_the_right_password() {
    let app = login_throttled_app(3, 1000).await;
    for _ in 0..3 {
        expect_unauthorized(app.request_token("walker", "wrong-password").await).await;
    }
    expect_rate_limited_login(app.request_token("walker", PASSWORD).await).await;
    app.create_token("runner", PASSWORD).await;
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_usernames_are_throttled_like_existing_ones() {
    let app = login_throttled_app(3, 1000).await;
    for _ in 0..3 {
        expect_error(app.login("nobody", PASSWORD).await, 400, "BAD_REQUEST").await;
        expect_error(
            app.login("walker", "wrong-password").await,
            400,
            "BAD_REQUEST",
        )
        .await;
    }
    let unknown = app.login("nobody", PASSWORD).await;
    let existing = app.login("walker", "wrong-password").await;
    let unknown = expect_rate_limited_login(unknown).await;
    let existing = expect_rate_limited_login(existing).await;
    assert_eq!(unknown["type"], existing["type"]);
    app.shutdown().await;
}

#[tokio::test]
async fn login_attempts_are_throttled_per_client_address_across_usernames() {
    let app = login_throttled_app(1000, 3).await;
    expect_error(
        app.login("walker", "wrong-password").await,
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        app.login("nobody", "wrong-password").await,
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_unauthorized(app.request_token("someone", "wrong-password").await).await;
    expect_rate_limited_login(app.request_token("runner", PASSWORD).await).await;
    expect_rate_limited_login(app.login("runner", PASSWORD).await).await;
    app.shutdown().await;
}

/// Asserts a throttled password attempt: 429 `RATE_LIMITED` with `Retry-After`.
async fn expect_rate_limited_login(response: Response) -> serde_json::Value {
    let retry_after = number(&response, "retry-after");
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    expect_error(response, 429, "RATE_LIMITED").await
}

// ---- origins ----

const ALLOWED_ORIGIN: &str = "https://app.example.com";

async fn app_with_allowed_origin() -> TestApp {
    spawn_app(|config| config.allowed_origins = vec![ALLOWED_ORIGIN.to_owned()]).await
}

fn preflight(app: &TestApp, origin: &str) -> RequestBuilder {
    app.anonymous
        .request(Method::OPTIONS, app.api("/pet/1"))
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered() {
    let app = app_with_allowed_origin().await;
    let response = send(preflight(&app, ALLOWED_ORIGIN)).await;
    assert!(
        response.status().is_success(),
        "preflight status {}",
        response.status()
    );
    assert_eq!(
        header_text(&response, "access-control-allow-origin").as_deref(),
        Some(ALLOWED_ORIGIN)
    );
    let methods = header_text(&response, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("GET"), "allowed methods {methods:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_request_from_an_allowed_origin_carries_cors_headers() {
    let app = app_with_allowed_origin().await;
    let response = send(public_read(&app).header(header::ORIGIN, ALLOWED_ORIGIN)).await;
    assert_eq!(
        header_text(&response, "access-control-allow-origin").as_deref(),
        Some(ALLOWED_ORIGIN)
    );
    let vary: Vec<String> = response
        .headers()
        .get_all(header::VARY)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::to_ascii_lowercase)
        .collect();
    assert!(
        vary.iter()
            .any(|value| value.split(',').any(|name| name.trim() == "origin")),
        "Vary: {vary:?}"
    );
    ok_json(response).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_browser_may_read_the_request_id_and_every_documented_response_header() {
    let app = app_with_allowed_origin().await;
    let response = send(public_read(&app).header(header::ORIGIN, ALLOWED_ORIGIN)).await;
    let exposed: Vec<String> = response
        .headers()
        .get_all(header::ACCESS_CONTROL_EXPOSE_HEADERS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    for name in std::iter::once("x-request-id")
        .chain(petstore_api::operations::RESPONSE_HEADERS)
        .map(str::to_ascii_lowercase)
    {
        assert!(
            exposed.contains(&name),
            "{name} is not exposed: {exposed:?}"
        );
    }
    // The rate-limit and login headers among them, as the spec documents them.
    for name in [
        "retry-after",
        "ratelimit-limit",
        "x-rate-limit",
        "x-expires-after",
    ] {
        assert!(exposed.iter().any(|exposed| exposed == name), "{name}");
    }
    ok_json(response).await;
    app.shutdown().await;
}

#[tokio::test]
async fn requests_and_preflights_from_a_foreign_origin_are_forbidden() {
    let app = app_with_allowed_origin().await;
    for request in [
        public_read(&app).header(header::ORIGIN, "https://evil.example"),
        preflight(&app, "https://evil.example"),
        // Not the allowed origin: another scheme, another port, a look-alike host.
        public_read(&app).header(header::ORIGIN, "http://app.example.com"),
        public_read(&app).header(header::ORIGIN, "https://app.example.com:8443"),
        public_read(&app).header(header::ORIGIN, "https://app.example.com.evil.example"),
    ] {
        let response = send(request).await;
        assert!(
            header_text(&response, "access-control-allow-origin").is_none(),
            "a refused origin got CORS headers"
        );
        expect_error(response, 403, "FORBIDDEN").await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn same_origin_and_origin_less_requests_are_allowed() {
    let app = app_with_allowed_origin().await;
    let same_origin = send(public_read(&app).header(header::ORIGIN, app.base_url.as_str())).await;
    ok_json(same_origin).await;

    let without_origin = send(public_read(&app)).await;
    assert!(
        header_text(&without_origin, "access-control-allow-origin").is_none(),
        "CORS headers without an Origin"
    );
    ok_json(without_origin).await;
    app.shutdown().await;
}

// ---- request timeout ----

/// Reads one HTTP/1.1 response from `stream`: its status and JSON body.
async fn read_response(stream: &mut TcpStream) -> (u16, serde_json::Value) {
    let text = read_http_response(stream, Duration::from_secs(10)).await;
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        panic!("not an HTTP response: {text:?}");
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    match serde_json::from_str(body) {
        Ok(body) => (status, body),
        Err(error) => panic!("the {status} body is not JSON ({error}): {body:?}"),
    }
}

#[tokio::test]
async fn a_request_whose_body_never_arrives_is_answered_with_408() {
    let app = spawn_app(|config| config.request_timeout_secs = 1).await;
    let mut stream = match TcpStream::connect(app.addr).await {
        Ok(stream) => stream,
        Err(error) => panic!("cannot connect to {}: {error}", app.addr),
    };
    let head = format!(
        "POST {API_BASE}/pet HTTP/1.1\r\nHost: {}\r\napi_key: {ADMIN_API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        app.addr
    );
    if let Err(error) = stream.write_all(head.as_bytes()).await {
        panic!("cannot send the request head: {error}");
    }
    let Ok((status, body)) =
        tokio::time::timeout(Duration::from_secs(10), read_response(&mut stream)).await
    else {
        panic!("no answer within 10 s to a request whose body never came");
    };
    assert_eq!(status, 408, "{body}");
    assert_error_body(&body, 408, "TIMEOUT");
    drop(stream);

    // The server is fine, and a complete request is not cut off.
    let pet = app
        .add_pet(json!({ "name": "patient", "photoUrls": [] }))
        .await;
    id_of(&pet);
    app.shutdown().await;
}
