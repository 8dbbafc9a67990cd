//! The whole gateway as a user runs it (`weir run --config`): MQTT in,
//! rules in Wasm, records in the HStreamDB-compatible server, for the seed's
//! scenarios and for a plugin that misbehaves.

use crate::harness::devserver::DevServer;
use crate::harness::gateway::{Gateway, client, json_of, listener_config, read_records};
use crate::harness::mosquitto::Mosquitto;
use crate::harness::mqtt_client::{Message, mosquitto_pub, publish};
use crate::harness::{plugins_dir, scratch_dir, unique_name};
use std::collections::BTreeMap;
use weir_plugin_artifacts::{CONNECT, MESSAGE, MISBEHAVE, Target};

/// A configuration for weir bridged to `broker`, writing to `server`, which
/// creates the streams its rules need.
fn bridge_config(broker: &Mosquitto, server: &DevServer, client_id: &str, plugins: &str) -> String {
    format!(
        r#"
[mqtt.bridge]
url = "{broker}"
client_id = "{client_id}"

[hstreamdb]
url = "{server}"

[hstreamdb.create_streams]
enabled = true
shards = 2

[plugins]
dir = "{plugins}"

[admin]
"#,
        broker = broker.url(),
        server = server.url(),
    )
}

#[tokio::test]
async fn the_seed_message_plugin_runs_end_to_end_through_a_broker() {
    let mut broker = Mosquitto::start().await;
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = plugins_dir(dir.path(), &[(&MESSAGE, "message")]);
    let client_id = unique_name("weir");
    let weir = Gateway::start(
        dir.path(),
        &bridge_config(&broker, &server, &client_id, &plugins),
    )
    .await;
    broker.wait_for_subscription(&client_id, "t/#").await;

    const PER_TOPIC: usize = 50;
    let topics = ["t/1", "t/2", "t/a/b", "t/x"];
    let messages: Vec<Message> = (0..PER_TOPIC)
        .flat_map(|n| {
            topics.iter().map(move |topic| {
                Message::new(topic, format!(r#"{{"seq": {n}, "note": "say \"hi\""}}"#), 1)
            })
        })
        .collect();
    publish(broker.port(), &unique_name("publisher"), true, &messages).await;

    let records = read_records(&client(&server.url()), "mqtt_message", messages.len()).await;
    assert_eq!(records.len(), messages.len());
    let mut seen: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for record in &records {
        let json = json_of(record);
        let topic = json["topic"].as_str().expect("a topic").to_owned();
        assert_eq!(
            weir_proto::record::key_of(&record.record),
            topic,
            "keyed by topic"
        );
        assert_eq!(json["qos"], 1);
        let id = json["id"].as_str().expect("an id");
        assert!(
            id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
        let payload = json["payload"].as_str().expect("the payload as text");
        let body: serde_json::Value = serde_json::from_str(payload).expect("the published JSON");
        assert_eq!(body["note"], r#"say "hi""#);
        let seq = body["seq"].as_u64().expect("a sequence number") as usize;
        seen.entry(topic).or_default().push(seq);
    }
    for topic in topics {
        assert_eq!(
            seen.get(topic).map(Vec::as_slice),
            Some(&(0..PER_TOPIC).collect::<Vec<_>>()[..]),
            "every message of {topic}, once, in order"
        );
    }
    weir.stop().await;
}

#[tokio::test]
async fn devices_connecting_to_weir_produce_messages_and_client_events() {
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = plugins_dir(dir.path(), &[(&MESSAGE, "message"), (&CONNECT, "connect")]);
    let weir = Gateway::start(dir.path(), &listener_config(&server.url(), &plugins, "")).await;
    let port = weir.mqtt_port().to_string();

    let device = unique_name("device");
    let (code, output) = mosquitto_pub(&[
        "-p",
        &port,
        "-i",
        &device,
        "-t",
        "t/1",
        "-m",
        r#"{"msg": "Hello HStreamDB"}"#,
        "-q",
        "1",
    ])
    .await;
    assert_eq!(code, Some(0), "{output}");

    let hstream = client(&server.url());
    let messages = read_records(&hstream, "mqtt_message", 1).await;
    let message = json_of(&messages[0]);
    assert_eq!(message["topic"], "t/1");
    assert_eq!(message["payload"], r#"{"msg": "Hello HStreamDB"}"#);

    let events = read_records(&hstream, "mqtt_connect", 2).await;
    let kinds: Vec<(String, String)> = events
        .iter()
        .map(|r| {
            let json = json_of(r);
            (
                json["clientid"].as_str().expect("a client id").to_owned(),
                json["event_type"]
                    .as_str()
                    .expect("an event type")
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (device.clone(), "client.connected".to_owned()),
            (device, "client.disconnected".to_owned())
        ]
    );
    for event in &events {
        assert!(json_of(event)["event_time"].as_f64().expect("a time") > 1.0e12);
    }
    weir.stop().await;
}

#[tokio::test]
async fn a_misbehaving_plugin_is_isolated_while_the_others_deliver() {
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = plugins_dir(
        dir.path(),
        &[(&MESSAGE, "message"), (&MISBEHAVE, "misbehave")],
    );
    let config = listener_config(
        &server.url(),
        &plugins,
        "dead_letter_stream = \"weir_dead_letters\"",
    );
    let weir = Gateway::start(dir.path(), &config).await;
    let port = weir.mqtt_port().to_string();

    // Interleave good messages with a trap, an endless loop and a memory hog.
    let plan = [
        ("t/1", "one"),
        ("bad/1", "trap"),
        ("t/1", "two"),
        ("bad/2", "loop"),
        ("t/1", "three"),
        ("bad/3", "hog"),
        ("bad/4", "fine"),
        ("t/1", "four"),
    ];
    for (topic, payload) in plan {
        let (code, output) =
            mosquitto_pub(&["-p", &port, "-t", topic, "-m", payload, "-q", "1"]).await;
        assert_eq!(code, Some(0), "{output}");
    }

    let hstream = client(&server.url());
    let messages = read_records(&hstream, "mqtt_message", 4).await;
    let payloads: Vec<String> = messages
        .iter()
        .map(|r| json_of(r)["payload"].as_str().expect("text").to_owned())
        .collect();
    assert_eq!(payloads, ["one", "two", "three", "four"]);
    let echoed = read_records(&hstream, "misbehave", 1).await;
    assert_eq!(&echoed[0].record.payload[..], b"fine");
    let dead = read_records(&hstream, "weir_dead_letters", 3).await;
    assert_eq!(dead.len(), 3, "trap, loop and hog are dead-lettered");
    weir.stop().await;
}

#[tokio::test]
async fn two_weir_processes_split_a_shared_subscription() {
    let mut broker = Mosquitto::start().await;
    let server = DevServer::start().await;
    let group = unique_name("group");
    // Each instance writes to its own stream, so the records say who handled
    // which message.
    let mut instances = Vec::new();
    for stream in ["shared_a", "shared_b"] {
        let dir = scratch_dir();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).expect("plugins dir");
        let manifest = MESSAGE
            .manifest_text()
            .expect("the message manifest")
            .replace("\"mqtt_message\"", &format!("\"{stream}\""));
        assert!(manifest.contains(stream), "the manifest names its stream");
        std::fs::write(plugins.join("message.toml"), manifest).expect("write the manifest");
        std::fs::copy(
            MESSAGE.wasm_path(Target::Unknown),
            plugins.join("message.wasm"),
        )
        .expect("copy the module");
        let client_id = unique_name("weir");
        let config = bridge_config(
            &broker,
            &server,
            &client_id,
            plugins.to_str().expect("utf-8"),
        )
        .replace(
            &format!("client_id = \"{client_id}\""),
            &format!("client_id = \"{client_id}\"\nshare_group = \"{group}\"\nclean_start = true"),
        );
        let weir = Gateway::start(dir.path(), &config).await;
        broker
            .wait_for_subscription(&client_id, &format!("$share/{group}/t/#"))
            .await;
        instances.push((dir, weir));
    }

    const TOTAL: usize = 200;
    let messages: Vec<Message> = (0..TOTAL)
        .map(|n| Message::new(&format!("t/{}", n % 7), n.to_string(), 1))
        .collect();
    publish(broker.port(), &unique_name("publisher"), true, &messages).await;

    let hstream = client(&server.url());
    let (handled, per_instance) = crate::harness::eventually(
        "every message stored by one of the instances",
        crate::harness::DEFAULT_DEADLINE,
        || {
            let hstream = hstream.clone();
            async move {
                let a = stored_sequence_numbers(&hstream, "shared_a").await?;
                let b = stored_sequence_numbers(&hstream, "shared_b").await?;
                let per_instance = [a.len(), b.len()];
                let mut all: Vec<usize> = a.into_iter().chain(b).collect();
                all.sort_unstable();
                if all.len() >= TOTAL {
                    Ok((all, per_instance))
                } else {
                    Err(format!("{per_instance:?} of {TOTAL}"))
                }
            }
        },
    )
    .await;
    assert_eq!(
        handled,
        (0..TOTAL).collect::<Vec<_>>(),
        "every message handled exactly once"
    );
    assert!(
        per_instance.iter().all(|n| *n > 0),
        "both instances took a share: {per_instance:?}"
    );
    for (_dir, weir) in instances {
        weir.stop().await;
    }
}

/// The sequence numbers of the messages stored in `stream` so far.
async fn stored_sequence_numbers(
    hstream: &::weir::sink::client::Client,
    stream: &str,
) -> Result<Vec<usize>, String> {
    let records = hstream
        .read_stored(stream)
        .await
        .map_err(|e| e.to_string())?;
    records
        .iter()
        .map(|record| {
            let payload = json_of(record)["payload"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            payload.parse().map_err(|_| format!("payload {payload:?}"))
        })
        .collect()
}
