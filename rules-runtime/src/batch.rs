//! A batch of ABI v1 events through a program: events decoded into
//! columns with EMQX's names and types, outputs and errors written into an
//! output frame. The rule runtime module calls this for every batch, and
//! the host calls it directly to evaluate a rule without Wasm, so both run
//! the same code on the same bytes.

use crate::eval::{self, Host, Scope};
use crate::json;
use crate::program::Program;
use crate::value::{Map, Value};
use weir_guest_sdk::abi::{self, BatchReader, Flag, Kind, OutputFrameWriter};

/// Runs `program` on every event of `batch` (an ABI v1 event batch frame),
/// appending to `frame` one output per record and one error per event that
/// failed. The frame is not reset first.
pub fn process(program: &Program, batch: &[u8], host: &dyn Host, frame: &mut OutputFrameWriter) {
    let mut reader = match BatchReader::new(batch) {
        Ok(r) => r,
        Err(e) => {
            frame.error(0, abi::code::BAD_EVENT, &format!("undecodable batch: {e}"));
            return;
        }
    };
    let flag = if program.raw { Flag::Raw } else { Flag::Json };
    let mut index = 0u32;
    while let Some(event) = reader.next_event() {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                // The rest of the batch cannot be found.
                frame.error(
                    index,
                    abi::code::BAD_EVENT,
                    &format!("undecodable event: {e}"),
                );
                return;
            }
        };
        match Columns::decode(&event) {
            Err(message) => frame.error(index, abi::code::BAD_EVENT, &message),
            Ok(columns) => match eval::run(program, &columns, host) {
                Ok(outputs) => {
                    for out in outputs {
                        let open = frame.begin_output(index, flag, "", &out.key);
                        frame.record_buf().extend_from_slice(&out.record);
                        frame.end_output(open);
                    }
                }
                Err(message) => frame.error(index, abi::code::RULE, &message),
            },
        }
        index = index.saturating_add(1);
    }
}

/// An event's columns with EMQX's names: the ABI fields (the message id as
/// 32 upper-case hex digits, `flags` as an object, JSON fields decoded),
/// and `event`.
#[derive(Debug, Clone)]
pub struct Columns {
    entries: Vec<(&'static str, Value)>,
}

impl Columns {
    /// Decodes one event of a batch.
    pub fn decode(event: &abi::EventFrame<'_>) -> Result<Columns, String> {
        let mut entries: Vec<(&'static str, Value)> = Vec::with_capacity(16);
        entries.push(("event", Value::str(event.kind.name())));
        let (mut dup, mut retain) = (None, None);
        for field in event.fields() {
            let (id, value) = field.map_err(|e| format!("undecodable event: {e}"))?;
            let value = match value {
                abi::Value::Null => Value::Undefined,
                abi::Value::Bool(b) => Value::Bool(b),
                abi::Value::I64(n) => Value::Int(n),
                abi::Value::F64(x) => Value::float(x).unwrap_or(Value::Undefined),
                abi::Value::Str(s) => Value::str(s),
                abi::Value::Bytes(b) if id == abi::field::ID => match b.len() {
                    16 => Value::str(hex_upper(b)),
                    _ => Value::Undefined,
                },
                abi::Value::Bytes(b) => Value::bytes(b),
                abi::Value::Json(j) => json::decode(j.as_bytes()).unwrap_or(Value::Undefined),
            };
            match id {
                abi::field::FLAGS_DUP => dup = Some(value),
                abi::field::FLAGS_RETAIN => retain = Some(value),
                _ => {
                    let Some(name) = abi::FIELD_NAMES
                        .get(usize::from(id))
                        .filter(|n| !n.is_empty())
                    else {
                        // A path the host extracted, or a field this build
                        // does not know: not a column.
                        continue;
                    };
                    entries.push((name, value));
                }
            }
        }
        if dup.is_some() || retain.is_some() {
            let mut flags = Map::new();
            for (name, v) in [("dup", dup), ("retain", retain)] {
                if let Some(v) = v.filter(|v| !v.is_undefined()) {
                    flags.insert(name.to_owned(), v);
                }
            }
            entries.push(("flags", Value::object(flags)));
        }
        Ok(Columns { entries })
    }

    /// The event's kind.
    pub fn kind_name(&self) -> Option<&str> {
        match self.entries.first() {
            Some(("event", Value::Str(s))) => Some(s),
            _ => None,
        }
    }
}

impl Scope for Columns {
    fn get(&self, name: &str) -> Value {
        self.entries
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(Value::Undefined, |(_, v)| v.clone())
    }

    fn entries(&self) -> Map {
        self.entries
            .iter()
            .map(|(n, v)| {
                // A column the event has but whose value is unknown is
                // written as null, so every column of the kind is there.
                let v = if v.is_undefined() {
                    Value::Null
                } else {
                    v.clone()
                };
                ((*n).to_owned(), v)
            })
            .collect()
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// The kind of an event, by EMQX's `event` name.
pub fn kind_of(name: &str) -> Option<Kind> {
    weir_guest_sdk::schema::kind_of_event(name)
}
