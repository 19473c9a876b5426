//! A TCP proxy on loopback that can make the connections through it go silent without closing
//! them: the half-open connection a partition, a vanished host or a middlebox that forgot an
//! idle flow leaves behind. Neither end gets an error or a close; bytes simply stop arriving,
//! both ways.
//!
//! Only connections open at the time are silenced; new ones pass, as they would once the
//! network path is rebuilt. [`SilenceProxy::silence_subscribers`] picks the connections that
//! sent a `SUBSCRIBE` (Redis subscriber connections, the long-idle ones middleboxes drop),
//! [`SilenceProxy::silence_all`] every one.
//!
//! Like [`crate::redis`], this exposes plain data only (addresses, counts).

use std::{
    io::{self, Read, Write},
    net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

/// How often idle pumps look at their flags.
const POLL: Duration = Duration::from_millis(20);

/// A proxy from a free loopback port to `target`; everything stops when it is dropped.
#[derive(Debug)]
pub struct SilenceProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    connections: Mutex<Vec<Arc<Connection>>>,
    /// Connections that ever sent a `SUBSCRIBE`.
    subscribers: AtomicUsize,
}

impl Shared {
    /// The connections; a panic elsewhere while holding them leaves nothing half done.
    fn connections(&self) -> MutexGuard<'_, Vec<Arc<Connection>>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct Connection {
    client: TcpStream,
    server: TcpStream,
    subscriber: AtomicBool,
    silenced: AtomicBool,
}

impl SilenceProxy {
    /// Starts proxying a free loopback port to `127.0.0.1:target_port`.
    ///
    /// # Errors
    /// When no port can be bound.
    pub fn start(target_port: u16) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, target_port));
        let shared = Arc::new(Shared::default());
        let accepting = Arc::clone(&shared);
        thread::spawn(move || accept(&listener, target, &accepting));
        Ok(Self { addr, shared })
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `redis://127.0.0.1:PORT`: a Redis URL through the proxy.
    #[must_use]
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Silences every open connection that has sent a `SUBSCRIBE`; returns how many.
    pub fn silence_subscribers(&self) -> usize {
        self.silence(|connection| connection.subscriber.load(Ordering::Acquire))
    }

    /// Silences every open connection; returns how many.
    pub fn silence_all(&self) -> usize {
        self.silence(|_| true)
    }

    /// Connections that have sent a `SUBSCRIBE` since the proxy started, silenced ones
    /// included: a count that grows when a client resubscribes on a new connection.
    #[must_use]
    pub fn subscriber_connections(&self) -> usize {
        self.shared.subscribers.load(Ordering::Acquire)
    }

    fn silence(&self, which: impl Fn(&Connection) -> bool) -> usize {
        let connections = self.shared.connections();
        connections
            .iter()
            .filter(|connection| which(connection))
            .filter(|connection| !connection.silenced.swap(true, Ordering::AcqRel))
            .count()
    }
}

impl Drop for SilenceProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for connection in self.shared.connections().drain(..) {
            let _ = connection.client.shutdown(Shutdown::Both);
            let _ = connection.server.shutdown(Shutdown::Both);
        }
    }
}

fn accept(listener: &TcpListener, target: SocketAddr, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::Acquire) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(POLL);
                continue;
            }
            Err(_) => return,
        };
        let Ok(server) = TcpStream::connect(target) else {
            continue;
        };
        let pumps = (|| {
            client.set_nonblocking(false)?;
            let streams = (
                client.try_clone()?,
                server.try_clone()?,
                client.try_clone()?,
                server.try_clone()?,
            );
            for stream in [&client, &server] {
                stream.set_read_timeout(Some(POLL))?;
                stream.set_nodelay(true)?;
            }
            io::Result::Ok(streams)
        })();
        let Ok((client_in, server_out, client_out, server_in)) = pumps else {
            continue;
        };
        let connection = Arc::new(Connection {
            client,
            server,
            subscriber: AtomicBool::new(false),
            silenced: AtomicBool::new(false),
        });
        shared.connections().push(Arc::clone(&connection));
        let (upstream, up_shared) = (Arc::clone(&connection), Arc::clone(shared));
        thread::spawn(move || pump(client_in, server_out, &upstream, &up_shared, true));
        let down_shared = Arc::clone(shared);
        thread::spawn(move || pump(server_in, client_out, &connection, &down_shared, false));
    }
}

/// Copies `from` to `to` until either closes, the proxy stops, or the connection is silenced
/// (then it holds: reads nothing more, forwards nothing more, closes nothing).
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    connection: &Connection,
    shared: &Shared,
    from_client: bool,
) {
    let mut buffer = [0u8; 16 * 1024];
    // The end of the previous chunk, so a command split across reads is still recognised.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        if connection.silenced.load(Ordering::Acquire) {
            thread::sleep(POLL);
            continue;
        }
        let read = match from.read(&mut buffer) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(read) => read,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
        };
        if connection.silenced.load(Ordering::Acquire) {
            // Silenced while this chunk was on its way: it is lost with the path.
            continue;
        }
        if from_client && !connection.subscriber.load(Ordering::Acquire) {
            tail.extend_from_slice(&buffer[..read]);
            if contains_subscribe(&tail) {
                connection.subscriber.store(true, Ordering::Release);
                shared.subscribers.fetch_add(1, Ordering::AcqRel);
            }
            let seen = tail.len().saturating_sub(16);
            tail.drain(..seen);
        }
        if to.write_all(&buffer[..read]).is_err() {
            return;
        }
    }
}

fn contains_subscribe(bytes: &[u8]) -> bool {
    const WORD: &[u8] = b"SUBSCRIBE";
    bytes
        .windows(WORD.len())
        .any(|window| window.eq_ignore_ascii_case(WORD))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_is_recognised_in_any_case() {
        assert!(contains_subscribe(
            b"*2\r\n$9\r\nSUBSCRIBE\r\n$3\r\nabc\r\n"
        ));
        assert!(contains_subscribe(b"*2\r\n$9\r\nsubscribe\r\n"));
        assert!(!contains_subscribe(b"*1\r\n$4\r\nPING\r\n"));
    }
}
