//! [`RevocationStore`] shared by every node through Redis, with reads that stay memory lookups.
//!
//! Each node keeps its own [`RevocationList`]; [`is_revoked`](RevocationStore::is_revoked)
//! only ever looks there. Redis carries the revocations between the lists:
//! - `revoke` records the id locally at once (this node refuses the token from that instant),
//!   then, in a background task, writes `{prefix}:revoked:{jti}` (value: the expiry in Unix ms,
//!   expiring at that instant) and publishes `"{jti} {expiry_ms}"` on `{prefix}:revocations`,
//!   both in one script;
//! - a subscriber connection feeds every message into the node's list;
//! - at start, and again after every reconnect of the subscriber (after it has subscribed
//!   again), the node loads the whole live set with `SCAN` + `MGET`: whatever was published
//!   while it was cut off is still in Redis until it expires, so a node catches up.
//!
//! What this guarantees, and what it does not:
//! - a revocation is effective on the revoking node at once, and on the others within a
//!   pub/sub round trip while Redis is up;
//! - a write that fails (Redis down, breaker open) is retried in the background with backoff
//!   until it lands or the entry expires (logged, counted under the command
//!   `revoke_token`); meanwhile the other nodes still accept the token;
//! - a node that was partitioned from Redis sees what it missed when its subscriber
//!   reconnects (through the reload), not before;
//! - a revocation still unwritten when its node stops is lost to the other nodes (logged at
//!   stop).

use std::sync::{
    Arc, LazyLock,
    atomic::{AtomicUsize, Ordering},
};
use std::time::Duration;

use chrono::{DateTime, Utc};
use fred::{
    clients::SubscriberClient,
    interfaces::{ClientLike, EventInterface, KeysInterface, PubsubInterface},
    types::{Message, Value, scripts::Script},
};
use tokio::sync::{Notify, broadcast::error::RecvError};
use tokio_util::sync::CancellationToken;

use super::revocation::{RevocationList, RevocationStore};
use crate::redis::{Redis, RedisError};

/// How long [`RedisRevocations::start`] waits for the subscriber connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Keys per `SCAN` page of a reload.
const SCAN_PAGE: u32 = 500;

/// First pause before retrying a failed write or reload; doubled per attempt up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);

/// Longest pause between two attempts.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// KEYS: the entry. ARGV: expiry (Unix ms), channel, message. Keeps the later of two expiries,
/// like [`RevocationList`]; publishes either way (receivers keep the later one too).
static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        "local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[1])
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1",
    )
});

/// A [`RevocationStore`] whose revocations reach every node sharing the Redis prefix.
///
/// Built with [`start`](Self::start); background work ends with [`stop`](Self::stop) or when
/// the last handle is dropped.
pub struct RedisRevocations {
    shared: Arc<Shared>,
    subscriber: SubscriberClient,
    stop: CancellationToken,
}

/// What the background tasks share with the handle (never the handle itself, so dropping the
/// last handle stops them).
struct Shared {
    local: RevocationList,
    redis: Redis,
    channel: String,
    /// Writes not yet in Redis, for the log at stop.
    unwritten: AtomicUsize,
}

impl std::fmt::Debug for RedisRevocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRevocations")
            .field("channel", &self.shared.channel)
            .field("local", &self.shared.local.len())
            .field("unwritten", &self.shared.unwritten.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RedisRevocations {
    /// Subscribes to the revocations channel, loads the live set, and starts the tasks that
    /// keep the local list in step. Returns once the load is done, so a node never serves a
    /// request before it knows the revocations made before it started.
    ///
    /// # Errors
    /// [`RedisError::Config`] if the subscriber cannot be built, [`RedisError::Unreachable`]
    /// if it cannot connect or subscribe, or any error of the first load.
    pub async fn start(redis: Redis) -> Result<Arc<Self>, RedisError> {
        let subscriber = redis.subscriber()?;
        // Taken before connecting, so no message and no reconnect can slip past.
        let messages = subscriber.message_rx();
        let reconnects = subscriber.reconnect_rx();
        Redis::connect_subscriber(&subscriber, CONNECT_TIMEOUT, "the revocation subscriber")
            .await?;
        let shared = Arc::new(Shared {
            local: RevocationList::new(),
            channel: redis.key("revocations"),
            redis,
            unwritten: AtomicUsize::new(0),
        });
        let subscribed = async {
            subscriber
                .subscribe(shared.channel.clone())
                .await
                .map_err(|error| RedisError::Unreachable(error.to_string()))?;
            shared.reload().await
        };
        if let Err(error) = subscribed.await {
            let _ = subscriber.quit().await;
            return Err(error);
        }

        let stop = CancellationToken::new();
        let reload = Arc::new(Notify::new());
        tokio::spawn(listen(
            Arc::clone(&shared),
            messages,
            reconnects,
            Arc::clone(&reload),
            stop.clone(),
        ));
        tokio::spawn(resync(
            Arc::clone(&shared),
            subscriber.clone(),
            reload,
            stop.clone(),
        ));
        // A subscriber connection gone silent is replaced; the reconnection reloads the list.
        let watchdog = shared.redis.watch_subscriber(&subscriber, "revocations");
        let stopped = stop.clone();
        tokio::spawn(async move {
            stopped.cancelled().await;
            watchdog.abort();
        });
        Ok(Arc::new(Self {
            shared,
            subscriber,
            stop,
        }))
    }

    /// Stops the background tasks (pending write retries included) and closes the subscriber
    /// connection. Idempotent.
    pub async fn stop(&self) {
        self.stop.cancel();
        let unwritten = self.shared.unwritten.load(Ordering::Relaxed);
        if unwritten > 0 {
            tracing::error!(
                unwritten,
                "stopping with revocations not yet written to redis; other nodes will not see them"
            );
        }
        let _ = self.subscriber.quit().await;
    }

    /// This node's copy of the list (for metrics: its length).
    #[must_use]
    pub fn local(&self) -> &RevocationList {
        &self.shared.local
    }
}

impl Drop for RedisRevocations {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl RevocationStore for RedisRevocations {
    fn revoke(&self, jti: &str, expires_at: DateTime<Utc>) {
        self.shared.local.revoke(jti, expires_at);
        if expires_at <= Utc::now() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("revocation outside a tokio runtime: kept on this node only");
            return;
        };
        self.shared.unwritten.fetch_add(1, Ordering::Relaxed);
        runtime.spawn(write_through(
            Arc::clone(&self.shared),
            jti.to_owned(),
            expires_at,
            self.stop.clone(),
        ));
    }

    fn is_revoked(&self, jti: &str) -> bool {
        self.shared.local.is_revoked(jti)
    }
}

impl Shared {
    fn entry_prefix(&self) -> String {
        self.redis.key("revoked:")
    }

    /// Writes one revocation and publishes it.
    async fn publish(&self, jti: &str, expires_at: DateTime<Utc>) -> Result<(), RedisError> {
        let millis = expires_at.timestamp_millis();
        self.redis
            .acknowledged_script::<i64>(
                "revoke_token",
                &REVOKE,
                vec![format!("{}{jti}", self.entry_prefix())],
                vec![
                    Value::from(millis.to_string()),
                    Value::from(self.channel.as_str()),
                    Value::from(format!("{jti} {millis}")),
                ],
            )
            .await
            .map(|_| ())
    }

    /// Loads every live entry from Redis into the local list; returns how many it found.
    async fn reload(&self) -> Result<usize, RedisError> {
        let prefix = self.entry_prefix();
        let pattern = format!("{prefix}*");
        let mut cursor = "0".to_owned();
        let mut loaded = 0;
        loop {
            let (next, keys): (String, Vec<String>) = self
                .redis
                .read("revocations_scan", |client| {
                    let (cursor, pattern) = (cursor.clone(), pattern.clone());
                    async move {
                        client
                            .scan_page(cursor, pattern, Some(SCAN_PAGE), None)
                            .await
                    }
                })
                .await?;
            if !keys.is_empty() {
                let values: Vec<Option<String>> = self
                    .redis
                    .read("revocations_load", |client| {
                        let keys = keys.clone();
                        async move { client.mget(keys).await }
                    })
                    .await?;
                for (key, value) in keys.iter().zip(values) {
                    // Gone between SCAN and MGET: it expired, nothing to remember.
                    let Some(value) = value else { continue };
                    let jti = key.strip_prefix(&prefix).unwrap_or(key);
                    match value
                        .parse::<i64>()
                        .ok()
                        .and_then(DateTime::from_timestamp_millis)
                    {
                        Some(expires_at) => {
                            self.local.revoke(jti, expires_at);
                            loaded += 1;
                        }
                        None => tracing::warn!(key, "ignoring a malformed revocation entry"),
                    }
                }
            }
            if next == "0" {
                return Ok(loaded);
            }
            cursor = next;
        }
    }

    /// Records a published revocation; malformed messages are logged and dropped.
    fn apply(&self, message: &Message) {
        match message.value.as_string().as_deref().and_then(parse_message) {
            Some((jti, expires_at)) => self.local.revoke(jti, expires_at),
            None => tracing::warn!(
                channel = %message.channel,
                "ignoring a malformed revocation message"
            ),
        }
    }
}

/// `"{jti} {expiry_ms}"` → the id and its expiry. The id may contain spaces; the number may
/// not.
fn parse_message(text: &str) -> Option<(&str, DateTime<Utc>)> {
    let (jti, millis) = text.rsplit_once(' ')?;
    if jti.is_empty() {
        return None;
    }
    let expires_at = DateTime::from_timestamp_millis(millis.parse().ok()?)?;
    Some((jti, expires_at))
}

/// The pause before attempt `attempt + 1`: doubling from [`RETRY_FIRST`], at most
/// [`RETRY_MAX`], and never shorter than what the breaker asks for.
fn retry_pause(attempt: u32, error: &RedisError) -> Duration {
    let doubled = RETRY_FIRST.saturating_mul(1 << attempt.min(8));
    let pause = doubled.min(RETRY_MAX);
    match error {
        RedisError::CircuitOpen { retry_after } => pause.max(*retry_after),
        _ => pause,
    }
}

/// Writes one revocation through to Redis, retrying until it lands, the entry expires (the
/// token is refused everywhere as expired then), or the store stops.
async fn write_through(
    shared: Arc<Shared>,
    jti: String,
    expires_at: DateTime<Utc>,
    stop: CancellationToken,
) {
    let mut attempt = 0;
    loop {
        match shared.publish(&jti, expires_at).await {
            Ok(()) => {
                if attempt > 0 {
                    tracing::info!(attempt, "revocation written to redis after retries");
                }
                break;
            }
            Err(error) => {
                if attempt == 0 {
                    tracing::warn!(
                        %error,
                        "could not share a revocation through redis; retrying in the background"
                    );
                }
                let pause = retry_pause(attempt, &error);
                if Utc::now() + pause >= expires_at {
                    tracing::info!("revocation expired before redis came back");
                    break;
                }
                attempt += 1;
                crate::telemetry::metrics::global()
                    .redis
                    .retry("revoke_token");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
    shared.unwritten.fetch_sub(1, Ordering::Relaxed);
}

/// Feeds published revocations into the local list, and asks for a resync after every
/// (re)connect of the subscriber and whenever messages were dropped.
async fn listen(
    shared: Arc<Shared>,
    mut messages: tokio::sync::broadcast::Receiver<Message>,
    mut reconnects: tokio::sync::broadcast::Receiver<fred::types::config::Server>,
    reload: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            message = messages.recv() => match message {
                Ok(message) => shared.apply(&message),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "revocation messages dropped; reloading the list");
                    reload.notify_one();
                }
                Err(RecvError::Closed) => return,
            },
            event = reconnects.recv() => match event {
                Ok(_) | Err(RecvError::Lagged(_)) => reload.notify_one(),
                Err(RecvError::Closed) => return,
            },
        }
    }
}

/// On each request from [`listen`]: subscribe again, then load the live set, retrying both
/// until they succeed. In this order, a revocation written meanwhile is either already in
/// Redis when the load scans, or published after the subscription is back.
///
/// This replaces fred's `manage_subscriptions`, whose resubscription runs in a task of its own
/// and could finish after the reload, leaving a window in which a message is missed.
async fn resync(
    shared: Arc<Shared>,
    subscriber: SubscriberClient,
    reload: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                // Also reached when the last handle is dropped without `stop`.
                let _ = subscriber.quit().await;
                return;
            }
            () = reload.notified() => {}
        }
        let mut attempt = 0;
        loop {
            let synced = async {
                subscriber
                    .resubscribe_all()
                    .await
                    .map_err(|error| RedisError::Unreachable(error.to_string()))?;
                shared.reload().await
            };
            match synced.await {
                Ok(loaded) => {
                    tracing::debug!(loaded, "revocation list resynchronised from redis");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, attempt, "revocation resync failed; retrying");
                    let pause = retry_pause(attempt, &error);
                    attempt += 1;
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use chrono::TimeDelta;
    use uuid::Uuid;

    use super::*;
    use crate::redis::{BreakerSettings, RedisSettings};
    use petstore_testkit::redis::{LocalRedis, Persistence};

    /// Hang guard for what must happen "soon": generous, never a timing assertion.
    const DEADLINE: Duration = Duration::from_secs(30);

    fn settings(url: String) -> RedisSettings {
        let mut settings = RedisSettings::new(url);
        settings.prefix = format!("test-{}", Uuid::new_v4().simple());
        settings
    }

    async fn node(settings: &RedisSettings) -> Arc<RedisRevocations> {
        let redis = Redis::connect(settings.clone()).await.expect("connects");
        RedisRevocations::start(redis).await.expect("starts")
    }

    /// A fresh node under a prefix of its own, for the checks every store shares.
    async fn fresh() -> Arc<dyn RevocationStore> {
        node(&settings(LocalRedis::shared().url())).await
    }

    crate::auth::revocation_conformance::revocation_store_conformance_tests!(fresh);

    async fn eventually(what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !condition() {
            assert!(Instant::now() < deadline, "never happened: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn in_secs(n: i64) -> DateTime<Utc> {
        Utc::now() + TimeDelta::seconds(n)
    }

    #[tokio::test]
    async fn revocation_on_one_node_reaches_another() {
        let settings = settings(LocalRedis::shared().url());
        let (a, b) = (node(&settings).await, node(&settings).await);

        a.revoke("jti-1", in_secs(300));
        assert!(a.is_revoked("jti-1"), "the revoking node refuses at once");
        eventually("B sees A's revocation", || b.is_revoked("jti-1")).await;
        assert!(!b.is_revoked("jti-2"));
        b.revoke("sid:with spaces", in_secs(300));
        eventually("A sees B's revocation", || a.is_revoked("sid:with spaces")).await;
        a.stop().await;
        b.stop().await;
    }

    #[tokio::test]
    async fn a_node_started_later_loads_the_live_revocations() {
        let settings = settings(LocalRedis::shared().url());
        let a = node(&settings).await;
        let witness = node(&settings).await;
        a.revoke("live", in_secs(300));
        a.revoke("short", Utc::now() + TimeDelta::milliseconds(500));
        eventually("the revocations are in redis", || {
            witness.is_revoked("live")
        })
        .await;
        tokio::time::sleep(Duration::from_millis(600)).await;

        let late = node(&settings).await;
        assert!(late.is_revoked("live"), "loaded before start returned");
        assert!(!late.is_revoked("short"), "expired entries are not loaded");
        assert!(!a.is_revoked("short"), "nor kept past their expiry");
        assert_eq!(late.local().len(), 1);
    }

    #[tokio::test]
    async fn expired_revocations_vanish_everywhere() {
        let settings = settings(LocalRedis::shared().url());
        let (a, b) = (node(&settings).await, node(&settings).await);
        let expires_at = Utc::now() + TimeDelta::seconds(5);
        a.revoke("brief", expires_at);
        eventually("B sees it", || b.is_revoked("brief")).await;

        let wait = (expires_at - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait + Duration::from_millis(100)).await;
        assert!(!a.is_revoked("brief") && !b.is_revoked("brief"));
        let redis = Redis::connect(settings).await.expect("connects");
        let key = redis.key("revoked:brief");
        let exists: bool = redis
            .read("test_exists", |client| {
                let key = key.clone();
                async move { client.exists(key).await }
            })
            .await
            .expect("exists");
        assert!(!exists, "redis dropped the entry at its expiry");
    }

    #[tokio::test]
    async fn revocation_made_during_an_outage_reaches_the_other_node_after_restart() {
        let mut server = LocalRedis::start(Persistence::AppendOnly).expect("redis-server");
        let mut settings = settings(server.url());
        settings.command_timeout = Duration::from_millis(300);
        settings.read_retries = 0;
        settings.breaker = BreakerSettings {
            failure_threshold: 2,
            cool_down: Duration::from_millis(500),
        };
        let (a, b) = (node(&settings).await, node(&settings).await);
        a.revoke("before", in_secs(300));
        eventually("B sees the first revocation", || b.is_revoked("before")).await;

        server.kill();
        a.revoke("during", in_secs(300));
        assert!(a.is_revoked("during"), "A refuses at once, Redis or not");
        // Let A's write fail at least once before Redis comes back.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!b.is_revoked("during"));
        server.restart().expect("redis-server comes back");

        eventually("B catches up after the outage", || b.is_revoked("during")).await;
        // B is subscribed again: a fresh revocation arrives through pub/sub.
        a.revoke("after", in_secs(300));
        eventually("B receives revocations again", || b.is_revoked("after")).await;
        a.stop().await;
        b.stop().await;
    }

    #[tokio::test]
    async fn malformed_messages_are_ignored() {
        let settings = settings(LocalRedis::shared().url());
        let b = node(&settings).await;
        let redis = Redis::connect(settings).await.expect("connects");
        let channel = redis.key("revocations");
        for garbage in [
            "",
            "no-expiry",
            " 123",
            "jti notanumber",
            "jti 99999999999999999999",
        ] {
            let channel = channel.clone();
            redis
                .write("test_publish", move |client| {
                    let channel = channel.clone();
                    async move { client.publish::<i64, _, _>(channel, garbage).await }
                })
                .await
                .expect("publish");
        }
        let valid = format!("good {}", in_secs(300).timestamp_millis());
        redis
            .write("test_publish", move |client| {
                let (channel, valid) = (channel.clone(), valid.clone());
                async move { client.publish::<i64, _, _>(channel, valid).await }
            })
            .await
            .expect("publish");
        eventually("the valid message after the garbage lands", || {
            b.is_revoked("good")
        })
        .await;
        assert_eq!(b.local().len(), 1);
    }

    #[test]
    fn messages_parse_with_spaces_in_the_id() {
        let (jti, at) = parse_message("sid:a b 1700000000000").expect("parses");
        assert_eq!(jti, "sid:a b");
        assert_eq!(at.timestamp_millis(), 1_700_000_000_000);
        assert!(parse_message("1700000000000").is_none());
        assert!(parse_message(" 1700000000000").is_none());
    }

    #[test]
    fn retry_pauses_grow_and_respect_the_breaker() {
        let down = RedisError::Unreachable("down".into());
        assert_eq!(retry_pause(0, &down), RETRY_FIRST);
        assert!(retry_pause(1, &down) > retry_pause(0, &down));
        assert_eq!(retry_pause(30, &down), RETRY_MAX);
        let open = RedisError::CircuitOpen {
            retry_after: Duration::from_secs(7),
        };
        assert_eq!(retry_pause(0, &open), Duration::from_secs(7));
    }

    #[tokio::test]
    async fn token_service_refuses_a_token_revoked_on_another_node() {
        use crate::auth::{TokenService, TokenSettings};

        let settings = settings(LocalRedis::shared().url());
        let (a, b) = (node(&settings).await, node(&settings).await);
        let key = crate::auth::tokens::generate_ephemeral_key_pem().expect("key");
        let service = |revocations: Arc<RedisRevocations>| {
            let token_settings = TokenSettings {
                issuer: "petstore-test".to_owned(),
                audience: "petstore-test".to_owned(),
                access_ttl: Duration::from_secs(300),
                private_key_pem: Some(key.clone()),
                previous_key_pems: Vec::new(),
            };
            TokenService::with_revocation_store(token_settings, revocations).expect("service")
        };
        let (on_a, on_b) = (service(Arc::clone(&a)), service(Arc::clone(&b)));
        let issued = on_a.issue_access("alice", &[]).expect("issued");
        let claims = on_b.verify(&issued.token).expect("valid on B");

        on_a.revoke(&claims);
        eventually("B refuses the revoked token", || {
            on_b.verify(&issued.token).is_err()
        })
        .await;
    }
}
