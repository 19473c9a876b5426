//! WebSocket sessions, black box, over real sockets: the lifecycle and its deadlines
//! (authentication, token expiry, refresh, revocation), malformed frames, the message size and
//! rate limits, the per-address connection limit, the origin policy, request timeouts, requests
//! answered out of order, backpressure and shedding, slow consumers, dead and idle peers, and
//! the graceful shutdown.
//!
//! Most tests talk through the typed client ([`WsClient`] of `petstore-client`); those that must
//! send malformed or oversized frames, control exactly which frames leave in one write, or stop
//! reading use raw tungstenite sockets or plain TCP. Every test configures the limits it is
//! about, with deadlines of a few hundred milliseconds; [`HANG_GUARD`] only bounds how long a
//! test may hang, it measures nothing.

use std::{
    collections::{HashMap, HashSet},
    num::NonZeroU32,
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use petstore_api::{
    Topic,
    operations::{GetInventoryRequest, GetPetByIdRequest, GetUserByNameRequest, LoginUserRequest},
};
use petstore_client::{
    ClientError, ClientOptions, CloseInfo, Notifications, SessionInfo, WsClient,
};
use petstore_testkit::{app::*, ws::*};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::sleep,
};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const PASSWORD: &str = "correct-horse-battery";

fn non_zero(value: u32) -> NonZeroU32 {
    match NonZeroU32::new(value) {
        Some(value) => value,
        None => panic!("a limit of zero"),
    }
}

/// The close frame that ended `client`'s connection, waiting for the server to send it.
async fn server_close(client: &WsClient) -> CloseInfo {
    match guard("waiting for the server to close", client.closed()).await {
        Some(close) => close,
        None => panic!("the connection ended without a close frame"),
    }
}

/// Asserts that `client` is connected and answers a ping.
async fn assert_usable(client: &WsClient) {
    assert!(client.is_connected(), "the connection is gone");
    let pong = answered(client.ping()).await;
    assert!(pong.timestamp > 0, "ping payload {pong:?}");
}

/// Asserts that a raw socket still answers a ping.
async fn assert_raw_usable(socket: &mut RawSocket) {
    let (id, text) = request("ping", json!({}));
    send_frame(socket, Message::text(text)).await;
    let response = next_response(socket).await;
    let pong = success_payload(&response, &id);
    assert!(pong["timestamp"].is_i64(), "ping payload {pong}");
}

/// The events of the notifications that have arrived, in order.
fn events_so_far(notifications: &mut Notifications) -> Vec<String> {
    let mut events = Vec::new();
    while let Some(notification) = notifications.try_recv() {
        events.push(notification.event);
    }
    events
}

/// An RFC 3339 instant from a payload member.
fn instant(value: &Value) -> DateTime<Utc> {
    match value.as_str().map(DateTime::parse_from_rfc3339) {
        Some(Ok(at)) => at.with_timezone(&Utc),
        _ => panic!("not an RFC 3339 instant: {value}"),
    }
}

/// Sleeps until `at` (at once if it has passed).
async fn sleep_until(at: DateTime<Utc>) {
    if let Ok(left) = (at - Utc::now()).to_std() {
        sleep(left).await;
    }
}

/// When the credentials of a session expire; access tokens always do.
fn expiry(session: &SessionInfo) -> DateTime<Utc> {
    match session.expires_at {
        Some(at) => at,
        None => panic!("no expiresAt in {session:?}"),
    }
}

/// The `loginUser` payload of a user created with [`PASSWORD`].
fn login_payload(username: &str) -> Value {
    json!({ "username": username, "password": PASSWORD })
}

/// The typed `loginUser` request of a user created with [`PASSWORD`].
fn login_request(username: &str) -> LoginUserRequest {
    LoginUserRequest {
        username: username.to_owned(),
        password: PASSWORD.to_owned(),
    }
}

/// The `getUserByName` request for `username`.
fn user_lookup(username: &str) -> GetUserByNameRequest {
    GetUserByNameRequest {
        username: username.to_owned(),
    }
}

// ---- lifecycle and deadlines ----

#[tokio::test]
async fn an_unauthenticated_connection_is_closed_with_1008_at_the_auth_deadline() {
    let app = spawn_app(|config| config.ws_auth_timeout_ms = 200).await;
    let client = app.ws_connect().await;
    let close = server_close(&client).await;
    assert_eq!(close.code, 1008, "{close:?}");
    assert!(!client.is_connected());
    app.wait_for_ws_sessions(0).await;
    app.shutdown().await;
}

#[tokio::test]
async fn authenticate_answers_who_the_session_is_and_lifts_the_deadline() {
    let app = spawn_app(|config| config.ws_auth_timeout_ms = 300).await;
    let (token, _) = app.customer_tokens("alice", PASSWORD).await;
    let signed_in = app.ws_connect().await;
    let anonymous = app.ws_connect().await;

    let who = answered(signed_in.authenticate(&token)).await;
    assert_eq!(who.subject, "alice", "{who:?}");
    assert_eq!(who.roles, ["customer"], "{who:?}");
    let scopes: Vec<&str> = who.scopes.iter().map(String::as_str).collect();
    assert!(scopes.contains(&"users:read"), "{who:?}");
    assert!(!scopes.contains(&"inventory:read"), "{who:?}");
    assert!(expiry(&who) > Utc::now(), "{who:?}");
    let (_, authenticated) = app.ws_sessions().await;
    assert_eq!(authenticated, 1);

    // The deadline passes: it closes the connection that did not authenticate...
    let close = server_close(&anonymous).await;
    assert_eq!(close.code, 1008, "{close:?}");
    // ...and not the one that did, however long it waits.
    sleep(Duration::from_millis(900)).await;
    assert_usable(&signed_in).await;
    app.shutdown().await;
}

#[tokio::test]
async fn authenticate_with_a_bad_token_is_refused_and_the_connection_stays_open() {
    let app = spawn_app(|_| {}).await;
    let (token, _) = app.customer_tokens("bruno", PASSWORD).await;
    let client = app.ws_connect().await;

    let tampered = format!("{}x", &token[..token.len() - 1]);
    for bad in ["not-a-token", tampered.as_str()] {
        refused(client.authenticate(bad), "UNAUTHORIZED", 401).await;
        assert_usable(&client).await;
    }
    // Still anonymous: a secured operation is refused...
    refused(
        client.get_user_by_name(user_lookup("bruno")),
        "UNAUTHORIZED",
        401,
    )
    .await;
    // ...until a good token is presented.
    answered(client.authenticate(&token)).await;
    let user = answered(client.get_user_by_name(user_lookup("bruno"))).await;
    assert_eq!(user.username, "bruno");
    app.shutdown().await;
}

#[tokio::test]
async fn before_authentication_secured_operations_are_refused_and_public_ones_work() {
    let app = spawn_app(|_| {}).await;
    let pet_id = app.add_available_pet("Rex").await;
    let client = app.ws_connect().await;

    refused(
        client.get_inventory(GetInventoryRequest {}),
        "UNAUTHORIZED",
        401,
    )
    .await;

    let pet = answered(client.get_pet_by_id(GetPetByIdRequest { pet_id })).await;
    assert_eq!(pet.id, Some(pet_id));
    assert_eq!(pet.name, "Rex");
    assert_usable(&client).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_bearer_token_on_the_upgrade_authenticates_the_session() {
    let app = spawn_app(|_| {}).await;
    let (token, _) = app.customer_tokens("clara", PASSWORD).await;
    let anonymous = app.ws_connect().await;
    refused(
        anonymous.get_user_by_name(user_lookup("clara")),
        "UNAUTHORIZED",
        401,
    )
    .await;

    let client = app
        .ws_connect_with(ClientOptions::default().bearer_token(&token))
        .await;
    let user = answered(client.get_user_by_name(user_lookup("clara"))).await;
    assert_eq!(user.username, "clara");
    assert!(user.password.is_none(), "{user:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn invalid_credentials_on_the_upgrade_are_refused_with_401() {
    let app = spawn_app(|_| {}).await;
    match app
        .ws_try_connect(ClientOptions::default().bearer_token("not-a-token"))
        .await
    {
        Err(ClientError::Rejected { status: 401, .. }) => {}
        Err(error) => panic!("expected a 401 refusal, got {error}"),
        Ok(_) => panic!("an invalid bearer token was accepted on the upgrade"),
    }
    let refused = app.ws_raw_try_connect(&[("api_key", "not-the-key")]).await;
    assert_eq!(refused_status(refused), 401);

    // The same upgrades with valid credentials succeed.
    let mut admin = app.ws_raw_connect_admin().await;
    assert_raw_usable(&mut admin).await;
    let (_, authenticated) = app.ws_sessions().await;
    assert_eq!(authenticated, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn ping_answers_with_the_server_clock() {
    let app = spawn_app(|_| {}).await;
    let mut socket = app.ws_raw_connect(&[]).await;
    let before = now_ms();
    let (id, text) = request("ping", json!({}));
    send_frame(&mut socket, Message::text(text)).await;
    let response = next_response(&mut socket).await;
    let after = now_ms();
    let pong = success_payload(&response, &id);
    // The same clock on both ends; the margin only absorbs a clock step.
    let Some(timestamp) = pong["timestamp"].as_i64() else {
        panic!("no timestamp in {response}");
    };
    let margin = 60_000;
    assert!(
        (before - margin..=after + margin).contains(&timestamp),
        "timestamp {timestamp} outside [{before}, {after}]"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn an_expiring_token_is_warned_then_expired_then_closed_with_1008() {
    let app = spawn_app(|config| {
        config.access_token_ttl_secs = 3;
        config.ws_expiry_warning_secs = 2;
    })
    .await;
    let (token, _) = app.customer_tokens("dora", PASSWORD).await;
    let client = app.ws_connect().await;
    let mut notifications = client.notifications();
    let who = answered(client.authenticate(&token)).await;
    let expires_at = expiry(&who);

    // Warned first, while the token is still good...
    let warning = match guard("waiting for session.expiring", notifications.recv()).await {
        Some(notification) => notification,
        None => panic!("the connection ended without a notification"),
    };
    assert_eq!(warning.event, "session.expiring", "{warning:?}");
    // The same instant, give or take the rounding to whole seconds.
    let announced = instant(&warning.payload["expiresAt"]);
    assert!(
        (announced - expires_at).num_seconds().abs() <= 1,
        "{warning:?} for a token expiring at {expires_at}"
    );
    assert!(client.is_connected());
    // ...then told it is over, and closed.
    let close = server_close(&client).await;
    assert_eq!(close.code, 1008, "{close:?}");
    assert_eq!(events_so_far(&mut notifications), ["session.expired"]);
    app.wait_for_ws_sessions(0).await;
    app.shutdown().await;
}

#[tokio::test]
async fn refresh_keeps_the_session_alive_past_the_first_tokens_expiry() {
    let app = spawn_app(|config| {
        config.access_token_ttl_secs = 4;
        config.ws_expiry_warning_secs = 2;
    })
    .await;
    let (token, refresh_token) = app.customer_tokens("emil", PASSWORD).await;
    let client = app.ws_connect().await;
    let mut notifications = client.notifications();
    let first = answered(client.authenticate(&token)).await;
    let first_expiry = expiry(&first);

    // Warned, the client refreshes; the new token expires at least a second later.
    let warning = guard("waiting for session.expiring", notifications.recv()).await;
    assert_eq!(
        warning.map(|notification| notification.event).as_deref(),
        Some("session.expiring")
    );
    let tokens = answered(client.refresh(&refresh_token)).await;
    assert_ne!(tokens.access_token, token);

    sleep_until(first_expiry + chrono::TimeDelta::milliseconds(500)).await;
    assert_usable(&client).await;
    let events = events_so_far(&mut notifications);
    assert!(
        !events.iter().any(|event| event == "session.expired"),
        "{events:?}"
    );

    // The session now lives on the new token, and ends with it.
    let close = server_close(&client).await;
    assert_eq!(close.code, 1008, "{close:?}");
    let events = events_so_far(&mut notifications);
    assert_eq!(events.last().map(String::as_str), Some("session.expired"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_token_revoked_by_rest_logout_ends_the_session_at_its_next_request() {
    let app = spawn_app(|_| {}).await;
    let (token, _) = app.customer_tokens("fritz", PASSWORD).await;
    let client = app.ws_connect().await;
    answered(client.authenticate(&token)).await;
    answered(client.get_user_by_name(user_lookup("fritz"))).await;
    let mut notifications = client.notifications();

    ok_text(send(bearer(app.anonymous.get(app.api("/user/logout")), &token)).await).await;

    let outcome = guard(
        "the request after the logout",
        client.get_user_by_name(user_lookup("fritz")),
    )
    .await;
    unanswered(outcome, "a request with a revoked token");
    let close = server_close(&client).await;
    assert_eq!(close.code, 1008, "{close:?}");
    assert_eq!(events_so_far(&mut notifications), ["session.expired"]);
    app.shutdown().await;
}

#[tokio::test]
async fn a_revoked_session_cannot_subscribe() {
    let app = spawn_app(|_| {}).await;
    let (token, _) = app.customer_tokens("gerda", PASSWORD).await;
    let client = app.ws_connect().await;
    answered(client.authenticate(&token)).await;
    let mut notifications = client.notifications();

    ok_text(send(bearer(app.anonymous.get(app.api("/user/logout")), &token)).await).await;

    // Following a topic is a request like any other: it must not outlive the token.
    let outcome = guard(
        "the subscription after the logout",
        client.subscribe(&[Topic::Pets]),
    )
    .await;
    unanswered(outcome, "a subscription with a revoked token");
    let close = server_close(&client).await;
    assert_eq!(close.code, 1008, "{close:?}");
    assert_eq!(events_so_far(&mut notifications), ["session.expired"]);
    app.shutdown().await;
}

#[tokio::test]
async fn a_revoked_session_ends_at_the_next_heartbeat_without_a_request() {
    let app = spawn_app(|config| config.ws_heartbeat_ms = 100).await;
    let (token, _) = app.customer_tokens("henrik", PASSWORD).await;
    let client = app.ws_connect().await;
    answered(client.authenticate(&token)).await;
    let mut notifications = client.notifications();
    // Heartbeats alone do not end a valid session.
    sleep(Duration::from_millis(500)).await;
    assert_usable(&client).await;

    ok_text(send(bearer(app.anonymous.get(app.api("/user/logout")), &token)).await).await;

    let close = server_close(&client).await;
    assert_eq!(close.code, 1008, "{close:?}");
    assert_eq!(events_so_far(&mut notifications), ["session.expired"]);
    app.shutdown().await;
}

// ---- malformed frames ----

#[tokio::test]
async fn malformed_frames_are_answered_with_bad_request_and_the_connection_stays_usable() {
    let app = spawn_app(|config| {
        config.ws_messages_per_minute = non_zero(10_000);
        config.ws_message_burst = non_zero(1_000);
    })
    .await;
    let mut socket = app.ws_raw_connect(&[]).await;

    // A valid ping envelope without the member `without` and with the members of `overrides`;
    // the correlation id the server must echo is the one left, if it is a string.
    let envelope = |without: Option<&str>, overrides: Value| {
        let id = Uuid::new_v4().to_string();
        let mut frame = json!({
            "type": "request",
            "correlationId": id,
            "timestamp": now_ms(),
            "action": "ping",
            "payload": {},
        });
        if let (Some(frame), Some(overrides)) = (frame.as_object_mut(), overrides.as_object()) {
            if let Some(without) = without {
                frame.remove(without);
            }
            for (key, value) in overrides {
                frame.insert(key.clone(), value.clone());
            }
        }
        let echoed = frame["correlationId"].as_str().map(str::to_owned);
        (Message::text(frame.to_string()), echoed)
    };
    let text = |text: &str| (Message::text(text.to_owned()), None);
    let cases: Vec<(&str, (Message, Option<String>))> = vec![
        ("invalid JSON", text(r#"{"type": "request", "#)),
        ("an array", text("[1, 2, 3]")),
        ("a number", text("42")),
        ("a string", text(r#""ping""#)),
        ("no type", envelope(Some("type"), json!({}))),
        ("a response", envelope(None, json!({ "type": "response" }))),
        (
            "no correlationId",
            envelope(Some("correlationId"), json!({})),
        ),
        (
            "a numeric correlationId",
            envelope(None, json!({ "correlationId": 42 })),
        ),
        (
            "a correlationId that is not a UUID",
            envelope(None, json!({ "correlationId": "order-17" })),
        ),
        ("no timestamp", envelope(Some("timestamp"), json!({}))),
        (
            "a timestamp as text",
            envelope(None, json!({ "timestamp": "now" })),
        ),
        ("no action", envelope(Some("action"), json!({}))),
        (
            "an unknown action",
            envelope(None, json!({ "action": "adoptDragon" })),
        ),
        (
            "a binary frame",
            (
                Message::binary(request("ping", json!({})).1.into_bytes()),
                None,
            ),
        ),
    ];
    for (case, (frame, echoed)) in cases {
        send_frame(&mut socket, frame).await;
        let response = next_response(&mut socket).await;
        error_payload(&response, "BAD_REQUEST", 400);
        let expected = echoed.map_or(Value::Null, Value::String);
        assert_eq!(response["correlationId"], expected, "{case}: {response}");
        assert_raw_usable(&mut socket).await;
    }
    app.shutdown().await;
}

// ---- size limit ----

#[tokio::test]
async fn a_message_over_the_size_limit_closes_the_connection_with_1009() {
    let limit = 1024;
    let app = spawn_app(|config| config.ws_max_message_bytes = limit).await;
    let mut socket = app.ws_raw_connect(&[]).await;

    // Right at the limit: answered.
    let (_, empty) = request("ping", json!({ "pad": "" }));
    let (id, at_limit) = request("ping", json!({ "pad": "x".repeat(limit - empty.len()) }));
    assert_eq!(at_limit.len(), limit);
    send_frame(&mut socket, Message::text(at_limit)).await;
    success_payload(&next_response(&mut socket).await, &id);

    // Over it: closed.
    let (_, over) = request("ping", json!({ "pad": "x".repeat(limit) }));
    send_frame(&mut socket, Message::text(over)).await;
    match read_until_closed(&mut socket).await {
        Ending::Closed(code, reason) => assert_eq!(code, 1009, "{reason}"),
        Ending::Gone(how) => panic!("no close frame: {how}"),
    }
    app.wait_for_ws_sessions(0).await;
    app.shutdown().await;
}

/// `petstore_ws_buffers_released_total` from `/metrics` (process-wide: read before and after).
async fn buffers_released(app: &TestApp) -> f64 {
    let text = ok_text(send(app.anonymous.get(app.url("/metrics"))).await).await;
    let sample = text
        .lines()
        .find(|line| line.starts_with("petstore_ws_buffers_released_total "));
    match sample.and_then(|line| line.rsplit(' ').next()?.parse().ok()) {
        Some(value) => value,
        None => panic!("no petstore_ws_buffers_released_total in /metrics:\n{text}"),
    }
}

#[tokio::test]
async fn after_a_large_message_the_session_gives_its_buffers_back_and_loses_nothing_sent_with_it() {
    let app = spawn_app(|_| {}).await;
    let released_before = buffers_released(&app).await;
    let mut socket = app.ws_raw_connect(&[]).await;

    // One write: the large request, then two small ones right behind it in the same bytes.
    let (large, large_text) = request("ping", json!({ "pad": "x".repeat(48 * 1024) }));
    let (small, small_text) = request("ping", json!({}));
    let (read, read_text) = request("getPetById", json!({ "petId": 999_999 }));
    for text in [large_text, small_text, read_text] {
        feed_text(&mut socket, text).await;
    }
    flush(&mut socket).await;
    let mut answered = Vec::new();
    for _ in 0..3 {
        let response = next_response(&mut socket).await;
        let id = response["correlationId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if id == read {
            error_payload(&response, "NOT_FOUND", 404);
        } else {
            assert_eq!(response["status"], "success", "{response}");
        }
        answered.push(id);
    }
    answered.sort();
    let mut sent = vec![large, small, read];
    sent.sort();
    assert_eq!(
        answered, sent,
        "every request sent with the large one is answered once"
    );

    assert!(
        buffers_released(&app).await > released_before,
        "the session did not give its grown buffers back"
    );
    // The renewed socket carries on both ways.
    assert_raw_usable(&mut socket).await;
    assert_raw_usable(&mut socket).await;
    app.shutdown().await;
}

// ---- message rate ----

#[tokio::test]
async fn requests_over_the_message_burst_are_rate_limited_and_the_connection_stays_open() {
    let app = spawn_app(|config| {
        config.ws_messages_per_minute = non_zero(60);
        config.ws_message_burst = non_zero(3);
    })
    .await;
    let client = app.ws_connect().await;

    // Four at once, in one write.
    let outcomes = join_all((0..4).map(|_| guard("a ping", client.ping()))).await;
    let refused: Vec<&ClientError> = outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().err())
        .collect();
    assert_eq!(refused.len(), 1, "{outcomes:?}");
    let error = refusal(refused[0], "RATE_LIMITED", 429);
    let Some(retry_after) = error.details.retry_after() else {
        panic!("no retryAfter in {error:?}");
    };
    assert!(retry_after >= 1, "{error:?}");

    // Still connected, and served again once the budget has refilled.
    assert!(client.is_connected());
    sleep(Duration::from_secs(retry_after) + Duration::from_millis(500)).await;
    assert_usable(&client).await;
    app.shutdown().await;
}

// ---- connections per address ----

#[tokio::test]
async fn connections_over_the_per_address_limit_are_refused_with_429_until_one_closes() {
    let app = spawn_app(|config| config.ws_max_connections_per_ip = 2).await;
    let first = app.ws_connect().await;
    let second = app.ws_connect().await;
    match app.ws_try_connect(ClientOptions::default()).await {
        Err(ClientError::Rejected { status: 429, .. }) => {}
        Err(error) => panic!("expected a 429 refusal, got {error}"),
        Ok(_) => panic!("a third connection from the same address was accepted"),
    }

    first.close().await;
    app.wait_for_ws_sessions(1).await;
    let third = app.ws_connect().await;
    assert_usable(&third).await;
    assert_usable(&second).await;
    app.shutdown().await;
}

// ---- origin ----

#[tokio::test]
async fn upgrades_from_an_origin_not_allowed_are_refused_with_403() {
    let app =
        spawn_app(|config| config.allowed_origins = vec!["https://shop.example".to_owned()]).await;
    match app
        .ws_try_connect(ClientOptions::default().origin("https://evil.example"))
        .await
    {
        Err(ClientError::Rejected { status: 403, .. }) => {}
        Err(error) => panic!("expected a 403 refusal, got {error}"),
        Ok(_) => panic!("an upgrade from a foreign origin was accepted"),
    }

    let allowed = app
        .ws_connect_with(ClientOptions::default().origin("https://shop.example"))
        .await;
    assert_usable(&allowed).await;
    // Not a browser: no Origin, nothing to check.
    let native = app.ws_connect().await;
    assert_usable(&native).await;
    app.shutdown().await;
}

// ---- request timeout ----

#[tokio::test]
async fn a_request_over_the_request_timeout_is_answered_with_timeout() {
    let app = spawn_app(|config| config.ws_request_timeout_ms = 1).await;
    app.create_user("greta", PASSWORD).await;
    let client = app.ws_connect().await;

    // Argon2 takes milliseconds.
    refused(client.login_user(login_request("greta")), "TIMEOUT", 408).await;
    assert_usable(&client).await;
    app.shutdown().await;
}

// ---- concurrency ----

#[tokio::test]
async fn a_fast_request_overtakes_a_slow_one_and_each_keeps_its_correlation_id() {
    let app = spawn_app(|_| {}).await;
    app.create_user("hanna", PASSWORD).await;
    let mut socket = app.ws_raw_connect(&[]).await;

    let (login_id, login) = request("loginUser", login_payload("hanna"));
    let (ping_id, ping) = request("ping", json!({}));
    feed_text(&mut socket, login).await;
    feed_text(&mut socket, ping).await;
    flush(&mut socket).await;

    // The ping is answered while the login hashes its password.
    let first = next_response(&mut socket).await;
    let pong = success_payload(&first, &ping_id);
    assert!(pong["timestamp"].is_i64(), "{first}");
    let second = next_response(&mut socket).await;
    let token = success_payload(&second, &login_id);
    assert!(
        token.as_str().is_some_and(|token| !token.is_empty()),
        "{second}"
    );
    app.shutdown().await;
}

// ---- backpressure and overload ----

#[tokio::test]
async fn a_full_queue_signals_backpressure_and_sheds_only_low_priority_requests() {
    let app = spawn_app(|config| {
        config.ws_max_in_flight = 1;
        config.ws_queue_capacity = 4;
        config.ws_messages_per_minute = non_zero(100_000);
        config.ws_message_burst = non_zero(10_000);
    })
    .await;
    app.create_user("ivan", PASSWORD).await;
    // The admin key may create users in bulk.
    let mut socket = app.ws_raw_connect_admin().await;

    // Logins (critical, slow) fill the queue one at a time: one runs, four wait, the next is
    // held back unread. Bulk creations (low) arrive while it is full.
    let mut logins = HashSet::new();
    let mut bulk = HashSet::new();
    for _ in 0..10 {
        let (id, text) = request("loginUser", login_payload("ivan"));
        feed_text(&mut socket, text).await;
        logins.insert(id);
    }
    for n in 0..6 {
        let user = json!({ "username": format!("bulk-{n}"), "password": PASSWORD });
        let (id, text) = request("createUsersWithListInput", json!({ "body": [user] }));
        feed_text(&mut socket, text).await;
        bulk.insert(id);
    }
    flush(&mut socket).await;

    let sent = logins.len() + bulk.len();
    let mut answers: HashMap<String, Value> = HashMap::new();
    let mut backpressure = Vec::new();
    while answers.len() < sent {
        let frame = next_json(&mut socket).await;
        match frame["type"].as_str() {
            Some("response") => {
                let Some(id) = frame["correlationId"].as_str().map(str::to_owned) else {
                    panic!("a response without a correlation id: {frame}");
                };
                assert!(
                    logins.contains(&id) || bulk.contains(&id),
                    "a response to nothing sent: {frame}"
                );
                if let Some(earlier) = answers.insert(id, frame.clone()) {
                    panic!("answered twice: {earlier} and {frame}");
                }
            }
            Some("notification") if frame["event"] == "backpressure" => {
                backpressure.push(frame["payload"].clone());
            }
            _ => panic!("unexpected frame {frame}"),
        }
    }

    // Nothing lost: every request has exactly one answer. Logins waited; none was shed.
    for id in &logins {
        let token = success_payload(&answers[id], id);
        assert!(token.is_string(), "{token}");
    }
    let mut shed = 0;
    for id in &bulk {
        let answer = &answers[id];
        if answer["payload"]["code"] == "OVERLOADED" {
            let details = error_payload(answer, "OVERLOADED", 503)["details"].clone();
            assert!(
                details["retryAfter"].as_u64().is_some_and(|secs| secs >= 1),
                "{answer}"
            );
            shed += 1;
        } else {
            // Admitted when there was room: the operation's own answer.
            assert!(
                answer["status"] == "success" || answer["status"] == "error",
                "{answer}"
            );
        }
    }
    assert!(shed >= 1, "no bulk request was shed: {answers:?}");
    let Some(first) = backpressure.first() else {
        panic!("no backpressure notification");
    };
    assert_eq!(first["capacity"], 4, "{first}");
    assert!(
        first["queued"].as_u64().is_some_and(|queued| queued >= 3),
        "{first}"
    );

    assert_raw_usable(&mut socket).await;
    app.shutdown().await;
}

// ---- slow consumers ----

/// `petstore_ws_closes_total{code="<code>"}` from `/metrics`. The metrics are the process's,
/// shared by the servers of this suite, so a test reads it before and after.
async fn ws_closes(app: &TestApp, code: u16) -> f64 {
    let text = ok_text(send(app.anonymous.get(app.url("/metrics"))).await).await;
    let label = format!("code=\"{code}\"");
    let sample = text.lines().find(|line| {
        line.starts_with("petstore_ws_closes_total{") && line.contains(label.as_str())
    });
    match sample.and_then(|line| line.rsplit(' ').next()?.parse().ok()) {
        Some(value) => value,
        None => panic!("no petstore_ws_closes_total sample for {code} in /metrics:\n{text}"),
    }
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_closed_with_1013() {
    let app = spawn_app(|config| {
        config.ws_outbox_capacity = 2;
        config.ws_write_timeout_ms = 200;
    })
    .await;
    let reader = app.ws_connect().await;
    let (token, _) = app.customer_tokens("jonas", PASSWORD).await;
    answered(reader.authenticate(&token)).await;
    answered(reader.subscribe(&[Topic::Pets])).await;
    let mut seen = reader.notifications();

    let slow_closes_before = ws_closes(&app, 1013).await;
    let mut stalled = app.ws_raw_connect_admin_narrow(8 * 1024).await;
    let subscribed = round_trip(&mut stalled, "subscribe", json!({ "topics": ["pets"] })).await;
    assert_eq!(
        subscribed["payload"]["topics"],
        json!(["pets"]),
        "{subscribed}"
    );
    app.wait_for_ws_sessions(2).await;

    // The raw client reads no more. Each pet is about 40 KiB of notification (the largest the
    // schema allows: 20 photo URLs of up to 2048 characters). 400 of them are 16 MiB, four
    // times what the kernel can buffer between the two ends (a send buffer grows to 4 MiB at
    // most; the client's receive buffer is narrowed), so the server's writes must block and its
    // write timeout end the session. Ending it takes the timeout plus at most the close
    // handshake's wait (the close frame cannot get through either): the test waits for that
    // rather than counting pets, which a fast build adds faster than the session can end.
    let photo = format!("https://img.example/{}", "p".repeat(2000));
    let pet = json!({ "name": "Heavy", "photoUrls": vec![photo; 20] });
    for _ in 0..40 {
        if app.ws_sessions().await.0 != 2 {
            break;
        }
        for _ in 0..10 {
            app.add_pet(pet.clone()).await;
        }
    }
    app.wait_for_ws_sessions(1).await;
    // No other test of this suite closes with 1013.
    assert!(
        ws_closes(&app, 1013).await > slow_closes_before,
        "the server did not count a 1013 close"
    );

    // What the stalled client reads now: the notifications that got through, then the close
    // frame if it made it out before the server gave up on the connection.
    if let Ending::Closed(code, reason) = read_until_closed(&mut stalled).await {
        assert_eq!(code, 1013, "{reason}");
    }
    // The reading subscriber kept up.
    assert_usable(&reader).await;
    let events = events_so_far(&mut seen);
    assert!(!events.is_empty(), "the reading subscriber got no event");
    assert!(
        events.iter().all(|event| event == "pet.created"),
        "{events:?}"
    );
    app.shutdown().await;
}

// ---- dead and idle peers ----

/// The frames of a server-to-client byte stream (unmasked), as `(opcode, payload)`; a
/// truncated last frame is left out.
fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (length, header): (usize, usize) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 if bytes.len() >= 10 => {
                let mut length = [0; 8];
                length.copy_from_slice(&bytes[2..10]);
                (
                    usize::try_from(u64::from_be_bytes(length)).unwrap_or(usize::MAX),
                    10,
                )
            }
            126 | 127 => break,
            length => (usize::from(length), 2),
        };
        let Some(end) = header.checked_add(length).filter(|end| *end <= bytes.len()) else {
            break;
        };
        frames.push((opcode, bytes[header..end].to_vec()));
        bytes = &bytes[end..];
    }
    frames
}

#[tokio::test]
async fn a_peer_that_never_answers_pings_is_closed() {
    let app = spawn_app(|config| {
        config.ws_heartbeat_ms = 100;
        config.ws_dead_after_ms = 400;
        config.ws_auth_timeout_ms = 60_000;
    })
    .await;
    // A client that reads answers the server's pings, and stays.
    let alive = app.ws_connect().await;

    let mut stream = match TcpStream::connect(app.addr).await {
        Ok(stream) => stream,
        Err(error) => panic!("cannot connect to {}: {error}", app.addr),
    };
    let upgrade = format!(
        "GET /api/v3/ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        app.addr
    );
    if let Err(error) = stream.write_all(upgrade.as_bytes()).await {
        panic!("cannot send the upgrade: {error}");
    }
    // Read the handshake answer byte by byte, so no frame after it is consumed.
    let mut head = Vec::new();
    guard("the handshake answer", async {
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read_u8().await {
                Ok(byte) => head.push(byte),
                Err(error) => panic!("the connection ended during the handshake: {error}"),
            }
        }
    })
    .await;
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    app.wait_for_ws_sessions(2).await;

    // Never reading, never answering: the server gives up on it.
    app.wait_for_ws_sessions(1).await;
    let mut received = Vec::new();
    let read = guard("reading to the end", stream.read_to_end(&mut received)).await;
    if let Err(error) = read {
        panic!("the connection failed instead of ending: {error}");
    }
    let frames = server_frames(&received);
    assert!(
        frames.iter().any(|(opcode, _)| *opcode == 0x9),
        "the server never pinged: {frames:?}"
    );
    let close = frames.iter().find(|(opcode, _)| *opcode == 0x8);
    let Some((_, payload)) = close else {
        panic!("no close frame in {frames:?}");
    };
    assert!(payload.len() >= 2, "a close frame without a code");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1001);

    assert_usable(&alive).await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_idle_session_is_closed_with_1000_unless_it_follows_a_topic() {
    let app = spawn_app(|config| config.ws_idle_timeout_ms = 300).await;
    let (token, _) = app.customer_tokens("karla", PASSWORD).await;
    let idle = app.ws_connect().await;
    let follower = app.ws_connect().await;
    answered(idle.authenticate(&token)).await;
    answered(follower.authenticate(&token)).await;
    answered(follower.subscribe(&[Topic::Pets])).await;

    let close = server_close(&idle).await;
    assert_eq!(close.code, 1000, "{close:?}");
    // Three more idle timeouts without a request: the follower stays.
    sleep(Duration::from_millis(900)).await;
    assert_usable(&follower).await;
    app.shutdown().await;
}

// ---- graceful shutdown ----

#[tokio::test]
async fn shutdown_answers_requests_in_flight_then_closes_with_1012() {
    let app = spawn_app(|_| {}).await;
    app.create_user("lars", PASSWORD).await;
    let mut socket = app.ws_raw_connect(&[]).await;

    let mut logins = HashSet::new();
    for _ in 0..4 {
        let (id, text) = request("loginUser", login_payload("lars"));
        feed_text(&mut socket, text).await;
        logins.insert(id);
    }
    let (ping_id, ping) = request("ping", json!({}));
    feed_text(&mut socket, ping).await;
    flush(&mut socket).await;

    // Once the ping (sent after them) is answered, the logins have been read and are running.
    let mut answered_logins = HashSet::new();
    loop {
        let response = next_response(&mut socket).await;
        let Some(id) = response["correlationId"].as_str().map(str::to_owned) else {
            panic!("a response without a correlation id: {response}");
        };
        if id == ping_id {
            success_payload(&response, &id);
            break;
        }
        assert!(success_payload(&response, &id).is_string(), "{response}");
        assert!(logins.contains(&id), "{response}");
        answered_logins.insert(id);
    }

    let closing = async {
        while answered_logins.len() < logins.len() {
            let response = next_response(&mut socket).await;
            let Some(id) = response["correlationId"].as_str().map(str::to_owned) else {
                panic!("a response without a correlation id: {response}");
            };
            assert!(logins.contains(&id), "{response}");
            assert!(success_payload(&response, &id).is_string(), "{response}");
            answered_logins.insert(id);
        }
        read_until_closed(&mut socket).await
    };
    let ((), ending) = tokio::join!(app.shutdown(), closing);
    match ending {
        Ending::Closed(code, reason) => assert_eq!(code, 1012, "{reason}"),
        Ending::Gone(how) => panic!("no close frame after the responses: {how}"),
    }
}

#[tokio::test]
async fn shutdown_closes_idle_sessions_with_1012() {
    let app = spawn_app(|_| {}).await;
    let (token, _) = app.customer_tokens("mira", PASSWORD).await;
    let client = app
        .ws_connect_with(ClientOptions::default().bearer_token(&token))
        .await;
    assert_usable(&client).await;

    // Nothing in flight, nothing queued: the close goes out at once, not at the next heartbeat.
    let ((), close) = tokio::join!(app.shutdown(), server_close(&client));
    assert_eq!(close.code, 1012, "{close:?}");
}
