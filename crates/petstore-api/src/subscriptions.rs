//! Topic authorization: may this caller follow that topic?
//!
//! Written by hand beside the generated operation interface: following a topic is not an
//! operation of `openapi.yaml` but a control action of `asyncapi.yaml` (`subscribe`), and every
//! transport that delivers events (the WebSocket session, and whatever comes next) must answer it
//! the same way. So the decision is the handlers', like every other business rule, and a
//! transport only asks.

use std::future::Future;

use crate::{
    Ctx, Topic,
    error::{Forbidden, NotFound, ServerError, Unauthorized},
};

/// Why a subscription is refused: the closed set of answers
/// [`Subscriptions::authorize_topic`] can give, converting into
/// [`ApiError`](crate::ApiError) like an operation's error enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeError {
    /// 401: the caller has not signed in; only signed-in callers follow topics.
    Unauthorized(Unauthorized),
    /// 403: the topic needs a permission the caller lacks, or the order is someone else's.
    Forbidden(Forbidden),
    /// 404: no such order.
    NotFound(NotFound),
    /// 5XX: the answer could not be worked out (the store is unavailable).
    ServerError(ServerError),
}

crate::error::operation_errors!(SubscribeError {
    Unauthorized(Unauthorized),
    Forbidden(Forbidden),
    NotFound(NotFound),
    ServerError(ServerError),
});

/// Who may follow which topic; implemented by the handlers, asked by the transports that
/// deliver events.
pub trait Subscriptions: Send + Sync + 'static {
    /// Whether the caller of `ctx` may follow `topic`: `orders` needs `orders:manage`,
    /// `inventory` needs `inventory:read`, `order:{id}` the order's owner or `orders:manage`;
    /// any other topic any signed-in caller.
    ///
    /// # Errors
    /// [`SubscribeError::Unauthorized`] without a caller, [`SubscribeError::Forbidden`] for a
    /// missing permission or someone else's order, [`SubscribeError::NotFound`] for an order
    /// that does not exist (as `getOrderById` answers), [`SubscribeError::ServerError`] when
    /// the owner cannot be looked up.
    fn authorize_topic(
        &self,
        ctx: &Ctx,
        topic: &Topic,
    ) -> impl Future<Output = Result<(), SubscribeError>> + Send;
}
