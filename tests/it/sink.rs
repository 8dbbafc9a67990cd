//! The sink's guarantees with real processes under steady QoS 1 load: an
//! outage of the HStreamDB-compatible server, the server killed and
//! restarted and then the broker restarted, weir killed with SIGKILL and
//! restarted (disk buffer, and memory buffer with the broker's persistent
//! session), a stream deleted and recreated while weir runs, and a slow
//! server that must slow MQTT ingestion down while weir's memory stays
//! bounded.
//!
//! Every scenario publishes messages whose payload is a sequence number and
//! checks, after the fact, that every acknowledged one is in the stream;
//! duplicates are counted and bounded by what the at-least-once design
//! allows (see ARCHITECTURE.md, "Sink").

use crate::harness::admin::Admin;
use crate::harness::devserver::DevServer;
use crate::harness::gateway::{
    Gateway, client, listener_config_on, listener_config_with, read_records,
};
use crate::harness::load::{
    LoadOptions, LoadPublisher, LoadReport, account, all_stored, first_copies_in_order_per_key,
    memory_of, seq_of_record,
};
use crate::harness::mosquitto::{Mosquitto, free_port};
use crate::harness::mqtt_client::{Message, publish};
use crate::harness::{DEFAULT_DEADLINE, eventually, plugins_dir, scratch_dir, unique_name};
use ::weir::sink::client::{Client, StartFrom};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_plugin_artifacts::MESSAGE;

/// The stream the seed's message plugin writes to.
const STREAM: &str = "mqtt_message";

/// Topics the load spreads over (the plugin's source is `t/#`).
const TOPICS: [&str; 4] = ["t/0", "t/1", "t/2", "t/3"];

/// The bridge's window: QoS 1 messages the broker has in flight to weir.
/// It bounds the messages stored but not yet acknowledged to the broker,
/// the ones a crash makes the broker deliver again.
const BRIDGE_WINDOW: u64 = 200;

/// weir bridged to `broker` with a persistent session, writing to `server`
/// through the message plugin; `sink` is appended to the `[sink]` section
/// (keys, then sub-tables).
fn bridge_config(
    broker: &Mosquitto,
    server: &DevServer,
    client_id: &str,
    plugins: &str,
    sink: &str,
) -> String {
    format!(
        r#"
[mqtt.bridge]
url = "{broker}"
client_id = "{client_id}"
clean_start = false
window = {BRIDGE_WINDOW}
reconnect_min_delay_ms = 100
reconnect_max_delay_ms = 1000

[hstreamdb]
url = "{server}"

[hstreamdb.create_streams]
enabled = true
shards = 2

[plugins]
dir = "{plugins}"

[sink]
retry_max_delay_ms = 500
{sink}
"#,
        broker = broker.url(),
        server = server.url(),
    )
}

/// The HStreamDB connector as the admin API shows it.
async fn connector(gateway: &Gateway) -> Value {
    let url = format!("{}/api/v1/connectors/hstreamdb", gateway.admin_url());
    let mut body: Value = reqwest::get(&url)
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .expect("the connector as JSON");
    body["connector"].take()
}

/// Follows a stream from its start, keeping the sequence numbers stored.
struct Follower {
    seqs: Arc<Mutex<Result<Vec<u64>, String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Follower {
    async fn start(hstream: &Client, stream: &str) -> Follower {
        let mut reader = hstream
            .read_stream(stream, StartFrom::Earliest)
            .await
            .expect("start reading the stream");
        let seqs = Arc::new(Mutex::new(Ok(Vec::new())));
        let shared = seqs.clone();
        let task = tokio::spawn(async move {
            loop {
                let next = match reader.next().await {
                    Ok(Some(record)) => seq_of_record(&record),
                    Ok(None) => Err("the read ended".to_owned()),
                    Err(e) => Err(format!("the read failed: {e}")),
                };
                let mut seqs = shared.lock().expect("seqs lock");
                match (next, seqs.as_mut()) {
                    (Ok(seq), Ok(seqs)) => seqs.push(seq),
                    (Err(e), _) => {
                        *seqs = Err(e);
                        return;
                    }
                    (Ok(_), Err(_)) => return,
                }
            }
        });
        Follower { seqs, task }
    }

    fn stored(&self) -> Result<Vec<u64>, String> {
        self.seqs.lock().expect("seqs lock").clone()
    }

    /// Waits until the stream holds a message numbered `seq` or later.
    async fn wait_past(&self, seq: u64, what: &str) {
        eventually(what, DEFAULT_DEADLINE, || async move {
            let stored = self.stored()?;
            match stored.iter().max() {
                Some(&max) if max >= seq => Ok(()),
                max => Err(format!(
                    "{} stored, highest {max:?}, waiting for {seq}",
                    stored.len()
                )),
            }
        })
        .await;
    }

    /// Waits until every acknowledged message is stored, and counts the
    /// duplicates.
    async fn wait_for_all(&self, acked: &[u64]) -> usize {
        eventually(
            "every acknowledged message in the stream",
            DEFAULT_DEADLINE,
            || async move { all_stored(acked, &self.stored()?) },
        )
        .await
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Broker, server and weir bridged between them, with the plugins in place.
struct Bridged {
    broker: Mosquitto,
    server: DevServer,
    weir: Gateway,
    client_id: String,
    _dir: tempfile::TempDir,
}

impl Bridged {
    /// Starts everything; `sink` configures the sink (see [`bridge_config`])
    /// and may name `{dir}`, the scratch directory.
    async fn start(sink: &str) -> Bridged {
        Self::start_with(sink, false).await
    }

    /// As [`Bridged::start`]; with `durable_server` the server keeps its
    /// data in the scratch directory, so that it survives a crash.
    async fn start_with(sink: &str, durable_server: bool) -> Bridged {
        let mut broker = Mosquitto::start().await;
        let dir = scratch_dir();
        let server = if durable_server {
            DevServer::start_persistent(&dir.path().join("hstream")).await
        } else {
            DevServer::start().await
        };
        let plugins = plugins_dir(dir.path(), &[(&MESSAGE, "message")]);
        let client_id = unique_name("weir");
        let sink = sink.replace("{dir}", dir.path().to_str().expect("utf-8 path"));
        let config = bridge_config(&broker, &server, &client_id, &plugins, &sink);
        let weir = Gateway::start(dir.path(), &config).await;
        broker.wait_for_subscription(&client_id, "t/#").await;
        Bridged {
            broker,
            server,
            weir,
            client_id,
            _dir: dir,
        }
    }

    fn load(&self, rate: u32) -> LoadPublisher {
        LoadPublisher::start(LoadOptions::new(
            self.broker.port(),
            &unique_name("load"),
            &TOPICS,
            Some(rate),
        ))
    }
}

#[tokio::test]
async fn a_ten_second_server_outage_under_load_loses_no_acknowledged_message() {
    let bridged = Bridged::start("").await;
    let hstream = client(&bridged.server.url());
    let stored = Follower::start(&hstream, STREAM).await;
    let load = bridged.load(500);
    stored
        .wait_past(200, "records flowing before the outage")
        .await;

    bridged
        .server
        .set_faults(Duration::from_secs(10), Duration::ZERO)
        .await;
    let server = &bridged.server;
    eventually(
        "the outage to be over",
        Duration::from_secs(30),
        || async move {
            let plan = server.faults().await;
            if plan.fail_appends_for_ms == 0 {
                Ok(plan.injected_failures)
            } else {
                Err(format!("{} ms left", plan.fail_appends_for_ms))
            }
        },
    )
    .await;
    let during_outage = load.published();
    stored
        .wait_past(during_outage + 500, "records published after the outage")
        .await;
    let report = load.finish(DEFAULT_DEADLINE).await;

    let duplicates = stored.wait_for_all(&report.acked).await;
    let failures = bridged.server.faults().await.injected_failures;
    println!(
        "outage: {} messages acknowledged by the broker, all stored, {duplicates} duplicates; \
         {failures} appends failed with UNAVAILABLE",
        report.acked.len()
    );
    assert!(
        failures > 0,
        "weir tried to append during the outage (it was under load)"
    );
    assert!(
        report.acked.len() > 5000,
        "the load went on through the outage"
    );
    bridged.weir.stop().await;
}

/// The server is killed (SIGKILL) and restarted on its data under load, and
/// then the broker restarts while weir still works through the backlog:
/// every acknowledged message is stored, the first copy of each is in
/// publish order per key, the crash duplicates at most what was in flight,
/// and nothing is duplicated once the faults are over. What the restarted
/// broker redelivers is counted, not bounded: it is whatever the broker's
/// restored session lists as unacknowledged (ARCHITECTURE.md, "Sink").
#[tokio::test]
async fn a_server_crash_then_a_broker_restart_under_load_lose_nothing_and_keep_order_per_key() {
    let mut bridged = Bridged::start_with("", true).await;
    let hstream = client(&bridged.server.url());

    let before = bridged.load(500);
    before
        .wait_acked(1000, "messages flowing before the crash")
        .await;
    bridged.server.crash_and_restart().await;
    before
        .wait_acked(1000, "messages acknowledged after the server came back")
        .await;
    let first = before.finish(DEFAULT_DEADLINE).await;

    // Unpaced, so that the broker holds a backlog for weir when it stops.
    let mut backlog = LoadOptions::new(bridged.broker.port(), &unique_name("load"), &TOPICS, None);
    backlog.first_seq = 1_000_000;
    let backlog = LoadPublisher::start(backlog);
    backlog.wait_acked(3000, "a backlog published").await;
    let second = backlog.finish(DEFAULT_DEADLINE).await;
    bridged.broker.restart().await;
    // The broker kept weir's session (and its subscription) across the
    // restart: what to wait for is weir connected again.
    let admin = Admin::of(&bridged.weir);
    let admin = &admin;
    eventually(
        "the bridge connected again",
        DEFAULT_DEADLINE,
        || async move {
            let (_, status) = admin.get("/api/v1/status").await;
            let ingress = &status["ingress"];
            if ingress["reconnects"].as_u64() >= Some(1) && ingress["state"] == "connected" {
                Ok(())
            } else {
                Err(ingress.to_string())
            }
        },
    )
    .await;
    let mut after = LoadOptions::new(
        bridged.broker.port(),
        &unique_name("load"),
        &TOPICS,
        Some(500),
    );
    after.first_seq = 2_000_000;
    let after = LoadPublisher::start(after);
    after
        .wait_acked(1000, "messages acknowledged after the broker restart")
        .await;
    let third = after.finish(DEFAULT_DEADLINE).await;

    let acked: Vec<u64> = [&first, &second, &third]
        .iter()
        .flat_map(|report| report.acked.iter().copied())
        .collect();
    let hstream = &hstream;
    let acked_ref = &acked;
    let records = eventually(
        "every acknowledged message in the stream",
        DEFAULT_DEADLINE,
        || async move {
            let records = hstream
                .read_stored(STREAM)
                .await
                .map_err(|e| format!("read {STREAM}: {e}"))?;
            let seqs = records
                .iter()
                .map(seq_of_record)
                .collect::<Result<Vec<u64>, String>>()?;
            all_stored(acked_ref, &seqs)?;
            Ok(records)
        },
    )
    .await;
    let duplicates = first_copies_in_order_per_key(&records).unwrap_or_else(|e| panic!("{e}"));
    // Duplicates per phase: a record beyond the first of its sequence number.
    let mut copies: BTreeMap<u64, usize> = BTreeMap::new();
    for record in &records {
        *copies
            .entry(seq_of_record(record).expect("a sequence number"))
            .or_default() += 1;
    }
    let duplicated =
        |range: std::ops::Range<u64>| -> usize { copies.range(range).map(|(_, n)| n - 1).sum() };
    let (at_crash, at_restart, later) = (
        duplicated(0..1_000_000),
        duplicated(1_000_000..2_000_000),
        duplicated(2_000_000..u64::MAX),
    );
    let (_, status) = admin.get("/api/v1/status").await;
    let reconnects = status["ingress"]["reconnects"].as_u64().unwrap_or(0);
    println!(
        "server crash and broker restart: {} messages acknowledged, all stored, first copies in \
         order per key; duplicates {duplicates}: {at_crash} from the server crash, {at_restart} \
         redelivered by the restarted broker, {later} after; {reconnects} bridge reconnects",
        acked.len()
    );
    assert!(
        reconnects >= 1,
        "the bridge reconnected after the broker restart"
    );
    assert!(
        at_crash as u64 <= BRIDGE_WINDOW,
        "{at_crash} duplicates from the server crash: more than was in flight"
    );
    assert_eq!(later, 0, "no duplicates once the faults are over");
    bridged.weir.stop().await;
}

/// SIGKILL mid-load and a restart on the same data directory: every message
/// the broker acknowledged is stored; returns the duplicates and the
/// connector's view after the restart.
async fn kill_and_restart_under_load(sink: &str) -> (usize, LoadReport, Value) {
    let mut bridged = Bridged::start(sink).await;
    let hstream = client(&bridged.server.url());
    let stored = Follower::start(&hstream, STREAM).await;
    let load = bridged.load(1000);
    stored
        .wait_past(1000, "records flowing before the crash")
        .await;

    bridged.weir.kill().await;
    // Messages keep coming while weir is down: the broker queues them in
    // weir's persistent session.
    let at_crash = load.published();
    eventually("the load to go on without weir", DEFAULT_DEADLINE, || {
        let published = load.published();
        async move {
            if published >= at_crash + 500 {
                Ok(())
            } else {
                Err(format!("{published} published"))
            }
        }
    })
    .await;
    bridged.weir.restart().await;
    bridged
        .broker
        .wait_for_subscription(&bridged.client_id, "t/#")
        .await;
    let after_restart = load.published();
    stored
        .wait_past(after_restart + 500, "records published after the restart")
        .await;
    let report = load.finish(DEFAULT_DEADLINE).await;
    let duplicates = stored.wait_for_all(&report.acked).await;
    let connector = connector(&bridged.weir).await;
    bridged.weir.stop().await;
    (duplicates, report, connector)
}

#[tokio::test]
async fn weir_killed_mid_load_with_a_disk_buffer_loses_nothing_and_counts_its_duplicates() {
    let (duplicates, report, connector) = kill_and_restart_under_load(
        r#"
[sink.buffer.disk]
enabled = true
dir = "{dir}/buffer"
"#,
    )
    .await;
    let disk = &connector["buffer"]["disk"];
    let in_doubt = disk["in_doubt"].as_u64().expect("disk.in_doubt");
    let replayed = disk["replayed"].as_u64().expect("disk.replayed");
    println!(
        "SIGKILL, disk buffer: {} acknowledged, all stored; {duplicates} duplicates, \
         {replayed} records replayed from disk, {in_doubt} in doubt",
        report.acked.len()
    );
    // Two sources of duplicates: records replayed from the disk whose
    // Append may have succeeded before the crash (counted as in_doubt), and
    // messages written to the disk whose PUBACK had not reached the broker,
    // which it delivers again: at most the bridge's window.
    assert!(
        duplicates as u64 <= in_doubt + BRIDGE_WINDOW,
        "{duplicates} duplicates > {in_doubt} in doubt + window {BRIDGE_WINDOW}"
    );
}

#[tokio::test]
async fn weir_killed_mid_load_with_a_memory_buffer_relies_on_the_brokers_session() {
    let (duplicates, report, _) = kill_and_restart_under_load("").await;
    println!(
        "SIGKILL, memory buffer: {} acknowledged, all stored; {duplicates} duplicates",
        report.acked.len()
    );
    // Only messages appended but not yet acknowledged to the broker come
    // twice, and the broker has at most the bridge's window in flight.
    assert!(
        duplicates as u64 <= BRIDGE_WINDOW,
        "{duplicates} duplicates > window {BRIDGE_WINDOW}"
    );
}

/// weir as the devices' broker (listener mode), SIGKILLed mid-load and
/// started again at the same address: the publisher connects again, as a
/// device does. Its session was in weir's memory, so its client gives up
/// what was in flight (MQTT lets a client without a session do that) and
/// goes on. Every acknowledged message is stored, first copies keep their
/// order per key, and at most what was in flight at the crash (the
/// publisher's window) is given up or stored twice.
#[tokio::test]
async fn weir_as_the_devices_broker_killed_mid_load_loses_no_acknowledged_message() {
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = plugins_dir(dir.path(), &[(&MESSAGE, "message")]);
    let bind = format!("127.0.0.1:{}", free_port());
    let anonymous = "allow_anonymous = true";
    let config = listener_config_on(&bind, &server.url(), &plugins, anonymous, "");
    let mut weir = Gateway::start(dir.path(), &config).await;
    let hstream = client(&server.url());
    let stored = Follower::start(&hstream, STREAM).await;
    let mut options = LoadOptions::new(
        weir.mqtt_port(),
        &unique_name("device"),
        &TOPICS,
        Some(1000),
    );
    options.reconnect = true;
    let window = u64::from(options.inflight);
    let load = LoadPublisher::start(options);
    stored
        .wait_past(1000, "records flowing before the crash")
        .await;

    weir.kill().await;
    let acked_before = load.acked();
    weir.restart().await;
    eventually(
        "the publisher to connect again",
        DEFAULT_DEADLINE,
        || async {
            match load.reconnects() {
                0 => Err("not yet".to_owned()),
                _ => Ok(()),
            }
        },
    )
    .await;
    load.wait_acked(1000, "acknowledgements after the restart")
        .await;
    let report = load.finish(DEFAULT_DEADLINE).await;
    let duplicates = stored.wait_for_all(&report.acked).await;
    let total = stored.stored().expect("the stream's records").len();
    let records = read_records(&hstream, STREAM, total).await;
    first_copies_in_order_per_key(&records).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "listener SIGKILL: {} acknowledged ({acked_before} before the crash), all stored, \
         first copies in order per key; {duplicates} duplicates; {} given up by the client",
        report.acked.len(),
        report.abandoned.len()
    );
    assert!(
        report.abandoned.len() as u64 <= window,
        "{} given up: more than the {window} messages in flight at the crash",
        report.abandoned.len()
    );
    assert!(
        duplicates as u64 <= window,
        "{duplicates} duplicates: more than the {window} messages in flight at the crash"
    );
    weir.stop().await;
}

#[tokio::test]
async fn a_stream_deleted_and_recreated_while_weir_runs_gets_the_new_records() {
    let bridged = Bridged::start("").await;
    let hstream = client(&bridged.server.url());
    let batch = |from: u64| -> Vec<Message> {
        (from..from + 100)
            .map(|n| Message::new(TOPICS[(n % 4) as usize], n.to_string(), 1))
            .collect()
    };
    let stored = |hstream: Client| async move {
        let records = hstream
            .read_stored(STREAM)
            .await
            .map_err(|e| e.to_string())?;
        records
            .iter()
            .map(seq_of_record)
            .collect::<Result<Vec<u64>, String>>()
    };
    let port = bridged.broker.port();
    publish(port, &unique_name("before"), true, &batch(0)).await;
    eventually("the first messages stored", DEFAULT_DEADLINE, || {
        let hstream = hstream.clone();
        async move {
            let seqs = stored(hstream).await?;
            (seqs.len() >= 100)
                .then_some(())
                .ok_or(format!("{} stored", seqs.len()))
        }
    })
    .await;

    hstream
        .delete_stream(STREAM, false)
        .await
        .expect("delete the stream");
    // Messages published while the stream is missing cannot be stored: weir
    // does not acknowledge them, so the broker delivers them again.
    publish(port, &unique_name("missing"), true, &batch(100)).await;
    let weir = &bridged.weir;
    eventually(
        "weir to find the stream missing",
        DEFAULT_DEADLINE,
        || async move {
            let failed = connector(weir).await["streams"][STREAM]["failed"]
                .as_u64()
                .unwrap_or(0);
            (failed > 0)
                .then_some(())
                .ok_or("no failed record yet".to_owned())
        },
    )
    .await;

    hstream
        .create_stream(STREAM, 2, 1, Duration::ZERO)
        .await
        .expect("recreate the stream");
    publish(port, &unique_name("after"), true, &batch(200)).await;

    let expected: Vec<u64> = (100..300).collect();
    let seqs = eventually(
        "the messages since the deletion in the new stream",
        DEFAULT_DEADLINE,
        || {
            let hstream = hstream.clone();
            let expected = &expected;
            async move {
                let seqs = stored(hstream).await?;
                let accounting = account(expected, &seqs);
                if accounting.missing.is_empty() {
                    Ok(seqs)
                } else {
                    Err(format!("{} missing", accounting.missing.len()))
                }
            }
        },
    )
    .await;
    assert!(
        seqs.iter().all(|seq| *seq >= 100),
        "the new stream holds only records from after the deletion"
    );
    println!(
        "stream recreated: {} records in the new stream for 200 messages",
        seqs.len()
    );
    bridged.weir.stop().await;
}

#[tokio::test]
async fn a_slow_server_slows_publishers_down_and_memory_stays_bounded() {
    const MEMORY_BYTES: u64 = 1 << 20;
    const LATENCY: Duration = Duration::from_millis(200);
    const BATCH: u64 = 500;
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = plugins_dir(dir.path(), &[(&MESSAGE, "message")]);
    // One shard, one batch in flight, every Append at least LATENCY: the
    // server stores at most BATCH records per LATENCY.
    let config = listener_config_with(
        &server.url(),
        &plugins,
        "allow_anonymous = true\nwindow = 10000",
        &format!(
            "inflight_per_shard = 1\n\n[sink.batch]\nmax_records = {BATCH}\n\n\
             [sink.buffer]\nmemory_bytes = {MEMORY_BYTES}\noverflow = \"backpressure\"\n"
        ),
    );
    let weir = Gateway::start(dir.path(), &config).await;
    let hstream = client(&server.url());
    let stored = Follower::start(&hstream, STREAM).await;
    // Each publisher keeps up to 3000 messages of 200 bytes in flight: 9000
    // records, several times what MEMORY_BYTES holds.
    let publishers = |first_seq: u64| -> Vec<LoadPublisher> {
        (0..3u64)
            .map(|n| {
                let mut options =
                    LoadOptions::new(weir.mqtt_port(), &unique_name("device"), &TOPICS, None);
                options.inflight = 3000;
                options.payload_bytes = 200;
                options.first_seq = first_seq + n * 1_000_000;
                LoadPublisher::start(options)
            })
            .collect()
    };
    let finish = |load: Vec<LoadPublisher>| async move {
        let mut reports = Vec::new();
        for publisher in load {
            reports.push(publisher.finish(DEFAULT_DEADLINE).await);
        }
        reports
    };

    // A fast server first: weir's memory once it has carried load.
    let warm_up = publishers(0);
    eventually("warm-up load acknowledged", DEFAULT_DEADLINE, || {
        let acked: u64 = warm_up.iter().map(LoadPublisher::acked).sum();
        async move {
            (acked >= 6000)
                .then_some(())
                .ok_or(format!("{acked} acked"))
        }
    })
    .await;
    let fast = finish(warm_up).await;
    let before = memory_of(weir.pid());

    // Then a slow one, for as long as it takes to store 3 × BATCH × 5.
    server.set_faults(Duration::ZERO, LATENCY).await;
    let slow_load = publishers(10_000_000);
    let buffered_max = AtomicU64::new(0);
    let sampled = eventually("load against the slow server", DEFAULT_DEADLINE, || {
        let acked: u64 = slow_load.iter().map(LoadPublisher::acked).sum();
        let (weir, buffered_max) = (&weir, &buffered_max);
        async move {
            let buffer = &connector(weir).await["buffer"];
            let bytes = buffer["memory_bytes"]
                .as_u64()
                .expect("buffer.memory_bytes");
            let limit = buffer["memory_limit_bytes"].as_u64().expect("limit");
            assert_eq!(limit, MEMORY_BYTES);
            assert!(bytes <= limit, "{bytes} bytes buffered, over {limit}");
            buffered_max.fetch_max(bytes, Ordering::Relaxed);
            (acked >= 3 * BATCH * 5)
                .then_some(acked)
                .ok_or(format!("{acked} acked"))
        }
    })
    .await;
    let peak = memory_of(weir.pid()).peak;
    let buffered_max = buffered_max.into_inner();
    let slow = finish(slow_load).await;

    let all_acked: Vec<u64> = fast
        .iter()
        .chain(&slow)
        .flat_map(|r| r.acked.iter().copied())
        .collect();
    let duplicates = stored.wait_for_all(&all_acked).await;
    let rate = |reports: &[LoadReport]| -> f64 { reports.iter().map(LoadReport::rate).sum() };
    let slowest_fastest_ack = slow
        .iter()
        .map(|r| r.ack_latency(0.0))
        .min()
        .expect("three publishers");
    println!(
        "backpressure: fast server {:.0} msg/s (PUBACK p50 {:?}), slow server {:.0} msg/s \
         (PUBACK p50 {:?}, fastest {:?}); sink buffer peak {buffered_max} of {MEMORY_BYTES} bytes; \
         weir RSS {} MiB before, peak {} MiB; {} messages stored, {duplicates} duplicates; \
         {sampled} acked when sampling stopped",
        rate(&fast),
        fast[0].ack_latency(0.5),
        rate(&slow),
        slow[0].ack_latency(0.5),
        slowest_fastest_ack,
        before.rss >> 20,
        peak >> 20,
        all_acked.len(),
    );
    // Every PUBACK waited for an Append, and every Append took LATENCY.
    assert!(slowest_fastest_ack >= LATENCY, "{slowest_fastest_ack:?}");
    // The server's pace bounds the publishers' (with room for timing).
    let ceiling = (BATCH as f64) / LATENCY.as_secs_f64();
    assert!(
        rate(&slow) <= ceiling * 1.2,
        "{:.0} msg/s against a server that stores at most {ceiling:.0}",
        rate(&slow)
    );
    assert!(
        buffered_max >= MEMORY_BYTES / 2,
        "the load filled the buffer (peak {buffered_max} bytes)"
    );
    // The buffer is bounded, so the process grows by about that bound (and
    // the fixed queues ahead of it), not by the 9000 messages in flight.
    let growth = peak.saturating_sub(before.rss);
    assert!(
        growth <= 4 * MEMORY_BYTES + (8 << 20),
        "weir grew by {} MiB under backpressure",
        growth >> 20
    );
    weir.stop().await;
}
