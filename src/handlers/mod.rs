//! Business rules: the one implementation of [`PetStoreApi`] that every transport calls.
//!
//! Handlers know no transport. They take the typed request the adapters built (already checked
//! against the spec's schemas), apply the rules that need the store, and return a documented
//! success or one of the operation's documented errors: each operation's error type has a
//! variant for exactly the error statuses the spec lists, so a handler that could answer an
//! undocumented one does not compile. One module per tag of the spec, and `subscriptions`: who
//! may follow which topic ([`petstore_api::Subscriptions`]), asked by every transport that
//! delivers events.

mod access;
mod images;
mod orders;
mod pets;
mod publish;
mod sessions;
mod subscriptions;
#[cfg(test)]
mod testing;
mod users;

use std::{sync::Arc, time::Duration};

use crate::{
    auth::{TokenService, sessions::SessionStore},
    events::{EventBus, Hub, LocalEventBus},
    limits::LoginThrottle,
    store::SharedStore,
};
use petstore_api::{Ctx, operations::*};

/// Settings the handlers need from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandlerSettings {
    /// Requests per hour announced to a user at login (`X-Rate-Limit`): the sustained rate of
    /// the per-user rate limit.
    pub rate_limit_per_hour: u32,
    /// Lifetime of refresh tokens.
    pub refresh_ttl: Duration,
    /// Login attempts allowed in a burst, per username (`RateLimit-Limit` of a throttled login).
    pub login_burst: u32,
}

/// What the handlers use to authenticate users and manage their sessions.
#[derive(Clone)]
pub struct AuthServices {
    /// Signs, verifies and revokes access tokens.
    pub tokens: Arc<TokenService>,
    /// Refresh-token families (sessions).
    pub sessions: Arc<dyn SessionStore>,
    /// Brute-force throttle for password logins.
    pub login_throttle: Arc<LoginThrottle>,
}

/// The pet store: handlers over a store and the authentication services, publishing an event
/// after every successful write.
pub struct PetStore {
    store: SharedStore,
    auth: AuthServices,
    settings: HandlerSettings,
    events: Arc<dyn EventBus>,
}

impl PetStore {
    /// Handlers over `store`, authenticating with `auth`. Events go to a hub of their own that
    /// no connection is attached to, until [`PetStore::with_events`] names the real bus.
    pub fn new(store: SharedStore, auth: AuthServices, settings: HandlerSettings) -> Self {
        Self {
            store,
            auth,
            settings,
            events: Arc::new(LocalEventBus::new(Arc::new(Hub::new()))),
        }
    }

    /// Publishes events to `bus` instead.
    #[must_use]
    pub fn with_events(mut self, bus: Arc<dyn EventBus>) -> Self {
        self.events = bus;
        self
    }
}

impl PetStoreApi for PetStore {
    async fn update_pet(
        &self,
        _ctx: &Ctx,
        request: UpdatePetRequest,
    ) -> Result<UpdatePetResponse, UpdatePetError> {
        pets::update_pet(self, request).await
    }

    async fn add_pet(
        &self,
        _ctx: &Ctx,
        request: AddPetRequest,
    ) -> Result<AddPetResponse, AddPetError> {
        pets::add_pet(self, request).await
    }

    async fn find_pets_by_status(
        &self,
        _ctx: &Ctx,
        request: FindPetsByStatusRequest,
    ) -> Result<FindPetsByStatusResponse, FindPetsByStatusError> {
        pets::find_pets_by_status(self, request).await
    }

    async fn find_pets_by_tags(
        &self,
        _ctx: &Ctx,
        request: FindPetsByTagsRequest,
    ) -> Result<FindPetsByTagsResponse, FindPetsByTagsError> {
        pets::find_pets_by_tags(self, request).await
    }

    async fn get_pet_by_id(
        &self,
        _ctx: &Ctx,
        request: GetPetByIdRequest,
    ) -> Result<GetPetByIdResponse, GetPetByIdError> {
        pets::get_pet_by_id(self, request).await
    }

    async fn update_pet_with_form(
        &self,
        _ctx: &Ctx,
        request: UpdatePetWithFormRequest,
    ) -> Result<UpdatePetWithFormResponse, UpdatePetWithFormError> {
        pets::update_pet_with_form(self, request).await
    }

    async fn delete_pet(
        &self,
        _ctx: &Ctx,
        request: DeletePetRequest,
    ) -> Result<DeletePetResponse, DeletePetError> {
        pets::delete_pet(self, request).await
    }

    async fn upload_file(
        &self,
        _ctx: &Ctx,
        request: UploadFileRequest,
    ) -> Result<UploadFileResponse, UploadFileError> {
        pets::upload_file(self, request).await
    }

    async fn get_pet_image(
        &self,
        _ctx: &Ctx,
        request: GetPetImageRequest,
    ) -> Result<GetPetImageResponse, GetPetImageError> {
        pets::get_pet_image(self, request).await
    }

    async fn get_inventory(
        &self,
        _ctx: &Ctx,
        _request: GetInventoryRequest,
    ) -> Result<GetInventoryResponse, GetInventoryError> {
        orders::get_inventory(self).await
    }

    async fn place_order(
        &self,
        ctx: &Ctx,
        request: PlaceOrderRequest,
    ) -> Result<PlaceOrderResponse, PlaceOrderError> {
        orders::place_order(self, ctx, request).await
    }

    async fn get_order_by_id(
        &self,
        ctx: &Ctx,
        request: GetOrderByIdRequest,
    ) -> Result<GetOrderByIdResponse, GetOrderByIdError> {
        orders::get_order_by_id(self, ctx, request).await
    }

    async fn update_order(
        &self,
        _ctx: &Ctx,
        request: UpdateOrderRequest,
    ) -> Result<UpdateOrderResponse, UpdateOrderError> {
        orders::update_order(self, request).await
    }

    async fn delete_order(
        &self,
        ctx: &Ctx,
        request: DeleteOrderRequest,
    ) -> Result<DeleteOrderResponse, DeleteOrderError> {
        orders::delete_order(self, ctx, request).await
    }

    async fn create_user(
        &self,
        _ctx: &Ctx,
        request: CreateUserRequest,
    ) -> Result<CreateUserResponse, CreateUserError> {
        users::create_user(self, request).await
    }

    async fn create_users_with_list_input(
        &self,
        _ctx: &Ctx,
        request: CreateUsersWithListInputRequest,
    ) -> Result<CreateUsersWithListInputResponse, CreateUsersWithListInputError> {
        users::create_users_with_list_input(self, request).await
    }

    async fn login_user(
        &self,
        ctx: &Ctx,
        request: LoginUserRequest,
    ) -> Result<LoginUserResponse, LoginUserError> {
        sessions::login_user(self, ctx, request).await
    }

    async fn logout_user(
        &self,
        ctx: &Ctx,
        _request: LogoutUserRequest,
    ) -> Result<LogoutUserResponse, LogoutUserError> {
        sessions::logout_user(self, ctx).await
    }

    async fn get_user_by_name(
        &self,
        ctx: &Ctx,
        request: GetUserByNameRequest,
    ) -> Result<GetUserByNameResponse, GetUserByNameError> {
        users::get_user_by_name(self, ctx, request).await
    }

    async fn update_user(
        &self,
        ctx: &Ctx,
        request: UpdateUserRequest,
    ) -> Result<UpdateUserResponse, UpdateUserError> {
        users::update_user(self, ctx, request).await
    }

    async fn delete_user(
        &self,
        ctx: &Ctx,
        request: DeleteUserRequest,
    ) -> Result<DeleteUserResponse, DeleteUserError> {
        users::delete_user(self, ctx, request).await
    }

    async fn create_token(
        &self,
        ctx: &Ctx,
        request: CreateTokenRequest,
    ) -> Result<CreateTokenResponse, CreateTokenError> {
        sessions::create_token(self, ctx, request).await
    }

    async fn refresh_token(
        &self,
        _ctx: &Ctx,
        request: RefreshTokenRequest,
    ) -> Result<RefreshTokenResponse, RefreshTokenError> {
        sessions::refresh_token(self, request).await
    }
}
