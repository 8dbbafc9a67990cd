//! `weir check`: the "test connection" of EMQX's dashboard, made to say
//! what is wrong.
//!
//! It runs [`crate::admin::check`] (the same check as the admin API's
//! connector test) and prints one line per step; the last line is the
//! verdict, and the exit status tells the failures apart: 3 unreachable,
//! 4 TLS, 5 stream missing, 1 anything else.

use super::server_args::ServerArgs;
use super::{Exit, print_line};
use crate::admin::check::{Verdict, test_connection};
use anyhow::Context;
use std::io::Write;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    server: ServerArgs,

    /// Also check that this stream exists.
    #[arg(long, value_name = "STREAM")]
    stream: Option<String>,
}

pub(crate) async fn run(args: Args, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    print_line(out, &format!("server:  {}", args.server.server)).context(WRITE)?;
    let client = match args.server.client() {
        Ok(client) => client,
        Err(error) => {
            let exit = Exit::of(&error);
            print_line(out, &format!("{}: {error:#}", label(exit))).context(WRITE)?;
            return Ok(exit);
        }
    };
    let streams: Vec<String> = args.stream.into_iter().collect();
    let mut written = Ok(());
    let outcome = test_connection(&client, &streams, |step| {
        if written.is_ok() {
            let check = format!("{}:", step.check.as_str());
            written = print_line(out, &format!("{check:<8} {}", step.message));
        }
    })
    .await;
    written.context(WRITE)?;
    let exit = match outcome.verdict {
        Verdict::Ok => Exit::Success,
        Verdict::Unreachable => Exit::Unreachable,
        Verdict::TlsFailure => Exit::Tls,
        Verdict::StreamMissing => Exit::StreamMissing,
        Verdict::Failed => Exit::Failure,
    };
    print_line(out, &format!("{}: {}", label(exit), outcome.message)).context(WRITE)?;
    Ok(exit)
}

const WRITE: &str = "cannot write the report";

fn label(exit: Exit) -> &'static str {
    match exit {
        Exit::Success => "OK",
        Exit::Unreachable => "UNREACHABLE",
        Exit::Tls => "TLS FAILURE",
        Exit::StreamMissing => "STREAM MISSING",
        Exit::Failure => "FAILED",
    }
}
