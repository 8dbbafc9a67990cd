//! `weir devserver`: runs the HStreamDB-compatible development server in
//! the foreground until Ctrl-C or SIGTERM.
//!
//! Once the server accepts connections it prints exactly one line to stdout,
//! `weir devserver listening on ADDR`, with the real address, so that a
//! script or test that asked for port 0 learns the port.

use super::signal::ShutdownSignal;
use super::{Exit, print_line};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use tokio::net::TcpListener;
use weir_devserver::{Config, DEFAULT_MAX_RECORD_BYTES, DevServer, TlsConfig};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6570")]
    listen: String,

    /// Keep streams and records in this directory across restarts
    /// (default: in memory only).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Serve TLS with this PEM certificate chain.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Require client certificates signed by this PEM CA (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,

    /// Host name clients are told to dial (default: the listening IP, or
    /// 127.0.0.1 when listening on all interfaces).
    #[arg(long, value_name = "HOST")]
    advertised_host: Option<String>,

    /// Largest Append payload in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_RECORD_BYTES)]
    max_record_bytes: usize,

    /// fsync every appended batch before answering (with --data-dir).
    #[arg(long, requires = "data_dir")]
    fsync: bool,
}

pub(crate) async fn run(args: Args, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let config = Config {
        data_dir: args.data_dir,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| TlsConfig {
                cert,
                key,
                client_ca: args.tls_client_ca,
            }),
        advertised_host: args.advertised_host,
        max_record_bytes: args.max_record_bytes,
        fsync: args.fsync,
    };
    let mut shutdown = ShutdownSignal::listen()?;
    let server = DevServer::start(listener, config)
        .await
        .context("cannot start the development server")?;
    print_line(out, &format!("weir devserver listening on {addr}"))
        .context("cannot write to stdout")?;
    // The server logs its own start and stop.
    shutdown.received().await?;
    server
        .shutdown()
        .await
        .context("the development server did not stop cleanly")?;
    Ok(Exit::Success)
}
