//! The behaviour every [`IdempotencyStore`] must show, written against the trait only, so the
//! in-process and the Redis stores claim, replay, release and expire alike.
//!
//! An implementation runs the whole suite with
//! `idempotency_store_conformance_tests!(path_to_async_fn_returning_a_fresh_Arc_dyn_IdempotencyStore)`
//! in its test module. Expiry is awaited by polling up to a deadline, never asserted after a
//! fixed sleep.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{Begin, Claim, Fingerprint, IdempotencyStore, RecordKey, StoredResponse};

/// Generates one `#[tokio::test]` per check below, each on a fresh store from `$fresh`.
macro_rules! idempotency_store_conformance_tests {
    ($fresh:path) => {
        $crate::idempotency::conformance::idempotency_store_conformance_tests!(@each $fresh;
            a_fresh_key_is_claimed_once_and_then_seen_running,
            a_completed_key_answers_its_response_and_fingerprint,
            a_released_key_can_be_claimed_again,
            a_claim_ends_with_its_lease,
            a_response_is_forgotten_after_its_ttl,
            the_same_key_of_another_scope_is_another_record,
            a_claim_whose_lease_ran_out_cannot_complete_over_the_next_one,
        );
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_begins_claim_a_key_exactly_once() {
            $crate::idempotency::conformance::concurrent_begins_claim_a_key_exactly_once($fresh)
                .await;
        }
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::idempotency::conformance::$check($fresh).await;
            }
        )*
    };
}
pub(crate) use idempotency_store_conformance_tests;

const LONG: Duration = Duration::from_secs(600);
const SHORT: Duration = Duration::from_millis(200);
const DEADLINE: Duration = Duration::from_secs(10);

fn key(name: &str) -> RecordKey {
    RecordKey::new("alice", name)
}

fn fingerprint(body: &str) -> Fingerprint {
    Fingerprint::of(&[b"POST", b"/api/v3/pet", body.as_bytes()])
}

fn response() -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("location".to_owned(), "/api/v3/pet/7".to_owned()),
        ],
        // Not UTF-8: bodies are kept as bytes.
        body: bytes::Bytes::from_static(b"{\"id\":7}\xff\x00"),
    }
}

async fn begin(
    store: &dyn IdempotencyStore,
    key: &RecordKey,
    body: &str,
    lease: Duration,
) -> Begin {
    match store.begin(key, &fingerprint(body), lease).await {
        Ok(begun) => begun,
        Err(error) => panic!("begin failed: {error}"),
    }
}

async fn claim(
    store: &dyn IdempotencyStore,
    key: &RecordKey,
    body: &str,
    lease: Duration,
) -> Claim {
    match begin(store, key, body, lease).await {
        Begin::Claimed(claim) => claim,
        other => panic!("expected a claim, got {other:?}"),
    }
}

/// Polls until `key` can be claimed again, failing after [`DEADLINE`].
async fn until_claimable(store: &dyn IdempotencyStore, key: &RecordKey) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Begin::Claimed(_) = begin(store, key, "later", LONG).await {
            return;
        }
        assert!(Instant::now() < deadline, "the record never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn a_fresh_key_is_claimed_once_and_then_seen_running<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn IdempotencyStore>>,
{
    let store = fresh().await;
    let _claim = claim(&*store, &key("k"), "a", LONG).await;
    assert_eq!(
        begin(&*store, &key("k"), "a", LONG).await,
        Begin::Running {
            fingerprint: fingerprint("a")
        }
    );
    assert_eq!(
        begin(&*store, &key("k"), "b", LONG).await,
        Begin::Running {
            fingerprint: fingerprint("a")
        },
        "the record says whose fingerprint holds the key"
    );
}

pub(crate) async fn a_completed_key_answers_its_response_and_fingerprint<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn IdempotencyStore>>,
{
    let store = fresh().await;
    let claim = claim(&*store, &key("k"), "a", LONG).await;
    store
        .complete(&claim, &response(), LONG)
        .await
        .expect("completes");
    for _ in 0..2 {
        assert_eq!(
            begin(&*store, &key("k"), "a", LONG).await,
            Begin::Done {
                fingerprint: fingerprint("a"),
                response: response()
            }
        );
    }
}

pub(crate) async fn a_released_key_can_be_claimed_again<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn IdempotencyStore>>,
{
    let store = fresh().await;
    let first = claim(&*store, &key("k"), "a", LONG).await;
    store.release(&first).await.expect("releases");
    let second = claim(&*store, &key("k"), "b", LONG).await;
    // The first claim's holder is gone: releasing it again leaves the second alone.
    store.release(&first).await.expect("releases nothing");
    assert!(matches!(
        begin(&*store, &key("k"), "b", LONG).await,
        Begin::Running { .. }
    ));
    store.release(&second).await.expect("releases");
}

pub(crate) async fn a_claim_ends_with_its_lease<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn IdempotencyStore>>,
{
    let store = fresh().await;
    let _abandoned = claim(&*store, &key("k"), "a", SHORT).await;
    until_claimable(&*store, &key("k")).await;
}

pub(crate) async fn a_response_is_forgotten_after_its_ttl<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn IdempotencyStore>>,
{
    let store = fresh().await;
    let claim = claim(&*store, &key("k"), "a", LONG).await;
    store
        .complete(&claim, &response(), SHORT)
        .await
        .expect("completes");
    until_claimable(&*store, &key("k")).await;
}

pub(crate) async fn the_same_key_of_another_scope_is_another_record<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn IdempotencyStore>>,
{
    let store = fresh().await;
    let alice = claim(&*store, &RecordKey::new("alice", "k"), "a", LONG).await;
    store
        .complete(&alice, &response(), LONG)
        .await
        .expect("completes");
    let _bob = claim(&*store, &RecordKey::new("bob", "k"), "a", LONG).await;
    // Scope and key are hashed apart: `ab` + `c` is not `a` + `bc`.
    let _split = claim(&*store, &RecordKey::new("alic", "ek"), "a", LONG).await;
}

pub(crate) async fn a_claim_whose_lease_ran_out_cannot_complete_over_the_next_one<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn IdempotencyStore>>,
{
    let store = fresh().await;
    let stale = claim(&*store, &key("k"), "a", SHORT).await;
    let deadline = Instant::now() + DEADLINE;
    let current = loop {
        if let Begin::Claimed(claim) = begin(&*store, &key("k"), "b", LONG).await {
            break claim;
        }
        assert!(Instant::now() < deadline, "the lease never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    store
        .complete(&stale, &response(), LONG)
        .await
        .expect("a stale completion is no error");
    store.release(&stale).await.expect("nor a stale release");
    assert_eq!(
        begin(&*store, &key("k"), "b", LONG).await,
        Begin::Running {
            fingerprint: fingerprint("b")
        }
    );
    store
        .complete(&current, &response(), LONG)
        .await
        .expect("completes");
    assert!(matches!(
        begin(&*store, &key("k"), "b", LONG).await,
        Begin::Done { .. }
    ));
}

pub(crate) async fn concurrent_begins_claim_a_key_exactly_once<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn IdempotencyStore>>,
{
    let store = fresh().await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let store = Arc::clone(&store);
        tasks.spawn(async move { store.begin(&key("k"), &fingerprint("a"), LONG).await });
    }
    let mut claimed = 0;
    while let Some(outcome) = tasks.join_next().await {
        match outcome {
            Ok(Ok(Begin::Claimed(_))) => claimed += 1,
            Ok(Ok(Begin::Running { .. })) => {}
            other => panic!("unexpected outcome: {other:?}"),
        }
    }
    assert_eq!(claimed, 1);
}
