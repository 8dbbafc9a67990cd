//! gRPC-level tests: a real server on 127.0.0.1:0, driven through the
//! generated tonic clients exactly as weir's sink and the official clients
//! drive HStreamDB.

mod append;
mod cluster;
mod faults;
mod read;
mod restart;
mod streams;
mod tls;

use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Code, Status};
use weir_devserver::{Config, DevServer};
use weir_proto::error_body::ErrorBody;
use weir_proto::pb::h_stream_api_client::HStreamApiClient;
use weir_proto::pb::{
    AppendRequest, AppendResponse, BatchedRecord, HStreamRecord, ListShardsRequest, Shard, Stream,
};
use weir_proto::record::{Compression, encode_batch, raw_record};

pub(crate) type Client = HStreamApiClient<Channel>;

/// A server on an ephemeral loopback port and a client connected to it.
pub(crate) async fn start(config: Config) -> (DevServer, Client) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port");
    let server = DevServer::start(listener, config)
        .await
        .expect("server starts");
    let client = connect(&server).await;
    (server, client)
}

pub(crate) async fn connect(server: &DevServer) -> Client {
    HStreamApiClient::connect(server.endpoint())
        .await
        .expect("client connects")
        .max_decoding_message_size(64 * 1024 * 1024)
}

/// The HStreamDB error body of a status, which must have `code`.
pub(crate) fn body(status: &Status, code: Code) -> ErrorBody {
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    ErrorBody::parse(status.message())
        .unwrap_or_else(|| panic!("status message is not a JSON body: {:?}", status.message()))
}

pub(crate) async fn create_stream(client: &mut Client, name: &str, shards: u32) -> Vec<Shard> {
    create_stream_with(client, name, shards, 0).await
}

pub(crate) async fn create_stream_with(
    client: &mut Client,
    name: &str,
    shards: u32,
    backlog_secs: u32,
) -> Vec<Shard> {
    client
        .create_stream(Stream {
            stream_name: name.into(),
            replication_factor: 1,
            backlog_duration: backlog_secs,
            shard_count: shards,
            creation_time: None,
        })
        .await
        .expect("stream created");
    client
        .list_shards(ListShardsRequest {
            stream_name: name.into(),
        })
        .await
        .expect("shards listed")
        .into_inner()
        .shards
}

pub(crate) fn raw_batch(payloads: &[&str], compression: Compression) -> BatchedRecord {
    let records: Vec<HStreamRecord> = payloads
        .iter()
        .map(|p| raw_record("key", p.as_bytes().to_vec()))
        .collect();
    encode_batch(records, compression).expect("batch encodes")
}

pub(crate) async fn append(
    client: &mut Client,
    stream: &str,
    shard_id: u64,
    batch: BatchedRecord,
) -> Result<AppendResponse, Status> {
    client
        .append(AppendRequest {
            stream_name: stream.into(),
            shard_id,
            records: Some(batch),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Retries `check` until it yields a value, failing after ten seconds.
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Awaits `future`, failing the test if it takes more than ten seconds.
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}
