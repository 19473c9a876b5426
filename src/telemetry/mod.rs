//! What the server tells its operators: logs and metrics.
//!
//! - Logs ([`init`], with [`LogSettings`]): `tracing` with an env-filter, JSON lines or pretty output, always to stderr
//!   (stdout carries only the "listening on" line scripts wait for). The HTTP edge opens one span
//!   per request (request id, method, path, then operation, status and latency) at `debug`, so the
//!   default `info` level pays one disabled-callsite check per request for it; server errors are
//!   logged at `error` with the same fields whatever the level.
//! - Metrics ([`metrics`]): OpenTelemetry instruments exported in the Prometheus text format at
//!   `/metrics`.

pub mod metrics;

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How log lines are filtered and written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// The filter, in `tracing` env-filter syntax (`info`, `petstore_ws=debug`).
    pub filter: String,
    /// How lines are written.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, pretty otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Installs the global subscriber. Calling it again (tests start many servers) is a no-op.
///
/// Takes anything that converts into [`LogSettings`]: the server's configuration does (the
/// mapping lives with the server's wiring), so the binary, tests and benches pass it as is
/// while this module knows nothing of the configuration.
///
/// # Errors
/// The reason, when the filter is not valid env-filter syntax.
pub fn init(settings: impl Into<LogSettings>) -> Result<(), String> {
    let settings = settings.into();
    let filter = EnvFilter::try_new(&settings.filter)
        .map_err(|error| format!("invalid log filter `{}`: {error}", settings.filter))?;
    let json = match settings.format {
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
