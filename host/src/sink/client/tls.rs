//! Client TLS: which servers to trust, which certificate to present, and the
//! explicit, logged option to trust any server.
//!
//! weir builds its rustls configuration itself instead of using tonic's
//! `ClientTlsConfig` because tonic cannot skip server verification and
//! because doing the handshake in weir's own connector is what lets a failed
//! handshake be told apart from an unreachable server.

use super::ClientError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// TLS settings for `hstreams://` and `https://` servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file of the certificate authorities to trust. Without it, the
    /// system's root certificates are trusted.
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate chain, for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key, for mutual TLS.
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate. Off by default; a warning is logged
    /// when a client is created with it, because it gives up all protection
    /// against an impostor server.
    pub insecure_skip_verify: bool,
}

impl TlsOptions {
    /// Whether any TLS option was given (they make no sense on a plain URL).
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some()
            || self.cert_file.is_some()
            || self.key_file.is_some()
            || self.insecure_skip_verify
    }
}

fn setup_error(file: Option<&Path>, problem: impl Into<String>) -> ClientError {
    ClientError::TlsSetup {
        file: file.map(Path::to_path_buf),
        problem: problem.into(),
    }
}

/// Builds the rustls configuration, reading every file named in `options`.
pub(crate) fn client_config(
    options: &TlsOptions,
) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| setup_error(None, format!("no usable TLS protocol version: {e}")))?;

    let builder = if options.insecure_skip_verify {
        if options.ca_file.is_some() {
            return Err(setup_error(
                None,
                "a CA file and skipping server verification contradict each other: give one",
            ));
        }
        tracing::warn!(
            "TLS server verification is OFF: any server, including an impostor, will be trusted"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
    } else {
        builder.with_root_certificates(root_store(options.ca_file.as_deref())?)
    };

    let mut config = match (&options.cert_file, &options.key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert_file), Some(key_file)) => {
            let chain = read_certificates(cert_file, "client certificate")?;
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
                setup_error(
                    Some(key_file),
                    format!("cannot read a PEM private key from the client key file: {e}"),
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                setup_error(
                    Some(key_file),
                    format!("the client key does not fit the client certificate: {e}"),
                )
            })?
        }
        (Some(cert_file), None) => {
            return Err(setup_error(
                Some(cert_file),
                "a client certificate needs its private key file too",
            ));
        }
        (None, Some(key_file)) => {
            return Err(setup_error(
                Some(key_file),
                "a client key needs its certificate file too",
            ));
        }
    };
    // gRPC runs on HTTP/2 only.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in read_certificates(path, "CA")? {
                roots.add(cert).map_err(|e| {
                    setup_error(
                        Some(path),
                        format!(
                            "a certificate in the CA file is not usable as a trust anchor: {e}"
                        ),
                    )
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::debug!(%error, "skipping unreadable system root certificates");
            }
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(setup_error(
                    None,
                    "no CA file was given and no system root certificates were found",
                ));
            }
        }
    }
    Ok(roots)
}

fn read_certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    // Read the file first so that "cannot read" and "not PEM" are different
    // messages.
    let pem = std::fs::read(path)
        .map_err(|e| setup_error(Some(path), format!("cannot read the {what} file: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup_error(Some(path), format!("the {what} file is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(setup_error(
            Some(path),
            format!("the {what} file holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ));
    }
    Ok(certs)
}

/// The verifier behind `insecure_skip_verify`: any certificate is accepted,
/// but handshake signatures are still checked, so the connection at least
/// talks to whoever holds the presented certificate's key.
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
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
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
