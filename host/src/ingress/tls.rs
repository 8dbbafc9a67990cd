//! rustls configurations for the bridge (client side) and the listener
//! (server side), built from PEM files named in the configuration, with the
//! ring provider the rest of weir uses.

use super::config::{ClientTlsConfig, ConfigError, ListenerTlsConfig, config_error};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(field: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bad = |reason: String| config_error(field, format!("{}: {reason}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not PEM certificates ({e})")))?;
    if certs.is_empty() {
        return Err(bad("contains no PEM certificate".into()));
    }
    Ok(certs)
}

fn read_key(field: &str, path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let bad = |reason: String| config_error(field, format!("{}: {reason}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| bad(format!("not a PEM private key ({e})")))?
        .ok_or_else(|| bad("contains no PEM private key".into()))
}

fn roots(field: &str, path: &Path) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(field, path)? {
        roots
            .add(cert)
            .map_err(|e| config_error(field, format!("{}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// The TLS configuration weir uses to connect to a broker.
pub(crate) fn client_config(tls: &ClientTlsConfig) -> Result<rustls::ClientConfig, ConfigError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("bridge.tls", e.to_string()))?;
    let roots = match &tls.ca_file {
        Some(path) => roots("bridge.tls.ca_file", path)?,
        None => {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 && tls.verify {
                return Err(config_error(
                    "bridge.tls.ca_file",
                    "is not set and the system has no root certificates",
                ));
            }
            roots
        }
    };
    let builder = builder.with_root_certificates(roots);
    let mut config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(
                read_certs("bridge.tls.cert_file", cert)?,
                read_key("bridge.tls.key_file", key)?,
            )
            .map_err(|e| config_error("bridge.tls.key_file", e.to_string()))?,
        _ => builder.with_no_client_auth(),
    };
    if !tls.verify {
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(NoVerification(provider)));
    }
    Ok(config)
}

/// The TLS configuration of the listener.
pub(crate) fn server_config(tls: &ListenerTlsConfig) -> Result<rustls::ServerConfig, ConfigError> {
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("listener.tls", e.to_string()))?;
    let builder = match &tls.client_ca_file {
        Some(path) => {
            let roots = roots("listener.tls.client_ca_file", path)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| config_error("listener.tls.client_ca_file", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(
            read_certs("listener.tls.cert_file", &tls.cert_file)?,
            read_key("listener.tls.key_file", &tls.key_file)?,
        )
        .map_err(|e| config_error("listener.tls.key_file", e.to_string()))
}

/// Accepts any broker certificate (`verify = false`), while still checking
/// that the handshake is signed by the certificate presented.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
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
    fn files_that_are_not_pem_are_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").expect("write");
        let error = client_config(&ClientTlsConfig {
            ca_file: Some(junk.clone()),
            ..ClientTlsConfig::default()
        })
        .expect_err("junk CA");
        assert_eq!(error.field, "bridge.tls.ca_file");
        assert!(error.reason.contains("junk.pem"), "{error}");

        let error = server_config(&ListenerTlsConfig {
            bind: "127.0.0.1:0".parse().expect("addr"),
            cert_file: junk.clone(),
            key_file: junk,
            client_ca_file: None,
        })
        .expect_err("junk cert");
        assert_eq!(error.field, "listener.tls.cert_file");
    }

    #[test]
    fn a_generated_certificate_makes_both_configs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let cert_file = dir.path().join("cert.pem");
        let key_file = dir.path().join("key.pem");
        std::fs::write(&cert_file, cert.cert.pem()).expect("write cert");
        std::fs::write(&key_file, cert.signing_key.serialize_pem()).expect("write key");
        server_config(&ListenerTlsConfig {
            bind: "127.0.0.1:0".parse().expect("addr"),
            cert_file: cert_file.clone(),
            key_file,
            client_ca_file: Some(cert_file.clone()),
        })
        .expect("server config");
        client_config(&ClientTlsConfig {
            ca_file: Some(cert_file),
            ..ClientTlsConfig::default()
        })
        .expect("client config");
    }
}
