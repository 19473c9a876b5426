//! Administrative endpoints, for callers holding the admin role only.
//!
//! - `GET /admin/nodes`: the live nodes of the cluster with their load,
//!   `{"nodes":[{"id","address","version","connections","inFlight","startedAt","lastSeen"}, …]}`,
//!   never cached. 503 `UNAVAILABLE` while Redis does not answer.
//!
//! These routes are outside the spec's operations, so the edge has not identified the caller:
//! each handler asks the [`AccessControl`] itself and checks the role with [`require_admin`].

use std::sync::Arc;

use poem::{
    IntoResponse, Request, Response, handler,
    http::{HeaderValue, header},
    web::{Data, Json},
};
use serde::Serialize;

use crate::{
    auth::{Authentication, Presented},
    cluster::{NodeRecord, NodeRegistry},
    edge::{AccessControl, HttpError},
};
use petstore_api::{ApiError, Challenge, Principal, Role};

/// What the admin endpoints read.
#[derive(Clone)]
pub struct AdminState {
    nodes: NodeRegistry,
    access: Arc<AccessControl>,
}

impl AdminState {
    /// State listing `nodes`, identifying callers with `access`.
    pub fn new(nodes: NodeRegistry, access: Arc<AccessControl>) -> Self {
        Self { nodes, access }
    }
}

/// The body of `GET /admin/nodes`.
#[derive(Debug, Serialize)]
struct Nodes {
    nodes: Vec<NodeRecord>,
}

/// `GET /admin/nodes`: the live nodes, sorted by id.
#[handler]
pub async fn list_nodes(
    request: &Request,
    Data(state): Data<&AdminState>,
) -> poem::Result<Response> {
    let caller = state.access.caller(request);
    let principal = require_admin(&caller.authentication).map_err(HttpError)?;
    let nodes = state
        .nodes
        .live_nodes()
        .await
        .map_err(|error| {
            if error.is_unavailable() {
                tracing::warn!(%error, "cannot list the nodes");
                ApiError::unavailable(
                    "the node registry is unavailable; try again later",
                    error.retry_after_secs(),
                )
            } else {
                tracing::error!(%error, "cannot list the nodes");
                ApiError::Internal
            }
        })
        .map_err(HttpError)?;
    tracing::debug!(admin = %principal.subject, nodes = nodes.len(), "nodes listed");
    let mut response = Json(Nodes { nodes }).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The caller, if it holds the admin role.
///
/// # Errors
/// [`ApiError::Unauthorized`] without valid credentials (an invalid-token challenge if some
/// were presented and rejected), [`ApiError::Forbidden`] for a valid caller without the role.
pub fn require_admin(authentication: &Authentication) -> Result<&Arc<Principal>, ApiError> {
    let Some(principal) = authentication.principal() else {
        let rejected = matches!(authentication.bearer, Presented::Invalid)
            || matches!(authentication.api_key, Presented::Invalid);
        return Err(ApiError::Unauthorized {
            challenge: if rejected {
                Challenge::InvalidToken
            } else {
                Challenge::Missing
            },
        });
    };
    if principal.roles.contains(&Role::Admin) {
        Ok(principal)
    } else {
        Err(ApiError::Forbidden(
            "this endpoint is for administrators".to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(bearer: Presented, api_key: Presented) -> Authentication {
        Authentication { bearer, api_key }
    }

    fn valid(role: Role) -> Presented {
        Presented::Valid(Arc::new(Principal::service("caller", role)))
    }

    #[test]
    fn only_admins_pass() {
        for authentication in [
            with(valid(Role::Admin), Presented::Absent),
            with(Presented::Absent, valid(Role::Admin)),
            // A rejected token does not matter when the service key is an admin's.
            with(Presented::Invalid, valid(Role::Admin)),
        ] {
            let principal = require_admin(&authentication).expect("admin");
            assert!(principal.roles.contains(&Role::Admin));
        }
    }

    #[test]
    fn anonymous_callers_are_challenged_and_others_forbidden() {
        assert_eq!(
            require_admin(&Authentication::anonymous()).map(|_| ()),
            Err(ApiError::Unauthorized {
                challenge: Challenge::Missing
            })
        );
        for authentication in [
            with(Presented::Invalid, Presented::Absent),
            with(Presented::Absent, Presented::Invalid),
        ] {
            assert_eq!(
                require_admin(&authentication).map(|_| ()),
                Err(ApiError::Unauthorized {
                    challenge: Challenge::InvalidToken
                })
            );
        }
        let customer = with(valid(Role::Customer), Presented::Absent);
        let outcome = require_admin(&customer);
        assert!(
            matches!(outcome, Err(ApiError::Forbidden(_))),
            "{outcome:?}"
        );
    }
}
