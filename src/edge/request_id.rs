//! Request ids: accepted from clients (`X-Request-Id`) or made up here, echoed on every response,
//! logged with every line about the request and handed to the handlers in their context.

use std::sync::{
    OnceLock,
    atomic::{AtomicU64, Ordering},
};

use poem::{
    Request,
    http::{HeaderName, HeaderValue},
};

/// The request id header, accepted from clients and echoed on every response.
pub const REQUEST_ID: &str = "x-request-id";

/// The same, as a header name made once: a `&str` name is parsed again at every lookup and
/// insert.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static(REQUEST_ID);

/// Longest client-supplied request id we keep; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The request id of the current request (set by the edge).
///
/// Kept as the header value it is echoed as: a client's id is shared with the request headers
/// (a reference-counted clone), and echoing it costs no copy or re-validation.
#[derive(Debug, Clone)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The client's id if it sent a usable one (visible ASCII, at most 128 bytes), a fresh one
    /// otherwise.
    pub fn of(request: &Request) -> Self {
        Self(
            request
                .headers()
                .get(REQUEST_ID_HEADER)
                .filter(|id| {
                    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.to_str().is_ok()
                })
                .cloned()
                .unwrap_or_else(generate),
        )
    }

    /// The id as text (empty if it is not: never, as only text ids are kept).
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    /// The id as the header value it is echoed as.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

/// A fresh request id, formatted as a UUID (version 4 layout).
///
/// Request ids must be unique, not secret: clients may send their own. So instead of asking the
/// operating system for 122 random bits per request (a `getrandom` call on every request), the
/// process draws random bits once and makes each id unique with a counter in the last 48 bits
/// (XORed into the random bits, so ids of different processes still look unrelated).
fn generate() -> HeaderValue {
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
