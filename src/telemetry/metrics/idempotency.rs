//! `petstore_idempotency_requests_total{transport,result}`: requests that carried an idempotency
//! key (REST `Idempotency-Key`, a WebSocket write's `correlationId`), by what became of them.
//!
//! Replays show clients retrying (lost responses, reconnects); mismatches show a client reusing
//! keys for different requests (a client bug); in-flight refusals show retries racing the first
//! attempt. Every combination starts at zero.

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Meter},
};

use super::Transport;

/// What became of a request with an idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotencyResult {
    /// First time seen: it ran.
    Executed,
    /// Seen and finished before: answered from the record.
    Replayed,
    /// The key was used before for a different request: refused (422).
    Mismatch,
    /// The first request with the key is still running: refused (409).
    InFlight,
}

impl IdempotencyResult {
    const ALL: [Self; 4] = [
        Self::Executed,
        Self::Replayed,
        Self::Mismatch,
        Self::InFlight,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Executed => "executed",
            Self::Replayed => "replayed",
            Self::Mismatch => "mismatch",
            Self::InFlight => "in_flight",
        }
    }
}

/// The idempotency family.
pub struct IdempotencyMetrics {
    requests: Counter<u64>,
}

impl IdempotencyMetrics {
    pub(super) fn new(meter: &Meter) -> Self {
        let requests = meter
            .u64_counter("petstore.idempotency.requests")
            .with_description(
                "Requests with an idempotency key, by transport and result \
                 (executed, replayed, mismatch, in_flight).",
            )
            .with_unit("{request}")
            .build();
        for transport in [Transport::Http, Transport::WebSocket] {
            for result in IdempotencyResult::ALL {
                requests.add(0, &attributes(transport, result));
            }
        }
        Self { requests }
    }

    /// Counts one request with a key.
    pub fn request(&self, transport: Transport, result: IdempotencyResult) {
        self.requests.add(1, &attributes(transport, result));
    }
}

fn attributes(transport: Transport, result: IdempotencyResult) -> [KeyValue; 2] {
    [
        KeyValue::new("transport", transport.label()),
        KeyValue::new("result", result.label()),
    ]
}
