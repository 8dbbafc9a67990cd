//! Streams, shards and cluster discovery.

use crate::{body, create_stream, start};
use tonic::Code;
use weir_devserver::Config;
use weir_proto::keyspace::divide_key_space;
use weir_proto::pb::{
    DeleteStreamRequest, EchoRequest, ErrorCode, GetStreamRequest, ListShardsRequest,
    ListStreamsRequest, ListStreamsWithPrefixRequest, LookupKeyRequest, LookupResourceRequest,
    LookupShardRequest, NodeState, ResourceType, Stream,
};

fn stream(name: &str, replication_factor: u32, shard_count: u32) -> Stream {
    Stream {
        stream_name: name.into(),
        replication_factor,
        backlog_duration: 60,
        shard_count,
        creation_time: None,
    }
}

#[tokio::test]
async fn echo_echoes() {
    let (_server, mut client) = start(Config::default()).await;
    let reply = client
        .echo(EchoRequest {
            msg: "hello".into(),
        })
        .await
        .expect("echo");
    assert_eq!(reply.into_inner().msg, "hello");
}

#[tokio::test]
async fn create_get_list_and_delete_streams() {
    let (_server, mut client) = start(Config::default()).await;
    let created = client
        .create_stream(stream("orders", 3, 2))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(created.stream_name, "orders");
    assert_eq!(
        (
            created.replication_factor,
            created.backlog_duration,
            created.shard_count
        ),
        (3, 60, 2)
    );
    let creation = created.creation_time.expect("creationTime is set");
    assert!(creation.seconds > 1_600_000_000, "{creation:?}");

    client
        .create_stream(stream("audit", 1, 1))
        .await
        .expect("create");
    let got = client
        .get_stream(GetStreamRequest {
            name: "orders".into(),
        })
        .await
        .expect("get")
        .into_inner()
        .stream
        .expect("stream");
    assert_eq!(got, created);

    let names = |streams: Vec<Stream>| {
        streams
            .into_iter()
            .map(|s| s.stream_name)
            .collect::<Vec<_>>()
    };
    let all = client
        .list_streams(ListStreamsRequest {})
        .await
        .expect("list")
        .into_inner()
        .streams;
    assert_eq!(names(all), ["audit", "orders"]);
    let prefixed = client
        .list_streams_with_prefix(ListStreamsWithPrefixRequest {
            prefix: "ord".into(),
        })
        .await
        .expect("list with prefix")
        .into_inner()
        .streams;
    assert_eq!(names(prefixed), ["orders"]);

    client
        .delete_stream(DeleteStreamRequest {
            stream_name: "orders".into(),
            ignore_non_exist: false,
            force: false,
        })
        .await
        .expect("delete");
    let all = client
        .list_streams(ListStreamsRequest {})
        .await
        .expect("list")
        .into_inner()
        .streams;
    assert_eq!(names(all), ["audit"]);
}

#[tokio::test]
async fn stream_rejections_carry_hstreamdb_codes() {
    let (_server, mut client) = start(Config::default()).await;
    client
        .create_stream(stream("s1", 1, 1))
        .await
        .expect("create");

    let err = client
        .create_stream(stream("s1", 1, 1))
        .await
        .expect_err("duplicate");
    let dup = body(&err, Code::AlreadyExists);
    assert_eq!(dup.code(), Some(ErrorCode::StreamExists));
    assert_eq!(dup.extra, serde_json::json!("s1"));

    let err = client
        .create_stream(stream("s2", 0, 1))
        .await
        .expect_err("replication factor 0");
    assert_eq!(body(&err, Code::InvalidArgument).error, 203);

    let err = client
        .create_stream(stream("s2", 1, 0))
        .await
        .expect_err("shard count 0");
    assert_eq!(body(&err, Code::InvalidArgument).error, 205);

    for bad in ["", "9lives", "a.b", "with space", "_x"] {
        let err = client
            .create_stream(stream(bad, 1, 1))
            .await
            .expect_err("invalid name");
        let invalid = body(&err, Code::InvalidArgument);
        assert_eq!(invalid.error, 204, "{bad:?}");
        assert_eq!(invalid.message, "InvalidObjectIdentifier");
    }

    let err = client
        .get_stream(GetStreamRequest {
            name: "missing".into(),
        })
        .await
        .expect_err("missing stream");
    let missing = body(&err, Code::NotFound);
    assert_eq!(missing.error, 200);
    assert_eq!(missing.extra, serde_json::json!("missing"));

    let err = client
        .delete_stream(DeleteStreamRequest {
            stream_name: "missing".into(),
            ignore_non_exist: false,
            force: false,
        })
        .await
        .expect_err("delete missing");
    assert_eq!(body(&err, Code::NotFound).error, 200);
    client
        .delete_stream(DeleteStreamRequest {
            stream_name: "missing".into(),
            ignore_non_exist: true,
            force: false,
        })
        .await
        .expect("ignoreNonExist");

    // As on HStreamDB, where the store's NOTFOUND leaks through as text.
    let err = client
        .list_shards(ListShardsRequest {
            stream_name: "missing".into(),
        })
        .await
        .expect_err("shards of a missing stream");
    assert_eq!(err.code(), Code::Unavailable);
    assert!(weir_proto::error_body::ErrorBody::parse(err.message()).is_none());
}

#[tokio::test]
async fn shards_cover_the_key_space_and_are_never_reused() {
    let (_server, mut client) = start(Config::default()).await;
    let shards = create_stream(&mut client, "s", 4).await;
    let expected = divide_key_space(4).expect("4 shards");
    assert_eq!(shards.len(), 4);
    for (shard, range) in shards.iter().zip(&expected) {
        let (start, end) = range.to_wire();
        assert_eq!(shard.stream_name, "s");
        assert_eq!(
            (&shard.start_hash_range_key, &shard.end_hash_range_key),
            (&start, &end)
        );
        assert_eq!(shard.epoch, 4);
        assert!(shard.is_active);
    }
    let mut ids: Vec<u64> = shards.iter().map(|s| s.shard_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "shard ids are distinct");

    client
        .delete_stream(DeleteStreamRequest {
            stream_name: "s".into(),
            ignore_non_exist: false,
            force: false,
        })
        .await
        .expect("delete");
    let again = create_stream(&mut client, "s", 4).await;
    for shard in &again {
        assert!(
            !ids.contains(&shard.shard_id),
            "shard id {} reused",
            shard.shard_id
        );
    }
}

#[tokio::test]
async fn the_cluster_is_this_one_node_at_its_real_address() {
    let (server, mut client) = start(Config::default()).await;
    let cluster = client
        .describe_cluster(())
        .await
        .expect("describe")
        .into_inner();
    assert_eq!(cluster.protocol_version, "0.1.0");
    assert_eq!(cluster.server_nodes.len(), 1);
    let node = cluster.server_nodes[0].clone();
    assert_eq!(node.host, "127.0.0.1");
    assert_eq!(node.port, u32::from(server.local_addr().port()));
    assert_eq!(cluster.server_nodes_status.len(), 1);
    assert_eq!(cluster.server_nodes_status[0].node.as_ref(), Some(&node));
    assert_eq!(
        cluster.server_nodes_status[0].state,
        NodeState::Running as i32
    );

    let shard = create_stream(&mut client, "s", 1).await[0].shard_id;
    let looked_up = client
        .lookup_shard(LookupShardRequest { shard_id: shard })
        .await
        .expect("lookup shard")
        .into_inner();
    assert_eq!(looked_up.shard_id, shard);
    assert_eq!(looked_up.server_node.as_ref(), Some(&node));
    for res_type in [
        ResourceType::ResShard,
        ResourceType::ResStream,
        ResourceType::ResShardReader,
    ] {
        let found = client
            .lookup_resource(LookupResourceRequest {
                res_type: res_type as i32,
                res_id: shard.to_string(),
            })
            .await
            .expect("lookup resource")
            .into_inner();
        assert_eq!(found, node);
    }
    let by_key = client
        .lookup_key(LookupKeyRequest {
            partition_key: "k".into(),
        })
        .await
        .expect("lookup key")
        .into_inner();
    assert_eq!(by_key, node);
    let err = client
        .lookup_resource(LookupResourceRequest {
            res_type: 99,
            res_id: "x".into(),
        })
        .await
        .expect_err("unknown resource type");
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn an_advertised_host_is_what_clients_are_told() {
    let (server, mut client) = start(Config {
        advertised_host: Some("hstream.example".into()),
        ..Config::default()
    })
    .await;
    let cluster = client
        .describe_cluster(())
        .await
        .expect("describe")
        .into_inner();
    let node = &cluster.server_nodes[0];
    assert_eq!(node.host, "hstream.example");
    assert_eq!(node.port, u32::from(server.local_addr().port()));
}
