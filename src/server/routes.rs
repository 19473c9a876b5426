//! Every HTTP route of the server, assembled: the REST operations, the operational routes, the
//! WebSocket endpoint and the MCP endpoint, behind the one HTTP edge.
//!
//! Assembled here rather than in a transport, so that no transport knows another: REST,
//! WebSocket and MCP all sit on the edge, and only the wiring mounts them side by side.

use std::sync::Arc;

use poem::Endpoint;

use crate::{
    edge::{
        AccessControl, EdgeSettings, HttpEdge, Idempotency, Idempotent,
        paths::{MCP_PATH, RESOURCE_METADATA_PATH, WS_PATH},
    },
    mcp::McpService,
    rest::{self, OpsState},
    ws::{WsEndpoint, WsService},
};
use petstore_api::{Subscriptions, operations::PetStoreApi};

/// The server's endpoint: the edge in front of the operations (routes under the API base, behind
/// the idempotency rules; the direct lane's reads answered by the edge itself, unless
/// `direct_routes` is off) and of everything else (documentation, documents, keys, admin, health,
/// readiness, liveness, metrics, the WebSocket endpoint, the MCP endpoint and its metadata).
pub(super) fn routes<H: PetStoreApi + Subscriptions>(
    handler: Arc<H>,
    (ws, mcp): (Arc<WsService<H>>, Arc<McpService<H>>),
    ops: OpsState,
    access: Arc<AccessControl>,
    idempotency: Arc<Idempotency>,
    (settings, direct_routes): (EdgeSettings, bool),
) -> impl Endpoint {
    let operations = Idempotent::new(rest::operations(handler.clone()), idempotency);
    let direct = direct_routes.then(|| rest::direct_lane(handler.clone()));
    let others = rest::operational(handler, ops, access.clone())
        .at(WS_PATH, WsEndpoint(ws))
        .at(MCP_PATH, mcp.endpoint())
        .at(RESOURCE_METADATA_PATH, mcp.metadata())
        .at(
            format!("{RESOURCE_METADATA_PATH}{MCP_PATH}"),
            mcp.metadata(),
        );
    HttpEdge::new((operations, direct), others, access, settings)
}
