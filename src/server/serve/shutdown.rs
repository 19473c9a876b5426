//! How the loop winds down.
//!
//! On the shutdown signal the loop stops accepting (the listening socket is closed), asks every
//! connection to finish gracefully (in-flight requests complete, idle connections close at once,
//! HTTP/2 gets `GOAWAY`), waits up to the grace period, then drops the connections still open.
//!
//! Every connection task holds a receiver of the [`Phase`]: the count of receivers is the count
//! of open connections, and the channel closing is the moment the last one is gone.

use std::time::Duration;

use tokio::{sync::watch, time::timeout};

/// Where the server is in its life, as every connection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Accepting and serving.
    Serving,
    /// Finish in-flight requests, then close.
    Draining,
    /// Close now.
    Closing,
}

/// Tells the connections to finish, waits up to `grace` for them, then tells the rest to close
/// and waits until they have. Called once the listening socket is closed.
pub(super) async fn wind_down(phase: watch::Sender<Phase>, grace: Duration) {
    let open = phase.receiver_count();
    tracing::info!(
        connections = open,
        grace_secs = grace.as_secs_f32(),
        "stopped accepting; letting connections finish"
    );
    // No receiver left (every connection gone) fails the send, which is fine: nothing to tell.
    let _ = phase.send(Phase::Draining);
    if timeout(grace, phase.closed()).await.is_err() {
        tracing::warn!(
            connections = phase.receiver_count(),
            "grace period over; dropping the connections still open"
        );
        let _ = phase.send(Phase::Closing);
        phase.closed().await;
    }
    tracing::info!("server stopped");
}
