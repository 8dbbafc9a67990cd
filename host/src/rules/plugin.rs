//! One loaded version of a plugin, and failure isolation.
//!
//! A batch runs on the plugin's single instance. When a call fails (trap,
//! deadline, memory cap, or an output frame that breaks the ABI), the
//! instance is dropped, never re-entered, and the batch is retried once on a
//! fresh instance. If it fails again, the batch is split in halves, each
//! half run on its own, recursively, until the events that fail on their
//! own are found: those are poison. A poison event gets a per-event error
//! that is a *rejection* (`ErrorKind::is_rejection`): the pipeline hands it
//! to the sink, which alone makes dead letters (`sink::dead_letter`). The
//! outputs of a failed attempt are never read, so no event's outputs appear
//! twice. Batches that needed isolation count towards a circuit breaker:
//! after `breaker_threshold` of them in a row the plugin is tripped for a
//! backoff that doubles on every trip (up to `breaker_max_backoff_ms`);
//! while tripped its events are rejected (a rejection error) instead of
//! run, and the first batch after the backoff decides whether it recovers.
//! A tripped plugin's instance is dropped, so its memory is returned while
//! it waits.
//!
//! Time is bounded per batch, not only per call: retries and bisection of
//! one batch get at most [`BATCH_BUDGET_CALLS`] deadlines in all. Events not
//! settled when that runs out are rejected (`ErrorKind::BatchDeadline`)
//! without being run, so a plugin that is slow on every event holds the
//! rules thread for a few deadlines, not for one deadline per event (issue
//! 19 measured a 72 s stall from bisecting such a batch).

use super::encode::{self, PayloadCache};
use super::manifest::Manifest;
use super::metrics::PluginMetrics;
use super::runtime::{Compiled, Failure, Instance, LoadError, Runtime};
use super::{ErrorKind, EventError, Output};
use crate::event::Event;
use bytes::Bytes;
use std::borrow::Borrow;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use weir_guest_sdk::abi::{BatchWriter, OutputFrameReader};

/// A batch's total time in a plugin, in deadlines (`limits.deadline_ms`):
/// room for the call, its retry and the isolation of a few slow poison
/// events (each takes two or three deadline-long calls to find), with
/// slack for a busy machine; a batch slow on every event would take one
/// deadline per event instead.
pub(crate) const BATCH_BUDGET_CALLS: u32 = 16;

/// The share of a plugin's memory cap (`limits.memory_mb`) one call's
/// payloads may take (one eighth). The rest is for the module's own memory,
/// the guest's copy of the batch, what it decodes and the records it writes
/// back, each about as large again: a batch of large messages that
/// filled the cap would fail as a whole, and its good events would be
/// bisected into the batch's time budget and rejected (issue 17 found 256
/// KiB payloads quarantined that way).
const PAYLOAD_SHARE_OF_MEMORY: u64 = 8;

/// What an event without a payload is counted as, for the share above.
const EVENT_OVERHEAD_BYTES: u64 = 256;

/// A plugin version, ready to run.
pub(crate) struct LoadedPlugin {
    pub(crate) name: Arc<str>,
    pub(crate) version: u64,
    /// SHA-256 of the module and of the manifest, hex.
    pub(crate) fingerprint: String,
    pub(crate) module_sha256: String,
    pub(crate) manifest: Manifest,
    pub(crate) metrics: Arc<PluginMetrics>,
    compiled: Compiled,
    runtime: Arc<Runtime>,
    dead_letter: Option<Arc<str>>,
    state: Mutex<State>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

struct State {
    instance: Option<Instance>,
    /// The encoded batch, reused.
    batch: Vec<u8>,
    consecutive_failures: u32,
    trips: u32,
    open_until: Option<Instant>,
    last_error: Option<String>,
}

enum AttemptError {
    Call(Failure),
    Instantiate(LoadError),
}

/// A plugin's condition, for status reports.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    pub(crate) tripped_until: Option<Instant>,
    pub(crate) last_error: Option<String>,
}

impl LoadedPlugin {
    /// Compiles, instantiates and initialises a plugin (blocking).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn load(
        runtime: &Arc<Runtime>,
        name: Arc<str>,
        version: u64,
        wasm: &[u8],
        manifest: Manifest,
        fingerprint: String,
        metrics: Arc<PluginMetrics>,
        default_dead_letter: Option<&Arc<str>>,
    ) -> Result<LoadedPlugin, LoadError> {
        use sha2::Digest as _;
        let compiled = runtime.compile(wasm, manifest.fields.as_ref())?;
        let init_doc = manifest.init_document(&name, version);
        let instance =
            runtime.instantiate(&compiled, &name, &manifest.limits, &metrics, &init_doc)?;
        let dead_letter = manifest
            .dead_letter
            .clone()
            .or_else(|| default_dead_letter.cloned());
        Ok(LoadedPlugin {
            name,
            version,
            fingerprint,
            module_sha256: format!("{:x}", sha2::Sha256::digest(wasm)),
            manifest,
            metrics,
            compiled,
            runtime: runtime.clone(),
            dead_letter,
            state: Mutex::new(State {
                instance: Some(instance),
                batch: Vec::new(),
                consecutive_failures: 0,
                trips: 0,
                open_until: None,
                last_error: None,
            }),
        })
    }

    /// What the module reads of each event.
    pub(crate) fn selection(&self) -> &super::encode::Selection {
        &self.compiled.selection
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn health(&self) -> Health {
        let state = self.lock();
        Health {
            tripped_until: state.open_until.filter(|t| *t > Instant::now()),
            last_error: state.last_error.clone(),
        }
    }

    /// `indexes` cut, in order, into runs whose payloads fit the plugin's
    /// share of memory for one call; an event larger than that is a run of
    /// its own.
    fn parts<'a, E: Borrow<Event>>(&self, events: &[E], indexes: &'a [usize]) -> Vec<&'a [usize]> {
        let room = self.manifest.limits.memory_mb * 1024 * 1024 / PAYLOAD_SHARE_OF_MEMORY;
        let size = |i: usize| {
            let message = events.get(i).and_then(|e| e.borrow().message());
            message.map_or(0, |m| m.payload.len() as u64) + EVENT_OVERHEAD_BYTES
        };
        let mut parts = Vec::new();
        let (mut start, mut used) = (0, 0);
        for (at, &i) in indexes.iter().enumerate() {
            let bytes = size(i);
            if at > start && used + bytes > room {
                parts.push(&indexes[start..at]);
                (start, used) = (at, 0);
            }
            used += bytes;
        }
        parts.push(&indexes[start..]);
        parts
    }

    /// Runs the events `indexes` of `events` through the plugin, appending
    /// outputs and errors (blocking).
    pub(crate) fn run<E: Borrow<Event>>(
        &self,
        events: &[E],
        indexes: &[usize],
        cache: &PayloadCache,
        outputs: &mut Vec<Output>,
        errors: &mut Vec<EventError>,
    ) {
        let started = Instant::now();
        let mut state = self.lock();
        if let Some(until) = state.open_until {
            if started < until {
                for &i in indexes {
                    self.metrics.rejected();
                    errors.push(self.error(
                        i,
                        ErrorKind::Tripped,
                        0,
                        "plugin is tripped; event not run".into(),
                    ));
                }
                return;
            }
            state.open_until = None;
        }

        let (out_before, err_before) = (outputs.len(), errors.len());
        let mut failed = false;
        let budget_end = started + self.manifest.limits.deadline() * BATCH_BUDGET_CALLS;
        for part in self.parts(events, indexes) {
            let Err(first) = self.attempt(&mut state, events, part, cache, outputs, errors) else {
                continue;
            };
            failed = true;
            self.note(&mut state, &first);
            if Instant::now() >= budget_end {
                self.out_of_time(part, errors);
                continue;
            }
            if let Err(second) = self.attempt(&mut state, events, part, cache, outputs, errors) {
                self.note(&mut state, &second);
                let (failure, time) = (second, budget_end);
                self.isolate(
                    &mut state, events, part, cache, failure, time, outputs, errors,
                );
            }
        }
        self.update_breaker(&mut state, failed);
        // A rule's own per-event errors are what an operator looks for in
        // the plugin's status, not only in debug logs.
        if let Some(e) = errors[err_before..]
            .iter()
            .rev()
            .find(|e| matches!(e.kind, ErrorKind::Rule | ErrorKind::BadTarget))
        {
            state.last_error = Some(match e.kind {
                ErrorKind::Rule => format!("event error (code {}): {}", e.code, e.message),
                _ => e.message.clone(),
            });
        }
        let rule_errors = errors[err_before..]
            .iter()
            .filter(|e| matches!(e.kind, ErrorKind::Rule))
            .count();
        self.metrics.batch(
            indexes.len(),
            outputs.len() - out_before,
            rule_errors,
            started.elapsed(),
        );
        // EMQX's per-rule view: an event either passed (records, no
        // error), failed (an error of any kind) or had no result.
        let mut failed_events: Vec<usize> = errors[err_before..].iter().map(|e| e.event).collect();
        failed_events.sort_unstable();
        failed_events.dedup();
        let mut passed_events: Vec<usize> = outputs[out_before..]
            .iter()
            .map(|o| o.event)
            .filter(|i| failed_events.binary_search(i).is_err())
            .collect();
        passed_events.sort_unstable();
        passed_events.dedup();
        self.metrics
            .results(indexes.len(), passed_events.len(), failed_events.len());
    }

    #[allow(clippy::too_many_arguments)]
    fn isolate<E: Borrow<Event>>(
        &self,
        state: &mut State,
        events: &[E],
        indexes: &[usize],
        cache: &PayloadCache,
        failure: AttemptError,
        budget_end: Instant,
        outputs: &mut Vec<Output>,
        errors: &mut Vec<EventError>,
    ) {
        if let AttemptError::Instantiate(e) = &failure {
            // The plugin cannot run at all; that is not the events' fault,
            // but they cannot be processed either.
            for &i in indexes {
                let message = format!("plugin could not be re-instantiated: {e}");
                self.metrics.rejected();
                errors.push(self.error(i, ErrorKind::Unavailable, 0, message));
            }
            return;
        }
        if let ([i], AttemptError::Call(f)) = (indexes, &failure) {
            self.metrics.poison();
            errors.push(self.error(*i, ErrorKind::Poison(f.kind), 0, f.message.clone()));
            tracing::warn!(
                plugin = &*self.name,
                version = self.version,
                event = *i,
                "poison event isolated: {f}"
            );
            return;
        }
        let (left, right) = indexes.split_at(indexes.len() / 2);
        for half in [left, right] {
            if Instant::now() >= budget_end {
                self.out_of_time(half, errors);
                continue;
            }
            if let Err(f) = self.attempt(state, events, half, cache, outputs, errors) {
                self.note(state, &f);
                self.isolate(state, events, half, cache, f, budget_end, outputs, errors);
            }
        }
    }

    /// The batch's time ran out: `indexes` are rejected without running.
    fn out_of_time(&self, indexes: &[usize], errors: &mut Vec<EventError>) {
        let message = format!(
            "the batch used its time in the plugin ({BATCH_BUDGET_CALLS} × {} ms, retries and isolation included); event not run",
            self.manifest.limits.deadline_ms
        );
        for &i in indexes {
            self.metrics.out_of_time();
            errors.push(self.error(i, ErrorKind::BatchDeadline, 0, message.clone()));
        }
    }

    fn note(&self, state: &mut State, failure: &AttemptError) {
        let text = match failure {
            AttemptError::Call(f) => {
                self.metrics.failure(f.kind);
                f.to_string()
            }
            AttemptError::Instantiate(e) => e.to_string(),
        };
        tracing::debug!(
            plugin = &*self.name,
            version = self.version,
            "plugin call failed: {text}"
        );
        state.last_error = Some(text);
    }

    fn update_breaker(&self, state: &mut State, failed: bool) {
        if !failed {
            state.consecutive_failures = 0;
            state.trips = 0;
            return;
        }
        state.consecutive_failures += 1;
        let limits = &self.manifest.limits;
        if state.consecutive_failures >= limits.breaker_threshold {
            state.trips = state.trips.saturating_add(1);
            let factor = 1u64 << state.trips.saturating_sub(1).min(20);
            let backoff = limits
                .breaker_backoff_ms
                .saturating_mul(factor)
                .min(limits.breaker_max_backoff_ms);
            state.open_until = Some(Instant::now() + Duration::from_millis(backoff));
            // Nothing runs while tripped: give the instance's memory back.
            state.instance = None;
            state.batch = Vec::new();
            self.metrics.set_memory(0);
            self.metrics.tripped();
            tracing::warn!(
                plugin = &*self.name,
                version = self.version,
                "circuit breaker tripped after {} failing batches; retrying in {backoff} ms",
                state.consecutive_failures
            );
        }
    }

    /// Runs `indexes` once, appending to `outputs` and `errors`; on failure
    /// nothing is appended.
    fn attempt<E: Borrow<Event>>(
        &self,
        state: &mut State,
        events: &[E],
        indexes: &[usize],
        cache: &PayloadCache,
        outputs: &mut Vec<Output>,
        errors: &mut Vec<EventError>,
    ) -> Result<(), AttemptError> {
        let State {
            instance, batch, ..
        } = state;
        let instance = match instance {
            Some(instance) => instance,
            None => {
                let doc = self.manifest.init_document(&self.name, self.version);
                let fresh = self
                    .runtime
                    .instantiate(
                        &self.compiled,
                        &self.name,
                        &self.manifest.limits,
                        &self.metrics,
                        &doc,
                    )
                    .map_err(AttemptError::Instantiate)?;
                instance.insert(fresh)
            }
        };
        batch.clear();
        let mut writer = BatchWriter::new(batch);
        for &i in indexes {
            encode::encode(
                &mut writer,
                events[i].borrow(),
                i,
                &self.compiled.selection,
                cache,
            );
        }
        writer.finish();
        self.metrics.invoked();
        let (out_len, err_len) = (outputs.len(), errors.len());
        let result = instance
            .process(batch)
            .and_then(|frame| self.collect(frame, indexes, outputs, errors));
        if result.is_err() {
            outputs.truncate(out_len);
            errors.truncate(err_len);
            // Never re-enter an instance after a failure.
            state.instance = None;
        }
        result.map_err(AttemptError::Call)
    }

    /// Reads an output frame; the whole frame is rejected if any part of it
    /// breaks the ABI.
    fn collect(
        &self,
        frame: Bytes,
        indexes: &[usize],
        outputs: &mut Vec<Output>,
        errors: &mut Vec<EventError>,
    ) -> Result<(), Failure> {
        let bad = |e: weir_guest_sdk::abi::FrameError| Failure::bad_output(e.to_string());
        let mut reader = OutputFrameReader::new(&frame).map_err(bad)?;
        let event = |n: u32| {
            indexes.get(n as usize).copied().ok_or_else(|| {
                Failure::bad_output(format!("names event {n} of a batch of {}", indexes.len()))
            })
        };
        while let Some(raw) = reader.next_output() {
            let raw = raw.map_err(bad)?;
            let i = event(raw.event)?;
            match self.manifest.resolve_target(raw.target) {
                Some(stream) => outputs.push(Output {
                    event: i,
                    plugin: self.name.clone(),
                    version: self.version,
                    stream: stream.clone(),
                    key: frame.slice(raw.key),
                    flag: raw.flag,
                    record: frame.slice(raw.record),
                }),
                None => {
                    self.metrics.bad_target();
                    let allowed: Vec<&str> = self.manifest.streams.iter().map(|s| &**s).collect();
                    errors.push(self.error(
                        i,
                        ErrorKind::BadTarget,
                        0,
                        format!(
                            "output names stream `{}`, which the manifest does not allow (allowed: {})",
                            raw.target,
                            allowed.join(", ")
                        ),
                    ));
                }
            }
        }
        while let Some(raw) = reader.next_error() {
            let raw = raw.map_err(bad)?;
            let i = event(raw.event)?;
            errors.push(self.error(i, ErrorKind::Rule, raw.code, raw.message.to_owned()));
        }
        if !reader.at_end() {
            return Err(Failure::bad_output("trailing bytes after the last error"));
        }
        Ok(())
    }

    fn error(&self, event: usize, kind: ErrorKind, code: u32, message: String) -> EventError {
        EventError {
            event,
            plugin: self.name.clone(),
            version: self.version,
            kind,
            code,
            message,
            dead_letter_stream: kind
                .is_rejection()
                .then(|| self.dead_letter.clone())
                .flatten(),
        }
    }
}
