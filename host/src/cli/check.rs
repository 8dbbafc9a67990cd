//! `weir check`: the "test connection" of EMQX's dashboard, made to say
//! what is wrong.
//!
//! It Echoes every seed server, describes the cluster, Echoes every running
//! node at the address it advertises (what the sink will dial), and with
//! `--stream` checks that the stream exists. Each step prints one line; the
//! last line is the verdict, and the exit status tells the failures apart:
//! 3 unreachable, 4 TLS, 5 stream missing, 1 anything else.

use super::server_args::ServerArgs;
use super::{Exit, print_line};
use crate::sink::client::{Client, ClientError, NodeAddr};
use anyhow::Context;
use std::collections::BTreeSet;
use std::io::Write;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    server: ServerArgs,

    /// Also check that this stream exists.
    #[arg(long, value_name = "STREAM")]
    stream: Option<String>,
}

const ECHO: &str = "weir check";

pub(crate) async fn run(args: Args, out: &mut (dyn Write + Send)) -> anyhow::Result<Exit> {
    let mut report = Report { out };
    let url = &args.server.server;
    report.line(format!("server:  {url}"))?;
    let client = match args.server.client() {
        Ok(client) => client,
        Err(error) => {
            let exit = Exit::of(&error);
            return report.verdict(exit, format!("{error:#}"));
        }
    };

    // Every seed must answer: a seed that does not is a broken part of the
    // configuration even when another one works.
    let mut echoed = BTreeSet::new();
    let mut failures = Vec::new();
    for seed in url.seeds() {
        if let Err(error) = echo(&client, &mut report, "seed", seed).await? {
            failures.push(error);
        }
        echoed.insert(seed.clone());
    }
    if !failures.is_empty() {
        return report.failed(&client, failures);
    }

    let cluster = match client.describe_cluster().await {
        Ok(cluster) => cluster,
        Err(error) => {
            report.line(format!("cluster: FAILED: {error}"))?;
            return report.failed(&client, vec![error]);
        }
    };
    let running: Vec<_> = cluster.nodes.iter().filter(|n| n.running).collect();
    report.line(format!(
        "cluster: {} node(s), {} running: {}",
        cluster.nodes.len(),
        running.len(),
        running
            .iter()
            .map(|n| format!("node {} at {}", n.id, n.addr))
            .collect::<Vec<_>>()
            .join(", ")
    ))?;
    for node in running {
        if echoed.insert(node.addr.clone()) {
            let what = format!("node {}", node.id);
            if let Err(error) = echo(&client, &mut report, &what, &node.addr).await? {
                failures.push(error);
            }
        }
    }
    if !failures.is_empty() {
        return report.failed(&client, failures);
    }

    let Some(stream) = args.stream else {
        return report.verdict(Exit::Success, format!("HStreamDB at {url} is reachable"));
    };
    match client.get_stream(&stream).await {
        Ok(info) => {
            report.line(format!(
                "stream:  {stream:?} exists ({} shard(s), replication {})",
                info.shards, info.replication
            ))?;
            report.verdict(
                Exit::Success,
                format!("HStreamDB at {url} is reachable and stream {stream:?} exists"),
            )
        }
        Err(error) if error.is_stream_missing() => {
            report.line(format!("stream:  {stream:?} does not exist"))?;
            report.verdict(
                Exit::StreamMissing,
                format!(
                    "stream {stream:?} does not exist on {url} (create it with `weir stream create {stream}`)"
                ),
            )
        }
        Err(error) => {
            report.line(format!("stream:  FAILED: {error}"))?;
            report.failed(&client, vec![error])
        }
    }
}

/// Echoes one server and reports the outcome; the outer error is only a
/// failure to write the report.
async fn echo(
    client: &Client,
    report: &mut Report<'_>,
    what: &str,
    addr: &NodeAddr,
) -> anyhow::Result<Result<(), ClientError>> {
    let started = Instant::now();
    let result = client.echo_at(addr, ECHO).await;
    match &result {
        Ok(()) => report.line(format!(
            "echo:    {what} {addr} answered in {} ms",
            started.elapsed().as_millis()
        ))?,
        Err(error) => report.line(format!("echo:    {what} {addr} FAILED: {error}"))?,
    }
    Ok(result)
}

struct Report<'a> {
    out: &'a mut (dyn Write + Send),
}

impl Report<'_> {
    fn line(&mut self, line: String) -> anyhow::Result<()> {
        print_line(self.out, &line).context("cannot write the report")
    }

    fn verdict(&mut self, exit: Exit, message: String) -> anyhow::Result<Exit> {
        let label = match exit {
            Exit::Success => "OK",
            Exit::Unreachable => "UNREACHABLE",
            Exit::Tls => "TLS FAILURE",
            Exit::StreamMissing => "STREAM MISSING",
            Exit::Failure => "FAILED",
        };
        self.line(format!("{label}: {message}"))?;
        Ok(exit)
    }

    /// The verdict for failed steps: a TLS problem first (it is a
    /// configuration to fix), then any failure other than "unreachable",
    /// then "unreachable".
    fn failed(&mut self, client: &Client, errors: Vec<ClientError>) -> anyhow::Result<Exit> {
        let url = client.url();
        if let Some(error) = errors.iter().find(|e| e.is_tls_failure()) {
            return self.verdict(Exit::Tls, format!("{url}: {error}"));
        }
        if let Some(error) = errors.iter().find(|e| !e.is_unreachable()) {
            let hint = if !url.tls() && matches!(error, ClientError::ConnectionLost { .. }) {
                " (the server closed the connection: if it serves TLS, use hstreams://)"
            } else {
                ""
            };
            return self.verdict(Exit::Failure, format!("{url}: {error}{hint}"));
        }
        match errors.first() {
            Some(error) => self.verdict(Exit::Unreachable, format!("{url}: {error}")),
            None => self.verdict(Exit::Failure, format!("{url} failed the check")),
        }
    }
}
