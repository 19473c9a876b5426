//! The session's socket: tungstenite over a connection that knows where the client's frames end,
//! so that the buffers a large message grew can be given back.
//!
//! tungstenite grows its read buffer to hold a whole incoming frame and its write buffer to hold
//! a whole outgoing one, and keeps both at that size for the connection's life: after one 48 KiB
//! request an idle connection cost 57.7 KiB instead of 9.5 (`benches/README.md`). Neither
//! tungstenite nor tokio-tungstenite can shrink them. A fresh [`WsStream`] over the same
//! connection starts small again, and it is equivalent to the old one whenever the old one holds
//! nothing of its own: every byte it read has been handed to the session as a message (no frame
//! or part of one waiting in its read buffer, no fragmented message half assembled) and every
//! byte it was given to send has been flushed (answers to pings included). Beyond that it keeps
//! only its configuration and its state, which is "open" for as long as the session runs.
//!
//! [`Tracked`] sits between tungstenite and the connection and follows the frame headers in the
//! bytes read, so the session can tell when that is the case ([`Tracked::holds_only_grown_buffers`])
//! and then swap the stream for a fresh one ([`renew`]). The scan is a few comparisons per
//! read; the swap happens only after a frame (or a batch of notifications) that cannot have fit
//! the buffers' usual size, at most once per step of the session.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::stream::WsStream;
use crate::edge::upgrade::UpgradedIo;

/// The session's WebSocket.
pub(super) type Socket = WsStream<Tracked<UpgradedIo>>;

/// Opens the session's WebSocket on an upgraded connection.
pub(super) fn open(upgraded: UpgradedIo, config: WebSocketConfig) -> Socket {
    WsStream::from_raw_socket(Tracked::new(upgraded), Role::Server, config)
}

/// Puts a fresh WebSocket over `socket`'s connection in its place, when `socket` holds nothing
/// but grown buffers (the caller checked [`Tracked::holds_only_grown_buffers`] after a complete
/// flush); the old one and its buffers are dropped.
pub(super) fn renew<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut WsStream<Tracked<S>>) {
    let config = *socket.get_config();
    let Some(connection) = socket.get_mut().hand_over() else {
        return;
    };
    *socket = WsStream::from_raw_socket(connection, Role::Server, config);
}

/// A connection that follows the frames read from it and notes large frames either way.
#[derive(Debug)]
pub(super) struct Tracked<S> {
    /// `None` only once handed over to a fresh WebSocket; the old one is dropped right after.
    inner: Option<S>,
    frames: FrameScanner,
    /// Bytes of an incoming frame above which tungstenite's read buffer must have grown.
    large_read_bytes: usize,
    /// Bytes of one write above which tungstenite's write buffer must have grown: it writes
    /// once it holds more than its batch size, so a larger write is a frame, or a batch, that
    /// grew the buffer past its usual size.
    large_write_bytes: usize,
    /// A large frame or write went by since this WebSocket was made.
    grown: bool,
}

impl<S> Tracked<S> {
    fn new(inner: S) -> Self {
        Self {
            inner: Some(inner),
            frames: FrameScanner::default(),
            large_read_bytes: super::READ_BUFFER_BYTES,
            large_write_bytes: super::WRITE_BATCH_BYTES,
            grown: false,
        }
    }

    /// Whether the WebSocket over this connection holds nothing but buffers a large frame grew:
    /// such a frame went by, and everything read from the client has reached the session (it
    /// received `messages_received` messages in all), ending on a frame boundary outside any
    /// fragmented message. Only meaningful after a complete flush (nothing left to send).
    pub(super) fn holds_only_grown_buffers(&self, messages_received: u64) -> bool {
        self.grown
            && self.frames.at_message_boundary()
            && self.frames.messages() == messages_received
    }

    /// Whether everything read from the client has reached the session (it received
    /// `messages_received` messages in all), ending on a frame boundary outside any fragmented
    /// message: tungstenite then holds nothing it could make a message of without reading more.
    pub(super) fn holds_nothing_unread(&self, messages_received: u64) -> bool {
        self.frames.at_message_boundary() && self.frames.messages() == messages_received
    }

    /// This connection, to be wrapped in a fresh WebSocket: the frame count goes on (the session
    /// keeps counting), the note of a large frame starts over.
    fn hand_over(&mut self) -> Option<Self> {
        Some(Self {
            inner: Some(self.inner.take()?),
            frames: self.frames,
            large_read_bytes: self.large_read_bytes,
            large_write_bytes: self.large_write_bytes,
            grown: false,
        })
    }

    fn inner(&mut self) -> io::Result<Pin<&mut S>>
    where
        S: Unpin,
    {
        self.inner
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl Tracked<UpgradedIo> {
    /// See [`UpgradedIo::poll_read_ready`]; `Ready` once handed over.
    pub(super) fn poll_read_ready(&self, context: &mut Context<'_>) -> Poll<()> {
        match &self.inner {
            Some(connection) => connection.poll_read_ready(context),
            None => Poll::Ready(()),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = this.inner()?.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let largest = this.frames.scan(&buf.filled()[before..]);
            this.grown |= largest > this.large_read_bytes as u64;
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.grown |= buf.len() > this.large_write_bytes;
        this.inner()?.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().inner()?.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().inner()?.poll_shutdown(cx)
    }
}

/// Follows WebSocket frames (RFC 6455 §5.2) through a byte stream, counting those that
/// tungstenite hands over as a message: control frames and the final frame of a data message.
#[derive(Debug, Clone, Copy, Default)]
struct FrameScanner {
    /// The header being read: its bytes so far.
    header: [u8; MAX_HEADER_BYTES],
    header_len: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
    /// Whether the current frame, once complete, gives the session a message.
    completes_message: bool,
    /// Inside a fragmented data message (its first frame was not final).
    fragmented: bool,
    messages: u64,
}

/// Two bytes, up to eight of extended length, four of mask.
const MAX_HEADER_BYTES: usize = 14;

impl FrameScanner {
    /// Follows `bytes`, the next ones read; returns the largest frame (header and payload) that
    /// began in them, 0 if none did.
    fn scan(&mut self, mut bytes: &[u8]) -> u64 {
        let mut largest = 0;
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let taken = bytes
                    .len()
                    .min(usize::try_from(self.payload_left).unwrap_or(usize::MAX));
                self.payload_left -= taken as u64;
                bytes = &bytes[taken..];
                if self.payload_left == 0 {
                    self.end_frame();
                }
                continue;
            }
            self.header[self.header_len] = bytes[0];
            self.header_len += 1;
            bytes = &bytes[1..];
            let Some((header_len, payload_len)) = self.header_complete() else {
                continue;
            };
            let [first, ..] = self.header;
            let is_final = first & 0x80 != 0;
            let is_control = first & 0x08 != 0;
            self.completes_message = is_control || is_final;
            if !is_control {
                self.fragmented = !is_final;
            }
            self.header_len = 0;
            largest = largest.max(header_len as u64 + payload_len);
            self.payload_left = payload_len;
            if payload_len == 0 {
                self.end_frame();
            }
        }
        largest
    }

    /// The header's length and the payload's, once the header has been read whole.
    fn header_complete(&self) -> Option<(usize, u64)> {
        if self.header_len < 2 {
            return None;
        }
        let masked = self.header[1] & 0x80 != 0;
        let (extended, short_len) = match self.header[1] & 0x7f {
            126 => (2, None),
            127 => (8, None),
            len => (0, Some(u64::from(len))),
        };
        let header_len = 2 + extended + if masked { 4 } else { 0 };
        if self.header_len < header_len {
            return None;
        }
        let payload_len = short_len.unwrap_or_else(|| {
            self.header[2..2 + extended]
                .iter()
                .fold(0, |len, byte| len << 8 | u64::from(*byte))
        });
        Some((header_len, payload_len))
    }

    fn end_frame(&mut self) {
        if self.completes_message {
            self.messages += 1;
        }
    }

    /// Between frames, and not inside a fragmented message.
    fn at_message_boundary(&self) -> bool {
        self.header_len == 0 && self.payload_left == 0 && !self.fragmented
    }

    fn messages(&self) -> u64 {
        self.messages
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{DuplexStream, duplex};
    use tokio_tungstenite::{
        WebSocketStream,
        tungstenite::{
            Message,
            protocol::{
                Role, WebSocketConfig,
                frame::{
                    Frame,
                    coding::{Data, OpCode},
                },
            },
        },
    };

    use super::{FrameScanner, Tracked, WsStream, renew};

    type Server = WsStream<Tracked<DuplexStream>>;
    type Client = WebSocketStream<DuplexStream>;

    /// A server socket configured as sessions are, and a client socket, connected in memory.
    async fn pair() -> (Server, Client) {
        let (server, client) = duplex(1024 * 1024);
        let config = WebSocketConfig::default()
            .read_buffer_size(super::super::READ_BUFFER_BYTES)
            .write_buffer_size(super::super::WRITE_BATCH_BYTES);
        let server = WsStream::from_raw_socket(Tracked::new(server), Role::Server, config);
        let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        (server, client)
    }

    /// What a session does per message: read it, flush, and renew the socket when it holds
    /// only grown buffers. Returns the message and whether the socket was renewed.
    async fn read_as_a_session(server: &mut Option<Server>, received: &mut u64) -> (Message, bool) {
        let socket = server.as_mut().expect("a socket");
        let message = socket.next().await.expect("a message").expect("no error");
        *received += 1;
        socket.flush().await.expect("flushed");
        if socket.get_ref().holds_only_grown_buffers(*received) {
            renew(socket);
            return (message, true);
        }
        (message, false)
    }

    #[tokio::test]
    async fn the_socket_is_renewed_once_everything_read_with_a_large_message_is_handed_over() {
        let (server, mut client) = pair().await;
        let mut server = Some(server);
        let large = "x".repeat(48 * 1024);
        // One write: the small frames reach the server in the same reads as the large one's end.
        for message in [
            Message::text(large.clone()),
            Message::text("a"),
            Message::Ping(vec![7].into()),
            Message::text("b"),
        ] {
            client.feed(message).await.expect("queued");
        }
        client.flush().await.expect("sent");

        let mut received = 0;
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(read_as_a_session(&mut server, &mut received).await);
        }
        let renewed_at: Vec<bool> = seen.iter().map(|(_, renewed)| *renewed).collect();
        assert_eq!(
            renewed_at,
            [false, false, false, true],
            "renewed only once the last frame read with the large one was handed over"
        );
        assert_eq!(seen[0].0, Message::text(large));
        assert_eq!(seen[1].0, Message::text("a"));
        assert!(seen[2].0.is_ping());
        assert_eq!(seen[3].0, Message::text("b"));

        // The pong left before the renewal; both directions work on the fresh socket.
        let server = server.as_mut().expect("a socket");
        server.send(Message::text("after")).await.expect("sent");
        assert!(
            client
                .next()
                .await
                .expect("a frame")
                .expect("no error")
                .is_pong()
        );
        assert_eq!(
            client.next().await.expect("a frame").expect("no error"),
            Message::text("after")
        );
        client.send(Message::text("c")).await.expect("sent");
        assert_eq!(
            server.next().await.expect("a message").expect("no error"),
            Message::text("c")
        );
        assert!(
            !server.get_ref().holds_only_grown_buffers(received + 1),
            "a fresh socket has nothing to give back"
        );
    }

    #[tokio::test]
    async fn a_fragmented_message_is_never_cut_by_a_renewal() {
        let (server, mut client) = pair().await;
        let mut server = Some(server);
        let first = "y".repeat(6000);
        for frame in [
            Frame::message(first.clone(), OpCode::Data(Data::Text), false),
            Frame::ping(vec![1]),
            Frame::message("z", OpCode::Data(Data::Continue), true),
        ] {
            client.send(Message::Frame(frame)).await.expect("sent");
        }
        let mut received = 0;
        let (ping, renewed_after_ping) = read_as_a_session(&mut server, &mut received).await;
        assert!(ping.is_ping());
        assert!(
            !renewed_after_ping,
            "half a message is still in tungstenite"
        );
        let (text, renewed_after_text) = read_as_a_session(&mut server, &mut received).await;
        assert_eq!(text, Message::text(format!("{first}z")));
        assert!(renewed_after_text);
    }

    #[tokio::test]
    async fn a_large_answer_is_given_back_too_and_small_traffic_never_renews() {
        let (server, mut client) = pair().await;
        let mut server = Some(server);
        let mut received = 0;
        for round in 0..20 {
            client
                .send(Message::text(format!("small {round}")))
                .await
                .expect("sent");
            let (_, renewed) = read_as_a_session(&mut server, &mut received).await;
            assert!(!renewed, "round {round}");
        }
        let socket = server.as_mut().expect("a socket");
        socket
            .send(Message::text("w".repeat(20 * 1024)))
            .await
            .expect("sent");
        assert!(socket.get_ref().holds_only_grown_buffers(received));
        let _ = client.next().await.expect("a frame").expect("no error");
    }

    /// A client frame (masked) with `opcode` and a payload of `len` bytes.
    fn frame(is_final: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut bytes = vec![if is_final { 0x80 } else { 0 } | opcode];
        match len {
            0..=125 => bytes.push(0x80 | len as u8),
            126..=0xffff => {
                bytes.push(0x80 | 126);
                bytes.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                bytes.push(0x80 | 127);
                bytes.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        bytes.extend(std::iter::repeat_n(b'x', len));
        bytes
    }

    /// Scans `stream` cut at `cut` (and, when given, again at `second_cut`).
    fn scan_in_pieces(stream: &[u8], cuts: &[usize]) -> (FrameScanner, u64) {
        let mut scanner = FrameScanner::default();
        let mut largest = 0;
        let mut start = 0;
        for &cut in cuts.iter().chain([&stream.len()]) {
            largest = largest.max(scanner.scan(&stream[start..cut]));
            start = cut;
        }
        (scanner, largest)
    }

    #[test]
    fn counts_messages_of_every_header_length_whatever_the_reads() {
        let stream: Vec<u8> = [
            frame(true, 0x1, 5),
            frame(true, 0x1, 300),
            frame(true, 0x2, 70_000),
            frame(true, 0x9, 0),
            frame(true, 0x1, 0),
        ]
        .concat();
        for cut in 0..=stream.len() {
            for second in [cut, (cut + 7).min(stream.len()), stream.len()] {
                let (scanner, largest) = scan_in_pieces(&stream, &[cut, second]);
                assert_eq!(scanner.messages(), 5, "cut at {cut} and {second}");
                assert!(scanner.at_message_boundary());
                assert!(largest > 0, "the frame beginning before a cut is reported");
            }
        }
        let (_, largest) = scan_in_pieces(&stream, &[]);
        assert_eq!(largest, 2 + 8 + 4 + 70_000);
    }

    #[test]
    fn a_fragmented_message_counts_once_and_control_frames_inside_it_count_alone() {
        let first = frame(false, 0x1, 10);
        let ping = frame(true, 0x9, 4);
        let middle = frame(false, 0x0, 10);
        let last = frame(true, 0x0, 10);
        let mut scanner = FrameScanner::default();
        scanner.scan(&first);
        assert_eq!(scanner.messages(), 0);
        assert!(
            !scanner.at_message_boundary(),
            "inside a fragmented message"
        );
        scanner.scan(&ping);
        assert_eq!(scanner.messages(), 1, "the ping is a message of its own");
        assert!(
            !scanner.at_message_boundary(),
            "still inside the fragmented message"
        );
        scanner.scan(&middle);
        scanner.scan(&last);
        assert_eq!(scanner.messages(), 2);
        assert!(scanner.at_message_boundary());
    }

    #[test]
    fn a_partly_read_frame_is_not_a_boundary() {
        let stream = frame(true, 0x1, 200);
        for cut in 1..stream.len() {
            let mut scanner = FrameScanner::default();
            scanner.scan(&stream[..cut]);
            assert!(!scanner.at_message_boundary(), "cut at {cut}");
            assert_eq!(scanner.messages(), 0);
            scanner.scan(&stream[cut..]);
            assert!(scanner.at_message_boundary());
            assert_eq!(scanner.messages(), 1);
        }
    }
}
