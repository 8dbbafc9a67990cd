//! The dispatcher: one task that owns every queue of the sink and decides
//! what is sent when.
//!
//! Records arrive (from senders, or from the disk buffer) and are routed by
//! partition key to their stream's shard lane ([`Lane`]); lanes close
//! batches and hand them to append tasks, at most `inflight_per_shard` per
//! lane. Append tasks report back; the dispatcher then resolves ack shares,
//! updates metrics, tells the disk buffer which records are done,
//! dead-letters what cannot be stored (and quarantines what the dead-letter
//! stream will not take), and re-routes what has to move. A record over
//! `max_record_bytes` is never sent: it is rejected as it arrives.
//!
//! A single task owns the state, so there is no lock on the per-record path;
//! the expensive work (encoding, compression, the RPC) happens in the
//! append tasks, in parallel. The number of shards is small, so scanning
//! the lanes for the next deadline is cheap.
//!
//! When a stream's shards change (it was deleted and re-created), a batch
//! comes back as "shard gone". The stream then stops sending, waits for its
//! other batches in flight to come back, discovers its shards again and
//! routes every record it still holds, lane by lane in order, to the new
//! lanes: each key's records were in one lane, so their order survives.

use super::append::{self, AppendContext, BatchReport, Returned};
use super::batcher::{BatchRule, Lane};
use super::budget::ByteBudget;
use super::client::{Client, ClientError};
use super::config::{OverflowPolicy, Settings};
use super::dead_letter::{self, Rejection, Stage};
use super::disk::{Control, SentLog};
use super::metrics::{DropReason, Registry, StreamMetrics};
use super::quarantine::Quarantine;
use super::retry::Backoff;
use super::{DeadLetter, Item};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use weir_proto::keyspace::ShardMap;

/// Records taken from the inbox in one go before deadlines are looked at.
const INBOX_BURST: usize = 512;
/// How often a flushing dispatcher looks whether the disk buffer is empty.
const DRAIN_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// A stream's queues.
#[derive(Debug, Default)]
struct StreamQueues {
    map: Option<Arc<ShardMap>>,
    discovering: bool,
    /// A batch found its shard gone: send nothing until the batches in
    /// flight are back, then discover and re-route.
    stale: bool,
    /// Records waiting for the shard map.
    pending: VecDeque<Item>,
    lanes: HashMap<u64, Lane>,
}

impl StreamQueues {
    fn inflight(&self) -> usize {
        self.lanes.values().map(|lane| lane.inflight).sum()
    }

    fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.lanes.values().all(|l| l.is_empty() && l.inflight == 0)
    }
}

/// What a finished task reports.
enum Done {
    Batch(BatchReport),
    Discovered {
        stream: Arc<str>,
        result: Result<Arc<ShardMap>, ClientError>,
    },
    Quarantined {
        item: Box<Item>,
        reason: String,
        result: Result<(), String>,
    },
    QuarantineLost(String),
}

/// What a running task holds, so that it can be accounted for if it dies.
struct TaskInfo {
    stream: Arc<str>,
    work: Work,
}

enum Work {
    Discover,
    Append(BatchInfo),
    /// Writing to the quarantine file.
    Quarantine,
}

struct BatchInfo {
    shard: u64,
    records: usize,
    metrics: Arc<StreamMetrics>,
    /// Their numbers in the disk buffer.
    seqs: Vec<u64>,
}

pub(crate) struct Dispatcher {
    settings: Arc<Settings>,
    rule: BatchRule,
    client: Client,
    context: Arc<AppendContext>,
    inbox: mpsc::Receiver<Item>,
    inbox_open: bool,
    /// Rejections from the rules and render stages.
    rejects: mpsc::Receiver<Item>,
    rejects_open: bool,
    quarantine: Arc<Quarantine>,
    /// The disk buffer, when enabled: told which records are done.
    disk: Option<mpsc::UnboundedSender<Control>>,
    /// Records on disk not done yet (zero means the disk buffer is empty).
    disk_records: Option<Arc<dyn Fn() -> u64 + Send + Sync>>,
    /// With the disk buffer: where sent records are noted.
    sent: Option<SentLog>,
    memory: Arc<ByteBudget>,
    registry: Arc<Registry>,
    streams: HashMap<Arc<str>, StreamQueues>,
    tasks: JoinSet<Done>,
    running: HashMap<Id, TaskInfo>,
    /// Arrival order, for drop-oldest.
    next_order: u64,
    /// Set by shutdown: send everything now, stop at this instant.
    flush_until: Option<Instant>,
    flush: Option<oneshot::Receiver<Instant>>,
}

/// The parts the dispatcher is built from.
pub(crate) struct Parts {
    pub(crate) settings: Arc<Settings>,
    pub(crate) client: Client,
    pub(crate) context: Arc<AppendContext>,
    pub(crate) inbox: mpsc::Receiver<Item>,
    pub(crate) rejects: mpsc::Receiver<Item>,
    pub(crate) quarantine: Arc<Quarantine>,
    pub(crate) disk: Option<mpsc::UnboundedSender<Control>>,
    pub(crate) disk_records: Option<Arc<dyn Fn() -> u64 + Send + Sync>>,
    pub(crate) sent: Option<SentLog>,
    pub(crate) memory: Arc<ByteBudget>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) flush: oneshot::Receiver<Instant>,
}

impl Dispatcher {
    pub(crate) fn new(parts: Parts) -> Dispatcher {
        let settings = parts.settings;
        Dispatcher {
            rule: BatchRule {
                max_records: settings.max_records,
                max_bytes: settings.max_bytes,
                linger: settings.linger,
                send_when_idle: settings.send_when_idle,
                window: settings.inflight_per_shard,
            },
            settings,
            client: parts.client,
            context: parts.context,
            inbox: parts.inbox,
            inbox_open: true,
            rejects: parts.rejects,
            rejects_open: true,
            quarantine: parts.quarantine,
            disk: parts.disk,
            disk_records: parts.disk_records,
            sent: parts.sent,
            memory: parts.memory,
            registry: parts.registry,
            streams: HashMap::new(),
            tasks: JoinSet::new(),
            running: HashMap::new(),
            next_order: 0,
            flush_until: None,
            flush: Some(parts.flush),
        }
    }

    /// Runs until a flush ends; `true` if everything was drained by then.
    pub(crate) async fn run(mut self) -> bool {
        loop {
            if let Some(until) = self.flush_until {
                if self.drained() {
                    return true;
                }
                if Instant::now() >= until {
                    self.stop_now();
                    return false;
                }
            }
            let wake = self.next_wakeup();
            tokio::select! {
                biased;
                until = async { self.flush.as_mut()?.await.ok() }, if self.flush.is_some() => {
                    self.flush = None;
                    self.start_flush(until.unwrap_or_else(Instant::now));
                }
                done = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    match done {
                        Some(Ok((id, done))) => {
                            self.running.remove(&id);
                            self.finished(done);
                        }
                        Some(Err(error)) => self.task_died(error),
                        None => {}
                    }
                }
                item = self.inbox.recv(), if self.inbox_open => match item {
                    Some(item) => {
                        self.enqueue(item);
                        for _ in 0..INBOX_BURST {
                            match self.inbox.try_recv() {
                                Ok(item) => self.enqueue(item),
                                Err(_) => break,
                            }
                        }
                        self.pump_all();
                    }
                    None => self.inbox_open = false,
                },
                item = self.rejects.recv(), if self.rejects_open => match item {
                    Some(item) => {
                        self.enqueue(item);
                        self.pump_all();
                    }
                    None => self.rejects_open = false,
                },
                _ = sleep_until(wake), if wake.is_some() => {
                    self.expire();
                    self.pump_all();
                }
            }
        }
    }

    fn start_flush(&mut self, until: Instant) {
        self.flush_until = Some(until);
        if self.disk.is_none() {
            // No new records; those already in the channel are still taken.
            self.inbox.close();
        }
        self.rejects.close();
        self.pump_all();
    }

    /// Everything is appended (or failed): nothing queued, nothing in
    /// flight, nothing left on disk.
    fn drained(&self) -> bool {
        let memory_empty =
            self.tasks.is_empty() && self.streams.values().all(StreamQueues::is_idle);
        let rejects_done = !self.rejects_open;
        match &self.disk_records {
            None => memory_empty && !self.inbox_open && rejects_done,
            Some(disk_records) => memory_empty && rejects_done && disk_records() == 0,
        }
    }

    /// The flush deadline passed: give up on what is left.
    fn stop_now(&mut self) {
        self.tasks.abort_all();
        let disk = self.disk.is_some();
        for (_, info) in self.running.drain() {
            if let Work::Append(batch) = info.work {
                batch.metrics.inflight(-(batch.records as i64));
                if !disk {
                    for _ in 0..batch.records {
                        batch.metrics.dropped(DropReason::ResourceStopped);
                    }
                }
            }
        }
        let mut leftovers: Vec<Item> = std::iter::from_fn(|| self.inbox.try_recv().ok()).collect();
        leftovers.extend(std::iter::from_fn(|| self.rejects.try_recv().ok()));
        leftovers.extend(self.streams.values_mut().flat_map(|stream| {
            let pending: Vec<Item> = stream.pending.drain(..).collect();
            let queued: Vec<Item> = stream
                .lanes
                .values_mut()
                .flat_map(|l| l.drain().collect::<Vec<_>>())
                .collect();
            pending.into_iter().chain(queued)
        }));
        for item in leftovers {
            item.metrics.queued_bytes(-(item.bytes as i64));
            if disk {
                // Still in the disk buffer: appended after the restart.
                continue;
            }
            item.metrics.dropped(DropReason::ResourceStopped);
            if let Some(ack) = item.ack {
                ack.failed("weir stopped before the record was appended");
            }
        }
    }

    fn enqueue(&mut self, mut item: Item) {
        if let Some(dead) = item.dead_letter.as_ref().filter(|dead| dead.quarantine) {
            let reason = format!("{}; and there is no dead-letter stream", dead.reason);
            item.metrics.queued_bytes(-(item.bytes as i64));
            self.quarantine(item, reason);
            return;
        }
        let size = record_size(&item.record);
        if size > self.settings.max_record_bytes {
            item.metrics.queued_bytes(-(item.bytes as i64));
            let reason = format!(
                "the record is {size} bytes, over the limit of {} (sink.max_record_bytes; \
                 HStreamDB refuses it with StreamInvalidRecordSize)",
                self.settings.max_record_bytes
            );
            self.reject(item, "oversize", reason);
            return;
        }
        item.order = self.next_order;
        self.next_order += 1;
        let stream_name = item.stream.clone();
        let stream = self.streams.entry(stream_name.clone()).or_default();
        match (&stream.map, stream.stale) {
            (Some(map), false) => {
                let map = map.clone();
                self.route(&stream_name, &map, item);
            }
            _ => {
                stream.pending.push_back(item);
                if !stream.stale {
                    self.discover(&stream_name);
                }
            }
        }
        if self.settings.overflow == OverflowPolicy::DropOldest {
            self.evict();
        }
    }

    /// Puts a record in its shard's lane, or rejects it if no shard owns
    /// its key.
    fn route(&mut self, stream_name: &Arc<str>, map: &ShardMap, item: Item) {
        let key = weir_proto::record::key_of(&item.record);
        match map.shard_for_key(key) {
            Some(shard) => {
                if let Some(stream) = self.streams.get_mut(stream_name) {
                    stream.lanes.entry(shard).or_default().push(item);
                }
            }
            None => {
                let reason =
                    format!("stream {stream_name:?} has no shard for partition key {key:?}");
                item.metrics.queued_bytes(-(item.bytes as i64));
                self.reject(item, "no_shard", reason);
            }
        }
    }

    fn discover(&mut self, stream_name: &Arc<str>) {
        let Some(stream) = self.streams.get_mut(stream_name) else {
            return;
        };
        if stream.discovering {
            return;
        }
        stream.discovering = true;
        let client = self.client.clone();
        let name = stream_name.clone();
        let backoff = Backoff {
            min: self.settings.retry_min,
            max: self.settings.retry_max,
        };
        let context = self.context.clone();
        let handle = self.tasks.spawn(async move {
            let mut attempt = 0;
            let result = loop {
                match client.shards(&name).await {
                    Ok(map) => break Ok(map),
                    Err(error) if error.is_stream_missing() => break Err(error),
                    Err(error) => {
                        tracing::warn!(stream = %name, %error, "cannot discover the stream's shards; retrying");
                        context.status.send_modify(|status| {
                            status.last_error = Some(error.to_string());
                        });
                        tokio::time::sleep(backoff.delay(attempt)).await;
                        attempt = attempt.saturating_add(1);
                    }
                }
            };
            Done::Discovered {
                stream: name,
                result,
            }
        });
        self.running.insert(
            handle.id(),
            TaskInfo {
                stream: stream_name.clone(),
                work: Work::Discover,
            },
        );
    }

    fn finished(&mut self, done: Done) {
        match done {
            Done::Discovered { stream, result } => self.discovered(&stream, result),
            Done::Batch(report) => self.batch_done(report),
            Done::Quarantined {
                item,
                reason,
                result,
            } => self.quarantined(*item, reason, result),
            Done::QuarantineLost(error) => {
                tracing::error!(%error, "a quarantine write died; its message is not acknowledged");
            }
        }
    }

    fn discovered(&mut self, stream_name: &Arc<str>, result: Result<Arc<ShardMap>, ClientError>) {
        let Some(stream) = self.streams.get_mut(stream_name) else {
            return;
        };
        stream.discovering = false;
        stream.stale = false;
        // Lane by lane, in order, then what arrived while the shards were
        // unknown: each key's records keep their order.
        let mut held: Vec<Item> = Vec::new();
        for lane in stream.lanes.values_mut() {
            held.extend(lane.drain());
        }
        stream.lanes.retain(|_, lane| lane.inflight > 0);
        held.extend(stream.pending.drain(..));
        match result {
            Ok(map) => {
                stream.map = Some(map.clone());
                for item in held {
                    self.route(stream_name, &map, item);
                }
                self.pump(stream_name);
            }
            Err(error) => {
                stream.map = None;
                let reason = error.to_string();
                tracing::warn!(stream = %stream_name, %reason, records = held.len(), "the stream does not exist; its records are dead-lettered");
                for item in held {
                    item.metrics.queued_bytes(-(item.bytes as i64));
                    self.reject(item, "stream_missing", reason.clone());
                }
            }
        }
    }

    fn batch_done(&mut self, report: BatchReport) {
        let BatchReport {
            stream: stream_name,
            shard,
            records,
            appended,
            rejected,
            stream_missing,
            returned,
            why_returned,
        } = report;
        let metrics = appended
            .first()
            .or(returned.first())
            .or(rejected.first().map(|(item, ..)| item))
            .map(|item| item.metrics.clone());
        if let Some(metrics) = &metrics {
            metrics.inflight(-(records as i64));
        }
        let mut done_seqs = Vec::with_capacity(appended.len());
        let now_ms = now_ms();
        for item in appended {
            item.metrics
                .success(u64::try_from(now_ms.saturating_sub(item.event_time_ms)).unwrap_or(0));
            done_seqs.extend(item.seq);
            if let Some(origin) = item.dead_letter.as_ref().and_then(|d| d.origin.as_ref()) {
                origin.dead_lettered();
            }
            match (item.ack, item.dead_letter) {
                (Some(ack), Some(dead)) => ack.dead_lettered(dead.reason),
                (Some(ack), None) => ack.stored(),
                (None, _) => {}
            }
        }
        self.done(done_seqs);
        for (item, kind, reason) in rejected {
            self.reject(item, kind, reason);
        }
        let Some(stream) = self.streams.get_mut(&stream_name) else {
            return;
        };
        if let Some(lane) = stream.lanes.get_mut(&shard) {
            lane.inflight = lane.inflight.saturating_sub(1);
        }
        if stream_missing {
            stream.map = None;
            stream.stale = true;
            self.client.invalidate(&stream_name);
        }
        match why_returned {
            Some(Returned::ShardGone) => {
                tracing::info!(stream = %stream_name, shard, records = returned.len(), "a shard is gone; re-routing the stream's records");
                for item in &returned {
                    item.metrics.queued_bytes(item.bytes as i64);
                }
                stream.stale = true;
                stream.lanes.entry(shard).or_default().put_back(returned);
            }
            Some(Returned::Expired(reason)) => {
                // What waits behind an expired batch in its lane is later
                // in the same shard: appending it now would put it before
                // the expired records, which come back only when their
                // messages are delivered again. It goes back the same way.
                let behind: Vec<Item> = stream
                    .lanes
                    .get_mut(&shard)
                    .map(|lane| lane.drain().collect())
                    .unwrap_or_default();
                for item in returned {
                    self.drop_item(item, DropReason::Expired, &reason);
                }
                for item in behind {
                    item.metrics.queued_bytes(-(item.bytes as i64));
                    self.drop_item(
                        item,
                        DropReason::Expired,
                        "an earlier record of its shard expired; appending it first would reorder the key",
                    );
                }
            }
            None => {}
        }
        self.after_change(&stream_name);
    }

    /// After a batch returned: re-discover a stale stream whose batches are
    /// all back, or send more.
    fn after_change(&mut self, stream_name: &Arc<str>) {
        let Some(stream) = self.streams.get(stream_name) else {
            return;
        };
        if stream.stale || stream.map.is_none() {
            if stream.inflight() == 0 && (stream.stale || !stream.is_idle()) {
                self.discover(stream_name);
            }
        } else {
            self.pump(stream_name);
        }
    }

    /// A record that cannot be stored in its stream (and is no longer
    /// counted as queued): to the dead-letter stream if there is one (and
    /// this is not already a dead letter), else to the quarantine file;
    /// except that, with no dead-letter stream, a record whose stream is
    /// missing fails (its message is delivered again, and may find the
    /// stream re-created).
    fn reject(&mut self, mut item: Item, kind: &'static str, reason: String) {
        item.metrics.failed();
        let dead_letter_stream = self.settings.dead_letter_stream.clone();
        let first_refusal = item.dead_letter.is_none();
        if first_refusal {
            let rejection = Rejection {
                stage: Stage::Sink,
                kind,
                message: reason.clone(),
                stream: Some(item.stream.clone()),
                plugin: None,
                dead_letter_stream: None,
            };
            dead_letter::stamp(&mut item.record, &rejection);
        }
        match dead_letter_stream {
            Some(target) if first_refusal && item.stream != target => {
                tracing::debug!(stream = %item.stream, %reason, "dead-lettering a record");
                let metrics = self.registry.stream(&target);
                metrics.matched(item.bytes);
                item.dead_letter = Some(DeadLetter {
                    reason,
                    origin: Some(std::mem::replace(&mut item.metrics, metrics)),
                    quarantine: false,
                });
                item.stream = target;
                self.enqueue(item);
            }
            // A missing stream may come back (an operator re-creating it):
            // without a dead-letter stream the record is left for the
            // broker or device to deliver again, as before it was written.
            None if first_refusal && kind == "stream_missing" => {
                tracing::warn!(stream = %item.stream, %reason, "a record cannot be stored and there is no dead-letter stream; its message is left for redelivery");
                self.done(item.seq.into_iter().collect());
                if let Some(ack) = item.ack {
                    ack.failed(reason);
                }
            }
            _ => {
                let reason = match &item.dead_letter {
                    Some(dead) => format!(
                        "{}; and the dead-letter stream refused it: {reason}",
                        dead.reason
                    ),
                    None => format!("{reason}; and there is no dead-letter stream"),
                };
                self.quarantine(item, reason);
            }
        }
    }

    /// Writes a record to the quarantine file (on a blocking thread) and
    /// resolves its share *quarantined* once the line is on disk.
    fn quarantine(&mut self, item: Item, reason: String) {
        tracing::warn!(stream = %item.stream, %reason, "a record can be stored nowhere else; quarantining it");
        let stream = item.stream.clone();
        let quarantine = self.quarantine.clone();
        let handle = self.tasks.spawn(async move {
            let written = tokio::task::spawn_blocking(move || {
                let result = quarantine
                    .write(&[(&item.stream, &item.record, &reason)])
                    .map_err(|e| e.to_string());
                (item, reason, result)
            })
            .await;
            match written {
                Ok((item, reason, result)) => Done::Quarantined {
                    item: Box::new(item),
                    reason,
                    result,
                },
                // The item was lost with the thread: its share, dropped,
                // reports the message not stored.
                Err(error) => Done::QuarantineLost(error.to_string()),
            }
        });
        self.running.insert(
            handle.id(),
            TaskInfo {
                stream,
                work: Work::Quarantine,
            },
        );
    }

    fn quarantined(&mut self, item: Item, reason: String, result: Result<(), String>) {
        match result {
            Ok(()) => {
                match item.dead_letter.as_ref().and_then(|d| d.origin.as_ref()) {
                    Some(origin) => origin.quarantined(),
                    None => item.metrics.quarantined(),
                }
                self.done(item.seq.into_iter().collect());
                if let Some(ack) = item.ack {
                    ack.quarantined(reason);
                }
            }
            Err(error) => {
                // With the disk buffer the record stays there (it is not
                // marked done) and is tried again after a restart.
                tracing::error!(stream = %item.stream, %reason, %error, "a record could not be quarantined either");
                if let Some(ack) = item.ack {
                    ack.failed(format!("{reason}; and the quarantine file failed: {error}"));
                }
            }
        }
    }

    fn drop_item(&mut self, item: Item, why: DropReason, reason: &str) {
        item.metrics.dropped(why);
        tracing::warn!(stream = %item.stream, ?why, reason, "a record is dropped");
        self.done(item.seq.into_iter().collect());
        if let Some(ack) = item.ack {
            ack.failed(format!("dropped ({why:?}): {reason}"));
        }
    }

    fn done(&self, seqs: Vec<u64>) {
        if let Some(disk) = &self.disk
            && !seqs.is_empty()
        {
            let _ = disk.send(Control::Done(seqs));
        }
    }

    /// Memory buffer only: drops the records that waited longer than the
    /// request TTL (queued ones too, so a full in-flight window cannot make
    /// a queue grow for ever), and the rest of their lane with them.
    fn expire(&mut self) {
        if self.disk.is_some() {
            return;
        }
        let now = Instant::now();
        let ttl = self.settings.request_ttl;
        let mut expired = Vec::new();
        for stream in self.streams.values_mut() {
            while stream
                .pending
                .front()
                .is_some_and(|i| i.received + ttl <= now)
            {
                expired.extend(stream.pending.pop_front());
            }
            for lane in stream.lanes.values_mut() {
                // Everything behind an expired record in its lane goes with
                // it: appended now, it would land before the expired record,
                // which comes back only when its message is delivered again.
                if lane.front().is_some_and(|i| i.received + ttl <= now) {
                    expired.extend(lane.drain());
                }
            }
        }
        for item in expired {
            item.metrics.queued_bytes(-(item.bytes as i64));
            self.drop_item(
                item,
                DropReason::Expired,
                "waited longer than the request TTL",
            );
        }
    }

    /// Drop-oldest: while the memory bound is exceeded, drops the oldest
    /// queued record (records in flight cannot be taken back).
    fn evict(&mut self) {
        while self.memory.is_over() {
            let mut oldest: Option<(u64, Arc<str>, Option<u64>)> = None;
            for (name, stream) in &self.streams {
                if let Some(item) = stream.pending.front()
                    && oldest
                        .as_ref()
                        .is_none_or(|(order, ..)| item.order < *order)
                {
                    oldest = Some((item.order, name.clone(), None));
                }
                for (shard, lane) in &stream.lanes {
                    if let Some(item) = lane.front()
                        && oldest
                            .as_ref()
                            .is_none_or(|(order, ..)| item.order < *order)
                    {
                        oldest = Some((item.order, name.clone(), Some(*shard)));
                    }
                }
            }
            let Some((_, name, shard)) = oldest else {
                return;
            };
            let Some(stream) = self.streams.get_mut(&name) else {
                return;
            };
            let item = match shard {
                None => stream.pending.pop_front(),
                Some(shard) => stream.lanes.get_mut(&shard).and_then(Lane::pop_front),
            };
            if let Some(item) = item {
                item.metrics.queued_bytes(-(item.bytes as i64));
                self.drop_item(
                    item,
                    DropReason::QueueFull,
                    "the buffer is full (overflow policy drop_oldest)",
                );
            }
        }
    }

    fn pump_all(&mut self) {
        let names: Vec<Arc<str>> = self.streams.keys().cloned().collect();
        for name in names {
            self.pump(&name);
        }
    }

    /// Sends every batch of the stream that is ready.
    fn pump(&mut self, stream_name: &Arc<str>) {
        let Some(stream) = self.streams.get_mut(stream_name) else {
            return;
        };
        let Some(map) = stream.map.clone().filter(|_| !stream.stale) else {
            return;
        };
        let now = Instant::now();
        let flushing = self.flush_until.is_some();
        for (&shard, lane) in stream.lanes.iter_mut() {
            while lane.ready(&self.rule, now, flushing) {
                let batch = lane.take_batch(&self.rule);
                let Some(metrics) = batch.first().map(|item| item.metrics.clone()) else {
                    break;
                };
                let bytes: usize = batch.iter().map(|item| item.bytes).sum();
                metrics.queued_bytes(-(bytes as i64));
                metrics.inflight(batch.len() as i64);
                lane.inflight += 1;
                let records = batch.len();
                let seqs: Vec<u64> = batch.iter().filter_map(|item| item.seq).collect();
                if let Some(sent) = &mut self.sent
                    && !seqs.is_empty()
                {
                    // Before the Append can start: a crash from here on may
                    // leave these records stored and still in the buffer.
                    let running = &self.running;
                    sent.sent(&seqs, || {
                        running
                            .values()
                            .filter_map(|info| match &info.work {
                                Work::Append(batch) => Some(batch),
                                _ => None,
                            })
                            .flat_map(|batch| batch.seqs.iter().copied())
                            .collect()
                    });
                }
                let handle = self.tasks.spawn({
                    let context = self.context.clone();
                    let stream_name = stream_name.clone();
                    let map = map.clone();
                    async move {
                        Done::Batch(append::run(context, stream_name, shard, map, batch).await)
                    }
                });
                self.running.insert(
                    handle.id(),
                    TaskInfo {
                        stream: stream_name.clone(),
                        work: Work::Append(BatchInfo {
                            shard,
                            records,
                            metrics,
                            seqs,
                        }),
                    },
                );
            }
        }
        stream
            .lanes
            .retain(|_, lane| !lane.is_empty() || lane.inflight > 0);
    }

    /// A task panicked or was cancelled: its records are lost to this run
    /// (their shares were dropped, which reports them not stored; disk
    /// records stay on disk). Keep the lane usable.
    fn task_died(&mut self, error: tokio::task::JoinError) {
        tracing::error!(%error, "a sink task died");
        let Some(info) = self.running.remove(&error.id()) else {
            return;
        };
        let Some(stream) = self.streams.get_mut(&info.stream) else {
            return;
        };
        match info.work {
            Work::Append(batch) => {
                batch.metrics.inflight(-(batch.records as i64));
                if let Some(lane) = stream.lanes.get_mut(&batch.shard) {
                    lane.inflight = lane.inflight.saturating_sub(1);
                }
            }
            Work::Discover => stream.discovering = false,
            Work::Quarantine => return,
        }
        let name = info.stream.clone();
        self.after_change(&name);
    }

    /// The next instant something is due: a lane's linger, a record's TTL
    /// (memory buffer), the flush deadline.
    fn next_wakeup(&self) -> Option<Instant> {
        let ttl = (self.disk.is_none()).then_some(self.settings.request_ttl);
        let mut next = self.flush_until;
        if next.is_some() && self.disk.is_some() {
            // The disk thread marks records done on its own time: look
            // again soon whether everything is.
            next = next.map(|until| until.min(Instant::now() + DRAIN_POLL));
        }
        let mut consider = |at: Instant| {
            next = Some(next.map_or(at, |next: Instant| next.min(at)));
        };
        for stream in self.streams.values() {
            if let (Some(ttl), Some(item)) = (ttl, stream.pending.front()) {
                consider(item.received + ttl);
            }
            for lane in stream.lanes.values() {
                if stream.map.is_some()
                    && !stream.stale
                    && let Some(at) = lane.linger_deadline(&self.rule)
                {
                    consider(at);
                }
                if let (Some(ttl), Some(item)) = (ttl, lane.front()) {
                    consider(item.received + ttl);
                }
            }
        }
        next
    }
}

/// A record's size as HStreamDB measures it for a batch of one, without
/// compression: the encoded record and its length prefix.
fn record_size(record: &weir_proto::pb::HStreamRecord) -> usize {
    let len = prost::Message::encoded_len(record);
    1 + prost::length_delimiter_len(len) + len
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
