//! A Redis outage the clients barely notice, with real processes: three nodes on one private
//! Redis (append-only file), Redis killed with SIGKILL and restarted on the same file.
//!
//! - **Fast.** A killed Redis closes its sockets, so every node knows at once that it has no
//!   connection: from the very first request after the kill, each node answers 503
//!   `UNAVAILABLE` with `Retry-After` without waiting for a command timeout (the target
//!   is one second; the bound asserted here is [`ANSWER_BOUND`], for a loaded machine).
//! - **Healed.** Once Redis is back, every live node is listed in every node's `/admin/nodes`
//!   again within three heartbeats ([`HEARTBEAT_MS`]) plus [`HEAL_SLACK`], and requests succeed.
//!
//! The nodes run with the production defaults for the command timeout and the breaker (a slow
//! first request would wait the full two seconds), and a one-second heartbeat. The measured
//! times are printed (`cargo test --test cluster redis_outage -- --nocapture`) and written down
//! in the README's "When Redis fails".

use std::time::{Duration, Instant};

use petstore_testkit::app::{ADMIN_API_KEY, assert_error_body, body_json, header_text};
use petstore_testkit::cluster::{Cluster, ClusterOptions, eventually, guard};
use serde_json::Value;

use crate::BINARY;

/// The node registry's heartbeat in this test, in milliseconds.
const HEARTBEAT_MS: u64 = 1000;

/// The longest any request may take to answer while Redis is down: the target is one second,
/// the rest is room for a loaded two-core machine.
const ANSWER_BOUND: Duration = Duration::from_millis(1500);

/// Room beyond three heartbeats for every node to be listed again once Redis answers.
const HEAL_SLACK: Duration = Duration::from_secs(2);

/// Rounds of `/ready` probes over the nodes while Redis stays down (about eight seconds, past
/// the breaker's five-second cool-down).
const OUTAGE_PROBES: usize = 25;

/// How long a probe waits for its answer before giving up.
const PROBE_PATIENCE: Duration = Duration::from_millis(500);

/// Requests sent to each node at once right after its first one.
const BURST: usize = 20;

/// One request's outcome while Redis is down.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: Value,
    /// From sending the request to its answer.
    took: Duration,
    /// From the kill to the answer.
    since_kill: Duration,
}

async fn get_pet(client: &reqwest::Client, url: &str, killed_at: Instant) -> Answer {
    let sent = Instant::now();
    let response = match client
        .get(url)
        .header("api_key", ADMIN_API_KEY)
        .send()
        .await
    {
        Ok(response) => response,
        // No answer within the client's patience: recorded, and reported by the assertions.
        Err(error) => {
            return Answer {
                status: 0,
                retry_after: None,
                body: Value::String(error.to_string()),
                took: sent.elapsed(),
                since_kill: killed_at.elapsed(),
            };
        }
    };
    let took = sent.elapsed();
    let since_kill = killed_at.elapsed();
    let status = response.status().as_u16();
    let retry_after = header_text(&response, "retry-after").and_then(|text| text.parse().ok());
    let body = body_json(response).await;
    Answer {
        status,
        retry_after,
        body,
        took,
        since_kill,
    }
}

fn assert_unavailable(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 503, "{what}: {answer:?}");
    assert_error_body(&answer.body, 503, "UNAVAILABLE");
    assert!(
        answer.retry_after.is_some_and(|secs| secs >= 1),
        "{what}: Retry-After {:?}",
        answer.retry_after
    );
    assert!(
        answer.took < ANSWER_BOUND,
        "{what} took {:?} (bound {ANSWER_BOUND:?})",
        answer.took
    );
}

/// The sorted node ids `GET {base_url}/admin/nodes` lists, or `None` if it does not answer 200.
async fn listed(client: &reqwest::Client, base_url: &str) -> Option<Vec<String>> {
    let response = client
        .get(format!("{base_url}/admin/nodes"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    let mut ids: Vec<String> = body["nodes"]
        .as_array()?
        .iter()
        .filter_map(|node| node["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    Some(ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_fails_every_request_fast_and_every_node_is_listed_again_once_it_is_back() {
    let mut cluster = Cluster::start(
        BINARY,
        ClusterOptions::nodes(3)
            .env("PETSTORE_NODE_HEARTBEAT_MS", HEARTBEAT_MS.to_string())
            .env("PETSTORE_REDIS_COMMAND_TIMEOUT_MS", "2000")
            .env("PETSTORE_REDIS_BREAKER_COOL_DOWN_MS", "5000"),
    )
    .await;
    let ids: Vec<String> = cluster
        .node_ids()
        .iter()
        .map(|id| (*id).to_owned())
        .collect();
    let base_urls: Vec<String> = ids.iter().map(|id| cluster.node(id).base_url()).collect();
    let pet = cluster.add_pet(&base_urls[0], "Outlasting").await;
    for base_url in &base_urls {
        eventually("every node listing the three nodes", || async {
            (listed(&cluster.client, base_url).await.as_ref() == Some(&ids)).then_some(())
        })
        .await;
        let read = cluster
            .get_json(&format!("{base_url}/api/v3/pet/{pet}"))
            .await;
        assert_eq!(read["name"], "Outlasting");
    }

    // A client that gives up after five seconds, as the user's did: a request it abandons
    // counts as a failure of the test, never as a hang.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");

    // The reads after the kill ask for a pet no node has read yet: a pet a node has read is in
    // its cache (`--redis-cache-entries`) and may still be served from there in the moment
    // before the node notices the lost connection (and empties the cache); that answer is
    // current, as nothing can change in a dead Redis. This pet's reads must go to Redis.
    let unread = cluster.add_pet(&base_urls[0], "Unread").await;
    cluster.redis_mut().kill();
    let killed_at = Instant::now();

    // Every node at once: its first read, then a burst.
    let per_node = base_urls.iter().map(|base_url| {
        let (client, url) = (client.clone(), format!("{base_url}/api/v3/pet/{unread}"));
        tokio::spawn(async move {
            let first = get_pet(&client, &url, killed_at).await;
            let burst = futures_util::future::join_all(
                (0..BURST).map(|_| get_pet(&client, &url, killed_at)),
            )
            .await;
            (first, burst)
        })
    });
    let outcomes = guard(
        "the reads after the kill",
        futures_util::future::join_all(per_node),
    )
    .await;
    for (id, outcome) in ids.iter().zip(outcomes) {
        let (first, burst) = outcome.expect("the reading task");
        assert_unavailable(&first, &format!("{id}'s first read after the kill"));
        for (n, answer) in burst.iter().enumerate() {
            assert_unavailable(answer, &format!("{id}'s read {n} of the burst"));
        }
        let slowest = burst
            .iter()
            .map(|answer| answer.took)
            .max()
            .unwrap_or_default();
        println!(
            "measured: {id}: first read after the kill answered 503 in {:?} ({:?} after the kill); \
             slowest of a burst of {BURST}: {slowest:?}",
            first.took, first.since_kill
        );
    }

    // The outage lasts past the breaker's cool-down while a balancer's health checks probe
    // every node's /ready and give up on slow answers, as HAProxy's `timeout check` does (a
    // probe abandoned while it held the breaker's trial once kept a node away for good).
    let mut slowest_probe = Duration::ZERO;
    for base_url in (0..OUTAGE_PROBES).flat_map(|_| base_urls.iter()) {
        let sent = Instant::now();
        let probe = client
            .get(format!("{base_url}/ready"))
            .timeout(PROBE_PATIENCE)
            .send()
            .await;
        let took = sent.elapsed();
        match probe {
            Ok(response) => assert_eq!(response.status(), 503, "{base_url}/ready"),
            Err(error) => panic!("{base_url}/ready gave no answer within {took:?}: {error}"),
        }
        slowest_probe = slowest_probe.max(took);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "measured: slowest of {} /ready probes while Redis was down: {slowest_probe:?}",
        OUTAGE_PROBES * base_urls.len()
    );

    if let Err(error) = cluster.redis_mut().restart() {
        panic!("redis-server did not restart: {error}");
    }
    let back_at = Instant::now();

    // Each node's first successful read, polled meanwhile.
    let recoveries: Vec<_> = base_urls
        .iter()
        .map(|base_url| {
            let (client, url) = (client.clone(), format!("{base_url}/api/v3/pet/{pet}"));
            tokio::spawn(async move {
                loop {
                    let answer = client
                        .get(&url)
                        .header("api_key", ADMIN_API_KEY)
                        .send()
                        .await;
                    if answer.is_ok_and(|response| response.status() == 200) {
                        return back_at.elapsed();
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();

    // Every node lists every node again, on its own /admin/nodes.
    let healed_within = HEARTBEAT_MS * 3;
    let bound = Duration::from_millis(healed_within) + HEAL_SLACK;
    let mut pending: Vec<&String> = base_urls.iter().collect();
    let mut last_seen = Vec::new();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for base_url in pending {
            match listed(&cluster.client, base_url).await {
                Some(listed) if listed == ids => {}
                other => {
                    last_seen.push((base_url.clone(), other));
                    still.push(base_url);
                }
            }
        }
        pending = still;
        assert!(
            back_at.elapsed() < bound || pending.is_empty(),
            "the registry is still incomplete {:?} after Redis came back (bound: three \
             heartbeats of {HEARTBEAT_MS} ms + {HEAL_SLACK:?}); last seen: {last_seen:?}",
            back_at.elapsed()
        );
        last_seen.clear();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let registry_complete = back_at.elapsed();
    println!(
        "measured: every node listed by every node {registry_complete:?} after Redis answered \
         again (bound {bound:?})"
    );

    // And reads succeed again everywhere.
    let recovered = guard(
        "reads succeeding again",
        futures_util::future::join_all(recoveries),
    )
    .await;
    for (id, recovered) in ids.iter().zip(recovered) {
        let recovered = recovered.expect("the polling task");
        println!("measured: {id}: first successful read {recovered:?} after Redis answered again");
    }
    for base_url in &base_urls {
        let read = cluster
            .get_json(&format!("{base_url}/api/v3/pet/{pet}"))
            .await;
        assert_eq!(read["name"], "Outlasting");
    }
    for node in &mut cluster.nodes {
        assert!(node.is_running(), "{} stopped", node.id);
        node.assert_no_panic();
    }
}
