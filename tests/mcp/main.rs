//! The MCP endpoint (`/mcp`), black box, over real HTTP: the testkit's small client where the
//! wire matters (status codes, headers, JSON-RPC errors), and the official Python SDK in the
//! contract suite (`tests/contract/mcp.rs`).
//!
//! - [`protocol`]: the handshake, the tool list generated from `openapi.yaml`, tool results and
//!   errors, resources, protocol errors.
//! - [`sessions`]: credentials on the MCP requests, sessions bound to their caller and bounded
//!   per client, expiry, the edge's origin, size, rate and method rules, the resource metadata.
//! - [`subscriptions`]: resources followed through the event hub, updated by REST writes.
//! - [`parity`]: every operation answers alike over REST and as a tool.

mod parity;
mod protocol;
mod sessions;
mod subscriptions;
