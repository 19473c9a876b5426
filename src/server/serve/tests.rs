//! The loop end to end, with small endpoints of its own: peer address, header limits,
//! upgrades, stalled bodies, shutdown. The TLS and slow-header behaviour of the whole server is
//! tested in `tests/api/tls.rs` and `tests/api/slow_clients.rs`.

use std::{
    io,
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use poem::{Endpoint, Request, Response, http::StatusCode};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::oneshot,
    task::JoinHandle,
    time::timeout,
};

use super::{ServeSettings, bind};
use crate::edge::upgrade::UpgradedIo;

/// Generous bound for anything that should happen "soon" (a loaded 2-core machine).
const SOON: Duration = Duration::from_secs(10);

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
async fn a_websocket_upgrade_hands_over_the_tcp_stream_with_the_bytes_sent_along() {
    let endpoint = poem::endpoint::make(|request: Request| async move {
        let Ok(upgrade) = crate::edge::upgrade::take(&request) else {
            return Response::builder().status(StatusCode::BAD_REQUEST).finish();
        };
        tokio::spawn(async move {
            let Ok(mut connection) = upgrade.connection().await else {
                return;
            };
            let kind: &[u8] = match &connection {
                UpgradedIo::Tcp { .. } => b"tcp:",
                UpgradedIo::Layered(_) => b"layered:",
            };
            // The first four bytes came with the request (hyper read them), the rest after.
            let mut buffer = [0; 8];
            if connection.read_exact(&mut buffer).await.is_ok() {
                let _ = connection.write_all(kind).await;
                let _ = connection.write_all(&buffer).await;
                let _ = connection.shutdown().await;
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .finish()
    });
    let server = serve(endpoint, settings(10, 60), SOON).await;
    let mut stream = connect(server.addr).await;
    send(
        &mut stream,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nearl",
    )
    .await;
    let head = read_response(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    send(&mut stream, b"ier").await;
    send(&mut stream, b"!").await;
    assert_eq!(read_until_closed(&mut stream).await, "tcp:earlier!");
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
