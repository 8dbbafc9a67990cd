//! What the sink does about a failed append: the classification of client
//! errors, and the backoff between retries.
//!
//! The rule is that nothing is retried for ever unless retrying can help:
//! an outage is waited out (within the request TTL), a moved shard is found
//! again, a node that refuses a shard it does not serve (FAILED_PRECONDITION)
//! sends the retry to the shard's owner, and a record the server will never
//! take is dead-lettered at once.

use super::client::ClientError;
use std::time::Duration;
use tonic::Code;

/// What a failed append calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The server or the network cannot serve now (UNAVAILABLE,
    /// DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, connection loss, timeouts), the
    /// node does not serve the shard (FAILED_PRECONDITION on Append), or
    /// something is wrong with the whole cluster (TLS, authentication) that
    /// an operator fixes without touching the records: retry later.
    Retriable,
    /// The shard may have moved or vanished: discover the shards again; if
    /// the shard still exists the error was an outage after all.
    ShardGone,
    /// The stream does not exist: dead-letter.
    StreamMissing,
    /// The server refuses these records, or they cannot be encoded: retrying
    /// cannot help, dead-letter.
    Permanent,
}

pub(crate) fn classify(error: &ClientError) -> Failure {
    if error.is_stream_missing() {
        return Failure::StreamMissing;
    }
    if error.is_shard_gone() {
        return Failure::ShardGone;
    }
    // A refusal because of routing is retried at the shard's owner, which
    // the client looks up again after the failure.
    if error.is_retriable() || error.is_wrong_server() {
        return Failure::Retriable;
    }
    match error {
        ClientError::Encode(_) | ClientError::NoShardForKey { .. } => Failure::Permanent,
        // About the request itself (too large, undecodable, ...), or a
        // server failing on it: the same request would fail again.
        ClientError::Status {
            code:
                Code::InvalidArgument
                | Code::OutOfRange
                | Code::FailedPrecondition
                | Code::Internal
                | Code::Unknown
                | Code::DataLoss,
            ..
        } => Failure::Permanent,
        _ => Failure::Retriable,
    }
}

/// Exponential backoff with jitter: attempt `n` waits between half and all
/// of `min × 2ⁿ`, capped at `max`, so retries of many shards spread out
/// instead of hitting a recovering server together.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .min
            .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_micros()).unwrap_or(u64::MAX);
        half + Duration::from_micros(fastrand::u64(0..=spread))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::client::NodeAddr;
    use weir_proto::error_body::ErrorBody;
    use weir_proto::pb::ErrorCode;

    fn status(call: &str, code: Code, body: Option<ErrorBody>) -> ClientError {
        ClientError::Status {
            call: call.into(),
            addr: NodeAddr::new("127.0.0.1", 6570),
            code,
            message: String::new(),
            body: body.map(Box::new),
        }
    }

    #[test]
    fn errors_are_classified_by_what_can_help() {
        let append = "Append to stream \"s\" shard 1";
        let cases = [
            (status(append, Code::Unavailable, None), Failure::ShardGone),
            (
                status("ListShards", Code::Unavailable, None),
                Failure::Retriable,
            ),
            (
                status(append, Code::DeadlineExceeded, None),
                Failure::Retriable,
            ),
            (
                status(append, Code::ResourceExhausted, None),
                Failure::Retriable,
            ),
            (
                status(append, Code::Unauthenticated, None),
                Failure::Retriable,
            ),
            (
                status(append, Code::InvalidArgument, None),
                Failure::Permanent,
            ),
            (status(append, Code::Internal, None), Failure::Permanent),
            (
                status(
                    append,
                    Code::FailedPrecondition,
                    Some(ErrorBody::new(
                        ErrorCode::WrongServer,
                        "WrongServer",
                        serde_json::json!("shard 1 is served by node 2"),
                    )),
                ),
                Failure::Retriable,
            ),
            (
                status("DeleteStream", Code::FailedPrecondition, None),
                Failure::Permanent,
            ),
            (
                status(
                    append,
                    Code::NotFound,
                    Some(ErrorBody::new(
                        ErrorCode::StreamNotFound,
                        "StreamNotFound",
                        serde_json::json!("s"),
                    )),
                ),
                Failure::StreamMissing,
            ),
            (
                ClientError::StreamNotFound { stream: "s".into() },
                Failure::StreamMissing,
            ),
            (
                ClientError::ConnectionLost {
                    call: append.into(),
                    addr: NodeAddr::new("h", 1),
                    reason: "reset".into(),
                },
                Failure::Retriable,
            ),
            (
                ClientError::Timeout {
                    call: append.into(),
                    addr: NodeAddr::new("h", 1),
                    after: Duration::from_secs(1),
                },
                Failure::Retriable,
            ),
            (
                ClientError::Encode(weir_proto::record::RecordError::EmptyBatch),
                Failure::Permanent,
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(classify(&error), expected, "{error}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let backoff = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(5),
        };
        for _ in 0..200 {
            for (attempt, ceiling_ms) in [(0, 100), (1, 200), (3, 800), (6, 5000), (40, 5000)] {
                let delay = backoff.delay(attempt);
                let ceiling = Duration::from_millis(ceiling_ms);
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "attempt {attempt}: {delay:?} not in [{:?}, {ceiling:?}]",
                    ceiling / 2
                );
            }
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| backoff.delay(4)).collect();
        assert!(spread.len() > 10, "jitter spreads the delays: {spread:?}");
    }
}
