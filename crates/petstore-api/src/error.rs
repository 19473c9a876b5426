//! The error vocabulary of the API, shared by every transport.
//!
//! Two levels, for two readers:
//!
//! - **Kinds** ([`BadRequest`], [`NotFound`], [`Invalid`], [`ServerError`], …): one type per
//!   documented error response of the spec. Each operation's generated error enum
//!   (`GetPetByIdError`) has a variant for each error status the operation documents and a
//!   `From` conversion for its kind, so a handler that returns an error its operation does not
//!   document does not compile.
//! - [`ApiError`]: any error a client can see, with its status, stable code, headers and body.
//!   Transports render it in exactly one place each; errors raised at the edge (an unreadable
//!   body, a rate limit, an unknown route) are `ApiError`s from the start.
//!
//! Internal causes are logged where they happen and never sent.

use std::convert::Infallible;

use crate::models::{ErrorResponse, FieldError};

/// 400 `BAD_REQUEST`: the input cannot be read at all (bad JSON, a parameter of the wrong type
/// or out of range).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

/// 401 `UNAUTHORIZED`: no credentials, or credentials that are not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.message())]
pub struct Unauthorized(pub Challenge);

/// 403 `FORBIDDEN`: valid credentials that do not grant the operation, or a resource that
/// belongs to someone else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Forbidden(pub String);

/// 404 `NOT_FOUND`: no such resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotFound(pub String);

/// 408 `TIMEOUT`: the request was not received and answered within the request timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request took longer than the server's timeout")]
pub struct RequestTimeout;

/// 409 `CONFLICT`: the request clashes with the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Conflict(pub String);

/// 413 `PAYLOAD_TOO_LARGE`: the body is over the configured limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", too_large_message(*limit))]
pub struct PayloadTooLarge {
    /// The limit that was exceeded, in bytes, when the layer that refused the body knows it.
    pub limit: Option<usize>,
}

/// 415 `UNSUPPORTED_MEDIA_TYPE`: a body of a type the operation does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnsupportedMediaType(pub String);

/// 422 `VALIDATION_ERROR`: well-formed input that breaks the schema or a business rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// Summary for humans.
    pub message: String,
    /// One entry per offending field.
    pub errors: Vec<FieldError>,
}

impl Invalid {
    /// A 422 for one field (`path` as in [`FieldError::path`]).
    pub fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        let path = path.into();
        let message = message.into();
        Self {
            message: format!("{path}: {message}"),
            errors: vec![FieldError { path, message }],
        }
    }
}

/// 429 `RATE_LIMITED`: too many requests (or login attempts); answered with `Retry-After` and
/// `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests; retry in {retry_after_secs} s")]
pub struct RateLimited {
    /// Whole seconds until a retry can succeed (at least 1).
    pub retry_after_secs: u64,
    /// Requests allowed in a burst.
    pub limit: u64,
    /// Seconds until the full burst is available again.
    pub reset_secs: u64,
}

/// 5XX: the server could not do what was asked, through no fault of the request. Every
/// operation documents `5XX`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    /// 500 `INTERNAL`: a bug or an unexpected failure. The cause was logged where it happened;
    /// the client gets a generic message.
    #[error("internal error")]
    Internal,
    /// 503 `OVERLOADED`: the server (a WebSocket session's request queue) is full and refused
    /// low-priority work rather than queue it without bound.
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
        /// Whole seconds after which a retry is worth it (at least 1).
        retry_after_secs: u64,
    },
}

impl ServerError {
    /// A 503 `UNAVAILABLE` telling the client to come back in `retry_after_secs` (at least 1).
    pub fn unavailable(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::Unavailable {
            message: message.into(),
            retry_after_secs: retry_after_secs.max(1),
        }
    }

    /// A 500 for a failure whose cause is `cause`: the cause is logged here, the client sees
    /// only "internal error".
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::Internal
    }
}

/// Why an operation's security requirements refused a caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Credentials are missing or not valid (401).
    #[error(transparent)]
    Unauthorized(#[from] Unauthorized),
    /// Valid credentials without the permission the operation needs (403).
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
}

/// One of two documented refusals, for a step that can refuse in two ways (a store step that
/// finds no pet or finds it sold). Each operation error converts from it when it documents
/// both.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OneOf<A, B> {
    /// The first kind.
    #[error(transparent)]
    First(A),
    /// The second kind.
    #[error(transparent)]
    Second(B),
}

/// What a step below the handlers (a store, a session store) answers when it does not succeed:
/// a refusal the step documents (`R`, one of the kinds above, [`OneOf`] two of them, or
/// [`Infallible`] for none), or a server error.
///
/// Every operation error converts from `Failure<R>` when it documents what `R` can hold, so
/// `store.place_order(..).await?` compiles exactly in the handlers whose operation documents
/// the store step's refusals.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure<R = Infallible> {
    /// The step refused, for a reason the client may know.
    #[error(transparent)]
    Refused(R),
    /// The step could not be carried out.
    #[error(transparent)]
    Server(#[from] ServerError),
}

impl<R> Failure<R> {
    /// A 500 whose cause is logged here (see [`ServerError::internal`]).
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Server(ServerError::internal(cause))
    }

    /// The same failure with the refusal turned into `S` (to widen a step's refusals).
    pub fn map_refusal<S>(self, map: impl FnOnce(R) -> S) -> Failure<S> {
        match self {
            Self::Refused(refusal) => Failure::Refused(map(refusal)),
            Self::Server(error) => Failure::Server(error),
        }
    }
}

impl Failure<Infallible> {
    /// The same failure under any refusal type (it has none).
    pub fn widen<S>(self) -> Failure<S> {
        self.map_refusal(|never| match never {})
    }
}

/// The conversions of an operation's error enum (the generated `operations.rs` invokes it after
/// each enum): `Display` and `Error` through the kind, a `From` for each kind, for [`Failure`]
/// and [`OneOf`] of documented kinds and for [`Infallible`], and the conversion into
/// [`ApiError`].
///
/// Every operation documents `5XX` (the generator checks), so every error enum has a
/// `ServerError` variant and a failed store step always has somewhere to go.
#[macro_export]
#[doc(hidden)]
macro_rules! operation_errors {
    ($name:ident { $($variant:ident($kind:ty)),* $(,)? }) => {
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    $( Self::$variant(error) => error.fmt(f), )*
                }
            }
        }

        impl std::error::Error for $name {}

        $(
            impl From<$kind> for $name {
                fn from(error: $kind) -> Self {
                    Self::$variant(error)
                }
            }
        )*

        impl From<std::convert::Infallible> for $name {
            fn from(never: std::convert::Infallible) -> Self {
                match never {}
            }
        }

        impl<R: Into<$name>> From<$crate::error::Failure<R>> for $name {
            fn from(failure: $crate::error::Failure<R>) -> Self {
                match failure {
                    $crate::error::Failure::Refused(refusal) => refusal.into(),
                    $crate::error::Failure::Server(error) => error.into(),
                }
            }
        }

        impl<A: Into<$name>, B: Into<$name>> From<$crate::error::OneOf<A, B>> for $name {
            fn from(refusal: $crate::error::OneOf<A, B>) -> Self {
                match refusal {
                    $crate::error::OneOf::First(error) => error.into(),
                    $crate::error::OneOf::Second(error) => error.into(),
                }
            }
        }

        impl From<$name> for $crate::error::ApiError {
            fn from(error: $name) -> Self {
                match error {
                    $( $name::$variant(error) => error.into(), )*
                }
            }
        }
    };
}

pub use operation_errors;

/// Everything that can go wrong with a request, as the client sees it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 400 `BAD_REQUEST`: see [`BadRequest`].
    #[error("{0}")]
    BadRequest(String),
    /// 422 `VALIDATION_ERROR`: see [`Invalid`].
    #[error("{message}")]
    Validation {
        /// Summary for humans.
        message: String,
        /// One entry per offending field.
        errors: Vec<FieldError>,
    },
    /// 401 `UNAUTHORIZED`: see [`Unauthorized`]. Answered with a `WWW-Authenticate` bearer
    /// challenge.
    #[error("{}", challenge.message())]
    Unauthorized {
        /// What the challenge says about the credentials that were presented.
        challenge: Challenge,
    },
    /// 403 `FORBIDDEN`: see [`Forbidden`].
    #[error("{0}")]
    Forbidden(String),
    /// 404 `NOT_FOUND`: no such resource (or no such route).
    #[error("{0}")]
    NotFound(String),
    /// 405 `METHOD_NOT_ALLOWED`: the path exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 408 `TIMEOUT`: see [`RequestTimeout`].
    #[error("the request took longer than the server's timeout")]
    Timeout,
    /// 409 `CONFLICT`: see [`Conflict`].
    #[error("{0}")]
    Conflict(String),
    /// 413 `PAYLOAD_TOO_LARGE`: see [`PayloadTooLarge`].
    #[error("{}", too_large_message(*limit))]
    PayloadTooLarge {
        /// The limit that was exceeded, in bytes, when known.
        limit: Option<usize>,
    },
    /// 415 `UNSUPPORTED_MEDIA_TYPE`: see [`UnsupportedMediaType`].
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429 `RATE_LIMITED`: see [`RateLimited`]; answered with `Retry-After` and `RateLimit-*`
    /// headers.
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited {
        /// Whole seconds until a retry can succeed (at least 1).
        retry_after_secs: u64,
        /// Requests allowed in a burst.
        limit: u64,
        /// Seconds until the full burst is available again.
        reset_secs: u64,
    },
    /// 500 `INTERNAL`: see [`ServerError::Internal`].
    #[error("internal error")]
    Internal,
    /// 503 `OVERLOADED`: see [`ServerError::Overloaded`].
    #[error("the server is overloaded; retry in {retry_after_secs} s")]
    Overloaded {
        /// Whole seconds after which a retry is worth it (at least 1).
        retry_after_secs: u64,
    },
    /// 503 `UNAVAILABLE`: see [`ServerError::Unavailable`].
    #[error("{message}")]
    Unavailable {
        /// What is unavailable, in words fit for the client.
        message: String,
        /// Whole seconds after which a retry is worth it (at least 1).
        retry_after_secs: u64,
    },
}

impl ApiError {
    /// A 503 `UNAVAILABLE` telling the client to come back in `retry_after_secs` (at least 1).
    pub fn unavailable(message: impl Into<String>, retry_after_secs: u64) -> Self {
        ServerError::unavailable(message, retry_after_secs).into()
    }

    /// A 422 for one field.
    pub fn invalid_field(path: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid::field(path, message).into()
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
}

impl From<BadRequest> for ApiError {
    fn from(BadRequest(message): BadRequest) -> Self {
        Self::BadRequest(message)
    }
}

impl From<Unauthorized> for ApiError {
    fn from(Unauthorized(challenge): Unauthorized) -> Self {
        Self::Unauthorized { challenge }
    }
}

impl From<Forbidden> for ApiError {
    fn from(Forbidden(message): Forbidden) -> Self {
        Self::Forbidden(message)
    }
}

impl From<NotFound> for ApiError {
    fn from(NotFound(message): NotFound) -> Self {
        Self::NotFound(message)
    }
}

impl From<RequestTimeout> for ApiError {
    fn from(RequestTimeout: RequestTimeout) -> Self {
        Self::Timeout
    }
}

impl From<Conflict> for ApiError {
    fn from(Conflict(message): Conflict) -> Self {
        Self::Conflict(message)
    }
}

impl From<PayloadTooLarge> for ApiError {
    fn from(PayloadTooLarge { limit }: PayloadTooLarge) -> Self {
        Self::PayloadTooLarge { limit }
    }
}

impl From<UnsupportedMediaType> for ApiError {
    fn from(UnsupportedMediaType(message): UnsupportedMediaType) -> Self {
        Self::UnsupportedMediaType(message)
    }
}

impl From<Invalid> for ApiError {
    fn from(Invalid { message, errors }: Invalid) -> Self {
        Self::Validation { message, errors }
    }
}

impl From<RateLimited> for ApiError {
    fn from(
        RateLimited {
            retry_after_secs,
            limit,
            reset_secs,
        }: RateLimited,
    ) -> Self {
        Self::RateLimited {
            retry_after_secs,
            limit,
            reset_secs,
        }
    }
}

impl From<ServerError> for ApiError {
    fn from(error: ServerError) -> Self {
        match error {
            ServerError::Internal => Self::Internal,
            ServerError::Overloaded { retry_after_secs } => Self::Overloaded { retry_after_secs },
            ServerError::Unavailable {
                message,
                retry_after_secs,
            } => Self::Unavailable {
                message,
                retry_after_secs,
            },
        }
    }
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Unauthorized(error) => error.into(),
            Denied::Forbidden(error) => error.into(),
        }
    }
}

impl<A: Into<ApiError>, B: Into<ApiError>> From<OneOf<A, B>> for ApiError {
    fn from(refusal: OneOf<A, B>) -> Self {
        match refusal {
            OneOf::First(error) => error.into(),
            OneOf::Second(error) => error.into(),
        }
    }
}

impl<R: Into<ApiError>> From<Failure<R>> for ApiError {
    fn from(failure: Failure<R>) -> Self {
        match failure {
            Failure::Refused(refusal) => refusal.into(),
            Failure::Server(error) => error.into(),
        }
    }
}

impl From<Infallible> for ApiError {
    fn from(never: Infallible) -> Self {
        match never {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_keeps_its_status_and_code() {
        let cases: [(ApiError, u16, &str); 11] = [
            (BadRequest("x".into()).into(), 400, "BAD_REQUEST"),
            (Unauthorized(Challenge::Missing).into(), 401, "UNAUTHORIZED"),
            (Forbidden("x".into()).into(), 403, "FORBIDDEN"),
            (NotFound("x".into()).into(), 404, "NOT_FOUND"),
            (RequestTimeout.into(), 408, "TIMEOUT"),
            (Conflict("x".into()).into(), 409, "CONFLICT"),
            (
                PayloadTooLarge { limit: Some(1) }.into(),
                413,
                "PAYLOAD_TOO_LARGE",
            ),
            (
                UnsupportedMediaType("x".into()).into(),
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            ),
            (Invalid::field("a", "b").into(), 422, "VALIDATION_ERROR"),
            (
                RateLimited {
                    retry_after_secs: 1,
                    limit: 1,
                    reset_secs: 1,
                }
                .into(),
                429,
                "RATE_LIMITED",
            ),
            (ServerError::Internal.into(), 500, "INTERNAL"),
        ];
        for (error, status, code) in cases {
            assert_eq!((error.status(), error.code()), (status, code), "{error:?}");
        }
    }

    #[test]
    fn failures_keep_the_refusal_or_the_server_error() {
        let refused: Failure<OneOf<NotFound, Conflict>> =
            Failure::Refused(OneOf::Second(Conflict("sold".into())));
        assert_eq!(ApiError::from(refused), ApiError::Conflict("sold".into()));
        let down: Failure = ServerError::unavailable("storage is unavailable", 0).into();
        assert_eq!(
            ApiError::from(down).header("retry-after").as_deref(),
            Some("1")
        );
    }

    #[test]
    fn a_validation_error_carries_its_fields_in_the_body() {
        let body = ApiError::invalid_field("status", "cannot go back").to_body();
        assert_eq!(body.code, 422);
        assert_eq!(body.message, "status: cannot go back");
        assert_eq!(body.errors.map(|errors| errors.len()), Some(1));
    }
}
