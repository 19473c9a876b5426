//! Refresh tokens that rotate on every use, with reuse detection (OAuth 2.0 Security Best
//! Current Practice, RFC 9700 §4.14).
//!
//! A *session* is a family of refresh tokens started at login and identified by a UUID, the
//! session id (`sid`). Every refresh spends the presented token and hands out the next one of
//! the same family, so a refresh token is good for exactly one use. A token presented a second
//! time can only be a copy: either the client's token was stolen and the thief refreshed first,
//! or the thief is replaying a token the client already spent. We cannot tell which party is
//! which, so the whole family is revoked and both have to log in again. Access tokens carry the
//! `sid`; whoever revokes a family here also revokes that `sid` on the access-token revocation
//! list, so a stolen session dies everywhere at once. This module only manages refresh tokens.
//!
//! Only SHA-256 hashes of refresh tokens are stored: a memory dump (or, later, a dump of a
//! shared store) yields nothing a client could present. A token is 256 random bits, so a fast
//! hash is enough; there is nothing to brute-force. Lookups go by hash, so no comparison ever
//! runs over the secret itself.
//!
//! What is remembered, and for how long:
//! - a spent token stays (marked spent) until it would have expired, so its reuse is caught
//!   for as long as it could otherwise have been accepted;
//! - a family, live or revoked, stays until the last token it issued would have expired;
//!   after that no token of it can be presented anyway.
//!
//! Expired records are pruned opportunistically by inserts, the way
//! [`RevocationList`](super::RevocationList) does it; there is no hard cap, because dropping a
//! live record would forget a revocation or a spent token.
//!
//! [`SessionStore`] is shaped so that a shared (Redis) backend fits behind it unchanged: one
//! hash per token keyed by its SHA-256 (`sid`, `spent`) and one per family (`username`,
//! `revoked`), each with an expiry at the instant it may be forgotten, plus a set of a user's
//! session ids for [`revoke_user`](SessionStore::revoke_user). The spend in
//! [`rotate`](SessionStore::rotate) becomes one Lua script (check `spent` and `revoked`, set
//! `spent`, write the next token, extend the family's expiry), which makes it atomic across
//! instances just as the family lock makes it atomic here. That backend is
//! [`RedisSessionStore`](super::RedisSessionStore); both stores run one behavioural suite.

use std::fmt;
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use dashmap::DashMap;
use uuid::Uuid;

use super::prune::PruneSchedule;

/// Random bytes in a refresh token: 256 bits, beyond any guessing.
const TOKEN_BYTES: usize = 32;

/// Length of a refresh token as handed out: [`TOKEN_BYTES`] in base64url without padding.
/// Anything else is rejected before it is hashed.
pub(super) const TOKEN_LEN: usize = 43;

/// SHA-256 of a refresh token as presented: the only form in which tokens are stored.
pub(super) type TokenHash = [u8; 32];

/// A refresh token handed to the client: opaque, 256 random bits, base64url without padding.
///
/// `Debug` redacts `token`: it is a long-lived bearer credential and must stay out of logs.
#[derive(Clone)]
pub struct RefreshGrant {
    /// The token itself, to be sent to the client and never stored or logged.
    pub token: String,
    /// The session (token family) it belongs to; access tokens carry it as `sid`.
    pub session_id: String,
    /// When the token stops being accepted.
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for RefreshGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshGrant")
            .field("token", &"[redacted]")
            .field("session_id", &self.session_id)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What a successful rotation yields: whose session it is, and the next refresh token.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The user the session was started for.
    pub username: String,
    /// The session (token family); unchanged by rotation.
    pub session_id: String,
    /// The refresh token that replaces the one just spent.
    pub next: RefreshGrant,
}

/// Why a refresh token was not accepted, or the store failed.
///
/// The variants tell logs and metrics apart (a [`Reused`](SessionError::Reused) token is a
/// theft signal worth an alert); clients must not see the distinction. Every variant for which
/// [`is_credential_error`](SessionError::is_credential_error) holds gets the same `401`.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Never issued, not shaped like one of our tokens, or pruned after it expired.
    #[error("unknown refresh token")]
    Unknown,
    /// The token's lifetime is over.
    #[error("refresh token has expired")]
    Expired,
    /// The token had already been spent: it was stolen or replayed. Its whole session has been
    /// revoked; revoke `session_id` for access tokens too.
    #[error("refresh token was already used; its session has been revoked")]
    Reused {
        /// The session that was revoked because of the reuse.
        session_id: String,
    },
    /// The token's session was revoked earlier (logout, or an earlier reuse).
    #[error("session has been revoked")]
    Revoked {
        /// The revoked session.
        session_id: String,
    },
    /// The store could not do its job (the system random generator failed, or a shared backend
    /// is unreachable). A server fault, never the client's.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

impl SessionError {
    /// `true` when the presented token is at fault (answer `401 Unauthorized`), `false` when
    /// the server is (answer `500`/`503`, log the cause).
    #[must_use]
    pub fn is_credential_error(&self) -> bool {
        !matches!(self, Self::Unavailable(_))
    }
}

/// Where refresh-token families live.
///
/// Asynchronous, unlike [`RevocationStore`](super::RevocationStore): refreshing happens once
/// per access-token lifetime, not on every request, and a shared backend answers it over the
/// network.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Starts a new family for `username` and returns its first refresh token, valid for `ttl`.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] only.
    async fn start(&self, username: &str, ttl: Duration) -> Result<RefreshGrant, SessionError>;

    /// Spends `presented` and returns the next token of its family (valid for `ttl` from now).
    /// Atomic: of two concurrent rotations of the same token exactly one succeeds, the other is
    /// a reuse.
    ///
    /// # Errors
    /// [`SessionError::Unknown`], [`Expired`](SessionError::Expired),
    /// [`Reused`](SessionError::Reused) (the family is now revoked),
    /// [`Revoked`](SessionError::Revoked), or [`Unavailable`](SessionError::Unavailable).
    async fn rotate(&self, presented: &str, ttl: Duration) -> Result<Rotation, SessionError>;

    /// Revokes one family (logout). Idempotent. Returns the username if the family existed
    /// (revoked already or not).
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] only.
    async fn revoke(&self, session_id: &str) -> Result<Option<String>, SessionError>;

    /// Revokes every family of a user (user deleted or renamed, password changed) except
    /// `keep` (the caller's own session when they changed their own password); returns the ids
    /// it revoked, sorted, including families that were revoked already but are still
    /// remembered.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] only.
    async fn revoke_user(
        &self,
        username: &str,
        keep: Option<&str>,
    ) -> Result<Vec<String>, SessionError>;
}

/// One issued refresh token, known by its hash.
#[derive(Debug)]
struct TokenRecord {
    session_id: String,
    expires_at: DateTime<Utc>,
    spent: bool,
}

/// One token family.
#[derive(Debug)]
struct Family {
    username: String,
    revoked: bool,
    /// The latest expiry of any token the family issued; the family may be forgotten then.
    last_expiry: DateTime<Utc>,
}

/// In-process [`SessionStore`]: two concurrent maps, token hash → record and session id →
/// family.
///
/// Every change to a family's tokens happens while holding that family's map entry, which is
/// what makes a rotation atomic. Lock order is always family, then token, and no code path
/// holds two token entries at once or takes a family entry while holding a token entry, so the
/// maps cannot deadlock. Pruning works like [`RevocationList`](super::RevocationList)'s: by
/// inserts, at most once a minute unless the map has outgrown a trigger that doubles with the
/// live set.
pub struct MemorySessionStore {
    tokens: DashMap<TokenHash, TokenRecord>,
    families: DashMap<String, Family>,
    prune: PruneSchedule,
}

impl fmt::Debug for MemorySessionStore {
    /// Counts only: hashes are not usable tokens, but they have no business in logs either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySessionStore")
            .field("tokens", &self.tokens.len())
            .field("sessions", &self.families.len())
            .finish_non_exhaustive()
    }
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemorySessionStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self {
            tokens: DashMap::new(),
            families: DashMap::new(),
            prune: PruneSchedule::new(),
        }
    }

    /// Number of stored refresh-token records, spent and expired ones not yet pruned included
    /// (for metrics).
    #[must_use]
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no refresh-token record is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Number of remembered sessions, live and revoked (for metrics).
    #[must_use]
    pub fn session_count(&self) -> usize {
        self.families.len()
    }

    /// Drop expired token records and the families whose every token has expired; returns how
    /// many records of either kind were dropped. Inserts call this on their own; a periodic
    /// task may call it too.
    pub fn prune_expired(&self) -> usize {
        self.prune_expired_at(Utc::now())
    }

    fn start_at(
        &self,
        username: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<RefreshGrant, SessionError> {
        let (token, hash) = new_token()?;
        let session_id = Uuid::new_v4().to_string();
        let expires_at = expiry(now, ttl);
        // The family first: a token must never be findable without its family.
        self.families.insert(
            session_id.clone(),
            Family {
                username: username.to_owned(),
                revoked: false,
                last_expiry: expires_at,
            },
        );
        self.tokens.insert(
            hash,
            TokenRecord {
                session_id: session_id.clone(),
                expires_at,
                spent: false,
            },
        );
        self.maybe_prune(now);
        Ok(RefreshGrant {
            token,
            session_id,
            expires_at,
        })
    }

    fn rotate_at(
        &self,
        presented: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Rotation, SessionError> {
        let hash = hash_presented(presented).ok_or(SessionError::Unknown)?;
        // Read without the family lock only to find the family; everything is checked again
        // under it.
        let session_id = self
            .tokens
            .get(&hash)
            .map(|record| record.session_id.clone())
            .ok_or(SessionError::Unknown)?;
        // Drawn before anything is spent, so a failing random generator burns no token.
        let (next_token, next_hash) = new_token()?;

        let rotation = {
            let Some(mut family) = self.families.get_mut(&session_id) else {
                // Families outlive their tokens, so this one was pruned just now together with
                // (or just before) the presented token.
                return Err(SessionError::Expired);
            };
            let spent_before = {
                let Some(mut record) = self.tokens.get_mut(&hash) else {
                    return Err(SessionError::Unknown);
                };
                if record.expires_at <= now {
                    return Err(SessionError::Expired);
                }
                if !record.spent && family.revoked {
                    return Err(SessionError::Revoked { session_id });
                }
                std::mem::replace(&mut record.spent, true)
            };
            if spent_before {
                // Checked before `revoked` so that every replay of a spent token is reported
                // as the theft signal it is, also after the first one revoked the family.
                family.revoked = true;
                return Err(SessionError::Reused { session_id });
            }
            let expires_at = expiry(now, ttl);
            self.tokens.insert(
                next_hash,
                TokenRecord {
                    session_id: session_id.clone(),
                    expires_at,
                    spent: false,
                },
            );
            family.last_expiry = family.last_expiry.max(expires_at);
            Rotation {
                username: family.username.clone(),
                session_id: session_id.clone(),
                next: RefreshGrant {
                    token: next_token,
                    session_id,
                    expires_at,
                },
            }
        };
        // Only now that the family entry is released: pruning locks every entry in turn.
        self.maybe_prune(now);
        Ok(rotation)
    }

    fn revoke_family(&self, session_id: &str) -> Option<String> {
        self.families.get_mut(session_id).map(|mut family| {
            family.revoked = true;
            family.username.clone()
        })
    }

    fn revoke_families_of(&self, username: &str, keep: Option<&str>) -> Vec<String> {
        let mut revoked: Vec<String> = self
            .families
            .iter_mut()
            .filter(|family| family.username == username && Some(family.key().as_str()) != keep)
            .map(|mut family| {
                family.revoked = true;
                family.key().clone()
            })
            .collect();
        revoked.sort_unstable();
        revoked
    }

    fn maybe_prune(&self, now: DateTime<Utc>) {
        self.prune.maybe_run(self.tokens.len(), now, || {
            self.prune_expired_at(now);
        });
    }

    fn prune_expired_at(&self, now: DateTime<Utc>) -> usize {
        let before = self.tokens.len() + self.families.len();
        self.tokens.retain(|_, record| record.expires_at > now);
        self.families.retain(|_, family| family.last_expiry > now);
        let live_tokens = self.tokens.len();
        self.prune.pruned(live_tokens, now);
        before.saturating_sub(live_tokens + self.families.len())
    }
}

#[async_trait::async_trait]
impl SessionStore for MemorySessionStore {
    async fn start(&self, username: &str, ttl: Duration) -> Result<RefreshGrant, SessionError> {
        self.start_at(username, ttl, Utc::now())
    }

    async fn rotate(&self, presented: &str, ttl: Duration) -> Result<Rotation, SessionError> {
        self.rotate_at(presented, ttl, Utc::now())
    }

    async fn revoke(&self, session_id: &str) -> Result<Option<String>, SessionError> {
        Ok(self.revoke_family(session_id))
    }

    async fn revoke_user(
        &self,
        username: &str,
        keep: Option<&str>,
    ) -> Result<Vec<String>, SessionError> {
        Ok(self.revoke_families_of(username, keep))
    }
}

/// A fresh token and its hash; every [`SessionStore`] draws its tokens here.
pub(super) fn new_token() -> Result<(String, TokenHash), SessionError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| SessionError::Unavailable("the system random generator failed".to_owned()))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = sha256(token.as_bytes());
    Ok((token, hash))
}

/// The hash to look `presented` up by, or `None` if it cannot be one of our tokens. The shape
/// check comes first so that a megabyte of garbage is not hashed.
pub(super) fn hash_presented(presented: &str) -> Option<TokenHash> {
    let well_formed = presented.len() == TOKEN_LEN
        && presented
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| sha256(presented.as_bytes()))
}

pub(super) fn sha256(data: &[u8]) -> TokenHash {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest(&SHA256, data).as_ref());
    hash
}

/// `now + ttl`, saturating at the end of time for absurd TTLs.
pub(super) fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(ttl)
        .ok()
        .and_then(|ttl| now.checked_add_signed(ttl))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const TTL: Duration = Duration::from_secs(3600);

    async fn fresh() -> Arc<dyn SessionStore> {
        Arc::new(MemorySessionStore::new())
    }

    crate::auth::session_conformance::session_store_conformance_tests!(fresh);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn later(now: DateTime<Utc>, n: i64) -> DateTime<Utc> {
        now + TimeDelta::seconds(n)
    }

    #[test]
    fn next_token_is_valid_for_ttl_from_the_rotation() {
        let store = MemorySessionStore::new();
        let now = Utc::now();
        let first = store.start_at("alice", secs(100), now).unwrap();
        assert_eq!(first.expires_at, later(now, 100));

        let rotated = store
            .rotate_at(&first.token, secs(500), later(now, 50))
            .unwrap();
        assert_eq!(rotated.next.expires_at, later(now, 550));
    }

    #[test]
    fn expired_token_is_reported_as_expired() {
        let store = MemorySessionStore::new();
        let now = Utc::now();
        let grant = store.start_at("alice", secs(10), now).unwrap();

        let at_expiry = store.rotate_at(&grant.token, TTL, later(now, 10));
        assert!(matches!(at_expiry, Err(SessionError::Expired)));
        // Failing as expired spends nothing: the token was not usable anyway.
        assert!(store.rotate_at(&grant.token, TTL, later(now, 9)).is_ok());
    }

    #[test]
    fn only_hashes_of_tokens_are_stored() {
        let store = MemorySessionStore::new();
        let grant = store.start_at("alice", TTL, Utc::now()).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&grant.token).unwrap();

        assert_eq!(store.tokens.len(), 1);
        for entry in &store.tokens {
            assert_eq!(*entry.key(), sha256(grant.token.as_bytes()));
            assert_ne!(entry.key().as_slice(), raw.as_slice());
        }
    }

    #[test]
    fn prune_drops_expired_tokens_and_dead_sessions_only() {
        let store = MemorySessionStore::new();
        let now = Utc::now();
        let short = store.start_at("alice", secs(10), now).unwrap();
        let spent = store.start_at("bob", secs(10), now).unwrap();
        let bob_next = store.rotate_at(&spent.token, secs(1000), now).unwrap();
        assert_eq!((store.len(), store.session_count()), (3, 2));

        // Alice's token and session are gone; Bob's spent token is gone, his session and its
        // current token stay.
        assert_eq!(store.prune_expired_at(later(now, 20)), 3);
        assert_eq!((store.len(), store.session_count()), (1, 1));
        assert!(matches!(
            store.rotate_at(&short.token, TTL, later(now, 20)),
            Err(SessionError::Unknown)
        ));
        assert!(
            store
                .rotate_at(&bob_next.next.token, TTL, later(now, 20))
                .is_ok()
        );
    }

    #[test]
    fn spent_token_is_detected_until_it_would_have_expired() {
        let store = MemorySessionStore::new();
        let now = Utc::now();
        let first = store.start_at("alice", secs(100), now).unwrap();
        store.rotate_at(&first.token, secs(1000), now).unwrap();

        store.prune_expired_at(later(now, 99));
        assert!(matches!(
            store.rotate_at(&first.token, TTL, later(now, 99)),
            Err(SessionError::Reused { .. })
        ));
    }

    #[test]
    fn revoked_session_is_forgotten_after_its_last_token_expires() {
        let store = MemorySessionStore::new();
        let now = Utc::now();
        let first = store.start_at("alice", secs(10), now).unwrap();
        let next = store.rotate_at(&first.token, secs(100), now).unwrap().next;
        store.revoke_family(&first.session_id);

        store.prune_expired_at(later(now, 50));
        assert_eq!(store.session_count(), 1, "still remembered as revoked");
        assert!(matches!(
            store.rotate_at(&next.token, TTL, later(now, 50)),
            Err(SessionError::Revoked { .. })
        ));

        store.prune_expired_at(later(now, 100));
        assert!(store.is_empty());
        assert_eq!(store.session_count(), 0);
        assert_eq!(store.revoke_family(&first.session_id), None);
    }

    #[test]
    fn insert_prunes_once_the_interval_has_passed() {
        let store = MemorySessionStore::new();
        let now = Utc::now();
        store.start_at("alice", secs(5), now).unwrap();
        store.start_at("bob", secs(5), later(now, 1)).unwrap();
        assert_eq!(store.len(), 2, "no prune before the interval is over");

        store
            .start_at("carol", TTL, later(now, PruneSchedule::INTERVAL_SECS + 1))
            .unwrap();
        assert_eq!((store.len(), store.session_count()), (1, 1));
    }

    #[test]
    fn insert_prunes_when_the_store_grows_past_the_size_trigger() {
        let store = MemorySessionStore::new();
        let now = Utc::now();
        for _ in 0..PruneSchedule::MIN_LEN - 1 {
            store.start_at("alice", secs(2), now).unwrap();
        }
        assert_eq!(store.len(), PruneSchedule::MIN_LEN - 1);

        // Still within the time interval, but the size trigger fires.
        store.start_at("bob", TTL, later(now, 3)).unwrap();
        assert_eq!((store.len(), store.session_count()), (1, 1));
    }

    #[tokio::test]
    async fn expired_state_is_pruned_after_a_tiny_ttl() {
        let store = MemorySessionStore::new();
        let grant = store
            .start("alice", Duration::from_millis(1))
            .await
            .unwrap();
        store
            .rotate(&grant.token, Duration::from_millis(1))
            .await
            .ok();
        tokio::time::sleep(Duration::from_millis(100)).await;

        assert!(store.prune_expired() >= 2);
        assert!(store.is_empty());
        assert_eq!(store.session_count(), 0);
    }

    #[tokio::test]
    async fn debug_output_never_contains_a_token() {
        let store = MemorySessionStore::new();
        let grant = store.start("alice", TTL).await.unwrap();
        let rotation = store.rotate(&grant.token, TTL).await.unwrap();

        for debug in [
            format!("{grant:?}"),
            format!("{rotation:?}"),
            format!("{store:?}"),
        ] {
            assert!(!debug.contains(&grant.token), "{debug}");
            assert!(!debug.contains(&rotation.next.token), "{debug}");
        }
        assert!(format!("{grant:?}").contains("[redacted]"));
        assert!(format!("{rotation:?}").contains(&grant.session_id));
    }

    #[test]
    fn only_unavailable_is_a_server_fault() {
        assert!(SessionError::Unknown.is_credential_error());
        assert!(SessionError::Expired.is_credential_error());
        let sid = || "s".to_owned();
        assert!(SessionError::Reused { session_id: sid() }.is_credential_error());
        assert!(SessionError::Revoked { session_id: sid() }.is_credential_error());
        assert!(!SessionError::Unavailable("down".into()).is_credential_error());
    }
}
