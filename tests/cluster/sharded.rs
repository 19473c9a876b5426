//! Nodes on a Redis Cluster of three primaries (`petstore_testkit::redis_cluster`), with the
//! hash-tag prefix the README prescribes: what works on one Redis works on the cluster, and a
//! prefix that is not a hash tag stops the start with the reason.

use std::process::Command;

use petstore_api::Topic;
use petstore_testkit::{
    app::{ok_json, send},
    cluster::{Cluster, ClusterOptions, eventually, expect_pet_created, ws_connect, ws_subscribe},
    redis_cluster::LocalRedisCluster,
};
use petstore_ws::auth::tokens::generate_ephemeral_key_pem;
use serde_json::json;

use crate::BINARY;

/// The prefix the README prescribes on Redis Cluster.
const PREFIX: &str = "{petstore}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_a_redis_cluster_share_data_events_races_and_the_registry() {
    let redis = match LocalRedisCluster::start() {
        Ok(redis) => redis,
        Err(error) => panic!("the Redis Cluster did not form: {error}"),
    };
    let cluster = Cluster::start(
        BINARY,
        ClusterOptions::nodes(2)
            .redis_url(redis.url())
            .env("PETSTORE_REDIS_PREFIX", PREFIX),
    )
    .await;
    let node1 = cluster.node("node1").base_url();
    let node2 = cluster.node("node2").base_url();
    let token = cluster.admin_token(&node1).await;
    let subscriber = ws_connect(&cluster.node("node2").ws_url(), &token, false).await;
    let mut notifications = subscriber.notifications();
    ws_subscribe(&subscriber, &[Topic::Pets]).await;

    // Written through one node, read through the other, announced on the other.
    let pet = cluster.add_pet(&node1, "Sharded").await;
    let read = cluster.get_json(&format!("{node2}/api/v3/pet/{pet}")).await;
    assert_eq!(read["name"], "Sharded");
    expect_pet_created(&mut notifications, pet, "the subscriber on node2").await;

    // One pet ordered through both nodes at once: exactly one order.
    let order = json!({ "petId": pet, "quantity": 1 });
    let (first, second) = tokio::join!(
        send(
            cluster
                .client
                .post(format!("{node1}/api/v3/store/order"))
                .json(&order)
        ),
        send(
            cluster
                .client
                .post(format!("{node2}/api/v3/store/order"))
                .json(&order)
        ),
    );
    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "one order, one conflict");
    let inventory = cluster
        .get_json(&format!("{node2}/api/v3/store/inventory"))
        .await;
    assert!(
        inventory["pending"].as_i64().is_some_and(|n| n >= 1),
        "{inventory}"
    );

    // Both nodes in the registry, seen from either.
    let listed = eventually("both nodes in the registry", || async {
        let listed = cluster.get_json(&format!("{node1}/admin/nodes")).await;
        let mut ids: Vec<String> = listed["nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter_map(|node| node["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        (ids == ["node1", "node2"]).then_some(ids)
    })
    .await;
    assert_eq!(listed.len(), 2);

    // A token issued through node1 is logged out through node2 and refused by node1 after.
    let login = ok_json(
        send(
            cluster
                .client
                .post(format!("{node1}/api/v3/auth/token"))
                .json(&json!({
                    "username": petstore_testkit::cluster::ADMIN_USER,
                    "password": petstore_testkit::cluster::ADMIN_PASSWORD,
                })),
        )
        .await,
    )
    .await;
    let access = login["accessToken"].as_str().expect("a token").to_owned();
    let logout = send(
        reqwest::Client::new()
            .get(format!("{node2}/api/v3/user/logout"))
            .bearer_auth(&access),
    )
    .await;
    assert_eq!(logout.status(), 200);
    eventually("node1 refusing the revoked token", || async {
        let response = send(
            reqwest::Client::new()
                .get(format!(
                    "{node1}/api/v3/user/{}",
                    petstore_testkit::cluster::ADMIN_USER
                ))
                .bearer_auth(&access),
        )
        .await;
        (response.status() == 401).then_some(())
    })
    .await;

    // Every key of the deployment is in the prefix's slot, on one primary.
    let holding: Vec<u16> = redis
        .ports()
        .into_iter()
        .filter(|port| {
            petstore_testkit::redis::command(*port, &["DBSIZE"])
                .is_ok_and(|reply| reply != petstore_testkit::redis::Reply::Integer(0))
        })
        .collect();
    assert_eq!(holding.len(), 1, "keys on the primaries {holding:?}");
    for node in &cluster.nodes {
        node.assert_no_panic();
    }
}

#[test]
fn a_prefix_without_a_hash_tag_is_refused_at_start_up_saying_why() {
    let redis = match LocalRedisCluster::start() {
        Ok(redis) => redis,
        Err(error) => panic!("the Redis Cluster did not form: {error}"),
    };
    let dir = std::env::temp_dir().join(format!(
        "petstore-sharded-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("a directory");
    let key = dir.join("jwt.pem");
    std::fs::write(&key, generate_ephemeral_key_pem().expect("a key")).expect("the key file");
    let mut command = Command::new(BINARY);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PETSTORE_") {
            command.env_remove(name);
        }
    }
    let output = command
        .args(["--bind", "127.0.0.1", "--port", "0", "--no-demo-data"])
        .env("PETSTORE_REDIS_URL", redis.url())
        .env("PETSTORE_REDIS_PREFIX", "petstore")
        .env("PETSTORE_JWT_PRIVATE_KEY", &key)
        .output()
        .expect("the binary runs");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started: {stderr}");
    assert!(
        stderr.contains("hash tag") && stderr.contains("one hash slot"),
        "the reason: {stderr}"
    );
}
