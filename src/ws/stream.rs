//! tungstenite over an async connection, driven by the one task that owns the session.
//!
//! tungstenite reads and writes through blocking-style `std::io::Read`/`Write`; an async
//! connection has to be polled with a task's waker instead. tokio-tungstenite's
//! `WebSocketStream` does this for a stream whose reading half and writing half may be driven
//! by two different tasks: each read and each flush registers the polling task's waker into
//! two `AtomicWaker`s of a waker proxy (two allocations per connection), and every wake-up of
//! the connection goes through the proxy to both. A session polls its socket from one task
//! only, so [`WsStream`] keeps that task's waker once, replaced only when it changes, and
//! polls the connection with it directly. Each delivered notification is a flush: this is the
//! part of the fan-out's cost the bare tungstenite server pays and a session need not
//! (`benches/README.md`, "Fourth round" and "Fifth round").
//!
//! Otherwise it behaves as `WebSocketStream` does: a [`Stream`] of messages that ends once the
//! connection closed or failed (the error is reported once), and a [`Sink`] whose `start_send`
//! queues a frame that could not be written yet and whose `poll_ready` writes it first.

use std::{
    io::{self, Read, Write},
    pin::Pin,
    task::{Context, Poll, Waker},
};

use futures_util::{Sink, SinkExt, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::{
    Error as WsError, Message, WebSocket,
    protocol::{CloseFrame, Role, WebSocketConfig},
};

/// A WebSocket over `S` (upgraded already: no handshake), polled by one task at a time.
#[derive(Debug)]
pub(super) struct WsStream<S> {
    protocol: WebSocket<TaskIo<S>>,
    /// The connection closed or failed, and the stream said so: it yields nothing more.
    ended: bool,
    /// A frame `start_send` queued could not be written yet: `poll_ready` writes it first.
    blocked: bool,
    /// `poll_close` queued the close frame already; what is left is flushing it.
    closing: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    /// The WebSocket of `role` over `connection`, whose handshake is done.
    pub(super) fn from_raw_socket(connection: S, role: Role, config: WebSocketConfig) -> Self {
        let io = TaskIo {
            inner: connection,
            waker: Waker::noop().clone(),
        };
        Self {
            protocol: WebSocket::from_raw_socket(io, role, Some(config)),
            ended: false,
            blocked: false,
            closing: false,
        }
    }

    /// Sends a close frame and waits until it is written.
    pub(super) async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), WsError> {
        self.send(Message::Close(frame)).await
    }

    /// tungstenite, with the polling task's waker as the connection's for its next step.
    fn polled_by(&mut self, context: &Context<'_>) -> &mut WebSocket<TaskIo<S>> {
        self.protocol.get_mut().use_waker(context.waker());
        &mut self.protocol
    }
}

impl<S> WsStream<S> {
    pub(super) fn get_ref(&self) -> &S {
        &self.protocol.get_ref().inner
    }

    pub(super) fn get_mut(&mut self) -> &mut S {
        &mut self.protocol.get_mut().inner
    }

    pub(super) fn get_config(&self) -> &WebSocketConfig {
        self.protocol.get_config()
    }
}

/// `Pending` for tungstenite's "would block", the result otherwise.
fn ready<T>(result: Result<T, WsError>) -> Poll<Result<T, WsError>> {
    match result {
        Err(WsError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        other => Poll::Ready(other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WsStream<S> {
    type Item = Result<Message, WsError>;

    fn poll_next(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match ready(this.polled_by(context).read()) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(message)) => Poll::Ready(Some(Ok(message))),
            Poll::Ready(Err(error)) => {
                this.ended = true;
                match error {
                    WsError::ConnectionClosed | WsError::AlreadyClosed => Poll::Ready(None),
                    error => Poll::Ready(Some(Err(error))),
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WsStream<S> {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        if !this.blocked {
            return Poll::Ready(Ok(()));
        }
        let flushed = std::task::ready!(ready(this.polled_by(context).flush()));
        this.blocked = false;
        Poll::Ready(flushed)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), WsError> {
        // No context here: a write that would block registers the waker of the task's last
        // poll, and `poll_ready`/`poll_flush` poll again with the current one before it waits.
        let this = self.get_mut();
        match this.protocol.write(message) {
            Ok(()) => Ok(()),
            Err(WsError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {
                // Queued in tungstenite, not written yet.
                this.blocked = true;
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        let flushed = std::task::ready!(ready(this.polled_by(context).flush()));
        this.blocked = false;
        match flushed {
            // The close handshake has just completed: everything was written.
            Err(WsError::ConnectionClosed) => Poll::Ready(Ok(())),
            other => Poll::Ready(other),
        }
    }

    fn poll_close(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        this.blocked = false;
        let closing = this.closing;
        let protocol = this.polled_by(context);
        let result = if closing {
            protocol.flush()
        } else {
            protocol.close(None)
        };
        match result {
            Ok(()) | Err(WsError::ConnectionClosed) => Poll::Ready(Ok(())),
            Err(WsError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {
                this.closing = true;
                Poll::Pending
            }
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

/// The connection as tungstenite sees it: blocking-style reads and writes that poll `inner`
/// with the waker of the task driving the session, and say "would block" when it is pending.
#[derive(Debug)]
struct TaskIo<S> {
    inner: S,
    /// The waker of the task's latest poll (a no-op one before the first).
    waker: Waker,
}

impl<S> TaskIo<S> {
    /// Keeps `waker` for the connection's next polls. `clone_from` keeps the one it has when
    /// `will_wake` says it is the same (every poll of a session but its first).
    fn use_waker(&mut self, waker: &Waker) {
        self.waker.clone_from(waker);
    }
}

/// `WouldBlock` for `Pending`, so tungstenite keeps its state and the caller returns `Pending`.
fn would_block<T>(polled: Poll<io::Result<T>>) -> io::Result<T> {
    match polled {
        Poll::Ready(result) => result,
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

impl<S: AsyncRead + Unpin> Read for TaskIo<S> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let mut buffer = ReadBuf::new(buffer);
        let mut context = Context::from_waker(&self.waker);
        would_block(Pin::new(&mut self.inner).poll_read(&mut context, &mut buffer))?;
        Ok(buffer.filled().len())
    }
}

impl<S: AsyncWrite + Unpin> Write for TaskIo<S> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut context = Context::from_waker(&self.waker);
        would_block(Pin::new(&mut self.inner).poll_write(&mut context, bytes))
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut context = Context::from_waker(&self.waker);
        would_block(Pin::new(&mut self.inner).poll_flush(&mut context))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::{FutureExt, SinkExt, StreamExt};
    use tokio::{
        io::{DuplexStream, duplex},
        time::timeout,
    };
    use tokio_tungstenite::{
        WebSocketStream,
        tungstenite::{
            Message,
            protocol::{CloseFrame, Role, WebSocketConfig, frame::coding::CloseCode},
        },
    };

    use super::WsStream;

    /// A hang guard for awaits that must complete; never a timing assertion.
    const GUARD: Duration = Duration::from_secs(10);

    /// A server over an in-memory connection that holds `capacity` bytes each way, configured
    /// as sessions are, and a client on tokio-tungstenite's stream.
    async fn pair(capacity: usize) -> (WsStream<DuplexStream>, WebSocketStream<DuplexStream>) {
        let (server, client) = duplex(capacity);
        let config = WebSocketConfig::default()
            .read_buffer_size(super::super::READ_BUFFER_BYTES)
            .write_buffer_size(super::super::WRITE_BATCH_BYTES);
        let server = WsStream::from_raw_socket(server, Role::Server, config);
        let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        (server, client)
    }

    #[tokio::test]
    async fn messages_go_both_ways_and_a_ping_is_answered_while_reading() {
        let (mut server, mut client) = pair(64 * 1024).await;
        client.send(Message::text("hello")).await.expect("sent");
        client
            .send(Message::Ping(vec![1, 2].into()))
            .await
            .expect("sent");
        let first = timeout(GUARD, server.next()).await.expect("in time");
        assert_eq!(
            first.expect("a message").expect("no error"),
            Message::text("hello")
        );
        let ping = timeout(GUARD, server.next()).await.expect("in time");
        assert!(ping.expect("a message").expect("no error").is_ping());
        // tungstenite queued the pong; the next read attempt sends it, with nothing to read.
        assert!(server.next().now_or_never().is_none());
        let pong = timeout(GUARD, client.next()).await.expect("in time");
        assert_eq!(
            pong.expect("a frame").expect("no error"),
            Message::Pong(vec![1, 2].into())
        );

        server.send(Message::text("world")).await.expect("sent");
        let answer = timeout(GUARD, client.next()).await.expect("in time");
        assert_eq!(
            answer.expect("a frame").expect("no error"),
            Message::text("world")
        );
    }

    /// Frames far larger than the connection holds: each write would block part way, the
    /// frames wait in tungstenite, and `poll_ready`/`poll_flush` finish them as the client
    /// reads, with the task woken by the connection each time (a missed wake-up hangs into the
    /// guard).
    #[tokio::test]
    async fn frames_larger_than_the_connection_holds_arrive_whole_and_in_order() {
        let (mut server, mut client) = pair(1024).await;
        let frames: Vec<String> = (0..20_u8)
            .map(|n| {
                char::from(b'a' + n)
                    .to_string()
                    .repeat(10_000 + usize::from(n))
            })
            .collect();
        let sending = {
            let frames = frames.clone();
            async move {
                for frame in frames {
                    server.feed(Message::text(frame)).await.expect("queued");
                }
                server.flush().await.expect("flushed");
                server
            }
        };
        let receiving = async {
            let mut received = Vec::new();
            while received.len() < frames.len() {
                let message = client.next().await.expect("a frame").expect("no error");
                received.push(message.into_text().expect("text").to_string());
            }
            received
        };
        let (_, received) = timeout(GUARD, futures_util::future::join(sending, receiving))
            .await
            .expect("in time");
        assert_eq!(received, frames);
    }

    #[tokio::test]
    async fn a_close_from_either_side_completes_the_handshake_and_ends_the_stream() {
        let (mut server, mut client) = pair(64 * 1024).await;
        let frame = CloseFrame {
            code: CloseCode::Away,
            reason: "bye".into(),
        };
        timeout(GUARD, server.close(Some(frame.clone())))
            .await
            .expect("in time")
            .expect("the close frame is written");
        let seen = timeout(GUARD, client.next()).await.expect("in time");
        assert_eq!(
            seen.expect("a frame").expect("no error"),
            Message::Close(Some(frame.clone()))
        );
        // The client's reply reaches the server, then its stream ends, and stays ended.
        let _ = timeout(GUARD, client.flush()).await.expect("in time");
        let reply = timeout(GUARD, server.next()).await.expect("in time");
        assert_eq!(
            reply.expect("the reply").expect("no error"),
            Message::Close(Some(frame))
        );
        assert!(
            timeout(GUARD, server.next())
                .await
                .expect("in time")
                .is_none()
        );
        assert!(server.next().await.is_none());

        // The client closing first: the server sees its frame, then the end; its reply is out
        // once flushed.
        let (mut server, mut client) = pair(64 * 1024).await;
        client.close(None).await.expect("the client closes");
        let seen = timeout(GUARD, server.next()).await.expect("in time");
        assert_eq!(
            seen.expect("a message").expect("no error"),
            Message::Close(None)
        );
        timeout(GUARD, server.flush())
            .await
            .expect("in time")
            .expect("the reply is written");
        assert!(
            timeout(GUARD, server.next())
                .await
                .expect("in time")
                .is_none()
        );
        let reply = timeout(GUARD, client.next()).await.expect("in time");
        assert_eq!(
            reply.expect("the reply").expect("no error"),
            Message::Close(None)
        );
    }

    #[tokio::test]
    async fn a_vanished_peer_ends_the_stream_once_with_an_error_or_nothing() {
        let (mut server, client) = pair(64 * 1024).await;
        drop(client);
        let first = timeout(GUARD, server.next()).await.expect("in time");
        // tungstenite reports a connection dropped without a close frame as a protocol error.
        assert!(matches!(first, Some(Err(_)) | None), "{first:?}");
        assert!(server.next().await.is_none(), "nothing after the end");
        assert!(server.send(Message::text("late")).await.is_err());
    }
}
