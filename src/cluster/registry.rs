//! The node registry: each node keeps a record of itself in Redis alive with a heartbeat, and
//! any node can list the live ones.
//!
//! Keys (under the deployment's prefix):
//!
//! - `node:{id}`: the node's [`NodeRecord`] as JSON, written every heartbeat with a time to
//!   live of three heartbeats. A node that stops (a crash, a partition) disappears once it
//!   has missed three beats; one that shuts down gracefully deletes it at once
//!   ([`NodeRegistry::deregister`]).
//! - `nodes`: the set of node ids, so the live records can be read without scanning keys. An
//!   id whose record has expired is removed the next time someone lists the nodes.
//!
//! Each heartbeat also refreshes the `petstore_cluster_nodes` gauge from the list, so every
//! node reports the cluster size as it sees it.
//!
//! After a Redis outage that outlived the records (or a restart that lost them), the first beat
//! that succeeds writes the record and lists the id again. That beat comes soon: the Redis
//! client reconnects within a second, and the circuit breaker then lets the next call through
//! at once (see [`crate::redis`]); a breaker left half open by an abandoned trial, which used to
//! refuse every beat for good and so keep a live node out of the registry, gives its trial to
//! the next call instead.

use std::{sync::Arc, time::Duration};

use chrono::{SecondsFormat, Utc};
use fred::{
    interfaces::{KeysInterface, SetsInterface},
    types::scripts::Script,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    redis::{Idempotence, Redis, RedisError},
    telemetry::metrics,
};

/// Who a node is: fixed for its lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Unique in the cluster (`PETSTORE_NODE_ID`).
    pub id: String,
    /// Where other nodes or operators reach it (`host:port`).
    pub address: String,
    /// The server version it runs.
    pub version: String,
}

/// What a node is carrying right now, read at every heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeLoad {
    /// Open WebSocket connections.
    pub connections: u64,
    /// HTTP requests being served.
    pub in_flight_requests: u64,
}

/// One node as the registry lists it; also its JSON record in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    /// The node id.
    pub id: String,
    /// Where it is reached.
    pub address: String,
    /// The version it runs.
    pub version: String,
    /// Open WebSocket connections at its last heartbeat.
    pub connections: u64,
    /// HTTP requests in flight at its last heartbeat.
    pub in_flight: u64,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// Its last heartbeat (RFC 3339, UTC).
    pub last_seen: String,
}

/// Reads a node's current load.
type LoadFn = Arc<dyn Fn() -> NodeLoad + Send + Sync>;

/// The live nodes of the cluster, and this node's own entry among them.
///
/// Cheap to clone. Built with [`NodeRegistry::start`] (Redis: heartbeats in a background task)
/// or [`NodeRegistry::single`] (no Redis: only this node). The heartbeat task stops on
/// [`NodeRegistry::deregister`] or when the last clone is dropped; dropping without
/// deregistering leaves the record to expire, as a crash would.
#[derive(Clone)]
pub struct NodeRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    node: Arc<Node>,
    backend: Backend,
}

enum Backend {
    /// No shared registry: this node is the whole cluster.
    Single,
    Redis {
        /// Tells the heartbeat task to stop after its current beat.
        stop: watch::Sender<bool>,
        task: Mutex<Option<JoinHandle<()>>>,
    },
}

/// What the heartbeat task and the registry share.
struct Node {
    info: NodeInfo,
    started_at: String,
    load: LoadFn,
    redis: Option<Redis>,
    /// `{prefix}:node:{id}`.
    key: String,
    /// `{prefix}:nodes`.
    nodes_key: String,
    /// The record's time to live: three heartbeats.
    ttl: Duration,
}

impl std::fmt::Debug for NodeRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRegistry")
            .field("node", &self.inner.node.info)
            .field("shared", &self.inner.node.redis.is_some())
            .finish_non_exhaustive()
    }
}

/// Writes the record with its time to live and lists the id, atomically, so an id in the set
/// always had a record when it was added.
static HEARTBEAT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::from_lua(
        "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) \
         redis.call('SADD', KEYS[2], ARGV[3]) \
         return 1",
    )
});

/// Removes from the set (`KEYS[1]`) each id (`ARGV[i]`) whose record (`KEYS[i + 1]`) is still
/// gone: a node that beat again since it was found missing stays listed.
static PRUNE: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::from_lua(
        "local removed = 0 \
         for i, id in ipairs(ARGV) do \
           if redis.call('EXISTS', KEYS[i + 1]) == 0 then \
             removed = removed + redis.call('SREM', KEYS[1], id) \
           end \
         end \
         return removed",
    )
});

/// Deletes the record and unlists the id.
static DEREGISTER: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::from_lua(
        "redis.call('DEL', KEYS[1]) \
         redis.call('SREM', KEYS[2], ARGV[1]) \
         return 1",
    )
});

impl NodeRegistry {
    /// Registers this node in Redis and keeps its record alive: a background task writes it
    /// at once and then every `heartbeat`, with the `load` of the moment, and refreshes the
    /// cluster-size gauge. A failed heartbeat is logged and the task carries on; three in a
    /// row and the other nodes stop listing this one until it succeeds again.
    ///
    /// Must be called within a Tokio runtime.
    pub fn start(
        redis: Redis,
        info: NodeInfo,
        heartbeat: Duration,
        load: impl Fn() -> NodeLoad + Send + Sync + 'static,
    ) -> Self {
        let heartbeat = heartbeat.max(Duration::from_millis(1));
        let node = Arc::new(Node {
            key: redis.key(format_args!("node:{}", info.id)),
            nodes_key: redis.key("nodes"),
            ttl: heartbeat * 3,
            started_at: now(),
            load: Arc::new(load),
            redis: Some(redis),
            info,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(beat(Arc::clone(&node), heartbeat, stopped));
        Self {
            inner: Arc::new(Inner {
                node,
                backend: Backend::Redis {
                    stop,
                    task: Mutex::new(Some(task)),
                },
            }),
        }
    }

    /// The registry of a node without Redis: it lists only this node, with its current load.
    pub fn single(info: NodeInfo, load: impl Fn() -> NodeLoad + Send + Sync + 'static) -> Self {
        metrics::global().redis.cluster_nodes(1);
        Self {
            inner: Arc::new(Inner {
                node: Arc::new(Node {
                    key: String::new(),
                    nodes_key: String::new(),
                    ttl: Duration::ZERO,
                    started_at: now(),
                    load: Arc::new(load),
                    redis: None,
                    info,
                }),
                backend: Backend::Single,
            }),
        }
    }

    /// This node.
    #[must_use]
    pub fn info(&self) -> &NodeInfo {
        &self.inner.node.info
    }

    /// The live nodes, sorted by id. With Redis: every node whose record has not expired (ids
    /// found without a record are unlisted on the way); without: this node.
    ///
    /// # Errors
    /// When Redis does not answer ([`RedisError::is_unavailable`]) or answers unexpectedly.
    pub async fn live_nodes(&self) -> Result<Vec<NodeRecord>, RedisError> {
        match &self.inner.node.redis {
            Some(redis) => live_nodes(redis, &self.inner.node).await,
            None => Ok(vec![self.inner.node.record()]),
        }
    }

    /// Leaves the cluster, on a graceful shutdown: stops the heartbeat (after the beat in
    /// progress, so it cannot bring the record back) and deletes the record. Calling it again
    /// only deletes the record again.
    ///
    /// # Errors
    /// When Redis does not answer; the record then expires by itself.
    pub async fn deregister(&self) -> Result<(), RedisError> {
        let Backend::Redis { stop, task } = &self.inner.backend else {
            return Ok(());
        };
        let _ = stop.send(true);
        let task = task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let node = &self.inner.node;
        let Some(redis) = &node.redis else {
            return Ok(());
        };
        redis
            .script::<i64>(
                "node_deregister",
                Idempotence::Write,
                &DEREGISTER,
                vec![node.key.clone(), node.nodes_key.clone()],
                vec![node.info.id.as_str().into()],
            )
            .await?;
        tracing::info!(node = %node.info.id, "left the cluster");
        Ok(())
    }
}

impl Drop for Inner {
    /// Stops heartbeating without deregistering: the record expires by itself.
    fn drop(&mut self) {
        if let Backend::Redis { task, .. } = &self.backend
            && let Some(task) = task.lock().take()
        {
            task.abort();
        }
    }
}

impl Node {
    fn record(&self) -> NodeRecord {
        let load = (self.load)();
        NodeRecord {
            id: self.info.id.clone(),
            address: self.info.address.clone(),
            version: self.info.version.clone(),
            connections: load.connections,
            in_flight: load.in_flight_requests,
            started_at: self.started_at.clone(),
            last_seen: now(),
        }
    }

    /// Writes the record and lists the id.
    async fn beat(&self, redis: &Redis) -> Result<(), RedisError> {
        let record = serde_json::to_string(&self.record())
            .map_err(|error| RedisError::Unexpected(format!("node record: {error}")))?;
        let ttl_ms = u64::try_from(self.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        redis
            .script::<i64>(
                "node_heartbeat",
                Idempotence::Write,
                &HEARTBEAT,
                vec![self.key.clone(), self.nodes_key.clone()],
                vec![
                    record.into(),
                    ttl_ms.to_string().into(),
                    self.info.id.as_str().into(),
                ],
            )
            .await?;
        Ok(())
    }
}

/// The heartbeat task: a beat at once, then one per `heartbeat`, until told to stop.
async fn beat(node: Arc<Node>, heartbeat: Duration, mut stop: watch::Receiver<bool>) {
    let Some(redis) = node.redis.clone() else {
        return;
    };
    let mut ticks = tokio::time::interval(heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            // A dropped sender counts as a stop.
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        match node.beat(&redis).await {
            Ok(()) => {
                if failing {
                    tracing::info!(node = %node.info.id, "node heartbeat restored");
                    failing = false;
                }
            }
            Err(error) => {
                // Logged once per outage, not once per beat.
                if !failing {
                    tracing::warn!(node = %node.info.id, %error, "node heartbeat failed; retrying every beat");
                    failing = true;
                }
                continue;
            }
        }
        match live_nodes(&redis, &node).await {
            Ok(nodes) => metrics::global()
                .redis
                .cluster_nodes(u64::try_from(nodes.len()).unwrap_or(u64::MAX)),
            Err(error) => tracing::debug!(%error, "cannot list the nodes"),
        }
    }
}

/// Reads the listed ids and their records; unlists the ids without one.
async fn live_nodes(redis: &Redis, node: &Node) -> Result<Vec<NodeRecord>, RedisError> {
    let nodes_key = node.nodes_key.as_str();
    let mut ids: Vec<String> = redis
        .read("node_members", |client| async move {
            client.smembers(nodes_key).await
        })
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    ids.sort_unstable();
    let keys: Vec<String> = ids
        .iter()
        .map(|id| redis.key(format_args!("node:{id}")))
        .collect();
    let values: Vec<Option<String>> = redis
        .read("node_records", |client| {
            let keys = keys.clone();
            async move { client.mget(keys).await }
        })
        .await?;
    let mut live = Vec::with_capacity(ids.len());
    let mut dead = Vec::new();
    for ((id, key), value) in ids.into_iter().zip(keys).zip(values) {
        match value {
            None => dead.push((id, key)),
            Some(json) => match serde_json::from_str::<NodeRecord>(&json) {
                Ok(record) => live.push(record),
                Err(error) => {
                    tracing::warn!(node = %id, %error, "unreadable node record; not listed");
                }
            },
        }
    }
    if !dead.is_empty() {
        let mut keys = vec![node.nodes_key.clone()];
        let mut args = Vec::with_capacity(dead.len());
        for (id, key) in dead {
            keys.push(key);
            args.push(id.into());
        }
        match redis
            .script::<i64>("node_prune", Idempotence::Write, &PRUNE, keys, args)
            .await
        {
            Ok(removed) if removed > 0 => {
                tracing::info!(removed, "unlisted nodes whose records expired");
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "cannot unlist expired nodes"),
        }
    }
    live.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(live)
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::redis::RedisSettings;
    use petstore_testkit::redis::{LocalRedis, Persistence};

    /// A hang guard for waits that must end; never a timing assertion.
    const GUARD: Duration = Duration::from_secs(20);

    async fn connect(prefix: &str) -> Redis {
        let mut settings = RedisSettings::new(LocalRedis::shared().url());
        settings.prefix = prefix.to_owned();
        Redis::connect(settings).await.expect("connects")
    }

    fn info(id: &str) -> NodeInfo {
        NodeInfo {
            id: id.to_owned(),
            address: format!("{id}.internal:8080"),
            version: "1.2.3".to_owned(),
        }
    }

    fn ids(records: &[NodeRecord]) -> Vec<&str> {
        records.iter().map(|record| record.id.as_str()).collect()
    }

    /// Polls `registry` until its list of ids is `expected`.
    async fn until_listed(registry: &NodeRegistry, expected: &[&str]) -> Vec<NodeRecord> {
        let deadline = Instant::now() + GUARD;
        loop {
            let nodes = registry.live_nodes().await.expect("lists");
            if ids(&nodes) == expected {
                return nodes;
            }
            assert!(
                Instant::now() < deadline,
                "listed {:?}, expected {expected:?}",
                ids(&nodes)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn prefix() -> String {
        format!("test-{}", uuid::Uuid::new_v4().simple())
    }

    #[tokio::test]
    async fn two_nodes_see_each_other_with_their_load() {
        let prefix = prefix();
        let heartbeat = Duration::from_millis(100);
        let a = NodeRegistry::start(connect(&prefix).await, info("node-a"), heartbeat, || {
            NodeLoad {
                connections: 7,
                in_flight_requests: 2,
            }
        });
        let b = NodeRegistry::start(
            connect(&prefix).await,
            info("node-b"),
            heartbeat,
            NodeLoad::default,
        );
        until_listed(&b, &["node-a", "node-b"]).await;
        let nodes = until_listed(&a, &["node-a", "node-b"]).await;
        let record = &nodes[0];
        assert_eq!(record.address, "node-a.internal:8080");
        assert_eq!(record.version, "1.2.3");
        assert_eq!(record.connections, 7);
        assert_eq!(record.in_flight, 2);
        assert!(record.started_at <= record.last_seen, "{record:?}");
        assert!(
            chrono::DateTime::parse_from_rfc3339(&record.last_seen).is_ok(),
            "{record:?}"
        );
        // The record's JSON is camelCase.
        let json = serde_json::to_value(record).expect("serializes");
        for field in [
            "id",
            "address",
            "version",
            "connections",
            "inFlight",
            "startedAt",
            "lastSeen",
        ] {
            assert!(json.get(field).is_some(), "{field} in {json}");
        }
        a.deregister().await.expect("deregisters");
        b.deregister().await.expect("deregisters");
    }

    #[tokio::test]
    async fn a_node_that_stops_beating_drops_out_and_is_unlisted() {
        let prefix = prefix();
        let heartbeat = Duration::from_millis(100);
        let a = NodeRegistry::start(
            connect(&prefix).await,
            info("node-a"),
            heartbeat,
            NodeLoad::default,
        );
        let b = NodeRegistry::start(
            connect(&prefix).await,
            info("node-b"),
            heartbeat,
            NodeLoad::default,
        );
        until_listed(&a, &["node-a", "node-b"]).await;

        // Dropping the registry stops its heartbeat without deregistering: a crash.
        drop(b);
        until_listed(&a, &["node-a"]).await;
        // Its id was unlisted on the way.
        let redis = connect(&prefix).await;
        let nodes_key = redis.key("nodes");
        let members: Vec<String> = redis
            .read("smembers", |client| {
                let key = nodes_key.clone();
                async move { client.smembers(key).await }
            })
            .await
            .expect("reads");
        assert_eq!(members, vec!["node-a".to_owned()]);
        a.deregister().await.expect("deregisters");
    }

    #[tokio::test]
    async fn deregister_removes_a_node_at_once() {
        let prefix = prefix();
        // A long heartbeat: the record would outlive the test if it were not deleted.
        let heartbeat = Duration::from_secs(60);
        let a = NodeRegistry::start(
            connect(&prefix).await,
            info("node-a"),
            heartbeat,
            NodeLoad::default,
        );
        let b = NodeRegistry::start(
            connect(&prefix).await,
            info("node-b"),
            heartbeat,
            NodeLoad::default,
        );
        until_listed(&a, &["node-a", "node-b"]).await;
        b.deregister().await.expect("deregisters");
        assert_eq!(ids(&a.live_nodes().await.expect("lists")), ["node-a"]);
        // Again is harmless.
        b.deregister().await.expect("deregisters again");
        a.deregister().await.expect("deregisters");
        assert!(a.live_nodes().await.expect("lists").is_empty());
    }

    #[tokio::test]
    async fn a_single_node_lists_itself() {
        let registry = NodeRegistry::single(info("alone"), || NodeLoad {
            connections: 3,
            in_flight_requests: 1,
        });
        let nodes = registry.live_nodes().await.expect("lists");
        assert_eq!(ids(&nodes), ["alone"]);
        assert_eq!(nodes[0].connections, 3);
        assert_eq!(nodes[0].in_flight, 1);
        registry.deregister().await.expect("nothing to do");
    }

    #[tokio::test]
    async fn listing_fails_as_unavailable_while_redis_is_down() {
        let mut server = LocalRedis::start(Persistence::None).expect("redis-server");
        let mut settings = RedisSettings::new(server.url());
        settings.prefix = prefix();
        settings.command_timeout = Duration::from_millis(300);
        settings.read_retries = 0;
        let redis = Redis::connect(settings).await.expect("connects");
        let registry = NodeRegistry::start(
            redis,
            info("node-a"),
            Duration::from_millis(100),
            NodeLoad::default,
        );
        until_listed(&registry, &["node-a"]).await;
        server.kill();
        let error = registry.live_nodes().await.expect_err("redis is down");
        assert!(error.is_unavailable(), "{error:?}");
        // The heartbeat task carries on and re-registers once Redis is back (the records
        // were lost with the server).
        server.restart().expect("redis-server comes back");
        let deadline = Instant::now() + GUARD;
        loop {
            if let Ok(nodes) = registry.live_nodes().await
                && ids(&nodes) == ["node-a"]
            {
                break;
            }
            assert!(Instant::now() < deadline, "the node never re-registered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
