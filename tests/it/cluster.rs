//! weir against an HStreamDB cluster (the development server with several
//! nodes, each its own listener, sharing one store): the seed's two-node TLS
//! tutorial end to end, node loss, return and growth under steady QoS 1
//! load, and a node whose certificate weir does not trust.

use crate::harness::devserver::{ClusterNode, DevCluster};
use crate::harness::gateway::Gateway;
use crate::harness::load::{LoadOptions, LoadPublisher, all_stored, seq_of_record};
use crate::harness::mosquitto::Mosquitto;
use crate::harness::mqtt_client::mosquitto_pub;
use crate::harness::pki::Pki;
use crate::harness::{
    DEFAULT_DEADLINE, eventually, plugins_dir, python, repo_root, scratch_dir, unique_name, weir,
};
use ::weir::sink::client::{Client, ClientOptions, ReadRecord, TlsOptions};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use weir_plugin_artifacts::{CONNECT, MESSAGE};
use weir_proto::pb::LookupShardRequest;
use weir_proto::pb::h_stream_api_client::HStreamApiClient;

/// The stream the seed's message rule writes to.
const STREAM: &str = "mqtt_message";

/// Shards of the streams weir creates: many more than nodes, so that a
/// joining node takes some.
const SHARDS: usize = 16;

/// The bridge's window of QoS 1 messages in flight to weir.
const BRIDGE_WINDOW: u64 = 200;

/// Messages per second of the steady load.
const RATE: u32 = 300;

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

async fn metrics(gateway: &Gateway) -> String {
    let url = format!("{}/metrics", gateway.admin_url());
    reqwest::get(&url)
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .expect("the metrics text")
}

/// The node the admin API says `shard`'s appends go to, as its address.
fn route_of(connector: &Value, shard: u64) -> Option<String> {
    connector["cluster"]["shards"]
        .as_array()?
        .iter()
        .find(|r| r["shard"].as_u64() == Some(shard))
        .and_then(|r| r["owner"].as_str())
        .map(str::to_owned)
}

fn node_at<'a>(nodes: &'a [ClusterNode], addr: &str) -> &'a ClusterNode {
    nodes
        .iter()
        .find(|n| n.advertised == addr)
        .unwrap_or_else(|| panic!("no node advertises {addr}: {nodes:?}"))
}

/// The node id LookupShard names for each shard, asked at `node`.
async fn owners(node: &ClusterNode, shards: &[u64]) -> BTreeMap<u64, u32> {
    let mut api = HStreamApiClient::connect(format!("http://{}", node.listen))
        .await
        .expect("connect to the node");
    let mut owners = BTreeMap::new();
    for &shard_id in shards {
        let owner = api
            .lookup_shard(LookupShardRequest { shard_id })
            .await
            .expect("lookup")
            .into_inner()
            .server_node
            .expect("a node");
        owners.insert(shard_id, owner.id);
    }
    owners
}

/// Every record of `stream` now, read through any running node.
async fn stored(hstream: &Client, stream: &str) -> Result<Vec<ReadRecord>, String> {
    hstream
        .read_stored(stream)
        .await
        .map_err(|e| format!("read {stream}: {e}"))
}

#[tokio::test]
async fn under_load_a_cluster_loses_the_busiest_node_gets_it_back_and_grows_losing_nothing() {
    let mut broker = Mosquitto::start().await;
    // Strict ownership: a node refuses an append to a shard it does not
    // own, so the records only get in if weir follows every move.
    let mut cluster = DevCluster::start(3, &["--strict-ownership".into()]).await;
    let dir = scratch_dir();
    let plugins = plugins_dir(dir.path(), &[(&MESSAGE, "message")]);
    let client_id = unique_name("weir");
    let config = format!(
        r#"
[mqtt.bridge]
url = "{broker}"
client_id = "{client_id}"
clean_start = false
window = {BRIDGE_WINDOW}
reconnect_min_delay_ms = 100
reconnect_max_delay_ms = 1000

[hstreamdb]
url = "{url}"

[hstreamdb.create_streams]
enabled = true
shards = {SHARDS}

[plugins]
dir = "{plugins}"

[sink]
retry_max_delay_ms = 500
health_check_interval_ms = 500
"#,
        broker = broker.url(),
        url = cluster.url(),
    );
    let weir = Gateway::start(dir.path(), &config).await;
    broker.wait_for_subscription(&client_id, "t/#").await;
    let hstream = crate::harness::gateway::client(&cluster.url());
    // One topic per shard, so that every shard has traffic and any shard
    // that changes node is one weir must follow.
    let hstream_ref = &hstream;
    let shard_ids: Vec<u64> =
        eventually("the stream weir creates", DEFAULT_DEADLINE, || async move {
            hstream_ref
                .shards(STREAM)
                .await
                .map(|map| map.shard_ids().collect())
                .map_err(|e| e.to_string())
        })
        .await;
    let mut topic_of: BTreeMap<u64, String> = BTreeMap::new();
    for n in 0.. {
        let topic = format!("t/{n}");
        let shard = hstream.shard_for_key(STREAM, &topic).await.expect("route");
        topic_of.entry(shard).or_insert(topic);
        if topic_of.len() == shard_ids.len() {
            break;
        }
    }
    let topics: Vec<&str> = topic_of.values().map(String::as_str).collect();
    let load = LoadPublisher::start(LoadOptions::new(
        broker.port(),
        &unique_name("load"),
        &topics,
        Some(RATE),
    ));
    load.wait_acked(1000, "messages flowing before the node loss")
        .await;

    // The busiest shard so far, and the node that owns it.
    let records = stored(&hstream, STREAM).await.expect("read");
    let mut per_shard: BTreeMap<u64, usize> = BTreeMap::new();
    for record in &records {
        *per_shard.entry(record.id.shard_id).or_default() += 1;
    }
    let (&busiest, _) = per_shard
        .iter()
        .max_by_key(|(_, count)| **count)
        .expect("records in some shard");
    let connector_before = connector(&weir).await;
    let owner_addr = route_of(&connector_before, busiest).expect("the busiest shard's route");
    let owner = node_at(cluster.nodes(), &owner_addr).clone();

    cluster.stop_node(owner.id).await;
    load.wait_acked(6000, "messages acknowledged while the node is down (20 s)")
        .await;
    let during = connector(&weir).await;
    let dead = during["cluster"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["id"] == owner.id)
        .expect("the stopped node is listed");
    assert_eq!(dead["state"], "dead", "{during}");
    let moved = route_of(&during, busiest).expect("a route");
    assert_ne!(moved, owner_addr, "the busiest shard left the stopped node");

    cluster.start_node(owner.id).await;
    let weir_ref = &weir;
    let owner_ref = &owner_addr;
    eventually(
        "the busiest shard back on its node",
        DEFAULT_DEADLINE,
        || async move {
            match route_of(&connector(weir_ref).await, busiest) {
                Some(addr) if addr == *owner_ref => Ok(()),
                other => Err(format!("routed to {other:?}")),
            }
        },
    )
    .await;
    load.wait_acked(1000, "messages acknowledged after the return")
        .await;

    // Nodes join until one owns a shard of the stream (the ring decides;
    // with 16 shards the first join nearly always takes some).
    let (joined, moved_shard) = loop {
        let joined = cluster.add_node().await;
        let owned = owners(&joined, &shard_ids).await;
        if let Some((&shard, _)) = owned.iter().find(|(_, id)| **id == joined.id) {
            break (joined, shard);
        }
        assert!(
            cluster.nodes().len() < 6,
            "no joining node took a shard: {owned:?}"
        );
    };
    let joined_addr = joined.advertised.clone();
    eventually(
        "a moved shard routed to the new node",
        DEFAULT_DEADLINE,
        || {
            let joined_addr = joined_addr.clone();
            async move {
                match route_of(&connector(weir_ref).await, moved_shard) {
                    Some(addr) if addr == joined_addr => Ok(()),
                    other => Err(format!("routed to {other:?}")),
                }
            }
        },
    )
    .await;
    load.wait_acked(1000, "messages acknowledged after the join")
        .await;
    let report = load.finish(DEFAULT_DEADLINE).await;

    let acked = &report.acked;
    let duplicates = eventually(
        "every acknowledged message in the stream",
        DEFAULT_DEADLINE,
        || async move {
            let records = stored(hstream_ref, STREAM).await?;
            let seqs = records
                .iter()
                .map(seq_of_record)
                .collect::<Result<Vec<u64>, String>>()?;
            all_stored(acked, &seqs)
        },
    )
    .await;
    let after = connector(&weir).await;
    let reroutes = after["cluster"]["reroutes"].as_u64().expect("reroutes");
    let dead_lettered: u64 = after["streams"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, s)| s["dead_lettered"].as_u64().unwrap_or(0))
        .sum();
    println!(
        "cluster: {} messages acknowledged, all stored, {duplicates} duplicates, {reroutes} re-routes, \
         PUBACK p99 {:?}, max {:?}",
        acked.len(),
        report.ack_latency(0.99),
        report.ack_latency(1.0),
    );
    assert_eq!(dead_lettered, 0, "nothing dead-lettered because of routing");
    assert!(
        reroutes >= 3,
        "loss, return and join each moved a shard: {reroutes}"
    );
    // Duplicates come only from appends whose outcome was unknown: at most
    // a batch (500 records) per shard for each of the three changes.
    assert!(duplicates <= 3 * SHARDS * 500, "{duplicates} duplicates");
    let text = metrics(&weir).await;
    assert!(
        text.contains("weir_hstream_reroutes_total") && text.contains("weir_hstream_shard_route"),
        "{text}"
    );
    weir.stop().await;
    cluster.stop().await;
}

/// The seed's two server nodes, ids 100 and 101, each on its own loopback
/// address (as the seed's 172.100.0.10 and .11), TLS with mutual
/// authentication.
async fn seed_cluster(pki: &Pki, certs: [&str; 2]) -> DevCluster {
    let mut args = vec![
        "--first-node-id".to_owned(),
        "100".to_owned(),
        "--listen".to_owned(),
        "127.0.0.10:0".to_owned(),
        "--listen".to_owned(),
        "127.0.0.11:0".to_owned(),
        "--tls-client-ca".to_owned(),
        pki.arg("ca.pem"),
    ];
    for cert in certs {
        args.extend([
            "--tls-cert-path".to_owned(),
            pki.arg(&format!("{cert}.pem")),
            "--tls-key-path".to_owned(),
            pki.arg(&format!("{cert}.key")),
        ]);
    }
    DevCluster::start(2, &args).await
}

#[tokio::test]
async fn the_seeds_two_node_tls_tutorial_runs_end_to_end() {
    let pki = Pki::new(&["127.0.0.10", "127.0.0.11"]);
    let cluster = seed_cluster(&pki, ["server", "server"]).await;
    let ids: Vec<u32> = cluster.nodes().iter().map(|n| n.id).collect();
    assert_eq!(ids, [100, 101]);
    assert!(cluster.url().starts_with("hstreams://127.0.0.10:"));

    let dir = scratch_dir();
    let plugins = plugins_dir(dir.path(), &[(&MESSAGE, "message"), (&CONNECT, "connect")]);
    let config = format!(
        r#"
[mqtt]
mode = "listener"

[mqtt.listener]
bind = "127.0.0.1:0"
allow_anonymous = true

[hstreamdb]
url = "{url}"

[hstreamdb.tls]
ca_file = "{ca}"
cert_file = "{cert}"
key_file = "{key}"

[hstreamdb.create_streams]
enabled = true
shards = {SHARDS}

[plugins]
dir = "{plugins}"

[sink]
health_check_interval_ms = 200
"#,
        url = cluster.url(),
        ca = pki.arg("ca.pem"),
        cert = pki.arg("client.pem"),
        key = pki.arg("client.key"),
    );
    let weir = Gateway::start(dir.path(), &config).await;
    let port = weir.mqtt_port().to_string();
    const MESSAGES: usize = 20;
    for n in 0..MESSAGES {
        let device = format!("device-{n}");
        let (code, output) = mosquitto_pub(&[
            "-p",
            &port,
            "-i",
            &device,
            "-t",
            &format!("t/{n}"),
            "-m",
            &format!(r#"{{"msg": "Hello HStreamDB", "n": {n}}}"#),
            "-q",
            "1",
        ])
        .await;
        assert_eq!(code, Some(0), "{output}");
    }

    // Read back with the official Python client over mutual TLS.
    let tls_args = [
        "--tls-ca".to_owned(),
        pki.arg("ca.pem"),
        "--tls-cert".to_owned(),
        pki.arg("client.pem"),
        "--tls-key".to_owned(),
        pki.arg("client.key"),
    ];
    let seed = format!("hstreams://{}", cluster.nodes()[0].advertised);
    let read = |stream: &'static str, count: usize| {
        let mut args = vec![
            "read".to_owned(),
            "--url".to_owned(),
            seed.clone(),
            "--stream".to_owned(),
            stream.to_owned(),
            "--count".to_owned(),
            count.to_string(),
            "--nodes".to_owned(),
            "2".to_owned(),
        ];
        args.extend(tls_args.iter().cloned());
        official_client(args)
    };
    let messages = read(STREAM, MESSAGES).await;
    let mut topics: Vec<String> = messages
        .iter()
        .map(|r| {
            r["payload"]["json"]["topic"]
                .as_str()
                .unwrap_or_else(|| panic!("a message record: {r}"))
                .to_owned()
        })
        .collect();
    topics.sort();
    let mut want: Vec<String> = (0..MESSAGES).map(|n| format!("t/{n}")).collect();
    want.sort();
    assert_eq!(topics, want, "every message, once");
    let events = read("mqtt_connect", 2 * MESSAGES).await;
    let connected = events
        .iter()
        .filter(|r| r["payload"]["json"]["event_type"] == "client.connected")
        .count();
    assert_eq!(connected, MESSAGES, "{events:?}");

    // weir's own check names both nodes.
    let check = weir::run(&[
        "check",
        "--server",
        &cluster.url(),
        "--tls-ca",
        &pki.arg("ca.pem"),
        "--tls-cert",
        &pki.arg("client.pem"),
        "--tls-key",
        &pki.arg("client.key"),
    ])
    .await
    .success();
    assert!(
        check.stdout.contains("node 100") && check.stdout.contains("node 101"),
        "{}",
        check.stdout
    );
    weir.stop().await;
    cluster.stop().await;
}

#[tokio::test]
async fn a_node_with_a_certificate_from_another_ca_is_reported_and_the_other_keeps_working() {
    let pki = Pki::new(&["127.0.0.10", "127.0.0.11"]);
    let cluster = seed_cluster(&pki, ["server", "other-server"]).await;
    let bad = cluster.nodes()[1].clone();
    let tls = [
        "--tls-ca".to_owned(),
        pki.arg("ca.pem"),
        "--tls-cert".to_owned(),
        pki.arg("client.pem"),
        "--tls-key".to_owned(),
        pki.arg("client.key"),
    ];
    let mut args = vec!["check".to_owned(), "--server".to_owned(), cluster.url()];
    args.extend(tls.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let check = weir::run(&args).await;
    assert_eq!(check.code, Some(4), "a TLS failure: {check:?}");
    assert!(
        check
            .stdout
            .lines()
            .any(|l| l.contains("node 101") && l.contains(&bad.advertised)),
        "the bad node is named: {}",
        check.stdout
    );

    // weir's client keeps appending: the bad node's shards go through the
    // good one, and the bad node is reported.
    let client = Client::new(
        cluster.url().parse().expect("url"),
        ClientOptions {
            tls: TlsOptions {
                ca_file: Some(pki.path("ca.pem")),
                cert_file: Some(pki.path("client.pem")),
                key_file: Some(pki.path("client.key")),
                insecure_skip_verify: false,
            },
            ..ClientOptions::default()
        },
    )
    .expect("client");
    let stream = unique_name("wrong_ca");
    client
        .create_stream(&stream, 8, 1, Duration::ZERO)
        .await
        .expect("create through the good node");
    for n in 0..32 {
        let key = format!("k{n}");
        let client = &client;
        let stream = &stream;
        eventually("the record stored", DEFAULT_DEADLINE, || {
            let key = key.clone();
            async move {
                client
                    .append_by_key(
                        stream,
                        &key,
                        vec![weir_proto::record::raw_record(key.clone(), b"x".to_vec())],
                        ::weir::sink::client::Compression::None,
                    )
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        })
        .await;
    }
    let view = client.cluster_view();
    let reported = view
        .nodes
        .iter()
        .find(|n| n.addr.to_string() == bad.advertised)
        .expect("listed");
    assert!(
        reported
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("TLS")),
        "{view:?}"
    );
    assert_eq!(
        client.read_stored(&stream).await.expect("read").len(),
        32,
        "every record stored once"
    );
    cluster.stop().await;
}

/// Runs the official client's check script; returns the JSON lines it
/// printed.
async fn official_client(args: Vec<String>) -> Vec<Value> {
    let script = repo_root().join("tests/python/official_client.py");
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(python())
            .arg(&script)
            .args(&args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the official client finished in time")
    .expect("run the official client");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "official client {args:?} failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}
