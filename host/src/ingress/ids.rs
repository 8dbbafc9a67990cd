//! Identities and times an ingress stamps on each event: message ids that
//! sort by arrival and never collide across processes, and the event clock.

use crate::event::MessageId;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Makes [`MessageId`]s: microseconds since the epoch in the high 64 bits
/// (ids sort by arrival, like EMQX's), a random per-process salt (distinct
/// weir processes do not collide), and a counter (distinct messages in the
/// same microsecond do not collide).
#[derive(Debug)]
pub(crate) struct MessageIds {
    salt: u32,
    next: AtomicU32,
}

impl MessageIds {
    pub(crate) fn new() -> MessageIds {
        // RandomState is seeded from the OS's randomness.
        let salt = RandomState::new().hash_one(std::process::id()) as u32;
        MessageIds {
            salt,
            next: AtomicU32::new(0),
        }
    }

    pub(crate) fn next(&self) -> MessageId {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or_default();
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        MessageId((u128::from(micros) << 64) | (u128::from(self.salt) << 32) | u128::from(seq))
    }
}

/// Milliseconds since the Unix epoch, the unit of every event time.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_unique_and_ordered() {
        let ids = MessageIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert!(a.0 >> 64 <= b.0 >> 64);
        assert_eq!(a.to_string().len(), 32);
    }
}
