//! Writing an import's files: `weir.toml`, `plugins/NAME.rule.toml`, the
//! disabled-plugins list and inline certificates, all checked for
//! existing files before the first is written, so an import that stops on an
//! existing file leaves nothing half-written.

use super::ImportError;
use super::map::{DISABLED_FILE, Plan};
use super::report::{EntryKind, Report};
use std::path::{Path, PathBuf};

pub(crate) fn write(plan: Plan, out: &Path, force: bool) -> Result<Report, ImportError> {
    let mut files: Vec<(PathBuf, String)> = vec![(out.join("weir.toml"), plan.weir_toml)];
    for rule in plan.rules {
        files.push((
            out.join("plugins").join(format!("{}.rule.toml", rule.name)),
            rule.text,
        ));
    }
    if !plan.disabled.is_empty() {
        let list = serde_json::json!({ "disabled": plan.disabled });
        files.push((out.join(DISABLED_FILE), format!("{list:#}\n")));
    }
    for (name, pem) in plan.certs {
        files.push((out.join(name), pem));
    }
    if !force && let Some((path, _)) = files.iter().find(|(path, _)| path.exists()) {
        return Err(ImportError::Exists {
            path: path.clone(),
            would_write: files.iter().map(|(p, _)| p.display().to_string()).collect(),
        });
    }
    let mut report = plan.report;
    for (path, text) in &files {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| ImportError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(path, text).map_err(|source| ImportError::Write {
            path: path.clone(),
            source,
        })?;
    }
    report.entries.insert(
        0,
        super::report::Entry {
            kind: EntryKind::Written,
            subject: out.join("weir.toml").display().to_string(),
            text: format!(
                "start weir with `cd {} && weir run --config weir.toml`",
                out.display()
            ),
        },
    );
    Ok(report)
}
