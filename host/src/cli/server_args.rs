//! The options every command that talks to HStreamDB takes: where the
//! server is, how to speak TLS to it, and the connection pool and timeouts.

use crate::sink::client::{Client, ClientOptions, ServerUrl, TlsOptions};
use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServerArgs {
    /// HStreamDB server URL: hstream://HOST[:PORT] (plain) or hstreams://
    /// (TLS); http:// and https:// work too. Several seed servers may be
    /// given as hstream://h1:6570,h2 (default port 6570).
    #[arg(
        long,
        env = "WEIR_SERVER",
        value_name = "URL",
        default_value = "hstream://127.0.0.1:6570"
    )]
    pub(crate) server: ServerUrl,

    /// PEM file of the CA certificates to trust (default: the system's).
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,

    /// PEM file of the client certificate, for mutual TLS.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// PEM file of the client certificate's private key.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Trust any server certificate. INSECURE: for tests only.
    #[arg(long, conflicts_with = "tls_ca")]
    tls_insecure_skip_verify: bool,

    /// Connections (HTTP/2 channels) per server node.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pool_size: u16,

    /// Deadline of each call, such as 30s or 500ms.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    grpc_timeout: Duration,

    /// Deadline for opening a connection (TLS handshake included).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(duration)
}

impl ServerArgs {
    pub(crate) fn options(&self) -> ClientOptions {
        ClientOptions {
            tls: TlsOptions {
                ca_file: self.tls_ca.clone(),
                cert_file: self.tls_cert.clone(),
                key_file: self.tls_key.clone(),
                insecure_skip_verify: self.tls_insecure_skip_verify,
            },
            pool_size: self.pool_size.into(),
            grpc_timeout: self.grpc_timeout,
            connect_timeout: self.connect_timeout,
        }
    }

    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        Client::new(self.server.clone(), self.options())
            .with_context(|| format!("cannot set up a client for {}", self.server))
    }
}
