//! What the handlers' unit tests share: handlers over an empty memory store, with one token
//! service for every test (generating its signing key is slow in debug builds).

use std::{
    num::NonZeroU32,
    sync::{Arc, OnceLock},
    time::Duration,
};

use super::{AuthServices, HandlerSettings, PetStore};
use crate::{
    auth::{MemorySessionStore, TokenService, TokenSettings},
    events::{Hub, LocalEventBus},
    limits::{LoginThrottle, RateQuota},
    store::{MemoryStore, Store},
};

/// The token service the tests share.
fn tokens() -> Arc<TokenService> {
    static TOKENS: OnceLock<Arc<TokenService>> = OnceLock::new();
    Arc::clone(TOKENS.get_or_init(|| {
        let settings = TokenSettings {
            issuer: "events-test".to_owned(),
            audience: "events-test".to_owned(),
            access_ttl: Duration::from_secs(60),
            private_key_pem: None,
            previous_key_pems: Vec::new(),
        };
        Arc::new(TokenService::new(settings).expect("the token service starts"))
    }))
}

/// Handlers over an empty memory store, publishing to a hub the test attaches to.
pub(super) fn pet_store() -> (PetStore, Arc<MemoryStore>, Arc<Hub>) {
    let memory = Arc::new(MemoryStore::new());
    let (handlers, hub) = pet_store_over(memory.clone());
    (handlers, memory, hub)
}

/// Handlers over `store`, publishing to a hub the test attaches to.
pub(super) fn pet_store_over(store: Arc<dyn Store>) -> (PetStore, Arc<Hub>) {
    let hub = Arc::new(Hub::new());
    let quota = RateQuota::per_minute(NonZeroU32::MIN);
    let handlers = PetStore::new(
        store,
        AuthServices {
            tokens: tokens(),
            sessions: Arc::new(MemorySessionStore::new()),
            login_throttle: Arc::new(LoginThrottle::local(quota, quota)),
        },
        HandlerSettings {
            rate_limit_per_hour: 1000,
            refresh_ttl: Duration::from_secs(60),
            login_burst: 5,
        },
    )
    .with_events(Arc::new(LocalEventBus::new(Arc::clone(&hub))));
    (handlers, hub)
}
