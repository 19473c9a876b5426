//! Pets and orders as MCP resources: `petstore://pet/{petId}` and `petstore://order/{orderId}`.
//!
//! A resource is read through the operation that reads it over REST (`getPetById`,
//! `getOrderById`), with the same validation, authorization and ownership, and the URI's
//! variable named as that operation's parameter. Following a resource is following its event
//! topic (`pet:{id}`, `order:{id}`), authorized by the handlers like a WebSocket `subscribe`;
//! the hub's notification frames are turned back into the URI they are about.

use rmcp::model::{ErrorCode, ErrorData, ResourceTemplate};
use serde::Deserialize;
use serde_json::{Value, json};

use petstore_api::{ApiError, Topic, ws::Action};

/// The scheme of every resource URI.
const SCHEME: &str = "petstore://";

/// The kinds of resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A pet.
    Pet,
    /// An order.
    Order,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::Pet, Kind::Order];

    /// The URI segment after the scheme, and the prefix of the kind's events (`pet.updated`).
    fn name(self) -> &'static str {
        match self {
            Kind::Pet => "pet",
            Kind::Order => "order",
        }
    }

    /// The operation that reads one.
    fn read(self) -> Action {
        match self {
            Kind::Pet => Action::GetPetById,
            Kind::Order => Action::GetOrderById,
        }
    }

    /// The name of the read operation's parameter, which is the template's variable.
    fn parameter(self) -> &'static str {
        match self {
            Kind::Pet => "petId",
            Kind::Order => "orderId",
        }
    }
}

/// A resource named by a URI.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// What it is.
    pub kind: Kind,
    /// The id as written in the URI (checked by the read operation, like a path segment).
    id: String,
}

impl Resource {
    /// The resource a URI names.
    ///
    /// # Errors
    /// `-32602` (invalid params) for a URI of neither template.
    pub fn parse(uri: &str) -> Result<Self, ErrorData> {
        let unknown = || {
            ErrorData::invalid_params(
                format!(
                    "unknown resource `{uri}`: expected {SCHEME}pet/{{petId}} or \
                     {SCHEME}order/{{orderId}}"
                ),
                None,
            )
        };
        let rest = uri.strip_prefix(SCHEME).ok_or_else(unknown)?;
        let (kind, id) = rest.split_once('/').ok_or_else(unknown)?;
        let kind = Kind::ALL
            .into_iter()
            .find(|candidate| candidate.name() == kind)
            .ok_or_else(unknown)?;
        if id.is_empty() || id.contains('/') {
            return Err(unknown());
        }
        Ok(Self {
            kind,
            id: id.to_owned(),
        })
    }

    /// The operation that reads it, and its payload: the id under the parameter's name (a
    /// number when it is one; the operation refuses anything that is not a valid id, as REST
    /// does a path segment).
    pub fn read(&self) -> (Action, Value) {
        let id = self
            .id
            .parse::<i64>()
            .map_or_else(|_| json!(self.id), |id| json!(id));
        (self.kind.read(), json!({ self.kind.parameter(): id }))
    }

    /// The event topic that follows it.
    ///
    /// # Errors
    /// `-32602` for an id that is not one (as reading it would answer).
    pub fn topic(&self) -> Result<Topic, ErrorData> {
        format!("{}:{}", self.kind.name(), self.id)
            .parse::<Topic>()
            .map_err(|error| ErrorData::invalid_params(error.to_string(), None))
    }
}

/// The URI of the resource a topic follows (`pet:5` → `petstore://pet/5`).
pub fn uri_of_topic(topic: &Topic) -> Option<String> {
    match topic {
        Topic::Pet(id) => Some(uri(Kind::Pet, *id)),
        Topic::Order(id) => Some(uri(Kind::Order, *id)),
        Topic::Pets | Topic::Orders | Topic::Inventory => None,
    }
}

fn uri(kind: Kind, id: i64) -> String {
    format!("{SCHEME}{}/{id}", kind.name())
}

/// The URI a hub notification frame is about: `pet.*` and `order.*` events carry the entity (or,
/// when deleted, its id) with its `id`.
pub fn uri_of_frame(frame: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Frame {
        event: String,
        payload: Option<Entity>,
    }
    #[derive(Deserialize)]
    struct Entity {
        id: Option<i64>,
    }
    let frame: Frame = serde_json::from_slice(frame).ok()?;
    let (kind, _) = frame.event.split_once('.')?;
    let kind = Kind::ALL
        .into_iter()
        .find(|candidate| candidate.name() == kind)?;
    Some(uri(kind, frame.payload?.id?))
}

/// The resource templates.
pub fn templates() -> Vec<ResourceTemplate> {
    let template = |kind: Kind, title: &str, description: &str| {
        ResourceTemplate::new(
            format!("{SCHEME}{}/{{{}}}", kind.name(), kind.parameter()),
            kind.name(),
        )
        .with_title(title)
        .with_description(description)
        .with_mime_type("application/json")
    };
    vec![
        template(
            Kind::Pet,
            "A pet",
            "A pet of the store, as getPetById answers it. Subscribe to be told when it changes.",
        ),
        template(
            Kind::Order,
            "An order",
            "An order, as getOrderById answers it (customers read only their own). Subscribe to \
             be told when it changes.",
        ),
    ]
}

/// An operation's error as the JSON-RPC error of a resource request, with the `ErrorResponse`
/// as its data: `-32002` (resource not found, as MCP asks) for `NOT_FOUND`, `-32602` (invalid
/// params) for bad input, `-32603` (internal error) for the server's failures and `-32600`
/// (invalid request) for what the caller may not do (`UNAUTHORIZED`, `FORBIDDEN`,
/// `RATE_LIMITED`).
pub fn protocol_error(error: &ApiError) -> ErrorData {
    let body = error.to_body();
    let code = match error.status() {
        404 => ErrorCode::RESOURCE_NOT_FOUND,
        400 | 422 => ErrorCode::INVALID_PARAMS,
        401 | 403 | 429 => ErrorCode::INVALID_REQUEST,
        _ => ErrorCode::INTERNAL_ERROR,
    };
    let message = format!("{}: {}", error.code(), body.message);
    ErrorData::new(code, message, serde_json::to_value(&body).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_pets_and_orders_by_the_read_operations_parameter() {
        let pet = Resource::parse("petstore://pet/5");
        assert!(
            matches!(&pet, Ok(resource) if resource.read() == (Action::GetPetById, json!({"petId": 5})))
        );
        let order = Resource::parse("petstore://order/7");
        assert!(
            matches!(&order, Ok(resource) if resource.read() == (Action::GetOrderById, json!({"orderId": 7})))
        );
        assert!(matches!(pet.map(|pet| pet.topic()), Ok(Ok(Topic::Pet(5)))));
        // A malformed id is the read operation's to refuse, as in a REST path.
        let word = Resource::parse("petstore://pet/abc");
        assert!(matches!(&word, Ok(resource) if resource.read().1 == json!({"petId": "abc"})));
        for bad in [
            "petstore://pet/",
            "petstore://pets/1",
            "https://pet/1",
            "petstore://pet/1/x",
            "petstore://pet",
        ] {
            assert!(Resource::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn notification_frames_name_the_resource_they_are_about() {
        let updated =
            br#"{"type":"notification","event":"pet.updated","payload":{"id":5,"name":"rex"}}"#;
        assert_eq!(uri_of_frame(updated).as_deref(), Some("petstore://pet/5"));
        let deleted = br#"{"type":"notification","event":"order.deleted","payload":{"id":7}}"#;
        assert_eq!(uri_of_frame(deleted).as_deref(), Some("petstore://order/7"));
        let inventory = br#"{"type":"notification","event":"inventory.changed","payload":{}}"#;
        assert_eq!(uri_of_frame(inventory), None);
        assert_eq!(
            uri_of_topic(&Topic::Pet(3)).as_deref(),
            Some("petstore://pet/3")
        );
    }

    #[test]
    fn errors_keep_their_error_body() {
        let error = protocol_error(&ApiError::NotFound("no pet 9".to_owned()));
        assert_eq!(error.code, ErrorCode::RESOURCE_NOT_FOUND);
        assert_eq!(
            error.data.as_ref().and_then(|data| data.get("type")),
            Some(&json!("NOT_FOUND"))
        );
    }
}
