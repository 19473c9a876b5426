//! The listening socket and the accept loop.

use std::{io, net::SocketAddr, pin::pin, sync::Arc, time::Duration};

use hyper_util::{rt::TokioExecutor, server::conn::auto};
use poem::{Addr, Endpoint, web::LocalAddr};
use tokio::{net::TcpListener, sync::watch, time::sleep};
use tokio_rustls::TlsAcceptor;

use super::{
    MIN_MAX_HEADER_BYTES, ServeError, ServeSettings,
    connection::{Shared, connection},
    shutdown::{self, Phase},
    tls::tls_acceptor,
};

/// First pause after an accept error that is not about one connection (out of file descriptors,
/// out of memory); doubled on each further error, up to [`MAX_ACCEPT_BACKOFF`].
const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Longest pause between accept attempts while accepting keeps failing.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// A bound listening socket, ready to serve.
pub struct Listener {
    tcp: TcpListener,
    local_addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    builder: auto::Builder<TokioExecutor>,
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

/// Loads the TLS certificate and key (if configured) and binds `addr`.
///
/// The TLS files are read and checked (PEM, a certificate, a private key that belongs to it)
/// before the socket is bound, so a bad file stops the start with an error naming it.
pub async fn bind(addr: SocketAddr, settings: ServeSettings) -> Result<Listener, ServeError> {
    let tls = settings.tls.as_ref().map(tls_acceptor).transpose()?;
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local_addr = tcp
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;

    let max_header_bytes = settings.max_header_bytes.max(MIN_MAX_HEADER_BYTES);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's own header-read timeout stays off: it costs a boxed timer per request and also
    // closes idle keep-alive connections; the watchdog does both jobs per connection.
    builder
        .http1()
        .header_read_timeout(None)
        .keep_alive(true)
        .max_buf_size(max_header_bytes);
    builder
        .http2()
        .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX));

    Ok(Listener {
        tcp,
        local_addr,
        tls,
        builder,
        header_read_timeout: settings.header_read_timeout,
        idle_timeout: settings.idle_timeout,
    })
}

impl Listener {
    /// The bound address (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether connections are served over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves `endpoint` on every accepted connection until `shutdown` completes, then shuts down
    /// gracefully: stops accepting, lets connections finish for up to `grace`, and drops the rest.
    ///
    /// Errors accepting a connection do not stop the loop: they are logged, and when they are not
    /// about one connection (out of file descriptors) the loop pauses briefly before retrying.
    pub async fn serve<E>(
        self,
        endpoint: E,
        shutdown: impl Future<Output = ()>,
        grace: Duration,
    ) -> io::Result<()>
    where
        E: Endpoint + 'static,
    {
        let Self {
            tcp,
            local_addr,
            tls,
            builder,
            header_read_timeout,
            idle_timeout,
        } = self;
        let shared = Arc::new(Shared {
            endpoint,
            builder,
            local_addr: LocalAddr(Addr::SocketAddr(local_addr)),
            tls,
            header_read_timeout,
            idle_timeout,
        });
        let (phase, phase_receiver) = watch::channel(Phase::Serving);
        let mut shutdown = pin!(shutdown);
        let mut backoff = MIN_ACCEPT_BACKOFF;

        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = tcp.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    backoff = MIN_ACCEPT_BACKOFF;
                    tokio::spawn(connection(
                        shared.clone(),
                        stream,
                        peer,
                        phase_receiver.clone(),
                    ));
                }
                Err(error) if is_connection_error(&error) => {
                    tracing::debug!(%error, "a connection failed before it was accepted");
                }
                Err(error) => {
                    tracing::error!(%error, pause_ms = backoff.as_millis(), "cannot accept connections; pausing");
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        () = sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                }
            }
        }

        // Closing the listening socket first: no new connection while the others wind down.
        drop(tcp);
        drop(phase_receiver);
        shutdown::wind_down(phase, grace).await;
        Ok(())
    }
}

/// Whether an accept error concerns only the connection being accepted (the next accept may
/// well succeed), rather than the process (file descriptors, memory).
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}
