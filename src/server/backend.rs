//! Where a node keeps what it may share with other nodes: alone, everything lives in this
//! process; with Redis configured, the store, the events, the limits, the authentication state
//! and the idempotency records live in Redis, so any node can serve any request.
//!
//! Both backends hand the rest of the server the same trait objects; nothing above this module
//! knows which one it runs on.

use std::{sync::Arc, time::Duration};

use futures_util::future::BoxFuture;

use crate::{
    auth::{
        RedisRevocations, RedisSessionStore, RevocationList, RevocationStore,
        sessions::{MemorySessionStore, SessionStore},
    },
    cluster::{NodeInfo, NodeLoad, NodeRegistry},
    config::Config,
    events::{EventBus, Hub, LocalEventBus, RedisEventBus},
    idempotency::{IdempotencyStore, MemoryIdempotencyStore, RedisIdempotencyStore},
    limits::{
        self, ConnectionLimiter, ConnectionLimits, LocalRateLimiter, LoginThrottle, RateLimiter,
        RateQuota, RedisRateLimiter, SharedConnectionLimiter,
    },
    redis::{Redis, RedisError},
    store::{MemoryStore, RedisStore, SharedStore},
};

/// How often idle in-process rate-limit state is dropped.
const LIMITER_HOUSEKEEPING: Duration = Duration::from_secs(60);

/// The shared state of a node, as trait objects.
pub(super) struct Backend {
    pub store: SharedStore,
    pub events: Arc<dyn EventBus>,
    pub request_limiter: Arc<dyn RateLimiter>,
    pub login_throttle: Arc<LoginThrottle>,
    pub sessions: Arc<dyn SessionStore>,
    pub revocations: Arc<dyn RevocationStore>,
    /// Concurrent WebSocket connections per client address: counted on this node, or across
    /// the cluster.
    pub connections: ConnectionLimits,
    /// The answers to requests with idempotency keys: this node's, or the cluster's, so a
    /// repeat sent to another node is recognized.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// The Redis connection, when the node shares its state.
    pub redis: Option<Redis>,
    /// The Redis parts that run background tasks, stopped on shutdown.
    cluster: Option<ClusterParts>,
}

/// What the Redis backend stops on shutdown.
struct ClusterParts {
    events: Arc<RedisEventBus>,
    revocations: Arc<RedisRevocations>,
}

impl Backend {
    /// Everything in this process: one node on its own.
    pub fn in_process(config: &Config, hub: &Arc<Hub>) -> Self {
        let request_limiter = Arc::new(LocalRateLimiter::new(request_quota(config)));
        limits::spawn_housekeeping(request_limiter.clone(), LIMITER_HOUSEKEEPING);
        let login_throttle = LoginThrottle::local(
            RateQuota::per_minute(config.login_attempts_per_minute),
            RateQuota::per_minute(config.login_attempts_per_ip_per_minute),
        );
        login_throttle.spawn_housekeeping(LIMITER_HOUSEKEEPING);
        Self {
            store: Arc::new(MemoryStore::new()),
            events: Arc::new(LocalEventBus::with_history(
                hub.clone(),
                super::settings::history(config),
            )),
            request_limiter,
            login_throttle: Arc::new(login_throttle),
            sessions: Arc::new(MemorySessionStore::new()),
            revocations: Arc::new(RevocationList::new()),
            connections: ConnectionLimiter::new(config.ws_max_connections_per_ip),
            idempotency: Arc::new(MemoryIdempotencyStore::new(config.idempotency_max_keys)),
            redis: None,
            cluster: None,
        }
    }

    /// Everything shared in Redis: the node is one of a cluster.
    ///
    /// Returns once the event subscription is up and the live revocations are loaded, so the
    /// node never serves a request without knowing the logouts made before it started.
    ///
    /// `node_id` names this node's share of the per-address connection counts.
    pub async fn redis(
        config: &Config,
        hub: &Arc<Hub>,
        redis: Redis,
        node_id: &str,
    ) -> Result<Self, RedisError> {
        let events =
            RedisEventBus::start_with(redis.clone(), hub.clone(), super::settings::history(config))
                .await?;
        let revocations = RedisRevocations::start(redis.clone()).await?;
        let request_limiter = Arc::new(RedisRateLimiter::new(redis.clone(), request_quota(config)));
        let login_throttle = LoginThrottle::redis(
            redis.clone(),
            RateQuota::per_minute(config.login_attempts_per_minute),
            RateQuota::per_minute(config.login_attempts_per_ip_per_minute),
        );
        let connections = SharedConnectionLimiter::new(
            redis.clone(),
            node_id.to_owned(),
            config.ws_max_connections_per_ip,
        );
        Ok(Self {
            store: Arc::new(
                RedisStore::with_cache(
                    redis.clone(),
                    usize::try_from(config.redis_cache_entries).unwrap_or(usize::MAX),
                )
                .await?,
            ),
            events: events.clone(),
            request_limiter,
            login_throttle: Arc::new(login_throttle),
            sessions: Arc::new(RedisSessionStore::new(redis.clone())),
            revocations: revocations.clone(),
            connections,
            idempotency: Arc::new(RedisIdempotencyStore::new(redis.clone())),
            redis: Some(redis),
            cluster: Some(ClusterParts {
                events,
                revocations,
            }),
        })
    }

    /// The node registry: in Redis, heartbeating this node's record, or this node alone.
    pub fn registry(
        &self,
        config: &Config,
        info: NodeInfo,
        load: impl Fn() -> NodeLoad + Send + Sync + 'static,
    ) -> NodeRegistry {
        match &self.redis {
            Some(redis) => NodeRegistry::start(redis.clone(), info, config.node_heartbeat(), load),
            None => NodeRegistry::single(info, load),
        }
    }

    /// Stops the background tasks (the event and revocation subscriptions) and closes the
    /// Redis connections; `registry` is deregistered first, so other nodes stop listing this
    /// one at once instead of after its record expires.
    pub fn shutdown(&mut self, registry: NodeRegistry) -> BoxFuture<'static, ()> {
        let cluster = self.cluster.take();
        let redis = self.redis.clone();
        Box::pin(async move {
            if redis.is_some()
                && let Err(error) = registry.deregister().await
            {
                tracing::warn!(%error, "cannot remove this node from the registry");
            }
            if let Some(cluster) = cluster {
                cluster.events.shutdown().await;
                cluster.revocations.stop().await;
            }
            if let Some(redis) = redis {
                redis.quit().await;
            }
        })
    }
}

/// The per-client request budget.
fn request_quota(config: &Config) -> RateQuota {
    RateQuota {
        per_minute: config.rate_limit_per_minute,
        burst: config.rate_limit_burst,
    }
}
