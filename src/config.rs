//! Typed configuration: defaults, then `PETSTORE_*` environment variables, then command-line flags.
//!
//! Every setting is documented in the README's configuration table; keep the two in step.
//!
//! This module only holds and validates the settings, in the operator's terms (flags, units).
//! Only the server's wiring reads it, and maps it to each module's own settings type
//! (`server::settings`); field types that other modules parse (service keys, networks) are
//! theirs, so a bad value is refused with their message while the flags are read.

use std::{fmt, net::IpAddr, num::NonZeroU32, path::PathBuf, str::FromStr, time::Duration};

use clap::{Parser, ValueEnum};
use ipnet::IpNet;

use crate::{auth::api_keys::ApiKeySpec, limits::parse_networks};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, pretty otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Server configuration.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "petstore-ws",
    version,
    about = "The Pet Store API over REST and WebSocket"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "PETSTORE_BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// TCP port to listen on (0 picks a free one).
    #[arg(long, env = "PETSTORE_PORT", default_value_t = 8080)]
    pub port: u16,

    /// Log filter, in `tracing` env-filter syntax (e.g. `info`, `petstore_ws=debug`).
    #[arg(long, env = "PETSTORE_LOG", default_value = "info")]
    pub log: String,

    /// Log line format.
    #[arg(long, env = "PETSTORE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,

    /// Start with an empty store instead of the demo pets, users and orders.
    #[arg(long, env = "PETSTORE_NO_DEMO_DATA")]
    pub no_demo_data: bool,

    /// Route every REST request through poem-openapi's router, including the simple reads the
    /// spec lets the server answer before it (the direct lane; the answers are the same).
    #[arg(long, env = "PETSTORE_NO_DIRECT_ROUTES")]
    pub no_direct_routes: bool,

    /// Largest accepted JSON request body, in bytes.
    #[arg(long, env = "PETSTORE_MAX_JSON_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_json_body_bytes: usize,

    /// Largest accepted image upload, in bytes.
    #[arg(long, env = "PETSTORE_MAX_IMAGE_BYTES", default_value_t = 5 * 1024 * 1024)]
    pub max_image_bytes: usize,

    /// PEM file with the RSA private key that signs access tokens (PKCS#8 or PKCS#1). Without one,
    /// an ephemeral key pair is made at start-up and tokens do not survive a restart.
    #[arg(long, env = "PETSTORE_JWT_PRIVATE_KEY")]
    pub jwt_private_key: Option<PathBuf>,

    /// PEM files of earlier token signing keys, comma-separated: during a key rotation their
    /// tokens are still accepted (and their public keys published) until they expire.
    #[arg(
        long = "jwt-previous-key",
        env = "PETSTORE_JWT_PREVIOUS_KEYS",
        value_delimiter = ','
    )]
    pub jwt_previous_keys: Vec<PathBuf>,

    /// `iss` claim of issued tokens, and the only issuer accepted.
    #[arg(long, env = "PETSTORE_JWT_ISSUER", default_value = "petstore-ws")]
    pub jwt_issuer: String,

    /// `aud` claim of issued tokens, and the only audience accepted.
    #[arg(long, env = "PETSTORE_JWT_AUDIENCE", default_value = "petstore-api")]
    pub jwt_audience: String,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "PETSTORE_ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,

    /// Lifetime of refresh tokens, in seconds (each refresh hands out a new one).
    #[arg(long, env = "PETSTORE_REFRESH_TOKEN_TTL_SECS", default_value_t = 7 * 24 * 60 * 60)]
    pub refresh_token_ttl_secs: u64,

    /// Username of an administrator to create (or promote, and set the password of) at
    /// start-up. Needs `--admin-password`.
    #[arg(long, env = "PETSTORE_ADMIN_USER", requires = "admin_password")]
    pub admin_user: Option<String>,

    /// Password of `--admin-user` (prefer the environment variable: flags show up in `ps`).
    #[arg(
        long,
        env = "PETSTORE_ADMIN_PASSWORD",
        requires = "admin_user",
        hide_env_values = true
    )]
    pub admin_password: Option<Secret>,

    /// Service API keys for the `api_key` header, comma-separated `NAME:ROLE:SHA256HEX` entries
    /// (the SHA-256 of the key, never the key itself; ROLE is `customer` or `admin`).
    #[arg(long = "api-key", env = "PETSTORE_API_KEYS", value_delimiter = ',')]
    pub api_keys: Vec<ApiKeySpec>,

    /// Sustained requests per minute per client (per user once authenticated).
    #[arg(long, env = "PETSTORE_RATE_LIMIT_PER_MINUTE", default_value = "100")]
    pub rate_limit_per_minute: NonZeroU32,

    /// Requests a client may send at once before the sustained rate applies.
    #[arg(long, env = "PETSTORE_RATE_LIMIT_BURST", default_value = "20")]
    pub rate_limit_burst: NonZeroU32,

    /// Client networks exempt from the rate limit, comma-separated CIDRs or addresses.
    #[arg(long, env = "PETSTORE_RATE_LIMIT_EXEMPT", value_delimiter = ',', value_parser = parse_network)]
    pub rate_limit_exempt: Vec<IpNet>,

    /// Login attempts per minute per username (and burst), for `loginUser` and `createToken`.
    #[arg(long, env = "PETSTORE_LOGIN_ATTEMPTS_PER_MINUTE", default_value = "5")]
    pub login_attempts_per_minute: NonZeroU32,

    /// Login attempts per minute per client address (and burst), whatever the username.
    #[arg(
        long,
        env = "PETSTORE_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE",
        default_value = "20"
    )]
    pub login_attempts_per_ip_per_minute: NonZeroU32,

    /// Proxies (load balancers) whose `Forwarded` / `X-Forwarded-For` headers are believed,
    /// comma-separated CIDRs or addresses. Other peers' forwarding headers are ignored.
    #[arg(long, env = "PETSTORE_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_network)]
    pub trusted_proxies: Vec<IpNet>,

    /// Browser origins allowed to call the API (CORS) and to open WebSockets, comma-separated
    /// (`https://app.example.com`); `*` allows any. Same-origin pages are always allowed.
    #[arg(
        long = "allowed-origin",
        env = "PETSTORE_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Longest time an API request may take, body included, in seconds (then 408).
    #[arg(long, env = "PETSTORE_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// How long the answer to a request with an idempotency key (REST `Idempotency-Key`, a
    /// WebSocket write's `correlationId`) is kept for replay, in seconds (at least 1).
    #[arg(long, env = "PETSTORE_IDEMPOTENCY_TTL_SECS", default_value_t = 24 * 60 * 60)]
    pub idempotency_ttl_secs: u64,

    /// Idempotency keys one node keeps without Redis (the oldest go first when full).
    #[arg(long, env = "PETSTORE_IDEMPOTENCY_MAX_KEYS", default_value_t = 100_000)]
    pub idempotency_max_keys: usize,

    /// Largest WebSocket message accepted, in bytes (bigger: close 1009).
    #[arg(long, env = "PETSTORE_WS_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub ws_max_message_bytes: usize,

    /// Milliseconds a WebSocket connection has to authenticate (then close 1008).
    #[arg(long, env = "PETSTORE_WS_AUTH_TIMEOUT_MS", default_value_t = 10_000)]
    pub ws_auth_timeout_ms: u64,

    /// Longest a WebSocket request may run, in milliseconds (then `TIMEOUT`).
    #[arg(long, env = "PETSTORE_WS_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub ws_request_timeout_ms: u64,

    /// Concurrent WebSocket connections per client address.
    #[arg(long, env = "PETSTORE_WS_MAX_CONNECTIONS_PER_IP", default_value_t = 10)]
    pub ws_max_connections_per_ip: u32,

    /// WebSocket messages per connection and minute.
    #[arg(long, env = "PETSTORE_WS_MESSAGES_PER_MINUTE", default_value = "100")]
    pub ws_messages_per_minute: NonZeroU32,

    /// WebSocket messages a connection may send at once after a quiet period.
    #[arg(long, env = "PETSTORE_WS_MESSAGE_BURST", default_value = "20")]
    pub ws_message_burst: NonZeroU32,

    /// Requests of one WebSocket session that run at once; more wait in its queue.
    #[arg(long, env = "PETSTORE_WS_MAX_IN_FLIGHT", default_value_t = 16)]
    pub ws_max_in_flight: usize,

    /// Requests one WebSocket session may have waiting (`backpressure` at three quarters;
    /// full: low-priority requests refused with `OVERLOADED`, others wait).
    #[arg(long, env = "PETSTORE_WS_QUEUE_CAPACITY", default_value_t = 64)]
    pub ws_queue_capacity: usize,

    /// Frames waiting to be written to one WebSocket before it counts as a slow consumer
    /// (close 1013).
    #[arg(long, env = "PETSTORE_WS_OUTBOX_CAPACITY", default_value_t = 256)]
    pub ws_outbox_capacity: usize,

    /// Events each topic keeps for clients that resume after a reconnect (`subscribe` with
    /// `since`).
    #[arg(long, env = "PETSTORE_EVENT_HISTORY_LENGTH", default_value_t = 1_000)]
    pub event_history_length: usize,

    /// Seconds an event is kept for resuming clients.
    #[arg(long, env = "PETSTORE_EVENT_HISTORY_SECS", default_value_t = 600)]
    pub event_history_secs: u64,

    /// Events the Redis bus keeps in its bus-wide log, from which a node fills gaps in its live
    /// feed (after its subscriber connection dropped, say).
    #[arg(long, env = "PETSTORE_EVENT_LOG_LENGTH", default_value_t = 10_000)]
    pub event_log_length: usize,

    /// Milliseconds between the server's WebSocket pings.
    #[arg(long, env = "PETSTORE_WS_HEARTBEAT_MS", default_value_t = 30_000)]
    pub ws_heartbeat_ms: u64,

    /// Milliseconds of silence after which a WebSocket peer counts as dead.
    #[arg(long, env = "PETSTORE_WS_DEAD_AFTER_MS", default_value_t = 75_000)]
    pub ws_dead_after_ms: u64,

    /// Milliseconds without requests after which a WebSocket session that follows no topic is
    /// closed (1000).
    #[arg(long, env = "PETSTORE_WS_IDLE_TIMEOUT_MS", default_value_t = 600_000)]
    pub ws_idle_timeout_ms: u64,

    /// Longest a write to a WebSocket may take, in milliseconds (a peer that does not read is
    /// closed with 1013).
    #[arg(long, env = "PETSTORE_WS_WRITE_TIMEOUT_MS", default_value_t = 10_000)]
    pub ws_write_timeout_ms: u64,

    /// Seconds before its access token expires that a WebSocket session is warned
    /// (`session.expiring`).
    #[arg(long, env = "PETSTORE_WS_EXPIRY_WARNING_SECS", default_value_t = 60)]
    pub ws_expiry_warning_secs: u64,

    /// MCP sessions one client address may hold at once (more: 429).
    #[arg(long, env = "PETSTORE_MCP_MAX_SESSIONS_PER_IP", default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub mcp_max_sessions_per_ip: u64,

    /// Seconds without traffic after which an MCP session is closed.
    #[arg(long, env = "PETSTORE_MCP_SESSION_IDLE_SECS", default_value_t = 600,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub mcp_session_idle_secs: u64,

    /// Seconds after which an MCP session is closed however busy (the client starts a new one).
    #[arg(long, env = "PETSTORE_MCP_SESSION_LIFETIME_SECS", default_value_t = 3600,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub mcp_session_lifetime_secs: u64,

    /// The base URL clients reach this server at (`https://petstore.example.com`), for documents
    /// that name absolute URLs (the MCP resource metadata); without it, the URL the request
    /// came to (its `Host`).
    #[arg(long, env = "PETSTORE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Longest time to wait for in-flight requests on shutdown, in seconds.
    #[arg(long, env = "PETSTORE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// PEM file with the TLS certificate chain, leaf first. With `--tls-key` the server speaks
    /// HTTPS (and WSS) itself; without both it speaks plain HTTP, as behind a load balancer that
    /// terminates TLS.
    #[arg(long, env = "PETSTORE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file with the private key of `--tls-cert` (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "PETSTORE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Longest time a client may take to send a request's headers once it has started, and a new
    /// connection to send its first request (TLS handshake included), in seconds.
    #[arg(
        long,
        env = "PETSTORE_HEADER_READ_TIMEOUT_SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub header_read_timeout_secs: u64,

    /// Longest time a connection may wait for its next request (keep-alive), or have a request in
    /// flight with nothing sent or received (stalled body, client not reading), in seconds.
    #[arg(
        long,
        env = "PETSTORE_IDLE_TIMEOUT_SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub idle_timeout_secs: u64,

    /// Name of this instance in `/health` (`nodeId`); a random UUID per start when unset.
    #[arg(long, env = "PETSTORE_NODE_ID")]
    pub node_id: Option<String>,

    /// On shutdown, how long `/ready` answers 503 while requests are still served, in seconds,
    /// before the listener closes: time for a load balancer's health checks to take the instance
    /// out of rotation, so no new request meets a closed port.
    #[arg(long, env = "PETSTORE_SHUTDOWN_DRAIN_SECS", default_value_t = 0)]
    pub shutdown_drain_secs: u64,

    /// Redis to share state with other nodes: the store, events, the node registry, rate
    /// limits, revocations and refresh sessions. `redis://[user:password@]host:port[/db]` for
    /// one server, `redis-sentinel://sentinel1:26379,sentinel2:26379/db?sentinelServiceName=NAME`
    /// for a primary found (and followed across failovers) through Sentinel,
    /// `redis-cluster://node1:6379,node2:6379` for a Redis Cluster (with a hash-tag prefix).
    /// Without it the node runs alone on the embedded in-memory store.
    #[arg(long, env = "PETSTORE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel, so deployments can share one Redis.
    #[arg(long, env = "PETSTORE_REDIS_PREFIX", default_value = "petstore")]
    pub redis_prefix: String,

    /// Connections in the Redis pool.
    #[arg(long, env = "PETSTORE_REDIS_POOL_SIZE", default_value_t = 4,
        value_parser = clap::value_parser!(u64).range(1..=64))]
    pub redis_pool_size: u64,

    /// Longest time a Redis call may take before it counts as failed, retries included, in
    /// milliseconds.
    #[arg(long, env = "PETSTORE_REDIS_COMMAND_TIMEOUT_MS", default_value_t = 2000,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub redis_command_timeout_ms: u64,

    /// How often each Redis subscriber connection (events, revocations) is sent a `PING`, in
    /// milliseconds; one that does not answer within the command timeout is replaced.
    #[arg(long, env = "PETSTORE_REDIS_PING_INTERVAL_MS", default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(100..))]
    pub redis_ping_interval_ms: u64,

    /// Pets each node keeps from its Redis reads for `getPetById`, invalidated by Redis
    /// (`CLIENT TRACKING`) when they change; 0 turns the cache off. Off on a Redis Cluster.
    #[arg(long, env = "PETSTORE_REDIS_CACHE_ENTRIES", default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub redis_cache_entries: u64,

    /// Replicas that must confirm a write (Redis `WAIT`) before its client is told it
    /// succeeded; 0 answers once the primary has applied it. A write the replicas do not confirm
    /// within --redis-wait-timeout-ms is still acknowledged (it happened) and counted.
    #[arg(long, env = "PETSTORE_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,

    /// Longest wait for those replicas, in milliseconds; must be shorter than
    /// --redis-command-timeout-ms, which bounds a write and its wait together.
    #[arg(long, env = "PETSTORE_REDIS_WAIT_TIMEOUT_MS", default_value_t = 500,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub redis_wait_timeout_ms: u64,

    /// Consecutive Redis failures that open the circuit breaker.
    #[arg(long, env = "PETSTORE_REDIS_BREAKER_FAILURES", default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub redis_breaker_failures: u32,

    /// How long the open circuit breaker refuses Redis calls before trying one, in milliseconds.
    #[arg(long, env = "PETSTORE_REDIS_BREAKER_COOL_DOWN_MS", default_value_t = 5000,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub redis_breaker_cool_down_ms: u64,

    /// How often a node refreshes its record in the Redis node registry, in milliseconds; the
    /// record expires after three missed beats.
    #[arg(long, env = "PETSTORE_NODE_HEARTBEAT_MS", default_value_t = 2000,
        value_parser = clap::value_parser!(u64).range(100..))]
    pub node_heartbeat_ms: u64,

    /// The address other nodes and operators reach this node at, shown in the node registry
    /// (`host:port`); the bound address when unset.
    #[arg(long, env = "PETSTORE_ADVERTISE_ADDRESS")]
    pub advertise_address: Option<String>,
}

impl Config {
    /// The defaults, as if started with no flags and no environment: what tests and benchmarks
    /// start from before overriding fields.
    pub fn defaults() -> Self {
        Self::parse_from(["petstore-ws"])
    }

    /// Lifetime of access tokens.
    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_secs)
    }

    /// Lifetime of refresh tokens.
    pub fn refresh_token_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_token_ttl_secs)
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// Longest wait for in-flight requests on shutdown.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// How long `/ready` reports draining before the listener closes.
    pub fn shutdown_drain(&self) -> Duration {
        Duration::from_secs(self.shutdown_drain_secs)
    }

    /// How often this node refreshes its registry record.
    pub fn node_heartbeat(&self) -> Duration {
        Duration::from_millis(self.node_heartbeat_ms)
    }
}

/// A configured secret: kept out of `Debug` output (and so out of logs).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(secret: &str) -> Result<Self, Self::Err> {
        Ok(Self(secret.to_owned()))
    }
}

/// One network of a comma-separated list (a CIDR, or an address meaning just itself).
fn parse_network(text: &str) -> Result<IpNet, String> {
    match parse_networks(text) {
        Ok(networks) if networks.len() == 1 => Ok(networks[0]),
        Ok(_) => Err(format!("expected one network, got `{text}`")),
        Err(error) => Err(error.to_string()),
    }
}
