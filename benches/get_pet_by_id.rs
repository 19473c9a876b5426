//! `getPetById` throughput against two baselines, in one run.
//!
//! The product target is a ratio, not an absolute figure: `GET /api/v3/pet/1` on our server (with
//! its edge middleware, tracing and limits on) must reach at least 0.60× the requests per second of
//! a bare hyper server answering fixed bytes. A bare poem-openapi handler returning `Json<Pet>`
//! is measured too: it is the framework's default read path, the one pre-serialized entities are
//! meant to beat.
//!
//! Three servers are started, each in a **child process** (this binary re-executed with a role in
//! [`ROLE_ENV`]), and one in-process load generator drives them in turn:
//!
//! * each server gets its own tokio runtime with the same default configuration, instead of all
//!   three sharing one runtime with the load generator; on a 2-core machine a shared runtime lets
//!   the client's tasks and an idle server's timers disturb the server being measured;
//! * the CPU time each server process spends during a measurement window can be read from
//!   `/proc` and divided by the requests it answered. That "server µs per request" does not depend
//!   on how the two cores are split between client and server, which requests per second on a
//!   shared loopback machine always does (the client's own cost is in every req/s figure and
//!   pulls all ratios towards 1).
//!
//! Targets are interleaved over several rounds, with the order rotated each round, so drift on a
//! shared machine hits all of them alike; the medians are compared. Every response must be a 200
//! with the expected body length, and each server's body is first checked against ours (the same
//! JSON document in as many bytes), so the three really answer the same thing. Any failure makes
//! the run exit non-zero.
//!
//! Run with `cargo bench --bench get_pet_by_id` (about 1 minute). Without `--bench` on the command
//! line (as under `cargo test --all-targets`) it does a sub-second smoke run of the same code.

use petstore_testkit::bench::stats;
use petstore_testkit::child;
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

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{
    Request, Response, StatusCode, Uri,
    header::{self, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::TokioIo;
// The poem-openapi type of `Pet` (the one the server documents with), so the bare poem-openapi
// baseline serializes the same schema the way poem-openapi's own examples do.
use petstore_ws::{config::Config, rest::adapter::schemas::Pet, server, telemetry};
use poem::listener::{Acceptor, Listener};
use poem_openapi::{OpenApi, OpenApiService, param::Path, payload::Json, types::ParseFromJSON};
use stats::median;
use tokio::net::{TcpListener, TcpStream};

/// The server binary's allocator (`src/main.rs`), for every server this benchmark runs, ours and
/// the bare ones alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Environment variable that turns this binary into one of the servers.
const ROLE_ENV: &str = "GET_PET_BENCH_ROLE";
/// Environment variable carrying pet 1's JSON (as our server answers it) to the baselines.
const PET_JSON_ENV: &str = "GET_PET_BENCH_PET_JSON";
/// How long a server gets to exit once its stdin closes, before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// The request every connection repeats.
const PET_PATH: &str = "/api/v3/pet/1";

/// Run lengths. The full run stays well under two minutes: rounds × targets × (warm-up + measure)
/// plus start-up.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Printed above the table.
    name: &'static str,
    connections: usize,
    rounds: usize,
    warm_up: Duration,
    measure: Duration,
}

const FULL_RUN: Plan = Plan {
    name: "getPetById",
    connections: 32,
    rounds: 3,
    warm_up: Duration::from_secs(1),
    measure: Duration::from_secs(5),
};

const SMOKE_RUN: Plan = Plan {
    name: "getPetById smoke run (no --bench: checks the harness, figures mean nothing)",
    connections: 4,
    rounds: 1,
    warm_up: Duration::from_millis(100),
    measure: Duration::from_millis(300),
};

/// The servers compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// hyper 1, HTTP/1.1 only, answering fixed bytes.
    Hyper,
    /// poem-openapi's default path: `Json<Pet>` of a `Pet` built per request.
    PoemDefault,
    /// `petstore_ws::server::spawn` with the default configuration.
    Ours,
}

impl Target {
    const ALL: [Target; 3] = [Target::Hyper, Target::PoemDefault, Target::Ours];

    fn role(self) -> &'static str {
        match self {
            Target::Hyper => "hyper",
            Target::PoemDefault => "poem-default",
            Target::Ours => "ours",
        }
    }

    fn from_role(role: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|target| target.role() == role)
    }

    fn label(self) -> &'static str {
        match self {
            Target::Hyper => "hyper (bare)",
            Target::PoemDefault => "poem-openapi default",
            Target::Ours => "petstore-ws",
        }
    }
}

/// Why the benchmark could not produce figures.
#[derive(Debug, thiserror::Error)]
enum BenchError {
    #[error("cannot start the {role} server: {reason}")]
    Start { role: &'static str, reason: String },
    #[error("{role} server: {reason}")]
    Probe { role: &'static str, reason: String },
    #[error("cannot build the load generator runtime: {0}")]
    Runtime(std::io::Error),
    #[error("child server: {0}")]
    Child(String),
}

fn main() -> ExitCode {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        return match child_main(&role) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("get_pet_by_id ({role}): {error}");
                ExitCode::FAILURE
            }
        };
    }
    let plan = if std::env::args().any(|arg| arg == "--bench") {
        FULL_RUN
    } else {
        SMOKE_RUN
    };
    match parent_main(plan) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("get_pet_by_id: some requests failed (see above)");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("get_pet_by_id: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child side: one server per process, alive until its stdin closes.

fn child_main(role: &str) -> Result<(), BenchError> {
    let target = Target::from_role(role)
        .ok_or_else(|| BenchError::Child(format!("unknown role `{role}`")))?;
    // The same runtime for every server: tokio's default multi-threaded one, as `#[tokio::main]`
    // builds it for the real binary.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| BenchError::Child(error.to_string()))?;
    runtime.block_on(async move {
        let stop = match target {
            Target::Hyper => {
                let addr = serve_hyper(pet_json_from_env()?).await?;
                announce(addr)?;
                None
            }
            Target::PoemDefault => {
                let template = pet_from_json(&pet_json_from_env()?)?;
                let addr = serve_poem_default(template).await?;
                announce(addr)?;
                None
            }
            Target::Ours => {
                let mut config = Config::defaults();
                config.bind = [127, 0, 0, 1].into();
                config.port = 0;
                // The rate limiter runs on every request, as in production, with a budget the
                // load generator (one client address) cannot exhaust.
                config.rate_limit_per_minute = std::num::NonZeroU32::MAX;
                config.rate_limit_burst = std::num::NonZeroU32::MAX;
                telemetry::init(&config).map_err(BenchError::Child)?;
                let running = server::spawn(config)
                    .await
                    .map_err(|error| BenchError::Child(error.to_string()))?;
                announce(running.local_addr())?;
                Some(running)
            }
        };
        // The parent closes our stdin when it is done (or dies): that is the signal to stop.
        let _ = tokio::task::spawn_blocking(|| {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        })
        .await;
        if let Some(running) = stop {
            running.shutdown().await;
        }
        Ok(())
    })
}

fn announce(addr: SocketAddr) -> Result<(), BenchError> {
    child::announce(addr).map_err(BenchError::Child)
}

fn pet_json_from_env() -> Result<Bytes, BenchError> {
    std::env::var(PET_JSON_ENV)
        .map(Bytes::from)
        .map_err(|_| BenchError::Child(format!("{PET_JSON_ENV} is not set")))
}

fn pet_from_json(json: &[u8]) -> Result<Pet, BenchError> {
    let value = serde_json::from_slice(json)
        .map_err(|error| BenchError::Child(format!("pet JSON does not parse: {error}")))?;
    Pet::parse_from_json(Some(value))
        .map_err(|error| BenchError::Child(format!("pet JSON is not a Pet: {}", error.message())))
}

/// The ceiling: hyper's HTTP/1.1 connection driver and a handler that only checks the path.
async fn serve_hyper(body: Bytes) -> Result<SocketAddr, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|error| BenchError::Child(error.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|error| BenchError::Child(error.to_string()))?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let response = if request.method() == hyper::Method::GET
                        && request.uri().path() == PET_PATH
                    {
                        Response::builder()
                            .header(
                                header::CONTENT_TYPE,
                                HeaderValue::from_static("application/json"),
                            )
                            .body(Full::new(body.clone()))
                    } else {
                        Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Full::new(Bytes::new()))
                    };
                    async move { response }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// poem-openapi as its documentation shows it: typed path parameter in, `Json<Pet>` out.
struct DefaultApi {
    template: Pet,
}

#[OpenApi]
impl DefaultApi {
    /// Builds the pet per request (the clone allocates every string, as building it from a
    /// database row would) and lets poem-openapi serialize it.
    #[oai(path = "/api/v3/pet/:petId", method = "get")]
    async fn get_pet_by_id(&self, pet_id: Path<i64>) -> Json<Pet> {
        let mut pet = self.template.clone();
        pet.id = Some(pet_id.0);
        Json(pet)
    }
}

async fn serve_poem_default(template: Pet) -> Result<SocketAddr, BenchError> {
    let service = OpenApiService::new(DefaultApi { template }, "bench", "1");
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .map_err(|error| BenchError::Child(error.to_string()))?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|addr| addr.as_socket_addr().copied())
        .ok_or_else(|| BenchError::Child("the listener has no socket address".to_owned()))?;
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(service));
    Ok(addr)
}

// ---------------------------------------------------------------------------------------------
// Parent side: start the servers, check they agree, drive them, report.

/// A server child process and the target it runs; stopped (stdin closed, then killed if it
/// lingers) when dropped.
struct TargetServer {
    target: Target,
    process: child::ChildServer,
}

impl TargetServer {
    fn start(target: Target, pet_json: Option<&Bytes>) -> Result<Self, BenchError> {
        let start_error = |reason: String| BenchError::Start {
            role: target.role(),
            reason,
        };
        let mut env = Vec::new();
        if let Some(json) = pet_json {
            let json = std::str::from_utf8(json)
                .map_err(|_| start_error("pet 1's JSON is not UTF-8".to_owned()))?;
            env.push((PET_JSON_ENV, json));
        }
        let process = child::ChildServer::spawn(ROLE_ENV, target.role(), &env, STOP_WAIT)
            .map_err(start_error)?;
        Ok(TargetServer { target, process })
    }

    fn addr(&self) -> SocketAddr {
        self.process.addr
    }

    /// CPU time (user + system, all threads) the process has used so far.
    fn cpu_time(&self) -> Option<Duration> {
        self.process.cpu_time()
    }
}

/// One target's figures for one round.
#[derive(Debug, Clone, Copy)]
struct Sample {
    requests_per_second: f64,
    requests: u64,
    server_cpu: Option<Duration>,
}

/// What one connection saw.
#[derive(Debug, Default)]
struct ConnectionStats {
    measured: u64,
    failures: u64,
    first_failure: Option<String>,
}

impl ConnectionStats {
    fn fail(&mut self, reason: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(reason);
    }
}

/// A request that did not produce the expected answer.
enum Failure {
    /// Wrong status or body; the connection is still usable.
    Response(String),
    /// The connection is gone.
    Connection(String),
}

const WARMING_UP: u8 = 0;
const MEASURING: u8 = 1;
const STOPPING: u8 = 2;

fn parent_main(plan: Plan) -> Result<bool, BenchError> {
    // The load generator's own runtime, sized to the machine like the servers'.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;

    let ours = TargetServer::start(Target::Ours, None)?;
    let pet_json = runtime
        .block_on(fetch(ours.addr()))
        .and_then(|(status, body)| {
            if status == StatusCode::OK {
                Ok(body)
            } else {
                Err(format!(
                    "GET {PET_PATH} answered {status}; is the demo data loaded?"
                ))
            }
        });
    let pet_json = pet_json.map_err(|reason| BenchError::Probe {
        role: Target::Ours.role(),
        reason,
    })?;
    let hyper = TargetServer::start(Target::Hyper, Some(&pet_json))?;
    let poem_default = TargetServer::start(Target::PoemDefault, Some(&pet_json))?;
    let servers = [hyper, poem_default, ours];

    for server in &servers {
        let probe = |reason: String| BenchError::Probe {
            role: server.target.role(),
            reason,
        };
        let (status, body) = runtime.block_on(fetch(server.addr())).map_err(probe)?;
        // The same document in as many bytes: key order is the serializer's (poem-openapi's
        // `Json` writes a map, ours the schema's property order), the content is what counts.
        if status != StatusCode::OK
            || body.len() != pet_json.len()
            || serde_json::from_slice::<serde_json::Value>(&body).ok()
                != serde_json::from_slice::<serde_json::Value>(&pet_json).ok()
        {
            return Err(probe(format!(
                "GET {PET_PATH} answered {status} with {} bytes, not 200 with our {} bytes: {}",
                body.len(),
                pet_json.len(),
                String::from_utf8_lossy(&body)
            )));
        }
    }

    println!(
        "{}: {} keep-alive HTTP/1.1 connections, {} round(s) × {} targets × {:?} \
         (after {:?} warm-up each), {}-byte body",
        plan.name,
        plan.connections,
        plan.rounds,
        servers.len(),
        plan.measure,
        plan.warm_up,
        pet_json.len()
    );
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); servers.len()];
    let mut all_ok = true;
    for round in 0..plan.rounds {
        for offset in 0..servers.len() {
            let index = (round + offset) % servers.len();
            let server = &servers[index];
            let (sample, stats) = runtime.block_on(drive(server, plan, pet_json.len()));
            if stats.failures > 0 {
                all_ok = false;
                eprintln!(
                    "{} round {}: {} failed request(s), first: {}",
                    server.target.label(),
                    round + 1,
                    stats.failures,
                    stats.first_failure.as_deref().unwrap_or("?")
                );
            }
            samples[index].push(sample);
        }
    }

    print!(
        "{}",
        Report {
            plan,
            servers: &servers,
            samples: &samples
        }
    );
    Ok(all_ok)
}

/// One request on a fresh connection, body collected: to learn and compare the answers.
async fn fetch(addr: SocketAddr) -> Result<(StatusCode, Bytes), String> {
    let mut sender = connect(addr).await?;
    let response = sender
        .send_request(pet_request(&Uri::from_static(PET_PATH)))
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| error.to_string())?
        .to_bytes();
    Ok((status, body))
}

async fn connect(
    addr: SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("handshake: {error}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

fn pet_request(uri: &Uri) -> Request<Empty<Bytes>> {
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = uri.clone();
    request
        .headers_mut()
        .insert(header::HOST, HeaderValue::from_static("127.0.0.1"));
    request
}

/// Warms up, then measures one target with `plan.connections` closed-loop connections.
async fn drive(server: &TargetServer, plan: Plan, body_len: usize) -> (Sample, ConnectionStats) {
    let phase = Arc::new(AtomicU8::new(WARMING_UP));
    let tasks: Vec<_> = (0..plan.connections)
        .map(|_| tokio::spawn(connection_loop(server.addr(), Arc::clone(&phase), body_len)))
        .collect();
    tokio::time::sleep(plan.warm_up).await;

    let cpu_before = server.cpu_time();
    let started = Instant::now();
    phase.store(MEASURING, Ordering::Relaxed);
    tokio::time::sleep(plan.measure).await;
    phase.store(STOPPING, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cpu_after = server.cpu_time();

    let mut total = ConnectionStats::default();
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(stats)) => {
                total.measured += stats.measured;
                total.failures += stats.failures;
                if let Some(reason) = stats.first_failure {
                    total.first_failure.get_or_insert(reason);
                }
            }
            Ok(Err(error)) => total.fail(format!("connection task failed: {error}")),
            Err(_) => total.fail("a request did not finish within 10 s".to_owned()),
        }
    }
    let sample = Sample {
        requests_per_second: total.measured as f64 / elapsed.as_secs_f64(),
        requests: total.measured,
        server_cpu: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| after.saturating_sub(before)),
    };
    (sample, total)
}

async fn connection_loop(
    addr: SocketAddr,
    phase: Arc<AtomicU8>,
    body_len: usize,
) -> ConnectionStats {
    let mut stats = ConnectionStats::default();
    let mut sender = match connect(addr).await {
        Ok(sender) => sender,
        Err(reason) => {
            stats.fail(reason);
            return stats;
        }
    };
    let uri = Uri::from_static(PET_PATH);
    while phase.load(Ordering::Relaxed) != STOPPING {
        match request_once(&mut sender, &uri, body_len).await {
            Ok(()) => {
                if phase.load(Ordering::Relaxed) == MEASURING {
                    stats.measured += 1;
                }
            }
            Err(Failure::Response(reason)) => stats.fail(reason),
            Err(Failure::Connection(reason)) => {
                stats.fail(reason);
                break;
            }
        }
    }
    stats
}

async fn request_once(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    uri: &Uri,
    body_len: usize,
) -> Result<(), Failure> {
    let connection_lost = |error: hyper::Error| Failure::Connection(error.to_string());
    sender.ready().await.map_err(connection_lost)?;
    let response = sender
        .send_request(pet_request(uri))
        .await
        .map_err(connection_lost)?;
    let status = response.status();
    let mut body = response.into_body();
    let mut received = 0;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.map_err(connection_lost)?.data_ref() {
            received += data.len();
        }
    }
    if status != StatusCode::OK {
        return Err(Failure::Response(format!("status {status}")));
    }
    if received != body_len {
        return Err(Failure::Response(format!(
            "body of {received} bytes, expected {body_len}"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Report.

struct Report<'a> {
    plan: Plan,
    servers: &'a [TargetServer],
    samples: &'a [Vec<Sample>],
}

impl Report<'_> {
    fn median_rps(&self, target: Target) -> f64 {
        self.servers
            .iter()
            .position(|server| server.target == target)
            .map(|index| {
                let rps: Vec<f64> = self.samples[index]
                    .iter()
                    .map(|sample| sample.requests_per_second)
                    .collect();
                median(&rps)
            })
            .unwrap_or(0.0)
    }

    /// Server CPU per request over all rounds, in microseconds.
    fn cpu_per_request(&self, target: Target) -> Option<f64> {
        let index = self
            .servers
            .iter()
            .position(|server| server.target == target)?;
        let samples = &self.samples[index];
        let cpu: Option<Duration> = samples.iter().map(|sample| sample.server_cpu).sum();
        let requests: u64 = samples.iter().map(|sample| sample.requests).sum();
        (requests > 0).then(|| cpu.map(|cpu| cpu.as_secs_f64() * 1e6 / requests as f64))?
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<22}", "req/s")?;
        for round in 1..=self.plan.rounds {
            write!(f, "{:>10}", format!("round {round}"))?;
        }
        writeln!(f, "{:>10}{:>16}", "median", "server µs/req")?;
        for (server, samples) in self.servers.iter().zip(self.samples) {
            write!(f, "{:<22}", server.target.label())?;
            for sample in samples {
                write!(f, "{:>10.0}", sample.requests_per_second)?;
            }
            let cpu = self
                .cpu_per_request(server.target)
                .map_or_else(|| "-".to_owned(), |cpu| format!("{cpu:.1}"));
            writeln!(f, "{:>10.0}{:>16}", self.median_rps(server.target), cpu)?;
        }
        let ratio = |a: Target, b: Target| {
            let denominator = self.median_rps(b);
            if denominator > 0.0 {
                self.median_rps(a) / denominator
            } else {
                0.0
            }
        };
        let cost_ratio = |a: Target, b: Target| {
            self.cpu_per_request(a)
                .zip(self.cpu_per_request(b))
                .filter(|(a, _)| *a > 0.0)
                .map_or_else(|| "-".to_owned(), |(a, b)| format!("{:.2}×", b / a))
        };
        writeln!(
            f,
            "ratios of median req/s (server CPU efficiency in brackets):\n  \
             ours / hyper        {:.2}× ({})   target ≥ 0.60×\n  \
             poem-default / hyper {:.2}× ({})\n  \
             ours / poem-default {:.2}× ({})",
            ratio(Target::Ours, Target::Hyper),
            cost_ratio(Target::Ours, Target::Hyper),
            ratio(Target::PoemDefault, Target::Hyper),
            cost_ratio(Target::PoemDefault, Target::Hyper),
            ratio(Target::Ours, Target::PoemDefault),
            cost_ratio(Target::Ours, Target::PoemDefault),
        )
    }
}
