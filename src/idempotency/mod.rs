//! Idempotency records: what a request sent with an idempotency key did, so a repeat of it gets
//! the same answer instead of running again (`Idempotency-Key` over REST, the `correlationId`
//! of a WebSocket write).
//!
//! - [`IdempotencyStore`]: claims a key for one execution, then keeps its response until the key
//!   expires. Two implementations pass one conformance suite: [`MemoryIdempotencyStore`]
//!   (bounded, expiring, one node) and [`RedisIdempotencyStore`] (shared by the cluster; the
//!   claim is a `SET NX` with a lease, so a node that dies mid-request does not lock the key
//!   beyond the lease).
//! - [`RecordKey`] and [`Fingerprint`]: the key as stored (the caller's scope and key, hashed
//!   to a bounded size) and what identifies "the same request" (hashed method, target, body).
//!
//! The store knows no transport and no HTTP: the edge decides what a request's scope and
//! fingerprint are, what is worth storing and how a stored answer is replayed.

mod memory;
mod redis_store;

#[cfg(test)]
pub(crate) mod conformance;

use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use memory::MemoryIdempotencyStore;
pub use redis_store::RedisIdempotencyStore;

use crate::redis::RedisError;

/// Where a key's record lives: the caller's scope (who may see it) and the key, hashed, so
/// neither a long key nor a long user name makes a long storage key, and no two scopes collide.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordKey(String);

impl RecordKey {
    /// The record of `key` sent by `scope` (a principal, or an anonymous client's address).
    pub fn new(scope: &str, key: &str) -> Self {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(&(scope.len() as u64).to_be_bytes());
        context.update(scope.as_bytes());
        context.update(key.as_bytes());
        Self(hex(context.finish().as_ref()))
    }

    /// The hashed form, 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What makes two requests with one key "the same request": a hash of their parts (for REST the
/// method, the path with its query and the body; for WebSocket the action and the payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The hash of `parts`, each length-prefixed so that no two lists of parts share a hash by
    /// where one part ends and the next begins.
    pub fn of(parts: &[&[u8]]) -> Self {
        let mut context = digest::Context::new(&digest::SHA256);
        for part in parts {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        Self(hex(context.finish().as_ref()))
    }

    /// The hash, 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lower-case hex, without a formatting call per byte (this is on every keyed request).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// A response as it is kept for replay: status, the headers worth repeating, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The status (a WebSocket success keeps the HTTP-equivalent one).
    pub status: u16,
    /// The headers to send again (names lower case), in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

/// [`StoredResponse`] as text, the body in base64 (it may be an image or any bytes).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WireResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl From<&StoredResponse> for WireResponse {
    fn from(response: &StoredResponse) -> Self {
        Self {
            status: response.status,
            headers: response.headers.clone(),
            body: base64::engine::general_purpose::STANDARD.encode(&response.body),
        }
    }
}

impl TryFrom<WireResponse> for StoredResponse {
    type Error = IdempotencyError;

    fn try_from(wire: WireResponse) -> Result<Self, Self::Error> {
        let body = base64::engine::general_purpose::STANDARD
            .decode(wire.body)
            .map_err(|error| IdempotencyError::Corrupt(error.to_string()))?;
        Ok(Self {
            status: wire.status,
            headers: wire.headers,
            body: body.into(),
        })
    }
}

/// What [`IdempotencyStore::begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// Nothing: the key is now claimed by this caller, who runs the request and then
    /// [completes](IdempotencyStore::complete) or [releases](IdempotencyStore::release) it.
    Claimed(Claim),
    /// Another execution holds the key and has not finished (or died less than a lease ago).
    Running {
        /// The fingerprint of the request that holds it.
        fingerprint: Fingerprint,
    },
    /// A finished execution's response.
    Done {
        /// The fingerprint of the request that produced it.
        fingerprint: Fingerprint,
        /// What it answered.
        response: StoredResponse,
    },
}

/// A claim on a key, proof that this caller (and no later claimant after a lease ran out) may
/// complete or release it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    key: RecordKey,
    fingerprint: Fingerprint,
    token: String,
}

impl Claim {
    fn new(key: &RecordKey, fingerprint: &Fingerprint) -> Self {
        Self {
            key: key.clone(),
            fingerprint: fingerprint.clone(),
            token: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// The claimed key.
    pub fn key(&self) -> &RecordKey {
        &self.key
    }
}

/// Why a store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// The shared backend failed.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// A record that does not read back (written by an incompatible version, or damaged).
    #[error("an idempotency record does not read back: {0}")]
    Corrupt(String),
}

/// Keeps idempotency records.
///
/// A record is either a running claim (expiring after the lease, so a caller that died does not
/// hold the key for ever) or a finished response (expiring after the key's time to live).
#[async_trait::async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for an execution of the request `fingerprint` for at most `lease`, or
    /// reports the record already there (whatever its fingerprint: the caller compares).
    async fn begin(
        &self,
        key: &RecordKey,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Result<Begin, IdempotencyError>;

    /// Replaces the claim by `response`, kept for `ttl`. A claim that is no longer held (its
    /// lease ran out and someone else claimed the key) changes nothing.
    async fn complete(
        &self,
        claim: &Claim,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<(), IdempotencyError>;

    /// Gives the key up without a response (the request failed in a way worth retrying), if
    /// the claim is still held.
    async fn release(&self, claim: &Claim) -> Result<(), IdempotencyError>;
}

/// A record as stored: a claim (with its token) or a response.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    #[serde(rename = "fp")]
    fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response: Option<WireResponse>,
}

impl Record {
    fn claim(claim: &Claim) -> Self {
        Self {
            fingerprint: claim.fingerprint.0.clone(),
            token: Some(claim.token.clone()),
            response: None,
        }
    }

    fn done(claim: &Claim, response: &StoredResponse) -> Self {
        Self {
            fingerprint: claim.fingerprint.0.clone(),
            token: None,
            response: Some(response.into()),
        }
    }

    fn encode(&self) -> String {
        // A struct of strings and numbers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    fn decode(text: &str) -> Result<Self, IdempotencyError> {
        serde_json::from_str(text).map_err(|error| IdempotencyError::Corrupt(error.to_string()))
    }

    fn into_begin(self) -> Result<Begin, IdempotencyError> {
        let fingerprint = Fingerprint(self.fingerprint);
        Ok(match self.response {
            Some(response) => Begin::Done {
                fingerprint,
                response: response.try_into()?,
            },
            None => Begin::Running { fingerprint },
        })
    }
}
