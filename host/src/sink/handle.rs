//! `SinkHandle`: what the rest of weir may hold of a running sink — its
//! connector status, its metrics, the streams its health check watches and
//! what it quarantined.
//!
//! The gateway alone owns the `Sink` itself (its tasks, its disk buffer, its
//! shutdown); the admin API and the stream follower get a handle. A handle
//! keeps nothing of the sink running, so shutdown never waits for anyone to
//! let go of one.

use super::budget::ByteBudget;
use super::disk::DiskStats;
use super::metrics::{ConnectorStatus, Registry, SinkMetrics};
use super::quarantine::QuarantineError;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;

/// A cheap, cloneable view of a running sink.
#[derive(Debug, Clone)]
pub(crate) struct SinkHandle {
    pub(super) status: watch::Receiver<ConnectorStatus>,
    pub(super) targets: Arc<watch::Sender<Vec<Arc<str>>>>,
    pub(super) dead_letter_stream: Option<Arc<str>>,
    pub(super) registry: Arc<Registry>,
    pub(super) memory: Arc<ByteBudget>,
    /// The disk buffer's counters and byte budget, when it is enabled.
    pub(super) disk: Option<(Arc<DiskStats>, Arc<ByteBudget>)>,
    pub(super) quarantine_file: Arc<Path>,
}

impl SinkHandle {
    /// The connector status, updated by health checks and appends.
    pub(crate) fn status(&self) -> watch::Receiver<ConnectorStatus> {
        self.status.clone()
    }

    /// Tells the health check which streams the rules write to (call again
    /// when rules are reloaded); the dead-letter stream is always checked.
    pub(crate) fn set_targets<S: Into<Arc<str>>>(&self, streams: impl IntoIterator<Item = S>) {
        let mut names: Vec<Arc<str>> = streams.into_iter().map(Into::into).collect();
        names.extend(self.dead_letter_stream.clone());
        names.sort();
        names.dedup();
        self.targets.send_if_modified(|targets| {
            let changed = *targets != names;
            *targets = std::mem::take(&mut names);
            changed
        });
    }

    /// The local quarantine file, and every entry it holds, as `weir
    /// quarantine --json` shows them (blocking: it reads the file).
    pub(crate) fn quarantined(
        &self,
    ) -> (Arc<Path>, Result<Vec<serde_json::Value>, QuarantineError>) {
        let path = self.quarantine_file.clone();
        let entries = super::quarantine::read(&path);
        (path, entries)
    }

    /// Every counter, per stream, and the buffers' state.
    pub(crate) fn metrics(&self) -> SinkMetrics {
        SinkMetrics {
            streams: self.registry.snapshot(),
            memory_bytes: self.memory.used(),
            memory_limit: self.memory.limit(),
            disk: self
                .disk
                .as_ref()
                .map(|(stats, budget)| stats.snapshot(budget)),
        }
    }
}
