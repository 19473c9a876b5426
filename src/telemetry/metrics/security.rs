//! Security families: authentication attempts, rate-limit rejections, refused origins.
//!
//! Recorded where each decision is made (the authenticator, the login check, the rate limiter at
//! the edge, the origin check), so a transport that reuses those decisions — the WebSocket
//! endpoint — is counted the same way. Every label comes from a closed enum, and every valid
//! combination starts at zero.

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Meter},
};

/// The kind of credential an authentication attempt presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A username and password (`loginUser`, `createToken`).
    Password,
    /// A refresh token (`refreshToken`).
    RefreshToken,
    /// A bearer access token on a request.
    AccessToken,
    /// A service API key on a request.
    ApiKey,
}

impl CredentialKind {
    fn label(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::RefreshToken => "refresh_token",
            Self::AccessToken => "access_token",
            Self::ApiKey => "api_key",
        }
    }
}

/// How an authentication attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    /// The credential was valid.
    Success,
    /// The credential was wrong, unknown, expired, revoked or forged.
    Failure,
    /// The attempt was refused unchecked by the login throttle.
    Throttled,
}

impl AuthResult {
    /// `Success` if `valid`, else `Failure`.
    pub fn of(valid: bool) -> Self {
        if valid { Self::Success } else { Self::Failure }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Throttled => "throttled",
        }
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateScope {
    /// The request rate of an anonymous client, per address.
    Ip,
    /// The request rate of an authenticated caller, per user or service.
    User,
    /// Password attempts, per username or per address.
    Login,
    /// The message rate of one WebSocket connection.
    Connection,
}

impl RateScope {
    fn label(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::User => "user",
            Self::Login => "login",
            Self::Connection => "connection",
        }
    }
}

/// The transport a refusal happened on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A REST request.
    Http,
    /// A WebSocket upgrade.
    WebSocket,
}

impl Transport {
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::WebSocket => "websocket",
        }
    }
}

/// The combinations of credential and result that can happen: only passwords are throttled.
const ATTEMPTS: [(CredentialKind, AuthResult); 9] = [
    (CredentialKind::Password, AuthResult::Success),
    (CredentialKind::Password, AuthResult::Failure),
    (CredentialKind::Password, AuthResult::Throttled),
    (CredentialKind::RefreshToken, AuthResult::Success),
    (CredentialKind::RefreshToken, AuthResult::Failure),
    (CredentialKind::AccessToken, AuthResult::Success),
    (CredentialKind::AccessToken, AuthResult::Failure),
    (CredentialKind::ApiKey, AuthResult::Success),
    (CredentialKind::ApiKey, AuthResult::Failure),
];

/// The security families.
pub struct SecurityMetrics {
    /// `petstore_auth_attempts_total{credential,result}`.
    auth_attempts: Counter<u64>,
    /// `petstore_rate_limit_rejections_total{scope}`.
    rate_limited: Counter<u64>,
    /// `petstore_origin_rejections_total{transport}`.
    origin_rejected: Counter<u64>,
}

impl SecurityMetrics {
    pub(super) fn new(meter: &Meter) -> Self {
        let metrics = Self {
            auth_attempts: meter
                .u64_counter("petstore.auth.attempts")
                .with_description("Authentication attempts, by credential kind and result.")
                .with_unit("{attempt}")
                .build(),
            rate_limited: meter
                .u64_counter("petstore.rate_limit.rejections")
                .with_description("Requests refused by a rate limit (429), by limit.")
                .with_unit("{request}")
                .build(),
            origin_rejected: meter
                .u64_counter("petstore.origin.rejections")
                .with_description("Requests from a browser origin that is not allowed (403).")
                .with_unit("{request}")
                .build(),
        };
        for (credential, result) in ATTEMPTS {
            metrics
                .auth_attempts
                .add(0, &attempt_attributes(credential, result));
        }
        for scope in [
            RateScope::Ip,
            RateScope::User,
            RateScope::Login,
            RateScope::Connection,
        ] {
            metrics
                .rate_limited
                .add(0, &[KeyValue::new("scope", scope.label())]);
        }
        for transport in [Transport::Http, Transport::WebSocket] {
            metrics
                .origin_rejected
                .add(0, &[KeyValue::new("transport", transport.label())]);
        }
        metrics
    }

    /// Counts an authentication attempt.
    pub fn auth_attempt(&self, credential: CredentialKind, result: AuthResult) {
        self.auth_attempts
            .add(1, &attempt_attributes(credential, result));
    }

    /// Counts a password attempt refused unchecked by the login throttle: a throttled
    /// authentication attempt, and a rejection by the login rate limit.
    pub fn login_throttled(&self) {
        self.auth_attempt(CredentialKind::Password, AuthResult::Throttled);
        self.rate_limited(RateScope::Login);
    }

    /// Counts a request refused by a rate limit.
    pub fn rate_limited(&self, scope: RateScope) {
        self.rate_limited
            .add(1, &[KeyValue::new("scope", scope.label())]);
    }

    /// Counts a request refused for its origin.
    pub fn origin_rejected(&self, transport: Transport) {
        self.origin_rejected
            .add(1, &[KeyValue::new("transport", transport.label())]);
    }
}

fn attempt_attributes(credential: CredentialKind, result: AuthResult) -> [KeyValue; 2] {
    [
        KeyValue::new("credential", credential.label()),
        KeyValue::new("result", result.label()),
    ]
}
