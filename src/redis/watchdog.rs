//! The PING watchdog of a subscriber connection.
//!
//! A subscriber connection only listens. If it goes silent without being closed (a NAT table or
//! firewall that forgot an idle flow, a partition, a Redis host that vanished without resetting
//! its sockets), no error ever arrives: the node simply stops hearing messages, for as long as
//! the kernel takes to give up on the socket, which can be hours. The watchdog asks instead:
//! every `interval` it sends `PING` (allowed on a subscribed connection), and when no answer
//! comes within `timeout` it makes the client drop the connection and open a new one. The
//! client then resubscribes and announces the reconnection, and its owner catches up on what
//! it missed meanwhile (the event bus from its log, the revocation list by reloading it).
//!
//! While the client is already reconnecting (its connection broke in a way it noticed) the
//! watchdog stays quiet: there is nothing to ping.

use std::time::Duration;

use fred::{clients::SubscriberClient, error::ErrorKind, interfaces::ClientLike};
use tokio::task::JoinHandle;

/// Starts the watchdog of `subscriber`, named `name` in logs; it runs until aborted.
pub(super) fn spawn(
    subscriber: SubscriberClient,
    interval: Duration,
    timeout: Duration,
    name: &'static str,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now() + interval;
        let mut ticks = tokio::time::interval_at(start, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if !subscriber.is_connected() {
                continue;
            }
            let answer = tokio::time::timeout(timeout, subscriber.ping::<()>(None)).await;
            match answer {
                Ok(Ok(())) => {}
                // A connection that fails says so; the client is reconnecting already. Not so a
                // timeout: the client's own command timeout is the same as ours and may fire
                // first, and it leaves the connection as it is.
                Ok(Err(error)) if *error.kind() != ErrorKind::Timeout => {
                    tracing::debug!(subscriber = name, %error, "subscriber PING failed");
                }
                Ok(Err(_)) | Err(_) => {
                    tracing::warn!(
                        subscriber = name,
                        timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                        "the subscriber connection does not answer PING; reconnecting it"
                    );
                    if let Err(error) = subscriber.force_reconnection().await {
                        tracing::warn!(subscriber = name, %error, "cannot reconnect the subscriber");
                    }
                }
            }
        }
    })
}
