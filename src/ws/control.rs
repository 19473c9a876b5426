//! The control actions: what a session does for itself rather than through an operation.
//!
//! - `authenticate {token}`: verify an access token and act as its principal from now on.
//! - `refresh {refreshToken}`: the `refreshToken` operation (same rotation and reuse detection),
//!   then continue on the new access token; answers what `refreshToken` answers.
//! - `subscribe {topics, since}` / `unsubscribe {topics}`: follow or stop following topics; a
//!   subscription is authorized by the handlers when it is made ([`Subscriptions`]: `orders` and
//!   `inventory` need their scopes, `order:{id}` the order's owner or `orders:manage`). The
//!   answer gives each topic's position; for a topic resumed from a position (`since`), the
//!   events after it follow the answer (see `crate::events::history`).
//! - `ping`: answered with the server's clock.
//!
//! The session owns its state and the control actions do not reach into it: they read what the
//! session tells them ([`Asker`]) and answer what the session is to do ([`Control`]), which the
//! session applies. So this module knows the WebSocket service, not the session.

use std::{net::IpAddr, sync::Arc};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{WsService, envelope::now_ms};
use crate::{
    auth::{Authentication, Presented},
    edge::dispatch::dispatch,
    events::{ConnectionId, Notification, RecoverError, Resume, TextFrame, TopicRecovery},
    telemetry::metrics::{self, RecoveryResult},
};
use petstore_api::{
    ApiError, Challenge, Credential, Ctx, NotRecovered, StreamPosition, SubscribePayload,
    SubscribedPayload, Subscriptions, Topic, TopicPosition,
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
    /// The session now follows `count` topics; answer, then send the `replay` frames.
    Subscribed {
        /// Topics the session follows.
        count: usize,
        /// The answer.
        reply: Bytes,
        /// Notification frames of missed events, in order.
        replay: Vec<TextFrame>,
    },
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

/// The topics of a `subscribe` or `unsubscribe` payload, which may name `min` to `max` of them,
/// each once, in the request's order.
fn parse_topics(
    action: &str,
    (min, max): (usize, usize),
    topics: &[String],
) -> Result<Vec<Topic>, ApiError> {
    if topics.len() < min || topics.len() > max {
        return Err(ApiError::BadRequest(format!(
            "`{action}` payload: `topics` must list {min} to {max} topics"
        )));
    }
    let mut parsed: Vec<Topic> = Vec::with_capacity(topics.len());
    for topic in topics {
        let topic = topic
            .parse::<Topic>()
            .map_err(|error| ApiError::BadRequest(error.to_string()))?;
        if !parsed.contains(&topic) {
            parsed.push(topic);
        }
    }
    Ok(parsed)
}

/// The longest epoch a client may hand back; the buses make 32-character ones.
const EPOCH_MAX_LENGTH: usize = 64;

/// Subscribes to every topic asked for, or to none if one is refused, and answers each topic's
/// position; for topics the client resumes (`since`), the events it missed follow the answer.
async fn subscribe<H: PetStoreApi + Subscriptions>(
    service: &WsService<H>,
    asker: &Asker<'_>,
    payload: Value,
) -> Result<Control, ApiError> {
    let SubscribePayload { topics, since } = read("subscribe", payload)?;
    let bounds = (
        limits::SUBSCRIBE_TOPICS_MIN_ITEMS,
        limits::SUBSCRIBE_TOPICS_MAX_ITEMS,
    );
    let wanted = parse_topics("subscribe", bounds, &topics)?;
    let resumes = resumes(&wanted, since)?;
    // Authorization is the handlers' (the same answers as the operations about the same
    // orders); every topic is checked before any is followed, and a replay shows only events of
    // topics checked here, exactly as live delivery does.
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
    let new: Vec<Topic> = wanted
        .iter()
        .filter(|topic| !current.contains(topic))
        .cloned()
        .collect();
    let limit = service.settings().max_subscriptions;
    if current.len() + new.len() > limit {
        return Err(ApiError::BadRequest(format!(
            "a session may follow at most {limit} topics"
        )));
    }
    let floors = resumes.iter().map(|resume| {
        let floor = resume
            .since
            .as_ref()
            .map(|since| (Arc::<str>::from(since.epoch.as_str()), since.offset));
        (resume.topic.clone(), floor)
    });
    let Some(horizon) = hub.subscribe_from(asker.connection, floors) else {
        return Err(ApiError::Internal);
    };
    let recovered = match service.events().recover(&resumes, horizon).await {
        Ok(recovered) => recovered,
        Err(error) => {
            // Nothing of this request stays: the topics it added go, and the positions it set.
            for topic in &new {
                hub.unsubscribe(asker.connection, topic);
            }
            hub.clear_floors(asker.connection, resumes.iter().map(|resume| &resume.topic));
            return Err(match error {
                RecoverError::Ahead { .. } => ApiError::BadRequest(error.to_string()),
                RecoverError::Unavailable(reason) => {
                    tracing::warn!(%reason, "a subscription could not be recovered");
                    ApiError::Unavailable {
                        message: "the event history is unavailable; try again".to_owned(),
                        retry_after_secs: 1,
                    }
                }
            });
        }
    };
    let (positions, replay) = replay(recovered);
    let topics = hub.topics(asker.connection);
    let reply = SubscribedPayload {
        topics: topics.clone(),
        positions,
    };
    let reply = serde_json::to_vec(&reply).map_err(|error| {
        tracing::error!(%error, "cannot render a subscribe answer");
        ApiError::Internal
    })?;
    Ok(Control::Subscribed {
        count: topics.len(),
        reply: Bytes::from(reply),
        replay,
    })
}

/// The topics of the request in its order, each with the client's position if it gave one.
fn resumes(wanted: &[Topic], since: Vec<StreamPosition>) -> Result<Vec<Resume>, ApiError> {
    let max = limits::SUBSCRIBE_SINCE_MAX_ITEMS;
    if since.len() > max {
        return Err(ApiError::BadRequest(format!(
            "`subscribe` payload: `since` must list at most {max} positions"
        )));
    }
    let mut resumes: Vec<Resume> = wanted
        .iter()
        .map(|topic| Resume {
            topic: topic.clone(),
            since: None,
        })
        .collect();
    for position in since {
        if position.epoch.is_empty() || position.epoch.len() > EPOCH_MAX_LENGTH {
            return Err(ApiError::BadRequest(format!(
                "`subscribe` payload: `since` epoch of topic {} must have 1 to \
                 {EPOCH_MAX_LENGTH} characters",
                position.topic
            )));
        }
        let Some(resume) = resumes
            .iter_mut()
            .find(|resume| resume.topic == position.topic)
        else {
            return Err(ApiError::BadRequest(format!(
                "`subscribe` payload: `since` names topic {}, which `topics` does not list",
                position.topic
            )));
        };
        if resume.since.is_some() {
            return Err(ApiError::BadRequest(format!(
                "`subscribe` payload: `since` names topic {} twice",
                position.topic
            )));
        }
        resume.since = Some(position);
    }
    Ok(resumes)
}

/// Each topic's position, and the frames of the events to replay: every topic's, once each
/// (an event of `pets` and `pet:5` is replayed once to a session resuming both), in the order
/// they were published.
fn replay(recovered: Vec<TopicRecovery>) -> (Vec<TopicPosition>, Vec<TextFrame>) {
    let mut positions = Vec::with_capacity(recovered.len());
    let mut events = Vec::new();
    for recovery in recovered {
        let result = match (recovery.position.recovered, recovery.position.reason) {
            (Some(true), _) => Some(RecoveryResult::Recovered),
            (_, Some(NotRecovered::EpochChanged)) => Some(RecoveryResult::EpochChanged),
            (_, Some(NotRecovered::TooOld)) => Some(RecoveryResult::TooOld),
            _ => None,
        };
        if let Some(result) = result {
            metrics::ws().recovery(result);
        }
        positions.push(recovery.position);
        events.extend(recovery.replay);
    }
    events.sort_by_key(Notification::seq);
    events.dedup_by_key(|event| event.seq());
    if !events.is_empty() {
        metrics::ws().replayed(events.len() as u64);
    }
    let frames = events.iter().map(Notification::frame).collect();
    (positions, frames)
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
    let TopicsPayload { topics } = read("unsubscribe", payload)?;
    let unwanted = parse_topics("unsubscribe", bounds, &topics)?;
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
