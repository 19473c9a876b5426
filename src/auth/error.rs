//! The one error type of the authentication layer.

/// Everything that can go wrong while issuing or checking credentials.
///
/// The token variants are deliberately fine-grained so that logs and metrics can tell an
/// expired session from a forgery attempt. Clients must not see that distinction: the HTTP
/// layer answers every [`is_credential_error`](AuthError::is_credential_error) variant with the
/// same `401` body, and everything else with a `500` whose cause is only logged.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Not a compact JWS with three base64url parts, or its header or claims are not the JSON
    /// we expect (a claim missing or of the wrong type included).
    #[error("malformed token")]
    Malformed,
    /// The header names an algorithm other than RS256 (`none`, HS256, ES256, ...). Checked
    /// before any key is touched, which is what defeats algorithm-confusion attacks.
    #[error("token uses an unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The header carries no `kid`, or one that is not among our verification keys.
    #[error("token is signed with an unknown key")]
    UnknownKey,
    /// The signature does not match the header and claims: tampered or forged.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is in the past (beyond the clock-skew leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the clock-skew leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iss` is not the issuer this service is configured with.
    #[error("token was issued by another issuer")]
    WrongIssuer,
    /// `aud` does not name this service.
    #[error("token is meant for another audience")]
    WrongAudience,
    /// The token's `jti` is on the revocation list (the user logged out).
    #[error("token has been revoked")]
    Revoked,
    /// The token settings are unusable; reported at start-up.
    #[error("invalid token settings: {0}")]
    InvalidSettings(String),
    /// The configured signing key cannot be read or is not acceptable; reported at start-up.
    #[error("cannot load the token signing key: {0}")]
    KeyLoad(String),
    /// Signing or an unexpected failure inside the JWT library. A server fault, never the
    /// client's.
    #[error("token cryptography failed: {0}")]
    Crypto(String),
    /// Hashing a password failed (e.g. the system random generator was unavailable).
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
    /// A blocking task (password hashing) panicked or was cancelled during shutdown.
    #[error("background task failed: {0}")]
    TaskFailed(String),
}

impl AuthError {
    /// `true` when the presented token is at fault (answer `401 Unauthorized`), `false` when
    /// the server is (answer `500`, log the cause).
    #[must_use]
    pub fn is_credential_error(&self) -> bool {
        matches!(
            self,
            Self::Malformed
                | Self::UnsupportedAlgorithm
                | Self::UnknownKey
                | Self::BadSignature
                | Self::Expired
                | Self::NotYetValid
                | Self::WrongIssuer
                | Self::WrongAudience
                | Self::Revoked
        )
    }
}
