//! Topics: what a connection subscribes to, and what an event is addressed to.
//!
//! A topic is written as text on the wire (`subscribe`/`unsubscribe` payloads) and in the
//! serialized form of a notification, so parsing and printing are each other's inverse:
//! `pets`, `pet:{id}`, `orders`, `order:{id}`, `inventory`.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::operations::Scope;

/// A stream of events a connection can subscribe to.
///
/// `Pet(id)` and `Order(id)` are narrower views of `Pets` and `Orders`: an event about pet 5 is
/// addressed to both `pets` and `pet:5`, and a connection subscribed to both receives it once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Every pet: `pet.created`, `pet.updated`, `pet.deleted`.
    Pets,
    /// One pet, by id.
    Pet(i64),
    /// Every order: `order.placed`, `order.updated`, `order.deleted`.
    Orders,
    /// One order, by id.
    Order(i64),
    /// The counts of pets per status: `inventory.changed`.
    Inventory,
}

impl Topic {
    /// The permission a subscriber needs beyond being signed in, if any.
    ///
    /// Only what the topic name alone decides is answered here. Ownership of `order:{id}` (a
    /// customer may follow their own orders, `orders:manage` follows anyone's) depends on the
    /// store and the caller, so the handlers decide it when they authorize a subscription
    /// ([`Subscriptions`](crate::Subscriptions)).
    #[must_use]
    pub fn required_scope(&self) -> Option<Scope> {
        match self {
            Self::Orders => Some(Scope::OrdersManage),
            Self::Inventory => Some(Scope::InventoryRead),
            Self::Pets | Self::Pet(_) | Self::Order(_) => None,
        }
    }
}

/// Why a topic name was refused. The message is meant for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Not one of the known topic names.
    #[error(
        "unknown topic {0:?}; expected one of pets, pet:{{id}}, orders, order:{{id}}, inventory"
    )]
    Unknown(String),
    /// `pet:` or `order:` followed by something that is not a 64-bit integer id.
    #[error("topic {topic:?}: {id:?} is not a valid {kind} id (expected a positive integer)")]
    InvalidId {
        /// The topic as given.
        topic: String,
        /// The text after the colon.
        id: String,
        /// `pet` or `order`.
        kind: &'static str,
    },
}

impl FromStr for Topic {
    type Err = TopicError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "pets" => return Ok(Self::Pets),
            "orders" => return Ok(Self::Orders),
            "inventory" => return Ok(Self::Inventory),
            _ => {}
        }
        let (kind, make): (&'static str, fn(i64) -> Self) = match text.split_once(':') {
            Some(("pet", _)) => ("pet", Self::Pet),
            Some(("order", _)) => ("order", Self::Order),
            _ => return Err(TopicError::Unknown(text.to_owned())),
        };
        let id = &text[kind.len() + 1..];
        // Only the canonical spelling is accepted (no `+5`, `05` or `-0`): one topic, one name,
        // so the text a client subscribed with is the text it is listed and unsubscribed under.
        match id.parse::<i64>() {
            // Ids are positive (`EntityId` in openapi.yaml).
            Ok(parsed) if parsed >= 1 && parsed.to_string() == id => Ok(make(parsed)),
            _ => Err(TopicError::InvalidId {
                topic: text.to_owned(),
                id: id.to_owned(),
                kind,
            }),
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pets => f.write_str("pets"),
            Self::Pet(id) => write!(f, "pet:{id}"),
            Self::Orders => f.write_str("orders"),
            Self::Order(id) => write!(f, "order:{id}"),
            Self::Inventory => f.write_str("inventory"),
        }
    }
}

/// Topics travel as their text form (`"pet:5"`), the same as on the wire.
impl Serialize for Topic {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_parses_from_its_own_text() {
        let topics = [
            Topic::Pets,
            Topic::Pet(42),
            Topic::Pet(1),
            Topic::Pet(i64::MAX),
            Topic::Orders,
            Topic::Order(7),
            Topic::Inventory,
        ];
        for topic in topics {
            let text = topic.to_string();
            assert_eq!(text.parse::<Topic>(), Ok(topic.clone()), "{text}");
        }
        assert_eq!("pet:42".parse(), Ok(Topic::Pet(42)));
        assert_eq!("order:7".parse(), Ok(Topic::Order(7)));
        assert_eq!(Topic::Order(7).to_string(), "order:7");
    }

    #[test]
    fn unknown_names_are_refused_with_the_list_of_known_ones() {
        for text in [
            "",
            "pet",
            "Pets",
            "pets ",
            "users",
            "user:alice",
            ":5",
            "pets:5",
        ] {
            let error = text.parse::<Topic>().expect_err(text);
            assert_eq!(error, TopicError::Unknown(text.to_owned()));
            assert!(
                error.to_string().contains("pets, pet:{id}, orders"),
                "{error}"
            );
        }
    }

    #[test]
    fn ids_must_be_canonical_positive_integers() {
        for text in [
            "pet:0",
            "pet:-1",
            "order:0",
            "order:-7",
            "pet:",
            "pet:abc",
            "pet:1.5",
            "pet:+5",
            "pet:05",
            "pet:-0",
            "pet: 5",
            "order:99999999999999999999",
            "order:7:8",
        ] {
            let error = text.parse::<Topic>().expect_err(text);
            assert!(
                matches!(&error, TopicError::InvalidId { topic, .. } if topic == text),
                "{text}: {error:?}"
            );
        }
        let error = "order:x".parse::<Topic>().expect_err("not an id");
        assert_eq!(
            error.to_string(),
            "topic \"order:x\": \"x\" is not a valid order id (expected a positive integer)"
        );
    }

    #[test]
    fn only_orders_and_inventory_need_a_scope() {
        assert_eq!(Topic::Orders.required_scope(), Some(Scope::OrdersManage));
        assert_eq!(
            Topic::Inventory.required_scope(),
            Some(Scope::InventoryRead)
        );
        assert_eq!(Topic::Pets.required_scope(), None);
        assert_eq!(Topic::Pet(1).required_scope(), None);
        // Ownership of one order is the session's check, not a scope.
        assert_eq!(Topic::Order(1).required_scope(), None);
    }

    #[test]
    fn topics_serialize_as_their_text() {
        let json = serde_json::to_string(&[Topic::Pets, Topic::Order(3)]).expect("serializes");
        assert_eq!(json, r#"["pets","order:3"]"#);
        let back: Vec<Topic> = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, vec![Topic::Pets, Topic::Order(3)]);
        assert!(serde_json::from_str::<Topic>(r#""pet:x""#).is_err());
    }
}
