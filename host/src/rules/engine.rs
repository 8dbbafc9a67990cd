//! The rule engine and its hot path: the loaded plugins as one immutable
//! snapshot, and how a batch is routed through it.
//!
//! The loaded plugins live in an immutable `Snapshot` (plugins plus their
//! topic-filter index) behind an `RwLock<Arc<_>>`. `process` clones the
//! `Arc` once per batch and uses that snapshot for the whole batch, so a
//! reload is atomic *between* batches: in-flight batches finish on the old
//! version, every later batch sees the new one. `swap` is the only writer;
//! what is swapped in is decided by `registry` (loading and status), the
//! watcher thread (`watcher`) and the operator's disabled set (`disabled`).

use super::disabled::read_disabled;
use super::encode::PayloadCache;
use super::plugin::LoadedPlugin;
use super::registry::Record;
use super::router::TopicIndex;
use super::runtime::{Runtime, RuntimeOptions};
use super::{BatchOutput, RulesError};
use crate::event::Event;
use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use weir_guest_sdk::topic::Sources;

/// How to build a [`RuleEngine`].
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Where `NAME.wasm` + `NAME.toml` pairs and `NAME.rule.toml` rule files
    /// live; `None` for an engine fed
    /// only through [`RuleEngine::install`].
    pub plugins_dir: Option<PathBuf>,
    /// wasmtime's compilation cache; `None` disables it. Default: none.
    pub cache_dir: Option<PathBuf>,
    /// Stream for poison events of plugins whose manifest names none.
    /// Default: none (poison events are counted and reported only).
    pub dead_letter_stream: Option<String>,
    /// Quiet time before a changed plugin is reloaded. Default: 200 ms.
    pub debounce: Duration,
    /// Epoch tick, the granularity of deadlines. Default: 2 ms.
    pub epoch_tick: Duration,
    /// Meter fuel (`limits.fuel` per batch) instead of wall-clock
    /// deadlines, for deterministic tests. Default: false.
    pub deterministic_fuel: bool,
    /// Where the names of disabled plugins are kept across restarts.
    /// Default: none (in memory only).
    pub disabled_file: Option<PathBuf>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            plugins_dir: None,
            cache_dir: None,
            dead_letter_stream: None,
            debounce: Duration::from_millis(200),
            epoch_tick: Duration::from_millis(2),
            deterministic_fuel: false,
            disabled_file: None,
        }
    }
}

#[derive(Default)]
pub(super) struct Snapshot {
    pub(super) plugins: Vec<Arc<LoadedPlugin>>,
    pub(super) index: TopicIndex,
    pub(super) wants_paths: bool,
}

impl Snapshot {
    fn build(plugins: Vec<Arc<LoadedPlugin>>) -> (Snapshot, Sources) {
        let mut index = TopicIndex::default();
        let mut subs = Sources::default();
        for (id, plugin) in plugins.iter().enumerate() {
            for filter in &plugin.manifest.sources {
                index.insert(filter, id);
                subs.add(filter, plugin.manifest.qos);
            }
        }
        let wants_paths = plugins.iter().any(|p| p.selection().wants_paths());
        (
            Snapshot {
                plugins,
                index,
                wants_paths,
            },
            subs,
        )
    }
}

pub(super) struct Inner {
    pub(super) runtime: Arc<Runtime>,
    pub(super) options: EngineOptions,
    pub(super) dead_letter: Option<Arc<str>>,
    pub(super) current: RwLock<Arc<Snapshot>>,
    pub(super) records: Mutex<BTreeMap<String, Record>>,
    /// Plugins an operator disabled; changed only under `loading`.
    pub(super) disabled: Mutex<BTreeSet<String>>,
    pub(super) subscriptions: watch::Sender<Sources>,
    /// Every stream the loaded plugins may write to, dead-letter streams
    /// included: what the sink must find in HStreamDB.
    pub(super) streams: watch::Sender<BTreeSet<Arc<str>>>,
    /// The last version number of each plugin name, kept when its files go
    /// so that a name's versions only move forward.
    pub(super) versions: Mutex<BTreeMap<String, u64>>,
    pub(super) loading: Mutex<()>,
}

/// The rule stage. Cheap to clone; all clones share the plugins.
#[derive(Clone)]
pub struct RuleEngine {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for RuleEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleEngine")
            .field("plugins_dir", &self.inner.options.plugins_dir)
            .finish_non_exhaustive()
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RuleEngine {
    /// Starts the wasm runtime and loads every plugin in the plugins
    /// directory (blocking). A plugin that fails to load is reported in its
    /// status; it does not fail the engine.
    pub fn new(options: EngineOptions) -> Result<RuleEngine, RulesError> {
        let runtime = Runtime::new(&RuntimeOptions {
            cache_dir: options.cache_dir.clone(),
            tick: options.epoch_tick,
            fuel: options.deterministic_fuel,
        })
        .map_err(RulesError::Runtime)?;
        let disabled = match &options.disabled_file {
            Some(path) => read_disabled(path)?,
            None => BTreeSet::new(),
        };
        let engine = RuleEngine {
            inner: Arc::new(Inner {
                runtime: Arc::new(runtime),
                dead_letter: options.dead_letter_stream.as_deref().map(Arc::from),
                options,
                current: RwLock::default(),
                records: Mutex::default(),
                disabled: Mutex::new(disabled),
                subscriptions: watch::Sender::new(Sources::default()),
                streams: watch::Sender::new(BTreeSet::new()),
                versions: Mutex::default(),
                loading: Mutex::new(()),
            }),
        };
        if engine.inner.options.plugins_dir.is_some() {
            engine.rescan()?;
        }
        Ok(engine)
    }

    pub(super) fn snapshot(&self) -> Arc<Snapshot> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs a batch through every plugin whose sources match each event
    /// (blocking; see the module docs for the caller's obligations).
    pub fn process<E: Borrow<Event>>(&self, events: &[E]) -> BatchOutput {
        let snapshot = self.snapshot();
        let mut routed: Vec<Vec<usize>> = vec![Vec::new(); snapshot.plugins.len()];
        for (i, event) in events.iter().enumerate() {
            snapshot.index.matches(event.borrow(), &mut |p| {
                if let Some(list) = routed.get_mut(p)
                    && list.last() != Some(&i)
                {
                    list.push(i);
                }
            });
        }
        let cache = PayloadCache::new(if snapshot.wants_paths {
            events.len()
        } else {
            0
        });
        let mut out = BatchOutput {
            outputs: Vec::with_capacity(events.len()),
            errors: Vec::new(),
        };
        let mut ran = 0;
        for (plugin, indexes) in snapshot.plugins.iter().zip(&routed) {
            if !indexes.is_empty() {
                plugin.run(events, indexes, &cache, &mut out.outputs, &mut out.errors);
                ran += 1;
            }
        }
        if ran > 1 {
            // Stable: one event's outputs keep the plugins' order.
            out.outputs.sort_by_key(|o| o.event);
            out.errors.sort_by_key(|e| e.event);
        }
        out
    }

    /// The union of the loaded plugins' sources; changes on reloads.
    pub fn subscriptions(&self) -> watch::Receiver<Sources> {
        self.inner.subscriptions.subscribe()
    }

    /// The streams the loaded plugins write to (their actions' streams and
    /// dead-letter streams); changes when plugins are loaded or unloaded.
    pub fn streams(&self) -> watch::Receiver<BTreeSet<Arc<str>>> {
        self.inner.streams.subscribe()
    }

    /// Compilation cache hits and misses since the engine started.
    pub fn cache_stats(&self) -> (usize, usize) {
        self.inner.runtime.cache_stats()
    }

    /// Every known plugin's status, by name.
    pub(super) fn swap(&self, plugins: Vec<Arc<LoadedPlugin>>) {
        let streams: BTreeSet<Arc<str>> = plugins
            .iter()
            .flat_map(|p| p.manifest.streams.iter().chain(&p.manifest.dead_letter))
            .chain(&self.inner.dead_letter)
            .cloned()
            .collect();
        self.inner.streams.send_if_modified(|current| {
            let changed = *current != streams;
            *current = streams;
            changed
        });
        let (snapshot, subs) = Snapshot::build(plugins);
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
        self.inner.subscriptions.send_if_modified(|current| {
            let changed = *current != subs;
            *current = subs;
            changed
        });
    }
}
