//! Operational endpoints: health, the API documents and the token-signing keys.

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use poem::{
    Response, handler,
    http::StatusCode,
    web::{Data, Json},
};
use serde::Serialize;

use crate::{auth::TokenService, store::SharedStore};

/// The spec as written, served at `/api/v3/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// What the operational endpoints read.
#[derive(Clone)]
pub struct OpsState {
    store: SharedStore,
    started: Instant,
    node_id: Arc<str>,
    openapi_json: Bytes,
    tokens: Arc<TokenService>,
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
        Ok(Self {
            store,
            started: Instant::now(),
            node_id: node_id.into(),
            openapi_json: json.into(),
            tokens,
        })
    }
}

/// The health document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    status: &'static str,
    version: &'static str,
    node_id: String,
    uptime_seconds: u64,
    store: StoreHealth,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StoreHealth {
    status: &'static str,
    latency_ms: f64,
}

/// `GET /health`: 200 with status `ok` while the store answers, 503 with `down` otherwise.
#[handler]
pub async fn health(Data(state): Data<&OpsState>) -> Response {
    let started = Instant::now();
    let store_ok = state.store.ping().await.is_ok();
    let health = Health {
        status: if store_ok { "ok" } else { "down" },
        version: env!("CARGO_PKG_VERSION"),
        node_id: state.node_id.to_string(),
        uptime_seconds: state.started.elapsed().as_secs(),
        store: StoreHealth {
            status: if store_ok { "ok" } else { "down" },
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        },
    };
    let status = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = poem::IntoResponse::into_response(Json(health));
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
