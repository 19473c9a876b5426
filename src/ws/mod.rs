//! The WebSocket transport: `/api/v3/ws`, as `asyncapi.yaml` describes it.
//!
//! ```text
//! upgrade ─► endpoint (origin: at the edge; credentials on the upgrade; per-IP connection limit)
//!              │
//!              ▼
//!          session (one task per connection, owning the socket both ways)
//!            frames ─► envelope ─► rate limit ─► priority queue ─► in flight (bounded, concurrent)
//!                                                                     │ control: control actions
//!                                                                     │ operations: edge::dispatch
//!                                                                     ▼       (same handlers as REST)
//!            socket ◄── responses, session notifications ◄────────────┘
//!            socket ◄── hub outbox (events of subscribed topics; bounded: slow consumers → 1013)
//! ```
//!
//! - [`envelope`]: reading requests, writing responses and notifications.
//! - `session`: the connection's lifecycle (CONNECTING → AUTHENTICATING → AUTHENTICATED →
//!   ACTIVE ↔ INACTIVE → CLOSED), heartbeats, deadlines, backpressure, graceful close.
//! - `control`: the control actions (`authenticate`, `refresh`, `subscribe`, `unsubscribe`,
//!   `ping`); what they change in the session they answer, and the session applies. Topic
//!   subscriptions are authorized by the handlers ([`petstore_api::Subscriptions`]).
//! - [`queue`]: the bounded priority queue of a session's waiting requests.
//! - `load`: a session's share of the message-queue figures (`/health`'s `messageQueue`, the
//!   `petstore_ws_queue_*` gauges), and what "under backpressure" means.
//!
//! The typed client for this endpoint is a crate of its own, `petstore-client`.

mod control;
pub mod envelope;
mod load;
pub mod queue;
mod session;
mod socket;
mod stream;

use std::{net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderValue, StatusCode, header},
};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{handshake::derive_accept_key, protocol::WebSocketConfig};
use tokio_util::task::TaskTracker;

pub use self::session::SessionState;
use crate::{
    auth::{Authenticator, Presented},
    edge::{
        AccessControl, HttpError, Idempotency, IdempotencySettings, SessionCounts, error_response,
        upgrade,
    },
    events::{EventBus, Hub},
    idempotency::MemoryIdempotencyStore,
    limits::{ConnectionLimiter, ConnectionLimits, RateQuota},
    telemetry::metrics::{self, Upgrade},
};
use petstore_api::{ApiError, Subscriptions, operations::PetStoreApi};

/// Limits and timeouts of WebSocket sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsSettings {
    /// Largest message accepted; a bigger one closes the session with 1009.
    pub max_message_bytes: usize,
    /// Time to authenticate after the upgrade before the session is closed with 1008.
    pub auth_deadline: Duration,
    /// Longest a request may run before it is answered with `TIMEOUT`.
    pub request_timeout: Duration,
    /// Requests of one session running at once; more wait in the queue.
    pub max_in_flight: usize,
    /// Requests one session may have waiting.
    pub queue_capacity: usize,
    /// Queue depth at which the client is told to slow down (`backpressure`).
    pub queue_high_water: usize,
    /// Frames (responses and notifications) waiting to be written before a session is
    /// considered a slow consumer and closed with 1013.
    pub outbox_capacity: usize,
    /// How often the server pings.
    pub heartbeat_interval: Duration,
    /// Silence (no frame at all, pongs included) after which a peer counts as dead.
    pub heartbeat_timeout: Duration,
    /// Time without requests after which the session counts as inactive.
    pub inactive_after: Duration,
    /// Time without requests after which a session with no subscriptions is closed (1000).
    pub idle_timeout: Duration,
    /// How long before its access token expires a session is warned (`session.expiring`).
    pub expiry_warning: Duration,
    /// Messages per connection.
    pub message_rate: RateQuota,
    /// Concurrent connections per client address.
    pub max_connections_per_ip: u32,
    /// Most topics one session may follow.
    pub max_subscriptions: usize,
    /// Longest a write to the socket may take (a peer that does not read is cut off).
    pub write_timeout: Duration,
}

impl Default for WsSettings {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            auth_deadline: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            max_in_flight: 16,
            queue_capacity: 64,
            queue_high_water: 48,
            outbox_capacity: 256,
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(75),
            inactive_after: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(600),
            expiry_warning: Duration::from_secs(60),
            message_rate: RateQuota {
                per_minute: NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN),
                burst: NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN),
            },
            max_connections_per_ip: 10,
            max_subscriptions: 100,
            write_timeout: Duration::from_secs(10),
        }
    }
}

impl WsSettings {
    /// tungstenite's limits: messages and frames no larger than the limit, a small read buffer
    /// (an idle connection should cost a few kilobytes, not tungstenite's default 128 KiB), and
    /// a bounded write buffer.
    ///
    /// Frames are gathered up to [`WRITE_BATCH_BYTES`] before tungstenite writes them, so a
    /// subscriber with a backlog of notifications gets several in one `send`. The session
    /// flushes every response at once and everything else at the end of each step, so nothing
    /// waits in the buffer. tungstenite keeps the buffer's capacity once grown, so it is small:
    /// a connection that never had a backlog holds no more than its largest frame, as before.
    fn protocol(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(WRITE_BATCH_BYTES)
            .max_write_buffer_size(self.max_message_bytes.max(64 * 1024) * 4)
            .max_message_size(Some(self.max_message_bytes))
            .max_frame_size(Some(self.max_message_bytes))
    }
}

/// Idempotency keys a service built by [`WsService::new`] keeps in memory.
const DEFAULT_IDEMPOTENCY_KEYS: usize = 10_000;

/// Bytes tungstenite reads from the socket at a time.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Bytes of frames tungstenite gathers before it writes them to the socket (see
/// [`WsSettings::protocol`]): about four notifications.
const WRITE_BATCH_BYTES: usize = 1024;

/// Everything sessions share: the handlers, the event hub, the checks and the shutdown signal.
pub struct WsService<H> {
    handler: Arc<H>,
    hub: Arc<Hub>,
    events: Arc<dyn EventBus>,
    authenticator: Arc<Authenticator>,
    access: Arc<AccessControl>,
    connections: ConnectionLimits,
    settings: WsSettings,
    shutdown: watch::Sender<bool>,
    sessions: TaskTracker,
    counts: Arc<SessionCounts>,
    /// Writes run at most once per `correlationId` of a caller.
    idempotency: Arc<Idempotency>,
}

impl<H: PetStoreApi + Subscriptions> WsService<H> {
    /// The service, limiting connections per address in this process and keeping the
    /// idempotency records of its writes in memory for a day; sessions run until
    /// [`WsService::shutdown`].
    pub fn new(
        handler: Arc<H>,
        (hub, events): (Arc<Hub>, Arc<dyn EventBus>),
        authenticator: Arc<Authenticator>,
        access: Arc<AccessControl>,
        settings: WsSettings,
    ) -> Arc<Self> {
        let connections = ConnectionLimiter::new(settings.max_connections_per_ip);
        let idempotency = Arc::new(Idempotency::new(
            Arc::new(MemoryIdempotencyStore::new(DEFAULT_IDEMPOTENCY_KEYS)),
            IdempotencySettings {
                ttl: Duration::from_secs(24 * 60 * 60),
                lease: settings.request_timeout + Duration::from_secs(5),
            },
        ));
        Self::with_connection_limits(
            handler,
            (hub, events),
            authenticator,
            access,
            settings,
            connections,
            idempotency,
        )
    }

    /// The service with the given per-address connection limit and idempotency records (the
    /// cluster's, say); `settings.max_connections_per_ip` is then not used. `hub` is this
    /// node's fan-out, `events` the bus delivering to it (asked for the history when a session
    /// resumes topics).
    pub fn with_connection_limits(
        handler: Arc<H>,
        (hub, events): (Arc<Hub>, Arc<dyn EventBus>),
        authenticator: Arc<Authenticator>,
        access: Arc<AccessControl>,
        settings: WsSettings,
        connections: ConnectionLimits,
        idempotency: Arc<Idempotency>,
    ) -> Arc<Self> {
        Arc::new(Self {
            handler,
            hub,
            events,
            authenticator,
            access,
            connections,
            settings,
            shutdown: watch::Sender::new(false),
            sessions: TaskTracker::new(),
            counts: Arc::default(),
            idempotency,
        })
    }

    /// The hub sessions subscribe through.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The event bus, whose history resuming sessions are replayed from.
    pub fn events(&self) -> &Arc<dyn EventBus> {
        &self.events
    }

    /// The handlers operations are dispatched to, and topic subscriptions authorized by.
    pub fn handler(&self) -> &Arc<H> {
        &self.handler
    }

    /// Verifies the credentials sessions present.
    pub fn authenticator(&self) -> &Arc<Authenticator> {
        &self.authenticator
    }

    /// The session limits.
    pub fn settings(&self) -> &WsSettings {
        &self.settings
    }

    /// The per-address connection limit (its `local()` counts are this node's).
    pub fn connection_limits(&self) -> &ConnectionLimits {
        &self.connections
    }

    /// The session counts (shared, live).
    pub fn counts(&self) -> &Arc<SessionCounts> {
        &self.counts
    }

    /// Closes every session gracefully (in-flight requests are answered first, then the close
    /// frame says 1012 service restart, so clients reconnect, through the load balancer, to a
    /// node that is still serving) and waits up to `grace` for them to finish.
    pub async fn shutdown(&self, grace: Duration) {
        self.shutdown.send_replace(true);
        self.sessions.close();
        if tokio::time::timeout(grace, self.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.sessions.len(),
                "WebSocket sessions still open after the shutdown grace period"
            );
        }
    }

    /// Answers an upgrade request: checks it, and on success returns `101 Switching Protocols`
    /// and starts the session once hyper hands the connection over.
    async fn upgrade(self: &Arc<Self>, request: &Request) -> Result<Response, ApiError> {
        let key = handshake_key(request)?;
        if *self.shutdown.borrow() {
            return Err(ApiError::unavailable("the server is shutting down", 1));
        }
        let caller = self.access.caller(request);
        // Credentials on the upgrade are optional; wrong ones are refused now rather than
        // letting the client believe it is signed in.
        let presented = !matches!(caller.authentication.bearer, Presented::Absent)
            || !matches!(caller.authentication.api_key, Presented::Absent);
        if presented && caller.authentication.principal().is_none() {
            return Err(ApiError::Unauthorized {
                challenge: petstore_api::Challenge::InvalidToken,
            });
        }
        let permit = match caller.client_ip {
            Some(ip) => Some(self.connections.try_acquire(ip).await.map_err(|refused| {
                tracing::debug!(%ip, "WebSocket connection refused: too many from this address");
                ApiError::RateLimited {
                    retry_after_secs: 1,
                    limit: u64::from(refused.limit),
                    reset_secs: 1,
                }
            })?),
            None => None,
        };
        let on_upgrade = upgrade::take(request)
            .map_err(|_| ApiError::BadRequest("the connection cannot be upgraded".to_owned()))?;
        let service = Arc::clone(self);
        let client_ip: Option<IpAddr> = caller.client_ip;
        let authentication = caller.authentication;
        self.sessions.spawn(async move {
            let upgraded = match on_upgrade.connection().await {
                Ok(upgraded) => upgraded,
                Err(error) => {
                    tracing::debug!(%error, "WebSocket upgrade did not complete");
                    return;
                }
            };
            session::run(service, upgraded, client_ip, authentication, permit).await;
        });
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .map_err(|_| ApiError::Internal)?;
        Ok(Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, accept)
            .finish())
    }
}

/// The `Sec-WebSocket-Key` of a valid upgrade request (RFC 6455 §4.2.1).
fn handshake_key(request: &Request) -> Result<String, ApiError> {
    let headers = request.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return Err(ApiError::BadRequest(
            "this is the WebSocket endpoint: send an `Upgrade: websocket` request".to_owned(),
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|value| value.to_str().ok())
        != Some("13")
    {
        return Err(ApiError::BadRequest(
            "only WebSocket version 13 is supported (`Sec-WebSocket-Version: 13`)".to_owned(),
        ));
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|value| value.to_str().ok())
        .filter(|key| !key.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::BadRequest("`Sec-WebSocket-Key` is missing".to_owned()))
}

/// The poem endpoint of the WebSocket address ([`WS_PATH`](crate::edge::paths::WS_PATH)).
pub struct WsEndpoint<H>(pub Arc<WsService<H>>);

impl<H: PetStoreApi + Subscriptions> Endpoint for WsEndpoint<H> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        if request.method() != poem::http::Method::GET {
            return Err(HttpError(ApiError::MethodNotAllowed).into());
        }
        let outcome = self.0.upgrade(&request).await;
        metrics::ws().upgrade(match &outcome {
            Ok(_) => Upgrade::Accepted,
            Err(ApiError::RateLimited { .. }) => Upgrade::ConnectionLimit,
            Err(ApiError::Unauthorized { .. }) => Upgrade::Unauthorized,
            Err(ApiError::Unavailable { .. }) => Upgrade::ShuttingDown,
            Err(_) => Upgrade::Invalid,
        });
        match outcome {
            Ok(response) => Ok(response),
            Err(error) => Ok(error_response(&error).into_response()),
        }
    }
}
