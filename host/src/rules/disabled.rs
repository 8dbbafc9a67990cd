//! The disabled-plugins file: the names an operator disabled, kept across
//! restarts when `plugins.disabled_file` is set.

use super::RulesError;
use std::collections::BTreeSet;
use std::path::Path;

/// The file of disabled plugins: `{"disabled": ["name", ...]}`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DisabledFile {
    disabled: BTreeSet<String>,
}

/// The disabled set kept in `path`; empty when the file does not exist yet.
/// A file that cannot be read is an error: starting with everything enabled
/// could bring back a plugin an operator stopped for a reason.
pub(super) fn read_disabled(path: &Path) -> Result<BTreeSet<String>, RulesError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(source) => {
            return Err(RulesError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    };
    serde_json::from_str::<DisabledFile>(&text)
        .map(|file| file.disabled)
        .map_err(|e| RulesError::DisabledFile {
            path: path.display().to_string(),
            problem: e.to_string(),
        })
}

/// Writes the disabled set to `path` atomically (a temporary file renamed
/// over it, synced), creating its directory.
pub(super) fn write_disabled(path: &Path, disabled: &BTreeSet<String>) -> Result<(), RulesError> {
    use std::io::Write as _;
    let io = |source| RulesError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let text = serde_json::to_string_pretty(&DisabledFile {
        disabled: disabled.clone(),
    })
    .map_err(|e| io(std::io::Error::other(e)))?;
    let temp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temp).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temp, path).map_err(io)
}
