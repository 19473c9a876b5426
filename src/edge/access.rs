//! Who is calling, worked out once per request at the edge: the client's address (through
//! trusted proxies only), its verified credentials, and whether its rate limit lets it in.
//!
//! The outcome travels with the request as [`Caller`]; the REST adapter turns it into the
//! handler's [`Ctx`](petstore_api::Ctx) after checking the operation's security requirements,
//! and the WebSocket upgrade hands it to the session it opens.

use std::{net::IpAddr, sync::Arc};

use ipnet::IpNet;
use poem::{
    Request,
    http::{HeaderMap, HeaderName, header},
};

use crate::{
    auth::{Authentication, Authenticator},
    limits::{OriginPolicy, RateDecision, RateKey, RateLimiter, TrustedProxies},
    telemetry::metrics::{self, RateScope},
};
use petstore_api::{ApiError, operations::SECURITY_SCHEMES, security::SchemeKind};

/// What the edge learned about the caller; attached to every API request.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The client's address, if the transport has one.
    pub client_ip: Option<IpAddr>,
    /// The verified credentials.
    pub authentication: Authentication,
}

/// The edge's access policy: credential verification, client addresses, rate limits, origins.
pub struct AccessControl {
    authenticator: Arc<Authenticator>,
    api_key_header: Option<HeaderName>,
    proxies: TrustedProxies,
    rate_limiter: Arc<dyn RateLimiter>,
    rate_exempt: Vec<IpNet>,
    origins: OriginPolicy,
}

impl AccessControl {
    /// The policy. The service-key header is the one the spec's `apiKey` scheme names.
    pub fn new(
        authenticator: Arc<Authenticator>,
        proxies: TrustedProxies,
        rate_limiter: Arc<dyn RateLimiter>,
        rate_exempt: Vec<IpNet>,
        origins: OriginPolicy,
    ) -> Self {
        Self {
            authenticator,
            api_key_header: api_key_header(),
            proxies,
            rate_limiter,
            rate_exempt,
            origins,
        }
    }

    /// The origin policy (CORS and WebSocket upgrades).
    pub fn origins(&self) -> &OriginPolicy {
        &self.origins
    }

    /// The client address and verified credentials of `request`.
    pub fn caller(&self, request: &Request) -> Caller {
        let client_ip = request
            .remote_addr()
            .as_socket_addr()
            .map(|peer| self.proxies.client_ip(peer.ip(), request.headers()));
        let headers = request.headers();
        let bearer = bearer_token(headers);
        let api_key = self
            .api_key_header
            .as_ref()
            .and_then(|name| headers.get(name))
            .map(|value| value.to_str().unwrap_or_default());
        let authentication = if bearer.is_none() && api_key.is_none() {
            Authentication::anonymous()
        } else {
            self.authenticator.authenticate(bearer, api_key)
        };
        Caller {
            client_ip,
            authentication,
        }
    }

    /// Counts the request against the caller's limit: per user once authenticated, per client
    /// address otherwise. `None` when exempt (allow-listed address, or no address at all).
    ///
    /// A limiter backend that fails lets the request through (logged): an outage of the limiter
    /// must not become an outage of the API.
    ///
    /// # Errors
    /// [`ApiError::RateLimited`] when the limit is exhausted.
    pub async fn check_rate(&self, caller: &Caller) -> Result<Option<RateDecision>, ApiError> {
        let Some(ip) = caller.client_ip else {
            return Ok(None);
        };
        if self.rate_exempt.iter().any(|net| net.contains(&ip)) {
            return Ok(None);
        }
        let key = match caller.authentication.principal() {
            Some(principal) => RateKey::user(principal.owner_key()),
            None => RateKey::ip(ip),
        };
        match self.rate_limiter.check(&key).await {
            Ok(decision) if decision.allowed => Ok(Some(decision)),
            Ok(decision) => {
                let scope = match caller.authentication.principal() {
                    Some(_) => RateScope::User,
                    None => RateScope::Ip,
                };
                metrics::security().rate_limited(scope);
                Err(rate_limited(&decision))
            }
            Err(error) => {
                tracing::warn!(%error, "rate limiter unavailable; letting the request through");
                Ok(None)
            }
        }
    }
}

/// The header the spec's `apiKey` scheme names (`api_key`), if it has one.
pub(super) fn api_key_header() -> Option<HeaderName> {
    SECURITY_SCHEMES
        .iter()
        .find_map(|scheme| match scheme.kind {
            SchemeKind::ApiKeyHeader { header } => {
                HeaderName::from_lowercase(header.to_ascii_lowercase().as_bytes()).ok()
            }
            SchemeKind::HttpBearer { .. } => None,
        })
}

/// The 429 for a refused decision.
pub fn rate_limited(decision: &RateDecision) -> ApiError {
    ApiError::RateLimited {
        retry_after_secs: decision.retry_after.map_or(1, |wait| wait.as_secs().max(1)),
        limit: u64::from(decision.limit),
        reset_secs: decision.reset_after.as_secs_f64().ceil() as u64,
    }
}

/// The token of an `Authorization: Bearer …` header (the scheme name is case-insensitive,
/// RFC 7235). Other schemes are not ours and count as no bearer token.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use poem::http::{HeaderMap, HeaderValue, header};

    use super::bearer_token;

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("header value"),
        );
        headers
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_token_is_trimmed() {
        for value in ["Bearer abc", "bearer abc", "BEARER  abc ", " Bearer abc"] {
            assert_eq!(
                bearer_token(&with_authorization(value)),
                Some("abc"),
                "{value}"
            );
        }
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_no_bearer_token() {
        for value in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "abc", ""] {
            assert_eq!(bearer_token(&with_authorization(value)), None, "{value}");
        }
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
