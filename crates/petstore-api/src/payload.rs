//! Operations carried as JSON payloads (WebSocket actions, and any transport that names an
//! operation and sends its input as one object): reading the request out of the payload, and
//! the success payload that goes back.
//!
//! Reading follows the REST adapter rule for rule, so every transport accepts and refuses the
//! same inputs with the same error codes: a parameter that is missing, of the wrong type or
//! outside its schema is a 400 `BAD_REQUEST` naming it; a body goes through
//! [`validation::parse_body`] (422 with every field error). The payload's shape is the
//! serialized form of the operation's request struct: parameters by wire name, the body as
//! `body` (base64 text for a binary one).

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{
    Image,
    error::BadRequest,
    validation::{self, Node},
};

/// A request payload: the operation's parameters by name and `body` for its request body.
///
/// Names the operation does not take are ignored, as REST ignores unknown query parameters.
#[derive(Debug, Default)]
pub struct Payload {
    fields: Map<String, Value>,
}

/// The payload member carrying the request body.
pub const BODY: &str = "body";

impl Payload {
    /// The payload of a request; `null` (or an absent payload) is an empty one.
    ///
    /// # Errors
    /// 400 when the payload is not a JSON object.
    pub fn new(payload: Value) -> Result<Self, BadRequest> {
        match payload {
            Value::Object(fields) => Ok(Self { fields }),
            Value::Null => Ok(Self::default()),
            other => Err(BadRequest(format!(
                "the payload must be an object of the operation's parameters and `body`, not {}",
                json_kind(&other)
            ))),
        }
    }

    /// A required parameter.
    ///
    /// # Errors
    /// 400 when it is missing, or not valid for `schema`.
    pub fn required<T: DeserializeOwned>(
        &mut self,
        name: &'static str,
        schema: &Node,
    ) -> Result<T, BadRequest> {
        match self.fields.remove(name) {
            None | Some(Value::Null) => Err(BadRequest(format!("parameter `{name}`: is required"))),
            Some(value) => parse_param(name, value, schema),
        }
    }

    /// An optional parameter.
    ///
    /// # Errors
    /// 400 when it is present but not valid for `schema`.
    pub fn optional<T: DeserializeOwned>(
        &mut self,
        name: &'static str,
        schema: &Node,
    ) -> Result<Option<T>, BadRequest> {
        match self.fields.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => parse_param(name, value, schema).map(Some),
        }
    }

    /// An array parameter: absent is empty (as for a query parameter given no times). A single
    /// value stands for a one-element array, as a lone query parameter does.
    ///
    /// # Errors
    /// 400 when it is not valid for `schema`.
    pub fn list<T: DeserializeOwned>(
        &mut self,
        name: &'static str,
        schema: &Node,
    ) -> Result<Vec<T>, BadRequest> {
        match self.fields.remove(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => parse_param(name, Value::Array(items), schema),
            Some(single) => parse_param(name, Value::Array(vec![single]), schema),
        }
    }

    /// The JSON request body, still to be checked against its schema
    /// ([`validation::parse_body`], once the caller is authorized, as REST does).
    ///
    /// # Errors
    /// 400 when it is missing.
    pub fn json_body(&mut self) -> Result<Value, BadRequest> {
        match self.fields.remove(BODY) {
            None | Some(Value::Null) => Err(BadRequest(
                "the request body (`body`) is required".to_owned(),
            )),
            Some(body) => Ok(body),
        }
    }

    /// A binary request body, base64-encoded in the payload. A missing one is empty, as an
    /// HTTP request without a body is: the operation decides what an empty file means.
    ///
    /// # Errors
    /// 400 when it is not base64.
    pub fn binary_body(&mut self) -> Result<Bytes, BadRequest> {
        match self.fields.remove(BODY) {
            Some(Value::String(text)) => BASE64
                .decode(text.as_bytes())
                .map(Bytes::from)
                .map_err(|error| BadRequest(format!("`body` is not valid base64: {error}"))),
            None | Some(Value::Null) => Ok(Bytes::new()),
            Some(other) => Err(BadRequest(format!(
                "`body` must be a base64 string, not {}",
                json_kind(&other)
            ))),
        }
    }
}

/// Checks a parameter against its schema, then builds the typed value.
fn parse_param<T: DeserializeOwned>(
    name: &'static str,
    value: Value,
    schema: &Node,
) -> Result<T, BadRequest> {
    if let Some(error) = validation::validate(schema, &value).into_iter().next() {
        let at = if error.path.is_empty() {
            String::new()
        } else {
            format!(" (at {})", error.path)
        };
        return Err(BadRequest(format!(
            "parameter `{name}`: {}{at}",
            error.message
        )));
    }
    serde_json::from_value(value)
        .map_err(|error| BadRequest(format!("parameter `{name}`: {error}")))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What a successful operation answers: the status REST would send and the payload as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct Success {
    /// The HTTP-equivalent status (the operation's documented 2xx).
    pub status: u16,
    /// The payload, JSON text, handed over as it was stored (pre-serialized entities are not
    /// parsed or re-rendered on the way out).
    pub payload: Bytes,
}

impl Success {
    /// A JSON body.
    pub fn json(status: u16, payload: Bytes) -> Self {
        Self { status, payload }
    }

    /// No body: the payload is `null`.
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            payload: Bytes::from_static(b"null"),
        }
    }

    /// An image, as `{"contentType": …, "data": <base64>}`.
    pub fn image(status: u16, image: &Image) -> Self {
        let payload = serde_json::json!({
            "contentType": image.content_type,
            "data": BASE64.encode(&image.bytes),
        });
        Self {
            status,
            payload: Bytes::from(payload.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    static ID: &Node = &Node::Integer {
        bits: 64,
        minimum: Some(validation::Limit {
            value: 1.0,
            exclusive: false,
        }),
        maximum: None,
    };

    #[test]
    fn payloads_must_be_objects_or_null() {
        assert!(Payload::new(json!({})).is_ok());
        assert!(Payload::new(Value::Null).is_ok());
        for bad in [json!([]), json!(1), json!("x"), json!(true)] {
            let error = Payload::new(bad).unwrap_err();
            assert!(error.0.contains("must be an object"), "{error}");
        }
    }

    #[test]
    fn parameters_are_checked_against_their_schema() {
        let mut payload = Payload::new(json!({"petId": 7, "bad": 0, "text": "7"})).unwrap();
        assert_eq!(payload.required::<i64>("petId", ID).unwrap(), 7);
        let error = payload.required::<i64>("bad", ID).unwrap_err();
        assert!(error.to_string().contains("parameter `bad`"), "{error}");
        assert!(payload.required::<i64>("text", ID).is_err());
        let error = payload.required::<i64>("missing", ID).unwrap_err();
        assert_eq!(error.0, "parameter `missing`: is required");
        assert_eq!(payload.optional::<i64>("missing", ID).unwrap(), None);
    }

    #[test]
    fn lists_accept_one_value_or_many_and_default_to_empty() {
        let node: &Node = &Node::Array {
            items: ID,
            min_items: None,
            max_items: None,
            unique: false,
        };
        let mut payload = Payload::new(json!({"one": 3, "many": [1, 2]})).unwrap();
        assert_eq!(payload.list::<i64>("one", node).unwrap(), vec![3]);
        assert_eq!(payload.list::<i64>("many", node).unwrap(), vec![1, 2]);
        assert!(payload.list::<i64>("none", node).unwrap().is_empty());
    }

    #[test]
    fn binary_bodies_are_base64() {
        let mut payload = Payload::new(json!({"body": BASE64.encode(b"abc")})).unwrap();
        assert_eq!(payload.binary_body().unwrap(), Bytes::from_static(b"abc"));
        let mut payload = Payload::new(json!({"body": "***"})).unwrap();
        assert!(payload.binary_body().is_err());
        let mut payload = Payload::new(json!({"body": 5})).unwrap();
        assert!(payload.binary_body().is_err());
        let mut payload = Payload::new(json!({})).unwrap();
        assert!(payload.binary_body().unwrap().is_empty());
    }
}
