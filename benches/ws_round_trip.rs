//! WebSocket request/response against a bare tokio-tungstenite server, in one run.
//!
//! The product target is a ratio: `getPetById` over a WebSocket on our server (envelope parsing,
//! per-connection rate limit, priority queue, dispatch to the same handler as REST, response
//! envelope) must reach at least 0.5× the round trips per second of a bare tokio-tungstenite
//! server that answers every text frame with fixed bytes.
//!
//! Two servers, each in a child process (see `ws_support`):
//!
//! * **tungstenite (bare)**: `accept_async` with the 4 KiB read buffer our sessions use (see
//!   [`serve_bare`] for why not the default), one task per connection, answering each text frame
//!   with a pre-built response envelope: our server's answer to the same request, captured at
//!   start-up, so both put the same number of bytes on the wire;
//! * **petstore-ws**: `server::spawn` with the production defaults and demo data, tracing at
//!   `info` and metrics on, the rate limits (REST and per-connection messages) raised so that they
//!   run but never refuse, and the authentication deadline beyond the run (the connections stay
//!   anonymous: `getPetById` is public).
//!
//! One in-process load generator keeps N connections (default 50, `WS_BENCH_CONNECTIONS` to
//! change it) in a closed loop: each sends a `getPetById` request envelope for pet 1 with a
//! fresh correlation id, waits for the answer, sends the next. The bare server gets exactly the
//! same frames. Each target gets a warm-up and a measurement window per round, targets
//! alternating and the order rotating each round; the figures are the medians over rounds
//! (round trips/s), latency percentiles over every round trip measured, and the server
//! process's CPU time per round trip, which does not depend on how the two cores are shared
//! between the client and the server.
//!
//! Every answer is checked: its length is the captured response's, it is a response envelope,
//! and from our server it carries the request's correlation id and `"status":"success"`. Any
//! failure makes the run exit non-zero.
//!
//! Run with `cargo bench --bench ws_round_trip` (about 45 s). Without `--bench` (as under
//! `cargo test --all-targets`) it does a sub-second smoke run of the same code.

use petstore_testkit::bench::ws as ws_support;
use std::{
    fmt,
    net::SocketAddr,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use uuid::Uuid;
use ws_support::{CONNECTIONS_ENV, ChildServer, RawSocket, ms, percentile};

/// The server binary's allocator (`src/main.rs`), for every server this benchmark runs, ours and
/// the bare ones alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Environment variable carrying our response frame to the bare server.
const RESPONSE_ENV: &str = "WS_ROUND_TRIP_RESPONSE";

/// The start of every response envelope; the correlation id follows.
const RESPONSE_HEAD: &str = r#"{"type":"response","correlationId":""#;

#[derive(Debug, Clone, Copy)]
struct Plan {
    name: &'static str,
    connections: usize,
    rounds: usize,
    warm_up: Duration,
    measure: Duration,
}

const FULL_RUN: Plan = Plan {
    name: "WebSocket getPetById round trips",
    connections: 50,
    rounds: 3,
    warm_up: Duration::from_secs(1),
    measure: Duration::from_secs(5),
};

const SMOKE_RUN: Plan = Plan {
    name: "WebSocket round trips smoke run (no --bench: checks the harness, figures mean nothing)",
    connections: 4,
    rounds: 1,
    warm_up: Duration::from_millis(100),
    measure: Duration::from_millis(300),
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Bare,
    Ours,
}

impl Target {
    fn role(self) -> &'static str {
        match self {
            Target::Bare => "tungstenite-echo",
            Target::Ours => "ours",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Target::Bare => "tungstenite (bare)",
            Target::Ours => "petstore-ws",
        }
    }
}

fn main() -> ExitCode {
    if let Some(exit) = ws_support::run_child("ws_round_trip", child_main) {
        return exit;
    }
    let mut plan = if ws_support::full_run() {
        FULL_RUN
    } else {
        SMOKE_RUN
    };
    if let Some(connections) =
        ws_support::connections_from_env().filter(|&connections: &usize| connections > 0)
    {
        plan.connections = connections;
    }
    match parent_main(plan) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("ws_round_trip: some round trips failed (see above)");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("ws_round_trip: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child side.

fn child_main(role: &str) -> Result<(), String> {
    if role == Target::Ours.role() {
        let connections = ws_support::connections_from_env().unwrap_or(FULL_RUN.connections as u32);
        // Every round opens its connections afresh; the previous round's may still be closing.
        let mut config = ws_support::ours_config(connections.saturating_mul(2));
        // Anonymous sessions are closed at the authentication deadline; `getPetById` is public,
        // so the connections never authenticate, and the deadline is put beyond the run.
        config.ws_auth_timeout_ms = 10 * 60 * 1000;
        return ws_support::serve_ours_until_parent_gone(config);
    }
    if role != Target::Bare.role() {
        return Err(format!("unknown role `{role}`"));
    }
    let response = std::env::var(RESPONSE_ENV).map_err(|_| format!("{RESPONSE_ENV} is not set"))?;
    ws_support::serve_bare_until_parent_gone(serve_bare(Utf8Bytes::from(response)))
}

/// The ceiling: tokio-tungstenite as its README shows it, a task per connection answering every
/// text frame with the same pre-built envelope, with our sessions' 4 KiB read buffer.
/// tungstenite's default 128 KiB buffer is zero-filled up to its capacity before every read
/// attempt, which costs the bare server more CPU per round trip than all of our session code.
async fn serve_bare(response: Utf8Bytes) -> Result<SocketAddr, String> {
    ws_support::accept_connections(move |mut socket| async move {
        while let Some(Ok(message)) = socket.next().await {
            let sent = match message {
                Message::Text(_) => socket.send(Message::Text(response.clone())).await,
                Message::Close(_) => return,
                _ => Ok(()),
            };
            if sent.is_err() {
                return;
            }
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Parent side: the load generator.

/// One target's figures for one round.
#[derive(Debug, Default)]
struct Sample {
    round_trips_per_second: f64,
    round_trips: u64,
    server_cpu: Option<Duration>,
    /// Microseconds per measured round trip.
    latencies: Vec<u32>,
}

/// What one connection saw.
#[derive(Debug, Default)]
struct ConnectionStats {
    latencies: Vec<u32>,
    failures: u64,
    first_failure: Option<String>,
}

impl ConnectionStats {
    fn fail(&mut self, reason: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(reason);
    }
}

const WARMING_UP: u8 = 0;
const MEASURING: u8 = 1;
const STOPPING: u8 = 2;

fn parent_main(plan: Plan) -> Result<bool, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot build the load generator runtime: {error}"))?;
    let connections = plan.connections.to_string();
    let ours = ws_support::start_server(Target::Ours.role(), &[(CONNECTIONS_ENV, &connections)])?;
    let response = runtime
        .block_on(probe(&ours.ws_url(), true))
        .map_err(|reason| format!("petstore-ws: {reason}"))?;
    let bare = ws_support::start_server(Target::Bare.role(), &[(RESPONSE_ENV, &response)])?;
    let echoed = runtime
        .block_on(probe(&bare.ws_url(), false))
        .map_err(|reason| format!("tungstenite (bare): {reason}"))?;
    if echoed != response {
        return Err(format!(
            "the bare server answers {} bytes, not our {}",
            echoed.len(),
            response.len()
        ));
    }
    let servers = [(Target::Bare, bare), (Target::Ours, ours)];

    println!(
        "{}: {} connections, one request in flight each, {} round(s) × {} targets × {:?} \
         (after {:?} warm-up each), {}-byte response",
        plan.name,
        plan.connections,
        plan.rounds,
        servers.len(),
        plan.measure,
        plan.warm_up,
        response.len()
    );
    let mut samples: Vec<Vec<Sample>> = servers.iter().map(|_| Vec::new()).collect();
    let mut all_ok = true;
    for round in 0..plan.rounds {
        for offset in 0..servers.len() {
            let index = (round + offset) % servers.len();
            let (target, server) = &servers[index];
            let (sample, failures, first) =
                runtime.block_on(drive(*target, server, plan, response.len()));
            if failures > 0 {
                all_ok = false;
                eprintln!(
                    "{} round {}: {failures} failed round trip(s), first: {}",
                    target.label(),
                    round + 1,
                    first.as_deref().unwrap_or("?")
                );
            }
            samples[index].push(sample);
        }
    }
    print!(
        "{}",
        Report {
            plan,
            targets: [Target::Bare, Target::Ours],
            samples: &samples,
        }
    );
    Ok(all_ok)
}

/// The request for pet 1 under `correlation_id`, byte for byte what every target receives.
fn get_pet_request(correlation_id: &Uuid) -> String {
    let mut id = Uuid::encode_buffer();
    let id = correlation_id.hyphenated().encode_lower(&mut id);
    format!(
        r#"{{"type":"request","correlationId":"{id}","timestamp":{},"action":"getPetById","payload":{{"petId":1}}}}"#,
        chrono::Utc::now().timestamp_millis()
    )
}

/// One round trip on a fresh connection: the answer, which must be a success.
async fn probe(url: &str, must_succeed: bool) -> Result<String, String> {
    let mut socket = ws_support::connect(url, None).await?;
    let id = Uuid::new_v4();
    let text = round_trip(&mut socket, &get_pet_request(&id)).await?;
    if must_succeed {
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|error| format!("answer is not JSON: {error}"))?;
        if value["status"] != "success" || value["payload"]["id"] != 1 {
            return Err(format!(
                "getPetById 1 answered {text}; is the demo data loaded?"
            ));
        }
    }
    let _ = socket.close(None).await;
    Ok(text)
}

async fn round_trip(socket: &mut RawSocket, request: &str) -> Result<String, String> {
    socket
        .send(Message::text(request))
        .await
        .map_err(|error| format!("send: {error}"))?;
    loop {
        let reading = tokio::time::timeout(Duration::from_secs(10), socket.next());
        match reading.await {
            Err(_) => return Err("no answer within 10 s".to_owned()),
            Ok(None) => return Err("connection closed".to_owned()),
            Ok(Some(Err(error))) => return Err(format!("read: {error}")),
            Ok(Some(Ok(Message::Text(text)))) => return Ok(text.as_str().to_owned()),
            Ok(Some(Ok(Message::Close(frame)))) => return Err(format!("closed: {frame:?}")),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Warms up, then measures one target with `plan.connections` closed-loop connections.
async fn drive(
    target: Target,
    server: &ChildServer,
    plan: Plan,
    response_len: usize,
) -> (Sample, u64, Option<String>) {
    let phase = Arc::new(AtomicU8::new(WARMING_UP));
    let url = server.ws_url();
    let tasks: Vec<_> = (0..plan.connections)
        .map(|index| {
            tokio::spawn(connection_loop(
                url.clone(),
                index as u64,
                Arc::clone(&phase),
                response_len,
                target == Target::Ours,
            ))
        })
        .collect();
    tokio::time::sleep(plan.warm_up).await;

    let cpu_before = server.cpu_time();
    let started = Instant::now();
    phase.store(MEASURING, Ordering::Relaxed);
    tokio::time::sleep(plan.measure).await;
    phase.store(STOPPING, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cpu_after = server.cpu_time();

    let mut sample = Sample::default();
    let mut failures = 0;
    let mut first_failure = None;
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(15), task).await {
            Ok(Ok(stats)) => {
                sample.latencies.extend_from_slice(&stats.latencies);
                failures += stats.failures;
                if let Some(reason) = stats.first_failure {
                    first_failure.get_or_insert(reason);
                }
            }
            Ok(Err(error)) => {
                failures += 1;
                first_failure.get_or_insert(format!("connection task failed: {error}"));
            }
            Err(_) => {
                failures += 1;
                first_failure.get_or_insert("a connection did not stop within 15 s".to_owned());
            }
        }
    }
    sample.round_trips = sample.latencies.len() as u64;
    sample.round_trips_per_second = sample.round_trips as f64 / elapsed.as_secs_f64();
    sample.server_cpu = ws_support::cpu_spent(cpu_before, cpu_after);
    sample.latencies.sort_unstable();
    (sample, failures, first_failure)
}

async fn connection_loop(
    url: String,
    index: u64,
    phase: Arc<AtomicU8>,
    response_len: usize,
    check_id: bool,
) -> ConnectionStats {
    let mut stats = ConnectionStats::default();
    let mut socket = match ws_support::connect(&url, None).await {
        Ok(socket) => socket,
        Err(reason) => {
            stats.fail(reason);
            return stats;
        }
    };
    let mut sequence = 0_u64;
    while phase.load(Ordering::Relaxed) != STOPPING {
        sequence += 1;
        let id = Uuid::from_u64_pair(index, sequence);
        let request = get_pet_request(&id);
        let sent = Instant::now();
        let answer = match round_trip(&mut socket, &request).await {
            Ok(answer) => answer,
            Err(reason) => {
                stats.fail(reason);
                break;
            }
        };
        let took = sent.elapsed();
        if let Err(reason) = check_answer(&answer, response_len, check_id.then_some(&id)) {
            stats.fail(reason);
            continue;
        }
        if phase.load(Ordering::Relaxed) == MEASURING {
            stats
                .latencies
                .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        }
    }
    // A clean close, so the server's session (and its per-address permit) ends before the next
    // round connects.
    let _ = tokio::time::timeout(Duration::from_secs(2), socket.close(None)).await;
    stats
}

/// Whether an answer is the expected response: its length, its head and, from our server, the
/// request's correlation id and a success status.
fn check_answer(answer: &str, response_len: usize, id: Option<&Uuid>) -> Result<(), String> {
    if answer.len() != response_len || !answer.starts_with(RESPONSE_HEAD) {
        return Err(format!(
            "unexpected answer ({} bytes, expected {response_len}): {answer}",
            answer.len()
        ));
    }
    if let Some(id) = id {
        let mut buffer = Uuid::encode_buffer();
        let id = id.hyphenated().encode_lower(&mut buffer);
        let echoed = answer.get(RESPONSE_HEAD.len()..RESPONSE_HEAD.len() + id.len());
        if echoed != Some(id) || !answer.contains(r#""status":"success""#) {
            return Err(format!("answer to another request or an error: {answer}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Report.

struct Report<'a> {
    plan: Plan,
    targets: [Target; 2],
    samples: &'a [Vec<Sample>],
}

impl Report<'_> {
    fn index(&self, target: Target) -> usize {
        self.targets
            .iter()
            .position(|&candidate| candidate == target)
            .unwrap_or(0)
    }

    fn median_rps(&self, target: Target) -> f64 {
        let rps: Vec<f64> = self.samples[self.index(target)]
            .iter()
            .map(|sample| sample.round_trips_per_second)
            .collect();
        ws_support::median(&rps)
    }

    /// Latency percentile over every measured round trip of every round, in microseconds.
    fn latency(&self, target: Target, p: f64) -> u64 {
        let mut all: Vec<u32> = self.samples[self.index(target)]
            .iter()
            .flat_map(|sample| sample.latencies.iter().copied())
            .collect();
        all.sort_unstable();
        u64::from(percentile(&all, p))
    }

    /// Server CPU per round trip over all rounds, in microseconds.
    fn cpu_per_round_trip(&self, target: Target) -> Option<f64> {
        let samples = &self.samples[self.index(target)];
        let cpu: Option<Duration> = samples.iter().map(|sample| sample.server_cpu).sum();
        let round_trips: u64 = samples.iter().map(|sample| sample.round_trips).sum();
        (round_trips > 0).then(|| cpu.map(|cpu| cpu.as_secs_f64() * 1e6 / round_trips as f64))?
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<20}", "round trips/s")?;
        for round in 1..=self.plan.rounds {
            write!(f, "{:>10}", format!("round {round}"))?;
        }
        writeln!(
            f,
            "{:>10}{:>10}{:>10}{:>10}{:>16}",
            "median", "p50 ms", "p99 ms", "max ms", "server µs/rt"
        )?;
        for (&target, samples) in self.targets.iter().zip(self.samples) {
            write!(f, "{:<20}", target.label())?;
            for sample in samples {
                write!(f, "{:>10.0}", sample.round_trips_per_second)?;
            }
            let cpu = self
                .cpu_per_round_trip(target)
                .map_or_else(|| "-".to_owned(), |cpu| format!("{cpu:.1}"));
            writeln!(
                f,
                "{:>10.0}{:>10}{:>10}{:>10}{:>16}",
                self.median_rps(target),
                ms(self.latency(target, 50.0)),
                ms(self.latency(target, 99.0)),
                ms(self.latency(target, 100.0)),
                cpu
            )?;
        }
        let bare = self.median_rps(Target::Bare);
        let ratio = if bare > 0.0 {
            self.median_rps(Target::Ours) / bare
        } else {
            0.0
        };
        let efficiency = self
            .cpu_per_round_trip(Target::Ours)
            .zip(self.cpu_per_round_trip(Target::Bare))
            .filter(|(ours, _)| *ours > 0.0)
            .map_or_else(
                || "-".to_owned(),
                |(ours, bare)| format!("{:.2}×", bare / ours),
            );
        writeln!(
            f,
            "ours / bare: {ratio:.2}× round trips/s (target ≥ 0.50×), {efficiency} server CPU \
             efficiency"
        )
    }
}
