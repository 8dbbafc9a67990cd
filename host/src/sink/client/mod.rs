//! weir's HStreamDB client: URLs, TLS, cluster discovery, pooled channels,
//! appends, stream administration and streaming reads.
//!
//! A [`Client`] is created without touching the network. The first call
//! that needs the cluster asks the seed servers of the URL (each in turn,
//! then the nodes it knew) for `DescribeCluster` and keeps the running
//! nodes; administrative calls go to any of them. Appends go to the node
//! `LookupShard` names for the shard. Shard maps, shard→node lookups and
//! channels are cached; a shard that vanished (the stream was deleted,
//! perhaps re-created with new shards) is found again by re-discovery, never
//! by a restart.
//!
//! Following the cluster: when an Append fails in a way that says the node
//! may not be the shard's owner any more (UNAVAILABLE, FAILED_PRECONDITION,
//! a timeout, a lost or refused connection), the shard's owner is forgotten
//! and looked up again before the caller's retry, and a node that cannot be
//! reached is dropped with its channels until discovery lists it again. An
//! owner the lookup still names but that cannot be reached (its TLS
//! certificate is not trusted, say) is stood in for by another running node:
//! HStreamDB appends at any node to the shared store, so the records still
//! land in their shard, in order. Each move is counted as a re-route, and
//! [`Client::cluster_view`] shows the nodes, their state and the shard→node
//! routes for the admin API and metrics.
//!
//! Each node gets a small pool of channels, each its own HTTP/2
//! connection, used round robin, so that concurrent appends do not all
//! queue on one connection. Every unary call has a deadline (the gRPC
//! timeout); opening a connection has its own (the connect timeout).
//!
//! The client is cheap to clone and safe to share between tasks.

mod connector;
mod error;
mod read;
mod tls;
mod url;

#[cfg(test)]
pub(crate) mod tests;

pub(crate) use error::ClientError;
pub(crate) use read::StreamReader;
pub use read::{ReadRecord, StartFrom, Until};
pub use tls::TlsOptions;
pub(crate) use url::{NodeAddr, ServerUrl};
pub(crate) use weir_proto::pb::{BatchedRecord, HStreamRecord, RecordId};
pub use weir_proto::record::Compression;

use connector::Dialer;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use tonic::transport::Channel;
use weir_proto::keyspace::{HashRange, ShardMap};
use weir_proto::pb;
use weir_proto::pb::h_stream_api_client::HStreamApiClient;

type Rpc = HStreamApiClient<Channel>;

/// The largest gRPC message the client accepts: reads may carry many
/// batches of up to HStreamDB's 1 MiB each.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How long a node that could not be reached is passed over for its shards'
/// appends before it is tried again.
const UNREACHABLE_RETRY: Duration = Duration::from_secs(3);

/// What the gRPC timeout bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    /// The whole call; the server is told the deadline too.
    Whole,
    /// Only the start of a server-streaming call: a follow lasts as long as
    /// the caller wants.
    StartOnly,
}

/// How the client connects; see [`Default`] for the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Used when the URL is `hstreams://` or `https://`.
    pub tls: TlsOptions,
    /// Channels (HTTP/2 connections) per server node; at least 1. Default 2.
    pub pool_size: usize,
    /// Deadline of each unary call. Default 30 s, as EMQX's `grpc_timeout`.
    pub grpc_timeout: Duration,
    /// Deadline for opening a connection, TLS handshake included. Default 10 s.
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            tls: TlsOptions::default(),
            pool_size: 2,
            grpc_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A stream as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub name: String,
    pub shards: u32,
    pub replication: u32,
    /// How long records are kept; zero keeps them forever.
    pub backlog: Duration,
    pub created: Option<SystemTime>,
}

impl From<pb::Stream> for StreamInfo {
    fn from(stream: pb::Stream) -> Self {
        StreamInfo {
            name: stream.stream_name,
            shards: stream.shard_count,
            replication: stream.replication_factor,
            backlog: Duration::from_secs(stream.backlog_duration.into()),
            created: stream
                .creation_time
                .and_then(|t| SystemTime::try_from(t).ok()),
        }
    }
}

/// One server node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: u32,
    /// The address the node advertises, which is what the client dials.
    pub addr: NodeAddr,
    pub running: bool,
    /// The state the cluster reports: `running`, `starting`, `unavailable`,
    /// `dead` (or `unknown`).
    pub state: &'static str,
}

/// A node as this client sees it: what the cluster says of it and whether
/// calls to it work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub id: u32,
    pub addr: NodeAddr,
    /// As the cluster reports it (see [`ClusterNode::state`]).
    pub state: &'static str,
    /// The last call at the node failed to reach it (connection, TLS,
    /// timeout); cleared by the next call that works.
    pub last_error: Option<String>,
}

/// Where a shard's appends go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRoute {
    pub stream: String,
    pub shard_id: u64,
    /// The node LookupShard names.
    pub owner: NodeAddr,
    /// Another node appending in the owner's place, while the owner cannot
    /// be reached.
    pub via: Option<NodeAddr>,
}

/// The cluster as the client knows it, for the admin API and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Every node of the last discovery, by id.
    pub nodes: Vec<NodeView>,
    /// The shards whose owner is known, by stream and shard.
    pub routes: Vec<ShardRoute>,
    /// Times a shard's appends moved to another node since the start.
    pub reroutes: u64,
}

/// The answer to `DescribeCluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The seed that answered.
    pub answered_by: NodeAddr,
    pub protocol_version: String,
    pub nodes: Vec<ClusterNode>,
}

impl Cluster {
    /// The addresses of the running nodes.
    pub fn running(&self) -> impl Iterator<Item = &NodeAddr> {
        self.nodes.iter().filter(|n| n.running).map(|n| &n.addr)
    }
}

/// The result of an append routed by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub shard_id: u64,
    /// One id per record, in order.
    pub ids: Vec<RecordId>,
}

/// A handle on one HStreamDB cluster. Clones share connections and caches.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    url: ServerUrl,
    pool_size: usize,
    grpc_timeout: Duration,
    connect_timeout: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
    state: Mutex<State>,
    /// Spreads administrative calls over the running nodes.
    next_node: AtomicUsize,
    /// Connections opened so far, reconnections included.
    connections_opened: Arc<AtomicU64>,
    /// Times a shard's appends moved to another node.
    reroutes: AtomicU64,
}

/// What the client has learnt about the cluster. Guarded by a plain mutex
/// that is never held across an await.
#[derive(Debug, Default)]
struct State {
    /// The running nodes from the last discovery; empty means "discover".
    nodes: Arc<[NodeAddr]>,
    pools: HashMap<NodeAddr, Arc<Pool>>,
    shards: HashMap<String, Arc<ShardMap>>,
    shard_nodes: HashMap<u64, NodeAddr>,
    /// Every node of the last discovery, as the cluster reported it.
    cluster: Vec<ClusterNode>,
    /// Nodes whose last call could not reach them, with the error and when;
    /// cleared by a call that works.
    unreachable: HashMap<NodeAddr, (String, Instant)>,
    /// Shards whose owner was forgotten after a failed append: the node
    /// they went to, to count a re-route once the new owner is known.
    moved_from: HashMap<u64, NodeAddr>,
}

impl State {
    /// The node to send a shard's appends to: its owner, or while the owner
    /// cannot be reached, a running node that can (HStreamDB appends at any
    /// node). `None` keeps the owner.
    fn stand_in(&self, owner: &NodeAddr) -> Option<NodeAddr> {
        if !self.is_unreachable(owner) {
            return None;
        }
        // Deterministic, so one shard's batches keep going to one node.
        self.nodes
            .iter()
            .find(|node| *node != owner && !self.is_unreachable(node))
            .cloned()
    }

    /// Whether a call at `addr` failed to reach it lately. The mark fades
    /// after [`UNREACHABLE_RETRY`], so a node that is back (or fixed) gets
    /// its shards again even when nothing else calls it.
    fn is_unreachable(&self, addr: &NodeAddr) -> bool {
        self.unreachable
            .get(addr)
            .is_some_and(|(_, at)| at.elapsed() < UNREACHABLE_RETRY)
    }
}

/// The channels of one node, used round robin.
#[derive(Debug)]
struct Pool {
    channels: Vec<Rpc>,
    next: AtomicUsize,
}

impl Pool {
    fn pick(&self) -> Rpc {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        self.channels[index].clone()
    }
}

impl Client {
    /// Creates a client. Reads the TLS files but opens no connection.
    pub fn new(url: ServerUrl, options: ClientOptions) -> Result<Self, ClientError> {
        let tls = if url.tls() {
            Some(tls::client_config(&options.tls)?)
        } else if options.tls.is_set() {
            return Err(ClientError::TlsSetup {
                file: None,
                problem: format!(
                    "TLS options were given but {url} is a plain URL; use hstreams:// for TLS"
                ),
            });
        } else {
            None
        };
        Ok(Client {
            inner: Arc::new(Inner {
                url,
                pool_size: options.pool_size.max(1),
                grpc_timeout: options.grpc_timeout,
                connect_timeout: options.connect_timeout,
                tls,
                state: Mutex::new(State::default()),
                next_node: AtomicUsize::new(0),
                connections_opened: Arc::new(AtomicU64::new(0)),
                reroutes: AtomicU64::new(0),
            }),
        })
    }

    pub fn url(&self) -> &ServerUrl {
        &self.inner.url
    }

    /// How many connections the client has opened, reconnections included
    /// (a figure for metrics: it grows when connections keep breaking).
    pub fn connections_opened(&self) -> u64 {
        self.inner.connections_opened.load(Ordering::Relaxed)
    }

    /// Echo at one server: the connection test of EMQX's dashboard. Fails
    /// unless the reply repeats `msg`.
    pub async fn echo_at(&self, addr: &NodeAddr, msg: &str) -> Result<(), ClientError> {
        let request = pb::EchoRequest { msg: msg.into() };
        let reply = self
            .call(
                addr,
                Deadline::Whole,
                || "Echo".into(),
                |mut rpc, r| async move { rpc.echo(r).await },
                request,
            )
            .await?;
        if reply.msg != msg {
            return Err(ClientError::Protocol {
                call: "Echo".into(),
                addr: addr.clone(),
                what: format!("sent {msg:?}, got back {:?}", reply.msg),
            });
        }
        Ok(())
    }

    /// Asks the seed servers, in order, to describe the cluster and
    /// remembers its running nodes for the calls that follow.
    pub async fn describe_cluster(&self) -> Result<Cluster, ClientError> {
        Ok(self.discover().await?.0)
    }

    /// [`Client::describe_cluster`], also returning the running nodes
    /// (never empty).
    async fn discover(&self) -> Result<(Cluster, Arc<[NodeAddr]>), ClientError> {
        let mut errors = Vec::new();
        // The seeds first, then the nodes known from earlier: a cluster
        // whose seeds have all gone is still found through its other nodes.
        let mut candidates: Vec<NodeAddr> = self.inner.url.seeds().to_vec();
        for node in &self.state().cluster {
            if node.running && !candidates.contains(&node.addr) {
                candidates.push(node.addr.clone());
            }
        }
        for seed in &candidates {
            let reply = self
                .call(
                    seed,
                    Deadline::Whole,
                    || "DescribeCluster".into(),
                    |mut rpc, r| async move { rpc.describe_cluster(r).await },
                    (),
                )
                .await;
            match reply {
                Ok(reply) => {
                    let cluster = cluster_from(seed, reply);
                    let running: Arc<[NodeAddr]> = cluster.running().cloned().collect();
                    if running.is_empty() {
                        return Err(ClientError::NoRunningNode { addr: seed.clone() });
                    }
                    tracing::debug!(seed = %seed, nodes = ?running, "discovered the cluster");
                    let mut state = self.state();
                    state.nodes = running.clone();
                    state.cluster = cluster.nodes.clone();
                    // A node that left takes its channels with it.
                    state.pools.retain(|addr, _| running.contains(addr));
                    state.unreachable.retain(|addr, _| running.contains(addr));
                    drop(state);
                    return Ok((cluster, running));
                }
                Err(error) => {
                    tracing::debug!(seed = %seed, %error, "seed did not describe the cluster");
                    errors.push(error);
                }
            }
        }
        match errors.len() {
            1 => Err(errors.remove(0)),
            _ => Err(ClientError::NoSeedAnswered { errors }),
        }
    }

    /// Creates a stream. `backlog` is how long records are kept (zero:
    /// forever), in whole seconds up to `u32::MAX` (136 years), beyond which
    /// it means the maximum.
    pub async fn create_stream(
        &self,
        name: &str,
        shards: u32,
        replication: u32,
        backlog: Duration,
    ) -> Result<StreamInfo, ClientError> {
        let request = pb::Stream {
            stream_name: name.into(),
            replication_factor: replication,
            backlog_duration: u32::try_from(backlog.as_secs()).unwrap_or(u32::MAX),
            shard_count: shards,
            creation_time: None,
        };
        let stream = self
            .any_node(
                || format!("CreateStream {name:?}"),
                |mut rpc, r| async move { rpc.create_stream(r).await },
                request,
            )
            .await?;
        Ok(stream.into())
    }

    /// Deletes a stream; with `ignore_missing`, a missing stream is not an
    /// error.
    pub async fn delete_stream(&self, name: &str, ignore_missing: bool) -> Result<(), ClientError> {
        let request = pb::DeleteStreamRequest {
            stream_name: name.into(),
            ignore_non_exist: ignore_missing,
            force: false,
        };
        let result = self
            .any_node(
                || format!("DeleteStream {name:?}"),
                |mut rpc, r| async move { rpc.delete_stream(r).await },
                request,
            )
            .await;
        self.invalidate(name);
        match result {
            Err(error) if error.is_stream_missing() && ignore_missing => Ok(()),
            other => other.map(drop).map_err(|e| stream_error(name, e)),
        }
    }

    /// The stream, or [`ClientError::StreamNotFound`].
    pub async fn get_stream(&self, name: &str) -> Result<StreamInfo, ClientError> {
        let request = pb::GetStreamRequest { name: name.into() };
        let (reply, addr) = self
            .any_node_at(
                Deadline::Whole,
                || format!("GetStream {name:?}"),
                |mut rpc, r| async move { rpc.get_stream(r).await },
                request,
            )
            .await
            .map_err(|e| stream_error(name, e))?;
        reply
            .stream
            .map(Into::into)
            .ok_or_else(|| ClientError::Protocol {
                call: format!("GetStream {name:?}"),
                addr,
                what: "the reply holds no stream".into(),
            })
    }

    /// Whether the stream exists (GetStream without "not found" as error).
    pub async fn stream_exists(&self, name: &str) -> Result<bool, ClientError> {
        match self.get_stream(name).await {
            Ok(_) => Ok(true),
            Err(error) if error.is_stream_missing() => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// All streams, sorted by name.
    pub async fn list_streams(&self) -> Result<Vec<StreamInfo>, ClientError> {
        let reply = self
            .any_node(
                || "ListStreams".into(),
                |mut rpc, r| async move { rpc.list_streams(r).await },
                pb::ListStreamsRequest {},
            )
            .await?;
        let mut streams: Vec<StreamInfo> = reply.streams.into_iter().map(Into::into).collect();
        streams.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(streams)
    }

    /// The active shards of a stream (cached until [`Client::invalidate`]).
    pub async fn shards(&self, stream: &str) -> Result<Arc<ShardMap>, ClientError> {
        if let Some(map) = self.state().shards.get(stream) {
            return Ok(map.clone());
        }
        let reply = self
            .any_node(
                || format!("ListShards of stream {stream:?}"),
                |mut rpc, r| async move { rpc.list_shards(r).await },
                pb::ListShardsRequest {
                    stream_name: stream.into(),
                },
            )
            .await;
        // HStreamDB answers ListShards of a missing stream with a plain
        // UNAVAILABLE; only GetStream says "not found" clearly.
        let shards = match reply {
            Ok(reply) => reply.shards,
            Err(
                error @ ClientError::Status {
                    code: tonic::Code::Unavailable | tonic::Code::NotFound,
                    ..
                },
            ) => {
                return Err(match self.stream_exists(stream).await {
                    Ok(false) => ClientError::StreamNotFound {
                        stream: stream.into(),
                    },
                    _ => stream_error(stream, error),
                });
            }
            Err(error) => return Err(error),
        };
        let map = shard_map(stream, shards)?;
        if map.is_empty() {
            return Err(match self.stream_exists(stream).await? {
                false => ClientError::StreamNotFound {
                    stream: stream.into(),
                },
                true => ClientError::NoShards {
                    stream: stream.into(),
                },
            });
        }
        let map = Arc::new(map);
        self.state().shards.insert(stream.into(), map.clone());
        Ok(map)
    }

    /// The shard that owns `key` in `stream`.
    pub async fn shard_for_key(&self, stream: &str, key: &str) -> Result<u64, ClientError> {
        let map = self.shards(stream).await?;
        route(stream, &map, key)
    }

    /// Forgets what is known of a stream's shards, so the next call that
    /// needs them asks the server again.
    pub fn invalidate(&self, stream: &str) {
        let mut state = self.state();
        if let Some(map) = state.shards.remove(stream) {
            for id in map.shard_ids() {
                state.shard_nodes.remove(&id);
            }
        }
    }

    /// Appends `records` to one shard as one batch and returns their ids,
    /// one per record, in order.
    pub async fn append(
        &self,
        stream: &str,
        shard_id: u64,
        records: Vec<HStreamRecord>,
        compression: Compression,
    ) -> Result<Vec<RecordId>, ClientError> {
        let batch =
            weir_proto::record::encode_batch(records, compression).map_err(ClientError::Encode)?;
        self.append_batch(stream, shard_id, batch).await
    }

    /// Appends `records` to the shard that owns `key` (normally the records'
    /// own partition key). When the shard has vanished, the shards are
    /// discovered again and the append is retried once on the key's new
    /// shard; an unchanged layout returns the first error, for the caller's
    /// own retry policy.
    pub async fn append_by_key(
        &self,
        stream: &str,
        key: &str,
        records: Vec<HStreamRecord>,
        compression: Compression,
    ) -> Result<Appended, ClientError> {
        let batch =
            weir_proto::record::encode_batch(records, compression).map_err(ClientError::Encode)?;
        let map = self.shards(stream).await?;
        let shard_id = route(stream, &map, key)?;
        let error = match self.append_batch(stream, shard_id, batch.clone()).await {
            Ok(ids) => return Ok(Appended { shard_id, ids }),
            Err(error) if error.is_shard_gone() || error.is_stream_missing() => error,
            Err(error) => return Err(error),
        };
        tracing::info!(stream, shard_id, %error, "shard gone; discovering the stream's shards again");
        self.invalidate_if_current(stream, &map);
        let new_shard = self.shard_for_key(stream, key).await?;
        if new_shard == shard_id {
            return Err(error);
        }
        let ids = self.append_batch(stream, new_shard, batch).await?;
        Ok(Appended {
            shard_id: new_shard,
            ids,
        })
    }

    /// Follows a stream from its earliest or latest record.
    pub async fn read_stream(
        &self,
        stream: &str,
        from: StartFrom,
    ) -> Result<StreamReader, ClientError> {
        self.read_stream_until(stream, from, Until::Follow).await
    }

    /// Every record stored in `stream` when the call starts, oldest first.
    pub async fn read_stored(&self, stream: &str) -> Result<Vec<ReadRecord>, ClientError> {
        let mut reader = self
            .read_stream_until(stream, StartFrom::Earliest, Until::Latest)
            .await?;
        let mut records = Vec::new();
        while let Some(record) = reader.next().await? {
            records.push(record);
        }
        Ok(records)
    }

    /// Reads a stream from `from`, following it or stopping at its tail.
    pub async fn read_stream_until(
        &self,
        stream: &str,
        from: StartFrom,
        until: Until,
    ) -> Result<StreamReader, ClientError> {
        let (responses, addr) = self
            .any_node_at(
                Deadline::StartOnly,
                || format!("ReadStream of stream {stream:?}"),
                |mut rpc, r| async move { rpc.read_stream(r).await },
                read::request(stream, from, until),
            )
            .await
            .map_err(|e| stream_error(stream, e))?;
        Ok(StreamReader::new(
            stream.into(),
            addr,
            self.inner.grpc_timeout,
            responses,
        ))
    }

    /// Appends an already encoded batch (see
    /// [`weir_proto::record::encode_batch`]) to one shard: for callers that
    /// check a batch's size before sending it, or retry without encoding
    /// again.
    pub async fn append_batch(
        &self,
        stream: &str,
        shard_id: u64,
        batch: BatchedRecord,
    ) -> Result<Vec<RecordId>, ClientError> {
        let addr = self.append_target(shard_id).await?;
        let count = batch.batch_size as usize;
        let call = || format!("{} to stream {stream:?} shard {shard_id}", error::APPEND);
        let request = pb::AppendRequest {
            stream_name: stream.into(),
            shard_id,
            records: Some(batch),
        };
        let reply = self
            .call(
                &addr,
                Deadline::Whole,
                call,
                |mut rpc, r| async move { rpc.append(r).await },
                request,
            )
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                self.after_failed_append(shard_id, &addr, &error);
                return Err(error);
            }
        };
        if reply.record_ids.len() != count {
            return Err(ClientError::Protocol {
                call: call(),
                addr,
                what: format!("{} record ids for {count} records", reply.record_ids.len()),
            });
        }
        Ok(reply.record_ids)
    }

    /// Where the shard's next append goes: its owner, or a stand-in while
    /// the owner cannot be reached.
    async fn append_target(&self, shard_id: u64) -> Result<NodeAddr, ClientError> {
        let owner = self.shard_node(shard_id).await?;
        let state = self.state();
        Ok(state.stand_in(&owner).unwrap_or(owner))
    }

    /// Re-learns what a failed append says may have changed: the shard's
    /// owner (for every failure that can mean "not here any more"), and the
    /// node itself when it cannot be reached.
    fn after_failed_append(&self, shard_id: u64, addr: &NodeAddr, error: &ClientError) {
        let node_gone = matches!(
            error,
            ClientError::Unreachable { .. }
                | ClientError::ConnectionLost { .. }
                | ClientError::TlsHandshake { .. }
        );
        let owner_may_have_moved = node_gone
            || matches!(error, ClientError::Timeout { .. })
            || matches!(
                error,
                ClientError::Status {
                    code: tonic::Code::Unavailable | tonic::Code::FailedPrecondition,
                    ..
                }
            );
        if node_gone {
            self.forget_node(addr);
        } else if owner_may_have_moved {
            let mut state = self.state();
            if let Some(owner) = state.shard_nodes.remove(&shard_id) {
                state.moved_from.entry(shard_id).or_insert(owner);
            }
            if matches!(error, ClientError::Timeout { .. }) {
                state.nodes = Arc::from([]);
            }
        }
    }

    /// The node owning a shard (cached).
    async fn shard_node(&self, shard_id: u64) -> Result<NodeAddr, ClientError> {
        if let Some(addr) = self.state().shard_nodes.get(&shard_id) {
            return Ok(addr.clone());
        }
        let (reply, answered_by) = self
            .any_node_at(
                Deadline::Whole,
                || format!("LookupShard {shard_id}"),
                |mut rpc, r| async move { rpc.lookup_shard(r).await },
                pb::LookupShardRequest { shard_id },
            )
            .await?;
        let addr = reply
            .server_node
            .as_ref()
            .and_then(node_addr)
            .ok_or_else(|| ClientError::Protocol {
                call: format!("LookupShard {shard_id}"),
                addr: answered_by,
                what: format!("no usable server node in {:?}", reply.server_node),
            })?;
        let mut state = self.state();
        if let Some(before) = state.moved_from.remove(&shard_id)
            && before != addr
        {
            self.inner.reroutes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(shard_id, from = %before, to = %addr, "shard moved to another node; appends follow it");
        }
        state.shard_nodes.insert(shard_id, addr.clone());
        Ok(addr)
    }

    /// The cluster as this client knows it: nodes, their state and the
    /// shard→node routes (no network call).
    pub fn cluster_view(&self) -> ClusterView {
        let guard = self.state();
        let state: &State = &guard;
        let nodes = state
            .cluster
            .iter()
            .map(|node| NodeView {
                id: node.id,
                addr: node.addr.clone(),
                state: node.state,
                last_error: state.unreachable.get(&node.addr).map(|(e, _)| e.clone()),
            })
            .collect();
        let mut routes: Vec<ShardRoute> = state
            .shards
            .iter()
            .flat_map(|(stream, map)| {
                map.shard_ids().filter_map(move |shard_id| {
                    let owner = state.shard_nodes.get(&shard_id)?;
                    Some(ShardRoute {
                        stream: stream.clone(),
                        shard_id,
                        owner: owner.clone(),
                        via: state.stand_in(owner),
                    })
                })
            })
            .collect();
        routes.sort_by(|a, b| (&a.stream, a.shard_id).cmp(&(&b.stream, b.shard_id)));
        ClusterView {
            nodes,
            routes,
            reroutes: self.inner.reroutes.load(Ordering::Relaxed),
        }
    }

    /// The running nodes, discovering them when unknown.
    /// Never empty: discovery fails rather than find no running node.
    async fn nodes(&self) -> Result<Arc<[NodeAddr]>, ClientError> {
        let nodes = self.state().nodes.clone();
        if !nodes.is_empty() {
            return Ok(nodes);
        }
        Ok(self.discover().await?.1)
    }

    /// Runs an administrative call on a running node, moving on to the next
    /// one when a node cannot be reached (the call then surely did not run).
    async fn any_node<Req, T, F, Fut>(
        &self,
        call: impl Fn() -> String,
        send: F,
        request: Req,
    ) -> Result<T, ClientError>
    where
        Req: Clone,
        F: Fn(Rpc, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        Ok(self
            .any_node_at(Deadline::Whole, call, send, request)
            .await?
            .0)
    }

    /// [`Client::any_node`], also saying which node answered.
    async fn any_node_at<Req, T, F, Fut>(
        &self,
        deadline: Deadline,
        call: impl Fn() -> String,
        send: F,
        request: Req,
    ) -> Result<(T, NodeAddr), ClientError>
    where
        Req: Clone,
        F: Fn(Rpc, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let nodes = self.nodes().await?;
        let start = self.inner.next_node.fetch_add(1, Ordering::Relaxed);
        // Nodes known to be unreachable are tried last.
        let mut order: Vec<&NodeAddr> = (0..nodes.len())
            .map(|i| &nodes[(start + i) % nodes.len()])
            .collect();
        {
            let state = self.state();
            order.sort_by_key(|addr| state.is_unreachable(addr));
        }
        let mut last_error = None;
        for addr in order {
            match self
                .call(addr, deadline, &call, &send, request.clone())
                .await
            {
                // Neither ran the call: another node can.
                Err(
                    error @ (ClientError::Unreachable { .. } | ClientError::TlsHandshake { .. }),
                ) => {
                    tracing::debug!(%error, "trying the next node");
                    last_error = Some(error);
                }
                other => return other.map(|value| (value, addr.clone())),
            }
        }
        // Every known node is unreachable: discover again next time.
        self.state().nodes = Arc::from([]);
        Err(last_error.unwrap_or(ClientError::NoRunningNode {
            addr: self.inner.url.seeds()[0].clone(),
        }))
    }

    /// Runs one call at `addr` under the gRPC timeout.
    async fn call<Req, T, F, Fut>(
        &self,
        addr: &NodeAddr,
        deadline: Deadline,
        call: impl FnOnce() -> String,
        send: F,
        request: Req,
    ) -> Result<T, ClientError>
    where
        F: FnOnce(Rpc, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let timeout = self.inner.grpc_timeout;
        let mut request = tonic::Request::new(request);
        if deadline == Deadline::Whole {
            // Tell the server too, so it can give up on a call nobody awaits.
            request.set_timeout(timeout);
        }
        let rpc = self.rpc(addr)?;
        let result = match tokio::time::timeout(timeout, send(rpc, request)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(ClientError::from_status(call(), addr, timeout, status)),
            Err(_) => Err(ClientError::Timeout {
                call: call(),
                addr: addr.clone(),
                after: timeout,
            }),
        };
        self.note_reachability(addr, result.as_ref().err());
        result
    }

    /// Keeps, per node, whether its last call reached it.
    fn note_reachability(&self, addr: &NodeAddr, error: Option<&ClientError>) {
        let unreachable = error.filter(|error| {
            matches!(
                error,
                ClientError::Unreachable { .. }
                    | ClientError::ConnectionLost { .. }
                    | ClientError::TlsHandshake { .. }
                    | ClientError::Timeout { .. }
            )
        });
        let mut state = self.state();
        match unreachable {
            Some(error) => {
                let text = error.to_string();
                let marked = (text.clone(), Instant::now());
                if state.unreachable.insert(addr.clone(), marked).is_none() {
                    tracing::warn!(node = %addr, error = %text, "a HStreamDB node cannot be reached; its appends go through another node");
                }
            }
            None => {
                if state.unreachable.remove(addr).is_some() {
                    tracing::info!(node = %addr, "a HStreamDB node is reachable again");
                }
            }
        }
    }

    /// A channel to `addr` from its pool, creating the pool on first use.
    fn rpc(&self, addr: &NodeAddr) -> Result<Rpc, ClientError> {
        let mut state = self.state();
        if let Some(pool) = state.pools.get(addr) {
            return Ok(pool.pick());
        }
        let channels = (0..self.inner.pool_size)
            .map(|_| {
                let dialer = Dialer {
                    addr: addr.clone(),
                    tls: self.inner.tls.clone(),
                    connect_timeout: self.inner.connect_timeout,
                    opened: self.inner.connections_opened.clone(),
                };
                let channel = dialer.lazy_channel().map_err(|e| ClientError::from(&e))?;
                Ok(HStreamApiClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES))
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        let pool = Arc::new(Pool {
            channels,
            next: AtomicUsize::new(0),
        });
        state.pools.insert(addr.clone(), pool.clone());
        Ok(pool.pick())
    }

    /// After a connection failure: drop the node's channels (a node that
    /// comes back gets new ones), and look up its shards and the cluster
    /// again.
    fn forget_node(&self, addr: &NodeAddr) {
        let mut state = self.state();
        state.pools.remove(addr);
        let State {
            shard_nodes,
            moved_from,
            ..
        } = &mut *state;
        shard_nodes.retain(|shard_id, node| {
            if node == addr {
                moved_from.entry(*shard_id).or_insert_with(|| node.clone());
                false
            } else {
                true
            }
        });
        state.nodes = Arc::from([]);
    }

    /// Drops the cached shards of `stream` if they are still `map`, so that
    /// tasks failing on the same stale map re-discover once, not once each.
    pub fn invalidate_if_current(&self, stream: &str, map: &Arc<ShardMap>) {
        let current = self.state().shards.get(stream).cloned();
        if current.is_some_and(|current| Arc::ptr_eq(&current, map)) {
            self.invalidate(stream);
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, and the state stays
        // consistent at every step, so a poisoned lock is still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Replaces a "stream not found" server error by the clearer
/// [`ClientError::StreamNotFound`].
fn stream_error(stream: &str, error: ClientError) -> ClientError {
    if error.is_stream_missing() {
        ClientError::StreamNotFound {
            stream: stream.into(),
        }
    } else {
        error
    }
}

fn route(stream: &str, map: &ShardMap, key: &str) -> Result<u64, ClientError> {
    map.shard_for_key(key)
        .ok_or_else(|| ClientError::NoShardForKey {
            stream: stream.into(),
            key: key.into(),
        })
}

/// Builds the key→shard map from the active shards of a ListShards reply
/// (inactive shards are ignored, as EMQX's client does).
fn shard_map(stream: &str, shards: Vec<pb::Shard>) -> Result<ShardMap, ClientError> {
    let bad = |source| ClientError::BadShards {
        stream: stream.into(),
        source,
    };
    let ranges = shards
        .into_iter()
        .filter(|shard| shard.is_active)
        .map(|shard| {
            HashRange::parse(&shard.start_hash_range_key, &shard.end_hash_range_key)
                .map(|range| (range, shard.shard_id))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    ShardMap::new(ranges).map_err(bad)
}

/// The address of an advertised node. An IPv6 host may come bracketed (as
/// weir's devserver sends it) or bare (as HStreamDB does).
fn node_addr(node: &pb::ServerNode) -> Option<NodeAddr> {
    let port = u16::try_from(node.port).ok().filter(|p| *p != 0)?;
    let host = node.host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then(|| NodeAddr::new(host, port))
}

/// Reads a DescribeCluster reply. A node counts as running when its status
/// says Running; a server that sends no statuses lists only live nodes.
fn cluster_from(seed: &NodeAddr, reply: pb::DescribeClusterResponse) -> Cluster {
    let from_status = !reply.server_nodes_status.is_empty();
    let nodes = if from_status {
        reply
            .server_nodes_status
            .iter()
            .filter_map(|status| {
                let node = status.node.as_ref()?;
                Some((node, status.state))
            })
            .collect::<Vec<_>>()
    } else {
        reply
            .server_nodes
            .iter()
            .map(|node| (node, pb::NodeState::Running as i32))
            .collect()
    };
    let nodes = nodes
        .into_iter()
        .filter_map(|(node, state)| {
            let running = state == pb::NodeState::Running as i32;
            let state = match pb::NodeState::try_from(state) {
                Ok(pb::NodeState::Starting) => "starting",
                Ok(pb::NodeState::Running) => "running",
                Ok(pb::NodeState::Unavailable) => "unavailable",
                Ok(pb::NodeState::Dead) => "dead",
                Err(_) => "unknown",
            };
            let addr = node_addr(node);
            if addr.is_none() {
                tracing::warn!(seed = %seed, ?node, "ignoring a node with no usable address");
            }
            Some(ClusterNode {
                id: node.id,
                addr: addr?,
                running,
                state,
            })
        })
        .collect();
    Cluster {
        answered_by: seed.clone(),
        protocol_version: reply.protocol_version,
        nodes,
    }
}
