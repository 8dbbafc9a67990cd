//! Reading EMQX's files: HOCON configuration (`emqx.conf`, `cluster.conf`,
//! the output of `emqx ctl conf show`) or the JSON that EMQX's REST API
//! returns (`GET /api/v5/rules`, `/actions`, `/connectors`, `/bridges`),
//! into one JSON tree per file with EMQX's configuration layout, plus what it
//! takes to say on which line a key stands.
//!
//! Why one layout: the mapping (`super::emqx`) then reads HOCON and REST
//! input through the same code, so the two cannot be understood differently.
//! The REST answers are lists of objects with `type` and `name`; they are
//! placed where the configuration file keeps the same object
//! (`connectors.<type>.<name>`, `rule_engine.rules.<id>`).

use super::ImportError;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One input file, read.
#[derive(Debug)]
pub(crate) struct Document {
    pub(crate) file: PathBuf,
    text: String,
    /// The file's content in EMQX's configuration layout.
    pub(crate) tree: Value,
}

impl Document {
    /// Reads `file`: JSON when it is a REST API answer (a list, or an object
    /// with `data`, `sql` or `type` at the top), else HOCON (JSON
    /// configuration is HOCON too).
    pub(crate) fn read(file: &Path) -> Result<Document, ImportError> {
        let text = std::fs::read_to_string(file).map_err(|source| ImportError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        let tree = match serde_json::from_str::<Value>(&text) {
            Ok(json) if is_rest_answer(&json) => rest_to_config(json, file)?,
            Ok(Value::Object(map)) => Value::Object(map),
            _ => parse_hocon(file)?,
        };
        Ok(Document {
            file: file.to_path_buf(),
            text,
            tree,
        })
    }

    /// The 1-based line where the key at `path` (`["connectors",
    /// "hstreamdb", "c1", "url"]`) is written, found by looking for each
    /// segment in turn after the previous one. HOCON's dotted keys
    /// (`rule_engine.rules.r1 {`) and nested blocks are found alike; a REST
    /// answer's objects are found by their name.
    pub(crate) fn line_of(&self, path: &[&str]) -> Option<usize> {
        let mut from = 0;
        let mut found = None;
        for segment in path {
            let at = find_word(&self.text[from..], segment).map(|i| i + from);
            if let Some(at) = at {
                from = at + segment.len();
                found = Some(at);
            }
        }
        found.map(|at| self.text[..at].matches('\n').count() + 1)
    }
}

/// The first place `word` stands on its own (not inside a longer name).
fn find_word(text: &str, word: &str) -> Option<usize> {
    if word.is_empty() {
        return None;
    }
    let is_name = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let mut start = 0;
    while let Some(i) = text[start..].find(word).map(|i| i + start) {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        if !before.is_some_and(is_name) && !after.is_some_and(is_name) {
            return Some(i);
        }
        start = i + word.len();
    }
    None
}

fn is_rest_answer(json: &Value) -> bool {
    match json {
        Value::Array(_) => true,
        Value::Object(map) => {
            map.get("data").is_some_and(Value::is_array)
                || map.contains_key("sql")
                || (map.contains_key("type") && map.contains_key("name"))
        }
        _ => false,
    }
}

/// A REST answer in EMQX's configuration layout. Objects with `sql` are
/// rules (keyed by `id`); objects with `type` and `name` are connectors
/// (no `connector` and no `stream`), actions (with `connector`) or v1
/// bridges (with `stream`, 5.2–5.5).
fn rest_to_config(json: Value, file: &Path) -> Result<Value, ImportError> {
    let items = match json {
        Value::Array(items) => items,
        Value::Object(mut map) => match map.remove("data") {
            Some(Value::Array(items)) => items,
            _ => vec![Value::Object(map)],
        },
        _ => Vec::new(),
    };
    let mut root = Map::new();
    for (index, item) in items.into_iter().enumerate() {
        let Value::Object(mut item) = item else {
            return Err(ImportError::Syntax {
                file: file.to_path_buf(),
                line: None,
                message: format!("item {} of the REST answer is not an object", index + 1),
            });
        };
        let key = |item: &Map<String, Value>, field: &str| {
            item.get(field)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| ImportError::Syntax {
                    file: file.to_path_buf(),
                    line: None,
                    message: format!("item {} of the REST answer has no `{field}`", index + 1),
                })
        };
        let (section, kind, name) = if item.contains_key("sql") {
            ("rule_engine", "rules".to_owned(), key(&item, "id")?)
        } else {
            let kind = key(&item, "type")?;
            let name = key(&item, "name")?;
            let section = if item.contains_key("connector") {
                "actions"
            } else if item.contains_key("stream") {
                "bridges"
            } else {
                "connectors"
            };
            (section, kind, name)
        };
        // What the API adds to the configuration it returns.
        for field in [
            "id",
            "type",
            "name",
            "status",
            "status_reason",
            "node_status",
            "metrics",
            "node_metrics",
            "created_at",
            "last_modified_at",
            "from",
            "actions_count",
        ] {
            if !(field == "id" && section != "rule_engine") {
                item.remove(field);
            }
        }
        if section == "connectors" {
            // The actions using the connector, listed by the API.
            item.remove("actions");
        }
        let kinds = root
            .entry(section)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(named) = kinds.as_object_mut().and_then(|kinds| {
            kinds
                .entry(kind)
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
        }) {
            named.insert(name, Value::Object(item));
        }
    }
    Ok(Value::Object(root))
}

/// HOCON text as a JSON tree: includes are read relative to the file,
/// `${VAR}` and `${?VAR}` come from the environment, as in EMQX.
fn parse_hocon(file: &Path) -> Result<Value, ImportError> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = hocon::parse_file_with_env(file, &env).map_err(|e| {
        let (line, message) = match &e {
            hocon::HoconError::Parse(p) => (Some(p.line), p.message.clone()),
            hocon::HoconError::Resolve(r) => (Some(r.line), r.message.clone()),
            other => (None, other.to_string()),
        };
        ImportError::Syntax {
            file: file.to_path_buf(),
            line,
            message: format!("not valid HOCON: {message}"),
        }
    })?;
    let mut root = Map::new();
    for key in config.keys() {
        if let Some(value) = config.get(&quote_key(key)) {
            root.insert(key.to_owned(), hocon_to_json(value));
        }
    }
    Ok(Value::Object(root))
}

/// A top-level key as a one-segment path.
fn quote_key(key: &str) -> String {
    if key
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        key.to_owned()
    } else {
        format!("\"{}\"", key.replace('"', "\\\""))
    }
}

fn hocon_to_json(value: &hocon::HoconValue) -> Value {
    match value {
        hocon::HoconValue::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), hocon_to_json(v)))
                .collect(),
        ),
        hocon::HoconValue::Array(items) => Value::Array(items.iter().map(hocon_to_json).collect()),
        hocon::HoconValue::Scalar(scalar) => match scalar.value_type {
            hocon::ScalarType::Number => serde_json::from_str::<serde_json::Number>(&scalar.raw)
                .map(Value::Number)
                .unwrap_or_else(|_| Value::String(scalar.raw.clone())),
            hocon::ScalarType::Boolean => Value::Bool(scalar.raw == "true"),
            hocon::ScalarType::Null => Value::Null,
            _ => Value::String(scalar.raw.clone()),
        },
        _ => Value::Null,
    }
}
