//! `weir plugin`: the plugin author's tools.
//!
//! `weir plugin new NAME --lang rust|js|python` writes a project that
//! builds and passes its own test as it is: the message plugin of
//! `plugins/` in that language (the same source files, so the template
//! cannot drift from the tested examples), its manifest, a sample event
//! file with the records it must give, the WIT contract and, for
//! JavaScript and Python, weir's SDK module. `weir plugin test
//! PLUGIN.wasm|NAME.toml --event EVENTS.json [--expect RECORDS.json]` loads
//! a built module or component with its manifest into the real rule engine,
//! runs it on the events and prints what would be stored, like `weir rule
//! test`; with `--expect` it fails unless exactly those records come out.

use super::rule::{print_batch, read_events};
use super::{Exit, print_line};
use crate::rules::{BatchOutput, EngineOptions, RecordFlag, RuleEngine};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Create a plugin project that builds and passes its own test.
    New(NewArgs),
    /// Run a built plugin on events and print the records it makes.
    Test(TestArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Lang {
    /// A core module with weir-guest-sdk (cargo, wasm32-unknown-unknown).
    Rust,
    /// A component built with componentize-js (npm).
    Js,
    /// A component built with componentize-py (pip).
    Python,
}

#[derive(Debug, clap::Args)]
pub(crate) struct NewArgs {
    /// The plugin's name: lower-case letters, digits and `_`, starting
    /// with a letter (it names NAME.wasm, NAME.toml and the stream).
    name: String,
    #[arg(long, value_enum)]
    lang: Lang,
    /// Where to create the project (default: ./NAME).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// The built plugin (NAME.wasm, its manifest NAME.toml beside it) or
    /// its manifest (NAME.wasm beside it).
    plugin: PathBuf,
    /// A JSON file with one event (an object with EMQX's column names, e.g.
    /// {"topic": "t/1", "payload": "hi"}) or an array of events. May be
    /// given several times.
    #[arg(long, value_name = "EVENTS.json", required = true)]
    event: Vec<PathBuf>,
    /// A JSON array with, per event, the array of records it must give
    /// (`{"stream": ..., "key": ..., "record": ...}`); the test fails on
    /// any difference.
    #[arg(long, value_name = "RECORDS.json")]
    expect: Option<PathBuf>,
}

pub(crate) async fn run(command: Command, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    match command {
        Command::New(args) => new(&args, out),
        Command::Test(args) => test_files(&args.plugin, &args.event, args.expect, out).await,
    }
}

/// A plugin manifest rather than a rule file: `NAME.toml`, not
/// `NAME.rule.toml`.
pub(super) fn is_manifest(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.ends_with(".toml") && !name.ends_with(".rule.toml")
}

/// Runs the plugin at `plugin` (its module or its manifest) on the events
/// in `events`.
pub(super) async fn test_files(
    plugin: &Path,
    events: &[PathBuf],
    expect: Option<PathBuf>,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Exit> {
    let (wasm_path, manifest_path) = if is_manifest(plugin) {
        (plugin.with_extension("wasm"), plugin.to_owned())
    } else {
        (plugin.to_owned(), plugin.with_extension("toml"))
    };
    let name = wasm_path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("plugin")
        .to_owned();
    let wasm = std::fs::read(&wasm_path).with_context(|| {
        format!(
            "cannot read {} (build the plugin first)",
            wasm_path.display()
        )
    })?;
    let manifest = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("cannot read the manifest {}", manifest_path.display()))?;
    let expected = match &expect {
        Some(path) => Some(read_expected(path)?),
        None => None,
    };
    let events = read_events(events)?;
    let total = events.len();
    let size = wasm.len();
    let shown = wasm_path.display().to_string();
    let (batch, load, ran) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let engine = RuleEngine::new(EngineOptions::default())?;
        let started = Instant::now();
        engine
            .install(&name, &wasm, &manifest)
            .with_context(|| format!("{shown} does not load"))?;
        let load = started.elapsed();
        let started = Instant::now();
        let batch = engine.process(&events);
        Ok((batch, load, started.elapsed()))
    })
    .await
    .context("the rule engine stopped")??;
    eprintln!(
        "loaded {} ({size} bytes) in {:.1} ms; ran {total} events in one batch in {:.1} ms",
        wasm_path.display(),
        load.as_secs_f64() * 1e3,
        ran.as_secs_f64() * 1e3
    );
    let failed = print_batch(&batch, total, "no record", out)?;
    if let Some(expected) = expected {
        let got = records_by_event(&batch, total);
        if got != expected {
            print_line(
                out,
                &format!(
                    "records differ from {}:\n  expected: {}\n  got:      {}",
                    expect.as_deref().unwrap_or(Path::new("")).display(),
                    serde_json::Value::Array(expected),
                    serde_json::Value::Array(got)
                ),
            )?;
            return Ok(Exit::Failure);
        }
        print_line(out, "records as expected")?;
    }
    Ok(if failed { Exit::Failure } else { Exit::Success })
}

fn read_expected(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    match serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))? {
        serde_json::Value::Array(list) => Ok(list),
        _ => anyhow::bail!(
            "{}: expected an array with, per event, the array of its records",
            path.display()
        ),
    }
}

/// Per event, its records as `{stream, key, record}` (an HRecord as JSON,
/// raw bytes as text), in the shape `--expect` files use.
fn records_by_event(batch: &BatchOutput, total: usize) -> Vec<serde_json::Value> {
    (0..total)
        .map(|i| {
            serde_json::Value::Array(
                batch
                    .outputs
                    .iter()
                    .filter(|o| o.event == i)
                    .map(|o| {
                        let record: serde_json::Value = match o.flag {
                            RecordFlag::Json => {
                                serde_json::from_slice(&o.record).unwrap_or_else(|_| {
                                    String::from_utf8_lossy(&o.record).into_owned().into()
                                })
                            }
                            RecordFlag::Raw => {
                                String::from_utf8_lossy(&o.record).into_owned().into()
                            }
                        };
                        serde_json::json!({"stream": &*o.stream, "key": o.key(), "record": record})
                    })
                    .collect(),
            )
        })
        .collect()
}

fn new(args: &NewArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    let name = args.name.as_str();
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        anyhow::bail!(
            "`{name}` cannot name a plugin: use lower-case letters, digits and `_`, starting with a letter"
        );
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        anyhow::bail!("{} exists already; choose another --dir", dir.display());
    }
    let files = template::files(name, args.lang);
    for (path, text, executable) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        if *executable {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot make {} executable", path.display()))?;
        }
    }
    let next = match args.lang {
        Lang::Rust => "cargo test && ./test.sh",
        Lang::Js => "npm install && npm test",
        Lang::Python => "pip install componentize-py && ./test.sh",
    };
    print_line(
        out,
        &format!(
            "created {} ({} files); next: cd {} && {next}",
            dir.display(),
            files.len(),
            dir.display()
        ),
    )?;
    Ok(Exit::Success)
}

mod template;
