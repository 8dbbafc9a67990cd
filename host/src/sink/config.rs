//! The sink's configuration, as it appears in weir's TOML file, and its
//! validation.
//!
//! Every field has a default, stated in its doc comment, so an empty `[sink]`
//! section works. Durations are whole milliseconds (`*_ms`), as in the rest
//! of weir's configuration (or EMQX's notation, `30s`, `256MB`: see
//! `crate::config::units`). Validation happens once, before the sink starts,
//! and names the offending field.

use std::path::PathBuf;
use std::time::Duration;
use weir_proto::record::Compression;

/// HStreamDB's default `max-record-size`: the largest Append payload.
pub(crate) const SERVER_MAX_APPEND_BYTES: usize = 1024 * 1024;

/// The longest request TTL the sink applies, a century: what `request_ttl_ms
/// = "infinity"` means in practice.
const LONGEST_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SinkConfigError {
    /// The field's path in the configuration, e.g. `sink.batch.max_records`.
    pub field: String,
    pub reason: String,
}

fn invalid(field: &str, reason: impl Into<String>) -> SinkConfigError {
    SinkConfigError {
        field: format!("sink.{field}"),
        reason: reason.into(),
    }
}

/// The sink: batching, ordering, retries, the buffer queue and health checks.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// When a shard's batch is closed and sent.
    pub batch: BatchConfig,
    /// How batches are compressed on the wire: `"none"`, `"gzip"` or
    /// `"zstd"`. Default `"none"` (records are usually small and the server
    /// is near; zstd pays off on slow links).
    pub compression: CompressionSetting,
    /// Batches of one shard that may be in flight at once. 1 (the default)
    /// keeps the records of a partition key in arrival order, retries
    /// included. With more, a batch may overtake an earlier one that is
    /// being retried, so records of one key can be stored out of order
    /// (never lost); see ARCHITECTURE.md, "Sink".
    pub inflight_per_shard: usize,
    /// Memory buffer only: how long a record may wait for a successful
    /// append, counted from when it entered the sink, before it is dropped
    /// as `expired` (its message is then not acknowledged, so a QoS 1/2
    /// publisher sends it again). An expiry is the one place where records
    /// of a key can be stored out of order (the redelivered message lands
    /// after later ones); an outage shorter than this (less one retry
    /// delay) reorders nothing. Records in the disk buffer never expire:
    /// they were acknowledged already. Default 300000 (5 minutes: a node
    /// restart or a store failover takes tens of seconds to minutes, and
    /// while records wait the byte budget holds MQTT back; EMQX's 45 s
    /// expired 1,594 records in a 200-answer UNAVAILABLE burst).
    #[serde(deserialize_with = "crate::config::units::millis_or_infinity")]
    pub request_ttl_ms: u64,
    /// First delay before retrying a failed append; doubles (with jitter) up
    /// to `retry_max_delay_ms`. Default 100.
    #[serde(deserialize_with = "crate::config::units::millis")]
    pub retry_min_delay_ms: u64,
    /// Longest delay between retries of one append. Default 5000.
    #[serde(deserialize_with = "crate::config::units::millis")]
    pub retry_max_delay_ms: u64,
    /// The buffer queue between the rules and the appends.
    pub buffer: BufferConfig,
    /// Milliseconds between health checks (cluster reachable, target
    /// streams exist). Default 15000 (EMQX's `health_check_interval`).
    #[serde(deserialize_with = "crate::config::units::millis")]
    pub health_check_interval_ms: u64,
    /// Where records go that can never be stored in their stream (the
    /// stream does not exist, the server rejects the record): appended here
    /// with the attributes `weir.dead_letter.stream` and
    /// `weir.dead_letter.reason`. When unset, or when this stream does not
    /// exist either, such records go to `quarantine_file`. Default unset.
    pub dead_letter_stream: Option<String>,
    /// The local file (one JSON line per record) for records that neither
    /// their stream nor the dead-letter stream would take; written and
    /// fsynced before their message is acknowledged. Read it with `weir
    /// quarantine`. Created on first use. Default `data/quarantine.jsonl`.
    pub quarantine_file: PathBuf,
    /// The largest record the sink sends, in bytes of the encoded record
    /// (key, attributes and payload). A larger one is never sent: the server
    /// would refuse it (HStreamDB's `max-record-size`, 1 MiB by default,
    /// error 207 `StreamInvalidRecordSize`), so it goes to the dead-letter
    /// stream or quarantine at once. Set it to the server's limit. Default
    /// 1048576.
    #[serde(deserialize_with = "crate::config::units::bytes")]
    pub max_record_bytes: usize,
    /// How many more times a record the server refused on its own is sent
    /// again (with the retry backoff) before it is dead-lettered: a refusal
    /// can be a server's passing failure (INTERNAL, UNKNOWN). Default 2.
    pub poison_retries: u32,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            batch: BatchConfig::default(),
            compression: CompressionSetting::None,
            inflight_per_shard: 1,
            request_ttl_ms: 300_000,
            retry_min_delay_ms: 100,
            retry_max_delay_ms: 5_000,
            buffer: BufferConfig::default(),
            health_check_interval_ms: 15_000,
            dead_letter_stream: None,
            quarantine_file: PathBuf::from("data/quarantine.jsonl"),
            max_record_bytes: SERVER_MAX_APPEND_BYTES,
            poison_retries: 2,
        }
    }
}

/// When a shard's batch closes: whichever limit is reached first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Records per batch. Default 500.
    pub max_records: usize,
    /// Bytes per batch (encoded records, before compression); at most
    /// 1048576, HStreamDB's append limit. A single larger record is sent
    /// alone. Default 524288.
    #[serde(deserialize_with = "crate::config::units::bytes")]
    pub max_bytes: usize,
    /// How long the first record of a batch waits for more, in
    /// milliseconds. While a shard's in-flight window is full records wait
    /// anyway, so under load batches fill up regardless. Default 1: a
    /// longer linger only adds latency where acknowledgements wait for the
    /// append (docs/benchmarks.md: 5 ms cut listener QoS 1 throughput from
    /// 79k to 27k msg/s).
    #[serde(deserialize_with = "crate::config::units::millis")]
    pub linger_ms: u64,
    /// Send at once, without lingering, when the shard has no batch in
    /// flight: batches then grow with the load by themselves (records queue
    /// while an append is in flight) and a lone record is not delayed. With
    /// `false`, every batch waits for a limit or `linger_ms`. Default `true`.
    pub send_when_idle: bool,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_records: 500,
            max_bytes: 512 * 1024,
            linger_ms: 1,
            send_when_idle: true,
        }
    }
}

/// The buffer queue: a memory bound, and optionally a disk buffer that
/// survives crashes and restarts.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// Bytes of records the sink holds in memory (queued and in flight).
    /// Default 67108864 (64 MiB).
    #[serde(deserialize_with = "crate::config::units::bytes")]
    pub memory_bytes: usize,
    /// What happens when the buffer is full: `"backpressure"` (the
    /// default: senders wait, so MQTT ingestion slows down and nothing is
    /// lost) or `"drop_oldest"` (the oldest queued record is dropped and
    /// counted as `dropped.queue_full`, for those who prefer fresh data;
    /// memory buffer only).
    pub overflow: OverflowPolicy,
    /// The disk buffer.
    pub disk: DiskConfig,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            memory_bytes: 64 * 1024 * 1024,
            overflow: OverflowPolicy::Backpressure,
            disk: DiskConfig::default(),
        }
    }
}

/// What a full buffer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// Senders wait for room.
    #[default]
    Backpressure,
    /// The oldest queued record is dropped (and counted) to make room.
    DropOldest,
}

/// The disk buffer. With it, a record's message is acknowledged once the
/// record is in the buffer (as durably as `fsync` says) rather than once it
/// is appended, and records left in it are appended after a restart.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskConfig {
    /// Default `false`.
    pub enabled: bool,
    /// The directory of the segment files; created if missing, used by one
    /// weir at a time (locked). Default `data/sink-buffer`.
    pub dir: PathBuf,
    /// Bytes of segment files at most; when full, senders wait. Default
    /// 1073741824 (1 GiB).
    #[serde(deserialize_with = "crate::config::units::bytes")]
    pub max_bytes: u64,
    /// Size at which a segment file is closed and a new one started; a
    /// segment is deleted once every record in it is appended. Default
    /// 16777216 (16 MiB).
    #[serde(deserialize_with = "crate::config::units::bytes")]
    pub segment_bytes: u64,
    /// When written records are forced to the disk: `"always"` (the default:
    /// before they are acknowledged, so an acknowledged record survives a
    /// power loss), `"interval"` (every `fsync_interval_ms`; acknowledged
    /// records survive a crash of weir, and a power loss loses at most that
    /// interval) or `"never"` (the operating system decides; survives a crash
    /// of weir only).
    pub fsync: FsyncPolicy,
    /// For `fsync = "interval"`. Default 1000.
    #[serde(deserialize_with = "crate::config::units::millis")]
    pub fsync_interval_ms: u64,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            enabled: false,
            dir: PathBuf::from("data/sink-buffer"),
            max_bytes: 1024 * 1024 * 1024,
            segment_bytes: 16 * 1024 * 1024,
            fsync: FsyncPolicy::Always,
            fsync_interval_ms: 1000,
        }
    }
}

/// When the disk buffer forces writes to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    #[default]
    Always,
    Interval,
    Never,
}

/// [`Compression`] as configuration spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompressionSetting {
    #[default]
    None,
    Gzip,
    Zstd,
}

impl From<CompressionSetting> for Compression {
    fn from(setting: CompressionSetting) -> Self {
        match setting {
            CompressionSetting::None => Compression::None,
            CompressionSetting::Gzip => Compression::Gzip,
            CompressionSetting::Zstd => Compression::Zstd,
        }
    }
}

/// The checked configuration, in the units the sink works with.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) max_records: usize,
    pub(crate) max_bytes: usize,
    pub(crate) linger: Duration,
    pub(crate) send_when_idle: bool,
    pub(crate) compression: Compression,
    pub(crate) inflight_per_shard: usize,
    pub(crate) request_ttl: Duration,
    pub(crate) retry_min: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) memory_bytes: usize,
    pub(crate) overflow: OverflowPolicy,
    pub(crate) disk: Option<DiskSettings>,
    pub(crate) health_check_interval: Duration,
    pub(crate) dead_letter_stream: Option<std::sync::Arc<str>>,
    pub(crate) quarantine_file: PathBuf,
    pub(crate) max_record_bytes: usize,
    pub(crate) poison_retries: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct DiskSettings {
    pub(crate) dir: PathBuf,
    pub(crate) max_bytes: u64,
    pub(crate) segment_bytes: u64,
    pub(crate) fsync: FsyncPolicy,
    pub(crate) fsync_interval: Duration,
}

impl SinkConfig {
    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), SinkConfigError> {
        self.settings().map(drop)
    }

    pub(crate) fn settings(&self) -> Result<Settings, SinkConfigError> {
        let batch = &self.batch;
        if batch.max_records == 0 {
            return Err(invalid("batch.max_records", "must be at least 1"));
        }
        if batch.max_bytes == 0 || batch.max_bytes > SERVER_MAX_APPEND_BYTES {
            return Err(invalid(
                "batch.max_bytes",
                format!(
                    "must be between 1 and {SERVER_MAX_APPEND_BYTES} (HStreamDB's append limit)"
                ),
            ));
        }
        if self.inflight_per_shard == 0 {
            return Err(invalid("inflight_per_shard", "must be at least 1"));
        }
        if self.request_ttl_ms == 0 {
            return Err(invalid("request_ttl_ms", "must be positive"));
        }
        if self.retry_min_delay_ms == 0 {
            return Err(invalid("retry_min_delay_ms", "must be positive"));
        }
        if self.retry_max_delay_ms < self.retry_min_delay_ms {
            return Err(invalid(
                "retry_max_delay_ms",
                "must not be below retry_min_delay_ms",
            ));
        }
        if self.health_check_interval_ms == 0 {
            return Err(invalid("health_check_interval_ms", "must be positive"));
        }
        let buffer = &self.buffer;
        if buffer.memory_bytes < SERVER_MAX_APPEND_BYTES {
            return Err(invalid(
                "buffer.memory_bytes",
                format!("must be at least {SERVER_MAX_APPEND_BYTES}, one full append"),
            ));
        }
        if let Some(name) = &self.dead_letter_stream
            && name.is_empty()
        {
            return Err(invalid("dead_letter_stream", "must not be empty"));
        }
        if self.quarantine_file.as_os_str().is_empty() {
            return Err(invalid("quarantine_file", "must not be empty"));
        }
        if self.max_record_bytes == 0 {
            return Err(invalid("max_record_bytes", "must be positive"));
        }
        let disk = &buffer.disk;
        let disk = if disk.enabled {
            if buffer.overflow == OverflowPolicy::DropOldest {
                return Err(invalid(
                    "buffer.overflow",
                    "drop_oldest would discard records the disk buffer has already \
                     acknowledged; use backpressure with a disk buffer",
                ));
            }
            if disk.dir.as_os_str().is_empty() {
                return Err(invalid("buffer.disk.dir", "must not be empty"));
            }
            if disk.segment_bytes < 4096 {
                return Err(invalid(
                    "buffer.disk.segment_bytes",
                    "must be at least 4096",
                ));
            }
            if disk.max_bytes < disk.segment_bytes.saturating_mul(2) {
                return Err(invalid(
                    "buffer.disk.max_bytes",
                    "must hold at least two segments (2 × segment_bytes)",
                ));
            }
            if disk.fsync == FsyncPolicy::Interval && disk.fsync_interval_ms == 0 {
                return Err(invalid("buffer.disk.fsync_interval_ms", "must be positive"));
            }
            Some(DiskSettings {
                dir: disk.dir.clone(),
                max_bytes: disk.max_bytes,
                segment_bytes: disk.segment_bytes,
                fsync: disk.fsync,
                fsync_interval: Duration::from_millis(disk.fsync_interval_ms),
            })
        } else {
            None
        };
        Ok(Settings {
            max_records: batch.max_records,
            max_bytes: batch.max_bytes,
            linger: Duration::from_millis(batch.linger_ms),
            send_when_idle: batch.send_when_idle,
            compression: self.compression.into(),
            inflight_per_shard: self.inflight_per_shard,
            // `"infinity"` (EMQX's) must still leave room for clock arithmetic.
            request_ttl: Duration::from_millis(self.request_ttl_ms.min(LONGEST_TTL_MS)),
            retry_min: Duration::from_millis(self.retry_min_delay_ms),
            retry_max: Duration::from_millis(self.retry_max_delay_ms),
            memory_bytes: buffer.memory_bytes,
            overflow: buffer.overflow,
            disk,
            health_check_interval: Duration::from_millis(self.health_check_interval_ms),
            dead_letter_stream: self.dead_letter_stream.as_deref().map(Into::into),
            quarantine_file: self.quarantine_file.clone(),
            max_record_bytes: self.max_record_bytes,
            poison_retries: self.poison_retries,
        })
    }
}
