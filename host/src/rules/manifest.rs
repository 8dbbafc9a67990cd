//! A plugin's manifest, `NAME.toml`: what it listens to, where its records
//! go, its limits and its free-form `[config]`.
//!
//! The manifest is inert data checked completely at load time: unknown keys
//! are errors (a typo must not silently fall back to a default), and every
//! error names the file and the field path (`limits.deadline_ms`).
//!
//! ```toml
//! sources = ["t/#", "$events/client_connected"]  # MQTT topic filters and client events
//! qos = 1                          # QoS weir subscribes with (default 1)
//!
//! [action]
//! stream = "mqtt_message"          # where outputs with no target go
//! streams = ["alerts"]             # other streams the plugin may target
//! partition_key = "${topic}"       # default key template (rendered by the SDK)
//! record_format = "hrecord"        # default record format: hrecord | raw, as in rule files
//! dead_letter = "weir_dead"        # poison events of this plugin (default: the engine's)
//!
//! [limits]
//! deadline_ms = 100                # per batch (epoch interruption)
//! init_deadline_ms = 10000         # instantiation and init, per load
//! memory_mb = 64                   # linear memory cap
//! tables = 4                       # table count cap
//! table_elements = 100000          # elements per table cap
//! instances = 4                    # instance cap
//! fuel = 100000000                 # per batch, only when the engine runs in fuel mode
//! breaker_threshold = 5            # failing batches in a row that trip the breaker
//! breaker_backoff_ms = 1000        # first open period; doubles per trip
//! breaker_max_backoff_ms = 60000
//!
//! [config]                         # anything; passed to init as JSON
//! ```

use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use weir_guest_sdk::topic::{Qos, Source};

/// Why a manifest was rejected.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct ManifestError {
    pub file: String,
    /// The field path (`limits.deadline_ms`), or `.` for the document.
    pub field: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    sources: Vec<String>,
    #[serde(default = "default_qos")]
    qos: u8,
    #[serde(default)]
    description: Option<String>,
    /// The EMQX columns the plugin reads; only these are sent to it. For a
    /// component (which cannot carry a `weir.fields` section) or to narrow
    /// a core module's section.
    #[serde(default)]
    fields: Option<Vec<String>>,
    action: RawAction,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    config: Option<toml::Table>,
}

fn default_qos() -> u8 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    stream: String,
    #[serde(default)]
    streams: Vec<String>,
    #[serde(default)]
    partition_key: Option<String>,
    #[serde(default)]
    record_format: Option<Format>,
    /// The spelling before rule files and manifests shared one vocabulary
    /// (`format = "json"`); read, with a warning, so that existing
    /// manifests keep loading.
    #[serde(default)]
    format: Option<Format>,
    #[serde(default)]
    dead_letter: Option<String>,
}

/// The record format a plugin's outputs get unless they say otherwise
/// (`hrecord` or `raw`; the init document's own type, so the manifest, a
/// rule file and the guest SDK read the same names).
pub(crate) type Format = weir_guest_sdk::init::RecordFormat;

/// Per-plugin limits, with the defaults used when a key is absent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Limits {
    pub deadline_ms: u64,
    /// For instantiation and `init` (a JavaScript or Python component
    /// starts its language's runtime there).
    pub init_deadline_ms: u64,
    pub memory_mb: u64,
    pub tables: u32,
    pub table_elements: u64,
    pub instances: u32,
    pub fuel: u64,
    pub breaker_threshold: u32,
    pub breaker_backoff_ms: u64,
    pub breaker_max_backoff_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline_ms: 100,
            init_deadline_ms: 10_000,
            memory_mb: 64,
            tables: 4,
            table_elements: 100_000,
            instances: 4,
            fuel: 100_000_000,
            breaker_threshold: 5,
            breaker_backoff_ms: 1_000,
            breaker_max_backoff_ms: 60_000,
        }
    }
}

impl Limits {
    /// Checks the values a manifest or a rule file gave; the error names
    /// the field.
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        for (field, value) in [
            ("limits.deadline_ms", self.deadline_ms),
            ("limits.init_deadline_ms", self.init_deadline_ms),
            ("limits.memory_mb", self.memory_mb),
            ("limits.fuel", self.fuel),
            (
                "limits.breaker_threshold",
                u64::from(self.breaker_threshold),
            ),
            ("limits.instances", u64::from(self.instances)),
        ] {
            if value == 0 {
                return Err((field, "must be greater than 0".into()));
            }
        }
        if self.memory_mb > 4096 {
            return Err((
                "limits.memory_mb",
                "wasm32 memory is at most 4096 MiB".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    pub(crate) fn init_deadline(&self) -> Duration {
        Duration::from_millis(self.init_deadline_ms)
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }
}

/// A checked manifest.
#[derive(Debug, Clone)]
pub(super) struct Manifest {
    pub sources: Vec<Source>,
    pub qos: Qos,
    pub description: Option<String>,
    /// The action's stream.
    pub stream: Arc<str>,
    /// Every stream an output may name (the action's stream first).
    pub streams: Vec<Arc<str>>,
    pub partition_key: Option<String>,
    pub format: Format,
    pub dead_letter: Option<Arc<str>>,
    pub limits: Limits,
    /// `[config]` as JSON.
    pub config: serde_json::Value,
    /// The columns the module reads, when the manifest says so rather than
    /// the module's `weir.fields` section: its `fields` key, or for a
    /// compiled rule what its program reads (the shared rule runtime module
    /// has no section of its own).
    pub fields: Option<weir_guest_sdk::abi::FieldsSpec>,
}

impl Manifest {
    /// Parses and checks a manifest; `file` names it in errors.
    pub(super) fn parse(text: &str, file: &Path) -> Result<Manifest, ManifestError> {
        let file_name = file.display().to_string();
        let err = |field: &str, message: String| ManifestError {
            file: file_name.clone(),
            field: field.to_owned(),
            message,
        };
        let de = toml::Deserializer::parse(text).map_err(|e| err(".", e.to_string()))?;
        let raw: Raw = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            err(&path, e.into_inner().message().to_owned())
        })?;

        if raw.sources.is_empty() {
            return Err(err(
                "sources",
                "name at least one topic filter or $events/ source".into(),
            ));
        }
        let sources = raw
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Source::parse(s).map_err(|e| err(&format!("sources[{i}]"), e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let qos = Qos::from_level(raw.qos)
            .ok_or_else(|| err("qos", format!("{} is not an MQTT QoS (0, 1 or 2)", raw.qos)))?;
        for (field, name) in std::iter::once(("action.stream", &raw.action.stream))
            .chain(raw.action.streams.iter().map(|s| ("action.streams", s)))
            .chain(
                raw.action
                    .dead_letter
                    .iter()
                    .map(|s| ("action.dead_letter", s)),
            )
        {
            check_stream_name(name).map_err(|m| err(field, m))?;
        }
        if let Some(template) = &raw.action.partition_key {
            weir_guest_sdk::Template::text(template)
                .map_err(|e| err("action.partition_key", e.to_string()))?;
        }
        raw.limits.check().map_err(|(field, m)| err(field, m))?;
        let format = match (raw.action.record_format, raw.action.format) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "action.format",
                    "the old spelling of action.record_format; keep only record_format".into(),
                ));
            }
            (Some(format), None) => format,
            (None, Some(format)) => {
                tracing::warn!(
                    "{file_name}: action.format is deprecated; write record_format = \"{}\" (the name rule files use)",
                    format.name()
                );
                format
            }
            (None, None) => Format::default(),
        };

        let stream: Arc<str> = raw.action.stream.as_str().into();
        let mut streams = vec![stream.clone()];
        for s in &raw.action.streams {
            if !streams.iter().any(|known| **known == **s) {
                streams.push(s.as_str().into());
            }
        }
        let fields = raw
            .fields
            .map(|fields| {
                let spec = weir_guest_sdk::abi::FieldsSpec {
                    fields,
                    paths: Vec::new(),
                };
                spec.validate().map(|()| spec)
            })
            .transpose()
            .map_err(|e| err("fields", e.0))?;
        let config = match raw.config {
            Some(table) => serde_json::to_value(table).map_err(|e| err("config", e.to_string()))?,
            None => serde_json::Value::Object(Default::default()),
        };
        Ok(Manifest {
            sources,
            qos,
            description: raw.description,
            stream,
            streams,
            partition_key: raw.action.partition_key,
            format,
            dead_letter: raw.action.dead_letter.map(|s| s.as_str().into()),
            limits: raw.limits,
            config,
            fields,
        })
    }

    /// The stream an output's target names, if the manifest allows it
    /// (an empty target is the action's stream).
    pub(super) fn resolve_target(&self, target: &str) -> Option<&Arc<str>> {
        if target.is_empty() {
            return Some(&self.stream);
        }
        self.streams.iter().find(|s| ***s == *target)
    }

    /// The init document handed to `weir_init` (see ABI.md).
    pub(super) fn init_document(&self, plugin: &str, version: u64) -> Vec<u8> {
        let doc = weir_guest_sdk::init::InitDocument {
            abi: weir_guest_sdk::abi::ABI_VERSION,
            plugin: plugin.to_owned(),
            version,
            config: self.config.clone(),
            action: weir_guest_sdk::init::InitAction {
                stream: self.stream.to_string(),
                streams: self.streams.iter().skip(1).map(|s| s.to_string()).collect(),
                partition_key: self.partition_key.clone(),
                format: self.format,
            },
        };
        // Plain data of strings, numbers and a JSON value: serializing it
        // cannot fail.
        serde_json::to_vec(&doc).unwrap_or_default()
    }
}

/// HStreamDB stream names: non-empty, at most 255 bytes, letters, digits,
/// `_`, `-` and `.`.
pub(super) fn check_stream_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err(format!("stream name `{name}` must be 1 to 255 bytes long"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "stream name `{name}` contains `{c}`; use letters, digits, `_`, `-`, `.`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("p.toml"))
    }

    #[test]
    fn a_minimal_manifest_gets_defaults() {
        let m = parse("sources = [\"t/#\"]\n[action]\nstream = \"s\"\n").expect("valid");
        assert_eq!(m.qos, Qos::AtLeastOnce);
        assert_eq!(m.format, Format::Hrecord);
        assert_eq!(m.limits, Limits::default());
        assert_eq!(&*m.stream, "s");
        assert_eq!(m.config, serde_json::json!({}));
    }

    #[test]
    fn errors_name_the_file_and_the_field_path() {
        let e =
            parse("sources = [\"t/#\"]\n[action]\nstream = \"s\"\n[limits]\ndeadline_msec = 5\n")
                .expect_err("unknown key");
        assert_eq!(e.file, "p.toml");
        assert_eq!(e.field, "limits.deadline_msec");
        assert!(e.message.contains("unknown field"), "{e}");

        let e =
            parse("sources = [\"t/#\"]\n[action]\nstream = \"s\"\n[limits]\ndeadline_ms = \"x\"\n")
                .expect_err("wrong type");
        assert_eq!(e.field, "limits.deadline_ms", "{e}");

        let e = parse("sources = [\"t/#\", \"a/#/b\"]\n[action]\nstream = \"s\"\n")
            .expect_err("bad filter");
        assert_eq!(e.field, "sources[1]", "{e}");

        let e = parse("sources = [\"t\"]\n[action]\nstream = \"a b\"\n").expect_err("bad stream");
        assert_eq!(e.field, "action.stream", "{e}");

        let e = parse("sources = [\"t\"]\n").expect_err("no action");
        assert!(e.message.contains("action"), "{e}");
    }

    #[test]
    fn fields_say_what_the_plugin_reads_and_unknown_columns_are_refused() {
        let base = "sources = [\"t/#\"]\n[action]\nstream = \"s\"\n";
        let m = parse(&format!("fields = [\"topic\", \"payload\"]\n{base}")).expect("valid");
        let spec = m.fields.expect("the manifest's fields");
        assert_eq!(spec.fields, ["topic", "payload"]);
        assert!(spec.paths.is_empty());
        assert_eq!(parse(base).expect("valid").fields, None);

        let e =
            parse(&format!("fields = [\"topic\", \"nope\"]\n{base}")).expect_err("unknown column");
        assert_eq!(e.field, "fields", "{e}");
        assert!(e.message.contains("nope"), "{e}");
    }

    #[test]
    fn the_record_format_has_the_rule_files_name_and_the_old_one_still_loads() {
        let m = parse("sources = [\"t\"]\n[action]\nstream = \"a\"\nrecord_format = \"raw\"\n")
            .expect("valid");
        assert_eq!(m.format, Format::Raw);
        let m = parse("sources = [\"t\"]\n[action]\nstream = \"a\"\nformat = \"json\"\n")
            .expect("the old spelling loads");
        assert_eq!(m.format, Format::Hrecord);
        let e = parse(
            "sources = [\"t\"]\n[action]\nstream = \"a\"\nformat = \"raw\"\nrecord_format = \"raw\"\n",
        )
        .expect_err("both spellings");
        assert_eq!(e.field, "action.format", "{e}");
        let e = parse("sources = [\"t\"]\n[action]\nstream = \"a\"\nrecord_format = \"xml\"\n")
            .expect_err("unknown format");
        assert_eq!(e.field, "action.record_format", "{e}");
    }

    #[test]
    fn targets_resolve_only_to_allowed_streams() {
        let m = parse("sources = [\"t\"]\n[action]\nstream = \"a\"\nstreams = [\"b\"]\n")
            .expect("valid");
        assert_eq!(m.resolve_target("").map(|s| &**s), Some("a"));
        assert_eq!(m.resolve_target("b").map(|s| &**s), Some("b"));
        assert_eq!(m.resolve_target("c"), None);
    }

    #[test]
    fn config_reaches_the_init_document() {
        let m = parse(
            "sources = [\"t\"]\n[action]\nstream = \"a\"\n[config]\nx = 1\ny = { z = \"w\" }\n",
        )
        .expect("valid");
        let doc: serde_json::Value =
            serde_json::from_slice(&m.init_document("p", 7)).expect("JSON");
        assert_eq!(doc["config"], serde_json::json!({"x": 1, "y": {"z": "w"}}));
        assert_eq!(doc["version"], 7);
        assert_eq!(doc["action"]["stream"], "a");
    }
}
