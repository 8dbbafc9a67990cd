//! MQTT ingress against real processes: the bridge against mosquitto started
//! on a free port (with its queue limits raised, see `harness::mosquitto`),
//! and the listener with mosquitto_pub, Python paho-mqtt and rumqttc as
//! devices. The weir library is driven in-process; each test reads the
//! `Delivery`s and acknowledges them as the sink would.

use crate::harness::mosquitto::{Mosquitto, free_port};
use crate::harness::mqtt_client::{self, Message};
use crate::harness::pki::Pki;
use crate::harness::{DEFAULT_DEADLINE, eventually, scratch_dir, unique_name};
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use weir::event::Event;
use weir::ingress::{
    Bridge, BridgeConfig, ConnectionState, Delivery, Listener, ListenerConfig, ListenerTlsConfig,
    MqttVersion, PresenceConfig, Qos, Source, Sources, StatusHandle, UserConfig,
};

const NODE: &str = "weir-it";

/// An ingress running in the background.
struct Running {
    deliveries: mpsc::Receiver<Delivery>,
    status: StatusHandle,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    _subscriptions: watch::Sender<Sources>,
}

impl Running {
    async fn next(&mut self) -> Delivery {
        tokio::time::timeout(DEFAULT_DEADLINE, self.deliveries.recv())
            .await
            .expect("a delivery in time")
            .expect("the ingress is running")
    }

    /// The next event, acknowledged as the sink acknowledges a stored record.
    async fn next_stored(&mut self) -> Event {
        store(self.next().await)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(DEFAULT_DEADLINE, &mut self.task)
            .await
            .expect("the ingress stopped in time")
            .expect("the ingress task did not panic");
    }

    async fn wait_connected(&self) {
        let status = self.status.clone();
        eventually("the ingress to connect", DEFAULT_DEADLINE, || {
            let status = status.connection();
            async move {
                (status.state == ConnectionState::Connected)
                    .then_some(())
                    .ok_or(format!("{status:?}"))
            }
        })
        .await;
    }
}

/// What the sink does with a delivery whose one record was stored.
fn store(delivery: Delivery) -> Event {
    let share = delivery.ack.share();
    delivery.ack.seal();
    share.stored();
    delivery.event
}

fn subscriptions(sources: &[(&str, Qos)]) -> Sources {
    let mut set = Sources::default();
    for (source, qos) in sources {
        set.add(&Source::parse(source).expect("a valid source"), *qos);
    }
    set
}

fn bridge_config(broker: &Mosquitto, client_id: &str, version: MqttVersion) -> BridgeConfig {
    BridgeConfig {
        url: broker.url(),
        version,
        client_id: client_id.to_owned(),
        keepalive_secs: 10,
        reconnect_min_delay_ms: 50,
        reconnect_max_delay_ms: 500,
        ..BridgeConfig::default()
    }
}

fn start_bridge(config: BridgeConfig, sources: Sources) -> Running {
    let (subscriptions_tx, subscriptions_rx) = watch::channel(sources);
    let (out, deliveries) = mpsc::channel(64);
    let bridge = Bridge::new(config, NODE, subscriptions_rx, out).expect("a valid bridge config");
    let status = bridge.status();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(bridge.run(async {
        let _ = stopped.await;
    }));
    Running {
        deliveries,
        status,
        stop: Some(stop),
        task,
        _subscriptions: subscriptions_tx,
    }
}

/// Mosquitto that logs subscriptions, so tests can wait until one is in
/// place before publishing.
async fn broker(extra: &str) -> Mosquitto {
    Mosquitto::start_with(&format!("log_type subscribe\n{extra}")).await
}

async fn wait_subscribed(broker: &Mosquitto, client_id: &str, filter: &str) {
    let prefix = format!(": {client_id} ");
    let suffix = format!(" {filter}");
    eventually(
        &format!("{client_id} to subscribe to {filter}"),
        DEFAULT_DEADLINE,
        || {
            let output = broker.output();
            let found = output
                .lines()
                .any(|l| l.contains(&prefix) && l.ends_with(&suffix));
            async move { found.then_some(()).ok_or(output) }
        },
    )
    .await;
}

fn publish_event(event: Event) -> weir::event::MessagePublish {
    match event {
        Event::MessagePublish(m) => m,
        other => panic!("expected message.publish, got {other:?}"),
    }
}

#[tokio::test]
async fn bridge_delivers_qos_0_1_2_messages_with_their_fields() {
    let broker = broker("").await;
    for version in [MqttVersion::V311, MqttVersion::V5] {
        let client_id = unique_name("weir_fields");
        let topic = format!("t/{client_id}");
        let mut bridge = start_bridge(
            bridge_config(&broker, &client_id, version),
            subscriptions(&[(&format!("{topic}/#"), Qos::ExactlyOnce)]),
        );
        wait_subscribed(&broker, &client_id, &format!("{topic}/#")).await;

        let not_utf8 = vec![0xff, 0x00, 0xfe];
        let messages = [
            Message::new(&format!("{topic}/q0"), "zero", 0),
            Message::new(&format!("{topic}/q1"), r#"{"temp":21.5}"#, 1),
            Message::new(&format!("{topic}/q2"), not_utf8.clone(), 2),
        ];
        mqtt_client::publish(broker.port(), &unique_name("pub"), false, &messages).await;

        let mut seen = BTreeMap::new();
        for _ in 0..3 {
            let m = publish_event(bridge.next_stored().await);
            seen.insert(m.qos, m);
        }
        for (qos, message) in messages.iter().enumerate() {
            let m = &seen[&(qos as u8)];
            assert_eq!(m.topic, message.topic, "{version:?}");
            assert_eq!(m.payload.as_ref(), message.payload.as_slice());
            assert_eq!((m.flags.dup, m.flags.retain), (false, false));
            // A subscriber cannot know who published: absent, not invented.
            assert_eq!(
                (&m.clientid, &m.username, &m.peerhost),
                (&None, &None, &None)
            );
            assert_eq!(m.node, NODE);
            assert!(m.publish_received_at > 1_600_000_000_000);
            assert_eq!(m.timestamp, m.publish_received_at);
            assert_eq!(m.id.to_string().len(), 32);
            assert!(m.pub_props.is_empty());
        }
        let ids: BTreeSet<_> = seen.values().map(|m| m.id).collect();
        assert_eq!(ids.len(), 3, "message ids are unique");

        let status = bridge.status.clone();
        eventually("three stored messages", DEFAULT_DEADLINE, || {
            let acks = status.stats().acks;
            async move { (acks.stored == 3).then_some(()).ok_or(format!("{acks:?}")) }
        })
        .await;
        assert_eq!(bridge.status.stats().received, 3);
        bridge.stop().await;
    }
}

async fn wait_received(status: &StatusHandle, count: u64) {
    eventually(
        &format!("{count} messages received"),
        DEFAULT_DEADLINE,
        || {
            let stats = status.stats();
            async move {
                (stats.received == count)
                    .then_some(())
                    .ok_or(format!("{stats:?}"))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn bridge_drops_qos0_beyond_its_own_window_and_never_holds_up_qos1() {
    const QOS0_WINDOW: usize = 3;
    let broker = broker("").await;
    let client_id = unique_name("weir_qos0");
    let topic = format!("q/{client_id}");
    let mut config = bridge_config(&broker, &client_id, MqttVersion::V5);
    config.window = 2;
    config.qos0_window = QOS0_WINDOW;
    let mut bridge = start_bridge(
        config,
        subscriptions(&[(&format!("{topic}/#"), Qos::AtLeastOnce)]),
    );
    wait_subscribed(&broker, &client_id, &format!("{topic}/#")).await;
    let (port, publisher) = (broker.port(), unique_name("pub"));
    let publish = |messages: Vec<Message>| {
        let publisher = publisher.clone();
        async move { mqtt_client::publish(port, &publisher, true, &messages).await }
    };

    // Nothing completes: the first QOS0_WINDOW QoS 0 messages are held in
    // the pipeline, the rest are dropped and counted.
    publish(
        (0..5)
            .map(|i| Message::new(&format!("{topic}/a{i}"), "x", 0))
            .collect(),
    )
    .await;
    wait_received(&bridge.status, 5).await;
    assert_eq!(bridge.status.stats().dropped_qos0, 2);
    let mut held = Vec::new();
    for _ in 0..QOS0_WINDOW {
        held.push(bridge.next().await);
    }

    // QoS 1 messages are bounded by `window` alone, so they still come.
    publish(
        (0..2)
            .map(|i| Message::new(&format!("{topic}/b{i}"), "y", 1))
            .collect(),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(publish_event(bridge.next_stored().await).qos, 1);
    }

    // Once the held messages are stored there is room for QoS 0 again.
    held.into_iter().for_each(|d| drop(store(d)));
    publish(vec![Message::new(&format!("{topic}/c"), "z", 0)]).await;
    let m = publish_event(bridge.next_stored().await);
    assert_eq!(m.topic, format!("{topic}/c"));
    let stats = bridge.status.stats();
    assert_eq!((stats.received, stats.dropped_qos0), (8, 2));
    bridge.stop().await;
}

#[tokio::test]
async fn bridge_passes_mqtt5_user_properties_as_pub_props() {
    let broker = broker("").await;
    let client_id = unique_name("weir_props");
    let topic = format!("p/{client_id}");
    let mut bridge = start_bridge(
        bridge_config(&broker, &client_id, MqttVersion::V5),
        subscriptions(&[(&topic, Qos::AtLeastOnce)]),
    );
    wait_subscribed(&broker, &client_id, &topic).await;

    let mut message = Message::new(&topic, "x", 1);
    message.properties = Some(PublishProperties {
        user_properties: vec![
            ("site".into(), "plant-4".into()),
            ("k".into(), "1".into()),
            ("k".into(), "2".into()),
        ],
        content_type: Some("application/json".into()),
        ..PublishProperties::default()
    });
    mqtt_client::publish(broker.port(), &unique_name("pub"), true, &[message]).await;

    let m = publish_event(bridge.next_stored().await);
    assert_eq!(
        m.pub_props["User-Property"],
        json!({"site": "plant-4", "k": "2"})
    );
    assert_eq!(
        m.pub_props["User-Property-Pairs"],
        json!([
            {"key": "site", "value": "plant-4"},
            {"key": "k", "value": "1"},
            {"key": "k", "value": "2"}
        ])
    );
    assert_eq!(m.pub_props["Content-Type"], "application/json");
    bridge.stop().await;
}

#[tokio::test]
async fn bridge_survives_a_broker_restart_without_losing_qos1_messages() {
    let mut broker = broker("").await;
    let client_id = unique_name("weir_restart");
    let topic = format!("r/{client_id}");
    let mut config = bridge_config(&broker, &client_id, MqttVersion::V5);
    config.clean_start = false;
    let mut bridge = start_bridge(
        config,
        subscriptions(&[(&format!("{topic}/#"), Qos::AtLeastOnce)]),
    );
    wait_subscribed(&broker, &client_id, &format!("{topic}/#")).await;

    let batch = |range: std::ops::Range<usize>| -> Vec<Message> {
        range
            .map(|i| Message::new(&format!("{topic}/{i}"), format!("m{i}"), 1))
            .collect()
    };
    mqtt_client::publish(broker.port(), &unique_name("pub"), true, &batch(0..40)).await;

    // The sink stores the first half; the second half is still in the
    // pipeline when the broker goes down, so it is not acknowledged.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut held = Vec::new();
    for i in 0..40 {
        let delivery = bridge.next().await;
        let Event::MessagePublish(m) = &delivery.event else {
            panic!("expected a message");
        };
        *seen.entry(m.topic.clone()).or_default() += 1;
        if i < 20 {
            store(delivery);
        } else {
            held.push(delivery);
        }
    }
    broker.restart().await;
    // Stored after the connection they came on is gone: their
    // acknowledgements must not be sent on the new connection.
    held.into_iter().for_each(|d| drop(store(d)));

    // Published while weir may still be reconnecting: the persistent
    // session queues them.
    mqtt_client::publish(broker.port(), &unique_name("pub"), true, &batch(40..80)).await;

    let expected: BTreeSet<String> = (0..80).map(|i| format!("{topic}/{i}")).collect();
    let mut redelivered = 0;
    while !expected.iter().all(|t| seen.contains_key(t)) {
        let m = publish_event(bridge.next_stored().await);
        redelivered += usize::from(m.flags.dup);
        *seen.entry(m.topic).or_default() += 1;
    }
    assert!(bridge.status.stats().reconnects >= 1);
    assert!(
        redelivered > 0,
        "unacknowledged messages come back with the DUP flag"
    );
    bridge.wait_connected().await;
    let last_error = bridge.status.connection().last_error.unwrap_or_default();
    assert!(last_error.contains(&broker.url()), "{last_error}");
    bridge.stop().await;
}

/// The PUBACKs mosquitto logged receiving from `client_id`, by message id
/// in the order it received them (its debug log).
fn pubacks_received(broker: &Mosquitto, client_id: &str) -> Vec<u16> {
    let prefix = format!("Received PUBACK from {client_id} (Mid: ");
    broker
        .output()
        .lines()
        .filter_map(|line| {
            let rest = &line[line.find(&prefix)? + prefix.len()..];
            rest.split(',').next()?.parse().ok()
        })
        .collect()
}

#[tokio::test]
async fn bridge_acknowledgements_released_together_all_reach_the_broker_in_order() {
    for version in [MqttVersion::V311, MqttVersion::V5] {
        let broker = broker("log_type debug").await;
        let client_id = unique_name("weir_pubacks");
        let topic = format!("p/{client_id}");
        let mut config = bridge_config(&broker, &client_id, version);
        config.clean_start = false;
        let sources = subscriptions(&[(&format!("{topic}/#"), Qos::AtLeastOnce)]);
        let mut bridge = start_bridge(config.clone(), sources.clone());
        wait_subscribed(&broker, &client_id, &format!("{topic}/#")).await;

        let messages: Vec<Message> = (0..100)
            .map(|i| Message::new(&format!("{topic}/{i}"), format!("m{i}"), 1))
            .collect();
        mqtt_client::publish(broker.port(), &unique_name("pub"), true, &messages).await;
        // Stored ten at a time (below mosquitto's 20 in flight for 3.1.1),
        // so each ten are released together and written together.
        let mut held = Vec::new();
        for _ in 0..messages.len() {
            held.push(bridge.next().await);
            if held.len() == 10 {
                held.drain(..).for_each(|d| drop(store(d)));
            }
        }
        let expected = messages.len();
        let acked = eventually(
            "mosquitto to receive every PUBACK",
            DEFAULT_DEADLINE,
            || {
                let acked = pubacks_received(&broker, &client_id);
                async move {
                    (acked.len() == expected)
                        .then(|| acked.clone())
                        .ok_or(format!("{} PUBACKs: {acked:?}", acked.len()))
                }
            },
        )
        .await;
        let in_order: Vec<u16> = (1..=100).collect();
        assert_eq!(
            acked, in_order,
            "{version:?}: one PUBACK per message, in arrival order"
        );
        bridge.stop().await;

        // The session resumes with nothing in flight: the first message the
        // new connection gets is a new one, not a redelivery.
        let mut bridge = start_bridge(config, sources);
        bridge.wait_connected().await;
        let marker = format!("{topic}/after");
        mqtt_client::publish(
            broker.port(),
            &unique_name("pub"),
            true,
            &[Message::new(&marker, "after", 1)],
        )
        .await;
        let m = publish_event(bridge.next_stored().await);
        assert_eq!(
            (m.topic.as_str(), m.flags.dup),
            (marker.as_str(), false),
            "{version:?}"
        );
        bridge.stop().await;
    }
}

#[tokio::test]
async fn bridge_over_tls_verifies_the_broker_and_presents_its_client_certificate() {
    let pki = Pki::new(&["127.0.0.1"]);
    let tls_port = free_port();
    // The TLS listener wants a client certificate from the test CA.
    let broker = broker(&format!(
        "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true",
        pki.arg("ca.pem"),
        pki.arg("server.pem"),
        pki.arg("server.key"),
    ))
    .await;
    let client_id = unique_name("weir_tls");
    let topic = format!("tls/{client_id}");
    let mut config = bridge_config(&broker, &client_id, MqttVersion::V5);
    config.url = format!("mqtts://127.0.0.1:{tls_port}");
    config.tls.ca_file = Some(pki.path("ca.pem"));
    config.tls.cert_file = Some(pki.path("client.pem"));
    config.tls.key_file = Some(pki.path("client.key"));
    let mut bridge = start_bridge(config, subscriptions(&[(&topic, Qos::AtLeastOnce)]));
    wait_subscribed(&broker, &client_id, &topic).await;
    mqtt_client::publish(
        broker.port(),
        &unique_name("pub"),
        true,
        &[Message::new(&topic, "over tls", 1)],
    )
    .await;
    let m = publish_event(bridge.next_stored().await);
    assert_eq!(
        (m.topic.as_str(), m.payload.as_ref()),
        (topic.as_str(), &b"over tls"[..])
    );
    bridge.stop().await;
}

#[tokio::test]
async fn bridge_resubscribes_after_reconnecting_without_a_session() {
    let mut broker = broker("").await;
    let client_id = unique_name("weir_clean");
    let topic = format!("c/{client_id}");
    let mut config = bridge_config(&broker, &client_id, MqttVersion::V311);
    config.clean_start = true;
    let mut bridge = start_bridge(config, subscriptions(&[(&topic, Qos::AtLeastOnce)]));
    wait_subscribed(&broker, &client_id, &topic).await;
    broker.restart().await;
    // The restarted broker has no session for a clean client: weir must
    // subscribe again by itself.
    wait_subscribed(&broker, &client_id, &topic).await;
    mqtt_client::publish(
        broker.port(),
        &unique_name("pub"),
        false,
        &[Message::new(&topic, "after", 1)],
    )
    .await;
    let m = publish_event(bridge.next_stored().await);
    assert_eq!(m.payload.as_ref(), b"after");
    assert!(bridge.status.stats().reconnects >= 1);
    bridge.stop().await;
}

#[tokio::test]
async fn bridge_follows_changes_of_the_subscription_set() {
    let broker = broker("").await;
    let client_id = unique_name("weir_change");
    let (first, second) = (format!("a/{client_id}"), format!("b/{client_id}"));
    let (subscriptions_tx, subscriptions_rx) =
        watch::channel(subscriptions(&[(&first, Qos::AtLeastOnce)]));
    let (out, mut deliveries) = mpsc::channel(16);
    let bridge = Bridge::new(
        bridge_config(&broker, &client_id, MqttVersion::V5),
        NODE,
        subscriptions_rx,
        out,
    )
    .expect("valid config");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(bridge.run(async {
        let _ = stopped.await;
    }));
    wait_subscribed(&broker, &client_id, &first).await;
    subscriptions_tx.send_replace(subscriptions(&[(&second, Qos::AtLeastOnce)]));
    wait_subscribed(&broker, &client_id, &second).await;
    mqtt_client::publish(
        broker.port(),
        &unique_name("pub"),
        true,
        &[
            Message::new(&first, "old", 1),
            Message::new(&second, "new", 1),
        ],
    )
    .await;
    let delivery = tokio::time::timeout(DEFAULT_DEADLINE, deliveries.recv())
        .await
        .expect("a delivery in time")
        .expect("running");
    let m = publish_event(store(delivery));
    assert_eq!(m.topic, second, "the old filter was unsubscribed");
    let _ = stop.send(());
    task.await.expect("bridge task");
}

#[tokio::test]
async fn emqx_presence_messages_become_client_events() {
    let broker = broker("").await;
    let client_id = unique_name("weir_presence");
    // mosquitto refuses client publishes under $SYS, so EMQX-format messages
    // go on the same topic shape under another root.
    let root = format!("emqx-{client_id}");
    let mut config = bridge_config(&broker, &client_id, MqttVersion::V5);
    config.presence = PresenceConfig {
        connected_topic: format!("{root}/brokers/+/clients/+/connected"),
        disconnected_topic: format!("{root}/brokers/+/clients/+/disconnected"),
        ..PresenceConfig::default()
    };
    let mut bridge = start_bridge(
        config,
        subscriptions(&[
            ("$events/client_connected", Qos::AtLeastOnce),
            ("$events/client_disconnected", Qos::AtLeastOnce),
        ]),
    );
    wait_subscribed(
        &broker,
        &client_id,
        &format!("{root}/brokers/+/clients/+/disconnected"),
    )
    .await;
    wait_subscribed(
        &broker,
        &client_id,
        &format!("{root}/brokers/+/clients/+/connected"),
    )
    .await;

    let connected = json!({"username": "alice", "ts": 1_700_000_000_123_i64, "sockport": 1883,
        "proto_ver": 5, "proto_name": "MQTT", "keepalive": 60, "ipaddress": "10.0.0.7",
        "expiry_interval": 7200, "connected_at": 1_700_000_000_120_i64, "connack": 0,
        "clientid": "dev-1", "clean_start": false});
    let disconnected = json!({"username": "alice", "ts": 1_700_000_100_000_i64, "sockport": 1883,
        "reason": "keepalive_timeout", "proto_ver": 5, "proto_name": "MQTT",
        "ipaddress": "10.0.0.7", "disconnected_at": 1_700_000_099_999_i64, "clientid": "dev-1"});
    mqtt_client::publish(
        broker.port(),
        &unique_name("emqx"),
        true,
        &[
            Message::new(
                &format!("{root}/brokers/n1/clients/dev-1/connected"),
                connected.to_string(),
                1,
            ),
            Message::new(
                &format!("{root}/brokers/n1/clients/dev-1/connected"),
                "not json",
                1,
            ),
            Message::new(
                &format!("{root}/brokers/n1/clients/dev-1/disconnected"),
                disconnected.to_string(),
                1,
            ),
        ],
    )
    .await;

    let Event::ClientConnected(c) = bridge.next_stored().await else {
        panic!("expected client.connected");
    };
    assert_eq!(c.clientid, "dev-1");
    assert_eq!(c.username.as_deref(), Some("alice"));
    assert_eq!(
        (c.proto_ver, c.keepalive, c.clean_start, c.expiry_interval),
        (Some(5), Some(60), Some(false), Some(7200))
    );
    assert_eq!(
        (c.connected_at, c.timestamp),
        (1_700_000_000_120, 1_700_000_000_123)
    );
    assert_eq!(c.peername, None, "EMQX's $SYS message has no client port");
    let Event::ClientDisconnected(d) = bridge.next_stored().await else {
        panic!("expected client.disconnected");
    };
    assert_eq!(
        (d.clientid.as_str(), d.reason.as_str()),
        ("dev-1", "keepalive_timeout")
    );
    assert_eq!(d.disconnected_at, 1_700_000_099_999);
    let status = bridge.status.clone();
    eventually(
        "the malformed presence message to be counted",
        DEFAULT_DEADLINE,
        || {
            let stats = status.stats();
            async move {
                (stats.malformed_presence == 1)
                    .then_some(())
                    .ok_or(format!("{stats:?}"))
            }
        },
    )
    .await;
    // The malformed message is still acknowledged: nothing is left waiting.
    eventually(
        "every presence message to be acknowledged",
        DEFAULT_DEADLINE,
        || {
            let acks = status.stats().acks;
            async move { (acks.stored == 3).then_some(()).ok_or(format!("{acks:?}")) }
        },
    )
    .await;
    bridge.stop().await;
}

#[tokio::test]
async fn shared_subscriptions_split_the_load_between_two_bridges() {
    let broker = broker("").await;
    let group = unique_name("g");
    let topic = format!("s/{group}");
    let filter = format!("{topic}/#");
    let mut bridges = Vec::new();
    for member in ["a", "b"] {
        let client_id = format!("{group}_{member}");
        let mut config = bridge_config(&broker, &client_id, MqttVersion::V5);
        config.share_group = Some(group.clone());
        bridges.push(start_bridge(
            config,
            subscriptions(&[(&filter, Qos::AtLeastOnce)]),
        ));
        wait_subscribed(&broker, &client_id, &format!("$share/{group}/{filter}")).await;
    }

    let total = 60;
    let messages: Vec<Message> = (0..total)
        .map(|i| Message::new(&format!("{topic}/{i}"), format!("{i}"), 1))
        .collect();
    mqtt_client::publish(broker.port(), &unique_name("pub"), true, &messages).await;

    let mut handled: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
    while handled.iter().map(Vec::len).sum::<usize>() < total {
        let [a, b] = &mut bridges[..] else {
            unreachable!("two bridges");
        };
        let (i, delivery) = tokio::time::timeout(DEFAULT_DEADLINE, async {
            tokio::select! {
                Some(d) = a.deliveries.recv() => (0, d),
                Some(d) = b.deliveries.recv() => (1, d),
            }
        })
        .await
        .expect("every message in time");
        handled[i].push(publish_event(store(delivery)).topic);
    }
    let union: BTreeSet<&String> = handled.iter().flatten().collect();
    assert_eq!(union.len(), total, "no message handled twice: {handled:?}");
    assert!(
        handled.iter().all(|h| !h.is_empty()),
        "both members took a share: {} and {}",
        handled[0].len(),
        handled[1].len()
    );
    for bridge in bridges {
        bridge.stop().await;
    }
}

#[tokio::test]
async fn refused_subscriptions_are_reported_with_the_broker_and_reason() {
    // mosquitto 2.0 grants every subscription (its ACLs apply on delivery),
    // so the broker here is weir's own listener, which refuses shared
    // subscriptions.
    let server = start_listener(
        ListenerConfig {
            allow_anonymous: true,
            ..ListenerConfig::default()
        },
        Sources::default(),
    )
    .await;
    for (version, reason) in [
        (MqttVersion::V5, "shared subscriptions not supported"),
        (MqttVersion::V311, "failure (MQTT 3.1.1 gives no reason)"),
    ] {
        let url = format!("mqtt://127.0.0.1:{}", server.port);
        let config = BridgeConfig {
            url: url.clone(),
            version,
            client_id: unique_name("weir_refused"),
            share_group: Some("g".into()),
            ..BridgeConfig::default()
        };
        let bridge = start_bridge(config, subscriptions(&[("x/#", Qos::AtLeastOnce)]));
        let error = wait_for_error(&bridge.status, "refused the subscription").await;
        assert!(error.contains(&url), "{error}");
        assert!(
            error.contains(r#""$share/g/x/#""#) && error.contains(reason),
            "{error}"
        );
        assert_eq!(bridge.status.stats().refused_subscriptions, 1);
        bridge.wait_connected().await;
        bridge.stop().await;
    }
    server.stop().await;
}

#[tokio::test]
async fn refused_credentials_are_reported_with_the_broker_and_reason() {
    // A later `allow_anonymous` overrides the harness's default.
    let locked = broker("allow_anonymous false\n").await;
    for version in [MqttVersion::V311, MqttVersion::V5] {
        let bridge = start_bridge(
            bridge_config(&locked, &unique_name("weir_anon"), version),
            subscriptions(&[("x", Qos::AtLeastOnce)]),
        );
        let error = wait_for_error(&bridge.status, "refused the connection").await;
        assert!(error.contains(&locked.url()), "{error}");
        assert!(error.contains("not authorized"), "{version:?}: {error}");
        assert_eq!(
            bridge.status.connection().state,
            ConnectionState::Connecting
        );
        bridge.stop().await;
    }
}

async fn wait_for_error(status: &StatusHandle, words: &str) -> String {
    eventually(
        &format!("an error with {words:?} in the status"),
        DEFAULT_DEADLINE,
        || {
            let status = status.connection();
            async move {
                match status.last_error {
                    Some(e) if e.contains(words) => Ok(e),
                    _ => Err(format!("{status:?}")),
                }
            }
        },
    )
    .await
}

// --- Listener mode -------------------------------------------------------

struct RunningListener {
    events: mpsc::UnboundedReceiver<Event>,
    status: StatusHandle,
    port: u16,
    tls_port: Option<u16>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    sink: JoinHandle<()>,
}

impl RunningListener {
    async fn next(&mut self) -> Event {
        tokio::time::timeout(DEFAULT_DEADLINE, self.events.recv())
            .await
            .expect("an event in time")
            .expect("the listener is running")
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(DEFAULT_DEADLINE, &mut self.task)
            .await
            .expect("the listener stopped in time")
            .expect("the listener task did not panic");
        self.sink.abort();
    }
}

fn listener_config() -> ListenerConfig {
    ListenerConfig {
        users: vec![UserConfig::with_password("dev", "secret")],
        ..ListenerConfig::default()
    }
}

/// Starts a listener on free loopback ports and a sink that stores every
/// delivery and passes its event on.
async fn start_listener(config: ListenerConfig, sources: Sources) -> RunningListener {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = tcp.local_addr().expect("address").port();
    let tls = match config.tls {
        Some(_) => Some(
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind"),
        ),
        None => None,
    };
    let tls_port = tls
        .as_ref()
        .map(|l| l.local_addr().expect("address").port());
    let (subscriptions_tx, subscriptions_rx) = watch::channel(sources);
    let (out, mut deliveries) = mpsc::channel(64);
    let listener =
        Listener::new(config, NODE, subscriptions_rx, out).expect("a valid listener config");
    let status = listener.status();
    let (events_tx, events) = mpsc::unbounded_channel();
    let sink = tokio::spawn(async move {
        let _keep = subscriptions_tx;
        while let Some(delivery) = deliveries.recv().await {
            let _ = events_tx.send(store(delivery));
        }
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        listener
            .run(Some(tcp), tls, async {
                let _ = stopped.await;
            })
            .await
            .expect("the listener runs");
    });
    RunningListener {
        events,
        status,
        port,
        tls_port,
        stop: Some(stop),
        task,
        sink,
    }
}

fn device_sources() -> Sources {
    subscriptions(&[
        ("dev/#", Qos::AtLeastOnce),
        ("$events/client_connected", Qos::AtMostOnce),
        ("$events/client_disconnected", Qos::AtMostOnce),
    ])
}

#[tokio::test]
async fn mosquitto_pub_through_the_listener_produces_events_with_real_client_fields() {
    let mut listener = start_listener(listener_config(), device_sources()).await;
    let port = listener.port.to_string();
    let (code, output) = mqtt_client::mosquitto_pub(&[
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-u",
        "dev",
        "-P",
        "secret",
        "-i",
        "pub-1",
        "-t",
        "dev/a",
        "-m",
        "hello",
        "-q",
        "1",
    ])
    .await;
    assert_eq!(code, Some(0), "{output}");

    let Event::ClientConnected(c) = listener.next().await else {
        panic!("expected client.connected");
    };
    assert_eq!(
        (c.clientid.as_str(), c.username.as_deref()),
        ("pub-1", Some("dev"))
    );
    assert!(
        c.peername
            .as_deref()
            .is_some_and(|p| p.starts_with("127.0.0.1:"))
    );
    assert_eq!(c.sockname, Some(format!("127.0.0.1:{port}")));
    assert_eq!(
        (c.proto_name.as_deref(), c.proto_ver),
        (Some("MQTT"), Some(4))
    );
    assert_eq!((c.keepalive, c.clean_start), (Some(60), Some(true)));

    let m = publish_event(listener.next().await);
    assert_eq!(
        (m.topic.as_str(), m.payload.as_ref(), m.qos),
        ("dev/a", &b"hello"[..], 1)
    );
    assert_eq!(m.clientid.as_deref(), Some("pub-1"));
    assert_eq!(m.username.as_deref(), Some("dev"));
    assert_eq!(m.peerhost.as_deref(), Some("127.0.0.1"));

    let Event::ClientDisconnected(d) = listener.next().await else {
        panic!("expected client.disconnected");
    };
    assert_eq!(
        (d.clientid.as_str(), d.reason.as_str()),
        ("pub-1", "normal")
    );
    assert_eq!(d.peername, c.peername);

    // Wrong password: refused, and no events.
    let (code, _) = mqtt_client::mosquitto_pub(&[
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-u",
        "dev",
        "-P",
        "wrong",
        "-t",
        "dev/a",
        "-m",
        "x",
    ])
    .await;
    assert_ne!(code, Some(0));
    assert_eq!(listener.status.stats().connections_refused, 1);
    assert_eq!(listener.status.stats().connections_accepted, 1);
    listener.stop().await;
}

const PAHO_DEVICE: &str = r#"
import os, sys
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

port = int(sys.argv[1])
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-1", protocol=mqtt.MQTTv5)
client.username_pw_set("dev", "secret")
client.will_set("dev/will", b"gone", qos=1)
client.connect("127.0.0.1", port, keepalive=30)
client.loop_start()
props = Properties(PacketTypes.PUBLISH)
props.UserProperty = [("site", "edge-1")]
info = client.publish("dev/p", b"\xff\x00binary", qos=2, properties=props)
info.wait_for_publish(timeout=20)
print("published", info.is_published(), flush=True)
# Die without DISCONNECT: the will must be published.
os._exit(0 if info.is_published() else 1)
"#;

#[tokio::test]
async fn a_paho_device_publishes_qos2_with_properties_and_its_will_fires() {
    let mut listener = start_listener(listener_config(), device_sources()).await;
    let (code, output) = mqtt_client::paho(PAHO_DEVICE, &[&listener.port.to_string()]).await;
    assert_eq!(code, Some(0), "{output}");

    let Event::ClientConnected(c) = listener.next().await else {
        panic!("expected client.connected");
    };
    assert_eq!((c.clientid.as_str(), c.proto_ver), ("paho-1", Some(5)));
    let m = publish_event(listener.next().await);
    assert_eq!((m.topic.as_str(), m.qos), ("dev/p", 2));
    assert_eq!(m.payload.as_ref(), b"\xff\x00binary");
    assert_eq!(m.clientid.as_deref(), Some("paho-1"));
    assert_eq!(m.pub_props["User-Property"], json!({"site": "edge-1"}));
    let will = publish_event(listener.next().await);
    assert_eq!(
        (will.topic.as_str(), will.payload.as_ref()),
        ("dev/will", &b"gone"[..])
    );
    assert_eq!(will.clientid.as_deref(), Some("paho-1"));
    let Event::ClientDisconnected(d) = listener.next().await else {
        panic!("expected client.disconnected");
    };
    assert_eq!(
        (d.clientid.as_str(), d.reason.as_str()),
        ("paho-1", "tcp_closed")
    );
    listener.stop().await;
}

#[tokio::test]
async fn listener_acknowledges_in_arrival_order_only_after_store() {
    use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};

    // A listener whose deliveries the test resolves itself.
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = tcp.local_addr().expect("address").port();
    let config = ListenerConfig {
        allow_anonymous: true,
        ..ListenerConfig::default()
    };
    let (_subscriptions, subscriptions_rx) =
        watch::channel(subscriptions(&[("o/#", Qos::AtLeastOnce)]));
    let (out, mut deliveries) = mpsc::channel(16);
    let listener = Listener::new(config, NODE, subscriptions_rx, out).expect("valid config");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(listener.run(Some(tcp), None, async {
        let _ = stopped.await;
    }));

    let (client, mut eventloop) =
        AsyncClient::new(MqttOptions::new("orderly", "127.0.0.1", port), 10);
    let (acks_tx, mut acks) = mpsc::unbounded_channel();
    let device = tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let MqttEvent::Incoming(Packet::PubAck(ack)) = event {
                let _ = acks_tx.send(ack.pkid);
            }
        }
    });
    for i in 1..=3 {
        client
            .publish(format!("o/{i}"), QoS::AtLeastOnce, false, "x")
            .await
            .expect("queue a publish");
    }
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            tokio::time::timeout(DEFAULT_DEADLINE, deliveries.recv())
                .await
                .expect("a delivery in time")
                .expect("running"),
        );
    }
    // Complete the last two first: their PUBACKs must wait for the first.
    let first = held.remove(0);
    held.into_iter().rev().for_each(|d| drop(store(d)));
    let early = tokio::time::timeout(Duration::from_millis(300), acks.recv()).await;
    assert!(
        early.is_err(),
        "no PUBACK may overtake an unstored message: {early:?}"
    );
    store(first);
    let mut order = Vec::new();
    while order.len() < 3 {
        order.push(
            tokio::time::timeout(DEFAULT_DEADLINE, acks.recv())
                .await
                .expect("PUBACKs in time")
                .expect("device running"),
        );
    }
    assert_eq!(order, vec![1, 2, 3]);
    device.abort();
    let _ = stop.send(());
    task.await.expect("listener task").expect("listener ran");
}

#[tokio::test]
async fn the_tls_listener_serves_mosquitto_pub() {
    let dir = scratch_dir();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("generate a certificate");
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&cert_file, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).expect("write key");
    let config = ListenerConfig {
        tls: Some(ListenerTlsConfig {
            bind: "127.0.0.1:0".parse().expect("address"),
            cert_file: cert_file.clone(),
            key_file,
            client_ca_file: None,
            peer_cert_as_username: None,
        }),
        ..listener_config()
    };
    let mut listener = start_listener(config, subscriptions(&[("dev/#", Qos::AtLeastOnce)])).await;
    let tls_port = listener.tls_port.expect("a TLS port").to_string();
    let (code, output) = mqtt_client::mosquitto_pub(&[
        "-h",
        "127.0.0.1",
        "-p",
        &tls_port,
        "--cafile",
        cert_file.to_str().expect("utf-8 path"),
        "-u",
        "dev",
        "-P",
        "secret",
        "-i",
        "tls-1",
        "-t",
        "dev/tls",
        "-m",
        "sealed",
        "-q",
        "1",
    ])
    .await;
    assert_eq!(code, Some(0), "{output}");
    let m = publish_event(listener.next().await);
    assert_eq!(
        (m.topic.as_str(), m.clientid.as_deref()),
        ("dev/tls", Some("tls-1"))
    );
    listener.stop().await;
}
