//! The README's first command: `weir dev`, used as a new user would, replaying
//! the seed's tutorial (publish with mosquitto_pub, read with
//! `weir stream read`), and a rule edited while it runs.

use crate::harness::gateway::Gateway;
use crate::harness::mqtt_client::mosquitto_pub;
use crate::harness::{DEFAULT_DEADLINE, eventually, repo_root, scratch_dir, weir};
use serde_json::Value;

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
