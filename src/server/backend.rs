//! Where a node keeps what it may share with other nodes: alone, everything lives in this
//! process; with Redis configured, the store, the events, the limits and the authentication state
//! live in Redis, so any node can serve any request.
//!
//! Both backends hand the rest of the server the same trait objects; nothing above this module
//! knows which one it runs on.

use std::{sync::Arc, time::Duration};

use crate::{
    auth::{RevocationList, RevocationStore, sessions::MemorySessionStore, sessions::SessionStore},
    config::Config,
    events::{EventBus, Hub, LocalEventBus},
    limits::{self, LocalRateLimiter, LoginThrottle, RateLimiter, RateQuota},
    store::{MemoryStore, SharedStore},
};

/// How often idle in-process rate-limit state is dropped.
const LIMITER_HOUSEKEEPING: Duration = Duration::from_secs(60);

/// The shared state of a node, as trait objects.
pub(super) struct Backend {
    pub store: SharedStore,
    pub events: Arc<dyn EventBus>,
    pub request_limiter: Arc<dyn RateLimiter>,
    pub login_throttle: LoginThrottle,
    pub sessions: Arc<dyn SessionStore>,
    pub revocations: Arc<dyn RevocationStore>,
}

impl Backend {
    /// Everything in this process: one node on its own.
    pub fn in_process(config: &Config, hub: &Arc<Hub>) -> Self {
        let request_limiter = Arc::new(LocalRateLimiter::new(request_quota(config)));
        limits::spawn_housekeeping(request_limiter.clone(), LIMITER_HOUSEKEEPING);
        let login_throttle = LoginThrottle::local(
            RateQuota::per_minute(config.login_attempts_per_minute),
            RateQuota::per_minute(config.login_attempts_per_ip_per_minute),
        );
        login_throttle.spawn_housekeeping(LIMITER_HOUSEKEEPING);
        Self {
            store: Arc::new(MemoryStore::new()),
            events: Arc::new(LocalEventBus::new(hub.clone())),
            request_limiter,
            login_throttle,
            sessions: Arc::new(MemorySessionStore::new()),
            revocations: Arc::new(RevocationList::new()),
        }
    }
}

/// The per-client request budget.
fn request_quota(config: &Config) -> RateQuota {
    RateQuota {
        per_minute: config.rate_limit_per_minute,
        burst: config.rate_limit_burst,
    }
}
