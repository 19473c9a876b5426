//! Wiring: builds the store, the token service, the handlers and the HTTP routes from a
//! [`Config`], binds the listener and serves until shut down.

use std::{fs, io, net::SocketAddr, sync::Arc};

use poem::{
    Server,
    listener::{Acceptor, Listener, TcpListener},
};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::{
    auth::{self, AuthError, TokenService, TokenSettings},
    config::Config,
    handlers::{HandlerSettings, PetStore},
    http::{self, OpsState, payload::BodyLimits},
    store::{self, DemoDataError, MemoryStore, SharedStore},
};

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
    /// The listener cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        source: io::Error,
    },
}

/// A server serving in the background.
pub struct RunningServer {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl RunningServer {
    /// The address it listens on (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR:PORT`, for clients.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Stops accepting connections, lets in-flight requests finish (up to the configured grace
    /// period) and waits until the server has stopped.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match (&mut self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "server stopped with an error"),
            Err(error) => tracing::error!(%error, "server task failed"),
        }
    }
}

/// Builds everything from `config`, binds, and serves in a background task.
pub async fn spawn(config: Config) -> Result<RunningServer, StartError> {
    let store: SharedStore = Arc::new(MemoryStore::new());
    if !config.no_demo_data {
        store::load_demo_data(&*store, auth::hash_password).await?;
    }
    let tokens = Arc::new(TokenService::new(token_settings(&config)?)?);
    let handler = Arc::new(PetStore::new(
        store.clone(),
        tokens,
        HandlerSettings {
            rate_limit_per_hour: config.rate_limit_per_hour,
        },
    ));
    let ops = OpsState::new(store, uuid::Uuid::new_v4().to_string()).map_err(StartError::Config)?;
    let limits = BodyLimits {
        json: config.max_json_body_bytes,
        image: config.max_image_bytes,
    };
    let app = http::routes(handler, ops, limits);

    let addr = SocketAddr::new(config.bind, config.port);
    let bind_error = |source| StartError::Bind {
        addr: addr.to_string(),
        source,
    };
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .map_err(bind_error)?;
    let local_addr = acceptor
        .local_addr()
        .first()
        .and_then(|addr| addr.as_socket_addr().copied())
        .ok_or_else(|| bind_error(io::Error::other("the listener has no socket address")))?;

    let (shutdown, shutdown_signal) = oneshot::channel::<()>();
    let grace = config.shutdown_grace();
    let task = tokio::spawn(async move {
        Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                app,
                async {
                    let _ = shutdown_signal.await;
                },
                Some(grace),
            )
            .await
    });
    tracing::info!(%local_addr, demo_data = !config.no_demo_data, "petstore-ws started");
    Ok(RunningServer {
        local_addr,
        shutdown: Some(shutdown),
        task,
    })
}

/// Serves until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(config: Config) -> Result<(), StartError> {
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

fn token_settings(config: &Config) -> Result<TokenSettings, StartError> {
    let private_key_pem = match &config.jwt_private_key {
        Some(path) => Some(
            fs::read_to_string(path).map_err(|source| StartError::KeyFile {
                path: path.display().to_string(),
                source,
            })?,
        ),
        None => None,
    };
    Ok(TokenSettings {
        issuer: config.jwt_issuer.clone(),
        audience: config.jwt_audience.clone(),
        access_ttl: config.access_token_ttl(),
        private_key_pem,
    })
}
