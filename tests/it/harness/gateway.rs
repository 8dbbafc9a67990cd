//! weir itself as a process (`weir run --config FILE`, or `weir dev`), with
//! helpers to read what it stored.

use super::process::Process;
use super::{DEFAULT_DEADLINE, weir};
use ::weir::sink::client::{Client, ClientOptions, ReadRecord, StartFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `weir -v dev` with every socket on a free port, then `options`.
pub(crate) fn dev_args(options: Vec<String>) -> Vec<String> {
    let mut args: Vec<String> = [
        "-v",
        "dev",
        "--mqtt-listen",
        "127.0.0.1:0",
        "--hstream-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]
    .map(String::from)
    .into();
    args.extend(options);
    args
}

/// A running `weir run` or `weir dev`.
#[derive(Debug)]
pub(crate) struct Gateway {
    process: Process,
    args: Vec<String>,
    /// The working directory, when the test chose one.
    cwd: Option<PathBuf>,
    /// The MQTT listener's address, in listener mode.
    pub(crate) mqtt: Option<SocketAddr>,
    /// The admin API's address, unless it is disabled.
    pub(crate) admin: Option<SocketAddr>,
    /// `weir dev`'s embedded HStreamDB-compatible server.
    pub(crate) hstream: Option<SocketAddr>,
}

impl Gateway {
    /// Writes `config` (TOML) to `dir/weir.toml` and runs weir with it until
    /// it prints `weir ready`. The admin API listens on a free port (through
    /// `WEIR_ADMIN__LISTEN`), so gateways never compete for port 8080.
    pub(crate) async fn start(dir: &Path, config: &str) -> Gateway {
        let path = dir.join("weir.toml");
        std::fs::write(&path, config).expect("write weir.toml");
        let config_arg = path.to_str().expect("utf-8 path").to_owned();
        // weir runs in the test's directory (the source tree): a record it
        // quarantines must land in `dir`, unless the test chose the file.
        let mut env = Vec::new();
        if !config.contains("quarantine_file") {
            let file = dir.join("quarantine.jsonl");
            env.push((
                "WEIR_SINK__QUARANTINE_FILE",
                file.to_str().expect("utf-8 path").to_owned(),
            ));
        }
        let args = vec!["-v".into(), "run".into(), "--config".into(), config_arg];
        Self::launch_with(args, None, &env).await
    }

    /// Runs `weir dev` in `cwd` as the README says, with its default plugins
    /// (`./plugins`) and data (`./.weir-dev`) directories, every socket on a
    /// free port.
    pub(crate) async fn dev_in(cwd: &Path) -> Gateway {
        Self::launch_in(dev_args(Vec::new()), Some(cwd.to_owned())).await
    }

    /// Runs `weir dev` with the plugins in `plugins` and its data in
    /// `data`, every socket on a free port.
    pub(crate) async fn dev(plugins: &Path, data: &Path) -> Gateway {
        let path = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
        Self::launch(dev_args(vec![
            "--plugins".into(),
            path(plugins),
            "--data-dir".into(),
            path(data),
        ]))
        .await
    }

    /// Runs `weir run --config weir.toml` in `dir`, as a user does in the
    /// directory `weir import` wrote, with `env` (`WEIR_...` overrides) set.
    pub(crate) async fn run_in(dir: &Path, env: &[(&str, String)]) -> Gateway {
        let args = ["-v", "run", "--config", "weir.toml"]
            .map(String::from)
            .into();
        Self::launch_with(args, Some(dir.to_owned()), env).await
    }

    /// Runs `weir run` with no `--config` in `dir`: the defaults, with `env`
    /// (`WEIR_...` overrides) set.
    pub(crate) async fn run_defaults_in(dir: &Path, env: &[(&str, String)]) -> Gateway {
        let args = ["-v", "run"].map(String::from).into();
        Self::launch_with(args, Some(dir.to_owned()), env).await
    }

    async fn launch(args: Vec<String>) -> Gateway {
        Self::launch_in(args, None).await
    }

    async fn launch_in(args: Vec<String>, cwd: Option<PathBuf>) -> Gateway {
        Self::launch_with(args, cwd, &[]).await
    }

    async fn launch_with(
        args: Vec<String>,
        cwd: Option<PathBuf>,
        env: &[(&str, String)],
    ) -> Gateway {
        let mut command = tokio::process::Command::new(weir::binary());
        command.args(&args).env("WEIR_ADMIN__LISTEN", "127.0.0.1:0");
        command.envs(env.iter().map(|(k, v)| (k, v)));
        if let Some(cwd) = &cwd {
            command.current_dir(cwd);
        }
        let mut process = Process::spawn_command(&format!("weir {}", args[1]), &mut command);
        let (mut mqtt, mut admin, mut hstream) = (None, None, None);
        process
            .wait_for_line(DEFAULT_DEADLINE, |line| {
                let addr = |prefix: &str| line.strip_prefix(prefix)?.trim().parse().ok();
                mqtt = mqtt.or_else(|| addr("weir mqtt listener on "));
                admin = admin.or_else(|| addr("weir admin on http://"));
                hstream = hstream.or_else(|| addr("weir hstream server on "));
                (line == "weir ready").then_some(())
            })
            .await;
        Gateway {
            process,
            args,
            cwd,
            mqtt,
            admin,
            hstream,
        }
    }

    pub(crate) fn mqtt_port(&self) -> u16 {
        self.mqtt.expect("weir runs an MQTT listener").port()
    }

    /// The admin API's base URL, `http://127.0.0.1:PORT`.
    pub(crate) fn admin_url(&self) -> String {
        format!("http://{}", self.admin.expect("weir serves the admin API"))
    }

    pub(crate) fn output(&self) -> String {
        self.process.output()
    }

    /// The process id, for reading its memory from `/proc`.
    pub(crate) fn pid(&self) -> u32 {
        self.process.id().expect("weir is running")
    }

    /// SIGKILL: a crash.
    pub(crate) async fn kill(&mut self) {
        self.process.kill().await;
    }

    /// Starts weir again with the same configuration.
    pub(crate) async fn restart(&mut self) {
        *self = Self::launch_in(self.args.clone(), self.cwd.clone()).await;
    }

    /// SIGTERM and a clean exit.
    pub(crate) async fn stop(mut self) {
        let code = self.process.terminate(Duration::from_secs(30)).await;
        assert_eq!(code, Some(0), "weir exited badly:\n{}", self.output());
    }
}

/// weir in listener mode on an ephemeral port, accepting anonymous clients,
/// appending to the HStreamDB server at `server_url` (creating the streams
/// its rules name), with the plugins in `plugins` and quick health checks.
/// `extra` goes at the end of the `[sink]` table: sink keys first, then any
/// other tables.
pub(crate) fn listener_config(server_url: &str, plugins: &str, extra: &str) -> String {
    listener_config_with(server_url, plugins, "allow_anonymous = true", extra)
}

/// As [`listener_config`], with `listener` as the rest of the
/// `[mqtt.listener]` table (its keys, then its sub-tables) instead of
/// anonymous access.
pub(crate) fn listener_config_with(
    server_url: &str,
    plugins: &str,
    listener: &str,
    extra: &str,
) -> String {
    listener_config_on("127.0.0.1:0", server_url, plugins, listener, extra)
}

/// As [`listener_config_with`], with the listener bound to `bind`: for a
/// scenario where devices must find weir again at the address they know
/// after it restarts.
pub(crate) fn listener_config_on(
    bind: &str,
    server_url: &str,
    plugins: &str,
    listener: &str,
    extra: &str,
) -> String {
    format!(
        r#"
[mqtt]
mode = "listener"

[mqtt.listener]
bind = "{bind}"
{listener}

[hstreamdb]
url = "{server_url}"

[hstreamdb.create_streams]
enabled = true

[plugins]
dir = "{plugins}"

[sink]
health_check_interval_ms = 200
{extra}
"#
    )
}

/// A client of the HStreamDB-compatible server at `url`.
pub(crate) fn client(url: &str) -> Client {
    Client::new(url.parse().expect("a server url"), ClientOptions::default()).expect("a client")
}

/// Reads `stream` from the start until `count` records arrived; fails after
/// the default deadline with what it read so far.
pub(crate) async fn read_records(client: &Client, stream: &str, count: usize) -> Vec<ReadRecord> {
    let mut records = Vec::new();
    let reading = async {
        let mut reader = client
            .read_stream(stream, StartFrom::Earliest)
            .await
            .expect("start reading");
        while records.len() < count {
            match reader.next().await.expect("read a record") {
                Some(record) => records.push(record),
                None => break,
            }
        }
    };
    if tokio::time::timeout(DEFAULT_DEADLINE, reading)
        .await
        .is_err()
    {
        panic!(
            "read {} of {count} records from {stream} before the deadline",
            records.len()
        );
    }
    records
}

/// The JSON of an HRecord.
pub(crate) fn json_of(record: &ReadRecord) -> serde_json::Value {
    weir_proto::record::decode_hrecord(&record.record.payload).expect("an HRecord")
}
