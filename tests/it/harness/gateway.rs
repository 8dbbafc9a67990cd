//! weir itself as a process (`weir run --config FILE`), with helpers to read
//! what it stored.

use super::process::Process;
use super::{DEFAULT_DEADLINE, weir};
use ::weir::sink::client::{Client, ClientOptions, ReadRecord, StartFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A running `weir run`.
#[derive(Debug)]
pub(crate) struct Gateway {
    process: Process,
    config: PathBuf,
    /// The MQTT listener's address, in listener mode.
    pub(crate) mqtt: Option<SocketAddr>,
}

impl Gateway {
    /// Writes `config` (TOML) to `dir/weir.toml` and runs weir with it until
    /// it prints `weir ready`.
    pub(crate) async fn start(dir: &Path, config: &str) -> Gateway {
        let path = dir.join("weir.toml");
        std::fs::write(&path, config).expect("write weir.toml");
        Self::launch(path).await
    }

    async fn launch(config: PathBuf) -> Gateway {
        let config_arg = config.to_str().expect("utf-8 path").to_owned();
        let mut process = weir::spawn("weir run", &["-v", "run", "--config", &config_arg]);
        let mut mqtt = None;
        process
            .wait_for_line(DEFAULT_DEADLINE, |line| {
                if let Some(addr) = line.strip_prefix("weir mqtt listener on ") {
                    mqtt = addr.trim().parse().ok();
                }
                (line == "weir ready").then_some(())
            })
            .await;
        Gateway {
            process,
            config,
            mqtt,
        }
    }

    pub(crate) fn mqtt_port(&self) -> u16 {
        self.mqtt.expect("weir runs an MQTT listener").port()
    }

    pub(crate) fn output(&self) -> String {
        self.process.output()
    }

    /// SIGKILL: a crash.
    pub(crate) async fn kill(&mut self) {
        self.process.kill().await;
    }

    /// Starts weir again with the same configuration.
    pub(crate) async fn restart(&mut self) {
        *self = Self::launch(self.config.clone()).await;
    }

    /// SIGTERM and a clean exit.
    pub(crate) async fn stop(mut self) {
        let code = self.process.terminate(Duration::from_secs(30)).await;
        assert_eq!(code, Some(0), "weir exited badly:\n{}", self.output());
    }
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
