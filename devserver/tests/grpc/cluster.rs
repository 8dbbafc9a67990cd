//! The server as a cluster: every node answers for the whole cluster over
//! one shared store, and ownership follows a consistent hash ring of the
//! running nodes as nodes stop, start and join.

use crate::{Client, append, body, create_stream, raw_batch};
use std::collections::BTreeMap;
use tokio::net::TcpListener;
use tonic::Code;
use weir_devserver::{ClusterConfig, DevCluster, NodeConfig};
use weir_proto::pb::devserver::cluster_control_client::ClusterControlClient;
use weir_proto::pb::devserver::fault_control_client::FaultControlClient;
use weir_proto::pb::devserver::{FaultPlan, InjectedFailure, NodeRequest};
use weir_proto::pb::h_stream_api_client::HStreamApiClient;
use weir_proto::pb::{
    LookupResourceRequest, LookupShardRequest, NodeState, ReadStreamRequest, ResourceType,
};
use weir_proto::record::Compression;

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port")
}

async fn cluster(nodes: u32, strict_ownership: bool) -> DevCluster {
    let mut configured = Vec::new();
    for id in 100..100 + nodes {
        configured.push((
            listener().await,
            NodeConfig {
                id,
                ..NodeConfig::default()
            },
        ));
    }
    DevCluster::start(
        ClusterConfig {
            strict_ownership,
            ..ClusterConfig::default()
        },
        configured,
    )
    .await
    .expect("cluster starts")
}

async fn client_at(cluster: &DevCluster, id: u32) -> Client {
    let node = cluster
        .nodes()
        .into_iter()
        .find(|n| n.id == id)
        .expect("node exists");
    HStreamApiClient::connect(format!("http://{}", node.listen))
        .await
        .expect("client connects")
}

/// Shard id → the node id LookupShard names, asked at `client`.
async fn owners(client: &mut Client, shards: &[u64]) -> BTreeMap<u64, u32> {
    let mut owners = BTreeMap::new();
    for &shard_id in shards {
        let node = client
            .lookup_shard(LookupShardRequest { shard_id })
            .await
            .expect("lookup")
            .into_inner()
            .server_node
            .expect("a node");
        owners.insert(shard_id, node.id);
    }
    owners
}

#[tokio::test]
async fn every_node_describes_the_cluster_and_agrees_on_owners() {
    let cluster = cluster(3, false).await;
    let mut first = client_at(&cluster, 100).await;
    let mut third = client_at(&cluster, 102).await;
    let described = third
        .describe_cluster(())
        .await
        .expect("describe")
        .into_inner();
    let ids: Vec<u32> = described.server_nodes.iter().map(|n| n.id).collect();
    assert_eq!(ids, [100, 101, 102]);
    assert!(
        described
            .server_nodes_status
            .iter()
            .all(|s| s.state == NodeState::Running as i32)
    );
    for (node, info) in described.server_nodes.iter().zip(cluster.nodes()) {
        assert_eq!(format!("{}:{}", node.host, node.port), info.advertised);
    }

    let shards: Vec<u64> = create_stream(&mut first, "s", 12)
        .await
        .iter()
        .map(|s| s.shard_id)
        .collect();
    let at_first = owners(&mut first, &shards).await;
    assert_eq!(owners(&mut third, &shards).await, at_first);
    let distinct: std::collections::BTreeSet<_> = at_first.values().collect();
    assert!(distinct.len() >= 2, "12 shards over 3 nodes: {at_first:?}");
    let resource = third
        .lookup_resource(LookupResourceRequest {
            res_type: ResourceType::ResShard as i32,
            res_id: shards[0].to_string(),
        })
        .await
        .expect("lookup resource")
        .into_inner();
    assert_eq!(resource.id, at_first[&shards[0]]);

    // Any node appends to the shared store, any node reads it back.
    append(
        &mut third,
        "s",
        shards[0],
        raw_batch(&["a", "b"], Compression::None),
    )
    .await
    .expect("append at any node");
    let mut read = first
        .read_stream(ReadStreamRequest {
            reader_id: "r".into(),
            stream_name: "s".into(),
            from: None,
            until: Some(weir_proto::pb::StreamOffset {
                offset: Some(weir_proto::pb::stream_offset::Offset::SpecialOffset(
                    weir_proto::pb::SpecialOffset::Latest as i32,
                )),
            }),
            max_read_batches: 0,
        })
        .await
        .expect("read")
        .into_inner();
    let mut records = 0;
    while let Some(reply) = read.message().await.expect("read reply") {
        records += reply
            .received_records
            .iter()
            .map(|r| r.record_ids.len())
            .sum::<usize>();
    }
    assert_eq!(records, 2);
    cluster.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn ownership_moves_when_a_node_stops_starts_or_joins() {
    let cluster = cluster(3, false).await;
    let mut first = client_at(&cluster, 100).await;
    let shards: Vec<u64> = create_stream(&mut first, "s", 16)
        .await
        .iter()
        .map(|s| s.shard_id)
        .collect();
    let before = owners(&mut first, &shards).await;
    let leaving = *before
        .values()
        .find(|&&id| id != 100)
        .expect("a shard off node 100");
    let leaving_addr = cluster
        .nodes()
        .into_iter()
        .find(|n| n.id == leaving)
        .expect("node")
        .listen;

    // Stopped through another node's control service.
    let mut control =
        ClusterControlClient::connect(format!("http://{}", cluster.nodes()[0].listen))
            .await
            .expect("control client");
    control
        .stop_node(NodeRequest { id: leaving })
        .await
        .expect("stop a node");
    assert!(
        tokio::net::TcpStream::connect(leaving_addr).await.is_err(),
        "a stopped node's port is closed"
    );
    let status = first
        .describe_cluster(())
        .await
        .expect("describe")
        .into_inner()
        .server_nodes_status;
    let state_of = |id| {
        status
            .iter()
            .find(|s| s.node.as_ref().is_some_and(|n| n.id == id))
            .map(|s| s.state)
    };
    assert_eq!(state_of(leaving), Some(NodeState::Dead as i32));
    let during = owners(&mut first, &shards).await;
    for (shard, owner) in &before {
        if *owner == leaving {
            assert_ne!(
                during[shard], leaving,
                "shard {shard} left the stopped node"
            );
        } else {
            assert_eq!(during[shard], *owner, "shard {shard} stayed");
        }
    }

    control
        .start_node(NodeRequest { id: leaving })
        .await
        .expect("start the node again");
    assert_eq!(owners(&mut first, &shards).await, before);
    client_at(&cluster, leaving)
        .await
        .describe_cluster(())
        .await
        .expect("the restarted node serves");

    let joined = cluster
        .add_node(
            listener().await,
            NodeConfig {
                id: 103,
                ..NodeConfig::default()
            },
        )
        .await
        .expect("a node joins");
    assert!(joined.running);
    let after = owners(&mut first, &shards).await;
    for (shard, owner) in &before {
        assert!(
            after[shard] == *owner || after[shard] == 103,
            "shard {shard} moved between old nodes"
        );
    }
    assert_eq!(
        owners(&mut client_at(&cluster, 103).await, &shards).await,
        after
    );
    cluster.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn strict_ownership_and_injected_refusals_answer_wrong_server() {
    let cluster = cluster(2, true).await;
    let mut first = client_at(&cluster, 100).await;
    let mut second = client_at(&cluster, 101).await;
    let shards: Vec<u64> = create_stream(&mut first, "s", 8)
        .await
        .iter()
        .map(|s| s.shard_id)
        .collect();
    let owned = owners(&mut first, &shards).await;
    let (&on_first, _) = owned
        .iter()
        .find(|(_, id)| **id == 100)
        .expect("one on 100");
    let batch = || raw_batch(&["a"], Compression::None);

    let refused = append(&mut second, "s", on_first, batch())
        .await
        .expect_err("not the owner");
    let wrong = body(&refused, Code::FailedPrecondition);
    assert_eq!(wrong.error, 800, "{wrong:?}");
    append(&mut first, "s", on_first, batch())
        .await
        .expect("the owner takes it");

    let mut faults = FaultControlClient::connect(format!("http://{}", cluster.nodes()[0].listen))
        .await
        .expect("fault control");
    faults
        .set_faults(FaultPlan {
            fail_next_appends: 1,
            fail_with: InjectedFailure::WrongServer as i32,
            ..FaultPlan::default()
        })
        .await
        .expect("set faults");
    let refused = append(&mut first, "s", on_first, batch())
        .await
        .expect_err("injected");
    assert_eq!(body(&refused, Code::FailedPrecondition).error, 800);
    append(&mut first, "s", on_first, batch())
        .await
        .expect("only the next one");
    cluster.shutdown().await.expect("shutdown");
}
