//! Recovery after a reconnect: how long a client that missed 1,000 events waits for them, and
//! for the first live event after them, on the embedded store and on Redis.
//!
//! Per target and round: a raw WebSocket subscribes to `pets` and notes the position the answer
//! gives, then disconnects; 1,000 pets are added over REST (16 at a time); a second WebSocket
//! subscribes with `since` that position. Measured from just before that `subscribe` is sent:
//! its answer, the last of the 1,000 replayed `pet.created` notifications (each checked: in
//! order, contiguous offsets, none twice), then, from just before one more `addPet` is sent,
//! the live notification that follows. The answer must say `recovered: true, replayed: 1000`.
//!
//! Targets: petstore-ws with the default memory store, and with Redis (a private
//! `redis-server`, append-only file fsynced every second), each in this process, production
//! defaults otherwise (the history holds 2,000 events per topic here, so the 1,000 fit with the
//! demo data's). 3 rounds per target.
//!
//! Run with `cargo bench --bench ws_recovery` (about half a minute). Without `--bench` (as
//! under `cargo test --all-targets`) it does a smoke run of 50 events.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt, stream};
use petstore_testkit::{
    bench::ws::{self as ws_support, RawSocket},
    redis::{LocalRedis, Persistence},
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The server binary's allocator (`src/main.rs`), for every server this benchmark runs, ours and
/// the bare ones alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Longest wait for one frame.
const FRAME_GUARD: Duration = Duration::from_secs(20);

#[derive(Clone, Copy)]
struct Plan {
    events: usize,
    rounds: usize,
}

const FULL_RUN: Plan = Plan {
    events: 1_000,
    rounds: 3,
};
const SMOKE_RUN: Plan = Plan {
    events: 50,
    rounds: 1,
};

/// One round's figures, in microseconds.
struct Round {
    answer: u64,
    replayed: u64,
    live: u64,
}

fn main() -> ExitCode {
    let plan = if ws_support::full_run() {
        FULL_RUN
    } else {
        SMOKE_RUN
    };
    let runtime = match ws_support::server_runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ws_recovery: {error}");
            return ExitCode::FAILURE;
        }
    };
    let redis = match LocalRedis::start(Persistence::AppendOnly) {
        Ok(redis) => redis,
        Err(error) => {
            eprintln!("ws_recovery: cannot start redis-server: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "ws_recovery: {} missed events, {} rounds per target",
        plan.events, plan.rounds
    );
    println!(
        "| target | subscribe answer ms | all replayed ms | replayed events/s | first live event ms |"
    );
    println!("|---|---|---|---|---|");
    for (label, redis_url) in [
        ("memory store", None),
        ("Redis (AOF everysec)", Some(redis.url())),
    ] {
        match runtime.block_on(run_target(plan, redis_url)) {
            Ok(rounds) => report(label, plan, &rounds),
            Err(error) => {
                eprintln!("ws_recovery: {label}: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn report(label: &str, plan: Plan, rounds: &[Round]) {
    let median_of = |pick: fn(&Round) -> u64| {
        let values: Vec<f64> = rounds.iter().map(|round| pick(round) as f64).collect();
        ws_support::median(&values)
    };
    let replayed = median_of(|round| round.replayed);
    println!(
        "| {label} | {:.2} | {:.2} | {:.0} | {:.2} |",
        median_of(|round| round.answer) / 1000.0,
        replayed / 1000.0,
        plan.events as f64 / (replayed / 1_000_000.0),
        median_of(|round| round.live) / 1000.0,
    );
}

async fn run_target(plan: Plan, redis_url: Option<String>) -> Result<Vec<Round>, String> {
    let mut config = ws_support::ours_config(64);
    config.event_history_length = 2 * plan.events;
    // Kept until the server stops: a Redis node signs with a key from a file.
    let mut _key = None;
    if let Some(url) = redis_url {
        let key = petstore_testkit::bench::node::SigningKey::generate()?;
        config.jwt_private_key = Some(key.path().to_path_buf());
        _key = Some(key);
        config.redis_url = Some(url);
        config.redis_prefix = petstore_testkit::bench::node::fresh_prefix("recovery");
    }
    let server = ws_support::start_ours(config).await?;
    let base = format!("http://{}", server.local_addr());
    let ws_url = format!("ws://{}/api/v3/ws", server.local_addr());
    let http = reqwest::Client::new();
    let token = ws_support::admin_token(&http, &base).await?;
    let mut rounds = Vec::new();
    for _ in 0..plan.rounds {
        rounds.push(round(plan, &http, &base, &ws_url, &token).await?);
    }
    server.shutdown().await;
    Ok(rounds)
}

async fn round(
    plan: Plan,
    http: &reqwest::Client,
    base: &str,
    ws_url: &str,
    token: &str,
) -> Result<Round, String> {
    let mut first = ws_support::connect(ws_url, Some(token)).await?;
    let answer = call(&mut first, "subscribe", &json!({ "topics": ["pets"] })).await?;
    let position = answer["payload"]["positions"][0].clone();
    let offset = position["offset"]
        .as_u64()
        .ok_or_else(|| format!("no position in {answer}"))?;
    let _ = first.close(None).await;

    let added: Vec<Result<(), String>> = stream::iter(0..plan.events)
        .map(|n| add_pet(http, base, token, n))
        .buffer_unordered(16)
        .collect()
        .await;
    added.into_iter().collect::<Result<Vec<()>, String>>()?;

    let mut second = ws_support::connect(ws_url, Some(token)).await?;
    let started = Instant::now();
    let answer = call(
        &mut second,
        "subscribe",
        &json!({ "topics": ["pets"], "since": [{
            "topic": "pets", "offset": offset, "epoch": position["epoch"] }] }),
    )
    .await?;
    let answered = started.elapsed();
    let resumed = &answer["payload"]["positions"][0];
    if resumed["recovered"] != true || resumed["replayed"] != plan.events {
        return Err(format!("not recovered: {answer}"));
    }
    for n in 0..plan.events {
        let event = next_event(&mut second).await?;
        let expected = offset + 1 + n as u64;
        if event["positions"]["pets"] != expected {
            return Err(format!(
                "replayed out of order: expected {expected}, got {event}"
            ));
        }
    }
    let replayed = started.elapsed();
    let live_started = Instant::now();
    add_pet(http, base, token, plan.events).await?;
    let event = next_event(&mut second).await?;
    let live = live_started.elapsed();
    if event["positions"]["pets"] != offset + 1 + plan.events as u64 {
        return Err(format!("the live event is not the next one: {event}"));
    }
    let _ = second.close(None).await;
    let micros = |duration: Duration| u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    Ok(Round {
        answer: micros(answered),
        replayed: micros(replayed),
        live: micros(live),
    })
}

async fn add_pet(http: &reqwest::Client, base: &str, token: &str, n: usize) -> Result<(), String> {
    let response = http
        .post(format!("{base}/api/v3/pet"))
        .bearer_auth(token)
        .json(&json!({ "name": format!("missed-{n}"), "photoUrls": [] }))
        .send()
        .await
        .map_err(|error| format!("addPet: {error}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("addPet answered {}", response.status()))
    }
}

/// Sends a request and waits for its answer, skipping other frames.
async fn call(socket: &mut RawSocket, action: &str, payload: &Value) -> Result<Value, String> {
    let id = uuid::Uuid::new_v4();
    socket
        .send(Message::text(ws_support::request_envelope(
            &id, action, payload,
        )))
        .await
        .map_err(|error| format!("{action}: {error}"))?;
    let id = id.hyphenated().to_string();
    loop {
        let frame = next_frame(socket).await?;
        if frame["correlationId"] == id.as_str() {
            return if frame["status"] == "success" {
                Ok(frame)
            } else {
                Err(format!("{action} refused: {frame}"))
            };
        }
    }
}

/// The next `pet.created` notification.
async fn next_event(socket: &mut RawSocket) -> Result<Value, String> {
    loop {
        let frame = next_frame(socket).await?;
        if frame["type"] == "notification" && frame["event"] == "pet.created" {
            return Ok(frame);
        }
    }
}

async fn next_frame(socket: &mut RawSocket) -> Result<Value, String> {
    loop {
        match tokio::time::timeout(FRAME_GUARD, socket.next()).await {
            Err(_) => return Err("no frame within 20 s".to_owned()),
            Ok(None) => return Err("the connection closed".to_owned()),
            Ok(Some(Err(error))) => return Err(format!("read: {error}")),
            Ok(Some(Ok(Message::Text(text)))) => {
                return serde_json::from_str(text.as_str())
                    .map_err(|error| format!("not JSON: {error}"));
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}
