//! The one error type of the API, shared by every transport.
//!
//! Handlers and the edge return [`ApiError`]; it is turned into a response in exactly one place
//! per transport (the REST adapter renders [`ApiError::to_body`]). Each variant documents the HTTP
//! status and the stable error code clients see. Internal causes are logged where they happen and
//! never sent.

use crate::api::models::{ErrorResponse, FieldError};

/// Everything that can go wrong with a request, as the client sees it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 400 `BAD_REQUEST`: the input cannot be read at all (bad JSON, a parameter of the wrong
    /// type or out of range).
    #[error("{0}")]
    BadRequest(String),
    /// 422 `VALIDATION_ERROR`: well-formed input that breaks the schema or a business rule.
    #[error("{message}")]
    Validation {
        /// Summary for humans.
        message: String,
        /// One entry per offending field.
        errors: Vec<FieldError>,
    },
    /// 401 `UNAUTHORIZED`: no credentials, or credentials that are not valid. Answered with a
    /// `WWW-Authenticate` bearer challenge.
    #[error("{}", challenge.message())]
    Unauthorized {
        /// What the challenge says about the credentials that were presented.
        challenge: Challenge,
    },
    /// 403 `FORBIDDEN`: valid credentials that do not grant the operation, or a resource that
    /// belongs to someone else.
    #[error("{0}")]
    Forbidden(String),
    /// 404 `NOT_FOUND`: no such resource (or no such route).
    #[error("{0}")]
    NotFound(String),
    /// 405 `METHOD_NOT_ALLOWED`: the path exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 408 `TIMEOUT`: the request was not received and answered within the request timeout.
    #[error("the request took longer than the server's timeout")]
    Timeout,
    /// 409 `CONFLICT`: the request clashes with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 413 `PAYLOAD_TOO_LARGE`: the body is over the configured limit.
    #[error("{}", too_large_message(*limit))]
    PayloadTooLarge {
        /// The limit that was exceeded, in bytes, when the layer that refused the body knows it.
        limit: Option<usize>,
    },
    /// 415 `UNSUPPORTED_MEDIA_TYPE`: a body of a type this operation does not accept.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429 `RATE_LIMITED`: too many requests (or login attempts); answered with `Retry-After`
    /// and `RateLimit-*` headers.
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited {
        /// Whole seconds until a retry can succeed (at least 1).
        retry_after_secs: u64,
        /// Requests allowed in a burst.
        limit: u64,
        /// Seconds until the full burst is available again.
        reset_secs: u64,
    },
    /// 500 `INTERNAL`: a bug or an unexpected failure. The cause was logged; the client gets a
    /// generic message.
    #[error("internal error")]
    Internal,
    /// 503 `OVERLOADED`: the server (a WebSocket session's request queue) is full and refused
    /// low-priority work rather than queue it without bound; retry after the given time.
    #[error("the server is overloaded; retry in {retry_after_secs} s")]
    Overloaded {
        /// Whole seconds after which a retry is worth it (at least 1).
        retry_after_secs: u64,
    },
    /// 503 `UNAVAILABLE`: a dependency is down (or the server is shutting down); retrying
    /// later, here or on another node, may succeed.
    #[error("{message}")]
    Unavailable {
        /// What is unavailable, in words fit for the client.
        message: String,
        /// Whole seconds after which a retry is worth it (at least 1): for Redis, the time until
        /// its circuit breaker tries again.
        retry_after_secs: u64,
    },
}

impl ApiError {
    /// A 503 `UNAVAILABLE` telling the client to come back in `retry_after_secs` (at least 1).
    pub fn unavailable(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::Unavailable {
            message: message.into(),
            retry_after_secs: retry_after_secs.max(1),
        }
    }

    /// A 422 for one field.
    pub fn invalid_field(path: impl Into<String>, message: impl Into<String>) -> Self {
        let path = path.into();
        let message = message.into();
        Self::Validation {
            message: format!("{path}: {message}"),
            errors: vec![FieldError { path, message }],
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Unauthorized { .. } => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::MethodNotAllowed => 405,
            Self::Timeout => 408,
            Self::Conflict(_) => 409,
            Self::PayloadTooLarge { .. } => 413,
            Self::UnsupportedMediaType(_) => 415,
            Self::Validation { .. } => 422,
            Self::RateLimited { .. } => 429,
            Self::Internal => 500,
            Self::Overloaded { .. } | Self::Unavailable { .. } => 503,
        }
    }

    /// The stable error code of this error, the same on every transport.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::Validation { .. } => "VALIDATION_ERROR",
            Self::Unauthorized { .. } => "UNAUTHORIZED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::Timeout => "TIMEOUT",
            Self::Conflict(_) => "CONFLICT",
            Self::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Internal => "INTERNAL",
            Self::Overloaded { .. } => "OVERLOADED",
            Self::Unavailable { .. } => "UNAVAILABLE",
        }
    }

    /// The response headers this error comes with (`WWW-Authenticate` on a 401, `Retry-After`
    /// and `RateLimit-*` on a 429), by lower-case name; the one place that decides them for
    /// every transport that has headers.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Unauthorized { challenge } => {
                vec![("www-authenticate", challenge.www_authenticate())]
            }
            Self::RateLimited {
                retry_after_secs,
                limit,
                reset_secs,
            } => vec![
                ("retry-after", retry_after_secs.to_string()),
                ("ratelimit-limit", limit.to_string()),
                ("ratelimit-remaining", "0".to_owned()),
                ("ratelimit-reset", reset_secs.to_string()),
            ],
            Self::Overloaded { retry_after_secs }
            | Self::Unavailable {
                retry_after_secs, ..
            } => {
                vec![("retry-after", retry_after_secs.to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// The value of one of [`headers`](Self::headers), by name (any case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// The error body every transport sends.
    pub fn to_body(&self) -> ErrorResponse {
        ErrorResponse {
            code: i32::from(self.status()),
            r#type: self.code().to_owned(),
            message: self.to_string(),
            errors: match self {
                Self::Validation { errors, .. } => Some(errors.clone()),
                _ => None,
            },
        }
    }

    /// Called by generated code when a handler returns an error whose status the operation does
    /// not document: that is a bug in the handler, so it is logged and answered as `INTERNAL`
    /// rather than breaking the contract.
    pub fn undocumented_for(self, operation_id: &'static str) -> Self {
        tracing::error!(
            operation_id,
            status = self.status(),
            error = %self,
            "handler returned a status the operation does not document"
        );
        Self::Internal
    }
}

/// Why a request is unauthenticated, as far as the client may know (RFC 6750 §3).
///
/// Deliberately coarse: whether a token was forged, expired or revoked is logged and counted,
/// never told to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// No credentials were presented.
    Missing,
    /// A token or key was presented and rejected.
    InvalidToken,
    /// A username and password (or refresh token) were rejected.
    InvalidCredentials,
}

/// The realm of every challenge.
pub const AUTH_REALM: &str = "petstore-ws";

impl Challenge {
    fn message(self) -> &'static str {
        match self {
            Self::Missing => "authentication required",
            Self::InvalidToken => "the access token or API key is not valid",
            Self::InvalidCredentials => "invalid credentials",
        }
    }

    /// The `WWW-Authenticate` value.
    pub fn www_authenticate(self) -> String {
        match self {
            Self::Missing | Self::InvalidCredentials => format!("Bearer realm=\"{AUTH_REALM}\""),
            Self::InvalidToken => format!(
                "Bearer realm=\"{AUTH_REALM}\", error=\"invalid_token\", \
                 error_description=\"the access token is malformed, expired, revoked or not ours\""
            ),
        }
    }
}

fn too_large_message(limit: Option<usize>) -> String {
    match limit {
        Some(limit) => format!("request body is larger than the limit of {limit} bytes"),
        None => "request body is too large".to_owned(),
    }
}
