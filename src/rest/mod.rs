//! The REST transport: the generated poem-openapi adapter over the handlers, and the operational
//! endpoints (documentation, documents, keys, health, readiness, liveness, metrics, admin).
//!
//! - [`adapter`]: generated from `openapi.yaml`; written against [`runtime`] (answers that
//!   document themselves, the caller's context) and [`payload`] (request bodies).
//! - `ops`: health, readiness, liveness, metrics, the documents and the key set.
//! - [`admin`]: the administrators' endpoints.
//! - [`ws_docs`]: the WebSocket API's documentation page (`asyncapi.yaml` rendered by the
//!   vendored AsyncAPI React component).
//!
//! Everything here sits behind the HTTP edge ([`crate::edge::HttpEdge`]), which identifies the
//! caller, applies the limits and renders errors; the wiring assembles these routes with the
//! WebSocket endpoint's.

pub mod admin;
mod ops;
pub mod payload;
pub mod runtime;
pub mod ws_docs;

/// The generated REST adapter over [`petstore_api::operations::PetStoreApi`].
pub mod adapter {
    include!(concat!(env!("OUT_DIR"), "/rest.rs"));
}

use std::{collections::HashMap, sync::Arc};

use poem::{
    Endpoint, EndpointExt, IntoEndpoint, Request, Response, Route, endpoint::BoxEndpoint, get,
    http::Method,
};
use poem_openapi::{
    OpenApi, OpenApiService,
    registry::{MetaApi, MetaSchemaRef, MetaSecurityScheme, Registry},
};

pub use self::ops::{OpsState, Readiness};
use crate::edge::{
    AccessControl, Caller, DirectLane, RequestId,
    paths::{
        ADMIN_NODES_PATH, API_BASE, ASYNCAPI_YAML, DOCS, HEALTH_PATH, JWKS_PATH, LIVE_PATH,
        METRICS_PATH, OPENAPI_JSON, OPENAPI_YAML, READY_PATH, WS_DOCS, under_api_base,
    },
};
use petstore_api::{
    operations::{OPERATIONS, PetStoreApi, SECURITY_SCHEMES},
    security::SchemeKind,
};

/// The OpenAPI service for a handler: what the documentation is built from.
pub fn api_service<H: PetStoreApi>(
    handler: Arc<H>,
) -> OpenApiService<SpecDocumented<adapter::RestApi<H>>, ()> {
    let service = OpenApiService::new(
        SpecDocumented(adapter::RestApi::new(handler)),
        "petstore-ws",
        env!("CARGO_PKG_VERSION"),
    )
    .server(API_BASE);
    match info_description() {
        Some(description) => service.description(description),
        None => service,
    }
}

/// `info.description` of `openapi.yaml`, which Swagger UI shows at the top (it links the
/// WebSocket API's page); the derives cannot carry it.
fn info_description() -> Option<String> {
    let document: serde_json::Value = serde_saphyr::from_str(ops::OPENAPI_YAML).ok()?;
    Some(document.pointer("/info/description")?.as_str()?.to_owned())
}

/// The operations' endpoint, its routes under [`API_BASE`] (`UnderApiBase`): the edge sends it
/// every request for an operation path it does not answer in the [direct lane](direct_lane),
/// without a prefix-stripping `Route::nest`.
pub fn operations<H: PetStoreApi>(handler: Arc<H>) -> impl Endpoint + 'static {
    OpenApiService::new(
        UnderApiBase(adapter::RestApi::new(handler)),
        "petstore-ws",
        env!("CARGO_PKG_VERSION"),
    )
    .into_endpoint()
}

/// The direct lane of the operations, which the edge answers before the operations' endpoint.
pub fn direct_lane<H: PetStoreApi>(handler: Arc<H>) -> DirectReads<H> {
    DirectReads(adapter::RestApi::new(handler))
}

/// The generated direct lane ([`adapter::DirectRoute`]) as the edge's [`DirectLane`].
///
/// What a direct request skips is poem-openapi's per-request work: the router's own boxed
/// endpoint, the query string parsed into a list, the path matched in a tree that records its
/// parameters and pattern (allocations, on the request and on the response), the method table,
/// the extractor per parameter with its options, another clone of the adapter; and, as the edge
/// answers it, the values attached to the request and the response for the operations'
/// endpoint. A direct route is matched from the path's segments alone and calls the same
/// generated method body as the routed method.
///
/// A request with a query string goes to the router: no direct route reads one, and the router
/// stays the one reference for anything unusual.
pub struct DirectReads<H>(adapter::RestApi<H>);

impl<H: PetStoreApi> DirectLane for DirectReads<H> {
    type Route = adapter::DirectRoute;

    fn route(&self, request: &Request) -> Option<adapter::DirectRoute> {
        if request.uri().query().is_some() {
            return None;
        }
        adapter::DirectRoute::of(request.method(), request.uri().path())
    }

    fn operation_id(route: adapter::DirectRoute) -> &'static str {
        route.operation_id()
    }

    async fn answer(
        &self,
        route: adapter::DirectRoute,
        caller: &Caller,
        request_id: &RequestId,
    ) -> Response {
        self.0
            .answer_direct(&runtime::Calling::lent(caller, request_id), route)
            .await
    }
}

/// The operational routes: documentation, documents, keys, the admin endpoints, health,
/// readiness, liveness and metrics.
///
/// They answer GET only (other methods get 405). Their state is attached only to the endpoints
/// that read it, so API requests do not pay for cloning and storing it.
pub fn operational<H: PetStoreApi>(
    handler: Arc<H>,
    ops: OpsState,
    access: Arc<AccessControl>,
) -> Route {
    Route::new()
        .nest(under_api_base(DOCS), api_service(handler).swagger_ui())
        .nest(
            under_api_base(WS_DOCS),
            ws_docs::endpoint(ops.asyncapi_bundle()),
        )
        .at(
            under_api_base(OPENAPI_JSON),
            get(ops::openapi_json.data(ops.clone())),
        )
        .at(under_api_base(OPENAPI_YAML), get(ops::openapi_yaml))
        .at(under_api_base(ASYNCAPI_YAML), get(ops::asyncapi_yaml))
        .at(JWKS_PATH, get(ops::jwks.data(ops.clone())))
        .at(
            ADMIN_NODES_PATH,
            get(admin::list_nodes.data(admin::AdminState::new(ops.nodes(), access))),
        )
        .at(HEALTH_PATH, get(ops::health.data(ops.clone())))
        .at(READY_PATH, get(ops::ready.data(ops)))
        .at(LIVE_PATH, get(ops::live))
        .at(METRICS_PATH, get(ops::metrics))
}

/// An [`OpenApi`] whose routes are mounted under [`API_BASE`], documented unchanged.
///
/// The generated adapter's paths are relative to the spec's server URL (`/pet/:petId`). Prefixing
/// them here, once at start-up, lets the operations' router match full request paths, so no
/// per-request prefix stripping (`Route::nest`) is needed. Only routing changes: the documented
/// paths ([`OpenApi::meta`]) stay relative, as the spec has them.
struct UnderApiBase<T>(T);

impl<T: OpenApi> OpenApi for UnderApiBase<T> {
    fn meta() -> Vec<MetaApi> {
        T::meta()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn add_routes(self, route_table: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {
        let mut relative = HashMap::new();
        self.0.add_routes(&mut relative);
        for (path, methods) in relative {
            route_table
                .entry(format!("{API_BASE}{path}"))
                .or_default()
                .extend(methods);
        }
    }
}

/// Documents what poem-openapi's derives cannot say, from the generated data:
///
/// - the spec's security schemes and each operation's requirements (the data the requirements
///   are enforced with; poem-openapi's own security support is built on extractors that would
///   check credentials a second way);
/// - the spec's examples of properties and parameters (`adapter::PROPERTY_EXAMPLES`,
///   `adapter::PARAMETER_EXAMPLES`), which documentation UIs fill into their requests. A
///   parameter whose schema is a `$ref` (a lone enum) cannot carry one: the UI offers the enum's
///   values instead.
pub struct SpecDocumented<T>(T);

impl<T: OpenApi> OpenApi for SpecDocumented<T> {
    fn meta() -> Vec<MetaApi> {
        let mut apis = T::meta();
        for api in &mut apis {
            for path in &mut api.paths {
                for operation in &mut path.operations {
                    for param in &mut operation.params {
                        let example = adapter::PARAMETER_EXAMPLES.iter().find(|(id, name, _)| {
                            Some(*id) == operation.operation_id && *name == param.name
                        });
                        if let (Some((_, _, example)), MetaSchemaRef::Inline(schema)) =
                            (example, &mut param.schema)
                        {
                            schema.example = serde_json::from_str(example).ok();
                        }
                    }
                    let Some(info) = OPERATIONS
                        .iter()
                        .find(|info| Some(info.id) == operation.operation_id)
                    else {
                        continue;
                    };
                    operation.security = info
                        .security
                        .iter()
                        .map(|requirement| {
                            requirement
                                .0
                                .iter()
                                .map(|needed| {
                                    (
                                        needed.scheme.name,
                                        needed.scopes.iter().map(|scope| scope.as_str()).collect(),
                                    )
                                })
                                .collect()
                        })
                        .collect();
                }
            }
        }
        apis
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
        for (schema, property, example) in adapter::PROPERTY_EXAMPLES {
            let documented = registry
                .schemas
                .get_mut(*schema)
                .and_then(|schema| {
                    schema
                        .properties
                        .iter_mut()
                        .find(|(name, _)| name == property)
                })
                .map(|(_, schema)| schema);
            if let Some(MetaSchemaRef::Inline(schema)) = documented {
                schema.example = serde_json::from_str(example).ok();
            }
        }
        for scheme in SECURITY_SCHEMES {
            let documented = match scheme.kind {
                SchemeKind::HttpBearer { bearer_format } => MetaSecurityScheme {
                    ty: "http",
                    description: scheme.description,
                    name: None,
                    key_in: None,
                    scheme: Some("bearer"),
                    bearer_format,
                    flows: None,
                    openid_connect_url: None,
                },
                SchemeKind::ApiKeyHeader { header } => MetaSecurityScheme {
                    ty: "apiKey",
                    description: scheme.description,
                    name: Some(header),
                    key_in: Some("header"),
                    scheme: None,
                    bearer_format: None,
                    flows: None,
                    openid_connect_url: None,
                },
            };
            registry.create_security_scheme(scheme.name, documented);
        }
    }

    fn add_routes(self, route_table: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {
        self.0.add_routes(route_table);
    }
}
