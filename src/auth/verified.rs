//! Access tokens already verified, remembered by their whole text.
//!
//! A client sends the same bearer token with every request until it expires, and checking its
//! RS256 signature (and decoding and validating its claims) is the largest single cost of an
//! authenticated request: remembering the verdict took 44–52% off the node's CPU per
//! authenticated write on the memory store (`benches/README.md`, "Verified tokens remembered").
//! Once a token has passed [`TokenService::verify`](super::TokenService::verify), the parts of
//! that verdict that cannot change are remembered:
//!
//! - the signature: the service's verification keys are fixed for its life;
//! - the issuer and audience: fixed settings;
//! - `nbf`: a token that was valid from then on stays so.
//!
//! What can change is checked on every use, remembered or not: `exp` (against the clock, with
//! the same leeway) and revocation (by the caller, after this). Only tokens that passed are
//! remembered, and only under their complete text, so a token that differs from a remembered
//! one in any byte is verified afresh.
//!
//! The memory is bounded: at most [`CAPACITY`] tokens (about 1 KiB each), the least recently
//! used going first. A node serving more distinct clients than that at once verifies the
//! others' signatures as before.

use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;

use super::AuthError;

/// How many verified tokens are remembered: ~1 MiB at most (a token is ~700 bytes, its
/// claims a few hundred more).
pub(super) const CAPACITY: NonZeroUsize = NonZeroUsize::new(1024).unwrap();

/// Tokens that passed verification, with what the verifier made of them (its claims).
pub(super) struct VerifiedTokens<T> {
    entries: Mutex<LruCache<Box<str>, Remembered<T>>>,
    /// Seconds an expired token is still accepted: the verifier's clock-skew leeway.
    leeway: i64,
}

/// A verified token's claims and its `exp`, seconds since the Unix epoch.
struct Remembered<T> {
    expires: i64,
    claims: Arc<T>,
}

impl<T> VerifiedTokens<T> {
    pub(super) fn new(capacity: NonZeroUsize, leeway: i64) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            leeway,
        }
    }

    /// The claims of `token` if it was verified before: `None` when it was not (or has been
    /// forgotten), [`AuthError::Expired`] when it was but has expired since (it is forgotten
    /// then). `now` is the clock in seconds since the Unix epoch.
    pub(super) fn get(&self, token: &str, now: i64) -> Option<Result<Arc<T>, AuthError>> {
        let mut entries = self.entries.lock();
        let remembered = entries.get(token)?;
        // The check jsonwebtoken makes: expired once `exp` is more than the leeway behind.
        if remembered.expires < now - self.leeway {
            entries.pop(token);
            return Some(Err(AuthError::Expired));
        }
        Some(Ok(Arc::clone(&remembered.claims)))
    }

    /// Remembers that `token`, expiring at `expires` (its `exp`), passed verification with
    /// `claims`.
    pub(super) fn insert(&self, token: &str, expires: i64, claims: Arc<T>) {
        self.entries
            .lock()
            .put(token.into(), Remembered { expires, claims });
    }

    /// How many tokens are remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the verifier made of a token; only its identity matters here.
    fn claims() -> Arc<String> {
        Arc::new("alice".to_owned())
    }

    #[test]
    fn a_remembered_token_is_answered_until_its_expiry_and_the_leeway_have_passed() {
        let verified = VerifiedTokens::new(CAPACITY, 30);
        verified.insert("a.b.c", 1_000, claims());
        assert!(matches!(verified.get("a.b.c", 1_000), Some(Ok(_))));
        assert!(matches!(verified.get("a.b.c", 1_030), Some(Ok(_))));
        assert!(matches!(
            verified.get("a.b.c", 1_031),
            Some(Err(AuthError::Expired))
        ));
        // Forgotten once found expired.
        assert!(verified.get("a.b.c", 1_000).is_none());
    }

    #[test]
    fn only_the_exact_text_of_a_remembered_token_is_answered() {
        let verified = VerifiedTokens::new(CAPACITY, 30);
        verified.insert("a.b.c", 1_000, claims());
        for other in ["a.b.C", "a.b.c ", "a.b.", "A.b.c", ""] {
            assert!(verified.get(other, 900).is_none(), "{other:?}");
        }
    }

    #[test]
    fn the_least_recently_used_token_is_forgotten_beyond_the_capacity() {
        let verified = VerifiedTokens::new(NonZeroUsize::new(2).unwrap(), 30);
        verified.insert("first", 1_000, claims());
        verified.insert("second", 1_000, claims());
        assert!(verified.get("first", 900).is_some());
        verified.insert("third", 1_000, claims());
        assert_eq!(verified.len(), 2);
        assert!(verified.get("second", 900).is_none());
        assert!(verified.get("first", 900).is_some());
        assert!(verified.get("third", 900).is_some());
    }
}
