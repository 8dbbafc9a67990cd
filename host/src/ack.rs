//! Acknowledgement after store: the only thing that flows back up the
//! pipeline.
//!
//! Ingress creates one [`AckToken`] per received MQTT message and hands it to
//! the pipeline with the message's event. The rule stage takes one
//! [`AckShare`] per record it derives ([`AckToken::share`]) and, once it has
//! produced everything it will produce for the message, seals the token
//! ([`AckToken::seal`]). The sink resolves each share when its record is
//! stored, dead-lettered or failed for good. When the token is sealed and
//! every share is resolved the message is *complete*, and ingress
//! acknowledges it.
//!
//! A message that derives no record is complete as soon as it is sealed. A
//! share or token that is dropped without being resolved (the task holding it
//! died, or weir is shutting down) counts as *not stored*: losing the handle
//! must never look like success.
//!
//! ## Order
//!
//! MQTT requires acknowledgements of QoS 1/2 messages to go out in the order
//! the messages arrived on a connection (MQTT-4.6.0-2), while records
//! complete in any order (different streams, shards, retries). Each
//! connection keeps an `AckQueue` in arrival order; completion only marks a
//! message, and the connection's task releases the complete prefix of its
//! queue. Completing costs two atomic operations per share and one wake-up
//! per message; there is no lock on the per-record path.
//!
//! ## Policy for a message that was not stored
//!
//! A message's outcome is the worst outcome of its records: stored, then
//! dead-lettered, then quarantined, then not stored.
//!
//! - **Stored**, **dead-lettered** and **quarantined** messages are
//!   acknowledged: every record is in HStreamDB, in the dead-letter stream,
//!   or in the sink's local quarantine file (fsynced), so nothing is lost by
//!   letting the publisher forget it. A record that can never be stored
//!   (oversize, refused, its dead letter refused too) ends in quarantine
//!   after bounded retries, so it never turns into a redelivery loop.
//! - A **not stored** QoS 1/2 message is *never* acknowledged. Acknowledging
//!   it would turn a failure into silent loss; keeping the connection open
//!   without acknowledging it would stall that connection for ever (later
//!   acknowledgements must wait for it). So ingress stops acknowledging on
//!   that connection and closes it: the bridge reconnects after its backoff
//!   and the broker redelivers every unacknowledged message of a persistent
//!   session; a device connected to the listener resends after reconnecting.
//!   Redelivered messages are processed again (at-least-once; duplicates are
//!   possible, loss is not). With a clean session the broker drops what was in
//!   flight when the connection closes, so a bridge with a clean session
//!   acknowledges a not-stored message instead and counts it as lost: closing
//!   would lose more. At-least-once needs a persistent session.
//! - QoS 0 messages are never acknowledged; a not-stored QoS 0 message is
//!   counted as lost and logged.
//!
//! The sink is expected to retry transient failures itself and to dead-letter
//! or quarantine permanent ones; "not stored" is what is left: crashes,
//! shutdown, a request TTL that expired during an outage, or a quarantine
//! file that cannot be written.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::Notify;

/// What the sink reports for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Appended to HStreamDB (or durably written to the disk buffer).
    Stored,
    /// Could not be stored, and was written to the dead-letter destination.
    DeadLettered { reason: String },
    /// Could be stored neither in its stream nor in the dead-letter stream,
    /// and was written (fsynced) to the local quarantine file instead.
    Quarantined { reason: String },
    /// Could not be stored and was not dead-lettered: the record is lost
    /// unless its message is delivered again.
    Failed { reason: String },
}

/// The outcome of a whole message: the worst outcome of its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MessageOutcome {
    /// Every record was stored (or there were none).
    Stored,
    /// Every record was stored or dead-lettered, at least one dead-lettered.
    DeadLettered { reason: String },
    /// Every record was stored, dead-lettered or quarantined, at least one
    /// quarantined.
    Quarantined { reason: String },
    /// At least one record failed, or a share or the token was dropped
    /// without being resolved.
    NotStored { reason: String },
}

impl MessageOutcome {
    /// Whether the message may be acknowledged (see the module docs).
    #[cfg(test)]
    pub(crate) fn is_accounted_for(&self) -> bool {
        !matches!(self, MessageOutcome::NotStored { .. })
    }
}

const STORED: u8 = 0;
const DEAD_LETTERED: u8 = 1;
const QUARANTINED: u8 = 2;
const NOT_STORED: u8 = 3;

/// Message counts by outcome, shared by every group of one ingress.
#[derive(Debug, Default)]
struct Counters {
    stored: AtomicU64,
    dead_lettered: AtomicU64,
    quarantined: AtomicU64,
    not_stored: AtomicU64,
}

/// The state every token of one group shares: how many messages are not
/// complete yet (for the window) and a wake-up for the one task that
/// releases the group's acknowledgements.
#[derive(Debug, Default)]
struct Group {
    outstanding: AtomicUsize,
    /// The part of `outstanding` that waits for no acknowledgement (QoS 0).
    outstanding_unacknowledged: AtomicUsize,
    completed: Notify,
    counters: Arc<Counters>,
}

/// One message in flight.
#[derive(Debug)]
struct Message {
    /// Unresolved shares, plus one until the token is sealed.
    pending: AtomicUsize,
    worst: AtomicU8,
    dead_letter_reason: OnceLock<String>,
    not_stored_reason: OnceLock<String>,
    /// Whether an acknowledgement waits for this message (QoS 1/2); a QoS 0
    /// message only reports its outcome.
    acknowledged: bool,
    group: Arc<Group>,
}

impl Message {
    fn record(&self, outcome: RecordOutcome) {
        match outcome {
            RecordOutcome::Stored => {}
            RecordOutcome::DeadLettered { reason } => {
                self.worst.fetch_max(DEAD_LETTERED, Ordering::AcqRel);
                let _ = self.dead_letter_reason.set(reason);
            }
            RecordOutcome::Quarantined { reason } => {
                self.worst.fetch_max(QUARANTINED, Ordering::AcqRel);
                let _ = self.dead_letter_reason.set(reason);
            }
            RecordOutcome::Failed { reason } => {
                self.worst.fetch_max(NOT_STORED, Ordering::AcqRel);
                let _ = self.not_stored_reason.set(reason);
            }
        }
        self.release();
    }

    fn release(&self) {
        // AcqRel: the last releaser must see every outcome recorded by the
        // others before it publishes completion.
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.complete();
        }
    }

    fn complete(&self) {
        let group = &self.group;
        let counters = &group.counters;
        match self.worst.load(Ordering::Acquire) {
            STORED => counters.stored.fetch_add(1, Ordering::Relaxed),
            DEAD_LETTERED => counters.dead_lettered.fetch_add(1, Ordering::Relaxed),
            QUARANTINED => counters.quarantined.fetch_add(1, Ordering::Relaxed),
            _ => {
                if !self.acknowledged {
                    tracing::warn!(
                        reason = self.reason(),
                        "a QoS 0 message was not stored and is lost"
                    );
                }
                counters.not_stored.fetch_add(1, Ordering::Relaxed)
            }
        };
        group.outstanding.fetch_sub(1, Ordering::AcqRel);
        if !self.acknowledged {
            group
                .outstanding_unacknowledged
                .fetch_sub(1, Ordering::AcqRel);
        }
        // One task waits per group; if it is not waiting right now, the
        // stored permit wakes its next wait.
        group.completed.notify_one();
    }

    fn is_complete(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    fn reason(&self) -> &str {
        self.not_stored_reason
            .get()
            .or(self.dead_letter_reason.get())
            .map(String::as_str)
            .unwrap_or("")
    }

    fn outcome(&self) -> MessageOutcome {
        let reason = || self.reason().to_owned();
        match self.worst.load(Ordering::Acquire) {
            STORED => MessageOutcome::Stored,
            DEAD_LETTERED => MessageOutcome::DeadLettered { reason: reason() },
            QUARANTINED => MessageOutcome::Quarantined { reason: reason() },
            _ => MessageOutcome::NotStored { reason: reason() },
        }
    }
}

/// The rule stage's handle on one message. Take a share per derived record,
/// then seal. Dropping it unsealed marks the message not stored.
pub struct AckToken {
    message: Arc<Message>,
    sealed: bool,
}

impl AckToken {
    /// A share for one record derived from this message; the sink resolves it.
    pub fn share(&self) -> AckShare {
        // Relaxed is enough: the token's own count keeps `pending` above zero
        // while it lives, so this increment cannot race with completion.
        self.message.pending.fetch_add(1, Ordering::Relaxed);
        AckShare {
            message: Some(self.message.clone()),
        }
    }

    /// The rule stage has derived every record it will derive from this
    /// message. With no share outstanding the message completes now.
    pub fn seal(mut self) {
        self.sealed = true;
        self.message.release();
    }

    /// Whether a QoS 1/2 acknowledgement waits for this message.
    pub fn is_acknowledged(&self) -> bool {
        self.message.acknowledged
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if !self.sealed {
            self.message.record(RecordOutcome::Failed {
                reason: "the message was dropped before the rules finished with it".into(),
            });
        }
    }
}

impl fmt::Debug for AckToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckToken")
            .field("acknowledged", &self.message.acknowledged)
            .field("pending", &self.message.pending.load(Ordering::Relaxed))
            .finish()
    }
}

/// One record's part of a message's acknowledgement. Resolve it exactly once;
/// dropping it unresolved marks the message not stored. Cloning adds a share
/// (for a record that is written to two places).
pub struct AckShare {
    message: Option<Arc<Message>>,
}

impl AckShare {
    /// Reports what became of the record.
    pub fn resolve(mut self, outcome: RecordOutcome) {
        if let Some(message) = self.message.take() {
            message.record(outcome);
        }
    }

    /// The record was stored.
    pub fn stored(self) {
        self.resolve(RecordOutcome::Stored);
    }

    /// The record was written to the dead-letter destination instead.
    pub fn dead_lettered(self, reason: impl Into<String>) {
        self.resolve(RecordOutcome::DeadLettered {
            reason: reason.into(),
        });
    }

    /// The record was written to the local quarantine file instead.
    pub fn quarantined(self, reason: impl Into<String>) {
        self.resolve(RecordOutcome::Quarantined {
            reason: reason.into(),
        });
    }

    /// The record could not be stored and was not dead-lettered.
    pub fn failed(self, reason: impl Into<String>) {
        self.resolve(RecordOutcome::Failed {
            reason: reason.into(),
        });
    }
}

impl Clone for AckShare {
    fn clone(&self) -> Self {
        if let Some(message) = &self.message {
            // The share being cloned keeps `pending` above zero.
            message.pending.fetch_add(1, Ordering::Relaxed);
        }
        AckShare {
            message: self.message.clone(),
        }
    }
}

impl Drop for AckShare {
    fn drop(&mut self) {
        if let Some(message) = self.message.take() {
            message.record(RecordOutcome::Failed {
                reason: "a record was dropped before it was stored".into(),
            });
        }
    }
}

impl fmt::Debug for AckShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckShare")
            .field("resolved", &self.message.is_none())
            .finish()
    }
}

/// Message counts by completed outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckCounts {
    pub stored: u64,
    pub dead_lettered: u64,
    pub quarantined: u64,
    pub not_stored: u64,
}

/// The outcome counters of one ingress, shared by all its groups.
#[derive(Debug, Clone, Default)]
pub(crate) struct AckStats {
    counters: Arc<Counters>,
}

impl AckStats {
    pub(crate) fn counts(&self) -> AckCounts {
        AckCounts {
            stored: self.counters.stored.load(Ordering::Relaxed),
            dead_lettered: self.counters.dead_lettered.load(Ordering::Relaxed),
            quarantined: self.counters.quarantined.load(Ordering::Relaxed),
            not_stored: self.counters.not_stored.load(Ordering::Relaxed),
        }
    }
}

/// The tokens one task hands out (a bridge across its reconnects, or one
/// device connection): it bounds how many of them are outstanding and wakes
/// that task when one completes.
#[derive(Debug, Clone, Default)]
pub(crate) struct AckGroup {
    group: Arc<Group>,
}

impl AckGroup {
    pub(crate) fn new(stats: &AckStats) -> AckGroup {
        AckGroup {
            group: Arc::new(Group {
                counters: stats.counters.clone(),
                ..Group::default()
            }),
        }
    }

    /// A token for a QoS 0 message: nothing to acknowledge, but it counts
    /// as outstanding and reports loss.
    pub(crate) fn unacknowledged(&self) -> AckToken {
        self.group
            .outstanding_unacknowledged
            .fetch_add(1, Ordering::AcqRel);
        self.token(false)
    }

    fn token(&self, acknowledged: bool) -> AckToken {
        self.group.outstanding.fetch_add(1, Ordering::AcqRel);
        AckToken {
            message: Arc::new(Message {
                pending: AtomicUsize::new(1),
                worst: AtomicU8::new(STORED),
                dead_letter_reason: OnceLock::new(),
                not_stored_reason: OnceLock::new(),
                acknowledged,
                group: self.group.clone(),
            }),
            sealed: false,
        }
    }

    #[cfg(test)]
    fn stats(&self) -> AckStats {
        AckStats {
            counters: self.group.counters.clone(),
        }
    }

    /// Messages handed out and not complete yet.
    pub(crate) fn outstanding(&self) -> usize {
        self.group.outstanding.load(Ordering::Acquire)
    }

    /// QoS 0 messages handed out and not complete yet.
    pub(crate) fn outstanding_unacknowledged(&self) -> usize {
        self.group
            .outstanding_unacknowledged
            .load(Ordering::Acquire)
    }

    /// Waits until some message completes. A completion that happened since
    /// the last call is not missed.
    pub(crate) async fn completed(&self) {
        self.group.completed.notified().await;
    }
}

/// A message at the head of a connection's queue that is complete: send its
/// acknowledgement `action` if `outcome` allows.
#[derive(Debug)]
pub(crate) struct Released<A> {
    pub(crate) action: A,
    pub(crate) outcome: MessageOutcome,
}

/// The QoS 1/2 messages of one connection in arrival order, each with the
/// acknowledgement to send once it is complete (a packet id, for instance).
#[derive(Debug)]
pub(crate) struct AckQueue<A> {
    group: AckGroup,
    queue: VecDeque<(Arc<Message>, A)>,
}

impl<A> AckQueue<A> {
    pub(crate) fn new(group: AckGroup) -> AckQueue<A> {
        AckQueue {
            group,
            queue: VecDeque::new(),
        }
    }

    /// Tracks a newly received QoS 1/2 message whose acknowledgement is
    /// `action`.
    pub(crate) fn push(&mut self, action: A) -> AckToken {
        let token = self.group.token(true);
        self.queue.push_back((token.message.clone(), action));
        token
    }

    /// Takes the oldest message if it is complete. Call until `None` after
    /// every [`AckGroup::completed`] wake-up; later complete messages wait
    /// behind an incomplete older one, as MQTT's ordering requires.
    pub(crate) fn pop_complete(&mut self) -> Option<Released<A>> {
        let (message, _) = self.queue.front()?;
        if !message.is_complete() {
            return None;
        }
        let (message, action) = self.queue.pop_front()?;
        Some(Released {
            action,
            outcome: message.outcome(),
        })
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn released(queue: &mut AckQueue<u16>) -> Vec<(u16, MessageOutcome)> {
        std::iter::from_fn(|| queue.pop_complete())
            .map(|r| (r.action, r.outcome))
            .collect()
    }

    #[test]
    fn a_message_without_records_completes_when_sealed() {
        let group = AckGroup::default();
        let mut queue = AckQueue::new(group.clone());
        let token = queue.push(1);
        assert!(released(&mut queue).is_empty(), "not sealed yet");
        assert_eq!(group.outstanding(), 1);
        token.seal();
        assert_eq!(released(&mut queue), vec![(1, MessageOutcome::Stored)]);
        assert_eq!(group.outstanding(), 0);
        assert_eq!(group.stats().counts().stored, 1);
    }

    #[test]
    fn completes_only_when_sealed_and_every_share_is_resolved() {
        let mut queue = AckQueue::new(AckGroup::default());
        let token = queue.push(7);
        let a = token.share();
        let b = token.share();
        a.stored();
        assert!(released(&mut queue).is_empty());
        token.seal();
        assert!(released(&mut queue).is_empty(), "one share is unresolved");
        let c = b.clone();
        b.stored();
        assert!(released(&mut queue).is_empty(), "the clone is unresolved");
        c.stored();
        assert_eq!(released(&mut queue), vec![(7, MessageOutcome::Stored)]);
    }

    #[test]
    fn out_of_order_completions_are_released_in_arrival_order() {
        let mut queue = AckQueue::new(AckGroup::default());
        let tokens: Vec<_> = (1..=4).map(|pkid| queue.push(pkid)).collect();
        let shares: Vec<_> = tokens.iter().map(AckToken::share).collect();
        tokens.into_iter().for_each(AckToken::seal);
        let mut shares: Vec<_> = shares.into_iter().map(Some).collect();
        let mut resolve = |i: usize| shares[i].take().expect("share").stored();

        resolve(3);
        resolve(1);
        assert!(released(&mut queue).is_empty(), "message 1 is still open");
        resolve(0);
        let first: Vec<u16> = released(&mut queue).into_iter().map(|r| r.0).collect();
        assert_eq!(first, vec![1, 2], "4 waits for 3");
        resolve(2);
        let rest: Vec<u16> = released(&mut queue).into_iter().map(|r| r.0).collect();
        assert_eq!(rest, vec![3, 4]);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_dropped_share_is_not_stored() {
        let group = AckGroup::default();
        let mut queue = AckQueue::new(group.clone());
        let token = queue.push(1);
        let share = token.share();
        token.seal();
        drop(share);
        let out = released(&mut queue);
        assert!(matches!(
            &out[..],
            [(1, MessageOutcome::NotStored { reason })] if reason.contains("dropped")
        ));
        assert!(!out[0].1.is_accounted_for());
        assert_eq!(group.stats().counts().not_stored, 1);
    }

    #[test]
    fn a_dropped_token_is_not_stored_even_if_its_shares_were() {
        let mut queue = AckQueue::new(AckGroup::default());
        let token = queue.push(1);
        token.share().stored();
        drop(token);
        assert!(matches!(
            &released(&mut queue)[..],
            [(1, MessageOutcome::NotStored { .. })]
        ));
    }

    #[test]
    fn the_worst_record_outcome_wins() {
        let mut queue = AckQueue::new(AckGroup::default());
        let dead = queue.push(1);
        dead.share().dead_lettered("bad json");
        dead.share().stored();
        dead.seal();
        let failed = queue.push(2);
        failed.share().failed("stream gone");
        failed.share().dead_lettered("bad json");
        failed.seal();
        assert_eq!(
            released(&mut queue),
            vec![
                (
                    1,
                    MessageOutcome::DeadLettered {
                        reason: "bad json".into()
                    }
                ),
                (
                    2,
                    MessageOutcome::NotStored {
                        reason: "stream gone".into()
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_quarantined_record_is_acknowledged_and_ranks_between_dead_lettered_and_not_stored() {
        let group = AckGroup::default();
        let mut queue = AckQueue::new(group.clone());
        let quarantined = queue.push(1);
        quarantined.share().dead_lettered("refused");
        quarantined
            .share()
            .quarantined("refused; and the dead-letter stream too");
        quarantined.seal();
        let failed = queue.push(2);
        failed.share().quarantined("oversize");
        failed.share().failed("expired");
        failed.seal();
        let out = released(&mut queue);
        assert_eq!(
            out[0],
            (
                1,
                MessageOutcome::Quarantined {
                    reason: "refused".into()
                }
            )
        );
        assert!(out[0].1.is_accounted_for(), "quarantined is acknowledged");
        assert!(matches!(out[1], (2, MessageOutcome::NotStored { .. })));
        let counts = group.stats().counts();
        assert_eq!((counts.quarantined, counts.not_stored), (1, 1));
    }

    #[test]
    fn qos0_tokens_acknowledge_nothing_but_report_loss() {
        let group = AckGroup::default();
        let mut queue = AckQueue::new(group.clone());
        let acknowledged = queue.push(1);
        let token = group.unacknowledged();
        assert!(!token.is_acknowledged());
        let share = token.share();
        token.seal();
        assert_eq!(group.outstanding(), 2);
        assert_eq!(group.outstanding_unacknowledged(), 1, "QoS 0 on its own");
        drop(share);
        assert_eq!(group.outstanding(), 1);
        assert_eq!(group.outstanding_unacknowledged(), 0);
        assert_eq!(group.stats().counts().not_stored, 1);
        acknowledged.seal();
        assert_eq!(group.outstanding_unacknowledged(), 0);
    }

    #[test]
    fn shares_resolved_on_other_threads_complete_once() {
        let group = AckGroup::default();
        let mut queue = AckQueue::new(group.clone());
        let token = queue.push(9);
        let shares: Vec<_> = (0..64).map(|_| token.share()).collect();
        token.seal();
        let threads: Vec<_> = shares
            .into_iter()
            .map(|s| std::thread::spawn(move || s.stored()))
            .collect();
        for t in threads {
            t.join().expect("resolver thread");
        }
        assert_eq!(released(&mut queue), vec![(9, MessageOutcome::Stored)]);
        assert_eq!(group.stats().counts().stored, 1);
        assert_eq!(group.outstanding(), 0);
    }

    #[tokio::test]
    async fn the_window_counts_outstanding_messages_of_every_qos() {
        let group = AckGroup::default();
        let mut queue = AckQueue::new(group.clone());
        let first = queue.push(1);
        let _second = queue.push(2);
        let _third = group.unacknowledged();
        assert_eq!(group.outstanding(), 3);
        // Whoever waits for room is woken by a completion, here on another
        // task, and then sees one message fewer.
        let waiter = tokio::spawn({
            let group = group.clone();
            async move {
                while group.outstanding() >= 3 {
                    group.completed().await;
                }
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        std::thread::spawn(move || first.seal())
            .join()
            .expect("sealing thread");
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken by the completion")
            .expect("waiter task");
        assert_eq!(group.outstanding(), 2);
    }

    #[tokio::test]
    async fn completion_wakes_a_waiter_registered_later() {
        let group = AckGroup::default();
        let mut queue = AckQueue::new(group.clone());
        queue.push(1).seal();
        // The completion happened before anyone waited: the stored wake-up
        // still arrives.
        tokio::time::timeout(Duration::from_secs(10), group.completed())
            .await
            .expect("a stored wake-up");
        assert!(queue.pop_complete().is_some());
    }
}
