//! Observability, black-box: `/metrics` (each family present with `HELP` and `TYPE`, and moving
//! when what it counts happens, MCP tool calls included), `/health` (its message-queue section following a WebSocket
//! session's queue as it fills and drains), `/ready` and `/live`.
//!
//! Metrics are process-wide (every server of a process reports into the same families), so the
//! tests of this file take turns ([`metrics_turn`], with every other test of this binary that
//! starts a server), all of them, and compare scrapes taken before and after what they do: the
//! differences are then exactly what the test caused.

use std::{
    num::NonZeroU32,
    time::{Duration, Instant},
};

use crate::exposition::Exposition;
use petstore_testkit::{
    app::{
        ADMIN_API_KEY, TestApp, bearer, body_json, expect_error, header_text, ok_json, ok_text,
        send, spawn_app,
    },
    mcp::{Credentials, McpClient},
    ws::{feed_text, flush, guard, next_json, request},
};
use petstore_ws::config::Config;
use reqwest::header;
use serde_json::{Value, json};
use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::metrics_turn;

/// `GET /metrics`, checked to be the Prometheus text format, parsed.
async fn scrape(app: &TestApp) -> Exposition {
    let response = send(app.anonymous.get(app.url("/metrics"))).await;
    let content_type = petstore_testkit::app::content_type(&response);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "content type {content_type:?}"
    );
    Exposition::parse(&ok_text(response).await)
}

const REQUESTS: &str = "petstore_http_requests_total";
const DURATION_COUNT: &str = "petstore_http_request_duration_seconds_count";
const DURATION_BUCKET: &str = "petstore_http_request_duration_seconds_bucket";
const DURATION_SUM: &str = "petstore_http_request_duration_seconds_sum";
const AUTH: &str = "petstore_auth_attempts_total";
const RATE_LIMITED: &str = "petstore_rate_limit_rejections_total";
const ORIGINS: &str = "petstore_origin_rejections_total";
const ABORTED: &str = "petstore_http_requests_aborted_total";
const IN_FLIGHT: &str = "petstore_http_requests_in_flight";

/// How much a series (the sum of the samples with these labels) moved between two scrapes.
fn moved(before: &Exposition, after: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.sum(name, labels) - before.sum(name, labels)
}

#[tokio::test]
async fn every_family_is_exported_with_help_and_type() {
    let _turn = metrics_turn().await;
    let app = spawn_app(|_| {}).await;
    // One request, so the request families have a sample.
    ok_text(send(app.anonymous.get(app.url("/live"))).await).await;
    let metrics = scrape(&app).await;
    for (family, kind) in [
        (REQUESTS, "counter"),
        ("petstore_http_request_duration_seconds", "histogram"),
        (IN_FLIGHT, "gauge"),
        (ABORTED, "counter"),
        (AUTH, "counter"),
        (RATE_LIMITED, "counter"),
        (ORIGINS, "counter"),
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
        ("petstore_uptime_seconds", "gauge"),
        ("petstore_build_info", "gauge"),
    ] {
        assert_eq!(
            metrics.types.get(family).map(String::as_str),
            Some(kind),
            "TYPE of {family}"
        );
        assert!(metrics.helped.contains(family), "no HELP for {family}");
    }
    // The exporter's per-point scope labels are off.
    assert!(
        metrics
            .samples
            .iter()
            .all(|sample| sample.labels.keys().all(|key| !key.starts_with("otel_"))),
        "otel_* labels are exported"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn get_pet_by_id_moves_its_request_counter_and_latency_histogram() {
    let _turn = metrics_turn().await;
    let app = spawn_app(|_| {}).await;
    let pet = app.add_available_pet("Rex").await;
    let before = scrape(&app).await;
    for _ in 0..2 {
        ok_json(send(app.anonymous.get(app.api(&format!("/pet/{pet}")))).await).await;
    }
    expect_error(
        send(app.anonymous.get(app.api("/pet/999999"))).await,
        404,
        "NOT_FOUND",
    )
    .await;
    let after = scrape(&app).await;

    let ok = [
        ("operation", "getPetById"),
        ("method", "GET"),
        ("status", "200"),
    ];
    let not_found = [
        ("operation", "getPetById"),
        ("method", "GET"),
        ("status", "404"),
    ];
    assert_eq!(moved(&before, &after, REQUESTS, &ok), 2.0);
    assert_eq!(moved(&before, &after, REQUESTS, &not_found), 1.0);
    assert_eq!(moved(&before, &after, DURATION_COUNT, &ok), 2.0);
    assert_eq!(moved(&before, &after, DURATION_COUNT, &not_found), 1.0);
    let mut infinite = ok.to_vec();
    infinite.push(("le", "+Inf"));
    assert_eq!(moved(&before, &after, DURATION_BUCKET, &infinite), 2.0);
    assert!(moved(&before, &after, DURATION_SUM, &ok) > 0.0);
    // The operational routes are labelled too: the scrape before this one counted itself.
    assert!(
        after.sum(
            REQUESTS,
            &[
                ("operation", "metrics"),
                ("method", "GET"),
                ("status", "200")
            ]
        ) >= 1.0
    );
    app.shutdown().await;
}

#[tokio::test]
async fn mcp_tool_calls_are_counted_by_tool_result_and_error_code() {
    let _turn = metrics_turn().await;
    let app = spawn_app(|_| {}).await;
    let pet = app.add_available_pet("Rex").await;
    let before = scrape(&app).await;
    for (family, kind) in [
        ("petstore_mcp_tool_calls_total", "counter"),
        ("petstore_mcp_tool_call_duration_seconds", "histogram"),
        ("petstore_mcp_tool_errors_total", "counter"),
        ("petstore_mcp_requests_total", "counter"),
        ("petstore_mcp_sessions", "gauge"),
        ("petstore_mcp_sessions_refused_total", "counter"),
        ("petstore_mcp_resource_updates_total", "counter"),
    ] {
        assert_eq!(
            before.types.get(family).map(String::as_str),
            Some(kind),
            "TYPE of {family}"
        );
        assert!(before.helped.contains(family), "no HELP for {family}");
    }
    let mut client = McpClient::connect(&app.base_url, Credentials::None).await;
    client
        .call_tool("getPetById", json!({ "petId": pet }))
        .await;
    client
        .call_tool("getPetById", json!({ "petId": 999_999 }))
        .await;
    let during = scrape(&app).await;
    client.close().await;
    let calls = "petstore_mcp_tool_calls_total";
    let tool = ("tool", "getPetById");
    assert_eq!(
        moved(&before, &during, calls, &[tool, ("result", "success")]),
        1.0
    );
    assert_eq!(
        moved(&before, &during, calls, &[tool, ("result", "error")]),
        1.0
    );
    assert_eq!(
        moved(
            &before,
            &during,
            "petstore_mcp_tool_errors_total",
            &[("code", "NOT_FOUND")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            &before,
            &during,
            "petstore_mcp_tool_call_duration_seconds_count",
            &[tool]
        ),
        2.0
    );
    let requests = "petstore_mcp_requests_total";
    assert_eq!(
        moved(&before, &during, requests, &[("method", "initialize")]),
        1.0
    );
    assert_eq!(
        moved(&before, &during, requests, &[("method", "tools/call")]),
        2.0
    );
    assert_eq!(moved(&before, &during, "petstore_mcp_sessions", &[]), 1.0);
    // The endpoint's own HTTP requests carry the `mcp` operation label.
    assert!(
        moved(
            &before,
            &during,
            REQUESTS,
            &[("operation", "mcp"), ("method", "POST")]
        ) >= 4.0
    );
    app.shutdown().await;
}

#[tokio::test]
async fn requests_in_flight_include_the_scrape_itself() {
    let _turn = metrics_turn().await;
    let app = spawn_app(|_| {}).await;
    let metrics = scrape(&app).await;
    assert!(metrics.value(IN_FLIGHT, &[]) >= 1.0);
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_share_one_operation_label_instead_of_one_per_path() {
    let _turn = metrics_turn().await;
    let app = spawn_app(|_| {}).await;
    let before = scrape(&app).await;
    for path in [
        "/api/v3/no-such-thing/123",
        "/api/v3/pet/1/2/3",
        "/random-7f3a",
        "/random-9b2c",
    ] {
        let response = send(app.anonymous.get(app.url(path))).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    let after = scrape(&app).await;
    let unknown = [
        ("operation", "unknown"),
        ("method", "GET"),
        ("status", "404"),
    ];
    assert_eq!(moved(&before, &after, REQUESTS, &unknown), 4.0);
    // (Label values may hold a `/` inside, as the MCP methods' `tools/call`: a fixed list, not a
    // path, which would start with one.)
    for sample in &after.samples {
        for value in sample.labels.values() {
            assert!(
                !value.contains("random") && !value.starts_with('/'),
                "a label carries a path: {sample:?}"
            );
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn auth_attempts_are_counted_by_credential_and_result() {
    let _turn = metrics_turn().await;
    let app = spawn_app(|_| {}).await;
    app.create_user("alice", "alice-password").await;
    let attempts = |credential: &'static str, result: &'static str| {
        [("credential", credential), ("result", result)]
    };

    let before = scrape(&app).await;
    let (access, refresh) = app.create_token("alice", "alice-password").await;
    expect_error(
        app.request_token("alice", "wrong-password").await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    expect_error(
        app.request_token("nobody", "wrong-password").await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    let login = send(
        app.anonymous
            .get(app.api("/user/login"))
            .query(&[("username", "alice"), ("password", "nope")]),
    )
    .await;
    assert_eq!(login.status(), 400);
    let after = scrape(&app).await;
    assert_eq!(
        moved(&before, &after, AUTH, &attempts("password", "success")),
        1.0
    );
    assert_eq!(
        moved(&before, &after, AUTH, &attempts("password", "failure")),
        3.0
    );

    let before = after;
    ok_json(send(bearer(app.anonymous.get(app.api("/user/alice")), &access)).await).await;
    let forged = send(bearer(
        app.anonymous.get(app.api("/user/alice")),
        "not.a.token",
    ))
    .await;
    assert_eq!(forged.status(), 401);
    let wrong_key = send(
        app.anonymous
            .get(app.api("/store/inventory"))
            .header("api_key", "not-the-key"),
    )
    .await;
    assert_eq!(wrong_key.status(), 401);
    ok_json(
        send(
            app.anonymous
                .get(app.api("/store/inventory"))
                .header("api_key", ADMIN_API_KEY),
        )
        .await,
    )
    .await;
    ok_json(app.refresh(&refresh).await).await;
    // The same refresh token again: reuse, refused.
    expect_error(app.refresh(&refresh).await, 401, "UNAUTHORIZED").await;
    let after = scrape(&app).await;
    for (credential, result, count) in [
        ("access_token", "success", 1.0),
        ("access_token", "failure", 1.0),
        ("api_key", "success", 1.0),
        ("api_key", "failure", 1.0),
        ("refresh_token", "success", 1.0),
        ("refresh_token", "failure", 1.0),
        ("password", "success", 0.0),
    ] {
        assert_eq!(
            moved(&before, &after, AUTH, &attempts(credential, result)),
            count,
            "{credential} {result}"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn rate_limit_rejections_are_counted_by_scope() {
    let _turn = metrics_turn().await;
    let app = spawn_app(|config| {
        config.rate_limit_per_minute = std::num::NonZeroU32::MIN;
        config.rate_limit_burst = std::num::NonZeroU32::MIN;
    })
    .await;
    let before = scrape(&app).await;
    let first = send(app.anonymous.get(app.api("/pet/1"))).await;
    assert_eq!(first.status(), 404);
    let second = send(app.anonymous.get(app.api("/pet/1"))).await;
    assert_eq!(second.status(), 429);
    let after = scrape(&app).await;
    assert_eq!(
        moved(&before, &after, RATE_LIMITED, &[("scope", "ip")]),
        1.0
    );
    assert_eq!(
        moved(&before, &after, RATE_LIMITED, &[("scope", "user")]),
        0.0
    );
    // Refused at the edge, before routing, and still labelled with its operation.
    let refused = [
        ("operation", "getPetById"),
        ("method", "GET"),
        ("status", "429"),
    ];
    assert_eq!(moved(&before, &after, REQUESTS, &refused), 1.0);
    app.shutdown().await;
}

#[tokio::test]
async fn throttled_logins_count_as_login_rate_limit_rejections() {
    let _turn = metrics_turn().await;
    let app = spawn_app(|config| {
        config.login_attempts_per_minute = std::num::NonZeroU32::MIN;
    })
    .await;
    let before = scrape(&app).await;
    expect_error(
        app.request_token("bob", "guess-1").await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    expect_error(
        app.request_token("bob", "guess-2").await,
        429,
        "RATE_LIMITED",
    )
    .await;
    let after = scrape(&app).await;
    assert_eq!(
        moved(&before, &after, RATE_LIMITED, &[("scope", "login")]),
        1.0
    );
    assert_eq!(
        moved(
            &before,
            &after,
            AUTH,
            &[("credential", "password"), ("result", "throttled")]
        ),
        1.0
    );
    app.shutdown().await;
}

#[tokio::test]
async fn refused_origins_are_counted() {
    let _turn = metrics_turn().await;
    let app = spawn_app(|config| {
        config.allowed_origins = vec!["https://shop.example".to_owned()];
    })
    .await;
    let before = scrape(&app).await;
    let refused = send(
        app.anonymous
            .get(app.api("/pet/findByStatus?status=available"))
            .header(header::ORIGIN, "https://evil.example"),
    )
    .await;
    expect_error(refused, 403, "FORBIDDEN").await;
    let allowed = send(
        app.anonymous
            .get(app.api("/pet/findByStatus?status=available"))
            .header(header::ORIGIN, "https://shop.example"),
    )
    .await;
    ok_json(allowed).await;
    let after = scrape(&app).await;
    assert_eq!(
        moved(&before, &after, ORIGINS, &[("transport", "http")]),
        1.0
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_request_cut_off_by_shutdown_counts_as_aborted() {
    let _turn = metrics_turn().await;
    let observer = spawn_app(|_| {}).await;
    let doomed = spawn_app(|config| config.shutdown_grace_secs = 1).await;
    let before = scrape(&observer).await;

    // Half a request body, and then nothing: the handler waits for the rest.
    let mut stream = match TcpStream::connect(doomed.addr).await {
        Ok(stream) => stream,
        Err(error) => panic!("cannot connect: {error}"),
    };
    let head = format!(
        "POST /api/v3/pet HTTP/1.1\r\nHost: {}\r\napi_key: {ADMIN_API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        doomed.addr
    );
    if let Err(error) = stream.write_all(head.as_bytes()).await {
        panic!("cannot send: {error}");
    }
    // Wait until the edge holds it: in flight beside the observer's own scrape.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if scrape(&observer).await.value(IN_FLIGHT, &[]) >= 2.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the request never got in flight");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    doomed.shutdown().await;
    // The connection's task drops the request as it ends, a moment after the server's loop
    // has seen it go: wait for that moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = scrape(&observer).await;
        if moved(&before, &after, ABORTED, &[]) >= 1.0 || Instant::now() >= deadline {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(moved(&before, &after, ABORTED, &[]), 1.0);
    assert_eq!(after.value(IN_FLIGHT, &[]), 1.0);
    drop(stream);
    observer.shutdown().await;
}

#[tokio::test]
async fn process_metrics_are_plausible_and_build_info_names_the_version() {
    let _turn = metrics_turn().await;
    let app = spawn_app(|_| {}).await;
    let metrics = scrape(&app).await;
    assert!(metrics.value("process_resident_memory_bytes", &[]) > 0.0);
    assert!(metrics.value("process_virtual_memory_bytes", &[]) > 0.0);
    assert!(metrics.value("process_open_fds", &[]) > 0.0);
    assert!(metrics.value("process_max_fds", &[]) > 0.0);
    assert!(metrics.value("process_cpu_seconds_total", &[]) >= 0.0);
    assert!(metrics.value("process_start_time_seconds", &[]) > 1_600_000_000.0);
    assert!(metrics.value("petstore_uptime_seconds", &[]) >= 0.0);
    assert_eq!(
        metrics.value(
            "petstore_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    app.shutdown().await;
}

#[tokio::test]
async fn health_reports_the_documented_document() {
    let _turn = metrics_turn().await;
    let app = spawn_app(|config| config.node_id = Some("node-7".to_owned())).await;
    let response = send(app.anonymous.get(app.url("/health"))).await;
    assert_eq!(
        header_text(&response, "cache-control").as_deref(),
        Some("no-store")
    );
    let health = ok_json(response).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"), "{health}");
    assert_eq!(health["nodeId"], "node-7", "{health}");
    assert!(health["uptimeSeconds"].is_u64(), "{health}");
    assert_eq!(health["store"]["status"], "ok", "{health}");
    assert!(health["store"]["latencyMs"].is_number(), "{health}");
    // No WebSocket endpoint yet: no WebSocket connections.
    assert_eq!(
        health["connections"],
        json!({ "active": 0, "authenticated": 0 }),
        "{health}"
    );
    assert_eq!(
        health["messageQueue"],
        json!({ "waiting": 0, "inFlight": 0, "sessionsUnderBackpressure": 0, "overloaded": 0 }),
        "{health}"
    );
    // Sections for what does not exist yet are absent, not faked.
    assert!(health.get("redis").is_none(), "{health}");
    app.shutdown().await;
}

const QUEUE_WAITING: &str = "petstore_ws_queue_waiting";
const QUEUE_IN_FLIGHT: &str = "petstore_ws_queue_in_flight";
const BACKPRESSURED: &str = "petstore_ws_sessions_backpressured";
const OVERLOADED: &str = "petstore_ws_overloaded_total";
const QUEUE_WAIT_COUNT: &str = "petstore_ws_queue_wait_seconds_count";
const WS_ERRORS: &str = "petstore_ws_errors_total";

/// Whether a `messageQueue` section shows a session with requests waiting behind its one
/// request in flight, under backpressure.
fn health_shows_a_loaded_queue(queue: &Value) -> bool {
    queue["waiting"]
        .as_u64()
        .is_some_and(|waiting| waiting >= 1)
        && queue["inFlight"] == 1
        && queue["sessionsUnderBackpressure"] == 1
}

/// The same, in a scrape.
fn metrics_show_a_loaded_queue(metrics: &Exposition) -> bool {
    metrics.value(QUEUE_WAITING, &[]) >= 1.0
        && metrics.value(QUEUE_IN_FLIGHT, &[]) == 1.0
        && metrics.value(BACKPRESSURED, &[]) == 1.0
}

/// Polls `/health` and `/metrics` until each has once shown a loaded queue; returns the
/// `messageQueue` section and the scrape that did.
async fn watch_for_a_loaded_queue(client: reqwest::Client, base: String) -> (Value, Exposition) {
    let mut health_seen = None;
    let mut metrics_seen = None;
    loop {
        if health_seen.is_none() {
            let health = ok_json(send(client.get(format!("{base}/health"))).await).await;
            let queue = health["messageQueue"].clone();
            if health_shows_a_loaded_queue(&queue) {
                health_seen = Some(queue);
            }
        }
        if metrics_seen.is_none() {
            let text = ok_text(send(client.get(format!("{base}/metrics"))).await).await;
            let metrics = Exposition::parse(&text);
            if metrics_show_a_loaded_queue(&metrics) {
                metrics_seen = Some(metrics);
            }
        }
        if let (Some(queue), Some(metrics)) = (&health_seen, &metrics_seen) {
            return (queue.clone(), metrics.clone());
        }
    }
}

#[tokio::test]
async fn health_and_metrics_follow_a_websocket_queue_as_it_fills_and_drains() {
    let _turn = metrics_turn().await;
    let limit = |value| NonZeroU32::new(value).unwrap_or(NonZeroU32::MAX);
    // One request at a time, four waiting (backpressure at three, re-armed at one).
    let app = spawn_app(|config| {
        config.ws_max_in_flight = 1;
        config.ws_queue_capacity = 4;
        config.ws_messages_per_minute = limit(100_000);
        config.ws_message_burst = limit(10_000);
    })
    .await;
    let password = "queue-password-1";
    app.create_user("quinn", password).await;
    let before = scrape(&app).await;
    let mut socket = app.ws_raw_connect_admin().await;

    // Bursts of logins (critical, slow: Argon2) fill the queue, and bulk creations (low) that
    // arrive while it is full are refused. Another burst follows until both /health and
    // /metrics have been seen showing the loaded queue: how long a burst keeps it loaded is up
    // to the machine, and a burst that drains unseen only costs another.
    let watcher = tokio::spawn(watch_for_a_loaded_queue(app.anonymous.clone(), app.url("")));
    let (mut answered, mut shed, mut bursts) = (0u32, 0u32, 0u32);
    while !watcher.is_finished() {
        assert!(bursts < 20, "20 bursts and the loaded queue was never seen");
        bursts += 1;
        let mut sent = 0;
        for _ in 0..10 {
            let (_, text) = request(
                "loginUser",
                json!({ "username": "quinn", "password": password }),
            );
            feed_text(&mut socket, text).await;
            sent += 1;
        }
        for n in 0..6 {
            let user = json!({ "username": format!("bulk-{bursts}-{n}"), "password": password });
            let (_, text) = request("createUsersWithListInput", json!({ "body": [user] }));
            feed_text(&mut socket, text).await;
            sent += 1;
        }
        flush(&mut socket).await;
        let mut responses = 0;
        while responses < sent {
            let frame = next_json(&mut socket).await;
            if frame["type"] != "response" {
                assert_eq!(frame["event"], "backpressure", "{frame}");
                continue;
            }
            responses += 1;
            if frame["payload"]["code"] == "OVERLOADED" {
                shed += 1;
            } else {
                answered += 1;
            }
        }
    }
    let (loaded_health, loaded_metrics) = match guard("the queue watcher", watcher).await {
        Ok(seen) => seen,
        Err(error) => panic!("the queue watcher failed: {error}"),
    };
    assert!(shed >= 1, "no bulk request was refused");
    // Refusals so far, at the moment the loaded queue was seen.
    assert!(
        loaded_health["overloaded"]
            .as_u64()
            .is_some_and(|overloaded| overloaded <= u64::from(shed)),
        "messageQueue: {loaded_health}"
    );
    assert!(
        loaded_metrics.value(OVERLOADED, &[]) <= f64::from(shed) + before.value(OVERLOADED, &[])
    );

    // Every request is answered: the queue drains, and the refusals stay counted.
    let drained = json!({
        "waiting": 0,
        "inFlight": 0,
        "sessionsUnderBackpressure": 0,
        "overloaded": shed,
    });
    let health = guard("the queue draining in /health", async {
        loop {
            let health = ok_json(send(app.anonymous.get(app.url("/health"))).await).await;
            if health["messageQueue"] == drained {
                return health;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(health["connections"]["active"], 1, "{health}");
    let after = guard("the queue draining in /metrics", async {
        loop {
            let after = scrape(&app).await;
            if after.value(QUEUE_WAITING, &[]) == 0.0
                && after.value(QUEUE_IN_FLIGHT, &[]) == 0.0
                && after.value(BACKPRESSURED, &[]) == 0.0
            {
                return after;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let shed = f64::from(shed);
    assert_eq!(moved(&before, &after, OVERLOADED, &[]), shed);
    assert_eq!(
        moved(&before, &after, WS_ERRORS, &[("code", "OVERLOADED")]),
        shed
    );
    // Every request that was not refused waited in the queue, and its wait was recorded.
    assert_eq!(
        moved(&before, &after, QUEUE_WAIT_COUNT, &[]),
        f64::from(answered)
    );
    assert!(
        moved(
            &before,
            &after,
            QUEUE_WAIT_COUNT,
            &[("priority", "critical")]
        ) >= 10.0,
        "the logins' waits"
    );

    // A session that goes away takes its share with it.
    drop(socket);
    app.wait_for_ws_sessions(0).await;
    let health = ok_json(send(app.anonymous.get(app.url("/health"))).await).await;
    assert_eq!(health["messageQueue"], drained, "{health}");
    app.shutdown().await;
}

#[tokio::test]
async fn ready_and_live_answer_200() {
    let _turn = metrics_turn().await;
    let app = spawn_app(|_| {}).await;
    let ready = ok_json(send(app.anonymous.get(app.url("/ready"))).await).await;
    assert_eq!(ready, json!({ "status": "ready" }));
    let live = ok_json(send(app.anonymous.get(app.url("/live"))).await).await;
    assert_eq!(live, json!({ "status": "alive" }));
    app.shutdown().await;
}

#[tokio::test]
async fn ready_answers_503_while_draining_and_live_stays_200() {
    let _turn = metrics_turn().await;
    let mut config = Config::defaults();
    config.bind = std::net::IpAddr::from([127, 0, 0, 1]);
    config.port = 0;
    config.no_demo_data = true;
    config.shutdown_drain_secs = 3;
    let server = match petstore_ws::server::spawn(config).await {
        Ok(server) => server,
        Err(error) => panic!("the server did not start: {error}"),
    };
    let base = server.base_url();
    let client = reqwest::Client::new();
    let stopping = tokio::spawn(server.shutdown());

    let deadline = Instant::now() + Duration::from_secs(2);
    let draining = loop {
        let response = send(client.get(format!("{base}/ready"))).await;
        if response.status() == 503 {
            break body_json(response).await;
        }
        assert!(Instant::now() < deadline, "/ready never reported draining");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(draining, json!({ "status": "draining" }));
    // Still serving while draining.
    ok_json(send(client.get(format!("{base}/live"))).await).await;
    ok_json(send(client.get(format!("{base}/api/v3/pet/findByStatus?status=available"))).await)
        .await;
    drop(client);
    if let Err(error) = stopping.await {
        panic!("shutdown failed: {error}");
    }
}

#[tokio::test]
async fn health_and_probes_are_not_rate_limited() {
    let _turn = metrics_turn().await;
    let app = spawn_app(|config| {
        config.rate_limit_per_minute = std::num::NonZeroU32::MIN;
        config.rate_limit_burst = std::num::NonZeroU32::MIN;
    })
    .await;
    for _ in 0..3 {
        for path in ["/health", "/ready", "/live", "/metrics"] {
            let response = send(app.anonymous.get(app.url(path))).await;
            assert_eq!(response.status(), 200, "{path}");
        }
    }
    // The API itself is limited.
    send(app.anonymous.get(app.api("/pet/1"))).await;
    assert_eq!(
        send(app.anonymous.get(app.api("/pet/1"))).await.status(),
        429
    );
    app.shutdown().await;
}
