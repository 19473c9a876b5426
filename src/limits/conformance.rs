//! The behaviour every [`RateLimiter`] must show, written against the trait only and on the
//! real clock, so the in-process and the Redis limiters are held to the same decisions and the
//! same headers.
//!
//! An implementation runs the whole suite with
//! `rate_limiter_conformance_tests!(path_to_async_fn_taking_a_RateQuota_returning_a_fresh_Arc_dyn_RateLimiter)`
//! in its test module. Quotas are chosen so that the time a check takes (milliseconds) is tiny
//! next to a cell (a second or a minute): the outcomes do not depend on the machine's speed.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use super::rate::{RateDecision, RateKey, RateLimiter, RateQuota};

/// Generates one `#[tokio::test]` per check below, each on fresh limiters from `$fresh`.
macro_rules! rate_limiter_conformance_tests {
    ($fresh:path) => {
        $crate::limits::conformance::rate_limiter_conformance_tests!(@each $fresh;
            a_burst_of_n_is_allowed_and_request_n_plus_one_is_refused,
            remaining_counts_down_with_each_request,
            allowed_decisions_carry_no_retry_after_and_the_burst_as_limit,
            different_keys_have_independent_budgets,
            ipv6_addresses_of_one_slash_64_share_a_budget,
            ipv4_mapped_ipv6_shares_the_budget_of_the_ipv4_address,
            reset_after_counts_whole_cells_while_allowed,
            a_refused_request_consumes_nothing,
            a_refusal_carries_retry_after_in_whole_seconds_and_its_headers,
            the_budget_recovers_after_the_replenish_interval,
            the_quota_is_the_one_enforced,
        );
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::limits::conformance::$check($fresh).await;
            }
        )*
    };
}
pub(crate) use rate_limiter_conformance_tests;

fn quota(per_minute: u32, burst: u32) -> RateQuota {
    RateQuota {
        per_minute: NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN),
        burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
    }
}

fn ip(last: u8) -> RateKey {
    RateKey::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)))
}

async fn check(limiter: &dyn RateLimiter, key: &RateKey) -> RateDecision {
    match limiter.check(key).await {
        Ok(decision) => decision,
        Err(error) => panic!("the limiter could not decide: {error}"),
    }
}

pub(crate) async fn a_burst_of_n_is_allowed_and_request_n_plus_one_is_refused<F, Fut>(fresh: F)
where
    F: Fn(RateQuota) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    let limiter = fresh(quota(1, 5)).await;
    for _ in 0..5 {
        assert!(check(limiter.as_ref(), &ip(1)).await.allowed);
    }
    let refused = check(limiter.as_ref(), &ip(1)).await;
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
}

pub(crate) async fn remaining_counts_down_with_each_request<F, Fut>(fresh: F)
where
    F: Fn(RateQuota) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    let limiter = fresh(quota(1, 4)).await;
    let mut remaining = Vec::new();
    for _ in 0..5 {
        remaining.push(check(limiter.as_ref(), &ip(1)).await.remaining);
    }
    assert_eq!(remaining, [3, 2, 1, 0, 0]);
}

pub(crate) async fn allowed_decisions_carry_no_retry_after_and_the_burst_as_limit<F, Fut>(fresh: F)
where
    F: Fn(RateQuota) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    let limiter = fresh(quota(60, 7)).await;
    let decision = check(limiter.as_ref(), &ip(1)).await;
    assert!(decision.allowed);
    assert_eq!(decision.limit, 7);
    assert_eq!(decision.retry_after, None);
    let headers: Vec<_> = decision.headers().map(|(name, _)| name).collect();
    assert_eq!(
        headers,
        ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]
    );
}

pub(crate) async fn different_keys_have_independent_budgets<F, Fut>(fresh: F)
where
    F: Fn(RateQuota) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    let limiter = fresh(quota(1, 1)).await;
    let limiter = limiter.as_ref();
    assert!(check(limiter, &ip(1)).await.allowed);
    assert!(!check(limiter, &ip(1)).await.allowed);
    assert!(check(limiter, &ip(2)).await.allowed);
    assert!(check(limiter, &RateKey::user("alice")).await.allowed);
    assert!(check(limiter, &RateKey::user("bob")).await.allowed);
    assert!(!check(limiter, &RateKey::user("alice")).await.allowed);
}

pub(crate) async fn ipv6_addresses_of_one_slash_64_share_a_budget<F, Fut>(fresh: F)
where
    F: Fn(RateQuota) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    let limiter = fresh(quota(1, 1)).await;
    let limiter = limiter.as_ref();
    let address = |text: &str| text.parse().unwrap_or(Ipv6Addr::LOCALHOST);
    let first = address("2001:db8:1:2::1");
    let same_64 = address("2001:db8:1:2:ffff::9");
    let other_64 = address("2001:db8:1:3::1");
    // Keys built by hand are folded too, not only those from `RateKey::ip`.
    assert!(check(limiter, &RateKey::Ip(first.into())).await.allowed);
    assert!(!check(limiter, &RateKey::Ip(same_64.into())).await.allowed);
    assert!(check(limiter, &RateKey::ip(other_64.into())).await.allowed);
}

pub(crate) async fn ipv4_mapped_ipv6_shares_the_budget_of_the_ipv4_address<F, Fut>(fresh: F)
where
    F: Fn(RateQuota) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    let limiter = fresh(quota(1, 1)).await;
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
    assert!(check(limiter.as_ref(), &RateKey::Ip(mapped)).await.allowed);
    assert!(!check(limiter.as_ref(), &ip(1)).await.allowed);
}

pub(crate) async fn reset_after_counts_whole_cells_while_allowed<F, Fut>(fresh: F)
where
    F: Fn(RateQuota) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    // One request per minute, three at once.
    let limiter = fresh(quota(1, 3)).await;
    let mut resets = Vec::new();
    for _ in 0..3 {
        resets.push(check(limiter.as_ref(), &ip(1)).await.reset_after);
    }
    assert_eq!(resets, [60, 120, 180].map(Duration::from_secs));
    let refused = check(limiter.as_ref(), &ip(1)).await;
    assert!(
        refused.reset_after <= Duration::from_secs(180)
            && refused.reset_after > Duration::from_secs(170),
        "{refused:?}"
    );
}

pub(crate) async fn a_refused_request_consumes_nothing<F, Fut>(fresh: F)
where
    F: Fn(RateQuota) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    // A minute per cell: a refusal that consumed a cell would push the reset a minute later.
    let limiter = fresh(quota(1, 1)).await;
    assert!(check(limiter.as_ref(), &ip(1)).await.allowed);
    let mut last = Duration::MAX;
    for _ in 0..10 {
        let refused = check(limiter.as_ref(), &ip(1)).await;
        assert!(!refused.allowed);
        assert!(refused.reset_after <= last, "{refused:?} after {last:?}");
        last = refused.reset_after;
    }
    assert!(last <= Duration::from_secs(60), "{last:?}");
}

pub(crate) async fn a_refusal_carries_retry_after_in_whole_seconds_and_its_headers<F, Fut>(fresh: F)
where
    F: Fn(RateQuota) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    let limiter = fresh(quota(1, 2)).await;
    check(limiter.as_ref(), &ip(1)).await;
    check(limiter.as_ref(), &ip(1)).await;
    let refused = check(limiter.as_ref(), &ip(1)).await;
    let wait = refused.retry_after.unwrap_or_default();
    assert!(
        wait >= Duration::from_secs(1) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    assert_eq!(wait.subsec_nanos(), 0, "whole seconds");
    let headers: Vec<_> = refused.headers().collect();
    assert_eq!(headers[0], ("RateLimit-Limit", 2));
    assert_eq!(headers[1], ("RateLimit-Remaining", 0));
    assert_eq!(headers[3], ("Retry-After", wait.as_secs()));
    assert!(headers[2].1 > 60 && headers[2].1 <= 120, "{headers:?}");
}

pub(crate) async fn the_budget_recovers_after_the_replenish_interval<F, Fut>(fresh: F)
where
    F: Fn(RateQuota) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    // 120 per minute: one request every 500 ms, so the refusal right after the burst has
    // plenty of slack, and the sleep gives the whole burst back more than twice over.
    let limiter = fresh(quota(120, 2)).await;
    assert!(check(limiter.as_ref(), &ip(1)).await.allowed);
    assert!(check(limiter.as_ref(), &ip(1)).await.allowed);
    assert!(!check(limiter.as_ref(), &ip(1)).await.allowed);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let recovered = check(limiter.as_ref(), &ip(1)).await;
    assert!(recovered.allowed);
    assert!(recovered.remaining >= 1, "{recovered:?}");
}

pub(crate) async fn the_quota_is_the_one_enforced<F, Fut>(fresh: F)
where
    F: Fn(RateQuota) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>>,
{
    let limiter = fresh(quota(30, 4)).await;
    assert_eq!(limiter.quota(), quota(30, 4));
}
