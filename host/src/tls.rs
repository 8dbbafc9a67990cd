//! The TLS pieces ingress and the sink share: PEM files read into rustls
//! types (with errors that say which file and what is wrong with it), the
//! system's root certificates, the ring provider, and the one verifier that
//! accepts any server certificate.
//!
//! Security code lives once: the MQTT bridge's `verify = false` and the
//! HStreamDB client's `insecure_skip_verify` are the same verifier, and a PEM
//! file is checked the same way whoever names it. Each side still builds its
//! own rustls configuration, because what it trusts and presents differs.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a PEM file could not be used. `what` names the file as the
/// configuration does ("CA", "client certificate", ...).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PemError {
    #[error("cannot read the {what} file: {source}")]
    Read {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("the {what} file is not valid PEM: {reason}")]
    NotPem {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("the {what} file holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf, what: &'static str },
    #[error("the {what} file holds no PEM private key (-----BEGIN PRIVATE KEY-----)")]
    NoKey { path: PathBuf, what: &'static str },
    #[error("a certificate in the {what} file is not usable as a trust anchor: {reason}")]
    BadAnchor {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
}

impl PemError {
    /// The file the error is about.
    pub(crate) fn path(&self) -> &Path {
        match self {
            PemError::Read { path, .. }
            | PemError::NotPem { path, .. }
            | PemError::NoCertificate { path, .. }
            | PemError::NoKey { path, .. }
            | PemError::BadAnchor { path, .. } => path,
        }
    }
}

/// The crypto provider every TLS configuration of weir uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, PemError> {
    // Read the file first so that "cannot read" and "not PEM" are different
    // messages.
    std::fs::read(path).map_err(|source| PemError::Read {
        path: path.to_owned(),
        what,
        source,
    })
}

/// Every certificate in the PEM file at `path`; at least one.
pub(crate) fn read_certificates(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let pem = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::NotPem {
            path: path.to_owned(),
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PemError::NoCertificate {
            path: path.to_owned(),
            what,
        });
    }
    Ok(certs)
}

/// The first private key in the PEM file at `path`.
pub(crate) fn read_private_key(
    path: &Path,
    what: &'static str,
) -> Result<PrivateKeyDer<'static>, PemError> {
    let pem = read(path, what)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => PemError::NoKey {
            path: path.to_owned(),
            what,
        },
        other => PemError::NotPem {
            path: path.to_owned(),
            what,
            reason: other.to_string(),
        },
    })
}

/// The certificates of the PEM file at `path` as trust anchors.
pub(crate) fn trust_anchors(path: &Path, what: &'static str) -> Result<RootCertStore, PemError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(path, what)? {
        roots.add(cert).map_err(|e| PemError::BadAnchor {
            path: path.to_owned(),
            what,
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// The system's root certificates; empty when it has none weir can use.
pub(crate) fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "skipping unreadable system root certificates");
    }
    let mut roots = RootCertStore::empty();
    let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
    roots
}

/// The verifier behind the bridge's `verify = false` and the client's
/// `insecure_skip_verify`: any server certificate is accepted, but handshake
/// signatures are still checked, so the connection at least talks to whoever
/// holds the presented certificate's key.
pub(crate) fn accept_any_server(provider: Arc<CryptoProvider>) -> Arc<dyn ServerCertVerifier> {
    Arc::new(AcceptAnyServer(provider))
}

#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_errors_name_the_file_and_what_is_wrong() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.pem");
        let error = read_certificates(&missing, "CA").expect_err("missing");
        assert!(matches!(error, PemError::Read { .. }), "{error}");
        assert_eq!(error.path(), missing);
        assert!(
            error.to_string().starts_with("cannot read the CA file"),
            "{error}"
        );

        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello").expect("write");
        let error = read_certificates(&not_pem, "CA").expect_err("no certificate");
        assert!(matches!(error, PemError::NoCertificate { .. }), "{error}");
        let error = read_private_key(&not_pem, "client key").expect_err("no key");
        assert!(matches!(error, PemError::NoKey { .. }), "{error}");
        assert!(error.to_string().contains("client key file"), "{error}");
    }
}
