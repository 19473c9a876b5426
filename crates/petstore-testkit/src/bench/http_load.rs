//! An in-process HTTP/1.1 load generator: keep-alive connections in a closed loop (each sends
//! its next request as soon as the previous answer is read), a warm-up, then a measured window.
//!
//! What is sent and what counts as a correct answer is the [`Workload`]'s business; every answer
//! is checked. A workload may run out of requests (a pool of pets that each order reserves):
//! the window then ends when the first connection finds it empty, and the rate is computed over
//! the time actually measured.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Method, Request, StatusCode,
    header::{self, HeaderValue},
};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, sync::Notify};

/// The sending half of one keep-alive connection.
pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Requests to send and how to check their answers.
pub trait Workload: Send + Sync + 'static {
    /// What the check of one answer needs to know about its request.
    type Expect: Send;

    /// The next request, or `None` when there is no more work (the window ends early).
    fn next(&self) -> Option<(Request<Full<Bytes>>, Self::Expect)>;

    /// Whether an answer is the right one; the error says what is wrong with it.
    fn check(&self, expect: Self::Expect, status: StatusCode, body: &[u8]) -> Result<(), String>;
}

/// Opens a keep-alive connection with `TCP_NODELAY`.
pub async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("handshake: {error}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// A request to `path` (with the query, if any), JSON when there is a body, with a bearer
/// token when one is given.
pub fn request(
    method: Method,
    path: &str,
    bearer: Option<&str>,
    json: Option<Bytes>,
) -> Result<Request<Full<Bytes>>, String> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, HeaderValue::from_static("127.0.0.1"));
    if let Some(token) = bearer {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match json {
        Some(json) => {
            builder = builder.header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Full::new(json)
        }
        None => Full::new(Bytes::new()),
    };
    builder
        .body(body)
        .map_err(|error| format!("request {path}: {error}"))
}

/// A request that did not produce an answer.
#[derive(Debug)]
pub struct ConnectionLost(pub String);

/// Sends a request on `sender` and reads the whole answer.
pub async fn send(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), ConnectionLost> {
    let lost = |error: hyper::Error| ConnectionLost(error.to_string());
    sender.ready().await.map_err(lost)?;
    let response = sender.send_request(request).await.map_err(lost)?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(lost)?
        .to_bytes();
    Ok((status, body))
}

/// One request on a fresh connection: for set-up and probes, not for load.
pub async fn fetch(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    let mut sender = connect(addr).await?;
    send(&mut sender, request)
        .await
        .map_err(|ConnectionLost(reason)| reason)
}

/// How a measured window is run.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub connections: usize,
    pub warm_up: Duration,
    pub measure: Duration,
}

/// What a measured window produced.
#[derive(Debug, Default)]
pub struct Sample {
    /// Correct answers completed inside the window.
    pub requests: u64,
    /// How long the window lasted (shorter than planned when the workload ran out).
    pub elapsed: Duration,
    /// Whether the workload ran out before the window's end.
    pub ran_dry: bool,
    /// Microseconds from sending each measured request to having read its whole answer, sorted.
    pub latencies_us: Vec<u32>,
    /// Per meter given to [`drive`], what it counted during the window.
    pub cpu: Vec<Option<Duration>>,
    pub failures: u64,
    pub first_failure: Option<String>,
}

impl Sample {
    /// Correct answers per second over the window.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn fail(&mut self, reason: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(reason);
    }
}

/// A reading of some process's CPU time so far (a server child, Redis).
pub type Meter<'a> = &'a (dyn Fn() -> Option<Duration> + Sync);

const WARMING_UP: u8 = 0;
const MEASURING: u8 = 1;
const STOPPING: u8 = 2;

/// What the connections share with the driver.
struct Shared<W> {
    workload: Arc<W>,
    phase: AtomicU8,
    /// Woken when a connection finds the workload empty.
    dry: Notify,
}

/// Warms up, then measures `window.connections` closed-loop connections to `addr`. `meters`
/// are read at the window's start and end.
pub async fn drive<W: Workload>(
    addr: SocketAddr,
    window: Window,
    workload: Arc<W>,
    meters: &[Meter<'_>],
) -> Sample {
    let shared = Arc::new(Shared {
        workload,
        phase: AtomicU8::new(WARMING_UP),
        dry: Notify::new(),
    });
    let tasks: Vec<_> = (0..window.connections)
        .map(|_| tokio::spawn(connection_loop(addr, Arc::clone(&shared))))
        .collect();
    let ran_dry_in_warm_up = tokio::select! {
        () = tokio::time::sleep(window.warm_up) => false,
        () = shared.dry.notified() => true,
    };

    let before: Vec<_> = meters.iter().map(|meter| meter()).collect();
    let started = Instant::now();
    shared.phase.store(MEASURING, Ordering::Relaxed);
    let ran_dry = ran_dry_in_warm_up
        || tokio::select! {
            () = tokio::time::sleep(window.measure) => false,
            () = shared.dry.notified() => true,
        };
    shared.phase.store(STOPPING, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cpu = meters
        .iter()
        .zip(before)
        .map(|(meter, before)| {
            before
                .zip(meter())
                .map(|(before, after)| after.saturating_sub(before))
        })
        .collect();

    let mut total = Sample {
        elapsed,
        ran_dry,
        cpu,
        ..Sample::default()
    };
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(sample)) => {
                total.requests += sample.requests;
                total.latencies_us.extend_from_slice(&sample.latencies_us);
                total.failures += sample.failures;
                if let Some(reason) = sample.first_failure {
                    total.first_failure.get_or_insert(reason);
                }
            }
            Ok(Err(error)) => total.fail(format!("connection task failed: {error}")),
            Err(_) => total.fail("a request did not finish within 10 s".to_owned()),
        }
    }
    total.latencies_us.sort_unstable();
    total
}

async fn connection_loop<W: Workload>(addr: SocketAddr, shared: Arc<Shared<W>>) -> Sample {
    let mut sample = Sample::default();
    let mut sender = match connect(addr).await {
        Ok(sender) => sender,
        Err(reason) => {
            sample.fail(reason);
            return sample;
        }
    };
    while shared.phase.load(Ordering::Relaxed) != STOPPING {
        let Some((request, expect)) = shared.workload.next() else {
            shared.dry.notify_one();
            break;
        };
        let sent = Instant::now();
        match send(&mut sender, request).await {
            Ok((status, body)) => {
                let took = sent.elapsed();
                match shared.workload.check(expect, status, &body) {
                    Ok(()) => {
                        if shared.phase.load(Ordering::Relaxed) == MEASURING {
                            sample.requests += 1;
                            sample
                                .latencies_us
                                .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                        }
                    }
                    Err(reason) => sample.fail(reason),
                }
            }
            Err(ConnectionLost(reason)) => {
                sample.fail(reason);
                break;
            }
        }
    }
    sample
}
