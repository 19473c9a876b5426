//! The connection to Redis that every Redis-backed component shares, and the one door every
//! command goes through: the circuit breaker, the state of the connections, the retry policy
//! and the metrics.
//!
//! A call never waits on a connection known to be down ([`super::links`]): while no pooled
//! connection is up it fails at once with [`RedisError::NotConnected`], and a call in flight on
//! a connection that drops fails as soon as the drop is known. A call takes at most one command
//! timeout, retries included.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
    time::Instant,
};

use fred::{
    clients::{Client, Pool, SubscriberClient},
    error::{Error as FredError, ErrorKind},
    interfaces::ClientLike,
    prelude::{Builder, Config, ReconnectPolicy},
    types::scripts::Script,
};
use rand::Rng;

use super::{
    breaker::{Admission, Breaker, BreakerSettings, BreakerState},
    links::Links,
    replication::{ReplicaTracker, ReplicationSettings},
    topology::{self, Topology},
};
use crate::telemetry::metrics;

/// How to reach Redis and how patient to be with it.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]`, `redis-sentinel://…` or `redis-cluster://…`
    /// (see [`super::topology`]).
    pub url: String,
    /// Prepended to every key (`{prefix}:pet:1`), so several deployments (or test runs) can
    /// share one Redis without seeing each other's data.
    pub prefix: String,
    /// Connections in the pool; commands are spread over them round robin.
    pub pool_size: usize,
    /// How long one call may take before it counts as failed, retries included.
    pub command_timeout: Duration,
    /// How often a subscriber connection (which otherwise only listens) is sent a `PING`, so
    /// that one gone silent is found and replaced ([`super::watchdog`]).
    pub ping_interval: Duration,
    /// How long to wait for Redis at start-up.
    pub connect_timeout: Duration,
    /// Extra attempts for idempotent reads after a connection error, while another connection
    /// is up and the command timeout allows.
    pub read_retries: u32,
    /// When the breaker opens and how long it stays open.
    pub breaker: BreakerSettings,
    /// Replicas that must confirm a write before its client is answered (none by default).
    pub replication: ReplicationSettings,
}

impl RedisSettings {
    /// Settings with the defaults for everything but the URL.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "petstore".to_owned(),
            pool_size: 4,
            command_timeout: Duration::from_millis(2000),
            ping_interval: Duration::from_millis(1000),
            connect_timeout: Duration::from_secs(10),
            read_retries: 2,
            breaker: BreakerSettings::default(),
            replication: ReplicationSettings::default(),
        }
    }
}

/// Why a Redis call did not produce an answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisError {
    /// The breaker is open: Redis failed repeatedly and is given time to recover.
    #[error("redis is unavailable (circuit open, retry in {}s)", retry_after_secs(*.retry_after))]
    CircuitOpen {
        /// Time until the breaker lets a trial call through.
        retry_after: Duration,
    },
    /// No connection to Redis is up (it dropped and the client is reconnecting): the call was
    /// not sent.
    #[error("redis is unreachable: no connection is up")]
    NotConnected,
    /// Redis could not be reached or did not answer in time.
    #[error("redis is unreachable: {0}")]
    Unreachable(String),
    /// Redis answered with an error or an answer of an unexpected shape: a bug or corrupt
    /// data, not an outage.
    #[error("redis answered unexpectedly: {0}")]
    Unexpected(String),
    /// The settings are unusable (a malformed URL).
    #[error("redis settings: {0}")]
    Config(String),
}

impl RedisError {
    /// Whether the caller may retry later (an outage rather than a bug).
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::CircuitOpen { .. } | Self::NotConnected | Self::Unreachable(_)
        )
    }

    /// Whole seconds a client should wait before retrying: the breaker's cool-down left, or one
    /// second.
    #[must_use]
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Self::CircuitOpen { retry_after } => retry_after_secs(*retry_after),
            _ => 1,
        }
    }

    /// Sorts a fred error: outages (connections, timeouts, a server that is loading or out of
    /// memory) versus everything else.
    ///
    /// fred reports some connection failures with kind `Unknown` too ("Too many failed write
    /// attempts.", "Missing expected connection."), the kind it also gives Redis's `ERR`
    /// replies. What tells them apart is the text: an error *reply* from Redis starts with its
    /// upper-case error code (`ERR`, `WRONGTYPE`, `NOSCRIPT`, …), a client-side failure does not.
    pub(super) fn classify(error: &FredError) -> Self {
        match error.kind() {
            ErrorKind::IO
            | ErrorKind::Timeout
            | ErrorKind::Canceled
            | ErrorKind::Backpressure
            | ErrorKind::Routing
            | ErrorKind::Cluster
            // No sentinel answered, or none knows a primary yet (a failover under way).
            | ErrorKind::Sentinel => Self::Unreachable(error.to_string()),
            ErrorKind::Unknown | ErrorKind::InvalidArgument | ErrorKind::InvalidCommand => {
                let details = error.details();
                let code = details.split_whitespace().next().unwrap_or_default();
                let is_reply = !code.is_empty()
                    && code
                        .bytes()
                        .all(|byte| byte.is_ascii_uppercase() || byte == b'_');
                let outage_reply = [
                    "LOADING",
                    "MASTERDOWN",
                    "READONLY",
                    "OOM",
                    "BUSY",
                    "TRYAGAIN",
                    // `min-replicas-to-write` not met: the primary refuses writes.
                    "NOREPLICAS",
                ]
                .contains(&code);
                if outage_reply || (!is_reply && *error.kind() == ErrorKind::Unknown) {
                    Self::Unreachable(error.to_string())
                } else {
                    Self::Unexpected(error.to_string())
                }
            }
            _ => Self::Unexpected(error.to_string()),
        }
    }
}

fn retry_after_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// Whether a call may be repeated when it fails on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotence {
    /// A read: retried with exponential backoff and jitter after a connection error, while
    /// another connection is up, within the command timeout.
    Read,
    /// A write: never retried, since a call that timed out may have been applied.
    Write,
}

/// The shared Redis connection: a pool of multiplexed connections behind one circuit breaker.
///
/// Cheap to clone. Every command goes through [`Redis::call`] (or [`Redis::read`] /
/// [`Redis::write`]), so the breaker sees every outcome and the metrics every command.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: Config,
    topology: Topology,
    settings: RedisSettings,
    breaker: Arc<Breaker>,
    links: Links,
    replicas: Arc<ReplicaTracker>,
    /// Reconnections of pooled connections so far.
    reconnections: Arc<AtomicU64>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.inner.settings.prefix)
            .field("breaker", &self.inner.breaker.state())
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Connects the pool; fails when Redis cannot be reached within the connect timeout.
    ///
    /// Once connected, the pool reconnects by itself (exponential backoff up to one second)
    /// whenever a connection drops; calls made meanwhile fail at once (and open the breaker),
    /// and the breaker tries Redis again as soon as a connection is back.
    ///
    /// # Errors
    /// [`RedisError::Config`] for a malformed URL, settings that do not fit the deployment (see
    /// [`super::topology`]) or a replica wait as long as the command timeout;
    /// [`RedisError::Unreachable`] when Redis does not answer in time.
    pub async fn connect(settings: RedisSettings) -> Result<Self, RedisError> {
        let target = topology::parse(&settings.url, &settings.prefix)?;
        settings.replication.check(settings.command_timeout)?;
        let config = target.config.clone();
        let pool = builder(&config, &settings)
            .build_pool(settings.pool_size.max(1))
            .map_err(|error| RedisError::Config(error.to_string()))?;
        match tokio::time::timeout(settings.connect_timeout, pool.init()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(RedisError::Unreachable(error.to_string())),
            Err(_) => {
                let _ = pool.quit().await;
                return Err(RedisError::Unreachable(format!(
                    "no connection within {} ms",
                    settings.connect_timeout.as_millis()
                )));
            }
        }
        let checked = match topology::verify(&pool, &target).await {
            Ok(()) => super::replication::verify(&pool, &target.topology, &settings).await,
            Err(error) => Err(error),
        };
        if let Err(error) = checked {
            let _ = pool.quit().await;
            return Err(error);
        }
        let breaker = Arc::new(Breaker::new("redis", settings.breaker));
        let replicas = Arc::new(ReplicaTracker::default());
        let (restored, reconnected) = (Arc::clone(&breaker), Arc::clone(&replicas));
        let reconnections = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&reconnections);
        let links = Links::watch(&pool, move || {
            restored.connection_restored();
            // Perhaps to a new primary (a failover): its replicas are not known yet.
            reconnected.reconnected();
            counted.fetch_add(1, Ordering::Release);
        });
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                config,
                topology: target.topology,
                settings,
                breaker,
                links,
                replicas,
                reconnections,
            }),
        })
    }

    /// The key `{prefix}:{name}`.
    #[must_use]
    pub fn key(&self, name: impl std::fmt::Display) -> String {
        format!("{}:{name}", self.inner.settings.prefix)
    }

    /// The key prefix (without the trailing `:`).
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.inner.settings.prefix
    }

    /// The settings it was connected with.
    pub(super) fn settings(&self) -> &RedisSettings {
        &self.inner.settings
    }

    /// How long one call may take, retries included.
    #[must_use]
    pub fn command_timeout(&self) -> Duration {
        self.inner.settings.command_timeout
    }

    /// How long to wait for a new connection at start-up.
    #[must_use]
    pub fn connect_timeout(&self) -> Duration {
        self.inner.settings.connect_timeout
    }

    /// How many times a pooled connection was re-established so far: after a failover, a
    /// connection may have read from the old primary until it moved, so a cache of what was
    /// read starts over when this changes.
    #[must_use]
    pub fn reconnections(&self) -> u64 {
        self.inner.reconnections.load(Ordering::Acquire)
    }

    /// Whether it is connected to a Redis Cluster (keys sharded over several primaries).
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.topology, Topology::Cluster)
    }

    /// Whether writes currently wait for replicas.
    pub(super) fn replica_tracker(&self) -> &ReplicaTracker {
        &self.inner.replicas
    }

    /// The kind of deployment it is connected to.
    pub(super) fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// The circuit breaker every call goes through.
    #[must_use]
    pub fn breaker(&self) -> &Breaker {
        &self.inner.breaker
    }

    /// The breaker's state, for `/health`.
    #[must_use]
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    /// Runs an idempotent read: retried after a connection error, with exponential backoff and
    /// jitter, while another connection is up and within the command timeout.
    ///
    /// # Errors
    /// See [`Redis::call`].
    pub async fn read<T, F, Fut>(&self, command: &'static str, call: F) -> Result<T, RedisError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, FredError>>,
    {
        self.call(command, Idempotence::Read, call).await
    }

    /// Runs a write: never retried.
    ///
    /// # Errors
    /// See [`Redis::call`].
    pub async fn write<T, F, Fut>(&self, command: &'static str, call: F) -> Result<T, RedisError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, FredError>>,
    {
        self.call(command, Idempotence::Write, call).await
    }

    /// Runs a Lua script (loaded on first use with `EVALSHA`/`SCRIPT LOAD`).
    ///
    /// # Errors
    /// See [`Redis::call`].
    pub async fn script<T>(
        &self,
        command: &'static str,
        idempotence: Idempotence,
        script: &Script,
        keys: Vec<String>,
        args: Vec<fred::types::Value>,
    ) -> Result<T, RedisError>
    where
        T: fred::types::FromValue,
    {
        self.call(command, idempotence, |client| {
            let keys = keys.clone();
            let args = args.clone();
            async move { script.evalsha_with_reload(&client, keys, args).await }
        })
        .await
    }

    /// Runs `call` on a pooled connection through the breaker; `command` names it in metrics.
    ///
    /// The whole call, retries included, takes at most the command timeout.
    ///
    /// # Errors
    /// [`RedisError::CircuitOpen`] at once while the breaker is open;
    /// [`RedisError::NotConnected`] at once while no connection is up;
    /// [`RedisError::Unreachable`] when Redis did not answer (after the retries, for a read);
    /// [`RedisError::Unexpected`] when it answered with an error.
    pub async fn call<T, F, Fut>(
        &self,
        command: &'static str,
        idempotence: Idempotence,
        call: F,
    ) -> Result<T, RedisError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, FredError>>,
    {
        let started = Instant::now();
        let deadline = started + self.inner.settings.command_timeout;
        let retries = match idempotence {
            Idempotence::Read => self.inner.settings.read_retries,
            Idempotence::Write => 0,
        };
        let mut attempt = 0;
        let result = loop {
            let outcome = self.attempt(&call, deadline).await;
            let pause = backoff(attempt + 1);
            // Only a connection error is worth another try, and only on another connection
            // that is up, in the time left: a timeout has used that time up, and while no
            // connection is up a retry would only wait for the same answer.
            let retry = matches!(outcome, Err(RedisError::Unreachable(_)))
                && attempt < retries
                && Instant::now() + pause < deadline
                && self.inner.links.any_up(&self.inner.pool);
            if !retry {
                break outcome;
            }
            attempt += 1;
            metrics::global().redis.retry(command);
            tokio::time::sleep(pause).await;
        };
        metrics::global().redis.command(
            command,
            started.elapsed().as_secs_f64(),
            matches!(result, Err(ref error) if error.is_unavailable()),
        );
        result
    }

    /// One try of `call`, answered by `deadline` at the latest.
    async fn attempt<T, F, Fut>(&self, call: &F, deadline: Instant) -> Result<T, RedisError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, FredError>>,
    {
        let inner = &*self.inner;
        let permit = inner
            .breaker
            .admit()
            .map_err(|refused| RedisError::CircuitOpen {
                retry_after: refused.retry_after,
            })?;
        let trial = permit.admission() == Admission::Trial;
        let picked = inner
            .links
            .pick(&inner.pool)
            .and_then(|(index, client)| Some((index, client, inner.links.lost(index)?)));
        let Some((index, client, lost)) = picked else {
            permit.failure();
            return Err(RedisError::NotConnected);
        };
        let mut lost = std::pin::pin!(lost);
        lost.as_mut().enable();
        let mut timed_out = false;
        let outcome = if inner.links.is_up(index, &client) {
            let answer = tokio::time::timeout_at(deadline.into(), call(client));
            tokio::select! {
                biased;
                answer = answer => match answer {
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(error)) => Err(RedisError::classify(&error)),
                    Err(_) => {
                        timed_out = true;
                        Err(RedisError::Unreachable(format!(
                            "no answer within {} ms",
                            inner.settings.command_timeout.as_millis()
                        )))
                    }
                },
                // The connection dropped under the call: fred would hold it until it has
                // reconnected.
                () = lost => Err(RedisError::Unreachable("the connection was lost".to_owned())),
            }
        } else {
            // It went down between the pick and now.
            Err(RedisError::NotConnected)
        };
        if outcome.as_ref().is_err_and(RedisError::is_unavailable) {
            if trial && timed_out {
                // After the failures that opened the breaker, the trial too got no answer on a
                // connection that looks up: it may be dead without having been closed.
                inner.links.reconnect_all(&inner.pool);
            }
            permit.failure();
        } else {
            // Any answer, errors included, shows Redis is there.
            permit.success();
            if trial {
                tracing::info!("redis answered the circuit breaker's trial call");
            }
        }
        outcome
    }

    /// `PING` through the breaker (for `/ready` and `/health`).
    ///
    /// # Errors
    /// As [`Redis::call`].
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.write(
            "ping",
            |client| async move { client.ping::<()>(None).await },
        )
        .await
    }

    /// A new subscriber connection to the same server: a dedicated connection that keeps its
    /// channel subscriptions across reconnects.
    ///
    /// Its message queue holds 1,024 messages: fred hands messages to readers through a
    /// broadcast channel that drops the oldest ones when a reader falls behind, and its default
    /// of 32 is one short burst of events.
    ///
    /// # Errors
    /// [`RedisError::Config`] if the client cannot be built.
    pub fn subscriber(&self) -> Result<SubscriberClient, RedisError> {
        let mut builder = builder(&self.inner.config, &self.inner.settings);
        builder.with_performance_config(|performance| {
            performance.broadcast_channel_capacity = SUBSCRIBER_BUFFER;
        });
        builder
            .build_subscriber_client()
            .map_err(|error| RedisError::Config(error.to_string()))
    }

    /// Connects `subscriber` (a client from [`Redis::subscriber`]) within `limit`; on failure it
    /// is stopped (no reconnecting in the background) and the error names it as `what`.
    ///
    /// # Errors
    /// [`RedisError::Unreachable`] when it cannot connect, or not in time.
    pub async fn connect_subscriber(
        subscriber: &SubscriberClient,
        limit: Duration,
        what: &str,
    ) -> Result<(), RedisError> {
        let error = match tokio::time::timeout(limit, subscriber.init()).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("{what} did not connect within {} ms", limit.as_millis()),
        };
        let _ = subscriber.quit().await;
        Err(RedisError::Unreachable(error))
    }

    /// Starts the PING watchdog of `subscriber` (a client from [`Redis::subscriber`]), named
    /// `name` in logs: every ping interval a `PING`, and a reconnection when it is not answered
    /// within the command timeout. Abort the returned task to stop it.
    #[must_use = "the watchdog runs until its task is aborted"]
    pub fn watch_subscriber(
        &self,
        subscriber: &SubscriberClient,
        name: &'static str,
    ) -> tokio::task::JoinHandle<()> {
        super::watchdog::spawn(
            subscriber.clone(),
            self.inner.settings.ping_interval,
            self.inner.settings.command_timeout,
            name,
        )
    }

    /// Closes the pool's connections.
    pub async fn quit(&self) {
        self.inner.links.stop();
        let _ = self.inner.pool.quit().await;
    }
}

/// Messages a subscriber connection queues for its reader before the oldest are dropped.
const SUBSCRIBER_BUFFER: usize = 1024;

/// Client settings shared by the pool and the subscribers: reconnect for ever with exponential
/// backoff capped at one second, and never resend a command on a new connection (a write that
/// may have been applied must not be applied twice; reads are retried above, deliberately).
fn builder(config: &Config, settings: &RedisSettings) -> Builder {
    let mut builder = Builder::from_config(config.clone());
    builder
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 1000, 2))
        .with_connection_config(|connection| {
            connection.connection_timeout = settings.command_timeout;
            connection.internal_command_timeout = settings.command_timeout;
            connection.max_command_attempts = 1;
        })
        .with_performance_config(|performance| {
            performance.default_command_timeout = settings.command_timeout;
        });
    builder
}

/// The pause before retry number `attempt` (1-based): 20 ms doubled per attempt, with full
/// jitter, so retries from many requests do not arrive together.
fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = 20u64 << attempt.min(6).saturating_sub(1);
    Duration::from_millis(rand::thread_rng().gen_range(ceiling_ms / 2..=ceiling_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter() {
        for _ in 0..100 {
            let first = backoff(1);
            assert!((10..=20).contains(&(first.as_millis() as u64)), "{first:?}");
            let third = backoff(3);
            assert!((40..=80).contains(&(third.as_millis() as u64)), "{third:?}");
            assert!(backoff(30) <= Duration::from_millis(640));
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let open = RedisError::CircuitOpen {
            retry_after: Duration::from_millis(1200),
        };
        assert_eq!(open.retry_after_secs(), 2);
        assert_eq!(RedisError::Unreachable("x".into()).retry_after_secs(), 1);
        assert!(open.is_unavailable());
        assert!(!RedisError::Unexpected("WRONGTYPE".into()).is_unavailable());
    }

    #[tokio::test]
    async fn the_breaker_opens_while_redis_is_down_and_closes_when_it_is_back() {
        let mut server =
            petstore_testkit::redis::LocalRedis::start(petstore_testkit::redis::Persistence::None)
                .expect("redis-server");
        let mut settings = RedisSettings::new(server.url());
        settings.command_timeout = Duration::from_millis(300);
        settings.breaker = BreakerSettings {
            failure_threshold: 2,
            cool_down: Duration::from_millis(500),
        };
        settings.read_retries = 0;
        let redis = Redis::connect(settings).await.expect("connects");
        redis.ping().await.expect("answers");

        server.kill();
        for _ in 0..2 {
            let error = redis.ping().await.expect_err("redis is down");
            assert!(
                matches!(error, RedisError::NotConnected | RedisError::Unreachable(_)),
                "{error:?}"
            );
        }
        assert_eq!(redis.breaker_state(), BreakerState::Open);
        let refused_at = Instant::now();
        let error = redis.ping().await.expect_err("the breaker refuses");
        assert!(matches!(error, RedisError::CircuitOpen { .. }), "{error:?}");
        assert!(
            refused_at.elapsed() < Duration::from_millis(100),
            "fails fast"
        );
        assert_eq!(error.retry_after_secs(), 1);

        server.restart().expect("redis-server comes back");
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.ping().await.is_err() {
            assert!(Instant::now() < deadline, "the breaker never closed again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(redis.breaker_state(), BreakerState::Closed);
    }

    /// A hang guard for waits that must end; never a timing assertion.
    const GUARD: Duration = Duration::from_secs(20);

    /// Polls `PING` until it succeeds; returns how long that took.
    async fn until_answering(redis: &Redis) -> Duration {
        let started = Instant::now();
        while redis.ping().await.is_err() {
            assert!(started.elapsed() < GUARD, "redis never answered again");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        started.elapsed()
    }

    #[tokio::test]
    async fn while_no_connection_is_up_calls_fail_at_once_instead_of_waiting_for_the_timeout() {
        let mut server =
            petstore_testkit::redis::LocalRedis::start(petstore_testkit::redis::Persistence::None)
                .expect("redis-server");
        let mut settings = RedisSettings::new(server.url());
        // Far longer than any bound below: a call that waited for it would be plain to see.
        settings.command_timeout = Duration::from_secs(10);
        settings.breaker = BreakerSettings {
            failure_threshold: 1000,
            cool_down: Duration::from_secs(60),
        };
        let redis = Redis::connect(settings).await.expect("connects");
        redis.ping().await.expect("answers");

        server.kill();
        for n in 0..20 {
            let started = Instant::now();
            // A read: retries must not multiply the wait either.
            let error = redis
                .read("get", |client| async move {
                    fred::interfaces::KeysInterface::get::<Option<String>, _>(&client, "k").await
                })
                .await
                .expect_err("redis is down");
            assert!(error.is_unavailable(), "{error:?}");
            assert_eq!(error.retry_after_secs(), 1);
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "call {n} took {:?} ({error})",
                started.elapsed()
            );
        }
        // The breaker saw the failures (it stays closed only for its high threshold).
        assert_eq!(redis.breaker_state(), BreakerState::Closed);

        server.restart().expect("redis-server comes back");
        until_answering(&redis).await;
    }

    #[tokio::test]
    async fn the_breaker_tries_again_as_soon_as_the_connection_is_back() {
        let mut server =
            petstore_testkit::redis::LocalRedis::start(petstore_testkit::redis::Persistence::None)
                .expect("redis-server");
        let mut settings = RedisSettings::new(server.url());
        settings.breaker = BreakerSettings {
            failure_threshold: 1,
            // Longer than the test's guard: only the reconnection can end it early.
            cool_down: Duration::from_secs(60),
        };
        let redis = Redis::connect(settings).await.expect("connects");
        server.kill();
        let _ = redis.ping().await.expect_err("redis is down");
        assert_eq!(redis.breaker_state(), BreakerState::Open);

        server.restart().expect("redis-server comes back");
        until_answering(&redis).await;
        assert_eq!(redis.breaker_state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_trial_call_cancelled_mid_flight_does_not_keep_the_breaker_half_open() {
        let mut settings = RedisSettings::new(petstore_testkit::redis::LocalRedis::shared().url());
        settings.breaker = BreakerSettings {
            failure_threshold: 1,
            cool_down: Duration::from_millis(50),
        };
        let redis = Redis::connect(settings).await.expect("connects");
        // One failure opens it.
        let failed = redis
            .write("fail", |_client| async {
                Err::<(), _>(FredError::new(ErrorKind::IO, "connection reset"))
            })
            .await;
        assert!(
            matches!(failed, Err(RedisError::Unreachable(_))),
            "{failed:?}"
        );
        assert_eq!(redis.breaker_state(), BreakerState::Open);
        tokio::time::sleep(Duration::from_millis(60)).await;

        // The trial goes out and its caller goes away before any answer: a client that hung
        // up, a probe that timed out.
        let trial = redis.write("hang", |_client| {
            std::future::pending::<Result<(), FredError>>()
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(50), trial)
                .await
                .is_err(),
            "the trial hangs"
        );
        assert_eq!(redis.breaker_state(), BreakerState::HalfOpen);

        // The next call takes the trial, and closes the breaker.
        redis.ping().await.expect("the next call is let through");
        assert_eq!(redis.breaker_state(), BreakerState::Closed);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_that_went_silent_are_replaced_after_the_trial_gets_no_answer() {
        let server =
            petstore_testkit::redis::LocalRedis::start(petstore_testkit::redis::Persistence::None)
                .expect("redis-server");
        let proxy = petstore_testkit::proxy::SilenceProxy::start(server.port()).expect("proxy");
        let mut settings = RedisSettings::new(proxy.redis_url());
        settings.command_timeout = Duration::from_millis(300);
        settings.read_retries = 0;
        settings.breaker = BreakerSettings {
            failure_threshold: 2,
            cool_down: Duration::from_millis(200),
        };
        let redis = Redis::connect(settings).await.expect("connects");
        redis.ping().await.expect("answers");

        // Every pooled connection goes half open: no error, no close, no answer.
        assert_eq!(proxy.silence_all(), 4);
        for _ in 0..2 {
            let error = redis.ping().await.expect_err("nothing answers");
            assert!(matches!(error, RedisError::Unreachable(_)), "{error:?}");
        }
        assert_eq!(redis.breaker_state(), BreakerState::Open);
        // The trial times out too; the pool reconnects, and Redis answers again.
        until_answering(&redis).await;
        assert_eq!(redis.breaker_state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn reads_and_writes_reach_the_server_under_the_prefix() {
        let mut settings = RedisSettings::new(petstore_testkit::redis::LocalRedis::shared().url());
        settings.prefix = format!("client-test-{}", uuid::Uuid::new_v4().simple());
        let redis = Redis::connect(settings).await.expect("connects");
        let key = redis.key("greeting");
        assert!(key.starts_with("client-test-") && key.ends_with(":greeting"));
        let written = key.clone();
        redis
            .write("set", move |client| {
                let key = written.clone();
                async move {
                    fred::interfaces::KeysInterface::set::<(), _, _>(
                        &client, key, "hello", None, None, false,
                    )
                    .await
                }
            })
            .await
            .expect("set");
        let read: Option<String> = redis
            .read("get", |client| {
                let key = key.clone();
                async move { fred::interfaces::KeysInterface::get(&client, key).await }
            })
            .await
            .expect("get");
        assert_eq!(read.as_deref(), Some("hello"));
    }

    #[test]
    fn outages_and_bugs_are_told_apart() {
        let io = FredError::new(ErrorKind::IO, "connection refused");
        assert!(matches!(
            RedisError::classify(&io),
            RedisError::Unreachable(_)
        ));
        let loading = FredError::new(ErrorKind::Unknown, "LOADING Redis is loading");
        assert!(matches!(
            RedisError::classify(&loading),
            RedisError::Unreachable(_)
        ));
        let wrong = FredError::new(ErrorKind::InvalidArgument, "WRONGTYPE Operation");
        assert!(matches!(
            RedisError::classify(&wrong),
            RedisError::Unexpected(_)
        ));
        let script = FredError::new(ErrorKind::Unknown, "ERR user_script:1: bad argument");
        assert!(matches!(
            RedisError::classify(&script),
            RedisError::Unexpected(_)
        ));
        // Client-side connection failures that fred reports without a specific kind.
        for text in [
            "Too many failed write attempts.",
            "Missing expected connection.",
        ] {
            let lost = FredError::new(ErrorKind::Unknown, text);
            assert!(
                matches!(RedisError::classify(&lost), RedisError::Unreachable(_)),
                "{text}"
            );
        }
        let parse = FredError::new(ErrorKind::Parse, "Could not convert to i64");
        assert!(matches!(
            RedisError::classify(&parse),
            RedisError::Unexpected(_)
        ));
    }
}
