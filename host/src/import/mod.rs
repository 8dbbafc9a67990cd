//! `weir import emqx`: an EMQX 5 setup (HOCON configuration or REST API
//! answers) becomes a weir directory: `weir.toml`, one `NAME.rule.toml` per
//! rule and HStreamDB action, and a report of what was mapped, what has no
//! weir equivalent and why, and what behaves differently.
//!
//! Why a command rather than a guide: EMQX removed its HStreamDB
//! integration in 6.0, and its users have rules, templates and bridge
//! settings they should not have to rewrite by hand. The import is only
//! worth having if what it writes gives the records EMQX gave, so every rule
//! file it writes is compiled by weir's rule compiler first; a rule the
//! compiler refuses is reported with the compiler's error and not written.
//!
//! Layout: `source` reads the files into one tree per file in EMQX's
//! configuration layout (REST answers included), `fields` reads an EMQX
//! object with typed errors naming file, line and key and keeps track of
//! the keys left over, `map` decides what each EMQX setting becomes in weir
//! and writes the report, `output` writes the files. docs/migrate-from-emqx.md
//! is the user's view of the mapping.

mod fields;
mod map;
mod output;
mod report;
mod source;

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) use report::EntryKind;
pub(crate) use report::Report;

use std::path::{Path, PathBuf};

/// How the import runs.
#[derive(Debug, Clone)]
pub(crate) struct ImportOptions {
    /// Overwrite files that exist in the output directory.
    pub force: bool,
    /// Devices connect to weir itself (`mqtt.mode = "listener"`) instead of
    /// weir subscribing to the EMQX broker.
    pub listener: bool,
}

/// Why an import could not be done. Each names the file, and where it can,
/// the line and the EMQX key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImportError {
    #[error("cannot read {}: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{}: {message}", file.display(), line_suffix(*line))]
    Syntax {
        file: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{}{}: {key}: {message}", file.display(), line_suffix(*line))]
    Field {
        file: PathBuf,
        line: Option<usize>,
        /// The EMQX key, e.g. `connectors.hstreamdb.c1.url`.
        key: String,
        message: String,
    },
    #[error(
        "nothing to import: no HStreamDB connector, action, bridge or rule in {files} (EMQX 5: `bridges.hstreamdb`, `connectors.hstreamdb` + `actions.hstreamdb`, `rule_engine.rules`)"
    )]
    Nothing { files: String },
    #[error(
        "{} exists; pass --force to overwrite it (files that would be written: {})",
        path.display(), would_write.join(", ")
    )]
    Exists {
        path: PathBuf,
        would_write: Vec<String>,
    },
    #[error(
        "the weir.toml the import would write is not valid, from a value weir does not take: {0}"
    )]
    Invalid(String),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// Reads `files` (later files override earlier ones, as EMQX layers
/// `emqx.conf` and `cluster.conf`), maps them and writes the result to
/// `out`. The report says what was written and what was not.
pub(crate) fn import_emqx(
    files: &[PathBuf],
    out: &Path,
    options: &ImportOptions,
) -> Result<Report, ImportError> {
    let documents = files
        .iter()
        .map(|f| source::Document::read(f))
        .collect::<Result<Vec<_>, _>>()?;
    let plan = map::plan(&documents, options.listener)?;
    if plan.is_empty() {
        return Err(ImportError::Nothing {
            files: files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    output::write(plan, out, options.force)
}
