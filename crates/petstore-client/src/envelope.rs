//! The envelopes on the wire (`asyncapi.yaml`): the request envelope a call sends, and the
//! one pass that reads whatever text frame the server sends into a notification or an answer.
//!
//! Reading never fails: a frame that is not a well-formed envelope is still an answer (as
//! text), so that a raw call waiting for it gets it and a typed call fails with
//! [`ClientError::Protocol`] instead of timing out.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ClientError, ErrorPayload, Notification};

/// The outcome of a call, as the server's response envelope states it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `"status": "success"` and its payload.
    Success(Value),
    /// `"status": "error"` and its error payload.
    Error(ErrorPayload),
}

impl Reply {
    /// The success payload, if this is a success.
    pub fn success(&self) -> Option<&Value> {
        match self {
            Self::Success(payload) => Some(payload),
            Self::Error(_) => None,
        }
    }

    /// The error code, if this is an error.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Self::Success(_) => None,
            Self::Error(error) => Some(&error.code),
        }
    }

    /// Whether this is a success.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Success(_))
    }

    /// The success payload, or the error payload as [`ClientError::Api`].
    ///
    /// # Errors
    /// When the server refused the request.
    pub fn into_result(self) -> Result<Value, ClientError> {
        match self {
            Self::Success(payload) => Ok(payload),
            Self::Error(error) => Err(ClientError::Api(Box::new(error))),
        }
    }
}

/// A response envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The `correlationId` echoed from the request; absent when the server could not read one.
    pub correlation_id: Option<String>,
    /// The server's `timestamp` in milliseconds since the Unix epoch.
    pub timestamp: Option<u64>,
    /// The outcome.
    pub reply: Reply,
}

/// What [`Raw::send_text`](crate::Raw::send_text) got back.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A well-formed response envelope.
    Response(Response),
    /// A text frame that is not a well-formed response or notification envelope.
    Text(String),
    /// A binary frame.
    Binary(Bytes),
}

/// Milliseconds since the Unix epoch, for the envelope's `timestamp`.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A request envelope as it goes on the wire.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestEnvelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    correlation_id: &'a str,
    timestamp: u64,
    action: &'a str,
    payload: &'a Value,
}

/// The text of a request envelope.
pub(crate) fn request_text(
    correlation_id: &str,
    timestamp: u64,
    action: &str,
    payload: &Value,
) -> Result<String, ClientError> {
    Ok(serde_json::to_string(&RequestEnvelope {
        kind: "request",
        correlation_id,
        timestamp,
        action,
        payload,
    })?)
}

/// Any envelope the server sends, read in one pass whatever the order of its fields; which
/// fields matter depends on `type`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEnvelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    timestamp: Option<u64>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    epoch: Option<String>,
    #[serde(default)]
    positions: std::collections::BTreeMap<String, u64>,
    #[serde(default)]
    payload: Value,
}

/// A parsed inbound text frame.
#[derive(Debug, PartialEq)]
pub(crate) enum Frame {
    Notification(Notification),
    /// Anything else, with the correlation id to route it by if the frame had one.
    Answer {
        correlation_id: Option<String>,
        inbound: Inbound,
    },
}

/// Parses a text frame. A response whose error payload is malformed keeps its correlation id,
/// so that the call it answers fails with [`ClientError::Protocol`] instead of timing out.
pub(crate) fn parse_frame(text: &str) -> Frame {
    let Ok(envelope) = serde_json::from_str::<WireEnvelope>(text) else {
        return Frame::Answer {
            correlation_id: None,
            inbound: Inbound::Text(text.to_owned()),
        };
    };
    let reply = match (envelope.kind.as_str(), envelope.status.as_deref()) {
        ("notification", _) => {
            if let Some(event) = envelope.event {
                return Frame::Notification(Notification {
                    event,
                    correlation_id: envelope.correlation_id,
                    timestamp: envelope.timestamp,
                    epoch: envelope.epoch,
                    positions: envelope.positions,
                    payload: envelope.payload,
                });
            }
            None
        }
        ("response", Some("success")) => Some(Reply::Success(envelope.payload)),
        ("response", Some("error")) => serde_json::from_value::<ErrorPayload>(envelope.payload)
            .ok()
            .map(Reply::Error),
        _ => None,
    };
    let inbound = match reply {
        Some(reply) => Inbound::Response(Response {
            correlation_id: envelope.correlation_id.clone(),
            timestamp: envelope.timestamp,
            reply,
        }),
        None => Inbound::Text(text.to_owned()),
    };
    Frame::Answer {
        correlation_id: envelope.correlation_id,
        inbound,
    }
}

#[cfg(test)]
mod tests {
    use petstore_api::{models::FieldError, ws::Event};
    use serde_json::json;

    use super::*;
    use crate::ErrorDetails;

    #[test]
    fn a_request_envelope_carries_the_contract_fields() {
        let text = request_text(
            "5b7c1f0e-3c1a-4c47-9a61-0c7f3f5e2b11",
            1_700_000_000_123,
            "getPetById",
            &json!({ "petId": 5 }),
        )
        .unwrap();
        let envelope: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            envelope,
            json!({
                "type": "request",
                "correlationId": "5b7c1f0e-3c1a-4c47-9a61-0c7f3f5e2b11",
                "timestamp": 1_700_000_000_123u64,
                "action": "getPetById",
                "payload": { "petId": 5 },
            })
        );
    }

    #[test]
    fn timestamps_are_milliseconds_since_the_epoch() {
        // 2020-01-01 in milliseconds; in seconds or microseconds this would be far off.
        let now = now_ms();
        assert!(
            now > 1_577_836_800_000 && now < 1_577_836_800_000 * 10,
            "{now}"
        );
    }

    #[test]
    fn a_success_response_parses_whatever_the_field_order() {
        let text = r#"{"payload":{"id":5,"name":"Rex"},"status":"success","timestamp":17,
                       "correlationId":"abc","type":"response","extra":true}"#;
        assert_eq!(
            parse_frame(text),
            Frame::Answer {
                correlation_id: Some("abc".to_owned()),
                inbound: Inbound::Response(Response {
                    correlation_id: Some("abc".to_owned()),
                    timestamp: Some(17),
                    reply: Reply::Success(json!({ "id": 5, "name": "Rex" })),
                }),
            }
        );
    }

    #[test]
    fn an_error_response_carries_the_error_payload() {
        let text = r#"{"type":"response","status":"error","correlationId":"abc","timestamp":1,
            "payload":{"status":422,"details":[{"path":"name","message":"is required"}],
                       "message":"invalid pet","code":"VALIDATION_ERROR"}}"#;
        let Frame::Answer {
            inbound: Inbound::Response(response),
            ..
        } = parse_frame(text)
        else {
            panic!("not a response");
        };
        assert_eq!(
            response.reply,
            Reply::Error(ErrorPayload {
                code: "VALIDATION_ERROR".to_owned(),
                message: "invalid pet".to_owned(),
                status: 422,
                details: ErrorDetails::Fields(vec![FieldError {
                    path: "name".to_owned(),
                    message: "is required".to_owned(),
                }]),
            })
        );
        assert_eq!(response.reply.error_code(), Some("VALIDATION_ERROR"));
        assert!(!response.reply.is_success());
    }

    #[test]
    fn a_response_with_a_malformed_error_payload_still_finds_its_call() {
        // No `code`: not a valid error payload, but the call it answers must not time out.
        let text = r#"{"type":"response","status":"error","correlationId":"abc","payload":{}}"#;
        assert_eq!(
            parse_frame(text),
            Frame::Answer {
                correlation_id: Some("abc".to_owned()),
                inbound: Inbound::Text(text.to_owned()),
            }
        );
    }

    #[test]
    fn a_notification_parses_with_its_event() {
        let text = r#"{"payload":{"id":7},"event":"pet.deleted","type":"notification",
                       "timestamp":9,"correlationId":"n-1","epoch":"e","positions":{"pets":4,"pet:7":2}}"#;
        let Frame::Notification(notification) = parse_frame(text) else {
            panic!("not a notification");
        };
        assert_eq!(
            notification,
            Notification {
                event: "pet.deleted".to_owned(),
                correlation_id: Some("n-1".to_owned()),
                timestamp: Some(9),
                epoch: Some("e".to_owned()),
                positions: [("pet:7".to_owned(), 2), ("pets".to_owned(), 4)].into(),
                payload: json!({ "id": 7 }),
            }
        );
        assert_eq!(notification.kind(), Some(Event::PetDeleted));

        let unknown = r#"{"type":"notification","event":"pet.teleported","payload":null}"#;
        let Frame::Notification(notification) = parse_frame(unknown) else {
            panic!("not a notification");
        };
        assert_eq!(notification.event, "pet.teleported");
        assert_eq!(notification.kind(), None);
    }

    #[test]
    fn frames_that_are_not_envelopes_come_back_as_text() {
        for text in [
            "not json",
            "[1,2]",
            r#"{"no":"type"}"#,
            r#"{"type":"response","status":"maybe","correlationId":"abc"}"#,
            r#"{"type":"request","correlationId":"abc","action":"ping"}"#,
        ] {
            let Frame::Answer { inbound, .. } = parse_frame(text) else {
                panic!("{text} parsed as a notification");
            };
            assert_eq!(inbound, Inbound::Text(text.to_owned()), "{text}");
        }
    }
}
