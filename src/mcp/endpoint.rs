//! The poem endpoint at `/mcp`: the edge's rules for MCP requests, then the SDK's Streamable HTTP
//! service, mounted through poem's tower compatibility layer.
//!
//! The HTTP edge has already given the request its id and checked its origin. Here, before the
//! SDK sees it:
//!
//! - credentials: verified like REST's (`Authorization: Bearer …` or the `api_key` header); a
//!   credential that is not valid is refused with 401 and a challenge naming the
//!   protected-resource metadata, as the MCP authorization spec asks; the caller goes with the
//!   request, for every tool call it carries;
//! - sessions: a request for a session must come from the caller that opened it, within the
//!   session's lifetime (else 404, and the client starts a new one); a request that may open
//!   one takes a place among its client address's sessions first (429 when they are all taken);
//! - the body: read within the JSON body limit (413 above it), as every JSON body is;
//! - the request timeout, until the response's head (a response streamed as server-sent events
//!   then runs on; each tool call has its own timeout).

use std::{marker::PhantomData, sync::Arc, time::Duration};

use poem::{
    Endpoint, EndpointExt, IntoResponse, Request, Response,
    endpoint::{BoxEndpoint, TowerCompatExt},
    http::{HeaderValue, Method, header},
};
use rmcp::transport::streamable_http_server::StreamableHttpService;

use super::{
    metadata::PublicUrl,
    server::McpHandler,
    sessions::{Owner, Sessions},
};
use crate::{
    auth::Presented,
    edge::{AccessControl, BodyLimits, HttpError, error_response, read_limited},
};
use petstore_api::{ApiError, Challenge, Subscriptions, operations::PetStoreApi};

/// The header that names a session.
const SESSION_HEADER: &str = "mcp-session-id";

/// The MCP endpoint.
pub struct McpEndpoint<H> {
    /// The SDK's service, as a poem endpoint (boxed: poem does not name the adapter's type).
    pub(super) http: BoxEndpoint<'static, Response>,
    pub(super) handler: PhantomData<fn() -> H>,
    pub(super) sessions: Arc<Sessions>,
    pub(super) access: Arc<AccessControl>,
    pub(super) public_url: PublicUrl,
    pub(super) session_limit: usize,
    pub(super) request_timeout: Duration,
}

impl<H: PetStoreApi + Subscriptions> Endpoint for McpEndpoint<H> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        match self.serve(request).await {
            Ok(response) => Ok(response),
            Err(Refused::Api(error)) => Err(HttpError(error).into()),
            Err(Refused::Unauthenticated(metadata)) => {
                let mut response = error_response(&ApiError::Unauthorized {
                    challenge: Challenge::InvalidToken,
                });
                let challenge = format!(
                    "{}, resource_metadata=\"{metadata}\"",
                    Challenge::InvalidToken.www_authenticate()
                );
                if let Ok(challenge) = HeaderValue::from_str(&challenge) {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, challenge);
                }
                Ok(response)
            }
        }
    }
}

/// Why a request does not reach the SDK.
enum Refused {
    /// This error, rendered as every error is.
    Api(ApiError),
    /// Credentials that are not valid: 401 with the metadata's URL in the challenge.
    Unauthenticated(String),
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl<H: PetStoreApi + Subscriptions> McpEndpoint<H> {
    async fn serve(&self, request: Request) -> Result<Response, Refused> {
        let method = request.method().clone();
        if ![Method::POST, Method::GET, Method::DELETE].contains(&method) {
            return Err(ApiError::MethodNotAllowed.into());
        }
        let caller = self.access.caller(&request);
        let presented = !matches!(caller.authentication.bearer, Presented::Absent)
            || !matches!(caller.authentication.api_key, Presented::Absent);
        let principal = caller.authentication.principal();
        if presented && principal.is_none() {
            return Err(Refused::Unauthenticated(
                self.public_url.metadata_url(&request),
            ));
        }
        let owner = Owner {
            client: caller.client_ip,
            caller: principal.map(|principal| principal.owner_key()),
        };
        let session = request
            .headers()
            .get(SESSION_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let ticket = match (&session, &method) {
            (Some(session), _) => {
                self.sessions
                    .check(session, owner.caller.as_deref())
                    .await
                    .map_err(|_| {
                        ApiError::NotFound(
                            "no such MCP session (it ended, or it is not yours): start a new one"
                                .to_owned(),
                        )
                    })?;
                None
            }
            (None, &Method::POST) => {
                let ticket = self.sessions.ticket(owner).map_err(|_| {
                    tracing::debug!(client = ?caller.client_ip, "MCP session refused: limit");
                    ApiError::RateLimited {
                        retry_after_secs: 1,
                        limit: self.session_limit as u64,
                        reset_secs: 1,
                    }
                })?;
                Some(ticket)
            }
            (None, _) => None,
        };
        let mut request = if method == Method::POST {
            let limit = BodyLimits::of(&request).json;
            let (mut request, mut body) = request.split();
            let bytes = read_limited(&request, &mut body, limit).await?;
            request.set_body(bytes);
            request
        } else {
            request
        };
        request.set_data(caller);
        let forwarded = async {
            match ticket {
                Some(ticket) => ticket.scope(self.http.call(request)).await,
                None => self.http.call(request).await,
            }
        };
        match tokio::time::timeout(self.request_timeout, forwarded).await {
            Ok(Ok(response)) => Ok(response.into_response()),
            Ok(Err(error)) => {
                tracing::error!(%error, "the MCP service failed");
                Err(ApiError::Internal.into())
            }
            Err(_) => Err(ApiError::Timeout.into()),
        }
    }
}

/// The SDK's service as a poem endpoint, through poem's tower compatibility layer.
pub(super) fn compat<H: PetStoreApi + Subscriptions>(
    service: StreamableHttpService<McpHandler<H>, Sessions>,
) -> BoxEndpoint<'static, Response> {
    service.compat().boxed()
}
