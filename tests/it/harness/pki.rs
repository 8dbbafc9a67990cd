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
        let leaf =
            |name: &str, issuer: &CertifiedIssuer<'_, KeyPair>, params: CertificateParams| {
                let key = KeyPair::generate().expect("leaf key");
                let certificate = params.signed_by(&key, issuer).expect("leaf certificate");
                write(&format!("{name}.pem"), certificate.pem());
                write(&format!("{name}.key"), key.serialize_pem());
            };
        let named = |subject_alt_names: Vec<String>, common_name: &str| {
            let mut params = CertificateParams::new(subject_alt_names).expect("leaf params");
            params
                .distinguished_name
                .push(DnType::CommonName, common_name);
            params
        };
        leaf("server", &ca, named(names.clone(), "weir devserver"));
        let mut client = named(vec!["weir".into()], "weir");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        leaf("client", &ca, client);
        let other = Self::issuer("another CA");
        leaf("other-server", &other, named(names, "weir devserver"));
        Pki { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn arg(&self, name: &str) -> String {
        self.path(name).to_str().expect("utf-8 path").to_owned()
    }
}
