//! What the edge learned about a request, handed to every handler call.

use std::net::IpAddr;

/// Caller context: filled in by the transport (REST or WebSocket), read by handlers.
///
/// Handlers never see transport types; everything they may need to know about the caller
/// travels here.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// Correlates logs of one request (the `X-Request-Id` header, or one made up at the edge).
    pub request_id: String,
    /// The peer's address, when the transport knows it.
    pub client_ip: Option<IpAddr>,
    /// The bearer token the caller presented (`Authorization: Bearer …`), unverified.
    pub bearer_token: Option<String>,
}
