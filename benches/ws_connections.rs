//! 100,000 concurrent WebSocket connections on one node: memory per connection, time to open
//! them, and one event delivered to all of them.
//!
//! Product target: ≤ 10 KiB of server memory per idle WebSocket connection, with 100,000
//! connections on one node.
//!
//! petstore-ws runs in a child process (see `ws_support`) with the production defaults (demo
//! data, tracing at `info`, metrics, heartbeats every 30 s), the per-address connection limit
//! raised to the run's size. The load generator in this process opens the connections from
//! several loopback source addresses (127.0.0.2, 127.0.0.3, …): one address has one ephemeral
//! port range (`net.ipv4.ip_local_port_range`, about 28,000 ports), so 100,000 connections to
//! one server port need four. Each connection authenticates on the upgrade (the demo
//! administrator's access token), subscribes to `pets` and then idles in a task that reads it.
//!
//! Steps: raise `RLIMIT_NOFILE` (the hard limit too when the process may: root or
//! `CAP_SYS_RESOURCE`; otherwise the run shrinks to the limit and says so); open a warm-up batch
//! and let it settle (so the allocator's arenas and the first growth of every registry are paid
//! before measuring); read the server's `VmRSS` and the kernel's TCP memory
//! (`/proc/net/sockstat`); open the rest, timing it; settle and read both again; then publish
//! events one at a time (`addPet` over REST), each waited for at every subscriber before the
//! next, timing each delivery from just before the publishing request to the subscriber's read.
//! Every subscriber must receive every event exactly once and no connection may be lost.
//! Memory per connection = RSS growth / connections opened after the warm-up; the server returns
//! freed memory to the OS at once ([`ws_support::MEASURE_RESIDENT_MEMORY`]), so that memory
//! freed before the first reading (the login's argon2 block) cannot hide part of the growth.
//!
//! Run with `cargo bench --bench ws_connections` (about 2–3 minutes; about 1.5 GiB of memory
//! for the server and the load generator together). Without `--bench` (as under
//! `cargo test --all-targets`) it does a smoke run with a few hundred connections, spread over
//! several source addresses all the same.

use petstore_testkit::bench::ws as ws_support;
use std::{
    net::{IpAddr, Ipv4Addr},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use ws_support::{CONNECTIONS_ENV, ChildServer, MEASURE_RESIDENT_MEMORY, RawSocket, percentile};

/// The server binary's allocator (`src/main.rs`), for every server this benchmark runs, ours and
/// the bare ones alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Names of the pets whose creation is broadcast: `ws-connections-<event>`.
const NAME_PREFIX: &str = "ws-connections-";

/// Descriptors each process needs beyond one per connection.
const SPARE_DESCRIPTORS: u64 = 512;

/// Upgrades in progress at once.
const CONNECTING_AT_ONCE: usize = 128;

/// How long one event may take to reach every subscriber before the run fails.
const DELIVERY_GUARD: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy)]
struct Plan {
    name: &'static str,
    connections: usize,
    warm_up: usize,
    events: usize,
    settle: Duration,
    /// Connections per source address at most (below the ephemeral port range, in any case).
    per_source: usize,
}

const FULL_RUN: Plan = Plan {
    name: "WebSocket connections on one node",
    connections: 100_000,
    warm_up: 1_000,
    events: 3,
    settle: Duration::from_secs(5),
    per_source: usize::MAX,
};

const SMOKE_RUN: Plan = Plan {
    name: "WebSocket connections smoke run (no --bench: checks the harness, figures mean nothing)",
    connections: 300,
    warm_up: 30,
    events: 1,
    settle: Duration::from_millis(100),
    // Several source addresses even for a few connections, so the smoke run covers them.
    per_source: 100,
};

fn main() -> ExitCode {
    if let Some(exit) = ws_support::run_child("ws_connections", child_main) {
        return exit;
    }
    let mut plan = if ws_support::full_run() {
        FULL_RUN
    } else {
        SMOKE_RUN
    };
    let wanted = plan.connections as u64 + SPARE_DESCRIPTORS;
    let limit = ws_support::raise_fd_limit_hard(wanted);
    if limit < wanted {
        let fitting = limit.saturating_sub(SPARE_DESCRIPTORS) as usize;
        println!(
            "ws_connections: the open-file limit is {limit} and cannot be raised (that needs \
             CAP_SYS_RESOURCE): {fitting} connections instead of {}",
            plan.connections
        );
        plan.connections = fitting;
    }
    if plan.connections <= plan.warm_up {
        eprintln!("ws_connections: too few descriptors for a run ({limit})");
        return ExitCode::FAILURE;
    }
    let runtime = match ws_support::server_runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ws_connections: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(plan)) {
        Ok(figures) => {
            figures.print(plan);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ws_connections: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child side.

fn child_main(role: &str) -> Result<(), String> {
    if role != "ours" {
        return Err(format!("unknown role `{role}`"));
    }
    let connections = ws_support::connections_from_env().unwrap_or(FULL_RUN.connections as u32);
    let mut config = ws_support::ours_config(connections);
    // Idle sessions are closed after the idle timeout; put it beyond the run.
    config.ws_idle_timeout_ms = 30 * 60 * 1000;
    ws_support::serve_ours_until_parent_gone(config)
}

// ---------------------------------------------------------------------------------------------
// Parent side.

/// Per event, how many subscribers have received it; and how many lost their connection.
struct Board {
    received: Vec<AtomicUsize>,
    lost: AtomicUsize,
}

/// What one subscriber saw: when each event arrived (by index), and how often.
struct Receipt {
    arrived: Vec<Option<Instant>>,
    duplicates: usize,
    problem: Option<String>,
}

struct Figures {
    connections: usize,
    sources: usize,
    measured: usize,
    opening: Duration,
    rss_before_kib: u64,
    rss_after_kib: u64,
    kernel_before_kib: Option<u64>,
    kernel_after_kib: Option<u64>,
    events: Vec<EventFigures>,
}

struct EventFigures {
    publish: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
    server_cpu: Option<Duration>,
}

async fn run(plan: Plan) -> Result<Figures, String> {
    let sources = source_addresses(plan)?;
    println!(
        "{}: {} connections ({} warm-up) from {} source addresses, {} event(s)",
        plan.name,
        plan.connections,
        plan.warm_up,
        sources.len(),
        plan.events
    );
    let server = ws_support::start_server(
        "ours",
        &[
            (CONNECTIONS_ENV, &plan.connections.to_string()),
            MEASURE_RESIDENT_MEMORY,
        ],
    )?;
    let http = reqwest::Client::new();
    let base_url = server.base_url();
    let token = ws_support::admin_token(&http, &base_url).await?;
    let url = server.ws_url();
    let board = Arc::new(Board {
        received: (0..plan.events).map(|_| AtomicUsize::new(0)).collect(),
        lost: AtomicUsize::new(0),
    });
    let (stop, stopped) = watch::channel(false);
    let opener = Opener {
        url: &url,
        token: &token,
        sources: &sources,
        board: &board,
        stopped: &stopped,
        events: plan.events,
    };

    let mut tasks = opener.open(0..plan.warm_up).await?;
    tokio::time::sleep(plan.settle).await;
    let rss_before_kib = rss(&server)?;
    let kernel_before_kib = kernel_tcp_kib();
    let opening = Instant::now();
    tasks.extend(opener.open(plan.warm_up..plan.connections).await?);
    let opening = opening.elapsed();
    println!(
        "{} connections opened, authenticated and subscribed in {:.1} s",
        plan.connections - plan.warm_up,
        opening.as_secs_f64()
    );
    tokio::time::sleep(plan.settle).await;
    let rss_after_kib = rss(&server)?;
    let kernel_after_kib = kernel_tcp_kib();
    let lost = board.lost.load(Ordering::Relaxed);
    if lost > 0 {
        return Err(format!("{lost} connection(s) lost while idle"));
    }

    let mut published = Vec::with_capacity(plan.events);
    for event in 0..plan.events {
        let cpu_before = server.cpu_time();
        let started = Instant::now();
        ws_support::add_pet(&http, &base_url, &token, &format!("{NAME_PREFIX}{event}")).await?;
        let publish = started.elapsed();
        wait_for_delivery(&board, event, plan.connections).await?;
        let server_cpu = ws_support::cpu_spent(cpu_before, server.cpu_time());
        published.push((started, publish, server_cpu));
    }

    let _ = stop.send(true);
    let mut receipts = Vec::with_capacity(tasks.len());
    for task in tasks {
        receipts.push(
            task.await
                .map_err(|error| format!("subscriber task: {error}"))?,
        );
    }
    drop(server);
    check(&receipts, plan.events)?;
    let events = published
        .iter()
        .enumerate()
        .map(|(event, &(started, publish, server_cpu))| {
            let mut latencies: Vec<Duration> = receipts
                .iter()
                .filter_map(|receipt| receipt.arrived[event])
                .map(|arrived| arrived.saturating_duration_since(started))
                .collect();
            latencies.sort_unstable();
            EventFigures {
                publish,
                p50: percentile(&latencies, 50.0),
                p99: percentile(&latencies, 99.0),
                max: latencies.last().copied().unwrap_or_default(),
                server_cpu,
            }
        })
        .collect();
    Ok(Figures {
        connections: plan.connections,
        sources: sources.len(),
        measured: plan.connections - plan.warm_up,
        opening,
        rss_before_kib,
        rss_after_kib,
        kernel_before_kib,
        kernel_after_kib,
        events,
    })
}

/// Enough loopback source addresses for the plan's connections: 127.0.0.2 onwards, each used
/// for at most nine tenths of the ephemeral port range (the rest is left to other sockets).
fn source_addresses(plan: Plan) -> Result<Vec<IpAddr>, String> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .map_err(|error| format!("cannot read the ephemeral port range: {error}"))?;
    let mut bounds = range.split_whitespace().map(str::parse::<usize>);
    let (Some(Ok(low)), Some(Ok(high))) = (bounds.next(), bounds.next()) else {
        return Err(format!(
            "unreadable ephemeral port range `{}`",
            range.trim()
        ));
    };
    let per_source = (high.saturating_sub(low) + 1) * 9 / 10;
    let per_source = per_source.min(plan.per_source).max(1);
    let count = plan.connections.div_ceil(per_source);
    if count > 250 {
        return Err(format!(
            "{count} source addresses needed: the port range is too small"
        ));
    }
    Ok((0..count)
        .map(|index| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + index as u8)))
        .collect())
}

/// Opens subscribers: connection `n` comes from source address `n % sources`.
struct Opener<'a> {
    url: &'a str,
    token: &'a str,
    sources: &'a [IpAddr],
    board: &'a Arc<Board>,
    stopped: &'a watch::Receiver<bool>,
    events: usize,
}

impl Opener<'_> {
    /// Opens connections `range` (authenticated, subscribed to `pets`), each read by a task.
    async fn open(
        &self,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<tokio::task::JoinHandle<Receipt>>, String> {
        let count = range.len();
        let subscribed = stream::iter(range)
            .map(|index| async move {
                let source = self.sources[index % self.sources.len()];
                let mut socket =
                    ws_support::connect_from(source, self.url, Some(self.token)).await?;
                ws_support::subscribe_to_pets(&mut socket).await?;
                Ok::<RawSocket, String>(socket)
            })
            .buffer_unordered(CONNECTING_AT_ONCE);
        tokio::pin!(subscribed);
        let mut tasks = Vec::with_capacity(count);
        while let Some(socket) = subscribed.next().await {
            tasks.push(tokio::spawn(receive(
                socket?,
                Arc::clone(self.board),
                self.stopped.clone(),
                self.events,
            )));
        }
        Ok(tasks)
    }
}

/// Reads one subscriber's socket until told to stop, noting when each event arrived.
async fn receive(
    mut socket: RawSocket,
    board: Arc<Board>,
    mut stop: watch::Receiver<bool>,
    events: usize,
) -> Receipt {
    let mut receipt = Receipt {
        arrived: vec![None; events],
        duplicates: 0,
        problem: None,
    };
    loop {
        let frame = tokio::select! {
            frame = socket.next() => frame,
            _ = stop.changed() => return receipt,
        };
        let now = Instant::now();
        let problem = match frame {
            Some(Ok(Message::Text(text))) => {
                if let Some(event) = event_index(text.as_str()).filter(|event| *event < events) {
                    match &mut receipt.arrived[event] {
                        Some(_) => receipt.duplicates += 1,
                        slot => {
                            *slot = Some(now);
                            board.received[event].fetch_add(1, Ordering::Release);
                        }
                    }
                }
                continue;
            }
            // Heartbeats: tungstenite answers the server's pings by itself.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(frame))) => format!("closed by the server: {frame:?}"),
            Some(Ok(other)) => format!("unexpected frame {other:?}"),
            Some(Err(error)) => format!("connection broke: {error}"),
            None => "connection closed".to_owned(),
        };
        receipt.problem = Some(problem);
        board.lost.fetch_add(1, Ordering::Relaxed);
        return receipt;
    }
}

/// The benchmark event a `pet.created` frame reports, from the pet's name; `None` for any other
/// frame. A substring search, not a JSON parse: 100,000 readers share the machine with the
/// server.
fn event_index(text: &str) -> Option<usize> {
    if !text.contains(r#""event":"pet.created""#) {
        return None;
    }
    let marker = format!(r#""name":"{NAME_PREFIX}"#);
    let digits = text.get(text.find(&marker)? + marker.len()..)?;
    digits.get(..digits.find('"')?)?.parse().ok()
}

/// Waits until `subscribers` have received `event`.
async fn wait_for_delivery(board: &Board, event: usize, subscribers: usize) -> Result<(), String> {
    let deadline = Instant::now() + DELIVERY_GUARD;
    loop {
        let received = board.received[event].load(Ordering::Acquire);
        if received >= subscribers {
            return Ok(());
        }
        let lost = board.lost.load(Ordering::Relaxed);
        if lost > 0 {
            return Err(format!("{lost} subscriber(s) lost their connection"));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "event {event} reached {received} of {subscribers} subscribers within \
                 {DELIVERY_GUARD:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every subscriber received every event exactly once and kept its connection.
fn check(receipts: &[Receipt], events: usize) -> Result<(), String> {
    let problems: Vec<&str> = receipts
        .iter()
        .filter_map(|receipt| receipt.problem.as_deref())
        .collect();
    if let Some(first) = problems.first() {
        return Err(format!(
            "{} subscriber(s) failed, e.g. {first}",
            problems.len()
        ));
    }
    let duplicates: usize = receipts.iter().map(|receipt| receipt.duplicates).sum();
    let missing: usize = receipts
        .iter()
        .map(|receipt| receipt.arrived.iter().filter(|at| at.is_none()).count())
        .sum();
    if duplicates > 0 || missing > 0 {
        return Err(format!(
            "{missing} notification(s) missing and {duplicates} delivered twice over {} \
             subscribers × {events} events",
            receipts.len()
        ));
    }
    Ok(())
}

fn rss(server: &ChildServer) -> Result<u64, String> {
    server
        .rss_kib()
        .ok_or_else(|| "cannot read the server's VmRSS".to_owned())
}

/// The kernel's memory for TCP (socket buffers of every TCP socket on the machine, both ends of
/// loopback included), in KiB: the `mem` pages of `/proc/net/sockstat`.
fn kernel_tcp_kib() -> Option<u64> {
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = sockstat.lines().find(|line| line.starts_with("TCP:"))?;
    let mut fields = line.split_whitespace();
    fields.find(|field| *field == "mem")?;
    let pages: u64 = fields.next()?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64 / 1024)
}

impl Figures {
    fn print(&self, plan: Plan) {
        let growth = self.rss_after_kib.saturating_sub(self.rss_before_kib);
        let per_connection = growth as f64 / self.measured.max(1) as f64;
        println!(
            "{} connections from {} source addresses; {} opened after the warm-up in {:.1} s \
             ({:.0} connections/s, each upgraded with a bearer token and subscribed)",
            self.connections,
            self.sources,
            self.measured,
            self.opening.as_secs_f64(),
            self.measured as f64 / self.opening.as_secs_f64().max(f64::EPSILON),
        );
        println!(
            "server VmRSS {:.1} MiB → {:.1} MiB: {per_connection:.2} KiB per connection \
             (target ≤ 10 KiB)",
            self.rss_before_kib as f64 / 1024.0,
            self.rss_after_kib as f64 / 1024.0,
        );
        if let (Some(before), Some(after)) = (self.kernel_before_kib, self.kernel_after_kib) {
            println!(
                "kernel TCP memory {:.1} MiB → {:.1} MiB: {:.2} KiB per connection (both ends of \
                 loopback, not in any process's RSS)",
                before as f64 / 1024.0,
                after as f64 / 1024.0,
                after.saturating_sub(before) as f64 / self.measured.max(1) as f64,
            );
        }
        println!(
            "{:<8}{:>12}{:>10}{:>10}{:>10}{:>18}",
            "event", "publish ms", "p50 ms", "p99 ms", "max ms", "server µs/notif."
        );
        for (index, event) in self.events.iter().enumerate() {
            let per_delivery = event
                .server_cpu
                .map(|cpu| format!("{:.1}", cpu.as_secs_f64() * 1e6 / self.connections as f64))
                .unwrap_or_else(|| "-".to_owned());
            println!(
                "{:<8}{:>12.1}{:>10.1}{:>10.1}{:>10.1}{:>18}",
                index + 1,
                ms(event.publish),
                ms(event.p50),
                ms(event.p99),
                ms(event.max),
                per_delivery,
            );
        }
        println!(
            "every one of {} subscribers received each of {} event(s) exactly once; no \
             connection lost",
            self.connections, plan.events
        );
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
