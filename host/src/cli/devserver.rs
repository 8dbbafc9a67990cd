//! `weir devserver`: runs the HStreamDB-compatible development server in
//! the foreground until Ctrl-C or SIGTERM: one node, or with `--nodes N` a
//! cluster of N nodes sharing one store.
//!
//! Once every node accepts connections it prints one line per node,
//! `weir devserver node ID listening on ADDR advertised HOST:PORT`, then
//! exactly one line `weir devserver listening on ADDR` with the first node's
//! real address, so that a script or test that asked for port 0 learns the
//! ports. With `--control-listen` a line `weir devserver control on ADDR`
//! comes first.

use super::listen;
use super::signal::ShutdownSignal;
use super::{Exit, print_line};
use anyhow::{Context, bail};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::net::TcpListener;
use weir_devserver::{ClusterConfig, DEFAULT_MAX_RECORD_BYTES, DevCluster, NodeConfig, TlsConfig};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Server nodes to run, each on its own listener, sharing one store.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    nodes: u32,

    /// The id of the first node; the others follow (HStreamDB's seed
    /// cluster uses 100 and 101).
    #[arg(long, value_name = "ID", default_value_t = 1)]
    first_node_id: u32,

    /// Address to listen on; port 0 picks a free port. Give it once for
    /// every node (a fixed port is counted up from node to node) or once
    /// per node.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6570")]
    listen: Vec<String>,

    /// Keep streams and records in this directory across restarts
    /// (default: in memory only).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Serve TLS with this PEM certificate chain: once for every node, or
    /// once per node.
    #[arg(
        long,
        value_name = "FILE",
        alias = "tls-cert-path",
        requires = "tls_key"
    )]
    tls_cert: Vec<PathBuf>,

    /// The PEM private key of --tls-cert: once, or once per node.
    #[arg(
        long,
        value_name = "FILE",
        alias = "tls-key-path",
        requires = "tls_cert"
    )]
    tls_key: Vec<PathBuf>,

    /// Require client certificates signed by this PEM CA (mutual TLS).
    #[arg(
        long,
        value_name = "FILE",
        alias = "tls-ca-path",
        requires = "tls_cert"
    )]
    tls_client_ca: Option<PathBuf>,

    /// Host name clients are told to dial (default: the listening IP, or
    /// 127.0.0.1 when listening on all interfaces): once, or once per node.
    #[arg(long, value_name = "HOST")]
    advertised_host: Vec<String>,

    /// Largest Append payload in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_RECORD_BYTES)]
    max_record_bytes: usize,

    /// fsync every appended batch before answering (with --data-dir).
    #[arg(long, requires = "data_dir")]
    fsync: bool,

    /// Also serve the ClusterControl service (stop, start and add nodes, set
    /// a node's faults) alone, in plain text, on this address; it prints
    /// `weir devserver control on ADDR`.
    #[arg(long, value_name = "ADDR")]
    control_listen: Option<SocketAddr>,

    /// Refuse an Append at a node that does not own its shard with
    /// FAILED_PRECONDITION (WrongServer); HStreamDB takes them anywhere.
    #[arg(long)]
    strict_ownership: bool,
}

/// The value of a per-node option for each of `nodes` nodes: none, one for
/// all, or exactly one per node.
pub(crate) fn per_node<T: Clone>(
    flag: &str,
    values: &[T],
    nodes: usize,
) -> anyhow::Result<Vec<Option<T>>> {
    match values.len() {
        0 => Ok(vec![None; nodes]),
        1 => Ok(vec![values.first().cloned(); nodes]),
        n if n == nodes => Ok(values.iter().cloned().map(Some).collect()),
        n => bail!("--{flag} was given {n} times for {nodes} nodes; give it once or once per node"),
    }
}

/// Binds one listener per node. A single address with a fixed port gives
/// the nodes that port and the ones after it; port 0 gives each a free one.
/// `flag` (without its dashes) is the option that chose the addresses, for
/// errors.
pub(crate) async fn bind_nodes(
    listen: &[String],
    nodes: usize,
    flag: &str,
) -> anyhow::Result<Vec<TcpListener>> {
    let addrs = per_node(flag, listen, nodes)?;
    let mut listeners = Vec::with_capacity(nodes);
    for (index, addr) in addrs.into_iter().enumerate() {
        let text = addr.unwrap_or_else(|| "127.0.0.1:0".into());
        let mut target: SocketAddr = tokio::net::lookup_host(&text)
            .await
            .with_context(|| format!("cannot resolve --{flag} {text}"))?
            .next()
            .with_context(|| format!("--{flag} {text} resolves to no address"))?;
        if listen.len() == 1 && target.port() != 0 {
            let port = u16::try_from(usize::from(target.port()) + index)
                .with_context(|| format!("no port {index} above {text} for node {}", index + 1))?;
            target.set_port(port);
        }
        listeners.push(listen::bind(listen::HSTREAM, target, &format!("--{flag}")).await?);
    }
    Ok(listeners)
}

pub(crate) async fn run(args: Args, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    let nodes = usize::try_from(args.nodes).context("--nodes is too large")?;
    let certs = per_node("tls-cert", &args.tls_cert, nodes)?;
    let keys = per_node("tls-key", &args.tls_key, nodes)?;
    let hosts = per_node("advertised-host", &args.advertised_host, nodes)?;
    let listeners = bind_nodes(&args.listen, nodes, "listen").await?;
    let mut configured = Vec::with_capacity(nodes);
    for (index, ((listener, (cert, key)), host)) in listeners
        .into_iter()
        .zip(certs.into_iter().zip(keys))
        .zip(hosts)
        .enumerate()
    {
        let id = args
            .first_node_id
            .checked_add(u32::try_from(index).context("too many nodes")?)
            .context("--first-node-id leaves no id for every node")?;
        let tls = cert.zip(key).map(|(cert, key)| TlsConfig {
            cert,
            key,
            client_ca: args.tls_client_ca.clone(),
        });
        configured.push((
            listener,
            NodeConfig {
                id,
                tls,
                advertised_host: host,
            },
        ));
    }
    let config = ClusterConfig {
        data_dir: args.data_dir,
        max_record_bytes: args.max_record_bytes,
        fsync: args.fsync,
        strict_ownership: args.strict_ownership,
    };
    let mut shutdown = ShutdownSignal::listen()?;
    let cluster = DevCluster::start(config, configured)
        .await
        .context("cannot start the development server")?;
    if let Some(addr) = args.control_listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for cluster control"))?;
        let local = listener
            .local_addr()
            .context("cannot read the control address")?;
        cluster.serve_control(listener);
        print_line(out, &format!("weir devserver control on {local}"))
            .context("cannot write to stdout")?;
    }
    let nodes = cluster.nodes();
    for node in &nodes {
        print_line(
            out,
            &format!(
                "weir devserver node {} listening on {} advertised {}",
                node.id, node.listen, node.advertised
            ),
        )
        .context("cannot write to stdout")?;
    }
    if let Some(first) = nodes.first() {
        print_line(
            out,
            &format!("weir devserver listening on {}", first.listen),
        )
        .context("cannot write to stdout")?;
    }
    // The server logs its own start and stop.
    shutdown.received().await?;
    cluster
        .shutdown()
        .await
        .context("the development server did not stop cleanly")?;
    Ok(Exit::Success)
}
