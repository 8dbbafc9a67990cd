//! The errors a request can meet, and the gRPC statuses HStreamDB answers
//! them with.
//!
//! HStreamDB puts a JSON body `{"error": code, "message": ..., "extra": ...}`
//! in the status message, with the status code of the exception's class
//! (`HStream.Exception`): NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT,
//! FAILED_PRECONDITION. Store failures on Append and ListShards of a missing
//! stream are the exception: UNAVAILABLE with plain text. Names and codes
//! below follow the server; `extra` carries the detail a person needs.

use crate::store::StoreError;
use serde_json::{Value, json};
use tonic::{Code, Status};
use weir_proto::error_body::ErrorBody;
use weir_proto::pb::ErrorCode;

/// HStreamDB's `ShardReaderConflictOffset`, absent from weir's trimmed enum.
const SHARD_READER_CONFLICT_OFFSET: i32 = 901;

#[derive(Debug)]
pub(crate) enum ApiError {
    StreamNotFound(String),
    StreamExists(String),
    InvalidReplicaFactor,
    InvalidShardCount,
    InvalidIdentifier {
        code: ErrorCode,
        reason: String,
    },
    EmptyBatchedRecord(&'static str),
    /// The payload size in bytes, which HStreamDB sends as `extra`.
    InvalidRecordSize(usize),
    DecodeRecord(String),
    ShardNotFound(u64),
    ShardReaderExists(String),
    ShardReaderNotExists(String),
    InvalidShardOffset(String),
    ConflictShardReaderOffset(String),
    InvalidResourceType(i32),
    /// Plain-text UNAVAILABLE, as HStreamDB's store errors.
    Unavailable(String),
    /// The resource belongs to another node (HStreamDB's WrongServer, 800).
    WrongServer(String),
    Internal(String),
}

impl ApiError {
    fn body(code: i32, message: &str, extra: Value) -> ErrorBody {
        ErrorBody {
            error: code,
            message: message.to_owned(),
            extra,
        }
    }

    fn into_parts(self) -> (Code, String) {
        use ApiError::*;
        let (status, body) = match self {
            StreamNotFound(name) => (
                Code::NotFound,
                ErrorBody::new(ErrorCode::StreamNotFound, "StreamNotFound", json!(name)),
            ),
            StreamExists(name) => (
                Code::AlreadyExists,
                ErrorBody::new(ErrorCode::StreamExists, "StreamExists", json!(name)),
            ),
            InvalidReplicaFactor => (
                Code::InvalidArgument,
                ErrorBody::new(
                    ErrorCode::StreamInvalidReplicaFactor,
                    "InvalidReplicaFactor",
                    json!("Stream replication factor should greater than zero."),
                ),
            ),
            InvalidShardCount => (
                Code::InvalidArgument,
                ErrorBody::new(
                    ErrorCode::StreamInvalidShardCount,
                    "InvalidShardCount",
                    json!("Stream shard count should be greater than zero."),
                ),
            ),
            InvalidIdentifier { code, reason } => (
                Code::InvalidArgument,
                ErrorBody::new(code, "InvalidObjectIdentifier", json!(reason)),
            ),
            EmptyBatchedRecord(reason) => (
                Code::InvalidArgument,
                ErrorBody::new(
                    ErrorCode::StreamEmptyBatchedRecord,
                    "BatchedRecord shouldn't be Nothing",
                    json!(reason),
                ),
            ),
            InvalidRecordSize(size) => (
                Code::InvalidArgument,
                ErrorBody::new(
                    ErrorCode::StreamInvalidRecordSize,
                    "Record size exceeds the maximum size limit",
                    json!(size),
                ),
            ),
            DecodeRecord(reason) => (
                Code::InvalidArgument,
                ErrorBody::new(
                    ErrorCode::InternalError,
                    "DecodeHStreamRecordErr",
                    json!(reason),
                ),
            ),
            ShardNotFound(id) => (
                Code::NotFound,
                ErrorBody::new(
                    ErrorCode::InternalError,
                    "ShardNotFound",
                    json!(format!("Shard with id {id} is not found.")),
                ),
            ),
            ShardReaderExists(id) => (
                Code::AlreadyExists,
                ErrorBody::new(
                    ErrorCode::InternalError,
                    "ShardReaderExists",
                    json!(format!("ShardReader with id {id} already exists.")),
                ),
            ),
            ShardReaderNotExists(id) => (
                Code::FailedPrecondition,
                ErrorBody::new(
                    ErrorCode::InternalError,
                    "EmptyShardReader",
                    json!(format!("ShardReaderNotExists: {id}")),
                ),
            ),
            InvalidShardOffset(reason) => (
                Code::InvalidArgument,
                ErrorBody::new(
                    ErrorCode::InternalError,
                    "InvalidShardOffset",
                    json!(reason),
                ),
            ),
            ConflictShardReaderOffset(reason) => (
                Code::InvalidArgument,
                Self::body(
                    SHARD_READER_CONFLICT_OFFSET,
                    "ConflictShardReaderOffset",
                    json!(reason),
                ),
            ),
            InvalidResourceType(value) => (
                Code::InvalidArgument,
                ErrorBody::new(
                    ErrorCode::InternalError,
                    "InvalidResourceType",
                    json!(format!("unknown resource type {value}")),
                ),
            ),
            Unavailable(text) => return (Code::Unavailable, text),
            WrongServer(reason) => (
                Code::FailedPrecondition,
                ErrorBody::new(ErrorCode::WrongServer, "WrongServer", json!(reason)),
            ),
            Internal(reason) => (
                Code::Internal,
                ErrorBody::new(
                    ErrorCode::InternalError,
                    "SomeServerInternal",
                    json!(reason),
                ),
            ),
        };
        (status, body.to_message())
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Status {
        let (code, message) = err.into_parts();
        // A client asking for a stream that does not exist (as `weir dev`
        // does before creating its streams) is the client's business; only
        // the server's own failures deserve a warning.
        if matches!(code, Code::Internal | Code::Unavailable) {
            tracing::warn!(code = ?code, %message, "request failed");
        } else {
            tracing::debug!(code = ?code, %message, "request rejected");
        }
        Status::new(code, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::StreamExists(name) => ApiError::StreamExists(name),
            StoreError::NoShards => ApiError::InvalidShardCount,
            // HStreamDB's store answers an append to an unknown log with an
            // UNAVAILABLE store error, not a JSON body.
            StoreError::ShardNotFound(id) => {
                ApiError::Unavailable(format!("NOTFOUND: shard {id} does not exist"))
            }
            e @ StoreError::ShardNotInStream { .. } => {
                ApiError::Unavailable(format!("NOTFOUND: {e}"))
            }
            e @ (StoreError::Write(_) | StoreError::Closed) => {
                ApiError::Unavailable(format!("FAILED: {e}"))
            }
            StoreError::Meta(e) => ApiError::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_hstreamdb_codes() {
        let status = Status::from(ApiError::StreamNotFound("s1".into()));
        assert_eq!(status.code(), Code::NotFound);
        let body = ErrorBody::parse(status.message()).expect("json body");
        assert_eq!(body.code(), Some(ErrorCode::StreamNotFound));
        assert_eq!(body.message, "StreamNotFound");
        assert_eq!(body.extra, json!("s1"));

        let status = Status::from(ApiError::ConflictShardReaderOffset("x".into()));
        assert_eq!(ErrorBody::parse(status.message()).expect("json").error, 901);

        let status = Status::from(ApiError::Unavailable("NOTFOUND: gone".into()));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(ErrorBody::parse(status.message()), None);
    }
}
