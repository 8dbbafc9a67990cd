//! `weir dev`: the whole gateway on one machine with no other set-up.
//!
//! It runs the HStreamDB-compatible server in-process (data in the data
//! directory; `--nodes N` makes it a cluster of N nodes on consecutive
//! ports, and weir is given every node as a seed), weir's own MQTT listener for devices, and the plugins
//! directory (the repository's `plugins/` holds the seed's two rules; where
//! there is none, `./plugins` is created with them), creates the streams the
//! rules write to, and says what to try next, in the command the user has
//! (`cargo run -- ...` under cargo). Every socket is bound before anything
//! starts, and a busy port names its flag, so a failure comes before the
//! hints. It is `weir run` with a configuration built from these flags: the
//! same code path.

use super::devserver::bind_nodes;
use super::run::{self, Settings, serve};
use super::{Exit, seed};
use crate::config::{Config, MqttMode};
use anyhow::{Context, bail};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use weir_devserver::{ClusterConfig, DevCluster, NodeConfig};

/// The plugins directory when `--plugins` is not given.
const DEFAULT_PLUGINS: &str = "plugins";

/// The sample events the README's tutorial tries a rule on, in the
/// repository (a hint mentions them only where they are).
const SAMPLE_EVENTS: &str = "docs/examples/events.json";

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
    /// The plugins directory (plugins and rule files), watched for changes
    /// [default: plugins, created with the seed's rules when missing].
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// Where streams, records and the compiled-module cache are kept.
    #[arg(long, value_name = "DIR", default_value = ".weir-dev")]
    data_dir: PathBuf,
}

pub(crate) async fn run(args: Args, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    let (plugins, needs_seed) = plugins_dir(args.plugins.as_deref())?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let nodes = usize::try_from(args.nodes).context("--nodes is too large")?;
    let listeners = bind_nodes(&[args.hstream_listen.to_string()], nodes, "hstream-listen").await?;
    let seeds: Vec<String> = listeners
        .iter()
        .map(|listener| listener.local_addr().map(|addr| addr.to_string()))
        .collect::<Result<_, _>>()
        .context("cannot read the HStreamDB-compatible server's address")?;
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
    config.plugins.dir = plugins.clone();
    config.plugins.cache_dir = Some(args.data_dir.join("wasm-cache"));
    config.plugins.disabled_file = Some(args.data_dir.join("disabled-plugins.json"));
    // What no stream takes stays with the rest of dev's data.
    config.sink.quarantine_file = args.data_dir.join("quarantine.jsonl");
    config.admin.listen = Some(args.admin_listen);
    let bound = run::bind(
        &config,
        &Settings {
            mqtt: "--mqtt-listen".into(),
            // weir dev has no TLS listener.
            mqtt_tls: String::new(),
            admin: "--admin-listen".into(),
        },
    )
    .await?;
    let mqtt = bound.mqtt_addr().unwrap_or(args.mqtt_listen);
    // Only once every port is ours, so a failed start leaves nothing behind.
    if needs_seed {
        seed::write_plugins_dir(&plugins).with_context(|| {
            format!(
                "cannot create {} with the seed's rules (or choose a directory with --plugins)",
                plugins.display()
            )
        })?;
    }

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

    let first = seeds.first().map_or("", String::as_str);
    let mut notes = vec![format!("weir hstream server on {first}")];
    if seeds.len() > 1 {
        notes.push(format!(
            "weir hstream cluster of {} nodes on {hstream_addr}",
            seeds.len()
        ));
    }
    if needs_seed {
        notes.push(format!(
            "weir dev: no {} directory here, so it was created with the seed's rules ({})",
            plugins.display(),
            seed::RULES.map(|(name, _)| name).join(", ")
        ));
    }
    notes.push(format!(
        "weir dev: plugins from {}, data in {}",
        plugins.display(),
        args.data_dir.display()
    ));
    notes.extend(try_it(mqtt, &hstream_addr, &plugins));
    let exit = serve(&config, bound, &notes, out).await;
    if let Err(error) = server.shutdown().await {
        tracing::warn!(%error, "the HStreamDB-compatible server did not stop cleanly");
    }
    exit
}

/// The plugins directory to run, and whether it is to be created with the
/// seed's rules: the default one is, when it is missing; one named by
/// `--plugins` must exist (a missing one is more likely a typo than a wish
/// for the seed).
fn plugins_dir(chosen: Option<&Path>) -> anyhow::Result<(PathBuf, bool)> {
    match chosen {
        Some(dir) if dir.is_dir() => Ok((dir.to_owned(), false)),
        Some(dir) => bail!(
            "the plugins directory {} (--plugins) does not exist: create it, or leave out \
             --plugins to start from the seed's rules in ./{DEFAULT_PLUGINS}",
            dir.display()
        ),
        None => {
            let dir = PathBuf::from(DEFAULT_PLUGINS);
            let missing = !dir.is_dir();
            Ok((dir, missing))
        }
    }
}

/// The seed tutorial, with the addresses this run has and the command the
/// user has for weir.
fn try_it(mqtt: SocketAddr, hstream_addr: &str, plugins: &Path) -> Vec<String> {
    let weir = weir_command();
    let host = match mqtt.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    let server = if hstream_addr == "127.0.0.1:6570" {
        String::new()
    } else {
        format!(" --server hstream://{hstream_addr}")
    };
    let mut lines = vec![
        "Try it:".to_owned(),
        format!(
            "  mosquitto_pub -h {host} -p {} -t t/1 -q 1 -m '{{\"temp\": 21.5}}'",
            mqtt.port()
        ),
        format!("  {weir} stream read mqtt_message --from earliest --limit 1{server}"),
    ];
    let rule = plugins.join("mqtt_message.rule.toml");
    if rule.is_file() && Path::new(SAMPLE_EVENTS).is_file() {
        lines.push(format!(
            "  {weir} rule test {} --event {SAMPLE_EVENTS}",
            rule.display()
        ));
    }
    lines
}

/// How the user runs this weir, for hints they can paste: through cargo
/// (which sets `CARGO` and `CARGO_MANIFEST_DIR` for what it runs), as
/// `weir` when that is this binary on `PATH`, else by its path.
fn weir_command() -> String {
    let env = |name: &str| std::env::var_os(name);
    if env("CARGO").is_some() && env("CARGO_MANIFEST_DIR").is_some() {
        return if cfg!(debug_assertions) {
            "cargo run --"
        } else {
            "cargo run --release --"
        }
        .to_owned();
    }
    let Ok(this) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "weir".to_owned();
    };
    let on_path = env("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("weir"))
            .find(|candidate| candidate.is_file())
    });
    if on_path.and_then(|p| std::fs::canonicalize(p).ok()).as_ref() == Some(&this) {
        return "weir".to_owned();
    }
    let path = this.display().to_string();
    if path.contains(|c: char| c.is_whitespace() || c == '\'') {
        format!("'{}'", path.replace('\'', r"'\''"))
    } else {
        path
    }
}
