//! Idempotent requests, for every transport: a write sent again with the same key gets the first
//! answer instead of running again.
//!
//! - REST: the `Idempotency-Key` request header on `POST`, `PUT` and `DELETE`
//!   (`draft-ietf-httpapi-idempotency-key-header`), handled by [`Idempotent`], the endpoint the
//!   operations sit behind. The spec documents the header on each of those operations; the
//!   generated adapter does not read it, so no handler deals with it.
//! - WebSocket: a write's `correlationId` is its key ([`Idempotency::dispatch_once`], called by
//!   the session around the generated dispatch).
//!
//! The rules are the same for both:
//!
//! - A key belongs to its caller: the principal once authenticated, else the client address
//!   (a caller with neither gets no idempotency: nothing to tell it apart from others); over
//!   REST to one target too (method and path), so one key used on two endpoints is two keys.
//! - The first request with a key runs, and its answer is kept for the configured time to live;
//!   a repeat of the same request (same fingerprint: REST method, path with query and body
//!   bytes; WebSocket action and payload) gets that answer, marked `Idempotency-Replayed: true`
//!   over REST, without running again.
//! - The same key for a different request is refused, 422 `VALIDATION_ERROR`: the client reused
//!   a key, and running it would break the promise the key made.
//! - A repeat while the first still runs is refused, 409 `CONFLICT` with `Retry-After`.
//! - Server errors (5xx) are not kept, nor a request that was cut off (timeout, dropped
//!   connection): the key is released and the client's retry runs. Over WebSocket only
//!   successes are kept; a refused write is checked again when it is sent again.
//! - If the records cannot be reached, a request with a key fails with 503: running it without
//!   them could run it twice, which is what the key asked the server not to do.

use std::{net::IpAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
};
use poem_openapi::OperationId;
use uuid::Uuid;

use super::{
    access::Caller,
    error::{self, HttpError, error_response},
    payload::BodyLimits,
};
use crate::{
    auth::Authentication,
    idempotency::{
        Begin, Claim, Fingerprint, IdempotencyError, IdempotencyStore, RecordKey, StoredResponse,
    },
    telemetry::metrics::{self, IdempotencyResult, Transport},
};
use petstore_api::{
    ApiError, models::FieldError, operations::RESPONSE_HEADERS, payload::Success, ws::Action,
};

/// The request header carrying the key (REST).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The response header marking a replayed answer (REST).
pub const IDEMPOTENCY_REPLAYED: &str = "idempotency-replayed";

/// The longest key accepted, in bytes (the spec's `maxLength`).
pub const MAX_KEY_BYTES: usize = 255;

/// How long a refused repeat should wait before trying again, in seconds.
const IN_FLIGHT_RETRY_AFTER_SECS: u64 = 1;

/// Response headers kept with an answer and sent again on replay, besides the ones the spec
/// documents: what a client needs to read the body and follow it. Per-request headers (request
/// id, rate-limit state, CORS) are added afresh to every response, replay or not.
const KEPT_HEADERS: [&str; 6] = [
    "content-type",
    "location",
    "retry-after",
    "cache-control",
    "x-content-type-options",
    "www-authenticate",
];

/// How long keys live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencySettings {
    /// How long a finished request's answer is kept (and its key refused for other requests).
    pub ttl: Duration,
    /// How long a running request holds its key at most: longer than any request may run, so
    /// only a node that died mid-request lets it lapse.
    pub lease: Duration,
}

/// The idempotency records and the rules around them, shared by the transports.
pub struct Idempotency {
    store: Arc<dyn IdempotencyStore>,
    settings: IdempotencySettings,
}

/// A WebSocket request as [`Idempotency::dispatch_once`] judges it.
#[derive(Debug, Clone, Copy)]
pub struct WsRequest<'a> {
    /// The session's credentials (whose keys).
    pub authentication: &'a Authentication,
    /// The client's address (whose keys, when anonymous).
    pub client_ip: Option<IpAddr>,
    /// The key.
    pub correlation_id: &'a Uuid,
    /// What it asks for (writes only are kept).
    pub action: Action,
    /// The envelope's `timestamp`, milliseconds since the epoch.
    pub sent_at_ms: i64,
}

/// Why a request with a key was not run.
#[derive(Debug)]
pub enum Refused {
    /// The key was used for a different request (422).
    Mismatch(Transport),
    /// The first request with the key is still running (409).
    InFlight(Transport),
    /// The records could not be reached (503) or read (500).
    Store(ApiError),
}

impl Refused {
    /// The error the client gets.
    pub fn error(&self) -> ApiError {
        match self {
            Self::Mismatch(Transport::Http) => mismatch(
                "Idempotency-Key",
                "already used for a different request (method, path, query or body); send a \
                 new request with a new key",
            ),
            Self::Mismatch(Transport::WebSocket) => mismatch(
                "correlationId",
                "already used for a different write (action or payload); send a new request \
                 with a new correlationId",
            ),
            Self::InFlight(Transport::Http) => ApiError::Conflict(
                "a request with this Idempotency-Key is still being processed; retry once it \
                 has finished"
                    .to_owned(),
            ),
            Self::InFlight(Transport::WebSocket) => ApiError::Conflict(
                "a write with this correlationId is still being processed; its answer follows"
                    .to_owned(),
            ),
            Self::Store(error) => error.clone(),
        }
    }

    /// The REST response: the error, with `Retry-After` when a retry will succeed.
    fn response(&self) -> Response {
        let mut response = error_response(&self.error());
        if let Self::InFlight(_) = self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(IN_FLIGHT_RETRY_AFTER_SECS),
            );
        }
        response
    }
}

/// The 422 for a key reused for another request, naming the key's field.
fn mismatch(field: &str, reason: &str) -> ApiError {
    ApiError::Validation {
        message: format!("{field}: {reason}"),
        errors: vec![FieldError {
            path: field.to_owned(),
            message: reason.to_owned(),
        }],
    }
}

/// What to do with a request whose key was checked.
enum Start {
    /// Run it, then record its answer through the [`Pending`].
    Execute(Pending),
    /// Answer this, recorded from the first run.
    Replay(StoredResponse),
}

/// A claimed key waiting for its request's answer. Dropped without an answer (the request was
/// cut off), it releases the key so a retry can run.
struct Pending {
    store: Arc<dyn IdempotencyStore>,
    claim: Option<Claim>,
    ttl: Duration,
}

impl Pending {
    /// Keeps `response` for replay, or (`None`: not worth keeping) releases the key.
    async fn finish(mut self, response: Option<&StoredResponse>) {
        let Some(claim) = self.claim.take() else {
            return;
        };
        let outcome = match response {
            Some(response) => self.store.complete(&claim, response, self.ttl).await,
            None => self.store.release(&claim).await,
        };
        if let Err(error) = outcome {
            // The request ran and its answer goes out; a retry finds the claim until its lease
            // ends (409), then runs again.
            tracing::warn!(%error, "cannot record the answer of an idempotent request");
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            let store = Arc::clone(&self.store);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(error) = store.release(&claim).await {
                        tracing::warn!(%error, "cannot release an idempotency key");
                    }
                });
            }
        }
    }
}

impl Idempotency {
    /// The rules over `store`.
    pub fn new(store: Arc<dyn IdempotencyStore>, settings: IdempotencySettings) -> Self {
        Self { store, settings }
    }

    /// The settings in force.
    pub fn settings(&self) -> IdempotencySettings {
        self.settings
    }

    /// Checks `key` of `scope` for the request `fingerprint`: claims it, or finds the answer to
    /// replay, or refuses.
    async fn start(
        &self,
        transport: Transport,
        scope: &str,
        key: &str,
        fingerprint: &Fingerprint,
    ) -> Result<Start, Refused> {
        let record = RecordKey::new(scope, key);
        let begun = self
            .store
            .begin(&record, fingerprint, self.settings.lease)
            .await
            .map_err(|error| Refused::Store(store_error(error)))?;
        let (result, outcome) = match begun {
            Begin::Claimed(claim) => (
                IdempotencyResult::Executed,
                Ok(Start::Execute(Pending {
                    store: Arc::clone(&self.store),
                    claim: Some(claim),
                    ttl: self.settings.ttl,
                })),
            ),
            Begin::Running { fingerprint: other }
            | Begin::Done {
                fingerprint: other, ..
            } if &other != fingerprint => (
                IdempotencyResult::Mismatch,
                Err(Refused::Mismatch(transport)),
            ),
            Begin::Running { .. } => (
                IdempotencyResult::InFlight,
                Err(Refused::InFlight(transport)),
            ),
            Begin::Done { response, .. } => {
                (IdempotencyResult::Replayed, Ok(Start::Replay(response)))
            }
        };
        metrics::idempotency().request(transport, result);
        outcome
    }

    /// Runs a WebSocket operation at most once per `correlationId` of the session's caller:
    /// `run` (given the payload back) for the first request, the kept answer for a repeat.
    ///
    /// Reads are run as they are (nothing to protect). A write whose envelope `timestamp` is
    /// older than the keys' time to live is refused: its key may already be forgotten, so a
    /// late duplicate of it could no longer be recognized.
    ///
    /// # Errors
    /// The operation's own errors; 400 for a stale write; 422, 409 or 503 as [`Refused`].
    pub async fn dispatch_once<F>(
        &self,
        request: WsRequest<'_>,
        payload: serde_json::Value,
        run: impl FnOnce(serde_json::Value) -> F,
    ) -> Result<Success, ApiError>
    where
        F: Future<Output = Result<Success, ApiError>>,
    {
        let write = request
            .action
            .operation()
            .is_some_and(|operation| operation.method != "GET");
        let scope = scope(request.authentication, request.client_ip);
        let Some(scope) = scope.filter(|_| write) else {
            return run(payload).await;
        };
        let sent_at_ms = request.sent_at_ms;
        let action = request.action;
        let ttl_ms = i64::try_from(self.settings.ttl.as_millis()).unwrap_or(i64::MAX);
        if sent_at_ms < chrono::Utc::now().timestamp_millis().saturating_sub(ttl_ms) {
            return Err(ApiError::BadRequest(format!(
                "the write's `timestamp` is more than {} s old, beyond the window in which \
                 duplicates are recognized; send it again with a new correlationId and the \
                 current time",
                self.settings.ttl.as_secs()
            )));
        }
        let fingerprint =
            Fingerprint::of(&[action.as_str().as_bytes(), payload.to_string().as_bytes()]);
        let key = request.correlation_id.hyphenated().to_string();
        match self
            .start(Transport::WebSocket, &scope, &key, &fingerprint)
            .await
        {
            Err(refused) => Err(refused.error()),
            Ok(Start::Replay(stored)) => Ok(Success::json(stored.status, stored.body)),
            Ok(Start::Execute(pending)) => {
                let outcome = run(payload).await;
                let kept = outcome.as_ref().ok().map(|success| StoredResponse {
                    status: success.status,
                    headers: Vec::new(),
                    body: success.payload.clone(),
                });
                pending.finish(kept.as_ref()).await;
                outcome
            }
        }
    }

    /// Serves a REST request that carries `Idempotency-Key` through `inner`, at most once.
    async fn serve<E: Endpoint>(&self, inner: &E, mut request: Request) -> poem::Result<Response> {
        let key = match read_key(request.headers()) {
            Ok(key) => key,
            Err(error) => return Err(HttpError(error).into()),
        };
        let scope = request
            .data::<Caller>()
            .and_then(|caller| scope(&caller.authentication, caller.client_ip));
        let Some(caller) = scope else {
            return inner.call(request).await.map(IntoResponse::into_response);
        };
        // A key is the caller's for one target: the same key sent to another endpoint is
        // another key (so a documentation UI filling in one example key everywhere works).
        let scope = format!("{caller}\n{} {}", request.method(), request.uri().path());
        let limits = BodyLimits::of(&request);
        let body = read_body(&mut request, limits.json.max(limits.image)).await?;
        let target = request
            .uri()
            .path_and_query()
            .map_or_else(|| request.uri().path(), |target| target.as_str());
        let fingerprint = Fingerprint::of(&[
            request.method().as_str().as_bytes(),
            target.as_bytes(),
            &body,
        ]);
        request.set_body(body);
        let pending = match self
            .start(Transport::Http, &scope, &key, &fingerprint)
            .await
        {
            Err(refused) => return Ok(refused.response()),
            Ok(Start::Replay(stored)) => return Ok(replay(stored)),
            Ok(Start::Execute(pending)) => pending,
        };
        let response = match inner.call(request).await {
            Ok(response) => response.into_response(),
            Err(error) => {
                let answered_by = error.data::<OperationId>().copied();
                let mut response = error::render(error).await;
                if let Some(id) = answered_by {
                    response.set_data(id);
                }
                response
            }
        };
        if response.status().is_server_error() {
            pending.finish(None).await;
            return Ok(response);
        }
        let (parts, body) = response.into_parts();
        let body = match body.into_bytes().await {
            Ok(body) => body,
            Err(error) => {
                pending.finish(None).await;
                tracing::error!(%error, "cannot read a response to keep it for replay");
                return Err(HttpError(ApiError::Internal).into());
            }
        };
        let stored = StoredResponse {
            status: parts.status.as_u16(),
            headers: kept_headers(&parts.headers),
            body: body.clone(),
        };
        pending.finish(Some(&stored)).await;
        Ok(Response::from_parts(parts, body.into()))
    }
}

/// Whose keys a caller's are: `user:<owner>` once authenticated, `ip:<address>` otherwise, or
/// none without either.
///
/// Anonymous callers are told apart by address, so two clients behind one address share their
/// keys; a replay still needs the same request, body included, so what it answers is what the
/// replaying client could have asked for itself.
pub fn scope(authentication: &Authentication, client_ip: Option<IpAddr>) -> Option<String> {
    match (authentication.principal(), client_ip) {
        (Some(principal), _) => Some(format!("user:{}", principal.owner_key())),
        (None, Some(ip)) => Some(format!("ip:{ip}")),
        (None, None) => None,
    }
}

/// The key of a request: one `Idempotency-Key` header, 1 to [`MAX_KEY_BYTES`] printable ASCII
/// characters without spaces. The draft's structured-field form (`"key"`, quoted) is accepted
/// and is the same key as the bare one.
///
/// # Errors
/// 400 `BAD_REQUEST` saying what is wrong with the key.
pub fn read_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::BadRequest(
            "the Idempotency-Key header is missing".to_owned(),
        ));
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest(
            "send one Idempotency-Key header, not several".to_owned(),
        ));
    }
    let bytes = value.as_bytes();
    let bytes = match bytes {
        [b'"', inner @ .., b'"'] => inner,
        other => other,
    };
    if bytes.is_empty() {
        return Err(ApiError::BadRequest(
            "the Idempotency-Key header is empty".to_owned(),
        ));
    }
    if bytes.len() > MAX_KEY_BYTES {
        return Err(ApiError::BadRequest(format!(
            "the Idempotency-Key is {} bytes long; at most {MAX_KEY_BYTES} are accepted",
            bytes.len()
        )));
    }
    if !bytes.iter().all(|byte| (b'!'..=b'~').contains(byte)) {
        return Err(ApiError::BadRequest(
            "the Idempotency-Key must be printable ASCII without spaces".to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// Reads the whole body (within `limit`) so it can be fingerprinted and then handed on.
async fn read_body(request: &mut Request, limit: usize) -> poem::Result<Bytes> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let too_large = || HttpError(ApiError::PayloadTooLarge { limit: Some(limit) });
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large().into());
    }
    request
        .take_body()
        .into_bytes_limit(limit)
        .await
        .map_err(|error| match error {
            poem::error::ReadBodyError::PayloadTooLarge => too_large().into(),
            other => HttpError(ApiError::BadRequest(format!(
                "cannot read the request body: {other}"
            )))
            .into(),
        })
}

/// The headers of `headers` kept for replay: [`KEPT_HEADERS`] and those the spec documents.
fn kept_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            KEPT_HEADERS.contains(&name)
                || RESPONSE_HEADERS
                    .iter()
                    .any(|documented| documented.eq_ignore_ascii_case(name))
        })
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

/// A kept answer as a response, marked as replayed.
fn replay(stored: StoredResponse) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK))
        .header(IDEMPOTENCY_REPLAYED, "true");
    for (name, value) in &stored.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(stored.body)
}

/// A store failure as the client sees it: 503 with `Retry-After` while Redis is unavailable,
/// else 500 (the cause logged).
fn store_error(error: IdempotencyError) -> ApiError {
    match error {
        IdempotencyError::Redis(error) if error.is_unavailable() => ApiError::Unavailable {
            message: "idempotency records are unavailable; try again later".to_owned(),
            retry_after_secs: error.retry_after_secs(),
        },
        error => {
            tracing::error!(%error, "idempotency records failed");
            ApiError::Internal
        }
    }
}

/// The operations behind the idempotency rules: a `POST`, `PUT` or `DELETE` with an
/// `Idempotency-Key` runs at most once per key; everything else passes straight through.
///
/// It sits inside the edge's CORS handling and request timeout (so a replay gets the CORS
/// headers, and a request cut off by the timeout releases its key) and after the caller was
/// identified (whose key it is).
pub struct Idempotent<E> {
    inner: E,
    idempotency: Arc<Idempotency>,
}

impl<E> Idempotent<E> {
    /// `inner` behind the rules of `idempotency`.
    pub fn new(inner: E, idempotency: Arc<Idempotency>) -> Self {
        Self { inner, idempotency }
    }
}

impl<E: Endpoint> Endpoint for Idempotent<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let unsafe_method = matches!(
            *request.method(),
            Method::POST | Method::PUT | Method::DELETE
        );
        if unsafe_method && request.headers().contains_key(IDEMPOTENCY_KEY) {
            self.idempotency.serve(&self.inner, request).await
        } else {
            self.inner
                .call(request)
                .await
                .map(IntoResponse::into_response)
        }
    }
}

#[cfg(test)]
mod tests {
    use poem::http::{HeaderMap, HeaderValue};

    use super::{MAX_KEY_BYTES, read_key};

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                super::IDEMPOTENCY_KEY,
                HeaderValue::from_bytes(value).expect("a header value"),
            );
        }
        headers
    }

    #[test]
    fn a_bare_or_quoted_key_is_the_same_key() {
        assert_eq!(
            read_key(&headers(&[b"abc-1"])).ok().as_deref(),
            Some("abc-1")
        );
        assert_eq!(
            read_key(&headers(&[b"\"abc-1\""])).ok().as_deref(),
            Some("abc-1")
        );
    }

    #[test]
    fn malformed_keys_are_refused_with_the_reason() {
        let long = vec![b'a'; MAX_KEY_BYTES + 1];
        let longest = vec![b'a'; MAX_KEY_BYTES];
        for (values, reason) in [
            (vec![&b""[..]], "empty"),
            (vec![&b"\"\""[..]], "empty"),
            (vec![&long[..]], "at most 255"),
            (vec![&b"a b"[..]], "printable ASCII"),
            (vec![&b"caf\xc3\xa9"[..]], "printable ASCII"),
            (vec![&b"a"[..], &b"b"[..]], "not several"),
        ] {
            let error = read_key(&headers(&values)).expect_err("refused");
            assert_eq!(error.status(), 400);
            assert!(error.to_string().contains(reason), "{error} ({reason})");
        }
        assert!(read_key(&headers(&[&longest])).is_ok());
    }
}
