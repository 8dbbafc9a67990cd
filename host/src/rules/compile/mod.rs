//! Declarative rules: a `NAME.rule.toml` file (EMQX rule SQL, a record
//! template and an action) compiled to a Wasm module that implements plugin
//! ABI v1, so that it is loaded, limited, isolated and hot-reloaded exactly
//! like a hand-written plugin.
//!
//! Pipeline: the TOML file is read into a rule (`file` fields below); the
//! SQL is parsed (`sql`, EMQX 5's rule SQL), names, functions and
//! templates are resolved and checked (`lower`, `template`), giving a
//! [`Program`]. The program runs in weir's rule runtime module (the
//! `weir-rules-runtime` crate compiled to Wasm), one module shared by every
//! rule, which receives the program in its init document; `native` runs the
//! same evaluator without Wasm, for `weir rule test`-style checks, tests and
//! benchmarks.
//!
//! Semantics and the file format are documented for users in
//! docs/rules.md.

mod event_json;
mod lower;
mod native;
mod sql;
mod template;

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;

/// Room for the parser's recursion limit with a wide margin (see
/// [`CompiledRule::compile`]).
const COMPILER_STACK_BYTES: usize = 32 << 20;
#[cfg(test)]
mod tests;

pub(crate) use event_json::event_from_json;
pub use native::{Outcome, RecordOut};

use super::manifest::{self, Format, Limits, Manifest};
use crate::event::EventKind;
use lower::Kinds;
use serde::Deserialize;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use weir_guest_sdk::abi::FieldsSpec;
use weir_guest_sdk::topic::{Qos, Source};
use weir_rules_runtime::program::Program;

/// An error at a position of a text (SQL or template), 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Located {
    pub(crate) fn at_offset(src: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = line_column(src, offset);
        Located {
            line,
            column,
            message: message.into(),
        }
    }
}

/// Line and column (1-based, in characters) of byte `offset` of `src`.
pub(crate) fn line_column(src: &str, offset: usize) -> (usize, usize) {
    let before = src.get(..offset.min(src.len())).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Why a rule file was rejected: the file, the field (`sql`,
/// `action.record_template`, ...), the position in that field's text when
/// there is one, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleError {
    pub file: String,
    pub field: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub message: String,
    /// The field's text, for [`RuleError::snippet`].
    text: Option<String>,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: ", self.file, self.field)?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, "line {line}, column {column}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl RuleError {
    fn plain(file: &Path, field: &str, message: impl Into<String>) -> Self {
        RuleError {
            file: file.display().to_string(),
            field: field.to_owned(),
            line: None,
            column: None,
            message: message.into(),
            text: None,
        }
    }

    fn located(file: &Path, field: &str, text: &str, at: Located) -> Self {
        RuleError {
            file: file.display().to_string(),
            field: field.to_owned(),
            line: Some(u32::try_from(at.line).unwrap_or(u32::MAX)),
            column: Some(u32::try_from(at.column).unwrap_or(u32::MAX)),
            message: at.message,
            text: Some(text.to_owned()),
        }
    }

    /// The offending line of the SQL or template with a caret under the
    /// position, for people.
    pub fn snippet(&self) -> Option<String> {
        let (text, line, column) = (self.text.as_ref()?, self.line?, self.column?);
        let src = text
            .lines()
            .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let pad: String = src
            .chars()
            .take(usize::try_from(column).ok()?.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        Some(format!("{src}\n{pad}^"))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    sql: String,
    #[serde(default = "default_qos")]
    qos: u8,
    #[serde(default)]
    description: Option<String>,
    action: RawAction,
    #[serde(default)]
    limits: Limits,
}

fn default_qos() -> u8 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    stream: String,
    #[serde(default)]
    partition_key: Option<String>,
    #[serde(default)]
    record_template: Option<String>,
    #[serde(default)]
    record_format: Option<RecordFormat>,
    #[serde(default)]
    dead_letter: Option<String>,
}

impl RawAction {
    /// The format given, or else the one the template implies: a template
    /// written as a JSON object is an HRecord; any other template (EMQX's
    /// default `${payload}`, text) is raw, as EMQX stored every record, so
    /// a rule carried over unchanged stores what it stored under EMQX.
    fn record_format(&self) -> RecordFormat {
        self.record_format.unwrap_or(match &self.record_template {
            Some(t) if !t.trim_start().starts_with('{') => RecordFormat::Raw,
            _ => RecordFormat::Hrecord,
        })
    }
}

/// `record_format`: an HRecord (the template is JSON) or raw bytes (the
/// template is text); the same type a plugin manifest reads.
type RecordFormat = Format;

/// A compiled rule file: its checked program and the manifest the engine
/// loads it with (the rule runtime module, with the program in its
/// `[config]`).
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub(crate) program: Arc<Program>,
    pub(super) manifest: Manifest,
    warnings: Vec<String>,
    definition: Arc<RuleDefinition>,
}

/// What a rule file says, as an operator reads it (the admin API and the
/// dashboard show it; an editor starts from `text`): the file's own text and
/// its fields, as written, once the file compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDefinition {
    /// The whole `NAME.rule.toml` text that compiled.
    pub text: String,
    pub sql: String,
    pub description: Option<String>,
    pub stream: String,
    pub partition_key: Option<String>,
    pub record_template: Option<String>,
    /// `hrecord` or `raw`, as given or as the template implies.
    pub record_format: &'static str,
}

impl CompiledRule {
    /// Compiles a rule file's text; `file` names it in errors.
    ///
    /// Runs on a thread of its own with a large stack: the parser recurses
    /// once per nesting level, and the callers include 2 MiB threads (the
    /// plugins watcher, tokio's blocking pool) where a deeply nested rule
    /// must be refused, not overflow the stack and abort the gateway.
    pub fn compile(text: &str, file: &Path) -> Result<CompiledRule, RuleError> {
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("weir-rule-compiler".into())
                .stack_size(COMPILER_STACK_BYTES)
                .spawn_scoped(scope, || Self::compile_here(text, file))
                .map_err(|e| {
                    RuleError::plain(file, ".", format!("cannot start the compiler thread: {e}"))
                })?
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    fn compile_here(text: &str, file: &Path) -> Result<CompiledRule, RuleError> {
        let raw = parse_file(text, file)?;
        let mut manifest = manifest_of(&raw, file)?;
        let Checked {
            program,
            sources,
            fields,
            warnings,
        } = program_of(&raw, file)?;
        manifest.sources = sources;
        let program_json = serde_json::to_string(&program).map_err(|e| {
            RuleError::plain(file, "sql", format!("cannot encode the program: {e}"))
        })?;
        manifest.config = serde_json::json!({ "program": program_json });
        manifest.fields = Some(FieldsSpec {
            fields,
            paths: Vec::new(),
        });
        let definition = Arc::new(RuleDefinition {
            text: text.to_owned(),
            record_format: match raw.action.record_format() {
                RecordFormat::Hrecord => "hrecord",
                RecordFormat::Raw => "raw",
            },
            sql: raw.sql,
            description: raw.description,
            stream: raw.action.stream,
            partition_key: raw.action.partition_key,
            record_template: raw.action.record_template,
        });
        Ok(CompiledRule {
            program: Arc::new(program),
            manifest,
            warnings,
            definition,
        })
    }

    /// The Wasm module the rule runs in: weir's rule runtime, the same for
    /// every rule.
    pub fn wasm(&self) -> &'static [u8] {
        weir_rules_runtime::WASM
    }

    /// The FROM sources, as the engine subscribes to them.
    pub fn sources(&self) -> Vec<String> {
        self.manifest
            .sources
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// What the rule does that is legal but probably not meant, each with
    /// its position in the file: reported when the rule loads.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The file's text and fields, as written.
    pub fn definition(&self) -> &Arc<RuleDefinition> {
        &self.definition
    }

    /// The stream records go to.
    pub fn stream(&self) -> &str {
        &self.manifest.stream
    }

    /// The event columns the rule reads (ABI field names).
    pub fn fields(&self) -> &[String] {
        self.manifest
            .fields
            .as_ref()
            .map_or(&[][..], |f| f.fields.as_slice())
    }

    /// A plugin manifest (`NAME.toml`) under which the rule runtime module
    /// runs this rule as a plain plugin, for shipping `weir rule compile`
    /// output.
    pub fn manifest_toml(&self) -> String {
        let m = &self.manifest;
        let mut doc = toml::Table::new();
        doc.insert(
            "sources".into(),
            toml::Value::Array(
                m.sources
                    .iter()
                    .map(|s| toml::Value::String(s.to_string()))
                    .collect(),
            ),
        );
        doc.insert("qos".into(), toml::Value::Integer(i64::from(m.qos.level())));
        if let Some(d) = &m.description {
            doc.insert("description".into(), toml::Value::String(d.clone()));
        }
        let mut action = toml::Table::new();
        action.insert("stream".into(), toml::Value::String(m.stream.to_string()));
        action.insert(
            "record_format".into(),
            toml::Value::String(m.format.name().into()),
        );
        if let Some(dl) = &m.dead_letter {
            action.insert("dead_letter".into(), toml::Value::String(dl.to_string()));
        }
        doc.insert("action".into(), toml::Value::Table(action));
        if let Ok(toml::Value::Table(limits)) = toml::Value::try_from(&m.limits) {
            doc.insert("limits".into(), toml::Value::Table(limits));
        }
        if let Some(program) = m.config.get("program").and_then(|p| p.as_str()) {
            let mut config = toml::Table::new();
            config.insert("program".into(), toml::Value::String(program.to_owned()));
            doc.insert("config".into(), toml::Value::Table(config));
        }
        toml::to_string(&doc).unwrap_or_default()
    }

    /// Evaluates the rule on one event natively (no Wasm), with the same
    /// evaluator and the same event encoding as the module.
    pub fn evaluate_native(&self, event: &crate::event::Event) -> Outcome {
        native::evaluate(&self.program, event)
    }
}

fn parse_file(text: &str, file: &Path) -> Result<RawRule, RuleError> {
    crate::config::de::read_document(text).map_err(|e| {
        let at = e.at.map(|at| {
            (
                u32::try_from(at.line).unwrap_or(u32::MAX),
                u32::try_from(at.column).unwrap_or(u32::MAX),
            )
        });
        RuleError {
            file: file.display().to_string(),
            field: e.field,
            line: at.map(|a| a.0),
            column: at.map(|a| a.1),
            message: e.message,
            text: Some(text.to_owned()),
        }
    })
}

fn manifest_of(raw: &RawRule, file: &Path) -> Result<Manifest, RuleError> {
    let qos = Qos::from_level(raw.qos).ok_or_else(|| {
        RuleError::plain(
            file,
            "qos",
            format!("{} is not an MQTT QoS (0, 1 or 2)", raw.qos),
        )
    })?;
    for (field, name) in std::iter::once(("action.stream", &raw.action.stream)).chain(
        raw.action
            .dead_letter
            .iter()
            .map(|s| ("action.dead_letter", s)),
    ) {
        manifest::check_stream_name(name).map_err(|m| RuleError::plain(file, field, m))?;
    }
    raw.limits
        .check()
        .map_err(|(field, m)| RuleError::plain(file, field, m))?;
    let stream: Arc<str> = raw.action.stream.as_str().into();
    Ok(Manifest {
        sources: Vec::new(),
        qos,
        description: raw.description.clone(),
        stream: stream.clone(),
        streams: vec![stream],
        partition_key: None,
        format: raw.action.record_format(),
        dead_letter: raw.action.dead_letter.as_deref().map(Arc::from),
        limits: raw.limits.clone(),
        config: serde_json::Value::Object(Default::default()),
        fields: None,
    })
}

/// What checking a rule's SQL and templates gives.
struct Checked {
    program: Program,
    sources: Vec<Source>,
    /// The ABI fields the program reads.
    fields: Vec<String>,
    warnings: Vec<String>,
}

fn program_of(raw: &RawRule, file: &Path) -> Result<Checked, RuleError> {
    let sql_text = raw.sql.as_str();
    let sql_err = |at: Located| RuleError::located(file, "sql", sql_text, at);
    let statement = sql::parse(sql_text).map_err(sql_err)?;

    let mut kinds = Kinds::default();
    let mut sources = Vec::new();
    for (source, at) in &statement.sources {
        let filter = Source::parse(source)
            .map_err(|e| sql_err(Located::at_offset(sql_text, *at, e.to_string())))?;
        kinds.insert(match &filter {
            Source::Topic(_) => EventKind::MessagePublish,
            Source::Event(kind) => *kind,
        });
        if !sources.contains(&filter) {
            sources.push(filter);
        }
    }
    let hrecord = raw.action.record_format() == RecordFormat::Hrecord;
    let lowered = lower::lower(lower::Input {
        sql: sql_text,
        statement: &statement,
        kinds,
        record: raw.action.record_template.as_deref().map(|t| (t, hrecord)),
        key: raw.action.partition_key.as_deref(),
    })
    .map_err(|e| match e {
        lower::LowerError::Sql(at) => sql_err(at),
        lower::LowerError::Record(at) => RuleError::located(
            file,
            "action.record_template",
            raw.action.record_template.as_deref().unwrap_or_default(),
            at,
        ),
        lower::LowerError::Key(at) => RuleError::located(
            file,
            "action.partition_key",
            raw.action.partition_key.as_deref().unwrap_or_default(),
            at,
        ),
    })?;
    let mut program = lowered.program;
    // Without a template the output is a JSON object: raw only by request.
    if raw.action.record_template.is_none() {
        program.raw = !hrecord;
    }
    Ok(Checked {
        program,
        sources,
        fields: lowered.fields,
        warnings: lowered.warnings,
    })
}
