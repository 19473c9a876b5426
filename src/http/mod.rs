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

use std::{
    collections::HashMap,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use poem::{
    Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Request, Response, Route,
    endpoint::BoxEndpoint,
    get,
    http::{HeaderValue, Method, StatusCode, header},
};
use poem_openapi::{
    OpenApi, OpenApiService,
    registry::{MetaApi, Registry},
};

pub use self::ops::OpsState;
use self::payload::BodyLimits;
use crate::api::{
    Ctx,
    operations::{OPERATIONS, PetStoreApi},
};

/// Path prefix of the API, as in the spec's `servers`.
pub const API_BASE: &str = "/api/v3";

/// The request id header, accepted from clients and echoed on every response.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest client-supplied request id we keep; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The request id of the current request (set by the edge).
///
/// Kept as the header value it is echoed as: a client's id is shared with the request headers
/// (a reference-counted clone), and echoing it costs no copy or re-validation.
#[derive(Debug, Clone)]
struct RequestId(HeaderValue);

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
            .and_then(|id| id.0.to_str().ok())
            .map(str::to_owned)
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
///
/// The operations are routed by their own endpoint, whose routes already carry [`API_BASE`]
/// ([`UnderApiBase`]), and the edge picks it or the operational routes by path prefix
/// ([`is_operation_path`]). poem's `Route::nest` would do the same job per request by matching
/// the prefix in a router of its own, recording the matched pattern (an allocation), rebuilding
/// the URI without the prefix (a parse and a copy) and boxing one more future; on the
/// `getPetById` read path that was a measurable share of the server's CPU.
///
/// The operational endpoints answer GET only (other methods get 405). Their state is attached only
/// to the endpoints that read it, so API requests do not pay for cloning and storing it.
pub fn routes<H: PetStoreApi>(handler: Arc<H>, ops: OpsState, limits: BodyLimits) -> impl Endpoint {
    let swagger_ui = api_service(handler.clone()).swagger_ui();
    let operations = OpenApiService::new(
        UnderApiBase(rest::RestApi::new(handler)),
        "petstore-ws",
        env!("CARGO_PKG_VERSION"),
    )
    .into_endpoint();
    let others = Route::new()
        .nest(DOCS_PATH, swagger_ui)
        .at(OPENAPI_JSON_PATH, get(ops::openapi_json.data(ops.clone())))
        .at(OPENAPI_YAML_PATH, get(ops::openapi_yaml))
        .at("/health", get(ops::health.data(ops)));
    Edge {
        operations,
        others,
        limits,
    }
}

/// Where the documentation UI is mounted.
const DOCS_PATH: &str = "/api/v3/docs";
/// Where the spec is served as JSON.
const OPENAPI_JSON_PATH: &str = "/api/v3/openapi.json";
/// Where the spec is served as written.
const OPENAPI_YAML_PATH: &str = "/api/v3/openapi.yaml";

/// Whether a request path belongs to the operations' router rather than to the operational
/// routes: everything under [`API_BASE`] except the documents and the documentation UI (which
/// are static paths and so won over the operations' paths in the single router this replaces).
fn is_operation_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix(API_BASE) else {
        return false;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return false;
    }
    let under_docs = path
        .strip_prefix(DOCS_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    !under_docs && path != OPENAPI_JSON_PATH && path != OPENAPI_YAML_PATH
}

/// An [`OpenApi`] whose routes are mounted under [`API_BASE`], documented unchanged.
///
/// The generated adapter's paths are relative to the spec's server URL (`/pet/:petId`). Prefixing
/// them here, once at start-up, lets the operations' router match full request paths, so no
/// per-request prefix stripping (`Route::nest`) is needed. Only routing changes: the documented
/// paths ([`OpenApi::meta`]) stay relative, as the spec has them.
struct UnderApiBase<T>(T);

impl<T: OpenApi> OpenApi for UnderApiBase<T> {
    fn meta() -> Vec<MetaApi> {
        T::meta()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn add_routes(self, route_table: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {
        let mut relative = HashMap::new();
        self.0.add_routes(&mut relative);
        for (path, methods) in relative {
            route_table
                .entry(format!("{API_BASE}{path}"))
                .or_default()
                .extend(methods);
        }
    }
}

/// Request id, body limits, error rendering, tracing and timing for every request, and the choice
/// of router by path (see [`routes`]).
///
/// One endpoint rather than a stack of poem middlewares (`around`, `catch_all_error`, `data`):
/// every middleware layer moves the request (several hundred bytes) and its inner future into a
/// future of its own, and on the `getPetById` read path those copies cost more than the work the
/// layers do.
///
/// Per-request logs are at `debug` so the default `info` level costs one disabled-callsite check
/// on the hot path; server errors are always logged.
struct Edge<O, R> {
    /// The operations, with routes under [`API_BASE`].
    operations: O,
    /// Documentation, documents and health.
    others: R,
    limits: BodyLimits,
}

impl<O: Endpoint, R: Endpoint> Endpoint for Edge<O, R> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let request_id = request
            .headers()
            .get(REQUEST_ID)
            .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.to_str().is_ok())
            .cloned()
            .unwrap_or_else(generate_request_id);
        request.set_data(RequestId(request_id.clone()));
        request.set_data(self.limits);
        let method = request.method().clone();
        let uri = request.uri().clone();

        let result = if is_operation_path(uri.path()) {
            self.operations
                .call(request)
                .await
                .map(IntoResponse::into_response)
        } else {
            self.others
                .call(request)
                .await
                .map(IntoResponse::into_response)
        };
        // Errors are rendered here, the one place every route's errors pass through.
        let mut response = match result {
            Ok(response) => response,
            Err(error) => errors::render(error).await,
        };
        response
            .headers_mut()
            .insert(REQUEST_ID, request_id.clone());
        let status = response.status();
        if status == StatusCode::METHOD_NOT_ALLOWED
            && let Ok(allow) = HeaderValue::from_str(&allowed_methods(uri.path()))
        {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let request_id = request_id.to_str().unwrap_or_default();
        if status.is_server_error() {
            tracing::error!(%request_id, %method, path = uri.path(), status = status.as_u16(), latency_ms, "request failed");
        } else {
            tracing::debug!(%request_id, %method, path = uri.path(), status = status.as_u16(), latency_ms, "request");
        }
        Ok(response)
    }
}

/// A fresh request id, formatted as a UUID (version 4 layout).
///
/// Request ids must be unique, not secret: clients may send their own. So instead of asking the
/// operating system for 122 random bits per request (a `getrandom` call on every request), the
/// process draws random bits once and makes each id unique with a counter in the last 48 bits
/// (XORed into the random bits, so ids of different processes still look unrelated).
fn generate_request_id() -> HeaderValue {
    static SEED: OnceLock<[u8; 16]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = *SEED.get_or_init(|| *uuid::Uuid::new_v4().as_bytes());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    for (byte, count) in bytes[10..].iter_mut().zip(&count[2..]) {
        *byte ^= count;
    }
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
        .unwrap_or_else(|_| HeaderValue::from_static("00000000-0000-4000-8000-000000000000"))
}

/// The `Allow` header of a 405: the methods the spec has for the path (static path segments win
/// over parameters, as in the router); the operational endpoints are GET-only.
fn allowed_methods(path: &str) -> String {
    let Some(api_path) = path.strip_prefix(API_BASE) else {
        return "GET".to_owned();
    };
    let segments: Vec<&str> = api_path.split('/').collect();
    let matching = |static_only: bool| -> Vec<&'static str> {
        OPERATIONS
            .iter()
            .filter(|operation| {
                let template: Vec<&str> = operation.path.split('/').collect();
                template.len() == segments.len()
                    && template.iter().zip(&segments).all(|(template, segment)| {
                        template == segment || (!static_only && template.starts_with('{'))
                    })
            })
            .map(|operation| operation.method)
            .collect()
    };
    let mut methods = matching(true);
    if methods.is_empty() {
        methods = matching(false);
    }
    if methods.is_empty() {
        // The documentation routes under the API base.
        return "GET".to_owned();
    }
    methods.sort_unstable();
    methods.dedup();
    methods.join(", ")
}

#[cfg(test)]
mod tests {
    use super::{
        API_BASE, DOCS_PATH, OPENAPI_JSON_PATH, OPENAPI_YAML_PATH, allowed_methods,
        is_operation_path,
    };

    #[test]
    fn allow_lists_the_spec_methods_of_the_path() {
        assert_eq!(allowed_methods("/api/v3/pet"), "POST, PUT");
        assert_eq!(allowed_methods("/api/v3/pet/7"), "DELETE, GET, POST");
        assert_eq!(allowed_methods("/api/v3/pet/findByStatus"), "GET");
        assert_eq!(allowed_methods("/api/v3/store/order/1"), "DELETE, GET, PUT");
        assert_eq!(allowed_methods("/health"), "GET");
        assert_eq!(allowed_methods("/api/v3/openapi.json"), "GET");
    }

    #[test]
    fn operational_paths_are_under_the_api_base() {
        for path in [DOCS_PATH, OPENAPI_JSON_PATH, OPENAPI_YAML_PATH] {
            assert!(path.starts_with(&format!("{API_BASE}/")), "{path}");
        }
    }

    #[test]
    fn only_operation_paths_go_to_the_operations_router() {
        for path in [
            "/api/v3",
            "/api/v3/",
            "/api/v3/pet/1",
            "/api/v3/user/login",
            "/api/v3/docsx",
            "/api/v3/openapi.json/x",
        ] {
            assert!(is_operation_path(path), "{path}");
        }
        for path in [
            "/health",
            "/",
            "/api/v3x/pet/1",
            "/api/v3/docs",
            "/api/v3/docs/",
            "/api/v3/docs/index.html",
            "/api/v3/openapi.json",
            "/api/v3/openapi.yaml",
        ] {
            assert!(!is_operation_path(path), "{path}");
        }
    }
}
