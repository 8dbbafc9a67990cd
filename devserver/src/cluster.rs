//! The development server as a cluster: N nodes, each on its own listener
//! (its own advertised address and TLS), sharing one store the way HStreamDB
//! nodes share LogDevice, so an Append or a read works on any node.
//!
//! Ownership of shards, shard readers and keys comes from a consistent hash
//! ring of the running nodes ([`Ring`]), as HStreamDB's lookups do: when a
//! node stops or joins, only the resources that hash next to it move. The
//! ring is rebuilt on every membership change; lookups read it.
//!
//! Nodes are stopped, started again and added through [`DevCluster`] (in
//! process) or the `ClusterControl` gRPC service on every node's port (from
//! another process), so a test can take away the node that owns a busy
//! shard and watch a client follow.

use crate::control::Faults;
use crate::error::Error;
use crate::service::Service;
use crate::service::read::Readers;
use crate::store::{Store, StoreOptions};
use crate::{DEFAULT_MAX_RECORD_BYTES, TlsConfig, tls};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::ServerTlsConfig;
use tonic::{Request, Response, Status};
use weir_proto::keyspace::hash_key;
use weir_proto::pb::devserver::cluster_control_server::{ClusterControl, ClusterControlServer};
use weir_proto::pb::devserver::fault_control_server::FaultControl;
use weir_proto::pb::devserver::fault_control_server::FaultControlServer;
use weir_proto::pb::devserver::{
    AddNodeRequest, FaultPlan, ListNodesRequest, ListNodesResponse, NodeFaults,
    NodeInfo as WireNodeInfo, NodeRequest,
};
use weir_proto::pb::h_stream_api_server::HStreamApiServer;
use weir_proto::pb::{
    DescribeClusterResponse, HStreamVersion, NodeState, ServerNode, ServerNodeStatus,
};
use weir_proto::record::DEFAULT_MAX_DECODED_BYTES;

/// HStreamDB's protocol version, sent in DescribeCluster.
const PROTOCOL_VERSION: &str = "0.1.0";

/// How often batches past their stream's backlog are removed.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);

/// Points per node on the hash ring: enough that three or four nodes share
/// the resources roughly evenly.
const VIRTUAL_NODES: u32 = 64;

/// A stopping node gets this long to finish the calls it is serving before
/// its task is abandoned.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What all nodes of a cluster share.
#[derive(Debug, Clone, Default)]
pub struct ClusterConfig {
    /// Where streams and records are kept across restarts; `None` keeps
    /// everything in memory.
    pub data_dir: Option<PathBuf>,
    /// The largest Append payload in bytes; 0 means
    /// [`DEFAULT_MAX_RECORD_BYTES`].
    pub max_record_bytes: usize,
    /// Also fsync every appended batch before answering.
    pub fsync: bool,
    /// Refuse an Append at a node that does not own the shard, with
    /// FAILED_PRECONDITION and HStreamDB's WrongServer body. HStreamDB itself
    /// takes appends anywhere; this makes a client that ignores ownership
    /// visible.
    pub strict_ownership: bool,
}

/// One node of a cluster.
#[derive(Debug, Clone, Default)]
pub struct NodeConfig {
    /// The node id DescribeCluster and lookups report.
    pub id: u32,
    /// Serve TLS (and require client certificates when a CA is given).
    pub tls: Option<TlsConfig>,
    /// The host clients are told to dial (with the listener's real port);
    /// `None` advertises the listener's IP (127.0.0.1 for an unspecified
    /// address such as 0.0.0.0).
    pub advertised_host: Option<String>,
}

/// A node as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: u32,
    /// The address the node binds.
    pub listen: SocketAddr,
    /// `host:port` clients are told to dial.
    pub advertised: String,
    pub running: bool,
    pub tls: bool,
}

/// A consistent hash ring over node ids.
#[derive(Debug, Default, Clone)]
pub(crate) struct Ring {
    /// Sorted by point.
    points: Vec<(u128, u32)>,
}

impl Ring {
    pub(crate) fn new(ids: impl IntoIterator<Item = u32>) -> Ring {
        let mut points: Vec<(u128, u32)> = ids
            .into_iter()
            .flat_map(|id| (0..VIRTUAL_NODES).map(move |v| (hash_key(&format!("{id}#{v}")), id)))
            .collect();
        points.sort_unstable();
        Ring { points }
    }

    /// The node owning `resource` (a shard id, reader id or key as text):
    /// the first point at or after its hash, wrapping around.
    pub(crate) fn owner(&self, resource: &str) -> Option<u32> {
        if self.points.is_empty() {
            return None;
        }
        let hash = hash_key(resource);
        let index = self.points.partition_point(|(point, _)| *point < hash);
        Some(self.points[index % self.points.len()].1)
    }
}

/// A running (or stopping) node's task.
#[derive(Debug)]
struct NodeTask {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
}

#[derive(Debug)]
struct Member {
    node: ServerNode,
    listen: SocketAddr,
    tls_files: Option<TlsConfig>,
    tls: Option<ServerTlsConfig>,
    faults: Arc<Faults>,
    running: bool,
    task: Option<NodeTask>,
}

impl Member {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            id: self.node.id,
            listen: self.listen,
            advertised: format!("{}:{}", self.node.host, self.node.port),
            running: self.running,
            tls: self.tls.is_some(),
        }
    }
}

#[derive(Debug, Default)]
struct Members {
    nodes: BTreeMap<u32, Member>,
    ring: Ring,
}

impl Members {
    fn rebuild_ring(&mut self) {
        self.ring = Ring::new(self.nodes.values().filter(|m| m.running).map(|m| m.node.id));
    }
}

/// What every node's handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<Store>,
    pub(crate) readers: Arc<Readers>,
    pub(crate) started: Instant,
    pub(crate) max_record_bytes: usize,
    pub(crate) max_decoded_bytes: usize,
    pub(crate) strict_ownership: bool,
    members: Mutex<Members>,
    expiry: Mutex<Option<JoinHandle<()>>>,
    /// The plain control listener's server, when there is one.
    control: Mutex<Option<NodeTask>>,
}

impl Shared {
    fn members(&self) -> MutexGuard<'_, Members> {
        // Nothing panics while holding the lock.
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The running node owning `resource`; `None` only when no node runs.
    pub(crate) fn owner(&self, resource: &str) -> Option<ServerNode> {
        let members = self.members();
        let id = members.ring.owner(resource)?;
        members.nodes.get(&id).map(|m| m.node.clone())
    }

    pub(crate) fn owner_id(&self, resource: &str) -> Option<u32> {
        self.members().ring.owner(resource)
    }

    /// Every node with its state: Running, or Dead once stopped.
    pub(crate) fn describe(&self) -> DescribeClusterResponse {
        let members = self.members();
        DescribeClusterResponse {
            protocol_version: PROTOCOL_VERSION.into(),
            server_nodes: members.nodes.values().map(|m| m.node.clone()).collect(),
            server_nodes_status: members
                .nodes
                .values()
                .map(|m| ServerNodeStatus {
                    node: Some(m.node.clone()),
                    state: if m.running {
                        NodeState::Running
                    } else {
                        NodeState::Dead
                    } as i32,
                })
                .collect(),
            cluster_up_time: self.started.elapsed().as_secs(),
        }
    }

    fn infos(&self) -> Vec<NodeInfo> {
        self.members().nodes.values().map(Member::info).collect()
    }

    /// Registers a node that is not serving yet.
    fn add_member(&self, local: SocketAddr, config: NodeConfig) -> Result<(), Error> {
        let tls = config.tls.as_ref().map(tls::server_config).transpose()?;
        let mut members = self.members();
        if members.nodes.contains_key(&config.id) {
            return Err(Error::DuplicateNode(config.id));
        }
        members.nodes.insert(
            config.id,
            Member {
                node: advertised_node(config.id, local, config.advertised_host.as_deref()),
                listen: local,
                tls_files: config.tls,
                tls,
                faults: Arc::new(Faults::default()),
                running: false,
                task: None,
            },
        );
        Ok(())
    }

    /// Serves node `id` on `listener` (or on its own address again).
    async fn start_node(
        self: &Arc<Self>,
        id: u32,
        listener: Option<TcpListener>,
    ) -> Result<(), Error> {
        let (previous, listen) = {
            let mut members = self.members();
            let member = members.nodes.get_mut(&id).ok_or(Error::UnknownNode(id))?;
            if member.running {
                return Ok(());
            }
            (member.task.take(), member.listen)
        };
        if let Some(previous) = previous {
            finish(previous).await;
        }
        let listener = match listener {
            Some(listener) => listener,
            None => TcpListener::bind(listen)
                .await
                .map_err(|source| Error::Bind {
                    addr: listen,
                    source,
                })?,
        };
        let (stop, stopped) = oneshot::channel();
        let mut members = self.members();
        let member = members.nodes.get_mut(&id).ok_or(Error::UnknownNode(id))?;
        let node = NodeServer {
            shared: self.clone(),
            node: member.node.clone(),
            faults: member.faults.clone(),
            tls: member.tls.clone(),
        };
        member.task = Some(NodeTask {
            stop: Some(stop),
            task: tokio::spawn(node.run(listener, async move {
                let _ = stopped.await;
            })),
        });
        member.running = true;
        tracing::info!(
            node = id,
            listen = %member.listen,
            advertised = %format!("{}:{}", member.node.host, member.node.port),
            tls = member.tls.is_some(),
            "weir devserver node started"
        );
        members.rebuild_ring();
        Ok(())
    }

    /// Takes node `id` out of the ring and asks it to stop; returns its task
    /// so the caller can wait until the port is released.
    fn stop_node(&self, id: u32) -> Result<Option<NodeTask>, Error> {
        let mut members = self.members();
        let member = members.nodes.get_mut(&id).ok_or(Error::UnknownNode(id))?;
        if !member.running {
            return Ok(None);
        }
        member.running = false;
        let mut task = member.task.take();
        if let Some(stop) = task.as_mut().and_then(|t| t.stop.take()) {
            let _ = stop.send(());
        }
        members.rebuild_ring();
        tracing::info!(
            node = id,
            "weir devserver node stopped; the ring no longer has it"
        );
        Ok(task)
    }

    fn next_id(&self) -> u32 {
        self.members()
            .nodes
            .keys()
            .next_back()
            .map_or(1, |id| id.saturating_add(1))
    }
}

/// Waits for a stopping node's task, abandoning it after the grace period.
async fn finish(task: NodeTask) {
    let NodeTask { stop, task } = task;
    if let Some(stop) = stop {
        let _ = stop.send(());
    }
    let abort = task.abort_handle();
    match tokio::time::timeout(STOP_GRACE, task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => tracing::warn!(%error, "a devserver node failed"),
        Ok(Err(error)) => tracing::warn!(%error, "a devserver node's task failed"),
        Err(_) => {
            tracing::warn!("a devserver node did not stop within {STOP_GRACE:?}; abandoning it");
            abort.abort();
        }
    }
}

/// One node's gRPC server.
struct NodeServer {
    shared: Arc<Shared>,
    node: ServerNode,
    faults: Arc<Faults>,
    tls: Option<ServerTlsConfig>,
}

impl NodeServer {
    async fn run(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let (stop_tx, stop_rx) = watch::channel(false);
        // Readers treat a dropped sender as a stop too, so one copy lives
        // until the node is done.
        let stop_tx = Arc::new(stop_tx);
        let stop_signal = stop_tx.clone();
        let id = self.node.id;
        let service = Service {
            store: self.shared.store.clone(),
            faults: self.faults.clone(),
            readers: self.shared.readers.clone(),
            cluster: self.shared.clone(),
            node: self.node,
            max_record_bytes: self.shared.max_record_bytes,
            max_decoded_bytes: self.shared.max_decoded_bytes,
            stop: stop_rx,
        };
        // Far above the record limit, so an oversized batch reaches the
        // handler and gets HStreamDB's 207 rather than tonic's own error.
        let max_message = self
            .shared
            .max_record_bytes
            .saturating_mul(4)
            .saturating_add(16 * 1024 * 1024);
        let api = HStreamApiServer::new(service).max_decoding_message_size(max_message);
        let control = ClusterControlServer::new(Control {
            shared: self.shared.clone(),
            receiver: Some(id),
        });
        // HTTP/2 flow control sized by bandwidth-delay probing, as gRPC's C
        // core (under HStreamDB's server) does by default: with h2's fixed
        // 64 KiB stream window a batch of large records waits on one
        // WINDOW_UPDATE round trip per 64 KiB.
        let mut builder = tonic::transport::Server::builder().http2_adaptive_window(Some(true));
        if let Some(tls) = self.tls {
            builder = builder.tls_config(tls)?;
        }
        let result = builder
            .add_service(api)
            .add_service(FaultControlServer::from_arc(self.faults))
            .add_service(control)
            .serve_with_incoming_shutdown(incoming(listener), async move {
                shutdown.await;
                tracing::info!(node = id, "weir devserver node shutting down");
                stop_signal.send_replace(true);
            })
            .await;
        drop(stop_tx);
        Ok(result?)
    }
}

/// Accepted connections with Nagle's algorithm off: a reply that does not
/// fill a segment would otherwise wait for the client's delayed ACK (about
/// 20 ms per append of a few tens of kilobytes), as HStreamDB's does not.
fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

async fn remove_expired_periodically(store: Arc<Store>) {
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let store = store.clone();
        // Removing segment files blocks.
        if tokio::task::spawn_blocking(move || store.remove_expired())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The node clients are told to dial: the listener's real port, and the
/// configured host or else the listener's IP.
pub(crate) fn advertised_node(
    id: u32,
    local: SocketAddr,
    advertised_host: Option<&str>,
) -> ServerNode {
    let host = match advertised_host {
        Some(host) => host.to_owned(),
        None => {
            let ip = match local.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            if local.ip().is_unspecified() {
                tracing::warn!(
                    listen = %local,
                    advertised = %ip,
                    "listening on all addresses but advertising loopback; set an advertised host for remote clients"
                );
            }
            match ip {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("[{ip}]"),
            }
        }
    };
    ServerNode {
        id,
        host,
        port: u32::from(local.port()),
        version: Some(HStreamVersion {
            version: concat!("weir-devserver ", env!("CARGO_PKG_VERSION")).into(),
            commit: String::new(),
        }),
    }
}

/// A development cluster running in the background of this process.
///
/// Dropping it asks every node to stop without waiting;
/// [`DevCluster::shutdown`] waits until the ports and the data directory are
/// released.
#[derive(Debug)]
pub struct DevCluster {
    shared: Arc<Shared>,
}

impl DevCluster {
    /// Opens the store and starts every node on its already-bound listener.
    /// Returns once all nodes accept connections, so a bad data directory or
    /// TLS file is reported here.
    pub async fn start(
        config: ClusterConfig,
        nodes: Vec<(TcpListener, NodeConfig)>,
    ) -> Result<DevCluster, Error> {
        if nodes.is_empty() {
            return Err(Error::NoNodes);
        }
        let options = StoreOptions::new(config.data_dir.clone(), config.fsync);
        let store = tokio::task::spawn_blocking(move || Store::open(options))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let store = Arc::new(store);
        let max_record_bytes = match config.max_record_bytes {
            0 => DEFAULT_MAX_RECORD_BYTES,
            n => n,
        };
        let shared = Arc::new(Shared {
            store: store.clone(),
            readers: Arc::default(),
            started: Instant::now(),
            max_record_bytes,
            max_decoded_bytes: DEFAULT_MAX_DECODED_BYTES.max(max_record_bytes.saturating_mul(16)),
            strict_ownership: config.strict_ownership,
            members: Mutex::default(),
            expiry: Mutex::new(Some(tokio::spawn(remove_expired_periodically(store)))),
            control: Mutex::default(),
        });
        let cluster = DevCluster { shared };
        let mut listeners = Vec::with_capacity(nodes.len());
        for (listener, node) in nodes {
            let local = listener.local_addr().map_err(Error::Listener)?;
            let id = node.id;
            cluster.shared.add_member(local, node)?;
            listeners.push((id, listener));
        }
        for (id, listener) in listeners {
            cluster.shared.start_node(id, Some(listener)).await?;
        }
        tracing::info!(
            nodes = ?cluster.nodes().iter().map(|n| (n.id, n.advertised.clone())).collect::<Vec<_>>(),
            data_dir = ?config.data_dir,
            "weir devserver ready"
        );
        Ok(cluster)
    }

    /// Every node, running or stopped, by id.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.shared.infos()
    }

    /// Stops a node and waits until its port is released; its resources
    /// move to the other nodes.
    pub async fn stop_node(&self, id: u32) -> Result<(), Error> {
        if let Some(task) = self.shared.stop_node(id)? {
            finish(task).await;
        }
        Ok(())
    }

    /// Starts a stopped node again on its address.
    pub async fn start_node(&self, id: u32) -> Result<(), Error> {
        self.shared.start_node(id, None).await
    }

    /// Adds a node on `listener`; it joins the ring at once.
    pub async fn add_node(
        &self,
        listener: TcpListener,
        config: NodeConfig,
    ) -> Result<NodeInfo, Error> {
        let local = listener.local_addr().map_err(Error::Listener)?;
        let id = config.id;
        self.shared.add_member(local, config)?;
        self.shared.start_node(id, Some(listener)).await?;
        self.nodes()
            .into_iter()
            .find(|n| n.id == id)
            .ok_or(Error::UnknownNode(id))
    }

    /// Serves `ClusterControl` alone, in plain text, on `listener` until the
    /// cluster shuts down: the control surface for tests when the nodes
    /// speak TLS or are stopped.
    pub fn serve_control(&self, listener: TcpListener) {
        let control = ClusterControlServer::new(Control {
            shared: self.shared.clone(),
            receiver: None,
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(control)
                .serve_with_incoming_shutdown(incoming(listener), async move {
                    let _ = stopped.await;
                })
                .await
                .map_err(Error::from)
        });
        *self
            .shared
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(NodeTask {
            stop: Some(stop),
            task,
        });
    }

    /// Stops every node, then releases the store (and its data directory).
    pub async fn shutdown(self) -> Result<(), Error> {
        let ids: Vec<u32> = self.shared.members().nodes.keys().copied().collect();
        let mut tasks = Vec::new();
        for id in ids {
            tasks.extend(self.shared.stop_node(id)?);
        }
        // Nodes stopped earlier may still be finishing.
        tasks.extend(
            self.shared
                .members()
                .nodes
                .values_mut()
                .filter_map(|m| m.task.take()),
        );
        tasks.extend(
            self.shared
                .control
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        for task in tasks {
            finish(task).await;
        }
        self.close_store();
        tracing::info!("weir devserver stopped");
        Ok(())
    }

    fn close_store(&self) {
        if let Some(expiry) = self
            .shared
            .expiry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            expiry.abort();
        }
        self.shared.store.close();
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        let ids: Vec<u32> = self.shared.members().nodes.keys().copied().collect();
        for id in ids {
            let _ = self.shared.stop_node(id);
        }
        if let Some(mut control) = self
            .shared
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            && let Some(stop) = control.stop.take()
        {
            let _ = stop.send(());
        }
        if let Some(expiry) = self
            .shared
            .expiry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            expiry.abort();
        }
    }
}

/// The `ClusterControl` service of one node, or of the control listener.
struct Control {
    shared: Arc<Shared>,
    /// The node serving this call: stopping it cannot wait for its own end.
    receiver: Option<u32>,
}

impl Control {
    fn reply(&self) -> Response<ListNodesResponse> {
        Response::new(ListNodesResponse {
            nodes: self
                .shared
                .infos()
                .into_iter()
                .map(|n| WireNodeInfo {
                    id: n.id,
                    listen: n.listen.to_string(),
                    advertised: n.advertised,
                    running: n.running,
                })
                .collect(),
        })
    }
}

fn control_error(error: Error) -> Status {
    match error {
        Error::UnknownNode(_) | Error::DuplicateNode(_) => Status::not_found(error.to_string()),
        Error::Bind { .. } => Status::unavailable(error.to_string()),
        other => Status::internal(other.to_string()),
    }
}

#[tonic::async_trait]
impl ClusterControl for Control {
    async fn list_nodes(
        &self,
        _request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        Ok(self.reply())
    }

    async fn stop_node(
        &self,
        request: Request<NodeRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        let id = request.into_inner().id;
        if let Some(task) = self.shared.stop_node(id).map_err(control_error)? {
            if Some(id) == self.receiver {
                // This call is one the node waits for: let it finish alone.
                tokio::spawn(finish(task));
            } else {
                finish(task).await;
            }
        }
        Ok(self.reply())
    }

    async fn start_node(
        &self,
        request: Request<NodeRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        let id = request.into_inner().id;
        self.shared
            .start_node(id, None)
            .await
            .map_err(control_error)?;
        Ok(self.reply())
    }

    async fn add_node(
        &self,
        request: Request<AddNodeRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        let request = request.into_inner();
        let id = match request.id {
            0 => self.shared.next_id(),
            id => id,
        };
        let listen: SocketAddr = request.listen.parse().map_err(|e| {
            Status::invalid_argument(format!("listen {:?} is no address: {e}", request.listen))
        })?;
        // The new node serves as the receiving node does (the first node,
        // at the control listener).
        let tls = {
            let members = self.shared.members();
            self.receiver
                .and_then(|id| members.nodes.get(&id))
                .or_else(|| members.nodes.values().next())
                .and_then(|m| m.tls_files.clone())
        };
        let listener = TcpListener::bind(listen).await.map_err(|source| {
            control_error(Error::Bind {
                addr: listen,
                source,
            })
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| Status::internal(e.to_string()))?;
        let advertised_host =
            (!request.advertised_host.is_empty()).then_some(request.advertised_host);
        self.shared
            .add_member(
                local,
                NodeConfig {
                    id,
                    tls,
                    advertised_host,
                },
            )
            .map_err(control_error)?;
        self.shared
            .start_node(id, Some(listener))
            .await
            .map_err(control_error)?;
        Ok(self.reply())
    }

    async fn set_node_faults(
        &self,
        request: Request<NodeFaults>,
    ) -> Result<Response<FaultPlan>, Status> {
        let request = request.into_inner();
        let faults = self
            .shared
            .members()
            .nodes
            .get(&request.id)
            .map(|m| m.faults.clone())
            .ok_or_else(|| control_error(Error::UnknownNode(request.id)))?;
        faults
            .set_faults(Request::new(request.plan.unwrap_or_default()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_a_dialable_host() {
        let node = advertised_node(1, "0.0.0.0:6570".parse().expect("addr"), None);
        assert_eq!((node.host.as_str(), node.port), ("127.0.0.1", 6570));
        let node = advertised_node(1, "[::1]:7000".parse().expect("addr"), None);
        assert_eq!(node.host, "[::1]");
        let node = advertised_node(2, "127.0.0.1:7000".parse().expect("addr"), Some("hs.local"));
        assert_eq!(
            (node.id, node.host.as_str(), node.port),
            (2, "hs.local", 7000)
        );
    }

    #[test]
    fn the_ring_moves_only_what_the_changed_node_owned() {
        let resources: Vec<String> = (0..2000u64).map(|i| (1_000_000 + i).to_string()).collect();
        let three = Ring::new([100, 101, 102]);
        let two = Ring::new([100, 102]);
        let four = Ring::new([100, 101, 102, 103]);
        let mut owned = BTreeMap::<u32, usize>::new();
        for resource in &resources {
            let before = three.owner(resource).expect("owner");
            *owned.entry(before).or_default() += 1;
            let after_leave = two.owner(resource).expect("owner");
            if before != 101 {
                assert_eq!(
                    after_leave, before,
                    "{resource} moved though its node stayed"
                );
            } else {
                assert_ne!(after_leave, 101);
            }
            let after_join = four.owner(resource).expect("owner");
            assert!(
                after_join == before || after_join == 103,
                "{resource} moved between old nodes on a join"
            );
        }
        // Every node owns a fair part (a third would be 667).
        for (id, count) in owned {
            assert!(
                (400..=950).contains(&count),
                "node {id} owns {count} of 2000"
            );
        }
        assert_eq!(Ring::new([]).owner("1"), None);
    }
}
