//! Cross-node notification latency: how long a write on one node takes to reach WebSocket
//! subscribers on other nodes of a cluster sharing one Redis, against subscribers on the
//! writing node itself, in one run.
//!
//! The parent starts a private `redis-server` (append-only file fsynced every second, the
//! production setting) and four petstore-ws servers, each in a child process (see
//! `ws_support`), all signing tokens with one RSA key so that a token from one node is accepted
//! by every other:
//!
//! * nodes **A**, **B** and **C**: `redis_url` set, one key prefix, distinct `node_id`s;
//! * a **standalone** server without Redis (memory store, in-process events).
//!
//! Three scenarios, each with a pet of its own created at set-up on its publishing node, whose
//! subscribers follow only that pet's topic (`pet:{id}`), so a scenario's events reach only its
//! own subscribers:
//!
//! * **A → B, C**: the publisher writes on A; `n` subscribers on B and `n` on C;
//! * **A → A**: the publisher writes on A; `2n` subscribers on A (the same number of
//!   deliveries per event, one node doing them all);
//! * **standalone**: publisher and `2n` subscribers on the server without Redis.
//!
//! Subscribers are typed clients (`petstore_client::WsClient`) signed in as the demo
//! customer with a bearer token on the upgrade. The publisher is the demo administrator
//! sending `updatePet` over REST (with a new name carrying the event's number) at a steady
//! rate: a fixed schedule, not waiting for deliveries. The scenarios take turns in rounds, the
//! order rotated each round, so drift on the shared machine hits all three alike.
//!
//! A delivery's latency runs from just before the write is sent to the moment the subscriber's
//! client hands the `pet.updated` notification over, on one monotonic clock. The write's REST
//! round trip is reported beside it, so the reader can see how much of the latency is the
//! write itself and how much the fan-out (and, across nodes, Redis pub/sub). Every subscriber
//! must receive every event of its scenario exactly once; anything else fails the run.
//!
//! Run with `cargo bench --bench cluster_notifications` (about a minute). Without `--bench`
//! (as under `cargo test --all-targets`) it does a smoke run with a few subscribers.

use petstore_testkit::bench::{node, ws as ws_support};
use std::{
    collections::HashMap,
    num::NonZeroU32,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use petstore_api::Topic;
use petstore_client::{ClientOptions, Notifications, WsClient};
use petstore_testkit::redis::{LocalRedis, Persistence};
use petstore_ws::store::{DEMO_PASSWORD, DEMO_USERNAME};
use serde_json::{Value, json};
use tokio::sync::watch;
use ws_support::{CONNECTING_AT_ONCE, CONNECTIONS_ENV, ChildServer, median, ms, percentile};

/// The server binary's allocator (`src/main.rs`), for every server this benchmark runs, ours and
/// the bare ones alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Prefix of the names the publisher gives the pets; the event's number follows.
const NAME_PREFIX: &str = "cluster-";
/// Longest wait for a round's events to reach every subscriber.
const DELIVERY_GUARD: Duration = Duration::from_secs(15);
/// The role of every child: a petstore-ws node configured by its environment.
const NODE_ROLE: &str = "node";

#[derive(Debug, Clone, Copy)]
struct Plan {
    name: &'static str,
    /// Subscribers per node across nodes (`n`); a single-node scenario has `2n`.
    subscribers: usize,
    rounds: usize,
    /// Events per scenario and round.
    events: usize,
    /// Time between two writes.
    period: Duration,
}

const FULL_RUN: Plan = Plan {
    name: "cluster notifications",
    subscribers: 100,
    rounds: 3,
    events: 40,
    period: Duration::from_millis(50),
};

const SMOKE_RUN: Plan = Plan {
    name: "cluster notifications smoke run (no --bench: checks the harness, figures mean nothing)",
    subscribers: 3,
    rounds: 1,
    events: 3,
    period: Duration::from_millis(10),
};

/// Where the publisher writes and where the subscribers listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scenario {
    CrossNode,
    SameNode,
    Standalone,
}

impl Scenario {
    const ALL: [Scenario; 3] = [
        Scenario::CrossNode,
        Scenario::SameNode,
        Scenario::Standalone,
    ];

    fn label(self) -> &'static str {
        match self {
            Scenario::CrossNode => "A → B, C (Redis)",
            Scenario::SameNode => "A → A (Redis)",
            Scenario::Standalone => "standalone",
        }
    }
}

fn main() -> ExitCode {
    if let Some(exit) = ws_support::run_child("cluster_notifications", child_main) {
        return exit;
    }
    let plan = if ws_support::full_run() {
        FULL_RUN
    } else {
        SMOKE_RUN
    };
    let runtime = match ws_support::server_runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cluster_notifications: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(parent_main(plan)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cluster_notifications: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child side.

/// A node: `ws_support`'s configuration under load from one address (which reads the
/// `PETSTORE_*` environment the parent set: Redis, prefix, node id, signing key), with login
/// attempts unthrottled.
fn child_main(role: &str) -> Result<(), String> {
    if role != NODE_ROLE {
        return Err(format!("unknown role `{role}`"));
    }
    let connections = ws_support::connections_from_env().unwrap_or(1_000);
    let mut config = ws_support::ours_config(connections);
    config.login_attempts_per_minute = NonZeroU32::MAX;
    config.login_attempts_per_ip_per_minute = NonZeroU32::MAX;
    ws_support::serve_ours_until_parent_gone(config)
}

// ---------------------------------------------------------------------------------------------
// Subscribers.

/// What one subscriber saw: `(event, when)` per `pet.updated` of the benchmark, and what went
/// wrong.
#[derive(Default)]
struct Receipts {
    events: Vec<(usize, Instant)>,
    problem: Option<String>,
}

/// Connects `count` subscribers to `url`, each following `topic` and noting in a task of its
/// own when each event arrives; `received` counts the arrivals.
async fn open_subscribers(
    url: &str,
    token: &str,
    topic: &Topic,
    count: usize,
    received: &Arc<AtomicUsize>,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<Receipts>>, String> {
    let subscribed = stream::iter(0..count)
        .map(|_| async move {
            let options = ClientOptions::default()
                .bearer_token(token)
                .connect_timeout(Duration::from_secs(20))
                .request_timeout(Duration::from_secs(20));
            let client = WsClient::connect(url, options)
                .await
                .map_err(|error| format!("connect to {url}: {error}"))?;
            // Before subscribing, so that no notification can slip past.
            let notifications = client.notifications();
            client
                .subscribe(std::slice::from_ref(topic))
                .await
                .map_err(|error| format!("subscribe to {topic}: {error}"))?;
            Ok::<_, String>((client, notifications))
        })
        .buffer_unordered(CONNECTING_AT_ONCE);
    tokio::pin!(subscribed);
    let mut tasks = Vec::with_capacity(count);
    while let Some(subscriber) = subscribed.next().await {
        let (client, notifications) = subscriber?;
        tasks.push(tokio::spawn(receive(
            client,
            notifications,
            Arc::clone(received),
            stop.clone(),
        )));
    }
    Ok(tasks)
}

/// Reads notifications until told to stop.
async fn receive(
    client: WsClient,
    mut notifications: Notifications,
    received: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) -> Receipts {
    let mut receipts = Receipts::default();
    loop {
        let notification = tokio::select! {
            notification = notifications.recv() => notification,
            _ = stop.changed() => break,
        };
        let now = Instant::now();
        let Some(notification) = notification else {
            receipts.problem = Some(format!(
                "connection closed by the server: {:?}",
                client.last_close()
            ));
            break;
        };
        if notification.event != "pet.updated" {
            continue;
        }
        if let Some(event) = event_index(&notification.payload) {
            receipts.events.push((event, now));
            received.fetch_add(1, Ordering::Release);
        }
    }
    if notifications.missed() > 0 {
        receipts.problem = Some(format!(
            "{} notification(s) missed by a slow reader",
            notifications.missed()
        ));
    }
    client.close().await;
    receipts
}

/// The benchmark event a pet's name says it was.
fn event_index(pet: &Value) -> Option<usize> {
    pet["name"]
        .as_str()?
        .strip_prefix(NAME_PREFIX)?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// Publisher.

/// Where one scenario writes: a node, its administrator's token and the scenario's pet.
struct Publisher {
    base_url: String,
    token: String,
    pet: i64,
}

/// `addPet`: the pet a scenario's events are about.
async fn create_pet(http: &reqwest::Client, base_url: &str, token: &str) -> Result<i64, String> {
    let response = http
        .post(format!("{base_url}/api/v3/pet"))
        .bearer_auth(token)
        .json(&json!({ "name": "cluster-bench", "photoUrls": [], "status": "available" }))
        .send()
        .await
        .map_err(|error| format!("addPet: {error}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|error| format!("addPet: body: {error}"))?;
    if !status.is_success() {
        return Err(format!("addPet answered {status}: {body}"));
    }
    body["id"]
        .as_i64()
        .ok_or_else(|| format!("addPet: no id in {body}"))
}

/// `updatePet` with the event's number in the name.
async fn publish(
    http: &reqwest::Client,
    publisher: &Publisher,
    event: usize,
) -> Result<(), String> {
    let name = format!("{NAME_PREFIX}{event}");
    let response = http
        .put(format!("{}/api/v3/pet", publisher.base_url))
        .bearer_auth(&publisher.token)
        .json(&json!({
            "id": publisher.pet,
            "name": name,
            "photoUrls": [],
            "status": "available",
        }))
        .send()
        .await
        .map_err(|error| format!("updatePet: {error}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|error| format!("updatePet: body: {error}"))?;
    if !status.is_success() {
        return Err(format!(
            "updatePet answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Parent side.

/// One scenario's subscribers and what they have received so far.
struct Audience {
    publisher: Publisher,
    subscribers: usize,
    received: Arc<AtomicUsize>,
    /// Deliveries due once every event published so far has arrived.
    due: usize,
}

/// When each event was sent, its REST round trip and its scenario, by event number.
struct Sent {
    scenario: Scenario,
    at: Instant,
    round_trip: Duration,
}

async fn parent_main(plan: Plan) -> Result<(), String> {
    let redis = LocalRedis::start(Persistence::AppendOnly)
        .map_err(|error| format!("cannot start a private redis-server: {error}"))?;
    let redis_url = redis.url();
    let prefix = node::fresh_prefix("cluster");
    let key = node::SigningKey::generate()?;
    let key_path = key.env_value()?;
    // The per-address connection limit counts across the cluster: 4n subscribers on A, B, C.
    let connections = (4 * plan.subscribers + 16).to_string();

    let start = |node_id: Option<&str>| {
        let mut env = vec![
            (node::JWT_KEY_ENV, key_path),
            (CONNECTIONS_ENV, connections.as_str()),
        ];
        if let Some(node_id) = node_id {
            env.extend([
                (node::REDIS_URL_ENV, redis_url.as_str()),
                (node::REDIS_PREFIX_ENV, prefix.as_str()),
                (node::NODE_ID_ENV, node_id),
            ]);
        }
        ws_support::start_server(NODE_ROLE, &env)
    };
    let node_a = start(Some("bench-a"))?;
    let node_b = start(Some("bench-b"))?;
    let node_c = start(Some("bench-c"))?;
    let standalone = start(None)?;
    if node::redis_key_count(redis.port()).unwrap_or(0) == 0 {
        return Err(
            "the Redis nodes wrote no key to Redis: is `redis_url` wired in the server?".to_owned(),
        );
    }

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(2)
        .build()
        .map_err(|error| format!("HTTP client: {error}"))?;
    let cluster_admin = ws_support::admin_token(&http, &node_a.base_url()).await?;
    let cluster_customer =
        ws_support::access_token(&http, &node_a.base_url(), DEMO_USERNAME, DEMO_PASSWORD).await?;
    let standalone_admin = ws_support::admin_token(&http, &standalone.base_url()).await?;
    let standalone_customer =
        ws_support::access_token(&http, &standalone.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
            .await?;

    let (stop, stopped) = watch::channel(false);
    let mut audiences = HashMap::new();
    let mut tasks = Vec::new();
    for scenario in Scenario::ALL {
        let (publishing, token, customer) = match scenario {
            Scenario::CrossNode | Scenario::SameNode => {
                (&node_a, &cluster_admin, &cluster_customer)
            }
            Scenario::Standalone => (&standalone, &standalone_admin, &standalone_customer),
        };
        let pet = create_pet(&http, &publishing.base_url(), token).await?;
        let topic = Topic::Pet(pet);
        let listening: Vec<(&ChildServer, usize)> = match scenario {
            Scenario::CrossNode => vec![(&node_b, plan.subscribers), (&node_c, plan.subscribers)],
            Scenario::SameNode => vec![(&node_a, 2 * plan.subscribers)],
            Scenario::Standalone => vec![(&standalone, 2 * plan.subscribers)],
        };
        let received = Arc::new(AtomicUsize::new(0));
        let connecting = Instant::now();
        let mut subscribers = 0;
        for (server, count) in listening {
            let opened = open_subscribers(
                &server.ws_url(),
                customer,
                &topic,
                count,
                &received,
                &stopped,
            )
            .await?;
            subscribers += opened.len();
            tasks.extend(opened.into_iter().map(|task| (scenario, task)));
        }
        println!(
            "{}: {subscribers} subscribers to {topic} connected in {:.1} s",
            scenario.label(),
            connecting.elapsed().as_secs_f64()
        );
        audiences.insert(
            scenario,
            Audience {
                publisher: Publisher {
                    base_url: publishing.base_url(),
                    token: token.clone(),
                    pet,
                },
                subscribers,
                received,
                due: 0,
            },
        );
    }

    println!(
        "{}: {} round(s) × {} scenarios × {} updatePet at {:.0}/s",
        plan.name,
        plan.rounds,
        Scenario::ALL.len(),
        plan.events,
        1.0 / plan.period.as_secs_f64()
    );
    let outcome = publish_rounds(plan, &http, &mut audiences).await;

    // Stop the readers and collect what they saw, whatever happened.
    let _ = stop.send(true);
    let mut receipts = Vec::with_capacity(tasks.len());
    for (scenario, task) in tasks {
        match tokio::time::timeout(Duration::from_secs(30), task).await {
            Ok(Ok(seen)) => receipts.push((scenario, seen)),
            Ok(Err(error)) => return Err(format!("a subscriber task failed: {error}")),
            Err(_) => return Err("a subscriber did not stop within 30 s".to_owned()),
        }
    }
    let sent = outcome?;
    if let Some(problem) = receipts
        .iter()
        .find_map(|(_, seen)| seen.problem.as_deref())
    {
        return Err(format!("a subscriber: {problem}"));
    }
    let figures = figures(&sent, &receipts)?;
    print_report(plan, &figures);
    drop((node_a, node_b, node_c, standalone));
    drop(redis);
    Ok(())
}

/// Publishes every round, the scenarios taking turns; returns what was sent, by event number.
async fn publish_rounds(
    plan: Plan,
    http: &reqwest::Client,
    audiences: &mut HashMap<Scenario, Audience>,
) -> Result<Vec<Sent>, String> {
    let mut sent = Vec::new();
    for round in 0..plan.rounds {
        for offset in 0..Scenario::ALL.len() {
            let scenario = Scenario::ALL[(round + offset) % Scenario::ALL.len()];
            let audience = audiences
                .get_mut(&scenario)
                .ok_or_else(|| format!("no audience for {}", scenario.label()))?;
            let mut ticks = tokio::time::interval(plan.period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for _ in 0..plan.events {
                ticks.tick().await;
                let event = sent.len();
                let at = Instant::now();
                publish(http, &audience.publisher, event).await?;
                sent.push(Sent {
                    scenario,
                    at,
                    round_trip: at.elapsed(),
                });
            }
            audience.due += plan.events * audience.subscribers;
            wait_for_delivery(scenario, audience).await?;
        }
    }
    Ok(sent)
}

/// Waits until every event published so far has reached every subscriber of the scenario.
async fn wait_for_delivery(scenario: Scenario, audience: &Audience) -> Result<(), String> {
    let deadline = Instant::now() + DELIVERY_GUARD;
    loop {
        let received = audience.received.load(Ordering::Acquire);
        if received >= audience.due {
            return Ok(());
        }
        if Instant::now() > deadline {
            let hint = if scenario == Scenario::CrossNode {
                " (are events carried between nodes over Redis?)"
            } else {
                ""
            };
            return Err(format!(
                "{}: {received} of {} deliveries within {DELIVERY_GUARD:?}{hint}",
                scenario.label(),
                audience.due
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Report.

/// One scenario's figures, in microseconds, sorted.
struct Figures {
    scenario: Scenario,
    events: usize,
    latencies: Vec<u64>,
    round_trips: Vec<u64>,
    /// Each event's median latency.
    per_event_p50: Vec<u64>,
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Checks that every subscriber got every event of its scenario exactly once, and computes the
/// latencies.
fn figures(sent: &[Sent], receipts: &[(Scenario, Receipts)]) -> Result<Vec<Figures>, String> {
    let mut arrivals: Vec<Vec<u64>> = vec![Vec::new(); sent.len()];
    for (index, (scenario, seen)) in receipts.iter().enumerate() {
        let mut got = vec![0_u32; sent.len()];
        for &(event, at) in &seen.events {
            let Some(origin) = sent.get(event) else {
                return Err(format!("subscriber {index} received unknown event {event}"));
            };
            got[event] += 1;
            arrivals[event].push(micros(at.saturating_duration_since(origin.at)));
        }
        for (event, (&count, origin)) in got.iter().zip(sent).enumerate() {
            let expected = u32::from(origin.scenario == *scenario);
            if count != expected {
                return Err(format!(
                    "a subscriber of {} received event {event} ({}) {count} time(s), expected \
                     {expected}",
                    scenario.label(),
                    origin.scenario.label()
                ));
            }
        }
    }
    Ok(Scenario::ALL
        .into_iter()
        .map(|scenario| {
            let mut figures = Figures {
                scenario,
                events: 0,
                latencies: Vec::new(),
                round_trips: Vec::new(),
                per_event_p50: Vec::new(),
            };
            for (origin, at) in sent.iter().zip(&mut arrivals) {
                if origin.scenario != scenario {
                    continue;
                }
                figures.events += 1;
                figures.round_trips.push(micros(origin.round_trip));
                at.sort_unstable();
                figures.per_event_p50.push(percentile(at, 50.0));
                figures.latencies.extend_from_slice(at);
            }
            figures.latencies.sort_unstable();
            figures.round_trips.sort_unstable();
            figures.per_event_p50.sort_unstable();
            figures
        })
        .collect())
}

fn print_report(plan: Plan, figures: &[Figures]) {
    println!();
    println!(
        "{:<20}{:>8}{:>12}{:>9}{:>9}{:>9}{:>14}{:>14}",
        "latency",
        "events",
        "deliveries",
        "p50 ms",
        "p99 ms",
        "max ms",
        "REST p50 ms",
        "REST p99 ms"
    );
    for figure in figures {
        println!(
            "{:<20}{:>8}{:>12}{:>9}{:>9}{:>9}{:>14}{:>14}",
            figure.scenario.label(),
            figure.events,
            figure.latencies.len(),
            ms(percentile(&figure.latencies, 50.0)),
            ms(percentile(&figure.latencies, 99.0)),
            ms(percentile(&figure.latencies, 100.0)),
            ms(percentile(&figure.round_trips, 50.0)),
            ms(percentile(&figure.round_trips, 99.0)),
        );
    }
    println!(
        "  ({} subscribers per event in each scenario; latency from just before the updatePet is \
         sent to the subscriber's client handing the notification over; REST = the updatePet's \
         own round trip)",
        2 * plan.subscribers
    );
    let find = |scenario: Scenario| figures.iter().find(|figure| figure.scenario == scenario);
    let line = |a: &Figures, b: &Figures| {
        let at = |figure: &Figures, p: f64| percentile(&figure.latencies, p) as f64;
        let medians = |figure: &Figures| {
            median(
                &figure
                    .per_event_p50
                    .iter()
                    .map(|&micros| micros as f64)
                    .collect::<Vec<_>>(),
            )
        };
        format!(
            "{} / {}: {} p50, {} p99, {} median of the per-event p50s",
            a.scenario.label(),
            b.scenario.label(),
            ws_support::ratio(at(a, 50.0), at(b, 50.0)),
            ws_support::ratio(at(a, 99.0), at(b, 99.0)),
            ws_support::ratio(medians(a), medians(b)),
        )
    };
    if let (Some(cross), Some(same), Some(alone)) = (
        find(Scenario::CrossNode),
        find(Scenario::SameNode),
        find(Scenario::Standalone),
    ) {
        println!("  {}", line(cross, same));
        println!("  {}", line(same, alone));
        // Signed: a notification often arrives before the write's own answer does.
        let beyond = |figure: &Figures| {
            let latency = percentile(&figure.latencies, 50.0) as f64;
            let round_trip = percentile(&figure.round_trips, 50.0) as f64;
            format!("{:+.2}", (latency - round_trip) / 1000.0)
        };
        println!(
            "  latency p50 minus the write's REST p50: {} ms across nodes, {} ms on A, {} ms \
             standalone",
            beyond(cross),
            beyond(same),
            beyond(alone),
        );
    }
}
