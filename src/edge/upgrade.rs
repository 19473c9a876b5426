//! The connection under an upgrade request, handed to the transport that takes it over (the
//! WebSocket session).
//!
//! poem hands an upgraded connection over as `poem::Upgraded`: hyper's `Upgraded`, which is a
//! boxed trait object behind hyper's own rewind buffer, over hyper-util's rewind buffer, over the
//! server loop's stream, which notes every read and write for its watchdog. A WebSocket session
//! reads and writes its connection once per frame, and a fan-out to 10,000 subscribers walked
//! those layers (and their separate allocations) 10,000 times per event, for nothing: the
//! watchdog no longer looks at a connection once it is upgraded.
//!
//! So the server loop, which knows what it accepted, leaves its own [`Upgrade`] in the request
//! for WebSocket upgrades, with a way to take its stream apart again; the transport gets
//! [`UpgradedIo::Tcp`], the TCP stream itself and the bytes hyper read past the request. A
//! connection that cannot be taken apart (TLS) or a request served by another loop (poem's
//! handle, [`PendingUpgrade::Poem`]) keep the layers ([`UpgradedIo::Layered`]): same behaviour,
//! the former cost.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

/// Takes an upgraded connection apart into its stream, as far as the server loop can.
pub type Unwrap = fn(hyper::upgrade::Upgraded) -> UpgradedIo;

/// The server loop's handle on an upgrade request's connection, in the request's extensions.
///
/// Cloned with the extensions; the first [`Upgrade::take`] gets it.
#[derive(Clone)]
pub struct Upgrade(Arc<Mutex<Option<(hyper::upgrade::OnUpgrade, Unwrap)>>>);

impl Upgrade {
    /// The handle on `on_upgrade`, whose connection `unwrap` takes apart.
    pub fn new(on_upgrade: hyper::upgrade::OnUpgrade, unwrap: Unwrap) -> Self {
        Self(Arc::new(Mutex::new(Some((on_upgrade, unwrap)))))
    }

    fn take(&self) -> Option<(hyper::upgrade::OnUpgrade, Unwrap)> {
        self.0.lock().take()
    }
}

/// An upgrade that completes once the response (101) is sent.
pub enum PendingUpgrade {
    /// The server loop's own handle.
    Direct(hyper::upgrade::OnUpgrade, Unwrap),
    /// poem's (a request that did not come through our loop).
    Poem(poem::OnUpgrade),
}

/// Why a connection was not handed over.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The request carries no upgrade (HTTP/2, or it was taken already).
    #[error("the connection cannot be upgraded")]
    NotUpgradable,
    /// The response was not sent, or the connection broke first.
    #[error("the upgrade did not complete: {0}")]
    Failed(String),
}

/// The connection of `request`, to be upgraded: the server loop's handle if it left one, else
/// poem's.
///
/// # Errors
/// [`UpgradeError::NotUpgradable`] when the request carries neither (or it was taken).
pub fn take(request: &poem::Request) -> Result<PendingUpgrade, UpgradeError> {
    if let Some((on_upgrade, unwrap)) = request
        .extensions()
        .get::<Upgrade>()
        .and_then(Upgrade::take)
    {
        return Ok(PendingUpgrade::Direct(on_upgrade, unwrap));
    }
    request
        .take_upgrade()
        .map(PendingUpgrade::Poem)
        .map_err(|_| UpgradeError::NotUpgradable)
}

impl PendingUpgrade {
    /// Waits for the upgrade and returns the connection.
    ///
    /// # Errors
    /// [`UpgradeError::Failed`] when the upgrade does not complete.
    pub async fn connection(self) -> Result<UpgradedIo, UpgradeError> {
        match self {
            Self::Direct(on_upgrade, unwrap) => on_upgrade
                .await
                .map(unwrap)
                .map_err(|error| UpgradeError::Failed(error.to_string())),
            Self::Poem(on_upgrade) => on_upgrade
                .await
                .map(UpgradedIo::layered)
                .map_err(|error| UpgradeError::Failed(error.to_string())),
        }
    }
}

/// Reading and writing, as the layered connections offer it.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// An upgraded connection.
pub enum UpgradedIo {
    /// The TCP stream itself.
    Tcp {
        stream: TcpStream,
        /// Bytes hyper read past the upgrade request (the client's first frames, if it sent
        /// them at once): read before the stream. Made with [`UpgradedIo::tcp`].
        read_ahead: Bytes,
    },
    /// Through whatever layers the connection came in (TLS, another server loop).
    Layered(Box<dyn Io>),
}

impl UpgradedIo {
    /// The TCP stream itself, and what hyper read past the request.
    #[must_use]
    pub fn tcp(stream: TcpStream, read_ahead: Bytes) -> Self {
        // hyper's read buffer is several KiB: a slice of it, even an empty one, would keep all
        // of it for the connection's life (it did: 11 KiB per idle connection).
        let read_ahead = if read_ahead.is_empty() {
            Bytes::new()
        } else {
            read_ahead
        };
        Self::Tcp { stream, read_ahead }
    }

    /// A connection that keeps its layers.
    pub fn layered(io: impl Io + 'static) -> Self {
        Self::Layered(Box::new(io))
    }

    /// hyper's upgraded connection, layers and all.
    #[must_use]
    pub fn from_hyper(upgraded: hyper::upgrade::Upgraded) -> Self {
        Self::layered(TokioIo::new(upgraded))
    }

    /// Whether a read could make progress now: `Pending` (with the task's waker registered to
    /// be woken when it can) only when nothing has been read ahead and the TCP stream has no
    /// data, end or error to report. Layered connections cannot tell: always `Ready`.
    ///
    /// Lets a reader that buffers what it reads (tungstenite, which zero-fills its read buffer
    /// before every read attempt) skip an attempt that would find nothing.
    pub fn poll_read_ready(&self, context: &mut Context<'_>) -> Poll<()> {
        match self {
            Self::Tcp { stream, read_ahead } if read_ahead.is_empty() => {
                stream.poll_read_ready(context).map(|_| ())
            }
            _ => Poll::Ready(()),
        }
    }
}

impl AsyncRead for UpgradedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp { stream, read_ahead } => {
                if read_ahead.is_empty() {
                    return Pin::new(stream).poll_read(context, buf);
                }
                let taken = read_ahead.len().min(buf.remaining());
                buf.put_slice(&read_ahead[..taken]);
                read_ahead.advance(taken);
                if read_ahead.is_empty() {
                    // Even empty, a slice of hyper's read buffer keeps all of it allocated.
                    *read_ahead = Bytes::new();
                }
                Poll::Ready(Ok(()))
            }
            Self::Layered(io) => Pin::new(io).poll_read(context, buf),
        }
    }
}

impl AsyncWrite for UpgradedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp { stream, .. } => Pin::new(stream).poll_write(context, buf),
            Self::Layered(io) => Pin::new(io).poll_write(context, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp { stream, .. } => Pin::new(stream).poll_write_vectored(context, bufs),
            Self::Layered(io) => Pin::new(io).poll_write_vectored(context, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp { stream, .. } => stream.is_write_vectored(),
            Self::Layered(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp { stream, .. } => Pin::new(stream).poll_flush(context),
            Self::Layered(io) => Pin::new(io).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp { stream, .. } => Pin::new(stream).poll_shutdown(context),
            Self::Layered(io) => Pin::new(io).poll_shutdown(context),
        }
    }
}
