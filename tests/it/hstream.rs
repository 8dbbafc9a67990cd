//! The HStreamDB side on its own: the development server as a process, the
//! official Python client against it, and weir's stream and check commands.

use crate::harness::devserver::{DevCluster, DevServer};
use crate::harness::{python, repo_root, scratch_dir, unique_name, weir};
use ::weir::sink::client::{Client, ClientOptions, Compression};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use weir_proto::record::{hrecord, raw_record};

/// Runs the official client's check script and returns what it printed.
async fn official_client(args: &[&str]) -> String {
    let script = repo_root().join("tests/python/official_client.py");
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(python())
            .arg(&script)
            .args(args)
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
}

#[tokio::test]
async fn the_official_python_client_round_trips_records_through_the_devserver() {
    let server = DevServer::start().await;
    let stream = unique_name("official");
    let printed =
        official_client(&["roundtrip", "--url", &server.url(), "--stream", &stream]).await;
    let summary: Value = serde_json::from_str(printed.trim()).expect("a JSON summary");
    assert_eq!(summary["records"], 48);
}

#[tokio::test]
async fn the_official_python_client_round_trips_records_through_a_two_node_cluster() {
    let cluster = DevCluster::start(2, &["--first-node-id".into(), "100".into()]).await;
    let stream = unique_name("official_cluster");
    let seed = format!("hstream://{}", cluster.nodes()[0].advertised);
    let printed = official_client(&[
        "roundtrip",
        "--url",
        &seed,
        "--stream",
        &stream,
        "--nodes",
        "2",
    ])
    .await;
    let summary: Value = serde_json::from_str(printed.trim()).expect("a JSON summary");
    assert_eq!(summary["records"], 48);
    cluster.stop().await;
}

#[tokio::test]
async fn the_official_client_reads_what_weirs_client_appends() {
    let server = DevServer::start().await;
    let stream = unique_name("cross");
    let client =
        Client::new(server.url().parse().expect("url"), ClientOptions::default()).expect("client");
    client
        .create_stream(&stream, 3, 1, Duration::ZERO)
        .await
        .expect("create the stream");
    // The official Python client reads none and gzip, not zstd.
    let mut want = BTreeSet::new();
    for (n, compression) in [Compression::None, Compression::Gzip]
        .into_iter()
        .enumerate()
    {
        let key = format!("sensor-{n}");
        let object = json!({"n": n, "text": "ünïcode \"quoted\"", "list": [1, null]});
        let records = vec![
            raw_record(key.clone(), format!("raw {n}").into_bytes()),
            hrecord(key.clone(), object.as_object().expect("object")).expect("hrecord"),
        ];
        client
            .append_by_key(&stream, &key, records, compression)
            .await
            .expect("append");
        let raw = json!({"raw_hex": hex(format!("raw {n}").as_bytes())});
        let hrecord =
            json!({"json": {"n": n as f64, "text": "ünïcode \"quoted\"", "list": [1.0, null]}});
        want.insert((key.clone(), raw.to_string()));
        want.insert((key, hrecord.to_string()));
    }
    let printed = official_client(&[
        "read",
        "--url",
        &server.url(),
        "--stream",
        &stream,
        "--count",
        "4",
    ])
    .await;
    let got: BTreeSet<(String, String)> = printed
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).expect("a JSON line");
            let key = record["key"].as_str().expect("a key").to_owned();
            (key, record["payload"].to_string())
        })
        .collect();
    assert_eq!(got, want);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn stream_commands_create_list_read_and_delete() {
    let server = DevServer::start().await;
    let url = server.url();
    let stream = unique_name("cli");
    let created = weir::run(&[
        "stream",
        "create",
        &stream,
        "--shards",
        "2",
        "--backlog",
        "3600",
        "--server",
        &url,
    ])
    .await
    .success();
    assert!(created.stdout.contains(&stream), "{created:?}");

    let listed = weir::run(&["stream", "list", "--server", &url])
        .await
        .success();
    let row = listed
        .stdout
        .lines()
        .find(|l| l.starts_with(&stream))
        .unwrap_or_else(|| panic!("{stream} is not listed: {listed:?}"));
    assert_eq!(
        row.split_whitespace().nth(1),
        Some("2"),
        "shards column: {row}"
    );

    let client = Client::new(url.parse().expect("url"), ClientOptions::default()).expect("client");
    let object = json!({"msg": "Hello HStreamDB"});
    client
        .append_by_key(
            &stream,
            "t/1",
            vec![
                raw_record("t/1", &b"plain text"[..]),
                hrecord("t/1", object.as_object().expect("object")).expect("hrecord"),
            ],
            Compression::Zstd,
        )
        .await
        .expect("append");

    let read = weir::run(&["stream", "read", &stream, "--limit", "2", "--server", &url])
        .await
        .success();
    let lines: Vec<&str> = read.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{read:?}");
    assert!(lines[0].starts_with("timestamp: "), "{}", lines[0]);
    assert!(
        lines[0].ends_with(r#"key: "t/1", record: plain text"#),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with(r#"key: "t/1", record: {"msg":"Hello HStreamDB"}"#),
        "{}",
        lines[1]
    );

    weir::run(&["stream", "delete", &stream, "--server", &url])
        .await
        .success();
    let gone = weir::run(&["stream", "delete", &stream, "--server", &url]).await;
    assert_eq!(gone.code, Some(5), "deleting a missing stream: {gone:?}");
}

#[tokio::test]
async fn check_tells_a_missing_stream_from_an_unreachable_server() {
    let server = DevServer::start().await;
    let url = server.url();
    let stream = unique_name("checked");
    weir::run(&["stream", "create", &stream, "--server", &url])
        .await
        .success();

    let ok = weir::run(&["check", "--stream", &stream, "--server", &url])
        .await
        .success();
    assert!(
        ok.stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("OK")),
        "{ok:?}"
    );

    let missing = weir::run(&["check", "--stream", "no_such_stream", "--server", &url]).await;
    assert_eq!(missing.code, Some(5), "{missing:?}");
    let verdict = missing.stdout.lines().last().unwrap_or_default();
    assert!(verdict.starts_with("STREAM MISSING"), "{missing:?}");
    assert!(verdict.contains("no_such_stream"), "{missing:?}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_url = format!("hstream://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let unreachable = weir::run(&["check", "--stream", &stream, "--server", &closed_url]).await;
    assert_eq!(unreachable.code, Some(3), "{unreachable:?}");
    assert!(
        unreachable
            .stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("UNREACHABLE")),
        "{unreachable:?}"
    );
}

#[tokio::test]
async fn check_reports_a_tls_failure_as_such() {
    let dir = scratch_dir();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("a self-signed certificate");
    let cert_file = dir.path().join("server.pem");
    let key_file = dir.path().join("server.key");
    std::fs::write(&cert_file, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).expect("write key");
    let server = DevServer::start_tls(&cert_file, &key_file).await;
    let url = format!("hstreams://{}", server.addr());

    let untrusted = weir::run(&["check", "--server", &url]).await;
    assert_eq!(untrusted.code, Some(4), "{untrusted:?}");
    assert!(
        untrusted
            .stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("TLS FAILURE")),
        "{untrusted:?}"
    );

    let ca = cert_file.to_str().expect("utf-8 path");
    weir::run(&["check", "--server", &url, "--tls-ca", ca])
        .await
        .success();
}

#[tokio::test]
async fn the_devserver_keeps_records_across_a_crash_on_the_same_port() {
    let dir = scratch_dir();
    let mut server = DevServer::start_persistent(dir.path()).await;
    let url = server.url();
    let stream = unique_name("durable");
    let client = Client::new(url.parse().expect("url"), ClientOptions::default()).expect("client");
    client
        .create_stream(&stream, 2, 1, Duration::ZERO)
        .await
        .expect("create");
    let before = client
        .append_by_key(
            &stream,
            "k",
            vec![raw_record("k", &b"one"[..])],
            Compression::Gzip,
        )
        .await
        .expect("append before the crash");

    server.crash_and_restart().await;
    assert_eq!(server.url(), url, "same port after the restart");

    // The cached channel broke with the server; a new call reconnects.
    let after = client
        .append_by_key(
            &stream,
            "k",
            vec![raw_record("k", &b"two"[..])],
            Compression::Gzip,
        )
        .await
        .expect("append after the restart");
    assert_eq!(
        after.shard_id, before.shard_id,
        "same shards after the restart"
    );
    assert!(
        after.ids[0].batch_id > before.ids[0].batch_id,
        "batch ids keep rising"
    );

    let read = weir::run(&["stream", "read", &stream, "--limit", "2", "--server", &url])
        .await
        .success();
    let records: Vec<&str> = read
        .stdout
        .lines()
        .map(|l| l.rsplit("record: ").next().unwrap_or_default())
        .collect();
    assert_eq!(records, ["one", "two"], "{read:?}");
}
