//! The MCP transport: `/mcp`, a Model Context Protocol server over Streamable HTTP, for agents.
//!
//! ```text
//! POST/GET/DELETE /mcp ─► edge (request id, origin) ─► endpoint (credentials, session owner and
//!   limits, body limit, timeout) ─► rmcp Streamable HTTP service (JSON-RPC, sessions, SSE)
//!     ─► McpHandler (one per session)
//!          tools/call      ─► rate limit ─► edge::dispatch (generated) ─► handlers
//!          resources/read  ─► the same, as getPetById / getOrderById
//!          resources/subscribe ─► handlers authorize the topic ─► events::Hub ─► notifications
//! ```
//!
//! The tool list is generated from `openapi.yaml` like the REST adapter and the WebSocket
//! dispatch: one tool per operation, its arguments the operation's parameters by name and its
//! body as `body` (the WebSocket payload's shape), its result the success response. A call runs
//! through the same generated dispatch as a WebSocket request, so validation, credentials,
//! scopes, ownership, rate limits and business rules answer as they do over REST; a failure is a
//! tool result with `isError: true` carrying the same `ErrorResponse`.
//!
//! - [`tools`]: the generated tool list and tool results.
//! - [`resources`]: pets and orders as resources, and the URIs of hub notifications.
//! - `server`: the MCP server of one session (the SDK's `ServerHandler`).
//! - [`sessions`]: sessions bounded per client address, bound to their caller, ended when idle
//!   or too old.
//! - `endpoint`: the poem endpoint in front of the SDK's service.
//! - [`metadata`]: the protected-resource metadata (RFC 9728) the MCP authorization spec asks
//!   for.

mod endpoint;
pub mod metadata;
pub mod resources;
mod server;
pub mod sessions;
pub mod tools;

use std::{sync::Arc, time::Duration};

use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

pub use self::{
    endpoint::McpEndpoint,
    metadata::{PublicUrl, ResourceMetadata},
    sessions::SessionLimits,
};
use self::{
    server::{McpHandler, Shared},
    sessions::Sessions,
};
use crate::{edge::AccessControl, events::Hub};
use petstore_api::{Subscriptions, operations::PetStoreApi};

/// Limits and timeouts of the MCP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpSettings {
    /// Longest a tool call or resource read may run, and the longest wait for a response's
    /// head (the API's request timeout).
    pub request_timeout: Duration,
    /// Largest request body (the API's JSON body limit; the endpoint enforces it first).
    pub max_body_bytes: usize,
    /// Sessions per client address and in total, their idle timeout and lifetime.
    pub sessions: SessionLimits,
    /// Most resources one session may follow.
    pub max_subscriptions: usize,
    /// Resource updates waiting for one session before it counts as behind.
    pub outbox_capacity: usize,
    /// Interval of the keep-alive comments on event streams, so proxies keep them open.
    pub keep_alive: Duration,
    /// The base URL clients reach the server at, for the resource metadata.
    pub public_url: PublicUrl,
}

impl Default for McpSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            sessions: SessionLimits {
                per_client: 10,
                total: 10_000,
                idle_timeout: Duration::from_secs(600),
                lifetime: Duration::from_secs(3600),
            },
            max_subscriptions: 100,
            outbox_capacity: 256,
            keep_alive: Duration::from_secs(15),
            public_url: PublicUrl {
                configured: None,
                tls: false,
            },
        }
    }
}

/// The MCP server of a node: the SDK's service over the handlers, its sessions, and their
/// shutdown.
pub struct McpService<H: PetStoreApi + Subscriptions> {
    http: StreamableHttpService<McpHandler<H>, Sessions>,
    sessions: Arc<Sessions>,
    access: Arc<AccessControl>,
    settings: McpSettings,
    shutdown: CancellationToken,
}

impl<H: PetStoreApi + Subscriptions> McpService<H> {
    /// The service over `handler`, delivering resource updates from `hub`; sessions run until
    /// [`McpService::shutdown`].
    pub fn new(
        handler: Arc<H>,
        hub: Arc<Hub>,
        access: Arc<AccessControl>,
        settings: McpSettings,
    ) -> Arc<Self> {
        let shared = Arc::new(Shared {
            handler,
            access: access.clone(),
            hub,
            request_timeout: settings.request_timeout,
            max_subscriptions: settings.max_subscriptions,
            outbox_capacity: settings.outbox_capacity,
        });
        let sessions = Arc::new(Sessions::new(settings.sessions));
        let shutdown = CancellationToken::new();
        // The edge checks origins and the endpoint limits bodies; the SDK's own host check
        // would refuse every name but localhost, which behind a load balancer is all of them.
        let config = StreamableHttpServerConfig::default()
            .disable_allowed_hosts()
            .disable_allowed_origins()
            .with_legacy_session_mode(true)
            .with_sse_keep_alive(Some(settings.keep_alive))
            .with_max_request_body_bytes(settings.max_body_bytes)
            .with_cancellation_token(shutdown.child_token());
        let http = StreamableHttpService::new(
            move || Ok(McpHandler::new(Arc::clone(&shared))),
            Arc::clone(&sessions),
            config,
        );
        tokio::spawn(close_expired(
            Arc::clone(&sessions),
            settings.sessions.lifetime,
            shutdown.clone(),
        ));
        Arc::new(Self {
            http,
            sessions,
            access,
            settings,
            shutdown,
        })
    }

    /// The endpoint to mount at [`MCP_PATH`](crate::edge::paths::MCP_PATH).
    pub fn endpoint(&self) -> McpEndpoint<H> {
        McpEndpoint {
            http: endpoint::compat(self.http.clone()),
            handler: std::marker::PhantomData,
            sessions: Arc::clone(&self.sessions),
            access: Arc::clone(&self.access),
            public_url: self.settings.public_url.clone(),
            session_limit: self.settings.sessions.per_client,
            request_timeout: self.settings.request_timeout,
        }
    }

    /// The resource metadata endpoint.
    pub fn metadata(&self) -> ResourceMetadata {
        ResourceMetadata(self.settings.public_url.clone())
    }

    /// Ends every session and its event streams, so that the HTTP connections carrying them can
    /// close with the server.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

/// Closes sessions past their lifetime, every so often, until shut down (idle ones the SDK
/// closes itself).
async fn close_expired(sessions: Arc<Sessions>, lifetime: Duration, shutdown: CancellationToken) {
    let every = lifetime.clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => sessions.close_expired().await,
        }
    }
}
