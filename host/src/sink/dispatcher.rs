//! The dispatcher: one task that owns every queue of the sink and decides
//! what is sent when.
//!
//! Records arrive (from senders, or from the disk buffer) and are routed by
//! partition key to their stream's shard lane ([`Lane`]); lanes close
//! batches and hand them to append tasks, at most `inflight_per_shard` per
//! lane. Append tasks report back; the dispatcher then resolves ack shares,
//! updates metrics, tells the disk buffer which records are done,
//! dead-letters what cannot be stored, and re-routes what has to move.
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
use super::disk::{Control, SentLog};
use super::metrics::{DropReason, Registry, StreamMetrics};
use super::retry::Backoff;
use super::{DeadLetter, Item};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use weir_proto::keyspace::ShardMap;

/// Attribute names on a dead-lettered record.
pub(crate) const DEAD_LETTER_STREAM: &str = "weir.dead_letter.stream";
pub(crate) const DEAD_LETTER_REASON: &str = "weir.dead_letter.reason";

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
}

/// What a running task holds, so that it can be accounted for if it dies.
struct TaskInfo {
    stream: Arc<str>,
    /// For an append task.
    batch: Option<BatchInfo>,
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
        self.pump_all();
    }

    /// Everything is appended (or failed): nothing queued, nothing in
    /// flight, nothing left on disk.
    fn drained(&self) -> bool {
        let memory_empty =
            self.tasks.is_empty() && self.streams.values().all(StreamQueues::is_idle);
        match &self.disk_records {
            None => memory_empty && !self.inbox_open,
            Some(disk_records) => memory_empty && disk_records() == 0,
        }
    }

    /// The flush deadline passed: give up on what is left.
    fn stop_now(&mut self) {
        self.tasks.abort_all();
        let disk = self.disk.is_some();
        for (_, info) in self.running.drain() {
            if let Some(batch) = info.batch {
                batch.metrics.inflight(-(batch.records as i64));
                if !disk {
                    for _ in 0..batch.records {
                        batch.metrics.dropped(DropReason::ResourceStopped);
                    }
                }
            }
        }
        let mut leftovers: Vec<Item> = std::iter::from_fn(|| self.inbox.try_recv().ok()).collect();
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
                self.reject(item, reason);
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
                batch: None,
            },
        );
    }

    fn finished(&mut self, done: Done) {
        match done {
            Done::Discovered { stream, result } => self.discovered(&stream, result),
            Done::Batch(report) => self.batch_done(report),
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
                    self.reject(item, reason.clone());
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
            .or(rejected.first().map(|(item, _)| item))
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
            match (item.ack, item.dead_letter) {
                (Some(ack), Some(dead)) => {
                    dead.origin.dead_lettered();
                    ack.dead_lettered(dead.reason);
                }
                (Some(ack), None) => ack.stored(),
                (None, Some(dead)) => dead.origin.dead_lettered(),
                (None, None) => {}
            }
        }
        self.done(done_seqs);
        for (item, reason) in rejected {
            self.reject(item, reason);
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
                for item in returned {
                    self.drop_item(item, DropReason::Expired, &reason);
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
    /// this is not already a dead letter), otherwise failed.
    fn reject(&mut self, mut item: Item, reason: String) {
        item.metrics.failed();
        let dead_letter_stream = self.settings.dead_letter_stream.clone();
        match dead_letter_stream {
            Some(target) if item.dead_letter.is_none() && item.stream != target => {
                tracing::debug!(stream = %item.stream, %reason, "dead-lettering a record");
                if let Some(header) = item.record.header.as_mut() {
                    header
                        .attributes
                        .insert(DEAD_LETTER_STREAM.into(), item.stream.to_string());
                    header
                        .attributes
                        .insert(DEAD_LETTER_REASON.into(), reason.clone());
                }
                let metrics = self.registry.stream(&target);
                metrics.matched(item.bytes);
                item.dead_letter = Some(DeadLetter {
                    reason,
                    origin: std::mem::replace(&mut item.metrics, metrics),
                });
                item.stream = target;
                self.enqueue(item);
            }
            _ => {
                let reason = match &item.dead_letter {
                    Some(dead) => format!(
                        "{}; and the dead-letter stream refused it: {reason}",
                        dead.reason
                    ),
                    None => reason,
                };
                tracing::warn!(stream = %item.stream, %reason, "a record cannot be stored");
                self.done(item.seq.into_iter().collect());
                if let Some(ack) = item.ack {
                    ack.failed(reason);
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
    /// a queue grow for ever).
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
                while lane.front().is_some_and(|i| i.received + ttl <= now) {
                    expired.extend(lane.pop_front());
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
                            .filter_map(|info| info.batch.as_ref())
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
                        batch: Some(BatchInfo {
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
        match info.batch {
            Some(batch) => {
                batch.metrics.inflight(-(batch.records as i64));
                if let Some(lane) = stream.lanes.get_mut(&batch.shard) {
                    lane.inflight = lane.inflight.saturating_sub(1);
                }
            }
            None => stream.discovering = false,
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
