//! `Idempotency-Key` on the unsafe operations: a repeat is answered from the first request
//! without running again; a reused key for another request, a repeat racing the first and a
//! malformed key are refused precisely. (On Redis: the store's conformance suite and the
//! cluster suite.)

use std::time::{Duration, Instant};

use petstore_testkit::app::{
    TestApp, body_json, expect_error, header_text, ids_of, ok_json, spawn_app,
};
use reqwest::Response;
use serde_json::{Value, json};

fn pet(name: &str, tag: &str) -> Value {
    json!({"name": name, "photoUrls": [], "tags": [{"id": 1, "name": tag}]})
}

async fn post_pet(app: &TestApp, key: &str, body: &Value) -> Response {
    app.client
        .post(app.api("/pet"))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("an answer")
}

/// The pets carrying `tag`: how many times a create really ran.
async fn pets_tagged(app: &TestApp, tag: &str) -> Vec<i64> {
    ids_of(&ok_json(app.get(&format!("/pet/findByTags?tags={tag}")).await).await)
}

async fn a_repeat_gets_the_first_answer_and_runs_once(app: TestApp) {
    let tag = format!("t{}", uuid::Uuid::new_v4().simple());
    let body = pet("Rex", &tag);
    let first = post_pet(&app, "key-1", &body).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header_text(&first, "idempotency-replayed"), None);
    let first_type = header_text(&first, "content-type");
    let first_body = first.bytes().await.expect("a body");
    let again = post_pet(&app, "key-1", &body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        header_text(&again, "idempotency-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(header_text(&again, "content-type"), first_type);
    assert_eq!(again.bytes().await.expect("a body"), first_body);
    assert_eq!(
        pets_tagged(&app, &tag).await.len(),
        1,
        "the create ran once"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_repeated_post_is_answered_from_the_first_and_creates_one_pet() {
    a_repeat_gets_the_first_answer_and_runs_once(spawn_app(|_| {}).await).await;
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused_with_422() {
    let app = spawn_app(|_| {}).await;
    let tag = format!("t{}", uuid::Uuid::new_v4().simple());
    assert_eq!(
        post_pet(&app, "key-2", &pet("Rex", &tag)).await.status(),
        200
    );
    let reused = post_pet(&app, "key-2", &pet("Fido", &tag)).await;
    let body = expect_error(reused, 422, "VALIDATION_ERROR").await;
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Idempotency-Key"),
        "{body}"
    );
    // Another endpoint is another key: the same key updates a pet.
    let id = pets_tagged(&app, &tag).await[0];
    let update = app
        .client
        .post(app.api(&format!("/pet/{id}?name=Max")))
        .header("Idempotency-Key", "key-2")
        .send()
        .await
        .expect("an answer");
    assert_eq!(update.status(), 200);
    assert_eq!(pets_tagged(&app, &tag).await.len(), 1);
    app.shutdown().await;
}

async fn concurrent_repeats_run_once(app: TestApp) {
    let tag = format!("t{}", uuid::Uuid::new_v4().simple());
    let body = pet("Rex", &tag);
    let mut answers = Vec::new();
    let requests = (0..8).map(|_| post_pet(&app, "key-3", &body));
    for response in futures_util::future::join_all(requests).await {
        let status = response.status().as_u16();
        let retry_after = header_text(&response, "retry-after");
        let replayed = header_text(&response, "idempotency-replayed");
        answers.push((status, retry_after, replayed, body_json(response).await));
    }
    let executed: Vec<_> = answers
        .iter()
        .filter(|(status, _, replayed, _)| *status == 200 && replayed.is_none())
        .collect();
    assert_eq!(executed.len(), 1, "exactly one ran: {answers:?}");
    let first = executed[0].3.clone();
    for (status, retry_after, _, body) in &answers {
        match status {
            200 => assert_eq!(body, &first),
            409 => assert!(retry_after.is_some(), "409 without Retry-After"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let later = post_pet(&app, "key-3", &body).await;
    assert_eq!(
        header_text(&later, "idempotency-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(body_json(later).await, first);
    assert_eq!(pets_tagged(&app, &tag).await.len(), 1);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_key_run_once_and_a_retry_gets_the_stored_answer() {
    concurrent_repeats_run_once(spawn_app(|_| {}).await).await;
}

#[tokio::test]
async fn a_key_is_forgotten_after_the_configured_ttl() {
    let app = spawn_app(|config| config.idempotency_ttl_secs = 1).await;
    let tag = format!("t{}", uuid::Uuid::new_v4().simple());
    let body = pet("Rex", &tag);
    assert_eq!(post_pet(&app, "key-4", &body).await.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = post_pet(&app, "key-4", &body).await;
        assert_eq!(again.status(), 200);
        if header_text(&again, "idempotency-replayed").is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "the key never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        pets_tagged(&app, &tag).await.len(),
        2,
        "it ran again once expired"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn malformed_keys_get_a_precise_4xx_and_nothing_runs_or_is_stored() {
    let app = spawn_app(|_| {}).await;
    let tag = format!("t{}", uuid::Uuid::new_v4().simple());
    let body = pet("Rex", &tag);
    let huge = "k".repeat(10 * 1024);
    for (key, reason) in [
        ("", "empty"),
        ("two words", "printable ASCII"),
        ("k".repeat(256).as_str(), "at most 255"),
        (huge.as_str(), ""),
    ] {
        let response = post_pet(&app, key, &body).await;
        let status = response.status().as_u16();
        assert!(
            matches!(status, 400 | 431),
            "{status} for a key of {} bytes",
            key.len()
        );
        if status == 400 {
            let error = expect_error(response, 400, "BAD_REQUEST").await;
            let message = error["message"].as_str().unwrap_or_default();
            assert!(message.contains("Idempotency-Key"), "{error}");
            assert!(message.contains(reason), "{error}");
        }
    }
    assert!(pets_tagged(&app, &tag).await.is_empty(), "nothing ran");
    // Nothing was stored: a valid key runs the request afresh.
    let first = post_pet(&app, "key-5", &body).await;
    assert_eq!(header_text(&first, "idempotency-replayed"), None);
    assert_eq!(pets_tagged(&app, &tag).await.len(), 1);
    app.shutdown().await;
}
