//! Users, passwords and login.

use super::{Outcome, PetStore};
use crate::{
    api::{Ctx, Serialized, models::User, operations::*},
    auth::{self, AuthError},
    error::ApiError,
    store::NewUser,
};

/// Role given to every user for now; role-based authorization arrives with the security work.
const DEFAULT_ROLE: &str = "customer";

fn not_found(username: &str) -> ApiError {
    ApiError::NotFound(format!("user {username} not found"))
}

/// Password hashing failures are ours, not the client's.
fn hashing_failed(error: AuthError) -> ApiError {
    tracing::error!(%error, "password hashing failed");
    ApiError::Internal
}

/// Splits the write-only password off a user and hashes it; `path` names it in a 422.
async fn with_hashed_password(mut user: User, path: &str) -> Result<NewUser, ApiError> {
    let password = user
        .password
        .take()
        .ok_or_else(|| ApiError::invalid_field(path, "is required to create a user"))?;
    let password_hash = auth::hash_password_async(password)
        .await
        .map_err(hashing_failed)?;
    Ok(NewUser {
        user,
        password_hash,
    })
}

pub(super) async fn create_user(
    this: &PetStore,
    request: CreateUserRequest,
) -> Outcome<CreateUserResponse> {
    let new_user = with_hashed_password(request.body, "password").await?;
    let created = this.store.create_users(vec![new_user]).await?;
    let user = created.first().ok_or(ApiError::Internal)?;
    Ok(CreateUserResponse::Ok(user.user.json.clone()))
}

pub(super) async fn create_users_with_list_input(
    this: &PetStore,
    request: CreateUsersWithListInputRequest,
) -> Outcome<CreateUsersWithListInputResponse> {
    // Every user is checked before any password is hashed, so a bad list costs no hashing.
    if let Some(index) = request.body.iter().position(|user| user.password.is_none()) {
        return Err(ApiError::invalid_field(
            format!("[{index}].password"),
            "is required to create a user",
        ));
    }
    let mut new_users = Vec::with_capacity(request.body.len());
    for (index, user) in request.body.into_iter().enumerate() {
        new_users.push(with_hashed_password(user, &format!("[{index}].password")).await?);
    }
    let created = this.store.create_users(new_users).await?;
    let last = created.last().ok_or(ApiError::Internal)?;
    Ok(CreateUsersWithListInputResponse::Ok(last.user.json.clone()))
}

pub(super) async fn login_user(
    this: &PetStore,
    request: LoginUserRequest,
) -> Outcome<LoginUserResponse> {
    let invalid = || ApiError::BadRequest("invalid username/password supplied".to_owned());
    let Some(user) = this.store.get_user(&request.username).await? else {
        // Same work as a wrong password, so timing does not tell which usernames exist.
        auth::verify_dummy_async(request.password)
            .await
            .map_err(hashing_failed)?;
        return Err(invalid());
    };
    let matches = auth::verify_password_async(request.password, user.password_hash.clone())
        .await
        .map_err(hashing_failed)?;
    if !matches {
        return Err(invalid());
    }
    let issued = this
        .tokens
        .issue_access(&user.user.value.username, &[DEFAULT_ROLE.to_owned()])
        .map_err(|error| {
            tracing::error!(%error, "cannot sign an access token");
            ApiError::Internal
        })?;
    Ok(LoginUserResponse::Ok {
        body: Serialized::new(&issued.token),
        x_rate_limit: i32::try_from(this.settings.rate_limit_per_hour).unwrap_or(i32::MAX),
        x_expires_after: issued.expires_at,
    })
}

pub(super) async fn logout_user(this: &PetStore, ctx: &Ctx) -> Outcome<LogoutUserResponse> {
    // Logging out is idempotent: no token, or one that is already invalid, leaves nothing to revoke.
    if let Some(claims) = ctx
        .bearer_token
        .as_deref()
        .and_then(|t| this.tokens.verify(t).ok())
    {
        this.tokens.revoke(&claims);
    }
    Ok(LogoutUserResponse::Ok)
}

pub(super) async fn get_user_by_name(
    this: &PetStore,
    request: GetUserByNameRequest,
) -> Outcome<GetUserByNameResponse> {
    let user = this
        .store
        .get_user(&request.username)
        .await?
        .ok_or_else(|| not_found(&request.username))?;
    Ok(GetUserByNameResponse::Ok(user.user.json.clone()))
}

pub(super) async fn update_user(
    this: &PetStore,
    request: UpdateUserRequest,
) -> Outcome<UpdateUserResponse> {
    let mut user = request.body;
    let password_hash = match user.password.take() {
        Some(password) => Some(
            auth::hash_password_async(password)
                .await
                .map_err(hashing_failed)?,
        ),
        None => None,
    };
    this.store
        .update_user(&request.username, user, password_hash)
        .await?;
    Ok(UpdateUserResponse::Ok)
}

pub(super) async fn delete_user(
    this: &PetStore,
    request: DeleteUserRequest,
) -> Outcome<DeleteUserResponse> {
    this.store.delete_user(&request.username).await?;
    Ok(DeleteUserResponse::Ok)
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use crate::{
        api::{Ctx, operations::*},
        auth::{AuthError, TokenService, TokenSettings},
        handlers::{HandlerSettings, PetStore},
        store::MemoryStore,
    };

    fn pet_store() -> (PetStore, Arc<TokenService>) {
        let tokens = Arc::new(
            TokenService::new(TokenSettings {
                issuer: "test".to_owned(),
                audience: "test".to_owned(),
                access_ttl: Duration::from_secs(60),
                private_key_pem: None,
            })
            .expect("token service"),
        );
        let settings = HandlerSettings {
            rate_limit_per_hour: 10,
        };
        (
            PetStore::new(Arc::new(MemoryStore::new()), tokens.clone(), settings),
            tokens,
        )
    }

    #[tokio::test]
    async fn logout_revokes_the_presented_token() {
        let (pet_store, tokens) = pet_store();
        let issued = tokens.issue_access("user1", &[]).expect("token");
        assert!(tokens.verify(&issued.token).is_ok());

        let ctx = Ctx {
            bearer_token: Some(issued.token.clone()),
            ..Ctx::default()
        };
        let outcome = pet_store.logout_user(&ctx, LogoutUserRequest {}).await;
        assert!(matches!(outcome, Ok(LogoutUserResponse::Ok)));
        assert!(matches!(
            tokens.verify(&issued.token),
            Err(AuthError::Revoked)
        ));
    }

    #[tokio::test]
    async fn logout_without_a_valid_token_is_a_no_op() {
        let (pet_store, _) = pet_store();
        for bearer_token in [None, Some("not-a-jwt".to_owned())] {
            let ctx = Ctx {
                bearer_token,
                ..Ctx::default()
            };
            let outcome = pet_store.logout_user(&ctx, LogoutUserRequest {}).await;
            assert!(matches!(outcome, Ok(LogoutUserResponse::Ok)));
        }
    }
}
