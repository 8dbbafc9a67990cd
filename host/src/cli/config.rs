//! `weir config check FILE`: validates a configuration file (with the
//! `WEIR_...` overrides of the environment) without starting anything.

use super::{Exit, print_line};
use crate::config::Config;
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Check a configuration file and print the first problem, if any.
    Check {
        /// The configuration file.
        file: PathBuf,
    },
}

pub(crate) async fn run(command: Command, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    match command {
        Command::Check { file } => match Config::load(&file) {
            Ok(_) => {
                print_line(out, &format!("{}: OK", file.display()))
                    .context("cannot write to stdout")?;
                Ok(Exit::Success)
            }
            Err(error) => {
                print_line(out, &format!("INVALID: {error}")).context("cannot write to stdout")?;
                Ok(Exit::Failure)
            }
        },
    }
}
