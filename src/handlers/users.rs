//! Users and their passwords. Signing in and out is in `sessions`.

use petstore_api::{
    Credential, Ctx, Role,
    error::{Failure, Invalid, ServerError},
    models::User,
    operations::*,
};

use super::{PetStore, access::self_or};
use crate::{
    auth::{self, AuthError},
    rules::user_not_found,
    store::NewUser,
};

/// The role of every user created through the API; admins come from the configuration.
const SIGN_UP_ROLE: Role = Role::Customer;

/// Password hashing failures are ours, not the client's.
fn hashing_failed(error: AuthError) -> ServerError {
    tracing::error!(%error, "password hashing failed");
    ServerError::Internal
}

/// Splits the write-only password off a user and hashes it; `path` names it in a 422.
async fn with_hashed_password(mut user: User, path: &str) -> Result<NewUser, Failure<Invalid>> {
    let password = user
        .password
        .take()
        .ok_or_else(|| Failure::Refused(Invalid::field(path, "is required to create a user")))?;
    let password_hash = auth::hash_password_async(password)
        .await
        .map_err(hashing_failed)?;
    Ok(NewUser {
        user,
        password_hash,
        roles: vec![SIGN_UP_ROLE],
    })
}

pub(super) async fn create_user(
    this: &PetStore,
    request: CreateUserRequest,
) -> Result<CreateUserResponse, CreateUserError> {
    let new_user = with_hashed_password(request.body, "password").await?;
    let created = this.store.create_users(vec![new_user]).await?;
    let user = created.first().ok_or(ServerError::Internal)?;
    Ok(CreateUserResponse::Ok(user.user.json.clone()))
}

pub(super) async fn create_users_with_list_input(
    this: &PetStore,
    request: CreateUsersWithListInputRequest,
) -> Result<CreateUsersWithListInputResponse, CreateUsersWithListInputError> {
    // Every user is checked before any password is hashed, so a bad list costs no hashing.
    if let Some(index) = request.body.iter().position(|user| user.password.is_none()) {
        return Err(Invalid::field(
            format!("[{index}].password"),
            "is required to create a user",
        )
        .into());
    }
    let mut new_users = Vec::with_capacity(request.body.len());
    for (index, user) in request.body.into_iter().enumerate() {
        new_users.push(with_hashed_password(user, &format!("[{index}].password")).await?);
    }
    let created = this.store.create_users(new_users).await?;
    let last = created.last().ok_or(ServerError::Internal)?;
    Ok(CreateUsersWithListInputResponse::Ok(last.user.json.clone()))
}

pub(super) async fn get_user_by_name(
    this: &PetStore,
    ctx: &Ctx,
    request: GetUserByNameRequest,
) -> Result<GetUserByNameResponse, GetUserByNameError> {
    self_or(ctx, &request.username, Scope::UsersManage)?;
    let user = this
        .store
        .get_user(&request.username)
        .await?
        .ok_or_else(|| user_not_found(&request.username))?;
    Ok(GetUserByNameResponse::Ok(user.user.json.clone()))
}

pub(super) async fn update_user(
    this: &PetStore,
    ctx: &Ctx,
    request: UpdateUserRequest,
) -> Result<UpdateUserResponse, UpdateUserError> {
    let caller = self_or(ctx, &request.username, Scope::UsersManage)?;
    let mut user = request.body;
    let password_hash = match user.password.take() {
        Some(password) => Some(
            auth::hash_password_async(password)
                .await
                .map_err(hashing_failed)?,
        ),
        None => None,
    };
    let password_changed = password_hash.is_some();
    let updated = this
        .store
        .update_user(&request.username, user, password_hash)
        .await?;
    // Published as soon as the record changed: ending sessions below may fail, but the update
    // has happened.
    this.publish_user_updated(&request.username, &updated).await;
    let renamed = updated.user.value.username != request.username;
    if renamed {
        // Tokens and sessions name the user; under the old name they could act for whoever
        // takes that name next. Every session ends, the caller's too: sign in again.
        this.end_sessions_of(&request.username, None).await?;
    } else if password_changed {
        // Whoever knew the old password may hold a session; only the caller's own survives.
        let keep = match &caller.credential {
            Credential::AccessToken { session_id, .. } if caller.is_user(&request.username) => {
                session_id.as_deref()
            }
            _ => None,
        };
        this.end_sessions_of(&request.username, keep).await?;
    }
    Ok(UpdateUserResponse::Ok)
}

pub(super) async fn delete_user(
    this: &PetStore,
    ctx: &Ctx,
    request: DeleteUserRequest,
) -> Result<DeleteUserResponse, DeleteUserError> {
    self_or(ctx, &request.username, Scope::UsersManage)?;
    let removed = this.store.delete_user(&request.username).await?;
    this.publish_user_deleted(&request.username, removed.version())
        .await;
    this.end_sessions_of(&request.username, None).await?;
    Ok(DeleteUserResponse::Ok)
}
