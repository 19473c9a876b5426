//! The HTTP edge: the one endpoint every HTTP request passes, REST operation, WebSocket upgrade
//! or operational route alike.
//!
//! In order: request id, origin check, then for API operations the caller's identification,
//! rate limit and request timeout; then the router, error rendering, response headers, and
//! tracing, timing and metrics.

use std::{
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use bytes::Bytes;
use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response,
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{Cors, CorsEndpoint},
};
use poem_openapi::OperationId;
use tracing::{Instrument, Span};

use super::{
    access::{AccessControl, Caller, api_key_header},
    direct::DirectLane,
    error::{self, HttpError},
    observe,
    paths::{self, WS_PATH},
    payload::BodyLimits,
    request_id::{REQUEST_ID, REQUEST_ID_HEADER, RequestId},
};
use crate::{
    limits::{
        RateDecision,
        rate::{HEADER_LIMIT, HEADER_REMAINING, HEADER_RESET, HEADER_RETRY_AFTER},
    },
    telemetry::metrics::{self, HttpMetrics, Operation, Transport},
};
use petstore_api::{ApiError, operations::RESPONSE_HEADERS};

/// What the edge needs besides the routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeSettings {
    /// Body size limits.
    pub body_limits: BodyLimits,
    /// Longest time an API request may take, from its head being read to its response being
    /// ready (reading the body included, so a client trickling a body is cut off).
    pub request_timeout: Duration,
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
/// rendering, tracing, timing and metrics for every request, and the choice of router by path:
/// the operations, whose routes already carry [`API_BASE`](paths::API_BASE), for
/// [operation paths](paths::is_operation_path), the other routes for everything else. Requests
/// of the [direct lane](DirectLane) the edge answers itself, within the same checks.
///
/// The choice by path prefix replaces poem's `Route::nest`, which would do the same job per
/// request by matching the prefix in a router of its own, recording the matched pattern (an
/// allocation), rebuilding the URI without the prefix (a parse and a copy) and boxing one more
/// future; on the `getPetById` read path that was a measurable share of the server's CPU.
///
/// One endpoint rather than a stack of poem middlewares (`around`, `catch_all_error`, `data`):
/// every middleware layer moves the request (several hundred bytes) and its inner future into a
/// future of its own, and on the `getPetById` read path those copies cost more than the work the
/// layers do. For the same reason a direct-lane request passes two futures of the edge's own
/// ([`Endpoint::call`] and `call_operation`), and every other route's future is boxed, so that
/// the lane's futures stay small as they are moved.
///
/// Per-request logs are at `debug` so the default `info` level costs one disabled-callsite check
/// on the hot path; server errors are always logged.
pub struct HttpEdge<O: Endpoint, R: Endpoint, D> {
    /// The operations, with routes under [`API_BASE`](paths::API_BASE).
    operations: WithCors<O>,
    /// The requests the edge answers itself, if the lane is on.
    direct: Option<D>,
    /// Documentation, documents, keys, health, readiness, liveness, metrics, the WebSocket and
    /// MCP endpoints.
    others: WithCors<R>,
    access: Arc<AccessControl>,
    settings: EdgeSettings,
    /// Request counts and latencies.
    metrics: &'static HttpMetrics,
    /// The `RateLimit-Limit` header's value, made once.
    limit_value: LimitValue,
}

impl<O: Endpoint, R: Endpoint, D: DirectLane> HttpEdge<O, R, D> {
    /// The edge in front of `operations` (routes under the API base), answering the requests of
    /// `direct` itself, and of `others` (every other route).
    pub fn new(
        (operations, direct): (O, Option<D>),
        others: R,
        access: Arc<AccessControl>,
        settings: EdgeSettings,
    ) -> Self {
        let cors = cors();
        Self {
            operations: WithCors::new(operations, &cors),
            direct,
            others: WithCors::new(others, &cors),
            access,
            settings,
            metrics: &metrics::global().http,
            limit_value: LimitValue::default(),
        }
    }

    /// Whether the request may go on, and whether it is a CORS request: no `Origin` is not CORS,
    /// an allowed one is, any other is refused (403).
    fn check_origin(&self, request: &Request) -> Result<bool, ApiError> {
        let Some(origin) = request.headers().get(header::ORIGIN) else {
            return Ok(false);
        };
        let origin = origin.to_str().unwrap_or_default();
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .or_else(|| {
                request
                    .uri()
                    .authority()
                    .map(|authority| authority.as_str())
            });
        if self.access.origins().allows(origin, host) {
            return Ok(true);
        }
        tracing::debug!(%origin, "origin not allowed");
        metrics::security().origin_rejected(if request.uri().path() == WS_PATH {
            Transport::WebSocket
        } else {
            Transport::Http
        });
        Err(ApiError::Forbidden(format!(
            "origin `{origin}` is not allowed"
        )))
    }

    /// Answers an API request past the caller checks: in the direct lane if it takes the
    /// request, else through the operations' endpoint, with what that needs attached to the
    /// request.
    async fn call_operation(
        &self,
        request: Request,
        request_id: &RequestId,
        cors: bool,
    ) -> Outcome {
        let caller = self.access.caller(&request);
        let rate = match self.access.check_rate(&caller).await {
            Ok(decision) => decision,
            Err(error) => return Outcome::refused(error),
        };
        // A CORS request takes the operations' endpoint, where poem's middleware adds the CORS
        // headers.
        let direct = match &self.direct {
            Some(lane) if !cors => lane.route(&request).map(|route| (lane, route)),
            _ => None,
        };
        let limit = self.settings.request_timeout;
        let result = match direct {
            Some((lane, route)) => {
                tokio::time::timeout(limit, lane.answer(route, &caller, request_id))
                    .await
                    .map_err(timed_out)
            }
            // Boxed, as the future of every route but the direct lane's: they are large, and
            // inline they would make every future around them large, which each layer moves.
            None => {
                let routed = Box::pin(self.call_routed(request, caller, request_id, cors));
                tokio::time::timeout(limit, routed)
                    .await
                    .unwrap_or_else(|elapsed| Err(timed_out(elapsed)))
            }
        };
        Outcome {
            result,
            rate,
            answered_by: direct.map(|(_, route)| D::operation_id(route)),
        }
    }

    /// An API request the direct lane does not take: through the operations' endpoint, with
    /// what that reads attached to the request.
    async fn call_routed(
        &self,
        mut request: Request,
        caller: Caller,
        request_id: &RequestId,
        cors: bool,
    ) -> poem::Result<Response> {
        attach(&mut request, request_id, self.settings.body_limits);
        request.set_data(caller);
        self.operations.call(request, cors).await
    }

    /// A request for any other route (documentation, documents, health, metrics, the WebSocket
    /// and MCP endpoints), with what they read attached to the request.
    async fn call_other(
        &self,
        mut request: Request,
        request_id: &RequestId,
        cors: bool,
    ) -> poem::Result<Response> {
        attach(&mut request, request_id, self.settings.body_limits);
        self.others.call(request, cors).await
    }
}

/// An endpoint behind the edge, and the same answering CORS requests from accepted origins.
struct WithCors<E> {
    plain: Arc<E>,
    cors: CorsEndpoint<Arc<E>>,
}

impl<E: Endpoint> WithCors<E> {
    fn new(endpoint: E, cors: &Cors) -> Self {
        let plain = Arc::new(endpoint);
        Self {
            cors: cors.transform(plain.clone()),
            plain,
        }
    }

    /// `request` through poem's CORS middleware if it is a CORS request, else straight to the
    /// endpoint (`E`'s own call, not the `Arc`'s, which is one more future moving the request).
    async fn call(&self, request: Request, cors: bool) -> poem::Result<Response> {
        if cors {
            self.cors.call(request).await
        } else {
            E::call(&self.plain, request)
                .await
                .map(IntoResponse::into_response)
        }
    }
}

/// What became of a request past the origin check.
struct Outcome {
    result: poem::Result<Response>,
    /// The rate-limit decision to report in the response headers, when a limit was counted.
    rate: Option<RateDecision>,
    /// The operation the edge answered with itself (the direct lane); the operations' endpoint
    /// reports its own in the response.
    answered_by: Option<&'static str>,
}

impl Outcome {
    fn refused(error: ApiError) -> Self {
        Self::answered(Err(HttpError(error).into()))
    }

    fn answered(result: poem::Result<Response>) -> Self {
        Self {
            result,
            rate: None,
            answered_by: None,
        }
    }
}

/// The error of a request that outlasted the request timeout (408).
fn timed_out(_: tokio::time::error::Elapsed) -> poem::Error {
    HttpError(ApiError::Timeout).into()
}

/// What the routes behind the edge read from the request: its id and the body limits.
fn attach(request: &mut Request, request_id: &RequestId, body_limits: BodyLimits) {
    request.set_data(request_id.clone());
    request.set_data(body_limits);
}

impl<O: Endpoint, R: Endpoint, D: DirectLane> Endpoint for HttpEdge<O, R, D> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let in_flight = self.metrics.start();
        let request_id = RequestId::of(&request);
        let method = request.method().clone();
        let uri = request.uri().clone();
        let api = paths::is_operation_path(uri.path());
        let span = request_span(&request_id, &method, uri.path());

        let outcome = match self.check_origin(&request) {
            Err(error) => Outcome::refused(error),
            Ok(cors) if api => in_span!(span, self.call_operation(request, &request_id, cors)),
            // Boxed, as in `call_operation`.
            Ok(cors) => Outcome::answered(in_span!(
                span,
                Box::pin(self.call_other(request, &request_id, cors))
            )),
        };
        let Outcome {
            result,
            rate,
            answered_by,
        } = outcome;
        let answered_by = answered_by.or_else(|| {
            match &result {
                Ok(response) => response.data::<OperationId>(),
                Err(error) => error.data::<OperationId>(),
            }
            .map(|id| id.0)
        });
        // Errors are rendered here, the one place every route's errors pass through.
        let mut response = match result {
            Ok(response) => response,
            Err(error) => error::render(error).await,
        };
        let rate = rate.as_ref().map(|decision| (decision, &self.limit_value));
        finish_headers(&mut response, &request_id, rate, uri.path());

        let operation = observe::operation(answered_by, &method, uri.path(), api);
        let elapsed = started.elapsed();
        in_flight.finish(operation, &method, response.status(), elapsed);
        log_request(
            &span,
            &request_id,
            &method,
            uri.path(),
            operation,
            response.status(),
            elapsed,
        );
        Ok(response)
    }
}

/// The request's span, at `debug`; what answered it, its status and latency are recorded
/// once known.
fn request_span(request_id: &RequestId, method: &Method, path: &str) -> Span {
    tracing::debug_span!(
        "request",
        request_id = request_id.as_str(),
        %method,
        path,
        operation = tracing::field::Empty,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

/// The rate-limit headers' names ([`RateDecision::headers`]), made once: the limiter names them
/// in their documented mixed case, which `HeaderName` would lower-case into a fresh allocation
/// on every response. A `static`, not a `const`: a `const` array is built and dropped again at
/// every use.
static RATE_HEADERS: [(&str, HeaderName); 4] = [
    (HEADER_LIMIT, HeaderName::from_static("ratelimit-limit")),
    (
        HEADER_REMAINING,
        HeaderName::from_static("ratelimit-remaining"),
    ),
    (HEADER_RESET, HeaderName::from_static("ratelimit-reset")),
    (HEADER_RETRY_AFTER, header::RETRY_AFTER),
];

/// The header name of one of [`RateDecision::headers`].
fn rate_header_name(name: &str) -> Option<HeaderName> {
    match RATE_HEADERS.iter().find(|(known, _)| *known == name) {
        Some((_, made)) => Some(made.clone()),
        None => HeaderName::from_bytes(name.as_bytes()).ok(),
    }
}

/// A number as a header value in one allocation: `HeaderValue::from(u64)` makes two (a growable
/// buffer, then the shared block its `freeze` adds for a buffer not filled to capacity).
fn number_value(number: u64) -> HeaderValue {
    let mut text = itoa::Buffer::new();
    HeaderValue::from_maybe_shared(Bytes::copy_from_slice(text.format(number).as_bytes()))
        .unwrap_or_else(|_| HeaderValue::from(number))
}

/// The `RateLimit-Limit` value, which is the same on every response of a limiter: made once and
/// shared (a reference count) instead of formatted and allocated per response.
#[derive(Debug, Default)]
struct LimitValue(OnceLock<(u64, HeaderValue)>);

impl LimitValue {
    fn of(&self, limit: u64) -> HeaderValue {
        match self.0.get_or_init(|| (limit, number_value(limit))) {
            (made_for, value) if *made_for == limit => value.clone(),
            _ => number_value(limit),
        }
    }
}

/// The headers every response gets from the edge: the request id, the rate-limit state when
/// a limit was counted, and the `Allow` header of a 405.
fn finish_headers(
    response: &mut Response,
    request_id: &RequestId,
    rate: Option<(&RateDecision, &LimitValue)>,
    path: &str,
) {
    let headers = response.headers_mut();
    headers.insert(REQUEST_ID_HEADER, request_id.header_value().clone());
    if let Some((decision, limit_value)) = rate {
        for (name, value) in decision.headers() {
            let value = if name == HEADER_LIMIT {
                limit_value.of(value)
            } else {
                number_value(value)
            };
            if let Some(name) = rate_header_name(name) {
                headers.insert(name, value);
            }
        }
    }
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Ok(allow) = HeaderValue::from_str(&paths::allowed_methods(path))
    {
        response.headers_mut().insert(header::ALLOW, allow);
    }
}

/// Records the outcome in the request's span and logs it: at `debug`, or at `error` for a
/// server error whatever the level.
fn log_request(
    span: &Span,
    request_id: &RequestId,
    method: &Method,
    path: &str,
    operation: Operation,
    status: StatusCode,
    elapsed: Duration,
) {
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let operation = operation.label();
    if !span.is_disabled() {
        span.record("operation", operation);
        span.record("status", status.as_u16());
        span.record("latency_ms", latency_ms);
    }
    let request_id = request_id.as_str();
    if status.is_server_error() {
        tracing::error!(%request_id, %method, path, operation, status = status.as_u16(), latency_ms, "request failed");
    } else {
        tracing::debug!(parent: span, %request_id, %method, path, operation, status = status.as_u16(), latency_ms, "request");
    }
}

/// CORS for origins the edge has already accepted ([`AccessControl::origins`]): the
/// allow-list decision is the edge's (it knows the request's own host, so same-origin pages
/// such as the documentation UI always work), poem's middleware answers preflights and adds
/// the response headers. Credentials are bearer tokens, never cookies, so no
/// `Access-Control-Allow-Credentials`.
///
/// The service-key header allowed is the one the spec's `apiKey` scheme names; the headers
/// exposed are the request id and every response header the spec documents.
fn cors() -> Cors {
    let allowed = [
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::HeaderName::from_static(REQUEST_ID),
    ]
    .into_iter()
    .chain(api_key_header());
    Cors::new()
        .allow_origins_fn(|_| true)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers(allowed)
        .expose_headers(
            std::iter::once(header::HeaderName::from_static(REQUEST_ID)).chain(
                RESPONSE_HEADERS
                    .iter()
                    .filter_map(|name| header::HeaderName::from_bytes(name.as_bytes()).ok()),
            ),
        )
        .max_age(600)
}

#[cfg(test)]
mod tests {
    use poem::http::{HeaderName, HeaderValue};

    use super::{
        LimitValue, RATE_HEADERS, REQUEST_ID, REQUEST_ID_HEADER, number_value, rate_header_name,
    };

    #[test]
    fn the_names_made_once_are_the_names_the_limiter_and_request_ids_give() {
        for (name, made) in &RATE_HEADERS {
            assert_eq!(
                Some(made),
                HeaderName::from_bytes(name.as_bytes()).ok().as_ref()
            );
            assert_eq!(rate_header_name(name).as_ref(), Some(made));
        }
        assert_eq!(REQUEST_ID_HEADER, HeaderName::from_static(REQUEST_ID));
        assert_eq!(
            rate_header_name("RateLimit-Policy"),
            HeaderName::from_bytes(b"ratelimit-policy").ok()
        );
    }

    #[test]
    fn numbers_become_the_header_values_http_would_make() {
        for number in [0, 7, 42, 1_000, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(number_value(number), HeaderValue::from(number));
        }
    }

    #[test]
    fn the_limit_value_made_once_follows_a_different_limit() {
        let made = LimitValue::default();
        assert_eq!(made.of(60), HeaderValue::from(60_u64));
        assert_eq!(made.of(60), HeaderValue::from(60_u64));
        assert_eq!(made.of(100), HeaderValue::from(100_u64));
    }
}
