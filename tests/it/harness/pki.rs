//! A test PKI: a CA, server certificates signed by it, a client
//! certificate (common name `weir`) and a server certificate from another
//! CA, written as PEM files for TLS scenarios.

use super::scratch_dir;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use std::path::PathBuf;

/// A CA, a server certificate for some hosts, a client certificate, and a
/// server certificate from another CA (the files are named in `new`).
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA whose name is its own: BoringSSL (the Python client's gRPC)
    /// takes a leaf with its issuer's name for a self-signed certificate.
    fn issuer(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate")
    }

    /// `ca.pem`; `server.pem`/`server.key` for `hosts`; `client.pem`/
    /// `client.key`; and `other-server.*`, for the same hosts from another CA.
    pub(crate) fn new(hosts: &[&str]) -> Pki {
        let dir = scratch_dir();
        let write = |name: &str, pem: String| {
            std::fs::write(dir.path().join(name), pem).expect("write PEM");
        };
        let ca = Self::issuer("weir test CA");
        write("ca.pem", ca.pem());
        let names: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        let server_key = KeyPair::generate().expect("server key");
        let mut server_params = CertificateParams::new(names.clone()).expect("server params");
        server_params
            .distinguished_name
            .push(DnType::CommonName, "weir devserver");
        let server = server_params
            .signed_by(&server_key, &ca)
            .expect("server certificate");
        write("server.pem", server.pem());
        write("server.key", server_key.serialize_pem());
        let client_key = KeyPair::generate().expect("client key");
        let mut client_params = CertificateParams::new(vec!["weir".into()]).expect("params");
        client_params
            .distinguished_name
            .push(DnType::CommonName, "weir");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params
            .signed_by(&client_key, &ca)
            .expect("client certificate");
        write("client.pem", client.pem());
        write("client.key", client_key.serialize_pem());
        let other = Self::issuer("another CA");
        let other_key = KeyPair::generate().expect("key");
        let mut other_params = CertificateParams::new(names).expect("params");
        other_params
            .distinguished_name
            .push(DnType::CommonName, "weir devserver");
        let other_server = other_params
            .signed_by(&other_key, &other)
            .expect("certificate");
        write("other-server.pem", other_server.pem());
        write("other-server.key", other_key.serialize_pem());
        Pki { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn arg(&self, name: &str) -> String {
        self.path(name).to_str().expect("utf-8 path").to_owned()
    }
}
