//! The local fan-out: this node's connections, what each follows, and a bounded outbox each.
//!
//! A transport (the WebSocket session) attaches a connection with an [`Outbox`] and keeps the
//! [`OutboxReceiver`], subscribes it to topics and tells the hub whom it is authenticated as.
//! [`Hub::deliver`] then puts a notification's frame into the outbox of every connection in its
//! audience. Delivery never waits: a connection whose outbox is full is marked as a slow
//! consumer, to be closed by its session, instead of slowing every other subscriber down.
//!
//! Subscriptions are indexed by topic and connections by owner, so a delivery touches only the
//! connections it is for. The registry sits behind one read/write lock: deliveries share it,
//! and subscription changes hold it exclusively for a few map operations. Nothing awaits while
//! holding it.

use std::{
    collections::{BTreeSet, HashMap, HashSet, VecDeque},
    future::poll_fn,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll, Waker},
};

use parking_lot::{Mutex, RwLock};

use super::{Audience, Notification, TextFrame, Topic};

/// Identifies a connection within one hub; see [`Hub::next_connection_id`].
pub type ConnectionId = u64;

/// Above this many slots an empty queue gives its buffer back, so that a connection that once
/// took a burst does not keep the memory for it while idle.
const KEEP_SLOTS: usize = 8;

/// The sending half of a connection's bounded queue of notification frames; the hub holds it.
///
/// Dropping it (detaching the connection) closes the queue: the receiver gets the frames still
/// queued, then `None`.
pub struct Outbox {
    shared: Arc<Shared>,
}

/// The receiving half, held by the connection's session, which writes the frames to its socket.
pub struct OutboxReceiver {
    shared: Arc<Shared>,
}

/// The queue of one connection.
///
/// A `VecDeque` behind a mutex rather than a channel: an idle connection's queue holds no buffer
/// at all (a bounded channel allocates a block of slots up front), and the queue grows only
/// while frames wait in it. The oldest frame waits inline, beside the lock: one event at a
/// time — the common case — the hub and the session then touch no memory of the queue but
/// this, which at 10,000 subscribers means a cache miss fewer on each side per delivery.
///
/// One task reads a queue (its session), and its waker is kept in the queue, under the lock
/// each push takes anyway, with a flag that says whether the reader waits ([`Queue::park`]): a
/// push wakes it, by reference, only then, and the waker stays for the next wait, which stores
/// nothing when it is the same task's (every wait of a session but its first). An
/// `AtomicWaker` here took the waker out on every wake-up and had it cloned back on every wait:
/// two more atomic steps on each side per delivery, on memory the other side had just written,
/// and a waker handed over by value each time. The reader waits for a frame, the overflow mark
/// and the end all at once ([`OutboxReceiver::next`]), so one waker serves all three.
struct Shared {
    queue: Mutex<Queue>,
    capacity: usize,
    overflowed: AtomicBool,
    /// Whether a frame is queued: written under the lock, read without it, so a reader finding
    /// its queue empty (twice per delivery on its way back to sleep: after taking the frame,
    /// and before parking) does not take the lock each push takes. Read after parking, it
    /// cannot miss a push: a push before the parking set it under the lock the parking took
    /// next; a push after it finds the reader parked and wakes it.
    nonempty: AtomicBool,
    /// Whether the sender is gone, set as the queue's `sender_gone` is, for the same readers.
    closed: AtomicBool,
}

struct Queue {
    /// The oldest frame waiting; `None` only when `rest` is empty too.
    first: Option<TextFrame>,
    /// The frames behind it, in order.
    rest: VecDeque<TextFrame>,
    /// The reader's waker from its latest wait, kept after it is woken (see [`Shared`]); a
    /// no-op one before the first wait and once the reader is gone.
    reader: Waker,
    /// Whether the reader waits for `reader` to be woken; the wake-up clears it.
    parked: bool,
    sender_gone: bool,
    receiver_gone: bool,
}

impl Queue {
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    fn push_back(&mut self, frame: TextFrame) {
        if self.first.is_none() {
            self.first = Some(frame);
        } else {
            self.rest.push_back(frame);
        }
    }

    fn pop_front(&mut self) -> Option<TextFrame> {
        let frame = self.first.take()?;
        self.first = self.rest.pop_front();
        if self.rest.is_empty() && self.rest.capacity() > KEEP_SLOTS {
            self.rest = VecDeque::new();
        }
        Some(frame)
    }

    /// Drops every frame and the buffer that held them.
    fn clear(&mut self) {
        self.first = None;
        self.rest = VecDeque::new();
    }

    /// Notes that the reader waits, to be woken through `waker`. `clone_from` keeps the waker
    /// it has when `will_wake` says it is the same task's.
    fn park(&mut self, waker: &Waker) {
        self.reader.clone_from(waker);
        self.parked = true;
    }

    /// Wakes the reader if it waits. Called with the lock held, which is what makes a push and
    /// a parking one after the other; waking by reference keeps the waker and only schedules
    /// the task (a tokio waker does not run it here), so the lock is not held for long.
    fn wake_reader(&mut self) {
        if std::mem::take(&mut self.parked) {
            self.reader.wake_by_ref();
        }
    }
}

/// What became of a frame pushed into an [`Outbox`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// It is queued for the connection.
    Queued,
    /// The queue was full, now or earlier: the frame is dropped and the connection is marked as
    /// overflowed.
    Overflowed,
    /// The receiver is gone (the session ended); the frame is dropped.
    Closed,
}

impl Shared {
    /// See [`Outbox::push`].
    fn push(&self, frame: TextFrame) -> Push {
        let mut queue = self.queue.lock();
        if queue.receiver_gone {
            return Push::Closed;
        }
        if self.overflowed.load(Ordering::Acquire) {
            return Push::Overflowed;
        }
        if queue.len() >= self.capacity {
            self.overflowed.store(true, Ordering::Release);
            queue.wake_reader();
            return Push::Overflowed;
        }
        queue.push_back(frame);
        self.nonempty.store(true, Ordering::Release);
        queue.wake_reader();
        Push::Queued
    }
}

/// What the hub's topic index holds for a subscriber: the way into its outbox, so a delivery
/// pushes without looking the connection up. Dropping it does not close the outbox (only
/// dropping the [`Outbox`] does).
struct Route(Arc<Shared>);

impl Outbox {
    /// A queue of at most `capacity` frames (at least 1), and its receiving half.
    #[must_use]
    pub fn new(capacity: usize) -> (Outbox, OutboxReceiver) {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                first: None,
                rest: VecDeque::new(),
                reader: Waker::noop().clone(),
                parked: false,
                sender_gone: false,
                receiver_gone: false,
            }),
            capacity: capacity.max(1),
            overflowed: AtomicBool::new(false),
            nonempty: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        (
            Outbox {
                shared: Arc::clone(&shared),
            },
            OutboxReceiver { shared },
        )
    }

    /// Queues a frame without waiting.
    ///
    /// When the queue is full the connection is marked as overflowed (a slow consumer) and the
    /// frame is dropped. Dropping it loses nothing the client could still have received in
    /// order: an overflowed connection is closed by its session with 1013 (try again later),
    /// and the client resubscribes and reads the current state. For the same reason every
    /// later frame is dropped too, even once the queue has room again: a connection that
    /// missed an event must not carry on as if it had not.
    pub fn push(&self, frame: TextFrame) -> Push {
        self.shared.push(frame)
    }

    /// A handle the hub's indexes hold to push into this outbox without closing it when they
    /// drop it.
    fn route(&self) -> Route {
        Route(Arc::clone(&self.shared))
    }

    /// Whether the connection has been marked as a slow consumer.
    #[must_use]
    pub fn is_overflowed(&self) -> bool {
        self.shared.overflowed.load(Ordering::Acquire)
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let mut queue = self.shared.queue.lock();
        queue.sender_gone = true;
        self.shared.closed.store(true, Ordering::Release);
        queue.wake_reader();
    }
}

impl OutboxReceiver {
    /// What comes next: the overflow mark (ahead of any frame still queued: the session closes
    /// the connection), else the next frame, else the end once the outbox is dropped and every
    /// queued frame has been received.
    ///
    /// Cancellation-safe: a frame is taken off the queue only in the step that returns it, so
    /// using this in `tokio::select!` loses nothing, and the mark stays, so it is returned
    /// again. One task waits at a time (the session): a second waiter would take the first
    /// one's place.
    pub async fn next(&self) -> Received {
        poll_fn(|context| self.poll_next(context)).await
    }

    /// [`OutboxReceiver::next`] as a poll: parks the task's waker when nothing is there.
    pub fn poll_next(&self, context: &mut Context<'_>) -> Poll<Received> {
        self.poll_until(context, || self.ready())
    }

    /// `Ready` with what `check` finds, else `Pending` with the reader parked until the next
    /// push, overflow or close.
    fn poll_until<T>(&self, context: &mut Context<'_>, check: impl Fn() -> Option<T>) -> Poll<T> {
        if let Some(ready) = check() {
            return Poll::Ready(ready);
        }
        self.shared.queue.lock().park(context.waker());
        // Checked again after parking: a push between the first check and the parking found
        // no reader to wake.
        check().map_or(Poll::Pending, Poll::Ready)
    }

    fn ready(&self) -> Option<Received> {
        if self.is_overflowed() {
            return Some(Received::Overflowed);
        }
        match self.try_recv() {
            Ok(frame) => Some(Received::Frame(frame)),
            Err(TryRecvError::Closed) => Some(Received::Closed),
            Err(TryRecvError::Empty) => None,
        }
    }

    /// The next frame, whether or not the connection is marked as overflowed; `None` once the
    /// outbox is dropped and every queued frame has been received. Cancellation-safe, as
    /// [`OutboxReceiver::next`].
    pub async fn recv(&self) -> Option<TextFrame> {
        poll_fn(|context| self.poll_until(context, || self.poll_frame())).await
    }

    /// A frame or the end, or `None` if neither is there yet.
    fn poll_frame(&self) -> Option<Option<TextFrame>> {
        match self.try_recv() {
            Ok(frame) => Some(Some(frame)),
            Err(TryRecvError::Closed) => Some(None),
            Err(TryRecvError::Empty) => None,
        }
    }

    /// The next frame if one is queued.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] when no frame is queued, [`TryRecvError::Closed`] when none
    /// ever will be again (the outbox was dropped).
    pub fn try_recv(&self) -> Result<TextFrame, TryRecvError> {
        if !self.shared.nonempty.load(Ordering::Acquire)
            && !self.shared.closed.load(Ordering::Acquire)
        {
            return Err(TryRecvError::Empty);
        }
        let mut queue = self.shared.queue.lock();
        let frame = queue.pop_front();
        if queue.first.is_none() {
            self.shared.nonempty.store(false, Ordering::Relaxed);
        }
        match frame {
            Some(frame) => Ok(frame),
            None if queue.sender_gone => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Whether the connection has been marked as a slow consumer.
    #[must_use]
    pub fn is_overflowed(&self) -> bool {
        self.shared.overflowed.load(Ordering::Acquire)
    }

    /// How many frames are waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shared.queue.lock().len()
    }

    /// Whether no frame is waiting.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        let mut queue = self.shared.queue.lock();
        queue.receiver_gone = true;
        // Nobody will read them; free them now rather than when the hub detaches. The waker
        // goes too: it holds the session's task, which holds this receiver.
        queue.clear();
        queue.reader = Waker::noop().clone();
        queue.parked = false;
        self.shared.nonempty.store(false, Ordering::Relaxed);
    }
}

/// What [`OutboxReceiver::next`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// The next frame.
    Frame(TextFrame),
    /// The connection has been marked as a slow consumer: its session is to close it.
    Overflowed,
    /// The outbox was dropped (the connection detached) and every frame has been received.
    Closed,
}

/// Why [`OutboxReceiver::try_recv`] returned no frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// None is queued right now.
    #[error("no frame is queued")]
    Empty,
    /// None ever will be: the outbox was dropped.
    #[error("the outbox is closed")]
    Closed,
}

/// What [`Hub::deliver`] did with one notification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Connections the frame was queued for.
    pub delivered: usize,
    /// Connections in the audience that are slow consumers: the frame was dropped for them and
    /// their sessions are closing them.
    pub overflowed: usize,
}

/// This node's connections and their subscriptions.
///
/// Shared as `Arc<Hub>` by the event bus (which delivers) and the WebSocket sessions (which
/// attach, subscribe and detach). All methods take `&self` and are safe to call concurrently.
#[derive(Default)]
pub struct Hub {
    registry: RwLock<Registry>,
    next_id: AtomicU64,
    /// The sequence number of the last notification delivered (see [`Hub::subscribe_from`]).
    /// Written only while the registry's read lock is held by the delivery, read under its
    /// write lock, so a registration falls wholly before or after each delivery.
    horizon: AtomicU64,
}

/// The client's own position in a topic it resumes: the hub does not deliver it the events at
/// or before it (the client saw them, maybe through another node).
type Floors = HashMap<Topic, (Arc<str>, u64)>;

#[derive(Default)]
struct Registry {
    connections: HashMap<ConnectionId, Connection>,
    /// Each topic's subscribers with the way into their outboxes: a delivery to a topic walks
    /// one map and touches each subscriber's outbox, not its [`Connection`] as well.
    by_topic: HashMap<Topic, HashMap<ConnectionId, Route>>,
    by_owner: HashMap<String, HashSet<ConnectionId>>,
    /// Connections with floors (see [`Connection::floors`]); while there are none, a delivery
    /// to a topic does not look connections up at all.
    resuming: usize,
}

struct Connection {
    outbox: Outbox,
    owner: Option<String>,
    topics: BTreeSet<Topic>,
    /// Only for connections that resumed a topic, so idle connections pay one pointer.
    floors: Option<Box<Floors>>,
}

impl Hub {
    /// A hub without connections.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A connection id not handed out before by this hub.
    pub fn next_connection_id(&self) -> ConnectionId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a connection, without subscriptions or owner. Attaching an id that is already
    /// attached replaces that connection: its outbox closes and its subscriptions go.
    pub fn attach(&self, id: ConnectionId, outbox: Outbox) {
        let replaced = {
            let mut registry = self.registry.write();
            let replaced = registry.remove(id);
            registry.connections.insert(
                id,
                Connection {
                    outbox,
                    owner: None,
                    topics: BTreeSet::new(),
                    floors: None,
                },
            );
            replaced
        };
        // The replaced outbox closes outside the lock.
        drop(replaced);
    }

    /// Unregisters a connection with its subscriptions; its outbox closes. Returns whether it
    /// was attached.
    pub fn detach(&self, id: ConnectionId) -> bool {
        let removed = self.registry.write().remove(id);
        removed.is_some()
    }

    /// Sets whom the connection is authenticated as (the principal's `owner_key`), or `None`
    /// for an anonymous one; [`Audience::User`] notifications go to it by this. Returns whether
    /// the connection is attached.
    pub fn set_owner(&self, id: ConnectionId, owner: Option<String>) -> bool {
        let mut guard = self.registry.write();
        let registry = &mut *guard;
        let Some(connection) = registry.connections.get_mut(&id) else {
            return false;
        };
        if connection.owner == owner {
            return true;
        }
        if let Some(old) = connection.owner.take() {
            remove_from(&mut registry.by_owner, &old, id);
        }
        if let Some(new) = &owner {
            registry.by_owner.entry(new.clone()).or_default().insert(id);
        }
        connection.owner = owner;
        true
    }

    /// Subscribes a connection to a topic. Returns whether the subscription is new (`false` if
    /// it already existed or the connection is not attached).
    ///
    /// The hub does not authorize: the session checks the topic against its caller first.
    pub fn subscribe(&self, id: ConnectionId, topic: Topic) -> bool {
        let mut guard = self.registry.write();
        let registry = &mut *guard;
        let Some(connection) = registry.connections.get_mut(&id) else {
            return false;
        };
        if !connection.topics.insert(topic.clone()) {
            return false;
        }
        let route = connection.outbox.route();
        registry
            .by_topic
            .entry(topic)
            .or_default()
            .insert(id, route);
        true
    }

    /// Subscribes a connection to several topics at once, each with the client's own position
    /// in it if it resumes it, and returns the hub's horizon: the sequence number of the last
    /// notification delivered before the subscriptions took effect (every later one is
    /// delivered to the connection, except those at or before the client's positions). `None`
    /// if the connection is not attached.
    pub fn subscribe_from(
        &self,
        id: ConnectionId,
        topics: impl IntoIterator<Item = (Topic, Option<(Arc<str>, u64)>)>,
    ) -> Option<u64> {
        let mut guard = self.registry.write();
        let registry = &mut *guard;
        let connection = registry.connections.get_mut(&id)?;
        for (topic, floor) in topics {
            if let Some(floor) = floor {
                if connection.floors.is_none() {
                    registry.resuming += 1;
                }
                connection
                    .floors
                    .get_or_insert_with(Box::default)
                    .insert(topic.clone(), floor);
            }
            if connection.topics.insert(topic.clone()) {
                let route = connection.outbox.route();
                registry
                    .by_topic
                    .entry(topic)
                    .or_default()
                    .insert(id, route);
            }
        }
        Some(self.horizon.load(Ordering::Acquire))
    }

    /// Forgets the client's positions in these topics (a `subscribe` that failed after setting
    /// them).
    pub fn clear_floors<'t>(&self, id: ConnectionId, topics: impl IntoIterator<Item = &'t Topic>) {
        let mut registry = self.registry.write();
        if let Some(floors) = registry
            .connections
            .get_mut(&id)
            .and_then(|connection| connection.floors.as_mut())
        {
            for topic in topics {
                floors.remove(topic);
            }
        }
    }

    /// Ends a subscription. Returns whether there was one.
    pub fn unsubscribe(&self, id: ConnectionId, topic: &Topic) -> bool {
        let mut guard = self.registry.write();
        let registry = &mut *guard;
        let Some(connection) = registry.connections.get_mut(&id) else {
            return false;
        };
        if !connection.topics.remove(topic) {
            return false;
        }
        if let Some(floors) = &mut connection.floors {
            floors.remove(topic);
        }
        remove_route(&mut registry.by_topic, topic, id);
        true
    }

    /// The topics a connection follows, in order (empty if it is not attached).
    #[must_use]
    pub fn topics(&self, id: ConnectionId) -> Vec<Topic> {
        self.registry
            .read()
            .connections
            .get(&id)
            .map(|connection| connection.topics.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many connections are attached.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.registry.read().connections.len()
    }

    /// Whether any connection follows `topic`: publishers skip building payloads nobody gets.
    #[must_use]
    pub fn has_subscribers(&self, topic: &Topic) -> bool {
        self.registry.read().by_topic.contains_key(topic)
    }

    /// Queues the notification's frame for every connection in its audience, each once.
    ///
    /// The frame is rendered once (if anyone receives it) and every connection gets a clone of
    /// the same buffer; nothing is allocated per connection.
    pub fn deliver(&self, notification: &Notification) -> Delivery {
        let registry = self.registry.read();
        let seq = notification.seq();
        if seq > 0 {
            self.horizon.store(seq, Ordering::Release);
        }
        let mut fan_out = FanOut {
            registry: &registry,
            notification,
            frame: None,
            delivery: Delivery::default(),
        };
        match notification.audience() {
            Audience::Topics(topics) => {
                for (index, topic) in topics.iter().enumerate() {
                    let Some(subscribers) = registry.by_topic.get(topic) else {
                        continue;
                    };
                    let earlier = &topics[..index];
                    for (id, route) in subscribers {
                        // A connection following several of the topics got the frame with the
                        // first of them.
                        let already = earlier.iter().any(|topic| {
                            registry
                                .by_topic
                                .get(topic)
                                .is_some_and(|earlier| earlier.contains_key(id))
                        });
                        if !already {
                            fan_out.push_route(*id, route);
                        }
                    }
                }
            }
            Audience::User(owner) => {
                if let Some(connections) = registry.by_owner.get(owner) {
                    for id in connections {
                        fan_out.push(*id);
                    }
                }
            }
        }
        fan_out.delivery
    }
}

/// One delivery in progress.
struct FanOut<'a> {
    registry: &'a Registry,
    notification: &'a Notification,
    frame: Option<TextFrame>,
    delivery: Delivery,
}

impl FanOut<'_> {
    /// Delivers to a subscriber of a topic, unless its client saw the event already.
    fn push_route(&mut self, id: ConnectionId, route: &Route) {
        if self.registry.resuming > 0
            && let Some(floors) = self
                .registry
                .connections
                .get(&id)
                .and_then(|connection| connection.floors.as_deref())
            && seen_before(floors, self.notification)
        {
            return;
        }
        self.send(&route.0);
    }

    /// Delivers to an attached connection (events addressed to a user have no floors).
    fn push(&mut self, id: ConnectionId) {
        if let Some(connection) = self.registry.connections.get(&id) {
            self.send(&connection.outbox.shared);
        }
    }

    fn send(&mut self, outbox: &Shared) {
        let frame = self
            .frame
            .get_or_insert_with(|| self.notification.frame())
            .clone();
        match outbox.push(frame) {
            Push::Queued => self.delivery.delivered += 1,
            Push::Overflowed => self.delivery.overflowed += 1,
            Push::Closed => {}
        }
    }
}

/// Whether the client of a connection with these floors saw `notification` already.
fn seen_before(floors: &Floors, notification: &Notification) -> bool {
    let (Some(stamp), Audience::Topics(topics)) = (notification.stamp(), notification.audience())
    else {
        return false;
    };
    topics.iter().zip(&stamp.offsets).any(|(topic, offset)| {
        floors
            .get(topic)
            .is_some_and(|(epoch, floor)| *epoch == stamp.epoch && offset <= floor)
    })
}

impl Registry {
    /// Takes a connection out of every index; returns it so it can be dropped after the lock.
    fn remove(&mut self, id: ConnectionId) -> Option<Connection> {
        let connection = self.connections.remove(&id)?;
        for topic in &connection.topics {
            remove_route(&mut self.by_topic, topic, id);
        }
        if connection.floors.is_some() {
            self.resuming -= 1;
        }
        if let Some(owner) = &connection.owner {
            remove_from(&mut self.by_owner, owner, id);
        }
        Some(connection)
    }
}

/// Removes `id` from the set under `key`, and the set when it becomes empty: `pet:{id}` topics
/// come and go, and their keys must not pile up.
fn remove_from<K, Q>(index: &mut HashMap<K, HashSet<ConnectionId>>, key: &Q, id: ConnectionId)
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(set) = index.get_mut(key) {
        set.remove(&id);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

/// [`remove_from`] for the topic index.
fn remove_route<K, Q>(
    index: &mut HashMap<K, HashMap<ConnectionId, Route>>,
    key: &Q,
    id: ConnectionId,
) where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(routes) = index.get_mut(key) {
        routes.remove(&id);
        if routes.is_empty() {
            index.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{thread, time::Duration};

    use bytes::Bytes;

    use super::*;
    use crate::events::Event;

    /// A hang guard for awaits that must complete; never a timing assertion.
    const GUARD: Duration = Duration::from_secs(10);

    fn pet_updated(id: i64) -> Notification {
        Notification::new(
            Event::PetUpdated,
            Audience::Topics(vec![Topic::Pets, Topic::Pet(id)]),
            Bytes::from(format!(r#"{{"id":{id},"name":"Rex","photoUrls":[]}}"#)),
        )
    }

    fn for_user(owner: &str) -> Notification {
        Notification::new(
            Event::UserUpdated,
            Audience::User(owner.to_owned()),
            Bytes::from_static(br#"{"username":"alice"}"#),
        )
    }

    /// Attaches a connection with a roomy outbox, subscribed to `topics`.
    fn connect(hub: &Hub, topics: &[Topic]) -> (ConnectionId, OutboxReceiver) {
        let id = hub.next_connection_id();
        let (outbox, receiver) = Outbox::new(64);
        hub.attach(id, outbox);
        for topic in topics {
            assert!(hub.subscribe(id, topic.clone()));
        }
        (id, receiver)
    }

    /// Every frame queued for a connection right now.
    fn drain(receiver: &OutboxReceiver) -> Vec<TextFrame> {
        let mut frames = Vec::new();
        while let Ok(frame) = receiver.try_recv() {
            frames.push(frame);
        }
        frames
    }

    #[test]
    fn a_connection_following_several_topics_of_an_event_gets_it_once() {
        let hub = Hub::new();
        let (_, both) = connect(&hub, &[Topic::Pets, Topic::Pet(5)]);
        let (_, all_pets) = connect(&hub, &[Topic::Pets]);
        let (_, just_five) = connect(&hub, &[Topic::Pet(5)]);
        let (_, other_pet) = connect(&hub, &[Topic::Pet(6)]);
        let (_, orders) = connect(&hub, &[Topic::Orders]);

        let notification = pet_updated(5);
        let delivery = hub.deliver(&notification);

        assert_eq!(
            delivery,
            Delivery {
                delivered: 3,
                overflowed: 0
            }
        );
        for receiver in [&both, &all_pets, &just_five] {
            let frames = drain(receiver);
            assert_eq!(frames, vec![notification.frame()]);
            // The very same buffer, not a copy per subscriber.
            assert_eq!(frames[0].as_ptr(), notification.frame().as_ptr());
        }
        assert!(drain(&other_pet).is_empty());
        assert!(drain(&orders).is_empty());
    }

    /// `pet_updated(5)` placed at sequence `seq`, offset `offset` in both its topics.
    fn placed(seq: u64, offset: u64, epoch: &str) -> Notification {
        pet_updated(5).stamped(crate::events::Stamp {
            seq,
            epoch: Arc::from(epoch),
            offsets: vec![offset, offset],
        })
    }

    #[test]
    fn a_resuming_connection_is_not_sent_what_it_saw_and_learns_the_horizon() {
        let hub = Hub::new();
        hub.deliver(&placed(7, 3, "e"));
        let id = hub.next_connection_id();
        let (outbox, receiver) = Outbox::new(64);
        hub.attach(id, outbox);
        // The client saw offset 5 of `pet:5` (through a node that was ahead of this one).
        let horizon = hub.subscribe_from(id, [(Topic::Pet(5), Some((Arc::from("e"), 5)))]);
        assert_eq!(
            horizon,
            Some(7),
            "the last sequence delivered before the subscription"
        );
        for (seq, offset) in [(8, 4), (9, 5), (10, 6)] {
            hub.deliver(&placed(seq, offset, "e"));
        }
        let offsets = |frames: Vec<TextFrame>| -> Vec<u64> {
            frames
                .iter()
                .map(|frame| {
                    let value: serde_json::Value = serde_json::from_slice(frame).expect("JSON");
                    value["positions"]["pet:5"].as_u64().expect("placed")
                })
                .collect()
        };
        assert_eq!(offsets(drain(&receiver)), [6]);
        // Offsets of another history are not comparable: delivered.
        hub.deliver(&placed(1, 1, "f"));
        assert_eq!(offsets(drain(&receiver)), [1]);
        // A failed subscribe's floors go; an unattached connection has no horizon.
        hub.clear_floors(id, [&Topic::Pet(5)]);
        hub.deliver(&placed(11, 2, "e"));
        assert_eq!(drain(&receiver).len(), 1);
        assert_eq!(hub.subscribe_from(id + 1, [(Topic::Pets, None)]), None);
        // Deliveries look floors up only while some connection has them.
        assert_eq!(hub.registry.read().resuming, 1);
        assert!(hub.detach(id));
        assert_eq!(hub.registry.read().resuming, 0);
    }

    #[test]
    fn a_topic_listed_twice_in_an_audience_delivers_once() {
        let hub = Hub::new();
        let (_, receiver) = connect(&hub, &[Topic::Pets]);
        let notification = Notification::new(
            Event::PetDeleted,
            Audience::Topics(vec![Topic::Pets, Topic::Pets]),
            Bytes::from_static(br#"{"id":1}"#),
        );
        assert_eq!(hub.deliver(&notification).delivered, 1);
        assert_eq!(drain(&receiver).len(), 1);
    }

    #[test]
    fn subscriptions_are_listed_and_end_with_unsubscribe() {
        let hub = Hub::new();
        let (id, receiver) = connect(&hub, &[Topic::Pet(5), Topic::Inventory]);
        assert!(!hub.subscribe(id, Topic::Pet(5)), "already subscribed");
        assert!(hub.subscribe(id, Topic::Pets));
        assert_eq!(
            hub.topics(id),
            vec![Topic::Pets, Topic::Pet(5), Topic::Inventory]
        );

        assert!(hub.unsubscribe(id, &Topic::Pets));
        assert!(!hub.unsubscribe(id, &Topic::Pets), "no longer subscribed");
        assert!(hub.unsubscribe(id, &Topic::Pet(5)));
        assert_eq!(hub.topics(id), vec![Topic::Inventory]);
        assert!(!hub.has_subscribers(&Topic::Pet(5)));
        assert!(hub.has_subscribers(&Topic::Inventory));

        assert_eq!(hub.deliver(&pet_updated(5)), Delivery::default());
        assert!(drain(&receiver).is_empty());
    }

    #[tokio::test]
    async fn a_detached_connection_gets_its_queued_frames_then_the_end() {
        let hub = Hub::new();
        let (id, receiver) = connect(&hub, &[Topic::Pets]);
        hub.set_owner(id, Some("alice".to_owned()));
        let (_, _other) = connect(&hub, &[]);
        assert_eq!(hub.connections(), 2);
        let notification = pet_updated(1);
        hub.deliver(&notification);

        assert!(hub.detach(id));
        assert!(!hub.detach(id), "already detached");
        assert_eq!(hub.connections(), 1);
        assert!(hub.topics(id).is_empty());
        assert!(!hub.subscribe(id, Topic::Pets), "not attached");
        assert!(!hub.set_owner(id, None), "not attached");
        assert!(!hub.has_subscribers(&Topic::Pets));
        assert_eq!(hub.deliver(&pet_updated(2)), Delivery::default());
        assert_eq!(hub.deliver(&for_user("alice")), Delivery::default());

        let queued = tokio::time::timeout(GUARD, receiver.recv()).await;
        assert_eq!(queued, Ok(Some(notification.frame())));
        let end = tokio::time::timeout(GUARD, receiver.recv()).await;
        assert_eq!(end, Ok(None));
        assert_eq!(receiver.try_recv(), Err(TryRecvError::Closed));
    }

    #[test]
    fn attaching_an_id_again_replaces_the_connection() {
        let hub = Hub::new();
        let (id, old) = connect(&hub, &[Topic::Pets]);
        let (outbox, new) = Outbox::new(4);
        hub.attach(id, outbox);
        assert_eq!(hub.connections(), 1);
        assert!(hub.topics(id).is_empty());
        assert_eq!(old.try_recv(), Err(TryRecvError::Closed));
        assert!(hub.subscribe(id, Topic::Pets));
        assert_eq!(hub.deliver(&pet_updated(1)).delivered, 1);
        assert_eq!(drain(&new).len(), 1);
    }

    #[test]
    fn user_notifications_go_to_every_connection_of_that_owner_only() {
        let hub = Hub::new();
        let (alice_phone, phone) = connect(&hub, &[]);
        let (alice_laptop, laptop) = connect(&hub, &[Topic::Pets]);
        let (bob, bobs) = connect(&hub, &[]);
        let (_, anonymous) = connect(&hub, &[]);
        assert!(hub.set_owner(alice_phone, Some("alice".to_owned())));
        assert!(hub.set_owner(alice_laptop, Some("alice".to_owned())));
        assert!(hub.set_owner(bob, Some("bob".to_owned())));

        let notification = for_user("alice");
        assert_eq!(hub.deliver(&notification).delivered, 2);
        assert_eq!(drain(&phone), vec![notification.frame()]);
        assert_eq!(drain(&laptop), vec![notification.frame()]);
        assert!(drain(&bobs).is_empty());
        assert!(drain(&anonymous).is_empty());

        // Signing out (or in as someone else) moves the connection.
        assert!(hub.set_owner(alice_laptop, None));
        assert!(hub.set_owner(alice_phone, Some("bob".to_owned())));
        assert_eq!(hub.deliver(&for_user("alice")), Delivery::default());
        assert_eq!(hub.deliver(&for_user("bob")).delivered, 2);
        assert_eq!(drain(&phone).len(), 1);
        assert_eq!(drain(&bobs).len(), 1);
        assert!(drain(&laptop).is_empty());
    }

    #[tokio::test]
    async fn a_full_outbox_marks_its_connection_overflowed() {
        let hub = Hub::new();
        let id = hub.next_connection_id();
        let (outbox, receiver) = Outbox::new(2);
        hub.attach(id, outbox);
        hub.subscribe(id, Topic::Pets);
        let (_, fast) = connect(&hub, &[Topic::Pets]);

        // The session waits before anything is queued.
        let waiter = tokio::spawn(async move {
            let received = receiver.next().await;
            (received, receiver)
        });
        tokio::task::yield_now().await;

        let first = pet_updated(1);
        assert_eq!(hub.deliver(&first).delivered, 2);
        assert_eq!(hub.deliver(&pet_updated(2)).delivered, 2);
        let third = hub.deliver(&pet_updated(3));
        assert_eq!(
            third,
            Delivery {
                delivered: 1,
                overflowed: 1
            }
        );
        let (received, receiver) = tokio::time::timeout(GUARD, waiter)
            .await
            .expect("next() completed")
            .expect("the waiting task did not panic");
        // The mark comes ahead of the frames still queued: the session closes the connection.
        assert_eq!(received, Received::Overflowed);
        assert!(receiver.is_overflowed());
        // And again, however often it is asked.
        assert_eq!(
            tokio::time::timeout(GUARD, receiver.next()).await,
            Ok(Received::Overflowed)
        );

        // Once marked, nothing more is queued, even with room again: the session is closing
        // the connection (1013), and it must not carry on with a gap.
        assert_eq!(receiver.try_recv(), Ok(first.frame()));
        assert_eq!(
            hub.deliver(&pet_updated(4)),
            Delivery {
                delivered: 1,
                overflowed: 1
            }
        );
        assert_eq!(drain(&receiver).len(), 1);
        assert_eq!(drain(&fast).len(), 4);
    }

    #[tokio::test]
    async fn next_is_cancellation_safe_in_a_select() {
        let (outbox, receiver) = Outbox::new(1);
        // A `next` dropped unfinished (another branch won) takes nothing.
        let other_branch_won = tokio::select! {
            biased;
            _ = receiver.next() => false,
            () = std::future::ready(()) => true,
        };
        assert!(other_branch_won);
        assert_eq!(outbox.push(TextFrame::from_static("1")), Push::Queued);
        let got = tokio::time::timeout(GUARD, receiver.next()).await;
        assert_eq!(got, Ok(Received::Frame(TextFrame::from_static("1"))));
        assert_eq!(outbox.push(TextFrame::from_static("2")), Push::Queued);
        assert_eq!(outbox.push(TextFrame::from_static("3")), Push::Overflowed);
        assert!(outbox.is_overflowed());
        let marked = tokio::time::timeout(GUARD, receiver.next()).await;
        assert_eq!(marked, Ok(Received::Overflowed));
        // The frame queued before the mark is still there (only the mark is reported first).
        assert_eq!(receiver.try_recv(), Ok(TextFrame::from_static("2")));
    }

    #[tokio::test]
    async fn next_wakes_up_for_a_frame_then_for_the_end() {
        let (outbox, receiver) = Outbox::new(4);
        let reader = tokio::spawn(async move {
            let first = receiver.next().await;
            let second = receiver.next().await;
            (first, second)
        });
        tokio::task::yield_now().await;
        assert_eq!(outbox.push(TextFrame::from_static("hello")), Push::Queued);
        tokio::task::yield_now().await;
        drop(outbox);
        let (first, second) = tokio::time::timeout(GUARD, reader)
            .await
            .expect("next woke up")
            .expect("the reader did not panic");
        assert_eq!(first, Received::Frame(TextFrame::from_static("hello")));
        assert_eq!(second, Received::Closed);
    }

    #[tokio::test]
    async fn recv_wakes_up_for_a_frame_pushed_while_it_waits() {
        let (outbox, receiver) = Outbox::new(4);
        let reader = tokio::spawn(async move {
            let frame = receiver.recv().await;
            (frame, receiver)
        });
        tokio::task::yield_now().await;
        assert_eq!(outbox.push(TextFrame::from_static("hello")), Push::Queued);
        let (frame, receiver) = tokio::time::timeout(GUARD, reader)
            .await
            .expect("recv woke up")
            .expect("the reader did not panic");
        assert_eq!(frame, Some(TextFrame::from_static("hello")));
        assert!(receiver.is_empty());
    }

    #[test]
    fn a_push_racing_with_its_reader_parking_wakes_it() {
        // Each frame is pushed the moment the reader has counted the one before, while it is
        // on its way back to waiting: the push and the parking race on every frame. A wake-up
        // lost once leaves the reader waiting for good, and the guard fails the test.
        const FRAMES: u64 = 5_000;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let (outbox, receiver) = Outbox::new(1);
        let counted = Arc::new(AtomicU64::new(0));
        let reader = runtime.spawn({
            let counted = Arc::clone(&counted);
            async move {
                loop {
                    match receiver.next().await {
                        Received::Frame(_) => counted.fetch_add(1, Ordering::Release),
                        other => return other,
                    };
                }
            }
        });
        for sent in 1..=FRAMES {
            assert_eq!(outbox.push(TextFrame::from_static("x")), Push::Queued);
            let guard = std::time::Instant::now() + GUARD;
            while counted.load(Ordering::Acquire) < sent {
                assert!(
                    std::time::Instant::now() < guard,
                    "frame {sent} was queued but its reader was not woken"
                );
                thread::yield_now();
            }
        }
        drop(outbox);
        let end = runtime.block_on(async { tokio::time::timeout(GUARD, reader).await });
        assert!(matches!(end, Ok(Ok(Received::Closed))), "{end:?}");
    }

    #[test]
    fn frames_for_a_gone_receiver_are_not_counted() {
        let hub = Hub::new();
        let (_, receiver) = connect(&hub, &[Topic::Pets]);
        drop(receiver);
        assert_eq!(hub.deliver(&pet_updated(1)), Delivery::default());
    }

    #[test]
    fn ten_thousand_subscribers_each_receive_one_event() {
        const SUBSCRIBERS: usize = 10_000;
        let hub = Hub::new();
        let receivers: Vec<OutboxReceiver> = (0..SUBSCRIBERS)
            .map(|index| {
                // Half follow every pet, half just this one, a tenth both.
                let topics: &[Topic] = match index % 10 {
                    0 => &[Topic::Pets, Topic::Pet(9)],
                    1..=5 => &[Topic::Pets],
                    _ => &[Topic::Pet(9)],
                };
                connect(&hub, topics).1
            })
            .collect();
        let (_, bystander) = connect(&hub, &[Topic::Pet(10)]);

        let notification = pet_updated(9);
        let delivery = hub.deliver(&notification);

        assert_eq!(
            delivery,
            Delivery {
                delivered: SUBSCRIBERS,
                overflowed: 0
            }
        );
        let frame = notification.frame();
        for receiver in &receivers {
            let frames = drain(receiver);
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].as_ptr(), frame.as_ptr());
        }
        assert!(drain(&bystander).is_empty());
    }

    #[test]
    fn connections_come_and_go_while_events_are_delivered() {
        const EVENTS: usize = 500;
        const CHURNERS: usize = 4;
        const ROUNDS: usize = 300;
        let hub = Arc::new(Hub::new());
        // Attached for the whole test, with room for every event: each must get every one.
        let stable: Vec<OutboxReceiver> = (0..8)
            .map(|_| {
                let id = hub.next_connection_id();
                let (outbox, receiver) = Outbox::new(EVENTS);
                hub.attach(id, outbox);
                hub.subscribe(id, Topic::Pets);
                hub.set_owner(id, Some("alice".to_owned()));
                receiver
            })
            .collect();

        let churners: Vec<_> = (0..CHURNERS)
            .map(|_| {
                let hub = Arc::clone(&hub);
                thread::spawn(move || {
                    for round in 0..ROUNDS {
                        let id = hub.next_connection_id();
                        let (outbox, receiver) = Outbox::new(4);
                        hub.attach(id, outbox);
                        hub.subscribe(id, Topic::Pets);
                        hub.subscribe(id, Topic::Pet(i64::try_from(round).unwrap_or(0)));
                        hub.set_owner(id, Some("alice".to_owned()));
                        let _ = receiver.try_recv();
                        hub.unsubscribe(id, &Topic::Pets);
                        assert!(hub.detach(id));
                    }
                })
            })
            .collect();
        let deliverer = {
            let hub = Arc::clone(&hub);
            thread::spawn(move || {
                for index in 0..EVENTS {
                    let id = i64::try_from(index).unwrap_or(0);
                    if index % 2 == 0 {
                        hub.deliver(&pet_updated(id));
                    } else {
                        hub.deliver(&for_user("alice"));
                    }
                }
            })
        };
        for churner in churners {
            churner.join().expect("a churning thread panicked");
        }
        deliverer.join().expect("the delivering thread panicked");

        assert_eq!(hub.connections(), stable.len());
        for receiver in &stable {
            assert_eq!(drain(receiver).len(), EVENTS);
            assert!(!receiver.is_overflowed());
        }
        // Nothing of the churned connections is left in the indexes.
        let registry = hub.registry.read();
        assert_eq!(registry.by_topic.len(), 1);
        assert_eq!(
            registry.by_topic.get(&Topic::Pets).map(HashMap::len),
            Some(8)
        );
        assert_eq!(registry.by_owner.get("alice").map(HashSet::len), Some(8));
    }
}
