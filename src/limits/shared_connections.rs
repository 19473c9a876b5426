//! The per-address connection limit across a cluster: [`SharedConnectionLimiter`], the
//! [`ConnectionLimit`] a node of a cluster hands the WebSocket upgrade.
//!
//! Each address (per [`ip_bucket`]) has one Redis hash, `{prefix}:conn:{bucket}`, whose fields
//! are node ids and whose values are how many connections from that address the node holds.
//! Acquiring runs one Lua script that adds up the fields of live nodes, refuses at the limit, and
//! otherwise increments this node's field: atomic, so concurrent acquires on any nodes never
//! overshoot. A node is live while the node registry's record `{prefix}:node:{id}` exists (it
//! expires a few heartbeats after the node stops); the fields of dead nodes are deleted by the
//! same script, so the slots a crashed node held come back without anyone cleaning up. This
//! node's own field always counts, whether or not its record has been written yet.
//!
//! The limiter also counts in a [`ConnectionLimiter`] of its own, which caps this node alone
//! (no node may exceed the limit by itself), keeps `/health` and the metrics working, and is
//! the fallback when Redis is unavailable: connections are then limited per node only. That is
//! the fail-safe choice for a connection limit: refusing every connection because the limit's
//! bookkeeping is down would turn a Redis outage into a WebSocket outage, and the per-node cap
//! still bounds what one address can hold (at most nodes × limit).

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use fred::types::Value;
use fred::types::scripts::Script;

use super::client_ip::ip_bucket;
use super::connections::{
    ConnectionLimit, ConnectionLimiter, ConnectionPermit, RemoteSlot, TooManyConnections,
};
use crate::redis::{Idempotence, Redis, RedisError};

/// Takes a slot: see the module documentation.
///
/// `KEYS[1]`: the address's hash. `ARGV`: this node's id, the limit, the hash's TTL in ms, the
/// node-record key prefix (`{prefix}:node:`), and the releases this node still owes the hash
/// (releases that failed earlier, settled first). Returns `{granted (0|1), live count}`.
const ACQUIRE_LUA: &str = r"
local own = ARGV[1]
local limit = tonumber(ARGV[2])
local owed = tonumber(ARGV[5])
if owed > 0 and redis.call('HINCRBY', KEYS[1], own, -owed) <= 0 then
  redis.call('HDEL', KEYS[1], own)
end
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #fields, 2 do
  local node = fields[i]
  if node == own or redis.call('EXISTS', ARGV[4] .. node) == 1 then
    total = total + (tonumber(fields[i + 1]) or 0)
  else
    redis.call('HDEL', KEYS[1], node)
  end
end
if total >= limit then
  return {0, total}
end
redis.call('HINCRBY', KEYS[1], own, 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, total + 1}
";

/// Gives a slot back. `KEYS[1]`: the address's hash; `ARGV[1]`: this node's id. A field that
/// reaches zero is deleted, so idle addresses leave nothing behind.
const RELEASE_LUA: &str = r"
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if left <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return left
";

static ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::from_lua(ACQUIRE_LUA));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::from_lua(RELEASE_LUA));

/// How long an address's hash outlives its last acquire. Only a safety net against counts that
/// were never given back (a release lost while Redis was down, on a node that lives on): dead
/// nodes' counts are dropped at the next acquire anyway. Long, because a connection that
/// outlives it is no longer counted.
pub const HASH_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Caps concurrent connections per address across every node sharing one Redis.
#[derive(Debug)]
pub struct SharedConnectionLimiter {
    /// This node's count: the per-node cap, `/health`, and the fallback.
    local: Arc<ConnectionLimiter>,
    /// Shared with the permits' Redis slots, which give their count back through it.
    cluster: Arc<ClusterCounts>,
}

/// This node's side of the counts in Redis.
#[derive(Debug)]
struct ClusterCounts {
    redis: Redis,
    node_id: String,
    /// Releases that could not reach Redis, per address: paid back by the next acquire for that
    /// address on this node, so a Redis blip does not leak slots for the life of the node.
    owed: DashMap<IpAddr, u32>,
}

impl SharedConnectionLimiter {
    /// A limiter allowing `max_per_ip` concurrent connections per address across the cluster,
    /// counting this node's connections under `node_id`, the id the node registry publishes
    /// (`{prefix}:node:{node_id}`). Ids must be unique per running process: a process that
    /// restarts under the same id finds its predecessor's counts as its own until they expire.
    pub fn new(redis: Redis, node_id: impl Into<String>, max_per_ip: u32) -> Arc<Self> {
        Arc::new(Self {
            local: ConnectionLimiter::new(max_per_ip),
            cluster: Arc::new(ClusterCounts {
                redis,
                node_id: node_id.into(),
                owed: DashMap::new(),
            }),
        })
    }

    /// The id this node counts under.
    pub fn node_id(&self) -> &str {
        &self.cluster.node_id
    }

    /// The Redis hash counting the connections of `ip`'s bucket:
    /// `{prefix}:conn:192.0.2.1` or `{prefix}:conn:2001:db8::/64`.
    pub fn redis_key(&self, ip: IpAddr) -> String {
        self.cluster.key(ip)
    }
}

#[async_trait]
impl ConnectionLimit for SharedConnectionLimiter {
    /// Refuses if the address holds the maximum across the cluster (or on this node alone).
    /// When Redis cannot be reached the slot is taken from this node's limiter only (see the
    /// module documentation).
    async fn try_acquire(&self, ip: IpAddr) -> Result<ConnectionPermit, TooManyConnections> {
        let permit = self.local.try_acquire(ip)?;
        let bucket = permit.ip();
        let cluster = &self.cluster;
        let owed = cluster.owed.remove(&bucket).map_or(0, |(_, owed)| owed);
        let args = vec![
            Value::from(cluster.node_id.as_str()),
            Value::from(i64::from(self.max_per_ip())),
            Value::from(i64::try_from(HASH_TTL.as_millis()).unwrap_or(i64::MAX)),
            Value::from(cluster.redis.key("node:")),
            Value::from(i64::from(owed)),
        ];
        let outcome: Result<(i64, i64), RedisError> = cluster
            .redis
            .script(
                "conn_acquire",
                Idempotence::Write,
                &ACQUIRE,
                vec![cluster.key(bucket)],
                args,
            )
            .await;
        match outcome {
            Ok((1, _)) => Ok(permit.with_remote(SharedSlot {
                cluster: Arc::clone(cluster),
                bucket,
                runtime: tokio::runtime::Handle::current(),
            })),
            Ok(_) => Err(TooManyConnections {
                limit: self.max_per_ip(),
            }),
            Err(error) => {
                // Whether a script that failed on the way ran is unknown: the debt is kept, since
                // paying it twice frees one slot early (bounded, and only this node's field),
                // while forgetting it would hold a slot for the life of the node.
                if owed > 0 {
                    *cluster.owed.entry(bucket).or_insert(0) += owed;
                }
                tracing::warn!(%error, "shared connection limit unavailable; limiting this node only");
                Ok(permit)
            }
        }
    }

    fn max_per_ip(&self) -> u32 {
        self.local.max_per_ip()
    }

    /// Also the fallback limiter while Redis is unavailable.
    fn local(&self) -> &ConnectionLimiter {
        &self.local
    }
}

impl ClusterCounts {
    fn key(&self, ip: IpAddr) -> String {
        match ip_bucket(ip) {
            IpAddr::V4(v4) => self.redis.key(format_args!("conn:{v4}")),
            IpAddr::V6(v6) => self.redis.key(format_args!("conn:{v6}/64")),
        }
    }

    /// Gives back one cluster slot of `bucket`; remembered as owed if Redis does not answer.
    async fn release(&self, bucket: IpAddr) {
        let outcome: Result<i64, RedisError> = self
            .redis
            .script(
                "conn_release",
                Idempotence::Write,
                &RELEASE,
                vec![self.key(bucket)],
                vec![Value::from(self.node_id.as_str())],
            )
            .await;
        if let Err(error) = outcome {
            tracing::warn!(%error, "could not give a shared connection slot back; owed until the next acquire");
            *self.owed.entry(bucket).or_insert(0) += 1;
        }
    }
}

/// The cluster half of a [`ConnectionPermit`]: dropping it gives the slot back in Redis, on
/// the runtime the slot was taken on (a drop cannot wait for Redis).
#[derive(Debug)]
struct SharedSlot {
    cluster: Arc<ClusterCounts>,
    bucket: IpAddr,
    runtime: tokio::runtime::Handle,
}

impl RemoteSlot for SharedSlot {}

impl Drop for SharedSlot {
    fn drop(&mut self) {
        let cluster = Arc::clone(&self.cluster);
        let bucket = self.bucket;
        // If the runtime is already shutting down the release never runs: the node is going
        // away, and its counts go with its registry record.
        drop(
            self.runtime
                .spawn(async move { cluster.release(bucket).await }),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Instant;

    use fred::interfaces::{HashesInterface, KeysInterface};

    use super::*;
    use crate::limits::ConnectionLimits;
    use crate::redis::RedisSettings;
    use petstore_testkit::redis::{LocalRedis, Persistence};

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn fresh_prefix() -> String {
        format!("test-{}", uuid::Uuid::new_v4().simple())
    }

    /// A connection to the shared test server under `prefix`: one "node".
    async fn connect(prefix: &str) -> Redis {
        let mut settings = RedisSettings::new(LocalRedis::shared().url());
        settings.prefix = prefix.to_owned();
        Redis::connect(settings)
            .await
            .expect("the test redis-server answers")
    }

    /// A single node under a prefix of its own (it need not be registered: its own count always
    /// counts), for the checks every connection limit shares.
    async fn fresh(max_per_ip: u32) -> ConnectionLimits {
        SharedConnectionLimiter::new(connect(&fresh_prefix()).await, "a", max_per_ip)
    }

    /// The checks every connection limit shares, apart from the ones of the cluster alone.
    mod conformance {
        crate::limits::connection_conformance::connection_limit_conformance_tests!(super::fresh);
    }

    /// A node `id` with its own connection, its registry record written (as the registry
    /// would) so the other nodes count it as alive.
    async fn live_node(prefix: &str, id: &str, max: u32) -> Arc<SharedConnectionLimiter> {
        let redis = connect(prefix).await;
        set_alive(&redis, id).await;
        SharedConnectionLimiter::new(redis, id, max)
    }

    async fn set_alive(redis: &Redis, id: &str) {
        let key = redis.key(format_args!("node:{id}"));
        redis
            .write("set", |client| {
                let key = key.clone();
                async move {
                    client
                        .set::<(), _, _>(
                            key,
                            "{}",
                            Some(fred::types::Expiration::PX(60_000)),
                            None,
                            false,
                        )
                        .await
                }
            })
            .await
            .expect("set the node record");
    }

    async fn kill_node(redis: &Redis, id: &str) {
        let key = redis.key(format_args!("node:{id}"));
        redis
            .write("del", |client| {
                let key = key.clone();
                async move { client.del::<(), _>(key).await }
            })
            .await
            .expect("delete the node record");
    }

    /// The hash counting `ip`: node id → count.
    async fn counts(limiter: &SharedConnectionLimiter, ip: IpAddr) -> Vec<(String, i64)> {
        let key = limiter.redis_key(ip);
        let mut counts: Vec<(String, i64)> = limiter
            .cluster
            .redis
            .read("hgetall", |client| {
                let key = key.clone();
                async move {
                    client
                        .hgetall::<std::collections::HashMap<String, i64>, _>(key)
                        .await
                }
            })
            .await
            .expect("hgetall")
            .into_iter()
            .collect();
        counts.sort();
        counts
    }

    /// Waits (a hang guard, not a timing assertion) until the hash of `ip` reads `expected`.
    async fn eventually_counts(
        limiter: &SharedConnectionLimiter,
        ip: IpAddr,
        expected: &[(&str, i64)],
    ) {
        let expected: Vec<(String, i64)> = expected
            .iter()
            .map(|(node, count)| ((*node).to_owned(), *count))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = counts(limiter, ip).await;
            if now == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "counts {now:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn two_nodes_share_the_per_address_budget() {
        let prefix = fresh_prefix();
        let a = live_node(&prefix, "a", 3).await;
        let b = live_node(&prefix, "b", 3).await;
        let held_a = [a.try_acquire(ip(1)).await, a.try_acquire(ip(1)).await];
        let held_b = b.try_acquire(ip(1)).await;
        assert!(held_a.iter().all(Result::is_ok) && held_b.is_ok());
        assert!(held_b.as_ref().is_ok_and(ConnectionPermit::is_shared));
        assert_eq!(
            b.try_acquire(ip(1)).await.err(),
            Some(TooManyConnections { limit: 3 })
        );
        assert!(a.try_acquire(ip(1)).await.is_err());
        assert!(
            b.try_acquire(ip(2)).await.is_ok(),
            "other addresses are free"
        );
        assert_eq!(counts(&a, ip(1)).await, [("a".into(), 2), ("b".into(), 1)]);
        assert_eq!((a.local().current(ip(1)), b.local().current(ip(1))), (2, 1));
        drop(held_a);
        eventually_counts(&b, ip(1), &[("b", 1)]).await;
        assert!(b.try_acquire(ip(1)).await.is_ok());
    }

    #[tokio::test]
    async fn ipv6_clients_share_one_hash_per_slash_64() {
        let prefix = fresh_prefix();
        let a = live_node(&prefix, "a", 1).await;
        let b = live_node(&prefix, "b", 1).await;
        let one: Ipv6Addr = "2001:db8:0:1::a".parse().unwrap_or(Ipv6Addr::LOCALHOST);
        let other: Ipv6Addr = "2001:db8:0:1::b".parse().unwrap_or(Ipv6Addr::LOCALHOST);
        assert_eq!(
            a.redis_key(one.into()),
            format!("{prefix}:conn:2001:db8:0:1::/64")
        );
        let _held = a.try_acquire(one.into()).await;
        assert!(b.try_acquire(other.into()).await.is_err());
    }

    #[tokio::test]
    async fn a_dead_nodes_counts_are_dropped_and_its_slots_come_back() {
        let prefix = fresh_prefix();
        let a = live_node(&prefix, "a", 2).await;
        let b = live_node(&prefix, "b", 2).await;
        let held: Vec<_> = [a.try_acquire(ip(1)).await, a.try_acquire(ip(1)).await]
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        assert_eq!(held.len(), 2);
        assert!(b.try_acquire(ip(1)).await.is_err());
        // Node a dies: its registry record expires, and its permits are never dropped.
        kill_node(&b.cluster.redis, "a").await;
        std::mem::forget(held);
        let taken = b.try_acquire(ip(1)).await;
        assert!(taken.is_ok(), "the dead node's slots come back");
        assert_eq!(counts(&b, ip(1)).await, [("b".into(), 1)]);
        let _second = b.try_acquire(ip(1)).await;
        assert!(b.try_acquire(ip(1)).await.is_err(), "the limit still holds");
    }

    #[tokio::test]
    async fn a_nodes_own_count_holds_before_its_record_is_written() {
        let prefix = fresh_prefix();
        let lonely = SharedConnectionLimiter::new(connect(&prefix).await, "unregistered", 1);
        let _held = lonely.try_acquire(ip(1)).await;
        assert!(lonely.try_acquire(ip(1)).await.is_err());
        assert_eq!(counts(&lonely, ip(1)).await, [("unregistered".into(), 1)]);
    }

    #[tokio::test]
    async fn permits_give_their_slot_back_when_dropped_and_leave_nothing_behind() {
        let prefix = fresh_prefix();
        let a = live_node(&prefix, "a", 1).await;
        let b = live_node(&prefix, "b", 1).await;
        let permit = a.try_acquire(ip(1)).await;
        assert!(permit.is_ok());
        assert!(b.try_acquire(ip(1)).await.is_err());
        drop(permit);
        eventually_counts(&a, ip(1), &[]).await;
        assert_eq!((a.local().total(), a.local().tracked_ips()), (0, 0));
        let permit = b.try_acquire(ip(1)).await;
        assert!(permit.is_ok(), "the slot is free for any node");
        let key = a.redis_key(ip(1));
        let ttl: i64 = a
            .cluster
            .redis
            .read("pttl", |client| {
                let key = key.clone();
                async move { client.pttl(key).await }
            })
            .await
            .expect("pttl");
        assert!(ttl > 0, "the hash expires on its own, got {ttl}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_acquires_on_several_nodes_never_exceed_the_limit() {
        const MAX: u32 = 5;
        let prefix = fresh_prefix();
        let nodes = [
            live_node(&prefix, "a", MAX).await,
            live_node(&prefix, "b", MAX).await,
            live_node(&prefix, "c", MAX).await,
        ];
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..48 {
            let node = Arc::clone(&nodes[task % nodes.len()]);
            tasks.spawn(async move { node.try_acquire(ip(1)).await.ok() });
        }
        let mut granted = Vec::new();
        while let Some(outcome) = tasks.join_next().await {
            if let Ok(Some(permit)) = outcome {
                granted.push(permit);
            }
        }
        assert_eq!(granted.len(), MAX as usize);
        let total: i64 = counts(&nodes[0], ip(1)).await.iter().map(|(_, n)| n).sum();
        assert_eq!(total, i64::from(MAX));
        drop(granted);
        eventually_counts(&nodes[0], ip(1), &[]).await;
    }

    #[tokio::test]
    async fn without_redis_connections_are_limited_per_node() {
        let mut server = LocalRedis::start(Persistence::None).expect("redis-server");
        let mut settings = RedisSettings::new(server.url());
        settings.prefix = fresh_prefix();
        settings.command_timeout = Duration::from_millis(300);
        let redis = Redis::connect(settings).await.expect("connects");
        let limits: ConnectionLimits = SharedConnectionLimiter::new(redis, "a", 2);
        server.kill();
        let first = limits.try_acquire(ip(1)).await;
        let second = limits.try_acquire(ip(1)).await;
        assert!(
            first.as_ref().is_ok_and(|permit| !permit.is_shared())
                && second.as_ref().is_ok_and(|permit| !permit.is_shared()),
            "fails open to the local limit"
        );
        assert_eq!(
            limits.try_acquire(ip(1)).await.err(),
            Some(TooManyConnections { limit: 2 })
        );
        assert_eq!(limits.local().current(ip(1)), 2);
        drop((first, second));
        assert_eq!(limits.local().total(), 0);
    }

    #[tokio::test]
    async fn releases_lost_while_redis_is_down_are_paid_back_by_the_next_acquire() {
        let mut server = LocalRedis::start(Persistence::AppendOnly).expect("redis-server");
        let mut settings = RedisSettings::new(server.url());
        settings.prefix = fresh_prefix();
        settings.command_timeout = Duration::from_millis(300);
        let redis = Redis::connect(settings).await.expect("connects");
        let limiter = SharedConnectionLimiter::new(redis, "a", 1);
        let permit = limiter.try_acquire(ip(1)).await;
        assert!(permit.is_ok());
        server.kill();
        drop(permit);
        let deadline = Instant::now() + Duration::from_secs(10);
        while limiter.cluster.owed.get(&ip(1)).map_or(0, |owed| *owed) == 0 {
            assert!(Instant::now() < deadline, "the release never failed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Redis comes back with the count the lost release should have removed.
        server.restart().expect("redis-server comes back");
        let deadline = Instant::now() + Duration::from_secs(15);
        while limiter.cluster.redis.ping().await.is_err() {
            assert!(Instant::now() < deadline, "redis never answered again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(counts(&limiter, ip(1)).await, [("a".into(), 1)]);
        let permit = limiter.try_acquire(ip(1)).await;
        assert!(permit.is_ok(), "the lost release must not hold the slot");
        assert!(limiter.cluster.owed.is_empty());
        assert_eq!(counts(&limiter, ip(1)).await, [("a".into(), 1)]);
    }
}
