//! Rule files an operator writes through weir itself (the admin API, the
//! dashboard's editor): checked by the compiler first, then written into the
//! plugins directory and loaded by the same reload that hot reload runs, so
//! a rule saved here and a rule saved by an editor are one code path.
//!
//! A rule that does not compile is refused before anything is written: the
//! running version keeps running and the file on disk stays as it was.

use super::RulesError;
use super::compile::{CompiledRule, RuleError};
use super::engine::RuleEngine;
use super::registry::Change;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// What saving a rule did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub change: Change,
    pub file: PathBuf,
    /// The compiler's warnings about the text.
    pub warnings: Vec<String>,
}

impl RuleEngine {
    /// The file rule `name` lives in.
    pub fn rule_file(&self, name: &str) -> Result<PathBuf, RulesError> {
        check_name(name)?;
        Ok(self.dir()?.join(format!("{name}.rule.toml")))
    }

    /// Writes `text` as rule `name`'s file and loads it (blocking), once it
    /// compiles. A plugin (`NAME.wasm`, `NAME.toml`) of the same name is not
    /// replaced.
    pub fn save_rule(&self, name: &str, text: &str) -> Result<Saved, RulesError> {
        let file = self.rule_file(name)?;
        let dir = self.dir()?;
        for other in [format!("{name}.wasm"), format!("{name}.toml")] {
            if dir.join(&other).exists() {
                return Err(RulesError::NameTaken {
                    name: name.to_owned(),
                    file: dir.join(other).display().to_string(),
                });
            }
        }
        let compiled = CompiledRule::compile(text, &file).map_err(RulesError::from)?;
        write_atomically(&file, text.as_bytes())?;
        let change = self.reload(name)?;
        Ok(Saved {
            change,
            file,
            warnings: compiled.warnings().to_vec(),
        })
    }

    /// Removes rule `name`'s file and unloads it (blocking). Returns false,
    /// and does nothing, when there is no such rule file.
    pub fn delete_rule(&self, name: &str) -> Result<bool, RulesError> {
        let file = self.rule_file(name)?;
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(RulesError::Io {
                    path: file.display().to_string(),
                    source,
                });
            }
        }
        self.reload(name)?;
        Ok(true)
    }
}

/// Checks a rule file's text without loading it.
pub(crate) fn check_rule(name: &str, text: &str) -> Result<CompiledRule, RuleError> {
    CompiledRule::compile(text, Path::new(&format!("{name}.rule.toml")))
}

/// Names are file stems in the plugins directory: a name with a path
/// separator, or one the watcher ignores, would write somewhere else or load
/// nothing.
fn check_name(name: &str) -> Result<(), RulesError> {
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err(RulesError::BadName {
            name: name.to_owned(),
        })
    }
}

/// Writes a hidden temporary file beside `path` and renames it over `path`,
/// so the watcher (which skips dotfiles) never reads half a rule.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RulesError> {
    let io = |source| RulesError::Io {
        path: path.display().to_string(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&temporary).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        io(e)
    })
}
