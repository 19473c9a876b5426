//! WebSocket metrics: sessions, requests by action, errors by code, notifications, backpressure
//! and closes.
//!
//! Every label comes from a fixed list (actions and events from `asyncapi.yaml`, error codes and
//! close codes from the code), and the per-action instruments are bound once, when the family is
//! created, so a request records with two atomic updates and no attribute hashing, as on the HTTP
//! read path.

use std::{sync::atomic::AtomicI64, sync::atomic::Ordering, time::Duration};

use opentelemetry::{
    KeyValue,
    metrics::{BoundCounter, BoundHistogram, Counter, Meter},
};

use petstore_api::ws::Action;

/// Why an upgrade did not become a session, or that it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    /// A session started.
    Accepted,
    /// Refused: too many connections from the address.
    ConnectionLimit,
    /// Refused: invalid credentials on the upgrade.
    Unauthorized,
    /// Refused: not a valid WebSocket upgrade request.
    Invalid,
    /// Refused: the server is shutting down.
    ShuttingDown,
}

impl Upgrade {
    const ALL: [Upgrade; 5] = [
        Upgrade::Accepted,
        Upgrade::ConnectionLimit,
        Upgrade::Unauthorized,
        Upgrade::Invalid,
        Upgrade::ShuttingDown,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::ConnectionLimit => "connection_limit",
            Self::Unauthorized => "unauthorized",
            Self::Invalid => "invalid",
            Self::ShuttingDown => "shutting_down",
        }
    }
}

/// Error codes a WebSocket error response can carry (the label values of `code`).
const ERROR_CODES: [&str; 15] = [
    "BAD_REQUEST",
    "VALIDATION_ERROR",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "TIMEOUT",
    "CONFLICT",
    "PAYLOAD_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE",
    "RATE_LIMITED",
    "OVERLOADED",
    "INTERNAL",
    "UNAVAILABLE",
    "OTHER",
];

/// Close codes the server sends (the label values of `code`); anything else is `other`.
const CLOSE_CODES: [(u16, &str); 9] = [
    (1000, "1000"),
    (1001, "1001"),
    (1002, "1002"),
    (1007, "1007"),
    (1008, "1008"),
    (1009, "1009"),
    (1011, "1011"),
    (1012, "1012"),
    (1013, "1013"),
];

struct ActionInstruments {
    success: BoundCounter<u64>,
    error: BoundCounter<u64>,
    duration: BoundHistogram<f64>,
}

/// The WebSocket families.
pub struct WsMetrics {
    upgrades: Counter<u64>,
    actions: Vec<ActionInstruments>,
    errors: Vec<BoundCounter<u64>>,
    notifications_delivered: BoundCounter<u64>,
    notifications_dropped: BoundCounter<u64>,
    backpressure: Counter<u64>,
    closes: Vec<BoundCounter<u64>>,
    closes_other: BoundCounter<u64>,
    by_client: BoundCounter<u64>,
    abrupt: BoundCounter<u64>,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The server closed it with this code.
    ByServer(u16),
    /// The client closed it with a close frame.
    ByClient,
    /// The connection broke without a close frame (1006 in RFC 6455 terms).
    Abruptly,
}

/// Request latency buckets, in seconds: from a cached read (well under a millisecond) to the
/// request timeout.
const DURATION_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

impl WsMetrics {
    pub(super) fn new(meter: &Meter) -> Self {
        let requests = meter
            .u64_counter("petstore.ws.requests")
            .with_description("WebSocket requests answered, by action and result.")
            .with_unit("{request}")
            .build();
        let duration = meter
            .f64_histogram("petstore.ws.request.duration")
            .with_description("Time from reading a WebSocket request to its response, by action.")
            .with_unit("s")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        let actions = Action::ALL
            .iter()
            .map(|action| {
                let name = KeyValue::new("action", action.as_str());
                ActionInstruments {
                    success: requests.bind(&[name.clone(), KeyValue::new("result", "success")]),
                    error: requests.bind(&[name.clone(), KeyValue::new("result", "error")]),
                    duration: duration.bind(&[name]),
                }
            })
            .collect();
        let errors_counter = meter
            .u64_counter("petstore.ws.errors")
            .with_description("WebSocket error responses, by error code.")
            .with_unit("{response}")
            .build();
        let errors = ERROR_CODES
            .iter()
            .map(|code| errors_counter.bind(&[KeyValue::new("code", *code)]))
            .collect();
        let notifications = meter
            .u64_counter("petstore.ws.notifications")
            .with_description(
                "Event notifications handed to WebSocket sessions (delivered) or lost to a \
                 session closed as a slow consumer (dropped).",
            )
            .with_unit("{notification}")
            .build();
        let closes_counter = meter
            .u64_counter("petstore.ws.closes")
            .with_description(
                "WebSocket sessions ended: by the close code the server sent, `client` when the \
                 client closed, `abnormal` when the connection broke without a close frame.",
            )
            .with_unit("{session}")
            .build();
        let closes = CLOSE_CODES
            .iter()
            .map(|(_, label)| closes_counter.bind(&[KeyValue::new("code", *label)]))
            .collect();
        let upgrades = meter
            .u64_counter("petstore.ws.upgrades")
            .with_description("WebSocket upgrade requests, by outcome.")
            .with_unit("{request}")
            .build();
        for outcome in Upgrade::ALL {
            upgrades.add(0, &[KeyValue::new("outcome", outcome.label())]);
        }
        let backpressure = meter
            .u64_counter("petstore.ws.backpressure")
            .with_description(
                "Backpressure notifications sent (a session's queue reached its high-water mark).",
            )
            .with_unit("{notification}")
            .build();
        backpressure.add(0, &[]);
        let metrics = Self {
            upgrades,
            actions,
            errors,
            notifications_delivered: notifications.bind(&[KeyValue::new("result", "delivered")]),
            notifications_dropped: notifications.bind(&[KeyValue::new("result", "dropped")]),
            backpressure,
            closes,
            closes_other: closes_counter.bind(&[KeyValue::new("code", "other")]),
            by_client: closes_counter.bind(&[KeyValue::new("code", "client")]),
            abrupt: closes_counter.bind(&[KeyValue::new("code", "abnormal")]),
        };
        // Zero-valued series from the first scrape.
        for action in &metrics.actions {
            action.success.add(0);
            action.error.add(0);
        }
        for errors in &metrics.errors {
            errors.add(0);
        }
        for close in &metrics.closes {
            close.add(0);
        }
        metrics.closes_other.add(0);
        metrics.by_client.add(0);
        metrics.abrupt.add(0);
        metrics.notifications_delivered.add(0);
        metrics.notifications_dropped.add(0);
        meter_sessions_gauge(meter);
        metrics
    }

    /// An upgrade request was answered.
    pub fn upgrade(&self, outcome: Upgrade) {
        self.upgrades
            .add(1, &[KeyValue::new("outcome", outcome.label())]);
    }

    /// A session started.
    pub fn session_opened(&self) {
        SESSIONS.fetch_add(1, Ordering::Relaxed);
    }

    /// A session ended.
    pub fn session_closed(&self, how: Closed) {
        SESSIONS.fetch_sub(1, Ordering::Relaxed);
        match how {
            Closed::ByClient => self.by_client.add(1),
            Closed::Abruptly => self.abrupt.add(1),
            Closed::ByServer(code) => {
                match CLOSE_CODES.iter().position(|(known, _)| *known == code) {
                    Some(index) => self.closes[index].add(1),
                    None => self.closes_other.add(1),
                }
            }
        }
    }

    /// A request was answered.
    pub fn request(&self, action: Action, error_code: Option<&str>, took: Duration) {
        let Some(instruments) = self.actions.get(action.index()) else {
            return;
        };
        instruments.duration.record(took.as_secs_f64());
        match error_code {
            None => instruments.success.add(1),
            Some(code) => {
                instruments.error.add(1);
                self.error(code);
            }
        }
    }

    /// An error response that belongs to no action (an unreadable frame, a refused request).
    pub fn error(&self, code: &str) {
        let index = ERROR_CODES
            .iter()
            .position(|known| *known == code)
            .unwrap_or(ERROR_CODES.len() - 1);
        self.errors[index].add(1);
    }

    /// Notifications handed to sessions, and lost to slow consumers, by one delivery.
    pub fn notifications(&self, delivered: usize, dropped: usize) {
        if delivered > 0 {
            self.notifications_delivered.add(delivered as u64);
        }
        if dropped > 0 {
            self.notifications_dropped.add(dropped as u64);
        }
    }

    /// A backpressure notification was sent.
    pub fn backpressure(&self) {
        self.backpressure.add(1, &[]);
    }
}

/// Open sessions in the process, read when `/metrics` is scraped.
static SESSIONS: AtomicI64 = AtomicI64::new(0);

fn meter_sessions_gauge(meter: &Meter) {
    meter
        .i64_observable_gauge("petstore.ws.sessions")
        .with_description("WebSocket sessions open now.")
        .with_unit("{session}")
        .with_callback(|observer| observer.observe(SESSIONS.load(Ordering::Relaxed), &[]))
        .build();
}
