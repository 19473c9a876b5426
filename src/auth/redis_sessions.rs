//! [`SessionStore`] on Redis, shared by every node of a cluster.
//!
//! The shape is the one the [`sessions`](super::sessions) module describes, under the key
//! prefix:
//! - `refresh:{hex SHA-256 of the token}`: hash `sid`, `spent` (`0`/`1`), `expires_at` (Unix
//!   ms), expiring (`PEXPIREAT`) when the token does. Only the hash of a token is ever sent to
//!   Redis, so a dump of it yields nothing a client could present.
//! - `session:{sid}`: hash `username`, `revoked` (`0`/`1`), `last_expiry` (Unix ms), expiring
//!   with the last token the family issued; a revoked family is remembered as long as any of
//!   its tokens could be presented.
//! - `user-sessions:{username}`: set of the user's session ids, expiring with their latest
//!   family; ids whose family is gone are dropped by [`revoke_user`](SessionStore::revoke_user).
//!
//! Every operation that reads and then writes is one Lua script, so it is atomic across nodes
//! the way the family lock makes it atomic in [`MemorySessionStore`](super::MemorySessionStore):
//! of two nodes rotating the same token at once, exactly one wins and the other sees a reuse.
//!
//! Expiry is decided by two clocks: the node's (the `expires_at` it writes and compares with)
//! and Redis' (which drops the keys). A token past its expiry is therefore refused as
//! [`Expired`](SessionError::Expired) while Redis still holds it and as
//! [`Unknown`](SessionError::Unknown) once Redis dropped it; clients get the same `401`.
//!
//! The scripts derive the family and user keys from the token record, so all auth keys must
//! live on one Redis node: fine for a single Redis or a primary with replicas; under Redis
//! Cluster the prefix has to be a hash tag (`{petstore}`). Needs Redis 7 (`PEXPIRETIME`).

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fred::types::{Value, scripts::Script};
use uuid::Uuid;

use super::sessions::{
    RefreshGrant, Rotation, SessionError, SessionStore, TokenHash, expiry, hash_presented,
    new_token,
};
use crate::redis::{Redis, RedisError};

/// Extends a key's expiry to `at` unless it already lasts longer; Lua helper shared by the
/// scripts that add to a user's session set.
const EXTEND: &str = r"
local function extend(key, at)
  local current = redis.call('PEXPIRETIME', key)
  if current < 0 or current < tonumber(at) then
    redis.call('PEXPIREAT', key, at)
  end
end
";

/// KEYS: token, family, user set. ARGV: sid, username, expires_at (ms).
static START: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        "{EXTEND}
redis.call('HSET', KEYS[2], 'username', ARGV[2], 'revoked', '0', 'last_expiry', ARGV[3])
redis.call('PEXPIREAT', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[1], 'sid', ARGV[1], 'spent', '0', 'expires_at', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])
extend(KEYS[3], ARGV[3])
return 1"
    ))
});

/// KEYS: presented token, next token. ARGV: now (ms), next expires_at (ms), family key prefix,
/// user-set key prefix. The checks run in the memory store's order: unknown, expired, revoked
/// (for an unspent token), reused (which revokes the family), then the spend.
static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        "{EXTEND}
local token = redis.call('HMGET', KEYS[1], 'sid', 'spent', 'expires_at')
local sid = token[1]
if not sid then return {{'unknown'}} end
local family = ARGV[3] .. sid
local f = redis.call('HMGET', family, 'username', 'revoked', 'last_expiry')
if not f[1] then return {{'expired'}} end
if tonumber(token[3]) <= tonumber(ARGV[1]) then return {{'expired'}} end
if token[2] == '1' then
  redis.call('HSET', family, 'revoked', '1')
  return {{'reused', sid}}
end
if f[2] == '1' then return {{'revoked', sid}} end
redis.call('HSET', KEYS[1], 'spent', '1')
redis.call('HSET', KEYS[2], 'sid', sid, 'spent', '0', 'expires_at', ARGV[2])
redis.call('PEXPIREAT', KEYS[2], ARGV[2])
if tonumber(ARGV[2]) > tonumber(f[3]) then
  redis.call('HSET', family, 'last_expiry', ARGV[2])
  redis.call('PEXPIREAT', family, ARGV[2])
end
extend(ARGV[4] .. f[1], ARGV[2])
return {{'ok', sid, f[1]}}"
    ))
});

/// KEYS: family. Returns the username, or nil for an unknown family (which must not be
/// recreated without an expiry).
static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        "local username = redis.call('HGET', KEYS[1], 'username')
if not username then return false end
redis.call('HSET', KEYS[1], 'revoked', '1')
return username",
    )
});

/// KEYS: user set. ARGV: family key prefix, username, session id to keep (or empty).
static REVOKE_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        "local revoked = {}
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local family = ARGV[1] .. sid
  local username = redis.call('HGET', family, 'username')
  if not username then
    redis.call('SREM', KEYS[1], sid)
  elseif username == ARGV[2] and sid ~= ARGV[3] then
    redis.call('HSET', family, 'revoked', '1')
    table.insert(revoked, sid)
  end
end
return revoked",
    )
});

/// Refresh-token families in Redis; see the module documentation for the keys.
#[derive(Debug, Clone)]
pub struct RedisSessionStore {
    redis: Redis,
}

impl RedisSessionStore {
    /// A store on the shared connection; keys go under the connection's prefix.
    #[must_use]
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    fn token_key(&self, hash: &TokenHash) -> String {
        let mut hex = String::with_capacity(2 * hash.len());
        for byte in hash {
            let _ = write!(hex, "{byte:02x}");
        }
        self.redis.key(format_args!("refresh:{hex}"))
    }

    fn family_key(&self, session_id: &str) -> String {
        self.redis.key(format_args!("session:{session_id}"))
    }

    fn user_key(&self, username: &str) -> String {
        self.redis.key(format_args!("user-sessions:{username}"))
    }
}

/// An outage or a bug in Redis is the server's fault, never the client's.
fn unavailable(error: RedisError) -> SessionError {
    tracing::warn!(%error, "session store unavailable");
    SessionError::Unavailable(error.to_string())
}

fn millis(at: DateTime<Utc>) -> Value {
    Value::from(at.timestamp_millis().to_string())
}

#[async_trait::async_trait]
impl SessionStore for RedisSessionStore {
    async fn start(&self, username: &str, ttl: Duration) -> Result<RefreshGrant, SessionError> {
        let (token, hash) = new_token()?;
        let session_id = Uuid::new_v4().to_string();
        let expires_at = expiry(Utc::now(), ttl);
        self.redis
            .acknowledged_script::<i64>(
                "session_start",
                &START,
                vec![
                    self.token_key(&hash),
                    self.family_key(&session_id),
                    self.user_key(username),
                ],
                vec![
                    Value::from(session_id.as_str()),
                    Value::from(username),
                    millis(expires_at),
                ],
            )
            .await
            .map_err(unavailable)?;
        Ok(RefreshGrant {
            token,
            session_id,
            expires_at,
        })
    }

    async fn rotate(&self, presented: &str, ttl: Duration) -> Result<Rotation, SessionError> {
        let hash = hash_presented(presented).ok_or(SessionError::Unknown)?;
        // Drawn before anything is spent, so a failing random generator burns no token.
        let (next_token, next_hash) = new_token()?;
        let now = Utc::now();
        let expires_at = expiry(now, ttl);
        let answer: Vec<String> = self
            .redis
            .acknowledged_script(
                "session_rotate",
                &ROTATE,
                vec![self.token_key(&hash), self.token_key(&next_hash)],
                vec![
                    millis(now),
                    millis(expires_at),
                    Value::from(self.family_key("")),
                    Value::from(self.user_key("")),
                ],
            )
            .await
            .map_err(unavailable)?;
        let mut answer = answer.into_iter();
        let outcome = answer.next();
        let session_id = answer.next();
        let username = answer.next();
        match (outcome.as_deref(), session_id, username) {
            (Some("ok"), Some(session_id), Some(username)) => Ok(Rotation {
                username,
                session_id: session_id.clone(),
                next: RefreshGrant {
                    token: next_token,
                    session_id,
                    expires_at,
                },
            }),
            (Some("unknown"), ..) => Err(SessionError::Unknown),
            (Some("expired"), ..) => Err(SessionError::Expired),
            (Some("reused"), Some(session_id), _) => Err(SessionError::Reused { session_id }),
            (Some("revoked"), Some(session_id), _) => Err(SessionError::Revoked { session_id }),
            (outcome, ..) => Err(unavailable(RedisError::Unexpected(format!(
                "session_rotate answered {outcome:?}"
            )))),
        }
    }

    async fn revoke(&self, session_id: &str) -> Result<Option<String>, SessionError> {
        self.redis
            .acknowledged_script(
                "session_revoke",
                &REVOKE,
                vec![self.family_key(session_id)],
                vec![],
            )
            .await
            .map_err(unavailable)
    }

    async fn revoke_user(
        &self,
        username: &str,
        keep: Option<&str>,
    ) -> Result<Vec<String>, SessionError> {
        let mut revoked: Vec<String> = self
            .redis
            .acknowledged_script(
                "session_revoke_user",
                &REVOKE_USER,
                vec![self.user_key(username)],
                vec![
                    Value::from(self.family_key("")),
                    Value::from(username),
                    Value::from(keep.unwrap_or("")),
                ],
            )
            .await
            .map_err(unavailable)?;
        revoked.sort_unstable();
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use fred::interfaces::{HashesInterface, KeysInterface};

    use super::*;
    use crate::auth::sessions::sha256;
    use crate::redis::{BreakerSettings, RedisSettings};
    use petstore_testkit::redis::{LocalRedis, Persistence};

    const TTL: Duration = Duration::from_secs(3600);

    fn settings(url: String) -> RedisSettings {
        let mut settings = RedisSettings::new(url);
        settings.prefix = format!("test-{}", Uuid::new_v4().simple());
        settings
    }

    async fn connect(settings: RedisSettings) -> Redis {
        Redis::connect(settings).await.expect("redis connects")
    }

    async fn fresh() -> Arc<dyn SessionStore> {
        let redis = connect(settings(LocalRedis::shared().url())).await;
        Arc::new(RedisSessionStore::new(redis))
    }

    crate::auth::session_conformance::session_store_conformance_tests!(fresh);

    /// Every key under the prefix, with its remaining lifetime in ms.
    async fn keys_with_ttl(redis: &Redis) -> Vec<(String, i64)> {
        let pattern = redis.key("*");
        let mut cursor = "0".to_owned();
        let mut keys = Vec::new();
        loop {
            let (next, page): (String, Vec<String>) = redis
                .read("test_scan", |client| {
                    let (cursor, pattern) = (cursor.clone(), pattern.clone());
                    async move { client.scan_page(cursor, pattern, Some(100), None).await }
                })
                .await
                .expect("scan");
            keys.extend(page);
            if next == "0" {
                break;
            }
            cursor = next;
        }
        let mut with_ttl = Vec::new();
        for key in keys {
            let ttl: i64 = redis
                .read("test_pttl", |client| {
                    let key = key.clone();
                    async move { client.pttl(key).await }
                })
                .await
                .expect("pttl");
            with_ttl.push((key, ttl));
        }
        with_ttl.sort();
        with_ttl
    }

    #[tokio::test]
    async fn only_hashes_of_tokens_are_stored_and_every_key_expires() {
        let redis = connect(settings(LocalRedis::shared().url())).await;
        let store = RedisSessionStore::new(redis.clone());
        let grant = store.start("alice", TTL).await.unwrap();
        let rotation = store.rotate(&grant.token, TTL).await.unwrap();

        let mut expected = vec![
            store.token_key(&sha256(grant.token.as_bytes())),
            store.token_key(&sha256(rotation.next.token.as_bytes())),
            store.family_key(&grant.session_id),
            store.user_key("alice"),
        ];
        expected.sort();
        let keys = keys_with_ttl(&redis).await;
        assert_eq!(
            keys.iter().map(|(key, _)| key.clone()).collect::<Vec<_>>(),
            expected
        );
        for (key, ttl) in &keys {
            assert!(*ttl > 0, "{key} never expires ({ttl})");
        }
        for token in [&grant.token, &rotation.next.token] {
            let raw = URL_SAFE_NO_PAD.decode(token).unwrap();
            let raw_hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            for (key, _) in &keys {
                assert!(!key.contains(token.as_str()) && !key.contains(&raw_hex));
                if key.contains(":refresh:") {
                    let fields: Vec<String> = redis
                        .read("test_hvals", |client| {
                            let key = key.clone();
                            async move { client.hvals(key).await }
                        })
                        .await
                        .unwrap();
                    assert!(fields.iter().all(|v| !v.contains(token.as_str())));
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_nodes_racing_to_rotate_one_token_let_exactly_one_win() {
        const TASKS: usize = 8;
        let settings = settings(LocalRedis::shared().url());
        let nodes = [
            RedisSessionStore::new(connect(settings.clone()).await),
            RedisSessionStore::new(connect(settings).await),
        ];
        for round in 0..20 {
            let grant = nodes[round % 2].start("alice", TTL).await.unwrap();
            let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
            let tasks: Vec<_> = (0..TASKS)
                .map(|task| {
                    let node = nodes[task % 2].clone();
                    let barrier = Arc::clone(&barrier);
                    let token = grant.token.clone();
                    tokio::spawn(async move {
                        barrier.wait().await;
                        node.rotate(&token, TTL).await
                    })
                })
                .collect();
            let mut winners = Vec::new();
            for task in tasks {
                match task.await.unwrap() {
                    Ok(rotation) => winners.push(rotation),
                    Err(SessionError::Reused { session_id }) => {
                        assert_eq!(session_id, grant.session_id);
                    }
                    Err(other) => panic!("round {round}: unexpected {other:?}"),
                }
            }
            assert_eq!(winners.len(), 1, "round {round}");
            // The losers' reuse revoked the family on both nodes, the winner's token included.
            for node in &nodes {
                let result = node.rotate(&winners[0].next.token, TTL).await;
                assert!(
                    matches!(result, Err(SessionError::Revoked { .. })),
                    "round {round}: {result:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn redis_down_is_unavailable_not_a_panic() {
        let mut server = LocalRedis::start(Persistence::None).expect("redis-server");
        let mut settings = settings(server.url());
        settings.command_timeout = Duration::from_millis(300);
        settings.read_retries = 0;
        settings.breaker = BreakerSettings {
            failure_threshold: 2,
            cool_down: Duration::from_secs(30),
        };
        let store = RedisSessionStore::new(connect(settings).await);
        let grant = store.start("alice", TTL).await.unwrap();

        server.kill();
        let start = store.start("alice", TTL).await;
        assert!(
            matches!(start, Err(SessionError::Unavailable(_))),
            "{start:?}"
        );
        let rotate = store.rotate(&grant.token, TTL).await;
        assert!(
            matches!(rotate, Err(SessionError::Unavailable(_))),
            "{rotate:?}"
        );
        let revoke = store.revoke(&grant.session_id).await;
        assert!(
            matches!(revoke, Err(SessionError::Unavailable(_))),
            "{revoke:?}"
        );
        let revoke_user = store.revoke_user("alice", None).await;
        assert!(
            matches!(revoke_user, Err(SessionError::Unavailable(ref e)) if !e.is_empty()),
            "{revoke_user:?}"
        );
        // Garbage is still refused without asking Redis.
        assert!(matches!(
            store.rotate("garbage", TTL).await,
            Err(SessionError::Unknown)
        ));
    }

    #[tokio::test]
    async fn a_family_lives_as_long_as_its_latest_token() {
        let redis = connect(settings(LocalRedis::shared().url())).await;
        let store = RedisSessionStore::new(redis.clone());
        let grant = store
            .start("alice", Duration::from_secs(100))
            .await
            .unwrap();
        store
            .rotate(&grant.token, Duration::from_secs(5000))
            .await
            .unwrap();
        for key in [store.family_key(&grant.session_id), store.user_key("alice")] {
            let ttl: i64 = redis
                .read("test_pttl", |client| {
                    let key = key.clone();
                    async move { client.pttl(key).await }
                })
                .await
                .unwrap();
            assert!(ttl > 1_000_000, "{key}: {ttl}");
        }
    }
}
