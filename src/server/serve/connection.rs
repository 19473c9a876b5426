//! One accepted connection: the TLS handshake if any, then HTTP/1 or HTTP/2 with hyper until the
//! connection ends, the watchdog closes it, or the server shuts down.

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use hyper::{
    body::{Body, Frame, Incoming, SizeHint},
    service::service_fn,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto::{self, upgrade::downcast},
};
use poem::{
    Addr, Endpoint, IntoResponse,
    http::uri::Scheme,
    web::{LocalAddr, RemoteAddr},
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::watch,
    time::{Instant, sleep_until, timeout_at},
};
use tokio_rustls::TlsAcceptor;

use crate::edge::upgrade::{Upgrade, UpgradedIo};

use super::{
    shutdown::Phase,
    watchdog::{Activity, Verdict, Watchdog, Watched},
};

/// What every connection task shares.
pub(super) struct Shared<E> {
    pub(super) endpoint: E,
    pub(super) builder: auto::Builder<TokioExecutor>,
    pub(super) local_addr: LocalAddr,
    pub(super) tls: Option<TlsAcceptor>,
    pub(super) header_read_timeout: Duration,
    pub(super) idle_timeout: Duration,
}

/// Serves one accepted connection: the TLS handshake if any, then HTTP.
pub(super) async fn connection<E: Endpoint + 'static>(
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
        service_fn(move |mut request: hyper::Request<Incoming>| {
            conn.activity.request_started(request.version());
            hand_over_websocket(&mut request);
            let conn = conn.clone();
            async move {
                // The conversion keeps hyper's upgrade handle (other than a WebSocket's), which
                // poem's upgrades need.
                let request = poem::Request::from((
                    request,
                    conn.shared.local_addr.clone(),
                    conn.remote_addr.clone(),
                    conn.scheme.clone(),
                ));
                // The endpoint's own call rather than `get_response`, one more future around it.
                let response = match conn.shared.endpoint.call(request).await {
                    Ok(output) => output.into_response(),
                    Err(error) => error.into_response(),
                };
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

/// Leaves our own handle on a WebSocket upgrade's connection in the request, in place of the
/// one poem would take over, so the session gets the TCP stream without hyper's layers and the
/// watchdog's accounting (`edge::upgrade`).
fn hand_over_websocket<B>(request: &mut hyper::Request<B>) {
    let websocket = request
        .headers()
        .get_all(hyper::header::UPGRADE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|protocol| protocol.trim().eq_ignore_ascii_case("websocket"));
    if !websocket {
        return;
    }
    if let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    {
        request
            .extensions_mut()
            .insert(Upgrade::new(on_upgrade, unwrap_upgraded));
    }
}

/// The TCP stream under an upgraded plain-HTTP connection; a TLS one keeps its layers. Once
/// upgraded, a connection has left the watchdog, so the stream's activity notes go.
fn unwrap_upgraded(upgraded: hyper::upgrade::Upgraded) -> UpgradedIo {
    match downcast::<TokioIo<Watched<TcpStream>>>(upgraded) {
        Ok(parts) => UpgradedIo::tcp(parts.io.into_inner().inner, parts.read_buf),
        Err(upgraded) => UpgradedIo::from_hyper(upgraded),
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
