//! The HStreamDB-compatible development server, run as its own process
//! (`weir devserver`) the way HStreamDB runs beside weir in production: one
//! node ([`DevServer`]) or a cluster ([`DevCluster`]).

use super::process::Process;
use super::{DEFAULT_DEADLINE, weir};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use weir_proto::pb::devserver::cluster_control_client::ClusterControlClient;
use weir_proto::pb::devserver::fault_control_client::FaultControlClient;
use weir_proto::pb::devserver::{
    AddNodeRequest, FaultPlan, ListNodesRequest, NodeFaults, NodeRequest,
};

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

/// One node of a [`DevCluster`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterNode {
    pub(crate) id: u32,
    pub(crate) listen: SocketAddr,
    /// `host:port` the node advertises.
    pub(crate) advertised: String,
}

/// `weir devserver --nodes N` as its own process, driven through its plain
/// control listener (which stays reachable when nodes speak TLS or stop).
#[derive(Debug)]
pub(crate) struct DevCluster {
    process: Process,
    control: SocketAddr,
    nodes: Vec<ClusterNode>,
    tls: bool,
}

impl DevCluster {
    /// Starts `nodes` in-memory nodes on free loopback ports; `extra` are
    /// more `weir devserver` arguments (TLS files, advertised hosts).
    pub(crate) async fn start(nodes: usize, extra: &[String]) -> DevCluster {
        let mut args = vec![
            "devserver".to_owned(),
            "--nodes".to_owned(),
            nodes.to_string(),
            "--control-listen".to_owned(),
            "127.0.0.1:0".to_owned(),
        ];
        if !extra.iter().any(|a| a == "--listen") {
            args.extend(["--listen".to_owned(), "127.0.0.1:0".to_owned()]);
        }
        args.extend(extra.iter().cloned());
        let tls = extra
            .iter()
            .any(|a| a == "--tls-cert" || a == "--tls-cert-path");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut process = weir::spawn("weir devserver --nodes", &args);
        let mut control = None;
        let mut found = Vec::new();
        process
            .wait_for_line(DEFAULT_DEADLINE, |line| {
                if let Some(addr) = line.strip_prefix("weir devserver control on ") {
                    control = addr.trim().parse().ok();
                }
                if let Some(rest) = line.strip_prefix("weir devserver node ") {
                    found.extend(parse_node_line(rest));
                }
                line.starts_with("weir devserver listening on ")
                    .then_some(())
            })
            .await;
        DevCluster {
            process,
            control: control.expect("the devserver printed its control address"),
            nodes: found,
            tls,
        }
    }

    /// The nodes as started (stopped ones included).
    pub(crate) fn nodes(&self) -> &[ClusterNode] {
        &self.nodes
    }

    /// `hstream://a,b,...` (or `hstreams://`) with every node as a seed.
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls { "hstreams" } else { "hstream" };
        let seeds: Vec<&str> = self.nodes.iter().map(|n| n.advertised.as_str()).collect();
        format!("{scheme}://{}", seeds.join(","))
    }

    pub(crate) fn output(&self) -> String {
        self.process.output()
    }

    async fn control(&self) -> ClusterControlClient<tonic::transport::Channel> {
        ClusterControlClient::connect(format!("http://{}", self.control))
            .await
            .expect("connect to the cluster control service")
    }

    /// The nodes as the cluster reports them: (id, running).
    pub(crate) async fn states(&self) -> Vec<(u32, bool)> {
        self.control()
            .await
            .list_nodes(ListNodesRequest {})
            .await
            .expect("list the nodes")
            .into_inner()
            .nodes
            .into_iter()
            .map(|n| (n.id, n.running))
            .collect()
    }

    /// Stops node `id` and waits until its port is closed.
    pub(crate) async fn stop_node(&self, id: u32) {
        self.control()
            .await
            .stop_node(NodeRequest { id })
            .await
            .expect("stop the node");
    }

    /// Starts node `id` again on its address.
    pub(crate) async fn start_node(&self, id: u32) {
        self.control()
            .await
            .start_node(NodeRequest { id })
            .await
            .expect("start the node");
    }

    /// Adds a node on a free loopback port; returns it.
    pub(crate) async fn add_node(&mut self) -> ClusterNode {
        let nodes = self
            .control()
            .await
            .add_node(AddNodeRequest {
                id: 0,
                listen: "127.0.0.1:0".into(),
                advertised_host: String::new(),
            })
            .await
            .expect("add a node")
            .into_inner()
            .nodes;
        let added = nodes
            .into_iter()
            .find(|n| !self.nodes.iter().any(|known| known.id == n.id))
            .expect("the new node is listed");
        let node = ClusterNode {
            id: added.id,
            listen: added.listen.parse().expect("the node's address"),
            advertised: added.advertised,
        };
        self.nodes.push(node.clone());
        node
    }

    /// Replaces node `id`'s fault plan.
    pub(crate) async fn set_node_faults(&self, id: u32, plan: FaultPlan) {
        self.control()
            .await
            .set_node_faults(NodeFaults {
                id,
                plan: Some(plan),
            })
            .await
            .expect("set the node's faults");
    }

    pub(crate) async fn stop(mut self) {
        self.process.terminate(Duration::from_secs(20)).await;
    }
}

/// `ID listening on ADDR advertised HOST:PORT`.
fn parse_node_line(rest: &str) -> Option<ClusterNode> {
    let (id, rest) = rest.split_once(" listening on ")?;
    let (listen, advertised) = rest.split_once(" advertised ")?;
    Some(ClusterNode {
        id: id.trim().parse().ok()?,
        listen: listen.trim().parse().ok()?,
        advertised: advertised.trim().to_owned(),
    })
}
