//! Which operation answered a request, for its metrics and its log lines.
//!
//! The edge knows the operation of a request it answered in the [direct lane](super::direct)
//! from the lane's route. poem-openapi records the `operationId` of the operation it routed to in
//! the response (and in the error, when parameter parsing or the handler failed), for every
//! request that reached an operation: the router's own decision, already paid for, so the edge
//! reads it back with one extension lookup. That covers the hot path. Only requests that never
//! reached an operation need
//! more: those the edge refused first (origin, rate limit, timeout) are matched against the spec's
//! method and path templates, the operational routes are told by their paths, and everything else
//! is `unknown` — never the path itself, so the label stays bounded.

use poem::http::Method;

use super::paths::{
    API_BASE, HEALTH_PATH, JWKS_PATH, LIVE_PATH, MCP_PATH, METRICS_PATH, READY_PATH,
    RESOURCE_METADATA_PATH, WS_PATH, is_docs, is_document,
};
use crate::telemetry::metrics::Operation;
use petstore_api::operations::OPERATIONS;

/// What answered a request: the operation the direct lane or poem-openapi reported
/// (`answered_by`), or else what the method and path say.
pub(super) fn operation(
    answered_by: Option<&'static str>,
    method: &Method,
    path: &str,
    api: bool,
) -> Operation {
    if let Some(id) = answered_by {
        return Operation::from_id(id).unwrap_or(Operation::UNKNOWN);
    }
    if api {
        return path
            .strip_prefix(API_BASE)
            .and_then(|api_path| api_operation(method, api_path))
            .unwrap_or(Operation::UNKNOWN);
    }
    match path {
        HEALTH_PATH => Operation::HEALTH,
        READY_PATH => Operation::READY,
        LIVE_PATH => Operation::LIVE,
        METRICS_PATH => Operation::METRICS,
        JWKS_PATH => Operation::JWKS,
        WS_PATH => Operation::WEBSOCKET,
        MCP_PATH => Operation::MCP,
        _ if path.starts_with(RESOURCE_METADATA_PATH) => Operation::RESOURCE_METADATA,
        _ => match path.strip_prefix(API_BASE) {
            Some(relative) if is_document(relative) => Operation::OPENAPI,
            Some(relative) if is_docs(relative) => Operation::DOCS,
            _ => Operation::UNKNOWN,
        },
    }
}

/// The operation whose method and path template match, preferring templates that match by their
/// static segments alone (`/pet/findByStatus` over `/pet/{petId}`), as the router does.
fn api_operation(method: &Method, api_path: &str) -> Option<Operation> {
    let matching = |static_only: bool| {
        OPERATIONS
            .iter()
            .enumerate()
            .filter(move |(_, operation)| matches(operation.path, api_path, static_only))
    };
    let static_only = matching(true).next().is_some();
    matching(static_only)
        .find(|(_, operation)| operation.method == method.as_str())
        .and_then(|(index, _)| Operation::api(index))
}

/// Whether `path` fits `template` segment by segment; a `{parameter}` segment takes any non-empty
/// segment unless `static_only`.
fn matches(template: &str, path: &str, static_only: bool) -> bool {
    let mut templates = template.split('/');
    let mut segments = path.split('/');
    loop {
        match (templates.next(), segments.next()) {
            (None, None) => return true,
            (Some(template), Some(segment)) => {
                let fits = template == segment
                    || (!static_only && template.starts_with('{') && !segment.is_empty());
                if !fits {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use poem::http::Method;

    use super::operation;
    use crate::telemetry::metrics::Operation;

    fn label(method: Method, path: &str) -> &'static str {
        let api = super::super::paths::is_operation_path(path);
        operation(None, &method, path, api).label()
    }

    #[test]
    fn the_reported_operation_wins() {
        let answered = operation(Some("getPetById"), &Method::GET, "/api/v3/pet/1", true);
        assert_eq!(answered.label(), "getPetById");
        let unheard = operation(Some("notInTheSpec"), &Method::GET, "/api/v3/pet/1", true);
        assert_eq!(unheard, Operation::UNKNOWN);
    }

    #[test]
    fn api_paths_match_the_spec_templates_static_segments_first() {
        assert_eq!(label(Method::GET, "/api/v3/pet/7"), "getPetById");
        assert_eq!(label(Method::DELETE, "/api/v3/pet/7"), "deletePet");
        assert_eq!(
            label(Method::GET, "/api/v3/pet/findByStatus"),
            "findPetsByStatus"
        );
        assert_eq!(label(Method::POST, "/api/v3/auth/token"), "createToken");
        assert_eq!(label(Method::GET, "/api/v3/user/login"), "loginUser");
        // The static route exists, with another method: not `deletePet` with petId=findByStatus.
        assert_eq!(label(Method::DELETE, "/api/v3/pet/findByStatus"), "unknown");
    }

    #[test]
    fn unknown_paths_are_one_label_whatever_the_path() {
        for path in [
            "/api/v3/nope",
            "/api/v3/pet/1/2/3",
            "/api/v3/pet/",
            "/whatever/7",
            "/favicon.ico",
        ] {
            assert_eq!(label(Method::GET, path), "unknown", "{path}");
        }
    }

    #[test]
    fn operational_routes_have_fixed_labels() {
        assert_eq!(label(Method::GET, "/health"), "health");
        assert_eq!(label(Method::GET, "/ready"), "ready");
        assert_eq!(label(Method::GET, "/live"), "live");
        assert_eq!(label(Method::GET, "/metrics"), "metrics");
        assert_eq!(label(Method::GET, "/.well-known/jwks.json"), "jwks");
        assert_eq!(label(Method::GET, "/api/v3/openapi.json"), "openapi");
        assert_eq!(label(Method::GET, "/api/v3/docs/index.html"), "docs");
    }
}
