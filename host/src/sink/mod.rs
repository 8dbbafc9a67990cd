//! The HStreamDB side of weir: everything that talks to the cluster.
//!
//! [`client`] speaks the wire (URLs, TLS, discovery, pooled channels,
//! appends, stream administration, reads); it is also what the CLI's stream
//! and check commands use. Only the sink, and the CLI commands that reuse
//! its client, name tonic and `weir-proto`.
//!
//! The rest is the path from a rule's output to a stored record, built so
//! that nothing acknowledged is lost and the gateway is not the bottleneck:
//!
//! ```text
//! SinkSender::send ─► budget (memory, or disk) ─► [disk log: write, fsync, ack]
//!    ─► dispatcher: route by key to (stream, shard) lanes ─► batches
//!    ─► append tasks (retry, re-discover, dead-letter) ─► ack shares, metrics
//! ```
//!
//! - [`config`]: every knob, with its default.
//! - `budget`: the byte bound and backpressure.
//! - `disk`: the crash-safe buffer (segment files, marks, recovery).
//! - `dispatcher` and `batcher`: routing, lanes, batches, re-routing.
//! - `append` and `retry`: one batch's appends and what errors call for.
//! - `dead_letter` and `quarantine`: the one maker of dead-letter records,
//!   and the local file for what the dead-letter stream will not take.
//! - `health` and [`metrics`]: connector status and EMQX-named counters.
//! - `handle`: `SinkHandle`, what the admin API and the stream follower
//!   hold (status, metrics, targets); only the gateway holds the `Sink`.
//!
//! The guarantees (order per in-flight setting, ack point, duplicate window,
//! what survives a crash) are in ARCHITECTURE.md, "Sink".

mod append;
mod batcher;
mod budget;
pub mod client;
mod config;
mod dead_letter;
mod disk;
mod dispatcher;
mod handle;
mod health;
mod metrics;
mod quarantine;
mod retry;

#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing {
    //! Entry points for the fuzz targets in `host/fuzz`.

    use super::disk::format;

    /// Scans `data` as a segment file, as a marks file, and as the
    /// payloads of a segment that is then damaged; panics if what recovery
    /// trusts does not hold up.
    pub fn check_recovery(data: &[u8]) {
        if let Ok((header, scan)) = format::scan_segment(data) {
            check_scan(data, header.first_seq, &scan);
        }
        let _ = format::scan_marks(data);
        let salt = 0x5a17;
        let mut segment = format::encode_header(format::Header { first_seq: 1, salt }).to_vec();
        // Where each written frame is, and where its payload may hide bytes
        // that look like frames.
        let mut written = Vec::new();
        for (i, chunk) in data.chunks(64).enumerate() {
            let record = weir_proto::record::raw_record("key", chunk.to_vec());
            let start = segment.len();
            format::encode_record(&mut segment, salt, i as u64 + 1, 0, "s", &record);
            written.push((start, segment[start..].to_vec()));
        }
        if let Some((&first, rest)) = data.split_first() {
            for (n, &byte) in rest.iter().take(8).enumerate() {
                let at = (usize::from(first) * 131 + n * 977) % segment.len();
                segment[at] ^= byte;
            }
            segment.truncate(segment.len() - usize::from(first) % 16);
        }
        if let Ok((header, scan)) = format::scan_segment(&segment) {
            check_scan(&segment, header.first_seq, &scan);
            for frame in &scan.frames {
                let at = frame.offset as usize;
                let bytes = &segment[at..frame.body().end];
                let original = written
                    .iter()
                    .any(|(start, frame)| *start == at && frame == bytes);
                // A fuzzer sees the checksum comparison and can forge a frame
                // inside a payload; a publisher, who does not know the salt,
                // cannot (see `format`). Anything else is a bug.
                let inside_a_payload = written
                    .iter()
                    .any(|(start, frame)| *start < at && at < start + frame.len());
                assert!(original || inside_a_payload, "a damaged frame was trusted");
            }
        }
    }

    fn check_scan(data: &[u8], first_seq: u64, scan: &format::Scan) {
        let mut end = format::HEADER_LEN;
        let mut last = None;
        for frame in &scan.frames {
            assert!(frame.seq >= first_seq);
            assert!(last.is_none_or(|last| frame.seq > last));
            assert!(frame.offset as usize >= end);
            let body = &data[frame.body()];
            let crc = u32::from_le_bytes(
                data[frame.offset as usize + 4..frame.offset as usize + 8]
                    .try_into()
                    .expect("4 bytes"),
            );
            let salt = format::decode_header(data).map(|h| h.salt).ok();
            assert_eq!(format::frame_crc(salt, body), crc);
            end = frame.body().end;
            last = Some(frame.seq);
        }
        assert_eq!(scan.valid_end, end);
        assert!(scan.valid_end <= data.len());
    }
}

#[cfg(test)]
pub(crate) use config::{BatchConfig, CompressionSetting, DiskConfig, FsyncPolicy, OverflowPolicy};
pub(crate) use config::{SinkConfig, SinkConfigError};
#[cfg(test)]
pub(crate) use dead_letter::{
    ATTR_KIND, ATTR_PLUGIN, ATTR_REASON, ATTR_STAGE, ATTR_STREAM, ATTR_VERSION,
};
pub(crate) use dead_letter::{Rejected, Rejection, Stage};
pub(crate) use disk::DiskError;
#[cfg(test)]
pub(crate) use metrics::DroppedSnapshot;
pub(crate) use metrics::{
    ConnectorState, ConnectorStatus, LATENCY_BUCKETS_MS, SinkMetrics, StreamSnapshot,
};
pub(crate) use quarantine::read as read_quarantine;

use crate::ack::AckShare;
use append::AppendContext;
use budget::{ByteBudget, Permit};
use client::Client;
use disk::{Control, Disk};
use dispatcher::{Dispatcher, Parts};
pub(crate) use handle::SinkHandle;
use metrics::{DropReason, Registry, StreamMetrics};
use retry::Backoff;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use weir_proto::pb::HStreamRecord;

/// Records in the hand-off channel to the dispatcher (memory buffer).
const INBOX_CAPACITY: usize = 1024;

/// One record for the sink.
#[derive(Debug)]
pub(crate) struct SinkRecord {
    /// The target stream.
    pub stream: Arc<str>,
    /// The encoded record: header (flag RAW or JSON, partition key) and
    /// payload.
    pub record: HStreamRecord,
    /// Resolved exactly once: stored, dead-lettered or failed.
    pub ack: AckShare,
    /// When the source event was received (Unix milliseconds), for the
    /// publish→stored latency.
    pub event_time_ms: i64,
}

/// A record inside the sink.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) stream: Arc<str>,
    pub(crate) record: HStreamRecord,
    /// `None` once resolved (with the disk buffer: when written).
    pub(crate) ack: Option<AckShare>,
    pub(crate) event_time_ms: i64,
    /// What the record costs in the budgets: its disk frame size.
    pub(crate) bytes: usize,
    /// The memory it holds, given back when the item is dropped.
    pub(crate) permit: Option<Permit>,
    /// Its number in the disk buffer.
    pub(crate) seq: Option<u64>,
    /// When it entered the sink (or was read back from disk).
    pub(crate) received: tokio::time::Instant,
    pub(crate) metrics: Arc<StreamMetrics>,
    /// Set when the record is on its way to the dead-letter stream.
    pub(crate) dead_letter: Option<DeadLetter>,
    /// Arrival order in the dispatcher, for drop-oldest.
    pub(crate) order: u64,
}

#[derive(Debug)]
pub(crate) struct DeadLetter {
    pub(crate) reason: String,
    /// The metrics of the stream the record was meant for, when there was
    /// one.
    pub(crate) origin: Option<Arc<StreamMetrics>>,
    /// There is no dead-letter stream to try: straight to the quarantine.
    pub(crate) quarantine: bool,
}

/// Why the sink could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SinkError {
    #[error(transparent)]
    Config(#[from] SinkConfigError),
    #[error(transparent)]
    Disk(#[from] DiskError),
}

/// The sink has stopped; the record's share was resolved as failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the sink has stopped")]
pub(crate) struct SinkClosed;

/// What a graceful shutdown achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShutdownReport {
    /// Everything was appended (or failed for good) before the deadline.
    pub drained: bool,
    /// Records left in the disk buffer, appended after the next start.
    pub left_on_disk: u64,
}

/// State shared by the senders and the sink.
#[derive(Debug)]
struct Shared {
    closed: AtomicBool,
    closing: watch::Sender<bool>,
    /// To the dispatcher (memory buffer) or the disk thread (disk buffer).
    inbox: mpsc::Sender<Item>,
    disk_mode: bool,
    overflow: config::OverflowPolicy,
    /// What a send waits on: memory, or the disk buffer's bytes.
    budget: Arc<ByteBudget>,
    /// With the disk buffer: bounds the records on their way to the disk
    /// thread.
    handoff: Option<Arc<ByteBudget>>,
    memory: Arc<ByteBudget>,
    registry: Arc<Registry>,
    /// Rejections go straight to the dispatcher, also with the disk buffer:
    /// their acks wait for the dead letter's append (or the quarantine).
    rejects: mpsc::Sender<Item>,
    dead_letter_stream: Option<Arc<str>>,
}

/// Sends records into the sink. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct SinkSender {
    shared: Arc<Shared>,
}

impl SinkSender {
    /// Hands a record to the sink. Under backpressure this waits until the
    /// buffer has room; with drop-oldest it never waits for room (the oldest
    /// queued record is dropped instead). Fails only once the sink is
    /// stopping, after resolving the record's share as failed. A record with
    /// an empty stream name (or one over 65535 bytes) is bad input: it is
    /// counted as failed and its share resolved failed.
    pub(crate) async fn send(&self, record: SinkRecord) -> Result<(), SinkClosed> {
        let shared = &self.shared;
        let metrics = shared.registry.stream(&record.stream);
        if record.stream.is_empty() || record.stream.len() > usize::from(u16::MAX) {
            metrics.matched(0);
            metrics.failed();
            record
                .ack
                .failed(format!("invalid stream name {:?}", record.stream));
            return Ok(());
        }
        let bytes = disk::format::frame_len(&record.stream, &record.record);
        if shared.closed.load(Ordering::Acquire) {
            return Err(closed(record, &metrics));
        }
        let taken = match (shared.disk_mode, shared.overflow) {
            (false, config::OverflowPolicy::DropOldest) => {
                shared.budget.force_take(bytes as u64);
                true
            }
            _ => room(&shared.budget, bytes, &shared.closing).await,
        };
        if !taken {
            return Err(closed(record, &metrics));
        }
        let permit = match &shared.handoff {
            None => Permit::taken(&shared.memory, bytes as u64),
            Some(handoff) => {
                if !room(handoff, bytes, &shared.closing).await {
                    shared.budget.give_back(bytes as u64);
                    return Err(closed(record, &metrics));
                }
                Permit::taken(handoff, bytes as u64)
            }
        };
        // Counted once it has room: a record waiting for room is the
        // sender's, not yet the sink's.
        metrics.matched(bytes);
        let item = Item {
            stream: record.stream,
            record: record.record,
            ack: Some(record.ack),
            event_time_ms: record.event_time_ms,
            bytes,
            permit: Some(permit),
            seq: None,
            received: tokio::time::Instant::now(),
            metrics,
            dead_letter: None,
            order: 0,
        };
        match shared.inbox.send(item).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError(item)) => {
                if shared.disk_mode {
                    shared.budget.give_back(bytes as u64);
                }
                item.metrics.queued_bytes(-(bytes as i64));
                item.metrics.dropped(DropReason::ResourceStopped);
                if let Some(ack) = item.ack {
                    ack.failed("the sink has stopped");
                }
                Err(SinkClosed)
            }
        }
    }
}

impl SinkSender {
    /// Hands the sink something an earlier stage gave up on. The sink makes
    /// its dead-letter record (`dead_letter::record`), appends it to the
    /// rejection's own dead-letter stream or the sink's, and resolves `ack`
    /// *dead-lettered*; what no dead-letter stream takes is quarantined.
    /// Waits for memory like [`send`](Self::send); fails only once the sink
    /// is stopping.
    pub(crate) async fn reject(
        &self,
        rejected: Rejected,
        rejection: Rejection,
        ack: AckShare,
        event_time_ms: i64,
    ) -> Result<(), SinkClosed> {
        let shared = &self.shared;
        let record = dead_letter::record(rejected, &rejection);
        let target = rejection
            .dead_letter_stream
            .clone()
            .or_else(|| shared.dead_letter_stream.clone());
        let origin = rejection
            .stream
            .as_deref()
            .map(|stream| shared.registry.stream(stream));
        let stream: Arc<str> = match (&target, &rejection.stream) {
            (Some(target), _) => target.clone(),
            (None, Some(origin)) => origin.clone(),
            (None, None) => Arc::from(""),
        };
        let metrics = shared.registry.stream(&stream);
        let bytes = disk::format::frame_len(&stream, &record);
        let fail = |ack: AckShare| {
            ack.failed("the sink has stopped");
            SinkClosed
        };
        if shared.closed.load(Ordering::Acquire)
            || !room(&shared.memory, bytes, &shared.closing).await
        {
            return Err(fail(ack));
        }
        if let Some(origin) = &origin {
            origin.failed();
        }
        metrics.matched(bytes);
        let item = Item {
            stream,
            record,
            ack: Some(ack),
            event_time_ms,
            bytes,
            permit: Some(Permit::taken(&shared.memory, bytes as u64)),
            seq: None,
            received: tokio::time::Instant::now(),
            metrics,
            dead_letter: Some(DeadLetter {
                reason: rejection.message,
                origin,
                quarantine: target.is_none(),
            }),
            order: 0,
        };
        match shared.rejects.send(item).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError(item)) => {
                item.metrics.queued_bytes(-(item.bytes as i64));
                Err(match item.ack {
                    Some(ack) => fail(ack),
                    None => SinkClosed,
                })
            }
        }
    }
}

/// Takes `bytes` from `budget`, waiting for room; `false` if the sink
/// closes first.
async fn room(budget: &ByteBudget, bytes: usize, closing: &watch::Sender<bool>) -> bool {
    if budget.try_take(bytes as u64) {
        return true;
    }
    let mut closing = closing.subscribe();
    tokio::select! {
        () = budget.take(bytes as u64) => true,
        _ = closing.wait_for(|closed| *closed) => false,
    }
}

fn closed(record: SinkRecord, metrics: &StreamMetrics) -> SinkClosed {
    metrics.matched(0);
    metrics.dropped(DropReason::ResourceStopped);
    record.ack.failed("the sink has stopped");
    SinkClosed
}

/// The running sink.
#[derive(Debug)]
pub(crate) struct Sink {
    shared: Arc<Shared>,
    sender: SinkSender,
    dispatcher: Option<JoinHandle<bool>>,
    health: JoinHandle<()>,
    flush: Option<oneshot::Sender<tokio::time::Instant>>,
    disk: Option<Disk>,
    handle: SinkHandle,
}

impl Sink {
    /// Starts the sink: checks the configuration, recovers the disk buffer
    /// (whose records start flowing at once), and starts the dispatcher and
    /// the health check. Opens no connection itself; the client connects on
    /// first use.
    pub(crate) async fn start(config: &SinkConfig, client: Client) -> Result<Sink, SinkError> {
        let settings = Arc::new(config.settings()?);
        let registry = Arc::new(Registry::default());
        let memory = ByteBudget::new(settings.memory_bytes as u64);
        let (status_tx, status) = watch::channel(ConnectorStatus::default());
        let (targets, targets_rx) = watch::channel(Vec::new());
        let (inbox_tx, inbox) = mpsc::channel(INBOX_CAPACITY);
        let (rejects_tx, rejects) = mpsc::channel(INBOX_CAPACITY);
        let disk = match &settings.disk {
            Some(disk) => Some(
                Disk::open(
                    disk.clone(),
                    registry.clone(),
                    memory.clone(),
                    inbox_tx.clone(),
                )
                .await?,
            ),
            None => None,
        };
        let (closing, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            closed: AtomicBool::new(false),
            closing,
            inbox: match &disk {
                Some(disk) => disk.writes.clone(),
                None => inbox_tx,
            },
            disk_mode: disk.is_some(),
            overflow: settings.overflow,
            budget: disk
                .as_ref()
                .map_or_else(|| memory.clone(), |disk| disk.budget.clone()),
            handoff: disk.as_ref().map(|disk| disk.handoff.clone()),
            memory: memory.clone(),
            registry: registry.clone(),
            rejects: rejects_tx,
            dead_letter_stream: settings.dead_letter_stream.clone(),
        });
        let failing = Arc::new(AtomicBool::new(false));
        let context = Arc::new(AppendContext {
            client: client.clone(),
            compression: settings.compression,
            backoff: Backoff {
                min: settings.retry_min,
                max: settings.retry_max,
            },
            ttl: disk.is_none().then_some(settings.request_ttl),
            poison_retries: settings.poison_retries,
            status: status_tx.clone(),
            failing: failing.clone(),
        });
        let (flush, flush_rx) = oneshot::channel();
        let dispatcher = Dispatcher::new(Parts {
            settings: settings.clone(),
            client: client.clone(),
            context,
            inbox,
            rejects,
            quarantine: Arc::new(quarantine::Quarantine::new(
                settings.quarantine_file.clone(),
            )),
            disk: disk.as_ref().map(|disk| disk.control.clone()),
            disk_records: disk.as_ref().map(|disk| {
                let stats = disk.stats.clone();
                let budget = disk.budget.clone();
                Arc::new(move || stats.snapshot(&budget).records)
                    as Arc<dyn Fn() -> u64 + Send + Sync>
            }),
            sent: disk.as_ref().map(Disk::sent_log),
            memory,
            registry,
            flush: flush_rx,
        });
        let dispatcher = tokio::spawn(dispatcher.run());
        let health = tokio::spawn(health::run(
            client,
            settings.health_check_interval,
            targets_rx,
            status_tx,
            failing,
        ));
        let handle = SinkHandle {
            status,
            targets: Arc::new(targets),
            dead_letter_stream: settings.dead_letter_stream.clone(),
            registry: shared.registry.clone(),
            memory: shared.memory.clone(),
            disk: disk
                .as_ref()
                .map(|disk| (disk.stats.clone(), disk.budget.clone())),
            quarantine_file: settings.quarantine_file.as_path().into(),
        };
        handle.set_targets(std::iter::empty::<Arc<str>>());
        Ok(Sink {
            sender: SinkSender {
                shared: shared.clone(),
            },
            shared,
            dispatcher: Some(dispatcher),
            health,
            flush: Some(flush),
            disk,
            handle,
        })
    }

    /// A sender for records.
    pub(crate) fn sender(&self) -> SinkSender {
        self.sender.clone()
    }

    /// What the admin API and the stream follower may hold: status,
    /// metrics and health-check targets, but not the sink itself.
    pub(crate) fn handle(&self) -> &SinkHandle {
        &self.handle
    }

    /// Stops taking records, appends what is buffered until `deadline`
    /// passes, then stops. With the memory buffer, records not appended by
    /// then are dropped (`resource_stopped`) and their messages are not
    /// acknowledged; with the disk buffer they stay on disk for the next
    /// start.
    pub(crate) async fn shutdown(mut self, deadline: Duration) -> ShutdownReport {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.closing.send_replace(true);
        if let Some(flush) = self.flush.take() {
            let _ = flush.send(tokio::time::Instant::now() + deadline);
        }
        let mut drained = false;
        if let Some(dispatcher) = self.dispatcher.take() {
            drained = dispatcher.await.unwrap_or(false);
        }
        self.health.abort();
        let mut left_on_disk = 0;
        if let Some(disk) = &mut self.disk {
            let _ = disk.control.send(Control::Close);
            disk.exited().await;
            left_on_disk = disk.stats.snapshot(&disk.budget).records;
        }
        ShutdownReport {
            drained: drained && left_on_disk == 0,
            left_on_disk,
        }
    }

    /// Stops at once without flushing anything, as a crash would: tasks are
    /// aborted, the disk thread stops where it is. Records that were only in
    /// memory are reported not stored; the disk buffer is left as a crash
    /// leaves it, for the next start to recover. Returns once the directory
    /// is released.
    #[cfg(test)]
    pub(crate) async fn abort(mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.closing.send_replace(true);
        if let Some(dispatcher) = self.dispatcher.take() {
            dispatcher.abort();
            let _ = dispatcher.await;
        }
        self.health.abort();
        if let Some(disk) = &mut self.disk {
            disk.abort();
            disk.exited().await;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.closing.send_replace(true);
        if let Some(dispatcher) = &self.dispatcher {
            dispatcher.abort();
        }
        self.health.abort();
        if let Some(disk) = &mut self.disk {
            disk.abort();
        }
    }
}
