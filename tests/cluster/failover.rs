//! Redis with a replica under Sentinel, with real processes: a primary, a replica and three
//! `redis-sentinel` processes (`petstore_testkit::sentinel`), two nodes given the sentinels'
//! URL, and the primary killed with SIGKILL under write load.
//!
//! What must hold: the nodes find the promoted replica by themselves (nobody restarts or
//! reconfigures them); requests in the gap get `503 UNAVAILABLE` quickly, never a 500 and never
//! a hang; and with `--redis-wait-replicas 1` no write that was acknowledged to its client is
//! missing afterwards. With the wait, the run goes on: the promoted replica has no replica of
//! its own, so writes are acknowledged unconfirmed (and without waiting), until the old primary
//! is brought back, the sentinels make it a replica, and writes are confirmed again. The same
//! scenario without the wait measures what asynchronous replication loses. Figures (failover
//! time, time to the first successful write, writes lost) are printed for the README; the
//! assertions on time are hang guards, not measurements.
//!
//! Skipped, saying so, when `redis-sentinel` is not installed.

use std::{
    collections::BTreeMap,
    io,
    time::{Duration, Instant},
};

use petstore_api::Topic;
use petstore_testkit::{
    app::send,
    cluster::{
        CLUSTER_GUARD, Cluster, ClusterOptions, eventually, expect_pet_created, ws_connect,
        ws_subscribe,
    },
    redis,
    sentinel::{LocalSentinelSet, SentinelTimings},
};

use crate::{
    BINARY,
    write_load::{Outcome, Record, WriteLoad, acknowledged, outcome_counts},
};

/// Concurrent writers.
const WRITERS: usize = 4;
/// The nodes' Redis command timeout in these tests: the longest a request in the gap can wait
/// for Redis before its 503.
const COMMAND_TIMEOUT_MS: u64 = 1500;
/// The nodes' replica wait, when asked for.
const WAIT_TIMEOUT_MS: u64 = 1000;
/// Longest a refusal may take: the command timeout (which bounds every call) and generous room
/// for a loaded machine. Refusals are measured at tens of milliseconds (a node knows at once
/// that its connections dropped); this is a guard against hangs, not that measurement.
const REFUSAL_GUARD: Duration = Duration::from_secs(3);

/// What one failover run measured.
struct Figures {
    /// Kill → the sentinels name the replica and it answers as a primary.
    failover: Duration,
    /// Kill → first acknowledged write sent after the kill, per node.
    first_write: Vec<Duration>,
    /// Answers by kind over the whole load.
    outcomes: BTreeMap<String, usize>,
    /// Slowest refusal.
    slowest_refusal: Duration,
    /// Writes acknowledged to their clients, and how many of them are gone.
    acknowledged: usize,
    lost: usize,
    /// Writes the nodes acknowledged without the replica's confirmation, before the kill and
    /// between the failover and the old primary's return as a replica.
    unconfirmed_before: u64,
    unconfirmed_after: u64,
    /// The old primary restarted → the nodes confirm writes again (with the wait only).
    confirmed_again: Option<Duration>,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let first_write: Vec<String> = self
            .first_write
            .iter()
            .map(|time| format!("{:.2} s", time.as_secs_f64()))
            .collect();
        write!(
            f,
            "failover {:.2} s; first acknowledged write after the kill per node: {}; answers \
             {:?}; slowest refusal {} ms; acknowledged {}, lost {}; unconfirmed before the \
             kill {}, after it {}; confirmed again {}",
            self.failover.as_secs_f64(),
            first_write.join(", "),
            self.outcomes,
            self.slowest_refusal.as_millis(),
            self.acknowledged,
            self.lost,
            self.unconfirmed_before,
            self.unconfirmed_after,
            self.confirmed_again.map_or_else(
                || "-".to_owned(),
                |time| format!(
                    "{:.2} s after the old primary's restart",
                    time.as_secs_f64()
                )
            ),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_replica_wait_the_nodes_follow_a_failover_and_lose_no_acknowledged_write() {
    let Some(figures) = failover_under_load(true).await else {
        return;
    };
    eprintln!("FIGURES failover with --redis-wait-replicas 1: {figures}");
    assert_eq!(
        figures.unconfirmed_before, 0,
        "every write before the kill waited for the replica and got it (else this run proves \
         nothing)"
    );
    assert!(
        figures.unconfirmed_after > 0,
        "with its only replica promoted, the new primary has none: writes are unconfirmed"
    );
    assert_eq!(
        figures.lost, 0,
        "acknowledged writes missing after the failover: {figures}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_replica_wait_the_nodes_follow_a_failover_and_the_loss_is_measured() {
    let Some(figures) = failover_under_load(false).await else {
        return;
    };
    // Asynchronous replication may lose what the primary acknowledged last, what the replica had
    // not received when it died; how much is the figure this run exists for. On loopback the
    // replica is a fraction of a millisecond behind and a killed process's socket buffers are
    // still delivered, so expect little or nothing: the exposure grows with the replica's lag.
    eprintln!("FIGURES failover without replica wait: {figures}");
    assert_eq!(
        figures.unconfirmed_before + figures.unconfirmed_after,
        0,
        "nothing waited, nothing unconfirmed"
    );
}

/// The scenario: Sentinel set, two nodes, write load, primary killed, nodes back on the
/// promoted replica; every check that holds with and without the wait. `None` when
/// `redis-sentinel` is missing.
async fn failover_under_load(wait: bool) -> Option<Figures> {
    let mut set = match LocalSentinelSet::start(SentinelTimings::default()) {
        Ok(set) => set,
        Err(error)
            if error.kind() == io::ErrorKind::NotFound
                && error.to_string().contains("redis-sentinel") =>
        {
            eprintln!("SKIPPED: the Sentinel failover test needs redis-sentinel: {error}");
            return None;
        }
        Err(error) => panic!("the Sentinel set did not start: {error}"),
    };
    let mut options = ClusterOptions::nodes(2)
        .redis_url(set.url())
        .env(
            "PETSTORE_REDIS_COMMAND_TIMEOUT_MS",
            COMMAND_TIMEOUT_MS.to_string(),
        )
        .env(
            "PETSTORE_REDIS_WAIT_TIMEOUT_MS",
            WAIT_TIMEOUT_MS.to_string(),
        );
    if wait {
        options = options.env("PETSTORE_REDIS_WAIT_REPLICAS", "1");
    }
    let cluster = Cluster::start(BINARY, options).await;
    let node_urls: Vec<String> = cluster.nodes.iter().map(|node| node.base_url()).collect();
    let token = cluster.admin_token(&node_urls[0]).await;
    let subscriber = ws_connect(&cluster.node("node2").ws_url(), &token, true).await;
    let mut notifications = subscriber.notifications();
    ws_subscribe(&subscriber, &[Topic::Pets]).await;

    let load = WriteLoad::start(
        &cluster.client,
        node_urls.clone(),
        WRITERS,
        Duration::from_millis(5),
    );
    eventually("writes acknowledged before the kill", || async {
        (load.acknowledged_count() >= 50).then_some(())
    })
    .await;

    let unconfirmed_before = replication_total(&cluster, &node_urls, "unconfirmed").await;
    let killed_at = Instant::now();
    let old_port = set.kill_primary();
    let failover = eventually("the sentinels promoting the replica", || async {
        let port = set.primary_port().ok().filter(|port| *port != old_port)?;
        let role = redis::command(port, &["ROLE"]).ok()?;
        (role.items().first().map(redis::Reply::text) == Some("master"))
            .then(|| killed_at.elapsed())
    })
    .await;

    // Both nodes write again, by themselves.
    for node in 0..node_urls.len() {
        eventually("a node acknowledging writes after the failover", || async {
            load.records()
                .iter()
                .any(|record| {
                    record.node == node
                        && record.sent >= killed_at
                        && matches!(record.outcome, Outcome::Acknowledged(..))
                })
                .then_some(())
        })
        .await;
    }
    // Some more load on the new primary.
    let settled = load.acknowledged_count() + 50;
    eventually("writes after the failover", || async {
        (load.acknowledged_count() >= settled).then_some(())
    })
    .await;
    let unconfirmed_after =
        replication_total(&cluster, &node_urls, "unconfirmed").await - unconfirmed_before;

    // The failed machine comes back: the sentinels make it a replica, and writes wait for it.
    let mut confirmed_again = None;
    if wait {
        let confirmed = replication_total(&cluster, &node_urls, "confirmed").await;
        let restarted_at = Instant::now();
        if let Err(error) = set.restart(old_port) {
            panic!("the old primary did not restart: {error}");
        }
        eventually("the old primary becoming a replica", || async {
            set.is_synced_replica(old_port).then_some(())
        })
        .await;
        eventually("the nodes confirming writes again", || async {
            (replication_total(&cluster, &node_urls, "confirmed").await > confirmed).then_some(())
        })
        .await;
        confirmed_again = Some(restarted_at.elapsed());
    }
    let records = load.stop().await;

    let outcomes = outcome_counts(&records);
    assert!(
        outcomes.keys().all(|kind| kind == "200" || kind == "503"),
        "answers other than 200 and 503 (a 500 is a bug, `transport` a hang or a cut): \
         {outcomes:?}\nfirst: {:?}",
        records.iter().find(|record| !matches!(
            record.outcome,
            Outcome::Acknowledged(..) | Outcome::Refused(503)
        ))
    );
    let slowest_refusal = records
        .iter()
        .filter(|record| matches!(record.outcome, Outcome::Refused(_)))
        .map(|record| record.latency)
        .max()
        .unwrap_or_default();
    assert!(
        slowest_refusal < REFUSAL_GUARD,
        "a refusal took {slowest_refusal:?}"
    );
    let slowest = records
        .iter()
        .map(|record| record.latency)
        .max()
        .unwrap_or_default();
    assert!(slowest < REFUSAL_GUARD, "a request took {slowest:?}");

    let first_write = (0..node_urls.len())
        .map(|node| first_write_after(&records, node, killed_at))
        .collect();
    let acknowledged = acknowledged(&records);
    let lost = count_missing(&cluster, &node_urls[0], &acknowledged).await;
    // Every node reads the same data.
    assert_eq!(
        count_missing(&cluster, &node_urls[1], &acknowledged).await,
        lost,
        "the nodes disagree"
    );

    // Notifications cross nodes on the new primary.
    let pet = cluster.add_pet(&node_urls[0], "After the failover").await;
    expect_pet_created(&mut notifications, pet, "the subscriber on node2").await;
    for node in &cluster.nodes {
        node.assert_no_panic();
    }
    assert!(
        set.primary().port() != old_port,
        "the promoted replica stays primary"
    );
    Some(Figures {
        failover,
        first_write,
        outcomes,
        slowest_refusal,
        acknowledged: acknowledged.len(),
        lost,
        unconfirmed_before,
        unconfirmed_after,
        confirmed_again,
    })
}

/// Kill → the answer to the first write sent to `node` after the kill that was acknowledged.
fn first_write_after(records: &[Record], node: usize, killed_at: Instant) -> Duration {
    records
        .iter()
        .filter(|record| {
            record.node == node
                && record.sent >= killed_at
                && matches!(record.outcome, Outcome::Acknowledged(..))
        })
        .map(|record| record.answered() - killed_at)
        .min()
        .unwrap_or(CLUSTER_GUARD)
}

/// How many of the acknowledged pets `base_url` cannot find (404); any other answer than the
/// pet with its name, or 404, fails the test.
async fn count_missing(
    cluster: &Cluster,
    base_url: &str,
    acknowledged: &BTreeMap<i64, String>,
) -> usize {
    let mut missing = 0;
    for (id, name) in acknowledged {
        let response = send(cluster.client.get(format!("{base_url}/api/v3/pet/{id}"))).await;
        match response.status().as_u16() {
            200 => {
                let pet: serde_json::Value = response.json().await.expect("a pet");
                assert_eq!(pet["name"], name.as_str(), "pet {id} through {base_url}");
            }
            404 => missing += 1,
            status => panic!("GET pet {id} through {base_url} answered {status}"),
        }
    }
    missing
}

/// `petstore_redis_replication_total{result}` summed over the nodes.
async fn replication_total(cluster: &Cluster, base_urls: &[String], result: &str) -> u64 {
    let label = format!("result=\"{result}\"");
    let mut total = 0;
    for base_url in base_urls {
        let response = send(cluster.client.get(format!("{base_url}/metrics"))).await;
        let text = response.text().await.expect("the metrics");
        total += text
            .lines()
            .find(|line| {
                line.starts_with("petstore_redis_replication_total{") && line.contains(&label)
            })
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
            .map_or(0, |value| value as u64);
    }
    total
}
