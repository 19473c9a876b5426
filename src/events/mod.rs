//! Domain events: facts the handlers publish after a successful write, fanned out to the
//! subscribers of every transport.
//!
//! ```text
//! handlers ─► EventBus::publish(Notification) ─► Hub::deliver ─► Outbox per connection ─► socket
//!             (local: straight to the hub;         (index by topic   (bounded; a full one marks
//!              Redis: through pub/sub to every      and by owner)     the connection as slow)
//!              node's hub)
//! ```
//!
//! - [`Topic`]: what a connection subscribes to (`pets`, `pet:5`, …) and what an event is
//!   addressed to.
//! - [`Notification`]: one event with its audience and its payload, already JSON; it renders the
//!   notification envelope once, as a [`TextFrame`], and every subscriber is handed the same
//!   bytes.
//! - [`EventBus`]: where handlers publish; [`LocalEventBus`] delivers to this node's [`Hub`],
//!   [`RedisEventBus`] to every node's hub through Redis pub/sub.
//! - [`Hub`]: the connections of this node, indexed by topic and by owner.
//!
//! Which topics a caller may subscribe to is decided by the WebSocket session, not here.

mod bus;
#[cfg(test)]
mod conformance;
pub mod history;
mod hub;
mod redis_bus;

use std::{
    borrow::Cow,
    collections::HashMap,
    ops::Deref,
    sync::{Arc, OnceLock},
};

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::IgnoredAny};
use uuid::Uuid;

pub use bus::{EventBus, LocalEventBus};
pub use history::{HistorySettings, RecoverError, Resume, TopicRecovery};
pub use hub::{ConnectionId, Delivery, Hub, Outbox, OutboxReceiver, Push, Received, TryRecvError};
pub use petstore_api::{Topic, TopicError};
pub use redis_bus::{BusStats, RedisEventBus};

pub use petstore_api::ws::Event;

/// Who receives a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    /// Every connection subscribed to any of these topics, each connection once however many of
    /// them it follows.
    Topics(Vec<Topic>),
    /// Every connection authenticated as this owner (the principal's `owner_key`), subscribed
    /// or not: news about a user's own account needs no subscription.
    User(String),
}

/// One event as it is delivered: what happened, to whom it goes and its payload.
///
/// The payload is JSON text, usually an entity's pre-rendered JSON (`Stored::json`), so
/// publishing serializes nothing. The notification envelope around it is rendered on first use
/// by [`Notification::frame`] and then shared: a fan-out to 10,000 connections renders it once
/// and hands each of them a reference-counted clone.
///
/// The fields are read-only so that the cached frame always matches them.
#[derive(Debug, Clone)]
pub struct Notification {
    id: Uuid,
    event: Event,
    timestamp_ms: i64,
    audience: Audience,
    payload: Bytes,
    version: Option<EntityVersion>,
    stamp: Option<Stamp>,
    frame: OnceLock<TextFrame>,
}

/// Where the bus placed a notification: its number in the bus's one sequence (what a node
/// delivers in order, and fills gaps in) and its offset in each of its topics' streams, under
/// the history's epoch (see [`petstore_api::StreamPosition`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The bus-wide sequence number: 1, 2, 3, … for every event the bus publishes.
    pub seq: u64,
    /// The history the offsets belong to.
    pub epoch: Arc<str>,
    /// The offset in each topic of the audience, in the audience's order (empty for an event
    /// addressed to a user: those have no stream).
    pub offsets: Vec<u64>,
}

/// Which entity an event reports and the store's version of it after the write (the store's
/// commit sequence number, increasing for every write of the entity, deletion included).
///
/// Two concurrent writes of one entity commit in one order but may reach the bus in the other;
/// the bus publishes an event only if its version is newer than the last one it published for
/// that entity, so subscribers never see an older state after a newer one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityVersion {
    /// `pet:5`, `order:7`, `user:alice`: the entity's kind and key.
    pub entity: String,
    /// The store's version of it after the write this event reports.
    pub version: u64,
}

impl Notification {
    /// A notification of `event` happening now, under a fresh id.
    ///
    /// `payload` must be JSON text (it is embedded in the envelope as it is); an empty payload
    /// is sent as `null`.
    #[must_use]
    pub fn new(event: Event, audience: Audience, payload: Bytes) -> Self {
        Self::from_parts(
            Uuid::new_v4(),
            event,
            chrono::Utc::now().timestamp_millis(),
            audience,
            payload,
        )
    }

    /// A notification with a given id and time: one read back from a bus, or a test's.
    ///
    /// `payload` must be JSON text, as for [`Notification::new`].
    #[must_use]
    pub fn from_parts(
        id: Uuid,
        event: Event,
        timestamp_ms: i64,
        audience: Audience,
        payload: Bytes,
    ) -> Self {
        let payload = if payload.is_empty() {
            Bytes::from_static(b"null")
        } else {
            payload
        };
        Self {
            id,
            event,
            timestamp_ms,
            audience,
            payload,
            version: None,
            stamp: None,
            frame: OnceLock::new(),
        }
    }

    /// This notification, placed by the bus at `stamp`. The frame is rendered afresh.
    #[must_use]
    pub fn stamped(mut self, stamp: Stamp) -> Self {
        self.stamp = Some(stamp);
        self.frame = OnceLock::new();
        self
    }

    /// Where the bus placed it, once published.
    #[must_use]
    pub fn stamp(&self) -> Option<&Stamp> {
        self.stamp.as_ref()
    }

    /// The bus-wide sequence number, 0 before the bus placed it.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.stamp.as_ref().map_or(0, |stamp| stamp.seq)
    }

    /// Its offset in `topic`, if it is addressed to `topic` and placed.
    #[must_use]
    pub fn offset_in(&self, topic: &Topic) -> Option<u64> {
        let stamp = self.stamp.as_ref()?;
        let Audience::Topics(topics) = &self.audience else {
            return None;
        };
        let index = topics.iter().position(|candidate| candidate == topic)?;
        stamp.offsets.get(index).copied()
    }

    /// This notification, reporting `version` of `entity` (see [`EntityVersion`]).
    #[must_use]
    pub fn versioned(mut self, entity: impl Into<String>, version: u64) -> Self {
        self.version = Some(EntityVersion {
            entity: entity.into(),
            version,
        });
        self
    }

    /// The entity and version it reports, if it reports one.
    #[must_use]
    pub fn version(&self) -> Option<&EntityVersion> {
        self.version.as_ref()
    }

    /// The notification's id, sent as the envelope's `correlationId`.
    #[must_use]
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// What happened.
    #[must_use]
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// When it was published, in milliseconds since the Unix epoch.
    #[must_use]
    pub fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    /// Who receives it.
    #[must_use]
    pub fn audience(&self) -> &Audience {
        &self.audience
    }

    /// The payload, JSON text.
    #[must_use]
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The notification envelope, the text of the WebSocket frame:
    /// `{"type":"notification","correlationId":"…","timestamp":…,"event":"pet.created",
    /// "epoch":"…","positions":{"pets":12,"pet:5":3},"payload":…}` (`epoch` and `positions` once
    /// the bus has placed an event addressed to topics).
    ///
    /// Rendered on the first call, without parsing or re-serializing the payload; later calls
    /// (and clones of this notification made after the first call) return the same buffer.
    #[must_use]
    pub fn frame(&self) -> TextFrame {
        self.frame.get_or_init(|| self.render_frame()).clone()
    }

    fn render_frame(&self) -> TextFrame {
        const HEAD: &str = r#"{"type":"notification","correlationId":""#;
        const TIMESTAMP: &str = r#"","timestamp":"#;
        const EVENT: &str = r#","event":""#;
        const PAYLOAD: &str = r#","payload":"#;
        let mut uuid = Uuid::encode_buffer();
        let id = self.id.hyphenated().encode_lower(&mut uuid);
        let timestamp = self.timestamp_ms.to_string();
        // Event names are the spec's dotted lower-case identifiers: nothing to escape (a test
        // checks every one of them).
        let event = self.event.as_str();
        let positions = self.render_positions();
        // Checked here, once per event, so that no connection has to check its copy. A payload
        // that is not UTF-8 breaks the constructors' contract (a publisher's bug): sending it
        // as it is would make every client close its connection (1007), so the bytes that are
        // not UTF-8 are replaced and the bug is logged.
        let payload = String::from_utf8_lossy(&self.payload);
        if let Cow::Owned(_) = payload {
            tracing::error!(
                event = event,
                "a notification payload is not UTF-8; invalid bytes replaced"
            );
        }
        let mut out = String::with_capacity(
            HEAD.len()
                + id.len()
                + TIMESTAMP.len()
                + timestamp.len()
                + EVENT.len()
                + event.len()
                + 1
                + positions.len()
                + PAYLOAD.len()
                + payload.len()
                + 1,
        );
        out.push_str(HEAD);
        out.push_str(id);
        out.push_str(TIMESTAMP);
        out.push_str(&timestamp);
        out.push_str(EVENT);
        out.push_str(event);
        out.push('"');
        out.push_str(&positions);
        out.push_str(PAYLOAD);
        out.push_str(&payload);
        out.push('}');
        TextFrame::from(out)
    }
}

/// A notification frame as every connection receiving it is sent it: the envelope's JSON text,
/// rendered once per event and shared (a clone counts a reference; the bytes are not copied).
///
/// It is UTF-8 by construction: made from a `String` or a `&'static str`, never from bytes
/// nobody checked. A transport can therefore send it as a text message as it is, where checking
/// each connection's copy would check the same bytes 10,000 times in a fan-out to 10,000
/// subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TextFrame(Bytes);

impl TextFrame {
    /// A frame of static text.
    #[must_use]
    pub const fn from_static(text: &'static str) -> Self {
        Self(Bytes::from_static(text.as_bytes()))
    }

    /// The frame's bytes (UTF-8), sharing its buffer.
    #[must_use]
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl From<String> for TextFrame {
    fn from(text: String) -> Self {
        Self(Bytes::from(text))
    }
}

impl Deref for TextFrame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for TextFrame {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Notification {
    /// `,"epoch":"…","positions":{"pets":12,"pet:5":3}`, or nothing for an unplaced notification
    /// or one addressed to a user. Topic names and epochs need no escaping: topics are `[a-z]+(:[0-9]+)?`
    /// and the buses make epochs of letters, digits and dashes.
    fn render_positions(&self) -> String {
        use std::fmt::Write as _;
        let (Some(stamp), Audience::Topics(topics)) = (&self.stamp, &self.audience) else {
            return String::new();
        };
        if stamp.offsets.is_empty() {
            return String::new();
        }
        let mut out = format!(r#","epoch":"{}","positions":{{"#, stamp.epoch);
        for (index, (topic, offset)) in topics.iter().zip(&stamp.offsets).enumerate() {
            let comma = if index == 0 { "" } else { "," };
            let _ = write!(out, r#"{comma}"{topic}":{offset}"#);
        }
        out.push('}');
        out
    }
}

/// Equal when every field is; whether the frame has been rendered yet does not matter.
impl PartialEq for Notification {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.event == other.event
            && self.timestamp_ms == other.timestamp_ms
            && self.audience == other.audience
            && self.payload == other.payload
            && self.version == other.version
            && self.stamp == other.stamp
    }
}

/// The serialized form of a notification, for a bus between nodes:
/// `{"id":"…","event":"pet.created","timestamp":…,"audience":{"topics":["pets","pet:5"]},"payload":"…"}`.
///
/// The payload travels as a JSON string holding its text, so it arrives byte for byte as it
/// was published (a parsed and re-rendered value could reorder keys).
#[derive(Serialize)]
struct WireOut<'a> {
    id: Uuid,
    event: &'a str,
    timestamp: i64,
    audience: &'a Audience,
    payload: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a EntityVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    positions: Option<HashMap<&'a Topic, u64>>,
}

#[derive(Deserialize)]
struct WireIn<'a> {
    id: Uuid,
    #[serde(borrow)]
    event: Cow<'a, str>,
    timestamp: i64,
    audience: Audience,
    #[serde(borrow)]
    payload: Cow<'a, str>,
    #[serde(default)]
    version: Option<EntityVersion>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default, borrow)]
    epoch: Option<Cow<'a, str>>,
    #[serde(default)]
    positions: Option<HashMap<Topic, u64>>,
}

impl Serialize for Notification {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let payload = std::str::from_utf8(&self.payload).map_err(|error| {
            serde::ser::Error::custom(format!("the payload is not UTF-8 JSON text: {error}"))
        })?;
        WireOut {
            id: self.id,
            event: self.event.as_str(),
            timestamp: self.timestamp_ms,
            audience: &self.audience,
            payload,
            version: self.version.as_ref(),
            seq: self.stamp.as_ref().map(|stamp| stamp.seq),
            epoch: self.stamp.as_ref().map(|stamp| &*stamp.epoch),
            positions: match (&self.stamp, &self.audience) {
                (Some(stamp), Audience::Topics(topics)) if !stamp.offsets.is_empty() => {
                    Some(topics.iter().zip(stamp.offsets.iter().copied()).collect())
                }
                _ => None,
            },
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Notification {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let wire = WireIn::deserialize(deserializer)?;
        let event = Event::from_name(&wire.event)
            .ok_or_else(|| D::Error::custom(format!("unknown event {:?}", wire.event)))?;
        // The payload is embedded in every subscriber's frame as it is; a corrupt one must not
        // reach them. Checking it walks the text without building anything.
        serde_json::from_str::<IgnoredAny>(&wire.payload)
            .map_err(|error| D::Error::custom(format!("the payload is not JSON: {error}")))?;
        let mut notification = Self::from_parts(
            wire.id,
            event,
            wire.timestamp,
            wire.audience,
            Bytes::from(wire.payload.into_owned()),
        );
        notification.version = wire.version;
        if let (Some(seq), Some(epoch)) = (wire.seq, wire.epoch) {
            let offsets = match (&notification.audience, wire.positions) {
                (Audience::Topics(topics), Some(positions)) => topics
                    .iter()
                    .map(|topic| {
                        positions.get(topic).copied().ok_or_else(|| {
                            D::Error::custom(format!("no position for topic {topic}"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => Vec::new(),
            };
            notification.stamp = Some(Stamp {
                seq,
                epoch: Arc::from(epoch.as_ref()),
                offsets,
            });
        }
        Ok(notification)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn pet_created() -> Notification {
        Notification::from_parts(
            Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            Event::PetCreated,
            1_700_000_000_123,
            Audience::Topics(vec![Topic::Pets, Topic::Pet(5)]),
            Bytes::from_static(br#"{"id":5,"name":"Rex","photoUrls":[],"status":"available"}"#),
        )
    }

    #[test]
    fn the_frame_is_the_notification_envelope_around_the_raw_payload() {
        let notification = pet_created();
        let frame = notification.frame();
        let text = std::str::from_utf8(&frame).expect("UTF-8");
        // The payload is embedded byte for byte, not re-rendered.
        assert!(
            text.ends_with(
                r#","payload":{"id":5,"name":"Rex","photoUrls":[],"status":"available"}}"#
            ),
            "{text}"
        );
        let parsed: Value = serde_json::from_slice(&frame).expect("the frame is JSON");
        assert_eq!(
            parsed,
            json!({
                "type": "notification",
                "correlationId": "01234567-89ab-cdef-0123-456789abcdef",
                "timestamp": 1_700_000_000_123_i64,
                "event": "pet.created",
                "payload": {"id": 5, "name": "Rex", "photoUrls": [], "status": "available"},
            })
        );
    }

    #[test]
    fn a_placed_notification_carries_its_epoch_and_positions_per_topic() {
        let notification = pet_created().stamped(Stamp {
            seq: 7,
            epoch: Arc::from("e-1"),
            offsets: vec![12, 3],
        });
        assert_eq!(notification.offset_in(&Topic::Pets), Some(12));
        assert_eq!(notification.offset_in(&Topic::Pet(5)), Some(3));
        assert_eq!(notification.offset_in(&Topic::Pet(6)), None);
        let parsed: Value = serde_json::from_slice(&notification.frame()).expect("JSON");
        assert_eq!(parsed["epoch"], "e-1");
        assert_eq!(parsed["positions"], json!({"pets": 12, "pet:5": 3}));
        assert_eq!(parsed["payload"]["id"], 5);
        // An event addressed to a user has no stream, hence no position.
        let user = Notification::new(
            Event::UserDeleted,
            Audience::User("a".to_owned()),
            Bytes::new(),
        )
        .stamped(Stamp {
            seq: 8,
            epoch: Arc::from("e-1"),
            offsets: Vec::new(),
        });
        let parsed: Value = serde_json::from_slice(&user.frame()).expect("JSON");
        assert!(parsed.get("positions").is_none() && parsed.get("epoch").is_none());
    }

    #[test]
    fn a_payload_that_is_not_utf8_is_sent_with_its_invalid_bytes_replaced() {
        let notification = Notification::new(
            Event::PetCreated,
            Audience::Topics(vec![Topic::Pets]),
            Bytes::from_static(b"{\"name\":\"R\xffx\"}"),
        );
        let frame = notification.frame();
        let text = std::str::from_utf8(&frame).expect("every frame is UTF-8");
        assert!(
            text.ends_with("\"payload\":{\"name\":\"R\u{fffd}x\"}}"),
            "{text}"
        );
    }

    #[test]
    fn the_frame_is_rendered_once_and_shared() {
        let notification = pet_created();
        let first = notification.frame();
        let second = notification.frame();
        assert_eq!(first.as_ptr(), second.as_ptr());
        // A clone made afterwards shares the rendered frame too.
        assert_eq!(notification.clone().frame().as_ptr(), first.as_ptr());
    }

    #[test]
    fn an_empty_payload_is_sent_as_null() {
        let notification = Notification::new(
            Event::InventoryChanged,
            Audience::Topics(vec![Topic::Inventory]),
            Bytes::new(),
        );
        let parsed: Value = serde_json::from_slice(&notification.frame()).expect("JSON");
        assert_eq!(parsed["payload"], Value::Null);
        assert_eq!(parsed["event"], "inventory.changed");
        assert_eq!(
            parsed["correlationId"],
            notification.id().hyphenated().to_string()
        );
    }

    #[test]
    fn every_event_name_needs_no_escaping_in_the_frame() {
        for event in Event::ALL {
            let name = event.as_str();
            assert!(
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte)),
                "{name}"
            );
            let notification =
                Notification::new(event, Audience::User("alice".to_owned()), Bytes::new());
            let parsed: Value = serde_json::from_slice(&notification.frame()).expect("JSON");
            assert_eq!(parsed["event"], name);
        }
    }

    #[test]
    fn notifications_round_trip_through_their_serialized_form() {
        let notifications = [
            pet_created(),
            Notification::new(
                Event::UserDeleted,
                Audience::User("alice".to_owned()),
                Bytes::from_static(br#"{"username":"alice"}"#),
            )
            .versioned("user:alice", 42),
            pet_created().stamped(Stamp {
                seq: 7,
                epoch: Arc::from("e-1"),
                offsets: vec![12, 3],
            }),
        ];
        for notification in notifications {
            let json = serde_json::to_string(&notification).expect("serializes");
            let back: Notification = serde_json::from_str(&json).expect("deserializes");
            assert_eq!(back, notification);
            assert_eq!(back.frame(), notification.frame());
        }
        let json = serde_json::to_value(pet_created()).expect("serializes");
        assert_eq!(
            json,
            json!({
                "id": "01234567-89ab-cdef-0123-456789abcdef",
                "event": "pet.created",
                "timestamp": 1_700_000_000_123_i64,
                "audience": {"topics": ["pets", "pet:5"]},
                "payload": r#"{"id":5,"name":"Rex","photoUrls":[],"status":"available"}"#,
            })
        );
    }

    #[test]
    fn corrupt_serialized_notifications_are_refused() {
        let valid = serde_json::to_value(pet_created()).expect("serializes");
        let mut unknown_event = valid.clone();
        unknown_event["event"] = json!("pet.exploded");
        let mut bad_payload = valid.clone();
        bad_payload["payload"] = json!("{\"id\":");
        let mut bad_topic = valid;
        bad_topic["audience"] = json!({"topics": ["pet:x"]});
        for (value, expected) in [
            (unknown_event, "unknown event"),
            (bad_payload, "the payload is not JSON"),
            (bad_topic, "not a valid pet id"),
        ] {
            let error = serde_json::from_value::<Notification>(value).expect_err(expected);
            assert!(error.to_string().contains(expected), "{error}");
        }
    }
}
