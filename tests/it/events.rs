//! `$events/...` sources end to end: weir in listener mode is the broker, a
//! real MQTT client subscribes to it, and rules on the delivery and session
//! events store records in the HStreamDB-compatible server, which the test
//! reads back.

use crate::harness::devserver::DevServer;
use crate::harness::gateway::{Gateway, client, json_of, listener_config_with, read_records};
use crate::harness::mqtt_client::{Message, Subscriber, mosquitto_pub, publish};
use crate::harness::{scratch_dir, unique_name};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// weir in listener mode with `subscriber_queue`, its rules in `plugins`.
fn config(server: &DevServer, plugins: &Path, subscriber_queue: usize) -> String {
    listener_config_with(
        &server.url(),
        plugins.to_str().expect("utf-8 path"),
        &format!("allow_anonymous = true\nsubscriber_queue = {subscriber_queue}"),
        "",
    )
}

/// Writes a rule that stores the SELECT's output of `sql` in `stream`.
fn rule(plugins: &Path, name: &str, sql: &str, stream: &str) {
    std::fs::create_dir_all(plugins).expect("create the plugins directory");
    let text = format!("sql = '''{sql}'''\n\n[action]\nstream = \"{stream}\"\n");
    std::fs::write(plugins.join(format!("{name}.rule.toml")), text).expect("write a rule");
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("-").to_owned()
}

#[tokio::test]
async fn a_subscriber_of_the_listener_produces_every_delivery_and_session_event() {
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = dir.path().join("plugins");
    rule(
        &plugins,
        "broker",
        r#"SELECT event, clientid, from_clientid, username, topic, qos, reason, reason_code, payload
           FROM "$events/client_connack", "$events/session_subscribed",
                "$events/session_unsubscribed", "$events/message_delivered",
                "$events/message_acked", "$events/message_dropped""#,
        "broker_events",
    );
    // Ingest goes on as before, whoever subscribes.
    rule(
        &plugins,
        "ingest",
        r#"SELECT topic, payload FROM "t/#""#,
        "messages",
    );
    let weir = Gateway::start(dir.path(), &config(&server, &plugins, 100)).await;
    let port = weir.mqtt_port();

    let sub = unique_name("sub");
    let publisher = unique_name("pub");
    let mut subscriber = Subscriber::connect(port, &sub, false).await;
    // QoS 2 is granted as QoS 1.
    assert_eq!(
        subscriber.subscribe("t/#", 2).await,
        vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    publish(
        port,
        &publisher,
        false,
        &[
            Message::new("t/1", "hello", 1),
            Message::new("nobody/listens", "lost", 0),
        ],
    )
    .await;
    assert_eq!(
        subscriber.next_message().await,
        ("t/1".to_owned(), b"hello".to_vec(), 1)
    );
    subscriber.unsubscribe("t/#").await;
    subscriber.disconnect().await;
    // A refused CONNECT is a connack event too: the listener has no users.
    let (code, output) = mosquitto_pub(&[
        "-p",
        &port.to_string(),
        "-i",
        "intruder",
        "-u",
        "nobody",
        "-P",
        "wrong",
        "-t",
        "t/x",
        "-m",
        "x",
    ])
    .await;
    assert_ne!(code, Some(0), "{output}");

    let hstream = client(&server.url());
    let stored = read_records(&hstream, "messages", 1).await;
    assert_eq!(json_of(&stored[0])["topic"], "t/1");

    let records = read_records(&hstream, "broker_events", 8).await;
    let events: BTreeSet<(String, String, String, String)> = records
        .iter()
        .map(|r| {
            let v = json_of(r);
            let detail = match v["event"].as_str() {
                Some("client.connack") => text(&v, "reason_code"),
                Some("message.dropped") => text(&v, "reason"),
                Some("message.delivered" | "message.acked") => {
                    format!("from {} qos {}", text(&v, "from_clientid"), v["qos"])
                }
                _ => format!("qos {}", v["qos"]),
            };
            (
                text(&v, "event"),
                text(&v, "clientid"),
                text(&v, "topic"),
                detail,
            )
        })
        .collect();
    let e = |event: &str, clientid: &str, topic: &str, detail: &str| {
        (
            event.to_owned(),
            clientid.to_owned(),
            topic.to_owned(),
            detail.to_owned(),
        )
    };
    let from = format!("from {publisher} qos 1");
    let expected = BTreeSet::from([
        e("client.connack", &sub, "-", "success"),
        e("client.connack", &publisher, "-", "success"),
        e(
            "client.connack",
            "intruder",
            "-",
            "bad_username_or_password",
        ),
        e("session.subscribed", &sub, "t/#", "qos 1"),
        e("message.delivered", &sub, "t/1", &from),
        e("message.acked", &sub, "t/1", &from),
        e(
            "message.dropped",
            &publisher,
            "nobody/listens",
            "no_subscribers",
        ),
        e("session.unsubscribed", &sub, "t/#", "qos 1"),
    ]);
    assert_eq!(
        events,
        expected,
        "{:#?}",
        records.iter().map(json_of).collect::<Vec<_>>()
    );
    weir.stop().await;
}

#[tokio::test]
async fn deliveries_to_a_stuck_subscriber_are_dropped_and_reported() {
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let plugins = dir.path().join("plugins");
    rule(
        &plugins,
        "dropped",
        r#"SELECT clientid, from_clientid, reason, payload FROM "$events/delivery_dropped""#,
        "dropped",
    );
    let weir = Gateway::start(dir.path(), &config(&server, &plugins, 1)).await;
    let port = weir.mqtt_port();

    // It never acknowledges, so weir holds at most its in-flight limit (32)
    // and a queue of one for it: at least 7 of 40 messages are dropped at
    // once, and the rest when it goes away.
    let sub = unique_name("stuck");
    let mut subscriber = Subscriber::connect(port, &sub, true).await;
    subscriber.subscribe("s/#", 1).await;
    let messages: Vec<Message> = (0..40)
        .map(|i| Message::new("s/1", i.to_string(), 1))
        .collect();
    let publisher = unique_name("pub");
    // The publisher's PUBACKs do not wait for the subscriber.
    publish(port, &publisher, false, &messages).await;

    let hstream = client(&server.url());
    let full = read_records(&hstream, "dropped", 40 - 32 - 1).await;
    for record in &full {
        let v = json_of(record);
        assert_eq!(v["reason"], "queue_full", "{v}");
        assert_eq!(v["clientid"], sub.as_str());
        assert_eq!(v["from_clientid"], publisher.as_str());
    }
    subscriber.disconnect().await;
    // Every message was either dropped when routed, or held (sent and never
    // acknowledged, or queued) until the subscriber went away.
    let all: Vec<Value> = read_records(&hstream, "dropped", 40)
        .await
        .iter()
        .map(json_of)
        .collect();
    let count = |reason: &str| all.iter().filter(|v| v["reason"] == reason).count();
    let (full, closed) = (count("queue_full"), count("session_closed"));
    assert_eq!(full + closed, 40, "{all:#?}");
    assert!(
        full >= 7 && (1..=33).contains(&closed),
        "{full} full, {closed} closed"
    );
    let payloads: BTreeSet<String> = all.iter().map(|v| text(v, "payload")).collect();
    assert_eq!(payloads.len(), 40, "each message once");
    weir.stop().await;
}
