//! The metadata file `meta.json`: which streams and shards exist, and the
//! counters that must never go backwards across restarts (shard ids and the
//! server generation that prefixes batch ids).
//!
//! It is small and changes only on create/delete, so it is rewritten whole:
//! written to `meta.json.tmp`, fsynced, renamed over `meta.json` and the
//! directory fsynced. A reader therefore sees the old or the new version,
//! never a mix. It is JSON so a person can read it when something goes wrong.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use weir_proto::keyspace::HashRange;

const FORMAT: u32 = 1;
pub(crate) const FILE_NAME: &str = "meta.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Meta {
    pub(crate) format: u32,
    /// How many times a server has opened this directory; the high 32 bits
    /// of every batch id appended in that run.
    pub(crate) generation: u64,
    pub(crate) next_shard_id: u64,
    pub(crate) streams: Vec<StreamMeta>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct StreamMeta {
    pub(crate) name: String,
    pub(crate) replication_factor: u32,
    pub(crate) backlog_duration: u32,
    pub(crate) creation_time_ms: i64,
    pub(crate) shards: Vec<ShardMeta>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ShardMeta {
    pub(crate) id: u64,
    /// Decimal, like the wire: JSON numbers cannot hold 128 bits.
    pub(crate) start_hash_range_key: String,
    pub(crate) end_hash_range_key: String,
    pub(crate) epoch: u64,
}

impl ShardMeta {
    pub(crate) fn range(&self) -> Result<HashRange, String> {
        HashRange::parse(&self.start_hash_range_key, &self.end_hash_range_key)
            .map_err(|e| format!("shard {}: {e}", self.id))
    }
}

impl Meta {
    pub(crate) fn new(next_shard_id: u64) -> Self {
        Meta {
            format: FORMAT,
            generation: 0,
            next_shard_id,
            streams: Vec::new(),
        }
    }

    /// Reads `dir/meta.json`; `Ok(None)` when the directory has none yet.
    pub(crate) fn load(dir: &Path) -> Result<Option<Meta>, Error> {
        let path = dir.join(FILE_NAME);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Io {
                    op: "read",
                    path,
                    source,
                });
            }
        };
        let corrupt = |reason: String| Error::CorruptMetadata {
            path: path.clone(),
            reason,
        };
        let meta: Meta = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        meta.check().map_err(corrupt)?;
        Ok(Some(meta))
    }

    /// The invariants the rest of the server relies on.
    fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "format {} is not the supported format {FORMAT}",
                self.format
            ));
        }
        let mut names = HashSet::new();
        let mut ids = HashSet::new();
        for stream in &self.streams {
            if !names.insert(stream.name.as_str()) {
                return Err(format!("stream {:?} is listed twice", stream.name));
            }
            if stream.shards.is_empty() {
                return Err(format!("stream {:?} has no shards", stream.name));
            }
            for shard in &stream.shards {
                shard.range()?;
                if !ids.insert(shard.id) {
                    return Err(format!("shard id {} is used twice", shard.id));
                }
                if shard.id >= self.next_shard_id {
                    return Err(format!(
                        "shard id {} is not below nextShardId {}",
                        shard.id, self.next_shard_id
                    ));
                }
            }
        }
        Ok(())
    }

    /// Replaces `dir/meta.json` atomically and durably.
    pub(crate) fn store(&self, dir: &Path) -> Result<(), Error> {
        let path = dir.join(FILE_NAME);
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let io = |op: &'static str, path: &PathBuf| {
            let path = path.clone();
            move |source| Error::Io { op, path, source }
        };
        // Serializing plain structs of strings and integers cannot fail.
        let text = serde_json::to_vec_pretty(self).map_err(|e| Error::CorruptMetadata {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut file = File::create(&tmp).map_err(io("create", &tmp))?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(io("write", &tmp))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(io("replace", &path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync", &dir.to_path_buf()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Meta {
        Meta {
            format: FORMAT,
            generation: 3,
            next_shard_id: 12,
            streams: vec![StreamMeta {
                name: "s1".into(),
                replication_factor: 1,
                backlog_duration: 0,
                creation_time_ms: 1_700_000_000_000,
                shards: vec![ShardMeta {
                    id: 11,
                    start_hash_range_key: "0".into(),
                    end_hash_range_key: u128::MAX.to_string(),
                    epoch: 1,
                }],
            }],
        }
    }

    #[test]
    fn round_trips_and_replaces() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert_eq!(Meta::load(tmp.path()).expect("load"), None);
        sample().store(tmp.path()).expect("store");
        assert_eq!(Meta::load(tmp.path()).expect("load"), Some(sample()));
        let mut next = sample();
        next.streams.clear();
        next.store(tmp.path()).expect("store");
        assert_eq!(Meta::load(tmp.path()).expect("load"), Some(next));
        assert!(!tmp.path().join("meta.json.tmp").exists());
    }

    #[test]
    fn inconsistent_metadata_is_rejected_with_the_reason() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut bad = sample();
        bad.next_shard_id = 5;
        bad.store(tmp.path()).expect("store");
        let err = Meta::load(tmp.path()).expect_err("inconsistent");
        assert!(err.to_string().contains("nextShardId"), "{err}");

        fs::write(tmp.path().join(FILE_NAME), b"{\"format\": 1,").expect("write");
        let err = Meta::load(tmp.path()).expect_err("truncated json");
        assert!(matches!(err, Error::CorruptMetadata { .. }), "{err}");
        assert!(err.to_string().contains("meta.json"), "{err}");
    }
}
