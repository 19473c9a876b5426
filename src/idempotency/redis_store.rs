//! [`RedisIdempotencyStore`]: the records of a cluster, one Redis string per key
//! (`{prefix}:idem:{hashed scope and key}`), so a repeat sent to any node finds the first.
//!
//! Each step is one script, atomic in Redis: a claim is `SET NX` with the lease as its expiry
//! (a node that dies mid-request frees the key when the lease ends, never later), and completing
//! or releasing checks the claim's token first, so a node whose lease ran out cannot overwrite
//! the record of whoever claimed the key after it.

use std::{sync::LazyLock, time::Duration};

use fred::types::{Value, scripts::Script};

use super::{
    Begin, Claim, Fingerprint, IdempotencyError, IdempotencyStore, Record, RecordKey,
    StoredResponse,
};
use crate::redis::{Idempotence, Redis};

/// `KEYS[1]`: the record. `ARGV[1]`: the claim; `ARGV[2]`: the lease in ms. Returns nil when
/// claimed, else the record there.
const BEGIN_LUA: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
return redis.call('GET', KEYS[1])
";

/// `KEYS[1]`: the record. `ARGV[1]`: the claim; `ARGV[2]`: the response record; `ARGV[3]`: its
/// time to live in ms. Returns 1 when the claim was still held and is now the response.
const COMPLETE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// `KEYS[1]`: the record. `ARGV[1]`: the claim. Returns 1 when the claim was held and is gone.
const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

static BEGIN: LazyLock<Script> = LazyLock::new(|| Script::from_lua(BEGIN_LUA));
static COMPLETE: LazyLock<Script> = LazyLock::new(|| Script::from_lua(COMPLETE_LUA));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::from_lua(RELEASE_LUA));

/// Idempotency records in Redis, shared by every node on it.
#[derive(Debug, Clone)]
pub struct RedisIdempotencyStore {
    redis: Redis,
}

impl RedisIdempotencyStore {
    /// Records under `{prefix}:idem:`.
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// The Redis key of `key`'s record.
    pub fn redis_key(&self, key: &RecordKey) -> String {
        self.redis.key(format_args!("idem:{}", key.as_str()))
    }
}

/// Milliseconds for a Redis expiry: at least one (zero would be an error).
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

#[async_trait::async_trait]
impl IdempotencyStore for RedisIdempotencyStore {
    async fn begin(
        &self,
        key: &RecordKey,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Result<Begin, IdempotencyError> {
        let claim = Claim::new(key, fingerprint);
        // Writes: a call that timed out may have claimed, so it is never retried (the key then
        // stays claimed until the lease ends, and the client's retry gets 409 until then).
        let existing: Option<String> = self
            .redis
            .script(
                "idempotency_begin",
                Idempotence::Write,
                &BEGIN,
                vec![self.redis_key(key)],
                vec![
                    Value::from(Record::claim(&claim).encode()),
                    Value::from(millis(lease)),
                ],
            )
            .await?;
        match existing {
            None => Ok(Begin::Claimed(claim)),
            Some(text) => Record::decode(&text)?.into_begin(),
        }
    }

    async fn complete(
        &self,
        claim: &Claim,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<(), IdempotencyError> {
        let _: i64 = self
            .redis
            .acknowledged_script(
                "idempotency_complete",
                &COMPLETE,
                vec![self.redis_key(&claim.key)],
                vec![
                    Value::from(Record::claim(claim).encode()),
                    Value::from(Record::done(claim, response).encode()),
                    Value::from(millis(ttl)),
                ],
            )
            .await?;
        Ok(())
    }

    async fn release(&self, claim: &Claim) -> Result<(), IdempotencyError> {
        let _: i64 = self
            .redis
            .script(
                "idempotency_release",
                Idempotence::Write,
                &RELEASE,
                vec![self.redis_key(&claim.key)],
                vec![Value::from(Record::claim(claim).encode())],
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fred::interfaces::KeysInterface;

    use super::*;
    use crate::redis::RedisSettings;
    use petstore_testkit::redis::LocalRedis;

    async fn node(prefix: &str) -> Redis {
        let mut settings = RedisSettings::new(LocalRedis::shared().url());
        settings.prefix = prefix.to_owned();
        Redis::connect(settings)
            .await
            .expect("the test redis-server answers")
    }

    fn fresh_prefix() -> String {
        format!("test-{}", uuid::Uuid::new_v4().simple())
    }

    async fn fresh() -> Arc<dyn IdempotencyStore> {
        Arc::new(RedisIdempotencyStore::new(node(&fresh_prefix()).await))
    }

    mod conformance {
        crate::idempotency::conformance::idempotency_store_conformance_tests!(super::fresh);
    }

    #[tokio::test]
    async fn records_live_under_the_prefix_with_the_lease_then_the_ttl_as_expiry() {
        let prefix = fresh_prefix();
        let redis = node(&prefix).await;
        let store = RedisIdempotencyStore::new(redis.clone());
        let key = RecordKey::new("alice", "k-1");
        let fingerprint = Fingerprint::of(&[b"POST", b"/pet"]);
        let Ok(Begin::Claimed(claim)) = store
            .begin(&key, &fingerprint, Duration::from_secs(30))
            .await
        else {
            panic!("a fresh key is claimed");
        };
        let redis_key = format!("{prefix}:idem:{}", key.as_str());
        assert_eq!(store.redis_key(&key), redis_key);
        let ttl_ms = |redis: Redis, name: String| async move {
            redis
                .read("pttl", move |client| {
                    let name = name.clone();
                    async move { client.pttl::<i64, _>(name).await }
                })
                .await
                .expect("pttl")
        };
        let lease = ttl_ms(redis.clone(), redis_key.clone()).await;
        assert!((1..=30_000).contains(&lease), "lease {lease} ms");
        let response = StoredResponse {
            status: 200,
            headers: vec![],
            body: "{}".into(),
        };
        store
            .complete(&claim, &response, Duration::from_secs(3600))
            .await
            .expect("completes");
        let ttl = ttl_ms(redis, redis_key).await;
        assert!((30_001..=3_600_000).contains(&ttl), "ttl {ttl} ms");
    }
}
