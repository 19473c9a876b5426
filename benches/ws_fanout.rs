//! Event fan-out: how fast one event reaches 10,000 WebSocket subscribers, and how many
//! notifications per second reach 1,000 of them during a burst of events.
//!
//! Product target: one event delivered to 10,000 subscribers with p99 ≤ 100 ms.
//!
//! Two servers, one after the other, each in a child process (see `ws_support`):
//!
//! * **tungstenite (bare)**: the floor. tokio-tungstenite with our 4 KiB read buffer (its
//!   default 128 KiB one would cost 1.3 GiB at 10,000 connections), a task per connection, a `tokio::sync::broadcast` channel (capacity 256, as our outboxes) fanning each
//!   event out; `subscribe` is answered with a success envelope, and an event is published by a
//!   text frame `publish N` on a connection of its own, answered once the event is in the channel.
//!   The notification has the shape and size of ours (`pet.created` with a small pet, the
//!   history's epoch and the event's positions), byte for byte; the report prints both sizes.
//! * **petstore-ws**: `server::spawn` with the production defaults and demo data, the
//!   per-address connection limit above the subscriber count and the rate limits raised so that
//!   they run but never refuse. Subscribers authenticate on the upgrade with the demo
//!   administrator's access token and subscribe to `pets`; events are published by creating
//!   pets over REST with the same token (`addPet` publishes `pet.created` through the local hub
//!   before it answers).
//!
//! The load generator opens the subscribers as raw tokio-tungstenite sockets, each reading in a
//! task of its own and noting when every `pet.created` arrives (the pet's name says which event
//! it was). Phases, on each server:
//!
//! 1. **1,000 subscribers, burst**: 200 events published by 4 concurrent publishers as fast as
//!    they are answered; notifications per second = deliveries / (first publish sent → last
//!    notification read). The burst stays below the outbox capacity (256), so no subscriber can
//!    be cut off as a slow consumer.
//! 2. **1,000 subscribers, one event at a time**: 20 events, each waited for at every subscriber.
//! 3. **10,000 subscribers, one event at a time**: 9,000 more connect; 20 events as in 2.
//! 4. **10,000 subscribers, burst**: 20 events as in 1.
//!
//! The latency of a delivery runs from just before the publishing request is sent to the moment
//! the subscriber's task has read the notification: the fan-out, the server writing every frame
//! and the client reading them, all on one monotonic clock. Client and server share the
//! machine's two cores, so the subscribers' own reading is in every figure; the CPU time per
//! notification of the server (from `/proc`) and of the load generator are reported beside it.
//!
//! Every subscriber must receive every event exactly once; anything else fails the run.
//!
//! The process file-descriptor limit is raised towards what 10,000 connections need (one
//! descriptor per socket on each side, each side in its own process); when the hard limit is
//! lower the subscriber count is reduced to fit, and the report says so.
//!
//! Run with `cargo bench --bench ws_fanout` (about a minute). Without `--bench` (as under
//! `cargo test --all-targets`) it does a smoke run with a few subscribers.

use petstore_testkit::bench::ws as ws_support;
use std::{
    net::SocketAddr,
    ops::Range,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::{Mutex, broadcast, watch};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use uuid::Uuid;
use ws_support::{
    CONNECTING_AT_ONCE, CONNECTIONS_ENV, ChildServer, RawSocket, ServerSocket, ms, percentile,
};

/// The server binary's allocator (`src/main.rs`), for every server this benchmark runs, ours and
/// the bare ones alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Prefix of the benchmark pets' names; the event's index follows.
const NAME_PREFIX: &str = "fanout-";
/// Descriptors kept free for everything that is not a subscriber socket.
const SPARE_DESCRIPTORS: u64 = 256;
/// Frames the bare server's broadcast channel holds for a subscriber (our outbox capacity).
const BARE_CHANNEL_CAPACITY: usize = 256;
/// Longest wait for one event, or one burst, to reach every subscriber.
const DELIVERY_GUARD: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Plan {
    name: &'static str,
    /// Subscribers of phases 1 and 2.
    small: usize,
    /// Subscribers of phases 3 and 4.
    large: usize,
    /// Events of phase 1.
    small_burst: usize,
    /// Events of phases 2 and 3.
    one_at_a_time: usize,
    /// Events of phase 4.
    large_burst: usize,
    /// Publishers at once during a burst.
    publishers: usize,
    /// Pause between two events published one at a time.
    gap: Duration,
}

const FULL_RUN: Plan = Plan {
    name: "WebSocket fan-out",
    small: 1_000,
    large: 10_000,
    small_burst: 200,
    one_at_a_time: 100,
    large_burst: 20,
    publishers: 4,
    gap: Duration::from_millis(200),
};

const SMOKE_RUN: Plan = Plan {
    name: "WebSocket fan-out smoke run (no --bench: checks the harness, figures mean nothing)",
    small: 10,
    large: 40,
    small_burst: 10,
    one_at_a_time: 3,
    large_burst: 3,
    publishers: 2,
    gap: Duration::from_millis(10),
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Bare,
    Ours,
}

impl Target {
    const ALL: [Target; 2] = [Target::Bare, Target::Ours];

    fn role(self) -> &'static str {
        match self {
            Target::Bare => "tungstenite-broadcast",
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
    if let Some(exit) = ws_support::run_child("ws_fanout", child_main) {
        return exit;
    }
    let mut plan = if ws_support::full_run() {
        FULL_RUN
    } else {
        SMOKE_RUN
    };
    // One socket per subscriber in this process; the server's side is in the child, which
    // inherits the limit.
    let wanted = plan.large as u64 + SPARE_DESCRIPTORS;
    let limit = ws_support::raise_fd_limit(wanted);
    if limit < wanted {
        let fits = usize::try_from(limit.saturating_sub(SPARE_DESCRIPTORS)).unwrap_or(0);
        println!(
            "the open-file limit is {limit}: {fits} subscribers instead of {}",
            plan.large
        );
        plan.large = fits;
        plan.small = plan.small.min(fits);
    }
    let runtime = match ws_support::server_runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ws_fanout: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}: {} then {} subscribers over raw WebSockets; servers one after the other",
        plan.name, plan.small, plan.large
    );
    let mut figures = Vec::new();
    for target in Target::ALL {
        match runtime.block_on(run_target(target, plan)) {
            Ok(result) => figures.push((target, result)),
            Err(error) => {
                eprintln!("ws_fanout: {}: {error}", target.label());
                return ExitCode::FAILURE;
            }
        }
    }
    print_report(plan, &figures);
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------------------------------------
// Child side.

fn child_main(role: &str) -> Result<(), String> {
    if role == Target::Ours.role() {
        let connections = ws_support::connections_from_env().unwrap_or(FULL_RUN.large as u32);
        return ws_support::serve_ours_until_parent_gone(ws_support::ours_config(connections));
    }
    if role != Target::Bare.role() {
        return Err(format!("unknown role `{role}`"));
    }
    ws_support::serve_bare_until_parent_gone(serve_bare())
}

/// The bare server's epoch, as ours has one per history: made once per process.
static BARE_EPOCH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The floor: a broadcast channel and a task per connection writing what it receives.
async fn serve_bare() -> Result<SocketAddr, String> {
    let (events, _) = broadcast::channel::<Utf8Bytes>(BARE_CHANNEL_CAPACITY);
    ws_support::accept_connections(move |socket| bare_connection(socket, events)).await
}

async fn bare_connection(mut socket: ServerSocket, events: broadcast::Sender<Utf8Bytes>) {
    let epoch = BARE_EPOCH.get_or_init(|| Uuid::new_v4().simple().to_string());
    let mut subscription: Option<broadcast::Receiver<Utf8Bytes>> = None;
    loop {
        let incoming = tokio::select! {
            biased;
            frame = async {
                match subscription.as_mut() {
                    Some(receiver) => receiver.recv().await,
                    None => std::future::pending().await,
                }
            } => match frame {
                Ok(frame) => {
                    if socket.send(Message::Text(frame)).await.is_err() {
                        return;
                    }
                    continue;
                }
                // Lagged: a slow consumer, cut off as ours are.
                Err(_) => return,
            },
            incoming = socket.next() => incoming,
        };
        let text = match incoming {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            Some(Ok(_)) => continue,
        };
        let answer = if let Some(event) = text.as_str().strip_prefix("publish ") {
            // `send` fails only without receivers: nobody to deliver to.
            let _ = events.send(Utf8Bytes::from(notification_like_ours(event, epoch)));
            "published".to_owned()
        } else {
            let request: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
            subscription.get_or_insert_with(|| events.subscribe());
            json!({
                "type": "response",
                "correlationId": request["correlationId"],
                "timestamp": chrono::Utc::now().timestamp_millis(),
                "status": "success",
                "payload": { "topics": ["pets"] },
            })
            .to_string()
        };
        if socket.send(Message::text(answer)).await.is_err() {
            return;
        }
    }
}

/// A `pet.created` notification as petstore-ws renders it for a new pet named `fanout-N`, byte
/// for byte the same size: with the history's epoch (32 hex digits) and the positions of the
/// event in its two topics, `pets` (the N+1st event there) and `pet:<id>` (its first). The
/// report prints the sizes each server's subscribers received, to show they agree.
fn notification_like_ours(event: &str, epoch: &str) -> String {
    let id = Uuid::new_v4();
    let index = event.parse::<u64>().unwrap_or(0);
    let pet = index + 9;
    format!(
        r#"{{"type":"notification","correlationId":"{id}","timestamp":{},"event":"pet.created","epoch":"{epoch}","positions":{{"pets":{},"pet:{pet}":1}},"payload":{{"id":{pet},"name":"{NAME_PREFIX}{event}","photoUrls":[],"status":"available"}}}}"#,
        chrono::Utc::now().timestamp_millis(),
        index + 1,
    )
}

// ---------------------------------------------------------------------------------------------
// Subscribers.

/// What the subscribers share with the coordinator: per event, how many have received it.
struct Board {
    received: Vec<AtomicUsize>,
    /// Subscribers whose connection broke or was closed by the server.
    lost: AtomicUsize,
}

/// What one subscriber saw: `(event, when)` per `pet.created`, and what went wrong.
#[derive(Default)]
struct Receipts {
    events: Vec<(u32, Instant)>,
    /// The shortest and the longest `pet.created` frame received, in bytes.
    frame_bytes: Option<(usize, usize)>,
    problem: Option<String>,
}

/// Connects and subscribes `count` subscribers, each reading in a task of its own.
async fn open_subscribers(
    url: &str,
    token: Option<&str>,
    count: usize,
    board: &Arc<Board>,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<Receipts>>, String> {
    let subscribed = stream::iter(0..count)
        .map(|_| async move {
            let mut socket = ws_support::connect(url, token).await?;
            ws_support::subscribe_to_pets(&mut socket).await?;
            Ok::<RawSocket, String>(socket)
        })
        .buffer_unordered(CONNECTING_AT_ONCE);
    tokio::pin!(subscribed);
    let mut tasks = Vec::with_capacity(count);
    while let Some(socket) = subscribed.next().await {
        tasks.push(tokio::spawn(receive(
            socket?,
            Arc::clone(board),
            stop.clone(),
        )));
    }
    Ok(tasks)
}

/// Reads notifications until told to stop, noting when each `pet.created` arrived.
async fn receive(
    mut socket: RawSocket,
    board: Arc<Board>,
    mut stop: watch::Receiver<bool>,
) -> Receipts {
    let mut receipts = Receipts::default();
    let problem = loop {
        let frame = tokio::select! {
            frame = socket.next() => frame,
            _ = stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), socket.close(None)).await;
                return receipts;
            }
        };
        let now = Instant::now();
        match frame {
            Some(Ok(Message::Text(text))) => {
                if let Some(event) = event_index(text.as_str()) {
                    receipts.events.push((event, now));
                    let size = text.len();
                    receipts.frame_bytes = Some(match receipts.frame_bytes {
                        Some((shortest, longest)) => (shortest.min(size), longest.max(size)),
                        None => (size, size),
                    });
                    if let Some(counter) = board.received.get(event as usize) {
                        counter.fetch_add(1, Ordering::Release);
                    }
                }
            }
            Some(Ok(Message::Close(frame))) => break format!("closed by the server: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(error)) => break format!("connection broke: {error}"),
            None => break "connection closed".to_owned(),
        }
    };
    receipts.problem = Some(problem);
    board.lost.fetch_add(1, Ordering::Relaxed);
    receipts
}

/// The benchmark event a `pet.created` frame reports, from the pet's name; `None` for any other
/// frame. A substring search, not a JSON parse, so that 10,000 readers stay cheap.
fn event_index(text: &str) -> Option<u32> {
    if !text.contains(r#""event":"pet.created""#) {
        return None;
    }
    let start = text.find(r#""name":"fanout-"#)? + r#""name":""#.len() + NAME_PREFIX.len();
    let digits = text.get(start..)?;
    digits.get(..digits.find('"')?)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Publishing.

/// How events are caused.
enum Publisher {
    /// `addPet` over REST (petstore-ws).
    Rest {
        http: reqwest::Client,
        base_url: String,
        token: String,
    },
    /// `publish N` frames, one connection per concurrent publisher (the bare server).
    Frames(Vec<Mutex<RawSocket>>),
}

impl Publisher {
    /// Causes event `event`; `lane` picks the connection of a concurrent publisher.
    async fn publish(&self, lane: usize, event: usize) -> Result<(), String> {
        match self {
            Publisher::Rest {
                http,
                base_url,
                token,
            } => ws_support::add_pet(http, base_url, token, &format!("{NAME_PREFIX}{event}")).await,
            Publisher::Frames(sockets) => {
                let mut socket = sockets[lane % sockets.len()].lock().await;
                socket
                    .send(Message::text(format!("publish {event}")))
                    .await
                    .map_err(|error| format!("publish: {error}"))?;
                match tokio::time::timeout(Duration::from_secs(20), socket.next()).await {
                    Ok(Some(Ok(Message::Text(text)))) if text.as_str() == "published" => Ok(()),
                    other => Err(format!("publish: unexpected answer {other:?}")),
                }
            }
        }
    }
}

/// Waits until `subscribers` have received every event of `events`.
async fn wait_for_delivery(
    board: &Board,
    events: Range<usize>,
    subscribers: usize,
) -> Result<(), String> {
    let deadline = Instant::now() + DELIVERY_GUARD;
    loop {
        let missing: usize = events
            .clone()
            .map(|event| subscribers.saturating_sub(board.received[event].load(Ordering::Acquire)))
            .sum();
        if missing == 0 {
            return Ok(());
        }
        let lost = board.lost.load(Ordering::Relaxed);
        if lost > 0 {
            return Err(format!("{lost} subscriber(s) lost their connection"));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{missing} notification(s) of events {events:?} not received within \
                 {DELIVERY_GUARD:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// CPU time of the server and of this process over a phase.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    server: Option<Duration>,
    client: Option<Duration>,
}

struct CpuMeter<'a> {
    server: &'a ChildServer,
    server_before: Option<Duration>,
    client_before: Option<Duration>,
}

impl<'a> CpuMeter<'a> {
    fn start(server: &'a ChildServer) -> Self {
        Self {
            server,
            server_before: server.cpu_time(),
            client_before: ws_support::own_cpu_time(),
        }
    }

    fn stop(self) -> Cpu {
        Cpu {
            server: ws_support::cpu_spent(self.server_before, self.server.cpu_time()),
            client: ws_support::cpu_spent(self.client_before, ws_support::own_cpu_time()),
        }
    }
}

/// A phase of events published one at a time: when each was sent, how long its publisher
/// waited for the answer, and the CPU spent.
struct OneAtATime {
    sent: Vec<Instant>,
    answered_in: Vec<Duration>,
    cpu: Cpu,
}

/// Publishes `events` one at a time, each reaching every subscriber before the next.
async fn one_at_a_time(
    publisher: &Publisher,
    server: &ChildServer,
    board: &Board,
    events: Range<usize>,
    subscribers: usize,
    gap: Duration,
) -> Result<OneAtATime, String> {
    let meter = CpuMeter::start(server);
    let mut sent = Vec::new();
    let mut answered_in = Vec::new();
    for event in events {
        let started = Instant::now();
        sent.push(started);
        publisher.publish(0, event).await?;
        answered_in.push(started.elapsed());
        wait_for_delivery(board, event..event + 1, subscribers).await?;
        tokio::time::sleep(gap).await;
    }
    Ok(OneAtATime {
        sent,
        answered_in,
        cpu: meter.stop(),
    })
}

/// A burst: when it started, and the CPU spent.
struct Burst {
    started: Instant,
    cpu: Cpu,
}

/// Publishes `events` from `publishers` concurrent publishers as fast as they are answered, then
/// waits for every subscriber to have them all.
async fn burst(
    publisher: &Publisher,
    server: &ChildServer,
    board: &Board,
    events: Range<usize>,
    subscribers: usize,
    publishers: usize,
) -> Result<Burst, String> {
    let meter = CpuMeter::start(server);
    let started = Instant::now();
    let next = AtomicUsize::new(events.start);
    let end = events.end;
    let results = futures_util::future::join_all((0..publishers).map(|lane| {
        let next = &next;
        async move {
            loop {
                let event = next.fetch_add(1, Ordering::Relaxed);
                if event >= end {
                    return Ok(());
                }
                publisher.publish(lane, event).await?;
            }
        }
    }))
    .await;
    results.into_iter().collect::<Result<(), String>>()?;
    wait_for_delivery(board, events, subscribers).await?;
    Ok(Burst {
        started,
        cpu: meter.stop(),
    })
}

// ---------------------------------------------------------------------------------------------
// One server's run.

/// What one server's run measured.
struct Figures {
    small_burst: BurstFigures,
    small_single: SingleFigures,
    large_single: SingleFigures,
    large_burst: BurstFigures,
    rss_small_kib: Option<u64>,
    rss_large_kib: Option<u64>,
    /// The shortest and the longest notification frame any subscriber received, in bytes.
    frame_bytes: Option<(usize, usize)>,
}

struct SingleFigures {
    events: usize,
    /// Microseconds from publishing to each subscriber's read, over all events, sorted.
    latencies: Vec<u64>,
    /// Each event's p99, sorted.
    per_event_p99: Vec<u64>,
    /// Microseconds until each publishing request was answered, sorted.
    answered_in: Vec<u64>,
    server_us_per_notification: Option<f64>,
    client_us_per_notification: Option<f64>,
}

struct BurstFigures {
    events: usize,
    deliveries: usize,
    took: Duration,
    server_us_per_notification: Option<f64>,
    client_us_per_notification: Option<f64>,
}

fn per_notification(cpu: Option<Duration>, deliveries: usize) -> Option<f64> {
    cpu.filter(|_| deliveries > 0)
        .map(|cpu| cpu.as_secs_f64() * 1e6 / deliveries as f64)
}

fn single_figures(phase: &OneAtATime, arrivals: &[Vec<Instant>]) -> SingleFigures {
    let mut latencies = Vec::new();
    let mut per_event_p99 = Vec::new();
    for (sent, at) in phase.sent.iter().zip(arrivals) {
        let mut event: Vec<u64> = at
            .iter()
            .map(|at| u64::try_from(at.saturating_duration_since(*sent).as_micros()).unwrap_or(0))
            .collect();
        event.sort_unstable();
        per_event_p99.push(percentile(&event, 99.0));
        latencies.extend_from_slice(&event);
    }
    latencies.sort_unstable();
    per_event_p99.sort_unstable();
    let mut answered_in: Vec<u64> = phase
        .answered_in
        .iter()
        .map(|took| u64::try_from(took.as_micros()).unwrap_or(u64::MAX))
        .collect();
    answered_in.sort_unstable();
    let deliveries = latencies.len();
    SingleFigures {
        events: phase.sent.len(),
        latencies,
        per_event_p99,
        answered_in,
        server_us_per_notification: per_notification(phase.cpu.server, deliveries),
        client_us_per_notification: per_notification(phase.cpu.client, deliveries),
    }
}

fn burst_figures(burst: &Burst, arrivals: &[Vec<Instant>]) -> BurstFigures {
    let deliveries: usize = arrivals.iter().map(Vec::len).sum();
    let last = arrivals
        .iter()
        .flatten()
        .max()
        .copied()
        .unwrap_or(burst.started);
    BurstFigures {
        events: arrivals.len(),
        deliveries,
        took: last.saturating_duration_since(burst.started),
        server_us_per_notification: per_notification(burst.cpu.server, deliveries),
        client_us_per_notification: per_notification(burst.cpu.client, deliveries),
    }
}

async fn run_target(target: Target, plan: Plan) -> Result<Figures, String> {
    let server =
        ws_support::start_server(target.role(), &[(CONNECTIONS_ENV, &plan.large.to_string())])?;
    let url = server.ws_url();
    let (publisher, token) = match target {
        Target::Ours => {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(plan.publishers)
                .build()
                .map_err(|error| format!("HTTP client: {error}"))?;
            let base_url = server.base_url();
            let token = ws_support::admin_token(&http, &base_url).await?;
            let publisher = Publisher::Rest {
                http,
                base_url,
                token: token.clone(),
            };
            (publisher, Some(token))
        }
        Target::Bare => {
            let mut sockets = Vec::new();
            for _ in 0..plan.publishers {
                sockets.push(Mutex::new(ws_support::connect(&url, None).await?));
            }
            (Publisher::Frames(sockets), None)
        }
    };
    let token = token.as_deref();

    // Event indexes, phase by phase.
    let small_burst = 0..plan.small_burst;
    let small_single = small_burst.end..small_burst.end + plan.one_at_a_time;
    let large_single = small_single.end..small_single.end + plan.one_at_a_time;
    let large_burst = large_single.end..large_single.end + plan.large_burst;
    let board = Arc::new(Board {
        received: (0..large_burst.end).map(|_| AtomicUsize::new(0)).collect(),
        lost: AtomicUsize::new(0),
    });
    let (stop, stopped) = watch::channel(false);

    let connecting = Instant::now();
    let mut tasks = open_subscribers(&url, token, plan.small, &board, &stopped).await?;
    println!(
        "{}: {} subscribers connected and subscribed in {:.1} s",
        target.label(),
        plan.small,
        connecting.elapsed().as_secs_f64()
    );
    let rss_small_kib = server.rss_kib();

    let outcome = async {
        let small_burst_run = burst(
            &publisher,
            &server,
            &board,
            small_burst.clone(),
            plan.small,
            plan.publishers,
        )
        .await?;
        let small_single_run = one_at_a_time(
            &publisher,
            &server,
            &board,
            small_single.clone(),
            plan.small,
            plan.gap,
        )
        .await?;

        let connecting = Instant::now();
        let more = plan.large - plan.small;
        tasks.extend(open_subscribers(&url, token, more, &board, &stopped).await?);
        println!(
            "{}: {more} more subscribers connected and subscribed in {:.1} s",
            target.label(),
            connecting.elapsed().as_secs_f64()
        );
        let rss_large_kib = server.rss_kib();
        // Let the connection storm settle before timing single events.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let large_single_run = one_at_a_time(
            &publisher,
            &server,
            &board,
            large_single.clone(),
            plan.large,
            plan.gap,
        )
        .await?;
        let large_burst_run = burst(
            &publisher,
            &server,
            &board,
            large_burst.clone(),
            plan.large,
            plan.publishers,
        )
        .await?;
        Ok::<_, String>((
            small_burst_run,
            small_single_run,
            large_single_run,
            large_burst_run,
            rss_large_kib,
        ))
    }
    .await;

    // Stop the readers and collect what they saw, whatever happened.
    let _ = stop.send(true);
    let mut receipts = Vec::with_capacity(tasks.len());
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(30), task).await {
            Ok(Ok(seen)) => receipts.push(seen),
            Ok(Err(error)) => return Err(format!("a subscriber task failed: {error}")),
            Err(_) => return Err("a subscriber did not stop within 30 s".to_owned()),
        }
    }
    let (small_burst_run, small_single_run, large_single_run, large_burst_run, rss_large_kib) =
        outcome?;
    if let Some(problem) = receipts.iter().find_map(|seen| seen.problem.as_deref()) {
        return Err(format!("a subscriber: {problem}"));
    }

    // Every subscriber exactly once per event it was connected for: the first `small` ones
    // every event, the others those from phase 3 on. Tasks are in connection order.
    let mut arrivals: Vec<Vec<Instant>> = vec![Vec::new(); large_burst.end];
    for (index, seen) in receipts.iter().enumerate() {
        let first_event = if index < plan.small {
            0
        } else {
            large_single.start
        };
        let mut got = vec![0_u32; large_burst.end];
        for &(event, at) in &seen.events {
            let event = event as usize;
            if let Some(count) = got.get_mut(event) {
                *count += 1;
                arrivals[event].push(at);
            }
        }
        for (event, &count) in got.iter().enumerate() {
            let expected = u32::from(event >= first_event);
            if count != expected {
                return Err(format!(
                    "subscriber {index} received event {event} {count} time(s), expected \
                     {expected}"
                ));
            }
        }
    }
    Ok(Figures {
        small_burst: burst_figures(&small_burst_run, &arrivals[small_burst]),
        small_single: single_figures(&small_single_run, &arrivals[small_single]),
        large_single: single_figures(&large_single_run, &arrivals[large_single]),
        large_burst: burst_figures(&large_burst_run, &arrivals[large_burst]),
        rss_small_kib,
        rss_large_kib,
        frame_bytes: receipts
            .iter()
            .filter_map(|seen| seen.frame_bytes)
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d))),
    })
}

// ---------------------------------------------------------------------------------------------
// Report.

fn cpu(figure: Option<f64>) -> String {
    figure.map_or_else(|| "-".to_owned(), |figure| format!("{figure:.1}"))
}

fn print_report(plan: Plan, figures: &[(Target, Figures)]) {
    println!();
    println!(
        "{:<20}{:>9}{:>9}{:>9}{:>10}{:>10}{:>10}{:>13}{:>13}",
        "one event at a time",
        "p50 ms",
        "p99 ms",
        "max ms",
        "ev. p99 ~",
        "worst p99",
        "publish ~",
        "server µs/n",
        "client µs/n"
    );
    for (subscribers, pick) in [
        (
            plan.small,
            (|f: &Figures| &f.small_single) as fn(&Figures) -> &SingleFigures,
        ),
        (plan.large, |f: &Figures| &f.large_single),
    ] {
        for (target, result) in figures {
            let single = pick(result);
            println!(
                "{:<20}{:>9}{:>9}{:>9}{:>10}{:>10}{:>10}{:>13}{:>13}",
                format!("{} {subscribers}", short(*target)),
                ms(percentile(&single.latencies, 50.0)),
                ms(percentile(&single.latencies, 99.0)),
                ms(percentile(&single.latencies, 100.0)),
                ms(percentile(&single.per_event_p99, 50.0)),
                ms(percentile(&single.per_event_p99, 100.0)),
                ms(percentile(&single.answered_in, 50.0)),
                cpu(single.server_us_per_notification),
                cpu(single.client_us_per_notification),
            );
        }
    }
    if let Some((_, ours)) = figures.iter().find(|(target, _)| *target == Target::Ours) {
        println!(
            "  ({} events each, {} deliveries at {} subscribers; ev. p99 ~ = median of the \
             per-event p99s; publish ~ = median time until the publishing request was answered)",
            ours.large_single.events,
            ours.large_single.latencies.len(),
            plan.large
        );
        println!(
            "  target: {} subscribers p99 ≤ 100 ms: petstore-ws p99 {} ms",
            plan.large,
            ms(percentile(&ours.large_single.latencies, 99.0))
        );
    }
    println!();
    println!(
        "{:<20}{:>8}{:>12}{:>9}{:>16}{:>13}{:>13}",
        "burst", "events", "delivered", "s", "notifications/s", "server µs/n", "client µs/n"
    );
    for (subscribers, pick) in [
        (
            plan.small,
            (|f: &Figures| &f.small_burst) as fn(&Figures) -> &BurstFigures,
        ),
        (plan.large, |f: &Figures| &f.large_burst),
    ] {
        for (target, result) in figures {
            let burst = pick(result);
            println!(
                "{:<20}{:>8}{:>12}{:>9.2}{:>16.0}{:>13}{:>13}",
                format!("{} {subscribers}", short(*target)),
                burst.events,
                burst.deliveries,
                burst.took.as_secs_f64(),
                burst.deliveries as f64 / burst.took.as_secs_f64().max(1e-9),
                cpu(burst.server_us_per_notification),
                cpu(burst.client_us_per_notification),
            );
        }
    }
    println!();
    for (target, result) in figures {
        if let Some((shortest, longest)) = result.frame_bytes {
            println!(
                "{} notification frames: {shortest}–{longest} bytes",
                target.label()
            );
        }
    }
    for (target, result) in figures {
        if let (Some(small), Some(large)) = (result.rss_small_kib, result.rss_large_kib) {
            println!(
                "{} server RSS: {:.1} MiB with {} subscribers, {:.1} MiB with {} ({:.1} KiB \
                 per added subscriber)",
                target.label(),
                small as f64 / 1024.0,
                plan.small,
                large as f64 / 1024.0,
                plan.large,
                large.saturating_sub(small) as f64 / (plan.large - plan.small).max(1) as f64
            );
        }
    }
}

fn short(target: Target) -> &'static str {
    match target {
        Target::Bare => "bare",
        Target::Ours => "ours",
    }
}
