//! The disk buffer's file formats, and their recovery after a crash.
//!
//! Everything here works on bytes in memory and does no IO, so recovery can
//! be tested exhaustively and fuzzed (`host/fuzz`, target `segment_scan`).
//!
//! ```text
//! segment file NNNNNNNNNNNNNNNNNNNN.seg (NNN… = the first sequence number):
//!   header  magic "WEIRSEG1" | version u32 = 1 | flags u32 = 0
//!           | first_seq u64 | salt u64 | crc32(previous 32 bytes) u32
//!           | zero u32
//!   frame*  len u32 | crc32(salt | body) u32 | body[len]
//!   body    seq u64 | event_time_ms i64 | stream_len u16 | stream (UTF-8)
//!           | HStreamRecord (protobuf)
//!
//! marks file NNNNNNNNNNNNNNNNNNNN.ack (same NNN…):
//!   frame*  len u32 | crc32(body) u32 | body[len]
//!   body    (start u64 | count u32)*     records appended, as seq ranges
//!
//! sent.log (one per directory): marks frames of the records whose Append
//! was sent, rewritten with only those in flight when it grows.
//! ```
//!
//! All integers are little-endian; crc32 is CRC-32/ISO-HDLC (crc32fast).
//! Sequence numbers grow by one per record across segments and restarts.
//! The salt is random per segment: a record's payload (which publishers
//! choose) may hold bytes that look like a frame, and the scan below looks
//! for frames at every offset after damage; without the salt such a fake
//! frame cannot get a checksum that passes.
//!
//! Recovery reads frames in order. A frame whose length runs past the end,
//! whose checksum fails, or whose sequence number does not grow is not
//! trusted: the scan looks for the next offset where a frame checks out
//! (its sequence number in range, its checksum right) and reports the bytes
//! in between as corrupt. What follows the last good frame and holds no good
//! frame is the torn tail a crash leaves; it is cut off.

use bytes::{Buf, BufMut, Bytes};
use prost::Message;
use std::ops::Range;
use weir_proto::pb::HStreamRecord;

pub(crate) const MAGIC: &[u8; 8] = b"WEIRSEG1";
pub(crate) const VERSION: u32 = 1;
pub(crate) const HEADER_LEN: usize = 40;
/// The header bytes its checksum covers.
const HEADER_CHECKED: usize = 32;
const FRAME_HEAD: usize = 8;
/// seq + event time + stream length.
const BODY_MIN: usize = 8 + 8 + 2;
/// No frame is larger: a record is at most 1 MiB on the wire, and a length
/// beyond this is corruption, not a reason to allocate.
pub(crate) const MAX_BODY: usize = 8 * 1024 * 1024;

/// A segment's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) first_seq: u64,
    /// Mixed into every frame's checksum.
    pub(crate) salt: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeaderError {
    #[error("shorter than a segment header ({0} bytes)")]
    Short(usize),
    #[error("not a weir segment (bad magic)")]
    Magic,
    #[error("unsupported segment version {0}")]
    Version(u32),
    #[error("header checksum mismatch")]
    Checksum,
}

pub(crate) fn encode_header(header: Header) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    let mut buf = &mut out[..];
    buf.put_slice(MAGIC);
    buf.put_u32_le(VERSION);
    buf.put_u32_le(0);
    buf.put_u64_le(header.first_seq);
    buf.put_u64_le(header.salt);
    let crc = crc32fast::hash(&out[..HEADER_CHECKED]);
    out[HEADER_CHECKED..HEADER_CHECKED + 4].copy_from_slice(&crc.to_le_bytes());
    out
}

pub(crate) fn decode_header(bytes: &[u8]) -> Result<Header, HeaderError> {
    if bytes.len() < HEADER_LEN {
        return Err(HeaderError::Short(bytes.len()));
    }
    if &bytes[..8] != MAGIC {
        return Err(HeaderError::Magic);
    }
    let mut fields = &bytes[8..HEADER_CHECKED + 4];
    let version = fields.get_u32_le();
    let _flags = fields.get_u32_le();
    let first_seq = fields.get_u64_le();
    let salt = fields.get_u64_le();
    let crc = fields.get_u32_le();
    if crc != crc32fast::hash(&bytes[..HEADER_CHECKED]) {
        return Err(HeaderError::Checksum);
    }
    if version != VERSION {
        return Err(HeaderError::Version(version));
    }
    Ok(Header { first_seq, salt })
}

/// One record as the disk buffer keeps it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DiskRecord {
    pub(crate) seq: u64,
    pub(crate) event_time_ms: i64,
    pub(crate) stream: String,
    pub(crate) record: HStreamRecord,
}

/// The size of a record's frame, header included; what it costs in the
/// disk budget. Stream names longer than u16 are refused before this.
pub(crate) fn frame_len(stream: &str, record: &HStreamRecord) -> usize {
    FRAME_HEAD + BODY_MIN + stream.len() + record.encoded_len()
}

/// A frame's checksum: crc32 of the segment's salt (none for marks files,
/// which hold only weir's own numbers) and the body.
pub(crate) fn frame_crc(salt: Option<u64>, body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    if let Some(salt) = salt {
        hasher.update(&salt.to_le_bytes());
    }
    hasher.update(body);
    hasher.finalize()
}

/// Appends the frame of a record to `out`, for a segment with `salt`. The
/// caller checked that the stream name fits in u16.
pub(crate) fn encode_record(
    out: &mut Vec<u8>,
    salt: u64,
    seq: u64,
    event_time_ms: i64,
    stream: &str,
    record: &HStreamRecord,
) {
    let body_len = BODY_MIN + stream.len() + record.encoded_len();
    out.reserve(FRAME_HEAD + body_len);
    let start = out.len();
    out.put_u32_le(u32::try_from(body_len).unwrap_or(u32::MAX));
    out.put_u32_le(0);
    let body = out.len();
    out.put_u64_le(seq);
    out.put_i64_le(event_time_ms);
    out.put_u16_le(u16::try_from(stream.len()).unwrap_or(u16::MAX));
    out.put_slice(stream.as_bytes());
    // Encoding into a Vec cannot run out of room.
    let _ = record.encode(out);
    let crc = frame_crc(Some(salt), &out[body..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("the frame is {0} bytes, too short for a record")]
    Short(usize),
    #[error("the stream name is not UTF-8")]
    StreamName,
    #[error("the record does not decode: {0}")]
    Record(#[from] prost::DecodeError),
}

/// The stream a frame body names, without decoding the record.
pub(crate) fn body_stream(body: &[u8]) -> Result<&str, BodyError> {
    if body.len() < BODY_MIN {
        return Err(BodyError::Short(body.len()));
    }
    let len = usize::from(u16::from_le_bytes([body[16], body[17]]));
    let name = body
        .get(BODY_MIN..BODY_MIN + len)
        .ok_or(BodyError::Short(body.len()))?;
    std::str::from_utf8(name).map_err(|_| BodyError::StreamName)
}

/// Decodes a frame body whose checksum was verified.
pub(crate) fn decode_body(body: Bytes) -> Result<DiskRecord, BodyError> {
    let stream = body_stream(&body)?.to_owned();
    let mut fields = &body[..16];
    let seq = fields.get_u64_le();
    let event_time_ms = fields.get_i64_le();
    let record = HStreamRecord::decode(body.slice(BODY_MIN + stream.len()..))?;
    Ok(DiskRecord {
        seq,
        event_time_ms,
        stream,
        record,
    })
}

/// Where a good frame is in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameLoc {
    pub(crate) seq: u64,
    /// Offset of the frame (its length field) in the file.
    pub(crate) offset: u64,
    /// Length of the body.
    pub(crate) len: u32,
}

impl FrameLoc {
    pub(crate) fn body(&self) -> Range<usize> {
        let start = self.offset as usize + FRAME_HEAD;
        start..start + self.len as usize
    }

    pub(crate) fn frame_len(&self) -> u64 {
        FRAME_HEAD as u64 + u64::from(self.len)
    }
}

/// What recovery found in a segment after its header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Good frames, in order, with growing sequence numbers.
    pub(crate) frames: Vec<FrameLoc>,
    /// Byte ranges skipped between good frames.
    pub(crate) corrupt: Vec<Range<usize>>,
    /// End of the last good frame (or of the header): the file's length
    /// once the torn tail is cut.
    pub(crate) valid_end: usize,
}

impl Scan {
    pub(crate) fn torn_bytes(&self, file_len: usize) -> usize {
        file_len.saturating_sub(self.valid_end)
    }

    pub(crate) fn corrupt_bytes(&self) -> usize {
        self.corrupt.iter().map(ExactSizeIterator::len).sum()
    }
}

/// Scans a segment file's bytes: the header, then every good frame.
pub(crate) fn scan_segment(bytes: &[u8]) -> Result<(Header, Scan), HeaderError> {
    let header = decode_header(bytes)?;
    let frames = scan_frames(bytes, HEADER_LEN, Some(header.salt), |body, last| {
        if body.len() < BODY_MIN {
            return None;
        }
        let seq = u64::from_le_bytes(body[..8].try_into().ok()?);
        let floor = last.map_or(header.first_seq, |last| last + 1);
        (seq >= floor).then_some(seq)
    });
    Ok((header, frames))
}

/// Scans a marks file: the seq ranges it records as appended. Torn or
/// corrupt frames are skipped (at worst a record is appended again).
pub(crate) fn scan_marks(bytes: &[u8]) -> Vec<Range<u64>> {
    let scan = scan_frames(bytes, 0, None, |body, _| {
        (!body.is_empty() && body.len() % 12 == 0).then_some(0)
    });
    let mut ranges = Vec::new();
    for frame in scan.frames {
        let mut body = &bytes[frame.body()];
        while body.remaining() >= 12 {
            let start = body.get_u64_le();
            let count = u64::from(body.get_u32_le());
            ranges.push(start..start.saturating_add(count));
        }
    }
    ranges
}

/// Sorted, disjoint seq ranges, for membership tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SeqSet(Vec<Range<u64>>);

impl SeqSet {
    pub(crate) fn new(mut ranges: Vec<Range<u64>>) -> SeqSet {
        ranges.retain(|range| !range.is_empty());
        ranges.sort_by_key(|range| range.start);
        let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
        for range in ranges {
            match merged.last_mut() {
                Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                _ => merged.push(range),
            }
        }
        SeqSet(merged)
    }

    pub(crate) fn contains(&self, seq: u64) -> bool {
        let after = self.0.partition_point(|range| range.start <= seq);
        after > 0 && self.0[after - 1].contains(&seq)
    }
}

/// Runs of consecutive numbers in sorted `seqs`, as marks frames hold them.
pub(crate) fn runs(seqs: &[u64]) -> Vec<(u64, u32)> {
    let mut runs: Vec<(u64, u32)> = Vec::new();
    for &seq in seqs {
        match runs.last_mut() {
            Some((start, count)) if *start + u64::from(*count) == seq && *count < u32::MAX => {
                *count += 1
            }
            _ => runs.push((seq, 1)),
        }
    }
    runs
}

/// Appends a marks frame recording `ranges` as appended.
pub(crate) fn encode_marks(out: &mut Vec<u8>, ranges: &[(u64, u32)]) {
    let body_len = ranges.len() * 12;
    let start = out.len();
    out.put_u32_le(u32::try_from(body_len).unwrap_or(u32::MAX));
    out.put_u32_le(0);
    for &(first, count) in ranges {
        out.put_u64_le(first);
        out.put_u32_le(count);
    }
    let crc = frame_crc(None, &out[start + FRAME_HEAD..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The frame scan shared by segments and marks. `accept` checks a body
/// (before its checksum is computed, so it must be cheap) and returns its
/// sequence number, or `None` to reject it; it gets the last accepted one.
fn scan_frames(
    bytes: &[u8],
    start: usize,
    salt: Option<u64>,
    accept: impl Fn(&[u8], Option<u64>) -> Option<u64>,
) -> Scan {
    let mut scan = Scan {
        valid_end: start.min(bytes.len()),
        ..Scan::default()
    };
    let mut last: Option<u64> = None;
    let mut pos = start;
    // Where the bytes since the last good frame started to be bad.
    let mut bad_since: Option<usize> = None;
    while pos + FRAME_HEAD <= bytes.len() {
        match frame_at(bytes, pos, salt, last, &accept) {
            Some((seq, len)) => {
                if let Some(bad) = bad_since.take() {
                    scan.corrupt.push(bad..pos);
                }
                scan.frames.push(FrameLoc {
                    seq,
                    offset: pos as u64,
                    len,
                });
                last = Some(seq);
                pos += FRAME_HEAD + len as usize;
                scan.valid_end = pos;
            }
            None => {
                bad_since.get_or_insert(pos);
                pos += 1;
            }
        }
    }
    scan
}

fn frame_at(
    bytes: &[u8],
    pos: usize,
    salt: Option<u64>,
    last: Option<u64>,
    accept: impl Fn(&[u8], Option<u64>) -> Option<u64>,
) -> Option<(u64, u32)> {
    let head = bytes.get(pos..pos + FRAME_HEAD)?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?);
    let crc = u32::from_le_bytes(head[4..].try_into().ok()?);
    if len as usize > MAX_BODY {
        return None;
    }
    let body = bytes.get(pos + FRAME_HEAD..pos + FRAME_HEAD + len as usize)?;
    let seq = accept(body, last)?;
    (frame_crc(salt, body) == crc).then_some((seq, len))
}

#[cfg(test)]
mod tests;
