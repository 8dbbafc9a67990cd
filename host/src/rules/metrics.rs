//! Per-plugin counters, kept per plugin name across versions so a reload
//! does not reset a dashboard.

use super::runtime::FailureKind;
use super::wasi_log::{Admit, LogLimiter};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters of one plugin (updated without locks on the hot path).
#[derive(Debug, Default)]
pub(super) struct PluginMetrics {
    invocations: AtomicU64,
    events_in: AtomicU64,
    outputs: AtomicU64,
    passed: AtomicU64,
    failed: AtomicU64,
    no_result: AtomicU64,
    rule_errors: AtomicU64,
    bad_targets: AtomicU64,
    traps: AtomicU64,
    deadlines: AtomicU64,
    out_of_memory: AtomicU64,
    bad_outputs: AtomicU64,
    poison_events: AtomicU64,
    dead_letters: AtomicU64,
    rejected_while_tripped: AtomicU64,
    trips: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    busy_ns: AtomicU64,
    memory_bytes: AtomicU64,
    memory_peak_bytes: AtomicU64,
    log_lines: AtomicU64,
    log_dropped: AtomicU64,
    log_limiter: LogLimiter,
    counters: Mutex<BTreeMap<String, i64>>,
}

/// A copy of a plugin's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Calls of `weir_process` (including retries and isolation calls).
    pub invocations: u64,
    pub events_in: u64,
    pub outputs: u64,
    /// Events that produced records and no error (EMQX's `passed`).
    pub passed: u64,
    /// Events with an error of any kind (EMQX's `failed`).
    pub failed: u64,
    /// Events that produced neither records nor errors: filtered out
    /// (EMQX's `no_result`). `events_in` is EMQX's `matched`.
    pub no_result: u64,
    /// Per-event errors returned by the rule.
    pub rule_errors: u64,
    /// Outputs dropped for naming a stream the manifest does not allow.
    pub bad_targets: u64,
    pub traps: u64,
    pub deadlines: u64,
    pub out_of_memory: u64,
    pub bad_outputs: u64,
    /// Events isolated as the cause of a failure.
    pub poison_events: u64,
    /// Events handed to the sink as rejections (poison, or refused while
    /// tripped or unavailable); the sink dead-letters or quarantines them.
    pub dead_letters: u64,
    pub rejected_while_tripped: u64,
    pub trips: u64,
    pub reloads: u64,
    pub reload_failures: u64,
    /// Wall time spent in the plugin's batches, in nanoseconds.
    pub busy_ns: u64,
    /// Linear memory size after the last call.
    pub memory_bytes: u64,
    pub memory_peak_bytes: u64,
    pub log_lines: u64,
    /// Lines dropped because the plugin logged faster than its rate.
    pub log_dropped: u64,
    /// Counters the plugin increments with `counter_add`.
    pub counters: BTreeMap<String, i64>,
}

impl PluginMetrics {
    /// Counts how the `matched` events of one batch ended.
    pub(crate) fn results(&self, matched: usize, passed: usize, failed: usize) {
        self.passed.fetch_add(passed as u64, Relaxed);
        self.failed.fetch_add(failed as u64, Relaxed);
        self.no_result
            .fetch_add(matched.saturating_sub(passed + failed) as u64, Relaxed);
    }

    pub(crate) fn batch(
        &self,
        events: usize,
        outputs: usize,
        rule_errors: usize,
        busy: std::time::Duration,
    ) {
        self.events_in.fetch_add(events as u64, Relaxed);
        self.outputs.fetch_add(outputs as u64, Relaxed);
        self.rule_errors.fetch_add(rule_errors as u64, Relaxed);
        self.busy_ns
            .fetch_add(u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    pub(crate) fn invoked(&self) {
        self.invocations.fetch_add(1, Relaxed);
    }

    pub(crate) fn failure(&self, kind: FailureKind) {
        let counter = match kind {
            FailureKind::Trap => &self.traps,
            FailureKind::Deadline => &self.deadlines,
            FailureKind::OutOfMemory => &self.out_of_memory,
            FailureKind::BadOutput => &self.bad_outputs,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn bad_target(&self) {
        self.bad_targets.fetch_add(1, Relaxed);
    }

    pub(crate) fn poison(&self) {
        self.poison_events.fetch_add(1, Relaxed);
        self.dead_letters.fetch_add(1, Relaxed);
    }

    pub(crate) fn rejected(&self) {
        self.rejected_while_tripped.fetch_add(1, Relaxed);
        self.dead_letters.fetch_add(1, Relaxed);
    }

    /// An event rejected because its batch's time ran out.
    pub(crate) fn out_of_time(&self) {
        self.dead_letters.fetch_add(1, Relaxed);
    }

    pub(crate) fn tripped(&self) {
        self.trips.fetch_add(1, Relaxed);
    }

    pub(crate) fn reloaded(&self) {
        self.reloads.fetch_add(1, Relaxed);
    }

    pub(crate) fn reload_failed(&self) {
        self.reload_failures.fetch_add(1, Relaxed);
    }

    /// Counts a log line, and says whether the plugin's log rate lets it
    /// be written.
    pub(crate) fn admit_log(&self) -> Admit {
        let admit = self.log_limiter.admit(std::time::Instant::now());
        match admit {
            Admit::Write { .. } => self.log_lines.fetch_add(1, Relaxed),
            Admit::Drop => self.log_dropped.fetch_add(1, Relaxed),
        };
        admit
    }

    pub(crate) fn set_memory(&self, bytes: usize) {
        let bytes = bytes as u64;
        self.memory_bytes.store(bytes, Relaxed);
        self.memory_peak_bytes.fetch_max(bytes, Relaxed);
    }

    pub(crate) fn counter_add(&self, name: &str, delta: i64) {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        // Bound the number of distinct names a plugin can create.
        if counters.len() >= 1024 && !counters.contains_key(name) {
            return;
        }
        let slot = counters.entry(name.to_owned()).or_insert(0);
        *slot = slot.saturating_add(delta);
    }

    pub(super) fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            invocations: self.invocations.load(Relaxed),
            events_in: self.events_in.load(Relaxed),
            outputs: self.outputs.load(Relaxed),
            passed: self.passed.load(Relaxed),
            failed: self.failed.load(Relaxed),
            no_result: self.no_result.load(Relaxed),
            rule_errors: self.rule_errors.load(Relaxed),
            bad_targets: self.bad_targets.load(Relaxed),
            traps: self.traps.load(Relaxed),
            deadlines: self.deadlines.load(Relaxed),
            out_of_memory: self.out_of_memory.load(Relaxed),
            bad_outputs: self.bad_outputs.load(Relaxed),
            poison_events: self.poison_events.load(Relaxed),
            dead_letters: self.dead_letters.load(Relaxed),
            rejected_while_tripped: self.rejected_while_tripped.load(Relaxed),
            trips: self.trips.load(Relaxed),
            reloads: self.reloads.load(Relaxed),
            reload_failures: self.reload_failures.load(Relaxed),
            busy_ns: self.busy_ns.load(Relaxed),
            memory_bytes: self.memory_bytes.load(Relaxed),
            memory_peak_bytes: self.memory_peak_bytes.load(Relaxed),
            log_lines: self.log_lines.load(Relaxed),
            log_dropped: self.log_dropped.load(Relaxed),
            counters: self
                .counters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}
