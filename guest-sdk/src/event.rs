//! Typed, zero-copy views of the events a rule receives.
//!
//! An [`Event`] borrows from the batch the host wrote into guest memory:
//! strings are `&str` and the payload is `&[u8]` into that buffer, so reading
//! an event copies nothing. Accessors carry EMQX's column names. A field the
//! event's kind does not have, or that the module did not ask for in
//! `#[rule(fields = [...])]`, reads as absent (`None`, or the type's empty
//! value for the always-present fields such as `topic`).

use crate::abi::{self, FieldId, FrameError, Kind, Value, field};
use std::fmt;

/// A 128-bit message id, printed as 32 upper-case hex digits like EMQX's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MessageId(pub u128);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032X}", self.0)
    }
}

/// Upper-case hex digits of 16 big-endian bytes, without 128-bit shifts
/// (which wasm32 emulates slowly).
pub(crate) fn hex_digits(bytes: &[u8; 16]) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = [0u8; 32];
    for (i, byte) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(byte >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(byte & 0xF)];
    }
    out
}

/// The `flags` column of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    pub dup: bool,
    pub retain: bool,
}

/// A message payload: the bytes as published, with a lazy JSON accessor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Payload<'a>(pub &'a [u8]);

impl<'a> Payload<'a> {
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The payload as text, if it is UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.0).ok()
    }

    /// Parses the payload as JSON (each call parses again: keep the result).
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(self.0)
    }

    /// Deserializes the payload's JSON into `T`.
    pub fn json_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(self.0)
    }
}

/// Decoded fields by id; one array is reused for every event of a batch.
pub(crate) type Slots<'a> = [Option<Value<'a>>; field::COUNT];

/// One event of a batch.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    kind: Kind,
    index: u32,
    /// Borrowed rather than owned: the array is large, and in wasm every
    /// move of it would be a `memory.copy` call out of the module.
    slots: &'a Slots<'a>,
    frame: abi::EventFrame<'a>,
}

impl<'a> Event<'a> {
    /// Decodes an event frame into `slots`. `index` is its position in the
    /// batch.
    pub(crate) fn decode<'s>(
        frame: abi::EventFrame<'a>,
        index: u32,
        slots: &'s mut Slots<'a>,
    ) -> Result<Event<'s>, FrameError>
    where
        'a: 's,
    {
        *slots = [None; field::COUNT];
        for item in frame.fields() {
            let (id, value) = item?;
            if let Some(slot) = slots.get_mut(usize::from(id)) {
                *slot = Some(value);
            }
        }
        Ok(Event {
            kind: frame.kind,
            index,
            slots,
            frame,
        })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// EMQX's `event` column: `message.publish`, `client.connected`, ...
    pub fn event(&self) -> &'static str {
        self.kind.name()
    }

    /// Position of the event in its batch.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// A field by id, `None` when absent.
    pub fn field(&self, id: FieldId) -> Option<Value<'a>> {
        self.slots.get(usize::from(id)).copied().flatten()
    }

    /// A field by EMQX column name (`topic`, `flags.dup`, ...).
    pub fn get(&self, name: &str) -> Option<Value<'a>> {
        abi::field_id(name).and_then(|id| self.field(id))
    }

    /// The host-extracted value of declared payload path number `i`:
    /// `None` when the path is absent from the payload (or the payload is not
    /// JSON), `Some(Value::Null)` when it holds JSON `null`.
    pub fn extracted(&self, i: usize) -> Option<Value<'a>> {
        let id = abi::PATH_FIELD_BASE.checked_add(u16::try_from(i).ok()?)?;
        self.frame
            .fields()
            .filter_map(Result::ok)
            .find(|(fid, _)| *fid == id)
            .map(|(_, v)| v)
    }

    fn str_field(&self, id: FieldId) -> Option<&'a str> {
        match self.field(id) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    fn int_field(&self, id: FieldId) -> Option<i64> {
        match self.field(id) {
            Some(Value::I64(n)) => Some(n),
            _ => None,
        }
    }

    fn bool_field(&self, id: FieldId) -> Option<bool> {
        match self.field(id) {
            Some(Value::Bool(b)) => Some(b),
            _ => None,
        }
    }

    /// `id` of a message (zero for client events).
    pub fn id(&self) -> MessageId {
        match self.field(field::ID) {
            Some(Value::Bytes(b)) => {
                let mut raw = [0u8; 16];
                if b.len() == 16 {
                    raw.copy_from_slice(b);
                }
                MessageId(u128::from_be_bytes(raw))
            }
            _ => MessageId(0),
        }
    }

    /// The id's 32 hex digits (what `${id}` renders).
    pub(crate) fn id_hex(&self) -> [u8; 32] {
        match self.field(field::ID) {
            Some(Value::Bytes(b)) => match <&[u8; 16]>::try_from(b) {
                Ok(raw) => hex_digits(raw),
                Err(_) => [b'0'; 32],
            },
            _ => [b'0'; 32],
        }
    }

    /// `clientid`: the publisher (unknown in some modes) or the client.
    pub fn clientid(&self) -> Option<&'a str> {
        self.str_field(field::CLIENTID)
    }

    pub fn username(&self) -> Option<&'a str> {
        self.str_field(field::USERNAME)
    }

    /// `topic` of a message or subscription; for client events, the
    /// `$events/...` source.
    pub fn topic(&self) -> &'a str {
        match (self.str_field(field::TOPIC), self.kind) {
            (Some(t), _) => t,
            (None, kind) => kind.source().unwrap_or(""),
        }
    }

    pub fn qos(&self) -> u8 {
        self.int_field(field::QOS)
            .and_then(|q| u8::try_from(q).ok())
            .unwrap_or(0)
    }

    pub fn flags(&self) -> Flags {
        Flags {
            dup: self.bool_field(field::FLAGS_DUP).unwrap_or(false),
            retain: self.bool_field(field::FLAGS_RETAIN).unwrap_or(false),
        }
    }

    pub fn payload(&self) -> Payload<'a> {
        match self.field(field::PAYLOAD) {
            Some(Value::Bytes(b)) => Payload(b),
            Some(Value::Str(s)) => Payload(s.as_bytes()),
            _ => Payload(&[]),
        }
    }

    /// `pub_props` as JSON text (`{}` when absent).
    pub fn pub_props(&self) -> &'a str {
        match self.field(field::PUB_PROPS) {
            Some(Value::Json(j)) => j,
            _ => "{}",
        }
    }

    pub fn peerhost(&self) -> Option<&'a str> {
        self.str_field(field::PEERHOST)
    }

    pub fn publish_received_at(&self) -> Option<i64> {
        self.int_field(field::PUBLISH_RECEIVED_AT)
    }

    /// `timestamp`: when the event was created, in ms since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.int_field(field::TIMESTAMP).unwrap_or(0)
    }

    pub fn node(&self) -> &'a str {
        self.str_field(field::NODE).unwrap_or("")
    }

    pub fn peername(&self) -> Option<&'a str> {
        self.str_field(field::PEERNAME)
    }

    pub fn sockname(&self) -> Option<&'a str> {
        self.str_field(field::SOCKNAME)
    }

    pub fn proto_name(&self) -> Option<&'a str> {
        self.str_field(field::PROTO_NAME)
    }

    pub fn proto_ver(&self) -> Option<u8> {
        self.int_field(field::PROTO_VER)
            .and_then(|v| u8::try_from(v).ok())
    }

    pub fn keepalive(&self) -> Option<u16> {
        self.int_field(field::KEEPALIVE)
            .and_then(|v| u16::try_from(v).ok())
    }

    pub fn clean_start(&self) -> Option<bool> {
        self.bool_field(field::CLEAN_START)
    }

    pub fn expiry_interval(&self) -> Option<u32> {
        self.int_field(field::EXPIRY_INTERVAL)
            .and_then(|v| u32::try_from(v).ok())
    }

    pub fn connected_at(&self) -> Option<i64> {
        self.int_field(field::CONNECTED_AT)
    }

    /// `reason` of a disconnection (`normal`, `kicked`, ...).
    pub fn reason(&self) -> Option<&'a str> {
        self.str_field(field::REASON)
    }

    pub fn disconnected_at(&self) -> Option<i64> {
        self.int_field(field::DISCONNECTED_AT)
    }

    /// `from_clientid` of a delivery: the publisher of the message.
    pub fn from_clientid(&self) -> Option<&'a str> {
        self.str_field(field::FROM_CLIENTID)
    }

    /// `from_username` of a delivery: the publisher's username.
    pub fn from_username(&self) -> Option<&'a str> {
        self.str_field(field::FROM_USERNAME)
    }

    /// `reason_code` of a `client.connack` (`success`, `not_authorized`, ...).
    pub fn reason_code(&self) -> Option<&'a str> {
        self.str_field(field::REASON_CODE)
    }
}
