//! The cluster-wide [`RateLimiter`]: the same GCRA as [`LocalRateLimiter`], run atomically in
//! Redis so every node counts against one budget per key.
//!
//! Each key is one Redis string, `{prefix}:rate:[{namespace}:]{key}`, holding the key's
//! theoretical arrival time (TAT) in microseconds of the Redis server's clock. One Lua script
//! reads it, decides, and writes it back, so concurrent checks from any number of nodes are
//! serialized by Redis and never let more than the burst through. Time comes from
//! `redis.call('TIME')`, never from the caller, so nodes whose clocks disagree still agree on
//! every budget. The key expires when its TAT is reached, which is exactly when its budget is
//! full again: an idle key then carries no information and Redis forgets it by itself, so no
//! housekeeping is needed.
//!
//! # Checks in batches
//!
//! Every request a node serves is checked here, so on a busy node the limiter would be one
//! script call per request, more than the request's own Redis work when the store answers from
//! its cache. Checks therefore go through one queue per limiter: a task sends whatever is queued
//! as one script call (at most [`MAX_BATCH`] checks), and while that call is out, the checks
//! that arrive queue for the next. An idle node sends each check at once, as before; a busy one
//! sends fewer, larger calls. The script decides the checks of a call one after the other, in
//! the order they were queued, at the one instant of its `TIME`: exactly what as many single
//! checks arriving together would get, so no budget is stretched.
//!
//! [`LocalRateLimiter`]: super::rate::LocalRateLimiter

use std::net::IpAddr;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use aws_lc_rs::digest;
use fred::types::Value;
use fred::types::scripts::Script;
use tokio::sync::{mpsc, oneshot};

use super::rate::{LimitError, RateDecision, RateKey, RateLimiter, RateQuota, retry_after};
use crate::redis::{Idempotence, Redis};

/// GCRA steps, the same as `governor`'s, one per key in `KEYS`, in order, at one instant: a
/// request conforms unless it arrives more than the burst's tolerance before its key's TAT; a
/// conforming one moves the TAT one cell later, a refused one changes nothing. A key may appear
/// several times (several requests of one client): each step sees the ones before it, and the
/// key is read and written once for all of them.
///
/// `KEYS`: the TAT keys. `ARGV[1]`: the cell (replenish interval) in µs; `ARGV[2]`: the burst.
/// Returns one `{allowed (0|1), remaining, reset_after_us, retry_after_us}` per key, filled
/// exactly as [`LocalRateLimiter::check_now`](super::rate::LocalRateLimiter::check_now) fills a
/// decision.
const GCRA_LUA: &str = r"
local cell = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tolerance = cell * (burst - 1)
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tats = {}
local moved = {}
local decisions = {}
for i, key in ipairs(KEYS) do
  local tat = tats[key]
  if not tat then
    tat = tonumber(redis.call('GET', key) or '') or now
  end
  local earliest = tat - tolerance
  if now < earliest then
    local wait = earliest - now
    decisions[i] = {0, 0, wait + cell * (burst - 1), wait}
  else
    tat = math.max(tat, now) + cell
    moved[key] = true
    local remaining = math.floor(math.min(now + tolerance + cell - tat, tolerance + cell) / cell)
    decisions[i] = {1, remaining, cell * (burst - remaining), 0}
  end
  tats[key] = tat
end
for key in pairs(moved) do
  local ttl_ms = math.max(1, math.ceil((tats[key] - now) / 1000))
  redis.call('SET', key, string.format('%.0f', tats[key]), 'PX', ttl_ms)
end
return decisions
";

/// The most checks one script call decides. Large enough that a busy node's checks share few
/// calls, small enough that one call holds Redis (single-threaded) for well under a
/// millisecond.
pub const MAX_BATCH: usize = 64;

/// Checks waiting for the batching task; a full queue makes callers wait for room.
const QUEUE_CAPACITY: usize = 4096;

static GCRA: LazyLock<Script> = LazyLock::new(|| Script::from_lua(GCRA_LUA));

/// User names longer than this (in bytes) are stored by their SHA-256 rather than verbatim, so
/// a client cannot make Redis hold arbitrarily large keys.
pub const MAX_VERBATIM_USER_KEY_BYTES: usize = 128;

/// Key kinds a namespace must not be named after, or `rate:{namespace}:…` could read like an
/// un-namespaced key.
const KEY_KINDS: [&str; 4] = ["ip", "ip6", "user", "user-sha256"];

/// Counts requests against per-key GCRA budgets kept in Redis, shared by every node.
///
/// A Redis that cannot be reached makes [`RateLimiter::check`] fail with
/// [`LimitError::Unavailable`]; the callers decide (requests fail open, logins fail closed).
#[derive(Debug, Clone)]
pub struct RedisRateLimiter {
    redis: Redis,
    quota: RateQuota,
    /// `{prefix}:rate:` or `{prefix}:rate:{namespace}:`.
    key_prefix: String,
    /// The queue of the task that sends the checks, started by the first check (it needs the
    /// runtime); shared by the clones, and the task ends when the last of them is dropped.
    queue: Arc<OnceLock<mpsc::Sender<Queued>>>,
}

/// One check waiting for a script call: the Redis key, and where its decision goes.
struct Queued {
    key: String,
    reply: oneshot::Sender<Result<RateDecision, LimitError>>,
}

impl RedisRateLimiter {
    /// A limiter enforcing `quota` on the keys `{prefix}:rate:{key}` (the request limiter).
    pub fn new(redis: Redis, quota: RateQuota) -> Self {
        let key_prefix = redis.key("rate:");
        Self {
            redis,
            quota,
            key_prefix,
            queue: Arc::default(),
        }
    }

    /// A limiter enforcing `quota` on the keys `{prefix}:rate:{namespace}:{key}`, so that
    /// several limiters with different policies (requests, login names, login addresses) can
    /// count the same client without sharing a budget.
    ///
    /// `namespace` is chosen by the program, not by clients; it must not be one of the key
    /// kinds (`ip`, `ip6`, `user`, `user-sha256`), which would make its keys indistinguishable
    /// from un-namespaced ones. Such a name is prefixed with `ns-` instead.
    pub fn with_namespace(redis: Redis, quota: RateQuota, namespace: &str) -> Self {
        let namespace = if KEY_KINDS.contains(&namespace) {
            format!("ns-{namespace}")
        } else {
            namespace.to_owned()
        };
        let key_prefix = redis.key(format!("rate:{namespace}:"));
        Self {
            redis,
            quota,
            key_prefix,
            queue: Arc::default(),
        }
    }

    /// The Redis key holding `key`'s TAT.
    pub fn redis_key(&self, key: &RateKey) -> String {
        format!("{}{}", self.key_prefix, render_key(key))
    }

    /// The cell (replenish interval) in whole microseconds, at least one.
    fn cell_micros(&self) -> i64 {
        i64::try_from(self.quota.replenish_interval().as_micros())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    /// The batching task's queue, starting the task on first use.
    fn queue(&self) -> &mpsc::Sender<Queued> {
        self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
            let batches = Batches {
                redis: self.redis.clone(),
                args: vec![
                    Value::from(self.cell_micros()),
                    Value::from(i64::from(self.quota.burst.get())),
                ],
                limit: self.quota.burst.get(),
            };
            tokio::spawn(batches.run(receiver));
            sender
        })
    }
}

/// The task behind a limiter's queue: sends what is queued as one script call, distributes
/// the decisions, and repeats until every sender is gone.
struct Batches {
    redis: Redis,
    /// The script's `ARGV`: the cell in µs and the burst.
    args: Vec<Value>,
    /// The burst, which every decision reports as its limit.
    limit: u32,
}

impl Batches {
    async fn run(self, mut queue: mpsc::Receiver<Queued>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
            // The keys go to Redis; a queued check keeps only where its decision goes.
            let keys = batch
                .iter_mut()
                .map(|queued| std::mem::take(&mut queued.key))
                .collect();
            match self.decide(keys).await {
                Ok(decisions) => {
                    for (queued, decision) in batch.drain(..).zip(decisions) {
                        // A caller that stopped waiting was counted all the same, as a single
                        // call that timed out may have been.
                        let _ = queued.reply.send(Ok(decision));
                    }
                }
                Err(error) => {
                    for queued in batch.drain(..) {
                        let _ = queued
                            .reply
                            .send(Err(LimitError::Unavailable(error.clone())));
                    }
                }
            }
        }
    }

    /// One script call for `keys`: a decision per key, in order.
    async fn decide(&self, keys: Vec<String>) -> Result<Vec<RateDecision>, String> {
        let count = keys.len();
        // The script writes, so a call that timed out may have counted: never retried.
        let answers: Vec<Value> = self
            .redis
            .script(
                "rate_gcra",
                Idempotence::Write,
                &GCRA,
                keys,
                self.args.clone(),
            )
            .await
            .map_err(|error| error.to_string())?;
        if answers.len() != count {
            return Err(format!(
                "the rate script answered {} decisions for {count} checks",
                answers.len()
            ));
        }
        answers
            .into_iter()
            .map(|answer| self.decision(answer))
            .collect()
    }

    /// A decision from the script's `{allowed, remaining, reset_after_us, retry_after_us}`.
    fn decision(&self, answer: Value) -> Result<RateDecision, String> {
        let (allowed, remaining, reset_after, retry): (i64, i64, i64, i64) = answer
            .convert()
            .map_err(|error| format!("the rate script answered an odd decision: {error}"))?;
        let allowed = allowed == 1;
        Ok(RateDecision {
            allowed,
            limit: self.limit,
            remaining: u32::try_from(remaining).unwrap_or(0).min(self.limit),
            reset_after: micros(reset_after),
            retry_after: (!allowed).then(|| retry_after(micros(retry))),
        })
    }
}

/// `key` as the bounded, unambiguous tail of a Redis key: `ip:192.0.2.1`, `ip6:2001:db8::/64`
/// (IPv6 counted per `/64`, like every limit), `user:alice`, or `user-sha256:<hex>` for names
/// longer than [`MAX_VERBATIM_USER_KEY_BYTES`].
pub fn render_key(key: &RateKey) -> String {
    match key {
        RateKey::Ip(addr) => match super::client_ip::ip_bucket(*addr) {
            IpAddr::V4(v4) => format!("ip:{v4}"),
            IpAddr::V6(v6) => format!("ip6:{v6}/64"),
        },
        RateKey::User(name) if name.len() <= MAX_VERBATIM_USER_KEY_BYTES => {
            format!("user:{name}")
        }
        RateKey::User(name) => {
            let hash = digest::digest(&digest::SHA256, name.as_bytes());
            let hex: String = hash
                .as_ref()
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            format!("user-sha256:{hex}")
        }
    }
}

/// Microseconds from the script as a duration (negative values, which the script never
/// returns, count as zero).
fn micros(value: i64) -> Duration {
    Duration::from_micros(u64::try_from(value).unwrap_or(0))
}

#[async_trait::async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &RateKey) -> Result<RateDecision, LimitError> {
        let (reply, decision) = oneshot::channel();
        let queued = Queued {
            key: self.redis_key(key),
            reply,
        };
        // A check waits for the call in flight, then for its own: each takes at most the
        // command timeout (at once while the breaker is open), so this bounds the wait even
        // when Redis stalls with a full queue.
        let wait = self.redis.command_timeout() * 2;
        let outcome = tokio::time::timeout(wait, async {
            self.queue().send(queued).await.map_err(|_| {
                LimitError::Unavailable("the rate limiter's queue is closed".into())
            })?;
            decision.await.map_err(|_| {
                LimitError::Unavailable("the rate limiter's queue dropped the check".into())
            })?
        })
        .await;
        outcome.unwrap_or_else(|_| {
            Err(LimitError::Unavailable(
                "the rate limiter did not decide in time".into(),
            ))
        })
    }

    fn quota(&self) -> RateQuota {
        self.quota
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::num::NonZeroU32;
    use std::sync::Arc;

    use fred::interfaces::KeysInterface;

    use super::*;
    use crate::limits::LoginThrottle;
    use crate::redis::RedisSettings;
    use petstore_testkit::redis::{LocalRedis, Persistence};

    fn quota(per_minute: u32, burst: u32) -> RateQuota {
        RateQuota {
            per_minute: NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
        }
    }

    fn ip(last: u8) -> RateKey {
        RateKey::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)))
    }

    /// A connection to the shared test server under `prefix`: one "node".
    async fn node(prefix: &str) -> Redis {
        let mut settings = RedisSettings::new(LocalRedis::shared().url());
        settings.prefix = prefix.to_owned();
        Redis::connect(settings)
            .await
            .expect("the test redis-server answers")
    }

    fn fresh_prefix() -> String {
        format!("test-{}", uuid::Uuid::new_v4().simple())
    }

    /// A fresh Redis limiter under its own prefix, for the shared checks.
    async fn fresh(quota: RateQuota) -> Arc<dyn RateLimiter> {
        Arc::new(RedisRateLimiter::new(node(&fresh_prefix()).await, quota))
    }

    /// The checks every limiter shares, apart from the ones of this implementation alone.
    mod conformance {
        crate::limits::conformance::rate_limiter_conformance_tests!(super::fresh);
    }

    #[test]
    fn keys_are_rendered_canonically_and_bounded() {
        assert_eq!(render_key(&ip(7)), "ip:192.0.2.7");
        let v6: Ipv6Addr = "2001:db8:1:2:3:4:5:6"
            .parse()
            .unwrap_or(Ipv6Addr::LOCALHOST);
        assert_eq!(render_key(&RateKey::Ip(v6.into())), "ip6:2001:db8:1:2::/64");
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        assert_eq!(render_key(&RateKey::Ip(mapped)), "ip:192.0.2.7");
        assert_eq!(render_key(&RateKey::user("alice")), "user:alice");
        let long = render_key(&RateKey::user("x".repeat(10_000)));
        assert!(long.starts_with("user-sha256:"), "{long}");
        assert_eq!(long.len(), "user-sha256:".len() + 64);
        let other = render_key(&RateKey::user("y".repeat(10_000)));
        assert_ne!(long, other);
    }

    #[tokio::test]
    async fn keys_live_under_the_prefix_and_their_namespace() {
        let redis = node("pfx").await;
        let requests = RedisRateLimiter::new(redis.clone(), quota(1, 1));
        assert_eq!(requests.redis_key(&ip(1)), "pfx:rate:ip:192.0.2.1");
        let logins = RedisRateLimiter::with_namespace(redis.clone(), quota(1, 1), "login-ip");
        assert_eq!(logins.redis_key(&ip(1)), "pfx:rate:login-ip:ip:192.0.2.1");
        let clash = RedisRateLimiter::with_namespace(redis, quota(1, 1), "user");
        assert_eq!(
            clash.redis_key(&RateKey::user("a")),
            "pfx:rate:ns-user:user:a"
        );
    }

    #[tokio::test]
    async fn a_key_expires_when_its_budget_is_full_again() {
        let redis = node(&fresh_prefix()).await;
        // One request per minute, burst 2: after one request the budget is full in 60 s.
        let limiter = RedisRateLimiter::new(redis.clone(), quota(1, 2));
        assert!(matches!(limiter.check(&ip(1)).await, Ok(d) if d.allowed));
        let key = limiter.redis_key(&ip(1));
        let ttl: i64 = redis
            .read("pttl", |client| {
                let key = key.clone();
                async move { client.pttl(key).await }
            })
            .await
            .expect("pttl");
        assert!(
            ttl > 0 && ttl <= 60_000,
            "expires with the TAT, got {ttl} ms"
        );
    }

    #[tokio::test]
    async fn two_nodes_share_one_budget() {
        let prefix = fresh_prefix();
        let first = RedisRateLimiter::new(node(&prefix).await, quota(1, 3));
        let second = RedisRateLimiter::new(node(&prefix).await, quota(1, 3));
        let mut allowed = Vec::new();
        for limiter in [&first, &second, &first, &second] {
            let decision = limiter.check(&ip(1)).await.expect("redis answers");
            allowed.push(decision.allowed);
        }
        assert_eq!(allowed, [true, true, true, false]);
        let refused = first.check(&ip(1)).await.expect("redis answers");
        assert!(!refused.allowed);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_checks_from_many_tasks_never_allow_more_than_the_burst() {
        const BURST: u32 = 10;
        let prefix = fresh_prefix();
        let nodes = [
            Arc::new(RedisRateLimiter::new(node(&prefix).await, quota(1, BURST))),
            Arc::new(RedisRateLimiter::new(node(&prefix).await, quota(1, BURST))),
        ];
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..64 {
            let limiter = Arc::clone(&nodes[task % 2]);
            tasks.spawn(async move { limiter.check(&ip(1)).await.map(|d| d.allowed) });
        }
        let mut granted = 0;
        while let Some(outcome) = tasks.join_next().await {
            if matches!(outcome, Ok(Ok(true))) {
                granted += 1;
            }
        }
        assert_eq!(granted, BURST);
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_reported_as_unavailable() {
        let mut server = LocalRedis::start(Persistence::None).expect("redis-server");
        let mut settings = RedisSettings::new(server.url());
        settings.prefix = fresh_prefix();
        settings.command_timeout = Duration::from_millis(300);
        let redis = Redis::connect(settings).await.expect("connects");
        let limiter = RedisRateLimiter::new(redis, quota(60, 5));
        assert!(matches!(limiter.check(&ip(1)).await, Ok(d) if d.allowed));
        server.kill();
        for _ in 0..3 {
            let outcome = limiter.check(&ip(1)).await;
            assert!(
                matches!(outcome, Err(LimitError::Unavailable(_))),
                "{outcome:?}"
            );
        }
    }

    /// How many script calls `server` has run.
    fn script_calls(server: &LocalRedis) -> u64 {
        let stats = server
            .command(&["INFO", "commandstats"])
            .expect("INFO answers");
        stats
            .text()
            .lines()
            .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
            .and_then(|rest| rest.split(',').next())
            .and_then(|calls| calls.parse().ok())
            .unwrap_or(0)
    }

    /// A limiter on a private server, whose command counts are this test's alone.
    async fn private_limiter(
        server: &LocalRedis,
        quota: RateQuota,
        timeout: Duration,
    ) -> Arc<RedisRateLimiter> {
        let mut settings = RedisSettings::new(server.url());
        settings.prefix = fresh_prefix();
        settings.command_timeout = timeout;
        let redis = Redis::connect(settings).await.expect("connects");
        Arc::new(RedisRateLimiter::new(redis, quota))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_that_arrive_together_share_calls_and_are_decided_in_turn() {
        const CHECKS: u32 = 40;
        let server = LocalRedis::start(Persistence::None).expect("redis-server");
        let limiter = private_limiter(&server, quota(1, CHECKS), Duration::from_secs(5)).await;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CHECKS {
            let limiter = Arc::clone(&limiter);
            tasks.spawn(async move { limiter.check(&ip(1)).await });
        }
        let mut remaining = Vec::new();
        while let Some(outcome) = tasks.join_next().await {
            let decision = outcome.expect("the check ran").expect("redis answers");
            assert!(decision.allowed, "{decision:?}");
            remaining.push(decision.remaining);
        }
        // Decided one after the other: every count from the burst down, each once.
        remaining.sort_unstable();
        assert_eq!(remaining, (0..CHECKS).collect::<Vec<_>>());
        let refused = limiter.check(&ip(1)).await.expect("redis answers");
        assert!(!refused.allowed);
        let calls = script_calls(&server);
        assert!(
            calls < u64::from(CHECKS),
            "{calls} script calls for {} checks: none was shared",
            CHECKS + 1
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_check_waiting_on_an_unreachable_redis_is_told_so() {
        let mut server = LocalRedis::start(Persistence::None).expect("redis-server");
        let limiter = private_limiter(&server, quota(60, 50), Duration::from_millis(300)).await;
        assert!(matches!(limiter.check(&ip(1)).await, Ok(d) if d.allowed));
        server.kill();
        let mut tasks = tokio::task::JoinSet::new();
        for client in 0..20 {
            let limiter = Arc::clone(&limiter);
            tasks.spawn(async move { limiter.check(&ip(client)).await });
        }
        while let Some(outcome) = tasks.join_next().await {
            let outcome = outcome.expect("the check ran");
            assert!(
                matches!(outcome, Err(LimitError::Unavailable(_))),
                "{outcome:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_check_behind_a_long_queue_waits_two_command_timeouts_at_most() {
        const TIMEOUT: Duration = Duration::from_millis(250);
        // Ten calls' worth of checks: one after the other, a stalled Redis would keep the last
        // ones waiting ten timeouts.
        const CHECKS: usize = 10 * MAX_BATCH;
        let server = LocalRedis::start_with(Persistence::None, &["--enable-debug-command", "yes"])
            .expect("redis-server");
        let mut settings = RedisSettings::new(server.url());
        settings.prefix = fresh_prefix();
        settings.command_timeout = TIMEOUT;
        // The breaker stays closed, so every call waits out its timeout.
        settings.breaker.failure_threshold = u32::MAX;
        let redis = Redis::connect(settings).await.expect("connects");
        let limiter = Arc::new(RedisRateLimiter::new(redis, quota(60, 50)));
        assert!(matches!(limiter.check(&ip(1)).await, Ok(d) if d.allowed));
        let port = server.port();
        let stall = std::thread::spawn(move || {
            petstore_testkit::redis::command(port, &["DEBUG", "SLEEP", "4"])
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for client in 0..CHECKS {
            let limiter = Arc::clone(&limiter);
            let key = RateKey::user(format!("client-{client}"));
            tasks.spawn(async move { limiter.check(&key).await });
        }
        while let Some(outcome) = tasks.join_next().await {
            let outcome = outcome.expect("the check ran");
            assert!(
                matches!(outcome, Err(LimitError::Unavailable(_))),
                "{outcome:?}"
            );
        }
        let waited = started.elapsed();
        // Two timeouts are 0.5 s; draining the queue call by call would take 2.5 s.
        assert!(
            waited < Duration::from_millis(1500),
            "the last checks waited {waited:?}"
        );
        let _ = stall.join();
    }

    #[tokio::test]
    async fn a_redis_login_throttle_counts_apart_from_the_request_limiter() {
        let redis = node(&fresh_prefix()).await;
        let requests = RedisRateLimiter::new(redis.clone(), quota(1, 1));
        let throttle = LoginThrottle::redis(redis, quota(1, 2), quota(1, 1));
        let address = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(throttle.check("alice", address).await, Ok(()));
        assert!(throttle.check("bob", address).await.is_err(), "per address");
        let other = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(throttle.check("alice", other).await, Ok(()));
        let third = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3)));
        assert!(throttle.check("alice", third).await.is_err(), "per name");
        // The login budgets of that address and that name did not touch the request budgets.
        assert!(matches!(requests.check(&ip(1)).await, Ok(d) if d.allowed));
        let user = requests.check(&RateKey::user("alice")).await;
        assert!(matches!(user, Ok(d) if d.allowed));
    }
}
