//! Wiring: builds the store, the token service, the handlers and the HTTP routes from a
//! [`Config`], binds the listener and serves until shut down.
//!
//! - `backend`: what a node shares with others (in this process, or in Redis).
//! - `routes`: REST, operational, WebSocket and MCP routes assembled behind the HTTP edge.
//! - [`serve`]: the HTTP(S) serve loop: listener, TLS, connections, watchdog, shutdown.
//! - `settings`: the configuration mapped to each module's own settings.

mod backend;
#[cfg(unix)]
mod open_files;
mod routes;
pub mod serve;
mod settings;

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use futures_util::future::BoxFuture;
use tokio::{sync::oneshot, task::JoinHandle};

use crate::{
    auth::{self, ApiKeys, AuthError, Authenticator, TokenService},
    cluster::{NodeInfo, NodeLoad},
    config::Config,
    edge::{AccessControl, Idempotency},
    events::Hub,
    handlers::{AuthServices, PetStore},
    limits::{OriginPolicy, TrustedProxies},
    mcp::McpService,
    redis::{Redis, RedisError},
    rest::{OpsState, Readiness},
    store::{self, DemoDataError, NewUser, Store},
    telemetry,
    ws::WsService,
};
use backend::Backend;
use petstore_api::{
    ApiError, Role,
    error::{Conflict, Failure},
    models::{User, schemas},
    validation,
};
use serve::ServeError;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The JWT private key file cannot be read.
    #[error("cannot read the JWT private key {path}: {source}")]
    KeyFile {
        /// The configured path.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The token service cannot start (bad key, bad settings).
    #[error("token service: {0}")]
    Tokens(#[from] AuthError),
    /// The demo data could not be loaded.
    #[error("demo data: {0}")]
    DemoData(#[from] DemoDataError),
    /// The listener cannot be bound, or its TLS certificate and key cannot be used.
    #[error(transparent)]
    Listen(#[from] ServeError),
    /// Redis is configured but cannot be used.
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
}

/// A server serving in the background.
pub struct RunningServer {
    local_addr: SocketAddr,
    tls: bool,
    readiness: Readiness,
    drain: Duration,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
    /// Closes the WebSocket sessions, which leave the HTTP serve loop once upgraded, and the MCP
    /// sessions, whose event streams would hold their connections open.
    close_sessions: Box<dyn FnOnce(Duration) -> BoxFuture<'static, ()> + Send + Sync>,
    /// Leaves the cluster and closes the backend's connections, once nothing is served. (In a
    /// mutex only to make the server `Sync`; it is taken once.)
    release_backend: std::sync::Mutex<Option<BoxFuture<'static, ()>>>,
    grace: Duration,
}

impl RunningServer {
    /// The address it listens on (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR:PORT`, or `https://ADDR:PORT` when serving TLS, for clients.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Reports not ready at `/ready` for the configured drain time (still serving), then stops
    /// accepting connections, lets in-flight requests finish (up to the configured grace period)
    /// and waits until the server has stopped.
    pub async fn shutdown(mut self) {
        self.readiness.drain();
        if !self.drain.is_zero() {
            tracing::info!(
                drain_secs = self.drain.as_secs(),
                "draining: /ready answers 503"
            );
            tokio::time::sleep(self.drain).await;
        }
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        // HTTP connections and WebSocket sessions wind down side by side, each within the grace.
        let close_sessions =
            std::mem::replace(&mut self.close_sessions, Box::new(|_| Box::pin(async {})));
        let (_, served) = tokio::join!(close_sessions(self.grace), &mut self.task);
        match served {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "server stopped with an error"),
            Err(error) => tracing::error!(%error, "server task failed"),
        }
        let release = match self.release_backend.get_mut() {
            Ok(release) => release.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(release) = release {
            release.await;
        }
    }
}

/// Builds everything from `config`, binds, and serves in a background task.
pub async fn spawn(config: Config) -> Result<RunningServer, StartError> {
    let node_id = config
        .node_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let hub = Arc::new(Hub::new());
    let mut backend = match settings::redis(&config) {
        Some(settings) => {
            // Tokens signed by one node must verify on every other: a per-process key would
            // make each node reject the others' tokens.
            if config.jwt_private_key.is_none() {
                return Err(StartError::Config(
                    "with --redis-url every node must sign with the same key: set --jwt-private-key"
                        .into(),
                ));
            }
            let redis = Redis::connect(settings).await?;
            Backend::redis(&config, &hub, redis, &node_id).await?
        }
        None => Backend::in_process(&config, &hub),
    };
    let store = backend.store.clone();
    if !config.no_demo_data {
        match store::load_demo_data(&*store, auth::hash_password).await {
            Ok(_) => {}
            // Nodes starting together on one Redis: another node created the demo users first
            // (they are written before anything else, in one step), and loads the rest.
            Err(DemoDataError::Store(ApiError::Conflict(_))) => {
                tracing::info!("demo data is being loaded by another node");
            }
            Err(error) => return Err(error.into()),
        }
    }
    if let (Some(username), Some(password)) = (&config.admin_user, &config.admin_password) {
        bootstrap_admin(&*store, username, password.expose()).await?;
    }
    let tokens = Arc::new(TokenService::with_revocation_store(
        settings::tokens(&config)?,
        backend.revocations.clone(),
    )?);
    let api_keys = ApiKeys::new(config.api_keys.clone())
        .map_err(|error| StartError::Config(format!("API keys: {error}")))?;
    let origins = OriginPolicy::new(&config.allowed_origins)
        .map_err(|error| StartError::Config(format!("allowed origins: {error}")))?;

    let handler = Arc::new(
        PetStore::new(
            store.clone(),
            AuthServices {
                tokens: tokens.clone(),
                sessions: backend.sessions.clone(),
                login_throttle: backend.login_throttle.clone(),
            },
            settings::handlers(&config),
        )
        .with_events(backend.events.clone()),
    );
    let authenticator = Arc::new(Authenticator::new(tokens.clone(), api_keys));
    let access = Arc::new(AccessControl::new(
        authenticator.clone(),
        TrustedProxies::new(config.trusted_proxies.clone()),
        backend.request_limiter.clone(),
        config.rate_limit_exempt.clone(),
        origins,
    ));
    let idempotency = Arc::new(Idempotency::new(
        backend.idempotency.clone(),
        settings::idempotency(&config),
    ));
    let mcp = McpService::new(
        handler.clone(),
        hub.clone(),
        access.clone(),
        settings::mcp(&config),
    );
    let ws = WsService::with_connection_limits(
        handler.clone(),
        (hub, backend.events.clone()),
        authenticator,
        access.clone(),
        settings::ws(&config),
        backend.connections.clone(),
        idempotency.clone(),
    );
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = serve::bind(addr, settings::serve(&config)?).await?;
    let local_addr = listener.local_addr();
    let tls = listener.is_tls();

    let sessions = ws.counts().clone();
    let registry = backend.registry(
        &config,
        NodeInfo {
            id: node_id.clone(),
            address: config
                .advertise_address
                .clone()
                .unwrap_or_else(|| local_addr.to_string()),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        move || NodeLoad {
            connections: sessions.open() as u64,
            in_flight_requests: telemetry::metrics::global().http.in_flight(),
        },
    );
    let mut ops = OpsState::new(store, node_id, tokens)
        .map_err(StartError::Config)?
        .with_sessions(ws.counts().clone())
        .with_nodes(registry.clone());
    if let Some(redis) = &backend.redis {
        ops = ops.with_redis(redis.clone());
    }
    let readiness = ops.readiness();
    let app = routes::routes(
        handler,
        (ws.clone(), mcp.clone()),
        ops,
        access,
        idempotency,
        (settings::edge(&config), !config.no_direct_routes),
    );

    let (shutdown, shutdown_signal) = oneshot::channel::<()>();
    let grace = config.shutdown_grace();
    let task = tokio::spawn(listener.serve(
        app,
        async {
            let _ = shutdown_signal.await;
        },
        grace,
    ));
    tracing::info!(
        %local_addr,
        tls,
        demo_data = !config.no_demo_data,
        redis = backend.redis.is_some(),
        "petstore-ws started"
    );
    Ok(RunningServer {
        local_addr,
        tls,
        readiness,
        drain: config.shutdown_drain(),
        shutdown: Some(shutdown),
        task,
        close_sessions: Box::new(move |grace| {
            Box::pin(async move {
                mcp.shutdown();
                ws.shutdown(grace).await;
            })
        }),
        release_backend: std::sync::Mutex::new(Some(backend.shutdown(registry))),
        grace,
    })
}

/// Makes the configured administrator exist with the configured password and the admin role:
/// the configuration is the source of truth for this one account.
async fn bootstrap_admin(
    store: &dyn Store,
    username: &str,
    password: &str,
) -> Result<(), StartError> {
    let admin_error = |message: String| StartError::Config(format!("admin user: {message}"));
    let password_hash = auth::hash_password_async(password.to_owned())
        .await
        .map_err(|error| admin_error(error.to_string()))?;
    let user = User {
        id: None,
        username: username.to_owned(),
        first_name: None,
        last_name: None,
        email: None,
        password: None,
        phone: None,
        user_status: None,
    };
    // The configured name must be one the API itself would accept.
    let broken = validation::validate(&schemas::USER, &serde_json::json!({ "username": username }));
    if let Some(error) = broken.first() {
        return Err(admin_error(format!("`{username}`: {}", error.message)));
    }
    let existing = store
        .get_user(username)
        .await
        .map_err(|error| admin_error(error.to_string()))?;
    let created = existing.is_none()
        && match store
            .create_users(vec![NewUser {
                user,
                password_hash: password_hash.clone(),
                roles: vec![Role::Admin],
            }])
            .await
        {
            Ok(_) => true,
            // Another node of the cluster created it a moment ago: promote it like any other.
            Err(Failure::Refused(Conflict(_))) => false,
            Err(error) => return Err(admin_error(error.to_string())),
        };
    if !created {
        let existing = store
            .get_user(username)
            .await
            .map_err(|error| admin_error(error.to_string()))?
            .ok_or_else(|| admin_error("deleted while being set up".to_owned()))?;
        let mut roles = existing.roles.clone();
        roles.push(Role::Admin);
        store
            .set_user_roles(username, roles)
            .await
            .map_err(|error| admin_error(error.to_string()))?;
        store
            .set_password_hash(username, password_hash)
            .await
            .map_err(|error| admin_error(error.to_string()))?;
    }
    tracing::info!(%username, "administrator account ready");
    Ok(())
}

/// Serves until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(config: Config) -> Result<(), StartError> {
    #[cfg(unix)]
    open_files::raise_open_file_limit();
    let server = spawn(config).await?;
    println!("petstore-ws listening on {}", server.base_url());
    wait_for_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
