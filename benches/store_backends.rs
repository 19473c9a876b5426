//! The memory store against the Redis store, and the Redis store with and without waiting for
//! a replica, in one run: requests per second, latency and CPU per request of a read
//! (`getPetById`) and of two writes (`addPet`, `placeOrder`).
//!
//! The parent starts a private `redis-server` with the production durability setting (an
//! append-only file fsynced every second) and a replica of it (the same setting), and three
//! petstore-ws servers, each in a **child process** (see `support/child.rs`): one with the
//! default memory store, one with `redis_url` set and a key prefix of its own, and one like it
//! (another prefix) that also waits for the replica after every write
//! (`PETSTORE_REDIS_WAIT_REPLICAS=1`), all signing tokens with one generated key (a node on
//! Redis refuses to start without a configured key). All load the demo data and run the
//! production defaults (tracing at `info`, metrics, every check on the request path), except
//! that the load generator's address is exempt from the per-user rate limit and login attempts
//! are not throttled: one client address sends everything here. Both Redis targets write to
//! the same primary, so both pay for streaming to the replica; only the wait differs.
//!
//! With `--rate-limited` the load generator's address is not exempt: every request is counted
//! by the request limiter, as a production client's is (the in-process one on the memory
//! target, the cluster-wide one in Redis on the others), under a quota raised so far that
//! nothing is refused. That is what a node on Redis pays per request for cluster-wide limits.
//!
//! One in-process load generator (`support/http_load.rs`) keeps keep-alive connections busy in
//! a closed loop. Targets are interleaved round by round with the order rotated, so drift on a
//! shared machine hits both alike; the report compares medians of the rounds.
//!
//! * **getPetById**: `GET /api/v3/pet/1`; every answer must be the bytes the target answered
//!   when probed, and the two targets' answers must be the same JSON.
//! * **addPet**: `POST /api/v3/pet` as the demo administrator: the set-up phase of placeOrder,
//!   measured (one window per target, not interleaved, 16 connections).
//! * **placeOrder**: `POST /api/v3/store/order` as the demo customer (bearer token). An order
//!   reserves its pet, so a set-up phase first creates a pool of available pets per target
//!   with `addPet` as the demo administrator, and each order takes the next pet of the round's
//!   share. When a share runs dry the round ends early and its rate is computed over the time
//!   actually measured (the report says so). Every answer must be a 200 order for its pet,
//!   `placed`.
//!
//! Besides requests per second (which includes the load generator's own cost on the shared
//! cores), the report gives latency percentiles over every measured request of all rounds, the
//! server process's CPU time per request (from `/proc`), and for the Redis target the Redis
//! server's CPU time per request (from `INFO cpu`).
//!
//! The run fails (non-zero exit) on any wrong answer, and when the Redis target left no key
//! in Redis (it would be measuring the memory store twice).
//!
//! Run with `cargo bench --bench store_backends` (about 3 minutes), or
//! `cargo bench --bench store_backends -- --rate-limited`. Without `--bench` on the command line
//! (as under `cargo test --all-targets`) it does a smoke run of the same code.

use petstore_testkit::bench::{http_load, node, stats};
use petstore_testkit::child;
use std::{
    net::SocketAddr,
    num::NonZeroU32,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Full;
use http_load::{Sample, Window, Workload};
use hyper::{Method, Request, StatusCode};
use parking_lot::Mutex;
use petstore_testkit::redis::{LocalRedis, Persistence};
use petstore_ws::{
    config::Config,
    server,
    store::{DEMO_ADMIN_PASSWORD, DEMO_ADMIN_USERNAME, DEMO_PASSWORD, DEMO_USERNAME},
    telemetry,
};
use serde_json::{Value, json};
use stats::{median, ms, percentile, ratio};

/// The server binary's allocator (`src/main.rs`), for every server this benchmark runs, ours and
/// the bare ones alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Environment variable that turns this binary into one of the servers.
const ROLE_ENV: &str = "STORE_BENCH_ROLE";
/// Set (to `1`) for the servers of a `--rate-limited` run.
const RATE_LIMITED_ENV: &str = "STORE_BENCH_RATE_LIMITED";
/// How long a server gets to exit once its stdin closes, before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(8);
/// The read every `getPetById` connection repeats.
const PET_PATH: &str = "/api/v3/pet/1";
/// Connections creating the pool of pets.
const SET_UP_CONNECTIONS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Plan {
    name: &'static str,
    rounds: usize,
    read: Window,
    write: Window,
    /// Pets created per target and round for `placeOrder` (warm-up included).
    pets_per_round: usize,
}

const FULL_RUN: Plan = Plan {
    name: "memory vs Redis store",
    rounds: 3,
    read: Window {
        connections: 32,
        warm_up: Duration::from_secs(1),
        measure: Duration::from_secs(5),
    },
    write: Window {
        connections: 32,
        warm_up: Duration::from_millis(500),
        measure: Duration::from_secs(3),
    },
    pets_per_round: 20_000,
};

const SMOKE_RUN: Plan = Plan {
    name: "memory vs Redis store smoke run (no --bench: checks the harness, figures mean nothing)",
    rounds: 1,
    read: Window {
        connections: 4,
        warm_up: Duration::from_millis(100),
        measure: Duration::from_millis(300),
    },
    write: Window {
        connections: 4,
        warm_up: Duration::from_millis(50),
        measure: Duration::from_millis(300),
    },
    pets_per_round: 200,
};

/// The stores compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Memory,
    Redis,
    /// The Redis store, each write confirmed by the replica (`WAIT 1`) before it is answered.
    RedisWait,
}

impl Target {
    const ALL: [Target; 3] = [Target::Memory, Target::Redis, Target::RedisWait];

    fn role(self) -> &'static str {
        match self {
            Target::Memory => "memory",
            Target::Redis => "redis",
            Target::RedisWait => "redis-wait",
        }
    }

    fn on_redis(self) -> bool {
        self != Target::Memory
    }

    fn from_role(role: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|target| target.role() == role)
    }

    fn label(self) -> &'static str {
        match self {
            Target::Memory => "memory store",
            Target::Redis => "Redis store (AOF)",
            Target::RedisWait => "Redis + WAIT 1",
        }
    }
}

fn main() -> ExitCode {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        return match child_main(&role) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("store_backends ({role}): {error}");
                ExitCode::FAILURE
            }
        };
    }
    let plan = if std::env::args().any(|arg| arg == "--bench") {
        FULL_RUN
    } else {
        SMOKE_RUN
    };
    let rate_limited = std::env::args().any(|arg| arg == "--rate-limited");
    match parent_main(plan, rate_limited) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("store_backends: some requests failed (see above)");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("store_backends: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child side: one server per process, alive until its stdin closes.

/// The configuration of a server under load from one client address: `Config::defaults()`
/// (which reads the `PETSTORE_*` environment the parent set: the Redis URL and prefix), on a
/// free loopback port, the load generator's address exempt from the rate limit and login
/// attempts unthrottled.
fn child_config() -> Result<Config, String> {
    let mut config = Config::defaults();
    config.bind = [127, 0, 0, 1].into();
    config.port = 0;
    if std::env::var_os(RATE_LIMITED_ENV).is_some() {
        // Counted like any client, never refused.
        config.rate_limit_per_minute = NonZeroU32::MAX;
        config.rate_limit_burst = NonZeroU32::MAX;
    } else {
        config.rate_limit_exempt = vec![
            "127.0.0.1/32"
                .parse()
                .map_err(|error| format!("loopback network: {error}"))?,
        ];
    }
    config.login_attempts_per_minute = NonZeroU32::MAX;
    config.login_attempts_per_ip_per_minute = NonZeroU32::MAX;
    config.shutdown_grace_secs = 2;
    Ok(config)
}

fn child_main(role: &str) -> Result<(), String> {
    let target = Target::from_role(role).ok_or_else(|| format!("unknown role `{role}`"))?;
    let config = child_config()?;
    if target.on_redis() != config.redis_url.is_some() {
        return Err(format!(
            "the {} target needs {} set by the parent",
            target.label(),
            node::REDIS_URL_ENV
        ));
    }
    // tokio's default multi-threaded runtime, as `#[tokio::main]` builds it for the binary.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot build the runtime: {error}"))?;
    runtime.block_on(async move {
        telemetry::init(&config)?;
        let running = server::spawn(config)
            .await
            .map_err(|error| format!("petstore-ws does not start: {error}"))?;
        child::announce(running.local_addr())?;
        // The parent closes our stdin when it is done (or dies): that is the signal to stop.
        let _ = tokio::task::spawn_blocking(|| {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        })
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(5), running.shutdown()).await;
        Ok::<(), String>(())
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Workloads.

/// `GET /api/v3/pet/1`, answered with the bytes seen when the target was probed.
struct GetPet {
    body: Bytes,
}

impl Workload for GetPet {
    type Expect = ();

    fn next(&self) -> Option<(Request<Full<Bytes>>, ())> {
        http_load::request(Method::GET, PET_PATH, None, None)
            .ok()
            .map(|request| (request, ()))
    }

    fn check(&self, (): (), status: StatusCode, body: &[u8]) -> Result<(), String> {
        if status != StatusCode::OK {
            return Err(format!("getPetById: status {status}"));
        }
        if body != self.body {
            return Err(format!(
                "getPetById: a body of {} bytes unlike the probe's {}",
                body.len(),
                self.body.len()
            ));
        }
        Ok(())
    }
}

/// `addPet` as the administrator until `count` pets exist; the ids are collected.
struct AddPets {
    token: String,
    count: usize,
    next: AtomicUsize,
    created: Mutex<Vec<i64>>,
}

impl Workload for AddPets {
    type Expect = ();

    fn next(&self) -> Option<(Request<Full<Bytes>>, ())> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        if index >= self.count {
            return None;
        }
        let body = json!({
            "name": format!("order-pool-{index}"),
            "photoUrls": [],
            "status": "available",
        });
        let body = Bytes::from(body.to_string());
        http_load::request(Method::POST, "/api/v3/pet", Some(&self.token), Some(body))
            .ok()
            .map(|request| (request, ()))
    }

    fn check(&self, (): (), status: StatusCode, body: &[u8]) -> Result<(), String> {
        let pet = json_answer("addPet", status, body)?;
        let id = pet["id"]
            .as_i64()
            .ok_or_else(|| format!("addPet: no id in {pet}"))?;
        if pet["status"] != "available" {
            return Err(format!("addPet: pet {id} is not available: {pet}"));
        }
        self.created.lock().push(id);
        Ok(())
    }
}

/// `placeOrder` as the customer, each for the next pet of a share of the pool.
struct PlaceOrders {
    token: String,
    pets: Vec<i64>,
    next: AtomicUsize,
}

impl Workload for PlaceOrders {
    /// The pet ordered.
    type Expect = i64;

    fn next(&self) -> Option<(Request<Full<Bytes>>, i64)> {
        let pet = *self.pets.get(self.next.fetch_add(1, Ordering::Relaxed))?;
        let body = json!({ "petId": pet, "quantity": 1, "status": "placed" });
        let body = Bytes::from(body.to_string());
        http_load::request(
            Method::POST,
            "/api/v3/store/order",
            Some(&self.token),
            Some(body),
        )
        .ok()
        .map(|request| (request, pet))
    }

    fn check(&self, pet: i64, status: StatusCode, body: &[u8]) -> Result<(), String> {
        let order = json_answer("placeOrder", status, body)?;
        if order["petId"] != pet || order["status"] != "placed" || !order["id"].is_i64() {
            return Err(format!("placeOrder for pet {pet} answered {order}"));
        }
        Ok(())
    }
}

/// The JSON of a 200 answer; anything else is a failure naming the operation.
fn json_answer(operation: &str, status: StatusCode, body: &[u8]) -> Result<Value, String> {
    if status != StatusCode::OK {
        return Err(format!(
            "{operation}: status {status}: {}",
            String::from_utf8_lossy(body)
        ));
    }
    serde_json::from_slice(body).map_err(|error| format!("{operation}: not JSON: {error}"))
}

// ---------------------------------------------------------------------------------------------
// Parent side.

/// A server child and what the load generator knows about it.
struct Server {
    target: Target,
    process: child::ChildServer,
    pet_json: Bytes,
    customer_token: String,
    admin_token: String,
}

impl Server {
    fn addr(&self) -> SocketAddr {
        self.process.addr
    }
}

/// Figures of one operation: per target, one sample per round.
struct Operation {
    name: &'static str,
    samples: Vec<(Target, Vec<Sample>)>,
}

fn parent_main(plan: Plan, rate_limited: bool) -> Result<bool, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot build the load generator's runtime: {error}"))?;
    let redis = LocalRedis::start(Persistence::AppendOnly)
        .map_err(|error| format!("cannot start a private redis-server: {error}"))?;
    let _replica = LocalRedis::start_replica(Persistence::AppendOnly, redis.port())
        .map_err(|error| format!("cannot start a replica: {error}"))?;
    let redis_port = redis.port();
    let redis_url = redis.url();
    let prefix = node::fresh_prefix("store");
    let wait_prefix = node::fresh_prefix("store-wait");
    // A node on Redis must be given its signing key; the memory target gets the same.
    let key = node::SigningKey::generate()?;
    let key_path = key.env_value()?;

    let mut servers = Vec::new();
    for target in Target::ALL {
        let mut env: Vec<(&str, &str)> = match target {
            Target::Memory => vec![(node::JWT_KEY_ENV, key_path)],
            Target::Redis => vec![
                (node::JWT_KEY_ENV, key_path),
                (node::REDIS_URL_ENV, &redis_url),
                (node::REDIS_PREFIX_ENV, &prefix),
            ],
            Target::RedisWait => vec![
                (node::JWT_KEY_ENV, key_path),
                (node::REDIS_URL_ENV, &redis_url),
                (node::REDIS_PREFIX_ENV, &wait_prefix),
                ("PETSTORE_REDIS_WAIT_REPLICAS", "1"),
            ],
        };
        if rate_limited {
            env.push((RATE_LIMITED_ENV, "1"));
        }
        let process = child::ChildServer::spawn(ROLE_ENV, target.role(), &env, STOP_WAIT)
            .map_err(|reason| format!("cannot start the {} server: {reason}", target.label()))?;
        let server = runtime
            .block_on(prepare(target, process))
            .map_err(|reason| format!("{}: {reason}", target.label()))?;
        servers.push(server);
    }
    // The demo data alone puts keys into Redis when the Redis store is in use.
    let keys = node::redis_key_count(redis_port);
    if keys.unwrap_or(0) == 0 {
        return Err(format!(
            "the Redis target wrote no key to Redis (DBSIZE {keys:?}): is `redis_url` wired in \
             the server?"
        ));
    }
    let same_pet = servers
        .iter()
        .map(|server| serde_json::from_slice::<Value>(&server.pet_json).ok())
        .collect::<Vec<_>>();
    if same_pet.iter().any(Option::is_none) || same_pet.windows(2).any(|pair| pair[0] != pair[1]) {
        return Err(format!(
            "the targets answer {PET_PATH} differently: {:?}",
            servers
                .iter()
                .map(|server| String::from_utf8_lossy(&server.pet_json))
                .collect::<Vec<_>>()
        ));
    }

    let server_cpu: Vec<_> = servers
        .iter()
        .map(|server| move || server.process.cpu_time())
        .collect();
    let redis_cpu = move || node::redis_cpu_time(redis_port);
    let meters = |index: usize| -> Vec<http_load::Meter<'_>> {
        match servers[index].target {
            Target::Memory => vec![&server_cpu[index]],
            Target::Redis | Target::RedisWait => vec![&server_cpu[index], &redis_cpu],
        }
    };

    println!(
        "{}: getPetById with {} connections, {} round(s) × {} targets × {:?} (+{:?} warm-up); \
         placeOrder with {} connections, up to {:?} (+{:?} warm-up), {} pets per target and round",
        plan.name,
        plan.read.connections,
        plan.rounds,
        servers.len(),
        plan.read.measure,
        plan.read.warm_up,
        plan.write.connections,
        plan.write.measure,
        plan.write.warm_up,
        plan.pets_per_round,
    );
    println!(
        "request limiter: {}",
        if rate_limited {
            "every request counted (quota raised: nothing refused)"
        } else {
            "the load generator's address exempt"
        }
    );

    let mut all_ok = true;
    let mut report_failures = |operation: &str, target: Target, round: usize, sample: &Sample| {
        if sample.failures > 0 {
            all_ok = false;
            eprintln!(
                "{operation} on the {} round {}: {} failed request(s), first: {}",
                target.label(),
                round + 1,
                sample.failures,
                sample.first_failure.as_deref().unwrap_or("?")
            );
        }
    };

    // getPetById, interleaved.
    let mut reads: Vec<Vec<Sample>> = servers.iter().map(|_| Vec::new()).collect();
    for round in 0..plan.rounds {
        for offset in 0..servers.len() {
            let index = (round + offset) % servers.len();
            let server = &servers[index];
            let workload = Arc::new(GetPet {
                body: server.pet_json.clone(),
            });
            let sample = runtime.block_on(http_load::drive(
                server.addr(),
                plan.read,
                workload,
                &meters(index),
            ));
            report_failures("getPetById", server.target, round, &sample);
            reads[index].push(sample);
        }
    }

    // placeOrder: the pool first (addPet, measured), then the rounds, interleaved.
    let mut pools = Vec::new();
    let mut adds = Vec::new();
    for (index, server) in servers.iter().enumerate() {
        let started = Instant::now();
        let (pets, sample) = runtime.block_on(create_pets(
            server,
            plan.pets_per_round * plan.rounds,
            &meters(index),
        ))?;
        println!(
            "{}: {} pets created in {:.1} s",
            server.target.label(),
            pets.len(),
            started.elapsed().as_secs_f64()
        );
        pools.push(pets);
        adds.push(vec![sample]);
    }
    let mut writes: Vec<Vec<Sample>> = servers.iter().map(|_| Vec::new()).collect();
    for round in 0..plan.rounds {
        for offset in 0..servers.len() {
            let index = (round + offset) % servers.len();
            let server = &servers[index];
            let share = round * plan.pets_per_round..(round + 1) * plan.pets_per_round;
            let workload = Arc::new(PlaceOrders {
                token: server.customer_token.clone(),
                pets: pools[index].get(share).unwrap_or_default().to_vec(),
                next: AtomicUsize::new(0),
            });
            let sample = runtime.block_on(http_load::drive(
                server.addr(),
                plan.write,
                workload,
                &meters(index),
            ));
            report_failures("placeOrder", server.target, round, &sample);
            writes[index].push(sample);
        }
    }

    // The waiting target must really have waited, and been answered by the replica.
    for server in servers
        .iter()
        .filter(|server| server.target == Target::RedisWait)
    {
        let (confirmed, unconfirmed) = runtime.block_on(replication_counts(server.addr()))?;
        println!(
            "{}: {confirmed} writes confirmed by the replica, {unconfirmed} not",
            server.target.label()
        );
        if confirmed == 0 || unconfirmed > 0 {
            all_ok = false;
            eprintln!(
                "the {} target did not wait for its replica",
                server.target.label()
            );
        }
    }

    let targets: Vec<Target> = servers.iter().map(|server| server.target).collect();
    for operation in [
        Operation {
            name: "getPetById",
            samples: targets.iter().copied().zip(reads).collect(),
        },
        Operation {
            name: "addPet",
            samples: targets.iter().copied().zip(adds).collect(),
        },
        Operation {
            name: "placeOrder",
            samples: targets.iter().copied().zip(writes).collect(),
        },
    ] {
        print_operation(&operation);
    }
    Ok(all_ok)
}

/// Probes a started server: pet 1's JSON, and tokens of the demo customer and administrator.
async fn prepare(target: Target, process: child::ChildServer) -> Result<Server, String> {
    let addr = process.addr;
    let request = http_load::request(Method::GET, PET_PATH, None, None)?;
    let (status, pet_json) = http_load::fetch(addr, request).await?;
    if status != StatusCode::OK {
        return Err(format!(
            "GET {PET_PATH} answered {status}; is the demo data loaded?"
        ));
    }
    Ok(Server {
        target,
        customer_token: token(addr, DEMO_USERNAME, DEMO_PASSWORD).await?,
        admin_token: token(addr, DEMO_ADMIN_USERNAME, DEMO_ADMIN_PASSWORD).await?,
        process,
        pet_json,
    })
}

/// `petstore_redis_replication_total` of the server at `addr`: (confirmed, unconfirmed).
async fn replication_counts(addr: SocketAddr) -> Result<(u64, u64), String> {
    let request = http_load::request(Method::GET, "/metrics", None, None)?;
    let (status, body) = http_load::fetch(addr, request).await?;
    if status != StatusCode::OK {
        return Err(format!("GET /metrics answered {status}"));
    }
    let text = String::from_utf8_lossy(&body);
    let count = |result: &str| -> u64 {
        let label = format!("result=\"{result}\"");
        text.lines()
            .find(|line| {
                line.starts_with("petstore_redis_replication_total{") && line.contains(&label)
            })
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
            .map_or(0, |value| value as u64)
    };
    Ok((count("confirmed"), count("unconfirmed")))
}

/// An access token (`createToken`).
async fn token(addr: SocketAddr, username: &str, password: &str) -> Result<String, String> {
    let body = json!({ "username": username, "password": password });
    let request = http_load::request(
        Method::POST,
        "/api/v3/auth/token",
        None,
        Some(Bytes::from(body.to_string())),
    )?;
    let (status, body) = http_load::fetch(addr, request).await?;
    let tokens = json_answer("createToken", status, &body)?;
    tokens["accessToken"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("createToken for {username}: no accessToken"))
}

/// Creates `count` available pets with `addPet`, in creation order per connection; returns
/// them and the measurement of their creation.
async fn create_pets(
    server: &Server,
    count: usize,
    meters: &[http_load::Meter<'_>],
) -> Result<(Vec<i64>, Sample), String> {
    let workload = Arc::new(AddPets {
        token: server.admin_token.clone(),
        count,
        next: AtomicUsize::new(0),
        created: Mutex::new(Vec::with_capacity(count)),
    });
    let window = Window {
        connections: SET_UP_CONNECTIONS,
        warm_up: Duration::ZERO,
        measure: Duration::from_secs(600),
    };
    let sample = http_load::drive(server.addr(), window, Arc::clone(&workload), meters).await;
    if sample.failures > 0 {
        return Err(format!(
            "{}: {} addPet request(s) failed, first: {}",
            server.target.label(),
            sample.failures,
            sample.first_failure.as_deref().unwrap_or("?")
        ));
    }
    let created = std::mem::take(&mut *workload.created.lock());
    if created.len() != count {
        return Err(format!(
            "{}: {} of {count} pets created",
            server.target.label(),
            created.len()
        ));
    }
    Ok((created, sample))
}

// ---------------------------------------------------------------------------------------------
// Report.

/// The figures of one target for one operation, over its rounds.
struct Summary {
    median_rate: f64,
    p50_us: u32,
    p99_us: u32,
    server_us: Option<f64>,
    redis_us: Option<f64>,
}

fn summarize(samples: &[Sample]) -> Summary {
    let rates: Vec<f64> = samples.iter().map(Sample::rate).collect();
    let mut latencies: Vec<u32> = samples
        .iter()
        .flat_map(|sample| sample.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let requests: u64 = samples.iter().map(|sample| sample.requests).sum();
    let per_request = |meter: usize| -> Option<f64> {
        let cpu: Option<Duration> = samples
            .iter()
            .map(|sample| sample.cpu.get(meter).copied().flatten())
            .sum();
        cpu.filter(|_| requests > 0)
            .map(|cpu| cpu.as_secs_f64() * 1e6 / requests as f64)
    };
    Summary {
        median_rate: median(&rates),
        p50_us: percentile(&latencies, 50.0),
        p99_us: percentile(&latencies, 99.0),
        server_us: per_request(0),
        redis_us: per_request(1),
    }
}

fn micros(figure: Option<f64>) -> String {
    figure.map_or_else(|| "-".to_owned(), |figure| format!("{figure:.1}"))
}

fn print_operation(operation: &Operation) {
    let rounds = operation
        .samples
        .first()
        .map_or(0, |(_, samples)| samples.len());
    println!();
    print!("{:<20}", format!("{} req/s", operation.name));
    for round in 1..=rounds {
        print!("{:>10}", format!("round {round}"));
    }
    println!(
        "{:>10}{:>9}{:>9}{:>12}{:>12}",
        "median", "p50 ms", "p99 ms", "server µs", "Redis µs"
    );
    let mut summaries = Vec::new();
    for (target, samples) in &operation.samples {
        print!("{:<20}", target.label());
        for sample in samples {
            let dry = if sample.ran_dry { "*" } else { "" };
            print!("{:>10}", format!("{:.0}{dry}", sample.rate()));
        }
        let summary = summarize(samples);
        println!(
            "{:>10.0}{:>9}{:>9}{:>12}{:>12}",
            summary.median_rate,
            ms(u64::from(summary.p50_us)),
            ms(u64::from(summary.p99_us)),
            micros(summary.server_us),
            micros(summary.redis_us),
        );
        summaries.push((*target, summary));
    }
    if operation
        .samples
        .iter()
        .flat_map(|(_, samples)| samples)
        .any(|sample| sample.ran_dry)
    {
        println!(
            "  * the round's pets ran out before the window's end: rate over the time measured"
        );
    }
    let find = |target: Target| {
        summaries
            .iter()
            .find(|(candidate, _)| *candidate == target)
            .map(|(_, summary)| summary)
    };
    if let (Some(redis), Some(waiting)) = (find(Target::Redis), find(Target::RedisWait)) {
        println!(
            "  WAIT 1 / no wait: {} req/s, {} p50, {} p99 latency, {} server CPU per request",
            ratio(waiting.median_rate, redis.median_rate),
            ratio(f64::from(waiting.p50_us), f64::from(redis.p50_us)),
            ratio(f64::from(waiting.p99_us), f64::from(redis.p99_us)),
            ratio(
                waiting.server_us.unwrap_or(0.0),
                redis.server_us.unwrap_or(0.0)
            ),
        );
    }
    if let (Some(memory), Some(redis)) = (find(Target::Memory), find(Target::Redis)) {
        let redis_total = redis
            .server_us
            .zip(redis.redis_us)
            .map(|(server, redis)| server + redis);
        println!(
            "  Redis / memory: {} req/s, {} p50, {} p99 latency, {} server CPU per request \
             ({} with Redis's own)",
            ratio(redis.median_rate, memory.median_rate),
            ratio(f64::from(redis.p50_us), f64::from(memory.p50_us)),
            ratio(f64::from(redis.p99_us), f64::from(memory.p99_us)),
            ratio(
                redis.server_us.unwrap_or(0.0),
                memory.server_us.unwrap_or(0.0)
            ),
            ratio(redis_total.unwrap_or(0.0), memory.server_us.unwrap_or(0.0)),
        );
    }
}
