//! The HStreamDB-compatible development server, run as its own process
//! (`weir devserver`) the way HStreamDB runs beside weir in production.

use super::process::Process;
use super::{DEFAULT_DEADLINE, weir};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use weir_proto::pb::devserver::FaultPlan;
use weir_proto::pb::devserver::fault_control_client::FaultControlClient;

#[derive(Debug)]
pub(crate) struct DevServer {
    process: Process,
    addr: SocketAddr,
    data_dir: Option<PathBuf>,
}

impl DevServer {
    /// Starts an in-memory server on a free port.
    pub(crate) async fn start() -> DevServer {
        Self::launch("127.0.0.1:0", None).await
    }

    /// Starts a server that keeps its data in `dir`.
    pub(crate) async fn start_persistent(dir: &Path) -> DevServer {
        Self::launch("127.0.0.1:0", Some(dir.to_path_buf())).await
    }

    /// Starts a server that serves TLS with the given PEM files.
    pub(crate) async fn start_tls(cert: &Path, key: &Path) -> DevServer {
        let tls = vec![
            "--tls-cert".to_owned(),
            path_arg(cert),
            "--tls-key".to_owned(),
            path_arg(key),
        ];
        Self::launch_with("127.0.0.1:0", None, &tls).await
    }

    async fn launch(listen: &str, data_dir: Option<PathBuf>) -> DevServer {
        Self::launch_with(listen, data_dir, &[]).await
    }

    async fn launch_with(listen: &str, data_dir: Option<PathBuf>, extra: &[String]) -> DevServer {
        let mut args = vec![
            "devserver".to_owned(),
            "--listen".to_owned(),
            listen.to_owned(),
        ];
        if let Some(dir) = &data_dir {
            args.extend(["--data-dir".to_owned(), path_arg(dir)]);
        }
        args.extend(extra.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut process = weir::spawn("weir devserver", &args);
        let addr = process
            .wait_for_line(DEFAULT_DEADLINE, |line| {
                line.strip_prefix("weir devserver listening on ")
                    .and_then(|a| a.trim().parse::<SocketAddr>().ok())
            })
            .await;
        DevServer {
            process,
            addr,
            data_dir,
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL weir's `--server` option takes.
    pub(crate) fn url(&self) -> String {
        format!("hstream://{}", self.addr)
    }

    pub(crate) fn output(&self) -> String {
        self.process.output()
    }

    /// Kills the server (SIGKILL) and starts it again on the same port with
    /// the same data directory.
    pub(crate) async fn crash_and_restart(&mut self) {
        self.process.kill().await;
        let listen = self.addr.to_string();
        let mut last = None;
        for _attempt in 0..50 {
            let restarted = Self::launch(&listen, self.data_dir.clone()).await;
            if restarted.addr == self.addr {
                *self = restarted;
                return;
            }
            last = Some(restarted.addr);
        }
        panic!(
            "the devserver did not restart on {} (got {last:?})",
            self.addr
        );
    }

    /// Sets the fault plan: appends fail with UNAVAILABLE for `fail_for`, and
    /// every append waits `latency` first.
    pub(crate) async fn set_faults(&self, fail_for: Duration, latency: Duration) {
        let mut control = FaultControlClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect to the fault control service");
        control
            .set_faults(FaultPlan {
                fail_appends_for_ms: u64::try_from(fail_for.as_millis()).expect("fits"),
                append_latency_ms: u64::try_from(latency.as_millis()).expect("fits"),
                ..FaultPlan::default()
            })
            .await
            .expect("set the fault plan");
    }

    /// The fault plan in force: time left of the failing period, and the
    /// appends answered with an injected failure since the server started.
    pub(crate) async fn faults(&self) -> FaultPlan {
        let mut control = FaultControlClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect to the fault control service");
        control
            .get_faults(weir_proto::pb::devserver::GetFaultsRequest {})
            .await
            .expect("read the fault plan")
            .into_inner()
    }

    pub(crate) async fn stop(mut self) {
        self.process.terminate(Duration::from_secs(20)).await;
    }
}

fn path_arg(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_owned()
}
