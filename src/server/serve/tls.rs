//! TLS: the certificate and key, read and checked at start-up, and the acceptor built from them.

use std::{fs, path::Path, path::PathBuf, sync::Arc};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio_rustls::{TlsAcceptor, rustls};

use super::ServeError;

/// Where the TLS certificate and key are.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM file with the certificate chain, leaf first.
    pub cert_pem_path: PathBuf,
    /// PEM file with the leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem_path: PathBuf,
}

/// Reads and checks the certificate and key, and builds the TLS acceptor: rustls with the aws-lc-rs
/// provider, TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`.
pub(super) fn tls_acceptor(settings: &TlsSettings) -> Result<TlsAcceptor, ServeError> {
    let cert_path = &settings.cert_pem_path;
    let key_path = &settings.key_pem_path;
    let cert_pem = read_file(cert_path, "certificate")?;
    let key_pem = read_file(key_path, "private key")?;

    let bad_certificate = |reason: String| ServeError::BadCertificate {
        path: cert_path.clone(),
        reason,
    };
    let certificates = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad_certificate(error.to_string()))?;
    if certificates.is_empty() {
        return Err(bad_certificate(
            "no `BEGIN CERTIFICATE` section found".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| ServeError::BadKey {
        path: key_path.clone(),
        reason: match error {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no `BEGIN PRIVATE KEY` section found".to_owned()
            }
            other => other.to_string(),
        },
    })?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls_error = |source: rustls::Error| match source {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            ServeError::KeyMismatch {
                cert: cert_path.clone(),
                key: key_path.clone(),
            }
        }
        source => ServeError::Tls {
            cert: cert_path.clone(),
            key: key_path.clone(),
            source,
        },
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(tls_error)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, ServeError> {
    fs::read(path).map_err(|source| ServeError::ReadFile {
        what,
        path: path.to_owned(),
        source,
    })
}
