//! The direct lane: API requests the edge answers itself, once it has identified the caller and
//! counted the rate limit, instead of handing them on to the operations' endpoint.
//!
//! The lane's requests are reads named by their method and path alone (the REST adapter's
//! generated `DirectRoute`). Answering them here skips what the operations' endpoint costs every
//! request: the caller, request id and body limits attached to the request (a boxed value in a
//! hash map each), the layers between the edge and the router (each moving the request into a
//! future of its own), and the `operationId` attached to the response for the metrics. The edge
//! lends the caller and request id to the lane instead, and takes the `operationId` from the
//! route. Everything the edge does around an operation still applies: origin check, caller,
//! rate limit, request timeout, response headers, metrics, logs.
//!
//! The edge defines the lane and the REST transport implements it, so the edge knows no
//! transport.

use std::future::Future;

use poem::{Request, Response};

use super::{access::Caller, request_id::RequestId};

/// Requests the edge answers itself (see the module documentation).
pub trait DirectLane: Send + Sync + 'static {
    /// A request the lane takes, with what its path carries.
    type Route: Copy + Send + Sync;

    /// The route of `request`, if the lane takes it; `None` leaves it to the operations'
    /// endpoint.
    fn route(&self, request: &Request) -> Option<Self::Route>;

    /// The `operationId` of the operation answering `route`, for the metrics and logs.
    fn operation_id(route: Self::Route) -> &'static str;

    /// Answers `route` for `caller`, as the operations' endpoint would have answered the
    /// request.
    fn answer(
        &self,
        route: Self::Route,
        caller: &Caller,
        request_id: &RequestId,
    ) -> impl Future<Output = Response> + Send;
}
