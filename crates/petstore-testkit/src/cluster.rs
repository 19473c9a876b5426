//! A cluster in real processes, for the scale-out suites (`tests/cluster/`): a private Redis with an append-only file (killable and restartable on the
//! same port and data) — or a Redis deployment the test started itself (a Sentinel set, a Redis
//! Cluster) — N `petstore-ws` nodes started from the binary as an operator would, and
//! optionally HAProxy in front of them.
//!
//! HAProxy runs `deploy/haproxy/haproxy.cfg` itself: the harness only points its listeners and
//! its `server` lines at the loopback ports chosen here and sets `PETSTORE_LB_BALANCE`, so the
//! file users deploy is the file under test.
//!
//! Everything listens on `127.0.0.1`, on ports found free. Every process is killed when the
//! [`Cluster`] is dropped, and (on Linux) when the test's thread ends, so a failing test leaves
//! nothing running. The nodes' and HAProxy's logs go to files in the cluster's own directory;
//! they are printed when a test fails, and removed with it.

use std::{
    collections::BTreeMap,
    fs::File,
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use petstore_api::{Topic, ws::WS_PATH};
use petstore_client::{ClientOptions, Notifications, ReconnectPolicy, WsClient};
use petstore_ws::auth::ApiKeys;
use reqwest::header;
use serde_json::{Value, json};

use crate::{
    app::{ADMIN_API_KEY, ADMIN_API_KEY_NAME, id_of, new_pet, ok_json, send, signing_key_in},
    child::{ChildServer, Stop},
    redis::{LocalRedis, Persistence},
};

/// The administrator every node is configured with.
pub const ADMIN_USER: &str = "cluster-admin";
/// Its password.
pub const ADMIN_PASSWORD: &str = "cluster-admin-password";

/// Longest any one step of a cluster test may take before it counts as hung: a guard against
/// hangs on a loaded machine, never a measurement.
pub const CLUSTER_GUARD: Duration = Duration::from_secs(45);

/// The heartbeat of the node registry in the tests: short, so a dead node drops out quickly.
const NODE_HEARTBEAT_MS: &str = "250";
/// The circuit breaker's cool-down in the tests: short, so recovery is quick once Redis is back.
const BREAKER_COOL_DOWN_MS: &str = "300";
/// How long a node gets for in-flight work once it stops listening.
const SHUTDOWN_GRACE_SECS: u64 = 5;

/// HAProxy's balancing strategy, `PETSTORE_LB_BALANCE` of `deploy/haproxy/haproxy.cfg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// `leastconn`, the deployment's default.
    LeastConn,
    /// `roundrobin`.
    RoundRobin,
    /// `source` with consistent hashing.
    Source,
}

impl Balance {
    /// The value of `PETSTORE_LB_BALANCE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LeastConn => "leastconn",
            Self::RoundRobin => "roundrobin",
            Self::Source => "source",
        }
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    nodes: usize,
    balance: Option<Balance>,
    drain_secs: u64,
    redis_url: Option<String>,
    env: Vec<(String, String)>,
}

impl ClusterOptions {
    /// `nodes` nodes (1–3 when balanced: the deployment file names three), no balancer, no
    /// drain on shutdown.
    pub fn nodes(nodes: usize) -> Self {
        Self {
            nodes,
            balance: None,
            drain_secs: 0,
            redis_url: None,
            env: Vec::new(),
        }
    }

    /// The nodes use the Redis at `url` (a Sentinel set's, a Redis Cluster's) instead of a
    /// private `redis-server` the cluster starts; the caller owns that Redis.
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(url.into());
        self
    }

    /// HAProxy in front, with this strategy.
    pub fn balanced(mut self, balance: Balance) -> Self {
        self.balance = Some(balance);
        self
    }

    /// `PETSTORE_SHUTDOWN_DRAIN_SECS` of every node.
    pub fn drain_secs(mut self, secs: u64) -> Self {
        self.drain_secs = secs;
        self
    }

    /// Sets the environment variable `name` of every node to `value`, in place of the
    /// harness's own setting if it has one (e.g. a production default instead of the short
    /// test timings).
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_owned(), value.into()));
        self
    }
}

/// Redis, the nodes and, if asked for, HAProxy.
pub struct Cluster {
    /// `node1`, `node2`, … in start order.
    pub nodes: Vec<Node>,
    /// HAProxy, if the options asked for it.
    pub balancer: Option<Balancer>,
    /// The private Redis every node uses, unless the options named another
    /// ([`ClusterOptions::redis_url`]); see [`Cluster::redis`].
    redis: Option<LocalRedis>,
    redis_url: String,
    /// Sends the admin service key, and opens a new connection for every request, so that a
    /// balancer decides afresh each time and a killed node leaves no stale connection behind.
    pub client: reqwest::Client,
    dir: PathBuf,
}

/// One `petstore-ws` process.
pub struct Node {
    /// Its `PETSTORE_NODE_ID`, which `/health` reports as `nodeId`.
    pub id: String,
    /// Where it listens.
    pub addr: SocketAddr,
    process: ChildServer,
    log: PathBuf,
}

/// HAProxy in front of the nodes.
pub struct Balancer {
    /// The API frontend.
    pub addr: SocketAddr,
    /// The stats frontend (`/stats`, `/metrics`).
    pub stats_addr: SocketAddr,
    /// The strategy it runs.
    pub balance: Balance,
    process: ChildServer,
    log: PathBuf,
}

impl Cluster {
    /// Starts Redis, then the nodes one after the other (each is serving when the next starts),
    /// then HAProxy, and waits until HAProxy counts every node as up.
    ///
    /// `binary` is the `petstore-ws` executable under test (`env!("CARGO_BIN_EXE_petstore-ws")`
    /// in the server's own integration tests, the only place cargo names it).
    ///
    /// Must be awaited from the test's own future (not a spawned task): the processes die with
    /// the thread that starts them.
    pub async fn start(binary: impl AsRef<Path>, options: ClusterOptions) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "petstore-cluster-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        if let Err(error) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {error}", dir.display());
        }
        // One signing key for every node, so a token issued by one verifies on the others.
        let key_file = signing_key_in(&dir);
        let (redis, redis_url) = match &options.redis_url {
            Some(url) => (None, url.clone()),
            None => match LocalRedis::start(Persistence::AppendOnly) {
                Ok(redis) => {
                    let url = redis.url();
                    (Some(redis), url)
                }
                Err(error) => panic!("cannot start a private redis-server: {error}"),
            },
        };
        let mut cluster = Cluster {
            nodes: Vec::new(),
            balancer: None,
            redis,
            redis_url,
            client: http_client(),
            dir,
        };
        for number in 1..=options.nodes {
            let node = cluster.start_node(binary.as_ref(), number, &key_file, &options);
            cluster.nodes.push(node);
        }
        if let Some(balance) = options.balance {
            let balancer = cluster.start_balancer(balance).await;
            cluster.balancer = Some(balancer);
            cluster
                .wait_for_balancer(|states| {
                    states.len() == options.nodes && states.values().all(|state| state == "UP")
                })
                .await;
        }
        cluster
    }

    /// The private Redis the cluster started.
    ///
    /// # Panics
    /// When the cluster runs on a Redis the test named ([`ClusterOptions::redis_url`]).
    pub fn redis(&self) -> &LocalRedis {
        match &self.redis {
            Some(redis) => redis,
            None => panic!("this cluster runs on a Redis of the test's own"),
        }
    }

    /// The private Redis the cluster started, to kill or restart it.
    ///
    /// # Panics
    /// As [`Cluster::redis`].
    pub fn redis_mut(&mut self) -> &mut LocalRedis {
        match &mut self.redis {
            Some(redis) => redis,
            None => panic!("this cluster runs on a Redis of the test's own"),
        }
    }

    fn start_node(
        &self,
        binary: &Path,
        number: usize,
        key_file: &Path,
        options: &ClusterOptions,
    ) -> Node {
        let drain_secs = options.drain_secs;
        let id = format!("node{number}");
        let log = self.dir.join(format!("{id}.log"));
        let api_key = format!(
            "{ADMIN_API_KEY_NAME}:admin:{}",
            ApiKeys::hash_hex(ADMIN_API_KEY)
        );
        let drain = drain_secs.to_string();
        let grace = SHUTDOWN_GRACE_SECS.to_string();
        let redis_url = self.redis_url.clone();
        let env: [(&str, &str); 23] = [
            ("PETSTORE_BIND", "127.0.0.1"),
            ("PETSTORE_PORT", "0"),
            ("PETSTORE_NODE_ID", &id),
            ("PETSTORE_REDIS_URL", &redis_url),
            ("PETSTORE_NODE_HEARTBEAT_MS", NODE_HEARTBEAT_MS),
            ("PETSTORE_REDIS_BREAKER_COOL_DOWN_MS", BREAKER_COOL_DOWN_MS),
            ("PETSTORE_REDIS_COMMAND_TIMEOUT_MS", "1000"),
            ("PETSTORE_JWT_PRIVATE_KEY", &key_file.to_string_lossy()),
            ("PETSTORE_ADMIN_USER", ADMIN_USER),
            ("PETSTORE_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("PETSTORE_API_KEYS", &api_key),
            ("PETSTORE_NO_DEMO_DATA", "true"),
            // HAProxy connects from loopback: believe its X-Forwarded-For.
            ("PETSTORE_TRUSTED_PROXIES", "127.0.0.1"),
            // Every test client is on loopback too: no rate limit gets in the way of a load.
            ("PETSTORE_RATE_LIMIT_EXEMPT", "127.0.0.1"),
            ("PETSTORE_LOGIN_ATTEMPTS_PER_MINUTE", "100000"),
            ("PETSTORE_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE", "100000"),
            ("PETSTORE_WS_MAX_CONNECTIONS_PER_IP", "1000"),
            ("PETSTORE_WS_MESSAGES_PER_MINUTE", "100000"),
            ("PETSTORE_WS_MESSAGE_BURST", "10000"),
            ("PETSTORE_SHUTDOWN_DRAIN_SECS", &drain),
            ("PETSTORE_SHUTDOWN_GRACE_SECS", &grace),
            ("PETSTORE_LOG", "info"),
            ("PETSTORE_LOG_FORMAT", "json"),
        ];
        let mut command = Command::new(binary);
        // Only what is set here: nothing from the environment of whoever runs the tests.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PETSTORE_") {
                command.env_remove(name);
            }
        }
        command
            .envs(env)
            .envs(options.env.iter().map(|(name, value)| (name, value)))
            .stderr(log_file(&log));
        let stop_wait = Duration::from_secs(drain_secs + SHUTDOWN_GRACE_SECS + 5);
        match ChildServer::launch(command, &id, Stop::Terminate, stop_wait) {
            Ok(process) => Node {
                addr: process.addr,
                id,
                process,
                log,
            },
            Err(error) => panic!(
                "{id} did not start: {error}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
    }

    async fn start_balancer(&self, balance: Balance) -> Balancer {
        let template_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(HAPROXY_CONFIG);
        let template = match std::fs::read_to_string(&template_path) {
            Ok(text) => text,
            Err(error) => panic!("cannot read {}: {error}", template_path.display()),
        };
        let nodes: Vec<(String, SocketAddr)> = self
            .nodes
            .iter()
            .map(|node| (node.id.clone(), node.addr))
            .collect();
        let log = self.dir.join("haproxy.log");
        // A port found free may be taken before HAProxy binds it: try a few times.
        let mut failures = Vec::new();
        for _ in 0..3 {
            let addr = free_addr();
            let stats_addr = free_addr();
            let config = match render_haproxy_config(&template, addr, stats_addr, &nodes) {
                Ok(config) => config,
                Err(error) => panic!("{}: {error}", template_path.display()),
            };
            let config_path = self.dir.join("haproxy.cfg");
            if let Err(error) = std::fs::write(&config_path, config) {
                panic!("cannot write {}: {error}", config_path.display());
            }
            let mut command = Command::new("haproxy");
            command
                .arg("-db")
                .arg("-f")
                .arg(&config_path)
                .env("PETSTORE_LB_BALANCE", balance.as_str())
                .stdout(log_file(&log))
                .stderr(log_file(&log));
            let mut process =
                match ChildServer::launch_at(command, "haproxy", addr, Stop::Terminate, SECOND) {
                    Ok(process) => process,
                    Err(error) => panic!(
                        "cannot start haproxy ({error}); Debian/Ubuntu: apt-get install haproxy"
                    ),
                };
            let deadline = Instant::now() + CLUSTER_GUARD;
            loop {
                if let Some(status) = process.try_wait() {
                    failures.push(format!("haproxy exited with {status}"));
                    break;
                }
                if tokio::net::TcpStream::connect(addr).await.is_ok()
                    && tokio::net::TcpStream::connect(stats_addr).await.is_ok()
                {
                    return Balancer {
                        addr,
                        stats_addr,
                        balance,
                        process,
                        log,
                    };
                }
                if Instant::now() > deadline {
                    panic!("haproxy does not listen on {addr} within {CLUSTER_GUARD:?}");
                }
                tokio::time::sleep(POLL).await;
            }
        }
        panic!(
            "haproxy did not start: {failures:?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// The balancer; the cluster must have been started with one.
    pub fn balancer(&self) -> &Balancer {
        match &self.balancer {
            Some(balancer) => balancer,
            None => panic!("this cluster has no balancer"),
        }
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> &Node {
        match self.nodes.iter().find(|node| node.id == id) {
            Some(node) => node,
            None => panic!("no node {id}"),
        }
    }

    /// The node with this id, to stop or kill it.
    pub fn node_mut(&mut self, id: &str) -> &mut Node {
        match self.nodes.iter_mut().find(|node| node.id == id) {
            Some(node) => node,
            None => panic!("no node {id}"),
        }
    }

    /// Waits until HAProxy's view of its servers (server name → status, e.g. `UP`, `DOWN`,
    /// `MAINT`) satisfies `done`; returns that view.
    pub async fn wait_for_balancer(
        &self,
        done: impl Fn(&BTreeMap<String, String>) -> bool,
    ) -> BTreeMap<String, String> {
        let balancer = self.balancer();
        let mut last = BTreeMap::new();
        let deadline = Instant::now() + CLUSTER_GUARD;
        while Instant::now() < deadline {
            if let Some(states) = balancer.server_states(&self.client).await {
                if done(&states) {
                    return states;
                }
                last = states;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("HAProxy's servers did not reach the expected states: last seen {last:?}");
    }

    /// The `nodeId` of whichever node answers `GET {base_url}/health`.
    pub async fn node_behind(&self, base_url: &str) -> String {
        let health = self.get_json(&format!("{base_url}/health")).await;
        match health["nodeId"].as_str() {
            Some(id) => id.to_owned(),
            None => panic!("no nodeId in {health}"),
        }
    }

    /// `GET url`, which must answer 200 with JSON.
    pub async fn get_json(&self, url: &str) -> Value {
        let response = send(self.client.get(url)).await;
        ok_json(response).await
    }

    /// Creates a pet called `name` through `base_url` (a node's or the balancer's); returns its
    /// id. The request must succeed.
    pub async fn add_pet(&self, base_url: &str, name: &str) -> i64 {
        let response = send(
            self.client
                .post(format!("{base_url}/api/v3/pet"))
                .json(&new_pet(name)),
        )
        .await;
        id_of(&ok_json(response).await)
    }

    /// An access token of the administrator, issued through `base_url`.
    pub async fn admin_token(&self, base_url: &str) -> String {
        let body = json!({ "username": ADMIN_USER, "password": ADMIN_PASSWORD });
        let response = send(
            self.client
                .post(format!("{base_url}/api/v3/auth/token"))
                .json(&body),
        )
        .await;
        let tokens = ok_json(response).await;
        match tokens["accessToken"].as_str() {
            Some(token) => token.to_owned(),
            None => panic!("no accessToken in {tokens}"),
        }
    }

    /// Open WebSocket sessions on each of these nodes, as the node's `/health` counts them.
    pub async fn sessions_on(&self, ids: &[&str]) -> BTreeMap<String, u64> {
        let mut sessions = BTreeMap::new();
        for id in ids {
            let health = self.get_json(&self.node(id).url("/health")).await;
            let Some(active) = health["connections"]["active"].as_u64() else {
                panic!("no connections.active in the health of {id}: {health}");
            };
            sessions.insert((*id).to_owned(), active);
        }
        sessions
    }

    /// The ids of every node.
    pub fn node_ids(&self) -> Vec<&str> {
        self.nodes.iter().map(|node| node.id.as_str()).collect()
    }

    /// Prints the logs of every process, for a test that failed.
    fn print_logs(&self) {
        let mut logs: Vec<(&str, &Path)> = self
            .nodes
            .iter()
            .map(|node| (node.id.as_str(), node.log.as_path()))
            .collect();
        if let Some(balancer) = &self.balancer {
            logs.push(("haproxy", balancer.log.as_path()));
        }
        for (name, path) in logs {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "---- last lines of the {name} log ----\n{}",
                tail.join("\n")
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        // Killed, not drained: the test is over, nothing is waiting for a graceful exit.
        for node in &mut self.nodes {
            node.process.kill();
        }
        if let Some(balancer) = &mut self.balancer {
            balancer.process.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Node {
    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://ADDR`, for helpers taking a base URL.
    pub fn base_url(&self) -> String {
        self.url("")
    }

    /// `ws://ADDR/api/v3/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{WS_PATH}", self.addr)
    }

    /// Sends SIGTERM, as an orchestrator stopping the node would.
    pub fn terminate(&mut self) {
        if let Err(error) = self.process.signal(libc::SIGTERM) {
            panic!("cannot send SIGTERM to {}: {error}", self.id);
        }
    }

    /// Kills the node at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.try_wait().is_none()
    }

    /// Waits for the process to exit, within the hang guard.
    pub fn wait_for_exit(&mut self) -> ExitStatus {
        match self.process.wait_for_exit(CLUSTER_GUARD) {
            Some(status) => status,
            None => panic!("{} did not exit within {CLUSTER_GUARD:?}", self.id),
        }
    }

    /// Everything the node has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test if the node's log shows a panic.
    pub fn assert_no_panic(&self) {
        let log = self.log();
        if let Some(at) = log.find("panicked at") {
            let start = log[..at].rfind('\n').map_or(0, |newline| newline + 1);
            let end = log[at..]
                .find('\n')
                .map_or(log.len(), |newline| at + newline);
            panic!("{} panicked: {}", self.id, &log[start..end]);
        }
    }
}

impl Balancer {
    /// `http://ADDR{path}` of the API frontend.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://ADDR`, for helpers taking a base URL.
    pub fn base_url(&self) -> String {
        self.url("")
    }

    /// `ws://ADDR/api/v3/ws` through the balancer.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{WS_PATH}", self.addr)
    }

    /// HAProxy's view of its servers: name → status (`UP`, `DOWN`, `MAINT`, `UP 1/2`, …), from
    /// the stats page's CSV; `None` if the stats page does not answer.
    pub async fn server_states(
        &self,
        client: &reqwest::Client,
    ) -> Option<BTreeMap<String, String>> {
        let url = format!("http://{}/stats;csv;norefresh", self.stats_addr);
        let text = client.get(url).send().await.ok()?.text().await.ok()?;
        Some(parse_server_states(&text))
    }
}

/// `name → status` of the `petstore` backend's servers in HAProxy's stats CSV.
fn parse_server_states(csv: &str) -> BTreeMap<String, String> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return BTreeMap::new();
    };
    let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let column = |name: &str| columns.iter().position(|column| *column == name);
    let (Some(proxy), Some(server), Some(status)) =
        (column("pxname"), column("svname"), column("status"))
    else {
        return BTreeMap::new();
    };
    lines
        .map(|line| line.split(',').collect::<Vec<_>>())
        .filter(|fields| {
            fields.get(proxy) == Some(&"petstore")
                && fields
                    .get(server)
                    .is_some_and(|name| *name != "BACKEND" && *name != "FRONTEND")
        })
        .filter_map(|fields| {
            Some((
                (*fields.get(server)?).to_owned(),
                (*fields.get(status)?).to_owned(),
            ))
        })
        .collect()
}

/// `deploy/haproxy/haproxy.cfg` pointed at this machine: the API and stats frontends on
/// `addr` and `stats_addr`, the first `nodes.len()` of its `server nodeN nodeN:8080` lines at
/// the nodes' real addresses and the rest removed. Everything else stays as deployed; a
/// template that no longer has the lines this relies on is an error, not a silent mismatch.
pub fn render_haproxy_config(
    template: &str,
    addr: SocketAddr,
    stats_addr: SocketAddr,
    nodes: &[(String, SocketAddr)],
) -> Result<String, String> {
    let mut frontends = 0;
    let mut stats = 0;
    let mut servers = Vec::new();
    let mut rendered = Vec::new();
    for line in template.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["bind", ":8080"] => {
                frontends += 1;
                rendered.push(format!("{indent}bind {addr}"));
            }
            ["bind", ":8404"] => {
                stats += 1;
                rendered.push(format!("{indent}bind {stats_addr}"));
            }
            ["server", name, target, ..] if *target == format!("{name}:8080") => {
                servers.push((*name).to_owned());
                if let Some((_, node_addr)) = nodes.iter().find(|(id, _)| id == name) {
                    rendered.push(format!("{indent}server {name} {node_addr}"));
                }
            }
            _ => rendered.push(line.to_owned()),
        }
    }
    if frontends != 1 || stats != 1 {
        return Err(format!(
            "expected one `bind :8080` and one `bind :8404`, found {frontends} and {stats}"
        ));
    }
    for (id, _) in nodes {
        if !servers.contains(id) {
            return Err(format!(
                "no `server {id} {id}:8080` line (servers: {servers:?})"
            ));
        }
    }
    Ok(rendered.join("\n") + "\n")
}

/// A WebSocket client connected to `url` with the bearer `token`, reconnecting (quickly, with
/// no limit) when `reconnect` is set; the upgrade must succeed.
pub async fn ws_connect(url: &str, token: &str, reconnect: bool) -> WsClient {
    let mut options = ClientOptions::default()
        .bearer_token(token)
        .request_timeout(CLUSTER_GUARD);
    if reconnect {
        options = options.reconnect(ReconnectPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
            ..ReconnectPolicy::default()
        });
    }
    match guard("the WebSocket upgrade", WsClient::connect(url, options)).await {
        Ok(client) => client,
        Err(error) => panic!("the WebSocket upgrade at {url} failed: {error}"),
    }
}

/// Subscribes `client` to `topics`; the server must accept.
pub async fn ws_subscribe(client: &WsClient, topics: &[Topic]) {
    if let Err(error) = guard("subscribe", client.subscribe(topics)).await {
        panic!("subscribe {topics:?} refused or unanswered: {error}");
    }
}

/// Waits for the `pet.created` notification of pet `id`, skipping any other.
pub async fn expect_pet_created(notifications: &mut Notifications, id: i64, who: &str) {
    let found = guard(&format!("pet.created {id} for {who}"), async {
        while let Some(notification) = notifications.recv().await {
            if notification.event == "pet.created" && notification.payload["id"] == json!(id) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(found, "{who}: the client closed before pet.created {id}");
}

/// Awaits `future`, failing the test with `what` if it takes longer than [`CLUSTER_GUARD`].
pub async fn guard<F: std::future::Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(CLUSTER_GUARD, future).await {
        Ok(output) => output,
        Err(_) => panic!("hung: {what} (nothing after {CLUSTER_GUARD:?})"),
    }
}

/// Polls `probe` until it returns `Some`, failing the test with `what` after [`CLUSTER_GUARD`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    guard(what, async {
        loop {
            if let Some(value) = probe().await {
                return value;
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await
}

/// The deployment's HAProxy configuration, relative to this crate: the file under test.
const HAPROXY_CONFIG: &str = "../../deploy/haproxy/haproxy.cfg";

/// How often the harness polls for a state to be reached.
const POLL: Duration = Duration::from_millis(100);

const SECOND: Duration = Duration::from_secs(1);

fn http_client() -> reqwest::Client {
    let mut headers = header::HeaderMap::new();
    headers.insert("api_key", header::HeaderValue::from_static(ADMIN_API_KEY));
    match reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(0)
        .timeout(CLUSTER_GUARD)
        .build()
    {
        Ok(client) => client,
        Err(error) => panic!("cannot build the HTTP client: {error}"),
    }
}

/// A loopback address with a port nobody listens on right now.
fn free_addr() -> SocketAddr {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|listener| listener.local_addr()) {
        Ok(addr) => addr,
        Err(error) => panic!("cannot find a free port: {error}"),
    }
}

/// `path` opened for appending, for a child's stdout or stderr.
fn log_file(path: &Path) -> Stdio {
    match File::options().create(true).append(true).open(path) {
        Ok(file) => Stdio::from(file),
        Err(error) => panic!("cannot open {}: {error}", path.display()),
    }
}
