//! Typed configuration: defaults, then `PETSTORE_*` environment variables, then command-line flags.
//!
//! Every setting is documented in the README's configuration table; keep the two in step.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, pretty otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Server configuration.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "petstore-ws",
    version,
    about = "The Pet Store API over REST and WebSocket"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "PETSTORE_BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// TCP port to listen on (0 picks a free one).
    #[arg(long, env = "PETSTORE_PORT", default_value_t = 8080)]
    pub port: u16,

    /// Log filter, in `tracing` env-filter syntax (e.g. `info`, `petstore_ws=debug`).
    #[arg(long, env = "PETSTORE_LOG", default_value = "info")]
    pub log: String,

    /// Log line format.
    #[arg(long, env = "PETSTORE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,

    /// Start with an empty store instead of the demo pets, users and orders.
    #[arg(long, env = "PETSTORE_NO_DEMO_DATA")]
    pub no_demo_data: bool,

    /// Largest accepted JSON request body, in bytes.
    #[arg(long, env = "PETSTORE_MAX_JSON_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_json_body_bytes: usize,

    /// Largest accepted image upload, in bytes.
    #[arg(long, env = "PETSTORE_MAX_IMAGE_BYTES", default_value_t = 5 * 1024 * 1024)]
    pub max_image_bytes: usize,

    /// PEM file with the RSA private key that signs access tokens (PKCS#8 or PKCS#1). Without one,
    /// an ephemeral key pair is made at start-up and tokens do not survive a restart.
    #[arg(long, env = "PETSTORE_JWT_PRIVATE_KEY")]
    pub jwt_private_key: Option<PathBuf>,

    /// `iss` claim of issued tokens, and the only issuer accepted.
    #[arg(long, env = "PETSTORE_JWT_ISSUER", default_value = "petstore-ws")]
    pub jwt_issuer: String,

    /// `aud` claim of issued tokens, and the only audience accepted.
    #[arg(long, env = "PETSTORE_JWT_AUDIENCE", default_value = "petstore-api")]
    pub jwt_audience: String,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "PETSTORE_ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,

    /// Requests per hour a user may make, announced in `loginUser`'s `X-Rate-Limit` header.
    #[arg(long, env = "PETSTORE_RATE_LIMIT_PER_HOUR", default_value_t = 6000)]
    pub rate_limit_per_hour: u32,

    /// Longest time to wait for in-flight requests on shutdown, in seconds.
    #[arg(long, env = "PETSTORE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
}

impl Config {
    /// The defaults, as if started with no flags and no environment: what tests and benchmarks
    /// start from before overriding fields.
    pub fn defaults() -> Self {
        Self::parse_from(["petstore-ws"])
    }

    /// Lifetime of access tokens.
    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_secs)
    }

    /// Longest wait for in-flight requests on shutdown.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}
