//! Where everything is served: the server's URL map.
//!
//! The edge routes each request by it (to the operations' router, or to the other routes) and
//! labels it for the metrics; the transports and the wiring mount their endpoints at it. The API
//! base (`/api/v3`) and the WebSocket address are the spec's, generated; the documents and the
//! documentation UI sit under the base, so they are kept relative to it here and never retype
//! it.

use petstore_api::operations::OPERATIONS;
pub use petstore_api::{operations::API_BASE, ws::WS_PATH};

/// The documentation UI, under [`API_BASE`].
pub const DOCS: &str = "/docs";
/// The WebSocket API's documentation page (the AsyncAPI document rendered), under [`API_BASE`].
pub const WS_DOCS: &str = "/ws/docs";
/// `openapi.yaml` converted to JSON, under [`API_BASE`].
pub const OPENAPI_JSON: &str = "/openapi.json";
/// `openapi.yaml` as written, under [`API_BASE`].
pub const OPENAPI_YAML: &str = "/openapi.yaml";
/// `asyncapi.yaml` as written, under [`API_BASE`].
pub const ASYNCAPI_YAML: &str = "/asyncapi.yaml";

/// The public token-signing keys.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// The health document.
pub const HEALTH_PATH: &str = "/health";
/// Readiness, for load balancers.
pub const READY_PATH: &str = "/ready";
/// Liveness, for orchestrators.
pub const LIVE_PATH: &str = "/live";
/// The metrics, in the Prometheus text format.
pub const METRICS_PATH: &str = "/metrics";
/// The cluster's nodes, for administrators.
pub const ADMIN_NODES_PATH: &str = "/admin/nodes";
/// The MCP endpoint (Streamable HTTP).
pub const MCP_PATH: &str = "/mcp";
/// The MCP endpoint's protected-resource metadata (RFC 9728); also served with [`MCP_PATH`]
/// appended, where RFC 9728 looks for a resource with a path.
pub const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The documents served under [`API_BASE`].
const DOCUMENTS: [&str; 3] = [OPENAPI_JSON, OPENAPI_YAML, ASYNCAPI_YAML];

/// The full path of `relative` (one of [`DOCS`], [`OPENAPI_JSON`], …) under [`API_BASE`].
pub fn under_api_base(relative: &str) -> String {
    format!("{API_BASE}{relative}")
}

/// Whether `relative` (a path with [`API_BASE`] stripped) is one of the documents.
pub(super) fn is_document(relative: &str) -> bool {
    DOCUMENTS.contains(&relative)
}

/// Whether `relative` (a path with [`API_BASE`] stripped) is one of the documentation UIs (REST
/// or WebSocket) or below it.
pub(super) fn is_docs(relative: &str) -> bool {
    [DOCS, WS_DOCS].into_iter().any(|docs| {
        relative
            .strip_prefix(docs)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Whether a request path belongs to the operations' router rather than to the other routes:
/// everything under [`API_BASE`] except the documents, the WebSocket endpoint and the
/// documentation UI (which are static paths and so won over the operations' paths in the single
/// router this replaces).
pub fn is_operation_path(path: &str) -> bool {
    let Some(relative) = path.strip_prefix(API_BASE) else {
        return false;
    };
    if !(relative.is_empty() || relative.starts_with('/')) {
        return false;
    }
    !is_docs(relative) && !is_document(relative) && path != WS_PATH
}

/// The `Allow` header of a 405: the methods the spec has for the path (static path segments win
/// over parameters, as in the router); the MCP endpoint's; the other routes are GET-only.
pub fn allowed_methods(path: &str) -> String {
    if path == MCP_PATH {
        return "DELETE, GET, POST".to_owned();
    }
    let Some(api_path) = path.strip_prefix(API_BASE) else {
        return "GET".to_owned();
    };
    let segments: Vec<&str> = api_path.split('/').collect();
    let matching = |static_only: bool| -> Vec<&'static str> {
        OPERATIONS
            .iter()
            .filter(|operation| {
                let template: Vec<&str> = operation.path.split('/').collect();
                template.len() == segments.len()
                    && template.iter().zip(&segments).all(|(template, segment)| {
                        template == segment || (!static_only && template.starts_with('{'))
                    })
            })
            .map(|operation| operation.method)
            .collect()
    };
    let mut methods = matching(true);
    if methods.is_empty() {
        methods = matching(false);
    }
    if methods.is_empty() {
        // The documentation routes under the API base.
        return "GET".to_owned();
    }
    methods.sort_unstable();
    methods.dedup();
    methods.join(", ")
}

#[cfg(test)]
mod tests {
    use super::{allowed_methods, is_operation_path};

    #[test]
    fn allow_lists_the_spec_methods_of_the_path() {
        assert_eq!(allowed_methods("/api/v3/pet"), "POST, PUT");
        assert_eq!(allowed_methods("/api/v3/pet/7"), "DELETE, GET, POST");
        assert_eq!(allowed_methods("/api/v3/pet/findByStatus"), "GET");
        assert_eq!(allowed_methods("/api/v3/store/order/1"), "DELETE, GET, PUT");
        assert_eq!(allowed_methods("/health"), "GET");
        assert_eq!(allowed_methods("/mcp"), "DELETE, GET, POST");
        assert_eq!(allowed_methods("/api/v3/openapi.json"), "GET");
    }

    #[test]
    fn only_operation_paths_go_to_the_operations_router() {
        for path in [
            "/api/v3",
            "/api/v3/",
            "/api/v3/pet/1",
            "/api/v3/user/login",
            "/api/v3/docsx",
            "/api/v3/openapi.json/x",
        ] {
            assert!(is_operation_path(path), "{path}");
        }
        for path in [
            "/health",
            "/",
            "/api/v3x/pet/1",
            "/api/v3/docs",
            "/api/v3/docs/",
            "/api/v3/docs/index.html",
            "/api/v3/openapi.json",
            "/api/v3/openapi.yaml",
            "/api/v3/asyncapi.yaml",
            "/api/v3/ws",
            "/api/v3/ws/docs",
            "/api/v3/ws/docs/",
            "/api/v3/ws/docs/asyncapi-standalone.js",
        ] {
            assert!(!is_operation_path(path), "{path}");
        }
    }
}
