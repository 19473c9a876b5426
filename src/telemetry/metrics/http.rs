//! Request metrics of the HTTP edge: counts and latencies by operation, method and status, the
//! requests in flight, and the requests abandoned before an answer.
//!
//! The edge records each request once, when its response is ready ([`InFlight::finish`]). The
//! `getPetById` read path is benchmarked against a bare hyper server, so recording is built to
//! cost next to nothing there:
//!
//! - the operation is an index ([`Operation`]), resolved without formatting or allocating;
//! - the status is mapped to a slot of a fixed list by a table lookup;
//! - for an API operation called with its own method (every request that reached a handler),
//!   the counter and the histogram are *bound* to the `(operation, method, status)` attribute set
//!   the first time that combination occurs and kept in a table, so later requests skip the
//!   attribute hashing and map lookup of an unbound recording: one atomic add and one histogram
//!   update;
//! - everything else (operational routes, unknown paths, odd methods) records unbound, with
//!   attribute arrays made of static strings (no allocation either);
//! - the in-flight gauge is a plain atomic, read when `/metrics` is scraped.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicI64, AtomicPtr, Ordering},
    },
    time::Duration,
};

use opentelemetry::{
    KeyValue,
    metrics::{BoundCounter, BoundHistogram, Counter, Histogram, Meter},
};
use poem::http::{Method, StatusCode};

use petstore_api::operations::OPERATIONS;

/// How many operations the spec has.
const API_OPERATIONS: usize = OPERATIONS.len();

/// Label values of what is not an API operation, in [`Operation`] index order after the API
/// operations.
const OTHER_ROUTES: [&str; 11] = [
    "unknown",
    "health",
    "ready",
    "live",
    "metrics",
    "jwks",
    "openapi",
    "docs",
    "websocket",
    "mcp",
    "resource_metadata",
];

/// What answered a request: the `operation` label, as an index.
///
/// API operations are labelled with their `operationId`; the operational routes with a fixed name
/// each; anything else (no route, or a request refused before its route was known) with
/// `unknown`. So the label has at most `operations + 11` values whatever clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation(u16);

impl Operation {
    /// No route matched, or the operation could not be told.
    pub const UNKNOWN: Self = Self::other(0);
    /// `/health`.
    pub const HEALTH: Self = Self::other(1);
    /// `/ready`.
    pub const READY: Self = Self::other(2);
    /// `/live`.
    pub const LIVE: Self = Self::other(3);
    /// `/metrics`.
    pub const METRICS: Self = Self::other(4);
    /// The token-signing keys.
    pub const JWKS: Self = Self::other(5);
    /// The API documents (`openapi.json`, `openapi.yaml`).
    pub const OPENAPI: Self = Self::other(6);
    /// The documentation UI.
    pub const DOCS: Self = Self::other(7);
    /// The WebSocket endpoint (its upgrade requests).
    pub const WEBSOCKET: Self = Self::other(8);
    /// The MCP endpoint.
    pub const MCP: Self = Self::other(9);
    /// The MCP endpoint's protected-resource metadata.
    pub const RESOURCE_METADATA: Self = Self::other(10);

    const fn other(index: usize) -> Self {
        Self((API_OPERATIONS + index) as u16)
    }

    /// The operation at `index` of [`OPERATIONS`].
    pub fn api(index: usize) -> Option<Self> {
        (index < API_OPERATIONS).then_some(Self(index as u16))
    }

    /// The API operation with this `operationId`.
    ///
    /// The ids poem-openapi reports are string constants of the generated adapter, so each
    /// operation's id is found at the same address every time: the address is remembered the
    /// first time its text is looked up, and later lookups compare addresses without reading a
    /// byte. (Only `'static` strings are remembered: their memory is never reused for another.)
    pub fn from_id(id: &'static str) -> Option<Self> {
        static SEEN: [AtomicPtr<u8>; API_OPERATIONS] =
            [const { AtomicPtr::new(std::ptr::null_mut()) }; API_OPERATIONS];
        let address = id.as_ptr().cast_mut();
        if let Some(index) = SEEN
            .iter()
            .position(|seen| seen.load(Ordering::Relaxed) == address)
        {
            return Self::api(index);
        }
        let found = Self::from_text(id)?;
        if let Some(seen) = SEEN.get(usize::from(found.0)) {
            seen.store(address, Ordering::Relaxed);
        }
        Some(found)
    }

    /// The API operation with this `operationId`, by its text.
    fn from_text(id: &str) -> Option<Self> {
        static BY_ID: OnceLock<Vec<(&'static str, u16)>> = OnceLock::new();
        let by_id = BY_ID.get_or_init(|| {
            let mut by_id: Vec<_> = OPERATIONS
                .iter()
                .enumerate()
                .map(|(index, operation)| (operation.id, index as u16))
                .collect();
            by_id.sort_unstable();
            by_id
        });
        by_id
            .binary_search_by(|(candidate, _)| (*candidate).cmp(id))
            .ok()
            .map(|found| Self(by_id[found].1))
    }

    /// The label value.
    pub fn label(self) -> &'static str {
        let index = usize::from(self.0);
        match OPERATIONS.get(index) {
            Some(operation) => operation.id,
            None => OTHER_ROUTES
                .get(index - API_OPERATIONS)
                .copied()
                .unwrap_or(OTHER_ROUTES[0]),
        }
    }

    fn api_index(self) -> Option<usize> {
        let index = usize::from(self.0);
        (index < API_OPERATIONS).then_some(index)
    }
}

/// Statuses labelled as themselves: every status the API documents, and the common ones of the
/// operational routes. Others are labelled by class (`4xx`).
const STATUSES: [(u16, &str); 26] = [
    (200, "200"),
    (201, "201"),
    (202, "202"),
    (204, "204"),
    (301, "301"),
    (302, "302"),
    (304, "304"),
    (307, "307"),
    (308, "308"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (405, "405"),
    (406, "406"),
    (408, "408"),
    (409, "409"),
    (413, "413"),
    (415, "415"),
    (422, "422"),
    (429, "429"),
    (431, "431"),
    (500, "500"),
    (502, "502"),
    (503, "503"),
    (504, "504"),
];

/// Labels of the statuses not in [`STATUSES`], by hundreds, and of codes outside 100–599.
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// How many `status` label values there are.
const STATUS_SLOTS: usize = STATUSES.len() + STATUS_CLASSES.len();

/// The slot of every code `StatusCode` can hold (100–999), by code.
const SLOT_OF_CODE: [u8; 1000] = {
    let mut slots = [0u8; 1000];
    let mut code = 0;
    while code < 1000 {
        let class = if code >= 100 && code < 600 {
            code / 100 - 1
        } else {
            5
        };
        slots[code] = (STATUSES.len() + class) as u8;
        code += 1;
    }
    let mut index = 0;
    while index < STATUSES.len() {
        slots[STATUSES[index].0 as usize] = index as u8;
        index += 1;
    }
    slots
};

fn status_slot(status: StatusCode) -> usize {
    SLOT_OF_CODE
        .get(usize::from(status.as_u16()))
        .map_or(STATUS_SLOTS - 1, |slot| usize::from(*slot))
}

fn status_label(slot: usize) -> &'static str {
    match STATUSES.get(slot) {
        Some((_, label)) => label,
        None => STATUS_CLASSES
            .get(slot - STATUSES.len())
            .copied()
            .unwrap_or("other"),
    }
}

/// The `method` label: the standard methods as themselves, anything else as `other`.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

/// Upper bounds of the latency histogram's buckets, in seconds: sub-millisecond reads up to the
/// default request timeout.
const DURATION_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The instruments of one `(operation, method, status)` combination, bound to it.
struct Bound {
    requests: BoundCounter<u64>,
    duration: BoundHistogram<f64>,
}

/// The HTTP families.
pub struct HttpMetrics {
    /// `petstore_http_requests_total{operation,method,status}`.
    requests: Counter<u64>,
    /// `petstore_http_request_duration_seconds{operation,method,status}`.
    duration: Histogram<f64>,
    /// `petstore_http_requests_aborted_total`.
    aborted: Counter<u64>,
    /// `petstore_http_requests_in_flight`, read when scraped.
    in_flight: Arc<AtomicI64>,
    /// The method of each API operation, by [`Operation`] index.
    api_methods: Vec<Method>,
    /// Bound instruments, by API operation index × status slot, made on first use.
    bound: Box<[OnceLock<Bound>]>,
}

impl HttpMetrics {
    pub(super) fn new(meter: &Meter) -> Self {
        let requests = meter
            .u64_counter("petstore.http.requests")
            .with_description("HTTP requests answered, by operation, method and status.")
            .with_unit("{request}")
            .build();
        let duration = meter
            .f64_histogram("petstore.http.request.duration")
            .with_description(
                "Time from a request's head being read to its response being ready, by \
                 operation, method and status.",
            )
            .with_unit("s")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        let aborted = meter
            .u64_counter("petstore.http.requests.aborted")
            .with_description(
                "HTTP requests abandoned before their response was ready: the connection \
                 closed, or the shutdown grace period ran out.",
            )
            .with_unit("{request}")
            .build();
        aborted.add(0, &[]);
        let in_flight = Arc::new(AtomicI64::new(0));
        let observed = in_flight.clone();
        meter
            .i64_observable_up_down_counter("petstore.http.requests.in_flight")
            .with_description("HTTP requests being handled now.")
            .with_unit("{request}")
            .with_callback(move |observer| observer.observe(observed.load(Ordering::Relaxed), &[]))
            .build();
        let api_methods = OPERATIONS
            .iter()
            .map(|operation| Method::from_bytes(operation.method.as_bytes()).unwrap_or(Method::GET))
            .collect();
        let bound = (0..API_OPERATIONS * STATUS_SLOTS)
            .map(|_| OnceLock::new())
            .collect();
        Self {
            requests,
            duration,
            aborted,
            in_flight,
            api_methods,
            bound,
        }
    }

    /// HTTP requests being handled now (what `petstore_http_requests_in_flight` reports): the
    /// load a node announces in the cluster registry.
    pub fn in_flight(&self) -> u64 {
        u64::try_from(self.in_flight.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Counts a request in flight until the returned guard is finished or dropped.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            metrics: self,
            finished: false,
        }
    }

    fn record(&self, operation: Operation, method: &Method, status: StatusCode, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot = status_slot(status);
        if let Some(index) = operation.api_index()
            && self.api_methods.get(index) == Some(method)
            && let Some(cell) = self.bound.get(index * STATUS_SLOTS + slot)
        {
            let bound = cell.get_or_init(|| {
                let attributes = attributes(operation, method, slot);
                Bound {
                    requests: self.requests.bind(&attributes),
                    duration: self.duration.bind(&attributes),
                }
            });
            bound.requests.add(1);
            bound.duration.record(seconds);
            return;
        }
        let attributes = attributes(operation, method, slot);
        self.requests.add(1, &attributes);
        self.duration.record(seconds, &attributes);
    }
}

/// The attribute set of a request, from static strings.
fn attributes(operation: Operation, method: &Method, slot: usize) -> [KeyValue; 3] {
    [
        KeyValue::new("operation", operation.label()),
        KeyValue::new("method", method_label(method)),
        KeyValue::new("status", status_label(slot)),
    ]
}

/// A request in flight. Finishing it records the request; dropping it unfinished (the connection
/// closed, or the server stopped waiting for it) counts it as aborted.
#[must_use = "a request in flight is recorded when finished"]
pub struct InFlight<'a> {
    metrics: &'a HttpMetrics,
    finished: bool,
}

impl InFlight<'_> {
    /// Records the request: what answered it, how, and how long it took.
    pub fn finish(
        mut self,
        operation: Operation,
        method: &Method,
        status: StatusCode,
        elapsed: Duration,
    ) {
        self.finished = true;
        self.metrics.record(operation, method, status, elapsed);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.finished {
            self.metrics.aborted.add(1, &[]);
        }
    }
}

#[cfg(test)]
mod tests {
    use poem::http::StatusCode;

    use super::{
        OPERATIONS, OTHER_ROUTES, Operation, STATUS_SLOTS, STATUSES, status_label, status_slot,
    };

    #[test]
    fn every_operation_id_resolves_to_itself() {
        for (index, operation) in OPERATIONS.iter().enumerate() {
            let resolved = Operation::from_id(operation.id);
            assert_eq!(resolved, Operation::api(index), "{}", operation.id);
            assert_eq!(resolved.map(Operation::label), Some(operation.id));
        }
        assert_eq!(Operation::from_id("noSuchOperation"), None);
    }

    #[test]
    fn other_routes_have_their_own_labels() {
        let labels: Vec<_> = [
            Operation::UNKNOWN,
            Operation::HEALTH,
            Operation::READY,
            Operation::LIVE,
            Operation::METRICS,
            Operation::JWKS,
            Operation::OPENAPI,
            Operation::DOCS,
            Operation::WEBSOCKET,
            Operation::MCP,
            Operation::RESOURCE_METADATA,
        ]
        .into_iter()
        .map(Operation::label)
        .collect();
        assert_eq!(labels, OTHER_ROUTES);
        assert!(
            OPERATIONS
                .iter()
                .all(|operation| !OTHER_ROUTES.contains(&operation.id))
        );
    }

    #[test]
    fn listed_statuses_are_labelled_as_themselves_and_others_by_class() {
        for (code, label) in STATUSES {
            let status = StatusCode::from_u16(code).expect("a valid status");
            assert_eq!(status_label(status_slot(status)), label);
        }
        for (code, label) in [
            (418, "4xx"),
            (207, "2xx"),
            (599, "5xx"),
            (102, "1xx"),
            (799, "other"),
        ] {
            let status = StatusCode::from_u16(code).expect("a valid status");
            assert_eq!(status_label(status_slot(status)), label, "{code}");
        }
        assert!(status_slot(StatusCode::from_u16(999).expect("valid")) < STATUS_SLOTS);
    }
}
