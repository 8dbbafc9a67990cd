//! The partition-key space: how HStreamDB maps a key to a shard.
//!
//! A key is hashed with MD5 and the digest read as a big-endian 128-bit
//! integer. A stream of `n` shards divides `0..=u128::MAX` into `n` contiguous
//! inclusive ranges, carried on the wire as decimal strings. The empty key is
//! the default key and hashes like any other string, exactly as the official
//! clients do.

use md5::{Digest, Md5};
use std::fmt;

/// The MD5 hash of a partition key as HStreamDB interprets it.
pub fn hash_key(key: &str) -> u128 {
    let digest: [u8; 16] = Md5::digest(key.as_bytes()).into();
    u128::from_be_bytes(digest)
}

/// An inclusive range of the key space owned by one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HashRange {
    pub start: u128,
    pub end: u128,
}

impl HashRange {
    /// Parses the decimal bounds of a `Shard` message.
    pub fn parse(start: &str, end: &str) -> Result<Self, KeySpaceError> {
        let parse = |text: &str| {
            text.trim()
                .parse::<u128>()
                .map_err(|_| KeySpaceError::BadBound(text.to_owned()))
        };
        let range = HashRange {
            start: parse(start)?,
            end: parse(end)?,
        };
        if range.start > range.end {
            return Err(KeySpaceError::EmptyRange {
                start: range.start,
                end: range.end,
            });
        }
        Ok(range)
    }

    pub fn contains(&self, hash: u128) -> bool {
        self.start <= hash && hash <= self.end
    }

    /// The bounds as the decimal strings a `Shard` message carries.
    pub fn to_wire(self) -> (String, String) {
        (self.start.to_string(), self.end.to_string())
    }
}

impl fmt::Display for HashRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..={}", self.start, self.end)
    }
}

/// Divides the key space into `shard_count` ranges the way HStreamDB does when
/// it creates a stream: each range is `(u128::MAX / n)` wide and the last one
/// absorbs the remainder, so the ranges cover the whole space without gaps.
pub fn divide_key_space(shard_count: u32) -> Result<Vec<HashRange>, KeySpaceError> {
    if shard_count == 0 {
        return Err(KeySpaceError::NoShards);
    }
    let n = u128::from(shard_count);
    let width = u128::MAX / n;
    Ok((0..n)
        .map(|i| HashRange {
            start: i * width,
            end: if i + 1 == n {
                u128::MAX
            } else {
                i * width + width - 1
            },
        })
        .collect())
}

/// The shards of one stream, ordered by range so a key is found by binary
/// search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardMap {
    shards: Vec<(HashRange, u64)>,
}

impl ShardMap {
    /// Builds the map from `(range, shard id)` pairs; the ranges must not
    /// overlap.
    pub fn new(mut shards: Vec<(HashRange, u64)>) -> Result<Self, KeySpaceError> {
        shards.sort_unstable();
        if let Some(pair) = shards.windows(2).find(|w| w[0].0.end >= w[1].0.start) {
            return Err(KeySpaceError::Overlap {
                first: pair[0].1,
                second: pair[1].1,
            });
        }
        Ok(ShardMap { shards })
    }

    /// The shard that owns `key`, or `None` when the ranges leave a gap there.
    pub fn shard_for_key(&self, key: &str) -> Option<u64> {
        // A stream of one shard (the default) owns every key: no hash needed.
        if let [(range, id)] = self.shards.as_slice()
            && range.start == 0
            && range.end == u128::MAX
        {
            return Some(*id);
        }
        self.shard_for_hash(hash_key(key))
    }

    pub fn shard_for_hash(&self, hash: u128) -> Option<u64> {
        let index = self.shards.partition_point(|(range, _)| range.end < hash);
        self.shards
            .get(index)
            .filter(|(range, _)| range.contains(hash))
            .map(|(_, id)| *id)
    }

    pub fn shard_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.shards.iter().map(|(_, id)| *id)
    }

    pub fn len(&self) -> usize {
        self.shards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeySpaceError {
    #[error("a stream needs at least one shard")]
    NoShards,
    #[error("hash range bound {0:?} is not a decimal 128-bit integer")]
    BadBound(String),
    #[error("hash range {start}..={end} is empty (start is above end)")]
    EmptyRange { start: u128, end: u128 },
    #[error("the hash ranges of shards {first} and {second} overlap")]
    Overlap { first: u64, second: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_shards_match_hstreamdb() {
        let ranges = divide_key_space(4).expect("4 shards");
        assert_eq!(ranges[0].start, 0);
        assert_eq!(
            ranges[0].end.to_string(),
            "85070591730234615865843651857942052862"
        );
        assert_eq!(ranges[3].end, u128::MAX);
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].end + 1, pair[1].start);
        }
    }

    #[test]
    fn one_shard_covers_everything() {
        assert_eq!(
            divide_key_space(1).expect("1 shard"),
            vec![HashRange {
                start: 0,
                end: u128::MAX
            }]
        );
        assert_eq!(divide_key_space(0), Err(KeySpaceError::NoShards));
    }

    #[test]
    fn empty_key_lands_in_last_of_four() {
        // md5("") = d41d8cd9..., above 3/4 of the key space.
        assert_eq!(hash_key("") >> 120, 0xd4);
        let map = ShardMap::new(
            divide_key_space(4)
                .expect("4 shards")
                .into_iter()
                .zip([10, 11, 12, 13])
                .collect(),
        )
        .expect("valid map");
        assert_eq!(map.shard_for_key(""), Some(13));
    }

    #[test]
    fn parse_rejects_garbage_and_inverted_ranges() {
        assert!(matches!(
            HashRange::parse("x", "1"),
            Err(KeySpaceError::BadBound(_))
        ));
        assert!(matches!(
            HashRange::parse("5", "1"),
            Err(KeySpaceError::EmptyRange { .. })
        ));
        assert_eq!(
            HashRange::parse("0", "340282366920938463463374607431768211455")
                .expect("full range")
                .end,
            u128::MAX
        );
    }

    #[test]
    fn overlapping_shards_are_rejected() {
        let a = HashRange { start: 0, end: 10 };
        let b = HashRange { start: 10, end: 20 };
        assert!(ShardMap::new(vec![(a, 1), (b, 2)]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn every_hash_has_exactly_one_shard(n in 1u32..64, hash: u128) {
            let ranges = divide_key_space(n).expect("n > 0");
            let owners = ranges.iter().filter(|r| r.contains(hash)).count();
            proptest::prop_assert_eq!(owners, 1);
            let map = ShardMap::new(ranges.iter().copied().zip(0u64..).collect()).expect("valid");
            let id = map.shard_for_hash(hash).expect("covered");
            proptest::prop_assert!(ranges[id as usize].contains(hash));
        }

        #[test]
        fn keys_route_by_their_hash(n in 1u32..8, key in ".{0,24}") {
            let ranges = divide_key_space(n).expect("n > 0");
            let map = ShardMap::new(ranges.into_iter().zip(100u64..).collect()).expect("valid");
            proptest::prop_assert_eq!(map.shard_for_key(&key), map.shard_for_hash(hash_key(&key)));
        }
    }

    #[test]
    fn a_single_shard_of_part_of_the_space_does_not_own_every_key() {
        let half = HashRange {
            start: 0,
            end: u128::MAX / 2,
        };
        let map = ShardMap::new(vec![(half, 7)]).expect("valid");
        let outside = (0..1000)
            .map(|i| i.to_string())
            .find(|key| hash_key(key) > half.end)
            .expect("some key hashes into the upper half");
        assert_eq!(map.shard_for_key(&outside), None);
    }
}
