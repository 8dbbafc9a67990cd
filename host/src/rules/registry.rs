//! Loading and status: which plugins and rule files are known, how one is
//! (re)loaded from its files or bytes, and what an operator sees of each.
//!
//! Loads are serialized by one mutex and happen entirely before the swap
//! (`engine`): read both files, parse the manifest, compile (or fetch from
//! the cache), check the ABI, instantiate and run `init`. Any failure leaves
//! the previous version running and is reported in the log, the plugin's
//! status and its `reload_failures` metric; the same broken files are not
//! retried until they change.
//!
//! An operator can disable a plugin ([`RuleEngine::disable`]): it is unloaded
//! and no reload, rescan or file change loads it again until it is enabled.
//! With a `disabled_file` the set is written there (`disabled`, atomically,
//! before the change takes effect) and read back at start, so a plugin
//! disabled because it misbehaved stays disabled across restarts; without one
//! it lives in memory and a restart enables every plugin.

use super::RulesError;
use super::compile::{CompiledRule, RuleDefinition};
use super::disabled::write_disabled;
use super::engine::{RuleEngine, lock};
use super::manifest::Manifest;
use super::metrics::{MetricsSnapshot, PluginMetrics};
use super::plugin::LoadedPlugin;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// A plugin's condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginState {
    /// A version is running.
    Loaded,
    /// No version is running: the plugin failed to load.
    Failed,
    /// A version is loaded but its circuit breaker is open.
    Tripped,
    /// An operator disabled it: not loaded until enabled again.
    Disabled,
}

/// What an operator sees about a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginStatus {
    pub name: String,
    pub state: PluginState,
    /// The running version, if any: this plugin's own load count (1 for
    /// its first load, then one more for each new version).
    pub version: Option<u64>,
    pub module_sha256: Option<String>,
    pub sources: Vec<String>,
    /// The streams its outputs may go to, the action's stream first.
    pub streams: Vec<String>,
    /// The manifest's `description`.
    pub description: Option<String>,
    /// The last load failure (while the previous version keeps running), or
    /// else the last runtime failure.
    pub last_error: Option<String>,
    pub metrics: MetricsSnapshot,
    /// For a rule file, what the last version that loaded says.
    pub rule: Option<Arc<RuleDefinition>>,
    /// The file the last version that loaded came from.
    pub file: Option<PathBuf>,
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A new version is running.
    Loaded { version: u64 },
    /// Nothing to do: the files did not change since the last attempt.
    Unchanged,
    /// The plugin is gone.
    Unloaded,
}

#[derive(Default)]
pub(super) struct Record {
    metrics: Arc<PluginMetrics>,
    load_error: Option<String>,
    /// Fingerprint of files that failed to load, not retried until changed.
    failed: Option<String>,
    /// What the last version that loaded was made from.
    rule: Option<Arc<RuleDefinition>>,
    file: Option<PathBuf>,
}

impl RuleEngine {
    pub fn statuses(&self) -> Vec<PluginStatus> {
        let records = lock(&self.inner.records);
        let disabled = lock(&self.inner.disabled).clone();
        let names: BTreeSet<&String> = records.keys().chain(&disabled).collect();
        names
            .into_iter()
            .filter_map(|n| self.status_locked(&records, n))
            .collect()
    }

    /// One plugin's status.
    pub fn status(&self, name: &str) -> Option<PluginStatus> {
        let records = lock(&self.inner.records);
        self.status_locked(&records, name)
    }

    fn status_locked(
        &self,
        records: &BTreeMap<String, Record>,
        name: &str,
    ) -> Option<PluginStatus> {
        let disabled = self.is_disabled(name);
        let default = Record::default();
        let record = match records.get(name) {
            Some(record) => record,
            // A disabled plugin whose files were removed is still listed, so
            // it can be enabled again.
            None if disabled => &default,
            None => return None,
        };
        let snapshot = self.snapshot();
        let running = snapshot.plugins.iter().find(|p| &*p.name == name);
        let health = running.map(|p| p.health());
        // A record with neither a running version nor an error is being
        // loaded for the first time: it is not failed, and not listed until
        // that load has an outcome.
        if running.is_none() && record.load_error.is_none() && !disabled {
            return None;
        }
        let state = match (&running, &health) {
            _ if disabled => PluginState::Disabled,
            (Some(_), Some(h)) if h.tripped_until.is_some() => PluginState::Tripped,
            (Some(_), _) => PluginState::Loaded,
            (None, _) => PluginState::Failed,
        };
        Some(PluginStatus {
            name: name.to_owned(),
            state,
            version: running.map(|p| p.version),
            module_sha256: running.map(|p| p.module_sha256.clone()),
            sources: running
                .map(|p| p.manifest.sources.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            streams: running
                .map(|p| p.manifest.streams.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            description: running.and_then(|p| p.manifest.description.clone()),
            last_error: record
                .load_error
                .clone()
                .or_else(|| health.and_then(|h| h.last_error)),
            metrics: record.metrics.snapshot(),
            rule: record.rule.clone(),
            file: record.file.clone(),
        })
    }

    /// Loads (or replaces) plugin `name` from bytes, as if its files had
    /// been written (blocking). For tests and embedding.
    pub fn install(&self, name: &str, wasm: &[u8], manifest: &str) -> Result<Change, RulesError> {
        let _loading = lock(&self.inner.loading);
        self.load(name, wasm, manifest, Path::new(&format!("{name}.toml")))
    }

    /// Loads (or replaces) rule `name` from the text of a `NAME.rule.toml`
    /// file, as if the file had been written (blocking). For tests,
    /// embedding and `weir rule test`.
    pub fn install_rule(&self, name: &str, rule: &str) -> Result<Change, RulesError> {
        let _loading = lock(&self.inner.loading);
        let path = format!("{name}.rule.toml");
        self.load_from(
            name,
            Source::Rule {
                text: rule,
                path: Path::new(&path),
            },
        )
    }

    /// Removes plugin `name`; returns whether it was loaded.
    pub fn unload(&self, name: &str) -> bool {
        let _loading = lock(&self.inner.loading);
        self.remove(name)
    }

    /// Reloads plugin `name` from the plugins directory (blocking).
    pub fn reload(&self, name: &str) -> Result<Change, RulesError> {
        let _loading = lock(&self.inner.loading);
        self.reload_locked(name)
    }

    /// Unloads plugin `name` and keeps it unloaded, whatever happens to its
    /// files, until [`RuleEngine::enable`]. Returns false, and does
    /// nothing, when no plugin of that name is known.
    pub fn disable(&self, name: &str) -> Result<bool, RulesError> {
        let _loading = lock(&self.inner.loading);
        let known = lock(&self.inner.records).contains_key(name) || self.is_disabled(name);
        if known && !self.is_disabled(name) {
            self.change_disabled(|set| set.insert(name.to_owned()))?;
            self.remove(name);
            tracing::info!(plugin = name, "plugin disabled");
        }
        Ok(known)
    }

    /// Lets a disabled plugin load again, and loads it from the plugins
    /// directory (blocking). Returns `Ok(None)`, and does nothing, when no
    /// plugin of that name is known.
    pub fn enable(&self, name: &str) -> Result<Option<Change>, RulesError> {
        let _loading = lock(&self.inner.loading);
        let was_disabled = self.is_disabled(name);
        if !was_disabled && !lock(&self.inner.records).contains_key(name) {
            return Ok(None);
        }
        if was_disabled {
            self.change_disabled(|set| set.remove(name))?;
        }
        if was_disabled {
            tracing::info!(plugin = name, "plugin enabled");
        }
        self.reload_locked(name).map(Some)
    }

    /// Whether an operator disabled plugin `name`.
    pub fn is_disabled(&self, name: &str) -> bool {
        lock(&self.inner.disabled).contains(name)
    }

    /// Changes the disabled set, writing it to the `disabled_file` first: if
    /// it cannot be kept, nothing changes and the operator is told.
    fn change_disabled(
        &self,
        change: impl FnOnce(&mut BTreeSet<String>) -> bool,
    ) -> Result<(), RulesError> {
        let mut disabled = lock(&self.inner.disabled);
        let mut changed = disabled.clone();
        change(&mut changed);
        if let Some(path) = &self.inner.options.disabled_file {
            write_disabled(path, &changed)?;
        }
        *disabled = changed;
        Ok(())
    }

    /// Reloads every plugin in the directory, and unloads the ones whose
    /// files are gone (blocking). Per-plugin failures are logged and kept
    /// in the status; only a directory that cannot be read is an error.
    pub fn rescan(&self) -> Result<(), RulesError> {
        let dir = self.dir()?;
        let entries = std::fs::read_dir(&dir).map_err(|source| RulesError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let mut names: BTreeSet<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| plugin_name(&e.path()))
            .collect();
        names.extend(self.snapshot().plugins.iter().map(|p| p.name.to_string()));
        for name in names {
            if let Err(e) = self.reload(&name) {
                tracing::debug!(plugin = name, "not loaded: {e}");
            }
        }
        Ok(())
    }

    pub(super) fn dir(&self) -> Result<PathBuf, RulesError> {
        self.inner
            .options
            .plugins_dir
            .clone()
            .ok_or(RulesError::NoPluginsDir)
    }

    fn reload_locked(&self, name: &str) -> Result<Change, RulesError> {
        let dir = self.dir()?;
        if self.is_disabled(name) {
            return Ok(Change::Unchanged);
        }
        let wasm_path = dir.join(format!("{name}.wasm"));
        let toml_path = dir.join(format!("{name}.toml"));
        let read = |p: &Path| match std::fs::read(p) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(RulesError::Io {
                path: p.display().to_string(),
                source,
            }),
        };
        let (wasm, toml) = (read(&wasm_path)?, read(&toml_path)?);
        let rule_path = dir.join(format!("{name}.rule.toml"));
        if let Some(rule) = read(&rule_path)? {
            let clash = [(&wasm, &wasm_path), (&toml, &toml_path)]
                .into_iter()
                .find_map(|(file, path)| file.is_some().then_some(path));
            return self.reload_rule(name, rule, &rule_path, clash);
        }
        let (wasm, toml) = match (wasm, toml) {
            (Some(w), Some(t)) => (w, t),
            (None, None) => {
                let was_loaded = self.remove(name);
                lock(&self.inner.records).remove(name);
                return Ok(if was_loaded {
                    Change::Unloaded
                } else {
                    Change::Unchanged
                });
            }
            (w, _) => {
                // Half a plugin: unload it, so deleting either file stops it.
                self.remove(name);
                let (have, missing) = if w.is_some() {
                    (&wasm_path, &toml_path)
                } else {
                    (&toml_path, &wasm_path)
                };
                let problem = format!(
                    "{} exists but {} does not",
                    have.display(),
                    missing.display()
                );
                self.record_failure(name, &problem, None);
                return Err(RulesError::Incomplete {
                    plugin: name.to_owned(),
                    problem,
                });
            }
        };
        let text = String::from_utf8(toml).map_err(|_| {
            let problem = format!("{} is not UTF-8", toml_path.display());
            self.record_failure(name, &problem, None);
            RulesError::Incomplete {
                plugin: name.to_owned(),
                problem,
            }
        })?;
        self.load(name, &wasm, &text, &toml_path)
    }

    /// A `NAME.rule.toml` file: compiled and loaded like a plugin, unless a
    /// plugin's files use the same name.
    fn reload_rule(
        &self,
        name: &str,
        rule: Vec<u8>,
        rule_path: &Path,
        clash: Option<&PathBuf>,
    ) -> Result<Change, RulesError> {
        let problem = match (clash, String::from_utf8(rule)) {
            (Some(other), _) => format!(
                "both {} and {} exist; a rule file and a plugin cannot share the name `{name}`: rename one (the running version, if any, keeps running)",
                rule_path.display(),
                other.display()
            ),
            (None, Err(_)) => format!("{} is not UTF-8", rule_path.display()),
            (None, Ok(text)) => {
                return self.load_from(
                    name,
                    Source::Rule {
                        text: &text,
                        path: rule_path,
                    },
                );
            }
        };
        self.record_failure(name, &problem, None);
        Err(RulesError::Incomplete {
            plugin: name.to_owned(),
            problem,
        })
    }

    fn load(
        &self,
        name: &str,
        wasm: &[u8],
        manifest: &str,
        manifest_path: &Path,
    ) -> Result<Change, RulesError> {
        self.load_from(
            name,
            Source::Plugin {
                wasm,
                manifest,
                path: manifest_path,
            },
        )
    }

    fn load_from(&self, name: &str, source: Source<'_>) -> Result<Change, RulesError> {
        use sha2::Digest as _;
        if self.is_disabled(name) {
            return Ok(Change::Unchanged);
        }
        let fingerprint = {
            let mut h = sha2::Sha256::new();
            match &source {
                Source::Plugin { wasm, manifest, .. } => {
                    h.update(sha2::Sha256::digest(wasm));
                    h.update(sha2::Sha256::digest(manifest.as_bytes()));
                }
                Source::Rule { text, .. } => {
                    h.update(b"rule file\0");
                    h.update(sha2::Sha256::digest(text.as_bytes()));
                }
            }
            format!("{:x}", h.finalize())
        };
        let current = self.snapshot();
        if current
            .plugins
            .iter()
            .any(|p| &*p.name == name && p.fingerprint == fingerprint)
        {
            return Ok(Change::Unchanged);
        }
        let metrics = {
            let mut records = lock(&self.inner.records);
            let record = records.entry(name.to_owned()).or_default();
            if record.failed.as_deref() == Some(fingerprint.as_str()) {
                return Ok(Change::Unchanged);
            }
            record.metrics.clone()
        };
        let file = source.path().to_path_buf();
        // Load errors name the file the operator would fix: the module
        // beside a manifest, or the rule file.
        let failing_file = match &source {
            Source::Plugin { path, .. } => path.with_extension("wasm"),
            Source::Rule { path, .. } => path.to_path_buf(),
        };
        let mut rule = None;
        let parsed = match source {
            Source::Plugin {
                wasm,
                manifest,
                path,
            } => Manifest::parse(manifest, path)
                .map(|m| (std::borrow::Cow::Borrowed(wasm), m))
                .map_err(RulesError::from),
            Source::Rule { text, path } => {
                let started = Instant::now();
                CompiledRule::compile(text, path)
                    .map(|compiled| {
                        tracing::info!(
                            plugin = name,
                            compile_us = started.elapsed().as_micros(),
                            module_bytes = compiled.wasm().len(),
                            "rule file compiled"
                        );
                        for warning in compiled.warnings() {
                            tracing::warn!(plugin = name, "{warning}");
                        }
                        let manifest = compiled.manifest.clone();
                        rule = Some(compiled.definition().clone());
                        (std::borrow::Cow::Owned(compiled.wasm().to_vec()), manifest)
                    })
                    .map_err(RulesError::from)
            }
        };
        let (wasm, manifest) = match parsed {
            Ok(p) => p,
            Err(e) => {
                self.record_failure(name, &e.to_string(), Some(fingerprint));
                return Err(e);
            }
        };
        let wasm: &[u8] = &wasm;
        let version = {
            let mut versions = lock(&self.inner.versions);
            let last = versions.entry(name.to_owned()).or_default();
            *last += 1;
            *last
        };
        let loaded = LoadedPlugin::load(
            &self.inner.runtime,
            name.into(),
            version,
            wasm,
            manifest,
            fingerprint.clone(),
            metrics.clone(),
            self.inner.dead_letter.as_ref(),
        );
        let plugin = match loaded {
            Ok(p) => Arc::new(p),
            Err(source) => {
                let error = RulesError::Load {
                    file: failing_file.display().to_string(),
                    plugin: name.to_owned(),
                    source,
                };
                self.record_failure(name, &error.to_string(), Some(fingerprint));
                return Err(error);
            }
        };
        let mut plugins: Vec<Arc<LoadedPlugin>> = current.plugins.clone();
        match plugins.iter_mut().find(|p| &*p.name == name) {
            Some(slot) => *slot = plugin,
            None => plugins.push(plugin),
        }
        self.swap(plugins);
        metrics.reloaded();
        {
            let mut records = lock(&self.inner.records);
            let record = records.entry(name.to_owned()).or_default();
            record.load_error = None;
            record.failed = None;
            record.rule = rule;
            record.file = Some(file);
        }
        tracing::info!(plugin = name, version, "plugin loaded");
        Ok(Change::Loaded { version })
    }

    fn record_failure(&self, name: &str, error: &str, fingerprint: Option<String>) {
        let mut records = lock(&self.inner.records);
        let record = records.entry(name.to_owned()).or_default();
        record.metrics.reload_failed();
        record.load_error = Some(error.to_owned());
        record.failed = fingerprint;
        tracing::error!(plugin = name, "plugin not loaded: {error}");
    }

    fn remove(&self, name: &str) -> bool {
        let current = self.snapshot();
        if !current.plugins.iter().any(|p| &*p.name == name) {
            return false;
        }
        let plugins = current
            .plugins
            .iter()
            .filter(|p| &*p.name != name)
            .cloned()
            .collect();
        self.swap(plugins);
        tracing::info!(plugin = name, "plugin unloaded");
        true
    }
}

/// What a plugin is loaded from.
enum Source<'a> {
    /// `NAME.wasm` and its manifest `NAME.toml`.
    Plugin {
        wasm: &'a [u8],
        manifest: &'a str,
        path: &'a Path,
    },
    /// A `NAME.rule.toml` file, compiled to a module first.
    Rule { text: &'a str, path: &'a Path },
}

impl Source<'_> {
    fn path(&self) -> &Path {
        match self {
            Source::Plugin { path, .. } | Source::Rule { path, .. } => path,
        }
    }
}

/// The plugin a file belongs to: `NAME.wasm`, `NAME.toml` or the rule file
/// `NAME.rule.toml` (not hidden files). `x.rule.toml` is always the rule
/// file of `x`, so a plugin name cannot end in `.rule`.
pub(super) fn plugin_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    if file.starts_with('.') {
        return None;
    }
    let stem = file
        .strip_suffix(".rule.toml")
        .or_else(|| file.strip_suffix(".wasm"))
        .or_else(|| file.strip_suffix(".toml"))?;
    let valid = !stem.is_empty()
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    valid.then(|| stem.to_owned())
}
