//! A byte budget: the bound on the sink's buffers, and what makes senders
//! wait under backpressure.
//!
//! A semaphore counted in bytes, with two differences from tokio's: a
//! record larger than the whole budget is let through when nothing else is
//! held (so it cannot wait for ever), and bytes can be taken beyond the
//! limit without waiting (records found in the disk buffer at start, and
//! drop-oldest, which makes room after the fact).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Notify;

#[derive(Debug)]
pub(crate) struct ByteBudget {
    limit: u64,
    used: AtomicU64,
    freed: Notify,
}

impl ByteBudget {
    pub(crate) fn new(limit: u64) -> Arc<Self> {
        Arc::new(ByteBudget {
            limit,
            used: AtomicU64::new(0),
            freed: Notify::new(),
        })
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    pub(crate) fn is_over(&self) -> bool {
        self.used() > self.limit
    }

    /// Takes `bytes` if they fit (or if nothing is held), without waiting.
    pub(crate) fn try_take(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used == 0 || used.saturating_add(bytes) <= self.limit)
                    .then(|| used.saturating_add(bytes))
            })
            .is_ok()
    }

    /// Takes `bytes`, waiting until they fit.
    pub(crate) async fn take(&self, bytes: u64) {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a release between the check
            // and the wait is not missed.
            freed.as_mut().enable();
            if self.try_take(bytes) {
                return;
            }
            freed.await;
        }
    }

    /// Takes `bytes` even beyond the limit.
    pub(crate) fn force_take(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
    }

    pub(crate) fn give_back(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
        self.freed.notify_waiters();
    }
}

/// Bytes held from a budget until dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    budget: Arc<ByteBudget>,
    bytes: u64,
}

impl Permit {
    /// Wraps bytes already taken from `budget`.
    pub(crate) fn taken(budget: &Arc<ByteBudget>, bytes: u64) -> Permit {
        Permit {
            budget: budget.clone(),
            bytes,
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn oversized_takes_pass_only_when_empty() {
        let budget = ByteBudget::new(100);
        assert!(budget.try_take(60));
        assert!(!budget.try_take(50));
        assert!(budget.try_take(40));
        budget.give_back(100);
        assert!(budget.try_take(500), "alone, a large record passes");
        assert!(!budget.try_take(1));
        assert!(budget.is_over());
        budget.give_back(500);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn a_waiting_take_resumes_when_bytes_are_given_back() {
        let budget = ByteBudget::new(100);
        budget.force_take(100);
        let held = Permit::taken(&budget, 100);
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.take(30).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "no room yet");
        drop(held);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken by the release")
            .expect("waiter task");
        assert_eq!(budget.used(), 30);
    }
}
