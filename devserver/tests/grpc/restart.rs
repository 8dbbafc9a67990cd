//! Stopping and starting again on the same port with the same data
//! directory.

use crate::{Client, append, connect, create_stream, raw_batch, start};
use weir_devserver::{Config, DevServer, Error};
use weir_proto::pb::{
    ListShardsRequest, ListStreamsRequest, ReadStreamRequest, ReceivedRecord, SpecialOffset,
    StreamOffset, stream_offset,
};
use weir_proto::record::Compression;

async fn read_all(client: &mut Client, stream: &str) -> Vec<ReceivedRecord> {
    let latest = StreamOffset {
        offset: Some(stream_offset::Offset::SpecialOffset(
            SpecialOffset::Latest as i32,
        )),
    };
    let earliest = StreamOffset {
        offset: Some(stream_offset::Offset::SpecialOffset(
            SpecialOffset::Earliest as i32,
        )),
    };
    let mut reply = client
        .read_stream(ReadStreamRequest {
            reader_id: "all".into(),
            stream_name: stream.into(),
            from: Some(earliest),
            until: Some(latest),
            max_read_batches: 0,
        })
        .await
        .expect("read stream")
        .into_inner();
    let mut all = Vec::new();
    while let Some(message) = crate::within("a message", reply.message())
        .await
        .expect("message")
    {
        all.extend(message.received_records);
    }
    all.sort_by_key(|r| (r.record_ids[0].shard_id, r.record_ids[0].batch_id));
    all
}

#[tokio::test]
async fn a_restart_with_the_same_data_dir_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        data_dir: Some(dir.path().to_owned()),
        ..Config::default()
    };
    let (server, mut client) = start(config.clone()).await;
    let shards = create_stream(&mut client, "kept", 2).await;
    let mut last = 0;
    for (i, compression) in [Compression::None, Compression::Gzip, Compression::Zstd]
        .into_iter()
        .enumerate()
    {
        let shard = shards[i % 2].shard_id;
        let reply = append(
            &mut client,
            "kept",
            shard,
            raw_batch(&["x", "y"], compression),
        )
        .await
        .expect("append");
        last = last.max(reply.record_ids[0].batch_id);
    }
    let streams_before = client
        .list_streams(ListStreamsRequest {})
        .await
        .expect("list")
        .into_inner()
        .streams;
    let records_before = read_all(&mut client, "kept").await;
    assert_eq!(records_before.len(), 3);

    let addr = server.local_addr();
    drop(client);
    server.shutdown().await.expect("clean shutdown");

    let server = DevServer::bind(addr, config)
        .await
        .expect("restart on the same port");
    let mut client = connect(&server).await;
    let streams_after = client
        .list_streams(ListStreamsRequest {})
        .await
        .expect("list")
        .into_inner()
        .streams;
    assert_eq!(
        streams_after, streams_before,
        "same streams, same creation time"
    );
    let shards_after = client
        .list_shards(ListShardsRequest {
            stream_name: "kept".into(),
        })
        .await
        .expect("shards")
        .into_inner()
        .shards;
    assert_eq!(shards_after, shards);
    assert_eq!(
        read_all(&mut client, "kept").await,
        records_before,
        "same ids, publish times and payloads"
    );

    let reply = append(
        &mut client,
        "kept",
        shards[0].shard_id,
        raw_batch(&["z"], Compression::None),
    )
    .await
    .expect("append after restart");
    assert!(reply.record_ids[0].batch_id > last, "batch ids keep rising");
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_data_dir_serves_one_server_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        data_dir: Some(dir.path().to_owned()),
        ..Config::default()
    };
    let (server, _client) = start(config.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let err = DevServer::start(listener, config.clone())
        .await
        .expect_err("the directory is locked");
    assert!(matches!(err, Error::DataDirLocked { .. }), "{err}");
    server.shutdown().await.expect("shutdown");
    start(config).await;
}

#[tokio::test]
async fn corrupt_metadata_stops_the_start_with_the_file_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("meta.json"), b"{ not json").expect("write");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let err = DevServer::start(
        listener,
        Config {
            data_dir: Some(dir.path().to_owned()),
            ..Config::default()
        },
    )
    .await
    .expect_err("corrupt metadata");
    assert!(matches!(err, Error::CorruptMetadata { .. }), "{err}");
    assert!(err.to_string().contains("meta.json"), "{err}");
}

#[tokio::test]
async fn shutdown_ends_followers_instead_of_waiting_for_them() {
    let (server, mut client) = start(Config::default()).await;
    create_stream(&mut client, "s", 1).await;
    let mut follower = client
        .read_stream(ReadStreamRequest {
            reader_id: "f".into(),
            stream_name: "s".into(),
            from: None,
            until: None,
            max_read_batches: 0,
        })
        .await
        .expect("follow")
        .into_inner();
    crate::within("shutdown", server.shutdown())
        .await
        .expect("shutdown");
    let end = crate::within("the follower to end", follower.message()).await;
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}
