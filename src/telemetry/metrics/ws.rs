//! WebSocket metrics: sessions, requests by action, errors by code, notifications, backpressure
//! and closes; the message queue (waiting, in flight, wait time, refusals, sessions under
//! backpressure); and the delivery of events to sessions (recoveries, replays, superseded,
//! gap-filled and lost events).
//!
//! Every label comes from a fixed list (actions, events and priorities from `asyncapi.yaml`,
//! error codes, close codes and recovery results from the code), and the labelled instruments are
//! bound once, when the family is created, so a request records with two atomic updates and no
//! attribute hashing, as on the HTTP read path.
//!
//! The queue gauges are sums over every session of the process, kept in atomics that sessions
//! move by what changed since their last report ([`QueueMoved`]) and that are read only when
//! `/metrics` is scraped: a session whose requests are answered within one step of its loop
//! touches none of them.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use opentelemetry::{
    KeyValue,
    metrics::{BoundCounter, BoundHistogram, Counter, Meter},
};

use petstore_api::ws::{Action, Priority};

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

/// How a session reconnecting with a position came out (the `result` label of
/// `petstore_ws_recoveries_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryResult {
    /// Everything missed since the position was replayed.
    Recovered,
    /// The position belongs to an earlier epoch of the event log (it was reset): nothing can be
    /// replayed, and the client must reload its state.
    EpochChanged,
    /// The position is older than the history kept: the client must reload its state.
    TooOld,
}

impl RecoveryResult {
    /// Every result, in the order of the bound series.
    const ALL: [RecoveryResult; 3] = [
        RecoveryResult::Recovered,
        RecoveryResult::EpochChanged,
        RecoveryResult::TooOld,
    ];

    /// The label value: `recovered`, `epoch_changed` or `too_old`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recovered => "recovered",
            Self::EpochChanged => "epoch_changed",
            Self::TooOld => "too_old",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// How one session's share of the message-queue gauges changed since its last report: requests
/// waiting, requests in flight, and `+1`/`-1` as the session comes under backpressure or leaves
/// it. Deltas rather than levels, so that the process's sums need no list of sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueMoved {
    /// Change in requests waiting to start.
    pub waiting: i64,
    /// Change in requests started and not yet answered.
    pub in_flight: i64,
    /// Change in sessions under backpressure (`-1`, `0` or `1`).
    pub backpressured: i64,
}

/// The WebSocket families.
pub struct WsMetrics {
    upgrades: Counter<u64>,
    actions: Vec<ActionInstruments>,
    errors: Vec<BoundCounter<u64>>,
    notifications_delivered: BoundCounter<u64>,
    notifications_dropped: BoundCounter<u64>,
    backpressure: Counter<u64>,
    buffers_released: Counter<u64>,
    closes: Vec<BoundCounter<u64>>,
    closes_other: BoundCounter<u64>,
    by_client: BoundCounter<u64>,
    abrupt: BoundCounter<u64>,
    /// The queue gauges' levels, read by their callbacks.
    queue: Arc<QueueLevels>,
    /// Queue wait by priority, indexed by [`Priority::index`].
    queue_wait: Vec<BoundHistogram<f64>>,
    overloaded: Counter<u64>,
    /// Recoveries by result, indexed by [`RecoveryResult::index`].
    recoveries: Vec<BoundCounter<u64>>,
    replayed: Counter<u64>,
    superseded: Counter<u64>,
    gap_filled: Counter<u64>,
    lost: Counter<u64>,
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

/// Queue wait buckets, in seconds: from a request started in the step that read it (~100 µs)
/// to one that waited behind a queue of slow requests (5 s; the request timeout is 10 s).
const QUEUE_WAIT_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
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
            .with_description(
                "Time from a worker starting a WebSocket request to its response, by action \
                 (the wait before is petstore_ws_queue_wait_seconds).",
            )
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
        let buffers_released = meter
            .u64_counter("petstore.ws.buffers.released")
            .with_description(
                "Times a WebSocket session gave back the buffers a large message had grown, once \
                 idle again.",
            )
            .with_unit("{release}")
            .build();
        buffers_released.add(0, &[]);
        let queue_wait = meter
            .f64_histogram("petstore.ws.queue.wait")
            .with_description(
                "Time a WebSocket request waited, from being read to a worker starting it, by \
                 priority.",
            )
            .with_unit("s")
            .with_boundaries(QUEUE_WAIT_BUCKETS.to_vec())
            .build();
        let overloaded = meter
            .u64_counter("petstore.ws.overloaded")
            .with_description(
                "WebSocket requests refused with OVERLOADED because their session's queue was \
                 full (also counted in petstore_ws_errors_total{code=\"OVERLOADED\"}).",
            )
            .with_unit("{request}")
            .build();
        overloaded.add(0, &[]);
        let recoveries = meter
            .u64_counter("petstore.ws.recoveries")
            .with_description(
                "WebSocket sessions that asked to recover missed events from a position, by \
                 result.",
            )
            .with_unit("{recovery}")
            .build();
        let events_counter = |name: &'static str, description: &'static str| {
            let counter = meter
                .u64_counter(name)
                .with_description(description)
                .with_unit("{event}")
                .build();
            counter.add(0, &[]);
            counter
        };
        let metrics = Self {
            upgrades,
            actions,
            errors,
            notifications_delivered: notifications.bind(&[KeyValue::new("result", "delivered")]),
            notifications_dropped: notifications.bind(&[KeyValue::new("result", "dropped")]),
            backpressure,
            buffers_released,
            closes,
            closes_other: closes_counter.bind(&[KeyValue::new("code", "other")]),
            by_client: closes_counter.bind(&[KeyValue::new("code", "client")]),
            abrupt: closes_counter.bind(&[KeyValue::new("code", "abnormal")]),
            queue: Arc::default(),
            queue_wait: Priority::ALL
                .iter()
                .map(|priority| queue_wait.bind(&[KeyValue::new("priority", priority.as_str())]))
                .collect(),
            overloaded,
            recoveries: RecoveryResult::ALL
                .iter()
                .map(|result| recoveries.bind(&[KeyValue::new("result", result.as_str())]))
                .collect(),
            replayed: events_counter(
                "petstore.ws.replayed_events",
                "Events replayed to recovering WebSocket sessions.",
            ),
            superseded: events_counter(
                "petstore.events.superseded",
                "Events not published because a newer version of their entity already was.",
            ),
            gap_filled: events_counter(
                "petstore.events.gap_filled",
                "Events this node fetched from the event history because its live feed missed \
                 them.",
            ),
            lost: events_counter(
                "petstore.events.lost",
                "Events this node's live feed missed and it could not fetch from the history.",
            ),
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
        for recoveries in &metrics.recoveries {
            recoveries.add(0);
        }
        meter_sessions_gauge(meter);
        meter_queue_gauges(meter, &metrics.queue);
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

    /// A session gave back the buffers a large message had grown.
    pub fn buffers_released(&self) {
        self.buffers_released.add(1, &[]);
    }

    /// A session's share of the queue gauges changed by `moved`.
    pub fn queue_moved(&self, moved: QueueMoved) {
        for (gauge, delta) in [
            (&self.queue.waiting, moved.waiting),
            (&self.queue.in_flight, moved.in_flight),
            (&self.queue.backpressured, moved.backpressured),
        ] {
            if delta != 0 {
                gauge.fetch_add(delta, Ordering::Relaxed);
            }
        }
    }

    /// A request of `priority` left the queue for a worker after waiting `waited`.
    pub fn queue_wait(&self, priority: Priority, waited: Duration) {
        if let Some(histogram) = self.queue_wait.get(priority.index()) {
            histogram.record(waited.as_secs_f64());
        }
    }

    /// A request was refused with `OVERLOADED` (its session's queue was full). Counted here and
    /// as an `OVERLOADED` error response, from this one call, so the two never disagree.
    pub fn overloaded(&self) {
        self.overloaded.add(1, &[]);
        self.error("OVERLOADED");
    }

    /// A session asked to recover from a position, with this result.
    pub fn recovery(&self, result: RecoveryResult) {
        if let Some(counter) = self.recoveries.get(result.index()) {
            counter.add(1);
        }
    }

    /// `events` events were replayed to a recovering session.
    pub fn replayed(&self, events: u64) {
        if events > 0 {
            self.replayed.add(events, &[]);
        }
    }

    /// An event was not published because a newer version of its entity already was.
    pub fn superseded(&self) {
        self.superseded.add(1, &[]);
    }

    /// `events` events missed by the live feed were fetched from the history.
    pub fn gap_filled(&self, events: u64) {
        if events > 0 {
            self.gap_filled.add(events, &[]);
        }
    }

    /// `events` events missed by the live feed could not be fetched from the history.
    pub fn lost(&self, events: u64) {
        if events > 0 {
            self.lost.add(events, &[]);
        }
    }
}

/// Open sessions in the process, read when `/metrics` is scraped.
static SESSIONS: AtomicI64 = AtomicI64::new(0);

/// The levels behind the queue gauges, summed over every session of the process.
#[derive(Debug, Default)]
struct QueueLevels {
    /// Requests waiting in session queues (held-back ones included).
    waiting: AtomicI64,
    /// Requests started and not yet answered.
    in_flight: AtomicI64,
    /// Sessions under backpressure.
    backpressured: AtomicI64,
}

fn meter_queue_gauges(meter: &Meter, levels: &Arc<QueueLevels>) {
    type Level = fn(&QueueLevels) -> &AtomicI64;
    let gauges: [(&str, &str, &str, Level); 3] = [
        (
            "petstore.ws.queue.waiting",
            "WebSocket requests waiting in session queues for a worker, over all sessions.",
            "{request}",
            |levels| &levels.waiting,
        ),
        (
            "petstore.ws.queue.in_flight",
            "WebSocket requests started and not yet answered, over all sessions.",
            "{request}",
            |levels| &levels.in_flight,
        ),
        (
            "petstore.ws.sessions.backpressured",
            "WebSocket sessions under backpressure: told to slow down (their queue reached its \
             high-water mark) and not yet drained to the low-water mark.",
            "{session}",
            |levels| &levels.backpressured,
        ),
    ];
    for (name, description, unit, level) in gauges {
        let levels = Arc::clone(levels);
        meter
            .i64_observable_gauge(name)
            .with_description(description)
            .with_unit(unit)
            .with_callback(move |observer| {
                observer.observe(level(&levels).load(Ordering::Relaxed), &[]);
            })
            .build();
    }
}

fn meter_sessions_gauge(meter: &Meter) {
    meter
        .i64_observable_gauge("petstore.ws.sessions")
        .with_description("WebSocket sessions open now.")
        .with_unit("{session}")
        .with_callback(|observer| observer.observe(SESSIONS.load(Ordering::Relaxed), &[]))
        .build();
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::telemetry::metrics::Metrics;

    /// The value of the series `name` with exactly `labels` in a rendering of `metrics`.
    fn value(metrics: &Metrics, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = match metrics.render() {
            Ok(text) => text,
            Err(error) => panic!("{error}"),
        };
        let wanted: BTreeMap<&str, &str> = labels.iter().copied().collect();
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (series_name, series_labels) = match series.split_once('{') {
                    Some((series_name, rest)) => (series_name, rest.strip_suffix('}')?),
                    None => (series, ""),
                };
                let found: BTreeMap<&str, &str> = series_labels
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .filter_map(|pair| {
                        let (key, value) = pair.split_once('=')?;
                        Some((key, value.trim_matches('"')))
                    })
                    .collect();
                (series_name == name && found == wanted).then(|| value.parse().ok())?
            })
    }

    fn count(metrics: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
        value(metrics, name, labels).unwrap_or_else(|| panic!("no series {name} {labels:?}"))
    }

    #[test]
    fn recoveries_and_event_counters_start_at_zero_and_count_what_they_are_told() {
        let metrics = Metrics::new();
        for result in RecoveryResult::ALL {
            let labels = [("result", result.as_str())];
            assert_eq!(
                count(&metrics, "petstore_ws_recoveries_total", &labels),
                0.0
            );
        }
        for name in [
            "petstore_ws_replayed_events_total",
            "petstore_events_superseded_total",
            "petstore_events_gap_filled_total",
            "petstore_events_lost_total",
        ] {
            assert_eq!(count(&metrics, name, &[]), 0.0, "{name}");
        }

        let ws = &metrics.ws;
        ws.recovery(RecoveryResult::Recovered);
        ws.recovery(RecoveryResult::Recovered);
        ws.recovery(RecoveryResult::TooOld);
        ws.replayed(5);
        ws.replayed(0);
        ws.superseded();
        ws.gap_filled(3);
        ws.lost(2);

        for (result, expected) in [("recovered", 2.0), ("epoch_changed", 0.0), ("too_old", 1.0)] {
            assert_eq!(
                count(
                    &metrics,
                    "petstore_ws_recoveries_total",
                    &[("result", result)]
                ),
                expected,
                "{result}"
            );
        }
        for (name, expected) in [
            ("petstore_ws_replayed_events_total", 5.0),
            ("petstore_events_superseded_total", 1.0),
            ("petstore_events_gap_filled_total", 3.0),
            ("petstore_events_lost_total", 2.0),
        ] {
            assert_eq!(count(&metrics, name, &[]), expected, "{name}");
        }
    }

    #[test]
    fn recovery_results_are_labelled_as_documented() {
        let labels: Vec<_> = RecoveryResult::ALL
            .iter()
            .map(|result| result.as_str())
            .collect();
        assert_eq!(labels, ["recovered", "epoch_changed", "too_old"]);
        for (index, result) in RecoveryResult::ALL.iter().enumerate() {
            assert_eq!(result.index(), index);
        }
    }

    #[test]
    fn queue_gauges_sum_what_sessions_report() {
        let metrics = Metrics::new();
        for name in [
            "petstore_ws_queue_waiting",
            "petstore_ws_queue_in_flight",
            "petstore_ws_sessions_backpressured",
        ] {
            assert_eq!(count(&metrics, name, &[]), 0.0, "{name}");
        }
        let ws = &metrics.ws;
        ws.queue_moved(QueueMoved {
            waiting: 4,
            in_flight: 2,
            backpressured: 1,
        });
        ws.queue_moved(QueueMoved {
            waiting: 3,
            in_flight: 1,
            backpressured: 0,
        });
        ws.queue_moved(QueueMoved {
            waiting: -2,
            in_flight: 0,
            backpressured: -1,
        });
        assert_eq!(count(&metrics, "petstore_ws_queue_waiting", &[]), 5.0);
        assert_eq!(count(&metrics, "petstore_ws_queue_in_flight", &[]), 3.0);
        assert_eq!(
            count(&metrics, "petstore_ws_sessions_backpressured", &[]),
            0.0
        );
    }

    #[test]
    fn queue_wait_is_recorded_by_priority_in_its_buckets() {
        let metrics = Metrics::new();
        metrics
            .ws
            .queue_wait(Priority::Low, Duration::from_millis(3));
        let low = |le: &'static str| [("priority", "low"), ("le", le)];
        let bucket = "petstore_ws_queue_wait_seconds_bucket";
        assert_eq!(count(&metrics, bucket, &low("0.0025")), 0.0);
        assert_eq!(count(&metrics, bucket, &low("0.005")), 1.0);
        assert_eq!(count(&metrics, bucket, &low("5")), 1.0);
        assert_eq!(
            count(
                &metrics,
                "petstore_ws_queue_wait_seconds_count",
                &[("priority", "low")]
            ),
            1.0
        );
        // Every priority's series exists from the start (bound when the family was created), so
        // dashboards find them before the first request.
        assert_eq!(
            value(
                &metrics,
                "petstore_ws_queue_wait_seconds_count",
                &[("priority", "critical")]
            ),
            Some(0.0)
        );
    }

    #[test]
    fn an_overloaded_refusal_counts_once_in_each_family() {
        let metrics = Metrics::new();
        let overloaded = [("code", "OVERLOADED")];
        assert_eq!(count(&metrics, "petstore_ws_overloaded_total", &[]), 0.0);
        assert_eq!(
            count(&metrics, "petstore_ws_errors_total", &overloaded),
            0.0
        );
        metrics.ws.overloaded();
        metrics.ws.overloaded();
        assert_eq!(count(&metrics, "petstore_ws_overloaded_total", &[]), 2.0);
        assert_eq!(
            count(&metrics, "petstore_ws_errors_total", &overloaded),
            2.0
        );
    }
}
