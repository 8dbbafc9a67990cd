//! Appends: record ids, every compression and record flag, and every
//! rejection.

use crate::{append, body, create_stream, raw_batch, start};
use bytes::Bytes;
use tonic::Code;
use weir_devserver::Config;
use weir_proto::pb::{
    AppendRequest, BatchedRecord, CreateShardReaderRequest, DeleteStreamRequest, ErrorCode,
    ReadShardRequest, ShardOffset, SpecialOffset, shard_offset,
};
use weir_proto::record::{
    Compression, DEFAULT_MAX_DECODED_BYTES, decode_batch, encode_batch, hrecord, raw_record,
};

#[tokio::test]
async fn every_compression_and_flag_round_trips_with_hstreamdb_record_ids() {
    let (_server, mut client) = start(Config::default()).await;
    let shard = create_stream(&mut client, "s", 1).await[0].shard_id;
    let object = serde_json::json!({"temp": 21.5, "ok": true, "tags": ["a"]});
    let mut sent = Vec::new();
    let mut last_batch_id = 0;
    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let records = vec![
            raw_record("k1", &b"raw payload"[..]),
            hrecord("k2", object.as_object().expect("object")).expect("hrecord"),
            raw_record("", Bytes::new()),
        ];
        let batch = encode_batch(records.clone(), compression).expect("encode");
        let reply = append(&mut client, "s", shard, batch.clone())
            .await
            .expect("append");
        assert_eq!(reply.stream_name, "s");
        assert_eq!(reply.shard_id, shard);
        assert_eq!(reply.record_ids.len(), 3);
        let batch_id = reply.record_ids[0].batch_id;
        assert!(batch_id > last_batch_id, "batch ids rise");
        last_batch_id = batch_id;
        for (index, id) in reply.record_ids.iter().enumerate() {
            assert_eq!(
                (id.shard_id, id.batch_id, id.batch_index as usize),
                (shard, batch_id, index)
            );
        }
        sent.push((batch, records, reply.record_ids));
    }

    client
        .create_shard_reader(CreateShardReaderRequest {
            stream_name: "s".into(),
            shard_id: shard,
            shard_offset: Some(ShardOffset {
                offset: Some(shard_offset::Offset::SpecialOffset(
                    SpecialOffset::Earliest as i32,
                )),
            }),
            reader_id: "r".into(),
            timeout: 1000,
        })
        .await
        .expect("reader");
    let read = client
        .read_shard(ReadShardRequest {
            reader_id: "r".into(),
            max_records: 10,
        })
        .await
        .expect("read")
        .into_inner()
        .received_records;
    assert_eq!(read.len(), 3);
    for (received, (batch, records, ids)) in read.into_iter().zip(sent) {
        assert_eq!(received.record_ids, ids);
        let stored = received.record.expect("record");
        let publish = stored.publish_time.expect("publishTime is set");
        let publish_ms = publish.seconds * 1000 + i64::from(publish.nanos) / 1_000_000;
        assert!(publish_ms >= before_ms, "{publish_ms} < {before_ms}");
        assert_eq!(stored.compression_type, batch.compression_type);
        assert_eq!(stored.batch_size, batch.batch_size);
        assert_eq!(stored.payload, batch.payload);
        assert_eq!(
            decode_batch(&stored, DEFAULT_MAX_DECODED_BYTES).expect("decodes"),
            records
        );
    }
}

#[tokio::test]
async fn empty_and_oversized_batches_are_rejected_like_hstreamdb() {
    let (_server, mut client) = start(Config {
        max_record_bytes: 1000,
        ..Config::default()
    })
    .await;
    let shard = create_stream(&mut client, "s", 1).await[0].shard_id;

    let err = client
        .append(AppendRequest {
            stream_name: "s".into(),
            shard_id: shard,
            records: None,
        })
        .await
        .expect_err("no records");
    assert_eq!(
        body(&err, Code::InvalidArgument).code(),
        Some(ErrorCode::StreamEmptyBatchedRecord)
    );

    let mut zero = raw_batch(&["a"], Compression::None);
    zero.batch_size = 0;
    let err = append(&mut client, "s", shard, zero)
        .await
        .expect_err("batchSize 0");
    assert_eq!(body(&err, Code::InvalidArgument).error, 206);

    let empty = BatchedRecord {
        payload: Bytes::new(),
        ..raw_batch(&["a"], Compression::None)
    };
    let err = append(&mut client, "s", shard, empty)
        .await
        .expect_err("empty payload");
    assert_eq!(body(&err, Code::InvalidArgument).error, 206);

    let big = raw_batch(&[&"x".repeat(2000)], Compression::None);
    let size = big.payload.len();
    let err = append(&mut client, "s", shard, big)
        .await
        .expect_err("too big");
    let too_big = body(&err, Code::InvalidArgument);
    assert_eq!(too_big.code(), Some(ErrorCode::StreamInvalidRecordSize));
    assert_eq!(too_big.extra, serde_json::json!(size));
}

#[tokio::test]
async fn the_default_limit_is_answered_by_the_server_not_by_tonic() {
    let (_server, mut client) = start(Config::default()).await;
    let shard = create_stream(&mut client, "s", 1).await[0].shard_id;
    let just_over = BatchedRecord {
        compression_type: 0,
        publish_time: None,
        batch_size: 1,
        payload: Bytes::from(vec![7u8; 1024 * 1024 + 1]),
    };
    let err = append(&mut client, "s", shard, just_over)
        .await
        .expect_err("over 1 MiB");
    assert_eq!(body(&err, Code::InvalidArgument).error, 207);
    let at_limit = raw_batch(&[&"y".repeat(1024 * 1024 - 64)], Compression::None);
    assert!(at_limit.payload.len() <= 1024 * 1024);
    append(&mut client, "s", shard, at_limit)
        .await
        .expect("at the limit");
}

#[tokio::test]
async fn batches_that_do_not_decode_are_rejected_with_the_reason() {
    let (_server, mut client) = start(Config::default()).await;
    let shard = create_stream(&mut client, "s", 1).await[0].shard_id;
    let mut cases = Vec::new();

    let mut miscounted = raw_batch(&["a", "b"], Compression::Gzip);
    miscounted.batch_size = 3;
    cases.push((miscounted, "says it holds 3 records but holds 2"));

    let mut not_gzip = raw_batch(&["a"], Compression::Gzip);
    not_gzip.payload = Bytes::from_static(b"definitely not gzip");
    cases.push((not_gzip, "gzip payload does not decompress"));

    let mut not_zstd = raw_batch(&["a"], Compression::Zstd);
    not_zstd.payload = Bytes::from_static(b"nor zstd");
    cases.push((not_zstd, "zstd payload does not decompress"));

    let mut not_protobuf = raw_batch(&["a"], Compression::None);
    not_protobuf.payload = Bytes::from_static(&[0xff, 0xff, 0xff]);
    cases.push((not_protobuf, "not an encoded BatchHStreamRecords"));

    let mut unknown = raw_batch(&["a"], Compression::None);
    unknown.compression_type = 7;
    cases.push((unknown, "unknown compression type 7"));

    for (batch, reason) in cases {
        let err = append(&mut client, "s", shard, batch)
            .await
            .expect_err(reason);
        let rejected = body(&err, Code::InvalidArgument);
        assert_eq!(rejected.message, "DecodeHStreamRecordErr");
        let extra = rejected.extra.as_str().expect("reason text");
        assert!(
            extra.contains(reason),
            "{extra:?} should mention {reason:?}"
        );
    }
    // Nothing was stored by the rejected appends.
    let ok = append(
        &mut client,
        "s",
        shard,
        raw_batch(&["a"], Compression::None),
    )
    .await
    .expect("good batch");
    assert_eq!(ok.record_ids.len(), 1);
}

#[tokio::test]
async fn appends_to_unknown_shards_are_unavailable_as_store_errors() {
    let (_server, mut client) = start(Config::default()).await;
    let s1 = create_stream(&mut client, "s1", 1).await[0].shard_id;
    let s2 = create_stream(&mut client, "s2", 1).await[0].shard_id;
    let batch = || raw_batch(&["a"], Compression::None);

    for (stream, shard) in [("s1", 12345), ("s1", s2), ("missing", s1)] {
        let err = append(&mut client, stream, shard, batch())
            .await
            .expect_err("bad shard");
        assert_eq!(err.code(), Code::Unavailable, "{stream}/{shard}: {err:?}");
        assert!(weir_proto::error_body::ErrorBody::parse(err.message()).is_none());
    }

    client
        .delete_stream(DeleteStreamRequest {
            stream_name: "s1".into(),
            ignore_non_exist: false,
            force: false,
        })
        .await
        .expect("delete");
    let err = append(&mut client, "s1", s1, batch())
        .await
        .expect_err("deleted shard");
    assert_eq!(err.code(), Code::Unavailable);
}
