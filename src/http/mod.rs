//! The REST transport: the generated poem-openapi adapter plus the edge around it (request ids,
//! tracing, error rendering, documentation and operational endpoints).

mod errors;
mod ops;
pub mod payload;

/// The generated REST adapter over [`crate::api::operations::PetStoreApi`].
#[allow(clippy::all, missing_docs)]
pub mod rest {
    include!(concat!(env!("OUT_DIR"), "/rest.rs"));
}

use std::{sync::Arc, time::Instant};

use poem::{
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route,
    http::{HeaderValue, header},
};
use poem_openapi::OpenApiService;

pub use self::ops::OpsState;
use self::payload::BodyLimits;
use crate::api::{Ctx, operations::PetStoreApi};

/// Path prefix of the API, as in the spec's `servers`.
pub const API_BASE: &str = "/api/v3";

/// The request id header, accepted from clients and echoed on every response.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest client-supplied request id we keep; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The request id of the current request (set by the edge middleware).
#[derive(Debug, Clone)]
struct RequestId(String);

/// Builds the handler-facing context from an HTTP request.
pub fn request_context(request: &Request) -> Ctx {
    let bearer_token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(|token| token.trim().to_owned());
    Ctx {
        request_id: request
            .data::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default(),
        client_ip: request.remote_addr().as_socket_addr().map(|addr| addr.ip()),
        bearer_token,
    }
}

/// The OpenAPI service for a handler: what the REST routes and the documentation are built from.
pub fn api_service<H: PetStoreApi>(handler: Arc<H>) -> OpenApiService<rest::RestApi<H>, ()> {
    OpenApiService::new(
        rest::RestApi::new(handler),
        "petstore-ws",
        env!("CARGO_PKG_VERSION"),
    )
    .server(API_BASE)
}

/// Every HTTP route of the server.
pub fn routes<H: PetStoreApi>(handler: Arc<H>, ops: OpsState, limits: BodyLimits) -> impl Endpoint {
    let service = api_service(handler);
    let swagger_ui = service.swagger_ui();
    Route::new()
        .nest(format!("{API_BASE}/docs"), swagger_ui)
        .at(format!("{API_BASE}/openapi.json"), ops::openapi_json)
        .at(format!("{API_BASE}/openapi.yaml"), ops::openapi_yaml)
        .nest(API_BASE, service)
        .at("/health", ops::health)
        .data(ops)
        .data(limits)
        .catch_all_error(errors::render)
        .around(edge)
}

/// Request id, tracing and timing for every request.
///
/// Per-request logs are at `debug` so the default `info` level costs one disabled-callsite check
/// on the hot path; server errors are always logged.
async fn edge<E: Endpoint>(next: Arc<E>, mut request: Request) -> poem::Result<Response> {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request.set_data(RequestId(request_id.clone()));
    let method = request.method().clone();
    let uri = request.uri().clone();

    let mut response = match next.call(request).await {
        Ok(response) => response.into_response(),
        Err(error) => errors::render(error).await,
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::error!(%request_id, %method, path = uri.path(), status = status.as_u16(), latency_ms, "request failed");
    } else {
        tracing::debug!(%request_id, %method, path = uri.path(), status = status.as_u16(), latency_ms, "request");
    }
    Ok(response)
}
