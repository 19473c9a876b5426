//! What the server tells its operators: logs and metrics.
//!
//! - Logs ([`init`]): `tracing` with an env-filter, JSON lines or pretty output, always to stderr
//!   (stdout carries only the "listening on" line scripts wait for). The HTTP edge opens one span
//!   per request (request id, method, path, then operation, status and latency) at `debug`, so the
//!   default `info` level pays one disabled-callsite check per request for it; server errors are
//!   logged at `error` with the same fields whatever the level.
//! - Metrics ([`metrics`]): OpenTelemetry instruments exported in the Prometheus text format at
//!   `/metrics`.

pub mod metrics;

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{Config, LogFormat};

/// Installs the global subscriber. Calling it again (tests start many servers) is a no-op.
pub fn init(config: &Config) -> Result<(), String> {
    let filter = EnvFilter::try_new(&config.log)
        .map_err(|error| format!("invalid log filter `{}`: {error}", config.log))?;
    let json = match config.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    // An already installed subscriber is fine: the first one wins.
    let _ = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    Ok(())
}
