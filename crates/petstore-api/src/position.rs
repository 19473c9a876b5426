//! Positions in a topic's stream of events, and what `subscribe` answers about recovering from
//! one (`asyncapi.yaml`: `StreamPosition`, `SubscribePayload`, `SubscribedPayload`).
//!
//! Every event is numbered in each topic it is addressed to: `offset` counts the topic's events
//! (1, 2, 3, … with no gaps), `epoch` names the history those numbers belong to and changes when
//! that history is lost (an embedded server restarted, Redis flushed). A client keeps the last
//! position it saw per topic and hands it back to `subscribe` after a reconnect; the server
//! replays what it missed, or says why it cannot.

use serde::{Deserialize, Serialize};

use crate::Topic;

/// The last event a client saw in one topic: `{topic, offset, epoch}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamPosition {
    /// The topic.
    pub topic: Topic,
    /// The topic's offset of that event; 0 before the topic's first event.
    #[serde(deserialize_with = "offset")]
    pub offset: u64,
    /// The history the offset belongs to.
    pub epoch: String,
}

/// An offset, refused with a message that names it (serde's own says only "expected u64").
fn offset<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = serde_json::Number::deserialize(deserializer)?;
    value.as_u64().ok_or_else(|| {
        serde::de::Error::custom(format!(
            "`offset` must be a whole number from 0 (the last offset seen), not {value}"
        ))
    })
}

/// The `subscribe` payload: topics to follow and, for some of them, where to resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribePayload {
    /// The topics to follow.
    pub topics: Vec<String>,
    /// For topics among `topics`: the last position the client saw; the events after it are
    /// replayed before live ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub since: Vec<StreamPosition>,
}

/// Why the events after a position could not be replayed; the client re-reads what it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotRecovered {
    /// The position belongs to a history that is gone (the server restarted, Redis was flushed).
    EpochChanged,
    /// Some of the events after the position are no longer kept (older than the history's age
    /// or beyond its length).
    TooOld,
}

impl NotRecovered {
    /// The wire name: `epoch_changed`, `too_old`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EpochChanged => "epoch_changed",
            Self::TooOld => "too_old",
        }
    }
}

/// Where one topic stands for a session that just subscribed to it, and, if the client asked to
/// resume it, whether that worked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicPosition {
    /// The topic.
    pub topic: Topic,
    /// The offset of the last event before the live ones this session will receive (after the
    /// replayed ones, if any).
    pub offset: u64,
    /// The topic's current history.
    pub epoch: String,
    /// Present when the client gave a position for this topic: whether every event after it
    /// follows this answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
    /// How many events are replayed after this answer, when `recovered` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<u64>,
    /// Why not, when `recovered` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<NotRecovered>,
}

/// The `subscribe` answer: every topic the session follows, and the position of each topic of
/// this request. The replayed events, if any, follow it as notifications, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribedPayload {
    /// Every topic the session follows now.
    pub topics: Vec<Topic>,
    /// One entry per topic of the request, in the request's order. (Absent from the answers
    /// of servers that number no events: read as none.)
    #[serde(default)]
    pub positions: Vec<TopicPosition>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_subscribe_payload_reads_positions_and_refuses_bad_ones() {
        let payload: SubscribePayload = serde_json::from_value(json!({
            "topics": ["pets"],
            "since": [{"topic": "pets", "offset": 12, "epoch": "e1"}],
        }))
        .expect("valid");
        assert_eq!(
            payload.since,
            vec![StreamPosition {
                topic: Topic::Pets,
                offset: 12,
                epoch: "e1".to_owned()
            }]
        );
        for bad in [
            json!({"topics": ["pets"], "since": [{"topic": "pets", "offset": -1, "epoch": "e"}]}),
            json!({"topics": ["pets"], "since": [{"topic": "pet:x", "offset": 1, "epoch": "e"}]}),
            json!({"topics": ["pets"], "since": [{"topic": "pets", "offset": 1}]}),
            json!({"topics": ["pets"], "since": [{"topic": "pets", "offset": 1, "epoch": "e", "x": 1}]}),
        ] {
            assert!(
                serde_json::from_value::<SubscribePayload>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_topic_position_names_its_reason_in_snake_case() {
        let position = TopicPosition {
            topic: Topic::Pet(5),
            offset: 9,
            epoch: "e".to_owned(),
            recovered: Some(false),
            replayed: None,
            reason: Some(NotRecovered::TooOld),
        };
        assert_eq!(
            serde_json::to_value(&position).expect("serializes"),
            json!({"topic": "pet:5", "offset": 9, "epoch": "e", "recovered": false, "reason": "too_old"})
        );
        assert_eq!(NotRecovered::EpochChanged.as_str(), "epoch_changed");
    }
}
