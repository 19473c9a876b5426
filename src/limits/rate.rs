//! Request rate limits: the [`RateLimiter`] trait and its in-process GCRA implementation.
//!
//! The trait is deliberately small and asynchronous, and speaks only in plain values
//! ([`RateKey`], [`RateQuota`], [`RateDecision`]), so that a cluster-wide limiter backed by a
//! shared store (a Redis GCRA script, say) can sit behind it later without any caller changing:
//! it maps a [`RateKey`] to a store key, runs the same GCRA step remotely, and reports a failing
//! store as [`LimitError::Unavailable`]. [`LocalRateLimiter`] is the single-process
//! implementation, built on `governor`'s keyed GCRA limiter.

use std::borrow::Cow;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Governor};

use super::client_ip::ip_bucket;

/// Header carrying the burst size of the policy.
pub const HEADER_LIMIT: &str = "RateLimit-Limit";
/// Header carrying the requests still allowed right now.
pub const HEADER_REMAINING: &str = "RateLimit-Remaining";
/// Header carrying the seconds until the full burst is available again.
pub const HEADER_RESET: &str = "RateLimit-Reset";
/// Header carrying the seconds to wait before retrying a refused request.
pub const HEADER_RETRY_AFTER: &str = "Retry-After";

/// Who a limit is counted against.
///
/// Build IP keys with [`RateKey::ip`], which folds an IPv6 client into its `/64` (see
/// [`ip_bucket`]); [`LocalRateLimiter`] applies the same folding to keys built by hand.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// An anonymous client, by address.
    Ip(IpAddr),
    /// An authenticated principal (or any other named subject, such as a login name).
    User(String),
}

impl RateKey {
    /// The key for a client address: IPv4-mapped IPv6 becomes IPv4, and IPv6 is counted per
    /// `/64`, because one subscriber usually holds a whole `/64` and could otherwise rotate
    /// through fresh addresses to escape the limit.
    pub fn ip(addr: IpAddr) -> Self {
        Self::Ip(ip_bucket(addr))
    }

    /// The key for a named subject.
    pub fn user(name: impl Into<String>) -> Self {
        Self::User(name.into())
    }

    /// This key with its address folded by [`ip_bucket`]; borrowed when nothing changes.
    fn bucketed(&self) -> Cow<'_, RateKey> {
        match self {
            Self::Ip(addr) => {
                let bucket = ip_bucket(*addr);
                if bucket == *addr {
                    Cow::Borrowed(self)
                } else {
                    Cow::Owned(Self::Ip(bucket))
                }
            }
            Self::User(_) => Cow::Borrowed(self),
        }
    }
}

/// A GCRA policy: one cell every `60 s / per_minute`, up to `burst` cells at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateQuota {
    /// The sustained rate.
    pub per_minute: NonZeroU32,
    /// How many requests may arrive at once after a quiet period.
    pub burst: NonZeroU32,
}

impl RateQuota {
    /// A policy of `per_minute` requests per minute whose burst is the same number.
    pub const fn per_minute(per_minute: NonZeroU32) -> Self {
        Self {
            per_minute,
            burst: per_minute,
        }
    }

    /// The time it takes to earn back one request.
    pub fn replenish_interval(&self) -> Duration {
        Duration::from_secs(60) / self.per_minute.get()
    }

    pub(crate) fn to_governor(self) -> Quota {
        Quota::per_minute(self.per_minute).allow_burst(self.burst)
    }
}

/// The outcome of counting one request, with what the client should be told about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The burst size of the policy.
    pub limit: u32,
    /// Requests still allowed right now, after this one.
    pub remaining: u32,
    /// Time until the full burst is available again (counted in whole cells when allowed, so
    /// it may run up to one replenish interval long, never short).
    pub reset_after: Duration,
    /// `Some` exactly when refused: how long to wait, rounded up to whole seconds, at least 1 s.
    pub retry_after: Option<Duration>,
}

impl RateDecision {
    /// The response headers describing this decision, as `(name, value)` pairs:
    /// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (whole seconds, rounded up)
    /// and, when refused, `Retry-After` (whole seconds).
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, u64)> + use<> {
        let fixed = [
            (HEADER_LIMIT, u64::from(self.limit)),
            (HEADER_REMAINING, u64::from(self.remaining)),
            (HEADER_RESET, ceil_secs(self.reset_after)),
        ];
        let retry = self
            .retry_after
            .map(|wait| (HEADER_RETRY_AFTER, ceil_secs(wait)));
        fixed.into_iter().chain(retry)
    }
}

/// Whole seconds in `duration`, rounded up.
fn ceil_secs(duration: Duration) -> u64 {
    let secs = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        secs.saturating_add(1)
    } else {
        secs
    }
}

/// `duration` rounded up to whole seconds, and at least one second, so that a client honouring
/// `Retry-After` never comes back too early nor is told to retry immediately.
pub(super) fn retry_after(duration: Duration) -> Duration {
    Duration::from_secs(ceil_secs(duration).max(1))
}

/// Why a limiter could not reach a decision.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// The shared store behind the limiter did not answer. Callers choose whether to fail open
    /// or closed.
    #[error("rate limiter backend unavailable: {0}")]
    Unavailable(String),
}

/// Counts requests against per-key GCRA budgets.
///
/// Implementations must be usable from any transport and must not depend on where they run:
/// [`LocalRateLimiter`] keeps state in this process, and a Redis-backed GCRA implementation can
/// later implement this trait unchanged to share budgets across a cluster. Implementations
/// count [`RateKey::Ip`] per [`ip_bucket`] of the address, whoever built the key.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one request against `key`. A refused request consumes nothing.
    async fn check(&self, key: &RateKey) -> Result<RateDecision, LimitError>;

    /// The policy it enforces (for `RateLimit-Policy` and documentation).
    fn quota(&self) -> RateQuota;

    /// Forgets keys whose budget is full again, to bound memory. Backends whose entries
    /// expire on their own (a store with TTLs) need not do anything.
    fn retain_recent(&self) {}
}

type KeyedGovernor<C> =
    Governor<RateKey, DefaultKeyedStateStore<RateKey>, C, StateInformationMiddleware>;

/// In-process GCRA limiter: a `governor` keyed limiter whose middleware reports the remaining
/// capacity, so every decision carries its headers.
///
/// Memory grows with the number of distinct keys seen recently; call
/// [`LocalRateLimiter::retain_recent`] periodically (see [`spawn_housekeeping`]) to forget keys
/// whose budget is full again.
pub struct LocalRateLimiter<C: Clock = DefaultClock> {
    quota: RateQuota,
    cell: Duration,
    limiter: KeyedGovernor<C>,
}

impl LocalRateLimiter {
    /// A limiter enforcing `quota` on the monotonic clock.
    pub fn new(quota: RateQuota) -> Self {
        Self::with_clock(quota, DefaultClock::default())
    }
}

impl<C: Clock> LocalRateLimiter<C> {
    /// A limiter enforcing `quota` on `clock` (tests drive a fake clock this way).
    pub fn with_clock(quota: RateQuota, clock: C) -> Self {
        let governor_quota = quota.to_governor();
        Self {
            quota,
            cell: governor_quota.replenish_interval(),
            limiter: KeyedGovernor::new(governor_quota, DefaultKeyedStateStore::default(), clock),
        }
    }

    /// Forgets keys whose state is back to full capacity and releases the memory they held.
    pub fn retain_recent(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// The number of keys currently tracked.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }

    /// Counts one request against `key`; the synchronous core of [`RateLimiter::check`].
    pub fn check_now(&self, key: &RateKey) -> RateDecision {
        let key = key.bucketed();
        let limit = self.quota.burst.get();
        match self.limiter.check_key(&key) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                // The snapshot does not expose the theoretical arrival time, so the time to full
                // capacity is counted in whole cells: exact right after a burst, otherwise at
                // most one cell late, never early.
                let used = limit.saturating_sub(remaining);
                RateDecision {
                    allowed: true,
                    limit,
                    remaining,
                    reset_after: self.cell.saturating_mul(used),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                // The next cell conforms after `wait`; the rest of the burst follows one cell
                // interval apart.
                let reset_after = wait.saturating_add(self.cell.saturating_mul(limit - 1));
                RateDecision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    reset_after,
                    retry_after: Some(retry_after(wait)),
                }
            }
        }
    }
}

impl<C: Clock> std::fmt::Debug for LocalRateLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRateLimiter")
            .field("quota", &self.quota)
            .field("keys", &self.limiter.len())
            .finish()
    }
}

#[async_trait::async_trait]
impl<C> RateLimiter for LocalRateLimiter<C>
where
    C: Clock + Send + Sync + 'static,
{
    async fn check(&self, key: &RateKey) -> Result<RateDecision, LimitError> {
        Ok(self.check_now(key))
    }

    fn quota(&self) -> RateQuota {
        self.quota
    }

    fn retain_recent(&self) {
        LocalRateLimiter::retain_recent(self);
    }
}

/// The shortest housekeeping period [`spawn_housekeeping`] accepts.
const MIN_HOUSEKEEPING_PERIOD: Duration = Duration::from_millis(1);

/// Spawns a task that calls [`RateLimiter::retain_recent`] on `limiter` every `every` (at
/// least 1 ms), so memory stays bounded however many distinct clients come and go.
///
/// The task holds only a weak reference and ends by itself once the limiter is dropped; abort
/// the handle to stop it earlier. Must be called from within a Tokio runtime.
pub fn spawn_housekeeping<L>(limiter: Arc<L>, every: Duration) -> tokio::task::JoinHandle<()>
where
    L: RateLimiter + ?Sized,
{
    let limiter: Weak<L> = Arc::downgrade(&limiter);
    let mut ticks = tokio::time::interval(every.max(MIN_HOUSEKEEPING_PERIOD));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::spawn(async move {
        // The first tick completes immediately; skip it so a fresh limiter is left alone.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(limiter) = limiter.upgrade() else {
                return;
            };
            limiter.retain_recent();
        }
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use governor::clock::FakeRelativeClock;

    use super::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
    }

    fn quota(per_minute: u32, burst: u32) -> RateQuota {
        RateQuota {
            per_minute: nz(per_minute),
            burst: nz(burst),
        }
    }

    fn ip(last: u8) -> RateKey {
        RateKey::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)))
    }

    fn fake(quota: RateQuota) -> (LocalRateLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (LocalRateLimiter::with_clock(quota, clock.clone()), clock)
    }

    fn headers(decision: &RateDecision) -> Vec<(&'static str, u64)> {
        decision.headers().collect()
    }

    /// A fresh in-process limiter, for the checks every limiter shares.
    async fn fresh(quota: RateQuota) -> Arc<dyn RateLimiter> {
        Arc::new(LocalRateLimiter::new(quota))
    }

    /// The checks every limiter shares, apart from the ones of this implementation alone.
    mod conformance {
        crate::limits::conformance::rate_limiter_conformance_tests!(super::fresh);
    }

    #[test]
    fn each_key_and_each_ip_bucket_is_tracked_once() {
        let limiter = LocalRateLimiter::new(quota(1, 1));
        for key in [
            ip(1),
            ip(1),
            ip(2),
            RateKey::user("alice"),
            RateKey::user("bob"),
        ] {
            limiter.check_now(&key);
        }
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        limiter.check_now(&RateKey::Ip(mapped));
        assert_eq!(RateKey::ip(mapped), ip(1));
        assert_eq!(limiter.len(), 4);
    }

    #[test]
    fn reset_after_is_the_time_until_the_full_burst_is_back() {
        // One request per second, three at once.
        let (limiter, clock) = fake(quota(60, 3));
        let resets: Vec<Duration> = (0..3)
            .map(|_| limiter.check_now(&ip(1)).reset_after)
            .collect();
        assert_eq!(
            resets,
            [1, 2, 3].map(Duration::from_secs),
            "one cell per request"
        );
        let refused = limiter.check_now(&ip(1));
        assert_eq!(refused.reset_after, Duration::from_secs(3));
        clock.advance(Duration::from_millis(500));
        let refused = limiter.check_now(&ip(1));
        assert_eq!(refused.reset_after, Duration::from_millis(2500));
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds_and_at_least_one() {
        // One request per minute.
        let (limiter, clock) = fake(quota(1, 1));
        assert!(limiter.check_now(&ip(1)).allowed);
        let refused = limiter.check_now(&ip(1));
        assert_eq!(refused.retry_after, Some(Duration::from_secs(60)));
        clock.advance(Duration::from_millis(59_500));
        let refused = limiter.check_now(&ip(1));
        assert_eq!(refused.retry_after, Some(Duration::from_secs(1)));
        clock.advance(Duration::from_millis(500));
        assert!(limiter.check_now(&ip(1)).allowed);
    }

    #[test]
    fn a_refused_request_consumes_nothing() {
        let (limiter, clock) = fake(quota(60, 1));
        assert!(limiter.check_now(&ip(1)).allowed);
        for _ in 0..10 {
            assert!(!limiter.check_now(&ip(1)).allowed);
        }
        clock.advance(Duration::from_secs(1));
        assert!(limiter.check_now(&ip(1)).allowed);
    }

    #[test]
    fn headers_of_an_allowed_request_omit_retry_after() {
        let (limiter, _clock) = fake(quota(60, 3));
        let decision = limiter.check_now(&ip(1));
        assert_eq!(
            headers(&decision),
            [
                ("RateLimit-Limit", 3),
                ("RateLimit-Remaining", 2),
                ("RateLimit-Reset", 1)
            ]
        );
    }

    #[test]
    fn headers_of_a_refused_request_include_retry_after() {
        let (limiter, clock) = fake(quota(60, 2));
        limiter.check_now(&ip(1));
        limiter.check_now(&ip(1));
        clock.advance(Duration::from_millis(300));
        let decision = limiter.check_now(&ip(1));
        assert_eq!(
            headers(&decision),
            [
                ("RateLimit-Limit", 2),
                ("RateLimit-Remaining", 0),
                ("RateLimit-Reset", 2),
                ("Retry-After", 1)
            ]
        );
    }

    #[test]
    fn header_seconds_are_rounded_up() {
        let decision = RateDecision {
            allowed: false,
            limit: 10,
            remaining: 0,
            reset_after: Duration::from_millis(4001),
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(
            headers(&decision),
            [
                ("RateLimit-Limit", 10),
                ("RateLimit-Remaining", 0),
                ("RateLimit-Reset", 5),
                ("Retry-After", 2)
            ]
        );
    }

    #[test]
    fn retain_recent_forgets_keys_whose_budget_is_full_again() {
        let (limiter, clock) = fake(quota(60, 2));
        assert!(limiter.is_empty());
        limiter.check_now(&ip(1));
        limiter.check_now(&ip(2));
        clock.advance(Duration::from_millis(500));
        limiter.retain_recent();
        assert_eq!(limiter.len(), 2, "budgets still in use are kept");
        limiter.check_now(&ip(2));
        clock.advance(Duration::from_millis(1600));
        limiter.retain_recent();
        assert_eq!(limiter.len(), 1, "only the key used recently is kept");
        clock.advance(Duration::from_secs(5));
        limiter.retain_recent();
        assert!(limiter.is_empty());
    }

    #[tokio::test]
    async fn housekeeping_bounds_memory_and_stops_with_the_limiter() {
        let limiter = Arc::new(LocalRateLimiter::new(quota(6000, 1)));
        for last in 0..=255 {
            limiter.check_now(&ip(last));
        }
        assert_eq!(limiter.len(), 256);
        let task = spawn_housekeeping(Arc::clone(&limiter), Duration::from_millis(20));
        let emptied = tokio::time::timeout(Duration::from_secs(10), async {
            while !limiter.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(emptied.is_ok(), "{} keys left", limiter.len());
        drop(limiter);
        let stopped = tokio::time::timeout(Duration::from_secs(10), task).await;
        assert!(matches!(stopped, Ok(Ok(()))));
    }

    #[test]
    fn a_quota_replenishes_one_cell_per_minute_share() {
        assert_eq!(
            quota(600, 1).replenish_interval(),
            Duration::from_millis(100)
        );
        assert_eq!(RateQuota::per_minute(nz(30)), quota(30, 30));
    }

    #[test]
    fn an_unavailable_backend_says_so() {
        let error = LimitError::Unavailable("connection refused".into());
        assert_eq!(
            error.to_string(),
            "rate limiter backend unavailable: connection refused"
        );
    }
}
