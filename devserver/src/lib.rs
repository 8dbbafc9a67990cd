//! weir's HStreamDB-compatible development server.
//!
//! Real HStreamDB cannot run where weir is developed and tested, so this
//! crate serves `hstream.server.HStreamApi` itself, behaving like HStreamDB on
//! the wire (status codes, JSON error bodies, record ids, advertised address)
//! for the RPCs weir and the official clients use: streams, shards, lookups,
//! appends, shard readers and streaming reads. It also serves
//! `weir.devserver.v1.FaultControl` and `ClusterControl` on the same port, so
//! a test can make Appends fail or slow down, or stop, start and add nodes,
//! in a server running in another process.
//!
//! Use [`serve`] to run until a shutdown future completes, [`DevServer`] to
//! run one node in the background of the current process and stop and start
//! again (`weir dev`, tests), or [`DevCluster`] for several nodes sharing one
//! store (`weir devserver --nodes N`), as HStreamDB's nodes share LogDevice.
//!
//! Where it differs from HStreamDB, on purpose:
//! - Every Append batch is decompressed and decoded; a corrupt batch or a
//!   `batchSize` that does not match the records inside is rejected with
//!   INVALID_ARGUMENT (`DecodeHStreamRecordErr`). HStreamDB stores batches
//!   unread.
//! - ReadShard returns as soon as any batch is available; LogDevice may wait
//!   for `maxRecords` batches until the reader's timeout.
//! - Timestamp offsets are always exact (`strictAccuracy` is implied).
//! - CreateShardReader and ReadShardStream check that the shard belongs to
//!   the named stream; HStreamDB only checks that the shard exists.
//! - INVALID_ARGUMENT bodies for an empty batch (206) carry the reason in
//!   `extra` where HStreamDB sends `null`.
//! - Subscriptions, queries, connectors and the other RPCs weir does not use
//!   are not served (UNIMPLEMENTED); shard readers live in memory only.
//! - Appends are taken by any node, as in HStreamDB, unless the cluster is
//!   started with `strict_ownership`: then a node that does not own the shard
//!   answers FAILED_PRECONDITION (WrongServer), which HStreamDB only does for
//!   shard readers and subscriptions.
//! - A stopped node is reported Dead in DescribeCluster at once; HStreamDB's
//!   gossip takes a while to notice.
//! - An IPv6 listener address is advertised in brackets (`[::1]`), so the
//!   `host:port` that clients build from it parses.
//!
//! Module map: `store` (streams, shards and batches; persistence),
//! `log_file` (on-disk framing and crash recovery), `service` (the gRPC
//! handlers and their errors), `control` (fault injection), `tls`, `cluster`
//! (nodes, the hash ring, node control, lifecycle), `server` (the one-node
//! shapes).

mod cluster;
mod control;
mod error;
mod log_file;
mod server;
mod service;
mod store;
mod tls;

pub use cluster::{ClusterConfig, DevCluster, NodeConfig, NodeInfo};
pub use error::Error;
pub use server::{DevServer, serve};

use std::path::PathBuf;

/// HStreamDB's default `max-record-size`: the largest Append payload.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;

/// How to run the server. `Config::default()` is an in-memory, plaintext
/// server advertising its listener's address with HStreamDB's 1 MiB limit.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Where streams and records are kept across restarts; `None` keeps
    /// everything in memory.
    pub data_dir: Option<PathBuf>,
    /// Serve TLS (and require client certificates when a CA is given).
    pub tls: Option<TlsConfig>,
    /// The host clients are told to dial (with the listener's real port);
    /// `None` advertises the listener's IP (127.0.0.1 for an unspecified
    /// address such as 0.0.0.0).
    pub advertised_host: Option<String>,
    /// The largest Append payload in bytes; 0 means
    /// [`DEFAULT_MAX_RECORD_BYTES`].
    pub max_record_bytes: usize,
    /// Also fsync every appended batch before answering. Without it a batch
    /// is written (to the OS) before the answer, which survives a crash of
    /// the server but not of the machine.
    pub fsync: bool,
}

/// PEM files for serving TLS.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
}
