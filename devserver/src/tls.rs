//! Server TLS (and mutual TLS) from PEM files.
//!
//! The files are read and parsed here, before tonic sees them, so a wrong
//! path or a file of the wrong kind is reported naming that file instead of
//! surfacing later as an anonymous handshake failure.

use crate::TlsConfig;
use crate::error::Error;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

pub(crate) fn server_config(config: &TlsConfig) -> Result<ServerTlsConfig, Error> {
    let cert = read_certificates("certificate", &config.cert)?;
    let key = read("private key", &config.key)?;
    PrivateKeyDer::from_pem_slice(&key).map_err(|e| Error::Tls {
        what: "private key",
        path: config.key.clone(),
        reason: format!("no usable PEM private key: {e}"),
    })?;
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    if let Some(ca) = &config.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read_certificates("client CA", ca)?));
    }
    Ok(tls)
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Tls {
        what,
        path: path.to_owned(),
        reason: format!("cannot be read: {e}"),
    })
}

/// Reads a PEM file that must hold at least one certificate.
fn read_certificates(what: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    let pem = read(what, path)?;
    let bad = |reason: String| Error::Tls {
        what,
        path: path.to_owned(),
        reason,
    };
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| bad(format!("invalid PEM: {e}")))?;
        count += 1;
    }
    if count == 0 {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let missing = tmp.path().join("missing.pem");
        let not_pem = tmp.path().join("key.pem");
        std::fs::write(&not_pem, b"hello").expect("write");
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .expect("self-signed certificate");
        let cert = tmp.path().join("cert.pem");
        std::fs::write(&cert, generated.cert.pem()).expect("write");

        let err = server_config(&TlsConfig {
            cert: missing.clone(),
            key: not_pem.clone(),
            client_ca: None,
        })
        .expect_err("missing certificate");
        assert!(err.to_string().contains("missing.pem"), "{err}");
        assert!(err.to_string().contains("certificate"), "{err}");

        let err = server_config(&TlsConfig {
            cert: cert.clone(),
            key: not_pem,
            client_ca: None,
        })
        .expect_err("key is not PEM");
        assert!(err.to_string().contains("key.pem"), "{err}");

        let err = server_config(&TlsConfig {
            cert: cert.clone(),
            key: cert.clone(),
            client_ca: Some(missing),
        })
        .expect_err("certificate is no key");
        assert!(err.to_string().contains("private key"), "{err}");
    }
}
