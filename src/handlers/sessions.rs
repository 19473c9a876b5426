//! Signing in and out: password logins (`loginUser`, `createToken`), refresh-token rotation
//! (`refreshToken`) and ending sessions (`logoutUser`, and on behalf of user changes).
//!
//! Every sign-in starts a session (a refresh-token family) and every access token carries its
//! id, so ending a session — logout, a reused refresh token, a password change, a deleted user —
//! revokes every token issued within it at once.

use petstore_api::{
    Challenge, Credential, Ctx, Role, Serialized,
    error::{BadRequest, Failure, RateLimited, ServerError, Unauthorized},
    models::TokenResponse,
    operations::*,
};

use super::PetStore;
use crate::{
    auth::{
        self, AccessGrant, AuthError, IssuedToken,
        sessions::{RefreshGrant, SessionError},
    },
    store::StoredUser,
    telemetry::metrics::{self, AuthResult, CredentialKind},
};

/// The 401 of a failed password or refresh-token check: one answer for every reason.
fn invalid_credentials() -> Unauthorized {
    Unauthorized(Challenge::InvalidCredentials)
}

fn server_fault(context: &'static str, error: impl std::fmt::Display) -> ServerError {
    tracing::error!(%error, "{context}");
    ServerError::Internal
}

/// A session store that could not start, end or find sessions: the server's fault.
fn sessions_unavailable(error: SessionError) -> ServerError {
    tracing::error!(%error, "session store unavailable");
    ServerError::unavailable("sessions are unavailable; try again later", 1)
}

/// A refresh token that was refused (401), or a session store that failed (5XX).
fn refresh_refused(error: SessionError) -> Failure<Unauthorized> {
    if error.is_credential_error() {
        tracing::debug!(reason = %error, "refresh token rejected");
        Failure::Refused(invalid_credentials())
    } else {
        Failure::Server(sessions_unavailable(error))
    }
}

impl PetStore {
    /// Counts a login attempt and checks the password. Unknown users cost the same hashing
    /// work as wrong passwords, and both answer `None`, so neither the answer nor its timing
    /// tells which usernames exist.
    async fn check_password(
        &self,
        ctx: &Ctx,
        username: &str,
        password: String,
    ) -> Result<Option<std::sync::Arc<StoredUser>>, Failure<RateLimited>> {
        if let Err(throttled) = self
            .auth
            .login_throttle
            .check(username, ctx.client_ip)
            .await
        {
            tracing::info!(client_ip = ?ctx.client_ip, "login attempts throttled");
            metrics::security().login_throttled();
            return Err(Failure::Refused(RateLimited {
                retry_after_secs: throttled.retry_after.as_secs().max(1),
                limit: u64::from(self.settings.login_burst),
                reset_secs: throttled.retry_after.as_secs().max(1),
            }));
        }
        let hashing_failed = |error: AuthError| server_fault("password hashing failed", error);
        let Some(user) = self
            .store
            .get_user(username)
            .await
            .map_err(Failure::widen)?
        else {
            auth::verify_dummy_async(password)
                .await
                .map_err(hashing_failed)?;
            metrics::security().auth_attempt(CredentialKind::Password, AuthResult::Failure);
            return Ok(None);
        };
        let matches = auth::verify_password_async(password, user.password_hash.clone())
            .await
            .map_err(hashing_failed)?;
        metrics::security().auth_attempt(CredentialKind::Password, AuthResult::of(matches));
        Ok(matches.then_some(user))
    }

    /// An access token for `user` within session `session_id`, with the permissions of the
    /// user's current roles.
    fn issue_access(
        &self,
        user: &StoredUser,
        session_id: &str,
    ) -> Result<IssuedToken, ServerError> {
        let grant = AccessGrant {
            subject: user.user.value.username.clone(),
            roles: user
                .roles
                .iter()
                .map(|role| role.as_str().to_owned())
                .collect(),
            perms: permissions_of(&user.roles),
            session_id: Some(session_id.to_owned()),
        };
        self.auth
            .tokens
            .issue(&grant)
            .map_err(|error| server_fault("cannot sign an access token", error))
    }

    /// Ends every session of `username` except `keep`, refresh and access tokens alike.
    pub(super) async fn end_sessions_of(
        &self,
        username: &str,
        keep: Option<&str>,
    ) -> Result<(), ServerError> {
        let ended = self
            .auth
            .sessions
            .revoke_user(username, keep)
            .await
            .map_err(sessions_unavailable)?;
        for session_id in ended {
            self.auth.tokens.revoke_session(&session_id);
        }
        Ok(())
    }
}

/// Scope names of `roles`, for the token's `perms` claim: other services reading the token see
/// what it may do without knowing our role table.
fn permissions_of(roles: &[Role]) -> Vec<String> {
    let mut scopes: Vec<_> = roles
        .iter()
        .flat_map(|role| role.scopes().iter())
        .map(|scope| scope.as_str().to_owned())
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    scopes
}

fn token_response(access: &IssuedToken, refresh: &RefreshGrant) -> Serialized<TokenResponse> {
    Serialized::new(&TokenResponse {
        access_token: access.token.clone(),
        token_type: "Bearer".to_owned(),
        expires_in: access.lifetime.num_seconds(),
        expires_at: access.expires_at,
        refresh_token: refresh.token.clone(),
        refresh_expires_at: refresh.expires_at,
    })
}

pub(super) async fn login_user(
    this: &PetStore,
    ctx: &Ctx,
    request: LoginUserRequest,
) -> Result<LoginUserResponse, LoginUserError> {
    let Some(user) = this
        .check_password(ctx, &request.username, request.password)
        .await?
    else {
        // The classic API answers a failed login with 400.
        return Err(BadRequest("invalid username/password supplied".to_owned()).into());
    };
    // A session without a refresh token (the classic API has no way to hand one out), so that
    // logout and user changes can end it like any other; it lives as long as the access token.
    let session = this
        .auth
        .sessions
        .start(&user.user.value.username, this.auth.tokens.access_ttl())
        .await
        .map_err(sessions_unavailable)?;
    let issued = this.issue_access(&user, &session.session_id)?;
    Ok(LoginUserResponse::Ok {
        body: Serialized::new(&issued.token),
        x_rate_limit: i32::try_from(this.settings.rate_limit_per_hour).unwrap_or(i32::MAX),
        x_expires_after: issued.expires_at,
    })
}

pub(super) async fn create_token(
    this: &PetStore,
    ctx: &Ctx,
    request: CreateTokenRequest,
) -> Result<CreateTokenResponse, CreateTokenError> {
    let body = request.body;
    let user = this
        .check_password(ctx, &body.username, body.password)
        .await?
        .ok_or_else(invalid_credentials)?;
    let refresh = this
        .auth
        .sessions
        .start(&user.user.value.username, this.settings.refresh_ttl)
        .await
        .map_err(sessions_unavailable)?;
    let access = this.issue_access(&user, &refresh.session_id)?;
    Ok(CreateTokenResponse::Ok(token_response(&access, &refresh)))
}

pub(super) async fn refresh_token(
    this: &PetStore,
    request: RefreshTokenRequest,
) -> Result<RefreshTokenResponse, RefreshTokenError> {
    let rotation = match this
        .auth
        .sessions
        .rotate(&request.body.refresh_token, this.settings.refresh_ttl)
        .await
    {
        Ok(rotation) => rotation,
        Err(SessionError::Reused { session_id }) => {
            // A spent token came back: stolen or replayed. Its session is over for everyone.
            tracing::warn!(%session_id, "refresh token reused; session revoked");
            this.auth.tokens.revoke_session(&session_id);
            metrics::security().auth_attempt(CredentialKind::RefreshToken, AuthResult::Failure);
            return Err(invalid_credentials().into());
        }
        Err(error) => {
            if error.is_credential_error() {
                metrics::security().auth_attempt(CredentialKind::RefreshToken, AuthResult::Failure);
            }
            return Err(refresh_refused(error).into());
        }
    };
    // Roles are read again, so a changed role takes effect at the next refresh.
    let Some(user) = this.store.get_user(&rotation.username).await? else {
        // The user is gone; so is the session.
        let _ = this.auth.sessions.revoke(&rotation.session_id).await;
        this.auth.tokens.revoke_session(&rotation.session_id);
        metrics::security().auth_attempt(CredentialKind::RefreshToken, AuthResult::Failure);
        return Err(invalid_credentials().into());
    };
    let access = this.issue_access(&user, &rotation.session_id)?;
    metrics::security().auth_attempt(CredentialKind::RefreshToken, AuthResult::Success);
    Ok(RefreshTokenResponse::Ok(token_response(
        &access,
        &rotation.next,
    )))
}

pub(super) async fn logout_user(
    this: &PetStore,
    ctx: &Ctx,
) -> Result<LogoutUserResponse, LogoutUserError> {
    // Logging out is idempotent: no valid token leaves nothing to end.
    let Some(principal) = &ctx.principal else {
        return Ok(LogoutUserResponse::Ok);
    };
    if let Credential::AccessToken {
        token_id,
        session_id,
        expires_at,
    } = &principal.credential
    {
        this.auth.tokens.revoke_token(token_id, *expires_at);
        if let Some(session_id) = session_id {
            this.auth.tokens.revoke_session(session_id);
            this.auth
                .sessions
                .revoke(session_id)
                .await
                .map_err(sessions_unavailable)?;
        }
    }
    Ok(LogoutUserResponse::Ok)
}
