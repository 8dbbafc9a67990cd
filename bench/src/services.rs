//! Starting the servers of a run on ephemeral loopback ports: mosquitto, the
//! HStreamDB-compatible development server (`weir devserver`) and the
//! gateway (`weir run`), plus reading weir's Prometheus metrics.

use crate::process::{Child, LineMark, free_port};
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a server may take to start.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// How long weir may take to load each of its rules at start.
const RULE_LOAD_ALLOWANCE: Duration = Duration::from_millis(100);

/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// The stream the seed rule writes to.
pub(crate) const STREAM: &str = "mqtt_message";

/// The seed's message rule, as shipped: the bench measures what users run.
pub(crate) const SEED_RULE: &str = include_str!("../../plugins/mqtt_message.rule.toml");

/// The seed rule storing raw records (the rendered JSON text as bytes)
/// instead of HRecords.
pub(crate) fn raw_seed_rule() -> anyhow::Result<String> {
    let action = "[action]\n";
    if !SEED_RULE.contains(action) {
        anyhow::bail!("the seed rule has no [action] table to set record_format in");
    }
    Ok(SEED_RULE.replacen(action, "[action]\nrecord_format = \"raw\"\n", 1))
}

/// The null-sink baseline. weir has no sink that discards, so the closest
/// honest stand-in is the seed rule with a WHERE no message passes: every
/// message is received, decoded and run through a compiled rule, then
/// acknowledged with no record (ARCHITECTURE.md, invariant 2), so the sink
/// and the append are what it leaves out.
pub(crate) const NULL_RULE: &str = r#"description = "weir-bench's null sink: the seed rule with a WHERE no message passes"
sql = 'SELECT * FROM "t/#" WHERE qos > 2'

[action]
stream = "mqtt_message"
partition_key = "${topic}"
record_template = '{"id": "${id}", "topic": "${topic}", "qos": ${qos}, "payload": ${payload}}'
"#;

/// A mosquitto broker with its queue limits raised, so that the broker
/// itself never drops a QoS 1 (or, online, QoS 0) message for a subscriber
/// that falls behind: the default `max_queued_messages 1000` would.
#[derive(Debug)]
pub(crate) struct Mosquitto {
    pub(crate) child: Child,
    pub(crate) port: u16,
}

impl Mosquitto {
    pub(crate) async fn start(binary: &Path, dir: &Path) -> anyhow::Result<Mosquitto> {
        let mut last_error = None;
        // mosquitto cannot report a port it picked, so a free port is
        // reserved and released first; retry on the rare collision.
        for _attempt in 0..5 {
            let port = free_port()?;
            match Self::launch(binary, dir, port).await {
                Ok(child) => return Ok(Mosquitto { child, port }),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("no attempt"))
            .context("mosquitto did not start on any of 5 free ports"))
    }

    async fn launch(binary: &Path, dir: &Path, port: u16) -> anyhow::Result<Child> {
        let config = dir.join("mosquitto.conf");
        let text = format!(
            "listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             # Stay the invoking user (mosquitto drops root to `mosquitto`).\n\
             user {user}\n\
             # Nothing to keep across restarts; a benchmark measures no disk.\n\
             persistence false\n\
             # The defaults (1000 queued) drop messages for a subscriber that\n\
             # falls behind; the bench measures throughput, not that limit.\n\
             max_queued_messages 1000000\n\
             max_queued_bytes 0\n\
             # MQTT 3.1.1 subscribers (the counter) get the same window as\n\
             # weir's MQTT 5 receive maximum (mqtt.bridge.window, 1000).\n\
             max_inflight_messages 1000\n\
             log_dest stderr\n\
             log_type error\n\
             log_type warning\n\
             log_type notice\n\
             log_type information\n\
             log_type subscribe\n\
             connection_messages true\n",
            user = whoami(),
        );
        std::fs::write(&config, text)
            .with_context(|| format!("cannot write {}", config.display()))?;
        let config_arg = path_str(&config)?;
        let mut child = Child::spawn("mosquitto", binary, &["-c", config_arg])?;
        let listening = format!("Opening ipv4 listen socket on port {port}");
        let ok = child
            .wait_for_line(
                LineMark::default(),
                "its listener",
                START_DEADLINE,
                |line| {
                    if line.contains(&listening) {
                        Some(true)
                    } else if line.contains("Error") {
                        Some(false)
                    } else {
                        None
                    }
                },
            )
            .await?;
        if !ok {
            bail!(
                "mosquitto could not listen on port {port}:\n{}",
                child.output_tail(10)
            );
        }
        // mosquitto reports the socket a moment before it accepts.
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if tokio::time::Instant::now() > deadline {
                bail!("mosquitto does not accept connections on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(child)
    }

    /// Waits until `client_id` has subscribed to `filter` (mosquitto logs
    /// every subscription) after `since`, so no message is published before
    /// weir gets it. `since` is taken before the client starts: an earlier
    /// client with the same id logged the same line.
    pub(crate) async fn wait_for_subscription(
        &mut self,
        since: LineMark,
        client_id: &str,
        filter: &str,
    ) -> anyhow::Result<()> {
        let who = format!(" {client_id} ");
        let what = format!(" {filter}");
        self.child
            .wait_for_line(
                since,
                &format!("the subscription of {client_id} to {filter}"),
                START_DEADLINE,
                |line| (line.contains(&who) && line.ends_with(&what)).then_some(()),
            )
            .await
    }

    pub(crate) fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub(crate) async fn stop(self) {
        self.child.stop(STOP_GRACE).await;
    }
}

/// `weir devserver` with its data in a directory, as HStreamDB would keep it:
/// one node, or a cluster of `nodes` sharing the directory's store.
#[derive(Debug)]
pub(crate) struct DevServer {
    pub(crate) child: Child,
    /// Every node's advertised address, the first node's first.
    pub(crate) seeds: Vec<String>,
}

impl DevServer {
    pub(crate) async fn start(
        weir: &Path,
        data_dir: &Path,
        nodes: u32,
    ) -> anyhow::Result<DevServer> {
        let data = path_str(data_dir)?;
        let nodes = nodes.to_string();
        let mut child = Child::spawn(
            "weir devserver",
            weir,
            &[
                "devserver",
                "--nodes",
                &nodes,
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data,
            ],
        )?;
        let mut seeds = Vec::new();
        child
            .wait_for_line(LineMark::default(), "its address", START_DEADLINE, |line| {
                // `weir devserver node ID listening on ADDR advertised HOST:PORT`
                if let Some((_, advertised)) = line
                    .strip_prefix("weir devserver node ")
                    .and_then(|rest| rest.split_once(" advertised "))
                {
                    seeds.push(advertised.trim().to_owned());
                }
                line.strip_prefix("weir devserver listening on ")
                    .and_then(|a| a.trim().parse::<SocketAddr>().ok())
            })
            .await?;
        Ok(DevServer { child, seeds })
    }

    /// `hstream://` with every node as a seed.
    pub(crate) fn url(&self) -> String {
        format!("hstream://{}", self.seeds.join(","))
    }

    pub(crate) async fn stop(self) {
        self.child.stop(STOP_GRACE).await;
    }
}

/// Where a gateway gets its messages.
#[derive(Debug, Clone)]
pub(crate) enum Ingress {
    /// Subscribes to this broker as client `client_id`.
    Bridge { url: String, client_id: String },
    /// Devices connect to weir.
    Listener,
}

/// One file of a gateway's plugins directory, `<name>.rule.toml`; `name`
/// is the rule's name in the admin API.
#[derive(Debug, Clone)]
pub(crate) struct RuleFile {
    pub(crate) name: String,
    pub(crate) text: String,
}

impl RuleFile {
    pub(crate) fn new(name: impl Into<String>, text: impl Into<String>) -> RuleFile {
        RuleFile {
            name: name.into(),
            text: text.into(),
        }
    }

    fn write(&self, plugins: &Path) -> anyhow::Result<()> {
        let path = plugins.join(format!("{}.rule.toml", self.name));
        std::fs::write(&path, &self.text)
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The one rule every scenario but the rules scenario runs.
pub(crate) fn single_rule(text: &str) -> Vec<RuleFile> {
    vec![RuleFile::new("mqtt_message", text)]
}

/// What a run changes in weir's configuration, beyond the ports and the
/// directory.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tuning {
    /// `mqtt.listener.max_connections` (listener mode), when the default
    /// (10,000) is too few.
    pub(crate) max_connections: Option<usize>,
    /// `sink.compression`: `none`, `gzip` or `zstd`.
    pub(crate) compression: Option<&'static str>,
}

/// `weir run --config FILE`: the gateway as it runs in production.
#[derive(Debug)]
pub(crate) struct Gateway {
    pub(crate) child: Child,
    /// The MQTT listener (listener mode).
    pub(crate) mqtt: Option<SocketAddr>,
    pub(crate) admin: SocketAddr,
    /// Where its rule files are; rewriting one reloads it.
    pub(crate) plugins: PathBuf,
    /// From starting the process to `weir ready` (every rule loaded, the
    /// listener bound).
    pub(crate) started_in: Duration,
}

impl Gateway {
    /// Writes the configuration and the rules into `dir` and starts weir
    /// there, waiting for `weir ready`. Everything not set here or in
    /// `tuning` is weir's default (docs/config.md); `WEIR_...` variables in
    /// the bench's environment reach weir and override it.
    pub(crate) async fn start(
        weir: &Path,
        dir: &Path,
        ingress: &Ingress,
        hstream_url: &str,
        rules: &[RuleFile],
        tuning: Tuning,
    ) -> anyhow::Result<Gateway> {
        let plugins = dir.join("plugins");
        std::fs::create_dir_all(&plugins)
            .with_context(|| format!("cannot create {}", plugins.display()))?;
        for rule in rules {
            rule.write(&plugins)?;
        }
        let mut mqtt = match ingress {
            Ingress::Bridge { url, client_id } => format!(
                "[mqtt]\nmode = \"bridge\"\n\n[mqtt.bridge]\nurl = {url:?}\nclient_id = {client_id:?}\n"
            ),
            Ingress::Listener => "[mqtt]\nmode = \"listener\"\n\n[mqtt.listener]\n\
                 bind = \"127.0.0.1:0\"\nallow_anonymous = true\n"
                .to_owned(),
        };
        if let (Ingress::Listener, Some(max)) = (ingress, tuning.max_connections) {
            mqtt.push_str(&format!("max_connections = {max}\n"));
        }
        let sink = tuning
            .compression
            .map(|c| format!("\n[sink]\ncompression = {c:?}\n"))
            .unwrap_or_default();
        let config = format!(
            "node = \"weir-bench\"\n\n{mqtt}\n[hstreamdb]\nurl = {hstream_url:?}\n\n\
             [plugins]\ndir = {plugins:?}\n\n[admin]\nlisten = \"127.0.0.1:0\"\n{sink}",
            plugins = path_str(&plugins)?,
        );
        let path = dir.join("weir.toml");
        std::fs::write(&path, config).context("cannot write weir.toml")?;
        // Every rule is compiled and instantiated before `weir ready`: about
        // 40 ms each in a debug build, so a thousand take longer than any
        // one server's start.
        let ready_within = START_DEADLINE.max(RULE_LOAD_ALLOWANCE * rules.len() as u32);
        let started = std::time::Instant::now();
        let mut child = Child::spawn("weir run", weir, &["run", "--config", path_str(&path)?])?;
        let (mut mqtt, mut admin) = (None, None);
        child
            .wait_for_line(LineMark::default(), "weir ready", ready_within, |line| {
                let addr = |prefix: &str| line.strip_prefix(prefix)?.trim().parse().ok();
                mqtt = mqtt.or_else(|| addr("weir mqtt listener on "));
                admin = admin.or_else(|| addr("weir admin on http://"));
                (line == "weir ready").then_some(())
            })
            .await?;
        let started_in = started.elapsed();
        let admin = admin.context("weir did not print its admin address")?;
        if matches!(ingress, Ingress::Listener) && mqtt.is_none() {
            bail!("weir did not print its MQTT listener's address");
        }
        Ok(Gateway {
            child,
            mqtt,
            admin,
            plugins,
            started_in,
        })
    }

    /// The sum of every sample of metric `name` (all label sets).
    pub(crate) async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = get(self.admin, "/metrics").await?;
        Ok(sum_metric(&text, name))
    }

    /// The version of rule `name` that runs now (`GET /api/v1/rules/NAME`,
    /// docs/admin.md), `None` while none does.
    pub(crate) async fn rule_version(&self, name: &str) -> anyhow::Result<Option<u64>> {
        let path = format!("/api/v1/rules/{name}");
        let text = get(self.admin, &path).await?;
        let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        let answer: serde_json::Value = serde_json::from_str(body)
            .with_context(|| format!("weir's {path} did not answer JSON: {body:?}"))?;
        Ok(answer["rule"]["version"].as_u64())
    }

    pub(crate) async fn stop(self) {
        self.child.stop(STOP_GRACE).await;
    }
}

/// GET `path` of the admin API over a bare HTTP/1.0 connection: the answer
/// is then never chunked and ends when the server closes, so no HTTP client
/// is needed. Returns the whole answer, status line and headers included.
async fn get(admin: SocketAddr, path: &str) -> anyhow::Result<String> {
    let request = format!("GET {path} HTTP/1.0\r\nHost: weir\r\n\r\n");
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(admin).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut body = Vec::new();
        stream.read_to_end(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    let body = tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .with_context(|| format!("weir's {path} did not answer within 10 s"))?
        .with_context(|| format!("cannot read weir's {path}"))?;
    let text = String::from_utf8_lossy(&body).into_owned();
    if !text.starts_with("HTTP/1.") || !text.lines().next().is_some_and(|l| l.contains(" 200")) {
        bail!(
            "weir's {path} answered {:?}",
            text.lines().next().unwrap_or("")
        );
    }
    Ok(text)
}

/// Adds up `name`'s samples in a Prometheus text exposition.
fn sum_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

fn whoami() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            std::process::Command::new("id")
                .arg("-un")
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_owned())
                .filter(|u| !u.is_empty())
        })
        .unwrap_or_else(|| "root".to_owned())
}

/// mosquitto from `PATH`, else where Debian installs it.
pub(crate) fn find_mosquitto() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("mosquitto"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_add_up_over_labels() {
        let text = "# TYPE weir_sink_success_total counter\n\
                    weir_sink_success_total{stream=\"a\"} 3\n\
                    weir_sink_success_total{stream=\"b\"} 4\n\
                    weir_sink_success_total_other 100\n\
                    weir_sink_success 1\n";
        assert_eq!(sum_metric(text, "weir_sink_success_total"), 7.0);
    }

    #[test]
    fn the_raw_seed_rule_compiles_to_raw_records() {
        use weir::rules::compile::CompiledRule;
        let rule = raw_seed_rule().expect("the seed rule has an [action]");
        let compiled =
            CompiledRule::compile(&rule, std::path::Path::new("raw.rule.toml")).expect("compiles");
        assert!(
            compiled
                .manifest_toml()
                .contains(r#"record_format = "raw""#),
            "{}",
            compiled.manifest_toml()
        );
        let hrecord = CompiledRule::compile(SEED_RULE, std::path::Path::new("seed.rule.toml"))
            .expect("compiles");
        assert!(
            hrecord
                .manifest_toml()
                .contains(r#"record_format = "hrecord""#)
        );
    }

    #[test]
    fn the_null_rule_is_the_seed_rule_with_a_false_where() {
        let action = |rule: &str| rule[rule.find("[action]").unwrap_or(0)..].to_owned();
        assert_eq!(action(SEED_RULE), action(NULL_RULE));
    }
}
