//! Notifications a client can trust across nodes: a client whose node drains reconnects to
//! another and receives every event written meanwhile, in order, exactly once.

use petstore_api::Topic;
use petstore_client::Notifications;
use petstore_testkit::cluster::{
    Balance, Cluster, ClusterOptions, eventually, guard, ws_connect, ws_subscribe,
};

use crate::BINARY;

/// The next `pet.created`, with its offset in `pets`.
async fn next_created(notifications: &mut Notifications, what: &str) -> (i64, u64) {
    loop {
        let Some(notification) = guard(what, notifications.recv()).await else {
            panic!("{what}: the client closed");
        };
        assert_ne!(
            notification.event,
            petstore_client::RECOVERY_FAILED,
            "{what}: recovery failed: {notification:?}"
        );
        if notification.event == "pet.created" {
            let id = notification.payload["id"].as_i64().expect("a pet id");
            return (id, notification.positions["pets"]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_draining_node_resumes_on_another_and_misses_nothing() {
    let mut cluster = Cluster::start(
        BINARY,
        ClusterOptions::nodes(2)
            .balanced(Balance::LeastConn)
            .drain_secs(10),
    )
    .await;
    let balancer_url = cluster.balancer().base_url();
    let token = cluster.admin_token(&balancer_url).await;
    let client = ws_connect(&cluster.balancer().ws_url(), &token, true).await;
    let mut notifications = client.notifications();
    ws_subscribe(&client, &[Topic::Pets]).await;
    let ids = cluster.node_ids();
    let sessions = eventually("the client's session is placed", || async {
        let sessions = cluster.sessions_on(&ids).await;
        (sessions.values().sum::<u64>() == 1).then_some(sessions)
    })
    .await;
    let drained = sessions
        .iter()
        .find(|(_, count)| **count == 1)
        .map(|(node, _)| node.clone())
        .expect("one node has the session");
    let survivor = ids
        .iter()
        .find(|node| **node != drained)
        .map(|node| (*node).to_owned())
        .expect("two nodes");
    let writer = cluster.node(&survivor).base_url();

    let mut written = Vec::new();
    for n in 0..5 {
        written.push(cluster.add_pet(&writer, &format!("before-{n}")).await);
    }
    // Seen before the drain: the client has a position to resume from.
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(next_created(&mut notifications, "an event before the drain").await);
    }

    cluster.node_mut(&drained).terminate();
    // Written while the client is being moved: closed with 1012, reconnecting, resuming.
    for n in 0..20 {
        written.push(cluster.add_pet(&writer, &format!("during-{n}")).await);
    }
    eventually("the client reconnects to the survivor", || async {
        (client.connections() >= 2 && client.is_connected()).then_some(())
    })
    .await;
    for n in 0..5 {
        written.push(cluster.add_pet(&writer, &format!("after-{n}")).await);
    }
    while seen.len() < written.len() {
        seen.push(next_created(&mut notifications, "every event written meanwhile").await);
    }
    let ids_seen: Vec<i64> = seen.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids_seen, written, "every event, in order, once");
    let first = seen[0].1;
    for (n, (_, offset)) in seen.iter().enumerate() {
        assert_eq!(*offset, first + n as u64, "contiguous offsets");
    }
    let close = client.last_close();
    assert_eq!(
        close.as_ref().map(|close| close.code),
        Some(1012),
        "{close:?}"
    );
    let status = cluster.node_mut(&drained).wait_for_exit();
    assert!(status.success(), "{drained} exited with {status}");
}

/// Every node's Redis subscriber connection is killed (`CLIENT KILL TYPE pubsub`) while pets are
/// written: the sessions of every node still receive every event, in order, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_subscriber_connections_lose_no_event_for_the_sessions() {
    const WRITES: usize = 60;
    let cluster = Cluster::start(BINARY, ClusterOptions::nodes(2)).await;
    let ids = cluster.node_ids();
    let writer = cluster.node(ids[0]).base_url();
    let token = cluster.admin_token(&writer).await;
    let mut followers = Vec::new();
    for id in &ids {
        let client = ws_connect(&cluster.node(id).ws_url(), &token, false).await;
        let notifications = client.notifications();
        ws_subscribe(&client, &[Topic::Pets]).await;
        followers.push((client, notifications));
    }
    let mut written = Vec::new();
    for n in 0..WRITES {
        if n == WRITES / 3 {
            let output = std::process::Command::new("redis-cli")
                .args(["-p", &cluster.redis().port().to_string()])
                .args(["CLIENT", "KILL", "TYPE", "pubsub"])
                .output()
                .expect("redis-cli runs (Debian: apt-get install redis-tools)");
            let killed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            assert!(
                killed.parse::<u64>().is_ok_and(|killed| killed >= 2),
                "both nodes' subscribers killed: {killed}"
            );
        }
        written.push(
            cluster
                .add_pet(&writer, &format!("through-the-kill-{n}"))
                .await,
        );
    }
    for (index, (_, notifications)) in followers.iter_mut().enumerate() {
        let mut seen = Vec::new();
        while seen.len() < written.len() {
            let what = format!("node {index}: every event through the kill");
            seen.push(next_created(notifications, &what).await);
        }
        let ids_seen: Vec<i64> = seen.iter().map(|(id, _)| *id).collect();
        assert_eq!(
            ids_seen, written,
            "node {index}: every event, in order, once"
        );
    }
}
