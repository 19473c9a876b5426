//! The gate in front of every handler: turns presented credentials into an [`Authentication`]
//! once per request (or WebSocket session), then checks it against an operation's generated
//! security requirements ([`authorize`]).
//!
//! Transport-neutral on purpose: the REST edge and the WebSocket session both extract the raw
//! credentials their own way and share everything from there on, so an operation is guarded
//! identically whichever way it is called.

use std::sync::Arc;

use petstore_api::{
    Challenge, Principal,
    error::{Denied, Forbidden, Unauthorized},
    security::{SchemeKind, SecurityRequirement},
};

use super::{ApiKeys, AuthError, TokenService};
use crate::telemetry::metrics::{self, AuthResult, CredentialKind};

/// What became of one kind of credential.
#[derive(Debug, Clone, Default)]
pub enum Presented {
    /// None was presented.
    #[default]
    Absent,
    /// It was verified.
    Valid(Arc<Principal>),
    /// It was presented and rejected (the reason was logged).
    Invalid,
}

impl Presented {
    fn principal(&self) -> Option<&Arc<Principal>> {
        match self {
            Self::Valid(principal) => Some(principal),
            Self::Absent | Self::Invalid => None,
        }
    }
}

/// The credentials of a request, verified.
#[derive(Debug, Clone, Default)]
pub struct Authentication {
    /// `Authorization: Bearer …`.
    pub bearer: Presented,
    /// The service key header.
    pub api_key: Presented,
}

impl Authentication {
    /// No credentials at all.
    #[must_use]
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// The verified caller, if any credential was valid (the bearer token first).
    #[must_use]
    pub fn principal(&self) -> Option<&Arc<Principal>> {
        self.bearer.principal().or_else(|| self.api_key.principal())
    }

    fn for_scheme(&self, kind: SchemeKind) -> &Presented {
        match kind {
            SchemeKind::HttpBearer { .. } => &self.bearer,
            SchemeKind::ApiKeyHeader { .. } => &self.api_key,
        }
    }
}

/// Verifies credentials: access tokens with the [`TokenService`], service keys with [`ApiKeys`].
#[derive(Debug)]
pub struct Authenticator {
    tokens: Arc<TokenService>,
    api_keys: ApiKeys,
}

impl Authenticator {
    /// An authenticator over these verifiers.
    #[must_use]
    pub fn new(tokens: Arc<TokenService>, api_keys: ApiKeys) -> Self {
        Self { tokens, api_keys }
    }

    /// The token service (to issue and revoke tokens).
    #[must_use]
    pub fn tokens(&self) -> &Arc<TokenService> {
        &self.tokens
    }

    /// Verifies whatever was presented. Rejections are logged at `debug` with their precise
    /// reason (forged, expired, revoked, …), which the client never learns.
    #[must_use]
    pub fn authenticate(&self, bearer: Option<&str>, api_key: Option<&str>) -> Authentication {
        let bearer = match bearer {
            None => Presented::Absent,
            Some(token) => match self.tokens.verify(token) {
                Ok(claims) => {
                    metrics::security()
                        .auth_attempt(CredentialKind::AccessToken, AuthResult::Success);
                    Presented::Valid(Arc::new(claims.principal()))
                }
                Err(error) => {
                    metrics::security()
                        .auth_attempt(CredentialKind::AccessToken, AuthResult::Failure);
                    log_rejection(&error);
                    Presented::Invalid
                }
            },
        };
        let api_key = match api_key {
            None => Presented::Absent,
            Some(key) => match self.api_keys.verify(key) {
                Some(service) => {
                    metrics::security().auth_attempt(CredentialKind::ApiKey, AuthResult::Success);
                    Presented::Valid(Arc::new(Principal::service(&service.name, service.role)))
                }
                None => {
                    metrics::security().auth_attempt(CredentialKind::ApiKey, AuthResult::Failure);
                    tracing::debug!("unknown API key presented");
                    Presented::Invalid
                }
            },
        };
        Authentication { bearer, api_key }
    }
}

fn log_rejection(error: &AuthError) {
    if error.is_credential_error() {
        tracing::debug!(reason = %error, "bearer token rejected");
    } else {
        tracing::error!(%error, "cannot verify a bearer token");
    }
}

/// Checks `authentication` against an operation's security requirements (any alternative
/// suffices; within one, every scheme must be presented, valid, and grant its scopes).
///
/// Returns the principal the operation runs as: the one that satisfied a requirement, or for
/// public operations and anonymous alternatives whoever was validly authenticated (possibly
/// nobody). Invalid credentials do not matter where anonymous callers are welcome.
///
/// # Errors
/// [`Denied::Unauthorized`] when credentials are missing or invalid, [`Denied::Forbidden`] when
/// valid credentials lack a scope.
pub fn authorize(
    authentication: &Authentication,
    security: &[SecurityRequirement],
) -> Result<Option<Arc<Principal>>, Denied> {
    if security.is_empty() {
        return Ok(authentication.principal().cloned());
    }
    let mut anonymous_allowed = false;
    let mut saw_invalid = false;
    let mut missing_scope = None;
    for requirement in security {
        if requirement.is_anonymous() {
            anonymous_allowed = true;
            continue;
        }
        let mut granted = None;
        let mut satisfied = true;
        for needed in requirement.0 {
            match authentication.for_scheme(needed.scheme.kind) {
                Presented::Absent => satisfied = false,
                Presented::Invalid => {
                    saw_invalid = true;
                    satisfied = false;
                }
                Presented::Valid(principal) => {
                    match needed
                        .scopes
                        .iter()
                        .find(|scope| !principal.has_scope(**scope))
                    {
                        Some(scope) => {
                            missing_scope.get_or_insert(*scope);
                            satisfied = false;
                        }
                        None => granted = Some(principal.clone()),
                    }
                }
            }
        }
        if satisfied {
            return Ok(granted);
        }
    }
    if anonymous_allowed {
        return Ok(authentication.principal().cloned());
    }
    if saw_invalid {
        return Err(Unauthorized(Challenge::InvalidToken).into());
    }
    match missing_scope {
        Some(scope) => {
            Err(Forbidden(format!("this operation needs the `{scope}` permission")).into())
        }
        None => Err(Unauthorized(Challenge::Missing).into()),
    }
}

/// The caller of an operation that does not require credentials (it is public, or one of its
/// requirements is the anonymous alternative): the principal that satisfied a requirement, or
/// whoever was validly authenticated, or nobody. Invalid credentials are ignored there.
#[must_use]
pub fn identify(
    authentication: &Authentication,
    security: &[SecurityRequirement],
) -> Option<Arc<Principal>> {
    // `authorize` only refuses where every alternative needs credentials, which the operations
    // calling this one do not have.
    authorize(authentication, security).unwrap_or_else(|_| authentication.principal().cloned())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use petstore_api::{
        Challenge, Principal, Role,
        error::{Denied, Forbidden, Unauthorized},
        operations::security,
    };

    use super::{Authentication, Presented, authorize, identify};

    fn valid(role: Role) -> Presented {
        Presented::Valid(Arc::new(Principal::service("caller", role)))
    }

    fn bearer(presented: Presented) -> Authentication {
        Authentication {
            bearer: presented,
            ..Authentication::default()
        }
    }

    #[test]
    fn public_operations_let_everyone_in() {
        for authentication in [
            Authentication::anonymous(),
            bearer(Presented::Invalid),
            bearer(valid(Role::Customer)),
        ] {
            assert!(authorize(&authentication, security::GET_PET_BY_ID).is_ok());
        }
    }

    #[test]
    fn missing_credentials_are_a_plain_challenge_and_invalid_ones_an_invalid_token() {
        assert_eq!(
            authorize(&Authentication::anonymous(), security::ADD_PET),
            Err(Denied::Unauthorized(Unauthorized(Challenge::Missing)))
        );
        assert_eq!(
            authorize(&bearer(Presented::Invalid), security::ADD_PET),
            Err(Denied::Unauthorized(Unauthorized(Challenge::InvalidToken)))
        );
    }

    #[test]
    fn a_valid_caller_without_the_scope_is_forbidden() {
        let outcome = authorize(&bearer(valid(Role::Customer)), security::ADD_PET);
        assert!(
            matches!(&outcome, Err(Denied::Forbidden(Forbidden(message))) if message.contains("pets:write")),
            "{outcome:?}"
        );
    }

    #[test]
    fn either_scheme_of_a_requirement_list_suffices() {
        let by_bearer = authorize(&bearer(valid(Role::Admin)), security::ADD_PET);
        assert_eq!(
            by_bearer
                .ok()
                .flatten()
                .map(|p| p.subject.clone())
                .as_deref(),
            Some("caller")
        );
        let by_key = Authentication {
            api_key: valid(Role::Admin),
            ..Authentication::default()
        };
        assert!(matches!(authorize(&by_key, security::ADD_PET), Ok(Some(_))));
        // An invalid bearer token does not spoil a valid key for the same operation.
        let mixed = Authentication {
            bearer: Presented::Invalid,
            api_key: valid(Role::Admin),
        };
        assert!(matches!(authorize(&mixed, security::ADD_PET), Ok(Some(_))));
    }

    #[test]
    fn an_anonymous_alternative_ignores_invalid_credentials_and_keeps_valid_ones() {
        assert!(matches!(
            authorize(&bearer(Presented::Invalid), security::LOGOUT_USER),
            Ok(None)
        ));
        assert!(matches!(
            authorize(&bearer(valid(Role::Customer)), security::LOGOUT_USER),
            Ok(Some(_))
        ));
        assert!(identify(&bearer(Presented::Invalid), security::LOGOUT_USER).is_none());
        assert!(identify(&bearer(valid(Role::Customer)), security::LOGOUT_USER).is_some());
    }

    #[test]
    fn public_operations_identify_whoever_is_validly_signed_in() {
        assert!(identify(&Authentication::anonymous(), security::GET_PET_BY_ID).is_none());
        assert!(identify(&bearer(Presented::Invalid), security::GET_PET_BY_ID).is_none());
        assert!(identify(&bearer(valid(Role::Customer)), security::GET_PET_BY_ID).is_some());
    }

    #[test]
    fn customers_hold_their_scopes_and_admins_every_scope() {
        let customer = authorize(&bearer(valid(Role::Customer)), security::PLACE_ORDER);
        assert!(matches!(customer, Ok(Some(_))));
        for requirements in [
            security::ADD_PET,
            security::GET_INVENTORY,
            security::UPDATE_ORDER,
            security::CREATE_USERS_WITH_LIST_INPUT,
        ] {
            assert!(authorize(&bearer(valid(Role::Admin)), requirements).is_ok());
            assert!(matches!(
                authorize(&bearer(valid(Role::Customer)), requirements),
                Err(Denied::Forbidden(_))
            ));
        }
    }
}
