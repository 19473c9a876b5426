//! The protected-resource metadata the MCP authorization spec asks for (RFC 9728), served at
//! `/.well-known/oauth-protected-resource` (and at the same path with `/mcp` appended, where
//! RFC 9728 puts the metadata of a resource with a path).
//!
//! It tells an MCP client that `/mcp` takes bearer tokens in the `Authorization` header, which
//! scopes exist, and where tokens come from: this server (`authorization_servers`), whose token
//! endpoint (`token_endpoint`, an extension member) is the API's own `createToken`.

use poem::{Endpoint, IntoResponse, Request, Response, http::header};
use serde_json::json;

use crate::edge::{
    HttpError,
    paths::{DOCS, MCP_PATH, RESOURCE_METADATA_PATH, under_api_base},
};
use petstore_api::{
    ApiError,
    operations::{OPERATIONS, Scope},
};

/// The base URL clients reach the server at: the configured one, else the request's own
/// (`Host`, and `https` when the server speaks TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// The configured base URL, without a trailing `/`.
    pub configured: Option<String>,
    /// Whether the server itself speaks TLS.
    pub tls: bool,
}

impl PublicUrl {
    /// The base URL as `request` reached it.
    pub fn of(&self, request: &Request) -> String {
        if let Some(configured) = &self.configured {
            return configured.trim_end_matches('/').to_owned();
        }
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .unwrap_or("localhost");
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{host}")
    }

    /// The metadata document's URL, for `WWW-Authenticate: … resource_metadata="…"`.
    pub fn metadata_url(&self, request: &Request) -> String {
        format!("{}{RESOURCE_METADATA_PATH}", self.of(request))
    }
}

/// The metadata endpoint.
pub struct ResourceMetadata(pub PublicUrl);

impl Endpoint for ResourceMetadata {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        if request.method() != poem::http::Method::GET {
            return Err(HttpError(ApiError::MethodNotAllowed).into());
        }
        let base = self.0.of(&request);
        let token_endpoint = OPERATIONS
            .iter()
            .find(|operation| operation.id == "createToken")
            .map(|operation| format!("{base}{}", under_api_base(operation.path)));
        let scopes: Vec<&str> = Scope::ALL.iter().map(|scope| scope.as_str()).collect();
        let document = json!({
            "resource": format!("{base}{MCP_PATH}"),
            "resource_name": "petstore-ws",
            "authorization_servers": [base],
            "token_endpoint": token_endpoint,
            "bearer_methods_supported": ["header"],
            "scopes_supported": scopes,
            "resource_documentation": format!("{base}{}/", under_api_base(DOCS)),
        });
        Ok(poem::web::Json(document).into_response())
    }
}
