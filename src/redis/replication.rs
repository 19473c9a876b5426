//! Writes a client is told about, confirmed by replicas first when the deployment asks for it.
//!
//! Redis replicates asynchronously: a primary answers a write before any replica has it, so a
//! primary that dies right after answering takes that write with it, and the replica Sentinel
//! promotes never had it. With `--redis-wait-replicas N` every write whose success a client
//! hears of (a store step, an idempotency record, a refresh-token rotation, a revocation) is
//! followed, on the same connection, by `WAIT N timeout`: the client is answered only once N
//! replicas acknowledged everything up to that write (the replication stream is ordered, so
//! this covers the id counters the step took on other connections before it).
//!
//! **When the replicas do not confirm in time**, the write has still happened: it is on the
//! primary, readable, and will reach the replicas when they catch up. Refusing it (503) would
//! tell the client "not done, retry" about a write that is done, and a retry without an
//! idempotency key would do it twice (a 5xx answer releases the key, so even with one). So it is
//! acknowledged as what it is — applied, not confirmed replicated — counted in
//! `petstore_redis_replication_total{result="unconfirmed"}` and logged, and for as long as that
//! lasts the deployment has the guarantee of asynchronous replication, no more. The README's
//! failure section says which guarantee holds for each setting.
//!
//! **While the replicas are missing** (the usual state right after a failover with one replica:
//! the promoted replica has none until the old primary returns), waiting would only add the
//! whole timeout to every write and hold its pooled connection, and every command queued behind
//! it, that long. So after a wait that fell short, the node stops waiting: writes are
//! acknowledged at once, counted unconfirmed, and at most once per [`PROBE_INTERVAL`] a write
//! asks the primary (`INFO replication`, no blocking) how many replicas are online; once enough
//! are, writes wait again. After a reconnection (possibly to a new primary, after a failover)
//! writes ask before they wait, until one has the answer, so a primary that has no replica
//! costs no timeout.
//!
//! `WAIT` is not a transaction: a write whose connection drops after the write and before the
//! confirmation reaches the client as a failure (`UNAVAILABLE`), though it may have been applied
//! — the same as any write that timed out.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use fred::{
    clients::Client,
    interfaces::{ClientLike, ServerInterface},
    prelude::{Error as FredError, Options},
    types::{ClusterHash, FromValue, InfoKind, Value, scripts::Script},
};

use super::{Idempotence, Redis, RedisError, topology};
use crate::telemetry::metrics;

/// How many replicas must confirm a write before its client is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplicationSettings {
    /// Replicas that must acknowledge (`WAIT numreplicas`); 0 answers as soon as the primary
    /// applied the write.
    pub replicas: u32,
    /// Longest wait for them (`WAIT … timeout`); must stay below the command timeout, which
    /// bounds the write and its wait together.
    pub timeout: Duration,
}

impl ReplicationSettings {
    /// Refuses a wait that would not fit in the command timeout, which bounds the write and its
    /// wait together: every wait for a missing replica would end as a failed write instead of an
    /// unconfirmed one.
    ///
    /// # Errors
    /// [`RedisError::Config`] saying which settings clash.
    pub(super) fn check(&self, command_timeout: Duration) -> Result<(), RedisError> {
        if self.replicas > 0 && self.timeout >= command_timeout {
            return Err(RedisError::Config(format!(
                "the replica wait ({} ms) must be shorter than the Redis command timeout ({} ms), \
                 which bounds a write and its wait together",
                self.timeout.as_millis(),
                command_timeout.as_millis()
            )));
        }
        Ok(())
    }
}

/// How often a node that stopped waiting for missing replicas asks the primary whether they
/// are back.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// What the replicas said about one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// No confirmation was asked for.
    NotAsked,
    /// At least the configured number of replicas have the write.
    Confirmed,
    /// Fewer replicas than configured had the write when the wait ended; it is applied on the
    /// primary only.
    Unconfirmed {
        /// How many did.
        replicas: u32,
    },
    /// Not waited for: the primary has fewer replicas online than configured (see the module
    /// documentation). Applied on the primary only.
    NotWaited,
}

impl Confirmation {
    /// The label of `petstore_redis_replication_total`, if the write asked for replicas.
    fn label(self) -> Option<&'static str> {
        match self {
            Self::NotAsked => None,
            Self::Confirmed => Some("confirmed"),
            Self::Unconfirmed { .. } | Self::NotWaited => Some("unconfirmed"),
        }
    }
}

/// Whether this node currently waits for replicas: one per [`super::Redis`], shared by its
/// requests (and told of reconnections).
#[derive(Debug, Default)]
pub(super) struct ReplicaTracker {
    state: Mutex<Replicas>,
}

/// What a node knows of the primary's replicas.
#[derive(Debug, Clone, Copy, Default)]
enum Replicas {
    /// Enough confirmed the last write that waited: writes wait.
    #[default]
    Confirming,
    /// The connection was re-established, perhaps to another primary: writes ask first.
    Unknown,
    /// Too few: writes do not wait. When the primary was last asked.
    Missing { probed: Instant },
}

/// What a write does about its replicas.
enum Step {
    /// `WAIT` for them.
    Wait,
    /// Ask the primary whether they are back first.
    Probe,
    /// Acknowledge without waiting: they are missing.
    Skip,
}

impl ReplicaTracker {
    fn step(&self) -> Step {
        let mut state = self.state.lock();
        match *state {
            Replicas::Confirming => Step::Wait,
            // Every write asks until one has the answer: a blind wait could hold its connection
            // for the whole timeout, on a primary that has no replica.
            Replicas::Unknown => Step::Probe,
            Replicas::Missing { probed } if probed.elapsed() >= PROBE_INTERVAL => {
                // This write asks; the others keep skipping meanwhile.
                *state = Replicas::Missing {
                    probed: Instant::now(),
                };
                Step::Probe
            }
            Replicas::Missing { .. } => Step::Skip,
        }
    }

    /// A connection of the pool was re-established: the primary may be another one.
    pub(super) fn reconnected(&self) {
        let mut state = self.state.lock();
        if matches!(*state, Replicas::Confirming) {
            *state = Replicas::Unknown;
        }
    }

    /// A wait fell short, or the primary has too few replicas online: stop waiting until a
    /// probe finds them back.
    fn missing(&self, wanted: u32, replicas: u32) {
        let mut state = self.state.lock();
        if !matches!(*state, Replicas::Missing { .. }) {
            tracing::warn!(
                replicas,
                wanted,
                "too few replicas confirm writes; writes are acknowledged without waiting \
                 (unconfirmed: a failover now would lose them) until enough are online again"
            );
        }
        *state = Replicas::Missing {
            probed: Instant::now(),
        };
    }

    /// A probe found enough replicas online.
    fn back(&self, replicas: u32) {
        let mut state = self.state.lock();
        if matches!(*state, Replicas::Missing { .. }) {
            tracing::info!(
                replicas,
                "enough replicas are online again; writes wait for them"
            );
        }
        *state = Replicas::Confirming;
    }
}

impl Redis {
    /// Runs a write script whose success a client will be told about: never retried, and, with
    /// [`ReplicationSettings::replicas`] above 0, followed by `WAIT` on the same connection
    /// (see the module documentation for what an unconfirmed write means).
    ///
    /// # Errors
    /// As [`Redis::call`]; the write and its wait share the command timeout.
    pub async fn acknowledged_script<T>(
        &self,
        command: &'static str,
        script: &Script,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<T, RedisError>
    where
        T: FromValue,
    {
        let replication = self.settings().replication;
        let routing = topology::slot_routing(self.topology(), self.prefix());
        let tracker = self.replica_tracker();
        let (value, confirmation) = self
            .call(command, Idempotence::Write, |client| {
                let (keys, args, routing) = (keys.clone(), args.clone(), routing.clone());
                async move {
                    let value: T = script.evalsha_with_reload(&client, keys, args).await?;
                    if replication.replicas == 0 {
                        return Ok((value, Confirmation::NotAsked));
                    }
                    let confirmation = confirm(&client, routing, replication, tracker).await?;
                    Ok((value, confirmation))
                }
            })
            .await?;
        if let Some(label) = confirmation.label() {
            metrics::global().redis.replication(label);
        }
        if let Confirmation::Unconfirmed { replicas } = confirmation {
            tracing::debug!(
                command,
                replicas,
                wanted = replication.replicas,
                "a write was applied on the primary but not confirmed by enough replicas in time"
            );
        }
        Ok(value)
    }
}

/// Waits for the replicas after a write on `client`, unless they are known to be missing.
async fn confirm(
    client: &Client,
    routing: Option<ClusterHash>,
    replication: ReplicationSettings,
    tracker: &ReplicaTracker,
) -> Result<Confirmation, FredError> {
    // On a cluster the wait must reach the node that took the write: the one holding the
    // prefix's slot.
    let options = Options {
        cluster_hash: routing,
        ..Options::default()
    };
    let client = client.with_options(&options);
    match tracker.step() {
        Step::Wait => {}
        Step::Skip => return Ok(Confirmation::NotWaited),
        Step::Probe => {
            // The write is applied: a probe that fails must not fail it.
            let online = match client.info::<String>(Some(InfoKind::Replication)).await {
                Ok(info) => online_replicas(&info),
                Err(error) => {
                    tracing::debug!(%error, "cannot ask the primary about its replicas");
                    0
                }
            };
            if online < replication.replicas {
                tracker.missing(replication.replicas, online);
                return Ok(Confirmation::NotWaited);
            }
            tracker.back(online);
        }
    }
    let timeout = i64::try_from(replication.timeout.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let acknowledged: i64 = client
        .wait(i64::from(replication.replicas), timeout)
        .await?;
    let acknowledged = u32::try_from(acknowledged).unwrap_or(0);
    if acknowledged >= replication.replicas {
        Ok(Confirmation::Confirmed)
    } else {
        tracker.missing(replication.replicas, acknowledged);
        Ok(Confirmation::Unconfirmed {
            replicas: acknowledged,
        })
    }
}

/// Checks at start-up that the primary takes `WAIT` from this client (a `WAIT 0 0`, which
/// answers at once), so a deployment that forbids it (an ACL, a renamed command) fails to start
/// rather than failing every write after applying it; and says so when the primary has fewer
/// replicas online than writes will wait for.
///
/// # Errors
/// [`RedisError::Config`] when `WAIT` or `INFO` is refused; [`RedisError::Unreachable`] when
/// they get no answer.
pub(super) async fn verify(
    pool: &fred::clients::Pool,
    topology: &topology::Topology,
    settings: &super::RedisSettings,
) -> Result<(), RedisError> {
    if settings.replication.replicas == 0 {
        return Ok(());
    }
    let options = Options {
        cluster_hash: topology::slot_routing(topology, &settings.prefix),
        ..Options::default()
    };
    let client = pool.next().with_options(&options);
    let refused = |error: FredError| match RedisError::classify(&error) {
        RedisError::Unreachable(reason) => RedisError::Unreachable(reason),
        _ => RedisError::Config(format!(
            "--redis-wait-replicas needs WAIT and INFO on the primary: {error}"
        )),
    };
    let _: i64 = client.wait(0, 0).await.map_err(refused)?;
    let info: String = client
        .info(Some(InfoKind::Replication))
        .await
        .map_err(refused)?;
    let online = online_replicas(&info);
    if online < settings.replication.replicas {
        tracing::warn!(
            online,
            wanted = settings.replication.replicas,
            "the primary has fewer replicas online than writes wait for: writes will be \
             acknowledged unconfirmed until they are"
        );
    }
    Ok(())
}

/// Replicas a primary's `INFO replication` lists as online (`slaveN:…,state=online,…`).
fn online_replicas(info: &str) -> u32 {
    let online = info
        .lines()
        .filter(|line| line.starts_with("slave") && line.contains("state=online"))
        .count();
    u32::try_from(online).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use petstore_testkit::redis::{LocalRedis, Persistence};

    use super::*;
    use crate::redis::RedisSettings;

    fn counter_script() -> Script {
        Script::from_lua("return redis.call('INCR', KEYS[1])")
    }

    #[tokio::test]
    async fn a_confirmed_write_is_on_the_replica_when_it_is_acknowledged() {
        let primary = LocalRedis::start(Persistence::None).expect("primary");
        let replica =
            LocalRedis::start_replica(Persistence::None, primary.port()).expect("replica");
        let mut settings = RedisSettings::new(primary.url());
        settings.prefix = "replication-test".into();
        settings.replication = ReplicationSettings {
            replicas: 1,
            timeout: Duration::from_millis(1000),
        };
        let redis = Redis::connect(settings).await.expect("connects");
        let script = counter_script();
        let key = redis.key("counter");
        for expected in 1..=20i64 {
            let value: i64 = redis
                .acknowledged_script("test_incr", &script, vec![key.clone()], vec![])
                .await
                .expect("the write");
            assert_eq!(value, expected);
            // Read from the replica right away: the WAIT made sure it is there.
            assert_eq!(
                replica.get(&key).as_deref(),
                Some(expected.to_string().as_str())
            );
        }
    }

    #[tokio::test]
    async fn a_primary_that_refuses_wait_stops_the_start() {
        let primary = LocalRedis::start(Persistence::None).expect("primary");
        let denied = primary
            .command(&["ACL", "SETUSER", "default", "-wait"])
            .expect("ACL SETUSER");
        assert_eq!(denied.text(), "OK");
        let mut settings = RedisSettings::new(primary.url());
        settings.replication = ReplicationSettings {
            replicas: 1,
            timeout: Duration::from_millis(100),
        };
        let error = Redis::connect(settings).await.expect_err("refused");
        assert!(matches!(error, RedisError::Config(_)), "{error:?}");
        assert!(error.to_string().contains("WAIT"), "{error}");
    }

    #[test]
    fn the_tracker_waits_asks_after_a_reconnection_and_skips_while_replicas_are_missing() {
        let tracker = ReplicaTracker::default();
        assert!(matches!(tracker.step(), Step::Wait));
        // A reconnection: writes ask until one has the answer.
        tracker.reconnected();
        assert!(matches!(tracker.step(), Step::Probe));
        assert!(matches!(tracker.step(), Step::Probe));
        tracker.back(1);
        assert!(matches!(tracker.step(), Step::Wait));
        // Too few replicas: no waiting, and no asking again within the probe interval.
        tracker.missing(1, 0);
        assert!(matches!(tracker.step(), Step::Skip));
        // A reconnection while they are missing changes nothing: the probes go on.
        tracker.reconnected();
        assert!(matches!(tracker.step(), Step::Skip));
        *tracker.state.lock() = Replicas::Missing {
            probed: Instant::now() - PROBE_INTERVAL,
        };
        assert!(matches!(tracker.step(), Step::Probe));
        assert!(matches!(tracker.step(), Step::Skip));
        tracker.back(1);
        assert!(matches!(tracker.step(), Step::Wait));
    }

    #[test]
    fn online_replicas_are_counted_from_info() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
                    slave0:ip=127.0.0.1,port=7001,state=online,offset=10,lag=0\r\n\
                    slave1:ip=127.0.0.1,port=7002,state=wait_bgsave,offset=0,lag=0\r\n\
                    master_failover_state:no-failover\r\n";
        assert_eq!(online_replicas(info), 1);
        assert_eq!(online_replicas("role:master\r\nconnected_slaves:0\r\n"), 0);
    }

    #[tokio::test]
    async fn without_the_replica_a_write_is_applied_and_acknowledged_after_the_wait() {
        let primary = LocalRedis::start(Persistence::None).expect("primary");
        let mut settings = RedisSettings::new(primary.url());
        settings.prefix = "replication-test".into();
        settings.replication = ReplicationSettings {
            replicas: 1,
            timeout: Duration::from_millis(100),
        };
        let redis = Redis::connect(settings).await.expect("connects");
        let key = redis.key("counter");
        let started = std::time::Instant::now();
        let value: i64 = redis
            .acknowledged_script("test_incr", &counter_script(), vec![key.clone()], vec![])
            .await
            .expect("applied, so acknowledged");
        assert_eq!(value, 1);
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "waited for the replica the whole timeout"
        );
        assert_eq!(
            primary.get(&key).as_deref(),
            Some("1"),
            "applied on the primary"
        );

        // The replicas are missing: the next writes do not wait for them.
        let started = std::time::Instant::now();
        for expected in 2..=5i64 {
            let value: i64 = redis
                .acknowledged_script("test_incr", &counter_script(), vec![key.clone()], vec![])
                .await
                .expect("applied, so acknowledged");
            assert_eq!(value, expected);
        }
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "no wait while no replica is online: {:?}",
            started.elapsed()
        );

        // A replica comes: within a probe interval, writes wait for it again.
        let replica =
            LocalRedis::start_replica(Persistence::None, primary.port()).expect("replica");
        tokio::time::sleep(PROBE_INTERVAL).await;
        for _ in 0..2 {
            let value: i64 = redis
                .acknowledged_script("test_incr", &counter_script(), vec![key.clone()], vec![])
                .await
                .expect("the write");
            assert_eq!(
                replica.get(&key).as_deref(),
                Some(value.to_string().as_str())
            );
        }
    }
}
