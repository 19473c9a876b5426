//! Three nodes on one Redis behind HAProxy, all real processes (see `petstore_testkit::cluster`):
//! each balancing strategy of `deploy/haproxy/haproxy.cfg` spreads traffic as documented, data
//! and notifications cross nodes, and a node that is stopped drains: HAProxy takes it out of
//! rotation while it still serves, and its WebSocket clients are closed with 1012 and come back
//! on the other nodes.
//!
//! Which node served a request is read from `/health`'s `nodeId` (each node's
//! `PETSTORE_NODE_ID`). No assertion measures time; waits are hang guards.

use std::{collections::BTreeMap, net::IpAddr};

use petstore_api::Topic;
use petstore_testkit::app::{bearer, body_json, id_of, new_pet, ok_json, send};
use petstore_testkit::cluster::{
    Balance, Cluster, ClusterOptions, eventually, expect_pet_created, guard, ws_connect,
    ws_subscribe,
};
use serde_json::json;

use crate::BINARY;

/// Requests sent through the balancer to see how it spreads them.
const REQUESTS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_sends_requests_to_each_node_in_turn() {
    let cluster = Cluster::start(
        BINARY,
        ClusterOptions::nodes(3).balanced(Balance::RoundRobin),
    )
    .await;
    let balancer = cluster.balancer().base_url();
    let mut served: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..REQUESTS {
        *served
            .entry(cluster.node_behind(&balancer).await)
            .or_default() += 1;
    }
    assert_eq!(
        served.keys().map(String::as_str).collect::<Vec<_>>(),
        cluster.node_ids(),
        "every node serves: {served:?}"
    );
    // In turn: a third each (one either way, should a health check flap meanwhile).
    let share = REQUESTS / 3;
    assert!(
        served
            .values()
            .all(|count| (share - 1..=share + 1).contains(count)),
        "not an even spread: {served:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_affinity_keeps_each_client_address_on_one_node() {
    let cluster = Cluster::start(BINARY, ClusterOptions::nodes(3).balanced(Balance::Source)).await;
    let health = cluster.balancer().url("/health");
    // Every request on a new connection (the cluster client keeps none), all from 127.0.0.1.
    let mut served = Vec::new();
    for _ in 0..REQUESTS {
        served.push(cluster.node_behind(&cluster.balancer().base_url()).await);
    }
    served.dedup();
    assert_eq!(served.len(), 1, "one address, several nodes: {served:?}");

    // Other client addresses stick as well, and are not all sent to that one node.
    let mut nodes_of_addresses = BTreeMap::new();
    for last in 2..=9u8 {
        let address = IpAddr::from([127, 0, 0, last]);
        let client = match reqwest::Client::builder()
            .local_address(address)
            .pool_max_idle_per_host(0)
            .build()
        {
            Ok(client) => client,
            Err(error) => panic!("cannot build a client bound to {address}: {error}"),
        };
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let body = ok_json(send(client.get(&health)).await).await;
            nodes.push(body["nodeId"].as_str().unwrap_or_default().to_owned());
        }
        nodes.dedup();
        assert_eq!(nodes.len(), 1, "{address} moved between nodes: {nodes:?}");
        nodes_of_addresses.insert(address, nodes.remove(0));
    }
    let mut distinct: Vec<_> = nodes_of_addresses.values().collect();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() > 1,
        "every address on one node: {nodes_of_addresses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_sends_a_new_websocket_to_the_node_without_one() {
    let cluster = Cluster::start(
        BINARY,
        ClusterOptions::nodes(3).balanced(Balance::LeastConn),
    )
    .await;
    let balancer = cluster.balancer();
    let token = cluster.admin_token(&balancer.base_url()).await;
    let ids = cluster.node_ids();

    let _first = ws_connect(&balancer.ws_url(), &token, false).await;
    let _second = ws_connect(&balancer.ws_url(), &token, false).await;
    let before = eventually("both sessions counted", || async {
        let sessions = cluster.sessions_on(&ids).await;
        (sessions.values().sum::<u64>() == 2).then_some(sessions)
    })
    .await;
    let idle: Vec<_> = before
        .iter()
        .filter(|(_, count)| **count == 0)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(idle.len(), 1, "the first two went to two nodes: {before:?}");

    let _third = ws_connect(&balancer.ws_url(), &token, false).await;
    let after = eventually("the third session counted", || async {
        let sessions = cluster.sessions_on(&ids).await;
        (sessions.values().sum::<u64>() == 3).then_some(sessions)
    })
    .await;
    assert_eq!(
        after[&idle[0]], 1,
        "the new WebSocket did not go to {}, the node without one: {after:?}",
        idle[0]
    );
    assert!(after.values().all(|count| *count == 1), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pet_written_through_one_node_is_read_through_every_other() {
    let cluster = Cluster::start(
        BINARY,
        ClusterOptions::nodes(3).balanced(Balance::RoundRobin),
    )
    .await;
    let [node1, node2, node3] = [
        cluster.node("node1"),
        cluster.node("node2"),
        cluster.node("node3"),
    ];
    // A token issued by node1 is good on node3: the nodes share the signing key and sessions.
    let token = cluster.admin_token(&node1.base_url()).await;
    let anonymous = reqwest::Client::new();
    let created = ok_json(
        send(bearer(anonymous.post(node1.url("/api/v3/pet")), &token).json(&new_pet("Rex"))).await,
    )
    .await;
    let id = id_of(&created);
    for node in [node1, node2, node3] {
        let pet = ok_json(send(anonymous.get(node.url(&format!("/api/v3/pet/{id}")))).await).await;
        assert_eq!(pet, created, "as read through {}", node.id);
    }

    let renamed = json!({ "id": id, "name": "Rex II", "photoUrls": [], "status": "sold" });
    let updated =
        ok_json(send(bearer(anonymous.put(node3.url("/api/v3/pet")), &token).json(&renamed)).await)
            .await;
    assert_eq!(updated["name"], "Rex II");
    let pet = ok_json(send(anonymous.get(node2.url(&format!("/api/v3/pet/{id}")))).await).await;
    assert_eq!(pet, updated, "node2 reads what node3 wrote");

    // And through the balancer, whichever node answers.
    let through_balancer = cluster.balancer().url(&format!("/api/v3/pet/{id}"));
    for _ in 0..6 {
        let pet = ok_json(send(anonymous.get(&through_balancer)).await).await;
        assert_eq!(pet, updated);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_notification_crosses_nodes_once() {
    let cluster = Cluster::start(BINARY, ClusterOptions::nodes(3)).await;
    let token = cluster.admin_token(&cluster.node("node1").base_url()).await;
    let mut subscribers = Vec::new();
    for id in cluster.node_ids() {
        let client = ws_connect(&cluster.node(id).ws_url(), &token, false).await;
        let notifications = client.notifications();
        ws_subscribe(&client, &[Topic::Pets]).await;
        subscribers.push((id, client, notifications));
    }

    let first = cluster
        .add_pet(&cluster.node("node1").base_url(), "Cross")
        .await;
    for (id, _, notifications) in &mut subscribers {
        expect_pet_created(notifications, first, &format!("the subscriber on {id}")).await;
    }
    // Delivered once: the next notification each subscriber sees is the next pet's.
    let second = cluster
        .add_pet(&cluster.node("node2").base_url(), "Again")
        .await;
    for (id, _, notifications) in &mut subscribers {
        let next = guard("the second notification", notifications.recv()).await;
        let Some(next) = next else {
            panic!("the subscriber on {id} closed");
        };
        assert_eq!(
            (next.event.as_str(), &next.payload["id"]),
            ("pet.created", &json!(second)),
            "the subscriber on {id} got {next:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_gets_no_new_traffic_and_its_websockets_move_with_1012() {
    let mut cluster = Cluster::start(
        BINARY,
        ClusterOptions::nodes(3)
            .balanced(Balance::LeastConn)
            .drain_secs(10),
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

    cluster.node_mut("node2").terminate();
    // Still serving, but no longer ready.
    let ready_url = cluster.node("node2").url("/ready");
    let draining = eventually("node2 reports draining", || async {
        let response = send(cluster.client.get(&ready_url)).await;
        (response.status() == 503).then_some(response)
    })
    .await;
    assert_eq!(body_json(draining).await, json!({ "status": "draining" }));

    cluster
        .wait_for_balancer(|states| states.get("node2").is_some_and(|s| s.starts_with("DOWN")))
        .await;
    for _ in 0..REQUESTS / 2 {
        let node = cluster.node_behind(&balancer_url).await;
        assert_ne!(
            node, "node2",
            "the balancer sent a request to the draining node"
        );
    }

    let status = cluster.node_mut("node2").wait_for_exit();
    assert!(status.success(), "node2 exited with {status}");
    cluster.node("node2").assert_no_panic();

    // Its client was closed with 1012 (service restart) and reconnected elsewhere; the others
    // stayed where they were.
    let moved = eventually("the drained node's client reconnects", || async {
        clients
            .iter()
            .position(|(client, _)| client.connections() >= 2 && client.is_connected())
    })
    .await;
    let close = clients[moved].0.last_close();
    assert_eq!(
        close.as_ref().map(|close| close.code),
        Some(1012),
        "close frame of the drained node's session: {close:?}"
    );
    for (index, (client, _)) in clients.iter().enumerate() {
        if index != moved {
            assert_eq!(client.connections(), 1, "client {index} was not on node2");
        }
    }
    let survivors = ["node1", "node3"];
    let sessions = eventually("three sessions on the other nodes", || async {
        let sessions = cluster.sessions_on(&survivors).await;
        (sessions.values().sum::<u64>() == 3).then_some(sessions)
    })
    .await;
    assert_eq!(sessions.len(), 2, "{sessions:?}");

    // Resubscribed: a pet created through the balancer reaches every client.
    let pet = cluster.add_pet(&balancer_url, "After drain").await;
    for (index, (_, notifications)) in clients.iter_mut().enumerate() {
        expect_pet_created(notifications, pet, &format!("client {index}")).await;
    }
}
