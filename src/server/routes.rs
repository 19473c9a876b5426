//! Every HTTP route of the server, assembled: the REST operations, the operational routes and the
//! WebSocket endpoint, behind the one HTTP edge.
//!
//! Assembled here rather than in a transport, so that neither transport knows the other: REST
//! and WebSocket both sit on the edge, and only the wiring mounts them side by side.

use std::sync::Arc;

use poem::Endpoint;

use crate::{
    edge::{AccessControl, EdgeSettings, HttpEdge, Idempotency, Idempotent, paths::WS_PATH},
    rest::{self, OpsState},
    ws::{WsEndpoint, WsService},
};
use petstore_api::{Subscriptions, operations::PetStoreApi};

/// The server's endpoint: the edge in front of the operations (routes under the API base, behind
/// the idempotency rules) and of everything else (documentation, documents, keys, admin, health,
/// readiness, liveness, metrics and the WebSocket endpoint).
pub(super) fn routes<H: PetStoreApi + Subscriptions>(
    handler: Arc<H>,
    ws: Arc<WsService<H>>,
    ops: OpsState,
    access: Arc<AccessControl>,
    idempotency: Arc<Idempotency>,
    settings: EdgeSettings,
) -> impl Endpoint {
    let operations = Idempotent::new(rest::operations(handler.clone()), idempotency);
    let others = rest::operational(handler, ops, access.clone()).at(WS_PATH, WsEndpoint(ws));
    HttpEdge::new(operations, others, access, settings)
}
