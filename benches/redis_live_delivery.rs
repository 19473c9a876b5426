//! Live delivery between nodes over Redis: pub/sub (what the server does) against blocking
//! stream reads of the bus-wide log (the alternative), in one run.
//!
//! Every event is written by the server's own publish script (`src/events/lua/publish.lua`):
//! it numbers the event, appends it to its topic's stream and to the bus-wide log, and
//! publishes it on the bus channel. What differs is how the other nodes hear of it:
//!
//! * **pub/sub**: each node has a connection subscribed to the channel (Redis pushes every
//!   message to every subscriber);
//! * **stream reads**: each node has a connection parked in `XREAD BLOCK` on the log, from the
//!   last entry it read (Redis wakes every blocked reader on each `XADD`, and each reader asks
//!   again). The script's `PUBLISH` still runs, to a channel nobody listens to: a few hundred
//!   nanoseconds in Redis that a stream-only build would save.
//!
//! A "node" here is one Redis connection in this process doing what a node's reader does up to
//! the point where the event would be handed to its hub: receive it and read its sequence
//! number. The publisher writes at a steady rate, not waiting for deliveries; modes and node
//! counts take turns in rounds, each round on a fresh key prefix, so drift on the shared
//! machine hits all alike. A delivery's latency runs from just before the publish call to the
//! node's receipt, on one monotonic clock. Every node must receive every event once and in
//! order; anything else fails the run.
//!
//! Reported per mode and node count: delivery p50/p99/max, Redis CPU per event, and this
//! process's CPU (publisher plus all nodes) per delivery.
//!
//! Run with `cargo bench --bench redis_live_delivery` (about a minute). Without `--bench` (as
//! under `cargo test --all-targets`) it does a smoke run with a few events.

use petstore_testkit::bench::{node, ws as ws_support};
use std::{
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use fred::{
    prelude::{
        Builder, Client, ClientLike, Config, EventInterface, LuaInterface, PubsubInterface,
        StreamsInterface,
    },
    types::{Value, streams::XReadResponse},
};
use petstore_testkit::redis::{LocalRedis, Persistence};
use ws_support::{median, ms, percentile};

/// The server binary's allocator (`src/main.rs`), for every server this benchmark runs, ours and
/// the bare ones alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The server's publish script, run unchanged.
const PUBLISH_SCRIPT: &str = include_str!("../src/events/lua/publish.lua");
/// The rest of a notification after the script's `{"seq":…,"epoch":…,"positions":{…},`, the
/// size of a `pet.updated` the server sends.
const BODY: &str = r#""event":"pet.updated","timestamp":"2026-12-06T12:00:00.000Z","payload":{"id":10,"name":"doggie","category":{"id":1,"name":"Dogs"},"photoUrls":["https://example.com/doggie.png"],"tags":[{"id":1,"name":"friendly"}],"status":"available"}}"#;
/// Longest wait for a round's last event to reach every node.
const DELIVERY_GUARD: Duration = Duration::from_secs(20);
/// How long one blocking stream read waits before asking again (it returns at once when an
/// event arrives; this only bounds a read that would otherwise block forever).
const BLOCK_MS: u64 = 1_000;

#[derive(Debug, Clone, Copy)]
struct Plan {
    name: &'static str,
    node_counts: &'static [usize],
    rounds: usize,
    /// Events per mode, node count and round.
    events: usize,
    /// Time between two publishes.
    period: Duration,
}

const FULL_RUN: Plan = Plan {
    name: "live delivery over Redis",
    node_counts: &[3, 10],
    rounds: 3,
    events: 1_000,
    period: Duration::from_millis(2),
};

const SMOKE_RUN: Plan = Plan {
    name: "live delivery over Redis smoke run (no --bench: checks the harness, figures mean nothing)",
    node_counts: &[2],
    rounds: 1,
    events: 20,
    period: Duration::from_millis(2),
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    PubSub,
    StreamReads,
}

impl Mode {
    const ALL: [Mode; 2] = [Mode::PubSub, Mode::StreamReads];

    fn label(self) -> &'static str {
        match self {
            Mode::PubSub => "pub/sub",
            Mode::StreamReads => "stream reads (XREAD BLOCK)",
        }
    }
}

/// The keys and channel of one round (a fresh prefix each round, so sequence numbers start
/// at 1).
struct RoundKeys {
    seq: String,
    epoch: String,
    offsets: String,
    versions: String,
    log: String,
    topic: String,
    channel: String,
}

impl RoundKeys {
    fn new(prefix: &str) -> Self {
        Self {
            seq: format!("{prefix}:events:seq"),
            epoch: format!("{prefix}:events:epoch"),
            offsets: format!("{prefix}:events:offsets"),
            versions: format!("{prefix}:events:versions"),
            log: format!("{prefix}:events:log"),
            topic: format!("{prefix}:events:topic:pets"),
            channel: format!("{prefix}:events"),
        }
    }
}

/// What one round of one mode measured.
#[derive(Debug, Default)]
struct RoundFigures {
    /// Delivery latencies of every node, µs.
    latencies: Vec<u64>,
    redis_cpu: Option<Duration>,
    own_cpu: Option<Duration>,
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
            eprintln!("redis_live_delivery: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(plan)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("redis_live_delivery: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(plan: Plan) -> Result<(), String> {
    let redis = LocalRedis::start(Persistence::AppendOnly)
        .map_err(|error| format!("cannot start redis-server: {error}"))?;
    let publisher = connect(&redis).await?;
    // Loaded once and called by its digest, as the server does.
    let script: String = publisher
        .script_load(PUBLISH_SCRIPT)
        .await
        .map_err(|error| format!("SCRIPT LOAD: {error}"))?;
    println!(
        "{}: {} events per round at one per {:?}, {} rounds, nodes {:?}; Redis with AOF everysec",
        plan.name, plan.events, plan.period, plan.rounds, plan.node_counts
    );
    let mut results: Vec<(Mode, usize, Vec<RoundFigures>)> = Vec::new();
    for &nodes in plan.node_counts {
        for mode in Mode::ALL {
            results.push((mode, nodes, Vec::new()));
        }
    }
    for round in 0..plan.rounds {
        // Rotate the order each round.
        let count = results.len();
        for step in 0..count {
            let index = (step + round) % count;
            let (mode, nodes, _) = results[index];
            let prefix = node::fresh_prefix("live");
            let figures =
                run_round(&redis, (&publisher, &script), mode, nodes, plan, &prefix).await?;
            results[index].2.push(figures);
        }
    }
    print_report(plan, &results);
    publisher.quit().await.ok();
    Ok(())
}

async fn connect(redis: &LocalRedis) -> Result<Client, String> {
    let config = Config::from_url(&redis.url()).map_err(|error| error.to_string())?;
    let client = Builder::from_config(config)
        .build()
        .map_err(|error| error.to_string())?;
    client.init().await.map_err(|error| error.to_string())?;
    Ok(client)
}

async fn run_round(
    redis: &LocalRedis,
    (publisher, script): (&Client, &str),
    mode: Mode,
    nodes: usize,
    plan: Plan,
    prefix: &str,
) -> Result<RoundFigures, String> {
    let keys = Arc::new(RoundKeys::new(prefix));
    let mut readers = Vec::with_capacity(nodes);
    for _ in 0..nodes {
        let client = connect(redis).await?;
        let reader = match mode {
            Mode::PubSub => {
                let mut messages = client.message_rx();
                client
                    .subscribe(keys.channel.clone())
                    .await
                    .map_err(|error| format!("SUBSCRIBE: {error}"))?;
                let events = plan.events;
                tokio::spawn(async move {
                    let mut arrivals = Vec::with_capacity(events);
                    while arrivals.len() < events {
                        let Ok(message) = messages.recv().await else {
                            break;
                        };
                        let seq = message.value.as_bytes().and_then(sequence_number);
                        arrivals.push((seq, Instant::now()));
                    }
                    client.quit().await.ok();
                    arrivals
                })
            }
            Mode::StreamReads => {
                let keys = Arc::clone(&keys);
                let events = plan.events;
                tokio::spawn(async move {
                    let mut arrivals = Vec::with_capacity(events);
                    let mut last_id = "0-0".to_owned();
                    let deadline = Instant::now() + DELIVERY_GUARD * 3;
                    while arrivals.len() < events && Instant::now() < deadline {
                        let read: Result<XReadResponse<String, String, String, Bytes>, _> = client
                            .xread_map(Some(100), Some(BLOCK_MS), keys.log.clone(), last_id.clone())
                            .await;
                        let Ok(mut read) = read else {
                            break;
                        };
                        let now = Instant::now();
                        for (id, fields) in read.remove(&keys.log).unwrap_or_default() {
                            let seq = fields.get("m").and_then(|m| sequence_number(m));
                            arrivals.push((seq, now));
                            last_id = id;
                        }
                    }
                    client.quit().await.ok();
                    arrivals
                })
            }
        };
        readers.push(reader);
    }
    // Let every stream reader park in its first blocking read.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let redis_cpu_before = node::redis_cpu_time(redis.port());
    let own_cpu_before = ws_support::own_cpu_time();
    let mut sent = Vec::with_capacity(plan.events);
    let start = Instant::now();
    for event in 0..plan.events {
        let due = start + plan.period * u32::try_from(event).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due.into()).await;
        sent.push(Instant::now());
        let seq = publish(publisher, script, &keys).await?;
        if seq != event as i64 + 1 {
            return Err(format!("event {event} was numbered {seq}"));
        }
    }
    let mut figures = RoundFigures::default();
    for reader in readers {
        let arrivals = tokio::time::timeout(DELIVERY_GUARD, reader)
            .await
            .map_err(|_| format!("{}: a node did not receive every event", mode.label()))?
            .map_err(|error| format!("a reader failed: {error}"))?;
        if arrivals.len() != plan.events {
            return Err(format!(
                "{}: a node received {} of {} events",
                mode.label(),
                arrivals.len(),
                plan.events
            ));
        }
        for (index, (seq, at)) in arrivals.into_iter().enumerate() {
            if seq != Some(index as u64 + 1) {
                return Err(format!(
                    "{}: delivery {index} was event {seq:?}: lost, repeated or out of order",
                    mode.label()
                ));
            }
            let latency = at.saturating_duration_since(sent[index]);
            figures
                .latencies
                .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        }
    }
    figures.redis_cpu = node::redis_cpu_time(redis.port())
        .zip(redis_cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    figures.own_cpu = ws_support::own_cpu_time()
        .zip(own_cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    Ok(figures)
}

/// Publishes one event with the server's script (a batch of one); answers its sequence number.
async fn publish(publisher: &Client, script: &str, keys: &RoundKeys) -> Result<i64, String> {
    let script_keys = vec![
        keys.seq.clone(),
        keys.epoch.clone(),
        keys.offsets.clone(),
        keys.versions.clone(),
        keys.log.clone(),
        keys.topic.clone(),
    ];
    let args: Vec<Value> = vec![
        "bench-epoch".into(),
        1_000_i64.into(),
        10_000_i64.into(),
        600_000_i64.into(),
        keys.channel.clone().into(),
        "".into(),
        0_i64.into(),
        BODY.into(),
        1_i64.into(),
        "pets".into(),
    ];
    let answers: Vec<i64> = publisher
        .evalsha(script, script_keys, args)
        .await
        .map_err(|error| format!("publish script: {error}"))?;
    answers
        .first()
        .copied()
        .ok_or_else(|| "the publish script answered nothing".to_owned())
}

/// The `seq` a message placed by the publish script starts with: `{"seq":N,…`.
fn sequence_number(message: &[u8]) -> Option<u64> {
    let rest = message.strip_prefix(br#"{"seq":"#)?;
    let digits = rest.iter().take_while(|byte| byte.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

fn print_report(plan: Plan, results: &[(Mode, usize, Vec<RoundFigures>)]) {
    println!();
    println!(
        "| nodes | mode | p50 ms | p99 ms | max ms | Redis CPU µs/event | bench CPU µs/delivery |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (mode, nodes, rounds) in results {
        let mut latencies: Vec<u64> = rounds
            .iter()
            .flat_map(|round| round.latencies.iter().copied())
            .collect();
        latencies.sort_unstable();
        let per = |cpu: fn(&RoundFigures) -> Option<Duration>, divisor: usize| -> String {
            let values: Vec<f64> = rounds
                .iter()
                .filter_map(|round| cpu(round).map(|d| d.as_secs_f64() * 1e6 / divisor as f64))
                .collect();
            if values.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.1}", median(&values))
            }
        };
        println!(
            "| {nodes} | {} | {} | {} | {} | {} | {} |",
            mode.label(),
            ms(percentile(&latencies, 50.0)),
            ms(percentile(&latencies, 99.0)),
            ms(latencies.last().copied().unwrap_or_default()),
            per(|round| round.redis_cpu, plan.events),
            per(|round| round.own_cpu, plan.events * nodes),
        );
    }
}
