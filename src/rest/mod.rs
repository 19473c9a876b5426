//! The REST transport: the generated poem-openapi adapter plus the edge around it (request ids,
//! tracing, error rendering, documentation and operational endpoints).

pub mod access;
pub mod admin;
mod errors;
mod observe;
mod ops;
pub mod payload;

pub mod runtime;

/// The generated REST adapter over [`petstore_api::operations::PetStoreApi`].
pub mod adapter {
    include!(concat!(env!("OUT_DIR"), "/rest.rs"));
}

use std::{
    collections::HashMap,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use poem::{
    Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Middleware, Request, Response, Route,
    endpoint::BoxEndpoint,
    get,
    http::{HeaderValue, Method, StatusCode, header},
    middleware::{Cors, CorsEndpoint},
};
use poem_openapi::{
    OpenApi, OpenApiService, OperationId,
    registry::{MetaApi, MetaSecurityScheme, Registry},
};
use tracing::Instrument;

pub use self::ops::{OpsState, Readiness};
use self::{access::AccessControl, payload::BodyLimits};
use crate::{
    limits::RateDecision,
    rest::payload::HttpError,
    telemetry::metrics::{self, HttpMetrics, Transport},
    ws::{WsEndpoint, WsService},
};
use petstore_api::{
    ApiError,
    operations::{OPERATIONS, PetStoreApi, SECURITY_SCHEMES},
    security::SchemeKind,
    ws::WS_PATH,
};

pub use petstore_api::operations::API_BASE;

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

/// The OpenAPI service for a handler: what the REST routes and the documentation are built from.
pub fn api_service<H: PetStoreApi>(
    handler: Arc<H>,
) -> OpenApiService<SecurityDocumented<adapter::RestApi<H>>, ()> {
    OpenApiService::new(
        SecurityDocumented(adapter::RestApi::new(handler)),
        "petstore-ws",
        env!("CARGO_PKG_VERSION"),
    )
    .server(API_BASE)
}

/// What the edge needs besides the routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeSettings {
    /// Body size limits.
    pub body_limits: BodyLimits,
    /// Longest time an API request may take, from its head being read to its response being
    /// ready (reading the body included, so a client trickling a body is cut off).
    pub request_timeout: Duration,
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
pub fn routes<H: PetStoreApi>(
    handler: Arc<H>,
    ws: Arc<WsService<H>>,
    ops: OpsState,
    access: Arc<AccessControl>,
    settings: EdgeSettings,
) -> impl Endpoint {
    let swagger_ui = api_service(handler.clone()).swagger_ui();
    let operations = Arc::new(
        OpenApiService::new(
            UnderApiBase(adapter::RestApi::new(handler)),
            "petstore-ws",
            env!("CARGO_PKG_VERSION"),
        )
        .into_endpoint(),
    );
    let others = Arc::new(
        Route::new()
            .nest(DOCS_PATH, swagger_ui)
            .at(OPENAPI_JSON_PATH, get(ops::openapi_json.data(ops.clone())))
            .at(OPENAPI_YAML_PATH, get(ops::openapi_yaml))
            .at(ASYNCAPI_YAML_PATH, get(ops::asyncapi_yaml))
            .at(WS_PATH, WsEndpoint(ws))
            .at(JWKS_PATH, get(ops::jwks.data(ops.clone())))
            .at(
                admin::ADMIN_NODES_PATH,
                get(admin::list_nodes.data(admin::AdminState::new(ops.nodes(), access.clone()))),
            )
            .at("/health", get(ops::health.data(ops.clone())))
            .at("/ready", get(ops::ready.data(ops)))
            .at("/live", get(ops::live))
            .at("/metrics", get(ops::metrics)),
    );
    let cors = cors();
    Edge {
        cors_operations: cors.transform(operations.clone()),
        operations,
        cors_others: cors.transform(others.clone()),
        others,
        access,
        settings,
        metrics: &metrics::global().http,
    }
}

/// CORS for origins the edge has already accepted ([`access::AccessControl::origins`]): the
/// allow-list decision is the edge's (it knows the request's own host, so same-origin pages
/// such as the documentation UI always work), poem's middleware answers preflights and adds
/// the response headers. Credentials are bearer tokens, never cookies, so no
/// `Access-Control-Allow-Credentials`.
fn cors() -> Cors {
    Cors::new()
        .allow_origins_fn(|_| true)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("api_key"),
            header::HeaderName::from_static(REQUEST_ID),
        ])
        .expose_headers([
            header::HeaderName::from_static(REQUEST_ID),
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
            header::HeaderName::from_static("ratelimit-limit"),
            header::HeaderName::from_static("ratelimit-remaining"),
            header::HeaderName::from_static("ratelimit-reset"),
            header::HeaderName::from_static("x-rate-limit"),
            header::HeaderName::from_static("x-expires-after"),
        ])
        .max_age(600)
}

/// Where the public token-signing keys are served.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Where the documentation UI is mounted.
const DOCS_PATH: &str = "/api/v3/docs";
/// Where the spec is served as JSON.
const OPENAPI_JSON_PATH: &str = "/api/v3/openapi.json";
/// Where the spec is served as written.
const OPENAPI_YAML_PATH: &str = "/api/v3/openapi.yaml";
/// Where the WebSocket API document is served as written.
const ASYNCAPI_YAML_PATH: &str = "/api/v3/asyncapi.yaml";

/// Whether a request path belongs to the operations' router rather than to the operational
/// routes: everything under [`API_BASE`] except the documents, the WebSocket endpoint and the
/// documentation UI (which are static paths and so won over the operations' paths in the single
/// router this replaces).
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
    !under_docs
        && path != OPENAPI_JSON_PATH
        && path != OPENAPI_YAML_PATH
        && path != ASYNCAPI_YAML_PATH
        && path != WS_PATH
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

/// Documents the spec's security schemes and each operation's requirements, from the generated
/// data the requirements are enforced with: poem-openapi's own security support is built on
/// extractors that would check credentials a second way.
pub struct SecurityDocumented<T>(T);

impl<T: OpenApi> OpenApi for SecurityDocumented<T> {
    fn meta() -> Vec<MetaApi> {
        let mut apis = T::meta();
        for api in &mut apis {
            for path in &mut api.paths {
                for operation in &mut path.operations {
                    let Some(info) = OPERATIONS
                        .iter()
                        .find(|info| Some(info.id) == operation.operation_id)
                    else {
                        continue;
                    };
                    operation.security = info
                        .security
                        .iter()
                        .map(|requirement| {
                            requirement
                                .0
                                .iter()
                                .map(|needed| {
                                    (
                                        needed.scheme.name,
                                        needed.scopes.iter().map(|scope| scope.as_str()).collect(),
                                    )
                                })
                                .collect()
                        })
                        .collect();
                }
            }
        }
        apis
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
        for scheme in SECURITY_SCHEMES {
            let documented = match scheme.kind {
                SchemeKind::HttpBearer { bearer_format } => MetaSecurityScheme {
                    ty: "http",
                    description: scheme.description,
                    name: None,
                    key_in: None,
                    scheme: Some("bearer"),
                    bearer_format,
                    flows: None,
                    openid_connect_url: None,
                },
                SchemeKind::ApiKeyHeader { header } => MetaSecurityScheme {
                    ty: "apiKey",
                    description: scheme.description,
                    name: Some(header),
                    key_in: Some("header"),
                    scheme: None,
                    bearer_format: None,
                    flows: None,
                    openid_connect_url: None,
                },
            };
            registry.create_security_scheme(scheme.name, documented);
        }
    }

    fn add_routes(self, route_table: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {
        self.0.add_routes(route_table);
    }
}

/// Awaits a future inside `span` when the span is enabled, and as it is otherwise.
///
/// Wrapping a future to instrument it moves the whole future (its size is that of every future
/// nested in it, several kilobytes for an operation) into the wrapper once more; on the
/// `getPetById` read path that copy cost more than the metrics. A macro rather than a function,
/// which would itself be one more such layer.
macro_rules! in_span {
    ($span:expr, $future:expr) => {
        if $span.is_disabled() {
            $future.await
        } else {
            $future.instrument($span.clone()).await
        }
    };
}

/// Request id, origin check, caller identification, rate limit, request timeout, error
/// rendering, tracing, timing and metrics for every request, and the choice of router by path
/// (see [`routes`]).
///
/// One endpoint rather than a stack of poem middlewares (`around`, `catch_all_error`, `data`):
/// every middleware layer moves the request (several hundred bytes) and its inner future into a
/// future of its own, and on the `getPetById` read path those copies cost more than the work the
/// layers do.
///
/// Per-request logs are at `debug` so the default `info` level costs one disabled-callsite check
/// on the hot path; server errors are always logged.
struct Edge<O: Endpoint, R: Endpoint> {
    /// The operations, with routes under [`API_BASE`].
    operations: Arc<O>,
    /// The same, answering CORS requests from accepted origins.
    cors_operations: CorsEndpoint<Arc<O>>,
    /// Documentation, documents, keys, health, readiness, liveness and metrics.
    others: Arc<R>,
    /// The same, for CORS.
    cors_others: CorsEndpoint<Arc<R>>,
    access: Arc<AccessControl>,
    settings: EdgeSettings,
    /// Request counts and latencies.
    metrics: &'static HttpMetrics,
}

impl<O: Endpoint, R: Endpoint> Edge<O, R> {
    /// Routes an API request past the caller checks; `Ok` carries the rate-limit decision to
    /// report in the response headers.
    async fn call_operation(
        &self,
        mut request: Request,
        cors: bool,
    ) -> (poem::Result<Response>, Option<RateDecision>) {
        let caller = self.access.caller(&request);
        let decision = match self.access.check_rate(&caller).await {
            Ok(decision) => decision,
            Err(error) => return (Err(HttpError(error).into()), None),
        };
        request.set_data(caller);
        let call = async {
            if cors {
                self.cors_operations.call(request).await
            } else {
                self.operations
                    .call(request)
                    .await
                    .map(IntoResponse::into_response)
            }
        };
        let result = tokio::time::timeout(self.settings.request_timeout, call)
            .await
            .unwrap_or_else(|_| Err(HttpError(ApiError::Timeout).into()));
        (result, decision)
    }
}

impl<O: Endpoint, R: Endpoint> Endpoint for Edge<O, R> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let in_flight = self.metrics.start();
        let request_id = request
            .headers()
            .get(REQUEST_ID)
            .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.to_str().is_ok())
            .cloned()
            .unwrap_or_else(generate_request_id);
        request.set_data(RequestId(request_id.clone()));
        request.set_data(self.settings.body_limits);
        let method = request.method().clone();
        let uri = request.uri().clone();
        let api = is_operation_path(uri.path());
        let span = tracing::debug_span!(
            "request",
            request_id = request_id.to_str().unwrap_or_default(),
            %method,
            path = uri.path(),
            operation = tracing::field::Empty,
            status = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        );
        let cors = match request.headers().get(header::ORIGIN) {
            None => Ok(false),
            Some(origin) => {
                let origin = origin.to_str().unwrap_or_default();
                let host = request
                    .headers()
                    .get(header::HOST)
                    .and_then(|host| host.to_str().ok())
                    .or_else(|| uri.authority().map(|authority| authority.as_str()));
                if self.access.origins().allows(origin, host) {
                    Ok(true)
                } else {
                    tracing::debug!(%origin, "origin not allowed");
                    metrics::security().origin_rejected(if uri.path() == WS_PATH {
                        Transport::WebSocket
                    } else {
                        Transport::Http
                    });
                    Err(ApiError::Forbidden(format!(
                        "origin `{origin}` is not allowed"
                    )))
                }
            }
        };

        let (result, decision) = match cors {
            Err(error) => (Err(HttpError(error).into()), None),
            Ok(cors) if api => in_span!(span, self.call_operation(request, cors)),
            Ok(true) => (in_span!(span, self.cors_others.call(request)), None),
            Ok(false) => (
                in_span!(span, self.others.call(request)).map(IntoResponse::into_response),
                None,
            ),
        };
        let answered_by = match &result {
            Ok(response) => response.data::<OperationId>(),
            Err(error) => error.data::<OperationId>(),
        }
        .map(|id| id.0);
        // Errors are rendered here, the one place every route's errors pass through.
        let mut response = match result {
            Ok(response) => response,
            Err(error) => errors::render(error).await,
        };
        let headers = response.headers_mut();
        headers.insert(REQUEST_ID, request_id.clone());
        if let Some(decision) = decision {
            for (name, value) in decision.headers() {
                if let Ok(name) = header::HeaderName::from_bytes(name.as_bytes()) {
                    headers.insert(name, HeaderValue::from(value));
                }
            }
        }
        let status = response.status();
        if status == StatusCode::METHOD_NOT_ALLOWED
            && let Ok(allow) = HeaderValue::from_str(&allowed_methods(uri.path()))
        {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        let elapsed = started.elapsed();
        let operation = observe::operation(answered_by, &method, uri.path(), api);
        in_flight.finish(operation, &method, status, elapsed);
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        let operation = operation.label();
        span.record("operation", operation);
        span.record("status", status.as_u16());
        span.record("latency_ms", latency_ms);
        let request_id = request_id.to_str().unwrap_or_default();
        if status.is_server_error() {
            tracing::error!(%request_id, %method, path = uri.path(), operation, status = status.as_u16(), latency_ms, "request failed");
        } else {
            tracing::debug!(parent: &span, %request_id, %method, path = uri.path(), operation, status = status.as_u16(), latency_ms, "request");
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
