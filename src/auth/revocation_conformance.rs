//! The behaviour every [`RevocationStore`] must show, written against the trait only.
//!
//! Each check takes a fresh, empty store. An implementation runs the whole suite with
//! `revocation_store_conformance_tests!(path_to_async_fn_returning_a_fresh_Arc_dyn_RevocationStore)`
//! in its test module, so the in-process list and the Redis-shared store are held to exactly
//! the same behaviour on the node that revokes. What only a shared store can show (another node
//! sees the revocation, a node started later loads it, an outage is caught up) cannot be said
//! through the trait, which has no notion of a second instance: it stays in that backend's own
//! tests, as does what only the list can show (pruning by an injected clock).
//!
//! Stores read the wall clock themselves (`Utc::now`), so the checks about expiry use short
//! real lifetimes and wait for them to pass by polling a witness entry with a deadline: no
//! fixed sleep, no assertion on how long anything took. (`tokio::time::pause` would not help:
//! no store reads tokio's clock.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

use super::revocation::RevocationStore;

/// Generates one `#[tokio::test]` per check below, each on a fresh store from `$fresh`.
macro_rules! revocation_store_conformance_tests {
    ($fresh:path) => {
        $crate::auth::revocation_conformance::revocation_store_conformance_tests!(@each $fresh;
            a_revoked_id_is_revoked_and_others_are_not,
            ids_are_compared_exactly_whatever_they_contain,
            an_id_stays_revoked_until_its_expiry_passes,
            revoking_twice_keeps_the_later_expiry,
            revoking_with_a_past_expiry_revokes_nothing,
            an_id_can_be_revoked_again_after_its_entry_expired,
            many_ids_are_each_revoked,
        );
        $crate::auth::revocation_conformance::revocation_store_conformance_tests!(@concurrent $fresh;
            concurrent_revocations_are_all_recorded,
        );
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::auth::revocation_conformance::$check($fresh().await).await;
            }
        )*
    };
    (@concurrent $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                $crate::auth::revocation_conformance::$check($fresh().await).await;
            }
        )*
    };
}

pub(crate) use revocation_store_conformance_tests;

type S = Arc<dyn RevocationStore>;

/// The lifetime of an entry that must expire during a check: long enough to be seen revoked
/// first on any machine, short enough to keep the suite quick.
const BRIEF: TimeDelta = TimeDelta::milliseconds(300);

/// Hang guard for what must happen eventually; never a timing assertion.
const DEADLINE: Duration = Duration::from_secs(10);

fn in_secs(n: i64) -> DateTime<Utc> {
    Utc::now() + TimeDelta::seconds(n)
}

/// Polls `condition` until it holds, failing the check after [`DEADLINE`].
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Revokes a witness that expires at `expires_at` and waits until the store no longer reports
/// it: from then on, every entry with that expiry (or an earlier one) has expired too.
async fn wait_past(store: &S, expires_at: DateTime<Utc>) {
    let witness = format!("witness-{}", uuid::Uuid::new_v4().simple());
    store.revoke(&witness, expires_at);
    eventually("the witness entry expires", || !store.is_revoked(&witness)).await;
}

pub(crate) async fn a_revoked_id_is_revoked_and_others_are_not(store: S) {
    assert!(!store.is_revoked("jti-1"), "a fresh store revokes nothing");
    store.revoke("jti-1", in_secs(300));
    assert!(store.is_revoked("jti-1"), "effective at once");
    assert!(!store.is_revoked("jti-2"));
    assert!(!store.is_revoked(""));
}

pub(crate) async fn ids_are_compared_exactly_whatever_they_contain(store: S) {
    let ids = ["sid:with spaces", "ünïcødé-jti", "jti/with/slashes", "jti*"];
    for id in ids {
        store.revoke(id, in_secs(300));
    }
    for id in ids {
        assert!(store.is_revoked(id), "{id:?}");
    }
    for near_miss in [
        "sid:with",
        "sid:with spaces ",
        "SID:WITH SPACES",
        "jti",
        "jti*x",
    ] {
        assert!(!store.is_revoked(near_miss), "{near_miss:?}");
    }
}

pub(crate) async fn an_id_stays_revoked_until_its_expiry_passes(store: S) {
    let expires_at = Utc::now() + BRIEF;
    store.revoke("brief", expires_at);
    store.revoke("long", in_secs(300));
    assert!(store.is_revoked("brief"));
    eventually("the brief entry expires", || !store.is_revoked("brief")).await;
    assert!(store.is_revoked("long"), "only the expired entry is gone");
}

/// Both orders: the earlier expiry must neither shorten a later one nor be the one kept.
pub(crate) async fn revoking_twice_keeps_the_later_expiry(store: S) {
    let soon = Utc::now() + BRIEF;
    let later = in_secs(300);
    store.revoke("longer-first", later);
    store.revoke("longer-first", soon);
    store.revoke("longer-second", soon);
    store.revoke("longer-second", later);

    wait_past(&store, soon).await;
    assert!(store.is_revoked("longer-first"));
    assert!(store.is_revoked("longer-second"));
}

pub(crate) async fn revoking_with_a_past_expiry_revokes_nothing(store: S) {
    store.revoke("dead", Utc::now() - TimeDelta::seconds(1));
    assert!(!store.is_revoked("dead"));
    // An expiry of exactly now is already past by the time anyone asks.
    store.revoke("now", Utc::now());
    assert!(!store.is_revoked("now"));
}

pub(crate) async fn an_id_can_be_revoked_again_after_its_entry_expired(store: S) {
    let soon = Utc::now() + BRIEF;
    store.revoke("again", soon);
    wait_past(&store, soon).await;
    assert!(!store.is_revoked("again"));

    store.revoke("again", in_secs(300));
    assert!(
        store.is_revoked("again"),
        "the stale entry does not shadow the new one"
    );
}

pub(crate) async fn many_ids_are_each_revoked(store: S) {
    const IDS: usize = 1_000;
    let expires_at = in_secs(300);
    for i in 0..IDS {
        store.revoke(&format!("jti-{i}"), expires_at);
    }
    for i in 0..IDS {
        assert!(store.is_revoked(&format!("jti-{i}")), "jti-{i}");
    }
    assert!(!store.is_revoked(&format!("jti-{IDS}")));
}

pub(crate) async fn concurrent_revocations_are_all_recorded(store: S) {
    const TASKS: usize = 4;
    const EACH: usize = 250;
    let expires_at = in_secs(600);
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                for i in 0..EACH {
                    let jti = format!("{task}-{i}");
                    store.revoke(&jti, expires_at);
                    assert!(store.is_revoked(&jti), "{jti} right after revoking it");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("the revoking task finishes");
    }
    for task in 0..TASKS {
        for i in 0..EACH {
            assert!(store.is_revoked(&format!("{task}-{i}")), "{task}-{i}");
        }
    }
}
