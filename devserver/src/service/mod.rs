//! The `hstream.server.HStreamApi` gRPC handlers: request validation as
//! HStreamDB does it, the calls into the store, and the replies.
//!
//! Every node of a cluster runs these handlers over the shared store.
//! Lookups (LookupShard, LookupResource, LookupKey, LookupShardReader)
//! answer with the owner on the cluster's hash ring, whichever node is
//! asked; Append and reads work at any node, as in HStreamDB, unless the
//! cluster has `strict_ownership`.
//!
//! Names of streams and shard readers follow HStreamDB's rule: 1 to 255
//! characters, the first a letter, the rest letters, digits, `-` or `_`
//! (Unicode letters and digits count, as in HStreamDB).

pub(crate) mod error;
pub(crate) mod read;

use crate::cluster::Shared;
use crate::control::Faults;
use crate::store::{NewStream, Store, Stream as StoredStream};
use error::ApiError;
use read::{Offset, ReadContext, Readers};
use std::sync::Arc;
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use weir_proto::pb::h_stream_api_server::HStreamApi;
use weir_proto::pb::*;
use weir_proto::record::decode_batch;

#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) store: Arc<Store>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) readers: Arc<Readers>,
    pub(crate) cluster: Arc<Shared>,
    /// The node these handlers serve as.
    pub(crate) node: ServerNode,
    pub(crate) max_record_bytes: usize,
    pub(crate) max_decoded_bytes: usize,
    pub(crate) stop: watch::Receiver<bool>,
}

/// Checks a stream or shard reader name against HStreamDB's rule.
fn validate_name(name: &str, code: ErrorCode) -> Result<(), ApiError> {
    let invalid = |reason: String| Err(ApiError::InvalidIdentifier { code, reason });
    let length = name.chars().count();
    if !(1..=255).contains(&length) {
        return invalid("The length must be between 1 and 255 characters.".into());
    }
    if !name.chars().next().is_some_and(char::is_alphabetic) {
        return invalid("The first character of a name must be a letter".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || *c == '-' || *c == '_'))
    {
        return invalid(format!("Illegal character '{c}' found"));
    }
    Ok(())
}

fn stream_reply(stream: &StoredStream) -> Stream {
    Stream {
        stream_name: stream.name.clone(),
        replication_factor: stream.replication_factor,
        backlog_duration: stream.backlog_secs,
        shard_count: u32::try_from(stream.shards.len()).unwrap_or(u32::MAX),
        creation_time: Some(read::timestamp(stream.creation_ms)),
    }
}

/// Runs blocking store work (file writes, decompression) off the async
/// threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("a store task failed: {e}")))?
}

impl Service {
    /// The owner of a resource on the ring. The node answering is running,
    /// so the ring is never empty; should it be, the node answers for itself.
    fn owner(&self, resource: &str) -> ServerNode {
        self.cluster
            .owner(resource)
            .unwrap_or_else(|| self.node.clone())
    }

    fn read_context(&self) -> ReadContext {
        ReadContext {
            store: self.store.clone(),
            stop: self.stop.clone(),
        }
    }

    /// Checks an Append's batch the way HStreamDB does (206, 207). The
    /// handler then also decodes it, which HStreamDB does not: weir's tests
    /// want a broken batch caught where it is sent.
    fn check_batch(&self, batch: Option<&BatchedRecord>) -> Result<(), ApiError> {
        let batch = batch.ok_or(ApiError::EmptyBatchedRecord("the request has no records"))?;
        if batch.batch_size == 0 {
            return Err(ApiError::EmptyBatchedRecord("batchSize is 0"));
        }
        if batch.payload.is_empty() {
            return Err(ApiError::EmptyBatchedRecord("the payload is empty"));
        }
        if batch.payload.len() > self.max_record_bytes {
            return Err(ApiError::InvalidRecordSize(batch.payload.len()));
        }
        Ok(())
    }
}

type ResponseStream<T> = ReceiverStream<Result<T, Status>>;

#[tonic::async_trait]
impl HStreamApi for Service {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        Ok(Response::new(EchoResponse {
            msg: request.into_inner().msg,
        }))
    }

    async fn create_stream(&self, request: Request<Stream>) -> Result<Response<Stream>, Status> {
        let wanted = request.into_inner();
        validate_name(
            &wanted.stream_name,
            ErrorCode::StreamInvalidObjectIdentifier,
        )?;
        if wanted.replication_factor == 0 {
            return Err(ApiError::InvalidReplicaFactor.into());
        }
        if wanted.shard_count == 0 {
            return Err(ApiError::InvalidShardCount.into());
        }
        let store = self.store.clone();
        let spec = NewStream {
            name: wanted.stream_name,
            replication_factor: wanted.replication_factor,
            backlog_secs: wanted.backlog_duration,
            shard_count: wanted.shard_count,
        };
        let stream = blocking(move || Ok(store.create_stream(spec)?)).await?;
        tracing::info!(
            stream = %stream.name,
            shards = ?stream.shards.iter().map(|s| s.id).collect::<Vec<_>>(),
            backlog_secs = stream.backlog_secs,
            "stream created"
        );
        Ok(Response::new(stream_reply(&stream)))
    }

    async fn delete_stream(
        &self,
        request: Request<DeleteStreamRequest>,
    ) -> Result<Response<()>, Status> {
        let request = request.into_inner();
        validate_name(
            &request.stream_name,
            ErrorCode::StreamInvalidObjectIdentifier,
        )?;
        let store = self.store.clone();
        let name = request.stream_name.clone();
        let existed = blocking(move || Ok(store.delete_stream(&name)?)).await?;
        if existed {
            tracing::info!(stream = %request.stream_name, "stream deleted");
        } else if !request.ignore_non_exist {
            return Err(ApiError::StreamNotFound(request.stream_name).into());
        }
        Ok(Response::new(()))
    }

    async fn get_stream(
        &self,
        request: Request<GetStreamRequest>,
    ) -> Result<Response<GetStreamResponse>, Status> {
        let name = request.into_inner().name;
        let stream = self
            .store
            .stream(&name)
            .ok_or(ApiError::StreamNotFound(name))?;
        Ok(Response::new(GetStreamResponse {
            stream: Some(stream_reply(&stream)),
        }))
    }

    async fn list_streams(
        &self,
        _request: Request<ListStreamsRequest>,
    ) -> Result<Response<ListStreamsResponse>, Status> {
        Ok(Response::new(ListStreamsResponse {
            streams: self
                .store
                .streams("")
                .iter()
                .map(|s| stream_reply(s))
                .collect(),
        }))
    }

    async fn list_streams_with_prefix(
        &self,
        request: Request<ListStreamsWithPrefixRequest>,
    ) -> Result<Response<ListStreamsResponse>, Status> {
        let prefix = request.into_inner().prefix;
        Ok(Response::new(ListStreamsResponse {
            streams: self
                .store
                .streams(&prefix)
                .iter()
                .map(|s| stream_reply(s))
                .collect(),
        }))
    }

    async fn append(
        &self,
        request: Request<AppendRequest>,
    ) -> Result<Response<AppendResponse>, Status> {
        self.faults.before_append().await?;
        let request = request.into_inner();
        if self.cluster.strict_ownership {
            let owner = self.cluster.owner_id(&request.shard_id.to_string());
            if owner.is_some_and(|owner| owner != self.node.id) {
                return Err(ApiError::WrongServer(format!(
                    "shard {} is served by node {}, not node {}",
                    request.shard_id,
                    owner.unwrap_or_default(),
                    self.node.id
                ))
                .into());
            }
        }
        self.check_batch(request.records.as_ref())?;
        let AppendRequest {
            stream_name,
            shard_id,
            records,
        } = request;
        let batch = records.unwrap_or_default();
        let store = self.store.clone();
        let max_decoded = self.max_decoded_bytes;
        let name = stream_name.clone();
        let stored = blocking(move || {
            decode_batch(&batch, max_decoded).map_err(|e| ApiError::DecodeRecord(e.to_string()))?;
            Ok(store.append(&name, shard_id, &batch)?)
        })
        .await?;
        tracing::debug!(
            stream = %stream_name,
            shard = shard_id,
            batch_id = stored.batch_id,
            records = stored.batch_size,
            bytes = stored.payload.len(),
            "appended"
        );
        let record_ids = (0..stored.batch_size)
            .map(|batch_index| RecordId {
                shard_id,
                batch_id: stored.batch_id,
                batch_index,
            })
            .collect();
        Ok(Response::new(AppendResponse {
            stream_name,
            shard_id,
            record_ids,
        }))
    }

    async fn list_shards(
        &self,
        request: Request<ListShardsRequest>,
    ) -> Result<Response<ListShardsResponse>, Status> {
        let name = request.into_inner().stream_name;
        // HStreamDB lets the store's NOTFOUND through as UNAVAILABLE here.
        let stream = self.store.stream(&name).ok_or_else(|| {
            ApiError::Unavailable(format!("NOTFOUND: stream {name} does not exist"))
        })?;
        let shards = stream
            .shards
            .iter()
            .map(|shard| {
                let (start, end) = shard.range.to_wire();
                Shard {
                    stream_name: stream.name.clone(),
                    shard_id: shard.id,
                    start_hash_range_key: start,
                    end_hash_range_key: end,
                    epoch: shard.epoch,
                    is_active: true,
                }
            })
            .collect();
        Ok(Response::new(ListShardsResponse { shards }))
    }

    async fn lookup_shard(
        &self,
        request: Request<LookupShardRequest>,
    ) -> Result<Response<LookupShardResponse>, Status> {
        let shard_id = request.into_inner().shard_id;
        Ok(Response::new(LookupShardResponse {
            shard_id,
            server_node: Some(self.owner(&shard_id.to_string())),
        }))
    }

    async fn lookup_resource(
        &self,
        request: Request<LookupResourceRequest>,
    ) -> Result<Response<ServerNode>, Status> {
        let request = request.into_inner();
        let res_type = request.res_type;
        ResourceType::try_from(res_type).map_err(|_| ApiError::InvalidResourceType(res_type))?;
        Ok(Response::new(self.owner(&request.res_id)))
    }

    async fn lookup_key(
        &self,
        request: Request<LookupKeyRequest>,
    ) -> Result<Response<ServerNode>, Status> {
        Ok(Response::new(
            self.owner(&request.into_inner().partition_key),
        ))
    }

    async fn describe_cluster(
        &self,
        _request: Request<()>,
    ) -> Result<Response<DescribeClusterResponse>, Status> {
        Ok(Response::new(self.cluster.describe()))
    }

    async fn create_shard_reader(
        &self,
        request: Request<CreateShardReaderRequest>,
    ) -> Result<Response<CreateShardReaderResponse>, Status> {
        let request = request.into_inner();
        validate_name(
            &request.reader_id,
            ErrorCode::ShardReaderInvalidObjectIdentifier,
        )?;
        validate_name(
            &request.stream_name,
            ErrorCode::StreamInvalidObjectIdentifier,
        )?;
        let offset = Offset::from_shard(request.shard_offset.as_ref())?
            .ok_or_else(|| ApiError::InvalidShardOffset("Invalid shard offset".into()))?;
        self.readers.create(
            &self.store,
            &request.reader_id,
            &request.stream_name,
            request.shard_id,
            offset,
            request.timeout,
        )?;
        tracing::info!(
            reader = %request.reader_id,
            stream = %request.stream_name,
            shard = request.shard_id,
            ?offset,
            "shard reader created"
        );
        Ok(Response::new(CreateShardReaderResponse {
            stream_name: request.stream_name,
            shard_id: request.shard_id,
            shard_offset: request.shard_offset,
            reader_id: request.reader_id,
            timeout: request.timeout,
        }))
    }

    async fn lookup_shard_reader(
        &self,
        request: Request<LookupShardReaderRequest>,
    ) -> Result<Response<LookupShardReaderResponse>, Status> {
        let reader_id = request.into_inner().reader_id;
        Ok(Response::new(LookupShardReaderResponse {
            server_node: Some(self.owner(&reader_id)),
            reader_id,
        }))
    }

    async fn read_shard(
        &self,
        request: Request<ReadShardRequest>,
    ) -> Result<Response<ReadShardResponse>, Status> {
        let request = request.into_inner();
        let received_records = self
            .readers
            .read(
                &self.read_context(),
                &request.reader_id,
                request.max_records,
            )
            .await?;
        Ok(Response::new(ReadShardResponse { received_records }))
    }

    async fn list_shard_readers(
        &self,
        _request: Request<ListShardReadersRequest>,
    ) -> Result<Response<ListShardReadersResponse>, Status> {
        Ok(Response::new(ListShardReadersResponse {
            reader_id: self.readers.ids(),
        }))
    }

    async fn delete_shard_reader(
        &self,
        request: Request<DeleteShardReaderRequest>,
    ) -> Result<Response<()>, Status> {
        let id = request.into_inner().reader_id;
        self.readers.delete(&id)?;
        tracing::info!(reader = %id, "shard reader deleted");
        Ok(Response::new(()))
    }

    type ReadShardStreamStream = ResponseStream<ReadShardStreamResponse>;

    async fn read_shard_stream(
        &self,
        request: Request<ReadShardStreamRequest>,
    ) -> Result<Response<Self::ReadShardStreamStream>, Status> {
        let request = request.into_inner();
        let shard = self
            .store
            .shard(request.shard_id)
            .filter(|s| request.stream_name.is_empty() || s.stream().name == request.stream_name)
            .ok_or(ApiError::ShardNotFound(request.shard_id))?;
        let from = Offset::from_shard(request.from.as_ref())?;
        let until = Offset::from_shard(request.until.as_ref())?;
        let stream = shard.stream().clone();
        let responses = read::spawn_stream_read(
            self.read_context(),
            stream,
            vec![shard],
            from,
            until,
            request.max_read_batches,
            |received_records| ReadShardStreamResponse { received_records },
        )?;
        Ok(Response::new(responses))
    }

    type ReadStreamStream = ResponseStream<ReadStreamResponse>;

    async fn read_stream(
        &self,
        request: Request<ReadStreamRequest>,
    ) -> Result<Response<Self::ReadStreamStream>, Status> {
        let request = request.into_inner();
        let stream = self
            .store
            .stream(&request.stream_name)
            .ok_or_else(|| ApiError::StreamNotFound(request.stream_name.clone()))?;
        let from = Offset::from_stream(request.from.as_ref())?;
        let until = Offset::from_stream(request.until.as_ref())?;
        let shards = stream
            .shards
            .iter()
            .filter_map(|shard| self.store.shard(shard.id))
            .collect();
        let responses = read::spawn_stream_read(
            self.read_context(),
            stream,
            shards,
            from,
            until,
            request.max_read_batches,
            |received_records| ReadStreamResponse { received_records },
        )?;
        Ok(Response::new(responses))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_hstreamdb() {
        let code = ErrorCode::StreamInvalidObjectIdentifier;
        for ok in ["s", "s1", "my-stream_2", "Ünïcode"] {
            assert!(validate_name(ok, code).is_ok(), "{ok}");
        }
        for bad in ["", "1s", "-s", "a.b", "a b", "a/b", &"x".repeat(256)] {
            assert!(validate_name(bad, code).is_err(), "{bad}");
        }
        assert!(validate_name(&"x".repeat(255), code).is_ok());
    }
}
