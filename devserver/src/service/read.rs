//! Reading: shard readers (CreateShardReader + ReadShard) and the
//! server-streaming reads (ReadShardStream, ReadStream).
//!
//! Positions are batch ids: a reader at position `p` next returns the first
//! batch whose id is at least `p`. Ids only grow, so positions stay valid
//! when old batches expire. Offsets map to positions as in HStreamDB:
//! EARLIEST is the first batch kept, LATEST is just past the newest batch,
//! a record id is its batch (the whole batch is returned, whatever the
//! batchIndex), a timestamp is the first batch published at or after it.
//!
//! Waiting never polls: a reader subscribes to its stream's change signal
//! before looking for data, so an append that lands between the look and
//! the wait still wakes it.

use super::error::ApiError;
use crate::store::{ShardRef, Store, StoredBatch, Stream};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use weir_proto::pb::{
    BatchedRecord, ReceivedRecord, RecordId, ShardOffset, SpecialOffset, StreamOffset,
    shard_offset, stream_offset,
};

/// Batches per streamed message, as HStreamDB's stream readers send.
const BATCHES_PER_MESSAGE: usize = 10;

/// Payload bytes per streamed message (one batch may exceed it alone), so a
/// message stays under gRPC clients' default 4 MiB receive limit.
const BYTES_PER_MESSAGE: usize = 3 * 1024 * 1024;

/// An offset from either offset message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Offset {
    Earliest,
    Latest,
    BatchId(u64),
    Time(i64),
}

impl Offset {
    fn from_special(value: i32) -> Result<Offset, ApiError> {
        match SpecialOffset::try_from(value) {
            Ok(SpecialOffset::Earliest) => Ok(Offset::Earliest),
            Ok(SpecialOffset::Latest) => Ok(Offset::Latest),
            Err(_) => Err(ApiError::InvalidShardOffset(format!(
                "unknown special offset {value}"
            ))),
        }
    }

    pub(crate) fn from_shard(offset: Option<&ShardOffset>) -> Result<Option<Offset>, ApiError> {
        let Some(offset) = offset else {
            return Ok(None);
        };
        Ok(Some(match &offset.offset {
            None => return Err(ApiError::InvalidShardOffset("the offset is empty".into())),
            Some(shard_offset::Offset::SpecialOffset(v)) => Offset::from_special(*v)?,
            Some(shard_offset::Offset::RecordOffset(id)) => Offset::BatchId(id.batch_id),
            Some(shard_offset::Offset::TimestampOffset(t)) => Offset::Time(t.timestamp_in_ms),
        }))
    }

    pub(crate) fn from_stream(offset: Option<&StreamOffset>) -> Result<Option<Offset>, ApiError> {
        let Some(offset) = offset else {
            return Ok(None);
        };
        Ok(Some(match &offset.offset {
            None => return Err(ApiError::InvalidShardOffset("the offset is empty".into())),
            Some(stream_offset::Offset::SpecialOffset(v)) => Offset::from_special(*v)?,
            Some(stream_offset::Offset::TimestampOffset(t)) => Offset::Time(t.timestamp_in_ms),
        }))
    }
}

/// Where a read starts in one shard.
#[derive(Debug, Clone, Copy)]
struct Start {
    position: u64,
    min_publish_ms: i64,
}

fn start_of(shard: &ShardRef, offset: Offset) -> Start {
    let shard = shard.shard();
    let (position, min_publish_ms) = match offset {
        Offset::Earliest => (0, i64::MIN),
        Offset::Latest => (shard.last_batch_id() + 1, i64::MIN),
        Offset::BatchId(id) => (id, i64::MIN),
        // Keep the time as a filter too: batches appended later but
        // published before it (a future timestamp) must not be returned.
        Offset::Time(ms) => (shard.position_at_time(ms), ms),
    };
    Start {
        position,
        min_publish_ms,
    }
}

/// Where a streaming read stops in one shard.
#[derive(Debug, Clone, Copy)]
enum End {
    Never,
    /// Before this batch id.
    Before(u64),
    /// After the last batch published at or before this time.
    After(i64),
}

fn end_of(shard: &ShardRef, offset: Option<Offset>) -> End {
    match offset {
        None => End::Never,
        Some(Offset::Earliest) => End::Before(0),
        Some(Offset::Latest) => End::Before(shard.shard().last_batch_id() + 1),
        Some(Offset::BatchId(id)) => End::Before(id.saturating_add(1)),
        Some(Offset::Time(ms)) => End::After(ms),
    }
}

/// The reply for one stored batch: one record id per record.
pub(crate) fn received(shard_id: u64, batch: StoredBatch) -> ReceivedRecord {
    ReceivedRecord {
        record_ids: (0..batch.batch_size)
            .map(|batch_index| RecordId {
                shard_id,
                batch_id: batch.batch_id,
                batch_index,
            })
            .collect(),
        record: Some(BatchedRecord {
            compression_type: batch.compression,
            publish_time: Some(timestamp(batch.publish_ms)),
            batch_size: batch.batch_size,
            payload: batch.payload,
        }),
    }
}

pub(crate) fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        // Below 1e9 by construction.
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

/// One shard's progress in a streaming read.
#[derive(Debug)]
struct Cursor {
    shard: ShardRef,
    start: Start,
    end: End,
    done: bool,
}

impl Cursor {
    fn new(
        shard: ShardRef,
        from: Option<Offset>,
        until: Option<Offset>,
    ) -> Result<Cursor, ApiError> {
        let start = start_of(&shard, from.unwrap_or(Offset::Earliest));
        let end = end_of(&shard, until);
        if let End::Before(end) = end
            && end < start.position
        {
            return Err(ApiError::ConflictShardReaderOffset(format!(
                "shard {}: the start (batch id {}) is after the end (batch id {})",
                shard.shard().id,
                start.position,
                end.saturating_sub(1)
            )));
        }
        Ok(Cursor {
            shard,
            start,
            end,
            done: false,
        })
    }

    /// Takes up to `max` batches that are ready and notes when the end is
    /// reached; `None` when the shard was deleted.
    fn take(&mut self, store: &Store, max: usize) -> Option<Vec<StoredBatch>> {
        // Both are read before the batches: whatever is appended afterwards
        // has a larger id and a later publish time than these snapshots.
        let tail = self.shard.shard().last_batch_id();
        let now = store.now_ms();
        let min_publish = self
            .start
            .min_publish_ms
            .max(self.shard.stream().min_publish_ms(now));
        let mut batches = self
            .shard
            .shard()
            .read(self.start.position, max, min_publish)?;
        let drained = batches.len() < max;
        let read = batches.len();
        match self.end {
            End::Never => {}
            End::Before(end) => {
                batches.retain(|b| b.batch_id < end);
                self.done = batches.len() < read || (drained && tail + 1 >= end);
            }
            End::After(ms) => {
                batches.retain(|b| b.publish_ms <= ms);
                self.done = batches.len() < read || (drained && now > ms);
            }
        }
        if let Some(last) = batches.last() {
            self.start.position = last.batch_id + 1;
        }
        Some(batches)
    }

    /// When the end time passes, if this cursor waits for one.
    fn end_deadline(&self, store: &Store) -> Option<Instant> {
        match self.end {
            End::After(ms) if !self.done => {
                let wait = ms.saturating_sub(store.now_ms()).saturating_add(1).max(0);
                Some(Instant::now() + Duration::from_millis(wait.unsigned_abs()))
            }
            _ => None,
        }
    }
}

/// Context a read needs besides its request.
#[derive(Debug, Clone)]
pub(crate) struct ReadContext {
    pub(crate) store: Arc<Store>,
    /// Turns true when the server shuts down; open reads end then.
    pub(crate) stop: watch::Receiver<bool>,
}

/// A streaming read over some shards of one stream: sends batches as they
/// are (or become) available until every cursor reaches its end,
/// `max_batches` (0 = no limit) are sent, the client goes away or the server
/// stops.
pub(crate) fn spawn_stream_read<T: Send + 'static>(
    context: ReadContext,
    stream: Arc<Stream>,
    shards: Vec<ShardRef>,
    from: Option<Offset>,
    until: Option<Offset>,
    max_batches: u64,
    wrap: fn(Vec<ReceivedRecord>) -> T,
) -> Result<ReceiverStream<Result<T, Status>>, ApiError> {
    let mut cursors = shards
        .into_iter()
        .map(|shard| Cursor::new(shard, from, until))
        .collect::<Result<Vec<_>, _>>()?;
    let (tx, rx) = mpsc::channel(4);
    let ReadContext { store, mut stop } = context;
    tokio::spawn(async move {
        let mut changes = stream.subscribe();
        let mut remaining = if max_batches == 0 {
            u64::MAX
        } else {
            max_batches
        };
        let deleted = || Status::from(ApiError::StreamNotFound(stream.name.clone()));
        loop {
            changes.borrow_and_update();
            let mut sent = false;
            for cursor in cursors.iter_mut().filter(|c| !c.done) {
                let max = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(BATCHES_PER_MESSAGE);
                let Some(batches) = cursor.take(&store, max) else {
                    let _ = tx.send(Err(deleted())).await;
                    return;
                };
                if batches.is_empty() {
                    continue;
                }
                remaining -= batches.len() as u64;
                sent = true;
                let shard_id = cursor.shard.shard().id;
                for message in split_by_size(batches) {
                    let records = message.into_iter().map(|b| received(shard_id, b)).collect();
                    if tx.send(Ok(wrap(records))).await.is_err() {
                        return;
                    }
                }
                if remaining == 0 {
                    return;
                }
            }
            if cursors.iter().all(|c| c.done) {
                return;
            }
            if sent {
                continue;
            }
            if stream.is_deleted() {
                let _ = tx.send(Err(deleted())).await;
                return;
            }
            let deadline = cursors.iter().filter_map(|c| c.end_deadline(&store)).min();
            tokio::select! {
                _ = changes.changed() => {}
                () = tx.closed() => return,
                _ = stop.wait_for(|stopped| *stopped) => return,
                () = sleep_until(deadline) => {}
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}

/// Groups batches into messages of at most [`BYTES_PER_MESSAGE`] payload
/// bytes, keeping their order.
fn split_by_size(batches: Vec<StoredBatch>) -> Vec<Vec<StoredBatch>> {
    let mut messages: Vec<Vec<StoredBatch>> = Vec::new();
    let mut bytes = 0;
    for batch in batches {
        let size = batch.payload.len();
        match messages.last_mut() {
            Some(current) if bytes + size <= BYTES_PER_MESSAGE => {
                bytes += size;
                current.push(batch);
            }
            _ => {
                bytes = size;
                messages.push(vec![batch]);
            }
        }
    }
    messages
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A shard reader created by CreateShardReader.
#[derive(Debug)]
struct Reader {
    shard_id: u64,
    start: Start,
    timeout: Duration,
}

/// The shard readers of this server, by id.
#[derive(Debug, Default)]
pub(crate) struct Readers {
    readers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Reader>>>>,
}

impl Readers {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<Reader>>>> {
        self.readers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a reader at `offset` of a shard of `stream_name`.
    pub(crate) fn create(
        &self,
        store: &Store,
        id: &str,
        stream_name: &str,
        shard_id: u64,
        offset: Offset,
        timeout_ms: u32,
    ) -> Result<(), ApiError> {
        let mut readers = self.map();
        if readers.contains_key(id) {
            return Err(ApiError::ShardReaderExists(id.to_owned()));
        }
        let shard = store
            .shard(shard_id)
            .filter(|s| s.stream().name == stream_name)
            .ok_or(ApiError::ShardNotFound(shard_id))?;
        let reader = Reader {
            shard_id,
            start: start_of(&shard, offset),
            timeout: Duration::from_millis(u64::from(timeout_ms)),
        };
        readers.insert(id.to_owned(), Arc::new(tokio::sync::Mutex::new(reader)));
        Ok(())
    }

    pub(crate) fn delete(&self, id: &str) -> Result<(), ApiError> {
        self.map()
            .remove(id)
            .map(drop)
            .ok_or_else(|| ApiError::ShardReaderNotExists(id.to_owned()))
    }

    pub(crate) fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.map().keys().cloned().collect();
        ids.sort_unstable();
        ids
    }

    /// Returns up to `max` batches from the reader's position, waiting up to
    /// the reader's timeout when none is there yet. Calls on one reader are
    /// served one at a time.
    pub(crate) async fn read(
        &self,
        context: &ReadContext,
        id: &str,
        max: u32,
    ) -> Result<Vec<ReceivedRecord>, ApiError> {
        let reader = self
            .map()
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::ShardReaderNotExists(id.to_owned()))?;
        let mut reader = reader.lock().await;
        let shard = context
            .store
            .shard(reader.shard_id)
            .ok_or(ApiError::ShardNotFound(reader.shard_id))?;
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        let deadline = Instant::now() + reader.timeout;
        let mut changes = shard.stream().subscribe();
        let mut stop = context.stop.clone();
        loop {
            changes.borrow_and_update();
            let min_publish = reader
                .start
                .min_publish_ms
                .max(shard.stream().min_publish_ms(context.store.now_ms()));
            let batches = shard
                .shard()
                .read(reader.start.position, max, min_publish)
                .ok_or(ApiError::ShardNotFound(reader.shard_id))?;
            if let Some(last) = batches.last() {
                reader.start.position = last.batch_id + 1;
            }
            if !batches.is_empty() || max == 0 {
                let shard_id = reader.shard_id;
                return Ok(batches.into_iter().map(|b| received(shard_id, b)).collect());
            }
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep_until(deadline) => return Ok(Vec::new()),
                _ = stop.wait_for(|stopped| *stopped) => return Ok(Vec::new()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn batch(id: u64, size: usize) -> StoredBatch {
        StoredBatch {
            batch_id: id,
            publish_ms: 0,
            compression: 0,
            batch_size: 1,
            payload: Bytes::from(vec![0; size]),
        }
    }

    #[test]
    fn messages_stay_under_the_size_budget_in_order() {
        let mb = 1024 * 1024;
        let sizes = [mb, mb, mb, 5 * mb, 10, 2 * mb];
        let batches = (0..).zip(sizes).map(|(id, size)| batch(id, size)).collect();
        let ids: Vec<Vec<u64>> = split_by_size(batches)
            .iter()
            .map(|m| m.iter().map(|b| b.batch_id).collect())
            .collect();
        assert_eq!(ids, vec![vec![0, 1, 2], vec![3], vec![4, 5]]);
    }
}
