//! The control actions: what a session does for itself rather than through an operation.
//!
//! - `authenticate {token}`: verify an access token and act as its principal from now on.
//! - `refresh {refreshToken}`: the `refreshToken` operation (same rotation and reuse detection),
//!   then continue on the new access token; answers what `refreshToken` answers.
//! - `subscribe` / `unsubscribe {topics}`: follow or stop following topics; a subscription is
//!   authorized by the handlers when it is made ([`Subscriptions`]: `orders` and `inventory`
//!   need their scopes, `order:{id}` the order's owner or `orders:manage`).
//! - `ping`: answered with the server's clock.
//!
//! The session owns its state and the control actions do not reach into it: they read what the
//! session tells them ([`Asker`]) and answer what the session is to do ([`Control`]), which the
//! session applies. So this module knows the WebSocket service, not the session.

use std::{collections::BTreeSet, net::IpAddr};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{WsService, envelope::now_ms};
use crate::{
    auth::{Authentication, Presented},
    edge::dispatch::dispatch,
    events::ConnectionId,
};
use petstore_api::{
    ApiError, Challenge, Credential, Ctx, Subscriptions, Topic,
    operations::{PetStoreApi, Scope},
    ws::{Action, ControlAction, limits},
};

/// The session asking, as far as a control action needs to know it.
pub(super) struct Asker<'a> {
    /// Its connection (the hub's key for its subscriptions).
    pub(super) connection: ConnectionId,
    /// Its client's address.
    pub(super) client_ip: Option<IpAddr>,
    /// Who it acts as now.
    pub(super) authentication: &'a Authentication,
}

/// What a control action answers, and what the session is to do about it.
pub(super) enum Control {
    /// Answer with this success payload (JSON text).
    Reply(Bytes),
    /// Act as the principal of these verified credentials from now on, then answer.
    SignIn(Authentication, Bytes),
    /// The session now follows this many topics; answer.
    Topics(usize, Bytes),
}

impl Control {
    /// The success payload the action answers with.
    fn reply(value: &Value) -> Bytes {
        Bytes::from(value.to_string())
    }
}

/// Runs a control action for the session `asker`.
pub(super) async fn run<H: PetStoreApi + Subscriptions>(
    service: &WsService<H>,
    asker: Asker<'_>,
    action: ControlAction,
    payload: Value,
) -> Result<Control, ApiError> {
    match action {
        ControlAction::Authenticate => authenticate(service, &asker, payload),
        ControlAction::Refresh => refresh(service, &asker, payload).await,
        ControlAction::Subscribe => subscribe(service, &asker, payload).await,
        ControlAction::Unsubscribe => unsubscribe(service, &asker, payload),
        ControlAction::Ping => Ok(Control::Reply(Control::reply(
            &json!({ "timestamp": now_ms() }),
        ))),
    }
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
    service: &WsService<H>,
    asker: &Asker<'_>,
    payload: Value,
) -> Result<Control, ApiError> {
    use limits::{AUTHENTICATE_TOKEN_MAX_LENGTH as MAX, AUTHENTICATE_TOKEN_MIN_LENGTH as MIN};
    let AuthenticatePayload { token } = read("authenticate", payload)?;
    if token.len() < MIN || token.len() > MAX {
        return Err(ApiError::BadRequest(format!(
            "`authenticate` payload: `token` must have {MIN} to {MAX} characters"
        )));
    }
    let authentication = service.authenticator().authenticate(Some(&token), None);
    let session = adopt(asker, &authentication)?;
    Ok(Control::SignIn(authentication, session))
}

/// Checks that verified credentials may become the session's, and answers who the session
/// will then be (the `authenticate` reply).
fn adopt(asker: &Asker<'_>, authentication: &Authentication) -> Result<Bytes, ApiError> {
    let principal = match &authentication.bearer {
        Presented::Valid(principal) => principal,
        Presented::Absent | Presented::Invalid => {
            return Err(ApiError::Unauthorized {
                challenge: Challenge::InvalidToken,
            });
        }
    };
    if let Some(current) = asker.authentication.principal()
        && current.owner_key() != principal.owner_key()
    {
        return Err(ApiError::Forbidden(
            "a session cannot change user: open a new connection".to_owned(),
        ));
    }
    let expires_at = match &principal.credential {
        Credential::AccessToken { expires_at, .. } => {
            json!(expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        }
        Credential::ServiceKey => Value::Null,
    };
    Ok(Control::reply(&json!({
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
    service: &WsService<H>,
    asker: &Asker<'_>,
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
        &**service.handler(),
        asker.authentication,
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
    let authentication = service
        .authenticator()
        .authenticate(Some(&access_token), None);
    adopt(asker, &authentication)?;
    Ok(Control::SignIn(authentication, tokens.payload))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicsPayload {
    topics: Vec<String>,
}

/// The topics of a `subscribe` or `unsubscribe` payload, which may name `min` to `max` of them.
fn topics(
    action: &str,
    (min, max): (usize, usize),
    payload: Value,
) -> Result<BTreeSet<Topic>, ApiError> {
    let TopicsPayload { topics } = read(action, payload)?;
    if topics.len() < min || topics.len() > max {
        return Err(ApiError::BadRequest(format!(
            "`{action}` payload: `topics` must list {min} to {max} topics"
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
    service: &WsService<H>,
    asker: &Asker<'_>,
    payload: Value,
) -> Result<Control, ApiError> {
    let bounds = (
        limits::SUBSCRIBE_TOPICS_MIN_ITEMS,
        limits::SUBSCRIBE_TOPICS_MAX_ITEMS,
    );
    let wanted = topics("subscribe", bounds, payload)?;
    // Authorization is the handlers' (the same answers as the operations about the same
    // orders); every topic is checked before any is followed.
    let ctx = Ctx {
        request_id: String::new(),
        client_ip: asker.client_ip,
        principal: asker.authentication.principal().cloned(),
    };
    for topic in &wanted {
        service.handler().authorize_topic(&ctx, topic).await?;
    }
    let hub = service.hub();
    let current = hub.topics(asker.connection);
    let new = wanted
        .iter()
        .filter(|topic| !current.contains(topic))
        .count();
    let limit = service.settings().max_subscriptions;
    if current.len() + new > limit {
        return Err(ApiError::BadRequest(format!(
            "a session may follow at most {limit} topics"
        )));
    }
    for topic in wanted {
        hub.subscribe(asker.connection, topic);
    }
    Ok(current_topics(service, asker))
}

fn unsubscribe<H: PetStoreApi + Subscriptions>(
    service: &WsService<H>,
    asker: &Asker<'_>,
    payload: Value,
) -> Result<Control, ApiError> {
    let bounds = (
        limits::UNSUBSCRIBE_TOPICS_MIN_ITEMS,
        limits::UNSUBSCRIBE_TOPICS_MAX_ITEMS,
    );
    let unwanted = topics("unsubscribe", bounds, payload)?;
    for topic in &unwanted {
        service.hub().unsubscribe(asker.connection, topic);
    }
    Ok(current_topics(service, asker))
}

/// The session's topics after a change: how many (for the session to record) and their names
/// (the reply).
fn current_topics<H: PetStoreApi + Subscriptions>(
    service: &WsService<H>,
    asker: &Asker<'_>,
) -> Control {
    let topics = service.hub().topics(asker.connection);
    let names: Vec<String> = topics.iter().map(Topic::to_string).collect();
    Control::Topics(topics.len(), Control::reply(&json!({ "topics": names })))
}
