//! `weir completions SHELL` and `weir man`: shell completions and man pages
//! generated from the same clap definition that parses the command line, so
//! they cannot describe options weir does not have.

use super::{Cli, Exit};
use anyhow::Context;
use clap::CommandFactory;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for, e.g. `weir completions bash >
    /// /etc/bash_completion.d/weir`.
    shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ManArgs {
    /// Write a page per command (weir.1, weir-ctl.1, weir-ctl-rules.1, ...)
    /// into this directory instead of printing weir.1.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

pub(crate) fn completions(
    args: &CompletionsArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Exit> {
    let mut command = Cli::command();
    // Into memory first: clap_complete panics on a write error, and a closed
    // pipe (`weir completions bash | head`) is not a reason to.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "weir", &mut script);
    out.write_all(&script)?;
    out.flush()?;
    Ok(Exit::Success)
}

pub(crate) fn man(args: &ManArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    let command = Cli::command();
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
            super::print_line(out, &format!("wrote the man pages into {}", dir.display()))?;
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .context("cannot render the man page")?;
            out.write_all(&page)?;
            out.flush()?;
        }
    }
    Ok(Exit::Success)
}
