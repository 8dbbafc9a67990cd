//! Declarative rules: a `NAME.rule.toml` file (EMQX rule SQL, a record
//! template and an action) compiled to a Wasm module that implements plugin
//! ABI v1, so that it is loaded, limited, isolated and hot-reloaded exactly
//! like a hand-written plugin.
//!
//! Pipeline: the TOML file is read into a rule (`file` fields below); the
//! SQL is parsed by `sqlparser` (`sql`), names are resolved against the
//! event's columns and the SELECT output (`lower`), templates are parsed as
//! JSON-with-placeholders (`template`), giving a checked [`ir::Program`].
//! `codegen` turns the program into Wasm instructions (WHERE, CASE and
//! short-circuit `and`/`or` as control flow) that call a runtime library
//! of value operations (`weir-rules-runtime`, compiled to wasm32 when weir
//! is built) and merges both into one self-contained module with a
//! `weir.fields` section, so the host sends only the fields the rule reads
//! and extracts its payload paths itself. `native` evaluates the same
//! program without Wasm, for tests and benchmarks.
//!
//! Semantics and the file format are documented for users in
//! docs/rules.md.

mod codegen;
mod event_json;
mod ir;
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

pub use event_json::{EventJsonError, event_from_json};
pub use native::Outcome;

use super::manifest::{self, Format, Limits, Manifest};
use super::router::{self, Filter};
use ir::{Column, Expr, FIELD_FLAGS, Part, Program, Record};
use lower::{Col, Kinds, Scope};
use serde::Deserialize;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use weir_guest_sdk::abi;
use weir_rules_runtime::Mode;

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
    record_format: RecordFormat,
    #[serde(default)]
    dead_letter: Option<String>,
}

/// `record_format`: an HRecord (the template is JSON) or raw bytes (the
/// template is text).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RecordFormat {
    #[default]
    Hrecord,
    Raw,
}

/// A compiled rule file: its Wasm module, the manifest the engine loads it
/// with, and the checked program (for native evaluation).
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub(crate) program: Arc<Program>,
    pub(super) manifest: Manifest,
    wasm: Vec<u8>,
}

impl CompiledRule {
    /// Compiles a rule file's text; `file` names it in errors.
    ///
    /// Runs on a thread of its own: the SQL parser recurses once per
    /// nesting level (about 75 KiB of stack each in a debug build), and the
    /// callers include 2 MiB threads (the plugins watcher, tokio's blocking
    /// pool) where a deeply nested rule would overflow the stack and abort
    /// the whole gateway instead of being rejected.
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
        let (program, sources) = program_of(&raw, file)?;
        manifest.sources = sources;
        let wasm = codegen::generate(&program)
            .map_err(|e| RuleError::plain(file, "sql", format!("code generation failed: {e}")))?;
        Ok(CompiledRule {
            program: Arc::new(program),
            manifest,
            wasm,
        })
    }

    /// The Wasm module (ABI v1, self-contained: it imports only
    /// `weir::now_ms`).
    pub fn wasm(&self) -> &[u8] {
        &self.wasm
    }

    /// The FROM sources, as the engine subscribes to them.
    pub fn sources(&self) -> Vec<String> {
        self.manifest
            .sources
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// The stream records go to.
    pub fn stream(&self) -> &str {
        &self.manifest.stream
    }

    /// The columns and payload paths the module declares in `weir.fields`.
    pub fn fields(&self) -> (&[String], &[String]) {
        (&self.program.fields, &self.program.paths)
    }

    /// A plugin manifest (`NAME.toml`) under which the module loads as a
    /// plain plugin, for shipping `weir rule compile` output.
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
        doc.insert("qos".into(), toml::Value::Integer(i64::from(m.qos)));
        if let Some(d) = &m.description {
            doc.insert("description".into(), toml::Value::String(d.clone()));
        }
        let mut action = toml::Table::new();
        action.insert("stream".into(), toml::Value::String(m.stream.to_string()));
        action.insert("format".into(), toml::Value::String(m.format.name().into()));
        if let Some(dl) = &m.dead_letter {
            action.insert("dead_letter".into(), toml::Value::String(dl.to_string()));
        }
        doc.insert("action".into(), toml::Value::Table(action));
        if let Ok(toml::Value::Table(limits)) = toml::Value::try_from(&m.limits) {
            doc.insert("limits".into(), toml::Value::Table(limits));
        }
        toml::to_string(&doc).unwrap_or_default()
    }

    /// Evaluates the rule on one event natively (no Wasm): the reference
    /// the compiled module is tested against.
    pub fn evaluate_native(&self, event: &crate::event::Event) -> Outcome {
        native::evaluate(&self.program, event)
    }
}

fn parse_file(text: &str, file: &Path) -> Result<RawRule, RuleError> {
    let de = toml::Deserializer::parse(text).map_err(|e| {
        let at = e.span().map(|s| {
            let (l, c) = line_column(text, s.start);
            (
                u32::try_from(l).unwrap_or(u32::MAX),
                u32::try_from(c).unwrap_or(u32::MAX),
            )
        });
        RuleError {
            file: file.display().to_string(),
            field: ".".into(),
            line: at.map(|a| a.0),
            column: at.map(|a| a.1),
            message: e.message().to_owned(),
            text: Some(text.to_owned()),
        }
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        RuleError::plain(file, &path, e.into_inner().message().to_owned())
    })
}

fn manifest_of(raw: &RawRule, file: &Path) -> Result<Manifest, RuleError> {
    if raw.qos > 2 {
        return Err(RuleError::plain(
            file,
            "qos",
            format!("{} is not an MQTT QoS (0, 1 or 2)", raw.qos),
        ));
    }
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
        qos: raw.qos,
        description: raw.description.clone(),
        stream: stream.clone(),
        streams: vec![stream],
        partition_key: None,
        format: match raw.action.record_format {
            RecordFormat::Hrecord => Format::Json,
            RecordFormat::Raw => Format::Raw,
        },
        dead_letter: raw.action.dead_letter.as_deref().map(Arc::from),
        limits: raw.limits.clone(),
        config: serde_json::Value::Object(Default::default()),
    })
}

fn program_of(raw: &RawRule, file: &Path) -> Result<(Program, Vec<Filter>), RuleError> {
    let sql_text = raw.sql.as_str();
    let sql_err = |at: Located| RuleError::located(file, "sql", sql_text, at);
    let query = sql::parse(sql_text).map_err(sql_err)?;

    let mut kinds = Kinds::default();
    let mut sources = Vec::new();
    for (source, at) in &query.sources {
        let filter =
            router::parse_filter(source).map_err(|m| sql_err(sql::located(sql_text, *at, m)))?;
        match &filter {
            Filter::Topic(_) => kinds.publish = true,
            Filter::Event(router::ClientEvent::Connected) => kinds.connected = true,
            Filter::Event(router::ClientEvent::Disconnected) => kinds.disconnected = true,
        }
        if !sources.contains(&filter) {
            sources.push(filter);
        }
    }

    let mut scope = Scope {
        sql: sql_text,
        kinds,
        columns: Vec::new(),
        visible: 0,
        star: false,
        paths: Vec::new(),
    };
    for item in &query.items {
        use sqlparser::ast::SelectItem;
        scope.visible = scope.columns.len();
        match item {
            SelectItem::Wildcard(_) => scope.star = true,
            SelectItem::UnnamedExpr(e) => {
                let expr = scope.lower(e).map_err(sql_err)?;
                let path = name_path(e);
                let name = match &path {
                    Some((root, steps)) => path_text(root, steps),
                    None => e.to_string(),
                };
                scope.columns.push(Col { name, path, expr });
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                let lowered = scope.lower(expr).map_err(sql_err)?;
                scope.columns.push(Col {
                    name: alias.value.clone(),
                    path: None,
                    expr: lowered,
                });
            }
            other => {
                use sqlparser::ast::Spanned;
                return Err(sql_err(sql::located(
                    sql_text,
                    other.span().start,
                    format!("`{other}` is not supported; select *, columns or expressions"),
                )));
            }
        }
    }
    scope.visible = scope.columns.len();
    let condition = match &query.selection {
        Some(w) => Some(scope.lower(w).map_err(sql_err)?),
        None => None,
    };

    let hrecord = raw.action.record_format == RecordFormat::Hrecord;
    let (record, check_object) = match &raw.action.record_template {
        Some(t) => {
            let field = "action.record_template";
            let terr = |at: Located| RuleError::located(file, field, t, at);
            let parts = if hrecord {
                template::parse_json(t)
            } else {
                template::parse_text(t)
            }
            .map_err(terr)?;
            let single = hrecord
                && parts
                    .iter()
                    .filter(|p| !matches!(p, template::TPart::Lit(l) if l.trim().is_empty()))
                    .count()
                    == 1
                && parts
                    .iter()
                    .any(|p| matches!(p, template::TPart::Var { .. }));
            let (value_mode, string_mode) = if hrecord {
                (Mode::Json, Mode::InString)
            } else {
                (Mode::Raw, Mode::Raw)
            };
            let parts = scope.parts(parts, value_mode, string_mode).map_err(terr)?;
            (Record::Template(parts), single)
        }
        None => {
            let columns: Vec<(String, Expr)> = scope
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.clone(), Expr::Column(i)))
                .collect();
            let star = if scope.star {
                kinds
                    .star_columns()
                    .into_iter()
                    .filter(|(_, name)| !columns.iter().any(|(n, _)| n == name))
                    .collect()
            } else {
                Vec::new()
            };
            (Record::Object { star, columns }, false)
        }
    };
    let key = match &raw.action.partition_key {
        Some(k) => {
            let kerr = |at: Located| RuleError::located(file, "action.partition_key", k, at);
            let parts = template::parse_text(k).map_err(kerr)?;
            scope.parts(parts, Mode::Text, Mode::Text).map_err(kerr)?
        }
        None => Vec::new(),
    };

    let columns: Vec<Column> = scope
        .columns
        .iter()
        .map(|c| Column {
            name: c.name.clone(),
            expr: c.expr.clone(),
        })
        .collect();
    let before = needed(&columns, condition.iter());
    let mut render: Vec<&Expr> = parts_exprs(&key).collect();
    match &record {
        Record::Template(parts) => render.extend(parts_exprs(parts)),
        Record::Object { columns: cols, .. } => render.extend(cols.iter().map(|(_, e)| e)),
    }
    let after: Vec<usize> = needed(&columns, render.iter().copied())
        .into_iter()
        .filter(|i| !before.contains(i))
        .collect();

    let mut fields = std::collections::BTreeSet::new();
    {
        let mut add = |id: u32| {
            if id == FIELD_FLAGS {
                fields.insert("flags".to_owned());
            } else if let Some(name) = usize::try_from(id)
                .ok()
                .and_then(|i| abi::FIELD_NAMES.get(i))
                .filter(|n| !n.is_empty())
            {
                fields.insert((*name).to_owned());
            }
        };
        let mut visit = |e: &Expr| e.fields(&mut add);
        condition.iter().for_each(&mut visit);
        before
            .iter()
            .chain(&after)
            .for_each(|i| visit(&columns[*i].expr));
        render.iter().for_each(|e| visit(e));
        if let Record::Object { star, .. } = &record {
            for (id, _) in star {
                add(*id);
            }
        }
    }
    if fields.is_empty() {
        // An empty list would mean "every field": ask for the cheapest one.
        fields.insert("timestamp".to_owned());
    }
    let program = Program {
        columns,
        condition,
        before,
        after,
        key,
        record,
        raw: !hrecord,
        check_object,
        fields: fields.into_iter().collect(),
        paths: scope.paths,
    };
    Ok((program, sources))
}

/// The path an unaliased column is named by (`payload.a.b`), if it is one.
fn name_path(e: &sqlparser::ast::Expr) -> Option<(String, Vec<ir::Step>)> {
    use sqlparser::ast::Expr as E;
    match e {
        E::Identifier(i) if i.quote_style.is_none() => Some((i.value.clone(), Vec::new())),
        E::CompoundIdentifier(ids) => {
            let (root, rest) = ids.split_first()?;
            Some((
                root.value.clone(),
                rest.iter()
                    .map(|i| ir::Step::Key(i.value.clone()))
                    .collect(),
            ))
        }
        _ => None,
    }
}

/// `root.a.b[0]`, as a template placeholder would write it.
fn path_text(root: &str, steps: &[ir::Step]) -> String {
    let mut s = root.to_owned();
    for step in steps {
        match step {
            ir::Step::Key(k) if k.contains(['.', '[']) => s.push_str(&format!(".'{k}'")),
            ir::Step::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            ir::Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn parts_exprs(parts: &[Part]) -> impl Iterator<Item = &Expr> {
    parts.iter().filter_map(|p| match p {
        Part::Value(e, _) => Some(e),
        Part::Lit(_) => None,
    })
}

/// The SELECT columns `exprs` read, with the columns those read, in order.
fn needed<'e>(columns: &[Column], exprs: impl Iterator<Item = &'e Expr>) -> Vec<usize> {
    let mut need = vec![false; columns.len()];
    let mut mark = |i: usize| {
        if let Some(slot) = need.get_mut(i) {
            *slot = true;
        }
    };
    for e in exprs {
        e.columns(&mut mark);
    }
    // A column reads only earlier ones, so one backward pass closes the set.
    for i in (0..columns.len()).rev() {
        if need[i] {
            columns[i].expr.columns(&mut |j| {
                if let Some(slot) = need.get_mut(j) {
                    *slot = true;
                }
            });
        }
    }
    (0..columns.len()).filter(|i| need[*i]).collect()
}
