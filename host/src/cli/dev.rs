//! `weir dev`: the whole gateway on one machine with no other set-up.
//!
//! It runs the HStreamDB-compatible server in-process (data in the data
//! directory; `--nodes N` makes it a cluster of N nodes on consecutive
//! ports, and weir is given every node as a seed), weir's own MQTT listener for devices, and the plugins
//! directory (the repository's `plugins/` holds the seed's two rules), creates
//! the streams the rules write to, and says what to try next. It is `weir run`
//! with a configuration built from these flags: the same code path.

use super::devserver::bind_nodes;
use super::run::serve;
use super::{Exit, print_line};
use crate::config::{Config, MqttMode};
use crate::pipeline::Sockets;
use anyhow::Context;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use weir_devserver::{ClusterConfig, DevCluster, NodeConfig};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where devices connect with MQTT (3.1.1 or 5, no password).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:1883")]
    mqtt_listen: SocketAddr,
    /// Where the embedded HStreamDB-compatible server listens (its first
    /// node; the others take the ports after it, or free ports for port 0).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6570")]
    hstream_listen: SocketAddr,
    /// Nodes of the embedded HStreamDB-compatible cluster.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    nodes: u32,
    /// Where the admin API, metrics and dashboard listen.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    admin_listen: SocketAddr,
    /// The plugins directory (plugins and rule files), watched for changes.
    #[arg(long, value_name = "DIR", default_value = "plugins")]
    plugins: PathBuf,
    /// Where streams, records and the compiled-module cache are kept.
    #[arg(long, value_name = "DIR", default_value = ".weir-dev")]
    data_dir: PathBuf,
}

pub(crate) async fn run(args: Args, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let nodes = usize::try_from(args.nodes).context("--nodes is too large")?;
    let listeners = bind_nodes(&[args.hstream_listen.to_string()], nodes)
        .await
        .context("cannot listen for HStreamDB")?;
    let mut configured = Vec::with_capacity(nodes);
    for (id, listener) in (1..).zip(listeners) {
        configured.push((
            listener,
            NodeConfig {
                id,
                ..NodeConfig::default()
            },
        ));
    }
    let server = DevCluster::start(
        ClusterConfig {
            data_dir: Some(args.data_dir.join("hstream")),
            ..ClusterConfig::default()
        },
        configured,
    )
    .await
    .context("cannot start the HStreamDB-compatible server")?;
    let seeds: Vec<String> = server
        .nodes()
        .iter()
        .map(|node| node.listen.to_string())
        .collect();
    let hstream_addr = seeds.join(",");

    let mut config = Config {
        node: Some("weir@dev".into()),
        ..Config::default()
    };
    config.mqtt.mode = MqttMode::Listener;
    config.mqtt.listener.bind = Some(args.mqtt_listen);
    config.mqtt.listener.allow_anonymous = true;
    config.hstreamdb.url = format!("hstream://{hstream_addr}");
    config.hstreamdb.create_streams.enabled = true;
    config.plugins.dir = args.plugins.clone();
    config.plugins.cache_dir = Some(args.data_dir.join("wasm-cache"));
    config.plugins.disabled_file = Some(args.data_dir.join("disabled-plugins.json"));
    // What no stream takes stays with the rest of dev's data.
    config.sink.quarantine_file = args.data_dir.join("quarantine.jsonl");
    config.admin.listen = Some(args.admin_listen);
    let sockets = Sockets::bind(&config).await?;
    let mqtt_port = sockets
        .mqtt
        .as_ref()
        .and_then(|s| s.local_addr().ok())
        .map_or(args.mqtt_listen.port(), |a| a.port());

    let first = seeds.first().map_or("", String::as_str);
    let mut hints = vec![format!("weir hstream server on {first}")];
    if seeds.len() > 1 {
        hints.push(format!(
            "weir hstream cluster of {} nodes on {hstream_addr}",
            seeds.len()
        ));
    }
    hints.extend([
        format!(
            "weir dev: plugins from {}, data in {}",
            args.plugins.display(),
            args.data_dir.display()
        ),
        "Try it:".to_owned(),
        format!("  mosquitto_pub -p {mqtt_port} -t t/1 -m '{{\"msg\": \"Hello HStreamDB\"}}'"),
        format!("  weir stream read mqtt_message --server hstream://{hstream_addr}"),
    ]);
    for line in hints {
        print_line(out, &line).context("cannot write to stdout")?;
    }
    let exit = serve(&config, sockets, out).await;
    if let Err(error) = server.shutdown().await {
        tracing::warn!(%error, "the HStreamDB-compatible server did not stop cleanly");
    }
    exit
}
