//! Which topic each message goes to, and so which partition key its record
//! gets: the seed rule keys records by `${topic}`, and HStreamDB hashes the
//! key to a shard. By default one topic per publisher connection; with
//! `--keys K` the messages are spread over K topics, so that many shards
//! each see many keys, as a fleet of devices makes them.

use crate::mqtt::quota;

/// The topics of a run's publishers.
#[derive(Debug, Clone)]
pub(crate) struct Topics {
    /// Every topic starts `<prefix>/`; the rules scenario moves it under
    /// the one filter that should match.
    prefix: String,
    connections: usize,
    /// Distinct topics in all, or `None` for one per connection.
    keys: Option<u64>,
}

/// The prefix of every benchmark topic: under [`crate::mqtt::FILTER`].
pub(crate) const PREFIX: &str = "t/bench";

impl Topics {
    /// Fails when `keys` is fewer than `connections`: every connection
    /// needs keys of its own, or the count of distinct keys would not be K.
    pub(crate) fn new(
        prefix: &str,
        connections: usize,
        keys: Option<u64>,
    ) -> anyhow::Result<Topics> {
        if let Some(k) = keys
            && k < connections as u64
        {
            anyhow::bail!(
                "--keys {k} is fewer than --connections {connections}: each connection publishes to keys of its own"
            );
        }
        Ok(Topics {
            prefix: prefix.to_owned(),
            connections,
            keys,
        })
    }

    /// The topic of the `j`-th message of connection `c`. With K keys,
    /// connection `c` owns the keys `k < K` with `k % C == c` and goes
    /// round them, so every key gets messages and no two connections share
    /// one (a key's records then keep their order, as a device's do).
    pub(crate) fn topic(&self, c: usize, j: u64) -> String {
        match self.keys {
            None => format!("{}/{c}", self.prefix),
            Some(keys) => {
                let owned = quota(keys, self.connections, c).max(1);
                let key = c as u64 + self.connections as u64 * (j % owned);
                format!("{}/{c}/{key}", self.prefix)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn k_keys_are_exactly_k_topics_none_shared_between_connections() {
        for (connections, keys) in [(4, 4), (4, 10), (3, 100), (4, 1000)] {
            let topics = Topics::new(PREFIX, connections, Some(keys)).expect("valid");
            let mut seen = HashSet::new();
            for c in 0..connections {
                // Two rounds over the keys each connection owns.
                for j in 0..2 * keys {
                    let topic = topics.topic(c, j);
                    assert!(topic.starts_with(&format!("t/bench/{c}/")), "{topic}");
                    seen.insert(topic);
                }
            }
            assert_eq!(seen.len() as u64, keys, "{connections} connections");
        }
    }

    #[test]
    fn without_keys_each_connection_has_one_topic() {
        let topics = Topics::new("t/bench/r0", 2, None).expect("valid");
        assert_eq!(topics.topic(1, 0), "t/bench/r0/1");
        assert_eq!(topics.topic(1, 99), "t/bench/r0/1");
    }

    #[test]
    fn fewer_keys_than_connections_are_refused() {
        let error = Topics::new(PREFIX, 4, Some(3)).expect_err("refused");
        assert!(error.to_string().contains("--keys 3"), "{error}");
    }
}
