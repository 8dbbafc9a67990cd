//! The client against an in-process development cluster: appends follow a
//! shard's owner as nodes stop, start and join, and a node the client cannot
//! reach is stood in for while it is reported.

use super::Pki;
use crate::sink::client::*;
use tokio::net::TcpListener;
use tokio::time::Instant;
use weir_devserver::{ClusterConfig, DevCluster, NodeConfig, TlsConfig};
use weir_proto::record::raw_record;

const DEADLINE: Duration = Duration::from_secs(20);

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port")
}

async fn cluster(nodes: &[NodeConfig], strict_ownership: bool) -> DevCluster {
    let mut configured = Vec::new();
    for node in nodes {
        configured.push((listener().await, node.clone()));
    }
    DevCluster::start(
        ClusterConfig {
            strict_ownership,
            ..ClusterConfig::default()
        },
        configured,
    )
    .await
    .expect("the cluster starts")
}

fn seeds(cluster: &DevCluster, scheme: &str) -> ServerUrl {
    let seeds: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|n| n.advertised.clone())
        .collect();
    format!("{scheme}://{}", seeds.join(","))
        .parse()
        .expect("valid URL")
}

fn plain_nodes(count: u32) -> Vec<NodeConfig> {
    (1..=count)
        .map(|id| NodeConfig {
            id,
            ..NodeConfig::default()
        })
        .collect()
}

/// Appends one record to `shard`, retrying as the sink does (the client
/// re-learns ownership after each failure) until it is stored.
async fn append_until_stored(client: &Client, stream: &str, shard: u64, payload: &str) -> u32 {
    let deadline = Instant::now() + DEADLINE;
    let mut failures = 0;
    loop {
        let records = vec![raw_record("k", payload.as_bytes().to_vec())];
        match client
            .append(stream, shard, records, Compression::None)
            .await
        {
            Ok(ids) => {
                assert_eq!(ids.len(), 1);
                return failures;
            }
            Err(error) => {
                assert!(
                    error.is_retriable() || error.is_wrong_server() || error.is_shard_gone(),
                    "a routing failure must be retriable: {error}"
                );
                failures += 1;
                assert!(Instant::now() < deadline, "never stored: {error}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

fn owner_of(client: &Client, shard: u64) -> NodeAddr {
    client
        .cluster_view()
        .routes
        .into_iter()
        .find(|r| r.shard_id == shard)
        .map(|r| r.owner)
        .expect("the shard's owner is known")
}

fn node_id(cluster: &DevCluster, addr: &NodeAddr) -> u32 {
    cluster
        .nodes()
        .into_iter()
        .find(|n| n.advertised == addr.to_string())
        .map(|n| n.id)
        .expect("a node of the cluster")
}

#[tokio::test]
async fn appends_follow_the_owner_as_nodes_stop_start_and_join() {
    // Strict ownership: an append that reaches a node other than the owner
    // is refused, so every stored record proves the routing.
    let cluster = cluster(&plain_nodes(3), true).await;
    let client = Client::new(seeds(&cluster, "hstream"), ClientOptions::default()).expect("client");
    client
        .create_stream("s", 8, 1, Duration::ZERO)
        .await
        .expect("create");
    let shards: Vec<u64> = client
        .shards("s")
        .await
        .expect("shards")
        .shard_ids()
        .collect();
    let mut stored = 0;
    for &shard in &shards {
        append_until_stored(&client, "s", shard, "first").await;
        stored += 1;
    }
    let view = client.cluster_view();
    assert_eq!(view.nodes.len(), 3);
    assert!(
        view.nodes
            .iter()
            .all(|n| n.state == "running" && n.last_error.is_none())
    );
    assert_eq!(view.routes.len(), shards.len());
    assert_eq!(view.reroutes, 0);

    // The owner of the first shard leaves.
    let busiest = shards[0];
    let owner = owner_of(&client, busiest);
    let leaving = node_id(&cluster, &owner);
    cluster.stop_node(leaving).await.expect("stop");
    append_until_stored(&client, "s", busiest, "while a node is down").await;
    stored += 1;
    let moved_to = owner_of(&client, busiest);
    assert_ne!(moved_to, owner, "the shard moved off the stopped node");
    let view = client.cluster_view();
    assert!(view.reroutes >= 1, "{view:?}");
    let dead = view
        .nodes
        .iter()
        .find(|n| n.addr == owner)
        .expect("still listed");
    assert_eq!(dead.state, "dead");

    // It comes back and takes its shard again.
    cluster.start_node(leaving).await.expect("restart");
    let reroutes = client.cluster_view().reroutes;
    let deadline = Instant::now() + DEADLINE;
    // The client learns the move from the moved-to node's refusal.
    while owner_of(&client, busiest) != owner {
        append_until_stored(&client, "s", busiest, "after the restart").await;
        stored += 1;
        assert!(Instant::now() < deadline, "the shard never went back");
    }
    assert!(client.cluster_view().reroutes > reroutes);

    // A fourth node joins: every shard it now owns follows it.
    cluster
        .add_node(
            listener().await,
            NodeConfig {
                id: 4,
                ..NodeConfig::default()
            },
        )
        .await
        .expect("a node joins");
    for &shard in &shards {
        append_until_stored(&client, "s", shard, "after the join").await;
        stored += 1;
    }
    let records = client.read_stored("s").await.expect("read back");
    assert_eq!(records.len(), stored, "every append stored exactly once");
    cluster.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_node_with_an_untrusted_certificate_is_reported_and_stood_in_for() {
    let dir = tempfile::tempdir().expect("temp dir");
    let trusted = Pki::new();
    let other = Pki::new();
    let tls = |pki: &Pki, name: &str| TlsConfig {
        cert: pki.write(dir.path(), &format!("{name}.pem"), &pki.server.0),
        key: pki.write(dir.path(), &format!("{name}.key"), &pki.server.1),
        client_ca: None,
    };
    let nodes = [
        NodeConfig {
            id: 1,
            tls: Some(tls(&trusted, "good")),
            advertised_host: None,
        },
        NodeConfig {
            id: 2,
            tls: Some(tls(&other, "bad")),
            advertised_host: None,
        },
    ];
    let cluster = cluster(&nodes, false).await;
    let bad = cluster.nodes()[1].advertised.clone();
    let client = Client::new(
        seeds(&cluster, "hstreams"),
        ClientOptions {
            tls: TlsOptions {
                ca_file: Some(trusted.write(dir.path(), "ca.pem", &trusted.ca)),
                ..TlsOptions::default()
            },
            ..ClientOptions::default()
        },
    )
    .expect("client");
    client
        .create_stream("s", 8, 1, Duration::ZERO)
        .await
        .expect("create through the trusted node");
    let shards: Vec<u64> = client
        .shards("s")
        .await
        .expect("shards")
        .shard_ids()
        .collect();
    for &shard in &shards {
        append_until_stored(&client, "s", shard, "r").await;
    }
    let view = client.cluster_view();
    let reported = view
        .nodes
        .iter()
        .find(|n| n.addr.to_string() == bad)
        .expect("the bad node is listed");
    let error = reported
        .last_error
        .as_deref()
        .expect("the bad node is reported");
    assert!(error.contains("TLS"), "{error}");
    let good = view
        .nodes
        .iter()
        .find(|n| n.addr.to_string() != bad)
        .expect("good node");
    assert!(good.last_error.is_none(), "{good:?}");
    let stood_in: Vec<_> = view.routes.iter().filter(|r| r.via.is_some()).collect();
    assert!(
        !stood_in.is_empty() && stood_in.iter().all(|r| r.owner.to_string() == bad),
        "the bad node's shards go through the good one: {:?}",
        view.routes
    );
    assert_eq!(
        client.read_stored("s").await.expect("read").len(),
        shards.len()
    );
    cluster.shutdown().await.expect("shutdown");
}
