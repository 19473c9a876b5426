//! MCP metrics: tool calls by tool and result, their latency, errors by code, protocol requests
//! by method, sessions, session refusals and resource-update notifications.
//!
//! Tools are the spec's operations, so the `tool` label takes its values from the operations
//! (bound once, like the WebSocket actions); methods, results and error codes come from fixed
//! lists. Every series exists from the first scrape.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::Duration,
};

use opentelemetry::{
    KeyValue,
    metrics::{BoundCounter, BoundHistogram, Counter, Meter},
};

use petstore_api::operations::OPERATIONS;

/// Error codes a failed tool call can carry (the `code` label); anything else is `OTHER`.
const ERROR_CODES: [&str; 14] = [
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
    "INTERNAL",
    "UNAVAILABLE",
    "OTHER",
];

/// The protocol requests counted by method (the `method` label); anything else is `other`.
const METHODS: [&str; 10] = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "other",
];

/// Sessions open in the process, summed over its servers.
static SESSIONS: AtomicI64 = AtomicI64::new(0);

/// Latency buckets, in seconds: as for WebSocket requests, from a cached read to the timeout.
const DURATION_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

struct ToolInstruments {
    success: BoundCounter<u64>,
    error: BoundCounter<u64>,
    duration: BoundHistogram<f64>,
}

/// The MCP families.
pub struct McpMetrics {
    /// By operation, in the order of [`OPERATIONS`].
    tools: Vec<ToolInstruments>,
    errors: Vec<BoundCounter<u64>>,
    requests: Vec<BoundCounter<u64>>,
    refused: Counter<u64>,
    updates: Counter<u64>,
}

impl McpMetrics {
    pub(super) fn new(meter: &Meter) -> Self {
        let calls = meter
            .u64_counter("petstore.mcp.tool_calls")
            .with_description("MCP tool calls answered, by tool and result (success, error).")
            .with_unit("{call}")
            .build();
        let duration = meter
            .f64_histogram("petstore.mcp.tool_call.duration")
            .with_description("Time from an MCP tool call being read to its result, by tool.")
            .with_unit("s")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        let tools = OPERATIONS
            .iter()
            .map(|operation| {
                let tool = KeyValue::new("tool", operation.id);
                ToolInstruments {
                    success: calls.bind(&[tool.clone(), KeyValue::new("result", "success")]),
                    error: calls.bind(&[tool.clone(), KeyValue::new("result", "error")]),
                    duration: duration.bind(&[tool]),
                }
            })
            .collect();
        let errors = meter
            .u64_counter("petstore.mcp.tool_errors")
            .with_description("MCP tool calls that failed, by error code (isError results).")
            .with_unit("{call}")
            .build();
        let requests = meter
            .u64_counter("petstore.mcp.requests")
            .with_description("MCP protocol requests, by JSON-RPC method.")
            .with_unit("{request}")
            .build();
        let refused = meter
            .u64_counter("petstore.mcp.sessions_refused")
            .with_description(
                "MCP sessions refused because the client address or the node held its share.",
            )
            .with_unit("{session}")
            .build();
        let updates = meter
            .u64_counter("petstore.mcp.resource_updates")
            .with_description("notifications/resources/updated sent to MCP sessions.")
            .with_unit("{notification}")
            .build();
        meter
            .i64_observable_gauge("petstore.mcp.sessions")
            .with_description("MCP sessions open now.")
            .with_unit("{session}")
            .with_callback(|observer| observer.observe(SESSIONS.load(Ordering::Relaxed), &[]))
            .build();
        let metrics = Self {
            tools,
            errors: ERROR_CODES
                .iter()
                .map(|code| errors.bind(&[KeyValue::new("code", *code)]))
                .collect(),
            requests: METHODS
                .iter()
                .map(|method| requests.bind(&[KeyValue::new("method", *method)]))
                .collect(),
            refused,
            updates,
        };
        // Zero-valued series from the first scrape.
        for tool in &metrics.tools {
            tool.success.add(0);
            tool.error.add(0);
        }
        for counter in metrics.errors.iter().chain(&metrics.requests) {
            counter.add(0);
        }
        metrics.refused.add(0, &[]);
        metrics.updates.add(0, &[]);
        metrics
    }

    /// A tool call was answered: successfully, or with this error code.
    pub fn tool_call(&self, tool: &str, error_code: Option<&str>, took: Duration) {
        let Some(instruments) = OPERATIONS
            .iter()
            .position(|operation| operation.id == tool)
            .and_then(|index| self.tools.get(index))
        else {
            return;
        };
        instruments.duration.record(took.as_secs_f64());
        match error_code {
            None => instruments.success.add(1),
            Some(code) => {
                instruments.error.add(1);
                let index = ERROR_CODES
                    .iter()
                    .position(|known| *known == code)
                    .unwrap_or(ERROR_CODES.len() - 1);
                self.errors[index].add(1);
            }
        }
    }

    /// A protocol request arrived (`tools/call`, `resources/read`, …).
    pub fn request(&self, method: &str) {
        let index = METHODS
            .iter()
            .position(|known| *known == method)
            .unwrap_or(METHODS.len() - 1);
        self.requests[index].add(1);
    }

    /// A session opened.
    pub fn session_opened(&self) {
        SESSIONS.fetch_add(1, Ordering::Relaxed);
    }

    /// A session closed.
    pub fn session_closed(&self) {
        SESSIONS.fetch_sub(1, Ordering::Relaxed);
    }

    /// A session was refused: its client address or the node held its share.
    pub fn session_refused(&self) {
        self.refused.add(1, &[]);
    }

    /// A resource-update notification went to a session.
    pub fn resource_updated(&self) {
        self.updates.add(1, &[]);
    }
}
