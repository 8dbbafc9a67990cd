//! The quarantine file: the last, local place for a record that can be
//! stored nowhere else.
//!
//! A record ends here when its stream will never take it (refused after
//! `sink.poison_retries` more tries, oversize, stream missing) *and* the
//! dead-letter stream will not either (unset, missing, refusing, or the
//! dead letter is itself oversize). Writing it here, fsynced, is what lets
//! weir acknowledge its message instead of leaving it to be redelivered for
//! ever (issue 19 measured 75 bridge reconnects and 67,677 duplicates for a
//! handful of such records).
//!
//! One JSON object per line, appended, never rewritten, so it can be read
//! with `weir quarantine`, `jq` or `tail -f` while weir runs:
//! `time`, `stream` (where the record was last going), `reason` (every
//! refusal on its way, first to last), `key`, `flag` (`raw`/`json`),
//! `attributes` (the dead-letter attributes among them) and the payload as
//! `payload_json` (an HRecord, decoded), `payload_text` (UTF-8 RAW bytes) or
//! `payload_hex` (other bytes). Nothing of the record is dropped.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use weir_proto::pb::HStreamRecord;
use weir_proto::pb::h_stream_record_header::Flag;
use weir_proto::record::{decode_hrecord, flag_of, key_of};

/// Why the quarantine file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum QuarantineError {
    #[error("quarantine file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("quarantine file {path}, line {line}: not a quarantine entry ({source})")]
    Line {
        path: String,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// The open quarantine file (opened on first use, so a weir that never
/// quarantines anything never creates it).
#[derive(Debug)]
pub(crate) struct Quarantine {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl Quarantine {
    pub(crate) fn new(path: PathBuf) -> Quarantine {
        Quarantine {
            path,
            file: Mutex::new(None),
        }
    }

    fn io(&self, source: std::io::Error) -> QuarantineError {
        QuarantineError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Appends one line per record and forces them to the disk (blocking).
    pub(crate) fn write(
        &self,
        entries: &[(&str, &HStreamRecord, &str)],
    ) -> Result<(), QuarantineError> {
        let mut text = String::new();
        for (stream, record, reason) in entries {
            text.push_str(&line(stream, record, reason).to_string());
            text.push('\n');
        }
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
            }
            let opened = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| self.io(e))?;
            *file = Some(opened);
        }
        let Some(open) = file.as_mut() else {
            return Ok(());
        };
        let result = open
            .write_all(text.as_bytes())
            .and_then(|()| open.sync_data());
        if let Err(error) = result {
            // Reopen next time: the handle may be unusable.
            *file = None;
            return Err(self.io(error));
        }
        Ok(())
    }
}

/// The quarantine line of one record.
fn line(stream: &str, record: &HStreamRecord, reason: &str) -> serde_json::Value {
    let time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let attributes: serde_json::Map<String, serde_json::Value> = record
        .header
        .as_ref()
        .map(|h| {
            h.attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect()
        })
        .unwrap_or_default();
    let flag = flag_of(record);
    let mut line = serde_json::json!({
        "time": time,
        "stream": stream,
        "reason": reason,
        "key": key_of(record),
        "flag": if flag == Flag::Raw { "raw" } else { "json" },
        "attributes": attributes,
    });
    let payload = match (flag, decode_hrecord(&record.payload)) {
        (Flag::Json, Ok(value)) => ("payload_json", value),
        _ => match std::str::from_utf8(&record.payload) {
            Ok(text) => ("payload_text", text.into()),
            Err(_) => (
                "payload_hex",
                record
                    .payload
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
                    .into(),
            ),
        },
    };
    if let Some(object) = line.as_object_mut() {
        object.insert(payload.0.into(), payload.1);
    }
    line
}

/// Reads every entry of a quarantine file; a file that does not exist has
/// none. A line that is not an entry is an error naming it.
pub(crate) fn read(path: &Path) -> Result<Vec<serde_json::Value>, QuarantineError> {
    let io = |source| QuarantineError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut entries = Vec::new();
    for (n, text) in BufReader::new(file).lines().enumerate() {
        let text = text.map_err(io)?;
        if text.trim().is_empty() {
            continue;
        }
        let entry = serde_json::from_str(&text).map_err(|source| QuarantineError::Line {
            path: path.display().to_string(),
            line: n + 1,
            source,
        })?;
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_proto::record::{hrecord, raw_record};

    #[test]
    fn entries_are_appended_fsynced_and_read_back_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/quarantine.jsonl");
        let quarantine = Quarantine::new(path.clone());
        assert!(read(&path).expect("no file yet").is_empty());
        let object = serde_json::json!({"a": 1});
        let json = hrecord("k1", object.as_object().expect("object")).expect("hrecord");
        let text = raw_record("k2", &b"plain"[..]);
        let binary = raw_record("k3", &b"\xff\x00"[..]);
        quarantine
            .write(&[("s", &json, "refused"), ("s", &text, "oversize")])
            .expect("written");
        quarantine
            .write(&[("dead", &binary, "refused; and the dead-letter stream too")])
            .expect("written");
        let entries = read(&path).expect("read");
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0]["payload_json"], object);
        assert_eq!(entries[0]["flag"], "json");
        assert_eq!(entries[1]["payload_text"], "plain");
        assert_eq!(entries[1]["reason"], "oversize");
        assert_eq!(entries[2]["payload_hex"], "ff00");
        assert_eq!(
            (&entries[2]["stream"], &entries[2]["key"]),
            (&"dead".into(), &"k3".into())
        );
        assert!(
            entries[2]["time"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
    }

    #[test]
    fn a_damaged_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("q.jsonl");
        std::fs::write(&path, "{}\nnot json\n").expect("written");
        let error = read(&path).expect_err("damaged").to_string();
        assert!(error.contains("line 2"), "{error}");
    }
}
