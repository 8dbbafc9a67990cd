//! Component tests of the sink against a real in-process development server
//! on an ephemeral port, with the server's fault injection: an outage under
//! steady load, a crash and restart with the disk buffer, a stream deleted
//! and re-created, backpressure from a slow server, dead letters, expiry,
//! drop-oldest, shutdown and health. Plus a throughput measurement that is
//! run by hand (ignored).

use super::*;
use crate::ack::{AckCounts, AckGroup, AckStats};
use crate::sink::client::tests::start;
use crate::sink::client::{ClientOptions, ReadRecord, StartFrom};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;
use weir_devserver::{Config, DevServer};
use weir_proto::pb::devserver::FaultPlan;
use weir_proto::pb::devserver::fault_control_client::FaultControlClient;
use weir_proto::record::{key_of, raw_record};

/// How long a test waits for something that should happen soon.
const DEADLINE: Duration = Duration::from_secs(30);

fn client_for(server: &DevServer) -> Client {
    Client::new(
        format!("hstream://{}", server.local_addr())
            .parse()
            .expect("a valid URL"),
        ClientOptions::default(),
    )
    .expect("client options are valid")
}

async fn faults(server: &DevServer, plan: FaultPlan) {
    FaultControlClient::connect(server.endpoint())
        .await
        .expect("connect to fault control")
        .set_faults(plan)
        .await
        .expect("set faults");
}

async fn injected_failures(server: &DevServer) -> u64 {
    FaultControlClient::connect(server.endpoint())
        .await
        .expect("connect to fault control")
        .get_faults(weir_proto::pb::devserver::GetFaultsRequest {})
        .await
        .expect("get faults")
        .into_inner()
        .injected_failures
}

/// A configuration for tests: short delays so that retries happen quickly.
/// A quarantine file of the test's own, so tests never write to the
/// working directory.
fn scratch_quarantine() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "weir-sink-test-{}-{}.jsonl",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ))
}

fn config() -> SinkConfig {
    SinkConfig {
        batch: BatchConfig {
            max_records: 100,
            max_bytes: 256 * 1024,
            linger_ms: 2,
            send_when_idle: true,
        },
        retry_min_delay_ms: 20,
        retry_max_delay_ms: 200,
        health_check_interval_ms: 200,
        quarantine_file: scratch_quarantine(),
        ..SinkConfig::default()
    }
}

/// Ack shares whose outcomes are counted, one message per record.
struct Acks {
    stats: AckStats,
    group: AckGroup,
}

impl Acks {
    fn new() -> Acks {
        let stats = AckStats::default();
        Acks {
            group: AckGroup::new(&stats),
            stats,
        }
    }

    fn share(&self) -> AckShare {
        let token = self.group.unacknowledged();
        let share = token.share();
        token.seal();
        share
    }

    fn counts(&self) -> AckCounts {
        self.stats.counts()
    }

    fn resolved(&self) -> u64 {
        let c = self.counts();
        c.stored + c.dead_lettered + c.quarantined + c.not_stored
    }

    async fn wait_resolved(&self, n: u64) {
        until(&format!("{n} records resolved"), || self.resolved() >= n).await;
    }
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn record(stream: &str, key: &str, payload: String, acks: &Acks) -> SinkRecord {
    SinkRecord {
        stream: stream.into(),
        record: raw_record(key, payload.into_bytes()),
        ack: acks.share(),
        event_time_ms: dispatcher::now_ms(),
    }
}

/// `key:index` payloads, spread round robin over `keys` keys.
fn payload(key: usize, index: usize) -> String {
    format!("k{key}:{index}")
}

async fn send_many(
    sender: &SinkSender,
    acks: &Acks,
    stream: &str,
    keys: usize,
    range: std::ops::Range<usize>,
) {
    for i in range {
        let key = i % keys;
        sender
            .send(record(stream, &format!("k{key}"), payload(key, i), acks))
            .await
            .expect("the sink takes the record");
    }
}

/// Reads the stream until `unique` distinct payloads were seen, then what
/// follows within a short quiet period (duplicates, if any).
async fn read_stream(client: &Client, stream: &str, unique: usize) -> Vec<ReadRecord> {
    let mut reader = client
        .read_stream(stream, StartFrom::Earliest)
        .await
        .expect("the read starts");
    let mut records = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let start = Instant::now();
    while seen.len() < unique {
        assert!(
            start.elapsed() < DEADLINE,
            "only {} of {unique} records in {stream:?}",
            seen.len()
        );
        if let Ok(next) = tokio::time::timeout(Duration::from_millis(500), reader.next()).await {
            let record = next.expect("the read succeeds").expect("the read goes on");
            seen.insert(record.record.payload.clone());
            records.push(record);
        }
    }
    while let Ok(next) = tokio::time::timeout(Duration::from_millis(300), reader.next()).await {
        records.push(next.expect("the read succeeds").expect("the read goes on"));
    }
    records
}

fn text(record: &ReadRecord) -> String {
    String::from_utf8(record.record.payload.to_vec()).expect("utf-8 payload")
}

/// Checks that every key's records are in increasing index order.
fn assert_key_order(records: &[ReadRecord]) {
    let mut last: HashMap<String, usize> = HashMap::new();
    for record in records {
        let text = text(record);
        let (key, index) = text.split_once(':').expect("key:index");
        let index: usize = index.parse().expect("an index");
        assert_eq!(key_of(&record.record), key, "the key is the record's key");
        if let Some(previous) = last.insert(key.to_owned(), index) {
            assert!(previous < index, "{key}: {index} stored after {previous}");
        }
    }
}

fn stream_metrics(sink: &Sink, stream: &str) -> StreamSnapshot {
    sink.handle()
        .metrics()
        .streams
        .get(stream)
        .cloned()
        .unwrap_or_default()
}

async fn setup(shards: u32) -> (DevServer, Client) {
    let server = start(Config::default()).await;
    let client = client_for(&server);
    client
        .create_stream("s", shards, 1, Duration::ZERO)
        .await
        .expect("create the stream");
    (server, client)
}

#[tokio::test]
async fn records_are_appended_in_key_order_and_acknowledged() {
    let (_server, client) = setup(4).await;
    let sink = Sink::start(&config(), client.clone())
        .await
        .expect("starts");
    let acks = Acks::new();
    send_many(&sink.sender(), &acks, "s", 16, 0..2000).await;
    acks.wait_resolved(2000).await;
    assert_eq!(acks.counts().stored, 2000);
    let metrics = stream_metrics(&sink, "s");
    assert_eq!(metrics.matched, 2000);
    assert_eq!(metrics.success, 2000);
    assert_eq!(
        (metrics.queuing, metrics.inflight, metrics.queuing_bytes),
        (0, 0, 0)
    );
    assert_eq!(metrics.latency_buckets.iter().sum::<u64>(), 2000);
    let records = read_stream(&client, "s", 2000).await;
    assert_eq!(records.len(), 2000, "no duplicates without failures");
    assert_key_order(&records);
    // Each record is on the shard the MD5 of its key names.
    let map = client.shards("s").await.expect("shards");
    assert_eq!(map.len(), 4);
    for record in &records {
        let key = key_of(&record.record);
        let shard = record.id.shard_id;
        assert_eq!(Some(shard), map.shard_for_key(key), "key {key}");
    }
    let report = sink.shutdown(Duration::from_secs(5)).await;
    assert!(report.drained);
}

#[tokio::test]
async fn an_outage_under_steady_load_loses_nothing() {
    let records = outage_under_steady_load(1).await;
    assert_key_order(&records);
}

#[tokio::test]
async fn an_outage_with_a_wider_window_loses_nothing_either() {
    // Order is not promised with several batches in flight; loss never is.
    outage_under_steady_load(4).await;
}

/// A steady load, and every Append failing for two seconds in the middle:
/// every record ends up stored once. Returns what the stream holds.
async fn outage_under_steady_load(inflight_per_shard: usize) -> Vec<ReadRecord> {
    let (server, client) = setup(2).await;
    let config = SinkConfig {
        inflight_per_shard,
        ..config()
    };
    let sink = Sink::start(&config, client.clone()).await.expect("starts");
    let acks = Arc::new(Acks::new());
    let total = 1500;
    let load = tokio::spawn({
        let sender = sink.sender();
        let acks = acks.clone();
        async move {
            // A steady load: one record every millisecond or so.
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            for i in 0..total {
                tick.tick().await;
                let key = i % 8;
                sender
                    .send(record("s", &format!("k{key}"), payload(key, i), &acks))
                    .await
                    .expect("the sink takes the record");
            }
        }
    });
    until("the load to be under way", || acks.counts().stored >= 100).await;
    faults(
        &server,
        FaultPlan {
            fail_appends_for_ms: 2_000,
            ..FaultPlan::default()
        },
    )
    .await;
    load.await.expect("the load task");
    acks.wait_resolved(total as u64).await;
    assert_eq!(acks.counts().stored, total as u64, "{:?}", acks.counts());
    assert!(injected_failures(&server).await > 0, "the outage happened");
    let metrics = stream_metrics(&sink, "s");
    assert!(metrics.retried > 0, "appends were retried: {metrics:?}");
    assert_eq!(metrics.success, total as u64);
    assert_eq!(metrics.dropped.total() + metrics.failed, 0);
    let records = read_stream(&client, "s", total).await;
    assert_eq!(records.len(), total, "every record once");
    until("the status to recover", || {
        sink.handle().status().borrow().state == ConnectorState::Connected
    })
    .await;
    records
}

#[tokio::test]
async fn the_disk_buffer_survives_a_crash_and_replays_with_bounded_duplicates() {
    let (server, client) = setup(2).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = config();
    config.buffer.disk = DiskConfig {
        enabled: true,
        dir: dir.path().to_owned(),
        segment_bytes: 16 * 1024,
        ..DiskConfig::default()
    };
    let total = 2000;
    let acks = Acks::new();
    {
        let sink = Sink::start(&config, client.clone()).await.expect("starts");
        send_many(&sink.sender(), &acks, "s", 8, 0..total / 2).await;
        acks.wait_resolved(total as u64 / 2).await;
        // A slow server: appends are in flight when weir "crashes".
        faults(
            &server,
            FaultPlan {
                append_latency_ms: 300,
                ..FaultPlan::default()
            },
        )
        .await;
        send_many(&sink.sender(), &acks, "s", 8, total / 2..total).await;
        acks.wait_resolved(total as u64).await;
        assert_eq!(
            acks.counts().stored,
            total as u64,
            "acknowledged once durably buffered"
        );
        until("appends to be in flight", || {
            stream_metrics(&sink, "s").inflight > 0
        })
        .await;
        sink.abort().await;
    }
    faults(&server, FaultPlan::default()).await;
    let sink = Sink::start(&config, client.clone())
        .await
        .expect("restarts");
    let disk = sink.handle().metrics().disk.expect("disk metrics");
    assert!(disk.replayed > 0, "records left at the crash are replayed");
    // Only what was in flight can be stored twice: one batch per shard.
    let bound = 2 * config.inflight_per_shard * config.batch.max_records;
    assert!(disk.in_doubt > 0, "appends were in flight at the crash");
    assert!(disk.in_doubt as usize <= bound, "{disk:?}");
    until("the replay to finish", || {
        sink.handle()
            .metrics()
            .disk
            .is_some_and(|disk| disk.records == 0)
    })
    .await;
    let records = read_stream(&client, "s", total).await;
    let duplicates = records.len() - total;
    assert!(
        duplicates as u64 <= disk.in_doubt,
        "{duplicates} duplicates, more than the {} records counted in doubt",
        disk.in_doubt
    );
    let report = sink.shutdown(Duration::from_secs(5)).await;
    assert!(report.drained, "{report:?}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .filter(|name| name.to_string_lossy().ends_with(".seg"))
        .collect();
    assert!(left.is_empty(), "segments left: {left:?}");
}

#[tokio::test]
async fn a_stream_deleted_and_recreated_resumes_without_restart() {
    let (_server, client) = setup(2).await;
    client
        .create_stream("dead", 1, 1, Duration::ZERO)
        .await
        .expect("create the dead-letter stream");
    let mut config = config();
    config.dead_letter_stream = Some("dead".into());
    let sink = Sink::start(&config, client.clone()).await.expect("starts");
    let acks = Acks::new();
    send_many(&sink.sender(), &acks, "s", 4, 0..200).await;
    acks.wait_resolved(200).await;
    assert_eq!(acks.counts().stored, 200);

    client.delete_stream("s", false).await.expect("delete");
    send_many(&sink.sender(), &acks, "s", 4, 200..250).await;
    acks.wait_resolved(250).await;
    assert_eq!(acks.counts().dead_lettered, 50, "{:?}", acks.counts());
    let metrics = stream_metrics(&sink, "s");
    assert_eq!((metrics.failed, metrics.dead_lettered), (50, 50));
    let dead = read_stream(&client, "dead", 50).await;
    let header = dead[0].record.header.as_ref().expect("a header");
    assert_eq!(
        header.attributes.get(ATTR_STREAM).map(String::as_str),
        Some("s")
    );
    assert!(
        header
            .attributes
            .get(ATTR_REASON)
            .is_some_and(|reason| reason.contains("does not exist")),
        "{header:?}"
    );

    client
        .create_stream("s", 3, 1, Duration::ZERO)
        .await
        .expect("re-create with other shards");
    send_many(&sink.sender(), &acks, "s", 4, 250..450).await;
    acks.wait_resolved(450).await;
    assert_eq!(acks.counts().stored, 400, "{:?}", acks.counts());
    let records = read_stream(&client, "s", 200).await;
    let texts: Vec<String> = records.iter().map(text).collect();
    let expected: Vec<String> = (250..450).map(|i| payload(i % 4, i)).collect();
    let mut sorted = texts.clone();
    sorted.sort();
    let mut expected_sorted = expected;
    expected_sorted.sort();
    assert_eq!(
        sorted, expected_sorted,
        "the new stream holds the new records"
    );
    assert_key_order(&records);
}

#[tokio::test]
async fn a_slow_server_makes_senders_wait_within_the_memory_bound() {
    let (server, client) = setup(1).await;
    let mut config = config();
    config.buffer.memory_bytes = 1024 * 1024;
    config.batch.max_bytes = 64 * 1024;
    let sink = Sink::start(&config, client.clone()).await.expect("starts");
    faults(
        &server,
        FaultPlan {
            append_latency_ms: 100,
            ..FaultPlan::default()
        },
    )
    .await;
    let acks = Arc::new(Acks::new());
    let total = 400; // 4 MB through a 1 MiB buffer
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = tokio::spawn({
        let sender = sink.sender();
        let acks = acks.clone();
        let sent = sent.clone();
        async move {
            for i in 0..total {
                let body = format!("{i:06}").repeat(10 * 1024 / 6);
                sender
                    .send(record("s", "k", body, &acks))
                    .await
                    .expect("the sink takes the record");
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let limit = sink.handle().metrics().memory_limit;
    let mut saw_waiting = false;
    while !load.is_finished() {
        let metrics = sink.handle().metrics();
        assert!(
            metrics.memory_bytes <= limit,
            "{} bytes held over the {limit} bound",
            metrics.memory_bytes
        );
        let s = stream_metrics(&sink, "s");
        assert!(s.queuing_bytes <= limit);
        let waiting = sent.load(std::sync::atomic::Ordering::Relaxed) as u64 - acks.resolved();
        // The sender is ahead of the appends by at most the buffer.
        assert!(
            waiting * 10 * 1024 <= limit + 64 * 1024,
            "{waiting} records buffered"
        );
        saw_waiting |= waiting > 0 && metrics.memory_bytes + 20 * 1024 > limit;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(saw_waiting, "the buffer filled up and the sender waited");
    acks.wait_resolved(total as u64).await;
    assert_eq!(acks.counts().stored, total as u64, "nothing lost");
}

#[tokio::test]
async fn a_full_disk_buffer_makes_senders_wait_and_frees_space_as_records_go() {
    let (server, client) = setup(1).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = config();
    config.batch.max_bytes = 16 * 1024;
    config.buffer.disk = DiskConfig {
        enabled: true,
        dir: dir.path().to_owned(),
        max_bytes: 128 * 1024,
        segment_bytes: 16 * 1024,
        fsync: FsyncPolicy::Never,
        ..DiskConfig::default()
    };
    let sink = Sink::start(&config, client.clone()).await.expect("starts");
    faults(
        &server,
        FaultPlan {
            append_latency_ms: 50,
            ..FaultPlan::default()
        },
    )
    .await;
    let acks = Arc::new(Acks::new());
    let total = 400; // 800 KiB through a 128 KiB disk buffer
    let load = tokio::spawn({
        let sender = sink.sender();
        let acks = acks.clone();
        async move {
            for i in 0..total {
                let body = format!("{i:04}").repeat(512);
                sender
                    .send(record("s", "k", body, &acks))
                    .await
                    .expect("the sink takes the record");
            }
        }
    });
    let mut saw_full = false;
    while !load.is_finished() {
        let disk = sink.handle().metrics().disk.expect("disk metrics");
        // Segment headers are taken beyond the bound, never records.
        assert!(
            disk.bytes <= disk.limit + 1024,
            "{} bytes on disk over the {} bound",
            disk.bytes,
            disk.limit
        );
        saw_full |= disk.bytes + 4 * 1024 > disk.limit;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(saw_full, "the disk buffer filled up");
    until("every record appended", || {
        stream_metrics(&sink, "s").success == total as u64
    })
    .await;
    assert_eq!(acks.counts().stored, total as u64);
    let report = sink.shutdown(Duration::from_secs(5)).await;
    assert!(report.drained, "{report:?}");
}

#[tokio::test]
async fn drop_oldest_keeps_the_bound_and_counts_what_it_drops() {
    let (server, client) = setup(1).await;
    let mut config = config();
    config.buffer.memory_bytes = 1024 * 1024;
    config.buffer.overflow = OverflowPolicy::DropOldest;
    config.batch.max_bytes = 64 * 1024;
    let sink = Sink::start(&config, client.clone()).await.expect("starts");
    faults(
        &server,
        FaultPlan {
            append_latency_ms: 300,
            ..FaultPlan::default()
        },
    )
    .await;
    let acks = Acks::new();
    let sender = sink.sender();
    let started = Instant::now();
    for i in 0..300 {
        let body = format!("{i:06}").repeat(10 * 1024 / 6);
        sender
            .send(record("s", "k", body, &acks))
            .await
            .expect("the sink takes the record");
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "senders do not wait"
    );
    acks.wait_resolved(300).await;
    let metrics = stream_metrics(&sink, "s");
    let counts = acks.counts();
    assert!(metrics.dropped.queue_full > 0, "{metrics:?}");
    assert_eq!(counts.not_stored, metrics.dropped.queue_full);
    assert_eq!(counts.stored, metrics.success);
    assert_eq!(metrics.success + metrics.dropped.queue_full, 300);
}

#[tokio::test]
async fn records_expire_after_the_request_ttl_and_are_counted() {
    let (server, client) = setup(1).await;
    let mut config = config();
    config.request_ttl_ms = 300;
    let sink = Sink::start(&config, client.clone()).await.expect("starts");
    faults(
        &server,
        FaultPlan {
            fail_appends_for_ms: 10_000,
            ..FaultPlan::default()
        },
    )
    .await;
    let acks = Acks::new();
    send_many(&sink.sender(), &acks, "s", 2, 0..10).await;
    acks.wait_resolved(10).await;
    assert_eq!(acks.counts().not_stored, 10);
    let metrics = stream_metrics(&sink, "s");
    assert_eq!(metrics.dropped.expired, 10, "{metrics:?}");
    assert_eq!(metrics.success, 0);
    until("the status to show the outage", || {
        let status = sink.handle().status().borrow().clone();
        status.state == ConnectorState::Disconnected
            && status
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("UNAVAILABLE"))
    })
    .await;
}

#[tokio::test]
async fn one_bad_record_does_not_take_its_batch_with_it() {
    let server = start(Config {
        max_record_bytes: 4096,
        ..Config::default()
    })
    .await;
    let client = client_for(&server);
    client
        .create_stream("s", 1, 1, Duration::ZERO)
        .await
        .expect("create");
    let mut config = config();
    config.batch.linger_ms = 200;
    config.batch.send_when_idle = false;
    let sink = Sink::start(&config, client.clone()).await.expect("starts");
    let acks = Acks::new();
    let sender = sink.sender();
    for (i, size) in [1500, 1500, 5000, 1500].into_iter().enumerate() {
        let body = format!("{i}").repeat(size);
        sender
            .send(record("s", "k", body, &acks))
            .await
            .expect("the sink takes the record");
    }
    acks.wait_resolved(4).await;
    let counts = acks.counts();
    // Refused on its own, tried `poison_retries` more times, and with no
    // dead-letter stream quarantined: acknowledged, never redelivered.
    assert_eq!((counts.stored, counts.quarantined), (3, 1), "{counts:?}");
    let metrics = stream_metrics(&sink, "s");
    assert_eq!(
        (metrics.success, metrics.failed, metrics.quarantined),
        (3, 1, 1)
    );
    assert!(metrics.retried >= 2, "{metrics:?}");
    let quarantined = read_quarantine(&config.quarantine_file).expect("readable");
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0]["payload_text"], "2".repeat(5000));
    assert_eq!(quarantined[0]["attributes"][ATTR_KIND], "refused");
    assert!(
        quarantined[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no dead-letter stream")),
        "{quarantined:?}"
    );
    let records = read_stream(&client, "s", 3).await;
    let firsts: Vec<char> = records
        .iter()
        .filter_map(|r| text(r).chars().next())
        .collect();
    assert_eq!(firsts, ['0', '1', '3'], "the good records, in order");
}

#[tokio::test]
async fn shutdown_flushes_what_is_buffered() {
    let (_server, client) = setup(2).await;
    let mut config = config();
    config.batch.linger_ms = 60_000;
    config.batch.send_when_idle = false;
    let sink = Sink::start(&config, client.clone()).await.expect("starts");
    let acks = Acks::new();
    send_many(&sink.sender(), &acks, "s", 4, 0..30).await;
    assert_eq!(acks.resolved(), 0, "lingering");
    let sender = sink.sender();
    let report = sink.shutdown(Duration::from_secs(10)).await;
    assert!(report.drained);
    assert_eq!(acks.counts().stored, 30);
    let late = record("s", "k", "late".into(), &acks);
    assert_eq!(sender.send(late).await, Err(SinkClosed));
    assert_eq!(
        acks.counts().not_stored,
        1,
        "a late record is not silently lost"
    );
}

#[tokio::test]
async fn a_shutdown_deadline_drops_and_counts_what_is_left() {
    let (server, client) = setup(1).await;
    let sink = Sink::start(&config(), client.clone())
        .await
        .expect("starts");
    faults(
        &server,
        FaultPlan {
            fail_appends_for_ms: 60_000,
            ..FaultPlan::default()
        },
    )
    .await;
    let acks = Acks::new();
    send_many(&sink.sender(), &acks, "s", 2, 0..20).await;
    let metrics_before = stream_metrics(&sink, "s");
    assert_eq!(metrics_before.matched, 20);
    let registry = sink.shared.registry.clone();
    let report = sink.shutdown(Duration::from_millis(300)).await;
    assert!(!report.drained);
    assert_eq!(
        acks.counts().not_stored,
        20,
        "not acknowledged, not lost silently"
    );
    let metrics = registry.snapshot().remove("s").unwrap_or_default();
    assert_eq!(metrics.dropped.resource_stopped, 20, "{metrics:?}");
    assert_eq!((metrics.queuing, metrics.inflight), (0, 0));
}

#[tokio::test]
async fn health_checks_report_missing_target_streams() {
    let (_server, client) = setup(1).await;
    let sink = Sink::start(&config(), client).await.expect("starts");
    sink.handle().set_targets(["s", "absent"]);
    let mut status = sink.handle().status();
    let found = tokio::time::timeout(
        DEADLINE,
        status.wait_for(|s| s.state == ConnectorState::Connected && !s.missing_streams.is_empty()),
    )
    .await
    .expect("a health check before the deadline")
    .expect("the sink runs")
    .clone();
    assert_eq!(found.missing_streams, ["absent"]);
    assert!(found.last_error.is_some_and(|e| e.contains("absent")));
}

#[tokio::test]
async fn an_unreachable_cluster_is_reported_connecting() {
    let port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let client = Client::new(
        format!("hstream://127.0.0.1:{port}").parse().expect("URL"),
        ClientOptions::default(),
    )
    .expect("client");
    let sink = Sink::start(&config(), client).await.expect("starts");
    let mut status = sink.handle().status();
    let seen = tokio::time::timeout(DEADLINE, status.wait_for(|s| s.checked_at.is_some()))
        .await
        .expect("a health check before the deadline")
        .expect("the sink runs")
        .clone();
    assert_eq!(seen.state, ConnectorState::Connecting);
    assert!(seen.last_error.is_some());
}

#[test]
fn configuration_is_checked_and_names_the_field() {
    let mut config = SinkConfig::default();
    config.validate().expect("defaults are valid");
    config.batch.max_bytes = 2 * 1024 * 1024;
    let error = config.validate().expect_err("over the append limit");
    assert_eq!(error.field, "sink.batch.max_bytes");
    let mut config = SinkConfig::default();
    config.buffer.disk.enabled = true;
    config.buffer.overflow = OverflowPolicy::DropOldest;
    let error = config
        .validate()
        .expect_err("drop_oldest loses acknowledged records");
    assert_eq!(error.field, "sink.buffer.overflow");
    let parsed: SinkConfig = toml::from_str(
        r#"
        compression = "zstd"
        inflight_per_shard = 4
        [batch]
        max_records = 10
        [buffer]
        overflow = "drop_oldest"
        "#,
    )
    .expect("parses");
    assert_eq!(parsed.compression, CompressionSetting::Zstd);
    assert_eq!(parsed.batch.max_records, 10);
    assert_eq!(parsed.batch.linger_ms, BatchConfig::default().linger_ms);
    let error = toml::from_str::<SinkConfig>("unknown = 1").expect_err("unknown fields");
    assert!(error.to_string().contains("unknown"), "{error}");
}

/// Records per second through the sink into the in-process server, for a
/// few batch settings. Run by hand:
/// `cargo test -p weir --release --lib sink::tests::throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn throughput() {
    let total = 200_000;
    let mut results = BTreeMap::new();
    let memory = None;
    for (max_records, linger_ms, inflight, compression, disk) in [
        (100, 5, 1, CompressionSetting::None, memory),
        (500, 5, 1, CompressionSetting::None, memory),
        (1000, 5, 1, CompressionSetting::None, memory),
        (100, 5, 4, CompressionSetting::None, memory),
        (500, 5, 4, CompressionSetting::None, memory),
        (500, 5, 1, CompressionSetting::Gzip, memory),
        (500, 5, 1, CompressionSetting::Zstd, memory),
        (
            500,
            5,
            1,
            CompressionSetting::None,
            Some(FsyncPolicy::Always),
        ),
        (
            500,
            5,
            1,
            CompressionSetting::None,
            Some(FsyncPolicy::Interval),
        ),
    ] {
        let (_server, client) = setup(4).await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = config();
        config.batch.max_records = max_records;
        config.batch.linger_ms = linger_ms;
        config.inflight_per_shard = inflight;
        config.compression = compression;
        config.buffer.disk.enabled = disk.is_some();
        config.buffer.disk.fsync = disk.unwrap_or_default();
        config.buffer.disk.dir = dir.path().to_owned();
        let sink = Sink::start(&config, client).await.expect("starts");
        let acks = Arc::new(Acks::new());
        let started = Instant::now();
        let senders: Vec<_> = (0..2)
            .map(|part| {
                let sender = sink.sender();
                let acks = acks.clone();
                tokio::spawn(async move {
                    let body = "x".repeat(200);
                    for i in (part..total).step_by(2) {
                        sender
                            .send(SinkRecord {
                                stream: "s".into(),
                                record: raw_record(
                                    format!("k{}", i % 64),
                                    body.clone().into_bytes(),
                                ),
                                ack: acks.share(),
                                event_time_ms: dispatcher::now_ms(),
                            })
                            .await
                            .expect("send");
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.await.expect("sender");
        }
        // With the disk buffer records are acknowledged before they are
        // appended: wait for the appends.
        until("every record appended", || {
            stream_metrics(&sink, "s").success == total as u64
        })
        .await;
        let elapsed = started.elapsed();
        let metrics = stream_metrics(&sink, "s");
        assert_eq!(acks.counts().stored, total as u64);
        let line = format!(
            "{:>8.0} records/s, p50 {:?} ms, p99 {:?} ms, max {} ms",
            total as f64 / elapsed.as_secs_f64(),
            metrics.latency_quantile_ms(0.5),
            metrics.latency_quantile_ms(0.99),
            metrics.latency_max_ms,
        );
        results.insert(
            format!(
                "max_records {max_records:>4}, linger {linger_ms} ms, inflight {inflight}, {compression:?}, disk {disk:?}"
            ),
            line,
        );
        sink.shutdown(Duration::from_secs(5)).await;
    }
    for (setting, line) in results {
        println!("{setting}: {line}");
    }
}

#[tokio::test]
async fn an_oversize_record_is_never_sent_and_ends_in_quarantine_when_its_dead_letter_is_too() {
    let (_server, client) = setup(1).await;
    client
        .create_stream("dead", 1, 1, Duration::ZERO)
        .await
        .expect("create the dead-letter stream");
    let mut config = config();
    config.max_record_bytes = 4096;
    config.dead_letter_stream = Some("dead".into());
    let sink = Sink::start(&config, client.clone()).await.expect("starts");
    let acks = Acks::new();
    let sender = sink.sender();
    for body in ["small".to_owned(), "x".repeat(5000), "after".to_owned()] {
        sender
            .send(record("s", "k", body, &acks))
            .await
            .expect("the sink takes the record");
    }
    acks.wait_resolved(3).await;
    let counts = acks.counts();
    assert_eq!((counts.stored, counts.quarantined), (2, 1), "{counts:?}");
    // Caught before the Append: nothing was refused by the server, retried
    // or sent to the dead-letter stream.
    assert_eq!(stream_metrics(&sink, "s").retried, 0);
    let records = read_stream(&client, "s", 2).await;
    assert_eq!(
        records.iter().map(text).collect::<Vec<_>>(),
        ["small", "after"]
    );
    let entry = &read_quarantine(&config.quarantine_file).expect("readable")[0];
    assert_eq!(entry["attributes"][ATTR_KIND], "oversize");
    assert_eq!(entry["attributes"][ATTR_STREAM], "s");
    assert_eq!(entry["stream"], "dead");
    let reason = entry["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("over the limit of 4096") && reason.contains("dead-letter stream refused"),
        "{reason}"
    );
    let metrics = stream_metrics(&sink, "s");
    assert_eq!(
        (metrics.failed, metrics.quarantined, metrics.dead_lettered),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn a_record_whose_dead_letter_stream_is_missing_is_quarantined_not_failed() {
    let (_server, client) = setup(1).await;
    let mut config = config();
    config.dead_letter_stream = Some("no_such_dead_letters".into());
    let sink = Sink::start(&config, client.clone()).await.expect("starts");
    let acks = Acks::new();
    send_many(&sink.sender(), &acks, "missing", 2, 0..5).await;
    acks.wait_resolved(5).await;
    assert_eq!(acks.counts().quarantined, 5, "{:?}", acks.counts());
    let entries = read_quarantine(&config.quarantine_file).expect("readable");
    assert_eq!(entries.len(), 5);
    assert!(
        entries
            .iter()
            .all(|e| e["attributes"][ATTR_KIND] == "stream_missing")
    );
}

#[tokio::test]
async fn a_rejection_becomes_one_dead_letter_record_and_acknowledges_as_dead_lettered() {
    let (_server, client) = setup(1).await;
    client
        .create_stream("dead", 1, 1, Duration::ZERO)
        .await
        .expect("create the dead-letter stream");
    let mut config = config();
    config.dead_letter_stream = Some("dead".into());
    let sink = Sink::start(&config, client.clone()).await.expect("starts");
    let acks = Acks::new();
    let rejection = Rejection {
        stage: Stage::Render,
        kind: "not_json",
        message: "plugin p emitted a JSON record that is not valid JSON".into(),
        stream: Some("s".into()),
        plugin: Some(("p".into(), 7)),
        dead_letter_stream: None,
    };
    sink.sender()
        .reject(
            Rejected::Output {
                key: "t/1".into(),
                bytes: bytes::Bytes::from_static(b"{oops"),
            },
            rejection,
            acks.share(),
            0,
        )
        .await
        .expect("taken");
    acks.wait_resolved(1).await;
    assert_eq!(acks.counts().dead_lettered, 1, "{:?}", acks.counts());
    let dead = read_stream(&client, "dead", 1).await;
    let record = &dead[0].record;
    assert_eq!((key_of(record), text(&dead[0]).as_str()), ("t/1", "{oops"));
    let attributes = &record.header.as_ref().expect("header").attributes;
    for (name, value) in [
        (ATTR_STAGE, "render"),
        (ATTR_KIND, "not_json"),
        (ATTR_STREAM, "s"),
        (ATTR_PLUGIN, "p"),
        (ATTR_VERSION, "7"),
    ] {
        assert_eq!(
            attributes.get(name).map(String::as_str),
            Some(value),
            "{name}"
        );
    }
    let metrics = stream_metrics(&sink, "s");
    assert_eq!((metrics.failed, metrics.dead_lettered), (1, 1));
}

#[tokio::test]
async fn records_queued_behind_an_expired_batch_expire_with_it_instead_of_overtaking_it() {
    let (server, client) = setup(1).await;
    let mut config = config();
    config.request_ttl_ms = 2_000;
    let sink = Sink::start(&config, client.clone()).await.expect("starts");
    // The outage outlasts the first record's TTL but not the later ones'.
    faults(
        &server,
        FaultPlan {
            fail_appends_for_ms: 2_300,
            ..FaultPlan::default()
        },
    )
    .await;
    let acks = Acks::new();
    let sender = sink.sender();
    sender
        .send(record("s", "k", "first".into(), &acks))
        .await
        .expect("taken");
    // About a second into the outage (retries at 20, 60, 140, 300 ms, then
    // every 100 to 200 ms), the later records of the key queue behind it.
    until("the first record to be retried for a while", || {
        stream_metrics(&sink, "s").retried >= 8
    })
    .await;
    for text in ["second", "third"] {
        sender
            .send(record("s", "k", text.into(), &acks))
            .await
            .expect("taken");
    }
    acks.wait_resolved(3).await;
    // Appended after the outage, they would sit before "first", which
    // comes back only when its message is delivered again.
    assert_eq!(acks.counts().not_stored, 3, "{:?}", acks.counts());
    let metrics = stream_metrics(&sink, "s");
    assert_eq!((metrics.success, metrics.dropped.expired), (0, 3));
    sender
        .send(record("s", "k", "later".into(), &acks))
        .await
        .expect("taken");
    acks.wait_resolved(4).await;
    let records = read_stream(&client, "s", 1).await;
    assert_eq!(records.iter().map(text).collect::<Vec<_>>(), ["later"]);
}
