//! Client TLS: which servers to trust, which certificate to present, and the
//! explicit, logged option to trust any server.
//!
//! weir builds its rustls configuration itself instead of using tonic's
//! `ClientTlsConfig` because tonic cannot skip server verification and
//! because doing the handshake in weir's own connector is what lets a failed
//! handshake be told apart from an unreachable server.

use super::ClientError;
use crate::tls::{
    PemError, accept_any_server, provider, read_certificates, read_private_key, system_roots,
    trust_anchors,
};
use rustls::RootCertStore;
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
    let provider = provider();
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
            .with_custom_certificate_verifier(accept_any_server(provider))
    } else {
        builder.with_root_certificates(root_store(options.ca_file.as_deref())?)
    };

    let mut config = match (&options.cert_file, &options.key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert_file), Some(key_file)) => {
            let chain = read_certificates(cert_file, "client certificate").map_err(pem_error)?;
            let key = read_private_key(key_file, "client key").map_err(pem_error)?;
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

fn pem_error(e: PemError) -> ClientError {
    setup_error(Some(e.path()), e.to_string())
}

fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, ClientError> {
    match ca_file {
        Some(path) => trust_anchors(path, "CA").map_err(pem_error),
        None => {
            let roots = system_roots();
            if roots.is_empty() {
                return Err(setup_error(
                    None,
                    "no CA file was given and no system root certificates were found",
                ));
            }
            Ok(roots)
        }
    }
}
