//! ABI v1's byte layout: the one definition both sides use.
//!
//! The host encodes event batches with [`BatchWriter`] and decodes output
//! frames with [`OutputFrameReader`]; the guest runtime does the opposite
//! with [`BatchReader`] and [`OutputFrameWriter`]. Keeping both directions in
//! one module (compiled natively for the host and to wasm32 for plugins) is
//! what makes it impossible for the two sides to disagree about a byte. The
//! prose contract is `guest-sdk/ABI.md`; the numbers below are normative.
//!
//! Everything is little-endian and unaligned. Readers treat their input as
//! untrusted: every length is checked, and a malformed frame is an error
//! value, never a panic.

use std::fmt;
use std::ops::Range;

/// The ABI version this crate implements.
pub const ABI_VERSION: u32 = 1;
/// Prefix of the marker export; the full name is `weir_abi_version_<N>`.
pub const VERSION_EXPORT_PREFIX: &str = "weir_abi_version_";
/// The marker export a v1 module has (a function with no parameters and no
/// results; the host never calls it).
pub const VERSION_EXPORT: &str = "weir_abi_version_1";
/// `weir_buffer(len: i32) -> i32`: a guest-owned buffer of at least `len` bytes.
pub const EXPORT_BUFFER: &str = "weir_buffer";
/// `weir_init(len: i32) -> i64`: read the init document from the buffer.
pub const EXPORT_INIT: &str = "weir_init";
/// `weir_process(len: i32) -> i64`: read an event batch from the buffer.
pub const EXPORT_PROCESS: &str = "weir_process";
/// The module's linear memory export.
pub const EXPORT_MEMORY: &str = "memory";
/// Import module of the host functions.
pub const IMPORT_MODULE: &str = "weir";
/// The custom section in which a module declares the fields it reads.
pub const FIELDS_SECTION: &str = "weir.fields";
/// Field ids at and above this number carry the host-extracted value of the
/// module's declared payload path number `id - PATH_FIELD_BASE`.
pub const PATH_FIELD_BASE: u16 = 0x8000;
/// At most this many payload paths may be declared.
pub const MAX_PATHS: usize = 256;

/// Log levels of the `log` import.
pub mod level {
    pub const ERROR: u32 = 1;
    pub const WARN: u32 = 2;
    pub const INFO: u32 = 3;
    pub const DEBUG: u32 = 4;
    pub const TRACE: u32 = 5;
}

/// Error codes with a fixed meaning; a rule may use any other code for its
/// own errors.
pub mod code {
    /// A rule returned an error without a specific code.
    pub const RULE: u32 = 1;
    /// The guest could not decode the event it was given.
    pub const BAD_EVENT: u32 = 2;
    /// The rule produced an output the SDK could not encode (e.g. too long).
    pub const BAD_OUTPUT: u32 = 3;
}

/// The kind of an event, as encoded in a batch. Kinds are only ever added
/// (a module receives only the kinds its sources select, so one built
/// before a kind existed never sees it); `crate::schema` has each kind's
/// name, source and columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    MessagePublish = 0,
    ClientConnected = 1,
    ClientDisconnected = 2,
    ClientConnack = 3,
    SessionSubscribed = 4,
    SessionUnsubscribed = 5,
    MessageDelivered = 6,
    MessageAcked = 7,
    MessageDropped = 8,
    DeliveryDropped = 9,
}

impl Kind {
    /// How many kinds there are.
    pub const COUNT: usize = 10;

    /// Every kind, in number order.
    pub const ALL: [Kind; Kind::COUNT] = [
        Kind::MessagePublish,
        Kind::ClientConnected,
        Kind::ClientDisconnected,
        Kind::ClientConnack,
        Kind::SessionSubscribed,
        Kind::SessionUnsubscribed,
        Kind::MessageDelivered,
        Kind::MessageAcked,
        Kind::MessageDropped,
        Kind::DeliveryDropped,
    ];

    fn from_u8(byte: u8) -> Option<Kind> {
        Kind::ALL.get(usize::from(byte)).copied()
    }

    /// EMQX's `event` name: `message.publish`, `client.connected`, ...
    pub fn name(self) -> &'static str {
        crate::schema::schema(self).event
    }

    /// The `$events/...` rule source of the kind (`None` for
    /// `message.publish`, which topic filters select).
    pub fn source(self) -> Option<&'static str> {
        crate::schema::schema(self).source
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The type tag of a field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    Null = 0,
    Bool = 1,
    I64 = 2,
    F64 = 3,
    Str = 4,
    Bytes = 5,
    Json = 6,
}

/// Record flags, numbered as HStreamDB's `HStreamRecordHeader.Flag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Flag {
    /// An HRecord: the record bytes are the JSON text of an object, which
    /// the sink turns into a `google.protobuf.Struct`.
    #[default]
    Json = 0,
    /// Opaque bytes stored as they are.
    Raw = 1,
}

impl Flag {
    fn from_u8(byte: u8) -> Option<Flag> {
        match byte {
            0 => Some(Flag::Json),
            1 => Some(Flag::Raw),
            _ => None,
        }
    }
}

/// A field id: the stable number of an event field in ABI v1.
pub type FieldId = u16;

/// Stable field ids of ABI v1 (see the table in ABI.md). Never renumber;
/// new ids are only added, and readers skip ids they do not know.
pub mod field {
    use super::FieldId;
    pub const ID: FieldId = 1;
    pub const CLIENTID: FieldId = 2;
    pub const USERNAME: FieldId = 3;
    pub const TOPIC: FieldId = 4;
    pub const QOS: FieldId = 5;
    pub const FLAGS_DUP: FieldId = 6;
    pub const FLAGS_RETAIN: FieldId = 7;
    pub const PAYLOAD: FieldId = 8;
    pub const PUB_PROPS: FieldId = 9;
    pub const PEERHOST: FieldId = 10;
    pub const PUBLISH_RECEIVED_AT: FieldId = 11;
    pub const TIMESTAMP: FieldId = 12;
    pub const NODE: FieldId = 13;
    pub const PEERNAME: FieldId = 14;
    pub const SOCKNAME: FieldId = 15;
    pub const PROTO_NAME: FieldId = 16;
    pub const PROTO_VER: FieldId = 17;
    pub const KEEPALIVE: FieldId = 18;
    pub const CLEAN_START: FieldId = 19;
    pub const EXPIRY_INTERVAL: FieldId = 20;
    pub const CONNECTED_AT: FieldId = 21;
    pub const REASON: FieldId = 22;
    pub const DISCONNECTED_AT: FieldId = 23;
    pub const FROM_CLIENTID: FieldId = 24;
    pub const FROM_USERNAME: FieldId = 25;
    pub const REASON_CODE: FieldId = 26;
    pub const SUB_PROPS: FieldId = 27;
    pub const UNSUB_PROPS: FieldId = 28;
    pub const PUBACK_PROPS: FieldId = 29;
    /// One more than the largest field id.
    pub const COUNT: usize = 30;
}

/// EMQX's column name of every field id, in id order (index = id).
pub const FIELD_NAMES: [&str; field::COUNT] = [
    "",
    "id",
    "clientid",
    "username",
    "topic",
    "qos",
    "flags.dup",
    "flags.retain",
    "payload",
    "pub_props",
    "peerhost",
    "publish_received_at",
    "timestamp",
    "node",
    "peername",
    "sockname",
    "proto_name",
    "proto_ver",
    "keepalive",
    "clean_start",
    "expiry_interval",
    "connected_at",
    "reason",
    "disconnected_at",
    "from_clientid",
    "from_username",
    "reason_code",
    "sub_props",
    "unsub_props",
    "puback_props",
];

/// The field id of an EMQX column name (`topic`, `flags.dup`, ...).
pub fn field_id(name: &str) -> Option<FieldId> {
    FIELD_NAMES
        .iter()
        .position(|n| !n.is_empty() && *n == name)
        .and_then(|i| FieldId::try_from(i).ok())
}

/// A decoded field value, borrowing from the frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    I64(i64),
    F64(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
    /// JSON text (an object, array or scalar).
    Json(&'a str),
}

/// A frame that does not follow the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// Byte offset in the frame where decoding failed.
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed frame at byte {}: {}", self.offset, self.what)
    }
}

impl std::error::Error for FrameError {}

/// A bounds-checked little-endian reader.
#[derive(Debug, Clone)]
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    fn err(&self, what: &'static str) -> FrameError {
        FrameError {
            offset: self.pos,
            what,
        }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FrameError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| self.err(what))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], FrameError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, FrameError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, FrameError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn len(&mut self, what: &'static str) -> Result<usize, FrameError> {
        usize::try_from(self.u32(what)?).map_err(|_| self.err(what))
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }
}

fn put_u16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn patch_u32(buf: &mut [u8], at: usize, v: u32) {
    if let Some(slot) = buf.get_mut(at..at + 4) {
        slot.copy_from_slice(&v.to_le_bytes());
    }
}

fn patch_u16(buf: &mut [u8], at: usize, v: u16) {
    if let Some(slot) = buf.get_mut(at..at + 2) {
        slot.copy_from_slice(&v.to_le_bytes());
    }
}

/// Lengths in frames are u32; anything longer is clamped by the writer's
/// caller (the host refuses such events before encoding).
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

// ---------------------------------------------------------------------------
// Event batches (host → guest)
// ---------------------------------------------------------------------------

/// Writes an event batch: `u32 count`, then `count` events.
#[derive(Debug)]
pub struct BatchWriter<'a> {
    buf: &'a mut Vec<u8>,
    start: usize,
    count: u32,
}

impl<'a> BatchWriter<'a> {
    /// Starts a batch at the end of `buf` (normally an empty, reused Vec).
    pub fn new(buf: &'a mut Vec<u8>) -> Self {
        let start = buf.len();
        put_u32(buf, 0);
        BatchWriter {
            buf,
            start,
            count: 0,
        }
    }

    /// Starts the next event; fields follow, then [`EventWriter::finish`].
    pub fn event(&mut self, kind: Kind) -> EventWriter<'_, 'a> {
        let start = self.buf.len();
        // body_len u32, kind u8, reserved u8, field_count u16
        put_u32(self.buf, 0);
        self.buf.push(kind as u8);
        self.buf.push(0);
        put_u16(self.buf, 0);
        EventWriter {
            batch: self,
            start,
            fields: 0,
        }
    }

    /// Patches the event count; returns the number of events written.
    pub fn finish(self) -> u32 {
        patch_u32(self.buf, self.start, self.count);
        self.count
    }
}

/// Writes one event's fields: each `u16 id, u8 tag, u8 reserved, u32 len,
/// len bytes`.
#[derive(Debug)]
pub struct EventWriter<'b, 'a> {
    batch: &'b mut BatchWriter<'a>,
    start: usize,
    fields: u16,
}

impl EventWriter<'_, '_> {
    fn header(&mut self, id: FieldId, tag: Tag, len: usize) {
        let [i0, i1] = id.to_le_bytes();
        let [l0, l1, l2, l3] = len_u32(len).to_le_bytes();
        self.batch
            .buf
            .extend_from_slice(&[i0, i1, tag as u8, 0, l0, l1, l2, l3]);
        self.fields = self.fields.saturating_add(1);
    }

    pub fn null(&mut self, id: FieldId) {
        self.header(id, Tag::Null, 0);
    }

    pub fn bool(&mut self, id: FieldId, v: bool) {
        self.header(id, Tag::Bool, 1);
        self.batch.buf.push(u8::from(v));
    }

    pub fn i64(&mut self, id: FieldId, v: i64) {
        self.header(id, Tag::I64, 8);
        self.batch.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn f64(&mut self, id: FieldId, v: f64) {
        self.header(id, Tag::F64, 8);
        self.batch.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn str(&mut self, id: FieldId, v: &str) {
        self.header(id, Tag::Str, v.len());
        self.batch.buf.extend_from_slice(v.as_bytes());
    }

    pub fn bytes(&mut self, id: FieldId, v: &[u8]) {
        self.header(id, Tag::Bytes, v.len());
        self.batch.buf.extend_from_slice(v);
    }

    /// JSON text that the writer guarantees is valid JSON.
    pub fn json(&mut self, id: FieldId, v: &str) {
        self.header(id, Tag::Json, v.len());
        self.batch.buf.extend_from_slice(v.as_bytes());
    }

    /// A string field that may be unknown (`None` encodes as null).
    pub fn opt_str(&mut self, id: FieldId, v: Option<&str>) {
        match v {
            Some(s) => self.str(id, s),
            None => self.null(id),
        }
    }

    /// An integer field that may be unknown (`None` encodes as null).
    pub fn opt_i64(&mut self, id: FieldId, v: Option<i64>) {
        match v {
            Some(n) => self.i64(id, n),
            None => self.null(id),
        }
    }

    /// Writes a value of any type.
    pub fn value(&mut self, id: FieldId, v: Value<'_>) {
        match v {
            Value::Null => self.null(id),
            Value::Bool(b) => self.bool(id, b),
            Value::I64(n) => self.i64(id, n),
            Value::F64(x) => self.f64(id, x),
            Value::Str(s) => self.str(id, s),
            Value::Bytes(b) => self.bytes(id, b),
            Value::Json(j) => self.json(id, j),
        }
    }

    /// Writes a JSON value with the narrowest tag: null, bool, i64 (or f64
    /// for other numbers), string, or JSON text for arrays and objects.
    pub fn json_value(&mut self, id: FieldId, v: &serde_json::Value) {
        match v {
            serde_json::Value::Null => self.null(id),
            serde_json::Value::Bool(b) => self.bool(id, *b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => self.i64(id, i),
                None => self.f64(id, n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => self.str(id, s),
            other => {
                let buf = &mut *self.batch.buf;
                let at = buf.len();
                put_u16(buf, id);
                buf.push(Tag::Json as u8);
                buf.push(0);
                put_u32(buf, 0);
                let start = buf.len();
                // Serializing a Value into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *buf, other);
                let len = len_u32(buf.len() - start);
                patch_u32(buf, at + 4, len);
                self.fields = self.fields.saturating_add(1);
            }
        }
    }

    /// Patches the event's length and field count.
    pub fn finish(self) {
        let body = self.batch.buf.len() - self.start - 4;
        patch_u32(self.batch.buf, self.start, len_u32(body));
        patch_u16(self.batch.buf, self.start + 6, self.fields);
        self.batch.count = self.batch.count.saturating_add(1);
    }
}

/// Reads an event batch.
#[derive(Debug, Clone)]
pub struct BatchReader<'a> {
    cur: Cursor<'a>,
    remaining: u32,
}

impl<'a> BatchReader<'a> {
    pub fn new(frame: &'a [u8]) -> Result<Self, FrameError> {
        let mut cur = Cursor::new(frame);
        let remaining = cur.u32("batch event count")?;
        Ok(BatchReader { cur, remaining })
    }

    /// Number of events not yet read.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// The next event, or `None` at the end.
    pub fn next_event(&mut self) -> Option<Result<EventFrame<'a>, FrameError>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        Some(self.read_event())
    }

    fn read_event(&mut self) -> Result<EventFrame<'a>, FrameError> {
        let len = self.cur.len("event length")?;
        let offset = self.cur.pos;
        let body = self.cur.take(len, "event body past end of batch")?;
        let mut head = Cursor::new(body);
        let kind = Kind::from_u8(head.u8("event kind")?).ok_or(FrameError {
            offset,
            what: "unknown event kind",
        })?;
        head.u8("reserved")?;
        let field_count = head.u16("field count")?;
        Ok(EventFrame {
            kind,
            fields: &body[head.pos..],
            field_count,
            offset: offset + head.pos,
        })
    }
}

/// One encoded event: its kind and its undecoded fields.
#[derive(Debug, Clone, Copy)]
pub struct EventFrame<'a> {
    pub kind: Kind,
    fields: &'a [u8],
    field_count: u16,
    offset: usize,
}

impl<'a> EventFrame<'a> {
    /// Decodes the fields in order.
    pub fn fields(&self) -> FieldIter<'a> {
        FieldIter {
            cur: Cursor::new(self.fields),
            remaining: self.field_count,
            base: self.offset,
        }
    }
}

/// Iterator over an event's `(field id, value)` pairs.
#[derive(Debug, Clone)]
pub struct FieldIter<'a> {
    cur: Cursor<'a>,
    remaining: u16,
    base: usize,
}

impl<'a> FieldIter<'a> {
    fn read(&mut self) -> Result<(FieldId, Value<'a>), FrameError> {
        let [i0, i1, tag, _, l0, l1, l2, l3] = self.cur.array::<8>("field header")?;
        let id = u16::from_le_bytes([i0, i1]);
        let len = usize::try_from(u32::from_le_bytes([l0, l1, l2, l3]))
            .map_err(|_| self.cur.err("field length"))?;
        let at = self.cur.pos;
        let data = self.cur.take(len, "field value past end of event")?;
        let bad = |what| FrameError {
            offset: self.base + at,
            what,
        };
        let value = match tag {
            0 => Value::Null,
            1 => Value::Bool(data.first().copied().unwrap_or(0) != 0),
            2 => Value::I64(i64::from_le_bytes(
                data.try_into().map_err(|_| bad("i64 is not 8 bytes"))?,
            )),
            3 => Value::F64(f64::from_le_bytes(
                data.try_into().map_err(|_| bad("f64 is not 8 bytes"))?,
            )),
            4 => Value::Str(std::str::from_utf8(data).map_err(|_| bad("string is not UTF-8"))?),
            5 => Value::Bytes(data),
            6 => Value::Json(std::str::from_utf8(data).map_err(|_| bad("JSON is not UTF-8"))?),
            _ => return Err(bad("unknown type tag")),
        };
        Ok((id, value))
    }
}

impl<'a> Iterator for FieldIter<'a> {
    type Item = Result<(FieldId, Value<'a>), FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let item = self.read();
        if item.is_err() {
            self.remaining = 0;
        }
        Some(item)
    }
}

// ---------------------------------------------------------------------------
// Output frames (guest → host)
// ---------------------------------------------------------------------------

/// A position in an output frame (see [`OutputFrameWriter::mark`]).
#[derive(Debug, Clone, Copy)]
pub struct FrameMark {
    len: usize,
    outputs: u32,
}

/// Size of an output entry's fixed header.
const OUTPUT_HEADER: usize = 16;

/// Builds an output frame in a reused buffer: `u32 output_count, u32
/// error_count`, the outputs (`u32 event, u8 flag, u8 reserved, u16
/// target_len, u32 key_len, u32 record_len`, then target, key and record
/// bytes), then the errors (`u32 event, u32 code, u32 len, message`).
#[derive(Debug, Default)]
pub struct OutputFrameWriter {
    buf: Vec<u8>,
    outputs: u32,
    errors: Vec<u8>,
    error_count: u32,
}

/// An output being written; its record bytes are appended with
/// [`OutputFrameWriter::record_buf`] and it is closed by
/// [`OutputFrameWriter::end_output`].
#[derive(Debug, Clone, Copy)]
pub struct OpenOutput {
    header: usize,
    record_start: usize,
}

impl OutputFrameWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Empties the frame, keeping its capacity.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&[0u8; 8]);
        self.outputs = 0;
        self.errors.clear();
        self.error_count = 0;
    }

    /// Writes an output's header, target and key; the record follows.
    /// Targets longer than 65535 bytes are cut (the host then rejects the
    /// unknown stream name).
    pub fn begin_output(&mut self, event: u32, flag: Flag, target: &str, key: &str) -> OpenOutput {
        self.begin_output_with(event, flag, target, |buf| {
            buf.extend_from_slice(key.as_bytes())
        })
    }

    /// Like [`Self::begin_output`], with the key written by `key` straight
    /// into the frame (it must append UTF-8).
    pub fn begin_output_with(
        &mut self,
        event: u32,
        flag: Flag,
        target: &str,
        key: impl FnOnce(&mut Vec<u8>),
    ) -> OpenOutput {
        if self.buf.len() < 8 {
            self.reset();
        }
        let target = &target.as_bytes()[..target.len().min(usize::from(u16::MAX))];
        let header = self.buf.len();
        put_u32(&mut self.buf, event);
        self.buf.push(flag as u8);
        self.buf.push(0);
        put_u16(
            &mut self.buf,
            u16::try_from(target.len()).unwrap_or(u16::MAX),
        );
        put_u32(&mut self.buf, 0);
        put_u32(&mut self.buf, 0);
        self.buf.extend_from_slice(target);
        let key_start = self.buf.len();
        key(&mut self.buf);
        let key_len = len_u32(self.buf.len() - key_start);
        patch_u32(&mut self.buf, header + 8, key_len);
        OpenOutput {
            header,
            record_start: self.buf.len(),
        }
    }

    /// The frame's current end, to roll back to if an event fails.
    pub fn mark(&self) -> FrameMark {
        FrameMark {
            len: self.buf.len(),
            outputs: self.outputs,
        }
    }

    /// Drops every output written since `mark`.
    pub fn rollback(&mut self, mark: FrameMark) {
        self.buf.truncate(mark.len);
        self.outputs = mark.outputs;
    }

    /// The buffer to append the open output's record bytes to.
    pub fn record_buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Closes an output, recording its length.
    pub fn end_output(&mut self, open: OpenOutput) {
        let len = self.buf.len().saturating_sub(open.record_start);
        patch_u32(&mut self.buf, open.header + 12, len_u32(len));
        self.outputs += 1;
    }

    /// Drops an open output (e.g. its rendering failed).
    pub fn abandon_output(&mut self, open: OpenOutput) {
        self.buf.truncate(open.header);
    }

    /// Adds a per-event error.
    pub fn error(&mut self, event: u32, code: u32, message: &str) {
        put_u32(&mut self.errors, event);
        put_u32(&mut self.errors, code);
        put_u32(&mut self.errors, len_u32(message.len()));
        self.errors.extend_from_slice(message.as_bytes());
        self.error_count += 1;
    }

    /// Completes the frame and returns its bytes.
    pub fn finish(&mut self) -> &[u8] {
        if self.buf.len() < 8 {
            self.reset();
        }
        patch_u32(&mut self.buf, 0, self.outputs);
        patch_u32(&mut self.buf, 4, self.error_count);
        self.buf.extend_from_slice(&self.errors);
        self.errors.clear();
        &self.buf
    }
}

/// One output of an output frame, as byte ranges into the frame so that the
/// host can slice one `Bytes` without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOutput<'a> {
    pub event: u32,
    pub flag: Flag,
    /// Empty: the manifest's stream.
    pub target: &'a str,
    pub key: Range<usize>,
    pub record: Range<usize>,
}

/// One per-event error of an output frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawError<'a> {
    pub event: u32,
    pub code: u32,
    pub message: &'a str,
}

/// Reads an output frame produced by a guest (untrusted input).
#[derive(Debug, Clone)]
pub struct OutputFrameReader<'a> {
    frame: &'a [u8],
    cur: Cursor<'a>,
    outputs_left: u32,
    errors_left: u32,
}

impl<'a> OutputFrameReader<'a> {
    pub fn new(frame: &'a [u8]) -> Result<Self, FrameError> {
        let mut cur = Cursor::new(frame);
        let outputs_left = cur.u32("output count")?;
        let errors_left = cur.u32("error count")?;
        Ok(OutputFrameReader {
            frame,
            cur,
            outputs_left,
            errors_left,
        })
    }

    /// The next output; call until `None` before reading errors.
    pub fn next_output(&mut self) -> Option<Result<RawOutput<'a>, FrameError>> {
        if self.outputs_left == 0 {
            return None;
        }
        self.outputs_left -= 1;
        let out = self.read_output();
        if out.is_err() {
            self.outputs_left = 0;
            self.errors_left = 0;
        }
        Some(out)
    }

    fn read_output(&mut self) -> Result<RawOutput<'a>, FrameError> {
        let start = self.cur.pos;
        if self.frame.len() - start.min(self.frame.len()) < OUTPUT_HEADER {
            return Err(self.cur.err("output header past end of frame"));
        }
        let event = self.cur.u32("output event")?;
        let flag = Flag::from_u8(self.cur.u8("flag")?).ok_or(FrameError {
            offset: start + 4,
            what: "unknown record flag",
        })?;
        self.cur.u8("reserved")?;
        let target_len = usize::from(self.cur.u16("target length")?);
        let key_len = self.cur.len("key length")?;
        let record_len = self.cur.len("record length")?;
        let target_at = self.cur.pos;
        let target = std::str::from_utf8(self.cur.take(target_len, "target past end of frame")?)
            .map_err(|_| FrameError {
                offset: target_at,
                what: "target is not UTF-8",
            })?;
        let key_at = self.cur.pos;
        let key = self.cur.take(key_len, "key past end of frame")?;
        if std::str::from_utf8(key).is_err() {
            return Err(FrameError {
                offset: key_at,
                what: "partition key is not UTF-8",
            });
        }
        let record_at = self.cur.pos;
        self.cur.take(record_len, "record past end of frame")?;
        Ok(RawOutput {
            event,
            flag,
            target,
            key: key_at..key_at + key_len,
            record: record_at..record_at + record_len,
        })
    }

    /// The next error; valid once all outputs have been read.
    pub fn next_error(&mut self) -> Option<Result<RawError<'a>, FrameError>> {
        if self.errors_left == 0 || self.outputs_left != 0 {
            return None;
        }
        self.errors_left -= 1;
        let err = self.read_error();
        if err.is_err() {
            self.errors_left = 0;
        }
        Some(err)
    }

    fn read_error(&mut self) -> Result<RawError<'a>, FrameError> {
        let event = self.cur.u32("error event")?;
        let code = self.cur.u32("error code")?;
        let len = self.cur.len("error message length")?;
        let at = self.cur.pos;
        let message =
            std::str::from_utf8(self.cur.take(len, "error message past end")?).map_err(|_| {
                FrameError {
                    offset: at,
                    what: "error message is not UTF-8",
                }
            })?;
        Ok(RawError {
            event,
            code,
            message,
        })
    }

    /// Whether the whole frame was consumed (trailing bytes are an error).
    pub fn at_end(&self) -> bool {
        self.cur.is_empty()
    }
}

// ---------------------------------------------------------------------------
// Packed results and the `weir.fields` section
// ---------------------------------------------------------------------------

/// Packs a guest pointer and length into the i64 that `weir_init` and
/// `weir_process` return.
pub fn pack(ptr: u32, len: u32) -> u64 {
    (u64::from(ptr) << 32) | u64::from(len)
}

/// The inverse of [`pack`].
pub fn unpack(packed: u64) -> (u32, u32) {
    ((packed >> 32) as u32, packed as u32)
}

/// What a module declares in its `weir.fields` custom section.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldsSpec {
    /// EMQX column names the module reads; only these are sent.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Payload paths (`payload.a.b[0]`) the host extracts; the value of
    /// path number `i` arrives as field `PATH_FIELD_BASE + i`.
    #[serde(default)]
    pub paths: Vec<String>,
}

/// Why a `weir.fields` section or a payload path is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError(pub String);

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpecError {}

impl FieldsSpec {
    /// Parses the section's JSON text and checks every name and path.
    pub fn parse(section: &[u8]) -> Result<FieldsSpec, SpecError> {
        let spec: FieldsSpec = serde_json::from_slice(section)
            .map_err(|e| SpecError(format!("not valid JSON of fields and paths: {e}")))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks that every field exists and every path parses. The messages
    /// name no container: the `weir.fields` section and a manifest's
    /// `fields` key share them, and the caller says which it was.
    pub fn validate(&self) -> Result<(), SpecError> {
        for name in &self.fields {
            if field_id(name).is_none() && name != "flags" {
                return Err(SpecError(format!(
                    "`{name}` is not a field of any event (see docs/rules.md)"
                )));
            }
        }
        if self.paths.len() > MAX_PATHS {
            return Err(SpecError(format!(
                "{} payload paths; at most {MAX_PATHS} are allowed",
                self.paths.len()
            )));
        }
        for path in &self.paths {
            parse_payload_path(path)?;
        }
        Ok(())
    }

    /// Field ids to send, as a bit set indexed by id (`flags` selects both
    /// `flags.dup` and `flags.retain`).
    pub fn field_mask(&self) -> [bool; field::COUNT] {
        let mut mask = [false; field::COUNT];
        for name in &self.fields {
            if name == "flags" {
                mask[usize::from(field::FLAGS_DUP)] = true;
                mask[usize::from(field::FLAGS_RETAIN)] = true;
            } else if let Some(id) = field_id(name) {
                mask[usize::from(id)] = true;
            }
        }
        mask
    }
}

/// One step of a payload path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// Parses `payload.a.b`, `payload.list[2].x` or `payload.'odd key'.y` into
/// the steps below `payload`.
pub fn parse_payload_path(path: &str) -> Result<Vec<PathSeg>, SpecError> {
    let bad = |why: &str| SpecError(format!("invalid payload path `{path}`: {why}"));
    let rest = path
        .strip_prefix("payload")
        .ok_or_else(|| bad("it must start with `payload`"))?;
    let mut segs = Vec::new();
    let mut chars = rest.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match c {
            '.' => match chars.peek() {
                Some((_, '\'')) => {
                    chars.next();
                    let mut key = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '\'')) => break,
                            Some((_, ch)) => key.push(ch),
                            None => return Err(bad("unterminated quoted key")),
                        }
                    }
                    segs.push(PathSeg::Key(key));
                }
                _ => {
                    let mut key = String::new();
                    while let Some((_, ch)) = chars.peek().copied() {
                        if ch == '.' || ch == '[' {
                            break;
                        }
                        key.push(ch);
                        chars.next();
                    }
                    if key.is_empty() {
                        return Err(bad("empty key"));
                    }
                    segs.push(PathSeg::Key(key));
                }
            },
            '[' => {
                let mut digits = String::new();
                loop {
                    match chars.next() {
                        Some((_, ']')) => break,
                        Some((_, d)) if d.is_ascii_digit() => digits.push(d),
                        _ => return Err(bad("an index must be `[N]` with N a number")),
                    }
                }
                let index = digits
                    .parse()
                    .map_err(|_| bad("an index must be `[N]` with N a number"))?;
                segs.push(PathSeg::Index(index));
            }
            _ => return Err(bad("expected `.key` or `[index]`")),
        }
    }
    if segs.is_empty() {
        return Err(bad("name at least one key below `payload`"));
    }
    Ok(segs)
}

/// Follows a parsed path into a JSON value.
pub fn lookup<'v>(value: &'v serde_json::Value, path: &[PathSeg]) -> Option<&'v serde_json::Value> {
    path.iter().try_fold(value, |v, seg| match seg {
        PathSeg::Key(k) => v.as_object()?.get(k),
        PathSeg::Index(i) => v.as_array()?.get(*i),
    })
}

#[cfg(test)]
mod tests;
