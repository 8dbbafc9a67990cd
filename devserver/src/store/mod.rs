//! The streams, shards and stored batches, in memory and, when the server has
//! a data directory, on disk.
//!
//! Every batch is kept in memory (this is a development server: the data set
//! is small, and reads never touch the disk); with a data directory each
//! batch is also written to its shard's log (`log_file`) before the append
//! is acknowledged, and stream definitions live in `meta.json` (`meta`).
//!
//! Layout of a data directory:
//!
//! ```text
//! LOCK                       held (flock) while a server uses the directory
//! meta.json                  streams, shards, nextShardId, generation
//! shards/<shard id>/<first batch id, 20 digits>.log
//! ```
//!
//! Ids. Shard ids come from a counter that is persisted and never reused, so
//! a stream that is deleted and created again gets new shard ids. Its first
//! value is derived from the wall clock (milliseconds × 1000), so even
//! in-memory servers started one after the other hand out different ids.
//! Batch ids look like LogDevice LSNs: `generation << 32 | sequence`, where the
//! generation is bumped and persisted every time a data directory is opened.
//! They therefore rise within a shard across restarts, as long as one run
//! appends fewer than 2^32 batches to a shard.
//!
//! Locking. The catalog (which streams exist) has one mutex; each shard has
//! its own, held while a batch is numbered, written and queued, so the order
//! of ids, of the file and of the in-memory queue always agree. Methods that
//! write files block and are called from `spawn_blocking`.

pub(crate) mod meta;

use crate::error::Error;
use crate::log_file::{DEFAULT_SEGMENT_BYTES, Entry, LogError, ShardLog};
use meta::{Meta, ShardMeta, StreamMeta};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use weir_proto::keyspace::{HashRange, divide_key_space};
use weir_proto::pb::BatchedRecord;

/// A stored batch, as appended and as read back.
pub(crate) type StoredBatch = Entry;

#[derive(Debug, Clone)]
pub(crate) struct StoreOptions {
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) fsync: bool,
    pub(crate) segment_bytes: u64,
}

impl StoreOptions {
    pub(crate) fn new(data_dir: Option<PathBuf>, fsync: bool) -> Self {
        StoreOptions {
            data_dir,
            fsync,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("stream {0} already exists")]
    StreamExists(String),
    #[error("shard {0} does not exist")]
    ShardNotFound(u64),
    #[error("shard {shard_id} is not a shard of stream {stream}")]
    ShardNotInStream { shard_id: u64, stream: String },
    #[error("a stream needs at least one shard")]
    NoShards,
    #[error("writing the batch failed: {0}")]
    Write(#[from] LogError),
    #[error("saving the stream metadata failed: {0}")]
    Meta(Error),
    #[error("the server is shutting down")]
    Closed,
}

/// Requested attributes of a new stream (already validated).
#[derive(Debug, Clone)]
pub(crate) struct NewStream {
    pub(crate) name: String,
    pub(crate) replication_factor: u32,
    pub(crate) backlog_secs: u32,
    pub(crate) shard_count: u32,
}

#[derive(Debug)]
pub(crate) struct Store {
    catalog: Mutex<Catalog>,
    disk: Option<Disk>,
    clock: Clock,
    /// The smallest batch id of this run: `generation << 32 | 1`.
    batch_id_floor: u64,
    segment_bytes: u64,
    fsync: bool,
}

#[derive(Debug)]
struct Disk {
    root: PathBuf,
    /// Holds the directory's flock; dropped on close so a new server can
    /// open the directory at once.
    lock: Mutex<Option<File>>,
}

impl Disk {
    fn shard_dir(&self, shard_id: u64) -> PathBuf {
        self.root.join("shards").join(shard_id.to_string())
    }
}

#[derive(Debug)]
struct Catalog {
    streams: BTreeMap<String, Arc<Stream>>,
    shards: HashMap<u64, ShardRef>,
    next_shard_id: u64,
    generation: u64,
    closed: bool,
}

impl Catalog {
    fn insert(&mut self, stream: Arc<Stream>) {
        for (index, shard) in stream.shards.iter().enumerate() {
            self.shards.insert(
                shard.id,
                ShardRef {
                    stream: stream.clone(),
                    index,
                },
            );
        }
        self.streams.insert(stream.name.clone(), stream);
    }

    fn remove(&mut self, name: &str) -> Option<Arc<Stream>> {
        let stream = self.streams.remove(name)?;
        for shard in &stream.shards {
            self.shards.remove(&shard.id);
        }
        Some(stream)
    }

    fn to_meta(&self) -> Meta {
        let mut meta = Meta::new(self.next_shard_id);
        meta.generation = self.generation;
        meta.streams = self.streams.values().map(|s| s.to_meta()).collect();
        meta
    }
}

/// A stream and its shards.
#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) name: String,
    pub(crate) replication_factor: u32,
    pub(crate) backlog_secs: u32,
    pub(crate) creation_ms: i64,
    pub(crate) shards: Vec<Shard>,
    /// Bumped after every append to any shard and on deletion: readers
    /// waiting for data subscribe here.
    changes: watch::Sender<u64>,
    deleted: AtomicBool,
}

impl Stream {
    fn new(meta: &StreamMeta, shards: Vec<Shard>) -> Self {
        Stream {
            name: meta.name.clone(),
            replication_factor: meta.replication_factor,
            backlog_secs: meta.backlog_duration,
            creation_ms: meta.creation_time_ms,
            shards,
            changes: watch::Sender::new(0),
            deleted: AtomicBool::new(false),
        }
    }

    fn to_meta(&self) -> StreamMeta {
        StreamMeta {
            name: self.name.clone(),
            replication_factor: self.replication_factor,
            backlog_duration: self.backlog_secs,
            creation_time_ms: self.creation_ms,
            shards: self
                .shards
                .iter()
                .map(|shard| {
                    let (start, end) = shard.range.to_wire();
                    ShardMeta {
                        id: shard.id,
                        start_hash_range_key: start,
                        end_hash_range_key: end,
                        epoch: shard.epoch,
                    }
                })
                .collect(),
        }
    }

    /// Wakes every reader of this stream.
    fn notify(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that sees every append and the deletion from now on.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Batches published before this time have outlived the backlog.
    pub(crate) fn min_publish_ms(&self, now_ms: i64) -> i64 {
        if self.backlog_secs == 0 {
            i64::MIN
        } else {
            now_ms - i64::from(self.backlog_secs) * 1000 + 1
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) id: u64,
    pub(crate) range: HashRange,
    pub(crate) epoch: u64,
    data: Mutex<ShardData>,
}

#[derive(Debug)]
struct ShardData {
    batches: VecDeque<StoredBatch>,
    last_batch_id: u64,
    log: Option<ShardLog>,
    gone: Option<Gone>,
}

#[derive(Debug, Clone, Copy)]
enum Gone {
    Deleted,
    Closed,
}

impl Shard {
    fn new(id: u64, range: HashRange, epoch: u64, log: Option<ShardLog>) -> Self {
        Shard {
            id,
            range,
            epoch,
            data: Mutex::new(ShardData {
                batches: VecDeque::new(),
                last_batch_id: 0,
                log,
                gone: None,
            }),
        }
    }

    /// Up to `max` batches with an id of at least `from`, skipping those
    /// published before `min_publish_ms`; `None` once the shard is deleted.
    pub(crate) fn read(
        &self,
        from: u64,
        max: usize,
        min_publish_ms: i64,
    ) -> Option<Vec<StoredBatch>> {
        let data = lock(&self.data);
        if matches!(data.gone, Some(Gone::Deleted)) {
            return None;
        }
        let start = data.batches.partition_point(|b| b.batch_id < from);
        Some(
            data.batches
                .range(start..)
                .skip_while(|b| b.publish_ms < min_publish_ms)
                .take(max)
                .cloned()
                .collect(),
        )
    }

    /// The id of the newest batch, 0 when nothing was ever appended.
    pub(crate) fn last_batch_id(&self) -> u64 {
        lock(&self.data).last_batch_id
    }

    /// The position of the first batch published at or after `time_ms`.
    pub(crate) fn position_at_time(&self, time_ms: i64) -> u64 {
        let data = lock(&self.data);
        let index = data.batches.partition_point(|b| b.publish_ms < time_ms);
        data.batches
            .get(index)
            .map_or(data.last_batch_id + 1, |b| b.batch_id)
    }
}

/// A shard found by id, with the stream that owns it.
#[derive(Debug, Clone)]
pub(crate) struct ShardRef {
    stream: Arc<Stream>,
    index: usize,
}

impl ShardRef {
    pub(crate) fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    pub(crate) fn shard(&self) -> &Shard {
        // `index` was taken from this very stream's shard list.
        &self.stream.shards[self.index]
    }
}

/// Wall-clock milliseconds that never go backwards, so publish times rise
/// within a shard and a reader waiting for a time can tell it has passed.
#[derive(Debug)]
struct Clock {
    last: AtomicI64,
}

impl Clock {
    fn new() -> Self {
        Clock {
            last: AtomicI64::new(0),
        }
    }

    fn now_ms(&self) -> i64 {
        let system = system_ms();
        self.last.fetch_max(system, Ordering::AcqRel).max(system)
    }

    fn observe(&self, ms: i64) {
        self.last.fetch_max(ms, Ordering::AcqRel);
    }
}

pub(crate) fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn first_shard_id() -> u64 {
    u64::try_from(system_ms())
        .unwrap_or(0)
        .saturating_mul(1000)
        .max(1)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data under these locks is consistent at every await-free step, so
    // a panic elsewhere does not make it unusable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    /// Opens the store: empty in memory, or loaded from the data directory
    /// (recovering torn log tails) and bumped to a new generation.
    pub(crate) fn open(options: StoreOptions) -> Result<Store, Error> {
        let clock = Clock::new();
        let Some(root) = options.data_dir else {
            return Ok(Store {
                catalog: Mutex::new(Catalog {
                    streams: BTreeMap::new(),
                    shards: HashMap::new(),
                    next_shard_id: first_shard_id(),
                    generation: 1,
                    closed: false,
                }),
                disk: None,
                clock,
                batch_id_floor: (1 << 32) | 1,
                segment_bytes: options.segment_bytes,
                fsync: options.fsync,
            });
        };
        let data_dir_error = |reason: String| Error::DataDir {
            path: root.clone(),
            reason,
        };
        fs::create_dir_all(&root).map_err(|e| data_dir_error(e.to_string()))?;
        if !root.is_dir() {
            return Err(data_dir_error("it is not a directory".into()));
        }
        let lock_path = root.join("LOCK");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| Error::Io {
                op: "open",
                path: lock_path.clone(),
                source,
            })?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(Error::DataDirLocked { path: root }),
            Err(TryLockError::Error(source)) => {
                return Err(Error::Io {
                    op: "lock",
                    path: lock_path,
                    source,
                });
            }
        }

        let mut meta = Meta::load(&root)?.unwrap_or_else(|| Meta::new(first_shard_id()));
        meta.generation += 1;
        if meta.generation > u64::from(u32::MAX) {
            return Err(data_dir_error(
                "it has been opened 2^32 times; batch ids would overflow".into(),
            ));
        }
        let disk = Disk {
            root,
            lock: Mutex::new(Some(lock_file)),
        };
        let now = clock.now_ms();
        let mut catalog = Catalog {
            streams: BTreeMap::new(),
            shards: HashMap::new(),
            next_shard_id: meta.next_shard_id,
            generation: meta.generation,
            closed: false,
        };
        for stream_meta in &meta.streams {
            let mut shards = Vec::with_capacity(stream_meta.shards.len());
            for shard_meta in &stream_meta.shards {
                let range = shard_meta
                    .range()
                    .map_err(|reason| Error::CorruptMetadata {
                        path: disk.root.join(meta::FILE_NAME),
                        reason,
                    })?;
                let (log, entries) = ShardLog::open(
                    disk.shard_dir(shard_meta.id),
                    options.segment_bytes,
                    options.fsync,
                )?;
                let shard = Shard::new(shard_meta.id, range, shard_meta.epoch, Some(log));
                if let Some(last) = entries.last() {
                    clock.observe(last.publish_ms);
                    let mut data = lock(&shard.data);
                    data.last_batch_id = last.batch_id;
                    data.batches = entries.into();
                }
                shards.push(shard);
            }
            let stream = Stream::new(stream_meta, shards);
            let min_publish = stream.min_publish_ms(now);
            for shard in &stream.shards {
                lock(&shard.data)
                    .batches
                    .retain(|b| b.publish_ms >= min_publish);
            }
            catalog.insert(Arc::new(stream));
        }
        remove_orphan_shard_dirs(&disk.root.join("shards"), &catalog)?;
        catalog.to_meta().store(&disk.root)?;
        tracing::info!(
            data_dir = %disk.root.display(),
            streams = catalog.streams.len(),
            generation = catalog.generation,
            "opened the data directory"
        );
        Ok(Store {
            catalog: Mutex::new(catalog),
            disk: Some(disk),
            clock,
            batch_id_floor: (meta.generation << 32) | 1,
            segment_bytes: options.segment_bytes,
            fsync: options.fsync,
        })
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub(crate) fn create_stream(&self, spec: NewStream) -> Result<Arc<Stream>, StoreError> {
        let ranges = divide_key_space(spec.shard_count).map_err(|_| StoreError::NoShards)?;
        let mut catalog = lock(&self.catalog);
        if catalog.closed {
            return Err(StoreError::Closed);
        }
        if catalog.streams.contains_key(&spec.name) {
            return Err(StoreError::StreamExists(spec.name));
        }
        let first_id = catalog.next_shard_id;
        let shards = (first_id..)
            .zip(ranges)
            .map(|(id, range)| {
                let log = self.disk.as_ref().map(|disk| {
                    ShardLog::open(disk.shard_dir(id), self.segment_bytes, self.fsync)
                        .map(|(log, _)| log)
                });
                Ok(Shard::new(
                    id,
                    range,
                    u64::from(spec.shard_count),
                    log.transpose()?,
                ))
            })
            .collect::<Result<Vec<_>, LogError>>()?;
        let meta = StreamMeta {
            name: spec.name,
            replication_factor: spec.replication_factor,
            backlog_duration: spec.backlog_secs,
            creation_time_ms: self.clock.now_ms(),
            shards: Vec::new(),
        };
        let stream = Arc::new(Stream::new(&meta, shards));
        // Ids are consumed even if saving fails below: never reusing an id
        // matters more than a dense sequence.
        catalog.next_shard_id = first_id + u64::from(spec.shard_count);
        catalog.insert(stream.clone());
        if let Some(disk) = &self.disk
            && let Err(e) = catalog.to_meta().store(&disk.root)
        {
            catalog.remove(&stream.name);
            return Err(StoreError::Meta(e));
        }
        Ok(stream)
    }

    /// Deletes a stream and its files; `Ok(false)` when it does not exist.
    pub(crate) fn delete_stream(&self, name: &str) -> Result<bool, StoreError> {
        let stream = {
            let mut catalog = lock(&self.catalog);
            if catalog.closed {
                return Err(StoreError::Closed);
            }
            let Some(stream) = catalog.remove(name) else {
                return Ok(false);
            };
            if let Some(disk) = &self.disk
                && let Err(e) = catalog.to_meta().store(&disk.root)
            {
                catalog.insert(stream);
                return Err(StoreError::Meta(e));
            }
            stream
        };
        stream.deleted.store(true, Ordering::Release);
        let mut logs = Vec::new();
        for shard in &stream.shards {
            let mut data = lock(&shard.data);
            data.gone = Some(Gone::Deleted);
            data.batches.clear();
            logs.extend(data.log.take());
        }
        stream.notify();
        for log in logs {
            // The metadata no longer lists the shard, so a directory left
            // behind is removed the next time the data directory is opened.
            if let Err(e) = log.destroy() {
                tracing::warn!(stream = name, error = %e, "could not remove a deleted shard's files");
            }
        }
        Ok(true)
    }

    pub(crate) fn stream(&self, name: &str) -> Option<Arc<Stream>> {
        lock(&self.catalog).streams.get(name).cloned()
    }

    /// Streams whose name starts with `prefix`, by name.
    pub(crate) fn streams(&self, prefix: &str) -> Vec<Arc<Stream>> {
        lock(&self.catalog)
            .streams
            .range(prefix.to_owned()..)
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(_, stream)| stream.clone())
            .collect()
    }

    pub(crate) fn shard(&self, shard_id: u64) -> Option<ShardRef> {
        lock(&self.catalog).shards.get(&shard_id).cloned()
    }

    /// Numbers, stores and publishes one batch; returns it as stored.
    pub(crate) fn append(
        &self,
        stream_name: &str,
        shard_id: u64,
        batch: &BatchedRecord,
    ) -> Result<StoredBatch, StoreError> {
        let found = {
            let catalog = lock(&self.catalog);
            if catalog.closed {
                return Err(StoreError::Closed);
            }
            catalog.shards.get(&shard_id).cloned()
        };
        let found = found.ok_or(StoreError::ShardNotFound(shard_id))?;
        if found.stream.name != stream_name {
            return Err(StoreError::ShardNotInStream {
                shard_id,
                stream: stream_name.to_owned(),
            });
        }
        let mut data = lock(&found.shard().data);
        match data.gone {
            Some(Gone::Deleted) => return Err(StoreError::ShardNotFound(shard_id)),
            Some(Gone::Closed) => return Err(StoreError::Closed),
            None => {}
        }
        let entry = StoredBatch {
            batch_id: (data.last_batch_id + 1).max(self.batch_id_floor),
            publish_ms: self.clock.now_ms(),
            compression: batch.compression_type,
            batch_size: batch.batch_size,
            payload: batch.payload.clone(),
        };
        if let Some(log) = data.log.as_mut() {
            log.append(&entry)?;
        }
        data.last_batch_id = entry.batch_id;
        data.batches.push_back(entry.clone());
        drop(data);
        found.stream.notify();
        Ok(entry)
    }

    /// Drops batches that outlived their stream's backlog, in memory and on
    /// disk (whole segments).
    pub(crate) fn remove_expired(&self) {
        let streams: Vec<_> = lock(&self.catalog)
            .streams
            .values()
            .filter(|s| s.backlog_secs > 0)
            .cloned()
            .collect();
        let now = self.clock.now_ms();
        for stream in streams {
            let min_publish = stream.min_publish_ms(now);
            for shard in &stream.shards {
                let mut data = lock(&shard.data);
                let before = data.batches.len();
                while data
                    .batches
                    .front()
                    .is_some_and(|b| b.publish_ms < min_publish)
                {
                    data.batches.pop_front();
                }
                let removed = before - data.batches.len();
                if removed > 0 {
                    tracing::debug!(stream = %stream.name, shard = shard.id, removed, "expired batches");
                }
                if let Some(Err(e)) = data.log.as_mut().map(|l| l.remove_expired(min_publish - 1)) {
                    tracing::warn!(stream = %stream.name, shard = shard.id, error = %e, "could not remove expired log segments");
                }
            }
        }
    }

    /// Stops accepting changes, closes every file and releases the data
    /// directory, so another server can open it right away.
    pub(crate) fn close(&self) {
        let streams: Vec<_> = {
            let mut catalog = lock(&self.catalog);
            catalog.closed = true;
            catalog.streams.values().cloned().collect()
        };
        for stream in streams {
            for shard in &stream.shards {
                let mut data = lock(&shard.data);
                data.gone.get_or_insert(Gone::Closed);
                data.log = None;
            }
        }
        if let Some(disk) = &self.disk {
            lock(&disk.lock).take();
        }
    }
}

/// Shard directories the metadata does not list belong to streams whose
/// deletion was interrupted; their data is already gone from the client's
/// point of view.
fn remove_orphan_shard_dirs(shards_dir: &Path, catalog: &Catalog) -> Result<(), Error> {
    let listing = match fs::read_dir(shards_dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                op: "list",
                path: shards_dir.to_owned(),
                source,
            });
        }
    };
    let known: HashSet<String> = catalog.shards.keys().map(u64::to_string).collect();
    for item in listing {
        let item = item.map_err(|source| Error::Io {
            op: "list",
            path: shards_dir.to_owned(),
            source,
        })?;
        let name = item.file_name().to_string_lossy().into_owned();
        if known.contains(&name) || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        tracing::warn!(dir = %item.path().display(), "removing the files of a deleted shard");
        fs::remove_dir_all(item.path()).map_err(|source| Error::Io {
            op: "remove",
            path: item.path(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn batch(payload: &'static [u8]) -> BatchedRecord {
        BatchedRecord {
            compression_type: 0,
            publish_time: None,
            batch_size: 1,
            payload: Bytes::from_static(payload),
        }
    }

    fn new_stream(name: &str, shard_count: u32) -> NewStream {
        NewStream {
            name: name.into(),
            replication_factor: 1,
            backlog_secs: 0,
            shard_count,
        }
    }

    fn open(dir: &Path) -> Store {
        Store::open(StoreOptions::new(Some(dir.to_owned()), false)).expect("store opens")
    }

    fn all(store: &Store, shard_id: u64) -> Vec<StoredBatch> {
        store
            .shard(shard_id)
            .expect("shard exists")
            .shard()
            .read(0, usize::MAX, i64::MIN)
            .expect("not deleted")
    }

    #[test]
    fn persists_streams_shards_and_batches_across_reopen() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = open(tmp.path());
        let stream = store.create_stream(new_stream("s1", 2)).expect("create");
        let ids: Vec<u64> = stream.shards.iter().map(|s| s.id).collect();
        let first = store.append("s1", ids[0], &batch(b"a")).expect("append");
        let second = store.append("s1", ids[0], &batch(b"b")).expect("append");
        let other = store.append("s1", ids[1], &batch(b"c")).expect("append");
        assert!(second.batch_id > first.batch_id);
        assert_eq!(first.batch_id >> 32, 1, "first generation");
        store.close();
        drop(store);

        let store = open(tmp.path());
        let reopened = store.stream("s1").expect("stream survives");
        assert_eq!(
            reopened.shards.iter().map(|s| s.id).collect::<Vec<_>>(),
            ids
        );
        assert_eq!(reopened.creation_ms, stream.creation_ms);
        assert_eq!(all(&store, ids[0]), vec![first.clone(), second.clone()]);
        assert_eq!(all(&store, ids[1]), vec![other]);
        let third = store.append("s1", ids[0], &batch(b"d")).expect("append");
        assert!(third.batch_id > second.batch_id);
        assert_eq!(third.batch_id >> 32, 2, "second generation");
        assert!(third.publish_ms >= second.publish_ms);
    }

    #[test]
    fn deleted_and_recreated_streams_get_new_shard_ids_and_no_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = open(tmp.path());
        let old = store.create_stream(new_stream("s", 1)).expect("create");
        let old_id = old.shards[0].id;
        store.append("s", old_id, &batch(b"a")).expect("append");
        assert!(tmp.path().join("shards").join(old_id.to_string()).exists());
        assert!(store.delete_stream("s").expect("delete"));
        assert!(old.is_deleted());
        assert!(!tmp.path().join("shards").join(old_id.to_string()).exists());
        assert!(!store.delete_stream("s").expect("second delete"));
        assert!(matches!(
            store.append("s", old_id, &batch(b"b")),
            Err(StoreError::ShardNotFound(_))
        ));
        let new = store.create_stream(new_stream("s", 1)).expect("recreate");
        assert!(new.shards[0].id > old_id);
        store.close();
        drop(store);
        let store = open(tmp.path());
        let new_ids: Vec<u64> = store.streams("").iter().map(|s| s.shards[0].id).collect();
        assert_eq!(new_ids, vec![new.shards[0].id]);
        let newer = store.create_stream(new_stream("t", 1)).expect("create");
        assert!(
            newer.shards[0].id > new.shards[0].id,
            "ids are never reused"
        );
    }

    #[test]
    fn a_data_directory_is_used_by_one_server_at_a_time() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = open(tmp.path());
        let err = Store::open(StoreOptions::new(Some(tmp.path().to_owned()), false))
            .expect_err("second open must fail");
        assert!(matches!(err, Error::DataDirLocked { .. }), "{err}");
        store.close();
        open(tmp.path());
    }

    #[test]
    fn a_corrupt_log_stops_the_open_with_file_and_offset() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = open(tmp.path());
        let id = store
            .create_stream(new_stream("s", 1))
            .expect("create")
            .shards[0]
            .id;
        for payload in [b"aaaa", b"bbbb", b"cccc"] {
            store.append("s", id, &batch(payload)).expect("append");
        }
        store.close();
        drop(store);
        let dir = tmp.path().join("shards").join(id.to_string());
        let file = fs::read_dir(&dir)
            .expect("shard dir")
            .next()
            .expect("a segment")
            .expect("entry")
            .path();
        let mut data = fs::read(&file).expect("read");
        data[8 + 12] ^= 0x40; // inside the first frame's body
        fs::write(&file, &data).expect("write");
        let err = Store::open(StoreOptions::new(Some(tmp.path().to_owned()), false))
            .expect_err("corruption");
        match err {
            Error::CorruptLog { path, offset, .. } => {
                assert_eq!(path, file);
                assert_eq!(offset, 8);
            }
            other => panic!("expected CorruptLog, got {other}"),
        }
    }

    #[test]
    fn orphaned_shard_directories_are_removed_on_open() {
        let tmp = tempfile::tempdir().expect("tempdir");
        open(tmp.path()).close();
        let orphan = tmp.path().join("shards").join("42");
        fs::create_dir_all(&orphan).expect("mkdir");
        open(tmp.path());
        assert!(!orphan.exists());
    }

    #[test]
    fn expired_batches_are_skipped_and_removed() {
        let store = Store::open(StoreOptions::new(None, false)).expect("in memory");
        let stream = store
            .create_stream(NewStream {
                backlog_secs: 1,
                ..new_stream("s", 1)
            })
            .expect("create");
        let id = stream.shards[0].id;
        let stored = store.append("s", id, &batch(b"a")).expect("append");
        let shard = store.shard(id).expect("shard");
        let fresh = stream.min_publish_ms(stored.publish_ms);
        assert_eq!(shard.shard().read(0, 10, fresh).expect("read").len(), 1);
        let later = stream.min_publish_ms(stored.publish_ms + 1000);
        assert!(shard.shard().read(0, 10, later).expect("read").is_empty());
    }

    #[test]
    fn reads_start_at_positions() {
        let store = Store::open(StoreOptions::new(None, false)).expect("in memory");
        let id = store
            .create_stream(new_stream("s", 1))
            .expect("create")
            .shards[0]
            .id;
        let a = store.append("s", id, &batch(b"a")).expect("append");
        let b = store.append("s", id, &batch(b"b")).expect("append");
        let shard = store.shard(id).expect("shard");
        let shard = shard.shard();
        assert_eq!(
            shard.read(b.batch_id, 10, i64::MIN).expect("read"),
            vec![b.clone()]
        );
        assert_eq!(shard.read(0, 1, i64::MIN).expect("read"), vec![a.clone()]);
        assert_eq!(shard.last_batch_id(), b.batch_id);
        assert_eq!(shard.position_at_time(a.publish_ms), a.batch_id);
        assert_eq!(shard.position_at_time(b.publish_ms + 1), b.batch_id + 1);
        assert!(matches!(
            store.append("other", id, &batch(b"c")),
            Err(StoreError::ShardNotInStream { .. })
        ));
    }
}
