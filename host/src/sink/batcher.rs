//! One shard's queue and the rule that closes its batches: a record count, a
//! byte size, or a linger time since the oldest queued record arrived,
//! whichever comes first, and only while the shard's in-flight window has
//! room. With `send_when_idle`, a shard with nothing in flight sends at
//! once: lingering there only adds latency, and under load records queue
//! behind the batch in flight anyway, so batches still fill.

use super::Item;
use std::collections::VecDeque;
use tokio::time::{Duration, Instant};

/// When batches close.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchRule {
    pub(crate) max_records: usize,
    pub(crate) max_bytes: usize,
    pub(crate) linger: Duration,
    pub(crate) send_when_idle: bool,
    pub(crate) window: usize,
}

/// The records queued for one shard, oldest first, and its batches in
/// flight.
#[derive(Debug, Default)]
pub(crate) struct Lane {
    queue: VecDeque<Item>,
    bytes: usize,
    pub(crate) inflight: usize,
}

impl Lane {
    pub(crate) fn push(&mut self, item: Item) {
        self.bytes += item.bytes;
        self.queue.push_back(item);
    }

    /// Puts back records of a batch that came back unappended, in arrival
    /// order among the records queued since (with several batches in
    /// flight, batches may come back in any order).
    pub(crate) fn put_back(&mut self, items: Vec<Item>) {
        self.bytes += items.iter().map(|item| item.bytes).sum::<usize>();
        let queued = std::mem::take(&mut self.queue);
        let mut merged = VecDeque::with_capacity(queued.len() + items.len());
        let mut returned = items.into_iter().peekable();
        let mut queued = queued.into_iter().peekable();
        loop {
            let take_returned = match (returned.peek(), queued.peek()) {
                (Some(back), Some(next)) => back.order < next.order,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let item = if take_returned {
                returned.next()
            } else {
                queued.next()
            };
            merged.extend(item);
        }
        self.queue = merged;
    }

    pub(crate) fn pop_front(&mut self) -> Option<Item> {
        let item = self.queue.pop_front()?;
        self.bytes -= item.bytes;
        Some(item)
    }

    pub(crate) fn front(&self) -> Option<&Item> {
        self.queue.front()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Takes every queued record, oldest first.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Item> + '_ {
        self.bytes = 0;
        self.queue.drain(..)
    }

    /// Whether a batch should be sent now. `flushing` ignores the linger
    /// time (shutdown).
    pub(crate) fn ready(&self, rule: &BatchRule, now: Instant, flushing: bool) -> bool {
        let Some(oldest) = self.queue.front() else {
            return false;
        };
        self.inflight < rule.window
            && (flushing
                || self.queue.len() >= rule.max_records
                || self.bytes >= rule.max_bytes
                || (rule.send_when_idle && self.inflight == 0)
                || now >= oldest.received + rule.linger)
    }

    /// When the lane becomes ready by linger alone, if it can send at all
    /// (an idle lane that sends when idle is ready already).
    pub(crate) fn linger_deadline(&self, rule: &BatchRule) -> Option<Instant> {
        let oldest = self.queue.front().filter(|_| self.inflight < rule.window)?;
        if rule.send_when_idle && self.inflight == 0 {
            return Some(oldest.received);
        }
        Some(oldest.received + rule.linger)
    }

    /// Takes the next batch: records in order up to the count and the byte
    /// size (a single record larger than the size goes alone).
    pub(crate) fn take_batch(&mut self, rule: &BatchRule) -> Vec<Item> {
        let mut batch = Vec::with_capacity(self.queue.len().min(rule.max_records));
        let mut bytes = 0;
        while let Some(next) = self.queue.front() {
            if batch.len() >= rule.max_records
                || (!batch.is_empty() && bytes + next.bytes > rule.max_bytes)
            {
                break;
            }
            bytes += next.bytes;
            if let Some(item) = self.pop_front() {
                batch.push(item);
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests;
