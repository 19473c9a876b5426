//! The control actions: what a session does for itself rather than through an operation.
//!
//! - `authenticate {token}`: verify an access token and act as its principal from now on.
//! - `refresh {refreshToken}`: the `refreshToken` operation (same rotation and reuse detection),
//!   then continue on the new access token; answers what `refreshToken` answers.
//! - `subscribe` / `unsubscribe {topics}`: follow or stop following topics; a subscription is
//!   authorized when it is made (`orders` and `inventory` need their scopes, `order:{id}` the
//!   order's owner or `orders:manage`).
//! - `ping`: answered with the server's clock.

use std::collections::BTreeSet;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{envelope::now_ms, session::Session};
use crate::{
    auth::{Authentication, Presented},
    edge::dispatch::dispatch,
};
use petstore_api::{
    ApiError, Challenge, Credential, Ctx, Subscriptions, Topic,
    operations::{PetStoreApi, Scope},
    ws::{Action, ControlAction},
};

/// What a control action answers.
pub(super) enum Control {
    /// A success payload (JSON text).
    Reply(Bytes),
}

/// Longest token `authenticate` accepts (as `asyncapi.yaml` documents it).
const MAX_TOKEN_LEN: usize = 8192;

/// Most topics one `subscribe`/`unsubscribe` may name.
const MAX_TOPICS_PER_REQUEST: usize = 50;

/// Runs a control action for `session`.
pub(super) async fn run<H: PetStoreApi + Subscriptions>(
    session: &mut Session<H>,
    action: ControlAction,
    payload: Value,
) -> Result<Control, ApiError> {
    match action {
        ControlAction::Authenticate => authenticate(session, payload),
        ControlAction::Refresh => refresh(session, payload).await,
        ControlAction::Subscribe => subscribe(session, payload).await,
        ControlAction::Unsubscribe => unsubscribe(session, payload),
        ControlAction::Ping => Ok(reply(&json!({ "timestamp": now_ms() }))),
    }
}

fn reply(value: &Value) -> Control {
    Control::Reply(Bytes::from(value.to_string()))
}

/// Reads a control payload into its typed form; a wrong shape is a 400 naming the action.
fn read<T: for<'de> Deserialize<'de>>(action: &str, payload: Value) -> Result<T, ApiError> {
    serde_json::from_value(payload)
        .map_err(|error| ApiError::BadRequest(format!("`{action}` payload: {error}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthenticatePayload {
    token: String,
}

fn authenticate<H: PetStoreApi + Subscriptions>(
    session: &mut Session<H>,
    payload: Value,
) -> Result<Control, ApiError> {
    let AuthenticatePayload { token } = read("authenticate", payload)?;
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(ApiError::BadRequest(format!(
            "`authenticate` payload: `token` must have 1 to {MAX_TOKEN_LEN} characters"
        )));
    }
    let authentication = session
        .service()
        .authenticator()
        .authenticate(Some(&token), None);
    adopt(session, authentication)
}

/// Makes verified credentials the session's, answering who the session now is.
fn adopt<H: PetStoreApi + Subscriptions>(
    session: &mut Session<H>,
    authentication: Authentication,
) -> Result<Control, ApiError> {
    let principal = match &authentication.bearer {
        Presented::Valid(principal) => principal.clone(),
        Presented::Absent | Presented::Invalid => {
            return Err(ApiError::Unauthorized {
                challenge: Challenge::InvalidToken,
            });
        }
    };
    if let Some(current) = session.authentication.principal()
        && current.owner_key() != principal.owner_key()
    {
        return Err(ApiError::Forbidden(
            "a session cannot change user: open a new connection".to_owned(),
        ));
    }
    session.sign_in(authentication);
    let expires_at = match &principal.credential {
        Credential::AccessToken { expires_at, .. } => {
            json!(expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        }
        Credential::ServiceKey => Value::Null,
    };
    Ok(reply(&json!({
        "subject": principal.subject,
        "roles": principal.roles.iter().map(|role| role.as_str()).collect::<Vec<_>>(),
        "scopes": principal.scopes().iter().map(Scope::as_str).collect::<Vec<_>>(),
        "expiresAt": expires_at,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RefreshPayload {
    refresh_token: String,
}

async fn refresh<H: PetStoreApi + Subscriptions>(
    session: &mut Session<H>,
    payload: Value,
) -> Result<Control, ApiError> {
    let RefreshPayload { refresh_token } = read("refresh", payload)?;
    // The `refreshToken` operation itself, through the same dispatch as any action: the same
    // rotation, reuse detection and errors as over REST.
    let ctx = Ctx {
        request_id: String::new(),
        client_ip: None,
        principal: None,
    };
    let tokens = dispatch(
        &**session.service().handler(),
        &session.authentication.clone(),
        ctx,
        Action::RefreshToken,
        json!({ "body": { "refreshToken": refresh_token } }),
    )
    .await?;
    let access_token = serde_json::from_slice::<Value>(&tokens.payload)
        .ok()
        .and_then(|value| value.get("accessToken")?.as_str().map(str::to_owned))
        .ok_or_else(|| {
            tracing::error!("refreshToken answered without an access token");
            ApiError::Internal
        })?;
    let authentication = session
        .service()
        .authenticator()
        .authenticate(Some(&access_token), None);
    adopt(session, authentication)?;
    Ok(Control::Reply(tokens.payload))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicsPayload {
    topics: Vec<String>,
}

fn topics(action: &str, payload: Value) -> Result<BTreeSet<Topic>, ApiError> {
    let TopicsPayload { topics } = read(action, payload)?;
    if topics.is_empty() || topics.len() > MAX_TOPICS_PER_REQUEST {
        return Err(ApiError::BadRequest(format!(
            "`{action}` payload: `topics` must list 1 to {MAX_TOPICS_PER_REQUEST} topics"
        )));
    }
    topics
        .iter()
        .map(|topic| {
            topic
                .parse::<Topic>()
                .map_err(|error| ApiError::BadRequest(error.to_string()))
        })
        .collect()
}

/// Subscribes to every topic asked for, or to none if one is refused.
async fn subscribe<H: PetStoreApi + Subscriptions>(
    session: &mut Session<H>,
    payload: Value,
) -> Result<Control, ApiError> {
    let wanted = topics("subscribe", payload)?;
    // Authorization is the handlers' (the same answers as the operations about the same
    // orders); every topic is checked before any is followed.
    let ctx = Ctx {
        request_id: String::new(),
        client_ip: session.client_ip(),
        principal: session.authentication.principal().cloned(),
    };
    for topic in &wanted {
        session
            .service()
            .handler()
            .authorize_topic(&ctx, topic)
            .await?;
    }
    let hub = session.service().hub().clone();
    let id = session.connection_id();
    let current = hub.topics(id);
    let new = wanted
        .iter()
        .filter(|topic| !current.contains(topic))
        .count();
    let limit = session.service().settings().max_subscriptions;
    if current.len() + new > limit {
        return Err(ApiError::BadRequest(format!(
            "a session may follow at most {limit} topics"
        )));
    }
    for topic in wanted {
        hub.subscribe(id, topic);
    }
    Ok(current_topics(session))
}

fn unsubscribe<H: PetStoreApi + Subscriptions>(
    session: &mut Session<H>,
    payload: Value,
) -> Result<Control, ApiError> {
    let unwanted = topics("unsubscribe", payload)?;
    let hub = session.service().hub().clone();
    for topic in &unwanted {
        hub.unsubscribe(session.connection_id(), topic);
    }
    Ok(current_topics(session))
}

/// Answers the session's topics after a change, and records how many there are.
fn current_topics<H: PetStoreApi + Subscriptions>(session: &mut Session<H>) -> Control {
    let topics = session.service().hub().topics(session.connection_id());
    session.subscriptions_changed(topics.len());
    let names: Vec<String> = topics.iter().map(Topic::to_string).collect();
    reply(&json!({ "topics": names }))
}
