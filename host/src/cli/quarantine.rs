//! `weir quarantine`: shows what the sink quarantined (records neither their
//! stream nor the dead-letter stream would take), from the file
//! `sink.quarantine_file` names.

use super::{Exit, print_line};
use crate::config::Config;
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The configuration whose `sink.quarantine_file` to read.
    #[arg(long, short, conflicts_with = "file")]
    config: Option<PathBuf>,
    /// The quarantine file itself (default: `data/quarantine.jsonl`, the
    /// configuration's default).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Print each entry as its JSON line, whole (payload included).
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: Args, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    let path = match (args.file, args.config) {
        (Some(file), _) => file,
        (None, Some(config)) => Config::load(&config)?.sink.quarantine_file,
        (None, None) => Config::default().sink.quarantine_file,
    };
    let entries = crate::sink::read_quarantine(&path)?;
    let write = |out: &mut (dyn Write + Send), line: &str| {
        print_line(out, line).context("cannot write to stdout")
    };
    for entry in &entries {
        if args.json {
            write(out, &entry.to_string())?;
        } else {
            let text = |name: &str| entry[name].as_str().unwrap_or("").to_owned();
            write(
                out,
                &format!(
                    "{}  stream={}  key={:?}  {}",
                    text("time"),
                    text("stream"),
                    text("key"),
                    text("reason")
                ),
            )?;
        }
    }
    if !args.json {
        write(
            out,
            &format!(
                "{} quarantined record(s) in {}",
                entries.len(),
                path.display()
            ),
        )?;
    }
    Ok(Exit::Success)
}
