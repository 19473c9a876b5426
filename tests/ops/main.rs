//! Operating the server: the binary as an operator runs it, what it tells its monitoring, and
//! the deployment files.
//!
//! - [`binary`]: flags and environment, the "listening" line, start-up errors, signals.
//! - [`observability`]: `/metrics`, `/health`, `/ready`, `/live`.
//! - [`deploy`]: dashboards and alert rules query only exported metrics; compose and HAProxy
//!   files hold together.
//! - [`exposition`]: a reader for the Prometheus text format.
//!
//! Metrics are process-wide: every server started in this process reports into the same
//! families. The observability tests compare scrapes taken before and after what they do, so
//! every test here that starts a server in this process takes a turn ([`metrics_turn`]); the
//! binary tests start theirs in child processes.

mod binary;
mod deploy;
mod exposition;
mod observability;

use tokio::sync::{Mutex, MutexGuard};

/// Held by each test while its in-process server records metrics.
static METRICS: Mutex<()> = Mutex::const_new(());

/// Waits until no other test of this binary records metrics, and holds that until dropped.
async fn metrics_turn() -> MutexGuard<'static, ()> {
    METRICS.lock().await
}
