//! The `weir` command line.
//!
//! Each subcommand lives in its own module with its clap arguments and a
//! `run` function; this module parses the command line, sets up logging
//! and the tokio runtime, and turns the outcome into the process exit
//! status. Commands write their results to the `out` they are given (stdout
//! in the binary) so they can be run in-process by tests; logs go to stderr.
//!
//! New commands (`weir dev`, `weir run`, `weir rule ...`, `weir config
//! check`, `weir import emqx`) are new variants of [`Command`] with a module of their own.

mod check;
mod config;
mod ctl;
mod dev;
mod devserver;
mod docs;
mod import;
mod listen;
mod passwd;
mod plugin;
mod quarantine;
mod rule;
mod run;
mod seed;
mod server_args;
mod signal;
mod stream;
mod table;

use crate::sink::client::ClientError;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (anything not listed below)
  2  bad command line
  3  HStreamDB server unreachable (refused, unresolvable, timed out)
  4  TLS failure (TLS files unusable or TLS handshake failed)
  5  stream missing";

/// weir: a WebAssembly-extensible MQTT → HStreamDB gateway.
#[derive(Debug, Parser)]
#[command(name = "weir", version, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    #[command(flatten)]
    logging: LogArgs,
    /// Threads that run weir's async tasks (MQTT, the sink, the admin API);
    /// rules run on threads of their own. Default: half the CPUs, at least
    /// one (docs/benchmarks.md has the measurement behind it).
    #[arg(long, global = true, env = "WEIR_WORKER_THREADS", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..), help_heading = GLOBAL_OPTIONS)]
    worker_threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct LogArgs {
    /// Format of the logs written to stderr: human-readable lines, or one
    /// JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text,
          help_heading = GLOBAL_OPTIONS)]
    log_format: LogFormat,
    /// Log more: -v info, -vv debug, -vvv trace (default: warnings). RUST_LOG,
    /// when set, takes precedence.
    #[arg(short, long, global = true, action = clap::ArgAction::Count,
          help_heading = GLOBAL_OPTIONS)]
    verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole gateway locally: MQTT listener, HStreamDB-compatible
    /// server and the plugins directory, with no other set-up.
    Dev(dev::Args),
    /// Run the gateway from a configuration file.
    Run(run::Args),
    /// Check configuration files.
    #[command(subcommand)]
    Config(config::Command),
    /// Run an HStreamDB-compatible server for development and tests.
    Devserver(devserver::Args),
    /// Test the connection to HStreamDB, and that a stream exists.
    #[command(after_help = EXIT_CODES)]
    Check(check::Args),
    /// Compile a rule file to Wasm, or run it on events.
    #[command(subcommand)]
    Rule(rule::Command),
    /// Create a plugin project (Rust, JavaScript, Python), or run a built
    /// plugin on events.
    #[command(subcommand)]
    Plugin(plugin::Command),
    /// Create, list, delete and read streams.
    #[command(subcommand)]
    Stream(stream::Command),
    /// Move a setup from elsewhere to weir (`weir import emqx`).
    #[command(subcommand)]
    Import(import::Command),
    /// Operate a running weir through its admin API: status, rules,
    /// plugins, the connector, streams.
    Ctl(ctl::Args),
    /// Print shell completions for weir.
    Completions(docs::CompletionsArgs),
    /// Print weir's man page, or write one per command.
    Man(docs::ManArgs),
    /// Show the records the sink quarantined (stored nowhere else).
    Quarantine(quarantine::Args),
    /// Hash a password for a listener user (`password_hash` in weir.toml).
    Passwd(passwd::Args),
}

/// The heading of the options every command takes.
const GLOBAL_OPTIONS: &str = "Global options";

/// The process exit status, shared by every command (see [`EXIT_CODES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Success = 0,
    Failure = 1,
    Unreachable = 3,
    Tls = 4,
    StreamMissing = 5,
}

impl Exit {
    /// The status for a failed command: its cause, when the cause is one of
    /// the client errors with a status of its own.
    fn of(error: &anyhow::Error) -> Exit {
        error
            .chain()
            .find_map(|cause| cause.downcast_ref::<ClientError>())
            .map_or(Exit::Failure, Exit::of_client)
    }

    pub(crate) fn of_client(error: &ClientError) -> Exit {
        if error.is_tls_failure() {
            Exit::Tls
        } else if error.is_stream_missing() {
            Exit::StreamMissing
        } else if error.is_unreachable() {
            Exit::Unreachable
        } else {
            Exit::Failure
        }
    }
}

/// Runs `weir` with the process arguments and returns its exit status.
pub fn main() -> ExitCode {
    // clap prints usage errors and exits with status 2 itself.
    let cli = Cli::parse();
    if let Err(error) = init_logging(&cli.logging) {
        eprintln!("error: {}", error_chain(&error));
        return ExitCode::FAILURE;
    }
    let workers = cli
        .worker_threads
        .map_or_else(default_worker_threads, usize::from);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let exit = match runtime.block_on(run(cli.command, &mut std::io::stdout())) {
        Ok(exit) => exit,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            Exit::of(&error)
        }
    };
    ExitCode::from(exit as u8)
}

/// Half the CPUs, rounded up. weir's async tasks mostly move data between
/// sockets and channels; the CPU-heavy stage (Wasm rules) has a thread of
/// its own besides them, and a worker per CPU on top of that only adds
/// cross-thread wake-ups: on 2 CPUs, one worker did the same work with 12 %
/// less CPU than two.
fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |cpus| cpus.get().div_ceil(2))
}

/// The error and its causes on one line, each said once: many error types
/// (weir's and libraries') already include their source in their message,
/// so anyhow's `{:#}` would repeat it.
fn error_chain(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

async fn run(command: Command, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    match command {
        Command::Dev(args) => dev::run(args, out).await,
        Command::Run(args) => run::run(args, out).await,
        Command::Config(command) => config::run(command, out).await,
        Command::Devserver(args) => devserver::run(args, out).await,
        Command::Check(args) => check::run(args, out).await,
        Command::Stream(command) => stream::run(command, out).await,
        Command::Rule(command) => rule::run(command, out).await,
        Command::Plugin(command) => plugin::run(command, out).await,
        Command::Import(command) => import::run(command, out).await,
        Command::Ctl(args) => ctl::run(args, out).await,
        Command::Completions(args) => docs::completions(&args, out),
        Command::Man(args) => docs::man(&args, out),
        Command::Quarantine(args) => quarantine::run(args, out).await,
        Command::Passwd(args) => passwd::run(args, out).await,
    }
}

fn init_logging(args: &LogArgs) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::filter::LevelFilter;

    let level = match args.verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env()
        .map_err(|e| anyhow::anyhow!("RUST_LOG is not a valid log filter: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match args.log_format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

/// Writes one line of command output and flushes it, so a reader of a pipe
/// sees each line at once.
pub(crate) fn print_line(out: &mut (dyn Write + Send), line: &str) -> std::io::Result<()> {
    writeln!(out, "{line}")?;
    out.flush()
}

#[cfg(test)]
mod tests;
