//! Brute-force throttle for password logins.
//!
//! Every attempt is counted twice: against the login name, which stops a distributed attack on
//! one account, and against the client address, which stops one client from spraying many
//! accounts. The throttle never looks at whether the account exists, so unknown and existing
//! names are counted and refused alike and the throttle reveals nothing about which exist.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::rate::{LocalRateLimiter, RateKey, RateLimiter, RateQuota, spawn_housekeeping};
use super::redis_rate::RedisRateLimiter;
use crate::redis::Redis;

/// Prefix of login-name keys, so they never share a bucket with a per-user request limit even
/// when both live in one backend.
const USERNAME_KEY_PREFIX: &str = "login:";

/// The longest login name (in characters) used as a key; longer input is truncated so that a
/// client cannot make the limiter store arbitrarily large keys. Real usernames are far shorter.
pub const MAX_USERNAME_KEY_CHARS: usize = 64;

/// The wait reported when a limiter backend cannot be reached: logins fail closed, because an
/// unthrottled password endpoint is worse than a short outage of it.
pub const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A login attempt refused because its name or its address has used up its attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many login attempts; retry after {} s", retry_after.as_secs())]
pub struct LoginThrottled {
    /// How long to wait before trying again, in whole seconds, at least 1 s.
    pub retry_after: Duration,
}

/// Counts login attempts per login name and per client address.
#[derive(Clone)]
pub struct LoginThrottle {
    per_username: Arc<dyn RateLimiter>,
    per_ip: Arc<dyn RateLimiter>,
}

impl LoginThrottle {
    /// A throttle counting attempts in the given limiters. `per_username` may be shared with
    /// other limits: its keys carry a prefix of their own.
    pub fn new(per_username: Arc<dyn RateLimiter>, per_ip: Arc<dyn RateLimiter>) -> Self {
        Self {
            per_username,
            per_ip,
        }
    }

    /// A throttle with two in-process limiters enforcing the given quotas.
    pub fn local(per_username: RateQuota, per_ip: RateQuota) -> Self {
        Self::new(
            Arc::new(LocalRateLimiter::new(per_username)),
            Arc::new(LocalRateLimiter::new(per_ip)),
        )
    }

    /// A throttle whose budgets live in Redis and are shared by every node: the per-name
    /// budgets under `{prefix}:rate:login-user:…` and the per-address ones under
    /// `{prefix}:rate:login-ip:…`, apart from each other and from the request limiter's
    /// `{prefix}:rate:…`, so that logging in never spends a client's request budget.
    pub fn redis(redis: Redis, per_username: RateQuota, per_ip: RateQuota) -> Self {
        Self::new(
            Arc::new(RedisRateLimiter::with_namespace(
                redis.clone(),
                per_username,
                "login-user",
            )),
            Arc::new(RedisRateLimiter::with_namespace(redis, per_ip, "login-ip")),
        )
    }

    /// Counts one login attempt for this username AND this IP; refused if either is exhausted.
    ///
    /// Unknown usernames are counted exactly like existing ones (no enumeration). The address
    /// is checked first and a refused address does not count against the name, so a single
    /// client hammering one account cannot lock its owner out faster than its own address
    /// budget allows. Without an address (no socket peer), only the name is counted. A backend
    /// that cannot be reached refuses the attempt (see [`UNAVAILABLE_RETRY_AFTER`]).
    pub async fn check(&self, username: &str, ip: Option<IpAddr>) -> Result<(), LoginThrottled> {
        if let Some(ip) = ip {
            count(self.per_ip.as_ref(), &RateKey::ip(ip)).await?;
        }
        count(self.per_username.as_ref(), &username_key(username)).await
    }

    /// Spawns housekeeping for both limiters (see [`spawn_housekeeping`]); the tasks end once
    /// the throttle and its clones are dropped. Must be called from within a Tokio runtime.
    pub fn spawn_housekeeping(&self, every: Duration) -> [tokio::task::JoinHandle<()>; 2] {
        [
            spawn_housekeeping(Arc::clone(&self.per_username), every),
            spawn_housekeeping(Arc::clone(&self.per_ip), every),
        ]
    }
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("per_username", &self.per_username.quota())
            .field("per_ip", &self.per_ip.quota())
            .finish()
    }
}

/// Counts one attempt against `key`.
async fn count(limiter: &dyn RateLimiter, key: &RateKey) -> Result<(), LoginThrottled> {
    match limiter.check(key).await {
        Ok(decision) if decision.allowed => Ok(()),
        Ok(decision) => Err(LoginThrottled {
            retry_after: decision.retry_after.unwrap_or(UNAVAILABLE_RETRY_AFTER),
        }),
        Err(error) => {
            tracing::warn!(%error, "login throttle unavailable; refusing the attempt");
            Err(LoginThrottled {
                retry_after: UNAVAILABLE_RETRY_AFTER,
            })
        }
    }
}

/// The bucket of a login name: prefixed, and truncated to [`MAX_USERNAME_KEY_CHARS`].
fn username_key(username: &str) -> RateKey {
    let end = username
        .char_indices()
        .nth(MAX_USERNAME_KEY_CHARS)
        .map_or(username.len(), |(index, _)| index);
    RateKey::User(format!("{USERNAME_KEY_PREFIX}{}", &username[..end]))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::num::NonZeroU32;

    use super::super::rate::{LimitError, RateDecision};
    use super::*;

    fn quota(per_minute: u32, burst: u32) -> RateQuota {
        RateQuota {
            per_minute: NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
        }
    }

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)))
    }

    /// A backend that is always down.
    struct Unavailable;

    #[async_trait::async_trait]
    impl RateLimiter for Unavailable {
        async fn check(&self, _key: &RateKey) -> Result<RateDecision, LimitError> {
            Err(LimitError::Unavailable("connection refused".into()))
        }

        fn quota(&self) -> RateQuota {
            quota(1, 1)
        }
    }

    #[tokio::test]
    async fn a_username_is_refused_after_its_budget_from_any_address() {
        let throttle = LoginThrottle::local(quota(1, 3), quota(1000, 1000));
        for last in 1..=3 {
            assert_eq!(throttle.check("alice", ip(last)).await, Ok(()));
        }
        let refused = throttle.check("alice", ip(4)).await;
        assert!(refused.is_err());
        assert_eq!(throttle.check("bob", ip(4)).await, Ok(()));
    }

    #[tokio::test]
    async fn an_address_is_refused_after_its_budget_for_any_username() {
        let throttle = LoginThrottle::local(quota(1000, 1000), quota(1, 3));
        for name in ["alice", "bob", "carol"] {
            assert_eq!(throttle.check(name, ip(1)).await, Ok(()));
        }
        assert!(throttle.check("dave", ip(1)).await.is_err());
        assert_eq!(throttle.check("dave", ip(2)).await, Ok(()));
    }

    #[tokio::test]
    async fn unknown_and_existing_usernames_get_the_same_budget_and_refusal() {
        let throttle = LoginThrottle::local(quota(1, 2), quota(1000, 1000));
        let mut outcomes = Vec::new();
        for name in ["user1", "no-such-user-anywhere"] {
            let mut attempts = Vec::new();
            for _ in 0..3 {
                attempts.push(throttle.check(name, ip(1)).await);
            }
            outcomes.push(attempts);
        }
        assert_eq!(outcomes[0], outcomes[1]);
        assert!(outcomes[0][2].is_err());
    }

    #[tokio::test]
    async fn the_refusal_says_how_long_to_wait_in_whole_seconds() {
        let throttle = LoginThrottle::local(quota(1, 1), quota(1000, 1000));
        assert_eq!(throttle.check("alice", None).await, Ok(()));
        let refused = throttle.check("alice", None).await.err();
        let wait = refused.map(|r| r.retry_after).unwrap_or_default();
        assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(60));
        assert_eq!(wait.subsec_nanos(), 0);
        let message = refused.map(|r| r.to_string()).unwrap_or_default();
        assert!(message.contains("retry after"), "{message}");
    }

    #[tokio::test]
    async fn attempts_refused_by_address_do_not_count_against_the_username() {
        let throttle = LoginThrottle::local(quota(1, 2), quota(1, 1));
        assert_eq!(throttle.check("alice", ip(1)).await, Ok(()));
        for _ in 0..5 {
            assert!(throttle.check("alice", ip(1)).await.is_err());
        }
        assert_eq!(
            throttle.check("alice", ip(2)).await,
            Ok(()),
            "the owner can still log in from elsewhere"
        );
    }

    #[tokio::test]
    async fn without_an_address_only_the_username_is_counted() {
        let per_ip: Arc<dyn RateLimiter> = Arc::new(LocalRateLimiter::new(quota(1, 1)));
        let throttle = LoginThrottle::new(
            Arc::new(LocalRateLimiter::new(quota(1000, 1000))),
            Arc::clone(&per_ip),
        );
        for _ in 0..3 {
            assert_eq!(throttle.check("alice", None).await, Ok(()));
        }
        let address = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let ip_still_fresh = per_ip.check(&RateKey::ip(address)).await;
        assert!(matches!(ip_still_fresh, Ok(decision) if decision.allowed));
    }

    #[tokio::test]
    async fn login_buckets_do_not_share_the_per_user_request_budget() {
        let shared: Arc<dyn RateLimiter> = Arc::new(LocalRateLimiter::new(quota(1, 1)));
        let throttle = LoginThrottle::new(
            Arc::clone(&shared),
            Arc::new(LocalRateLimiter::new(quota(1000, 1000))),
        );
        assert_eq!(throttle.check("alice", ip(1)).await, Ok(()));
        assert!(throttle.check("alice", ip(1)).await.is_err());
        let requests = shared.check(&RateKey::user("alice")).await;
        assert!(matches!(requests, Ok(decision) if decision.allowed));
    }

    #[tokio::test]
    async fn an_unavailable_backend_refuses_the_attempt() {
        let throttle = LoginThrottle::new(Arc::new(Unavailable), Arc::new(Unavailable));
        assert_eq!(
            throttle.check("alice", ip(1)).await,
            Err(LoginThrottled {
                retry_after: UNAVAILABLE_RETRY_AFTER
            })
        );
    }

    #[test]
    fn username_keys_are_prefixed_and_capped_in_length() {
        assert_eq!(username_key("alice"), RateKey::User("login:alice".into()));
        let long = "x".repeat(10_000);
        let RateKey::User(key) = username_key(&long) else {
            panic!("a username key is a user key");
        };
        assert_eq!(key.len(), "login:".len() + MAX_USERNAME_KEY_CHARS);
    }

    #[test]
    fn username_keys_are_cut_on_character_boundaries() {
        let long = "é".repeat(100);
        assert_eq!(
            username_key(&long),
            RateKey::User(format!("login:{}", "é".repeat(MAX_USERNAME_KEY_CHARS)))
        );
    }

    #[tokio::test]
    async fn names_differing_only_after_the_cap_share_a_bucket() {
        let throttle = LoginThrottle::local(quota(1, 1), quota(1000, 1000));
        let base = "a".repeat(MAX_USERNAME_KEY_CHARS);
        assert_eq!(throttle.check(&format!("{base}1"), ip(1)).await, Ok(()));
        assert!(throttle.check(&format!("{base}2"), ip(1)).await.is_err());
    }

    #[tokio::test]
    async fn housekeeping_runs_for_both_limiters_until_the_throttle_is_dropped() {
        let throttle = LoginThrottle::local(quota(6000, 1), quota(6000, 1));
        assert_eq!(throttle.check("alice", ip(1)).await, Ok(()));
        let tasks = throttle.spawn_housekeeping(Duration::from_millis(10));
        drop(throttle);
        for task in tasks {
            let stopped = tokio::time::timeout(Duration::from_secs(10), task).await;
            assert!(matches!(stopped, Ok(Ok(()))));
        }
    }
}
