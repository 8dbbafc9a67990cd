//! Templates with `${field}` placeholders that always produce valid JSON.
//!
//! EMQX inserts values verbatim, so `{"payload": "${payload}"}` breaks on a
//! payload that contains a quote. [`Template::json`] knows, for every
//! placeholder, whether it stands in a JSON value position or inside a JSON
//! string, and renders accordingly: `{"topic": ${topic}}` gives
//! `{"topic": "t/1"}` (quoted and escaped), `"t-${topic}"` gives `"t-t/1"`
//! (escaped, no extra quotes). A value that is absent renders as `null` in a
//! value position and as nothing inside a string. [`Template::text`] renders
//! plain text (for partition keys): strings verbatim, absent as nothing.
//!
//! Placeholders: any EMQX column (`${clientid}`, `${qos}`, `${flags.dup}`),
//! `${event}`, `${flags}` (an object), and paths into the JSON payload
//! (`${payload.a.b}`, `${payload.list[0]}`), parsed once per render.
//! Templates are parsed once (at init) and rendered straight into the
//! output buffer.

use crate::abi::{self, FieldId, PathSeg, Value};
use crate::event::Event;
use crate::json::escape_into;
use std::fmt;
use std::io::Write as _;

/// A template that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Json,
    Text,
}

#[derive(Debug, Clone, PartialEq)]
enum Var {
    Field(FieldId),
    Id,
    Event,
    Flags,
    Topic,
    PayloadPath(Vec<PathSeg>),
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Var { var: Var, in_string: bool },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    mode: Mode,
    segments: Vec<Segment>,
    uses_payload_paths: bool,
}

impl Template {
    /// A template whose output is JSON text (for HRecord outputs).
    pub fn json(src: &str) -> Result<Template, TemplateError> {
        Self::parse(src, Mode::Json)
    }

    /// A plain-text template (for partition keys and RAW records).
    pub fn text(src: &str) -> Result<Template, TemplateError> {
        Self::parse(src, Mode::Text)
    }

    fn parse(src: &str, mode: Mode) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut rest = src;
        let mut in_string = false;
        let mut escaped = false;
        while let Some(open) = rest.find("${") {
            let literal = &rest[..open];
            if mode == Mode::Json {
                for b in literal.bytes() {
                    match (escaped, b) {
                        (true, _) => escaped = false,
                        (false, b'\\') if in_string => escaped = true,
                        (false, b'"') => in_string = !in_string,
                        _ => {}
                    }
                }
            }
            if !literal.is_empty() {
                segments.push(Segment::Literal(literal.to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after.find('}').ok_or_else(|| {
                TemplateError(format!(
                    "unclosed placeholder at byte {} of template `{src}`",
                    src.len() - rest.len() + open
                ))
            })?;
            let name = after[..close].trim();
            segments.push(Segment::Var {
                var: resolve(name).map_err(|why| {
                    TemplateError(format!("placeholder `${{{name}}}` in `{src}`: {why}"))
                })?,
                in_string: mode == Mode::Json && in_string,
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Literal(rest.to_owned()));
        }
        let uses_payload_paths = segments.iter().any(|s| {
            matches!(
                s,
                Segment::Var {
                    var: Var::PayloadPath(_),
                    ..
                }
            )
        });
        Ok(Template {
            mode,
            segments,
            uses_payload_paths,
        })
    }

    /// Renders the template for `event`, appending to `out`.
    pub fn render_into(&self, event: &Event<'_>, out: &mut Vec<u8>) {
        let parsed = if self.uses_payload_paths {
            event.payload().json().ok()
        } else {
            None
        };
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.extend_from_slice(text.as_bytes()),
                Segment::Var { var, in_string } => {
                    let value = fetch(var, event, parsed.as_ref());
                    match (self.mode, in_string) {
                        (Mode::Text, _) => write_text(out, &value),
                        (Mode::Json, false) => write_json(out, &value),
                        (Mode::Json, true) => write_in_string(out, &value),
                    }
                }
            }
        }
    }

    /// Renders the template into a new string.
    pub fn render(&self, event: &Event<'_>) -> String {
        let mut out = Vec::new();
        self.render_into(event, &mut out);
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

fn resolve(name: &str) -> Result<Var, String> {
    match name {
        "id" => Ok(Var::Id),
        "event" => Ok(Var::Event),
        "flags" => Ok(Var::Flags),
        "topic" => Ok(Var::Topic),
        _ if name.starts_with("payload.") || name.starts_with("payload[") => {
            abi::parse_payload_path(name)
                .map(Var::PayloadPath)
                .map_err(|e| e.0)
        }
        _ => abi::field_id(name)
            .map(Var::Field)
            .ok_or_else(|| "no such field".to_owned()),
    }
}

/// A value to render.
#[derive(Debug)]
enum Out<'a> {
    Absent,
    Field(Value<'a>),
    Hex([u8; 32]),
    Flags(bool, bool),
    Json(&'a serde_json::Value),
}

fn fetch<'e>(var: &Var, event: &Event<'e>, parsed: Option<&'e serde_json::Value>) -> Out<'e> {
    match var {
        Var::Field(id) => event.field(*id).map_or(Out::Absent, Out::Field),
        Var::Id => Out::Hex(event.id_hex()),
        Var::Event => Out::Field(Value::Str(event.event())),
        Var::Topic => Out::Field(Value::Str(event.topic())),
        Var::Flags => {
            let f = event.flags();
            Out::Flags(f.dup, f.retain)
        }
        Var::PayloadPath(path) => parsed
            .and_then(|v| abi::lookup(v, path))
            .map_or(Out::Absent, Out::Json),
    }
}

fn escape_bytes_into(out: &mut Vec<u8>, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => escape_into(out, s),
        Err(_) => escape_into(out, &String::from_utf8_lossy(bytes)),
    }
}

/// Decimal digits of `n`, without going through `core::fmt` (which is
/// comparatively slow in wasm, and numbers are in most records).
fn write_i64(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

fn write_number(out: &mut Vec<u8>, value: &Value<'_>) {
    match value {
        Value::I64(n) => write_i64(out, *n),
        Value::F64(x) if x.is_finite() => {
            let _ = serde_json::to_writer(&mut *out, x);
        }
        Value::F64(_) => out.extend_from_slice(b"null"),
        _ => {}
    }
}

fn write_json(out: &mut Vec<u8>, value: &Out<'_>) {
    match value {
        Out::Absent | Out::Field(Value::Null) => out.extend_from_slice(b"null"),
        Out::Field(Value::Bool(b)) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Out::Field(v @ (Value::I64(_) | Value::F64(_))) => write_number(out, v),
        Out::Field(Value::Str(s)) => {
            out.push(b'"');
            escape_into(out, s);
            out.push(b'"');
        }
        Out::Field(Value::Bytes(b)) => {
            out.push(b'"');
            escape_bytes_into(out, b);
            out.push(b'"');
        }
        Out::Field(Value::Json(j)) => out.extend_from_slice(j.as_bytes()),
        Out::Hex(h) => {
            out.push(b'"');
            out.extend_from_slice(h);
            out.push(b'"');
        }
        Out::Flags(dup, retain) => {
            let _ = write!(out, r#"{{"dup":{dup},"retain":{retain}}}"#);
        }
        Out::Json(v) => {
            let _ = serde_json::to_writer(&mut *out, v);
        }
    }
}

fn write_in_string(out: &mut Vec<u8>, value: &Out<'_>) {
    match value {
        Out::Absent | Out::Field(Value::Null) => {}
        Out::Field(Value::Str(s)) => escape_into(out, s),
        Out::Field(Value::Bytes(b)) => escape_bytes_into(out, b),
        Out::Field(Value::Json(j)) => escape_into(out, j),
        Out::Json(serde_json::Value::String(s)) => escape_into(out, s),
        other => {
            let mut tmp = Vec::new();
            write_json(&mut tmp, other);
            escape_bytes_into(out, &tmp);
        }
    }
}

fn write_text(out: &mut Vec<u8>, value: &Out<'_>) {
    match value {
        Out::Absent | Out::Field(Value::Null) => {}
        Out::Field(Value::Str(s)) => out.extend_from_slice(s.as_bytes()),
        Out::Field(Value::Bytes(b)) => out.extend_from_slice(b),
        Out::Json(serde_json::Value::String(s)) => out.extend_from_slice(s.as_bytes()),
        Out::Hex(h) => out.extend_from_slice(h),
        other => write_json(out, other),
    }
}

#[cfg(test)]
mod tests;
