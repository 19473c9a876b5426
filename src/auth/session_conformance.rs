//! The behaviour every [`SessionStore`] must show, written against the trait only.
//!
//! Each check takes a fresh, empty store. An implementation runs the whole suite with
//! `session_store_conformance_tests!(path_to_async_fn_returning_a_fresh_Arc_dyn_SessionStore)`
//! in its test module, so the memory and Redis stores are held to exactly the same behaviour.
//! What only one backend can show (pruning by an injected clock, the keys in Redis) stays in
//! that backend's own tests.

use std::{collections::HashSet, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{TimeDelta, Utc};
use uuid::Uuid;

use super::sessions::{SessionError, SessionStore, TOKEN_LEN};

/// Generates one `#[tokio::test]` per check below, each on a fresh store from `$fresh`.
macro_rules! session_store_conformance_tests {
    ($fresh:path) => {
        $crate::auth::session_conformance::session_store_conformance_tests!(@each $fresh;
            rotation_chain_stays_in_one_session_with_fresh_tokens,
            issued_token_is_256_random_bits_in_base64url,
            tokens_are_valid_for_ttl_from_their_issue,
            reusing_a_spent_token_revokes_the_whole_session,
            reuse_in_one_session_leaves_other_sessions_alone,
            token_past_a_tiny_ttl_is_refused,
            garbage_and_never_issued_tokens_are_unknown,
            revoked_session_refuses_rotation,
            revoke_is_idempotent_and_reports_unknown_sessions,
            revoke_user_can_spare_one_session,
            revoke_user_revokes_every_session_of_that_user_only,
        );
        $crate::auth::session_conformance::session_store_conformance_tests!(@concurrent $fresh;
            concurrent_rotations_of_one_token_let_exactly_one_succeed,
        );
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::auth::session_conformance::$check($fresh().await).await;
            }
        )*
    };
    (@concurrent $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                $crate::auth::session_conformance::$check($fresh().await).await;
            }
        )*
    };
}

pub(crate) use session_store_conformance_tests;

type S = Arc<dyn SessionStore>;

const TTL: Duration = Duration::from_secs(3600);

pub(crate) async fn rotation_chain_stays_in_one_session_with_fresh_tokens(store: S) {
    let first = store.start("alice", TTL).await.unwrap();
    let second = store.rotate(&first.token, TTL).await.unwrap();
    let third = store.rotate(&second.next.token, TTL).await.unwrap();

    for rotation in [&second, &third] {
        assert_eq!(rotation.username, "alice");
        assert_eq!(rotation.session_id, first.session_id);
        assert_eq!(rotation.next.session_id, first.session_id);
    }
    let tokens: HashSet<&str> = [&first.token, &second.next.token, &third.next.token]
        .into_iter()
        .map(String::as_str)
        .collect();
    assert_eq!(tokens.len(), 3, "every rotation issues a new token");
    assert!(Uuid::parse_str(&first.session_id).is_ok());
}

pub(crate) async fn issued_token_is_256_random_bits_in_base64url(store: S) {
    let grant = store.start("alice", TTL).await.unwrap();
    assert_eq!(grant.token.len(), TOKEN_LEN);
    assert_eq!(URL_SAFE_NO_PAD.decode(&grant.token).unwrap().len(), 32);
    let other = store.start("alice", TTL).await.unwrap();
    assert_ne!(grant.token, other.token);
    assert_ne!(grant.session_id, other.session_id);
}

/// Bounded by the clock readings around each call: the store reads the clock itself.
pub(crate) async fn tokens_are_valid_for_ttl_from_their_issue(store: S) {
    let ttl = TimeDelta::seconds(100);
    let before = Utc::now();
    let first = store
        .start("alice", Duration::from_secs(100))
        .await
        .unwrap();
    let after = Utc::now();
    assert!(before + ttl <= first.expires_at && first.expires_at <= after + ttl);

    let before = Utc::now();
    let rotated = store
        .rotate(&first.token, Duration::from_secs(500))
        .await
        .unwrap();
    let after = Utc::now();
    let ttl = TimeDelta::seconds(500);
    assert!(before + ttl <= rotated.next.expires_at && rotated.next.expires_at <= after + ttl);
}

pub(crate) async fn reusing_a_spent_token_revokes_the_whole_session(store: S) {
    let first = store.start("alice", TTL).await.unwrap();
    let current = store.rotate(&first.token, TTL).await.unwrap().next;

    let reuse = store.rotate(&first.token, TTL).await.unwrap_err();
    let SessionError::Reused { session_id } = reuse else {
        panic!("expected a reuse, got {reuse:?}");
    };
    assert_eq!(session_id, first.session_id);
    let legit = store.rotate(&current.token, TTL).await.unwrap_err();
    let SessionError::Revoked { session_id } = legit else {
        panic!("expected a revoked session, got {legit:?}");
    };
    assert_eq!(session_id, first.session_id);
    // Every further replay of the spent token is still reported as a reuse.
    let again = store.rotate(&first.token, TTL).await.unwrap_err();
    assert!(matches!(again, SessionError::Reused { .. }), "{again:?}");
}

pub(crate) async fn reuse_in_one_session_leaves_other_sessions_alone(store: S) {
    let stolen = store.start("alice", TTL).await.unwrap();
    let other = store.start("alice", TTL).await.unwrap();
    store.rotate(&stolen.token, TTL).await.unwrap();
    assert!(store.rotate(&stolen.token, TTL).await.is_err());

    assert!(store.rotate(&other.token, TTL).await.is_ok());
}

pub(crate) async fn concurrent_rotations_of_one_token_let_exactly_one_succeed(store: S) {
    const TASKS: usize = 8;
    for round in 0..100 {
        let grant = store.start("alice", TTL).await.unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let store = Arc::clone(&store);
                let barrier = Arc::clone(&barrier);
                let token = grant.token.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.rotate(&token, TTL).await
                })
            })
            .collect();
        let mut successes = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(rotation) => {
                    assert_eq!(rotation.session_id, grant.session_id);
                    successes += 1;
                }
                Err(SessionError::Reused { session_id }) => {
                    assert_eq!(session_id, grant.session_id);
                }
                Err(other) => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(successes, 1, "round {round}");
    }
}

/// `Expired` while the store still remembers the token, `Unknown` once it has forgotten it (a
/// shared store lets Redis drop the record at the expiry instant): the client gets the same
/// `401` either way, and nothing is spent.
pub(crate) async fn token_past_a_tiny_ttl_is_refused(store: S) {
    let grant = store
        .start("alice", Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let result = store.rotate(&grant.token, TTL).await;
    assert!(
        matches!(result, Err(SessionError::Expired | SessionError::Unknown)),
        "{result:?}"
    );
}

pub(crate) async fn garbage_and_never_issued_tokens_are_unknown(store: S) {
    let grant = store.start("alice", TTL).await.unwrap();
    let mut tampered = grant.token.clone().into_bytes();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let never_issued = URL_SAFE_NO_PAD.encode([7u8; 32]);

    let huge = "A".repeat(1024 * 1024);
    let not_base64 = "!".repeat(TOKEN_LEN);
    let padded = format!("{}=", &grant.token[..TOKEN_LEN - 1]);
    let multibyte = "é".repeat(TOKEN_LEN);
    for garbage in [
        "",
        huge.as_str(),
        not_base64.as_str(),
        padded.as_str(),
        multibyte.as_str(),
        tampered.as_str(),
        never_issued.as_str(),
        &grant.session_id,
    ] {
        let result = store.rotate(garbage, TTL).await;
        assert!(matches!(result, Err(SessionError::Unknown)), "{result:?}");
    }
    // None of it disturbed the real token.
    assert!(store.rotate(&grant.token, TTL).await.is_ok());
}

pub(crate) async fn revoked_session_refuses_rotation(store: S) {
    let grant = store.start("alice", TTL).await.unwrap();

    assert_eq!(
        store.revoke(&grant.session_id).await.unwrap().as_deref(),
        Some("alice")
    );
    let result = store.rotate(&grant.token, TTL).await.unwrap_err();
    let SessionError::Revoked { session_id } = result else {
        panic!("expected a revoked session, got {result:?}");
    };
    assert_eq!(session_id, grant.session_id);
}

pub(crate) async fn revoke_is_idempotent_and_reports_unknown_sessions(store: S) {
    let grant = store.start("alice", TTL).await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            store.revoke(&grant.session_id).await.unwrap().as_deref(),
            Some("alice")
        );
    }
    assert_eq!(store.revoke("no-such-session").await.unwrap(), None);
}

pub(crate) async fn revoke_user_can_spare_one_session(store: S) {
    let kept = store.start("alice", TTL).await.unwrap();
    let ended = store.start("alice", TTL).await.unwrap();
    let revoked = store
        .revoke_user("alice", Some(&kept.session_id))
        .await
        .unwrap();
    assert_eq!(revoked, vec![ended.session_id.clone()]);
    assert!(store.rotate(&kept.token, TTL).await.is_ok());
    assert!(matches!(
        store.rotate(&ended.token, TTL).await,
        Err(SessionError::Revoked { .. })
    ));
}

pub(crate) async fn revoke_user_revokes_every_session_of_that_user_only(store: S) {
    let alice_1 = store.start("alice", TTL).await.unwrap();
    let alice_2 = store.start("alice", TTL).await.unwrap();
    let alice_2_next = store.rotate(&alice_2.token, TTL).await.unwrap().next;
    let bob = store.start("bob", TTL).await.unwrap();

    let mut expected = vec![alice_1.session_id.clone(), alice_2.session_id.clone()];
    expected.sort();
    assert_eq!(store.revoke_user("alice", None).await.unwrap(), expected);
    // Already revoked sessions are still reported while they are remembered.
    assert_eq!(store.revoke_user("alice", None).await.unwrap(), expected);

    assert!(matches!(
        store.rotate(&alice_1.token, TTL).await,
        Err(SessionError::Revoked { .. })
    ));
    assert!(matches!(
        store.rotate(&alice_2_next.token, TTL).await,
        Err(SessionError::Revoked { .. })
    ));
    assert!(store.rotate(&bob.token, TTL).await.is_ok());
    assert!(store.revoke_user("nobody", None).await.unwrap().is_empty());
}
