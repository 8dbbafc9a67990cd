//! Tidy: the absences ARCHITECTURE.md writes down ("only ingress names
//! rumqttc", "no unwrap on input"), checked on the source tree so that a
//! change breaking one fails here, naming the file, the line and the rule.
//! Reads files only; starts no process.
//!
//! In the spirit of rust-analyzer's tidy tests: plain text scans, simple
//! enough to trust, with an escape only where the rule itself says so.

use std::path::{Path, PathBuf};

/// The workspace's crates, by the directory whose `src/` holds their
/// modules. `plugins/rust` is a workspace of its own (wasm32 only) and is
/// listed crate by crate.
const CRATES: &[&str] = &[
    "proto",
    "devserver",
    "host",
    "guest-sdk",
    "guest-sdk/macros",
    "plugins/artifacts",
    "plugins/rust/connect",
    "plugins/rust/enrich",
    "plugins/rust/message",
    "plugins/rust/misbehave",
    "rules-runtime",
    "rules-runtime/guest",
    "bench",
    "build-support",
];

/// Crates that are build-script code (`build-support`), the load tool
/// (`bench`, a benchmark) or test fixtures (`plugins/artifacts`, the example
/// plugins built for the host's tests and benches): a panic is how they
/// report, so the unwrap rule does not apply to them.
const PANICKING_CRATES: &[&str] = &["build-support", "bench", "plugins/artifacts"];

/// Files outside `host/src/sink/`, `host/src/render.rs` and `host/src/cli/`
/// that still name tonic or weir-proto, each with the reason.
const WIRE_EXCEPTIONS: &[(&str, &str)] = &[];

/// The escape for an `unwrap()`/`expect(` that cannot fail, written at the
/// end of its line with the reason: `// tidy: allow(unwrap) because ...`.
const UNWRAP_ESCAPE: &str = "// tidy: allow(unwrap) because ";

struct SourceFile {
    /// Relative to the workspace root, with `/`.
    path: String,
    text: String,
}

impl SourceFile {
    /// Each line with its number and the part before a `//` comment (a
    /// whole-line comment gives an empty part). Strings that contain `//`
    /// are rare enough in this code base to be cut short harmlessly.
    fn code_lines(&self) -> impl Iterator<Item = (usize, &str, &str)> {
        self.text.lines().enumerate().map(|(i, line)| {
            let code = match line.find("//") {
                Some(at) => &line[..at],
                None => line,
            };
            (i + 1, code, line)
        })
    }

    /// Whether the whole file is test code: a `tests.rs`, anything under a
    /// `tests/` directory, or a `#[cfg(test)]`-only helper file.
    fn is_test_file(&self) -> bool {
        self.path.ends_with("/tests.rs")
            || self.path.contains("/tests/")
            || self.path.starts_with("tests/")
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is inside the workspace")
        .to_owned()
}

fn rust_files_under(root: &Path, dir: &str) -> Vec<SourceFile> {
    let mut found = Vec::new();
    let mut pending = vec![root.join(dir)];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let rel = path.strip_prefix(root).expect("under the root");
                found.push(SourceFile {
                    path: rel.to_string_lossy().replace('\\', "/"),
                    text,
                });
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// The modules of every crate (`CRATE/src/**.rs`).
fn crate_sources(crates: &[&str]) -> Vec<SourceFile> {
    let root = workspace();
    crates
        .iter()
        .flat_map(|c| rust_files_under(&root, &format!("{c}/src")))
        .collect()
}

/// Whether `line` names `word` as an identifier (not as part of a longer
/// one: `monotonic` does not name `tonic`).
fn names(line: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    line.match_indices(word).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// Fails with every violation, one per line, if there are any.
fn verdict(rule: &str, violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{} place(s) break the rule \"{rule}\":\n{}",
        violations.len(),
        violations.join("\n")
    );
}

#[test]
fn every_crate_root_and_module_says_what_it_is_for() {
    let root = workspace();
    let mut files = crate_sources(CRATES);
    for dir in ["tests/it", "host/benches", "host/fuzz/fuzz_targets"] {
        files.extend(rust_files_under(&root, dir));
    }
    assert!(
        files.len() > 100,
        "the scan found only {} files",
        files.len()
    );
    let violations = files
        .iter()
        .filter(|file| {
            let first = file.text.lines().find(|l| !l.trim().is_empty());
            !first.is_some_and(|l| l.starts_with("//!") || l.starts_with("#![doc"))
        })
        .map(|file| {
            format!(
                "{}:1: starts without a `//!` doc saying what the module is for and why",
                file.path
            )
        })
        .collect();
    verdict("each crate root and module has a `//!` doc", violations);
}

#[test]
fn only_ingress_names_rumqttc() {
    let violations = crate_sources(CRATES)
        .iter()
        .filter(|file| {
            !file.path.starts_with("host/src/ingress/") && !file.path.starts_with("bench/")
        })
        .flat_map(|file| {
            file.code_lines()
                .filter(|(_, code, _)| names(code, "rumqttc"))
                .map(|(n, _, line)| format!("{}:{n}: names rumqttc: {}", file.path, line.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    verdict(
        "only `host/src/ingress/` (and the load tool, bench/) names rumqttc",
        violations,
    );
}

#[test]
fn only_the_sink_render_and_the_cli_name_tonic_or_weir_proto() {
    let allowed = |path: &str| {
        path.starts_with("host/src/sink/")
            || path.starts_with("host/src/cli/")
            || path == "host/src/render.rs"
            || WIRE_EXCEPTIONS.iter().any(|(p, _)| *p == path)
    };
    let violations = crate_sources(&["host"])
        .iter()
        .filter(|file| !allowed(&file.path))
        .flat_map(|file| {
            file.code_lines()
                .filter(|(_, code, _)| names(code, "tonic") || names(code, "weir_proto"))
                .map(|(n, _, line)| format!("{}:{n}: names the wire: {}", file.path, line.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    verdict(
        "in host/, only sink/, render.rs and cli/ name tonic or weir-proto",
        violations,
    );
}

/// The lines of `file` outside `#[cfg(test)]` items (and the fuzzing entry
/// points, `#[cfg(any(test, feature = "fuzzing"))]`): an attribute line
/// starts a skip that ends with the item it annotates, by brace depth.
fn non_test_lines(file: &SourceFile) -> Vec<(usize, &str, &str)> {
    let mut kept = Vec::new();
    let mut depth: i64 = 0;
    // The depth at which a skipped item started, once its body opened.
    let mut skipping: Option<i64> = None;
    let mut attribute_pending = false;
    for (n, code, line) in file.code_lines() {
        let opens = code.matches('{').count() as i64;
        let closes = code.matches('}').count() as i64;
        let trimmed = code.trim();
        if skipping.is_none()
            && !attribute_pending
            && (trimmed.starts_with("#[cfg(test)]") || trimmed.starts_with("#[cfg(any(test"))
        {
            attribute_pending = true;
        }
        if attribute_pending {
            if opens > 0 {
                skipping = Some(depth);
                attribute_pending = false;
            } else if trimmed.ends_with(';') {
                attribute_pending = false;
            }
            depth += opens - closes;
            if skipping.is_some_and(|start| depth <= start) {
                skipping = None;
            }
            continue;
        }
        depth += opens - closes;
        if let Some(start) = skipping {
            if depth <= start {
                skipping = None;
            }
            continue;
        }
        kept.push((n, code, line));
    }
    kept
}

#[test]
fn no_unwrap_or_expect_outside_tests_build_scripts_benches_and_fuzzing() {
    let crates: Vec<&str> = CRATES
        .iter()
        .copied()
        .filter(|c| !PANICKING_CRATES.contains(c))
        .collect();
    let files = crate_sources(&crates);
    let mut violations = Vec::new();
    for file in files.iter().filter(|f| !f.is_test_file()) {
        for (n, code, line) in non_test_lines(file) {
            let panics = code.contains(".unwrap()") || code.contains(".expect(\"");
            if !panics {
                continue;
            }
            match line.find(UNWRAP_ESCAPE) {
                Some(at) if line[at + UNWRAP_ESCAPE.len()..].trim().len() >= 10 => {}
                Some(_) => violations.push(format!(
                    "{}:{n}: the escape needs its reason: `{UNWRAP_ESCAPE}<why it cannot fail>`",
                    file.path
                )),
                None => violations.push(format!(
                    "{}:{n}: panics on failure (return a typed error, or if it truly cannot \
                     fail end the line with `{UNWRAP_ESCAPE}...`): {}",
                    file.path,
                    line.trim()
                )),
            }
        }
    }
    verdict(
        "no `unwrap()`/`expect(` outside tests, build scripts, benches and fuzzing",
        violations,
    );
}

/// ARCHITECTURE.md names the test guarding each invariant as
/// `path/from/the/root.rs::test_name`; each must exist, or the document
/// promises a guard that is not there.
#[test]
fn the_tests_architecture_md_names_exist() {
    let root = workspace();
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut named = 0;
    let mut violations = Vec::new();
    for (n, line) in doc.lines().enumerate() {
        for span in line.split('`').skip(1).step_by(2) {
            // Workspace paths only: the code map's `cli/run.rs::serve` style
            // points into a crate and names functions, not guards.
            let Some((path, test)) = span.split_once(".rs::") else {
                continue;
            };
            if !path.starts_with("tests/")
                && !CRATES.iter().any(|c| path.starts_with(&format!("{c}/")))
            {
                continue;
            }
            let file = format!("{path}.rs");
            named += 1;
            match std::fs::read_to_string(root.join(&file)) {
                Ok(text) if text.contains(&format!("fn {test}(")) => {}
                Ok(_) => violations.push(format!(
                    "ARCHITECTURE.md:{}: names test `{test}`, which {file} does not define",
                    n + 1
                )),
                Err(e) => violations.push(format!(
                    "ARCHITECTURE.md:{}: names {file}, which cannot be read: {e}",
                    n + 1
                )),
            }
        }
    }
    assert!(
        named >= 6,
        "ARCHITECTURE.md names only {named} guarding tests"
    );
    verdict("every test ARCHITECTURE.md names exists", violations);
}

/// The scans above are only as good as their parsing; these are the cases
/// they must get right.
#[test]
fn the_scans_see_what_they_must() {
    assert!(names("use rumqttc::QoS;", "rumqttc"));
    assert!(!names("monotonic_ns", "tonic"));
    assert!(names("tonic::Status", "tonic"));
    let file = SourceFile {
        path: "x/src/lib.rs".into(),
        text: "fn a() { x.unwrap() }\n#[cfg(test)]\nmod tests {\n    fn b() { y.unwrap() }\n}\n\
               fn c() { z.unwrap() }\n#[cfg(test)]\nuse q;\nfn d() {}\n"
            .into(),
    };
    let kept: Vec<usize> = non_test_lines(&file).iter().map(|(n, _, _)| *n).collect();
    assert_eq!(kept, vec![1, 6, 9]);
}
