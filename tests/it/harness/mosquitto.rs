//! A real mosquitto broker per test, on a free loopback port.
//!
//! mosquitto cannot report a port it picked itself, so the harness reserves a
//! free port by binding it, releases it and starts mosquitto there, retrying
//! on the rare collision. The broker's queue limits are raised on purpose:
//! the default `max_queued_messages 1000` silently drops QoS 1 messages to a
//! subscriber that falls behind (or to an offline persistent session), which
//! would make at-least-once tests fail for the broker's reasons, not weir's.

use super::process::Process;
use super::scratch_dir;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug)]
pub(crate) struct Mosquitto {
    process: Process,
    port: u16,
    dir: tempfile::TempDir,
    extra_config: String,
}

impl Mosquitto {
    /// Starts a broker with persistence in its own directory, so a restart
    /// keeps persistent sessions and their queued messages.
    pub(crate) async fn start() -> Mosquitto {
        Self::start_with("").await
    }

    /// Starts a broker with extra lines appended to its configuration.
    pub(crate) async fn start_with(extra_config: &str) -> Mosquitto {
        let dir = scratch_dir();
        for _attempt in 0..5 {
            let port = free_port();
            if let Some(process) = launch(dir.path(), port, extra_config).await {
                return Mosquitto {
                    process,
                    port,
                    dir,
                    extra_config: extra_config.to_owned(),
                };
            }
        }
        panic!("mosquitto did not start on any of 5 free ports");
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub(crate) fn output(&self) -> String {
        self.process.output()
    }

    /// Stops the broker cleanly (it saves its sessions) and starts it again on
    /// the same port with the same state.
    pub(crate) async fn restart(&mut self) {
        self.process.terminate(Duration::from_secs(20)).await;
        for _attempt in 0..50 {
            if let Some(process) = launch(self.dir.path(), self.port, &self.extra_config).await {
                self.process = process;
                return;
            }
            // The old socket may linger for a moment; retry promptly.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("mosquitto did not restart on port {}", self.port);
    }

    /// Waits until client `client_id` has subscribed to `filter` (mosquitto
    /// logs every subscription), so a test publishes only once a subscriber
    /// will get the message.
    pub(crate) async fn wait_for_subscription(&mut self, client_id: &str, filter: &str) {
        let who = format!(" {client_id} ");
        let what = format!(" {filter}");
        self.process
            .wait_for_line(super::DEFAULT_DEADLINE, |line| {
                (line.contains(&who) && line.ends_with(&what)).then_some(())
            })
            .await;
    }

    /// Stops the broker and leaves it stopped.
    pub(crate) async fn stop(&mut self) {
        self.process.terminate(Duration::from_secs(20)).await;
    }
}

/// Reserves a free loopback port. The port is released before returning, so a
/// collision is possible but rare; callers retry.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("reserve a free port")
}

fn mosquitto_binary() -> PathBuf {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("mosquitto is not installed: apt-get install -y mosquitto mosquitto-clients")
}

/// Starts mosquitto and waits until it listens; `None` if it could not bind.
async fn launch(dir: &Path, port: u16, extra_config: &str) -> Option<Process> {
    let config = dir.join("mosquitto.conf");
    let text = format!(
        "listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         # Run as the invoking user so the state directory stays writable.\n\
         user {user}\n\
         persistence true\n\
         persistence_location {dir}/\n\
         autosave_interval 1\n\
         # The defaults (1000 queued, 20 in flight) drop QoS 1 messages for a\n\
         # subscriber that falls behind; tests measure weir, not that limit.\n\
         max_queued_messages 1000000\n\
         max_queued_bytes 0\n\
         max_inflight_messages 100\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n\
         log_type notice\n\
         log_type information\n\
         log_type subscribe\n\
         connection_messages true\n\
         {extra_config}\n",
        user = whoami(),
        dir = dir.display(),
    );
    std::fs::write(&config, text).expect("write mosquitto.conf");
    let mut process = Process::spawn(
        "mosquitto",
        &mosquitto_binary(),
        &["-c", config.to_str().expect("utf-8 path")],
    );
    let listening = format!("Opening ipv4 listen socket on port {port}");
    let started = tokio::time::timeout(Duration::from_secs(20), async {
        process
            .wait_for_line(Duration::from_secs(20), |line| {
                if line.contains(&listening) {
                    Some(true)
                } else if line.contains("Error") {
                    Some(false)
                } else {
                    None
                }
            })
            .await
    })
    .await
    .unwrap_or(false);
    if !started {
        return None;
    }
    // mosquitto reports the socket a moment before it accepts connections.
    super::eventually(
        "mosquitto to accept connections",
        Duration::from_secs(20),
        || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )
    .await;
    Some(process)
}

fn whoami() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            std::process::Command::new("id")
                .arg("-un")
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|| "root".to_owned())
        })
}
