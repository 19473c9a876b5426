//! Which of the pool's connections are up, as the Redis client reports them, so that a call is
//! never sent down a connection that is known to be down.
//!
//! fred queues a command given to a client whose connection dropped until that client has
//! reconnected: while Redis is gone the command waits for the whole command timeout, and so does
//! every read retry after it. A killed Redis closes its sockets, so the node knows at once; a
//! [`Link`] per pooled client turns that knowledge into an answer:
//!
//! - fred's error event (the connection broke, or a reconnection attempt failed) marks the link
//!   down and wakes the calls in flight on it ([`Links::lost`]), which give up at once instead
//!   of waiting for the reconnection they are queued behind;
//! - its reconnect event (a new connection passed its handshake) marks the link up again and
//!   tells the caller ([`Links::watch`]'s `on_restored`), which lets the circuit breaker try
//!   Redis at once rather than after the rest of its cool-down.
//!
//! A link also counts as down while fred itself says the client is not connected, which covers
//! the moment between a drop and its event, and the reconnection in progress.
//!
//! The events arrive on two channels; the watcher reads errors first, so an error and the
//! reconnection that followed it are always applied in that order. Should the watcher fall
//! behind a channel, it takes the client's own state instead.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use fred::{
    clients::{Client, Pool},
    interfaces::{ClientLike, EventInterface},
};
use tokio::{
    sync::{Notify, broadcast::error::RecvError, futures::Notified},
    task::JoinHandle,
};

/// The state of one pooled connection.
#[derive(Debug)]
struct Link {
    up: AtomicBool,
    /// Woken when the link goes down.
    lost: Notify,
}

/// The links of a pool, one per client, in the pool's order.
#[derive(Debug)]
pub(super) struct Links {
    links: Arc<[Link]>,
    /// Round-robin position over the pool.
    next: AtomicUsize,
    /// Set while [`Links::reconnect_all`] is under way.
    reconnecting: Arc<AtomicBool>,
    watchers: Vec<JoinHandle<()>>,
}

impl Links {
    /// Starts watching every client of `pool`, all taken to be connected (the pool has just
    /// connected). `on_restored` runs each time a client reconnects.
    pub(super) fn watch(
        pool: &Pool,
        on_restored: impl Fn() + Clone + Send + Sync + 'static,
    ) -> Self {
        let links: Arc<[Link]> = pool
            .clients()
            .iter()
            .map(|_| Link {
                up: AtomicBool::new(true),
                lost: Notify::new(),
            })
            .collect();
        let watchers = pool
            .clients()
            .iter()
            .enumerate()
            .map(|(index, client)| {
                tokio::spawn(watch(
                    client.clone(),
                    Arc::clone(&links),
                    index,
                    on_restored.clone(),
                ))
            })
            .collect();
        Self {
            links,
            next: AtomicUsize::new(0),
            reconnecting: Arc::new(AtomicBool::new(false)),
            watchers,
        }
    }

    /// Makes every client of `pool` drop its connection and open a new one, in the background;
    /// does nothing while an earlier call's reconnections are still under way.
    ///
    /// For connections that look up but no longer answer (a peer gone without closing: a
    /// partition, a host that vanished): nothing else would ever replace them.
    pub(super) fn reconnect_all(&self, pool: &Pool) {
        if self.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!("redis does not answer on connections that look up; reconnecting them");
        let clients: Vec<Client> = pool.clients().to_vec();
        let reconnecting = Arc::clone(&self.reconnecting);
        tokio::spawn(async move {
            let reconnections = clients.iter().map(|client| client.force_reconnection());
            for result in futures_util::future::join_all(reconnections).await {
                if let Err(error) = result {
                    tracing::debug!(%error, "a forced redis reconnection failed");
                }
            }
            reconnecting.store(false, Ordering::Release);
        });
    }

    /// The next client (round robin) whose connection is up, with its index; `None` when no
    /// connection is up.
    pub(super) fn pick(&self, pool: &Pool) -> Option<(usize, Client)> {
        let clients = pool.clients();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..clients.len())
            .map(|offset| (start.wrapping_add(offset)) % clients.len())
            .find(|&index| self.is_up(index, &clients[index]))
            .map(|index| (index, clients[index].clone()))
    }

    /// Whether any connection is up.
    pub(super) fn any_up(&self, pool: &Pool) -> bool {
        pool.clients()
            .iter()
            .enumerate()
            .any(|(index, client)| self.is_up(index, client))
    }

    /// Whether link `index` (of `client`) is up.
    pub(super) fn is_up(&self, index: usize, client: &Client) -> bool {
        self.links
            .get(index)
            .is_some_and(|link| link.up.load(Ordering::Acquire))
            && client.is_connected()
    }

    /// Resolves when link `index` goes down. Enable it (`Notified::enable`) before checking
    /// [`Links::is_up`], so a loss in between is not missed.
    pub(super) fn lost(&self, index: usize) -> Option<Notified<'_>> {
        self.links.get(index).map(|link| link.lost.notified())
    }

    /// Stops watching.
    pub(super) fn stop(&self) {
        for watcher in &self.watchers {
            watcher.abort();
        }
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Follows one client's connection events into its link.
async fn watch(client: Client, links: Arc<[Link]>, index: usize, on_restored: impl Fn()) {
    let Some(link) = links.get(index) else {
        return;
    };
    let mut errors = client.error_rx();
    let mut reconnects = client.reconnect_rx();
    let set = |up: bool| {
        let was = link.up.swap(up, Ordering::AcqRel);
        if !up {
            link.lost.notify_waiters();
        }
        if up {
            if !was {
                tracing::info!(connection = index, "redis connection restored");
            }
            // Every reconnection, a forced one included (the link never looked down).
            on_restored();
        } else if was {
            tracing::warn!(
                connection = index,
                "redis connection lost; calls fail fast until it is back"
            );
        }
    };
    loop {
        tokio::select! {
            // Errors first: a reconnection is only ever announced after the error before it.
            biased;
            error = errors.recv() => match error {
                Ok(_) => set(false),
                Err(RecvError::Lagged(_)) => set(client.is_connected()),
                Err(RecvError::Closed) => return,
            },
            reconnected = reconnects.recv() => match reconnected {
                Ok(_) => set(true),
                Err(RecvError::Lagged(_)) => set(client.is_connected()),
                Err(RecvError::Closed) => return,
            },
        }
    }
}
