//! The server loop: accepts TCP connections, optionally completes a TLS handshake, and serves each
//! connection with hyper, handing every request to a poem endpoint.
//!
//! Our own loop rather than `poem::Server`, for two things poem's loop cannot do: it runs hyper
//! without a timer, so there is no header-read timeout and a client trickling header bytes holds a
//! connection forever; and it serves plain TCP only, while we serve HTTPS (and WSS) directly when a
//! certificate is configured. Everything above the connection (routing, extractors, WebSocket
//! upgrades, responses) stays poem's: requests and responses cross with poem's own conversions.
//!
//! One room per job:
//!
//! - `listener`: binds the socket ([`bind`]) and runs the accept loop ([`Listener::serve`]).
//! - `tls`: reads and checks the certificate and key, and builds the TLS acceptor.
//! - `connection`: serves one accepted connection: the TLS handshake, then HTTP/1 or HTTP/2.
//! - `watchdog`: closes slow and idle connections (its module documentation has the table of
//!   what it covers).
//! - `shutdown`: how the loop winds down: stop accepting, let connections finish for the grace
//!   period, drop the rest.
//!
//! WebSocket connections leave this loop once upgraded: the timeouts and the graceful shutdown
//! do not apply to them (the WebSocket service closes its own sessions).

mod connection;
mod listener;
mod shutdown;
mod tls;
mod watchdog;

#[cfg(test)]
mod tests;

use std::{io, net::SocketAddr, path::PathBuf, time::Duration};

use tokio_rustls::rustls;

pub use self::{
    listener::{Listener, bind},
    tls::TlsSettings,
};

/// Default for [`ServeSettings::max_header_bytes`].
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// The smallest read buffer hyper accepts, and so the smallest header limit we can set.
const MIN_MAX_HEADER_BYTES: usize = 8 * 1024;

/// How the server treats connections.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// How long a client may take to deliver a request head once it has started sending it, and
    /// a new connection to deliver its first (TLS handshake included).
    pub header_read_timeout: Duration,
    /// How long a connection may go without a request in flight (keep-alive), or with one in
    /// flight but nothing read or written, before it is closed.
    pub idle_timeout: Duration,
    /// Largest request head (HTTP/1, refused with 431 above) or header list (HTTP/2), in bytes.
    /// Values below 8 KiB are raised to 8 KiB, hyper's minimum.
    pub max_header_bytes: usize,
    /// Serve HTTPS with this certificate and key; plain HTTP when `None`.
    pub tls: Option<TlsSettings>,
}

impl Default for ServeSettings {
    /// 10 s to deliver a head, 60 s of silence, 64 KiB of headers, plain HTTP.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            tls: None,
        }
    }
}

/// Why the server cannot listen.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// A TLS file cannot be read.
    #[error("cannot read the TLS {what} file {path}: {source}")]
    ReadFile {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The configured path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The certificate file is not PEM or holds no certificate.
    #[error("the TLS certificate file {path} holds no PEM certificate: {reason}")]
    BadCertificate {
        /// The configured path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file is not PEM or holds no private key.
    #[error(
        "the TLS private key file {path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}"
    )]
    BadKey {
        /// The configured path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key is not the certificate's.
    #[error("the TLS private key {key} does not belong to the certificate {cert}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the certificate and key for another reason (an unsupported key type, a
    /// certificate it cannot parse).
    #[error("cannot use the TLS certificate {cert} with the key {key}: {source}")]
    Tls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        source: rustls::Error,
    },
}
