//! The README's first command: `weir dev`, used as a new user would, replaying
//! the seed's tutorial (publish with mosquitto_pub, read with
//! `weir stream read`), a rule edited while it runs, a first run outside the
//! repository (no plugins directory) and a port that is already taken.

use crate::harness::gateway::{Gateway, dev_args};
use crate::harness::mqtt_client::mosquitto_pub;
use crate::harness::{DEFAULT_DEADLINE, eventually, repo_root, scratch_dir, weir};
use serde_json::Value;
use std::net::TcpListener;

/// The HStreamDB URL `weir dev` printed, as a new user would pass it.
fn hstream_url(dev: &Gateway) -> String {
    format!("hstream://{}", dev.hstream.expect("weir dev runs a server"))
}

/// `weir stream read STREAM --limit N`, each record's JSON.
async fn read(dev: &Gateway, stream: &str, limit: usize) -> Vec<(String, Value)> {
    let limit = limit.to_string();
    let output = weir::run(&[
        "stream",
        "read",
        stream,
        "--limit",
        &limit,
        "--server",
        &hstream_url(dev),
    ])
    .await
    .success();
    output
        .stdout
        .lines()
        .map(|line| {
            let (head, record) = line.split_once(", record: ").expect("a record line");
            let key = head
                .rsplit_once("key: ")
                .map(|(_, k)| k.trim_matches('"').to_owned())
                .expect("a key");
            let json = serde_json::from_str(record)
                .unwrap_or_else(|e| panic!("record is not valid JSON ({e}): {record}"));
            (key, json)
        })
        .collect()
}

#[tokio::test]
async fn the_seed_tutorial_replayed_against_weir_dev() {
    let data = scratch_dir();
    let dev = Gateway::dev(&repo_root().join("plugins"), data.path()).await;

    let (code, output) = mosquitto_pub(&[
        "-h",
        "127.0.0.1",
        "-p",
        &dev.mqtt_port().to_string(),
        "-i",
        "tutorial-client",
        "-t",
        "t/1",
        "-m",
        r#"{"msg": "Hello HStreamDB"}"#,
    ])
    .await;
    assert_eq!(code, Some(0), "{output}");

    let messages = read(&dev, "mqtt_message", 1).await;
    let (key, record) = &messages[0];
    assert_eq!(key, "t/1");
    assert_eq!(record["topic"], "t/1");
    assert_eq!(record["qos"], 0);
    assert_eq!(
        record["payload"],
        serde_json::json!({"msg": "Hello HStreamDB"})
    );
    let id = record["id"].as_str().expect("an id");
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );

    let events = read(&dev, "mqtt_connect", 2).await;
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|(_, e)| {
            (
                e["clientid"].as_str().expect("a client id"),
                e["event_type"].as_str().expect("an event type"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("tutorial-client", "client.connected"),
            ("tutorial-client", "client.disconnected")
        ]
    );
    assert!(
        events.iter().all(|(_, e)| e["event_time"].is_i64()),
        "{events:?}"
    );
    dev.stop().await;
}

#[tokio::test]
async fn a_rule_edited_while_weir_dev_runs_takes_effect() {
    let dir = scratch_dir();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    let rule = repo_root().join("plugins/mqtt_message.rule.toml");
    std::fs::copy(&rule, plugins.join("mqtt_message.rule.toml")).expect("copy the rule");
    // As the README runs it: in a directory with `plugins/`, on the default
    // (relative) plugins and data directories.
    let dev = Gateway::dev_in(dir.path()).await;

    let text = std::fs::read_to_string(&rule).expect("read the rule");
    let edited = text.replace(r#""qos": ${qos}"#, r#""qos": ${qos}, "edited": true"#);
    assert_ne!(text, edited, "the rule file has the seed template");
    // Write elsewhere and rename, as editors do.
    let temp = plugins.join(".mqtt_message.rule.toml.swp");
    std::fs::write(&temp, &edited).expect("write the edit");
    std::fs::rename(&temp, plugins.join("mqtt_message.rule.toml")).expect("rename");

    // Publish until a record shows the edit: the reload is asynchronous, and
    // records from before it must still be the old shape.
    let mut published = 0;
    eventually(
        "the edited rule to render a record",
        DEFAULT_DEADLINE,
        || {
            published += 1;
            let port = dev.mqtt_port().to_string();
            let hstream = hstream_url(&dev);
            let n = published;
            async move {
                let payload = n.to_string();
                let (code, output) = mosquitto_pub(&[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-t",
                    "t/edit",
                    "-m",
                    &payload,
                    "-q",
                    "1",
                ])
                .await;
                if code != Some(0) {
                    return Err(output);
                }
                let output = weir::run(&[
                    "stream",
                    "read",
                    "mqtt_message",
                    "--limit",
                    &n.to_string(),
                    "--server",
                    &hstream,
                ])
                .await
                .success();
                let last = output.stdout.lines().last().unwrap_or_default().to_owned();
                if last.contains(r#""edited":true"#) {
                    Ok(())
                } else {
                    Err(last)
                }
            }
        },
    )
    .await;
    dev.stop().await;
    assert!(
        dir.path().join(".weir-dev/wasm-cache").is_dir(),
        "weir dev keeps its data in ./.weir-dev"
    );
}

#[tokio::test]
async fn weir_dev_in_an_empty_directory_creates_the_seed_plugins_and_stores_their_records() {
    let dir = scratch_dir();
    let dev = Gateway::dev_in(dir.path()).await;
    let output = dev.output();
    assert!(
        output.contains(
            "weir dev: no plugins directory here, so it was created with the seed's rules"
        ),
        "{output}"
    );
    for rule in ["mqtt_message.rule.toml", "mqtt_connect.rule.toml"] {
        let written = std::fs::read_to_string(dir.path().join("plugins").join(rule))
            .unwrap_or_else(|e| panic!("weir dev wrote plugins/{rule}: {e}"));
        let seed = std::fs::read_to_string(repo_root().join("plugins").join(rule)).expect("seed");
        assert_eq!(written, seed, "{rule} is the seed's");
    }
    // The hints name this run's ports and the command the test's user has
    // (cargo ran the tests, so cargo).
    let port = dev.mqtt_port();
    assert!(
        output.contains(&format!("mosquitto_pub -h 127.0.0.1 -p {port} -t t/1")),
        "{output}"
    );
    assert!(
        output.contains(&format!(
            "cargo run -- stream read mqtt_message --from earliest --limit 1 --server {}",
            hstream_url(&dev)
        )),
        "{output}"
    );

    let (code, published) = mosquitto_pub(&[
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-t",
        "t/1",
        "-q",
        "1",
        "-m",
        r#"{"temp": 21.5}"#,
    ])
    .await;
    assert_eq!(code, Some(0), "{published}");
    let records = read(&dev, "mqtt_message", 1).await;
    assert_eq!(records[0].0, "t/1");
    assert_eq!(records[0].1["payload"], serde_json::json!({"temp": 21.5}));
    dev.stop().await;
}

#[tokio::test]
async fn a_busy_port_names_the_listener_and_its_flag_before_any_hint() {
    let plugins = repo_root().join("plugins");
    for (flag, listener) in [
        ("--mqtt-listen", "the MQTT listener"),
        ("--hstream-listen", "the HStreamDB-compatible server"),
        ("--admin-listen", "the admin API"),
    ] {
        let taken = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr = taken.local_addr().expect("its address").to_string();
        let data = scratch_dir();
        let mut args = vec![
            "dev",
            "--plugins",
            plugins.to_str().expect("utf-8 path"),
            "--data-dir",
            data.path().to_str().expect("utf-8 path"),
        ];
        for other in ["--mqtt-listen", "--hstream-listen", "--admin-listen"] {
            args.extend([other, if other == flag { &addr } else { "127.0.0.1:0" }]);
        }
        let output = weir::run(&args).await;
        assert_eq!(output.code, Some(1), "{flag}: {output:#?}");
        assert_eq!(
            output.stderr.trim_end(),
            format!(
                "error: {listener} cannot listen on {addr}: the address is in use ({}?); \
                 choose another address with {flag}",
                match flag {
                    "--mqtt-listen" => "another MQTT broker, such as mosquitto",
                    "--hstream-listen" => "HStreamDB, or another weir dev",
                    _ => "another weir",
                }
            )
        );
        assert!(!output.stdout.contains("Try it"), "{flag}: {output:#?}");
        drop(taken);
    }
}

#[tokio::test]
async fn a_plugins_directory_that_does_not_exist_is_refused_with_the_flag() {
    let dir = scratch_dir();
    let missing = dir.path().join("plugins-typo");
    let missing_arg = missing.to_str().expect("utf-8 path");
    let data = dir.path().join("data");
    let args = dev_args(vec![
        "--plugins".into(),
        missing_arg.into(),
        "--data-dir".into(),
        data.to_str().expect("utf-8 path").into(),
    ]);
    let output = weir::run(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(output.code, Some(1), "{output:#?}");
    assert!(
        output.stderr.contains(&format!(
            "the plugins directory {missing_arg} (--plugins) does not exist"
        )),
        "{output:#?}"
    );
    assert!(
        !missing.exists(),
        "a directory named by --plugins is not created"
    );
}
