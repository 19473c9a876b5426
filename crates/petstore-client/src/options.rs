//! How to connect ([`ClientOptions`]) and how to come back after a lost connection
//! ([`ReconnectPolicy`]: exponential backoff with jitter).

use std::time::Duration;

/// How to retry a lost connection: exponential backoff with jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// The delay before the first attempt.
    pub initial: Duration,
    /// What each failed attempt multiplies the delay by; below 1 counts as 1.
    pub factor: f64,
    /// The longest delay between attempts.
    pub max: Duration,
    /// The fraction of a delay that is randomly taken off, in `0..=1`, so that many clients
    /// dropped at once by a restarting server do not all come back in the same instant.
    pub jitter: f64,
    /// Give up after this many failed attempts in a row; `None` retries for as long as the
    /// client is alive.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            factor: 2.0,
            max: Duration::from_secs(5),
            jitter: 0.2,
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// The delay before attempt number `attempt` (0 for the first), with `random` as the
    /// source of jitter. Never longer than [`max`](Self::max), and never panics on odd values.
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let factor = if self.factor.is_finite() {
            self.factor.max(1.0)
        } else {
            1.0
        };
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX).min(1024);
        let max = self.max.as_secs_f64();
        let base = (self.initial.as_secs_f64() * factor.powi(exponent)).min(max);
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        // The top 53 bits as a fraction in [0, 1).
        let unit = (random >> 11) as f64 / (1u64 << 53) as f64;
        Duration::try_from_secs_f64(base * (1.0 - jitter * unit)).unwrap_or(self.max)
    }
}

/// How to connect, and how long to wait.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub(crate) bearer_token: Option<String>,
    pub(crate) origin: Option<String>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) reconnect: Option<ReconnectPolicy>,
    pub(crate) notification_buffer: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            bearer_token: None,
            origin: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            reconnect: None,
            notification_buffer: 256,
        }
    }
}

impl ClientOptions {
    /// Sends `Authorization: Bearer <token>` with the upgrade request, and with reconnects
    /// until a token from [`WsClient::authenticate`](crate::WsClient::authenticate) or
    /// [`WsClient::refresh`](crate::WsClient::refresh) supersedes it.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Sends an `Origin` header with the upgrade request, as a browser would.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// How long the TCP connect and the WebSocket handshake may take together.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a call waits for its response, including time spent queued while reconnecting.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Reconnects lost connections with this policy; off by default.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = Some(policy);
        self
    }

    /// Notifications kept for a slow [`Notifications`](crate::Notifications) receiver before it
    /// starts missing the oldest ones.
    pub fn notification_buffer(mut self, notifications: usize) -> Self {
        self.notification_buffer = notifications.max(1);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_100_ms_up_to_5_s() {
        let policy = ReconnectPolicy {
            jitter: 0.0,
            ..ReconnectPolicy::default()
        };
        let delays: Vec<u128> = (0..10)
            .map(|attempt| policy.delay(attempt, 0).as_millis())
            .collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]
        );
        assert_eq!(policy.delay(u32::MAX, 0), Duration::from_secs(5));
    }

    #[test]
    fn jitter_only_ever_shortens_the_delay_and_spreads_it() {
        let policy = ReconnectPolicy::default();
        let mut seen = std::collections::BTreeSet::new();
        let mut random = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..200 {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            let delay = policy.delay(3, random);
            assert!(delay <= Duration::from_millis(800), "{delay:?}");
            assert!(delay >= Duration::from_millis(640), "{delay:?}");
            seen.insert(delay);
        }
        assert!(seen.len() > 100, "jitter must spread the delays");
        assert_eq!(policy.delay(3, u64::MAX).as_millis(), 640);
    }

    #[test]
    fn odd_policies_neither_panic_nor_exceed_the_max() {
        for policy in [
            ReconnectPolicy {
                factor: f64::NAN,
                jitter: f64::INFINITY,
                ..ReconnectPolicy::default()
            },
            ReconnectPolicy {
                factor: 0.1,
                jitter: -3.0,
                ..ReconnectPolicy::default()
            },
            ReconnectPolicy {
                initial: Duration::from_secs(60),
                factor: f64::MAX,
                ..ReconnectPolicy::default()
            },
        ] {
            for attempt in [0, 1, 50, u32::MAX] {
                assert!(
                    policy.delay(attempt, u64::MAX / 3) <= policy.max,
                    "{policy:?}"
                );
            }
        }
    }
}
