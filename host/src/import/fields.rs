//! Typed reads of one EMQX object (a connector, an action, a rule, a
//! listener) that remember which keys were read, so that every key the
//! mapping did not use is reported instead of dropped silently, and every
//! bad value is an error with its file, line and key.

use super::ImportError;
use super::source::Document;
use crate::config::units;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::BTreeSet;

/// One object of an EMQX document, at `path`.
pub(crate) struct Item<'a> {
    pub(crate) doc: &'a Document,
    pub(crate) path: Vec<String>,
    map: &'a Map<String, Value>,
    used: RefCell<BTreeSet<String>>,
}

/// A duration as EMQX has it: milliseconds, or `infinity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Duration {
    Millis(u64),
    Infinity,
}

impl<'a> Item<'a> {
    pub(crate) fn new(doc: &'a Document, path: Vec<String>, map: &'a Map<String, Value>) -> Self {
        Item {
            doc,
            path,
            map,
            used: RefCell::default(),
        }
    }

    /// The dotted key of `field` in this object, as EMQX names it.
    pub(crate) fn key(&self, field: &str) -> String {
        let mut key = self.path.join(".");
        if !field.is_empty() {
            key.push('.');
            key.push_str(field);
        }
        key
    }

    /// The line `field` is on (or the object's line for an empty field).
    pub(crate) fn line(&self, field: &str) -> Option<usize> {
        let mut path: Vec<&str> = self.path.iter().map(String::as_str).collect();
        if !field.is_empty() {
            path.push(field);
        }
        self.doc.line_of(&path)
    }

    pub(crate) fn error(&self, field: &str, message: impl Into<String>) -> ImportError {
        ImportError::Field {
            file: self.doc.file.clone(),
            line: self.line(field),
            key: self.key(field),
            message: message.into(),
        }
    }

    /// Where `field` is, for the report: `file:line: key`.
    pub(crate) fn at(&self, field: &str) -> String {
        match self.line(field) {
            Some(line) => format!("{}:{line}: {}", self.doc.file.display(), self.key(field)),
            None => format!("{}: {}", self.doc.file.display(), self.key(field)),
        }
    }

    pub(crate) fn has(&self, field: &str) -> bool {
        self.map.contains_key(field)
    }

    pub(crate) fn raw(&self, field: &str) -> Option<&'a Value> {
        let value = self.map.get(field)?;
        self.used.borrow_mut().insert(field.to_owned());
        Some(value)
    }

    /// Marks `field` as dealt with (reported by the caller).
    pub(crate) fn consume(&self, field: &str) -> Option<&'a Value> {
        self.raw(field)
    }

    pub(crate) fn str(&self, field: &str) -> Result<Option<&'a str>, ImportError> {
        match self.raw(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(self.error(field, format!("expected a string, found {other}"))),
        }
    }

    /// A boolean; EMQX also writes them as `"true"`/`"false"`.
    pub(crate) fn bool(&self, field: &str) -> Result<Option<bool>, ImportError> {
        match self.raw(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(other) => Err(self.error(field, format!("expected true or false, found {other}"))),
        }
    }

    pub(crate) fn int(&self, field: &str) -> Result<Option<u64>, ImportError> {
        match self.raw(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(Value::String(s)) if s.parse::<u64>().is_ok() => Ok(s.parse().ok()),
            Some(other) => Err(self.error(
                field,
                format!("expected a non-negative integer, found {other}"),
            )),
        }
    }

    /// A duration: EMQX's notation (`30s`), or a number of milliseconds.
    pub(crate) fn duration(&self, field: &str) -> Result<Option<Duration>, ImportError> {
        match self.raw(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().map(Duration::Millis)),
            Some(Value::String(s)) if s.trim() == "infinity" => Ok(Some(Duration::Infinity)),
            Some(Value::String(s)) => units::parse_duration_ms(s)
                .map(|ms| Some(Duration::Millis(ms)))
                .ok_or_else(|| {
                    self.error(
                        field,
                        format!("`{s}` is not a duration (EMQX writes e.g. `500ms`, `30s`)"),
                    )
                }),
            Some(other) => Err(self.error(field, format!("expected a duration, found {other}"))),
        }
    }

    /// A size: EMQX's notation (`256MB`), or a number of bytes.
    pub(crate) fn size(&self, field: &str) -> Result<Option<u64>, ImportError> {
        match self.raw(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(Value::String(s)) => units::parse_size(s).map(Some).ok_or_else(|| {
                self.error(
                    field,
                    format!("`{s}` is not a size (EMQX writes e.g. `1KB`, `256MB`)"),
                )
            }),
            Some(other) => Err(self.error(field, format!("expected a size, found {other}"))),
        }
    }

    pub(crate) fn object(&self, field: &str) -> Result<Option<Item<'a>>, ImportError> {
        match self.raw(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => {
                let mut path = self.path.clone();
                path.push(field.to_owned());
                Ok(Some(Item::new(self.doc, path, map)))
            }
            Some(other) => Err(self.error(field, format!("expected an object, found {other}"))),
        }
    }

    /// The keys not read yet, with their values, in key order.
    pub(crate) fn unread(&self) -> Vec<(String, &'a Value)> {
        let used = self.used.borrow();
        self.map
            .iter()
            .filter(|(k, _)| !used.contains(k.as_str()))
            .map(|(k, v)| (k.clone(), v))
            .collect()
    }
}

/// A value as the report shows it: strings without quotes, the rest as JSON.
pub(crate) fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
