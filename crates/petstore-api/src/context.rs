//! What the edge learned about a request, handed to every handler call.

use std::{net::IpAddr, sync::Arc};

use crate::{Principal, error::ServerError};

/// Caller context: filled in by the transport (REST or WebSocket), read by handlers.
///
/// Handlers never see transport types; everything they may need to know about the caller
/// travels here. By the time a handler runs, the operation's security requirements have been
/// checked; ownership rules (a customer's own orders) are the handler's to apply with
/// [`Ctx::principal`].
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// Correlates logs of one request (the `X-Request-Id` header, or one made up at the edge).
    pub request_id: String,
    /// The client's address (behind trusted proxies, the one they forwarded), when known.
    pub client_ip: Option<IpAddr>,
    /// The verified caller, if any.
    pub principal: Option<Arc<Principal>>,
}

impl Ctx {
    /// The caller, for operations whose security requirements guarantee one.
    ///
    /// # Errors
    /// [`ServerError::Internal`] if there is none: the operation's requirements did not demand
    /// credentials, which is a mismatch between the spec and the handler.
    pub fn caller(&self) -> Result<&Principal, ServerError> {
        self.principal.as_deref().ok_or_else(|| {
            tracing::error!(
                request_id = %self.request_id,
                "a handler needs a caller but the operation's security lets anonymous callers in"
            );
            ServerError::Internal
        })
    }
}
