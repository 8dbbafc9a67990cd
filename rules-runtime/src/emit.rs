//! How values are written into records and keys.
//!
//! A raw record and a partition key are text, and a placeholder writes
//! exactly what EMQX's templates write: the value's text as `bin/1` gives it
//! (so an EMQX rule's raw records come out byte for byte the same, `undefined`
//! included). An HRecord template is JSON, and there weir knows, for each
//! placeholder, whether it stands where a JSON value goes or inside a JSON
//! string, and writes the value so that the record stays valid JSON:
//! strings quoted and escaped, a missing value `null`, a payload that is
//! JSON as JSON. That is the one place weir deliberately writes something
//! other than EMQX (docs/rules.md, "Compared with EMQX").

use crate::conv;
use crate::json;
use crate::value::Value;
use serde::{Deserialize, Serialize};

/// Where a value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// A JSON value position: strings quoted and escaped, numbers as
    /// numbers, arrays and objects as JSON, undefined and null as `null`;
    /// binary data (the payload) as JSON when it is valid JSON, else as a
    /// string.
    Json,
    /// Inside a JSON string: the value's text, escaped, without quotes;
    /// undefined as nothing.
    InString,
    /// Plain UTF-8 text (partition keys): the value's text, invalid UTF-8
    /// replaced by U+FFFD.
    Text,
    /// The bytes of a raw record: the value's text, binaries copied as they
    /// are.
    Raw,
}

/// Appends `value` to `out` as `mode` says.
pub fn emit(out: &mut Vec<u8>, value: &Value, mode: Mode) {
    match mode {
        Mode::Json => match value {
            Value::Str(s) => {
                out.push(b'"');
                json::escape_into(out, s);
                out.push(b'"');
            }
            Value::Bytes(b) => {
                if !json::compact_into(b, out) {
                    out.push(b'"');
                    json::escape_into(out, &String::from_utf8_lossy(b));
                    out.push(b'"');
                }
            }
            // A number reads as EMQX writes it in a template.
            Value::Float(_) => out.extend_from_slice(&conv::bin(value)),
            other => json::encode_into(out, other),
        },
        Mode::InString => match value {
            Value::Undefined => {}
            Value::Str(s) => json::escape_into(out, s),
            other => json::escape_into(out, &conv::text(other)),
        },
        Mode::Text => out.extend_from_slice(conv::text(value).as_bytes()),
        Mode::Raw => match value {
            Value::Str(s) => out.extend_from_slice(s.as_bytes()),
            Value::Bytes(b) => out.extend_from_slice(b),
            other => out.extend_from_slice(&conv::bin(other)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(v: Value, mode: Mode) -> String {
        let mut out = Vec::new();
        emit(&mut out, &v, mode);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn each_mode_writes_what_it_must() {
        let payload = Value::bytes(&b" {\"a\": 1.50} "[..]);
        assert_eq!(render(payload.clone(), Mode::Json), r#"{"a":1.50}"#);
        assert_eq!(
            render(payload.clone(), Mode::InString),
            r#" {\"a\": 1.50} "#
        );
        assert_eq!(render(payload, Mode::Text), " {\"a\": 1.50} ");
        let binary = Value::bytes(&b"x\xff\"y"[..]);
        assert_eq!(render(binary.clone(), Mode::Json), "\"x\u{fffd}\\\"y\"");
        assert_eq!(render(binary.clone(), Mode::Text), "x\u{fffd}\"y");
        let mut raw = Vec::new();
        emit(&mut raw, &binary, Mode::Raw);
        assert_eq!(raw, b"x\xff\"y");
        assert_eq!(render(Value::Undefined, Mode::Json), "null");
        assert_eq!(render(Value::Undefined, Mode::InString), "");
        assert_eq!(render(Value::Undefined, Mode::Raw), "undefined");
        assert_eq!(render(Value::Float(1.0), Mode::Json), "1.0");
        assert_eq!(render(Value::Float(1.0 / 3.0), Mode::Text), "0.3333333333");
        assert_eq!(render(Value::Int(-7), Mode::InString), "-7");
        assert_eq!(render(Value::str("é\"\n"), Mode::Json), "\"é\\\"\\n\"");
    }
}
