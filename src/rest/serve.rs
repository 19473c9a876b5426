//! The server loop: accepts TCP connections, optionally completes a TLS handshake, and serves each
//! connection with hyper, handing every request to a poem endpoint.
//!
//! Our own loop rather than `poem::Server`, for two things poem's loop cannot do: it runs hyper
//! without a timer, so there is no header-read timeout and a client trickling header bytes holds a
//! connection forever; and it serves plain TCP only, while we serve HTTPS (and WSS) directly when a
//! certificate is configured. Everything above the connection (routing, extractors, WebSocket
//! upgrades, responses) stays poem's: requests and responses cross with poem's own conversions.
//!
//! # Slow and idle clients
//!
//! One watchdog per connection, not hyper's HTTP/1 `header_read_timeout`. hyper's timer would
//! cover slow request heads, but it costs a boxed, freshly registered timer per request (about 5 % of
//! the instructions of a `getPetById`), it also closes idle keep-alive connections after the
//! header-read timeout (hyper 1.x starts it as soon as a connection waits for its next request,
//! so idle and header timeouts cannot differ), and it sees neither HTTP/2 nor the bytes
//! hyper-util reads to tell HTTP/1 from the HTTP/2 preface.
//!
//! The watchdog instead reads what the connection reports (bytes read, bytes written, requests
//! handed to the endpoint, responses finished: one relaxed atomic operation each) a few times per
//! timeout, with one timer per connection:
//!
//! | attack or leftover | covered by | after |
//! |---|---|---|
//! | connect and send nothing; never finish the TLS handshake; trickle the HTTP/2 preface or the first request head (slowloris) | first-request deadline | `header_read_timeout` from accept, exactly |
//! | trickle a later request head on a keep-alive HTTP/1 connection (slowloris) | head timer: bytes arrive with no request in flight, and no head completes | `header_read_timeout` from when the bytes are seen |
//! | idle keep-alive connection (HTTP/1), or HTTP/2 connection with no open stream (pings do not count) | idle timer: asked to close (HTTP/2 `GOAWAY`), dropped one check later | `idle_timeout` |
//! | request body that stalls, client that stops reading the response | silence timer: a request in flight but no byte read or written | `idle_timeout` |
//!
//! Timers other than the first-request deadline start at the check that first sees their state,
//! so they never fire early and fire at most two check periods (half the shorter timeout) late.
//! The watchdog closes without a response (as hyper's timer did).
//!
//! Not covered here: a request body trickled just faster than `idle_timeout` (a whole-request
//! deadline is the edge's job), and the many-connections variant of every attack above, which a
//! per-IP connection limit is for. WebSocket connections leave this loop once upgraded: the
//! timeouts and the graceful shutdown below do not apply to them.
//!
//! # Shutdown
//!
//! On the shutdown signal the loop stops accepting (the listening socket is closed), asks every
//! connection to finish gracefully (in-flight requests complete, idle connections close at once,
//! HTTP/2 gets `GOAWAY`), waits up to the grace period, then drops the connections still open.

use std::{
    convert::Infallible,
    fs, io,
    net::SocketAddr,
    path::{Path, PathBuf},
    pin::{Pin, pin},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use hyper::{
    body::{Body, Frame, Incoming, SizeHint},
    service::service_fn,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use poem::{
    Addr, Endpoint,
    http::{Version, uri::Scheme},
    web::{LocalAddr, RemoteAddr},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::watch,
    time::{Instant, sleep, sleep_until, timeout, timeout_at},
};
use tokio_rustls::{TlsAcceptor, rustls};

/// Default for [`ServeSettings::max_header_bytes`].
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// The smallest read buffer hyper accepts, and so the smallest header limit we can set.
const MIN_MAX_HEADER_BYTES: usize = 8 * 1024;

/// How many times per timeout (the shorter of the header-read and idle timeouts) the watchdog
/// looks at each connection.
const CHECKS_PER_TIMEOUT: u32 = 4;

/// First pause after an accept error that is not about one connection (out of file descriptors,
/// out of memory); doubled on each further error, up to [`MAX_ACCEPT_BACKOFF`].
const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Longest pause between accept attempts while accepting keeps failing.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// How the server treats connections.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// How long a client may take to deliver a request head once it has started sending it, and
    /// a new connection to deliver its first (TLS handshake included).
    pub header_read_timeout: Duration,
    /// How long a connection may go without a request in flight (keep-alive), or with one in
    /// flight but nothing read or written, before it is closed.
    pub idle_timeout: Duration,
    /// Largest request head (HTTP/1, refused with 431 above) or header list (HTTP/2), in bytes.
    /// Values below 8 KiB are raised to 8 KiB, hyper's minimum.
    pub max_header_bytes: usize,
    /// Serve HTTPS with this certificate and key; plain HTTP when `None`.
    pub tls: Option<TlsSettings>,
}

impl Default for ServeSettings {
    /// 10 s to deliver a head, 60 s of silence, 64 KiB of headers, plain HTTP.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            tls: None,
        }
    }
}

/// Where the TLS certificate and key are.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM file with the certificate chain, leaf first.
    pub cert_pem_path: PathBuf,
    /// PEM file with the leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem_path: PathBuf,
}

/// Why the server cannot listen.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// A TLS file cannot be read.
    #[error("cannot read the TLS {what} file {path}: {source}")]
    ReadFile {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The configured path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The certificate file is not PEM or holds no certificate.
    #[error("the TLS certificate file {path} holds no PEM certificate: {reason}")]
    BadCertificate {
        /// The configured path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file is not PEM or holds no private key.
    #[error(
        "the TLS private key file {path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}"
    )]
    BadKey {
        /// The configured path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key is not the certificate's.
    #[error("the TLS private key {key} does not belong to the certificate {cert}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the certificate and key for another reason (an unsupported key type, a
    /// certificate it cannot parse).
    #[error("cannot use the TLS certificate {cert} with the key {key}: {source}")]
    Tls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        source: rustls::Error,
    },
}

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

        drop(tcp);
        drop(phase_receiver);
        let open = phase.receiver_count();
        tracing::info!(
            connections = open,
            grace_secs = grace.as_secs_f32(),
            "stopped accepting; letting connections finish"
        );
        // No receiver left (every connection gone) fails the send, which is fine: nothing to tell.
        let _ = phase.send(Phase::Draining);
        if timeout(grace, phase.closed()).await.is_err() {
            tracing::warn!(
                connections = phase.receiver_count(),
                "grace period over; dropping the connections still open"
            );
            let _ = phase.send(Phase::Closing);
            phase.closed().await;
        }
        tracing::info!("server stopped");
        Ok(())
    }
}

/// Where the server is in its life, as every connection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepting and serving.
    Serving,
    /// Finish in-flight requests, then close.
    Draining,
    /// Close now.
    Closing,
}

/// What every connection task shares.
struct Shared<E> {
    endpoint: E,
    builder: auto::Builder<TokioExecutor>,
    local_addr: LocalAddr,
    tls: Option<TlsAcceptor>,
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

/// Serves one accepted connection: the TLS handshake if any, then HTTP.
async fn connection<E: Endpoint + 'static>(
    shared: Arc<Shared<E>>,
    stream: TcpStream,
    peer: SocketAddr,
    mut phase: watch::Receiver<Phase>,
) {
    // Small responses go out at once rather than waiting for an ACK (Nagle).
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
    }
    let accepted = Instant::now();
    let activity = Arc::new(Activity::default());
    let stream = Watched {
        inner: stream,
        activity: activity.clone(),
    };
    let conn = |scheme| Conn {
        shared: shared.clone(),
        activity,
        remote_addr: RemoteAddr(Addr::SocketAddr(peer)),
        scheme,
    };
    let Some(acceptor) = &shared.tls else {
        return serve_http(conn(Scheme::HTTP), stream, accepted, peer, &mut phase).await;
    };
    let handshake = timeout_at(
        accepted + shared.header_read_timeout,
        acceptor.accept(stream),
    );
    let stream = tokio::select! {
        biased;
        // A connection still in its handshake has no request to finish: it goes on any change.
        _ = phase.changed() => return,
        result = handshake => match result {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake not completed in time");
                return;
            }
        },
    };
    serve_http(conn(Scheme::HTTPS), stream, accepted, peer, &mut phase).await;
}

/// What every request of one connection needs: one reference-counted clone per request.
struct Conn<E> {
    shared: Arc<Shared<E>>,
    activity: Arc<Activity>,
    remote_addr: RemoteAddr,
    scheme: Scheme,
}

/// Serves HTTP/1 or HTTP/2 (with upgrades) on `io` until the connection ends, the watchdog
/// closes it, or the server shuts down.
async fn serve_http<E, I>(
    conn: Conn<E>,
    io: I,
    accepted: Instant,
    peer: SocketAddr,
    phase: &mut watch::Receiver<Phase>,
) where
    E: Endpoint + 'static,
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let conn = Arc::new(conn);
    let service = {
        let conn = conn.clone();
        service_fn(move |request: hyper::Request<Incoming>| {
            conn.activity.request_started(request.version());
            let conn = conn.clone();
            async move {
                // The conversion keeps hyper's upgrade handle, which poem's WebSocket extractor
                // needs.
                let request = poem::Request::from((
                    request,
                    conn.shared.local_addr.clone(),
                    conn.remote_addr.clone(),
                    conn.scheme.clone(),
                ));
                let response = conn.shared.endpoint.get_response(request).await;
                let response = hyper::Response::from(response).map(|body| Counted { body, conn });
                Ok::<_, Infallible>(response)
            }
        })
    };
    let shared = &conn.shared;
    let mut connection = pin!(
        shared
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
    );
    let mut watchdog = Watchdog::new(accepted, shared.header_read_timeout, shared.idle_timeout);
    let mut check = pin!(sleep_until(watchdog.next_check()));
    if *phase.borrow_and_update() != Phase::Serving {
        connection.as_mut().graceful_shutdown();
    }

    loop {
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            () = check.as_mut() => {
                match watchdog.check(&conn.activity, Instant::now()) {
                    Verdict::Keep => {}
                    Verdict::AskToClose(why) => {
                        tracing::debug!(%peer, why, "closing connection");
                        connection.as_mut().graceful_shutdown();
                    }
                    Verdict::Drop(why) => {
                        tracing::debug!(%peer, why, "dropping connection");
                        return;
                    }
                }
                check.as_mut().reset(watchdog.next_check());
            }
            changed = phase.changed() => match changed.map(|()| *phase.borrow_and_update()) {
                Ok(Phase::Serving) => {}
                Ok(Phase::Draining) => connection.as_mut().graceful_shutdown(),
                Ok(Phase::Closing) | Err(_) => return,
            },
        }
    }
}

/// What a connection did, for the watchdog: set by the connection's reads and writes, by the
/// service when a request head is complete, and by response bodies when hyper is done with them.
///
/// Relaxed ordering throughout: these are independent hints the watchdog reads once per check,
/// and a change it sees one check late only moves a decision by one check.
#[derive(Debug, Default)]
struct Activity {
    /// Bytes were read since the watchdog last looked.
    read: AtomicBool,
    /// Bytes were written since the watchdog last looked.
    written: AtomicBool,
    /// Requests handed to the endpoint (complete request heads).
    started: AtomicU32,
    /// Responses hyper is done with (written out, or abandoned).
    finished: AtomicU32,
    /// The connection speaks HTTP/2 (known from its first request).
    http2: AtomicBool,
}

impl Activity {
    fn request_started(&self, version: Version) {
        self.started.fetch_add(1, Ordering::Relaxed);
        if version == Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
    }

    fn response_finished(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// A response body that tells the connection's [`Activity`] when hyper is done with it.
struct Counted<B, E> {
    body: B,
    conn: Arc<Conn<E>>,
}

impl<B: Body + Unpin, E> Body for Counted<B, E> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B, E> Drop for Counted<B, E> {
    fn drop(&mut self) {
        self.conn.activity.response_finished();
    }
}

/// The watchdog's decision at a check.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Nothing to do.
    Keep,
    /// Ask the connection to close gracefully; it is dropped at the next check if still open.
    AskToClose(&'static str),
    /// Drop the connection now.
    Drop(&'static str),
}

/// Decides, at each check, what happens to a connection (see the module documentation).
///
/// A state first seen at a check is taken to have begun at that check, so a timeout is never
/// cut short and fires at most two check periods late.
#[derive(Debug)]
struct Watchdog {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    /// Time between checks.
    every: Duration,
    /// Until the first request: when the connection goes if none has arrived.
    first_request_deadline: Option<Instant>,
    /// When the next periodic check is due.
    next_periodic: Instant,
    /// Counts of [`Activity`] at the previous check.
    started: u32,
    finished: u32,
    /// No request in flight, and (HTTP/1) no bytes of a next one, since then.
    idle_since: Option<Instant>,
    /// Bytes of a next HTTP/1 request head arriving, without the head completing, since then.
    head_since: Option<Instant>,
    /// A request in flight, but nothing read or written, since then.
    silent_since: Option<Instant>,
    /// The connection has been asked to close.
    asked: bool,
}

impl Watchdog {
    fn new(accepted: Instant, header_read_timeout: Duration, idle_timeout: Duration) -> Self {
        let every = (header_read_timeout.min(idle_timeout) / CHECKS_PER_TIMEOUT)
            .max(Duration::from_millis(1));
        Self {
            header_read_timeout,
            idle_timeout,
            every,
            first_request_deadline: Some(accepted + header_read_timeout),
            next_periodic: accepted + every,
            started: 0,
            finished: 0,
            idle_since: None,
            head_since: None,
            silent_since: None,
            asked: false,
        }
    }

    /// When [`Watchdog::check`] should run next.
    fn next_check(&self) -> Instant {
        match self.first_request_deadline {
            Some(deadline) => deadline.min(self.next_periodic),
            None => self.next_periodic,
        }
    }

    fn check(&mut self, activity: &Activity, now: Instant) -> Verdict {
        if let Some(deadline) = self.first_request_deadline {
            if activity.started.load(Ordering::Relaxed) != 0 {
                self.first_request_deadline = None;
            } else if now >= deadline {
                return Verdict::Drop("no request within the header-read timeout");
            }
        }
        if now < self.next_periodic {
            return Verdict::Keep;
        }
        self.next_periodic = now + self.every;
        if self.asked {
            return Verdict::Drop("still open after being asked to close");
        }

        let read = activity.read.swap(false, Ordering::Relaxed);
        let written = activity.written.swap(false, Ordering::Relaxed);
        let started = activity.started.load(Ordering::Relaxed);
        let finished = activity.finished.load(Ordering::Relaxed);
        let progressed = started != self.started || finished != self.finished;
        (self.started, self.finished) = (started, finished);
        if progressed {
            self.idle_since = None;
            self.head_since = None;
            self.silent_since = None;
        }

        if started != finished {
            self.idle_since = None;
            self.head_since = None;
            if read || written || progressed {
                self.silent_since = None;
            } else if now - *self.silent_since.get_or_insert(now) >= self.idle_timeout {
                return self.ask("nothing sent or received for the idle timeout");
            }
            return Verdict::Keep;
        }

        self.silent_since = None;
        // Bytes while nothing is in flight are the next HTTP/1 request's head (HTTP/2 control
        // frames such as pings are not requests). Bytes in a check period that also finished a
        // request may be that request's last ones: the next check tells.
        if read && !progressed && !activity.http2.load(Ordering::Relaxed) {
            self.idle_since = None;
            if now - *self.head_since.get_or_insert(now) >= self.header_read_timeout {
                return Verdict::Drop("request head not completed within the header-read timeout");
            }
        } else if let Some(head_since) = self.head_since {
            if now - head_since >= self.header_read_timeout {
                return Verdict::Drop("request head not completed within the header-read timeout");
            }
        } else if now - *self.idle_since.get_or_insert(now) >= self.idle_timeout {
            return self.ask("no request for the idle timeout");
        }
        Verdict::Keep
    }

    fn ask(&mut self, why: &'static str) -> Verdict {
        self.asked = true;
        Verdict::AskToClose(why)
    }
}

/// An I/O stream that reports every read and write that moved bytes to the connection's
/// [`Activity`].
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read.store(true, Ordering::Relaxed);
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = result
            && written > 0
        {
            self.activity.written.store(true, Ordering::Relaxed);
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(written)) = result
            && written > 0
        {
            self.activity.written.store(true, Ordering::Relaxed);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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

/// Reads and checks the certificate and key, and builds the TLS acceptor: rustls with the aws-lc-rs
/// provider, TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`.
fn tls_acceptor(settings: &TlsSettings) -> Result<TlsAcceptor, ServeError> {
    let cert_path = &settings.cert_pem_path;
    let key_path = &settings.key_pem_path;
    let cert_pem = read_file(cert_path, "certificate")?;
    let key_pem = read_file(key_path, "private key")?;

    let bad_certificate = |reason: String| ServeError::BadCertificate {
        path: cert_path.clone(),
        reason,
    };
    let certificates = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad_certificate(error.to_string()))?;
    if certificates.is_empty() {
        return Err(bad_certificate(
            "no `BEGIN CERTIFICATE` section found".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| ServeError::BadKey {
        path: key_path.clone(),
        reason: match error {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no `BEGIN PRIVATE KEY` section found".to_owned()
            }
            other => other.to_string(),
        },
    })?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls_error = |source: rustls::Error| match source {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            ServeError::KeyMismatch {
                cert: cert_path.clone(),
                key: key_path.clone(),
            }
        }
        source => ServeError::Tls {
            cert: cert_path.clone(),
            key: key_path.clone(),
            source,
        },
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(tls_error)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, ServeError> {
    fs::read(path).map_err(|source| ServeError::ReadFile {
        what,
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    //! The watchdog's decisions, and the loop end to end with small endpoints of its own (peer
    //! address, upgrades, stalled bodies, shutdown). The TLS and slow-header behaviour of the
    //! whole server is tested in `tests/tls.rs` and `tests/slow_clients.rs`.

    use std::{
        io,
        net::{Ipv4Addr, SocketAddr},
        sync::atomic::Ordering,
        time::Duration,
    };

    use poem::{
        Endpoint, Request, Response,
        http::{StatusCode, Version},
    };
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
        sync::oneshot,
        task::JoinHandle,
        time::{Instant, timeout},
    };

    use super::{Activity, CHECKS_PER_TIMEOUT, ServeSettings, Verdict, Watchdog, bind};

    /// Generous bound for anything that should happen "soon" (a loaded 2-core machine).
    const SOON: Duration = Duration::from_secs(10);

    const HEADER: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);

    /// A watchdog driven through simulated time: checks run when it asks for them.
    struct Sim {
        activity: Activity,
        watchdog: Watchdog,
        start: Instant,
    }

    impl Sim {
        /// A connection accepted now, with a 10 s header-read and a 60 s idle timeout.
        fn new() -> Self {
            let start = Instant::now();
            Self {
                activity: Activity::default(),
                watchdog: Watchdog::new(start, HEADER, IDLE),
                start,
            }
        }

        /// A request head completed (and, if `finished`, its response written out).
        fn request(&self, version: Version, finished: bool) {
            self.activity.request_started(version);
            if finished {
                self.activity.response_finished();
            }
        }

        fn read(&self) {
            self.activity.read.store(true, Ordering::Relaxed);
        }

        /// Runs checks until `until` after the start, `before` each with the time since the
        /// start; returns the first verdict other than `Keep`, with when it came.
        fn run(
            &mut self,
            until: Duration,
            mut before: impl FnMut(&Self, Duration),
        ) -> Option<(Duration, Verdict)> {
            loop {
                let now = self.watchdog.next_check();
                let at = now - self.start;
                if at > until {
                    return None;
                }
                before(self, at);
                match self.watchdog.check(&self.activity, now) {
                    Verdict::Keep => {}
                    verdict => return Some((at, verdict)),
                }
            }
        }
    }

    /// Latest a timeout may fire after it is due: two check periods.
    fn slack() -> Duration {
        2 * HEADER.min(IDLE) / CHECKS_PER_TIMEOUT
    }

    #[test]
    fn a_connection_without_a_request_is_dropped_at_the_header_read_deadline() {
        let mut sim = Sim::new();
        let verdict = sim.run(IDLE, |sim, _| sim.read());
        assert!(
            matches!(verdict, Some((at, Verdict::Drop(_))) if at == HEADER),
            "{verdict:?}"
        );
    }

    #[test]
    fn an_idle_keep_alive_connection_is_asked_to_close_after_the_idle_timeout_then_dropped() {
        let mut sim = Sim::new();
        sim.request(Version::HTTP_11, true);
        let verdict = sim.run(2 * IDLE, |_, _| {});
        assert!(
            matches!(verdict, Some((at, Verdict::AskToClose(_))) if at >= IDLE && at <= IDLE + slack()),
            "{verdict:?}"
        );
        assert!(
            matches!(sim.run(3 * IDLE, |_, _| {}), Some((_, Verdict::Drop(_)))),
            "not dropped after being asked to close"
        );
    }

    #[test]
    fn a_trickled_next_request_head_is_dropped_after_the_header_read_timeout() {
        let mut sim = Sim::new();
        sim.request(Version::HTTP_11, true);
        let trickle_from = Duration::from_secs(20);
        let verdict = sim.run(IDLE, |sim, at| {
            if at >= trickle_from {
                sim.read();
            }
        });
        assert!(
            matches!(verdict, Some((at, Verdict::Drop(_)))
                if at >= trickle_from + HEADER && at <= trickle_from + HEADER + slack()),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_connection_with_requests_now_and_then_stays_open() {
        let mut sim = Sim::new();
        let mut last: Option<Duration> = None;
        let verdict = sim.run(10 * IDLE, |sim, at| {
            if last.is_none_or(|last| at - last >= IDLE / 2) {
                last = Some(at);
                sim.read();
                sim.request(Version::HTTP_11, true);
            }
        });
        assert_eq!(verdict, None);
    }

    #[test]
    fn a_request_in_flight_with_traffic_stays_open() {
        let mut sim = Sim::new();
        sim.request(Version::HTTP_11, false);
        let verdict = sim.run(10 * IDLE, |sim, _| sim.read());
        assert_eq!(verdict, None);
    }

    #[test]
    fn a_request_in_flight_without_traffic_is_asked_to_close_after_the_idle_timeout() {
        let mut sim = Sim::new();
        sim.request(Version::HTTP_11, false);
        let verdict = sim.run(2 * IDLE, |_, _| {});
        assert!(
            matches!(verdict, Some((at, Verdict::AskToClose(_))) if at >= IDLE && at <= IDLE + slack()),
            "{verdict:?}"
        );
    }

    #[test]
    fn http2_control_frames_do_not_keep_an_idle_connection_open() {
        let mut sim = Sim::new();
        sim.request(Version::HTTP_2, true);
        let verdict = sim.run(2 * IDLE, |sim, _| sim.read());
        assert!(
            matches!(verdict, Some((at, Verdict::AskToClose(_))) if at >= IDLE && at <= IDLE + slack()),
            "{verdict:?}"
        );
    }

    /// A server of the loop alone, on `127.0.0.1:0`.
    struct TestServer {
        addr: SocketAddr,
        shutdown: oneshot::Sender<()>,
        task: JoinHandle<io::Result<()>>,
    }

    async fn serve(
        endpoint: impl Endpoint + 'static,
        settings: ServeSettings,
        grace: Duration,
    ) -> TestServer {
        let listener = match bind((Ipv4Addr::LOCALHOST, 0).into(), settings).await {
            Ok(listener) => listener,
            Err(error) => panic!("cannot bind: {error}"),
        };
        let addr = listener.local_addr();
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(listener.serve(
            endpoint,
            async {
                let _ = signal.await;
            },
            grace,
        ));
        TestServer {
            addr,
            shutdown,
            task,
        }
    }

    impl TestServer {
        /// Signals shutdown and waits for the loop to return; fails after [`SOON`].
        async fn stop(self) {
            let _ = self.shutdown.send(());
            match timeout(SOON, self.task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => panic!("the loop failed: {error}"),
                Ok(Err(error)) => panic!("the loop panicked: {error}"),
                Err(_) => panic!("the loop did not stop within {SOON:?}"),
            }
        }
    }

    async fn connect(addr: SocketAddr) -> TcpStream {
        match TcpStream::connect(addr).await {
            Ok(stream) => stream,
            Err(error) => panic!("cannot connect to {addr}: {error}"),
        }
    }

    async fn send(stream: &mut TcpStream, bytes: &[u8]) {
        if let Err(error) = stream.write_all(bytes).await {
            panic!("cannot send: {error}");
        }
    }

    /// Reads until the peer closes (or resets) the connection; fails after [`SOON`].
    async fn read_until_closed(stream: &mut TcpStream) -> String {
        let mut received = Vec::new();
        match timeout(SOON, stream.read_to_end(&mut received)).await {
            Ok(_) => String::from_utf8_lossy(&received).into_owned(),
            Err(_) => panic!(
                "the connection is still open after {SOON:?}; received {:?}",
                String::from_utf8_lossy(&received)
            ),
        }
    }

    /// Reads one response whose body is `Content-Length` delimited, leaving the connection open.
    async fn read_response(stream: &mut TcpStream) -> String {
        let mut received = Vec::new();
        let mut buffer = [0; 4096];
        loop {
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    return text;
                }
            }
            match timeout(SOON, stream.read(&mut buffer)).await {
                Ok(Ok(0)) => panic!("closed before a whole response: {text:?}"),
                Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
                Ok(Err(error)) => panic!("cannot read the response: {error}"),
                Err(_) => panic!("no whole response within {SOON:?}: {text:?}"),
            }
        }
    }

    fn settings(header_read_secs: u64, idle_secs: u64) -> ServeSettings {
        ServeSettings {
            header_read_timeout: Duration::from_secs(header_read_secs),
            idle_timeout: Duration::from_secs(idle_secs),
            ..ServeSettings::default()
        }
    }

    #[tokio::test]
    async fn requests_carry_the_socket_peer_as_remote_address_and_http_as_scheme() {
        let endpoint = poem::endpoint::make(|request: Request| async move {
            format!("{} {}", request.remote_addr(), request.scheme())
        });
        let server = serve(endpoint, settings(10, 60), SOON).await;
        let mut stream = connect(server.addr).await;
        let peer = match stream.local_addr() {
            Ok(addr) => addr,
            Err(error) => panic!("no local address: {error}"),
        };
        send(&mut stream, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let response = read_response(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            response.ends_with(&format!("socket://{peer} http")),
            "{response}"
        );
        drop(stream);
        server.stop().await;
    }

    #[tokio::test]
    async fn a_request_head_over_the_limit_is_refused_with_431() {
        let endpoint = poem::endpoint::make(|_: Request| async { "ok" });
        let limited = ServeSettings {
            max_header_bytes: 8 * 1024,
            ..settings(10, 60)
        };
        let server = serve(endpoint, limited, SOON).await;
        let mut stream = connect(server.addr).await;
        // Exactly the limit and still no end of head: the server reads every byte before it
        // refuses, so its close is not turned into a reset by unread data.
        let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        head.resize(8 * 1024, b'a');
        send(&mut stream, &head).await;
        let response = read_until_closed(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 431"), "{response}");
        server.stop().await;
    }

    #[tokio::test]
    async fn upgraded_connections_keep_working_after_the_upgrade() {
        let endpoint = poem::endpoint::make(|request: Request| async move {
            let Ok(upgrade) = request.take_upgrade() else {
                return Response::builder().status(StatusCode::BAD_REQUEST).finish();
            };
            tokio::spawn(async move {
                if let Ok(mut upgraded) = upgrade.await {
                    let mut buffer = [0; 4];
                    if upgraded.read_exact(&mut buffer).await.is_ok() {
                        let _ = upgraded.write_all(&buffer).await;
                        let _ = upgraded.shutdown().await;
                    }
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "echo")
                .finish()
        });
        let server = serve(endpoint, settings(10, 60), SOON).await;
        let mut stream = connect(server.addr).await;
        send(
            &mut stream,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .await;
        let head = read_response(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        send(&mut stream, b"ping").await;
        assert_eq!(read_until_closed(&mut stream).await, "ping");
        server.stop().await;
    }

    #[tokio::test]
    async fn a_request_whose_body_stalls_is_cut_off_after_the_idle_timeout() {
        let endpoint = poem::endpoint::make(|mut request: Request| async move {
            match request.take_body().into_bytes().await {
                Ok(body) => format!("read {} bytes", body.len()),
                Err(error) => format!("{error}"),
            }
        });
        // The header-read timeout is far away: only the silence watchdog can end this.
        let server = serve(endpoint, settings(60, 1), SOON).await;
        let mut stream = connect(server.addr).await;
        send(
            &mut stream,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
        )
        .await;
        let received = read_until_closed(&mut stream).await;
        assert!(!received.contains("read 100 bytes"), "{received}");
        server.stop().await;
    }

    #[tokio::test]
    async fn shutdown_lets_an_in_flight_request_finish() {
        let (started_tx, started) = tokio::sync::mpsc::channel::<()>(1);
        let endpoint = poem::endpoint::make(move |_: Request| {
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(()).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                "finished"
            }
        });
        let server = serve(endpoint, settings(10, 60), SOON).await;
        let mut stream = connect(server.addr).await;
        send(&mut stream, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut started = started;
        if timeout(SOON, started.recv()).await.is_err() {
            panic!("the request did not start");
        }
        let stopping = tokio::spawn(server.stop());
        let response = read_until_closed(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("finished"), "{response}");
        if let Err(error) = stopping.await {
            panic!("stopping failed: {error}");
        }
    }

    #[tokio::test]
    async fn shutdown_drops_connections_still_busy_after_the_grace_period() {
        let endpoint =
            poem::endpoint::make(|_: Request| async { std::future::pending::<String>().await });
        let server = serve(endpoint, settings(10, 60), Duration::from_millis(200)).await;
        let mut stream = connect(server.addr).await;
        send(&mut stream, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        // Let the request reach the endpoint before shutting down.
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.stop().await;
        assert_eq!(read_until_closed(&mut stream).await, "");
    }

    #[tokio::test]
    async fn shutdown_closes_idle_keep_alive_connections_without_waiting_for_the_grace_period() {
        let endpoint = poem::endpoint::make(|_: Request| async { "ok" });
        // A grace period far longer than `stop` waits: only closing idle connections at once
        // lets the loop return in time.
        let server = serve(endpoint, settings(60, 60), Duration::from_secs(600)).await;
        let mut stream = connect(server.addr).await;
        send(&mut stream, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let response = read_response(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        server.stop().await;
        assert_eq!(read_until_closed(&mut stream).await, "");
    }
}
