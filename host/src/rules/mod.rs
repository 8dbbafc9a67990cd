//! The rule stage: every transformation of an event is a Wasm plugin,
//! sandboxed, limited, and replaceable while weir runs.
//!
//! # Using it
//!
//! ```no_run
//! # fn demo(events: Vec<weir::event::Event>) -> Result<(), weir::rules::RulesError> {
//! use weir::rules::{EngineOptions, RuleEngine};
//! let engine = RuleEngine::new(EngineOptions {
//!     plugins_dir: Some("plugins".into()),
//!     cache_dir: Some("/var/cache/weir/wasm".into()),
//!     dead_letter_stream: Some("weir_dead_letters".into()),
//!     ..EngineOptions::default()
//! })?;
//! let _watcher = engine.watch()?; // hot reload until dropped
//! let mut subscriptions = engine.subscriptions(); // tokio::sync::watch
//! let batch = engine.process(&events); // blocking: call from a blocking thread
//! for output in &batch.outputs { /* output.event is the index into `events` */ }
//! # Ok(()) }
//! ```
//!
//! # What the caller must do
//!
//! - **Call [`RuleEngine::process`] from a blocking context** (a
//!   `spawn_blocking` task or a dedicated thread), never on an async worker:
//!   it runs Wasm and may take up to the plugins' deadlines, more when a
//!   failing batch is being isolated. It is safe to call from several
//!   threads; calls for the same plugin are serialized.
//! - **Batches are the unit of a version swap.** A batch runs entirely on
//!   the plugin versions current when `process` began; a reload that lands
//!   meanwhile takes effect at the next call. Call `process` for one batch
//!   at a time per ordering domain (e.g. one rule task) to keep per-topic
//!   order: outputs come back sorted by event index, and for one event in
//!   the order of the plugins' load.
//! - **Every event is accounted for.** An event yields zero or more
//!   [`Output`]s and zero or more [`EventError`]s. An event with neither was
//!   seen by no plugin or filtered out by its rules; either way it is done
//!   once `process` returns (acknowledge it once its outputs, if any, are
//!   stored). Poison events, and events a tripped or unavailable plugin
//!   refuses, are errors whose kind is a rejection
//!   ([`ErrorKind::is_rejection`]): the caller hands them to the sink,
//!   which alone makes dead letters. The rule stage builds no records of
//!   its own.
//! - **Outputs** name their stream (already checked against the plugin's
//!   manifest), partition key (UTF-8; empty means none), flag and record
//!   bytes. A [`RecordFlag::Json`] record is the JSON text of an object
//!   (`render` transcodes it into an HRecord); the engine does not check it,
//!   so a module that breaks this rule is caught by render, per record. [`RecordFlag::Raw`] bytes are opaque.
//!   Records are slices of one buffer per plugin call (`bytes::Bytes`).
//! - **Subscriptions**: [`RuleEngine::subscriptions`] is a
//!   `tokio::sync::watch` of the union of the loaded plugins' sources with
//!   the highest QoS any plugin asks for (`weir_guest_sdk::topic::Sources`,
//!   which ingress subscribes to as it is); it changes when a plugin is
//!   loaded, unloaded or its manifest's sources change. A source ingress
//!   could not subscribe to (`$share/...`) is refused when the plugin loads.
//! - **Hot reload** runs on its own thread ([`RuleEngine::watch`]):
//!   compilation, `init` and the swap never touch the async runtime.
//!
//! # Modules
//! `manifest` (NAME.toml), `router` (topic-filter index and the
//! subscription union), `encode` (events → ABI frames), `runtime`
//! (wasmtime), `plugin` (one version and its failure isolation),
//! `engine` (the snapshot and the hot path: `process`, the swap), `registry`
//! (loading, reload, status, operator disable/enable), `watcher` (the hot
//! reload thread), `disabled` (the disabled-plugins file), `files` (rule
//! files written through weir: compiled, written, then loaded by hot
//! reload's reload), `trial` (a rule on sample events in an engine of its
//! own), `metrics`.

pub mod compile;
mod disabled;
mod encode;
mod engine;
mod files;
mod manifest;
mod metrics;
mod plugin;
mod registry;
mod router;
mod runtime;
mod trial;
mod wasi_log;
mod watcher;

#[cfg(test)]
mod tests;

pub(crate) use encode::{dead_letter_key, event_to_json};
pub use engine::{EngineOptions, RuleEngine};
pub(crate) use files::check_rule;
pub(crate) use manifest::ManifestError;
#[cfg(test)]
pub(crate) use metrics::MetricsSnapshot;
pub(crate) use registry::{Change, PluginState, PluginStatus};
pub(crate) use runtime::{FailureKind, LoadError};
pub(crate) use trial::RuleTrial;
pub(crate) use watcher::Watcher;

use bytes::Bytes;
use std::sync::Arc;

/// The record flag of an output: HRecord (JSON) or RAW.
pub type RecordFlag = weir_guest_sdk::Flag;

/// One record a plugin produced for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Index of the event in the batch given to `process`.
    pub event: usize,
    pub plugin: Arc<str>,
    /// The host's version number of the plugin load that produced it.
    pub version: u64,
    pub stream: Arc<str>,
    /// UTF-8 partition key; empty when the plugin set none.
    pub key: Bytes,
    pub flag: RecordFlag,
    pub record: Bytes,
}

impl Output {
    /// The partition key as text.
    pub fn key(&self) -> &str {
        std::str::from_utf8(&self.key).unwrap_or_default()
    }
}

/// Why an event was not (fully) handled by a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The rule returned an error for the event (it produced no outputs).
    Rule,
    /// The rule named a stream its manifest does not allow; that output
    /// was dropped.
    BadTarget,
    /// The event made the plugin fail on its own: it is poison.
    Poison(FailureKind),
    /// The plugin's circuit breaker is open; the event was not run.
    Tripped,
    /// The plugin could not be re-instantiated after a failure.
    Unavailable,
    /// The batch's time in the plugin, retries and isolation included, ran
    /// out before this event was settled; it was not run (again).
    BatchDeadline,
}

impl ErrorKind {
    /// Whether the event was not handled at all and so is a *rejection*:
    /// the caller hands it to the sink, which dead-letters (or quarantines)
    /// it. A rule's own error or a bad target is the rule's answer, not a
    /// rejection.
    pub(crate) fn is_rejection(self) -> bool {
        matches!(
            self,
            ErrorKind::Poison(_)
                | ErrorKind::Tripped
                | ErrorKind::Unavailable
                | ErrorKind::BatchDeadline
        )
    }

    /// The name a dead letter records (`weir.dead_letter.kind`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            ErrorKind::Rule => "rule_error",
            ErrorKind::BadTarget => "bad_target",
            ErrorKind::Poison(kind) => kind.name(),
            ErrorKind::Tripped => "tripped",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::BatchDeadline => "batch_deadline",
        }
    }
}

/// A per-event error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError {
    /// Index of the event in the batch given to `process`.
    pub event: usize,
    pub plugin: Arc<str>,
    pub version: u64,
    pub kind: ErrorKind,
    /// The rule's error code (for `ErrorKind::Rule`), else 0.
    pub code: u32,
    pub message: String,
    /// For a rejection: the plugin's own dead-letter stream (its manifest's
    /// `action.dead_letter`, else the engine's), which the sink uses instead
    /// of its own.
    pub dead_letter_stream: Option<Arc<str>>,
}

/// What a batch produced, both sorted by event index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutput {
    pub outputs: Vec<Output>,
    pub errors: Vec<EventError>,
}

impl From<compile::RuleError> for RulesError {
    fn from(e: compile::RuleError) -> Self {
        RulesError::Rule(Box::new(e))
    }
}

/// Errors of the rule stage's API (per-event problems are [`EventError`]s).
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Rule(Box<compile::RuleError>),
    #[error("{file}: plugin `{plugin}`: {source}")]
    Load {
        /// The module (or rule file) that did not load.
        file: String,
        plugin: String,
        #[source]
        source: LoadError,
    },
    #[error("plugin `{plugin}`: {problem}")]
    Incomplete { plugin: String, problem: String },
    #[error("wasm runtime: {0}")]
    Runtime(#[source] LoadError),
    #[error("no plugins directory configured")]
    NoPluginsDir,
    #[error("`{name}` cannot name a rule: use letters, digits, `_`, `-` and `.`, not first")]
    BadName { name: String },
    #[error(
        "plugin `{name}` is not a rule file ({file} exists): rename the rule or remove the plugin"
    )]
    NameTaken { name: String, file: String },
    #[error("{path}: not a list of disabled plugins ({problem}); fix or remove the file")]
    DisabledFile { path: String, problem: String },
    #[error("watching the plugins directory: {0}")]
    Watch(#[from] notify::Error),
}
