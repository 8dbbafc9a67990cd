//! Per-shard append-only log files: framing, crash recovery and segments.
//!
//! A shard's batches live in `shards/<shard id>/`, split into segment files
//! named after the first batch id they hold (`00000000004294967297.log`, 20
//! decimal digits so names sort like ids). A segment is the 8-byte magic
//! `WEIRLOG1` followed by frames:
//!
//! ```text
//! frame = len:u32le crc:u32le body[len]
//! body  = batch_id:u64le publish_ms:i64le compression:i32le batch_size:u32le payload
//! crc   = CRC-32 (IEEE) of the 4 length bytes followed by the body
//! ```
//!
//! Each frame is written with a single `write` call, so a crashed process
//! leaves at most one incomplete frame, at the end of the newest segment. On
//! open such a *torn tail* is truncated with a warning. Anything else that does
//! not parse (a bad checksum followed by more data, a frame in an older
//! segment, ids out of order) is corruption: it is reported with the file and
//! byte offset and nothing is guessed or dropped.
//!
//! Segments exist so retention (`backlogDuration`) can free disk space by
//! deleting whole files instead of rewriting them.

use bytes::{Buf, BufMut, Bytes};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"WEIRLOG1";
const FRAME_HEADER: usize = 8;
const BODY_FIXED: usize = 8 + 8 + 4 + 4;
const SEGMENT_SUFFIX: &str = ".log";

/// A new segment is started once the current one reaches this size.
pub(crate) const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// One stored batch, as it is framed on disk.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) batch_id: u64,
    pub(crate) publish_ms: i64,
    pub(crate) compression: i32,
    pub(crate) batch_size: u32,
    pub(crate) payload: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LogError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path} is corrupt at byte offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error(
        "{path} failed an earlier write and could not be repaired; it accepts no appends until the server restarts"
    )]
    Poisoned { path: PathBuf },
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LogError + use<> {
    let path = path.to_owned();
    move |source| LogError::Io { op, path, source }
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    last_batch_id: u64,
    last_publish_ms: i64,
    len: u64,
}

/// The segments of one shard and the file new frames go to.
#[derive(Debug)]
pub(crate) struct ShardLog {
    dir: PathBuf,
    segments: VecDeque<Segment>,
    /// Open for appending: the newest segment, when it is not full.
    active: Option<File>,
    segment_bytes: u64,
    fsync: bool,
    poisoned: bool,
}

impl ShardLog {
    /// Opens the log in `dir` (which need not exist yet), recovering a torn
    /// tail, and returns every entry in it in order.
    pub(crate) fn open(
        dir: PathBuf,
        segment_bytes: u64,
        fsync: bool,
    ) -> Result<(ShardLog, Vec<Entry>), LogError> {
        let mut log = ShardLog {
            dir,
            segments: VecDeque::new(),
            active: None,
            segment_bytes: segment_bytes.max(1),
            fsync,
            poisoned: false,
        };
        let names = log.segment_files()?;
        let mut entries = Vec::new();
        let count = names.len();
        for (i, (first_id, path)) in names.into_iter().enumerate() {
            let is_last = i + 1 == count;
            let before = entries.len();
            let len = recover_segment(&path, first_id, is_last, &mut entries)?;
            // Ids must rise across segments too, not only inside one.
            if let (Some(prev), Some(first)) = (
                before.checked_sub(1).and_then(|p| entries.get(p)),
                entries.get(before),
            ) && first.batch_id <= prev.batch_id
            {
                return Err(LogError::Corrupt {
                    path,
                    offset: MAGIC.len() as u64,
                    reason: format!(
                        "batch id {} does not follow {} of the previous segment",
                        first.batch_id, prev.batch_id
                    ),
                });
            }
            match entries.last().filter(|_| entries.len() > before) {
                Some(last) => log.segments.push_back(Segment {
                    path,
                    last_batch_id: last.batch_id,
                    last_publish_ms: last.publish_ms,
                    len,
                }),
                // Only a torn newest segment can end up empty: it held nothing.
                None => fs::remove_file(&path).map_err(io_error("remove", &path))?,
            }
        }
        if let Some(segment) = log.segments.back()
            && segment.len < log.segment_bytes
        {
            let file = OpenOptions::new()
                .append(true)
                .open(&segment.path)
                .map_err(io_error("open for appending", &segment.path))?;
            log.active = Some(file);
        }
        Ok((log, entries))
    }

    /// The segment files in `dir`, sorted by their first batch id.
    fn segment_files(&self) -> Result<Vec<(u64, PathBuf)>, LogError> {
        let listing = match fs::read_dir(&self.dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("list", &self.dir)(e)),
        };
        let mut files = Vec::new();
        for item in listing {
            let item = item.map_err(io_error("list", &self.dir))?;
            let name = item.file_name();
            let first_id = name
                .to_str()
                .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
                .filter(|n| n.len() == 20)
                .and_then(|n| n.parse::<u64>().ok());
            match first_id {
                Some(id) => files.push((id, item.path())),
                None => tracing::warn!(
                    file = %item.path().display(),
                    "ignoring a file that is not a log segment"
                ),
            }
        }
        files.sort_unstable();
        Ok(files)
    }

    /// Appends one entry. On success the frame is in the file (and on disk
    /// when `fsync` is set); on failure the file is rolled back to where it
    /// was, or the log refuses further appends if even that fails.
    pub(crate) fn append(&mut self, entry: &Entry) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned {
                path: self.dir.clone(),
            });
        }
        let frame = encode_frame(entry);
        match self.active.take() {
            Some(file) => self.append_to_active(file, entry, &frame),
            None => self.start_segment(entry, &frame),
        }
    }

    fn append_to_active(
        &mut self,
        mut file: File,
        entry: &Entry,
        frame: &[u8],
    ) -> Result<(), LogError> {
        let Some(segment) = self.segments.back_mut() else {
            return self.start_segment(entry, frame);
        };
        let written = file
            .write_all(frame)
            .and_then(|()| if self.fsync { file.sync_data() } else { Ok(()) });
        if let Err(source) = written {
            // Cut off whatever part of the frame reached the file, so the
            // next append does not land after garbage.
            if file.set_len(segment.len).is_err() {
                self.poisoned = true;
            } else {
                self.active = Some(file);
            }
            return Err(LogError::Io {
                op: "append to",
                path: segment.path.clone(),
                source,
            });
        }
        segment.len += frame.len() as u64;
        segment.last_batch_id = entry.batch_id;
        segment.last_publish_ms = entry.publish_ms;
        if segment.len < self.segment_bytes {
            self.active = Some(file);
        }
        Ok(())
    }

    fn start_segment(&mut self, entry: &Entry, frame: &[u8]) -> Result<(), LogError> {
        fs::create_dir_all(&self.dir).map_err(io_error("create directory", &self.dir))?;
        let path = self
            .dir
            .join(format!("{:020}{SEGMENT_SUFFIX}", entry.batch_id));
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io_error("create", &path))?;
        let mut first = Vec::with_capacity(MAGIC.len() + frame.len());
        first.extend_from_slice(MAGIC);
        first.extend_from_slice(frame);
        let written = file.write_all(&first).and_then(|()| {
            if self.fsync {
                file.sync_data()?;
                File::open(&self.dir)?.sync_all()
            } else {
                Ok(())
            }
        });
        if let Err(source) = written {
            if fs::remove_file(&path).is_err() {
                self.poisoned = true;
            }
            return Err(LogError::Io {
                op: "write",
                path,
                source,
            });
        }
        let len = first.len() as u64;
        self.segments.push_back(Segment {
            path,
            last_batch_id: entry.batch_id,
            last_publish_ms: entry.publish_ms,
            len,
        });
        if len < self.segment_bytes {
            self.active = Some(file);
        }
        Ok(())
    }

    /// Deletes the oldest segments whose newest batch was published at or
    /// before `cutoff_ms`; returns the highest batch id deleted.
    pub(crate) fn remove_expired(&mut self, cutoff_ms: i64) -> Result<Option<u64>, LogError> {
        let mut removed = None;
        while let Some(segment) = self.segments.front() {
            if segment.last_publish_ms > cutoff_ms {
                break;
            }
            if self.segments.len() == 1 {
                self.active = None;
            }
            fs::remove_file(&segment.path).map_err(io_error("remove", &segment.path))?;
            removed = Some(segment.last_batch_id);
            self.segments.pop_front();
        }
        Ok(removed)
    }

    /// Deletes the shard's directory and everything in it.
    pub(crate) fn destroy(self) -> Result<(), LogError> {
        drop(self.active);
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", &self.dir)(e)),
            _ => Ok(()),
        }
    }
}

fn encode_frame(entry: &Entry) -> Vec<u8> {
    let body_len = BODY_FIXED + entry.payload.len();
    let mut frame = Vec::with_capacity(FRAME_HEADER + body_len);
    // A body over 4 GiB cannot happen: appends are limited far below that.
    frame.put_u32_le(u32::try_from(body_len).unwrap_or(u32::MAX));
    frame.put_u32_le(0);
    frame.put_u64_le(entry.batch_id);
    frame.put_i64_le(entry.publish_ms);
    frame.put_i32_le(entry.compression);
    frame.put_u32_le(entry.batch_size);
    frame.extend_from_slice(&entry.payload);
    let crc = checksum(&frame[..4], &frame[FRAME_HEADER..]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    frame
}

fn checksum(len: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len);
    hasher.update(body);
    hasher.finalize()
}

/// Why a frame did not parse.
enum BadFrame {
    /// The frame runs past the end of the file.
    Incomplete,
    /// The frame is complete but wrong; `ends_at_eof` says it is the last
    /// thing in the file.
    Invalid { reason: String, ends_at_eof: bool },
}

/// Parses the frame at `offset`; returns it and the offset after it.
fn parse_frame(data: &Bytes, offset: usize) -> Result<(Entry, usize), BadFrame> {
    let rest = &data[offset..];
    if rest.len() < FRAME_HEADER {
        return Err(BadFrame::Incomplete);
    }
    let mut header = &rest[..FRAME_HEADER];
    let len = header.get_u32_le() as usize;
    let crc = header.get_u32_le();
    let Some(body) = rest.get(FRAME_HEADER..FRAME_HEADER + len) else {
        return Err(BadFrame::Incomplete);
    };
    let end = offset + FRAME_HEADER + len;
    let invalid = |reason: String| BadFrame::Invalid {
        reason,
        ends_at_eof: end == data.len(),
    };
    let actual = checksum(&rest[..4], body);
    if actual != crc {
        return Err(invalid(format!(
            "checksum mismatch (stored {crc:#010x}, computed {actual:#010x})"
        )));
    }
    if len < BODY_FIXED {
        return Err(invalid(format!(
            "frame body of {len} bytes is shorter than the {BODY_FIXED}-byte entry header"
        )));
    }
    let mut fixed = &body[..BODY_FIXED];
    let entry = Entry {
        batch_id: fixed.get_u64_le(),
        publish_ms: fixed.get_i64_le(),
        compression: fixed.get_i32_le(),
        batch_size: fixed.get_u32_le(),
        payload: data.slice(offset + FRAME_HEADER + BODY_FIXED..end),
    };
    Ok((entry, end))
}

/// Reads one segment into `entries`, truncating a torn tail when the segment
/// is the newest; returns the segment's valid length.
fn recover_segment(
    path: &Path,
    first_id: u64,
    is_last: bool,
    entries: &mut Vec<Entry>,
) -> Result<u64, LogError> {
    let data = Bytes::from(fs::read(path).map_err(io_error("read", path))?);
    let corrupt = |offset: usize, reason: String| LogError::Corrupt {
        path: path.to_owned(),
        offset: offset as u64,
        reason,
    };
    if data.len() < MAGIC.len() && MAGIC.starts_with(&data) && is_last {
        tracing::warn!(file = %path.display(), "dropping a segment whose header was never fully written");
        return Ok(0);
    }
    if !data.starts_with(MAGIC) {
        return Err(corrupt(0, "the file does not start with WEIRLOG1".into()));
    }
    let mut offset = MAGIC.len();
    let mut previous: Option<u64> = None;
    while offset < data.len() {
        let (entry, next) = match parse_frame(&data, offset) {
            Ok(parsed) => parsed,
            Err(bad) => {
                let torn = match &bad {
                    BadFrame::Incomplete => true,
                    BadFrame::Invalid { ends_at_eof, .. } => *ends_at_eof,
                };
                if torn && is_last {
                    truncate_torn_tail(path, offset, data.len())?;
                    return Ok(offset as u64);
                }
                let reason = match bad {
                    BadFrame::Incomplete => format!(
                        "the frame runs past the end of the file ({} bytes){}",
                        data.len(),
                        if is_last {
                            ""
                        } else {
                            " in a segment that is not the newest"
                        }
                    ),
                    BadFrame::Invalid { reason, .. } => reason,
                };
                return Err(corrupt(offset, reason));
            }
        };
        let expected_first = previous.is_none() && entry.batch_id != first_id;
        if expected_first || previous.is_some_and(|p| entry.batch_id <= p) {
            return Err(corrupt(
                offset,
                format!(
                    "batch id {} is out of order (file name says the segment starts at {first_id})",
                    entry.batch_id
                ),
            ));
        }
        previous = Some(entry.batch_id);
        entries.push(entry);
        offset = next;
    }
    Ok(offset as u64)
}

fn truncate_torn_tail(path: &Path, offset: usize, len: usize) -> Result<(), LogError> {
    tracing::warn!(
        file = %path.display(),
        offset,
        dropped_bytes = len - offset,
        "truncating an incomplete entry at the end of the log (torn write from an earlier crash)"
    );
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error("open for truncation", path))?;
    file.set_len(offset as u64)
        .and_then(|()| file.sync_all())
        .map_err(io_error("truncate", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(batch_id: u64, payload: &'static [u8]) -> Entry {
        Entry {
            batch_id,
            publish_ms: 1_700_000_000_000 + batch_id as i64,
            compression: 1,
            batch_size: 3,
            payload: Bytes::from_static(payload),
        }
    }

    fn open(dir: &Path, segment_bytes: u64) -> (ShardLog, Vec<Entry>) {
        ShardLog::open(dir.join("shard"), segment_bytes, false).expect("log opens")
    }

    fn only_segment(dir: &Path) -> PathBuf {
        let mut files: Vec<_> = fs::read_dir(dir.join("shard"))
            .expect("shard dir")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(files.len(), 1, "one segment expected: {files:?}");
        files.remove(0)
    }

    #[test]
    fn entries_survive_reopen() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut log, entries) = open(tmp.path(), DEFAULT_SEGMENT_BYTES);
        assert!(entries.is_empty());
        let written = vec![entry(5, b"one"), entry(6, b""), entry(9, b"three")];
        for e in &written {
            log.append(e).expect("append");
        }
        drop(log);
        let (mut log, entries) = open(tmp.path(), DEFAULT_SEGMENT_BYTES);
        assert_eq!(entries, written);
        log.append(&entry(10, b"four"))
            .expect("append after reopen");
        drop(log);
        assert_eq!(open(tmp.path(), DEFAULT_SEGMENT_BYTES).1.len(), 4);
    }

    #[test]
    fn fsync_mode_writes_the_same_log() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("shard");
        let (mut log, _) = ShardLog::open(dir.clone(), 16, true).expect("open");
        log.append(&entry(1, b"synced")).expect("append with fsync");
        log.append(&entry(2, b"again")).expect("append with fsync");
        drop(log);
        let (_, entries) = ShardLog::open(dir, 16, true).expect("reopen");
        assert_eq!(entries, vec![entry(1, b"synced"), entry(2, b"again")]);
    }

    #[test]
    fn torn_tail_is_truncated() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = open(tmp.path(), DEFAULT_SEGMENT_BYTES);
        log.append(&entry(1, b"kept")).expect("append");
        log.append(&entry(2, b"torn")).expect("append");
        drop(log);
        let path = only_segment(tmp.path());
        let full = fs::metadata(&path).expect("metadata").len();
        // A crash in the middle of the second frame.
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.set_len(full - 3).expect("truncate");
        drop(file);

        let (mut log, entries) = open(tmp.path(), DEFAULT_SEGMENT_BYTES);
        assert_eq!(entries, vec![entry(1, b"kept")]);
        let first_frame = (MAGIC.len() + encode_frame(&entry(1, b"kept")).len()) as u64;
        assert_eq!(fs::metadata(&path).expect("metadata").len(), first_frame);
        log.append(&entry(2, b"again"))
            .expect("append after recovery");
        drop(log);
        assert_eq!(
            open(tmp.path(), DEFAULT_SEGMENT_BYTES).1,
            vec![entry(1, b"kept"), entry(2, b"again")]
        );
    }

    #[test]
    fn garbage_frame_at_the_end_is_a_torn_tail() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = open(tmp.path(), DEFAULT_SEGMENT_BYTES);
        log.append(&entry(1, b"kept")).expect("append");
        log.append(&entry(2, b"zeroed")).expect("append");
        drop(log);
        let path = only_segment(tmp.path());
        let mut data = fs::read(&path).expect("read");
        let last = data.len() - 1;
        data[last] ^= 0xff;
        fs::write(&path, &data).expect("write");
        assert_eq!(
            open(tmp.path(), DEFAULT_SEGMENT_BYTES).1,
            vec![entry(1, b"kept")]
        );
    }

    #[test]
    fn corruption_in_the_middle_is_reported_with_file_and_offset() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = open(tmp.path(), DEFAULT_SEGMENT_BYTES);
        for id in 1..=3 {
            log.append(&entry(id, b"payload")).expect("append");
        }
        drop(log);
        let path = only_segment(tmp.path());
        let mut data = fs::read(&path).expect("read");
        let second = MAGIC.len() + encode_frame(&entry(1, b"payload")).len();
        data[second + FRAME_HEADER + 2] ^= 0x01;
        fs::write(&path, &data).expect("write");

        let err = ShardLog::open(tmp.path().join("shard"), DEFAULT_SEGMENT_BYTES, false)
            .expect_err("corruption is an error");
        match &err {
            LogError::Corrupt {
                path: p, offset, ..
            } => {
                assert_eq!(p, &path);
                assert_eq!(*offset, second as u64);
            }
            other => panic!("expected corruption, got {other}"),
        }
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        // Nothing was truncated: the data is left for a person to inspect.
        assert_eq!(fs::read(&path).expect("read").len(), data.len());
    }

    #[test]
    fn segments_roll_and_expire() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // Every frame fills a segment, so each entry gets its own file.
        let (mut log, _) = open(tmp.path(), 16);
        for id in 1..=3 {
            log.append(&entry(id, b"x")).expect("append");
        }
        assert_eq!(log.segments.len(), 3);
        let cutoff = entry(2, b"").publish_ms;
        assert_eq!(log.remove_expired(cutoff).expect("trim"), Some(2));
        drop(log);
        let (mut log, entries) = open(tmp.path(), 16);
        assert_eq!(entries, vec![entry(3, b"x")]);
        assert_eq!(log.remove_expired(i64::MAX).expect("trim"), Some(3));
        log.append(&entry(4, b"y"))
            .expect("append after all expired");
        drop(log);
        assert_eq!(open(tmp.path(), 16).1, vec![entry(4, b"y")]);
    }

    #[test]
    fn a_bad_frame_in_an_older_segment_is_corruption() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = open(tmp.path(), 16);
        log.append(&entry(1, b"a")).expect("append");
        log.append(&entry(2, b"b")).expect("append");
        drop(log);
        let older = tmp.path().join("shard").join(format!("{:020}.log", 1));
        let len = fs::metadata(&older).expect("metadata").len();
        let file = OpenOptions::new().write(true).open(&older).expect("open");
        file.set_len(len - 1).expect("truncate");
        drop(file);
        assert!(matches!(
            ShardLog::open(tmp.path().join("shard"), 16, false),
            Err(LogError::Corrupt { .. })
        ));
    }

    #[test]
    fn destroy_removes_the_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = open(tmp.path(), DEFAULT_SEGMENT_BYTES);
        log.append(&entry(1, b"a")).expect("append");
        log.destroy().expect("destroy");
        assert!(!tmp.path().join("shard").exists());
    }
}
