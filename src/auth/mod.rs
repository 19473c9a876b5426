//! Authentication building blocks, independent of the transport.
//!
//! - [`tokens`]: RS256 access tokens ([`TokenService`]): issue, verify, revoke, and publish the
//!   public keys as a JWK set.
//! - [`revocation`]: the deny-list of revoked token ids behind [`RevocationStore`], so the
//!   in-memory [`RevocationList`] can be swapped for a shared store.
//! - [`passwords`]: Argon2id password hashing, with async wrappers that keep the slow hash off
//!   the async worker threads and a dummy verification that makes unknown users and wrong
//!   passwords indistinguishable by timing.
//! - [`sessions`]: refresh tokens that rotate on every use, grouped in sessions (token
//!   families) behind [`SessionStore`]; a reused token revokes its whole session.
//! - [`redis_sessions`] and [`redis_revocation`]: the same two stores shared by a cluster
//!   through Redis ([`RedisSessionStore`], [`RedisRevocations`]).
//! - [`api_keys`]: service keys for the `api_key` header, configured as SHA-256 hashes
//!   ([`ApiKeys`]).
//!
//! - Who a verified caller is and which permissions (spec scopes) their roles grant is part of
//!   the contract: `petstore_api::{Principal, Role}`.
//! - [`guard`]: verifies the credentials of a request ([`Authenticator`]) and checks them
//!   against an operation's generated security requirements ([`authorize`]).
//!
//! Nothing here knows about HTTP or WebSocket: each transport extracts the raw credentials,
//! and everything from verification to the 401/403 decision is shared.

pub mod api_keys;
mod error;
pub mod guard;
pub mod passwords;
mod prune;
pub mod redis_revocation;
pub mod redis_sessions;
pub mod revocation;
#[cfg(test)]
mod revocation_conformance;
#[cfg(test)]
mod session_conformance;
pub mod sessions;
pub mod tokens;
mod verified;

pub use api_keys::{ApiKeySpec, ApiKeys, InvalidApiKeySpec, ServiceKey};
pub use error::AuthError;
pub use guard::{Authentication, Authenticator, Presented, authorize, identify};
pub use passwords::{
    hash_password, hash_password_async, verify_dummy, verify_dummy_async, verify_password,
    verify_password_async,
};
pub use redis_revocation::RedisRevocations;
pub use redis_sessions::RedisSessionStore;
pub use revocation::{RevocationList, RevocationStore};
pub use sessions::{MemorySessionStore, RefreshGrant, Rotation, SessionError, SessionStore};
pub use tokens::{
    AccessGrant, CLOCK_SKEW_LEEWAY, Claims, IssuedToken, MAX_ACCESS_TTL, TokenService,
    TokenSettings,
};
