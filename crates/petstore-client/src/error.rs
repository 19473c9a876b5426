//! What can go wrong: [`ClientError`] for a call or a connection attempt, and [`ErrorPayload`],
//! the server's own account of a refused request (`ErrorPayload` of `asyncapi.yaml`).
//!
//! A refusal by the server is an answer, not a transport failure, but a typed call has no
//! success value to return for it, so it comes back as [`ClientError::Api`] carrying the
//! payload: the same code and HTTP-equivalent status REST would have answered, the message,
//! and the details (field errors, or when to retry).

use petstore_api::models::FieldError;
use serde::{Deserialize, Deserializer, Serialize, Serializer, ser::SerializeMap};
use serde_json::Value;
use tokio_tungstenite::tungstenite;

/// Why a call or a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered the request with an error (`"status": "error"`). Boxed: the payload
    /// is large and a refusal the rarer outcome, and every result of the client carries this
    /// type.
    #[error("the server refused the request: {0}")]
    Api(Box<ErrorPayload>),
    /// The URL or the upgrade request could not be built.
    #[error("invalid WebSocket request: {0}")]
    InvalidRequest(String),
    /// A header configured in [`ClientOptions`](crate::ClientOptions) is not a valid header
    /// value.
    #[error("invalid value for the {0} header")]
    InvalidHeader(&'static str),
    /// The server answered the upgrade with an HTTP error instead of switching protocols.
    #[error("the server refused the upgrade with HTTP {status}")]
    Rejected {
        /// The HTTP status, e.g. 403 for a forbidden origin.
        status: u16,
        /// The response body, if there was one.
        body: Option<String>,
    },
    /// The TCP connection or the WebSocket handshake failed.
    #[error("could not connect: {0}")]
    Connect(#[source] Box<tungstenite::Error>),
    /// The handshake did not finish within the connect timeout.
    #[error("the WebSocket handshake timed out")]
    ConnectTimeout,
    /// No response arrived within the request timeout.
    #[error("no response within the request timeout")]
    Timeout,
    /// The connection went away while the call was queued or in flight.
    #[error("the connection was lost before the response arrived")]
    ConnectionLost,
    /// The client was closed, or lost its connection and does not reconnect.
    #[error("the client is closed")]
    Closed,
    /// The answer to a call was not a well-formed response envelope.
    #[error("malformed response: {0}")]
    Protocol(String),
    /// A success payload that is not what the action answers: the server and this build
    /// disagree about the contract.
    #[error("the `{action}` success payload is not the documented type: {source}")]
    Payload {
        /// The action called.
        action: &'static str,
        /// Why the payload did not read as the documented type.
        #[source]
        source: serde_json::Error,
    },
    /// The request could not be encoded as JSON.
    #[error("could not encode the request: {0}")]
    Encode(#[from] serde_json::Error),
}

impl ClientError {
    /// The server's error payload, if the server answered with one.
    pub fn api(&self) -> Option<&ErrorPayload> {
        match self {
            Self::Api(payload) => Some(payload.as_ref()),
            _ => None,
        }
    }

    /// Whether trying the same upgrade again cannot succeed: refused for a reason other than
    /// load or time (401 credentials, 403 origin, 404 path), or not a valid request at all.
    pub(crate) fn is_permanent(&self) -> bool {
        match self {
            Self::Rejected { status, .. } => {
                (400..500).contains(status) && !matches!(status, 408 | 429)
            }
            Self::InvalidRequest(_) | Self::InvalidHeader(_) => true,
            _ => false,
        }
    }

    /// Classifies a failed handshake: an HTTP answer is a rejection with its status, a bad URL
    /// or header an invalid request, anything else a connection failure.
    pub(crate) fn from_handshake(error: tungstenite::Error) -> Self {
        match error {
            tungstenite::Error::Http(response) => Self::Rejected {
                status: response.status().as_u16(),
                body: response
                    .body()
                    .as_deref()
                    .map(|body| String::from_utf8_lossy(body).into_owned()),
            },
            tungstenite::Error::Url(error) => Self::InvalidRequest(error.to_string()),
            tungstenite::Error::HttpFormat(error) => Self::InvalidRequest(error.to_string()),
            other => Self::Connect(Box::new(other)),
        }
    }
}

/// The payload of an error response: why the server refused a request. Serializes back to the
/// JSON it was read from.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct ErrorPayload {
    /// The error code, e.g. `VALIDATION_ERROR`; kept as text so that codes this build does not
    /// know still arrive.
    pub code: String,
    /// The human-readable message.
    pub message: String,
    /// The HTTP status REST answers with for the same error, e.g. 422.
    pub status: u16,
    /// What else the error says, by code.
    #[serde(default, deserialize_with = "ErrorDetails::read")]
    pub details: ErrorDetails,
}

impl ErrorPayload {
    /// Whether this is the error `code`.
    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }
}

/// The `details` of an error payload.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ErrorDetails {
    /// `null` or absent: nothing more to say.
    #[default]
    None,
    /// `VALIDATION_ERROR`: every invalid field, with its path.
    Fields(Vec<FieldError>),
    /// `RATE_LIMITED` and `OVERLOADED`: seconds to wait before trying again.
    RetryAfter(u64),
    /// Anything else, as it came.
    Other(Value),
}

impl ErrorDetails {
    /// Sorts the JSON value into the shapes `asyncapi.yaml` documents; never fails, so that an
    /// unexpected shape still lets the caller see the code and message.
    fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::from_value(Value::deserialize(deserializer)?))
    }

    fn from_value(value: Value) -> Self {
        match value {
            Value::Null => Self::None,
            Value::Array(_) => match serde_json::from_value::<Vec<FieldError>>(value.clone()) {
                Ok(fields) => Self::Fields(fields),
                Err(_) => Self::Other(value),
            },
            Value::Object(ref object) => {
                match (
                    object.len(),
                    object.get("retryAfter").and_then(Value::as_u64),
                ) {
                    (1, Some(seconds)) => Self::RetryAfter(seconds),
                    _ => Self::Other(value),
                }
            }
            other => Self::Other(other),
        }
    }

    /// The field errors of a `VALIDATION_ERROR`; empty otherwise.
    pub fn fields(&self) -> &[FieldError] {
        match self {
            Self::Fields(fields) => fields,
            _ => &[],
        }
    }

    /// The seconds to wait of a `RATE_LIMITED` or `OVERLOADED` error.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RetryAfter(seconds) => Some(*seconds),
            _ => None,
        }
    }
}

impl Serialize for ErrorDetails {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::None => serializer.serialize_none(),
            Self::Fields(fields) => fields.serialize(serializer),
            Self::RetryAfter(seconds) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("retryAfter", seconds)?;
                map.end()
            }
            Self::Other(value) => value.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn payload(value: Value) -> ErrorPayload {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn details_are_read_into_the_documented_shapes() {
        let fields = payload(json!({
            "code": "VALIDATION_ERROR", "message": "invalid pet", "status": 422,
            "details": [{ "path": "name", "message": "is required" }],
        }));
        assert_eq!(
            fields.details,
            ErrorDetails::Fields(vec![FieldError {
                path: "name".to_owned(),
                message: "is required".to_owned(),
            }])
        );
        assert_eq!(fields.details.fields()[0].path, "name");
        assert!(fields.is("VALIDATION_ERROR"));

        let retry = payload(json!({
            "code": "RATE_LIMITED", "message": "slow down", "status": 429,
            "details": { "retryAfter": 3 },
        }));
        assert_eq!(retry.details.retry_after(), Some(3));

        for (details, expected) in [
            (json!(null), ErrorDetails::None),
            (json!("odd"), ErrorDetails::Other(json!("odd"))),
            (json!([1]), ErrorDetails::Other(json!([1]))),
            (
                json!({ "retryAfter": 1, "more": true }),
                ErrorDetails::Other(json!({ "retryAfter": 1, "more": true })),
            ),
        ] {
            let error = payload(json!({
                "code": "X", "message": "m", "status": 400, "details": details.clone(),
            }));
            assert_eq!(error.details, expected);
            // Rendered again, the payload is what it was read from.
            assert_eq!(serde_json::to_value(&error.details).unwrap(), details);
        }
        assert_eq!(
            serde_json::to_value(&fields).unwrap(),
            json!({
                "code": "VALIDATION_ERROR", "message": "invalid pet", "status": 422,
                "details": [{ "path": "name", "message": "is required" }],
            })
        );
        assert_eq!(
            serde_json::to_value(&retry.details).unwrap(),
            json!({ "retryAfter": 3 })
        );
        let absent = payload(json!({ "code": "NOT_FOUND", "message": "gone", "status": 404 }));
        assert_eq!(absent.details, ErrorDetails::None);
    }

    #[test]
    fn only_refusals_that_retrying_cannot_fix_are_permanent() {
        let rejected = |status| ClientError::Rejected { status, body: None };
        for status in [400, 401, 403, 404] {
            assert!(rejected(status).is_permanent(), "{status}");
        }
        for status in [408, 429, 500, 503] {
            assert!(!rejected(status).is_permanent(), "{status}");
        }
        assert!(ClientError::InvalidHeader("Origin").is_permanent());
        assert!(!ClientError::ConnectTimeout.is_permanent());
    }
}
