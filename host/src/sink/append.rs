//! One batch's journey to HStreamDB: encode once, append, and retry as the
//! error calls for, until it is appended, has to go back to the dispatcher
//! (its shard is gone, its TTL passed) or cannot be stored at all.
//!
//! The batch stays in flight during its retries, so a shard with an
//! in-flight window of 1 sends nothing else meanwhile: that is what keeps
//! the records of a key in order through an outage.

use super::Item;
use super::client::{Client, Compression};
use super::metrics::{ConnectorState, ConnectorStatus};
use super::retry::{Backoff, Failure, classify};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;
use tokio::time::{Duration, Instant};
use weir_proto::keyspace::ShardMap;
use weir_proto::pb::BatchedRecord;

/// What every append task shares.
#[derive(Debug)]
pub(crate) struct AppendContext {
    pub(crate) client: Client,
    pub(crate) compression: Compression,
    pub(crate) backoff: Backoff,
    /// Give up on a record this long after it entered the sink; `None`
    /// with the disk buffer, whose records never expire.
    pub(crate) ttl: Option<Duration>,
    /// How many more times a record refused on its own is sent again.
    pub(crate) poison_retries: u32,
    pub(crate) status: watch::Sender<ConnectorStatus>,
    /// Whether the last append failed; the health check does not call the
    /// connector connected while appends fail.
    pub(crate) failing: Arc<AtomicBool>,
}

impl AppendContext {
    fn report(&self, error: Option<String>) {
        self.failing.store(error.is_some(), Ordering::Relaxed);
        self.status.send_if_modified(|status| {
            let state = match error {
                None => ConnectorState::Connected,
                Some(_) => ConnectorState::Disconnected,
            };
            let changed = status.state != state || status.last_error != error;
            status.state = state;
            status.last_error = error.clone();
            changed
        });
    }
}

/// Why records came back unappended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Returned {
    /// The shard no longer exists: route the records again.
    ShardGone,
    /// The request TTL passed while retrying.
    Expired(String),
}

/// What became of a batch.
#[derive(Debug)]
pub(crate) struct BatchReport {
    pub(crate) stream: Arc<str>,
    pub(crate) shard: u64,
    /// Records in the batch when it was sent.
    pub(crate) records: usize,
    pub(crate) appended: Vec<Item>,
    /// Records that can never be stored in this stream, with the kind of
    /// refusal (`dead_letter::ATTR_KIND`) and the reason.
    pub(crate) rejected: Vec<(Item, &'static str, String)>,
    /// The stream turned out not to exist.
    pub(crate) stream_missing: bool,
    pub(crate) returned: Vec<Item>,
    pub(crate) why_returned: Option<Returned>,
}

/// How one append attempt sequence ended.
enum Sent {
    Appended,
    ShardGone,
    StreamMissing(String),
    Permanent(String),
    Expired(String),
}

pub(crate) async fn run(
    context: Arc<AppendContext>,
    stream: Arc<str>,
    shard: u64,
    mut map: Arc<ShardMap>,
    items: Vec<Item>,
) -> BatchReport {
    let deadline = context.ttl.and_then(|ttl| {
        let oldest = items.iter().map(|item| item.received).min()?;
        Some(oldest + ttl)
    });
    let mut report = BatchReport {
        stream: stream.clone(),
        shard,
        records: items.len(),
        appended: Vec::new(),
        rejected: Vec::new(),
        stream_missing: false,
        returned: Vec::new(),
        why_returned: None,
    };
    let mut pending = items.into_iter();
    let mut batch: Vec<Item> = pending.by_ref().collect();
    // After a permanent failure the records are sent one by one, so that
    // one bad record does not take the good ones with it.
    let mut one_by_one = false;
    loop {
        let sent = send(&context, &stream, shard, &mut map, &batch, deadline).await;
        match sent {
            Sent::Appended => report.appended.append(&mut batch),
            Sent::Permanent(reason) if batch.len() > 1 => {
                tracing::warn!(%stream, shard, %reason, records = batch.len(), "a batch was refused; sending its records one by one");
                one_by_one = true;
                pending = batch.into_iter().collect::<Vec<_>>().into_iter();
            }
            Sent::Permanent(reason) => {
                report.rejected.extend(
                    batch
                        .drain(..)
                        .map(|item| (item, "refused", reason.clone())),
                );
            }
            Sent::StreamMissing(reason) => {
                report.stream_missing = true;
                report.rejected.extend(
                    batch
                        .drain(..)
                        .chain(pending.by_ref())
                        .map(|item| (item, "stream_missing", reason.clone())),
                );
            }
            Sent::ShardGone => {
                report.returned = batch.drain(..).chain(pending.by_ref()).collect();
                report.why_returned = Some(Returned::ShardGone);
            }
            Sent::Expired(reason) => {
                report.returned = batch.drain(..).chain(pending.by_ref()).collect();
                report.why_returned = Some(Returned::Expired(reason));
            }
        }
        batch = if one_by_one {
            pending.next().into_iter().collect()
        } else {
            Vec::new()
        };
        if batch.is_empty() {
            return report;
        }
    }
}

async fn send(
    context: &AppendContext,
    stream: &str,
    shard: u64,
    map: &mut Arc<ShardMap>,
    items: &[Item],
    deadline: Option<Instant>,
) -> Sent {
    let records = items.iter().map(|item| &item.record);
    let batch: BatchedRecord = match weir_proto::record::encode_batch(records, context.compression)
    {
        Ok(batch) => batch,
        Err(error) => return Sent::Permanent(format!("cannot encode the batch: {error}")),
    };
    let mut attempt = 0;
    let mut refusals = 0;
    loop {
        let error = match context
            .client
            .append_batch(stream, shard, batch.clone())
            .await
        {
            Ok(_) => {
                context.report(None);
                return Sent::Appended;
            }
            Err(error) => error,
        };
        match classify(&error) {
            Failure::StreamMissing => return Sent::StreamMissing(error.to_string()),
            // A record refused on its own is sent a bounded number of times
            // more: the refusal may be a server's passing failure.
            Failure::Permanent if items.len() == 1 && refusals < context.poison_retries => {
                refusals += 1;
            }
            Failure::Permanent => return Sent::Permanent(error.to_string()),
            Failure::ShardGone => {
                context.client.invalidate_if_current(stream, map);
                match context.client.shards(stream).await {
                    Ok(fresh) if !fresh.shard_ids().any(|id| id == shard) => {
                        return Sent::ShardGone;
                    }
                    // Still there: the store was briefly unavailable.
                    Ok(fresh) => *map = fresh,
                    Err(lookup) if lookup.is_stream_missing() => {
                        return Sent::StreamMissing(lookup.to_string());
                    }
                    Err(_) => {}
                }
            }
            Failure::Retriable => {}
        }
        context.report(Some(error.to_string()));
        if let Some(metrics) = items.first().map(|item| &item.metrics) {
            metrics.retried(items.len());
        }
        let mut delay = context.backoff.delay(attempt);
        attempt = attempt.saturating_add(1);
        if let Some(deadline) = deadline {
            // The last try is made at the deadline, not a backoff before
            // it: an outage shorter than the TTL must not expire anything.
            let now = Instant::now();
            if now >= deadline {
                return Sent::Expired(format!(
                    "no successful append within the request TTL; last error: {error}"
                ));
            }
            delay = delay.min(deadline - now);
        }
        tracing::debug!(stream, shard, %error, ?delay, "retrying an append");
        tokio::time::sleep(delay).await;
    }
}
