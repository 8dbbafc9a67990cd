//! The disk buffer: a write-ahead log of records, so that what the sink
//! acknowledged survives a crash and a restart.
//!
//! No crate fitted: the queues on crates.io have one read cursor, while
//! records here complete out of order (shards and streams progress
//! independently), and the duplicate window after a crash must stay bounded
//! by what was in flight, not by the slowest shard. So the log is weir's
//! own: segment files of checksummed, numbered frames ([`format`]), plus a
//! marks file per segment recording which records were appended.
//!
//! One thread owns the directory. Senders hand it records over a bounded
//! channel; it writes them in groups (group commit), forces them to disk as
//! the fsync policy says, and only then resolves their ack shares as stored.
//! Records go on to the dispatcher straight away while the memory budget has
//! room; otherwise they stay on disk only and are read back when room frees
//! up (the spill). The dispatcher reports each record that is done
//! (appended, dead-lettered or failed for good); the thread writes that to
//! the marks file and deletes a segment once all its records are done. The
//! dispatcher notes in a sent log which records it is about to append, so
//! that a restart can count the replayed records that may be duplicates.
//!
//! At start every segment is scanned: a torn tail is cut, corrupt frames are
//! skipped and counted, an unreadable segment is renamed `*.corrupt` and
//! reported, and every record without a mark is replayed. Nothing is ever
//! wiped at start.

pub(crate) mod format;

use super::Item;
use super::budget::{ByteBudget, Permit};
use super::config::{DiskSettings, FsyncPolicy};
use super::metrics::{DiskSnapshot, Registry};
use bytes::Bytes;
use format::{FrameLoc, Header};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Records gathered into one write at most.
const GROUP_RECORDS: usize = 1024;
const GROUP_BYTES: usize = 4 * 1024 * 1024;
/// How much of a segment is read at once when records are read back.
const READ_CHUNK: usize = 256 * 1024;
/// The log of records whose Append was sent (see [`SentLog`]).
const SENT_LOG: &str = "sent.log";
/// Size at which the sent log is rewritten with only what is in flight.
const SENT_LOG_LIMIT: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum DiskError {
    #[error("disk buffer {}: {action}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    #[error(
        "disk buffer {} is in use by another weir (its LOCK file is locked)",
        dir.display()
    )]
    Locked { dir: PathBuf },
    #[error("the disk buffer thread stopped during start")]
    Thread,
}

/// What the dispatcher tells the disk thread.
#[derive(Debug)]
pub(crate) enum Control {
    /// These records are done: appended, dead-lettered or failed for good.
    Done(Vec<u64>),
    /// Stop taking records; exit once the dispatcher has gone.
    Close,
}

/// Counters the disk thread keeps for snapshots.
#[derive(Debug, Default)]
pub(crate) struct DiskStats {
    segments: AtomicU64,
    records: AtomicU64,
    corrupt_segments: AtomicU64,
    corrupt_bytes: AtomicU64,
    replayed: AtomicU64,
    in_doubt: AtomicU64,
    torn_bytes: AtomicU64,
}

impl DiskStats {
    pub(crate) fn snapshot(&self, budget: &ByteBudget) -> DiskSnapshot {
        DiskSnapshot {
            bytes: budget.used(),
            limit: budget.limit(),
            segments: self.segments.load(Relaxed),
            records: self.records.load(Relaxed),
            corrupt_segments: self.corrupt_segments.load(Relaxed),
            corrupt_bytes: self.corrupt_bytes.load(Relaxed),
            replayed: self.replayed.load(Relaxed),
            in_doubt: self.in_doubt.load(Relaxed),
            torn_bytes: self.torn_bytes.load(Relaxed),
        }
    }
}

/// The running disk buffer, as the rest of the sink sees it.
#[derive(Debug)]
pub(crate) struct Disk {
    /// Records to write (each with its ack share and disk bytes taken).
    pub(crate) writes: mpsc::Sender<Item>,
    pub(crate) control: mpsc::UnboundedSender<Control>,
    pub(crate) budget: Arc<ByteBudget>,
    /// Bytes of records on their way to the thread (held by their items
    /// until written), so that a slow disk cannot pile records up in memory.
    pub(crate) handoff: Arc<ByteBudget>,
    pub(crate) stats: Arc<DiskStats>,
    /// Dropping it makes the thread stop at once (a crash, as far as the
    /// files are concerned).
    abort: Option<oneshot::Sender<()>>,
    exited: Option<oneshot::Receiver<()>>,
    sent_path: PathBuf,
}

impl Disk {
    /// Recovers the directory and starts the disk thread; recovered records
    /// start flowing to `feed` at once.
    pub(crate) async fn open(
        settings: DiskSettings,
        registry: Arc<Registry>,
        memory: Arc<ByteBudget>,
        feed: mpsc::Sender<Item>,
    ) -> Result<Disk, DiskError> {
        let budget = ByteBudget::new(settings.max_bytes);
        let stats = Arc::new(DiskStats::default());
        let (writes_tx, writes) = mpsc::channel(GROUP_RECORDS);
        let (control_tx, control) = mpsc::unbounded_channel();
        let (abort_tx, abort) = oneshot::channel();
        let (exited_tx, exited) = oneshot::channel();
        let (ready_tx, ready) = oneshot::channel();
        let dir = settings.dir.clone();
        let sent_dir = settings.dir.clone();
        let log_budget = budget.clone();
        let log_stats = stats.clone();
        std::thread::Builder::new()
            .name("weir-sink-disk".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(source) => {
                        let _ = ready_tx.send(Err(DiskError::Io {
                            dir: settings.dir.clone(),
                            action: "start its thread",
                            source,
                        }));
                        return;
                    }
                };
                let log = Log::recover(settings, log_budget, memory, registry, log_stats, feed);
                match log {
                    Ok(log) => {
                        let _ = ready_tx.send(Ok(()));
                        runtime.block_on(log.run(writes, control, abort));
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                    }
                }
                let _ = exited_tx.send(());
            })
            .map_err(|source| DiskError::Io {
                dir,
                action: "start its thread",
                source,
            })?;
        ready.await.map_err(|_| DiskError::Thread)??;
        Ok(Disk {
            writes: writes_tx,
            control: control_tx,
            budget,
            handoff: ByteBudget::new(2 * GROUP_BYTES as u64),
            stats,
            abort: Some(abort_tx),
            exited: Some(exited),
            sent_path: sent_dir.join(SENT_LOG),
        })
    }

    /// The log of records sent to the server, for the dispatcher.
    pub(crate) fn sent_log(&self) -> SentLog {
        SentLog {
            path: self.sent_path.clone(),
            file: None,
            bytes: fs::metadata(&self.sent_path).map_or(0, |m| m.len()),
            failed: false,
        }
    }

    /// Waits until the disk thread has exited (after [`Control::Close`] and
    /// the dispatcher's end, or after [`Disk::abort`]).
    pub(crate) async fn exited(&mut self) {
        if let Some(exited) = self.exited.take() {
            let _ = exited.await;
        }
    }

    /// Stops the thread where it is, as a crash would.
    pub(crate) fn abort(&mut self) {
        if let Some(abort) = self.abort.take() {
            let _ = abort.send(());
        }
    }
}

/// One segment file and its marks.
#[derive(Debug)]
struct Segment {
    first_seq: u64,
    /// Mixed into its frames' checksums.
    salt: u64,
    path: PathBuf,
    marks_path: PathBuf,
    /// Bytes of the file, as taken from the disk budget.
    bytes: u64,
    /// Good frames in it.
    total: u64,
    /// Of those, the ones done.
    done: u64,
    /// Frames not yet handed to the dispatcher, in order.
    pending: VecDeque<FrameLoc>,
    marks: Option<File>,
    reader: Option<ChunkReader>,
    /// No more frames will be added: deletable once all are done.
    sealed: bool,
}

impl Segment {
    fn new(dir: &Path, first_seq: u64, salt: u64) -> Segment {
        Segment {
            first_seq,
            salt,
            path: dir.join(format!("{first_seq:020}.seg")),
            marks_path: dir.join(format!("{first_seq:020}.ack")),
            bytes: 0,
            total: 0,
            done: 0,
            pending: VecDeque::new(),
            marks: None,
            reader: None,
            sealed: false,
        }
    }

    fn finished(&self) -> bool {
        self.sealed && self.done >= self.total && self.pending.is_empty()
    }
}

/// Reads frames back from a segment, a chunk at a time.
#[derive(Debug)]
struct ChunkReader {
    file: File,
    salt: u64,
    start: u64,
    buf: Vec<u8>,
}

impl ChunkReader {
    fn body(&mut self, loc: FrameLoc) -> io::Result<Bytes> {
        let frame_end = loc.offset + loc.frame_len();
        let buf_end = self.start + self.buf.len() as u64;
        if loc.offset < self.start || frame_end > buf_end {
            let want = READ_CHUNK.max(loc.frame_len() as usize);
            self.file.seek(SeekFrom::Start(loc.offset))?;
            self.buf.clear();
            (&mut self.file)
                .take(want as u64)
                .read_to_end(&mut self.buf)?;
            self.start = loc.offset;
        }
        let at = (loc.offset - self.start) as usize;
        let frame = self
            .buf
            .get(at..at + loc.frame_len() as usize)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "the frame is cut short")
            })?;
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let body = &frame[8..];
        if format::frame_crc(Some(self.salt), body) != crc {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the frame's checksum no longer matches",
            ));
        }
        Ok(Bytes::copy_from_slice(body))
    }
}

/// The state the disk thread owns.
struct Log {
    dir: PathBuf,
    settings: DiskSettings,
    _lock: File,
    segments: VecDeque<Segment>,
    /// The segment being written (always the last of `segments`).
    writer: Option<File>,
    next_seq: u64,
    /// Frames not yet handed to the dispatcher, over all segments.
    backlog: u64,
    budget: Arc<ByteBudget>,
    memory: Arc<ByteBudget>,
    registry: Arc<Registry>,
    stats: Arc<DiskStats>,
    feed: mpsc::Sender<Item>,
    last_sync: Instant,
    unsynced: bool,
    scratch: Vec<u8>,
}

impl Log {
    fn io(&self, action: &'static str) -> impl FnOnce(io::Error) -> DiskError + '_ {
        move |source| DiskError::Io {
            dir: self.dir.clone(),
            action,
            source,
        }
    }

    fn recover(
        settings: DiskSettings,
        budget: Arc<ByteBudget>,
        memory: Arc<ByteBudget>,
        registry: Arc<Registry>,
        stats: Arc<DiskStats>,
        feed: mpsc::Sender<Item>,
    ) -> Result<Log, DiskError> {
        let dir = settings.dir.clone();
        let io_error = |action| {
            let dir = dir.clone();
            move |source| DiskError::Io {
                dir,
                action,
                source,
            }
        };
        fs::create_dir_all(&dir).map_err(io_error("create the directory"))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(io_error("open the LOCK file"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(DiskError::Locked { dir }),
            Err(fs::TryLockError::Error(source)) => {
                return Err(io_error("lock the LOCK file")(source));
            }
        }
        let mut log = Log {
            dir: dir.clone(),
            settings,
            _lock: lock,
            segments: VecDeque::new(),
            writer: None,
            next_seq: 1,
            backlog: 0,
            budget,
            memory,
            registry,
            stats,
            feed,
            last_sync: Instant::now(),
            unsynced: false,
            scratch: Vec::new(),
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_error("list the directory"))? {
            let path = entry.map_err(io_error("list the directory"))?.path();
            let number = path
                .extension()
                .filter(|ext| *ext == "seg")
                .and_then(|_| path.file_stem()?.to_str()?.parse::<u64>().ok());
            if let Some(number) = number {
                names.push((number, path));
            }
        }
        names.sort();
        for (number, path) in names {
            log.recover_segment(number, &path)?;
        }
        log.recover_sent()?;
        let records: u64 = log.segments.iter().map(|s| s.total - s.done).sum();
        log.stats.records.store(records, Relaxed);
        log.stats.replayed.store(records, Relaxed);
        log.stats.segments.store(log.segments.len() as u64, Relaxed);
        if records > 0 {
            tracing::info!(
                dir = %dir.display(),
                records,
                segments = log.segments.len(),
                "replaying records left in the disk buffer"
            );
        }
        Ok(log)
    }

    /// Counts the replayed records whose Append was sent before the crash
    /// (they may be stored already: possible duplicates), and keeps only
    /// those in the sent log, in case of another crash before they are done.
    fn recover_sent(&mut self) -> Result<(), DiskError> {
        let path = self.dir.join(SENT_LOG);
        let sent = match fs::read(&path) {
            Ok(bytes) => format::SeqSet::new(format::scan_marks(&bytes)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(self.io("read the sent log")(error)),
        };
        let in_doubt: Vec<u64> = self
            .segments
            .iter()
            .flat_map(|segment| segment.pending.iter().map(|frame| frame.seq))
            .filter(|&seq| sent.contains(seq))
            .collect();
        self.stats.in_doubt.store(in_doubt.len() as u64, Relaxed);
        if !in_doubt.is_empty() {
            tracing::warn!(
                records = in_doubt.len(),
                "records whose append was in flight at the crash are appended again and may be stored twice"
            );
        }
        rewrite_sent_log(&path, &in_doubt)
            .map(drop)
            .map_err(self.io("rewrite the sent log"))
    }

    fn recover_segment(&mut self, number: u64, path: &Path) -> Result<(), DiskError> {
        let bytes = fs::read(path).map_err(self.io("read a segment"))?;
        let mut segment = Segment::new(&self.dir, number, 0);
        self.next_seq = self.next_seq.max(number.saturating_add(1));
        let (header, scan) = match format::scan_segment(&bytes) {
            Ok(found) => found,
            Err(format::HeaderError::Short(len)) => {
                // A crash right after the file was created: it holds nothing.
                tracing::warn!(segment = %path.display(), len, "removing a segment cut short before its header was written");
                remove(&segment.path);
                remove(&segment.marks_path);
                return Ok(());
            }
            Err(error) => {
                let aside = path.with_extension("corrupt");
                tracing::error!(
                    segment = %path.display(),
                    %error,
                    moved_to = %aside.display(),
                    "the disk buffer skips an unreadable segment; its records cannot be replayed"
                );
                self.stats.corrupt_segments.fetch_add(1, Relaxed);
                fs::rename(path, &aside).map_err(self.io("set a corrupt segment aside"))?;
                remove(&segment.marks_path);
                return Ok(());
            }
        };
        if header.first_seq != number {
            tracing::warn!(segment = %path.display(), first_seq = header.first_seq, "segment name and header disagree; trusting the header");
        }
        let torn = scan.torn_bytes(bytes.len());
        if torn > 0 {
            tracing::warn!(
                segment = %path.display(),
                bytes = torn,
                "cutting the torn tail of a segment (a crash interrupted a write)"
            );
            self.stats.torn_bytes.fetch_add(torn as u64, Relaxed);
            OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|file| file.set_len(scan.valid_end as u64))
                .map_err(self.io("cut a torn segment tail"))?;
        }
        let corrupt = scan.corrupt_bytes();
        if corrupt > 0 {
            tracing::error!(
                segment = %path.display(),
                bytes = corrupt,
                regions = scan.corrupt.len(),
                "skipping corrupt bytes in a segment; records in them cannot be replayed"
            );
            self.stats.corrupt_bytes.fetch_add(corrupt as u64, Relaxed);
        }
        let done = match fs::read(&segment.marks_path) {
            Ok(marks) => format::SeqSet::new(format::scan_marks(&marks)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => format::SeqSet::default(),
            Err(error) => return Err(self.io("read a marks file")(error)),
        };
        for frame in &scan.frames {
            self.next_seq = self.next_seq.max(frame.seq.saturating_add(1));
            if done.contains(frame.seq) {
                segment.done += 1;
            } else {
                if let Ok(stream) = format::body_stream(&bytes[frame.body()]) {
                    self.registry
                        .stream(stream)
                        .replayed(frame.frame_len() as usize);
                }
                segment.pending.push_back(*frame);
            }
        }
        segment.first_seq = header.first_seq;
        segment.salt = header.salt;
        segment.total = scan.frames.len() as u64;
        segment.sealed = true;
        if segment.pending.is_empty() {
            remove(&segment.path);
            remove(&segment.marks_path);
            return Ok(());
        }
        segment.bytes = scan.valid_end as u64;
        self.budget.force_take(segment.bytes);
        self.backlog += segment.pending.len() as u64;
        self.segments.push_back(segment);
        Ok(())
    }

    async fn run(
        mut self,
        mut writes: mpsc::Receiver<Item>,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut abort: oneshot::Receiver<()>,
    ) {
        let mut closing = false;
        let mut writes_open = true;
        loop {
            if closing && !writes_open {
                break;
            }
            self.feed_backlog().await;
            let sync_in = (self.settings.fsync == FsyncPolicy::Interval && self.unsynced)
                .then(|| self.last_sync + self.settings.fsync_interval);
            tokio::select! {
                biased;
                _ = &mut abort => return,
                message = control.recv() => match message {
                    Some(Control::Done(seqs)) => self.done(&seqs),
                    Some(Control::Close) | None => {
                        closing = true;
                        writes.close();
                    }
                },
                item = writes.recv(), if writes_open => match item {
                    Some(item) => {
                        let mut group = vec![item];
                        let mut bytes = 0;
                        while group.len() < GROUP_RECORDS && bytes < GROUP_BYTES {
                            match writes.try_recv() {
                                Ok(item) => {
                                    bytes += item.bytes;
                                    group.push(item);
                                }
                                Err(_) => break,
                            }
                        }
                        self.write_group(group).await;
                    }
                    None => writes_open = false,
                },
                _ = sleep_until(sync_in), if sync_in.is_some() => self.sync(),
            }
        }
        // The dispatcher has finished and the last records are written:
        // everything is durable before the thread says it exited.
        self.sync();
        if let Some(active) = self.segments.back_mut() {
            active.sealed = true;
        }
        self.delete_finished();
    }

    /// Writes a group of records, forces it to disk as the policy says,
    /// acknowledges them, and hands them on while memory allows.
    async fn write_group(&mut self, mut group: Vec<Item>) {
        let mut placed: Vec<FrameLoc> = Vec::with_capacity(group.len());
        let result = self.append_frames(&group, &mut placed);
        let result = result.and_then(|()| match self.settings.fsync {
            FsyncPolicy::Always => self.sync_writer(),
            FsyncPolicy::Interval | FsyncPolicy::Never => {
                self.unsynced = true;
                Ok(())
            }
        });
        if let Err(error) = result {
            tracing::error!(dir = %self.dir.display(), %error, records = group.len(), "the disk buffer could not write records; they are not acknowledged");
            // Start a new segment next time; what reached this one is
            // replayed after a restart at worst (a duplicate, not a loss).
            for loc in &placed {
                if let Some(segment) = self.segment_of(loc.seq) {
                    segment.total -= 1;
                }
            }
            // The group's bytes stay charged to the segment that may hold
            // part of it, and are given back when it is deleted.
            let group_bytes: u64 = group.iter().map(|item| item.bytes as u64).sum();
            match self.segments.back_mut() {
                Some(active) => active.bytes += group_bytes,
                None => self.budget.give_back(group_bytes),
            }
            self.seal_active();
            for item in group {
                if let Some(ack) = item.ack {
                    ack.failed(format!(
                        "the disk buffer could not write the record: {error}"
                    ));
                }
            }
            return;
        }
        let mut caught_up = self.backlog == 0;
        for (item, loc) in group.iter_mut().zip(&placed) {
            if let Some(ack) = item.ack.take() {
                ack.stored();
            }
            item.seq = Some(loc.seq);
        }
        self.stats.records.fetch_add(placed.len() as u64, Relaxed);
        for (mut item, loc) in group.into_iter().zip(placed) {
            // Written: the hand-off bytes are free again.
            item.permit = None;
            if caught_up && self.memory.try_take(item.bytes as u64) {
                item.permit = Some(Permit::taken(&self.memory, item.bytes as u64));
                if self.feed.send(item).await.is_err() {
                    return;
                }
            } else {
                caught_up = false;
                if let Some(segment) = self.segment_of(loc.seq) {
                    segment.pending.push_back(loc);
                    self.backlog += 1;
                }
            }
        }
    }

    /// Writes the frames of `group`, opening segments as needed, and
    /// records where each went.
    fn append_frames(&mut self, group: &[Item], placed: &mut Vec<FrameLoc>) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let mut result = Ok(());
        for item in group {
            let seq = self.next_seq;
            let frame_len = item.bytes as u64;
            let needs_new = match self.segments.back() {
                Some(active) if self.writer.is_some() => {
                    active.bytes + buf.len() as u64 + frame_len > self.settings.segment_bytes
                        && active.bytes + buf.len() as u64 > format::HEADER_LEN as u64
                }
                _ => true,
            };
            if needs_new {
                result = self
                    .flush_buf(&mut buf)
                    .and_then(|()| self.open_segment(seq));
                if result.is_err() {
                    break;
                }
            }
            let offset = self.segments.back().map_or(0, |s| s.bytes) + buf.len() as u64;
            let start = buf.len();
            let salt = self.segments.back().map_or(0, |s| s.salt);
            format::encode_record(
                &mut buf,
                salt,
                seq,
                item.event_time_ms,
                &item.stream,
                &item.record,
            );
            placed.push(FrameLoc {
                seq,
                offset,
                len: (buf.len() - start - 8) as u32,
            });
            // Counted now, so that sealing this segment while the group is
            // still being written cannot find it finished.
            if let Some(active) = self.segments.back_mut() {
                active.total += 1;
            }
            self.next_seq += 1;
        }
        let result = result.and_then(|()| self.flush_buf(&mut buf));
        self.scratch = buf;
        result
    }

    fn flush_buf(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let (Some(writer), Some(active)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            return Err(io::Error::other("no segment open for writing"));
        };
        writer.write_all(buf)?;
        active.bytes += buf.len() as u64;
        buf.clear();
        Ok(())
    }

    /// Seals the active segment and starts a new one whose first record is
    /// `first_seq`.
    fn open_segment(&mut self, first_seq: u64) -> io::Result<()> {
        if self.settings.fsync != FsyncPolicy::Never {
            self.sync_writer()?;
        }
        self.seal_active();
        let salt = fastrand::u64(..);
        let mut segment = Segment::new(&self.dir, first_seq, salt);
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&segment.path)?;
        file.write_all(&format::encode_header(Header { first_seq, salt }))?;
        if self.settings.fsync != FsyncPolicy::Never {
            file.sync_data()?;
            sync_dir(&self.dir);
        }
        segment.bytes = format::HEADER_LEN as u64;
        self.budget.force_take(segment.bytes);
        self.segments.push_back(segment);
        self.stats.segments.fetch_add(1, Relaxed);
        self.writer = Some(file);
        Ok(())
    }

    fn seal_active(&mut self) {
        if self.writer.take().is_some()
            && let Some(active) = self.segments.back_mut()
        {
            active.sealed = true;
        }
        self.delete_finished();
    }

    fn sync_writer(&mut self) -> io::Result<()> {
        if let Some(writer) = &self.writer {
            writer.sync_data()?;
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn sync(&mut self) {
        if let Err(error) = self.sync_writer() {
            tracing::error!(dir = %self.dir.display(), %error, "the disk buffer could not force its writes to disk");
        }
    }

    fn segment_of(&mut self, seq: u64) -> Option<&mut Segment> {
        let after = self.segments.partition_point(|s| s.first_seq <= seq);
        self.segments.get_mut(after.checked_sub(1)?)
    }

    /// Reads records back from disk into memory while the budget allows.
    async fn feed_backlog(&mut self) {
        while self.backlog > 0 {
            let Some(index) = self.segments.iter().position(|s| !s.pending.is_empty()) else {
                self.backlog = 0;
                return;
            };
            let segment = &mut self.segments[index];
            let Some(&loc) = segment.pending.front() else {
                return;
            };
            let bytes = loc.frame_len();
            if !self.memory.try_take(bytes) {
                return;
            }
            let read = match &mut segment.reader {
                Some(reader) => reader.body(loc),
                None => File::open(&segment.path).and_then(|file| {
                    segment
                        .reader
                        .insert(ChunkReader {
                            file,
                            salt: segment.salt,
                            start: 0,
                            buf: Vec::new(),
                        })
                        .body(loc)
                }),
            };
            segment.pending.pop_front();
            self.backlog -= 1;
            let record = read
                .map_err(|e| e.to_string())
                .and_then(|body| format::decode_body(body).map_err(|e| e.to_string()));
            match record {
                Ok(record) => {
                    let metrics = self.registry.stream(&record.stream);
                    let item = Item {
                        stream: record.stream.into(),
                        record: record.record,
                        ack: None,
                        event_time_ms: record.event_time_ms,
                        bytes: bytes as usize,
                        permit: Some(Permit::taken(&self.memory, bytes)),
                        seq: Some(loc.seq),
                        received: tokio::time::Instant::now(),
                        metrics,
                        dead_letter: None,
                        order: 0,
                    };
                    if self.feed.send(item).await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    self.memory.give_back(bytes);
                    tracing::error!(segment = %self.segments[index].path.display(), seq = loc.seq, %error, "skipping a record that cannot be read back");
                    self.stats.corrupt_bytes.fetch_add(bytes, Relaxed);
                    self.done(&[loc.seq]);
                }
            }
        }
    }

    /// Marks records done and deletes the segments that are finished.
    fn done(&mut self, seqs: &[u64]) {
        let mut seqs = seqs.to_vec();
        seqs.sort_unstable();
        let mut at = 0;
        while at < seqs.len() {
            let Some(index) = self
                .segments
                .partition_point(|s| s.first_seq <= seqs[at])
                .checked_sub(1)
            else {
                at += 1;
                continue;
            };
            let limit = self
                .segments
                .get(index + 1)
                .map_or(u64::MAX, |s| s.first_seq);
            let end = at + seqs[at..].partition_point(|&seq| seq < limit);
            let mine = &seqs[at..end];
            let runs = format::runs(mine);
            let mut frame = Vec::with_capacity(8 + runs.len() * 12);
            format::encode_marks(&mut frame, &runs);
            let segment = &mut self.segments[index];
            segment.done += mine.len() as u64;
            let write = match &mut segment.marks {
                Some(marks) => marks.write_all(&frame),
                None => OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&segment.marks_path)
                    .and_then(|file| segment.marks.insert(file).write_all(&frame)),
            };
            if let Err(error) = write {
                // Only costs duplicates after a crash: the records would be
                // appended again.
                tracing::warn!(marks = %segment.marks_path.display(), %error, "cannot record appended records");
            }
            let records = self.stats.records.load(Relaxed);
            self.stats
                .records
                .store(records.saturating_sub(mine.len() as u64), Relaxed);
            at = end;
        }
        self.delete_finished();
    }

    fn delete_finished(&mut self) {
        let before = self.segments.len();
        let budget = &self.budget;
        self.segments.retain(|segment| {
            if !segment.finished() {
                return true;
            }
            remove(&segment.path);
            remove(&segment.marks_path);
            budget.give_back(segment.bytes);
            false
        });
        let removed = before - self.segments.len();
        if removed > 0 {
            self.stats.segments.fetch_sub(removed as u64, Relaxed);
        }
    }
}

/// The records whose Append has been sent, written (to the OS, not forced
/// to disk) by the dispatcher before it sends them, so that a replay after
/// a crash can tell which records may already be stored. Marks frames of
/// seq ranges, like a segment's marks; rewritten with only the records in
/// flight once it grows past [`SENT_LOG_LIMIT`].
#[derive(Debug)]
pub(crate) struct SentLog {
    path: PathBuf,
    file: Option<File>,
    bytes: u64,
    /// A write failed (reported once): duplicates may then go uncounted.
    failed: bool,
}

impl SentLog {
    /// Records `seqs` as sent; `in_flight` lists every record in flight,
    /// for when the log is rewritten.
    pub(crate) fn sent(&mut self, seqs: &[u64], in_flight: impl FnOnce() -> Vec<u64>) {
        let mut sorted = seqs.to_vec();
        sorted.sort_unstable();
        let mut frame = Vec::new();
        format::encode_marks(&mut frame, &format::runs(&sorted));
        let result = if self.bytes + frame.len() as u64 > SENT_LOG_LIMIT {
            let mut all = in_flight();
            all.extend_from_slice(seqs);
            all.sort_unstable();
            all.dedup();
            self.file = None;
            rewrite_sent_log(&self.path, &all).map(|bytes| self.bytes = bytes)
        } else {
            let file = match &mut self.file {
                Some(file) => Ok(file),
                None => OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .map(|file| self.file.insert(file)),
            };
            file.and_then(|file| file.write_all(&frame))
                .map(|()| self.bytes += frame.len() as u64)
        };
        if let Err(error) = result
            && !self.failed
        {
            self.failed = true;
            tracing::warn!(log = %self.path.display(), %error, "cannot record sent records; duplicates after a crash may go uncounted");
        }
    }
}

/// Replaces the sent log with one listing `seqs` (sorted); returns its size.
fn rewrite_sent_log(path: &Path, seqs: &[u64]) -> io::Result<u64> {
    let mut frame = Vec::new();
    let runs = format::runs(seqs);
    if !runs.is_empty() {
        format::encode_marks(&mut frame, &runs);
    }
    let temporary = path.with_extension("tmp");
    fs::write(&temporary, &frame)?;
    fs::rename(&temporary, path)?;
    Ok(frame.len() as u64)
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
}

fn remove(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(file = %path.display(), %error, "cannot delete a disk buffer file")
        }
    }
}

/// Makes a created or deleted file name durable (a no-op where directories
/// cannot be opened).
fn sync_dir(dir: &Path) {
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests;
