//! Operational endpoints: health, readiness and liveness for orchestrators and load balancers,
//! metrics, the API documents and the token-signing keys.
//!
//! - `/live`: the process serves HTTP (restart it otherwise). Checks nothing else, so a slow
//!   dependency never gets a healthy process killed.
//! - `/ready`: send it traffic. 503 once shutdown has begun ([`Readiness::drain`]), so a load
//!   balancer stops routing new requests before the listener closes, and while the store does
//!   not answer.
//! - `/health`: the health document for people and dashboards; 503 when the server cannot serve.
//! - `/metrics`: every metric family, in the Prometheus text format.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use bytes::Bytes;
use poem::{
    Response, handler,
    http::StatusCode,
    web::{Data, Json},
};
use serde::Serialize;

use crate::{
    auth::TokenService,
    cluster::{NodeInfo, NodeLoad, NodeRegistry},
    edge::{HttpError, SessionCounts},
    redis::Redis,
    store::SharedStore,
    telemetry,
};
use petstore_api::ApiError;

/// The spec as written, served at `/api/v3/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// What the operational endpoints read.
#[derive(Clone)]
pub struct OpsState {
    sessions: Arc<SessionCounts>,
    store: SharedStore,
    started: Instant,
    node_id: Arc<str>,
    openapi_json: Bytes,
    asyncapi_bundle: Bytes,
    tokens: Arc<TokenService>,
    readiness: Readiness,
    redis: Option<Redis>,
    nodes: Option<NodeRegistry>,
}

/// Whether the server takes new traffic; shared by the server (which drains it on shutdown) and
/// `/ready`.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    draining: Arc<AtomicBool>,
}

impl Readiness {
    /// From now on `/ready` answers 503: the server is shutting down.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether [`drain`](Self::drain) was called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

impl OpsState {
    /// State for the given store and token service; converts the spec to JSON once, here.
    pub fn new(
        store: SharedStore,
        node_id: impl Into<Arc<str>>,
        tokens: Arc<TokenService>,
    ) -> Result<Self, String> {
        let document: serde_json::Value = serde_saphyr::from_str(OPENAPI_YAML)
            .map_err(|error| format!("openapi.yaml does not parse: {error}"))?;
        let json = serde_json::to_vec_pretty(&document)
            .map_err(|error| format!("openapi.yaml does not convert to JSON: {error}"))?;
        let asyncapi: serde_json::Value = serde_saphyr::from_str(ASYNCAPI_YAML)
            .map_err(|error| format!("asyncapi.yaml does not parse: {error}"))?;
        let asyncapi_bundle = super::ws_docs::bundle(&asyncapi, &document)
            .and_then(|bundle| serde_json::to_vec(&bundle).map_err(|error| error.to_string()))
            .map_err(|error| format!("asyncapi.yaml cannot be bundled for its page: {error}"))?;
        Ok(Self {
            store,
            started: Instant::now(),
            node_id: node_id.into(),
            openapi_json: json.into(),
            asyncapi_bundle: asyncapi_bundle.into(),
            tokens,
            readiness: Readiness::default(),
            sessions: Arc::default(),
            redis: None,
            nodes: None,
        })
    }

    /// `asyncapi.yaml` bundled with the `openapi.yaml` schemas it references, for the WebSocket
    /// API's documentation page.
    pub(super) fn asyncapi_bundle(&self) -> Bytes {
        self.asyncapi_bundle.clone()
    }

    /// Reports this Redis connection (and its circuit breaker) at `/health`.
    #[must_use]
    pub fn with_redis(mut self, redis: Redis) -> Self {
        self.redis = Some(redis);
        self
    }

    /// Reports these WebSocket session counts at `/health`.
    #[must_use]
    pub fn with_sessions(mut self, sessions: Arc<SessionCounts>) -> Self {
        self.sessions = sessions;
        self
    }

    /// Lists these nodes at `/admin/nodes` (the cluster's registry).
    #[must_use]
    pub fn with_nodes(mut self, nodes: NodeRegistry) -> Self {
        self.nodes = Some(nodes);
        self
    }

    /// The registry `/admin/nodes` lists: the one given to [`OpsState::with_nodes`], or else
    /// a registry of this node alone, with its WebSocket sessions and HTTP requests as load.
    pub fn nodes(&self) -> NodeRegistry {
        if let Some(nodes) = &self.nodes {
            return nodes.clone();
        }
        let sessions = Arc::clone(&self.sessions);
        NodeRegistry::single(
            NodeInfo {
                id: self.node_id.to_string(),
                address: String::new(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            move || NodeLoad {
                connections: sessions.open() as u64,
                in_flight_requests: telemetry::metrics::global().http.in_flight(),
            },
        )
    }

    /// The readiness `/ready` reports; drain it to take the server out of rotation.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }
}

/// The health document.
///
/// `status` is `ok`, or `degraded` when the store does not answer or the Redis circuit breaker
/// is not closed: the process serves, but requests that need the store fail fast with 503
/// `UNAVAILABLE` (and `/ready` takes the node out of rotation). `redis` appears when Redis is
/// configured; `connections` counts WebSocket sessions and `messageQueue` what their request
/// queues hold.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    status: &'static str,
    version: &'static str,
    node_id: String,
    uptime_seconds: u64,
    store: StoreHealth,
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<RedisHealth>,
    connections: Connections,
    message_queue: MessageQueueHealth,
}

/// The Redis connection as this node sees it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RedisHealth {
    /// `ok` or `unavailable`.
    status: &'static str,
    /// The circuit breaker: `closed`, `half_open` or `open`.
    circuit_breaker: &'static str,
    /// Seconds until an open breaker tries Redis again.
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_seconds: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StoreHealth {
    status: &'static str,
    latency_ms: f64,
}

/// WebSocket connections: open, and of those authenticated.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Connections {
    active: u64,
    authenticated: u64,
}

/// The WebSocket sessions' request queues, summed over this node's sessions (each as of its last
/// step).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageQueueHealth {
    /// Requests read and waiting for a worker.
    waiting: u64,
    /// Requests started and not yet answered.
    in_flight: u64,
    /// Sessions told to slow down whose queue has not yet drained to its low-water mark.
    sessions_under_backpressure: u64,
    /// Requests refused with `OVERLOADED` since the server started.
    overloaded: u64,
}

/// `GET /health`: 200 with status `ok`, or `degraded` while the store (Redis) is impaired.
///
/// Degraded is still 200: the process is alive and answering (fast 503s), which is what a
/// health check of the process asks; whether to send it traffic is `/ready`'s answer.
#[handler]
pub async fn health(Data(state): Data<&OpsState>) -> Response {
    let started = Instant::now();
    let store_ok = state.store.ping().await.is_ok();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let redis = state.redis.as_ref().map(|redis| {
        let breaker = redis.breaker();
        RedisHealth {
            status: if store_ok { "ok" } else { "unavailable" },
            circuit_breaker: breaker.state().as_str(),
            retry_after_seconds: breaker
                .retry_after()
                .map(|wait| wait.as_secs() + u64::from(wait.subsec_nanos() > 0)),
        }
    });
    let breaker_closed = redis
        .as_ref()
        .is_none_or(|redis| redis.circuit_breaker == "closed");
    let health = Health {
        status: if store_ok && breaker_closed {
            "ok"
        } else {
            "degraded"
        },
        version: env!("CARGO_PKG_VERSION"),
        node_id: state.node_id.to_string(),
        uptime_seconds: state.started.elapsed().as_secs(),
        store: StoreHealth {
            status: if store_ok { "ok" } else { "unavailable" },
            latency_ms,
        },
        redis,
        connections: Connections {
            active: state.sessions.open() as u64,
            authenticated: state.sessions.authenticated() as u64,
        },
        message_queue: {
            let queue = state.sessions.message_queue();
            MessageQueueHealth {
                waiting: queue.waiting,
                in_flight: queue.in_flight,
                sessions_under_backpressure: queue.sessions_under_backpressure,
                overloaded: queue.overloaded,
            }
        },
    };
    uncached(
        poem::IntoResponse::into_response(Json(health)),
        StatusCode::OK,
    )
}

/// A readiness or liveness answer.
#[derive(Debug, Serialize)]
struct Probe {
    status: &'static str,
}

/// `GET /ready`: 200 `{"status":"ready"}` while the server takes traffic; 503 with `draining`
/// once shutdown has begun, or `unavailable` while the store does not answer (with Redis: also
/// while its circuit breaker is open, without waiting on Redis).
///
/// A node whose Redis is unreachable is taken out of rotation, which only helps when the other
/// nodes still reach it (a partition); when Redis is down for everyone every node reports 503
/// and HAProxy answers 503 itself, which is the truth.
#[handler]
pub async fn ready(Data(state): Data<&OpsState>) -> Response {
    let (status, probe) = if state.readiness.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if state.store.ping().await.is_err() {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    } else {
        (StatusCode::OK, "ready")
    };
    uncached(
        poem::IntoResponse::into_response(Json(Probe { status: probe })),
        status,
    )
}

/// `GET /live`: 200 `{"status":"alive"}` whenever the server answers at all.
#[handler]
pub fn live() -> Response {
    uncached(
        poem::IntoResponse::into_response(Json(Probe { status: "alive" })),
        StatusCode::OK,
    )
}

/// `GET /metrics`: every metric family, in the Prometheus text format.
#[handler]
pub fn metrics() -> poem::Result<Response> {
    let text = telemetry::metrics::global().render().map_err(|error| {
        tracing::error!(%error, "cannot render the metrics");
        HttpError(ApiError::Internal)
    })?;
    Ok(Response::builder()
        .content_type(telemetry::metrics::CONTENT_TYPE)
        .header(poem::http::header::CACHE_CONTROL, "no-store")
        .body(text))
}

/// `response` with `status`, marked as not to be cached: probes must see the current state.
fn uncached(mut response: Response, status: StatusCode) -> Response {
    response.set_status(status);
    response.headers_mut().insert(
        poem::http::header::CACHE_CONTROL,
        poem::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// `GET /api/v3/openapi.json`: `openapi.yaml`, as JSON.
#[handler]
pub fn openapi_json(Data(state): Data<&OpsState>) -> Response {
    Response::builder()
        .content_type("application/json")
        .body(state.openapi_json.clone())
}

/// `GET /api/v3/openapi.yaml`: the spec as written.
#[handler]
pub fn openapi_yaml() -> Response {
    Response::builder()
        .content_type("application/yaml")
        .body(OPENAPI_YAML)
}

/// The WebSocket API document, as written.
const ASYNCAPI_YAML: &str = include_str!("../../asyncapi.yaml");

/// `GET /api/v3/asyncapi.yaml`: the WebSocket API, as written.
#[handler]
pub fn asyncapi_yaml() -> Response {
    Response::builder()
        .content_type("application/yaml")
        .body(ASYNCAPI_YAML)
}

/// `GET /.well-known/jwks.json`: the public keys access tokens are signed with (RFC 7517), so
/// other services can verify our tokens without being able to mint them. Short-lived caching:
/// a rotated key must show up soon.
#[handler]
pub fn jwks(Data(state): Data<&OpsState>) -> Response {
    let body = serde_json::to_vec(&state.tokens.jwks()).unwrap_or_else(|error| {
        tracing::error!(%error, "cannot serialize the JWK set");
        br#"{"keys":[]}"#.to_vec()
    });
    Response::builder()
        .content_type("application/jwk-set+json")
        .header(poem::http::header::CACHE_CONTROL, "public, max-age=300")
        .body(body)
}
