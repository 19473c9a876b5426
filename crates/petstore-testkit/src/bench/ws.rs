//! What the WebSocket benchmarks share: servers in child processes, raw client sockets, the
//! process figures read from `/proc`, and percentiles.
//!
//! Every server runs in a **child process**: this bench binary re-executed with a role in
//! [`ROLE_ENV`]. The child announces its address on stdout and serves until its stdin closes,
//! which the parent does when it is done with it (or dies). A process of its own gives the server
//! its own runtime, its own CPU time and resident memory to read from `/proc`, and its own
//! file-descriptor limit: 10,000 connections cost 10,000 descriptors on each side of loopback.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    num::NonZeroU32,
    process::ExitCode,
    str::FromStr,
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};

use petstore_ws::{
    config::Config,
    server::{self, RunningServer},
    store::{DEMO_ADMIN_PASSWORD, DEMO_ADMIN_USERNAME},
    telemetry,
};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{
        self, Message, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig,
    },
};

pub use super::stats::{median, ms, percentile, ratio};
use crate::child::process_cpu_time;
pub use crate::child::{ChildServer, announce};

/// Environment variable that turns the bench binary into one of its servers.
pub const ROLE_ENV: &str = "WS_BENCH_ROLE";

/// Environment variable telling our server how many connections to admit (`ws_round_trip`
/// also takes its connection count from it).
pub const CONNECTIONS_ENV: &str = "WS_BENCH_CONNECTIONS";

/// The environment a server needs for its resident set to count the memory it uses: mimalloc
/// returns a page to the OS as soon as it is free (`MIMALLOC_PURGE_DELAY=0`) instead of 10 ms
/// later, and "later" only comes when the thread that freed it allocates again.
///
/// A memory benchmark reads the resident set before and after opening its measured
/// connections. Memory freed before the first reading and kept for reuse was still resident,
/// and the connections then reused it without the reading growing: a login's ~19 MiB argon2
/// block, freed on a blocking thread that then sat idle, hid half the growth of 5,000
/// connections (4.2 KiB per connection measured, 8.8 with this setting). Only for the benches
/// that read memory: returning pages at once costs system calls that CPU figures would count.
pub const MEASURE_RESIDENT_MEMORY: (&str, &str) = ("MIMALLOC_PURGE_DELAY", "0");

/// Upgrades in progress at once while a load generator opens many connections.
pub const CONNECTING_AT_ONCE: usize = 64;

/// A client-side socket, driven frame by frame.
pub type RawSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A bare server's side of a connection.
pub type ServerSocket = WebSocketStream<TcpStream>;

/// Whether this is a measuring run (`cargo bench` passes `--bench`), not a smoke run of the
/// harness (`cargo test --all-targets` runs benches without it).
pub fn full_run() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// The role this process was started with, if it is a child server.
pub fn child_role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// When this process is a child server, runs `child_main` with its role and returns the exit
/// code (an error goes to stderr, prefixed with `bench` and the role); `None` in the parent.
pub fn run_child(
    bench: &str,
    child_main: impl FnOnce(&str) -> Result<(), String>,
) -> Option<ExitCode> {
    let role = child_role()?;
    Some(match child_main(&role) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{bench} ({role}): {error}");
            ExitCode::FAILURE
        }
    })
}

/// The number in [`CONNECTIONS_ENV`], if it is set to one.
pub fn connections_from_env<T: FromStr>() -> Option<T> {
    std::env::var(CONNECTIONS_ENV)
        .ok()
        .and_then(|value| value.parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Child side.

/// The runtime every server (and the fan-out and idle-memory load generators) gets: tokio's
/// default multi-threaded one, as `#[tokio::main]` builds it for the real binary.
pub fn server_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot build the runtime: {error}"))
}

/// Completes when the parent closes the child's stdin: the signal to stop.
pub async fn parent_gone() {
    let _ = tokio::task::spawn_blocking(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    })
    .await;
}

/// The configuration of petstore-ws under load from one client address: the production
/// defaults (demo data, tracing at `info`, metrics, every check on the request path), with the
/// limits that would refuse a load generator raised so that they run but never trigger.
pub fn ours_config(connections: u32) -> Config {
    let mut config = Config::defaults();
    config.bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
    config.port = 0;
    // REST, as the `get_pet_by_id` bench sets it: the limiter runs with a budget one client
    // address cannot exhaust.
    config.rate_limit_per_minute = NonZeroU32::MAX;
    config.rate_limit_burst = NonZeroU32::MAX;
    config.ws_messages_per_minute = NonZeroU32::MAX;
    config.ws_message_burst = NonZeroU32::MAX;
    config.ws_max_connections_per_ip = connections.saturating_add(16);
    config.shutdown_grace_secs = 2;
    config
}

/// Starts petstore-ws with `config` (logging set up as the binary does it).
pub async fn start_ours(config: Config) -> Result<RunningServer, String> {
    telemetry::init(&config)?;
    server::spawn(config)
        .await
        .map_err(|error| format!("petstore-ws does not start: {error}"))
}

/// Serves petstore-ws as a child: announces it, waits for the parent to go, shuts it down.
pub fn serve_ours_until_parent_gone(config: Config) -> Result<(), String> {
    let runtime = server_runtime()?;
    runtime.block_on(async move {
        let running = start_ours(config).await?;
        announce(running.local_addr())?;
        parent_gone().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), running.shutdown()).await;
        Ok::<(), String>(())
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// Serves a bare server as a child: `serve` starts it and gives its address, which is
/// announced; then waits for the parent to go.
pub fn serve_bare_until_parent_gone(
    serve: impl Future<Output = Result<SocketAddr, String>>,
) -> Result<(), String> {
    let runtime = server_runtime()?;
    runtime.block_on(async move {
        let addr = serve.await?;
        announce(addr)?;
        parent_gone().await;
        Ok::<(), String>(())
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// A bare server's accept loop, as tokio-tungstenite's README shows it: listens on a free
/// loopback port and, in a task, accepts for ever, each connection with `TCP_NODELAY`, upgraded
/// with [`small_buffers`] and then handed to `serve_connection` in a task of its own. Returns
/// the address.
pub async fn accept_connections<F, Fut>(serve_connection: F) -> Result<SocketAddr, String>
where
    F: FnOnce(ServerSocket) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|error| error.to_string())?;
    let addr = listener.local_addr().map_err(|error| error.to_string())?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let serve_connection = serve_connection.clone();
            tokio::spawn(async move {
                let accepting =
                    tokio_tungstenite::accept_async_with_config(stream, Some(small_buffers()));
                if let Ok(socket) = accepting.await {
                    serve_connection(socket).await;
                }
            });
        }
    });
    Ok(addr)
}

// ---------------------------------------------------------------------------------------------
// Parent side.

/// How long a WebSocket bench server gets to close its connections and exit once its stdin
/// closes, before it is killed (its shutdown alone may take the 5 s it is given).
const STOP_WAIT: Duration = Duration::from_secs(8);

/// Re-executes this bench binary as the server `role`, with `env` added.
pub fn start_server(role: &str, env: &[(&str, &str)]) -> Result<ChildServer, String> {
    ChildServer::spawn(ROLE_ENV, role, env, STOP_WAIT)
        .map_err(|reason| format!("cannot start the {role} server: {reason}"))
}

/// CPU time this process (the load generator) has used so far.
pub fn own_cpu_time() -> Option<Duration> {
    process_cpu_time(std::process::id())
}

/// Raises this process's soft limit on open files towards `wanted` (never above the hard
/// limit) and returns the soft limit now in force. Children inherit it.
pub fn raise_fd_limit(wanted: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit` for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    let target = wanted.min(limit.rlim_max);
    if limit.rlim_cur < target {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid `rlimit`; lowering nothing, raising the soft limit up to
        // the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return target;
        }
    }
    limit.rlim_cur
}

/// Raises this process's limit on open files to `wanted`, hard limit included when it is lower
/// (which needs `CAP_SYS_RESOURCE`, e.g. root, and stays below the kernel's `fs.nr_open`), and
/// returns the soft limit now in force. Children inherit it. Without the privilege this is
/// [`raise_fd_limit`]: the soft limit goes up to the hard one.
pub fn raise_fd_limit_hard(wanted: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit` for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    if limit.rlim_max < wanted {
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: wanted,
        };
        // SAFETY: `raised` is a valid `rlimit`; the kernel refuses it (EPERM, EINVAL) without
        // the privilege or above `fs.nr_open`, leaving the limits as they were.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return wanted;
        }
    }
    raise_fd_limit(wanted)
}

/// tungstenite's settings with a 4 KiB read buffer, as petstore-ws configures its sessions: for
/// the load generator's sockets and the bare servers that hold thousands of connections (the
/// default 128 KiB buffer is allocated and filled up front: 10,000 sockets would cost over a
/// gigabyte).
pub fn small_buffers() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024)
}

/// Opens a raw WebSocket to `url`, with `Authorization: Bearer <token>` when a token is given.
pub async fn connect(url: &str, bearer: Option<&str>) -> Result<RawSocket, String> {
    let request = upgrade_request(url, bearer)?;
    let connecting =
        tokio_tungstenite::connect_async_with_config(request, Some(small_buffers()), true);
    within_upgrade_time(async {
        connecting
            .await
            .map(|(socket, _)| socket)
            .map_err(upgrade_error)
    })
    .await
}

/// Opens a raw WebSocket to `url` from the loopback address `source` (127.0.0.2, 127.0.0.3, …):
/// one source address has one ephemeral port range (about 28,000 ports), so more connections
/// than that to one server need several.
pub async fn connect_from(
    source: IpAddr,
    url: &str,
    bearer: Option<&str>,
) -> Result<RawSocket, String> {
    let request = upgrade_request(url, bearer)?;
    let server: SocketAddr = request
        .uri()
        .authority()
        .and_then(|authority| authority.as_str().parse().ok())
        .ok_or_else(|| format!("{url} does not name a socket address"))?;
    within_upgrade_time(async {
        let socket = match source {
            IpAddr::V4(_) => TcpSocket::new_v4(),
            IpAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|error| format!("socket: {error}"))?;
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|error| format!("bind {source}: {error}"))?;
        let stream = socket
            .connect(server)
            .await
            .map_err(|error| format!("connect from {source}: {error}"))?;
        stream
            .set_nodelay(true)
            .map_err(|error| format!("TCP_NODELAY: {error}"))?;
        tokio_tungstenite::client_async_with_config(
            request,
            MaybeTlsStream::Plain(stream),
            Some(small_buffers()),
        )
        .await
        .map(|(socket, _)| socket)
        .map_err(upgrade_error)
    })
    .await
}

/// The upgrade request for `url`, with `Authorization: Bearer <token>` when a token is given.
fn upgrade_request(
    url: &str,
    bearer: Option<&str>,
) -> Result<tungstenite::handshake::client::Request, String> {
    let mut request = url
        .into_client_request()
        .map_err(|error| format!("bad URL {url}: {error}"))?;
    if let Some(token) = bearer {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|error| format!("token is not a header value: {error}"))?;
        request.headers_mut().insert("authorization", value);
    }
    Ok(request)
}

/// A failed upgrade as the benches report it (a refusal with its status and body).
fn upgrade_error(error: tungstenite::Error) -> String {
    match error {
        tungstenite::Error::Http(response) => format!(
            "upgrade refused with HTTP {}: {}",
            response.status(),
            response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
        ),
        error => format!("connect: {error}"),
    }
}

/// `connecting`, failed when it has not upgraded within 20 s.
async fn within_upgrade_time(
    connecting: impl Future<Output = Result<RawSocket, String>>,
) -> Result<RawSocket, String> {
    tokio::time::timeout(Duration::from_secs(20), connecting)
        .await
        .map_err(|_| "connect: no upgrade within 20 s".to_owned())?
}

/// `addPet` named `name`, as the holder of `token` (the demo administrator in the benches):
/// every subscriber to `pets` receives its `pet.created`.
pub async fn add_pet(
    http: &reqwest::Client,
    base_url: &str,
    token: &str,
    name: &str,
) -> Result<(), String> {
    let response = http
        .post(format!("{base_url}/api/v3/pet"))
        .bearer_auth(token)
        .json(&json!({ "name": name, "photoUrls": [] }))
        .send()
        .await
        .map_err(|error| format!("addPet: {error}"))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        let body = response.text().await.unwrap_or_default();
        Err(format!("addPet answered {status}: {body}"))
    }
}

/// An access token of the demo administrator (`POST /api/v3/auth/token`).
pub async fn admin_token(http: &reqwest::Client, base_url: &str) -> Result<String, String> {
    access_token(http, base_url, DEMO_ADMIN_USERNAME, DEMO_ADMIN_PASSWORD).await
}

/// An access token of `username` (`POST /api/v3/auth/token`).
pub async fn access_token(
    http: &reqwest::Client,
    base_url: &str,
    username: &str,
    password: &str,
) -> Result<String, String> {
    let response = http
        .post(format!("{base_url}/api/v3/auth/token"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .map_err(|error| format!("POST /auth/token: {error}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|error| format!("POST /auth/token: body: {error}"))?;
    if !status.is_success() {
        return Err(format!("POST /auth/token answered {status}: {body}"));
    }
    body["accessToken"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("POST /auth/token: no accessToken in {body}"))
}

/// A request envelope, as a client writes it.
pub fn request_envelope(correlation_id: &uuid::Uuid, action: &str, payload: &Value) -> String {
    json!({
        "type": "request",
        "correlationId": correlation_id.hyphenated().to_string(),
        "timestamp": chrono::Utc::now().timestamp_millis(),
        "action": action,
        "payload": payload,
    })
    .to_string()
}

/// `subscribe {topics: [pets]}`, waiting for its success (frames that are not its answer are
/// skipped).
pub async fn subscribe_to_pets(socket: &mut RawSocket) -> Result<(), String> {
    let id = uuid::Uuid::new_v4();
    let request = request_envelope(&id, "subscribe", &json!({ "topics": ["pets"] }));
    socket
        .send(Message::text(request))
        .await
        .map_err(|error| format!("subscribe: {error}"))?;
    let id = id.hyphenated().to_string();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .map_err(|_| "subscribe: no answer within 20 s".to_owned())?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(text.as_str())
                    .map_err(|error| format!("subscribe: answer is not JSON: {error}"))?;
                if value["correlationId"] == id.as_str() {
                    return if value["status"] == "success" {
                        Ok(())
                    } else {
                        Err(format!("subscribe refused: {text}"))
                    };
                }
            }
            Some(Ok(Message::Close(frame))) => return Err(format!("subscribe: closed {frame:?}")),
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(format!("subscribe: {error}")),
            None => return Err("subscribe: connection closed".to_owned()),
        }
    }
}

/// The CPU time spent between two readings, when both could be taken.
pub fn cpu_spent(before: Option<Duration>, after: Option<Duration>) -> Option<Duration> {
    before
        .zip(after)
        .map(|(before, after)| after.saturating_sub(before))
}
