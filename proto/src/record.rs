//! Record batches as HStreamDB stores them.
//!
//! An append carries one [`BatchedRecord`]: its payload is an encoded
//! [`BatchHStreamRecords`] compressed as a whole (none, gzip or zstd) and its
//! `batchSize` says how many records are inside, so the server can number
//! record ids without decompressing. A record's payload is raw bytes (flag
//! RAW) or an "HRecord" (flag JSON): a binary `google.protobuf.Struct`, never
//! JSON text.
//!
//! Decoding is defensive because the server decodes what clients send: the
//! decompressed size is bounded and the record count must match `batchSize`.

use crate::pb::{
    BatchHStreamRecords, BatchedRecord, CompressionType, HStreamRecord, HStreamRecordHeader,
    RecordId, h_stream_record_header::Flag,
};
use bytes::Bytes;
use prost::Message;
use prost_types::{ListValue, Struct, Value, value::Kind};
use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

mod transcode;

/// The largest decompressed batch [`decode_batch`] accepts by default: far
/// above HStreamDB's 1 MiB append limit, far below what would exhaust memory.
pub const DEFAULT_MAX_DECODED_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the batch is empty")]
    EmptyBatch,
    #[error("{0} records do not fit in one batch")]
    TooManyRecords(usize),
    #[error("unknown compression type {0}")]
    UnknownCompression(i32),
    #[error("{compression} compression failed: {source}")]
    Compress {
        compression: &'static str,
        source: std::io::Error,
    },
    #[error("{compression} payload does not decompress: {source}")]
    Decompress {
        compression: &'static str,
        source: std::io::Error,
    },
    #[error("the batch decompresses to more than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the batch payload is not an encoded BatchHStreamRecords: {0}")]
    Malformed(#[from] prost::DecodeError),
    #[error("the batch says it holds {declared} records but holds {actual}")]
    CountMismatch { declared: u32, actual: usize },
    #[error("an HRecord must be a JSON object, not {0}")]
    NotAnObject(&'static str),
    #[error("a JSON number {0} cannot be stored in an HRecord")]
    BadNumber(String),
    #[error("not valid JSON: {0}")]
    InvalidJson(serde_json::Error),
}

/// How a batch is compressed; the wire's [`CompressionType`] with names for
/// configuration and command lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    pub fn wire(self) -> CompressionType {
        match self {
            Compression::None => CompressionType::None,
            Compression::Gzip => CompressionType::Gzip,
            Compression::Zstd => CompressionType::Zstd,
        }
    }

    pub fn from_wire(value: i32) -> Result<Self, RecordError> {
        match CompressionType::try_from(value) {
            Ok(CompressionType::None) => Ok(Compression::None),
            Ok(CompressionType::Gzip) => Ok(Compression::Gzip),
            Ok(CompressionType::Zstd) => Ok(Compression::Zstd),
            Err(_) => Err(RecordError::UnknownCompression(value)),
        }
    }

    fn compress(self, data: Vec<u8>) -> Result<Vec<u8>, RecordError> {
        let wrap = |source| RecordError::Compress {
            compression: self.name(),
            source,
        };
        match self {
            Compression::None => Ok(data),
            Compression::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(data.len() / 2),
                    flate2::Compression::fast(),
                );
                encoder.write_all(&data).map_err(wrap)?;
                encoder.finish().map_err(wrap)
            }
            Compression::Zstd => zstd::bulk::compress(&data, 3).map_err(wrap),
        }
    }

    fn decompress(self, data: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
        let wrap = |source| RecordError::Decompress {
            compression: self.name(),
            source,
        };
        let mut out = Vec::new();
        // Read one byte past the limit to tell "exactly at the limit" from "over".
        let cap = limit as u64 + 1;
        match self {
            Compression::None => {
                if data.len() > limit {
                    return Err(RecordError::TooLarge { limit });
                }
                return Ok(data.to_vec());
            }
            Compression::Gzip => {
                flate2::read::GzDecoder::new(data)
                    .take(cap)
                    .read_to_end(&mut out)
                    .map_err(wrap)?;
            }
            Compression::Zstd => {
                zstd::stream::read::Decoder::new(data)
                    .map_err(wrap)?
                    .take(cap)
                    .read_to_end(&mut out)
                    .map_err(wrap)?;
            }
        }
        if out.len() > limit {
            return Err(RecordError::TooLarge { limit });
        }
        Ok(out)
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            other => Err(format!(
                "unknown compression {other:?}: expected none, gzip or zstd"
            )),
        }
    }
}

/// A record with a raw payload.
pub fn raw_record(key: impl Into<String>, payload: impl Into<Bytes>) -> HStreamRecord {
    record(Flag::Raw, key.into(), payload.into())
}

/// A record whose payload is an HRecord built from a JSON object.
pub fn hrecord(
    key: impl Into<String>,
    object: &serde_json::Map<String, serde_json::Value>,
) -> Result<HStreamRecord, RecordError> {
    Ok(record(Flag::Json, key.into(), encode_hrecord(object)?))
}

/// A record whose payload is an HRecord transcoded from `text`, the JSON
/// text of an object, without building a JSON tree on the way.
pub fn hrecord_from_json_text(
    key: impl Into<String>,
    text: &[u8],
) -> Result<HStreamRecord, RecordError> {
    let payload = transcode::json_text_to_struct_bytes(text).map_err(|e| match e {
        transcode::TranscodeError::Json(source) => RecordError::InvalidJson(source),
        transcode::TranscodeError::NotAnObject(kind) => RecordError::NotAnObject(kind),
    })?;
    Ok(record(Flag::Json, key.into(), payload.into()))
}

fn record(flag: Flag, key: String, payload: Bytes) -> HStreamRecord {
    HStreamRecord {
        header: Some(HStreamRecordHeader {
            flag: flag as i32,
            attributes: Default::default(),
            key,
        }),
        payload,
    }
}

/// Encodes and compresses records into one appendable batch. Takes records
/// or references to them, so a sender that keeps its records (to retry or
/// to report them) need not clone them.
pub fn encode_batch<R: std::borrow::Borrow<HStreamRecord>>(
    records: impl IntoIterator<Item = R>,
    compression: Compression,
) -> Result<BatchedRecord, RecordError> {
    // The encoding of `BatchHStreamRecords { records }`: field 1, repeated.
    let mut records = records.into_iter();
    let mut encoded = Vec::new();
    let mut count = 0usize;
    while let Some(record) = records.next() {
        prost::encoding::message::encode(1, record.borrow(), &mut encoded);
        count += 1;
        if count == 1 {
            // Records of a batch are mostly alike: room for the rest at the
            // first one's size saves growing a large buffer step by step.
            encoded.reserve(encoded.len() * records.size_hint().0);
        }
    }
    if count == 0 {
        return Err(RecordError::EmptyBatch);
    }
    let batch_size = u32::try_from(count).map_err(|_| RecordError::TooManyRecords(count))?;
    let payload = compression.compress(encoded)?;
    Ok(BatchedRecord {
        compression_type: compression.wire() as i32,
        publish_time: None,
        batch_size,
        payload: payload.into(),
    })
}

/// Decompresses and decodes a batch, checking that it holds `batchSize`
/// records and decompresses to at most `max_decoded_bytes`.
pub fn decode_batch(
    batch: &BatchedRecord,
    max_decoded_bytes: usize,
) -> Result<Vec<HStreamRecord>, RecordError> {
    let compression = Compression::from_wire(batch.compression_type)?;
    let decoded = compression.decompress(&batch.payload, max_decoded_bytes)?;
    let records = BatchHStreamRecords::decode(decoded.as_slice())?.records;
    if records.len() != batch.batch_size as usize {
        return Err(RecordError::CountMismatch {
            declared: batch.batch_size,
            actual: records.len(),
        });
    }
    Ok(records)
}

/// The flag of a record, treating a missing header as HStreamDB does (JSON is
/// the enum's zero value).
pub fn flag_of(record: &HStreamRecord) -> Flag {
    record
        .header
        .as_ref()
        .and_then(|h| Flag::try_from(h.flag).ok())
        .unwrap_or(Flag::Json)
}

/// The partition key of a record; the empty string is the default key.
pub fn key_of(record: &HStreamRecord) -> &str {
    record.header.as_ref().map_or("", |h| h.key.as_str())
}

/// Encodes a JSON object as an HRecord payload (a binary `Struct`).
pub fn encode_hrecord(
    object: &serde_json::Map<String, serde_json::Value>,
) -> Result<Bytes, RecordError> {
    Ok(json_object_to_struct(object)?.encode_to_vec().into())
}

/// Decodes an HRecord payload into JSON. `Struct` only has doubles; a whole
/// number that a double holds exactly comes back as a JSON integer (`0`, not
/// `0.0`), as protobuf's JSON mapping and HStreamDB's own CLI print it.
pub fn decode_hrecord(payload: &[u8]) -> Result<serde_json::Value, RecordError> {
    let decoded = Struct::decode(payload)?;
    Ok(struct_to_json(decoded))
}

/// Converts a JSON value into an HRecord payload; the value must be an object.
pub fn json_to_hrecord(value: &serde_json::Value) -> Result<Bytes, RecordError> {
    match value {
        serde_json::Value::Object(object) => encode_hrecord(object),
        other => Err(RecordError::NotAnObject(json_kind(other))),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn json_object_to_struct(
    object: &serde_json::Map<String, serde_json::Value>,
) -> Result<Struct, RecordError> {
    let fields = object
        .iter()
        .map(|(k, v)| Ok((k.clone(), json_to_value(v)?)))
        .collect::<Result<_, RecordError>>()?;
    Ok(Struct { fields })
}

fn json_to_value(value: &serde_json::Value) -> Result<Value, RecordError> {
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(
            n.as_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| RecordError::BadNumber(n.to_string()))?,
        ),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_to_value).collect::<Result<_, _>>()?,
        }),
        serde_json::Value::Object(object) => Kind::StructValue(json_object_to_struct(object)?),
    };
    Ok(Value { kind: Some(kind) })
}

fn struct_to_json(value: Struct) -> serde_json::Value {
    serde_json::Value::Object(
        value
            .fields
            .into_iter()
            .map(|(k, v)| (k, value_to_json(v)))
            .collect(),
    )
}

fn value_to_json(value: Value) -> serde_json::Value {
    match value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::NumberValue(n)) => number_to_json(n),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::ListValue(list)) => {
            serde_json::Value::Array(list.values.into_iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(s)) => struct_to_json(s),
    }
}

/// Doubles beyond 2^53 are not exact integers any more: they stay floats.
fn number_to_json(n: f64) -> serde_json::Value {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() <= EXACT {
        // A whole double within ±2^53 converts to i64 without loss.
        return serde_json::Value::from(n as i64);
    }
    serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

impl fmt::Display for RecordId {
    /// `shardId-batchId-batchIndex`, as HStreamDB prints record ids.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}-{}",
            self.shard_id, self.batch_id, self.batch_index
        )
    }
}

impl FromStr for RecordId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("record id {text:?} is not of the form shardId-batchId-batchIndex");
        let mut parts = text.split('-');
        let (Some(shard), Some(batch), Some(index), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(RecordId {
            shard_id: shard.parse().map_err(|_| bad())?,
            batch_id: batch.parse().map_err(|_| bad())?,
            batch_index: index.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Vec<HStreamRecord> {
        let object = json!({"a": 1, "b": [true, null, "x"], "c": {"d": 2.5}});
        vec![
            raw_record("k1", &b"hello"[..]),
            raw_record("", Bytes::new()),
            hrecord("k2", object.as_object().expect("object")).expect("hrecord"),
        ]
    }

    #[test]
    fn every_compression_round_trips() {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let batch = encode_batch(sample(), compression).expect("encode");
            assert_eq!(batch.batch_size, 3);
            assert_eq!(batch.compression_type, compression.wire() as i32);
            let records = decode_batch(&batch, DEFAULT_MAX_DECODED_BYTES).expect("decode");
            assert_eq!(records, sample(), "{compression}");
        }
    }

    #[test]
    fn whole_numbers_read_back_as_integers() {
        let value = serde_json::json!({"qos": 0, "t": 1.5, "big": 1e300, "n": -42, "max": 9007199254740992_i64});
        let payload = json_to_hrecord(&value).expect("an object");
        assert_eq!(decode_hrecord(&payload).expect("decodes"), value);
    }

    #[test]
    fn hrecord_payload_is_a_struct_not_text() {
        let records = sample();
        assert_eq!(flag_of(&records[2]), Flag::Json);
        assert_eq!(key_of(&records[2]), "k2");
        assert!(serde_json::from_slice::<serde_json::Value>(&records[2].payload).is_err());
        assert_eq!(
            decode_hrecord(&records[2].payload).expect("struct"),
            json!({"a": 1, "b": [true, null, "x"], "c": {"d": 2.5}})
        );
        assert!(matches!(
            json_to_hrecord(&json!([1])),
            Err(RecordError::NotAnObject("an array"))
        ));
    }

    #[test]
    fn corrupt_batches_are_rejected() {
        let mut batch = encode_batch(sample(), Compression::Gzip).expect("encode");
        batch.batch_size = 4;
        assert!(matches!(
            decode_batch(&batch, DEFAULT_MAX_DECODED_BYTES),
            Err(RecordError::CountMismatch {
                declared: 4,
                actual: 3
            })
        ));
        batch.payload = Bytes::from_static(b"not gzip");
        assert!(matches!(
            decode_batch(&batch, DEFAULT_MAX_DECODED_BYTES),
            Err(RecordError::Decompress { .. })
        ));
        batch.compression_type = 9;
        assert!(matches!(
            decode_batch(&batch, DEFAULT_MAX_DECODED_BYTES),
            Err(RecordError::UnknownCompression(9))
        ));
        let raw = BatchedRecord {
            compression_type: 0,
            publish_time: None,
            batch_size: 1,
            payload: Bytes::from_static(&[0xff, 0xff, 0xff]),
        };
        assert!(matches!(
            decode_batch(&raw, DEFAULT_MAX_DECODED_BYTES),
            Err(RecordError::Malformed(_))
        ));
        assert!(matches!(
            encode_batch(Vec::<HStreamRecord>::new(), Compression::None),
            Err(RecordError::EmptyBatch)
        ));
    }

    #[test]
    fn decompression_is_bounded() {
        let big = vec![raw_record("k", vec![0u8; 100_000])];
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let batch = encode_batch(big.clone(), compression).expect("encode");
            assert!(matches!(
                decode_batch(&batch, 10_000),
                Err(RecordError::TooLarge { limit: 10_000 })
            ));
        }
    }

    #[test]
    fn record_ids_print_and_parse() {
        let id = RecordId {
            shard_id: 1947758763121538,
            batch_id: 8589934593,
            batch_index: 0,
        };
        assert_eq!(id.to_string(), "1947758763121538-8589934593-0");
        assert_eq!("1947758763121538-8589934593-0".parse::<RecordId>(), Ok(id));
        assert!("1-2".parse::<RecordId>().is_err());
        assert!("1-2-3-4".parse::<RecordId>().is_err());
    }

    #[test]
    fn compression_names_parse() {
        assert_eq!("GZIP".parse::<Compression>(), Ok(Compression::Gzip));
        assert!("lz4".parse::<Compression>().is_err());
    }
}
