//! One `Idempotency-Key` sent to two nodes at once: the cluster's records in Redis let exactly
//! one node run it, and both callers end with the same answer.

use petstore_testkit::app::{body_json, ids_of, send};
use petstore_testkit::cluster::{Cluster, ClusterOptions};
use serde_json::{Value, json};

use crate::BINARY;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_sent_to_two_nodes_at_once_runs_once_and_both_get_its_answer() {
    let cluster = Cluster::start(BINARY, ClusterOptions::nodes(2)).await;
    let tag = format!("t{}", uuid::Uuid::new_v4().simple());
    let body = json!({"name": "Rex", "photoUrls": [], "tags": [{"id": 1, "name": tag}]});
    let key = uuid::Uuid::new_v4().to_string();
    let post = |base: String| {
        let request = cluster
            .client
            .post(format!("{base}/api/v3/pet"))
            .header("Idempotency-Key", key.as_str())
            .json(&body);
        async move {
            // A caller that was told the first is still running retries, as clients do.
            loop {
                let response = send(request.try_clone().expect("a plain request")).await;
                if response.status() == 409 {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
                assert_eq!(response.status(), 200);
                return body_json(response).await;
            }
        }
    };
    let (one, two): (Value, Value) = tokio::join!(
        post(cluster.nodes[0].base_url()),
        post(cluster.nodes[1].base_url())
    );
    assert_eq!(one, two, "both callers end with the same answer");
    let found = cluster
        .get_json(&format!(
            "{}/api/v3/pet/findByTags?tags={tag}",
            cluster.nodes[1].base_url()
        ))
        .await;
    assert_eq!(ids_of(&found).len(), 1, "one pet: {found}");
}
