//! Slow and idle clients: one watchdog per connection, not hyper's HTTP/1 `header_read_timeout`. hyper's timer would
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
//! per-IP connection limit is for. WebSocket connections leave the loop once upgraded: these
//! timeouts do not apply to them.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use poem::http::Version;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Instant,
};

/// How many times per timeout (the shorter of the header-read and idle timeouts) the watchdog
/// looks at each connection.
const CHECKS_PER_TIMEOUT: u32 = 4;

/// What a connection did, for the watchdog: set by the connection's reads and writes, by the
/// service when a request head is complete, and by response bodies when hyper is done with them.
///
/// Relaxed ordering throughout: these are independent hints the watchdog reads once per check,
/// and a change it sees one check late only moves a decision by one check.
#[derive(Debug, Default)]
pub(super) struct Activity {
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
    pub(super) fn request_started(&self, version: Version) {
        self.started.fetch_add(1, Ordering::Relaxed);
        if version == Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
    }

    pub(super) fn response_finished(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// The watchdog's decision at a check.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
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
pub(super) struct Watchdog {
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
    pub(super) fn new(
        accepted: Instant,
        header_read_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
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
    pub(super) fn next_check(&self) -> Instant {
        match self.first_request_deadline {
            Some(deadline) => deadline.min(self.next_periodic),
            None => self.next_periodic,
        }
    }

    pub(super) fn check(&mut self, activity: &Activity, now: Instant) -> Verdict {
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
pub(super) struct Watched<T> {
    pub(super) inner: T,
    pub(super) activity: Arc<Activity>,
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

#[cfg(test)]
mod tests {
    //! The watchdog's decisions, through simulated time.

    use std::{sync::atomic::Ordering, time::Duration};

    use poem::http::Version;
    use tokio::time::Instant;

    use super::{Activity, CHECKS_PER_TIMEOUT, Verdict, Watchdog};

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
}
