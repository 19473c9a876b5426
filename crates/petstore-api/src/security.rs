//! Security requirements as data: what the spec's `securitySchemes` and per-operation `security`
//! become in generated code, checked by the transports before any handler runs.
//!
//! OpenAPI semantics: an operation's `security` is a list of alternatives (any one suffices);
//! each alternative names schemes that must all hold, each with the scopes it needs. An
//! operation without requirements is public; an empty alternative (`{}`) makes credentials
//! optional. For the non-OAuth schemes used here the scopes are the caller's permissions (the
//! OpenAPI 3.1 reading of scopes as role or permission names).

use crate::operations::Scope;

/// A way to present credentials, from `components/securitySchemes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecurityScheme {
    /// Its name in the spec (`bearerAuth`).
    pub name: &'static str,
    /// How credentials travel.
    pub kind: SchemeKind,
    /// Its description in the spec.
    pub description: Option<&'static str>,
}

/// The scheme types the server can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemeKind {
    /// `type: http, scheme: bearer`: `Authorization: Bearer <token>`.
    HttpBearer {
        /// `bearerFormat`, a documentation hint (`JWT`).
        bearer_format: Option<&'static str>,
    },
    /// `type: apiKey, in: header`.
    ApiKeyHeader {
        /// The header carrying the key.
        header: &'static str,
    },
}

/// One scheme of a requirement, with the scopes it must grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemeScopes {
    /// The scheme.
    pub scheme: &'static SecurityScheme,
    /// Every scope the caller needs through it.
    pub scopes: &'static [Scope],
}

/// One alternative of an operation's `security`: all of its schemes must hold. Empty means
/// anonymous callers are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecurityRequirement(pub &'static [SchemeScopes]);

impl SecurityRequirement {
    /// Whether this alternative accepts anonymous callers.
    #[must_use]
    pub fn is_anonymous(&self) -> bool {
        self.0.is_empty()
    }
}
