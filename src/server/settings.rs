//! From the one configuration to each module's own settings.
//!
//! [`Config`] is how an operator states things (flags, `PETSTORE_*` variables, in their units);
//! each module takes a settings type of its own, in its own terms. The mappings live here, in
//! the wiring, so no module below reads the configuration and the configuration builds nothing.

use std::{fs, time::Duration};

use super::{
    StartError,
    serve::{ServeSettings, TlsSettings},
};
use crate::{
    auth::TokenSettings,
    config::{Config, LogFormat},
    edge::{BodyLimits, EdgeSettings, IdempotencySettings},
    handlers::HandlerSettings,
    limits::RateQuota,
    mcp::{McpSettings, PublicUrl, SessionLimits},
    redis::{BreakerSettings, RedisSettings, ReplicationSettings},
    telemetry,
    ws::WsSettings,
};

impl From<&Config> for telemetry::LogSettings {
    fn from(config: &Config) -> Self {
        Self {
            filter: config.log.clone(),
            format: match config.log_format {
                LogFormat::Auto => telemetry::LogFormat::Auto,
                LogFormat::Json => telemetry::LogFormat::Json,
                LogFormat::Pretty => telemetry::LogFormat::Pretty,
            },
        }
    }
}

/// The WebSocket session limits.
pub(super) fn ws(config: &Config) -> WsSettings {
    let millis = |ms: u64| Duration::from_millis(ms.max(1));
    let queue_capacity = config.ws_queue_capacity.max(1);
    WsSettings {
        max_message_bytes: config.ws_max_message_bytes,
        auth_deadline: millis(config.ws_auth_timeout_ms),
        request_timeout: millis(config.ws_request_timeout_ms),
        max_in_flight: config.ws_max_in_flight.max(1),
        queue_capacity,
        queue_high_water: (queue_capacity * 3 / 4).max(1),
        outbox_capacity: config.ws_outbox_capacity.max(1),
        heartbeat_interval: millis(config.ws_heartbeat_ms),
        heartbeat_timeout: millis(config.ws_dead_after_ms),
        idle_timeout: millis(config.ws_idle_timeout_ms),
        expiry_warning: Duration::from_secs(config.ws_expiry_warning_secs),
        max_connections_per_ip: config.ws_max_connections_per_ip,
        message_rate: RateQuota {
            per_minute: config.ws_messages_per_minute,
            burst: config.ws_message_burst,
        },
        write_timeout: millis(config.ws_write_timeout_ms),
        ..WsSettings::default()
    }
}

/// The MCP endpoint's limits: the API's request timeout and JSON body limit, the session
/// limits, and the outbox of the WebSocket sessions for its resource updates.
pub(super) fn mcp(config: &Config) -> McpSettings {
    let defaults = McpSettings::default();
    McpSettings {
        request_timeout: config.request_timeout(),
        max_body_bytes: config.max_json_body_bytes,
        sessions: SessionLimits {
            per_client: usize::try_from(config.mcp_max_sessions_per_ip).unwrap_or(usize::MAX),
            idle_timeout: Duration::from_secs(config.mcp_session_idle_secs),
            lifetime: Duration::from_secs(config.mcp_session_lifetime_secs),
            ..defaults.sessions
        },
        outbox_capacity: config.ws_outbox_capacity.max(1),
        public_url: PublicUrl {
            configured: config.public_url.clone(),
            tls: config.tls_cert.is_some(),
        },
        ..defaults
    }
}

/// How to reach Redis, when it is configured.
pub(super) fn redis(config: &Config) -> Option<RedisSettings> {
    let url = config.redis_url.as_ref()?;
    let mut settings = RedisSettings::new(url.clone());
    settings.prefix = config.redis_prefix.clone();
    settings.pool_size = usize::try_from(config.redis_pool_size).unwrap_or(4);
    settings.command_timeout = Duration::from_millis(config.redis_command_timeout_ms);
    settings.ping_interval = Duration::from_millis(config.redis_ping_interval_ms);
    settings.breaker = BreakerSettings {
        failure_threshold: config.redis_breaker_failures,
        cool_down: Duration::from_millis(config.redis_breaker_cool_down_ms),
    };
    settings.replication = ReplicationSettings {
        replicas: config.redis_wait_replicas,
        timeout: Duration::from_millis(config.redis_wait_timeout_ms),
    };
    Some(settings)
}

/// What the HTTP edge needs besides the routes: body limits and the request timeout.
pub(super) fn edge(config: &Config) -> EdgeSettings {
    EdgeSettings {
        body_limits: BodyLimits {
            json: config.max_json_body_bytes,
            image: config.max_image_bytes,
        },
        request_timeout: config.request_timeout(),
    }
}

/// How long idempotency keys live: the configured time to live, and a lease that outlasts the
/// longest request of either transport, so only a node that died mid-request lets a running
/// key lapse (and then within seconds, not a day).
pub(super) fn idempotency(config: &Config) -> IdempotencySettings {
    let longest_request = config
        .request_timeout()
        .max(Duration::from_millis(config.ws_request_timeout_ms));
    IdempotencySettings {
        ttl: Duration::from_secs(config.idempotency_ttl_secs.max(1)),
        lease: longest_request + Duration::from_secs(5),
    }
}

/// What the handlers announce and enforce from the configuration.
pub(super) fn handlers(config: &Config) -> HandlerSettings {
    HandlerSettings {
        rate_limit_per_hour: config.rate_limit_per_minute.get().saturating_mul(60),
        refresh_ttl: config.refresh_token_ttl(),
        login_burst: config.login_attempts_per_minute.get(),
    }
}

/// How connections are served: timeouts, and TLS when a certificate and a key are given (one
/// without the other is refused rather than silently serving plain HTTP).
pub(super) fn serve(config: &Config) -> Result<ServeSettings, StartError> {
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(TlsSettings {
            cert_pem_path: cert.clone(),
            key_pem_path: key.clone(),
        }),
        (None, None) => None,
        (Some(_), None) => return Err(StartError::Config("--tls-cert needs --tls-key".into())),
        (None, Some(_)) => return Err(StartError::Config("--tls-key needs --tls-cert".into())),
    };
    Ok(ServeSettings {
        header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
        idle_timeout: Duration::from_secs(config.idle_timeout_secs),
        tls,
        ..ServeSettings::default()
    })
}

/// The token service's settings, with the signing keys read from their files.
pub(super) fn tokens(config: &Config) -> Result<TokenSettings, StartError> {
    let read = |path: &std::path::PathBuf| {
        fs::read_to_string(path).map_err(|source| StartError::KeyFile {
            path: path.display().to_string(),
            source,
        })
    };
    let private_key_pem = config.jwt_private_key.as_ref().map(read).transpose()?;
    let previous_key_pems = config
        .jwt_previous_keys
        .iter()
        .map(read)
        .collect::<Result<_, _>>()?;
    Ok(TokenSettings {
        issuer: config.jwt_issuer.clone(),
        audience: config.jwt_audience.clone(),
        access_ttl: config.access_token_ttl(),
        private_key_pem,
        previous_key_pems,
    })
}

/// How much event history the bus keeps.
pub(super) fn history(config: &Config) -> crate::events::HistorySettings {
    crate::events::HistorySettings {
        length: config.event_history_length.max(1),
        max_age: std::time::Duration::from_secs(config.event_history_secs.max(1)),
        log_length: config.event_log_length.max(1),
    }
}
