//! Memory per idle WebSocket connection, read from the server process's resident set.
//!
//! Product target: ≤ 10 KiB of memory per idle WebSocket connection.
//!
//! Each server runs in a child process of its own (see `ws_support`), so its `VmRSS` in
//! `/proc/PID/status` counts the server side only; the load generator's sockets live in this
//! process. Per server: open a warm-up batch of connections (so that the allocator's arenas, the
//! runtime's worker state and the first growth of every registry are paid before measuring),
//! let it settle, read the RSS, open the measured batch, let it settle, read the RSS again:
//! KiB per connection = growth / connections in the measured batch. Kernel socket buffers are not
//! in a process's RSS and are not counted (they are the same for every server). Every server
//! returns freed memory to the OS at once ([`ws_support::MEASURE_RESIDENT_MEMORY`]): memory
//! freed before the first reading and reused by the measured connections would otherwise hide
//! part of their growth.
//!
//! Servers, one after the other:
//!
//! * **tungstenite (bare)**: the floor: tokio-tungstenite with the same 4 KiB read buffer our
//!   sessions use (its default, 128 KiB, allocated and filled up front, would dwarf
//!   everything), one task per connection waiting for the next frame;
//! * **petstore-ws, anonymous**: production defaults (demo data, tracing at `info`, metrics);
//!   connections that have not authenticated, with the authentication deadline beyond the run;
//! * **petstore-ws, subscribed**: connections authenticated on the upgrade with the demo
//!   administrator's access token and subscribed to `pets`: what a dashboard client costs;
//! * **petstore-ws, after 48 KiB**: subscribed as above, then one 48 KiB request each (answered,
//!   then idle): what a connection keeps of a large message once it is idle again.
//!
//! Run with `cargo bench --bench ws_idle_memory` (about 50 s). Without `--bench` (as under
//! `cargo test --all-targets`) it does a smoke run with a few connections.

use petstore_testkit::bench::ws as ws_support;
use std::{
    net::SocketAddr,
    process::ExitCode,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt, stream};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;
use ws_support::{CONNECTING_AT_ONCE, CONNECTIONS_ENV, MEASURE_RESIDENT_MEMORY, RawSocket};

/// The server binary's allocator (`src/main.rs`), for every server this benchmark runs, ours and
/// the bare ones alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Padding of the large request of [`Target::OursAfterLargeMessage`].
const LARGE_MESSAGE_BYTES: usize = 48 * 1024;

#[derive(Debug, Clone, Copy)]
struct Plan {
    name: &'static str,
    warm_up: usize,
    measured: usize,
    settle: Duration,
}

const FULL_RUN: Plan = Plan {
    name: "WebSocket idle memory",
    warm_up: 500,
    measured: 5_000,
    settle: Duration::from_secs(2),
};

const SMOKE_RUN: Plan = Plan {
    name: "WebSocket idle memory smoke run (no --bench: checks the harness, figures mean nothing)",
    warm_up: 5,
    measured: 20,
    settle: Duration::from_millis(100),
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Bare,
    OursAnonymous,
    OursSubscribed,
    /// Subscribed, after one large request each: what tungstenite keeps of a big message.
    OursAfterLargeMessage,
}

impl Target {
    const ALL: [Target; 4] = [
        Target::Bare,
        Target::OursAnonymous,
        Target::OursSubscribed,
        Target::OursAfterLargeMessage,
    ];

    fn role(self) -> &'static str {
        match self {
            Target::Bare => "tungstenite-idle",
            Target::OursAnonymous | Target::OursSubscribed | Target::OursAfterLargeMessage => {
                "ours"
            }
        }
    }

    fn label(self) -> &'static str {
        match self {
            Target::Bare => "tungstenite (bare)",
            Target::OursAnonymous => "petstore-ws, anonymous",
            Target::OursSubscribed => "petstore-ws, subscribed",
            Target::OursAfterLargeMessage => "petstore-ws, after 48 KiB",
        }
    }
}

fn main() -> ExitCode {
    if let Some(exit) = ws_support::run_child("ws_idle_memory", child_main) {
        return exit;
    }
    let plan = if ws_support::full_run() {
        FULL_RUN
    } else {
        SMOKE_RUN
    };
    let wanted = (plan.warm_up + plan.measured) as u64 + 256;
    let limit = ws_support::raise_fd_limit(wanted);
    if limit < wanted {
        eprintln!("ws_idle_memory: the open-file limit is {limit}, {wanted} descriptors needed");
        return ExitCode::FAILURE;
    }
    let runtime = match ws_support::server_runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ws_idle_memory: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}: {} warm-up connections, then {} measured, {:?} to settle before each reading",
        plan.name, plan.warm_up, plan.measured, plan.settle
    );
    let mut rows = Vec::new();
    for target in Target::ALL {
        match runtime.block_on(measure(target, plan)) {
            Ok(row) => rows.push((target, row)),
            Err(error) => {
                eprintln!("ws_idle_memory: {}: {error}", target.label());
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "{:<26}{:>14}{:>14}{:>16}{:>12}",
        "server", "RSS before", "RSS after", "KiB/connection", "connect s"
    );
    for (target, row) in &rows {
        println!(
            "{:<26}{:>10.1} MiB{:>10.1} MiB{:>16.1}{:>12.1}",
            target.label(),
            row.before_kib as f64 / 1024.0,
            row.after_kib as f64 / 1024.0,
            row.per_connection_kib(plan.measured),
            row.connecting.as_secs_f64(),
        );
    }
    if let Some((_, bare)) = rows.iter().find(|(target, _)| *target == Target::Bare) {
        for (target, row) in rows.iter().filter(|(target, _)| *target != Target::Bare) {
            println!(
                "{}: {:.1} KiB/connection above the bare floor (target ≤ 10 KiB in all)",
                target.label(),
                row.per_connection_kib(plan.measured) - bare.per_connection_kib(plan.measured)
            );
        }
    }
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------------------------------------
// Child side.

fn child_main(role: &str) -> Result<(), String> {
    if role == "ours" {
        let connections = ws_support::connections_from_env()
            .unwrap_or((FULL_RUN.warm_up + FULL_RUN.measured) as u32);
        let mut config = ws_support::ours_config(connections);
        // Anonymous connections are closed at the authentication deadline; idle ones without a
        // subscription after the idle timeout. Both are put beyond the run.
        config.ws_auth_timeout_ms = 10 * 60 * 1000;
        config.ws_idle_timeout_ms = 10 * 60 * 1000;
        return ws_support::serve_ours_until_parent_gone(config);
    }
    if role != Target::Bare.role() {
        return Err(format!("unknown role `{role}`"));
    }
    ws_support::serve_bare_until_parent_gone(serve_bare())
}

/// A task per connection, waiting for frames and answering none.
async fn serve_bare() -> Result<SocketAddr, String> {
    ws_support::accept_connections(|mut socket| async move {
        while let Some(Ok(message)) = socket.next().await {
            if message.is_close() {
                return;
            }
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Parent side.

struct Row {
    before_kib: u64,
    after_kib: u64,
    connecting: Duration,
}

impl Row {
    fn per_connection_kib(&self, connections: usize) -> f64 {
        self.after_kib.saturating_sub(self.before_kib) as f64 / connections.max(1) as f64
    }
}

async fn measure(target: Target, plan: Plan) -> Result<Row, String> {
    let total = plan.warm_up + plan.measured;
    let server = ws_support::start_server(
        target.role(),
        &[
            (CONNECTIONS_ENV, &total.to_string()),
            MEASURE_RESIDENT_MEMORY,
        ],
    )?;
    let url = server.ws_url();
    let token = match target {
        Target::OursSubscribed | Target::OursAfterLargeMessage => {
            let http = reqwest::Client::new();
            Some(ws_support::admin_token(&http, &server.base_url()).await?)
        }
        Target::Bare | Target::OursAnonymous => None,
    };
    let subscribe = matches!(
        target,
        Target::OursSubscribed | Target::OursAfterLargeMessage
    );
    let large_message = target == Target::OursAfterLargeMessage;
    let rss = || {
        server
            .rss_kib()
            .ok_or_else(|| "cannot read the server's VmRSS".to_owned())
    };

    let mut sockets = open(
        &url,
        token.as_deref(),
        subscribe,
        large_message,
        plan.warm_up,
    )
    .await?;
    tokio::time::sleep(plan.settle).await;
    let before_kib = rss()?;
    let connecting = Instant::now();
    sockets.extend(
        open(
            &url,
            token.as_deref(),
            subscribe,
            large_message,
            plan.measured,
        )
        .await?,
    );
    let connecting = connecting.elapsed();
    tokio::time::sleep(plan.settle).await;
    let after_kib = rss()?;
    // The connections must still be open: a server that closed them would look cheap.
    let open_now = check_open(&mut sockets).await;
    if open_now != total {
        return Err(format!(
            "only {open_now} of {total} connections are still open"
        ));
    }
    drop(sockets);
    Ok(Row {
        before_kib,
        after_kib,
        connecting,
    })
}

/// Opens `count` connections (authenticated and subscribed to `pets` when asked, then sending
/// one large request when asked).
async fn open(
    url: &str,
    token: Option<&str>,
    subscribe: bool,
    large_message: bool,
    count: usize,
) -> Result<Vec<RawSocket>, String> {
    stream::iter(0..count)
        .map(|_| async move {
            let mut socket = ws_support::connect(url, token).await?;
            if subscribe {
                ws_support::subscribe_to_pets(&mut socket).await?;
            }
            if large_message {
                send_large_message(&mut socket).await?;
            }
            Ok::<RawSocket, String>(socket)
        })
        .buffer_unordered(CONNECTING_AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// A 48 KiB request (a `ping` with padding, below the 64 KiB message limit), waiting for its
/// answer, whatever it is: the server has read the whole message by then.
async fn send_large_message(socket: &mut RawSocket) -> Result<(), String> {
    let id = Uuid::new_v4();
    let padding = "x".repeat(LARGE_MESSAGE_BYTES);
    let request = ws_support::request_envelope(&id, "ping", &json!({ "padding": padding }));
    socket
        .send(Message::text(request))
        .await
        .map_err(|error| format!("large message: {error}"))?;
    match tokio::time::timeout(Duration::from_secs(20), socket.next()).await {
        Ok(Some(Ok(Message::Text(_)))) => Ok(()),
        other => Err(format!("large message: unexpected answer {other:?}")),
    }
}

/// How many sockets the server has not closed: a close frame or end of stream, if any, is
/// already waiting to be read, so one poll of each socket tells.
async fn check_open(sockets: &mut [RawSocket]) -> usize {
    let mut open = 0;
    for socket in sockets {
        match tokio::time::timeout(Duration::ZERO, socket.next()).await {
            Err(_) | Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => open += 1,
            Ok(_) => {}
        }
    }
    open
}
