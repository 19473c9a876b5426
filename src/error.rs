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
    /// 404 `NOT_FOUND`: no such resource (or no such route).
    #[error("{0}")]
    NotFound(String),
    /// 405 `METHOD_NOT_ALLOWED`: the path exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
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
    /// 500 `INTERNAL`: a bug or an unexpected failure. The cause was logged; the client gets a
    /// generic message.
    #[error("internal error")]
    Internal,
    /// 503 `UNAVAILABLE`: a dependency is down; retrying later may succeed.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
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
            Self::NotFound(_) => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict(_) => 409,
            Self::PayloadTooLarge { .. } => 413,
            Self::UnsupportedMediaType(_) => 415,
            Self::Validation { .. } => 422,
            Self::Internal => 500,
            Self::Unavailable(_) => 503,
        }
    }

    /// The stable error code of this error, the same on every transport.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::Validation { .. } => "VALIDATION_ERROR",
            Self::NotFound(_) => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::Conflict(_) => "CONFLICT",
            Self::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            Self::Internal => "INTERNAL",
            Self::Unavailable(_) => "UNAVAILABLE",
        }
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

fn too_large_message(limit: Option<usize>) -> String {
    match limit {
        Some(limit) => format!("request body is larger than the limit of {limit} bytes"),
        None => "request body is too large".to_owned(),
    }
}
