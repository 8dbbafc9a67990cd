//! `weir rule`: compile a rule file to a Wasm module, or run it on events.
//!
//! `weir rule compile FILE -o OUT.wasm [--manifest OUT.toml]` checks
//! `FILE` and writes the module it runs in (weir's rule runtime) and, with
//! `--manifest`, a plugin manifest that carries the compiled program, so
//! that the two load as a plain plugin and can be inspected and shipped. `weir rule test FILE --event EVENT.json` runs the
//! rule in the real rule engine on each event (a JSON object with EMQX's
//! column names, or an array of them) and prints the stream, key and
//! record exactly as they would be stored.

use super::{Exit, print_line};
use crate::rules::compile::{CompiledRule, RuleError, event_from_json};
use crate::rules::{RecordFlag, RuleTrial};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Compile a rule file (NAME.rule.toml) to a Wasm module.
    Compile(CompileArgs),
    /// Run a rule file on events and print the records it makes.
    Test(TestArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct CompileArgs {
    /// The rule file.
    file: PathBuf,
    /// Where to write the module.
    #[arg(short, long, value_name = "OUT.wasm")]
    output: PathBuf,
    /// Also write a plugin manifest, so that OUT.wasm + this file load as a
    /// plugin.
    #[arg(long, value_name = "OUT.toml")]
    manifest: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// The rule file.
    file: PathBuf,
    /// A JSON file with one event (an object with EMQX's column names, e.g.
    /// {"topic": "t/1", "payload": {"temp": 20}}) or an array of events.
    /// May be given several times.
    #[arg(long, value_name = "EVENT.json", required = true)]
    event: Vec<PathBuf>,
}

pub(crate) async fn run(command: Command, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    match command {
        Command::Compile(args) => compile(&args, out),
        Command::Test(args) => test(args, out).await,
    }
}

fn read_rule(file: &Path) -> anyhow::Result<(String, CompiledRule)> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let rule = CompiledRule::compile(&text, file).map_err(explain)?;
    Ok((text, rule))
}

/// The error with the offending line and a caret under the position.
fn explain(e: RuleError) -> anyhow::Error {
    match e.snippet() {
        Some(snippet) => anyhow::anyhow!("{e}\n{snippet}"),
        None => anyhow::anyhow!("{e}"),
    }
}

fn compile(args: &CompileArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let (_, rule) = read_rule(&args.file)?;
    let took = started.elapsed();
    // `test` loads the rule into the engine, which logs these itself.
    for warning in rule.warnings() {
        eprintln!("warning: {}: {warning}", args.file.display());
    }
    std::fs::write(&args.output, rule.wasm())
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    if let Some(path) = &args.manifest {
        std::fs::write(path, rule.manifest_toml())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    print_line(
        out,
        &format!(
            "wrote {} (weir's rule runtime, {} bytes; the rule compiled in {:.1} ms): FROM {}, stream {}, fields [{}]",
            args.output.display(),
            rule.wasm().len(),
            took.as_secs_f64() * 1e3,
            rule.sources().join(", "),
            rule.stream(),
            rule.fields().join(", "),
        ),
    )?;
    Ok(Exit::Success)
}

async fn test(args: TestArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    if super::plugin::is_manifest(&args.file) {
        // A plugin's manifest, not a rule file: run the plugin beside it.
        return super::plugin::test_files(&args.file, &args.event, None, out).await;
    }
    let (text, rule) = read_rule(&args.file)?;
    let events = read_events(&args.event)?;
    let name = args
        .file
        .file_name()
        .and_then(|f| f.to_str())
        .map(|f| {
            f.trim_end_matches(".toml")
                .trim_end_matches(".rule")
                .to_owned()
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "rule".into());
    let total = events.len();
    let batch = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        Ok(RuleTrial::new()?.run(&name, &text, &events)?)
    })
    .await
    .context("the rule engine stopped")??;
    let none = format!(
        "no record (the event is not from {}, or WHERE is not true)",
        rule.sources().join(", ")
    );
    let failed = print_batch(&batch, total, &none, out)?;
    Ok(if failed { Exit::Failure } else { Exit::Success })
}

/// Events from JSON files, each an object with EMQX's column names or an
/// array of them; errors name the file and the event.
pub(super) fn read_events(paths: &[PathBuf]) -> anyhow::Result<Vec<crate::event::Event>> {
    let mut events = Vec::new();
    for path in paths {
        let raw = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&raw)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let list = match json {
            serde_json::Value::Array(list) => list,
            one => vec![one],
        };
        for (i, v) in list.iter().enumerate() {
            events.push(
                event_from_json(v)
                    .with_context(|| format!("{} (event {})", path.display(), i + 1))?,
            );
        }
    }
    Ok(events)
}

/// Prints, per event, the records a batch would store and its errors
/// (`none` when it has neither); true when any event had an error.
pub(super) fn print_batch(
    batch: &crate::rules::BatchOutput,
    total: usize,
    none: &str,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<bool> {
    let mut failed = false;
    for i in 0..total {
        print_line(out, &format!("event {}:", i + 1))?;
        let mut any = false;
        for o in batch.outputs.iter().filter(|o| o.event == i) {
            any = true;
            let format = if o.flag == RecordFlag::Raw {
                "raw"
            } else {
                "hrecord"
            };
            print_line(out, &format!("  stream: {}", o.stream))?;
            print_line(out, &format!("  key: {}", o.key()))?;
            print_line(out, &format!("  format: {format}"))?;
            print_line(
                out,
                &format!("  record: {}", String::from_utf8_lossy(&o.record)),
            )?;
        }
        for e in batch.errors.iter().filter(|e| e.event == i) {
            any = true;
            failed = true;
            print_line(out, &format!("  error: {}", e.message))?;
        }
        if !any {
            print_line(out, &format!("  {none}"))?;
        }
    }
    Ok(failed)
}
