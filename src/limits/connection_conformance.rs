//! The behaviour every [`ConnectionLimit`] must show, written against the trait only, so the
//! in-process and the cluster-wide limiters are held to the same decisions and report the same
//! counts for `/health`.
//!
//! An implementation runs the whole suite with
//! `connection_limit_conformance_tests!(path_to_async_fn_taking_the_max_per_ip_returning_a_fresh_ConnectionLimits)`
//! in its test module. A shared limiter gives its Redis slot back in the background after the
//! permit is dropped, so a check that needs a freed slot again polls for it with a deadline
//! (no fixed sleep, no timing assertion); this node's counts, though, change at once for both.
//! What takes several nodes or a broken Redis stays in the shared limiter's own tests.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client_ip::ip_bucket;
use super::connections::{ConnectionLimit, ConnectionLimits, ConnectionPermit, TooManyConnections};

/// Generates one `#[tokio::test]` per check below, each on fresh limiters from `$fresh`.
macro_rules! connection_limit_conformance_tests {
    ($fresh:path) => {
        $crate::limits::connection_conformance::connection_limit_conformance_tests!(@each $fresh;
            n_connections_per_address_are_allowed_and_the_next_is_refused,
            different_addresses_have_independent_budgets,
            ipv6_addresses_of_one_slash_64_share_a_budget,
            ipv4_mapped_ipv6_shares_the_budget_of_the_ipv4_address,
            a_permit_names_the_bucket_it_counts_against,
            dropping_a_permit_frees_its_slot,
            a_refused_acquire_takes_nothing,
            a_limit_of_zero_refuses_every_connection,
            counts_for_health_follow_acquires_and_releases,
        );
        $crate::limits::connection_conformance::connection_limit_conformance_tests!(@concurrent $fresh;
            concurrent_acquires_grant_exactly_the_limit,
            concurrent_churn_never_exceeds_the_limit_and_gives_every_slot_back,
        );
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::limits::connection_conformance::$check($fresh).await;
            }
        )*
    };
    (@concurrent $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                $crate::limits::connection_conformance::$check($fresh).await;
            }
        )*
    };
}
pub(crate) use connection_limit_conformance_tests;

/// Hang guard for a slot that must come back; never a timing assertion.
const DEADLINE: Duration = Duration::from_secs(10);

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn v6(text: &str) -> IpAddr {
    IpAddr::V6(text.parse().unwrap_or(Ipv6Addr::LOCALHOST))
}

/// Takes `n` slots for `ip`, each of which must be granted.
async fn take(limiter: &dyn ConnectionLimit, ip: IpAddr, n: u32) -> Vec<ConnectionPermit> {
    let mut held = Vec::new();
    for i in 0..n {
        match limiter.try_acquire(ip).await {
            Ok(permit) => held.push(permit),
            Err(refused) => panic!("slot {i} of {n} for {ip} refused: {refused}"),
        }
    }
    held
}

fn refused(limit: u32) -> Option<TooManyConnections> {
    Some(TooManyConnections { limit })
}

/// Polls until a slot for `ip` is granted: a released slot may come back asynchronously.
async fn eventually_acquire(limiter: &dyn ConnectionLimit, ip: IpAddr) -> ConnectionPermit {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match limiter.try_acquire(ip).await {
            Ok(permit) => return permit,
            Err(refused) => {
                assert!(
                    Instant::now() < deadline,
                    "{ip} never got a slot back: {refused}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Asserts that `ip`'s whole budget is free again (eventually) and no more than that.
async fn assert_whole_budget_comes_back(limiter: &dyn ConnectionLimit, ip: IpAddr) {
    let max = limiter.max_per_ip();
    let mut held = Vec::new();
    for _ in 0..max {
        held.push(eventually_acquire(limiter, ip).await);
    }
    assert_eq!(limiter.try_acquire(ip).await.err(), refused(max), "{ip}");
}

pub(crate) async fn n_connections_per_address_are_allowed_and_the_next_is_refused<F, Fut>(fresh: F)
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = ConnectionLimits>,
{
    let limiter = fresh(3).await;
    let limiter = limiter.as_ref();
    assert_eq!(limiter.max_per_ip(), 3);
    let _held = take(limiter, ip(1), 3).await;
    for _ in 0..3 {
        assert_eq!(limiter.try_acquire(ip(1)).await.err(), refused(3));
    }
    assert_eq!(limiter.local().current(ip(1)), 3);
}

pub(crate) async fn different_addresses_have_independent_budgets<F, Fut>(fresh: F)
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = ConnectionLimits>,
{
    let limiter = fresh(1).await;
    let limiter = limiter.as_ref();
    let _first = take(limiter, ip(1), 1).await;
    assert_eq!(limiter.try_acquire(ip(1)).await.err(), refused(1));
    let others = [ip(2), ip(3), v6("2001:db8:1:2::1"), v6("2001:db8:1:3::1")];
    for other in others {
        let _held = take(limiter, other, 1).await;
    }
    // Each of those was dropped again; the first address is still full.
    assert_eq!(limiter.try_acquire(ip(1)).await.err(), refused(1));
}

pub(crate) async fn ipv6_addresses_of_one_slash_64_share_a_budget<F, Fut>(fresh: F)
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = ConnectionLimits>,
{
    let limiter = fresh(2).await;
    let limiter = limiter.as_ref();
    let first = v6("2001:db8:1:2::1");
    let same_64 = v6("2001:db8:1:2:ffff::9");
    let also_same_64 = v6("2001:db8:1:2::abcd");
    let other_64 = v6("2001:db8:1:3::1");
    let _held = [
        take(limiter, first, 1).await,
        take(limiter, same_64, 1).await,
    ];
    assert_eq!(limiter.try_acquire(also_same_64).await.err(), refused(2));
    assert_eq!(limiter.local().current(also_same_64), 2);
    let _other = take(limiter, other_64, 2).await;
}

pub(crate) async fn ipv4_mapped_ipv6_shares_the_budget_of_the_ipv4_address<F, Fut>(fresh: F)
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = ConnectionLimits>,
{
    let limiter = fresh(1).await;
    let limiter = limiter.as_ref();
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
    let _held = take(limiter, mapped, 1).await;
    assert_eq!(limiter.try_acquire(ip(1)).await.err(), refused(1));
    assert_eq!(limiter.local().current(ip(1)), 1);
}

pub(crate) async fn a_permit_names_the_bucket_it_counts_against<F, Fut>(fresh: F)
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = ConnectionLimits>,
{
    let limiter = fresh(1).await;
    let limiter = limiter.as_ref();
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
    for (address, bucket) in [
        (ip(1), ip(1)),
        (v6("2001:db8:1:2:3:4:5:6"), v6("2001:db8:1:2::")),
        (mapped, ip(7)),
    ] {
        assert_eq!(ip_bucket(address), bucket, "the rule this check relies on");
        let permit = take(limiter, address, 1).await;
        assert_eq!(permit[0].ip(), bucket, "{address}");
    }
}

pub(crate) async fn dropping_a_permit_frees_its_slot<F, Fut>(fresh: F)
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = ConnectionLimits>,
{
    let limiter = fresh(1).await;
    let limiter = limiter.as_ref();
    let held = take(limiter, ip(1), 1).await;
    assert_eq!(limiter.try_acquire(ip(1)).await.err(), refused(1));
    drop(held);
    assert_eq!(
        limiter.local().current(ip(1)),
        0,
        "this node's count at once"
    );
    let again = eventually_acquire(limiter, ip(1)).await;
    assert_eq!(again.ip(), ip(1));
}

pub(crate) async fn a_refused_acquire_takes_nothing<F, Fut>(fresh: F)
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = ConnectionLimits>,
{
    let limiter = fresh(2).await;
    let limiter = limiter.as_ref();
    let mut held = take(limiter, ip(1), 2).await;
    for _ in 0..10 {
        assert_eq!(limiter.try_acquire(ip(1)).await.err(), refused(2));
    }
    assert_eq!(limiter.local().current(ip(1)), 2);
    assert_eq!(limiter.local().total(), 2);

    // One slot freed is one slot to take, not eleven.
    held.pop();
    held.push(eventually_acquire(limiter, ip(1)).await);
    assert_eq!(limiter.try_acquire(ip(1)).await.err(), refused(2));
}

pub(crate) async fn a_limit_of_zero_refuses_every_connection<F, Fut>(fresh: F)
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = ConnectionLimits>,
{
    let limiter = fresh(0).await;
    assert_eq!(limiter.max_per_ip(), 0);
    for address in [ip(1), v6("2001:db8::1")] {
        assert_eq!(limiter.try_acquire(address).await.err(), refused(0));
    }
    assert_eq!(
        (limiter.local().total(), limiter.local().tracked_ips()),
        (0, 0)
    );
}

pub(crate) async fn counts_for_health_follow_acquires_and_releases<F, Fut>(fresh: F)
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = ConnectionLimits>,
{
    let limiter = fresh(3).await;
    let limiter = limiter.as_ref();
    let counts = |limiter: &dyn ConnectionLimit| {
        let local = limiter.local();
        (
            local.total(),
            local.tracked_ips(),
            [1, 2, 3, 4].map(|last| local.current(ip(last))),
        )
    };
    assert_eq!(counts(limiter), (0, 0, [0, 0, 0, 0]));

    let mut held = Vec::new();
    for (last, n) in [(1, 2), (2, 1), (3, 3)] {
        held.extend(take(limiter, ip(last), n).await);
    }
    assert_eq!(counts(limiter), (6, 3, [2, 1, 3, 0]));

    held.retain(|permit| permit.ip() != ip(3));
    assert_eq!(counts(limiter), (3, 2, [2, 1, 0, 0]));
    // The last one taken: the only connection of the second address.
    held.pop();
    assert_eq!(counts(limiter), (2, 1, [2, 0, 0, 0]));
    held.clear();
    assert_eq!(
        counts(limiter),
        (0, 0, [0, 0, 0, 0]),
        "idle addresses are forgotten"
    );
}

pub(crate) async fn concurrent_acquires_grant_exactly_the_limit<F, Fut>(fresh: F)
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = ConnectionLimits>,
{
    const MAX: u32 = 5;
    const TASKS: usize = 48;
    let limiter = fresh(MAX).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let limiter = Arc::clone(&limiter);
        let barrier = Arc::clone(&barrier);
        tasks.spawn(async move {
            barrier.wait().await;
            limiter.try_acquire(ip(1)).await
        });
    }
    let mut granted = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        match outcome.expect("the acquiring task finishes") {
            Ok(permit) => granted.push(permit),
            Err(refusal) => assert_eq!(Some(refusal), refused(MAX)),
        }
    }
    assert_eq!(granted.len(), MAX as usize);
    assert_eq!(limiter.local().current(ip(1)), MAX);
    drop(granted);
    assert_eq!(limiter.local().total(), 0);
    assert_whole_budget_comes_back(limiter.as_ref(), ip(1)).await;
}

pub(crate) async fn concurrent_churn_never_exceeds_the_limit_and_gives_every_slot_back<F, Fut>(
    fresh: F,
) where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = ConnectionLimits>,
{
    const MAX: u32 = 3;
    const TASKS: usize = 8;
    const ROUNDS: usize = 200;
    let limiter = fresh(MAX).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let limiter = Arc::clone(&limiter);
        let barrier = Arc::clone(&barrier);
        tasks.spawn(async move {
            barrier.wait().await;
            let mut held = Vec::new();
            for round in 0..ROUNDS {
                // Half the tasks share one address, the rest spread over two.
                let address = if task % 2 == 0 {
                    ip(1)
                } else {
                    ip(if round % 2 == 0 { 2 } else { 3 })
                };
                if let Ok(permit) = limiter.try_acquire(address).await {
                    let now = limiter.local().current(address);
                    assert!(now <= MAX, "{now} connections from {address}");
                    held.push(permit);
                }
                if round % 3 == 0 || held.len() > 2 {
                    held.clear();
                }
            }
        });
    }
    while let Some(outcome) = tasks.join_next().await {
        outcome.expect("no task saw the limit exceeded");
    }
    assert_eq!(limiter.local().total(), 0);
    assert_eq!(
        limiter.local().tracked_ips(),
        0,
        "no entries are left behind"
    );
    for last in 1..=3 {
        assert_whole_budget_comes_back(limiter.as_ref(), ip(last)).await;
    }
}
