//! Reading request envelopes and writing response and notification envelopes (`asyncapi.yaml`,
//! `components/schemas/*Envelope`).
//!
//! Reading is forgiving in one way only: whatever can be read of a broken request (its
//! `correlationId`) is kept, so the error response still reaches the caller's pending request.
//! Writing never re-serializes a payload: success payloads arrive as JSON text (pre-serialized
//! entities) and are copied into the frame as they are.

use std::{borrow::Cow, fmt::Write};

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use petstore_api::{
    ApiError,
    ws::{Action, Event},
};

/// A request, read and checked.
#[derive(Debug)]
pub struct Request {
    /// The client's id for this request.
    pub correlation_id: Uuid,
    /// What it asks for.
    pub action: Action,
    /// When the client sent it, in milliseconds since the epoch (the envelope's `timestamp`).
    pub sent_at_ms: i64,
    /// Its payload (parameters by name and `body`), not yet checked.
    pub payload: Value,
}

/// A frame that is not a readable request.
#[derive(Debug)]
pub struct Unreadable {
    /// The correlation id, when one could be read (as the client wrote it).
    pub correlation_id: Option<String>,
    /// Why (a 400 `BAD_REQUEST`).
    pub error: ApiError,
}

/// The fields of a request envelope as they arrive, before any is trusted.
#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(rename = "correlationId", default)]
    correlation_id: Option<Value>,
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    #[serde(default)]
    payload: Option<Value>,
}

/// Reads a text frame as a request envelope.
///
/// # Errors
/// [`Unreadable`] for invalid JSON, a wrong or missing envelope field, or an unknown action.
pub fn read_request(text: &str) -> Result<Request, Unreadable> {
    let raw: RawRequest<'_> = serde_json::from_str(text).map_err(|error| Unreadable {
        correlation_id: None,
        error: ApiError::BadRequest(if error.is_data() {
            "a request must be a JSON object envelope".to_owned()
        } else {
            format!("invalid JSON: {error}")
        }),
    })?;
    let claimed_id = match &raw.correlation_id {
        Some(Value::String(id)) => Some(id.clone()),
        _ => None,
    };
    let bad = |message: String| Unreadable {
        correlation_id: claimed_id.clone(),
        error: ApiError::BadRequest(message),
    };
    match raw.kind.as_deref() {
        Some("request") => {}
        Some(other) => {
            return Err(bad(format!(
                "`type` must be `request` (clients send only requests), not `{other}`"
            )));
        }
        None => return Err(bad("`type` is missing (it must be `request`)".to_owned())),
    }
    let correlation_id = match (&raw.correlation_id, &claimed_id) {
        (_, Some(id)) => Uuid::parse_str(id)
            .map_err(|_| bad(format!("`correlationId` must be a UUID, not `{id}`")))?,
        (None, None) => return Err(bad("`correlationId` is missing".to_owned())),
        (Some(_), None) => return Err(bad("`correlationId` must be a UUID string".to_owned())),
    };
    let sent_at_ms = match &raw.timestamp {
        Some(Value::Number(number)) if number.is_i64() || number.is_u64() => {
            number.as_i64().unwrap_or(i64::MAX)
        }
        Some(_) => {
            return Err(bad(
                "`timestamp` must be an integer (milliseconds since the epoch)".to_owned(),
            ));
        }
        None => return Err(bad("`timestamp` is missing".to_owned())),
    };
    let action = match raw.action.as_deref() {
        Some(name) => {
            Action::from_name(name).ok_or_else(|| bad(format!("unknown action `{name}`")))?
        }
        None => return Err(bad("`action` is missing".to_owned())),
    };
    Ok(Request {
        correlation_id,
        action,
        sent_at_ms,
        payload: raw.payload.unwrap_or(Value::Null),
    })
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A success response carrying `payload` (JSON text) as it is.
pub fn success(correlation_id: &Uuid, payload: &[u8]) -> Bytes {
    let mut id = [0; uuid::fmt::Hyphenated::LENGTH];
    let id = correlation_id.hyphenated().encode_lower(&mut id);
    let mut frame = start(b"response", id, 60 + payload.len());
    frame.put_slice(br#","status":"success","payload":"#);
    frame.put_slice(payload);
    frame.put_u8(b'}');
    frame.freeze()
}

/// An error response; `correlation_id` is `None` when the request had none that could be read.
pub fn error(correlation_id: Option<&str>, error: &ApiError) -> Bytes {
    let payload = error_payload(error).to_string();
    let mut frame = match correlation_id {
        Some(id) => start(b"response", &json_string(id), payload.len() + 40),
        None => start_without_id(b"response", payload.len() + 40),
    };
    frame.put_slice(br#","status":"error","payload":"#);
    frame.put_slice(payload.as_bytes());
    frame.put_u8(b'}');
    frame.freeze()
}

/// A notification about this session (not a domain event), e.g. `backpressure`.
pub fn session_notification(event: Event, payload: &Value) -> Bytes {
    let payload = payload.to_string();
    let id = Uuid::new_v4().hyphenated().to_string();
    let mut frame = start(b"notification", &id, payload.len() + 40);
    frame.put_slice(br#","event":""#);
    frame.put_slice(event.as_str().as_bytes());
    frame.put_slice(br#"","payload":"#);
    frame.put_slice(payload.as_bytes());
    frame.put_u8(b'}');
    frame.freeze()
}

/// The error payload: `{code, message, details, status}`, the code and status being those REST
/// answers with.
pub fn error_payload(error: &ApiError) -> Value {
    let details = match error {
        ApiError::Validation { errors, .. } => Value::Array(
            errors
                .iter()
                .map(|error| serde_json::json!({ "path": error.path, "message": error.message }))
                .collect(),
        ),
        ApiError::RateLimited {
            retry_after_secs, ..
        }
        | ApiError::Overloaded { retry_after_secs } => {
            serde_json::json!({ "retryAfter": retry_after_secs })
        }
        _ => Value::Null,
    };
    serde_json::json!({
        "code": error.code(),
        "message": error.to_string(),
        "details": details,
        "status": error.status(),
    })
}

/// `{"type":"<kind>","correlationId":"<id>","timestamp":<now>`; `id` is a bare UUID or an
/// already-quoted JSON string.
fn start(kind: &[u8], id: &str, rest: usize) -> BytesMut {
    let mut frame = BytesMut::with_capacity(80 + rest);
    frame.put_slice(br#"{"type":""#);
    frame.put_slice(kind);
    frame.put_slice(br#"","correlationId":"#);
    if id.starts_with('"') {
        frame.put_slice(id.as_bytes());
    } else {
        frame.put_u8(b'"');
        frame.put_slice(id.as_bytes());
        frame.put_u8(b'"');
    }
    put_timestamp(&mut frame);
    frame
}

fn start_without_id(kind: &[u8], rest: usize) -> BytesMut {
    let mut frame = BytesMut::with_capacity(60 + rest);
    frame.put_slice(br#"{"type":""#);
    frame.put_slice(kind);
    frame.put_slice(br#"","correlationId":null"#);
    put_timestamp(&mut frame);
    frame
}

fn put_timestamp(frame: &mut BytesMut) {
    frame.put_slice(br#","timestamp":"#);
    // Formatting into the frame itself: no string per frame.
    let _ = write!(frame, "{}", now_ms());
}

fn json_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(value: Value) -> Result<Request, Unreadable> {
        read_request(&value.to_string())
    }

    const ID: &str = "123e4567-e89b-42d3-a456-426614174000";

    #[test]
    fn reads_a_request() {
        let read = request(json!({
            "type": "request", "correlationId": ID, "timestamp": 1, "action": "getPetById",
            "payload": {"petId": 1}
        }))
        .unwrap();
        assert_eq!(read.action, Action::GetPetById);
        assert_eq!(read.correlation_id.to_string(), ID);
        assert_eq!(read.payload, json!({"petId": 1}));
    }

    #[test]
    fn a_missing_payload_is_null() {
        let read = request(json!({
            "type": "request", "correlationId": ID, "timestamp": 1, "action": "ping"
        }))
        .unwrap();
        assert_eq!(read.payload, Value::Null);
    }

    #[test]
    fn broken_requests_keep_their_correlation_id() {
        let cases = [
            (
                json!({"type": "request", "correlationId": ID, "timestamp": 1, "action": "nope"}),
                "unknown action",
            ),
            (
                json!({"type": "response", "correlationId": ID, "timestamp": 1, "action": "ping"}),
                "`type`",
            ),
            (
                json!({"correlationId": ID, "timestamp": 1, "action": "ping"}),
                "`type`",
            ),
            (
                json!({"type": "request", "correlationId": ID, "action": "ping"}),
                "`timestamp`",
            ),
            (
                json!({"type": "request", "correlationId": ID, "timestamp": "x", "action": "ping"}),
                "`timestamp`",
            ),
            (
                json!({"type": "request", "correlationId": ID, "timestamp": 1}),
                "`action`",
            ),
        ];
        for (frame, expected) in cases {
            let broken = request(frame.clone()).unwrap_err();
            assert_eq!(broken.correlation_id.as_deref(), Some(ID), "{frame}");
            assert_eq!(broken.error.code(), "BAD_REQUEST");
            assert!(
                broken.error.to_string().contains(expected),
                "{frame}: {}",
                broken.error
            );
        }
        let not_uuid = request(
            json!({"type": "request", "correlationId": "abc", "timestamp": 1, "action": "ping"}),
        )
        .unwrap_err();
        assert_eq!(not_uuid.correlation_id.as_deref(), Some("abc"));
        for text in ["{", "[]", "42", "\"x\"", ""] {
            let broken = read_request(text).unwrap_err();
            assert_eq!(broken.correlation_id, None, "{text}");
            assert_eq!(broken.error.status(), 400);
        }
    }

    #[test]
    fn success_frames_carry_the_payload_verbatim() {
        let id = Uuid::parse_str(ID).unwrap();
        let frame = success(&id, br#"{"id":1,"name":"x"}"#);
        let value: Value = serde_json::from_slice(&frame).unwrap();
        assert_eq!(value["type"], "response");
        assert_eq!(value["correlationId"], ID);
        assert_eq!(value["status"], "success");
        assert_eq!(value["payload"], json!({"id": 1, "name": "x"}));
        assert!(value["timestamp"].as_i64().unwrap() > 0);
    }

    #[test]
    fn error_frames_carry_code_status_and_details() {
        let frame = error(
            Some("not \"a uuid\""),
            &ApiError::invalid_field("body.name", "must not be empty"),
        );
        let value: Value = serde_json::from_slice(&frame).unwrap();
        assert_eq!(value["correlationId"], "not \"a uuid\"");
        assert_eq!(value["status"], "error");
        assert_eq!(value["payload"]["code"], "VALIDATION_ERROR");
        assert_eq!(value["payload"]["status"], 422);
        assert_eq!(value["payload"]["details"][0]["path"], "body.name");

        let frame = error(
            None,
            &ApiError::Overloaded {
                retry_after_secs: 2,
            },
        );
        let value: Value = serde_json::from_slice(&frame).unwrap();
        assert_eq!(value["correlationId"], Value::Null);
        assert_eq!(value["payload"]["code"], "OVERLOADED");
        assert_eq!(value["payload"]["details"]["retryAfter"], 2);
    }

    #[test]
    fn session_notifications_name_their_event() {
        let frame = session_notification(Event::Backpressure, &json!({"queued": 3}));
        let value: Value = serde_json::from_slice(&frame).unwrap();
        assert_eq!(value["type"], "notification");
        assert_eq!(value["event"], "backpressure");
        assert_eq!(value["payload"]["queued"], 3);
        assert!(Uuid::parse_str(value["correlationId"].as_str().unwrap()).is_ok());
    }
}
