//! The fault suite (issue 19): poison and oversize messages in listener and
//! bridge mode, a dead-letter stream that fails, a burst of UNAVAILABLE
//! answers, and hostile plugins next to a well-behaved rule.
//!
//! Each scenario checks the same things: every acknowledged message is
//! stored, dead-lettered or quarantined (nothing lost, nothing left to be
//! redelivered), duplicates stay within what ARCHITECTURE.md ("Sink")
//! allows (here: none, since nothing expires and nothing reconnects), the
//! records of a key are in publish order, and the other rules keep flowing.

use crate::harness::admin::Admin;
use crate::harness::devserver::DevServer;
use crate::harness::gateway::{Gateway, client, listener_config, read_records};
use crate::harness::load::{
    LoadOptions, LoadPublisher, all_stored, first_copies_in_order_per_key, seq_of, seq_of_record,
};
use crate::harness::mosquitto::Mosquitto;
use crate::harness::mqtt_client::{Message, publish};
use crate::harness::{DEFAULT_DEADLINE, eventually, plugins_dir, scratch_dir, unique_name};
use ::weir::sink::client::{ReadRecord, StartFrom};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use weir_plugin_artifacts::{MESSAGE, MISBEHAVE};
use weir_proto::pb::devserver::FaultPlan;
use weir_proto::pb::devserver::fault_control_client::FaultControlClient;

/// The stream the message plugin writes to.
const STREAM: &str = "mqtt_message";

/// The record limit the scenarios give weir, so that "oversize" is cheap.
const MAX_RECORD: usize = 2048;

/// weir's status from the admin API.
async fn status(gateway: &Gateway) -> Value {
    Admin::of(gateway).get("/api/v1/status").await.1
}

/// Polls the status until the ingress counted `total` completed messages;
/// returns `(stored, dead_lettered, quarantined, not_stored)`.
async fn outcomes(gateway: &Gateway, total: u64) -> (u64, u64, u64, u64) {
    eventually("every message completed", DEFAULT_DEADLINE, || async {
        let status = status(gateway).await;
        let m = &status["ingress"]["messages"];
        let n = |k: &str| m[k].as_u64().unwrap_or(0);
        let counts = (
            n("stored"),
            n("dead_lettered"),
            n("quarantined"),
            n("not_stored"),
        );
        if counts.0 + counts.1 + counts.2 + counts.3 >= total {
            Ok(counts)
        } else {
            Err(format!("{m}"))
        }
    })
    .await
}

/// The entries of a quarantine file, read as `weir quarantine --json` shows
/// them.
fn quarantined(path: &Path) -> Vec<Value> {
    let output = std::process::Command::new(crate::harness::weir::binary())
        .args(["quarantine", "--json", "--file"])
        .arg(path)
        .output()
        .expect("run weir quarantine");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON entry"))
        .collect()
}

/// The sequence numbers the quarantine holds (of message records).
fn quarantined_seqs(entries: &[Value]) -> Vec<u64> {
    let mut seqs: Vec<u64> = entries
        .iter()
        .filter_map(|e| e["payload_json"]["payload"].as_str().and_then(seq_of))
        .collect();
    seqs.sort_unstable();
    seqs
}

/// Checks that each key's sequence numbers are increasing, and that no
/// sequence number is there twice.
fn assert_order_per_key(records: &[ReadRecord]) {
    assert_eq!(first_copies_in_order_per_key(records), Ok(0));
}

/// A payload of `seq`, padded to `bytes`.
fn payload(seq: u64, bytes: usize) -> String {
    let mut text = seq.to_string();
    while text.len() < bytes {
        text.push('.');
    }
    text
}

async fn set_faults(server: &DevServer, plan: FaultPlan) {
    FaultControlClient::connect(server.url())
        .await
        .expect("connect to the fault control service")
        .set_faults(plan)
        .await
        .expect("set the fault plan");
}

#[tokio::test]
async fn listener_poison_and_oversize_messages_are_quarantined_and_acknowledged() {
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = plugins_dir(
        dir.path(),
        &[(&MESSAGE, "message"), (&MISBEHAVE, "misbehave")],
    );
    let quarantine = dir.path().join("quarantine.jsonl");
    let config = listener_config(
        &server.url(),
        &plugins,
        &format!(
            "max_record_bytes = {MAX_RECORD}\nquarantine_file = {:?}\n",
            quarantine.display().to_string()
        ),
    );
    let weir = Gateway::start(dir.path(), &config).await;

    // 60 messages on three keys; every tenth is over the record limit, and
    // two poison events for the misbehaving plugin in between.
    let mut messages: Vec<Message> = (0..60u64)
        .map(|seq| {
            let size = if seq % 10 == 5 { 3 * MAX_RECORD } else { 0 };
            Message::new(&format!("t/{}", seq % 3), payload(seq, size), 1)
        })
        .collect();
    messages.insert(20, Message::new("bad/1", "trap", 1));
    messages.insert(40, Message::new("bad/2", "trap", 1));
    // Returns once every message is acknowledged: nothing waits for a
    // redelivery.
    publish(weir.mqtt_port(), &unique_name("poison"), false, &messages).await;

    let (stored, dead, quarantined_count, not_stored) = outcomes(&weir, 62).await;
    assert_eq!((dead, not_stored), (0, 0));
    assert_eq!(quarantined_count, 8, "6 oversize and 2 poison");
    assert_eq!(stored, 54);
    let records = read_records(&client(&server.url()), STREAM, 54).await;
    assert_order_per_key(&records);

    let entries = quarantined(&quarantine);
    assert_eq!(entries.len(), 8, "{entries:?}");
    assert_eq!(quarantined_seqs(&entries), [5, 15, 25, 35, 45, 55]);
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| {
            e["attributes"]["weir.dead_letter.kind"]
                .as_str()
                .unwrap_or("")
        })
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "oversize").count(), 6);
    assert_eq!(kinds.iter().filter(|k| **k == "trap").count(), 2);

    // The admin API shows the same file: its count, and the newest entries.
    let admin = Admin::of(&weir);
    let (code, view) = admin.get("/api/v1/quarantine?limit=3").await;
    assert_eq!(code, 200, "{view}");
    assert_eq!(view["total"], 8, "{view}");
    assert_eq!(view["entries"].as_array().map(Vec::len), Some(3), "{view}");
    assert_eq!(view["entries"][2], entries[7], "the newest last: {view}");
    assert_eq!(
        view["file"].as_str().map(Path::new),
        Some(quarantine.as_path())
    );
    weir.stop().await;
}

#[tokio::test]
async fn bridge_with_a_failing_dead_letter_stream_quarantines_instead_of_reconnecting() {
    let mut broker = Mosquitto::start().await;
    let server = DevServer::start().await;
    let hstream = client(&server.url());
    hstream
        .create_stream(STREAM, 2, 1, Duration::ZERO)
        .await
        .expect("create the stream");
    let dir = scratch_dir();
    let plugins = plugins_dir(
        dir.path(),
        &[(&MESSAGE, "message"), (&MISBEHAVE, "misbehave")],
    );
    let quarantine = dir.path().join("quarantine.jsonl");
    let bridge_id = unique_name("bridge");
    // The dead-letter stream does not exist, and weir does not create
    // streams: every dead letter is refused, an oversize one for its size,
    // a poison event's because the stream is missing.
    let config = format!(
        r#"
[mqtt.bridge]
url = "{broker}"
client_id = "{client_id}"
clean_start = false
reconnect_min_delay_ms = 100
reconnect_max_delay_ms = 1000

[hstreamdb]
url = "{server}"

[plugins]
dir = "{plugins}"

[sink]
retry_max_delay_ms = 200
dead_letter_stream = "no_such_dead_letters"
max_record_bytes = {MAX_RECORD}
quarantine_file = {quarantine:?}
"#,
        broker = broker.url(),
        server = server.url(),
        client_id = bridge_id,
        quarantine = quarantine.display().to_string(),
    );
    let weir = Gateway::start(dir.path(), &config).await;
    broker.wait_for_subscription(&bridge_id, "bad/#").await;
    broker.wait_for_subscription(&bridge_id, "t/#").await;
    let topics = ["t/0", "t/1", "t/2", "t/3"];
    let mut messages: Vec<Message> = (0..400u64)
        .map(|seq| {
            let size = if seq % 50 == 7 { 2 * MAX_RECORD } else { 0 };
            Message::new(topics[(seq % 4) as usize], payload(seq, size), 1)
        })
        .collect();
    for at in [50, 150, 250, 350] {
        messages.insert(at, Message::new(&format!("bad/{at}"), "trap", 1));
    }
    publish(broker.port(), &unique_name("pub"), false, &messages).await;

    let (stored, _, quarantined_count, not_stored) = outcomes(&weir, 404).await;
    assert_eq!((stored, quarantined_count, not_stored), (392, 12, 0));
    let status = status(&weir).await;
    assert_eq!(
        status["ingress"]["reconnects"].as_u64(),
        Some(0),
        "a poison message must not make the bridge reconnect: {status}"
    );
    let records = read_records(&hstream, STREAM, 392).await;
    assert_order_per_key(&records);
    let entries = quarantined(&quarantine);
    assert_eq!(entries.len(), 12);
    assert_eq!(
        quarantined_seqs(&entries),
        [7, 57, 107, 157, 207, 257, 307, 357]
    );
    for entry in &entries {
        let reason = entry["reason"].as_str().unwrap_or_default();
        let why = match entry["attributes"]["weir.dead_letter.kind"].as_str() {
            Some("oversize") => "over the limit",
            Some("trap") => "does not exist",
            other => panic!("unexpected kind {other:?}: {entry}"),
        };
        assert!(
            reason.contains(why) && reason.contains("dead-letter stream refused"),
            "{reason}"
        );
    }
    weir.stop().await;
}

#[tokio::test]
async fn an_unavailable_burst_loses_nothing_duplicates_nothing_and_keeps_order_per_key() {
    let mut broker = Mosquitto::start().await;
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = plugins_dir(dir.path(), &[(&MESSAGE, "message")]);
    let bridge_id = unique_name("bridge");
    let config = format!(
        r#"
[mqtt.bridge]
url = "{broker}"
client_id = "{client_id}"
clean_start = false
window = 200

[hstreamdb]
url = "{server}"

[hstreamdb.create_streams]
enabled = true
shards = 2

[plugins]
dir = "{plugins}"

[sink]
retry_min_delay_ms = 10
retry_max_delay_ms = 50
quarantine_file = {quarantine:?}
"#,
        broker = broker.url(),
        server = server.url(),
        client_id = bridge_id,
        quarantine = dir.path().join("q.jsonl").display().to_string(),
    );
    let weir = Gateway::start(dir.path(), &config).await;
    broker.wait_for_subscription(&bridge_id, "t/#").await;
    let topics = ["t/0", "t/1", "t/2", "t/3", "t/4", "t/5", "t/6", "t/7"];
    let load = LoadPublisher::start(LoadOptions::new(
        broker.port(),
        &unique_name("load"),
        &topics,
        Some(500),
    ));
    eventually("the load to flow", DEFAULT_DEADLINE, || async {
        (load.acked() > 200)
            .then_some(())
            .ok_or_else(|| format!("{} acknowledged", load.acked()))
    })
    .await;
    set_faults(
        &server,
        FaultPlan {
            fail_next_appends: 200,
            ..FaultPlan::default()
        },
    )
    .await;
    eventually("the burst to be answered", DEFAULT_DEADLINE, || async {
        let left = server.faults().await.fail_next_appends;
        (left == 0)
            .then_some(())
            .ok_or_else(|| format!("{left} left"))
    })
    .await;
    let acked_during = load.acked();
    eventually(
        "the load to flow after the burst",
        DEFAULT_DEADLINE,
        || async {
            (load.acked() > acked_during + 300)
                .then_some(())
                .ok_or_else(|| format!("{} acknowledged", load.acked()))
        },
    )
    .await;
    let report = load.finish(DEFAULT_DEADLINE).await;
    assert!(server.faults().await.injected_failures >= 200);

    let hstream = client(&server.url());
    let total = report.acked.len();
    let records = eventually(
        "every acknowledged message stored",
        DEFAULT_DEADLINE,
        || async {
            let records = read_all(&hstream, STREAM, total).await;
            let seqs: Vec<u64> = records
                .iter()
                .filter_map(|r| seq_of_record(r).ok())
                .collect();
            all_stored(&report.acked, &seqs).map(|_| records)
        },
    )
    .await;
    // Nothing expired and nothing was redelivered: no duplicates, and every
    // key in publish order.
    assert_order_per_key(&records);
    let (_, _, _, not_stored) = outcomes(&weir, total as u64).await;
    assert_eq!(not_stored, 0);
    weir.stop().await;
}

/// Reads what `stream` holds now, up to `at_least` records or a short wait.
async fn read_all(
    hstream: &::weir::sink::client::Client,
    stream: &str,
    at_least: usize,
) -> Vec<ReadRecord> {
    let mut records = Vec::new();
    let Ok(mut reader) = hstream.read_stream(stream, StartFrom::Earliest).await else {
        return records;
    };
    while records.len() < at_least {
        match tokio::time::timeout(Duration::from_secs(2), reader.next()).await {
            Ok(Ok(Some(record))) => records.push(record),
            _ => break,
        }
    }
    records
}

#[tokio::test]
async fn hostile_plugins_do_not_stop_the_other_rules() {
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = plugins_dir(
        dir.path(),
        &[(&MESSAGE, "message"), (&MISBEHAVE, "misbehave")],
    );
    let config = listener_config(
        &server.url(),
        &plugins,
        &format!(
            "dead_letter_stream = \"weir_dead_letters\"\nquarantine_file = {:?}\n",
            dir.path().join("q.jsonl").display().to_string()
        ),
    );
    let weir = Gateway::start(dir.path(), &config).await;

    // 400 good messages on eight keys, with a log flood, an endless loop, a
    // sleep, a memory hog and a trap in every hundred.
    let hostile = ["flood", "loop", "sleep", "hog", "trap"];
    let mut messages = Vec::new();
    for seq in 0..400u64 {
        messages.push(Message::new(&format!("t/{}", seq % 8), payload(seq, 0), 1));
        if seq % 100 < hostile.len() as u64 {
            let what = hostile[(seq % 100) as usize];
            messages.push(Message::new(&format!("bad/{seq}"), what, 1));
        }
    }
    let hostile_count = messages.len() as u64 - 400;
    // The publisher's own deadline bounds how long the good messages may
    // wait behind the hostile ones.
    publish(weir.mqtt_port(), &unique_name("mixed"), false, &messages).await;

    let (stored, dead, quarantined_count, not_stored) = outcomes(&weir, 400 + hostile_count).await;
    assert_eq!(
        (stored, dead, quarantined_count, not_stored),
        (400, hostile_count, 0, 0)
    );
    let records = read_records(&client(&server.url()), STREAM, 400).await;
    assert_order_per_key(&records);
    let dead_letters = read_records(&client(&server.url()), "weir_dead_letters", 1).await;
    assert_eq!(
        dead_letters[0]
            .record
            .header
            .as_ref()
            .map(|h| h.attributes.get("weir.dead_letter.plugin").cloned()),
        Some(Some("misbehave".to_owned()))
    );
    let plugin: Value = reqwest::get(format!("{}/api/v1/plugins/misbehave", weir.admin_url()))
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("the plugin's status")
        .json()
        .await
        .expect("JSON");
    assert!(
        plugin.to_string().contains("\"log_dropped\":"),
        "the log's drops are counted: {plugin}"
    );
    weir.stop().await;
}
