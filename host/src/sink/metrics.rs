//! The sink's metrics, per target stream, with EMQX's names and meanings so
//! operators of EMQX's HStreamDB action feel at home; and the connector
//! status.
//!
//! Unlike EMQX in batch mode, `success` counts a record only once its
//! append returned OK, and a dropped record is always counted under a
//! reason. The identity EMQX documents holds at every snapshot:
//! `matched = success + failed + dropped + queuing + inflight`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

/// Upper bounds (inclusive, milliseconds) of the publish→stored latency
/// buckets; a last bucket holds everything slower.
pub(crate) const LATENCY_BUCKETS_MS: [u64; 14] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000,
];

/// Why records were dropped (never stored, never dead-lettered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// The buffer was full and the policy is drop-oldest.
    QueueFull,
    /// The request TTL passed before an append succeeded.
    Expired,
    /// The sink stopped before the record was appended (memory buffer).
    ResourceStopped,
}

/// Live counters of one stream.
#[derive(Debug, Default)]
pub(crate) struct StreamMetrics {
    matched: AtomicU64,
    success: AtomicU64,
    failed: AtomicU64,
    dead_lettered: AtomicU64,
    quarantined: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_expired: AtomicU64,
    dropped_resource_stopped: AtomicU64,
    retried: AtomicU64,
    replayed: AtomicU64,
    inflight: AtomicI64,
    queuing_bytes: AtomicI64,
    latency: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    latency_max_ms: AtomicU64,
    latency_sum_ms: AtomicU64,
}

impl StreamMetrics {
    pub(crate) fn matched(&self, bytes: usize) {
        self.matched.fetch_add(1, Relaxed);
        self.queued_bytes(bytes as i64);
    }

    /// Records found in the disk buffer at start: matched again, since this
    /// run has to append them.
    pub(crate) fn replayed(&self, bytes: usize) {
        self.replayed.fetch_add(1, Relaxed);
        self.matched(bytes);
    }

    pub(crate) fn queued_bytes(&self, delta: i64) {
        self.queuing_bytes.fetch_add(delta, Relaxed);
    }

    pub(crate) fn inflight(&self, delta: i64) {
        self.inflight.fetch_add(delta, Relaxed);
    }

    pub(crate) fn retried(&self, records: usize) {
        self.retried.fetch_add(records as u64, Relaxed);
    }

    /// One record appended; `latency_ms` from its event to now.
    pub(crate) fn success(&self, latency_ms: u64) {
        self.success.fetch_add(1, Relaxed);
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|&bound| latency_ms <= bound)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.latency[bucket].fetch_add(1, Relaxed);
        self.latency_max_ms.fetch_max(latency_ms, Relaxed);
        self.latency_sum_ms.fetch_add(latency_ms, Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Relaxed);
    }

    pub(crate) fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Relaxed);
    }

    pub(crate) fn quarantined(&self) {
        self.quarantined.fetch_add(1, Relaxed);
    }

    pub(crate) fn dropped(&self, reason: DropReason) {
        match reason {
            DropReason::QueueFull => &self.dropped_queue_full,
            DropReason::Expired => &self.dropped_expired,
            DropReason::ResourceStopped => &self.dropped_resource_stopped,
        }
        .fetch_add(1, Relaxed);
    }

    fn snapshot(&self) -> StreamSnapshot {
        let matched = self.matched.load(Relaxed);
        let success = self.success.load(Relaxed);
        let failed = self.failed.load(Relaxed);
        let dropped = DroppedSnapshot {
            queue_full: self.dropped_queue_full.load(Relaxed),
            expired: self.dropped_expired.load(Relaxed),
            resource_stopped: self.dropped_resource_stopped.load(Relaxed),
        };
        let inflight = u64::try_from(self.inflight.load(Relaxed)).unwrap_or(0);
        let queuing = matched
            .saturating_sub(success)
            .saturating_sub(failed)
            .saturating_sub(dropped.total())
            .saturating_sub(inflight);
        StreamSnapshot {
            matched,
            success,
            failed,
            dead_lettered: self.dead_lettered.load(Relaxed),
            quarantined: self.quarantined.load(Relaxed),
            dropped,
            retried: self.retried.load(Relaxed),
            replayed: self.replayed.load(Relaxed),
            queuing,
            queuing_bytes: u64::try_from(self.queuing_bytes.load(Relaxed)).unwrap_or(0),
            inflight,
            latency_buckets: self.latency.iter().map(|b| b.load(Relaxed)).collect(),
            latency_max_ms: self.latency_max_ms.load(Relaxed),
            latency_sum_ms: self.latency_sum_ms.load(Relaxed),
        }
    }
}

/// The metrics of one target stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StreamSnapshot {
    /// Records sent to the sink for this stream (plus records replayed from
    /// the disk buffer at start).
    pub matched: u64,
    /// Records appended (the append returned OK).
    pub success: u64,
    /// Records that can never be stored in this stream (the stream is
    /// missing, the server refused them); each was dead-lettered or lost.
    pub failed: u64,
    /// Of the failed records, those now in the dead-letter stream.
    pub dead_lettered: u64,
    /// Of the failed records, those written to the local quarantine file
    /// (neither the stream nor the dead-letter stream would take them).
    pub quarantined: u64,
    pub dropped: DroppedSnapshot,
    /// Records whose append was retried, once per retry.
    pub retried: u64,
    /// Records replayed from the disk buffer at start. Those whose append
    /// was in flight at the crash may be stored twice (see ARCHITECTURE.md).
    pub replayed: u64,
    /// Records waiting (in memory or in the disk buffer) for an append.
    pub queuing: u64,
    /// Bytes of the records waiting.
    pub queuing_bytes: u64,
    /// Records in appends that have not returned yet.
    pub inflight: u64,
    /// Publish→stored latency histogram: counts per bucket of
    /// [`LATENCY_BUCKETS_MS`], then one for slower records.
    pub latency_buckets: Vec<u64>,
    pub latency_max_ms: u64,
    /// The latencies added up, for the histogram's `_sum` (a mean latency
    /// is `_sum / _count`).
    pub latency_sum_ms: u64,
}

impl StreamSnapshot {
    /// The latency under which `quantile` (0..=1) of the stored records were
    /// stored: the upper bound of the bucket it falls in (the observed
    /// maximum for the last bucket). `None` before the first record.
    pub(crate) fn latency_quantile_ms(&self, quantile: f64) -> Option<u64> {
        let total: u64 = self.latency_buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * quantile.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.latency_buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let bound = LATENCY_BUCKETS_MS
                    .get(index)
                    .copied()
                    .unwrap_or(self.latency_max_ms);
                return Some(bound.min(self.latency_max_ms.max(1)));
            }
        }
        Some(self.latency_max_ms)
    }
}

/// Dropped records by reason, with EMQX's names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DroppedSnapshot {
    /// The buffer was full (overflow policy drop-oldest).
    pub queue_full: u64,
    /// The request TTL passed before an append succeeded.
    pub expired: u64,
    /// The sink stopped before the record was appended.
    pub resource_stopped: u64,
}

impl DroppedSnapshot {
    pub(crate) fn total(&self) -> u64 {
        self.queue_full + self.expired + self.resource_stopped
    }
}

/// Everything the sink counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SinkMetrics {
    /// Per target stream (the dead-letter stream included), by name.
    pub streams: BTreeMap<String, StreamSnapshot>,
    /// Bytes of records held in memory, and the bound.
    pub memory_bytes: u64,
    pub memory_limit: u64,
    /// The disk buffer, when enabled.
    pub disk: Option<DiskSnapshot>,
}

/// The disk buffer's state and what its recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DiskSnapshot {
    /// Bytes of segment files, and the bound.
    pub bytes: u64,
    pub limit: u64,
    pub segments: u64,
    /// Records in the disk buffer not appended yet.
    pub records: u64,
    /// Segment files whose header was unreadable at start (renamed to
    /// `*.corrupt` and skipped).
    pub corrupt_segments: u64,
    /// Bytes skipped inside segments because they failed their checksum.
    pub corrupt_bytes: u64,
    /// Records found at start and appended again.
    pub replayed: u64,
    /// Of those, the ones whose Append was in flight at the crash: possible
    /// duplicates (the only ones).
    pub in_doubt: u64,
    /// Bytes cut from the end of segments that a crash left half-written.
    pub torn_bytes: u64,
}

/// The per-stream counters, created on first use.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    streams: RwLock<HashMap<Arc<str>, Arc<StreamMetrics>>>,
}

impl Registry {
    pub(crate) fn stream(&self, name: &str) -> Arc<StreamMetrics> {
        if let Some(metrics) = self
            .streams
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return metrics.clone();
        }
        self.streams
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.into())
            .or_default()
            .clone()
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<String, StreamSnapshot> {
        self.streams
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, metrics)| (name.to_string(), metrics.snapshot()))
            .collect()
    }
}

/// Whether the sink can reach HStreamDB, as EMQX names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectorState {
    /// Not checked successfully yet.
    Connecting,
    /// The last health check, or the last append, succeeded.
    Connected,
    /// The last health check failed, or appends are failing.
    Disconnected,
}

/// The connector status, updated by health checks and appends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectorStatus {
    pub state: ConnectorState,
    /// The last error seen by a check or an append, cleared by success.
    pub last_error: Option<String>,
    /// Target streams the last health check found missing.
    pub missing_streams: Vec<String>,
    /// When the last health check finished.
    pub checked_at: Option<SystemTime>,
}

impl Default for ConnectorStatus {
    fn default() -> Self {
        ConnectorStatus {
            state: ConnectorState::Connecting,
            last_error: None,
            missing_streams: Vec::new(),
            checked_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_keep_emqx_identity_and_latency_quantiles() {
        let metrics = StreamMetrics::default();
        for _ in 0..10 {
            metrics.matched(100);
        }
        metrics.inflight(3);
        for latency in [0, 3, 3, 40] {
            metrics.success(latency);
        }
        metrics.failed();
        metrics.dropped(DropReason::Expired);
        metrics.queued_bytes(-300);
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.matched, 10);
        assert_eq!(snapshot.queuing, 10 - 4 - 1 - 1 - 3);
        assert_eq!(snapshot.queuing_bytes, 700);
        assert_eq!(snapshot.dropped.total(), 1);
        assert_eq!(snapshot.latency_quantile_ms(0.5), Some(5));
        assert_eq!(snapshot.latency_quantile_ms(1.0), Some(40));
        assert_eq!(snapshot.latency_max_ms, 40);
        assert_eq!(StreamSnapshot::default().latency_quantile_ms(0.5), None);
    }
}
