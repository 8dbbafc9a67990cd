//! Shard readers and streaming reads.

use crate::{
    Client, append, body, create_stream, create_stream_with, eventually, raw_batch, start, within,
};
use tonic::Code;
use weir_devserver::Config;
use weir_proto::pb::{
    CreateShardReaderRequest, DeleteShardReaderRequest, DeleteStreamRequest,
    ListShardReadersRequest, LookupShardReaderRequest, ReadShardRequest, ReadShardStreamRequest,
    ReadStreamRequest, ReceivedRecord, RecordId, ShardOffset, SpecialOffset, StreamOffset,
    TimestampOffset, shard_offset, stream_offset,
};
use weir_proto::record::Compression;

fn special(offset: SpecialOffset) -> ShardOffset {
    ShardOffset {
        offset: Some(shard_offset::Offset::SpecialOffset(offset as i32)),
    }
}

fn record(id: RecordId) -> ShardOffset {
    ShardOffset {
        offset: Some(shard_offset::Offset::RecordOffset(id)),
    }
}

fn stream_special(offset: SpecialOffset) -> StreamOffset {
    StreamOffset {
        offset: Some(stream_offset::Offset::SpecialOffset(offset as i32)),
    }
}

fn payloads(received: &[ReceivedRecord]) -> Vec<String> {
    received
        .iter()
        .flat_map(|r| {
            let batch = r.record.as_ref().expect("record");
            weir_proto::record::decode_batch(batch, 1 << 20).expect("decodes")
        })
        .map(|r| String::from_utf8(r.payload.to_vec()).expect("utf-8"))
        .collect()
}

async fn reader(client: &mut Client, id: &str, shard_id: u64, offset: ShardOffset, timeout: u32) {
    client
        .create_shard_reader(CreateShardReaderRequest {
            stream_name: "s".into(),
            shard_id,
            shard_offset: Some(offset),
            reader_id: id.into(),
            timeout,
        })
        .await
        .expect("reader created");
}

async fn read(client: &mut Client, id: &str, max: u32) -> Vec<ReceivedRecord> {
    client
        .read_shard(ReadShardRequest {
            reader_id: id.into(),
            max_records: max,
        })
        .await
        .expect("read")
        .into_inner()
        .received_records
}

async fn append_one(client: &mut Client, shard: u64, payload: &str) -> RecordId {
    append(client, "s", shard, raw_batch(&[payload], Compression::None))
        .await
        .expect("append")
        .record_ids[0]
}

#[tokio::test]
async fn readers_start_at_earliest_latest_record_and_time() {
    let (_server, mut client) = start(Config::default()).await;
    let shard = create_stream(&mut client, "s", 1).await[0].shard_id;
    let first = append_one(&mut client, shard, "one").await;
    let second = append_one(&mut client, shard, "two").await;
    append_one(&mut client, shard, "three").await;

    reader(
        &mut client,
        "earliest",
        shard,
        special(SpecialOffset::Earliest),
        100,
    )
    .await;
    // maxRecords counts batches, and the reader moves on.
    assert_eq!(
        payloads(&read(&mut client, "earliest", 2).await),
        ["one", "two"]
    );
    assert_eq!(payloads(&read(&mut client, "earliest", 2).await), ["three"]);
    assert!(
        read(&mut client, "earliest", 2).await.is_empty(),
        "times out empty"
    );

    reader(
        &mut client,
        "latest",
        shard,
        special(SpecialOffset::Latest),
        100,
    )
    .await;
    assert!(read(&mut client, "latest", 10).await.is_empty());
    append_one(&mut client, shard, "four").await;
    assert_eq!(payloads(&read(&mut client, "latest", 10).await), ["four"]);

    // A record id starts at its whole batch.
    reader(
        &mut client,
        "by-id",
        shard,
        record(RecordId {
            batch_index: 0,
            ..second
        }),
        100,
    )
    .await;
    assert_eq!(
        payloads(&read(&mut client, "by-id", 10).await),
        ["two", "three", "four"]
    );

    let all = {
        reader(
            &mut client,
            "all",
            shard,
            special(SpecialOffset::Earliest),
            100,
        )
        .await;
        read(&mut client, "all", 10).await
    };
    let publish_ms = |r: &ReceivedRecord| {
        let t = r
            .record
            .as_ref()
            .and_then(|b| b.publish_time)
            .expect("publishTime");
        t.seconds * 1000 + i64::from(t.nanos / 1_000_000)
    };
    let at = publish_ms(&all[1]);
    let by_time = ShardOffset {
        offset: Some(shard_offset::Offset::TimestampOffset(TimestampOffset {
            timestamp_in_ms: at,
            strict_accuracy: true,
        })),
    };
    reader(&mut client, "by-time", shard, by_time, 100).await;
    let expected: Vec<_> = all
        .iter()
        .filter(|r| publish_ms(r) >= at)
        .cloned()
        .collect();
    assert_eq!(read(&mut client, "by-time", 10).await, expected);
    assert_eq!(all[0].record_ids[0], first);
}

#[tokio::test]
async fn a_blocked_read_is_woken_by_an_append() {
    let (server, mut client) = start(Config::default()).await;
    let shard = create_stream(&mut client, "s", 1).await[0].shard_id;
    // Far longer than the test may take: only an append can end this read
    // with data.
    reader(
        &mut client,
        "r",
        shard,
        special(SpecialOffset::Latest),
        60_000,
    )
    .await;
    let mut reading_client = crate::connect(&server).await;
    let pending = tokio::spawn(async move { read(&mut reading_client, "r", 10).await });
    append_one(&mut client, shard, "wake").await;
    let got = within("the woken read", pending).await.expect("read task");
    assert_eq!(payloads(&got), ["wake"]);
}

#[tokio::test]
async fn reader_rejections() {
    let (_server, mut client) = start(Config::default()).await;
    let shard = create_stream(&mut client, "s", 1).await[0].shard_id;
    reader(
        &mut client,
        "r1",
        shard,
        special(SpecialOffset::Earliest),
        10,
    )
    .await;

    let create = |id: &str, shard_id: u64, offset: Option<ShardOffset>| CreateShardReaderRequest {
        stream_name: "s".into(),
        shard_id,
        shard_offset: offset,
        reader_id: id.into(),
        timeout: 10,
    };
    let err = client
        .create_shard_reader(create("r1", shard, Some(special(SpecialOffset::Earliest))))
        .await
        .expect_err("duplicate id");
    assert_eq!(body(&err, Code::AlreadyExists).message, "ShardReaderExists");
    let err = client
        .create_shard_reader(create("r2", 4242, Some(special(SpecialOffset::Earliest))))
        .await
        .expect_err("unknown shard");
    assert_eq!(body(&err, Code::NotFound).message, "ShardNotFound");
    let err = client
        .create_shard_reader(create("r2", shard, None))
        .await
        .expect_err("no offset");
    assert_eq!(
        body(&err, Code::InvalidArgument).message,
        "InvalidShardOffset"
    );
    let err = client
        .create_shard_reader(create(
            "bad id",
            shard,
            Some(special(SpecialOffset::Earliest)),
        ))
        .await
        .expect_err("bad reader id");
    assert_eq!(body(&err, Code::InvalidArgument).error, 900);

    reader(
        &mut client,
        "r0",
        shard,
        special(SpecialOffset::Earliest),
        10,
    )
    .await;
    let ids = client
        .list_shard_readers(ListShardReadersRequest {})
        .await
        .expect("list")
        .into_inner()
        .reader_id;
    assert_eq!(ids, ["r0", "r1"]);
    let looked_up = client
        .lookup_shard_reader(LookupShardReaderRequest {
            reader_id: "r1".into(),
        })
        .await
        .expect("lookup")
        .into_inner();
    assert_eq!(looked_up.reader_id, "r1");
    assert!(looked_up.server_node.is_some());

    client
        .delete_shard_reader(DeleteShardReaderRequest {
            reader_id: "r1".into(),
        })
        .await
        .expect("delete");
    let err = client
        .delete_shard_reader(DeleteShardReaderRequest {
            reader_id: "r1".into(),
        })
        .await
        .expect_err("delete twice");
    assert_eq!(
        body(&err, Code::FailedPrecondition).message,
        "EmptyShardReader"
    );
    let err = client
        .read_shard(ReadShardRequest {
            reader_id: "r1".into(),
            max_records: 1,
        })
        .await
        .expect_err("read a deleted reader");
    assert_eq!(err.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn read_shard_stream_reads_a_range_and_stops() {
    let (_server, mut client) = start(Config::default()).await;
    let shard = create_stream(&mut client, "s", 1).await[0].shard_id;
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(append_one(&mut client, shard, &format!("p{i}")).await);
    }
    let request =
        |from: ShardOffset, until: Option<ShardOffset>, max: u64| ReadShardStreamRequest {
            reader_id: "stream-reader".into(),
            shard_id: shard,
            from: Some(from),
            max_read_batches: max,
            until,
            stream_name: "s".into(),
        };
    let collect = |mut stream: tonic::Streaming<weir_proto::pb::ReadShardStreamResponse>| async move {
        let mut all = Vec::new();
        while let Some(message) = within("a message", stream.message())
            .await
            .expect("message")
        {
            all.extend(message.received_records);
        }
        all
    };

    let everything = client
        .read_shard_stream(request(
            special(SpecialOffset::Earliest),
            Some(special(SpecialOffset::Latest)),
            0,
        ))
        .await
        .expect("read")
        .into_inner();
    let everything = collect(everything).await;
    assert_eq!(everything.len(), 25);
    assert_eq!(payloads(&everything)[24], "p24");

    let window = client
        .read_shard_stream(request(record(ids[3]), Some(record(ids[5])), 0))
        .await
        .expect("read")
        .into_inner();
    assert_eq!(payloads(&collect(window).await), ["p3", "p4", "p5"]);

    let limited = client
        .read_shard_stream(request(special(SpecialOffset::Earliest), None, 12))
        .await
        .expect("read")
        .into_inner();
    assert_eq!(collect(limited).await.len(), 12);

    let err = client
        .read_shard_stream(request(record(ids[5]), Some(record(ids[3])), 0))
        .await
        .expect_err("end before start");
    assert_eq!(body(&err, Code::InvalidArgument).error, 901);

    let err = client
        .read_shard_stream(ReadShardStreamRequest {
            shard_id: 777,
            ..request(special(SpecialOffset::Earliest), None, 0)
        })
        .await
        .expect_err("unknown shard");
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn read_stream_follows_new_appends_on_every_shard() {
    let (_server, mut client) = start(Config::default()).await;
    let shards = create_stream(&mut client, "s", 2).await;
    append_one(&mut client, shards[0].shard_id, "before").await;
    let mut follow = client
        .read_stream(ReadStreamRequest {
            reader_id: "follower".into(),
            stream_name: "s".into(),
            from: Some(stream_special(SpecialOffset::Earliest)),
            until: None,
            max_read_batches: 0,
        })
        .await
        .expect("read stream")
        .into_inner();
    let mut next = async || {
        within("a followed batch", follow.message())
            .await
            .expect("message")
            .expect("the stream stays open")
            .received_records
    };
    assert_eq!(payloads(&next().await), ["before"]);
    let id = append_one(&mut client, shards[1].shard_id, "live-1").await;
    let got = next().await;
    assert_eq!(payloads(&got), ["live-1"]);
    assert_eq!(got[0].record_ids[0], id);
    append_one(&mut client, shards[0].shard_id, "live-2").await;
    assert_eq!(payloads(&next().await), ["live-2"]);

    let err = client
        .read_stream(ReadStreamRequest {
            reader_id: "x".into(),
            stream_name: "missing".into(),
            from: None,
            until: None,
            max_read_batches: 0,
        })
        .await
        .expect_err("missing stream");
    assert_eq!(body(&err, Code::NotFound).error, 200);

    // Deleting the stream ends the follower with NOT_FOUND.
    client
        .delete_stream(DeleteStreamRequest {
            stream_name: "s".into(),
            ignore_non_exist: false,
            force: false,
        })
        .await
        .expect("delete");
    let end = within("the follower to end", follow.message())
        .await
        .expect_err("ended by deletion");
    assert_eq!(end.code(), Code::NotFound);
}

#[tokio::test]
async fn read_stream_until_a_time_ends_once_the_time_has_passed() {
    let (_server, mut client) = start(Config::default()).await;
    let shard = create_stream(&mut client, "s", 1).await[0].shard_id;
    append_one(&mut client, shard, "old").await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let mut stream = client
        .read_stream(ReadStreamRequest {
            reader_id: "until".into(),
            stream_name: "s".into(),
            from: Some(stream_special(SpecialOffset::Earliest)),
            until: Some(StreamOffset {
                offset: Some(stream_offset::Offset::TimestampOffset(TimestampOffset {
                    timestamp_in_ms: now_ms + 200,
                    strict_accuracy: false,
                })),
            }),
            max_read_batches: 0,
        })
        .await
        .expect("read stream")
        .into_inner();
    let mut all = Vec::new();
    while let Some(message) = within("the stream to end", stream.message())
        .await
        .expect("message")
    {
        all.extend(message.received_records);
    }
    assert_eq!(payloads(&all), ["old"]);
}

#[tokio::test]
async fn batches_past_the_backlog_are_no_longer_read() {
    let (_server, mut client) = start(Config::default()).await;
    let shard = create_stream_with(&mut client, "s", 1, 1).await[0].shard_id;
    append_one(&mut client, shard, "short-lived").await;
    reader(&mut client, "r", shard, special(SpecialOffset::Earliest), 0).await;
    assert_eq!(payloads(&read(&mut client, "r", 10).await), ["short-lived"]);
    eventually("the batch to expire", || {
        let mut client = client.clone();
        async move {
            let mut stream = client
                .read_shard_stream(ReadShardStreamRequest {
                    reader_id: "check".into(),
                    shard_id: shard,
                    from: Some(special(SpecialOffset::Earliest)),
                    max_read_batches: 0,
                    until: Some(special(SpecialOffset::Latest)),
                    stream_name: "s".into(),
                })
                .await
                .expect("read")
                .into_inner();
            let first = stream.message().await.expect("message");
            first.is_none().then_some(())
        }
    })
    .await;
}
