//! The broker's own count of messages it dropped, read so that weir can say
//! when data is lost before it ever reaches weir.
//!
//! In a share group, a member that falls behind or dies has its share queued
//! by the broker, and mosquitto drops QoS 1 messages silently (the publisher
//! already has its PUBACK) once a session's queue passes
//! `max_queued_messages`. weir cannot read that limit (mosquitto's `$SYS`
//! tree has counters, not configuration), but it can read the counter of what
//! was dropped: `$SYS/broker/publish/messages/dropped`, which mosquitto
//! publishes retained every `sys_interval`. A value at subscribe time means
//! the broker has already dropped messages; a rise means it just did.

/// mosquitto's counter of messages dropped at a queue limit.
pub(super) const TOPIC: &str = "$SYS/broker/publish/messages/dropped";

/// What one reading of the counter means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reading {
    /// The first reading, and the broker has dropped `total` messages since
    /// it started.
    AlreadyDropped { total: u64 },
    /// `more` were dropped since the last reading.
    Dropped { more: u64, total: u64 },
    /// Nothing new, or a payload that is not a count (`malformed`).
    Quiet { malformed: bool },
}

/// The last value seen, per connection to the broker.
#[derive(Debug, Default)]
pub(super) struct BrokerDrops {
    last: Option<u64>,
}

impl BrokerDrops {
    /// Reads one message of [`TOPIC`].
    pub(super) fn observe(&mut self, payload: &[u8]) -> Reading {
        let Some(total) = std::str::from_utf8(payload)
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
        else {
            return Reading::Quiet { malformed: true };
        };
        // A broker restart resets the counter; the new value is then a
        // first reading again.
        let reading = match self.last {
            None if total > 0 => Reading::AlreadyDropped { total },
            Some(last) if total > last => Reading::Dropped {
                more: total - last,
                total,
            },
            Some(last) if total < last && total > 0 => Reading::AlreadyDropped { total },
            _ => Reading::Quiet { malformed: false },
        };
        self.last = Some(total);
        reading
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_count_and_every_rise_are_reported_and_nothing_else() {
        let mut drops = BrokerDrops::default();
        assert_eq!(drops.observe(b"0"), Reading::Quiet { malformed: false });
        assert_eq!(drops.observe(b"0"), Reading::Quiet { malformed: false });
        assert_eq!(
            drops.observe(b"15"),
            Reading::Dropped {
                more: 15,
                total: 15
            }
        );
        assert_eq!(drops.observe(b"15"), Reading::Quiet { malformed: false });
        assert_eq!(drops.observe(b"x"), Reading::Quiet { malformed: true });
        assert_eq!(
            drops.observe(b"20"),
            Reading::Dropped { more: 5, total: 20 }
        );
        // The broker restarted with drops of its own already.
        assert_eq!(drops.observe(b"3"), Reading::AlreadyDropped { total: 3 });
    }

    #[test]
    fn a_broker_that_dropped_before_weir_came_is_reported_at_once() {
        let mut drops = BrokerDrops::default();
        assert_eq!(
            drops.observe(b"1619\n"),
            Reading::AlreadyDropped { total: 1619 }
        );
        assert_eq!(drops.observe(b"1619"), Reading::Quiet { malformed: false });
    }
}
