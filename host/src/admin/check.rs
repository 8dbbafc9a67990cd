//! The "test connection" of EMQX's dashboard, made to say what is wrong:
//! shared by `weir check` and `POST /api/v1/connectors/hstreamdb/test`.
//!
//! It Echoes every seed server, describes the cluster, Echoes every running
//! node at the address it advertises (what the sink will dial), naming each
//! by its id, and checks that the given streams exist. Every seed and every
//! node must answer for the check to pass. EMQX's test is a single Echo, so it reports
//! "connected" for a cluster whose nodes advertise unreachable addresses or
//! whose stream was deleted; this one names the failing step.

use crate::sink::client::{Client, ClientError, NodeAddr};
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Instant;

const ECHO: &str = "weir check";

/// What a step checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StepKind {
    Echo,
    Cluster,
    Stream,
}

impl StepKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StepKind::Echo => "echo",
            StepKind::Cluster => "cluster",
            StepKind::Stream => "stream",
        }
    }
}

/// One step of the check and how it went, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Step {
    pub check: StepKind,
    pub ok: bool,
    pub message: String,
}

/// The outcome, telling apart the failures an operator fixes differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    Ok,
    /// A server refused, did not resolve or timed out.
    Unreachable,
    /// TLS files unusable or the handshake failed.
    TlsFailure,
    /// The servers answer but a stream does not exist.
    StreamMissing,
    /// Anything else.
    Failed,
}

/// Every step taken and the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Outcome {
    pub verdict: Verdict,
    /// The verdict in one line, naming the URL and what failed.
    pub message: String,
    pub steps: Vec<Step>,
}

/// Runs the check; `on_step` sees each step as it finishes (the CLI prints
/// them as they come, since a step may wait for a connect timeout).
pub(crate) async fn test_connection(
    client: &Client,
    streams: &[String],
    mut on_step: impl FnMut(&Step),
) -> Outcome {
    let mut steps = Vec::new();
    let mut step = |check: StepKind, ok: bool, message: String| {
        let step = Step { check, ok, message };
        on_step(&step);
        steps.push(step);
    };
    let url = client.url().to_string();

    // Every seed must answer: a seed that does not is a broken part of the
    // configuration even when another one works.
    // While one seed answers, the check goes on, so that the nodes are
    // reported one by one (a seed that failed is Echoed again as its node,
    // to name it).
    let mut echoed = BTreeSet::new();
    let mut failures = Vec::new();
    for seed in client.url().seeds() {
        match echo(client, "seed", seed, &mut step).await {
            Ok(()) => {
                echoed.insert(seed.clone());
            }
            Err(error) => failures.push(error),
        }
    }
    if echoed.is_empty() {
        return failed(client, &failures, steps);
    }

    let cluster = match client.describe_cluster().await {
        Ok(cluster) => cluster,
        Err(error) => {
            step(StepKind::Cluster, false, format!("FAILED: {error}"));
            return failed(client, &[error], steps);
        }
    };
    let running: Vec<_> = cluster.nodes.iter().filter(|n| n.running).collect();
    step(
        StepKind::Cluster,
        !running.is_empty(),
        format!(
            "{} node(s), {} running: {}",
            cluster.nodes.len(),
            running.len(),
            running
                .iter()
                .map(|n| format!("node {} at {}", n.id, n.addr))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    for node in running {
        if echoed.insert(node.addr.clone()) {
            let what = format!("node {}", node.id);
            if let Err(error) = echo(client, &what, &node.addr, &mut step).await {
                failures.push(error);
            }
        }
    }
    if !failures.is_empty() {
        return failed(client, &failures, steps);
    }

    let mut missing = Vec::new();
    for stream in streams {
        match client.get_stream(stream).await {
            Ok(info) => step(
                StepKind::Stream,
                true,
                format!(
                    "{stream:?} exists ({} shard(s), replication {})",
                    info.shards, info.replication
                ),
            ),
            Err(error) if error.is_stream_missing() => {
                step(
                    StepKind::Stream,
                    false,
                    format!("{stream:?} does not exist"),
                );
                missing.push(stream.as_str());
            }
            Err(error) => {
                step(
                    StepKind::Stream,
                    false,
                    format!("{stream:?} FAILED: {error}"),
                );
                failures.push(error);
            }
        }
    }
    if !failures.is_empty() {
        return failed(client, &failures, steps);
    }
    let quoted = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (verdict, message) = match (missing.as_slice(), streams) {
        ([stream], _) => (
            Verdict::StreamMissing,
            format!(
                "stream {stream:?} does not exist on {url} (create it with `weir stream create {stream}`)"
            ),
        ),
        ([_, ..], _) => (
            Verdict::StreamMissing,
            format!(
                "streams {} do not exist on {url} (create them with `weir stream create NAME`)",
                quoted(&missing)
            ),
        ),
        ([], []) => (Verdict::Ok, format!("HStreamDB at {url} is reachable")),
        ([], [stream]) => (
            Verdict::Ok,
            format!("HStreamDB at {url} is reachable and stream {stream:?} exists"),
        ),
        ([], streams) => {
            let names: Vec<&str> = streams.iter().map(String::as_str).collect();
            (
                Verdict::Ok,
                format!(
                    "HStreamDB at {url} is reachable and streams {} exist",
                    quoted(&names)
                ),
            )
        }
    };
    Outcome {
        verdict,
        message,
        steps,
    }
}

/// Echoes one server and records the outcome.
async fn echo(
    client: &Client,
    what: &str,
    addr: &NodeAddr,
    step: &mut impl FnMut(StepKind, bool, String),
) -> Result<(), ClientError> {
    let started = Instant::now();
    let result = client.echo_at(addr, ECHO).await;
    match &result {
        Ok(()) => step(
            StepKind::Echo,
            true,
            format!(
                "{what} {addr} answered in {} ms",
                started.elapsed().as_millis()
            ),
        ),
        Err(error) => step(
            StepKind::Echo,
            false,
            format!("{what} {addr} FAILED: {error}"),
        ),
    }
    result
}

/// The verdict for failed steps: a TLS problem first (it is a configuration
/// to fix), then any failure other than "unreachable", then "unreachable".
fn failed(client: &Client, errors: &[ClientError], steps: Vec<Step>) -> Outcome {
    let url = client.url();
    let (verdict, message) = if let Some(error) = errors.iter().find(|e| e.is_tls_failure()) {
        (Verdict::TlsFailure, format!("{url}: {error}"))
    } else if let Some(error) = errors.iter().find(|e| !e.is_unreachable()) {
        let hint = if !url.tls() && matches!(error, ClientError::ConnectionLost { .. }) {
            " (the server closed the connection: if it serves TLS, use hstreams://)"
        } else {
            ""
        };
        (Verdict::Failed, format!("{url}: {error}{hint}"))
    } else if let Some(error) = errors.first() {
        (Verdict::Unreachable, format!("{url}: {error}"))
    } else {
        (Verdict::Failed, format!("{url} failed the check"))
    };
    Outcome {
        verdict,
        message,
        steps,
    }
}
