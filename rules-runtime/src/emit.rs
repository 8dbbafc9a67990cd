//! How values are written into records and keys.
//!
//! A record template knows, for each placeholder, whether it stands where a
//! JSON value goes, inside a JSON string, or in plain text (partition keys,
//! raw records); each [`Mode`] writes a value so that the result stays what
//! it must be: valid JSON, or UTF-8 for keys.

use crate::json;
use crate::value::Value;

/// Where a value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Mode {
    /// A JSON value position: strings quoted and escaped, numbers as
    /// numbers, JSON as JSON, null as `null`. The payload goes in as JSON
    /// when it is valid JSON, else as a string.
    Json = 0,
    /// Inside a JSON string: the value's text, escaped, without quotes;
    /// null as nothing.
    InString = 1,
    /// Plain UTF-8 text (partition keys): the value's text, null as
    /// nothing, invalid UTF-8 in bytes replaced by U+FFFD.
    Text = 2,
    /// Plain text of a raw record: like `Text`, but bytes are copied as
    /// they are.
    Raw = 3,
}

impl Mode {
    pub fn from_i32(n: i32) -> Option<Mode> {
        match n {
            0 => Some(Mode::Json),
            1 => Some(Mode::InString),
            2 => Some(Mode::Text),
            3 => Some(Mode::Raw),
            _ => None,
        }
    }
}

/// Appends `value` to `out` as `mode` says.
pub fn emit(out: &mut Vec<u8>, value: &Value<'_>, mode: Mode) {
    match mode {
        Mode::Json => emit_json(out, value),
        Mode::InString => match value {
            Value::Null => {}
            Value::Str(s) => json::escape_into(out, s),
            Value::Json(j) => json::escape_into(out, j),
            Value::Bytes(b) => json::escape_into(out, &String::from_utf8_lossy(b)),
            other => write_scalar(out, other),
        },
        Mode::Text | Mode::Raw => match value {
            Value::Null => {}
            Value::Str(s) => out.extend_from_slice(s.as_bytes()),
            Value::Json(j) => out.extend_from_slice(j.as_bytes()),
            Value::Bytes(b) if mode == Mode::Raw => out.extend_from_slice(b),
            Value::Bytes(b) => out.extend_from_slice(String::from_utf8_lossy(b).as_bytes()),
            other => write_scalar(out, other),
        },
    }
}

fn emit_json(out: &mut Vec<u8>, value: &Value<'_>) {
    match value {
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
        Value::Json(j) => out.extend_from_slice(j.as_bytes()),
        other => write_scalar(out, other),
    }
}

/// null, booleans and numbers, which read the same in every mode (but
/// null, which callers handle first where it differs).
fn write_scalar(out: &mut Vec<u8>, value: &Value<'_>) {
    match value {
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Value::Float(x) if x.is_finite() => {
            out.extend_from_slice(zmij::Buffer::new().format_finite(*x).as_bytes());
        }
        _ => out.extend_from_slice(b"null"),
    }
}

/// The value as text (what `str()` and concatenation use); `None` for null.
pub fn text(value: &Value<'_>) -> Option<String> {
    if value.is_null() {
        return None;
    }
    let mut out = Vec::new();
    emit(&mut out, value, Mode::Text);
    // Text mode writes UTF-8 only.
    Some(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn render(v: Value<'_>, mode: Mode) -> String {
        let mut out = Vec::new();
        emit(&mut out, &v, mode);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn each_mode_writes_what_it_must() {
        let payload = Value::Bytes(Cow::Borrowed(b" {\"a\": 1.50} "));
        assert_eq!(render(payload.clone(), Mode::Json), r#"{"a":1.50}"#);
        assert_eq!(
            render(payload.clone(), Mode::InString),
            r#" {\"a\": 1.50} "#
        );
        assert_eq!(render(payload, Mode::Text), " {\"a\": 1.50} ");
        let binary = Value::Bytes(Cow::Borrowed(b"x\xff\"y"));
        assert_eq!(render(binary.clone(), Mode::Json), "\"x\u{fffd}\\\"y\"");
        assert_eq!(render(binary.clone(), Mode::Text), "x\u{fffd}\"y");
        let mut raw = Vec::new();
        emit(&mut raw, &binary, Mode::Raw);
        assert_eq!(raw, b"x\xff\"y");
        assert_eq!(render(Value::Null, Mode::Json), "null");
        assert_eq!(render(Value::Null, Mode::InString), "");
        assert_eq!(render(Value::Float(1.0), Mode::Json), "1.0");
        assert_eq!(
            render(Value::Float(0.1 + 0.2), Mode::Text),
            "0.30000000000000004"
        );
        assert_eq!(render(Value::Int(-7), Mode::InString), "-7");
        assert_eq!(render(Value::str("é\"\n"), Mode::Json), "\"é\\\"\\n\"");
    }
}
