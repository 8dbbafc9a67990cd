//! rustls configurations for the bridge (client side) and the listener
//! (server side), built from PEM files named in the configuration, with the
//! ring provider the rest of weir uses.

use super::config::{ClientTlsConfig, ConfigError, ListenerTlsConfig, config_error};
use crate::tls::{
    PemError, accept_any_server, provider, read_certificates, read_private_key, system_roots,
    trust_anchors,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::Path;
use std::sync::Arc;

/// The subject's common name in the certificate a client presented (the
/// first of the chain, its own), if it has one that is text.
pub(super) fn peer_common_name(connection: &rustls::ServerConnection) -> Option<String> {
    let certificate = connection.peer_certificates()?.first()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).ok()?;
    let name = parsed.subject().iter_common_name().next()?.as_str().ok()?;
    Some(name.to_owned())
}

/// A PEM problem as a configuration error of `field`.
fn pem_error(field: &str) -> impl Fn(PemError) -> ConfigError + '_ {
    move |e| config_error(field, format!("{}: {e}", e.path().display()))
}

fn read_certs(field: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    read_certificates(path, "certificate").map_err(pem_error(field))
}

fn read_key(field: &str, path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    read_private_key(path, "private key").map_err(pem_error(field))
}

fn roots(field: &str, path: &Path) -> Result<RootCertStore, ConfigError> {
    trust_anchors(path, "CA").map_err(pem_error(field))
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
            let roots = system_roots();
            if roots.is_empty() && tls.verify {
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
            .set_certificate_verifier(accept_any_server(provider));
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
            peer_cert_as_username: None,
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
            peer_cert_as_username: None,
        })
        .expect("server config");
        client_config(&ClientTlsConfig {
            ca_file: Some(cert_file),
            ..ClientTlsConfig::default()
        })
        .expect("client config");
    }
}
