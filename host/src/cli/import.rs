//! `weir import emqx FILE... -o DIR [--force] [--mqtt bridge|listener]`: writes a weir directory
//! (weir.toml, plugins/NAME.rule.toml) from an EMQX 5 configuration or its
//! REST API answers, and prints what was mapped, what has no weir
//! equivalent, what behaves differently and which rules were refused.

use super::{Exit, print_line};
use crate::import::{ImportOptions, import_emqx};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Import an EMQX 5 setup: HOCON (emqx.conf, cluster.conf) or the JSON of
    /// GET /api/v5/rules, /actions, /connectors, /bridges. Exits 1 when a
    /// rule was refused (the rest is written).
    Emqx(EmqxArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct EmqxArgs {
    /// EMQX files; later files override earlier ones, as EMQX layers its
    /// configuration.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The directory to write weir.toml and plugins/ into.
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Overwrite files that exist.
    #[arg(long)]
    force: bool,
    /// How devices reach weir: `bridge` (weir subscribes to the EMQX broker,
    /// which stays) or `listener` (devices connect to weir; EMQX's TCP
    /// listener address is taken over).
    #[arg(long, value_enum, default_value_t = Mqtt::Bridge)]
    mqtt: Mqtt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mqtt {
    Bridge,
    Listener,
}

pub(crate) async fn run(command: Command, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    let Command::Emqx(args) = command;
    let options = ImportOptions {
        force: args.force,
        listener: args.mqtt == Mqtt::Listener,
    };
    let report =
        tokio::task::spawn_blocking(move || import_emqx(&args.files, &args.output, &options))
            .await??;
    for line in report.to_string().lines() {
        print_line(out, line)?;
    }
    Ok(if report.refused_any() {
        Exit::Failure
    } else {
        Exit::Success
    })
}
