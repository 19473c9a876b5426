//! One WebSocket connection, from the upgrade to the close frame.
//!
//! A single task owns the socket in both directions and everything about the session: no locks,
//! and an idle session is one parked task with a few small buffers. It waits on five things at
//! once: the next frame, a finished request, a frame from the hub (notifications), the next
//! deadline, and the server's shutdown.
//!
//! Requests are read, rate-limited and queued by priority; up to `max_in_flight` run
//! concurrently as futures of this task (so responses can leave out of order), each bounded by
//! the request timeout. When the queue is above its high-water mark the client is told
//! (`backpressure`); when it is full, low-priority requests are refused (`OVERLOADED`) and
//! others wait: the session stops reading from the socket until there is room, so TCP pushes
//! back on the client and nothing is dropped.
//!
//! After each step the session reports what its queue holds to the node's figures (`load`):
//! requests waiting and in flight, and whether it is under backpressure. Each request's wait,
//! from being read to being started, goes to the queue-wait histogram.

use std::{
    future::{Future, poll_fn},
    net::IpAddr,
    pin::{Pin, pin},
    sync::{Arc, LazyLock},
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, stream::FuturesUnordered};
use governor::{
    DefaultDirectRateLimiter, RateLimiter,
    clock::{Clock, DefaultClock},
};
use serde_json::json;
use tokio::{
    sync::watch,
    time::{Instant, Sleep, error::Elapsed, sleep_until, timeout},
};
use tokio_tungstenite::tungstenite::{
    Error as WsError, Message, Utf8Bytes,
    error::CapacityError,
    protocol::{
        CloseFrame,
        frame::{
            Frame,
            coding::{CloseCode, Data, OpCode},
        },
    },
};
use uuid::Uuid;

use super::{
    WsService,
    control::{self, Asker, Control},
    envelope::{self, Request},
    load::{QueueLevel, QueueShare},
    queue::{Admission, PriorityQueue},
    socket::{self, Socket},
};
use crate::{
    auth::Authentication,
    edge::{dispatch::dispatch, idempotency::WsRequest, upgrade::UpgradedIo},
    events::{ConnectionId, Outbox, OutboxReceiver, Received, TextFrame},
    limits::connections::ConnectionPermit,
    telemetry::metrics::{self, Closed},
};
use petstore_api::{
    ApiError, Credential, Ctx, Subscriptions,
    operations::PetStoreApi,
    payload::Success,
    ws::{Action, Event},
};

/// Where a session is in its life (`asyncapi.yaml` describes the same states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// The upgrade is under way.
    Connecting,
    /// Open, not yet authenticated; the authentication deadline runs.
    Authenticating,
    /// Authenticated, no request since.
    Authenticated,
    /// Authenticated and making requests.
    Active,
    /// Authenticated, no request for a while (still subscribed, still heartbeating).
    Inactive,
    /// Closed.
    Closed,
}

/// A request running in the session.
type Running = Pin<Box<dyn Future<Output = Finished> + Send>>;

/// A request read and not yet started, with the moment it was read.
struct Waiting {
    request: Request,
    since: Instant,
}

/// A request that has its outcome.
struct Finished {
    correlation_id: Uuid,
    action: Action,
    started: Instant,
    outcome: Result<Success, ApiError>,
}

/// Why the session ends, and the close frame that says so.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// The client closed the session with a close frame (answered by tungstenite).
    ClientClosed,
    /// The connection broke without a close frame: nothing to send.
    PeerGone,
    /// We close with this code and reason.
    Close(CloseCode, &'static str),
}

/// Runs a session on an upgraded connection until it closes.
pub(super) async fn run<H: PetStoreApi + Subscriptions>(
    service: Arc<WsService<H>>,
    upgraded: UpgradedIo,
    client_ip: Option<IpAddr>,
    authentication: Authentication,
    permit: Option<ConnectionPermit>,
) {
    let mut socket = socket::open(upgraded, service.settings.protocol());
    let id = service.hub.next_connection_id();
    let (outbox, notifications) = Outbox::new(service.settings.outbox_capacity);
    service.hub.attach(id, outbox);
    let mut session = Session::new(Arc::clone(&service), id, client_ip, notifications);
    service.counts.opened();
    metrics::ws().session_opened();
    if authentication.principal().is_some() {
        session.sign_in(authentication);
    }
    tracing::debug!(connection = id, ?client_ip, "WebSocket session opened");
    let ending = session.serve(&mut socket).await;
    drop(socket);
    service.counts.closed(session.is_authenticated());
    metrics::ws().session_closed(match ending {
        Ending::ClientClosed => Closed::ByClient,
        Ending::PeerGone => Closed::Abruptly,
        Ending::Close(code, _) => Closed::ByServer(u16::from(code)),
    });
    service.hub.detach(id);
    drop(permit);
    tracing::debug!(connection = id, ?ending, "WebSocket session closed");
}

/// The state of one session, owned by its task.
struct Session<H> {
    service: Arc<WsService<H>>,
    id: ConnectionId,
    client_ip: Option<IpAddr>,
    state: SessionState,
    authentication: Authentication,
    /// When the access token expires (service keys and anonymous sessions: never).
    expires_at: Option<Instant>,
    expiry_warned: bool,
    opened: Instant,
    last_heard: Instant,
    last_request: Instant,
    last_ping: Instant,
    queue: PriorityQueue<Waiting>,
    /// A request read while the queue was full; reading resumes once it is queued.
    held: Option<Waiting>,
    in_flight: FuturesUnordered<Running>,
    /// This session's part of the node's message-queue figures.
    load: QueueShare,
    limiter: DefaultDirectRateLimiter,
    notifications: OutboxReceiver,
    subscriptions: usize,
    /// Frames of missed events to send after the answer to the `subscribe` that recovered them.
    replay: Vec<TextFrame>,
    /// Messages read from the socket so far (data, ping, pong and close alike).
    messages_received: u64,
}

impl<H: PetStoreApi + Subscriptions> Session<H> {
    fn new(
        service: Arc<WsService<H>>,
        id: ConnectionId,
        client_ip: Option<IpAddr>,
        notifications: OutboxReceiver,
    ) -> Self {
        let settings = service.settings;
        let now = Instant::now();
        Self {
            id,
            client_ip,
            state: SessionState::Connecting,
            authentication: Authentication::anonymous(),
            expires_at: None,
            expiry_warned: false,
            opened: now,
            last_heard: now,
            last_request: now,
            last_ping: now,
            queue: PriorityQueue::new(settings.queue_capacity, settings.queue_high_water),
            held: None,
            in_flight: FuturesUnordered::new(),
            load: QueueShare::new(Arc::clone(&service.counts)),
            limiter: RateLimiter::direct_with_clock(
                settings.message_rate.to_governor(),
                SESSION_CLOCK.clone(),
            ),
            notifications,
            subscriptions: 0,
            replay: Vec::new(),
            messages_received: 0,
            service,
        }
    }

    /// Does what a control action answered the session should do, and returns its reply.
    fn apply(&mut self, control: Control) -> Bytes {
        match control {
            Control::Reply(reply) => reply,
            Control::SignIn(authentication, reply) => {
                self.sign_in(authentication);
                reply
            }
            Control::Topics(count, reply) => {
                self.subscriptions = count;
                reply
            }
            Control::Subscribed {
                count,
                reply,
                replay,
            } => {
                self.subscriptions = count;
                self.replay = replay;
                reply
            }
        }
    }

    /// Adopts verified credentials: the session now acts as their principal, receives that
    /// user's own events, and is closed when an access token expires unrefreshed.
    fn sign_in(&mut self, authentication: Authentication) {
        let Some(principal) = authentication.principal() else {
            return;
        };
        self.service
            .hub
            .set_owner(self.id, Some(principal.owner_key()));
        self.expires_at = match &principal.credential {
            Credential::AccessToken { expires_at, .. } => {
                let left = (*expires_at - chrono::Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO);
                Some(Instant::now() + left)
            }
            Credential::ServiceKey => None,
        };
        self.expiry_warned = false;
        if !self.is_authenticated() {
            self.service.counts.signed_in();
        }
        self.authentication = authentication;
        if matches!(
            self.state,
            SessionState::Connecting | SessionState::Authenticating
        ) {
            self.enter(SessionState::Authenticated);
        }
    }

    /// Moves to `state`, logged at `debug` so a session's lifecycle can be followed in the logs.
    fn enter(&mut self, state: SessionState) {
        tracing::debug!(connection = self.id, from = ?self.state, to = ?state, "WebSocket session state");
        self.state = state;
    }

    fn is_authenticated(&self) -> bool {
        self.authentication.principal().is_some()
    }

    /// The session's loop; returns how it ended, having sent the close frame.
    ///
    /// Every idle session is this future, parked: its size is paid per connection. An `async fn`
    /// awaited here is laid out inside it, so the rarely taken, larger steps (control actions,
    /// the timer's work, the close handshake) are boxed: they allocate when they run instead of
    /// being reserved in every idle session.
    async fn serve(&mut self, socket: &mut Socket) -> Ending {
        if self.state == SessionState::Connecting {
            self.enter(SessionState::Authenticating);
        }
        let shutdown = self.service.shutdown.subscribe();
        let mut draining = *shutdown.borrow();
        let wait = pin!(drained(shutdown.clone()));
        let mut drain_signal = DrainSignal::new(shutdown, wait);
        let sleep = pin!(sleep_until(self.next_deadline()));
        let mut timer = Alarm::new(sleep);
        // Set after a step that left notifications queued: the next turn looks at the socket
        // before the outbox, so a steady stream of events cannot keep requests unread.
        let mut read_first = false;
        let ending = loop {
            let reading = !draining && self.held.is_none();
            let messages = self.messages_received;
            // The outbox comes before the socket: a turn that finds a notification sends it
            // without a read attempt (tungstenite zero-fills its read buffer before each one).
            let event = tokio::select! {
                biased;
                () = &mut drain_signal, if !draining => {
                    draining = true;
                    Step::Nothing
                }
                Some(finished) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    Step::Finished(finished)
                }
                received = self.notifications.next(), if !read_first => received.into(),
                frame = next_message(socket, messages), if reading => Step::Frame(frame),
                received = self.notifications.next(), if read_first => received.into(),
                () = &mut timer => Step::Tick,
            };
            read_first = false;
            // Sending notifications changes nothing about requests: the queue, what is in
            // flight, the queue figures and the deadlines stay as the last step left them, and
            // the bookkeeping for those is skipped (a fan-out's every delivery is such a step).
            let requests_touched = !matches!(event, Step::Send(_));
            let result = match event {
                Step::Finished(finished) => {
                    let frame = answer(
                        &finished.correlation_id,
                        finished.action,
                        finished.started,
                        &finished.outcome,
                    );
                    self.write(socket, frame).await
                }
                Step::Send(frame) => match self.send_backlog(socket, frame).await {
                    Ok(full) => {
                        read_first = full;
                        Ok(())
                    }
                    Err(ending) => Err(ending),
                },
                Step::End(ending) => break ending,
                Step::Frame(frame) => self.on_frame(socket, frame).await,
                Step::Nothing => Ok(()),
                Step::Tick => {
                    let result = Box::pin(self.on_tick(socket)).await;
                    timer.reset(self.next_deadline());
                    result
                }
            };
            if let Err(ending) = result {
                break ending;
            }
            if requests_touched && let Err(ending) = self.start_queued(socket).await {
                break ending;
            }
            if let Err(ending) = self.flush(socket).await {
                break ending;
            }
            if socket
                .get_ref()
                .holds_only_grown_buffers(self.messages_received)
            {
                // A large frame grew tungstenite's buffers, and it holds nothing else now.
                socket::renew(socket);
                metrics::ws().buffers_released();
            }
            if draining && self.in_flight.is_empty() && self.queue.is_empty() && self.held.is_none()
            {
                self.load.report(self.queue_level());
                break Ending::Close(CloseCode::Restart, "server restarting; reconnect");
            }
            if !requests_touched {
                continue;
            }
            self.load.report(self.queue_level());
            // A step can bring a deadline forward (a token's expiry after `authenticate`); the
            // timer only ever moves later by firing.
            let next = self.next_deadline();
            if next < timer.deadline() {
                timer.reset(next);
            }
        };
        self.enter(SessionState::Closed);
        match ending {
            Ending::Close(code, reason) => Box::pin(self.close(socket, code, reason)).await,
            // tungstenite queued its answer to the client's close frame; send it.
            Ending::ClientClosed => {
                let _ = timeout(CLOSE_HANDSHAKE_WAIT, socket.flush()).await;
            }
            Ending::PeerGone => {}
        }
        ending
    }

    /// Sends the close frame and waits briefly for the peer's, so the client sees a clean close.
    async fn close(&mut self, socket: &mut Socket, code: CloseCode, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let closing = async {
            if socket.close(Some(frame)).await.is_err() {
                return;
            }
            while let Some(Ok(_)) = socket.next().await {}
        };
        let _ = timeout(CLOSE_HANDSHAKE_WAIT, closing).await;
    }

    /// Writes a response frame (JSON from the envelope module) to the socket, checked to be
    /// UTF-8 as tungstenite's text messages must be, and flushes it: a step may go on to wait
    /// for another request (a control action over Redis), and an answer must not wait with it
    /// in tungstenite's write buffer.
    async fn write(&mut self, socket: &mut Socket, frame: Bytes) -> Result<(), Ending> {
        let text = Utf8Bytes::try_from(frame).map_err(|_| {
            tracing::error!(
                connection = self.id,
                "refusing to send a frame that is not UTF-8"
            );
            Ending::Close(CloseCode::Error, "internal error")
        })?;
        self.feed(socket, Message::Text(text)).await?;
        self.flush(socket).await
    }

    /// Writes a notification frame as a text message, into tungstenite's write buffer (the
    /// flush at the end of the step sends it). It was rendered, and proven UTF-8, once for
    /// every connection that receives it ([`TextFrame`]): sent as a raw text frame it is not
    /// checked again here, once per subscriber.
    async fn write_notification(
        &mut self,
        socket: &mut Socket,
        frame: TextFrame,
    ) -> Result<(), Ending> {
        let frame = Frame::message(frame.into_bytes(), OpCode::Data(Data::Text), true);
        self.feed(socket, Message::Frame(frame)).await
    }

    async fn feed(&mut self, socket: &mut Socket, message: Message) -> Result<(), Ending> {
        match within(self.service.settings.write_timeout, socket.feed(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Ending::PeerGone),
            Err(_) => Err(Ending::Close(CloseCode::Again, "the client does not read")),
        }
    }

    /// Writes a notification frame and those queued behind it (up to [`SEND_BATCH`]), in order,
    /// so that a subscriber with a backlog gets it in one step and one flush instead of a trip
    /// round the loop per frame, several frames to a `send` (tungstenite's write buffer gathers
    /// them). Taking them off the queue here cannot lose one: a frame taken is written or the
    /// session ends. An overflow mark stops the batch: the next step closes the connection
    /// (1013), with nothing more to send it. Returns whether the batch was cut short by its
    /// size, so frames may still be queued.
    async fn send_backlog(
        &mut self,
        socket: &mut Socket,
        first: TextFrame,
    ) -> Result<bool, Ending> {
        self.write_notification(socket, first).await?;
        for _ in 1..SEND_BATCH {
            if self.notifications.is_overflowed() {
                return Ok(false);
            }
            match self.notifications.try_recv() {
                Ok(frame) => self.write_notification(socket, frame).await?,
                Err(_) => return Ok(false),
            }
        }
        Ok(true)
    }

    async fn flush(&mut self, socket: &mut Socket) -> Result<(), Ending> {
        match within(self.service.settings.write_timeout, socket.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Ending::PeerGone),
            Err(_) => Err(Ending::Close(CloseCode::Again, "the client does not read")),
        }
    }

    async fn on_frame(
        &mut self,
        socket: &mut Socket,
        frame: Option<Result<Message, WsError>>,
    ) -> Result<(), Ending> {
        let message = match frame {
            None => return Err(Ending::PeerGone),
            Some(Ok(message)) => {
                self.messages_received += 1;
                message
            }
            Some(Err(WsError::Capacity(
                CapacityError::MessageTooLong { .. } | CapacityError::TooManyHeaders,
            ))) => return Err(Ending::Close(CloseCode::Size, "message too big")),
            Some(Err(WsError::Utf8(_))) => {
                return Err(Ending::Close(CloseCode::Invalid, "text frame is not UTF-8"));
            }
            Some(Err(WsError::Protocol(_))) => {
                return Err(Ending::Close(CloseCode::Protocol, "protocol error"));
            }
            Some(Err(_)) => return Err(Ending::PeerGone),
        };
        self.last_heard = Instant::now();
        match message {
            Message::Text(text) => self.on_text(socket, text.as_str()).await,
            Message::Binary(_) => {
                let error = ApiError::BadRequest(
                    "binary frames are not supported: send JSON envelopes as text".to_owned(),
                );
                self.write(socket, envelope::error(None, &error)).await
            }
            // tungstenite answers pings itself (on the next flush); pongs only prove liveness.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(()),
            Message::Close(_) => Err(Ending::ClientClosed),
        }
    }

    async fn on_text(&mut self, socket: &mut Socket, text: &str) -> Result<(), Ending> {
        let request = match envelope::read_request(text) {
            Ok(request) => request,
            Err(unreadable) => {
                metrics::ws().error(unreadable.error.code());
                let frame =
                    envelope::error(unreadable.correlation_id.as_deref(), &unreadable.error);
                return self.write(socket, frame).await;
            }
        };
        if let Err(not_until) = self.limiter.check() {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            let error = ApiError::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                limit: u64::from(self.service.settings.message_rate.burst.get()),
                reset_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            };
            metrics::security().rate_limited(metrics::RateScope::Connection);
            metrics::ws().error(error.code());
            let frame = envelope::error(Some(&request.correlation_id.to_string()), &error);
            return self.write(socket, frame).await;
        }
        let now = Instant::now();
        self.last_request = now;
        if matches!(
            self.state,
            SessionState::Authenticated | SessionState::Inactive
        ) {
            self.enter(SessionState::Active);
        }
        let waiting = Waiting {
            request,
            since: now,
        };
        self.enqueue(socket, waiting).await
    }

    /// What the queue holds now, for the node's figures.
    fn queue_level(&self) -> QueueLevel {
        QueueLevel {
            waiting: self.queue.len() + usize::from(self.held.is_some()),
            in_flight: self.in_flight.len(),
            // A full queue (and so a held request) is always above the high-water mark.
            backpressured: self.queue.is_above_high_water(),
        }
    }

    /// Queues a request by its action's priority, telling the client when the queue is getting
    /// full and refusing or holding back what does not fit.
    async fn enqueue(&mut self, socket: &mut Socket, waiting: Waiting) -> Result<(), Ending> {
        let priority = waiting.request.action.priority();
        match self.queue.push(priority, waiting) {
            Admission::Queued => Ok(()),
            Admission::QueuedAboveHighWater => {
                let payload = json!({
                    "queued": self.queue.len(),
                    "capacity": self.queue.capacity(),
                    "message": "the request queue is filling up: slow down",
                });
                metrics::ws().backpressure();
                self.write(
                    socket,
                    envelope::session_notification(Event::Backpressure, &payload),
                )
                .await
            }
            Admission::Refused(refused) => {
                let error = ApiError::Overloaded {
                    retry_after_secs: 1,
                };
                self.load.overloaded();
                let correlation_id = refused.request.correlation_id.to_string();
                let frame = envelope::error(Some(&correlation_id), &error);
                self.write(socket, frame).await
            }
            Admission::Full(held) => {
                self.held = Some(held);
                Ok(())
            }
        }
    }

    /// Starts queued requests while there is room in flight; a held-back request goes into the
    /// queue as soon as it fits.
    async fn start_queued(&mut self, socket: &mut Socket) -> Result<(), Ending> {
        loop {
            if let Some(held) = self.held.take() {
                if self.queue.has_room() {
                    self.enqueue(socket, held).await?;
                } else {
                    self.held = Some(held);
                }
            }
            if self.in_flight.len() >= self.service.settings.max_in_flight {
                return Ok(());
            }
            let Some((priority, waiting)) = self.queue.pop() else {
                return Ok(());
            };
            metrics::ws().queue_wait(priority, waiting.since.elapsed());
            self.start(socket, waiting.request).await?;
        }
    }

    async fn start(&mut self, socket: &mut Socket, request: Request) -> Result<(), Ending> {
        // Revoked credentials end the session at its next request, whatever it asks; only a
        // fresh `authenticate` is still heard (and refused if the user's session is revoked).
        if request.action != Action::Authenticate && self.credentials_revoked() {
            let payload = json!({ "reason": "the access token was revoked" });
            self.write(
                socket,
                envelope::session_notification(Event::SessionExpired, &payload),
            )
            .await?;
            return Err(Ending::Close(CloseCode::Policy, "session revoked"));
        }
        if let Some(control) = request.action.control() {
            let started = Instant::now();
            let asker = Asker {
                connection: self.id,
                client_ip: self.client_ip,
                authentication: &self.authentication,
            };
            let outcome = Box::pin(control::run(&self.service, asker, control, request.payload))
                .await
                .map(|control| Success::json(200, self.apply(control)));
            let frame = answer(&request.correlation_id, request.action, started, &outcome);
            self.write(socket, frame).await?;
            // The events a resumed subscription missed follow its answer, before anything the
            // outbox holds (live events, all newer).
            let replay = std::mem::take(&mut self.replay);
            if !replay.is_empty() {
                for frame in replay {
                    self.write_notification(socket, frame).await?;
                }
                self.flush(socket).await?;
            }
            return Ok(());
        }
        // Most operations finish without waiting (a read of the memory store): polled once here,
        // such an operation is answered in this step instead of a later turn of the loop. One
        // that has to wait joins the others in flight, which poll it again from the start.
        let mut operation = self.operation(request);
        match std::future::poll_fn(|cx| Poll::Ready(operation.as_mut().poll(cx))).await {
            Poll::Ready(finished) => {
                let frame = answer(
                    &finished.correlation_id,
                    finished.action,
                    finished.started,
                    &finished.outcome,
                );
                self.write(socket, frame).await
            }
            Poll::Pending => {
                self.in_flight.push(operation);
                Ok(())
            }
        }
    }

    /// An operation as a future of this task, bounded by the request timeout.
    fn operation(&self, request: Request) -> Running {
        let handler = Arc::clone(&self.service.handler);
        let authentication = self.authentication.clone();
        let ctx = Ctx {
            request_id: request.correlation_id.to_string(),
            client_ip: self.client_ip,
            principal: None,
        };
        let limit = self.service.settings.request_timeout;
        let started = Instant::now();
        let idempotency = Arc::clone(&self.service.idempotency);
        let client_ip = self.client_ip;
        let Request {
            correlation_id,
            action,
            sent_at_ms,
            payload,
        } = request;
        Box::pin(async move {
            // A write runs at most once per correlationId of the caller, on any node.
            let write = WsRequest {
                authentication: &authentication,
                client_ip,
                correlation_id: &correlation_id,
                action,
                sent_at_ms,
            };
            let call = idempotency.dispatch_once(write, payload, |payload| {
                dispatch(&*handler, &authentication, ctx, action, payload)
            });
            let outcome = match timeout(limit, call).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    tracing::debug!(action = action.as_str(), "WebSocket request timed out");
                    Err(ApiError::Timeout)
                }
            };
            Finished {
                correlation_id,
                action,
                started,
                outcome,
            }
        })
    }

    /// Whether the session's access token (or its whole sign-in session) has been revoked
    /// since it was verified, e.g. by `logoutUser` over REST.
    fn credentials_revoked(&self) -> bool {
        match self.authentication.principal().map(|p| &p.credential) {
            Some(Credential::AccessToken {
                token_id,
                session_id,
                ..
            }) => self
                .service
                .authenticator
                .tokens()
                .is_revoked(token_id, session_id.as_deref()),
            _ => false,
        }
    }

    /// The earliest moment something is due: a heartbeat, a deadline, an expiry.
    fn next_deadline(&self) -> Instant {
        let settings = &self.service.settings;
        let mut next = (self.last_ping + settings.heartbeat_interval)
            .min(self.last_heard + settings.heartbeat_timeout);
        if !self.is_authenticated() {
            next = next.min(self.opened + settings.auth_deadline);
        } else if self.state == SessionState::Active {
            next = next.min(self.last_request + settings.inactive_after);
        }
        if self.subscriptions == 0 {
            next = next.min(self.last_request + settings.idle_timeout);
        }
        if let Some(expires_at) = self.expires_at {
            next = next.min(if self.expiry_warned {
                expires_at
            } else {
                expires_at
                    .checked_sub(settings.expiry_warning)
                    .unwrap_or(expires_at)
            });
        }
        next
    }

    /// Does what is due now.
    async fn on_tick(&mut self, socket: &mut Socket) -> Result<(), Ending> {
        let settings = self.service.settings;
        let now = Instant::now();
        if !self.is_authenticated() && now >= self.opened + settings.auth_deadline {
            return Err(Ending::Close(CloseCode::Policy, "authentication timeout"));
        }
        if now >= self.last_heard + settings.heartbeat_timeout {
            return Err(Ending::Close(
                CloseCode::Away,
                "no heartbeat from the client",
            ));
        }
        if self.subscriptions == 0 && now >= self.last_request + settings.idle_timeout {
            return Err(Ending::Close(CloseCode::Normal, "idle"));
        }
        if self.state == SessionState::Active && now >= self.last_request + settings.inactive_after
        {
            self.enter(SessionState::Inactive);
        }
        if let Some(expires_at) = self.expires_at {
            if now >= expires_at {
                let payload = json!({ "reason": "the access token expired" });
                self.write(
                    socket,
                    envelope::session_notification(Event::SessionExpired, &payload),
                )
                .await?;
                return Err(Ending::Close(CloseCode::Policy, "session expired"));
            }
            if !self.expiry_warned && now + settings.expiry_warning >= expires_at {
                self.expiry_warned = true;
                let left = expires_at.saturating_duration_since(now);
                let at = chrono::Utc::now()
                    + chrono::TimeDelta::from_std(left).unwrap_or(chrono::TimeDelta::zero());
                let payload = json!({
                    "expiresAt": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "secondsLeft": left.as_secs(),
                });
                self.write(
                    socket,
                    envelope::session_notification(Event::SessionExpiring, &payload),
                )
                .await?;
            }
        }
        if now >= self.last_ping + settings.heartbeat_interval {
            self.last_ping = now;
            if self.credentials_revoked() {
                let payload = json!({ "reason": "the access token was revoked" });
                self.write(
                    socket,
                    envelope::session_notification(Event::SessionExpired, &payload),
                )
                .await?;
                return Err(Ending::Close(CloseCode::Policy, "session revoked"));
            }
            self.feed(socket, Message::Ping(Bytes::new())).await?;
        }
        Ok(())
    }
}

/// The response frame of a request, recorded in the metrics.
fn answer(
    correlation_id: &Uuid,
    action: Action,
    started: Instant,
    outcome: &Result<Success, ApiError>,
) -> Bytes {
    let took = started.elapsed();
    match outcome {
        Ok(success) => {
            metrics::ws().request(action, None, took);
            envelope::success(correlation_id, &success.payload)
        }
        Err(error) => {
            metrics::ws().request(action, Some(error.code()), took);
            envelope::error(Some(&correlation_id.to_string()), error)
        }
    }
}

/// What woke the session.
enum Step {
    /// Nothing to do but the checks after every step (the shutdown signal).
    Nothing,
    Finished(Finished),
    Send(TextFrame),
    /// The outbox says the session is over.
    End(Ending),
    Frame(Option<Result<Message, WsError>>),
    Tick,
}

impl From<Received> for Step {
    fn from(received: Received) -> Self {
        match received {
            Received::Frame(frame) => Step::Send(frame),
            Received::Overflowed => Step::End(Ending::Close(
                CloseCode::Again,
                "too slow to keep up with notifications",
            )),
            Received::Closed => Step::End(Ending::Close(
                CloseCode::Error,
                "notification channel closed",
            )),
        }
    }
}

/// `timeout(limit, future)`, with the clock started only if the future does not complete at
/// once. Nearly every write does (the socket takes the frame), and reading the clock and
/// setting up a timer entry for each of them was a per-delivery cost of a fan-out that the
/// bare server does not pay. A write that has to wait gets the whole `limit` from then on.
async fn within<F: Future>(limit: Duration, future: F) -> Result<F::Output, Elapsed> {
    let mut future = pin!(future);
    if let Poll::Ready(output) = poll_fn(|context| Poll::Ready(future.as_mut().poll(context))).await
    {
        return Ok(output);
    }
    timeout(limit, future).await
}

/// The socket's next message, without a read attempt while the connection has nothing to read.
///
/// The socket attempts a read whenever it is polled, and tungstenite zero-fills its 4 KiB
/// read buffer before each attempt: a subscriber's task, woken for a notification, paid that on
/// its way back to sleep once per delivery. When tungstenite holds nothing the session has not
/// received ([`socket::Tracked::holds_nothing_unread`]), a read can only find something new if
/// the connection has it, which the TCP stream's readiness tells (registering the task's waker
/// as the read attempt would have).
fn next_message(
    socket: &mut Socket,
    received: u64,
) -> impl Future<Output = Option<Result<Message, WsError>>> + '_ {
    poll_fn(move |context| {
        let connection = socket.get_ref();
        if connection.holds_nothing_unread(received)
            && connection.poll_read_ready(context).is_pending()
        {
            return Poll::Pending;
        }
        socket.poll_next_unpin(context)
    })
}

/// The session's timer, polled only when it may be due.
///
/// A timer's deadline is hours or seconds away while its session wakes for every notification;
/// polling the `Sleep` on each of those turns checked the runtime, the task's budget and the
/// timer's waker every time. Once the `Sleep` has registered this task's waker it is polled
/// again only when it has fired (one atomic load tells) or the waker changed.
struct Alarm<'a> {
    sleep: Pin<&'a mut Sleep>,
    /// The waker the `Sleep` last registered, since its last reset.
    registered: Registered,
}

impl<'a> Alarm<'a> {
    fn new(sleep: Pin<&'a mut Sleep>) -> Self {
        Self {
            sleep,
            registered: Registered::default(),
        }
    }

    fn deadline(&self) -> Instant {
        self.sleep.deadline()
    }

    fn reset(&mut self, deadline: Instant) {
        self.sleep.as_mut().reset(deadline);
        self.registered = Registered::default();
    }
}

impl Future for Alarm<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let quiet = !this.sleep.is_elapsed();
        this.registered.poll(quiet, this.sleep.as_mut(), context)
    }
}

/// The waker a parked future last registered: lets a wrapper skip polling it again while
/// nothing it waits for can have happened ([`Alarm`], [`DrainSignal`]).
#[derive(Default)]
struct Registered(Option<Waker>);

impl Registered {
    /// Polls `future`, unless `quiet` (the wrapper's cheap check says nothing happened) and the
    /// task's waker is the one `future` registered last time.
    fn poll<F: Future<Output = ()> + ?Sized>(
        &mut self,
        quiet: bool,
        future: Pin<&mut F>,
        context: &mut Context<'_>,
    ) -> Poll<()> {
        if quiet
            && self
                .0
                .as_ref()
                .is_some_and(|waker| waker.will_wake(context.waker()))
        {
            return Poll::Pending;
        }
        let poll = future.poll(context);
        self.0 = poll.is_pending().then(|| context.waker().clone());
        poll
    }
}

/// Completes once the server starts draining (or its signal is gone).
///
/// The session's loop polls it on every turn. Polling tokio's `watch` future locks its list of
/// waiters each time, and the sessions of a node all share that list: a fan-out to 10,000
/// subscribers paid that lock twice per delivery. This polls the `watch` future only when the
/// value changed or the task's waker is not the one it registered, so a turn with nothing new
/// costs one atomic load.
struct DrainSignal<'a, F> {
    /// Read only for whether the value changed since the session started.
    peek: watch::Receiver<bool>,
    wait: Pin<&'a mut F>,
    /// The waker `wait` last registered, if it is waiting.
    registered: Registered,
}

/// What a [`DrainSignal`] waits on: the value turning `true`, or the sender going (the service
/// is gone: draining too).
async fn drained(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|draining| *draining).await;
}

impl<'a, F: Future<Output = ()>> DrainSignal<'a, F> {
    /// `wait` is [`drained`] of a clone of `shutdown`.
    fn new(shutdown: watch::Receiver<bool>, wait: Pin<&'a mut F>) -> Self {
        Self {
            peek: shutdown,
            wait,
            registered: Registered::default(),
        }
    }
}

impl<F: Future<Output = ()>> Future for DrainSignal<'_, F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let unchanged = matches!(this.peek.has_changed(), Ok(false));
        this.registered.poll(unchanged, this.wait.as_mut(), context)
    }
}

/// The clock of every session's message-rate limiter. A clock of its own per session would
/// probe the CPU (`cpuid`) for its time source at every connection; clones share one probe.
static SESSION_CLOCK: LazyLock<DefaultClock> = LazyLock::new(DefaultClock::default);

/// At most this many queued notification frames are written in one step before the loop looks
/// at the socket, the timers and the shutdown signal again.
const SEND_BATCH: usize = 64;

/// How long a closing session waits for the peer's close frame.
const CLOSE_HANDSHAKE_WAIT: Duration = Duration::from_secs(2);
