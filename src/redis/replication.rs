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
//! `WAIT` is not a transaction: a write whose connection drops after the write and before the
//! confirmation reaches the client as a failure (`UNAVAILABLE`), though it may have been applied
//! — the same as any write that timed out.

use std::time::Duration;

use fred::{
    interfaces::{ClientLike, ServerInterface},
    prelude::Options,
    types::{FromValue, Value, scripts::Script},
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
}

impl Confirmation {
    /// The label of `petstore_redis_replication_total`, if the write waited.
    fn label(self) -> Option<&'static str> {
        match self {
            Self::NotAsked => None,
            Self::Confirmed => Some("confirmed"),
            Self::Unconfirmed { .. } => Some("unconfirmed"),
        }
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
        let (value, confirmation) = self
            .call(command, Idempotence::Write, |client| {
                let (keys, args, routing) = (keys.clone(), args.clone(), routing.clone());
                async move {
                    let value: T = script.evalsha_with_reload(&client, keys, args).await?;
                    if replication.replicas == 0 {
                        return Ok((value, Confirmation::NotAsked));
                    }
                    // On a cluster the wait must reach the node that took the write: the one
                    // holding the prefix's slot.
                    let options = Options {
                        cluster_hash: routing,
                        ..Options::default()
                    };
                    let timeout = i64::try_from(replication.timeout.as_millis())
                        .unwrap_or(i64::MAX)
                        .max(1);
                    let acknowledged: i64 = client
                        .with_options(&options)
                        .wait(i64::from(replication.replicas), timeout)
                        .await?;
                    let acknowledged = u32::try_from(acknowledged).unwrap_or(0);
                    let confirmation = if acknowledged >= replication.replicas {
                        Confirmation::Confirmed
                    } else {
                        Confirmation::Unconfirmed {
                            replicas: acknowledged,
                        }
                    };
                    Ok((value, confirmation))
                }
            })
            .await?;
        if let Some(label) = confirmation.label() {
            metrics::global().redis.replication(label);
        }
        if let Confirmation::Unconfirmed { replicas } = confirmation {
            tracing::warn!(
                command,
                replicas,
                wanted = replication.replicas,
                timeout_ms = replication.timeout.as_millis() as u64,
                "a write was applied on the primary but not confirmed by enough replicas in time; \
                 it is acknowledged, and a failover before the replicas catch up would lose it"
            );
        }
        Ok(value)
    }
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
        let replica = LocalRedis::start_replica(Persistence::None, primary.port()).expect("replica");
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
            assert_eq!(replica.get(&key).as_deref(), Some(expected.to_string().as_str()));
        }
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
        assert_eq!(primary.get(&key).as_deref(), Some("1"), "applied on the primary");
    }
}
