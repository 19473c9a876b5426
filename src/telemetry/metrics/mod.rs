//! Metrics: one OpenTelemetry meter for the process, read out at `/metrics` in the Prometheus
//! text format.
//!
//! Why it is built this way:
//!
//! - **One set per process** ([`global`]). Prometheus scrapes a process and expects one series per
//!   name and label set from it, so the meter provider, its instruments and the Prometheus registry
//!   they are read through exist once, created on first use. Servers started in the same process
//!   (the test suites start many) report into the same families; code anywhere in the crate
//!   records without a handle being passed down to it.
//! - **Recorded through `opentelemetry`**, exported with `opentelemetry-prometheus`. poem's own
//!   `prometheus`/`opentelemetry` features are not used: they pull an older OpenTelemetry and
//!   would make a second set of instruments. The exporter's `otel_scope_*` labels and its
//!   `target_info` series are turned off: there is one scope, and the build is described by
//!   `petstore_build_info`.
//! - **Prometheus names from OpenTelemetry instruments.** The exporter derives the name from the
//!   instrument's name, unit and kind: `petstore.http.request.duration` in `s` is exported as
//!   `petstore_http_request_duration_seconds`, counters get `_total`, bytes (`By`) `_bytes`.
//! - **Bounded labels.** Operations are labelled with their `operationId` (or a fixed name for
//!   the operational routes, `unknown` for anything else), never with a path or a user; statuses,
//!   methods, scopes and results come from fixed lists.
//! - **Cheap on the request path.** The HTTP instruments are bound to their attribute sets the
//!   first time a combination occurs (see [`HttpMetrics`]), so a request costs a table lookup and
//!   two atomic updates, with no allocation and no hashing of attributes.
//! - **Counters with a fixed label set start at zero**, so dashboards and alert rules find every
//!   series from the first scrape and `increase()` sees the first event.
//!
//! Families exported today (the README's monitoring section lists them with their labels):
//! `petstore_http_requests_total`, `petstore_http_request_duration_seconds`,
//! `petstore_http_requests_in_flight`, `petstore_http_requests_aborted_total`,
//! `petstore_idempotency_requests_total{transport,result}`,
//! `petstore_auth_attempts_total`, `petstore_rate_limit_rejections_total`,
//! `petstore_origin_rejections_total`, `process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
//! `process_max_fds`, `process_start_time_seconds`, `petstore_uptime_seconds`,
//! `petstore_build_info`, and for the WebSocket endpoint ([`WsMetrics`]):
//! `petstore_ws_sessions`, `petstore_ws_upgrades_total{outcome}`,
//! `petstore_ws_requests_total{action,result}`, `petstore_ws_request_duration_seconds{action}`,
//! `petstore_ws_errors_total{code}`, `petstore_ws_notifications_total{result}`,
//! `petstore_ws_backpressure_total`, `petstore_ws_buffers_released_total`,
//! `petstore_ws_closes_total{code}`, the per-connection
//! message rate in `petstore_rate_limit_rejections_total{scope="connection"}`; the message queue:
//! `petstore_ws_queue_waiting`, `petstore_ws_queue_in_flight`,
//! `petstore_ws_queue_wait_seconds{priority}`, `petstore_ws_overloaded_total`,
//! `petstore_ws_sessions_backpressured`; and event delivery:
//! `petstore_ws_recoveries_total{result}`, `petstore_ws_replayed_events_total`,
//! `petstore_events_superseded_total`, `petstore_events_gap_filled_total`,
//! `petstore_events_lost_total`; for the MCP endpoint ([`McpMetrics`]):
//! `petstore_mcp_tool_calls_total{tool,result}`, `petstore_mcp_tool_call_duration_seconds{tool}`,
//! `petstore_mcp_tool_errors_total{code}`, `petstore_mcp_requests_total{method}`,
//! `petstore_mcp_sessions`, `petstore_mcp_sessions_refused_total`,
//! `petstore_mcp_resource_updates_total`.
//!
//! With Redis configured ([`RedisMetrics`]): `petstore_circuit_breaker_state{breaker}`,
//! `petstore_circuit_breaker_transitions_total{breaker,to}`,
//! `petstore_redis_command_duration_seconds{command}`, `petstore_redis_errors_total{command}`,
//! `petstore_retries_total{operation}`, `petstore_redis_replication_total{result}` (writes that
//! waited for replicas), `petstore_redis_cache_total{event}` (the store's pet cache: hit, miss,
//! invalidation, flush), and for the cluster `petstore_cluster_nodes` and
//! `petstore_pubsub_messages_total{direction}`.

mod http;
mod idempotency;
mod mcp;
mod process;
mod redis;
mod security;
mod ws;

use std::sync::OnceLock;

use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::TextEncoder;

pub use self::http::{HttpMetrics, InFlight, Operation};
pub use self::idempotency::{IdempotencyMetrics, IdempotencyResult};
pub use self::mcp::McpMetrics;
pub use self::redis::{CacheEvent, PubSubDirection, RedisMetrics};
pub use self::security::{AuthResult, CredentialKind, RateScope, SecurityMetrics, Transport};
pub use self::ws::{Closed, QueueMoved, RecoveryResult, Upgrade, WsMetrics};

/// The content type of the exposition (the Prometheus text format, version 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Name of the OpenTelemetry meter everything is recorded through.
const METER_NAME: &str = "petstore-ws";

/// Every instrument of the process, and the registry they are read through.
pub struct Metrics {
    registry: prometheus::Registry,
    /// Kept alive: dropping the provider would stop the instruments from recording.
    _provider: SdkMeterProvider,
    /// Requests at the HTTP edge.
    pub http: HttpMetrics,
    /// Authentication, rate limits, origins.
    pub security: SecurityMetrics,
    /// WebSocket sessions, requests and notifications.
    pub ws: WsMetrics,
    /// Redis calls, the circuit breaker and the cluster.
    pub redis: RedisMetrics,
    /// Requests with an idempotency key.
    pub idempotency: IdempotencyMetrics,
    /// MCP tool calls, requests and sessions.
    pub mcp: McpMetrics,
}

/// Why the metrics could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    fn new() -> Self {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false)
            .without_target_info()
            .build();
        let provider = match exporter {
            Ok(exporter) => SdkMeterProvider::builder().with_reader(exporter).build(),
            Err(error) => {
                // Only a registry that already holds the exporter refuses it; this one is new.
                tracing::error!(%error, "cannot set up the Prometheus exporter; /metrics stays empty");
                SdkMeterProvider::builder().build()
            }
        };
        let meter = provider.meter(METER_NAME);
        let http = HttpMetrics::new(&meter);
        let security = SecurityMetrics::new(&meter);
        let ws = WsMetrics::new(&meter);
        let redis = RedisMetrics::new(&meter);
        let idempotency = IdempotencyMetrics::new(&meter);
        let mcp = McpMetrics::new(&meter);
        process::register(&meter);
        Self {
            registry,
            _provider: provider,
            http,
            security,
            ws,
            redis,
            idempotency,
            mcp,
        }
    }

    /// Every family, in the Prometheus text format.
    ///
    /// # Errors
    /// [`MetricsError`] if a family cannot be encoded (an exporter bug, not a runtime condition).
    pub fn render(&self) -> Result<String, MetricsError> {
        let mut text = String::new();
        TextEncoder::new().encode_utf8(&self.registry.gather(), &mut text)?;
        Ok(text)
    }
}

/// The process's metrics, created on first use.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The security families of [`global`], for one-line recording where a decision is made.
pub fn security() -> &'static SecurityMetrics {
    &global().security
}

/// The idempotency family of [`global`].
pub fn idempotency() -> &'static IdempotencyMetrics {
    &global().idempotency
}

/// The WebSocket families of [`global`].
pub fn ws() -> &'static WsMetrics {
    &global().ws
}

/// The MCP families of [`global`].
pub fn mcp() -> &'static McpMetrics {
    &global().mcp
}
