//! Following a stream with the server-streaming `ReadStream` call, one
//! decoded record at a time.

use super::error::ClientError;
use super::url::NodeAddr;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use weir_proto::pb::{self, HStreamRecord, RecordId, stream_offset};
use weir_proto::record::{DEFAULT_MAX_DECODED_BYTES, decode_batch};

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The oldest record still kept.
    #[default]
    Earliest,
    /// Only records appended after the read starts.
    Latest,
}

/// One record as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadRecord {
    pub id: RecordId,
    /// When the server stored the record's batch, in milliseconds since
    /// the Unix epoch, if the server said.
    pub timestamp_ms: Option<i64>,
    pub record: HStreamRecord,
}

/// A running read of one stream. Dropping it ends the call.
#[derive(Debug)]
pub struct StreamReader {
    stream: String,
    addr: NodeAddr,
    /// The client's gRPC timeout, for error messages.
    timeout: Duration,
    responses: tonic::Streaming<pb::ReadStreamResponse>,
    pending: VecDeque<ReadRecord>,
}

/// Where a read ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Until {
    /// Never: the read follows the stream as records are appended.
    #[default]
    Follow,
    /// At the last record stored when the read starts.
    Latest,
}

pub(super) fn request(stream: &str, from: StartFrom, until: Until) -> pb::ReadStreamRequest {
    let special = |offset: pb::SpecialOffset| pb::StreamOffset {
        offset: Some(stream_offset::Offset::SpecialOffset(offset as i32)),
    };
    let from = match from {
        StartFrom::Earliest => pb::SpecialOffset::Earliest,
        StartFrom::Latest => pb::SpecialOffset::Latest,
    };
    pb::ReadStreamRequest {
        reader_id: reader_id(),
        stream_name: stream.into(),
        from: Some(special(from)),
        until: match until {
            Until::Follow => None,
            Until::Latest => Some(special(pb::SpecialOffset::Latest)),
        },
        max_read_batches: 0,
    }
}

/// A reader id no other reader has: readers live on the server, and two
/// `weir stream read` running at once must not collide.
fn reader_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "weir-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl StreamReader {
    pub(super) fn new(
        stream: String,
        addr: NodeAddr,
        timeout: Duration,
        responses: tonic::Streaming<pb::ReadStreamResponse>,
    ) -> Self {
        StreamReader {
            stream,
            addr,
            timeout,
            responses,
            pending: VecDeque::new(),
        }
    }

    /// The next record, waiting for one to be appended if need be; `None`
    /// when the server ends the read.
    pub async fn next(&mut self) -> Result<Option<ReadRecord>, ClientError> {
        loop {
            if let Some(record) = self.pending.pop_front() {
                return Ok(Some(record));
            }
            let response = match self.responses.message().await {
                Ok(Some(response)) => response,
                Ok(None) => return Ok(None),
                Err(status) => {
                    return Err(ClientError::from_status(
                        format!("ReadStream of stream {:?}", self.stream),
                        &self.addr,
                        self.timeout,
                        status,
                    ));
                }
            };
            for received in response.received_records {
                self.pending
                    .extend(unpack(&self.stream, &self.addr, received)?);
            }
        }
    }
}

/// Decodes one stored batch into records paired with their ids.
fn unpack(
    stream: &str,
    addr: &NodeAddr,
    received: pb::ReceivedRecord,
) -> Result<Vec<ReadRecord>, ClientError> {
    let Some(batch) = received.record else {
        return Err(ClientError::Protocol {
            call: format!("ReadStream of stream {stream:?}"),
            addr: addr.clone(),
            what: "a received record without its batch".into(),
        });
    };
    let records =
        decode_batch(&batch, DEFAULT_MAX_DECODED_BYTES).map_err(|source| ClientError::Decode {
            stream: stream.into(),
            source,
        })?;
    if records.len() != received.record_ids.len() {
        return Err(ClientError::Protocol {
            call: format!("ReadStream of stream {stream:?}"),
            addr: addr.clone(),
            what: format!(
                "{} record ids for a batch of {} records",
                received.record_ids.len(),
                records.len()
            ),
        });
    }
    let timestamp_ms = batch
        .publish_time
        .map(|t| t.seconds.saturating_mul(1000) + i64::from(t.nanos / 1_000_000));
    Ok(received
        .record_ids
        .into_iter()
        .zip(records)
        .map(|(id, record)| ReadRecord {
            id,
            timestamp_ms,
            record,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_proto::record::{Compression, encode_batch, raw_record};

    fn addr() -> NodeAddr {
        NodeAddr::new("h", 1)
    }

    fn ids(n: u32) -> Vec<RecordId> {
        (0..n)
            .map(|i| RecordId {
                shard_id: 7,
                batch_id: 9,
                batch_index: i,
            })
            .collect()
    }

    #[test]
    fn batches_unpack_into_records_with_ids_and_time() {
        let mut batch = encode_batch(
            vec![raw_record("a", &b"1"[..]), raw_record("b", &b"2"[..])],
            Compression::Zstd,
        )
        .expect("encode");
        batch.publish_time = Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 123_456_789,
        });
        let records = unpack(
            "s",
            &addr(),
            pb::ReceivedRecord {
                record_ids: ids(2),
                record: Some(batch),
            },
        )
        .expect("unpack");
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].id.to_string(), "7-9-1");
        assert_eq!(records[1].record.payload.as_ref(), b"2");
        assert_eq!(records[0].timestamp_ms, Some(1_700_000_000_123));
    }

    #[test]
    fn id_count_must_match() {
        let batch =
            encode_batch(vec![raw_record("a", &b"1"[..])], Compression::None).expect("encode");
        let error = unpack(
            "s",
            &addr(),
            pb::ReceivedRecord {
                record_ids: ids(2),
                record: Some(batch),
            },
        )
        .expect_err("two ids for one record");
        assert!(matches!(error, ClientError::Protocol { .. }), "{error:?}");
        let error = unpack(
            "s",
            &addr(),
            pb::ReceivedRecord {
                record_ids: ids(1),
                record: None,
            },
        )
        .expect_err("no batch");
        assert!(matches!(error, ClientError::Protocol { .. }), "{error:?}");
    }

    #[test]
    fn reader_ids_are_unique() {
        assert_ne!(reader_id(), reader_id());
    }
}
