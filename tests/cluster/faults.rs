//! Faults with real processes (see `petstore_testkit::cluster`): Redis killed under load and
//! brought back on the same port and append-only file, and one of three nodes killed with
//! SIGKILL. What must hold: no panic, fast `503 UNAVAILABLE` with `Retry-After` while Redis is
//! gone, the outage visible in `/health` and `/ready`, recovery once Redis is back, WebSocket
//! clients that come back on the surviving nodes with their subscriptions, and no write that
//! was acknowledged lost.
//!
//! The loads are a few loopback clients that stop when told, and in any case after
//! [`LOAD_LIMIT`]. No assertion measures time; waits are hang guards.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use petstore_api::{Topic, operations::GetPetByIdRequest};
use petstore_client::ClientError;
use petstore_testkit::app::{assert_error_body, body_json, header_text, new_pet, send};
use petstore_testkit::cluster::{
    Balance, Cluster, ClusterOptions, eventually, expect_pet_created, guard, ws_connect,
    ws_subscribe,
};
use serde_json::{Value, json};

use crate::BINARY;

/// Concurrent writers of a load.
const WRITERS: usize = 4;

/// A load stops by itself after this long, whatever the test does.
const LOAD_LIMIT: Duration = Duration::from_secs(120);

/// Writers creating pets through the given nodes in turn, remembering every acknowledged one.
struct Load {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<BTreeMap<i64, String>>>,
    statuses: Arc<Mutex<BTreeMap<u16, u64>>>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(client: &reqwest::Client, base_urls: Vec<String>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(BTreeMap::new()));
        let statuses = Arc::new(Mutex::new(BTreeMap::new()));
        let started = Instant::now();
        let writers = (0..WRITERS)
            .map(|writer| {
                let (client, base_urls) = (client.clone(), base_urls.clone());
                let (stop, acknowledged, statuses) =
                    (stop.clone(), acknowledged.clone(), statuses.clone());
                tokio::spawn(async move {
                    let mut sent = 0usize;
                    while !stop.load(Ordering::Relaxed) && started.elapsed() < LOAD_LIMIT {
                        let name = format!("load-{writer}-{sent}");
                        let url = format!("{}/api/v3/pet", base_urls[sent % base_urls.len()]);
                        sent += 1;
                        // A transport failure (a connection cut mid-request) is neither an
                        // acknowledgement nor an answer: the next request tells.
                        if let Ok(response) = client.post(url).json(&new_pet(&name)).send().await {
                            let status = response.status().as_u16();
                            *statuses.lock().entry(status).or_default() += 1;
                            if response.status().is_success()
                                && let Ok(pet) = response.json::<Value>().await
                                && let Some(id) = pet["id"].as_i64()
                            {
                                acknowledged.lock().insert(id, name);
                            }
                        }
                        // Fast failures must not turn the writers into a busy loop.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            acknowledged,
            statuses,
            writers,
        }
    }

    fn acknowledged_count(&self) -> usize {
        self.acknowledged.lock().len()
    }

    /// Stops the writers; returns the acknowledged pets (id → name) and the count of each
    /// status seen.
    async fn stop(self) -> (BTreeMap<i64, String>, BTreeMap<u16, u64>) {
        self.stop.store(true, Ordering::Relaxed);
        for writer in self.writers {
            if let Err(error) = guard("a writer stopping", writer).await {
                panic!("a writer failed: {error}");
            }
        }
        let acknowledged = self.acknowledged.lock().clone();
        let statuses = self.statuses.lock().clone();
        (acknowledged, statuses)
    }
}

/// Asserts that every acknowledged pet reads back, with its name, through `base_url`.
async fn assert_all_readable(
    cluster: &Cluster,
    base_url: &str,
    acknowledged: &BTreeMap<i64, String>,
) {
    for (id, name) in acknowledged {
        let pet = cluster
            .get_json(&format!("{base_url}/api/v3/pet/{id}"))
            .await;
        assert_eq!(
            pet["name"],
            json!(name),
            "acknowledged pet {id} as read through {base_url}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_redis_under_load_fails_fast_and_recovers_without_losing_acknowledged_writes() {
    let mut cluster = Cluster::start(BINARY, ClusterOptions::nodes(2)).await;
    let node1 = cluster.node("node1").base_url();
    let node2 = cluster.node("node2").base_url();
    let token = cluster.admin_token(&node1).await;
    let subscriber = ws_connect(&cluster.node("node2").ws_url(), &token, true).await;
    let mut notifications = subscriber.notifications();
    ws_subscribe(&subscriber, &[Topic::Pets]).await;

    let load = Load::start(&cluster.client, vec![node1.clone(), node2.clone()]);
    eventually("writes acknowledged before the kill", || async {
        (load.acknowledged_count() >= 20).then_some(())
    })
    .await;
    cluster.redis_mut().kill();

    // Once the breaker is open: 503 UNAVAILABLE with Retry-After, on reads as on writes.
    let (body, retry_after) = eventually("a 503 while Redis is down", || async {
        let response = send(cluster.client.get(format!("{node1}/api/v3/pet/1"))).await;
        if response.status() != 503 {
            return None;
        }
        let retry_after = header_text(&response, "retry-after");
        Some((body_json(response).await, retry_after))
    })
    .await;
    assert_error_body(&body, 503, "UNAVAILABLE");
    let retry_after: Option<u64> = retry_after.as_deref().and_then(|text| text.parse().ok());
    assert!(
        retry_after.is_some_and(|secs| secs >= 1),
        "Retry-After of the 503: {retry_after:?}"
    );
    // The outage shows: /health degraded with the breaker's state, /ready 503 (so a balancer
    // stops sending), and the WebSocket transport answers UNAVAILABLE too.
    let health = eventually("/health reporting the open breaker", || async {
        let health = cluster.get_json(&format!("{node1}/health")).await;
        (health["redis"]["circuitBreaker"] != "closed").then_some(health)
    })
    .await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["redis"]["status"], "unavailable", "{health}");
    assert!(
        ["open", "half_open"].contains(
            &health["redis"]["circuitBreaker"]
                .as_str()
                .unwrap_or_default()
        ),
        "{health}"
    );
    let ready = send(cluster.client.get(format!("{node2}/ready"))).await;
    assert_eq!(ready.status(), 503);
    let outcome = guard(
        "a WebSocket read while Redis is down",
        subscriber.get_pet_by_id(GetPetByIdRequest { pet_id: 1 }),
    )
    .await;
    match outcome {
        Err(ClientError::Api(error)) => {
            assert_eq!((error.code.as_str(), error.status), ("UNAVAILABLE", 503));
        }
        other => panic!("a WebSocket read while Redis is down: {other:?}"),
    }

    // Redis back on the same port and append-only file: both nodes recover.
    if let Err(error) = cluster.redis_mut().restart() {
        panic!("redis-server did not restart: {error}");
    }
    for base_url in [&node1, &node2] {
        eventually("a write succeeding again", || async {
            let response = send(
                cluster
                    .client
                    .post(format!("{base_url}/api/v3/pet"))
                    .json(&new_pet("Back")),
            )
            .await;
            response.status().is_success().then_some(())
        })
        .await;
        eventually("/ready again", || async {
            let response = send(cluster.client.get(format!("{base_url}/ready"))).await;
            (response.status() == 200).then_some(())
        })
        .await;
    }
    let (acknowledged, statuses) = load.stop().await;
    assert!(
        statuses.keys().all(|status| [200, 503].contains(status)),
        "the load saw statuses other than 200 and 503: {statuses:?}"
    );
    assert!(statuses.contains_key(&503), "{statuses:?}");

    // Nothing acknowledged was lost, whichever node reads it.
    assert_all_readable(&cluster, &node1, &acknowledged).await;
    assert_all_readable(&cluster, &node2, &acknowledged).await;

    // Notifications cross nodes again: the nodes resubscribed to Redis pub/sub.
    let pet = cluster.add_pet(&node1, "Announced").await;
    expect_pet_created(&mut notifications, pet, "the subscriber on node2").await;

    for node in &mut cluster.nodes {
        assert!(node.is_running(), "{} stopped", node.id);
        node.assert_no_panic();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_three_nodes_moves_its_websockets_to_the_others_and_loses_no_write() {
    let mut cluster = Cluster::start(
        BINARY,
        ClusterOptions::nodes(3).balanced(Balance::LeastConn),
    )
    .await;
    let balancer_url = cluster.balancer().base_url();
    let ws_url = cluster.balancer().ws_url();
    let token = cluster.admin_token(&balancer_url).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let client = ws_connect(&ws_url, &token, true).await;
        let notifications = client.notifications();
        ws_subscribe(&client, &[Topic::Pets]).await;
        clients.push((client, notifications));
    }
    let ids = cluster.node_ids();
    eventually("one WebSocket per node", || async {
        let sessions = cluster.sessions_on(&ids).await;
        sessions.values().all(|count| *count == 1).then_some(())
    })
    .await;
    // Writes acknowledged by every node, node2 included.
    let mut acknowledged = BTreeMap::new();
    for id in cluster.node_ids() {
        for n in 0..5 {
            let name = format!("{id}-{n}");
            let pet = cluster.add_pet(&cluster.node(id).base_url(), &name).await;
            acknowledged.insert(pet, name);
        }
    }

    cluster.node_mut("node2").kill();

    // Its client comes back on another node; the others never left theirs.
    let moved = eventually("node2's client reconnects", || async {
        clients
            .iter()
            .position(|(client, _)| client.connections() >= 2 && client.is_connected())
    })
    .await;
    for (index, (client, _)) in clients.iter().enumerate() {
        if index != moved {
            assert_eq!(client.connections(), 1, "client {index} was not on node2");
        }
    }
    cluster
        .wait_for_balancer(|states| states.get("node2").is_some_and(|s| s.starts_with("DOWN")))
        .await;
    eventually("three sessions on the other nodes", || async {
        let sessions = cluster.sessions_on(&["node1", "node3"]).await;
        (sessions.values().sum::<u64>() == 3).then_some(())
    })
    .await;

    // Resubscribed: a pet created through the balancer reaches every client.
    let pet = cluster.add_pet(&balancer_url, "After the crash").await;
    for (index, (_, notifications)) in clients.iter_mut().enumerate() {
        expect_pet_created(notifications, pet, &format!("client {index}")).await;
    }
    // No acknowledged write lost, node2's included.
    for id in ["node1", "node3"] {
        assert_all_readable(&cluster, &cluster.node(id).base_url(), &acknowledged).await;
    }
    assert_all_readable(&cluster, &balancer_url, &acknowledged).await;

    // The node registry forgets node2 once its record expires.
    let node1 = cluster.node("node1").base_url();
    let live = eventually("node2 leaving the node registry", || async {
        let listed = cluster.get_json(&format!("{node1}/admin/nodes")).await;
        let ids = listed_node_ids(&listed);
        (!ids.contains(&"node2".to_owned())).then_some(ids)
    })
    .await;
    assert_eq!(live, ["node1", "node3"], "the live nodes");
    for id in ["node1", "node3"] {
        cluster.node(id).assert_no_panic();
    }
}

/// The node ids in `GET /admin/nodes`: an array of records (or one under `nodes`), each with
/// an `id` (or `nodeId`); sorted.
fn listed_node_ids(listed: &Value) -> Vec<String> {
    let records = listed
        .as_array()
        .or_else(|| listed["nodes"].as_array())
        .unwrap_or_else(|| panic!("GET /admin/nodes is not a list of nodes: {listed}"));
    let mut ids: Vec<String> = records
        .iter()
        .map(|record| {
            record["id"]
                .as_str()
                .or_else(|| record["nodeId"].as_str())
                .unwrap_or_else(|| panic!("a node record without an id: {record}"))
                .to_owned()
        })
        .collect();
    ids.sort();
    ids
}
