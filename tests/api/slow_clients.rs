//! Slow and idle clients cannot hold connections open: header bytes trickled one at a time (on a
//! new connection or a keep-alive one), a connection that never sends a request, an HTTP/2
//! preface trickled byte by byte, and idle keep-alive connections are all closed, while other
//! clients are served normally and keep-alive connections outlive the header-read timeout.
//!
//! The timeouts under test are 1 s; every bound below is ten times that or more, since these
//! tests are about behaviour, not speed.

use std::{net::SocketAddr, time::Duration};

use petstore_testkit::app::{read_http_response, send, spawn_app};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{Instant, sleep, timeout},
};

/// Longest wait for the server to close a connection it should close after about a second.
const CLOSED_WITHIN: Duration = Duration::from_secs(10);

/// Pause between the bytes a slow client sends.
const TRICKLE: Duration = Duration::from_millis(300);

async fn connect(addr: SocketAddr) -> TcpStream {
    match TcpStream::connect(addr).await {
        Ok(stream) => stream,
        Err(error) => panic!("cannot connect to {addr}: {error}"),
    }
}

/// Sends `start`, then `trickle` one byte every [`TRICKLE`] (repeating it as needed), until the
/// server closes the connection; fails if it is still open after [`CLOSED_WITHIN`]. Returns what
/// the server sent before closing.
async fn trickle_until_closed(stream: TcpStream, start: &[u8], trickle: &[u8]) -> String {
    let (mut reader, mut writer) = stream.into_split();
    let reading = tokio::spawn(async move {
        let mut received = Vec::new();
        // A reset after the server closes counts as closed too.
        let _ = reader.read_to_end(&mut received).await;
        received
    });
    let deadline = Instant::now() + CLOSED_WITHIN;
    let mut sent = 0;
    if writer.write_all(start).await.is_ok() {
        for byte in trickle.iter().cycle() {
            if reading.is_finished() || Instant::now() > deadline {
                break;
            }
            sleep(TRICKLE).await;
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            sent += 1;
        }
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    match timeout(remaining, reading).await {
        Ok(Ok(received)) => String::from_utf8_lossy(&received).into_owned(),
        Ok(Err(error)) => panic!("the reader failed: {error}"),
        Err(_) => {
            panic!("the connection is still open after {CLOSED_WITHIN:?} and {sent} trickled bytes")
        }
    }
}

/// Reads until the server closes the connection; fails after [`CLOSED_WITHIN`].
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    match timeout(CLOSED_WITHIN, stream.read_to_end(&mut received)).await {
        // A reset after the server closes counts as closed too.
        Ok(_) => String::from_utf8_lossy(&received).into_owned(),
        Err(_) => panic!("the connection is still open after {CLOSED_WITHIN:?}"),
    }
}

/// Sends one keep-alive `GET /health` and reads its response (`Content-Length` delimited),
/// leaving the connection open.
async fn health_on(stream: &mut TcpStream) -> String {
    if let Err(error) = stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
    {
        panic!("cannot send the request: {error}");
    }
    read_http_response(stream, CLOSED_WITHIN).await
}

/// The start of a request whose head never ends, and what a slow client trickles after it.
const SLOW_HEAD: (&[u8], &[u8]) = (
    b"GET /health HTTP/1.1\r\nHost: x\r\n",
    b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
);

#[tokio::test]
async fn a_client_trickling_header_bytes_is_disconnected() {
    let app = spawn_app(|config| config.header_read_timeout_secs = 1).await;
    let (start, trickle) = SLOW_HEAD;
    let received = trickle_until_closed(connect(app.addr).await, start, trickle).await;
    assert_eq!(received, "");
    app.shutdown().await;
}

#[tokio::test]
async fn a_client_trickling_its_next_request_head_on_a_keep_alive_connection_is_disconnected() {
    let app = spawn_app(|config| config.header_read_timeout_secs = 1).await;
    let mut stream = connect(app.addr).await;
    let response = health_on(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (start, trickle) = SLOW_HEAD;
    let received = trickle_until_closed(stream, start, trickle).await;
    assert_eq!(received, "");
    app.shutdown().await;
}

#[tokio::test]
async fn a_connection_that_never_sends_a_request_is_closed() {
    let app = spawn_app(|config| config.header_read_timeout_secs = 1).await;
    let mut stream = connect(app.addr).await;
    assert_eq!(read_until_closed(&mut stream).await, "");
    app.shutdown().await;
}

#[tokio::test]
async fn a_client_trickling_the_http2_preface_is_disconnected() {
    // Before hyper parses anything, the server reads up to 24 bytes to tell HTTP/1 from the
    // HTTP/2 preface; trickling the preface targets exactly that window.
    let app = spawn_app(|config| config.header_read_timeout_secs = 1).await;
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let received = trickle_until_closed(connect(app.addr).await, b"", preface).await;
    assert_eq!(received, "");
    app.shutdown().await;
}

#[tokio::test]
async fn other_clients_are_served_while_a_slow_client_trickles() {
    let app = spawn_app(|config| config.header_read_timeout_secs = 1).await;
    let (start, trickle) = SLOW_HEAD;
    let slow = tokio::spawn(trickle_until_closed(
        connect(app.addr).await,
        start,
        trickle,
    ));
    sleep(TRICKLE).await;
    let response = send(app.client.get(app.url("/health"))).await;
    assert_eq!(response.status(), 200);
    match slow.await {
        Ok(received) => assert_eq!(received, ""),
        Err(error) => panic!("the slow client failed: {error}"),
    }
    app.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_app(|config| {
        config.header_read_timeout_secs = 60;
        config.idle_timeout_secs = 1;
    })
    .await;
    let mut stream = connect(app.addr).await;
    let response = health_on(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // The connection was kept alive for a next request, which never comes.
    assert_eq!(read_until_closed(&mut stream).await, "");
    app.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_header_read_timeout() {
    let app = spawn_app(|config| config.header_read_timeout_secs = 1).await;
    let mut stream = connect(app.addr).await;
    let response = health_on(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // Waiting for the next request is idling, not a slow request head.
    sleep(Duration::from_secs(3)).await;
    let response = health_on(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_keep_alive_connection_in_use_stays_open_across_requests() {
    let app = spawn_app(|config| config.header_read_timeout_secs = 3).await;
    let mut stream = connect(app.addr).await;
    // Longer in all than one header-read timeout, each pause well within it: every request
    // starts a fresh deadline.
    for _ in 0..4 {
        let response = health_on(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        sleep(Duration::from_secs(1)).await;
    }
    app.shutdown().await;
}
