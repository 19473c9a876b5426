//! The session's own actions (`x-control` in `asyncapi.yaml`), typed by hand: they are no
//! operation of `openapi.yaml`, so the generator has no request struct for them, and two of
//! them change what the client restores after a reconnect.
//!
//! - `authenticate {token}` → [`SessionInfo`]; the token is kept for reconnects.
//! - `refresh {refreshToken}` → the new tokens; the new access token is kept for reconnects.
//! - `subscribe` / `unsubscribe {topics}` → the topics the session follows afterwards; the
//!   topics and the last position seen in each are kept for reconnects, and restored with
//!   `subscribe {topics, since}` (missed events replayed, or a `RECOVERY_FAILED` notification).
//! - `ping` → [`Pong`], the server's clock.

use chrono::{DateTime, Utc};
use petstore_api::{SubscribedPayload, Topic, models::TokenResponse, ws::Action};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ClientError, WsClient, client::decode};

/// Who the session acts as once `authenticate` (or `refresh`) succeeded (`SessionPayload`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// The username, or `service-key:NAME`.
    pub subject: String,
    /// The roles, e.g. `customer`; text, so that roles this build does not know still arrive.
    pub roles: Vec<String>,
    /// The scopes the roles grant, e.g. `pets:write`.
    pub scopes: Vec<String>,
    /// When the credentials stop being valid; `None` for service keys.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The answer to `ping` (`PongPayload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Pong {
    /// The server's clock, in milliseconds since the Unix epoch.
    pub timestamp: i64,
}

/// The payload of `subscribe` and `unsubscribe` answers (`TopicsPayload`).
#[derive(Deserialize)]
struct TopicsPayload {
    topics: Vec<Topic>,
}

/// The `authenticate` payload.
pub(crate) fn authenticate_payload(token: &str) -> Value {
    json!({ "token": token })
}

/// The `subscribe` and `unsubscribe` payload.
pub(crate) fn topics_payload<S: AsRef<str>>(topics: &[S]) -> Value {
    let topics: Vec<&str> = topics.iter().map(|topic| topic.as_ref()).collect();
    json!({ "topics": topics })
}

impl WsClient {
    /// `authenticate` with an access token; remembered for reconnects once the server accepts
    /// it.
    ///
    /// # Errors
    /// [`ClientError::Api`] when the server refuses the token (`UNAUTHORIZED`), or the session
    /// already acts for someone else (`FORBIDDEN`); the other variants when there was no answer.
    pub async fn authenticate(&self, token: &str) -> Result<SessionInfo, ClientError> {
        let reply = self
            .call(Action::Authenticate, authenticate_payload(token))
            .await?;
        if reply.is_success() {
            self.inner.handle.session.lock().token = Some(token.to_owned());
        }
        decode(Action::Authenticate, reply)
    }

    /// `refresh`: trades a refresh token for new tokens, and keeps the session (and later
    /// reconnects) on the new access token.
    ///
    /// # Errors
    /// [`ClientError::Api`] when the server refuses the refresh token; the other variants when
    /// there was no answer.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, ClientError> {
        let reply = self
            .call(Action::Refresh, json!({ "refreshToken": refresh_token }))
            .await?;
        if let Some(token) = reply
            .success()
            .and_then(|tokens| tokens.get("accessToken"))
            .and_then(Value::as_str)
        {
            self.inner.handle.session.lock().token = Some(token.to_owned());
        }
        decode(Action::Refresh, reply)
    }

    /// `subscribe` to topics; remembered for reconnects once the server accepts them. Answers
    /// every topic the session follows now.
    ///
    /// # Errors
    /// [`ClientError::Api`] when the server refuses one of the topics (then none is
    /// subscribed); the other variants when there was no answer.
    ///
    /// The answer also says where each topic stands; the client keeps that position (and
    /// every later one a notification brings) to resume from after a reconnect.
    pub async fn subscribe(&self, topics: &[Topic]) -> Result<Vec<Topic>, ClientError> {
        let names = topic_names(topics);
        let reply = self.call(Action::Subscribe, topics_payload(&names)).await?;
        let succeeded = reply.is_success();
        let answer = decode::<SubscribedPayload>(Action::Subscribe, reply)?;
        if succeeded {
            let mut session = self.inner.handle.session.lock();
            session
                .topics
                .extend(names.into_iter().zip(topics.iter().cloned()));
            for position in &answer.positions {
                session.place(position);
            }
        }
        Ok(answer.topics)
    }

    /// The last position the client has seen in each topic it follows (offset and epoch), by
    /// topic name: what it resumes from after a reconnect.
    pub fn positions(&self) -> std::collections::BTreeMap<String, (u64, String)> {
        self.inner.handle.session.lock().positions.clone()
    }

    /// `unsubscribe` from topics. Answers every topic the session still follows.
    ///
    /// # Errors
    /// [`ClientError::Api`] when the server refuses the request; the other variants when there
    /// was no answer.
    pub async fn unsubscribe(&self, topics: &[Topic]) -> Result<Vec<Topic>, ClientError> {
        let names = topic_names(topics);
        let reply = self
            .call(Action::Unsubscribe, topics_payload(&names))
            .await?;
        if reply.is_success() {
            let mut session = self.inner.handle.session.lock();
            for name in &names {
                session.topics.remove(name);
                session.positions.remove(name);
            }
        }
        decode::<TopicsPayload>(Action::Unsubscribe, reply).map(|answer| answer.topics)
    }

    /// `ping`: answered at once with the server's clock.
    ///
    /// # Errors
    /// [`ClientError::Api`] when the server refuses it (e.g. `RATE_LIMITED`); the other
    /// variants when there was no answer.
    pub async fn ping(&self) -> Result<Pong, ClientError> {
        let reply = self.call(Action::Ping, json!({})).await?;
        decode(Action::Ping, reply)
    }
}

/// The topics as the wire writes them (`pet:5`).
fn topic_names(topics: &[Topic]) -> Vec<String> {
    topics.iter().map(Topic::to_string).collect()
}
