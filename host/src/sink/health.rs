//! The periodic health check behind the connector status: is the cluster
//! reachable, node by node, and do the target streams exist?
//!
//! Every running node is Echoed at the address it advertises, so a node
//! weir cannot reach (down, a certificate it does not trust) is named
//! while the others keep the connector connected; the client keeps the
//! per-node result for the admin API and metrics.
//!
//! EMQX only echoes the server and never looks at the stream, so an action
//! writing to a deleted stream shows "connected" while it drops everything;
//! weir names the missing streams instead.

use super::client::Client;
use super::metrics::{ConnectorState, ConnectorStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// Checks every `interval`, and at once when the targets change.
/// `appends_failing` is set while appends fail: the connector is not
/// connected then, whatever the check says, and the append's error stays.
pub(crate) async fn run(
    client: Client,
    interval: Duration,
    mut targets: watch::Receiver<Vec<Arc<str>>>,
    status: watch::Sender<ConnectorStatus>,
    appends_failing: Arc<AtomicBool>,
) {
    loop {
        let names = targets.borrow_and_update().clone();
        let (state, error, missing) = check(&client, &names).await;
        let failing = appends_failing.load(Ordering::Relaxed);
        status.send_modify(|status| {
            status.state = match state {
                // Never connected yet: still connecting, as EMQX says.
                ConnectorState::Disconnected if status.state == ConnectorState::Connecting => {
                    ConnectorState::Connecting
                }
                ConnectorState::Connected if failing => ConnectorState::Disconnected,
                state => state,
            };
            if !failing || error.is_some() {
                status.last_error = error;
            }
            status.missing_streams = missing;
            status.checked_at = Some(SystemTime::now());
        });
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            changed = targets.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

async fn check(
    client: &Client,
    targets: &[Arc<str>],
) -> (ConnectorState, Option<String>, Vec<String>) {
    let cluster = match client.describe_cluster().await {
        Ok(cluster) => cluster,
        Err(error) => {
            return (
                ConnectorState::Disconnected,
                Some(error.to_string()),
                Vec::new(),
            );
        }
    };
    let mut failing_nodes = Vec::new();
    let mut reachable = 0;
    for node in cluster.nodes.iter().filter(|n| n.running) {
        match client.echo_at(&node.addr, "weir health check").await {
            Ok(()) => reachable += 1,
            Err(error) => failing_nodes.push(format!("node {}: {error}", node.id)),
        }
    }
    if reachable == 0 {
        return (
            ConnectorState::Disconnected,
            Some(failing_nodes.join("; ")),
            Vec::new(),
        );
    }
    let mut missing = Vec::new();
    let mut last_error = (!failing_nodes.is_empty()).then(|| failing_nodes.join("; "));
    for name in targets {
        match client.stream_exists(name).await {
            Ok(true) => {}
            Ok(false) => missing.push(name.to_string()),
            Err(error) => last_error = Some(error.to_string()),
        }
    }
    if !missing.is_empty() && last_error.is_none() {
        last_error = Some(format!(
            "target streams do not exist: {}",
            missing.join(", ")
        ));
    }
    (ConnectorState::Connected, last_error, missing)
}
