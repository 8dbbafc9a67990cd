//! The device-facing listener's security end to end: passwords (plain, and
//! hashed by `weir passwd`), the per-topic ACL, mutual TLS, and the metrics
//! that count what was refused. weir runs as a process in listener mode,
//! real MQTT clients (rumqttc, mosquitto_pub) connect to it, and what was
//! stored is read back from the HStreamDB-compatible server.

use crate::harness::admin::Admin;
use crate::harness::devserver::DevServer;
use crate::harness::gateway::{Gateway, client, json_of, listener_config_with, read_records};
use crate::harness::mqtt_client::{Message, Subscriber, mosquitto_pub, publish};
use crate::harness::pki::Pki;
use crate::harness::process::run_with_stdin;
use crate::harness::{DEFAULT_DEADLINE, scratch_dir, weir};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, PubAckReason, SubscribeReasonCode};
use std::collections::BTreeSet;
use std::path::Path;

/// weir in listener mode on free ports; `listener` is the rest of the
/// `[mqtt.listener]` table (keys, then its sub-tables). One rule stores
/// `devices/#` (client id, username, topic and payload) in `telemetry`.
async fn start(dir: &Path, server: &DevServer, listener: &str) -> Gateway {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("create the plugins directory");
    std::fs::write(
        plugins.join("telemetry.rule.toml"),
        "sql = '''SELECT clientid, username, topic, payload FROM \"devices/#\"'''\n\n\
         [action]\nstream = \"telemetry\"\n",
    )
    .expect("write the rule");
    let plugins = plugins.to_str().expect("utf-8 path");
    let config = listener_config_with(&server.url(), plugins, listener, "");
    Gateway::start(dir, &config).await
}

/// The value of the sample `series` (name and labels as weir writes them)
/// in `GET /metrics`.
async fn metric(weir: &Gateway, series: &str) -> f64 {
    let (status, _, text) = Admin::of(weir).metrics("text/plain").await;
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .trim()
        .parse()
        .expect("a number")
}

/// The payloads stored in `telemetry`, reading until `count` arrived.
async fn stored_payloads(server: &DevServer, count: usize) -> BTreeSet<String> {
    read_records(&client(&server.url()), "telemetry", count)
        .await
        .iter()
        .map(|r| json_of(r)["payload"].as_str().unwrap_or("-").to_owned())
        .collect()
}

/// What the listener answers an MQTT 5 CONNECT as `client_id` with `login`.
async fn connack_v5(port: u16, client_id: &str, login: Option<(&str, &str)>) -> ConnectReturnCode {
    use rumqttc::v5::{AsyncClient, ConnectionError, Event, Incoming, MqttOptions};
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    if let Some((username, password)) = login {
        options.set_credentials(username, password);
    }
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    let answer = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(ack))) => return ack.code,
                Ok(_) => {}
                Err(ConnectionError::ConnectionRefused(code)) => return code,
                Err(error) => panic!("{client_id}: no CONNACK: {error}"),
            }
        }
    };
    tokio::time::timeout(DEFAULT_DEADLINE, answer)
        .await
        .expect("a CONNACK in time")
}

/// What the listener answers an MQTT 3.1.1 CONNECT as `client_id` with
/// `login`.
async fn connack_v4(port: u16, client_id: &str, login: (&str, &str)) -> rumqttc::ConnectReturnCode {
    use rumqttc::{AsyncClient, ConnectionError, Event, Incoming, MqttOptions};
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_credentials(login.0, login.1);
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    let answer = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(ack))) => return ack.code,
                Ok(_) => {}
                Err(ConnectionError::ConnectionRefused(code)) => return code,
                Err(error) => panic!("{client_id}: no CONNACK: {error}"),
            }
        }
    };
    tokio::time::timeout(DEFAULT_DEADLINE, answer)
        .await
        .expect("a CONNACK in time")
}

/// Publishes `messages` (topic, payload; QoS 1) in order as an MQTT 5 client
/// and returns each PUBACK's reason code, in order.
async fn publish_v5(
    port: u16,
    client_id: &str,
    login: Option<(&str, &str)>,
    messages: &[(&str, &str)],
) -> Vec<PubAckReason> {
    use rumqttc::v5::{AsyncClient, Event, Incoming, MqttOptions};
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    if let Some((username, password)) = login {
        options.set_credentials(username, password);
    }
    let (client, mut eventloop) = AsyncClient::new(options, messages.len() + 10);
    for (topic, payload) in messages {
        client
            .publish(*topic, QoS::AtLeastOnce, false, payload.to_string())
            .await
            .expect("queue a publish");
    }
    let acks = async {
        let mut reasons = Vec::new();
        while reasons.len() < messages.len() {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::PubAck(ack))) => reasons.push((ack.pkid, ack.reason)),
                Ok(_) => {}
                Err(error) => panic!("{client_id}: {error}"),
            }
        }
        reasons.sort_by_key(|(pkid, _)| *pkid);
        reasons.into_iter().map(|(_, reason)| reason).collect()
    };
    let reasons = tokio::time::timeout(DEFAULT_DEADLINE, acks)
        .await
        .expect("every PUBACK in time");
    let _ = client.disconnect().await;
    reasons
}

/// Subscribes to `filter` as an anonymous MQTT 3.1.1 client and returns
/// the SUBACK's code.
async fn subscribe_v4(port: u16, client_id: &str, filter: &str) -> rumqttc::SubscribeReasonCode {
    use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
    let (client, mut eventloop) =
        AsyncClient::new(MqttOptions::new(client_id, "127.0.0.1", port), 10);
    client
        .subscribe(filter, QoS::AtLeastOnce)
        .await
        .expect("queue a SUBSCRIBE");
    let suback = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::SubAck(ack))) => return ack.return_codes[0],
                Ok(_) => {}
                Err(error) => panic!("{client_id}: {error}"),
            }
        }
    };
    tokio::time::timeout(DEFAULT_DEADLINE, suback)
        .await
        .expect("a SUBACK in time")
}

/// `weir passwd ARGS` with `stdin` piped in: its exit code and stdout.
async fn weir_passwd(args: &[&str], stdin: &str) -> (Option<i32>, String) {
    let mut command = tokio::process::Command::new(weir::binary());
    command.arg("passwd").args(args);
    let output = run_with_stdin(&mut command, "weir passwd", stdin.as_bytes()).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() || !stderr.is_empty(),
        "a failure says why"
    );
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test]
async fn wrong_passwords_are_refused_and_a_hashed_password_from_weir_passwd_is_accepted() {
    // A few rounds, as a debug build would take long over the default.
    let (code, entry) = weir_passwd(&["sensor", "--rounds", "1000"], "correct horse\n").await;
    assert_eq!(code, Some(0), "{entry}");
    assert!(
        entry.starts_with(
            "[[mqtt.listener.users]]\nusername = \"sensor\"\npassword_hash = \"$pbkdf2-sha256$i=1000,"
        ),
        "{entry}"
    );
    assert!(!entry.contains("correct horse"), "{entry}");
    let (code, _) = weir_passwd(&[], "\n").await;
    assert_ne!(code, Some(0), "an empty password is refused");

    let server = DevServer::start().await;
    let dir = scratch_dir();
    // The entry is pasted as `weir passwd` printed it.
    let listener =
        format!("\n[[mqtt.listener.users]]\nusername = \"dev\"\npassword = \"secret\"\n\n{entry}");
    let weir = start(dir.path(), &server, &listener).await;
    let port = weir.mqtt_port();

    let bad = ConnectReturnCode::BadUserNamePassword;
    assert_eq!(connack_v5(port, "c1", Some(("dev", "wrong"))).await, bad);
    assert_eq!(
        connack_v5(port, "c2", Some(("nobody", "secret"))).await,
        bad
    );
    assert_eq!(
        connack_v5(port, "c3", Some(("sensor", "correct horsE"))).await,
        bad
    );
    assert_eq!(
        connack_v4(port, "c4", ("sensor", "secret")).await,
        rumqttc::ConnectReturnCode::BadUserNamePassword
    );
    assert_eq!(
        connack_v5(port, "c5", None).await,
        ConnectReturnCode::NotAuthorized,
        "no username, and allow_anonymous is off"
    );
    assert_eq!(
        connack_v5(port, "c6", Some(("dev", "secret"))).await,
        ConnectReturnCode::Success
    );

    let acks = publish_v5(
        port,
        "sensor-1",
        Some(("sensor", "correct horse")),
        &[("devices/sensor-1/up", "hashed login")],
    )
    .await;
    assert_eq!(acks, vec![PubAckReason::Success]);
    let stored = read_records(&client(&server.url()), "telemetry", 1).await;
    assert_eq!(json_of(&stored[0])["clientid"], "sensor-1");
    assert_eq!(json_of(&stored[0])["payload"], "hashed login");

    let failures =
        |reason: &str| format!("weir_ingress_auth_failures_total{{reason=\"{reason}\"}}");
    assert_eq!(
        metric(&weir, &failures("bad_username_or_password")).await,
        4.0
    );
    assert_eq!(metric(&weir, &failures("not_authorized")).await, 1.0);
    assert_eq!(
        metric(&weir, "weir_ingress_connections_refused_total").await,
        5.0
    );
    weir.stop().await;
    server.stop().await;
}

/// Everyone may publish under `devices/<own client id>/` and subscribe to
/// `devices/+/up`, nobody to `#`, nothing else.
const DEVICE_ACL: &str = r#"
allow_anonymous = true
acl_no_match = "deny"

[[mqtt.listener.acl]]
permission = "deny"
action = "subscribe"
topics = ["eq #"]

[[mqtt.listener.acl]]
permission = "allow"
action = "publish"
topics = ["devices/${clientid}/#"]

[[mqtt.listener.acl]]
permission = "allow"
action = "subscribe"
topics = ["devices/+/up"]
"#;

#[tokio::test]
async fn the_acl_drops_denied_publishes_and_refuses_denied_subscriptions() {
    let server = DevServer::start().await;
    let dir = scratch_dir();
    let weir = start(dir.path(), &server, DEVICE_ACL).await;
    let port = weir.mqtt_port();

    let mut watcher = Subscriber::connect(port, "watcher", false).await;
    assert_eq!(
        watcher.subscribe("#", 1).await,
        vec![SubscribeReasonCode::NotAuthorized]
    );
    assert_eq!(
        watcher.subscribe("other/topic", 1).await,
        vec![SubscribeReasonCode::NotAuthorized],
        "no rule matches: acl_no_match"
    );
    assert_eq!(
        watcher.subscribe("devices/+/up", 1).await,
        vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    assert_eq!(
        subscribe_v4(port, "old-watcher", "#").await,
        rumqttc::SubscribeReasonCode::Failure
    );

    // MQTT 5: a forged topic is answered "not authorized", the device's own
    // is stored, on one connection.
    let acks = publish_v5(
        port,
        "sensor-1",
        None,
        &[
            ("devices/sensor-2/up", "forged"),
            ("devices/sensor-1/up", "real"),
        ],
    )
    .await;
    assert_eq!(
        acks,
        vec![PubAckReason::NotAuthorized, PubAckReason::Success]
    );
    // MQTT 3.1.1 cannot say so: the denied message is acknowledged (the
    // harness's publisher waits for every PUBACK) and dropped.
    publish(
        port,
        "sensor-3",
        false,
        &[
            Message::new("devices/sensor-1/up", "forged-v3", 1),
            Message::new("devices/sensor-1/up", "forged-v3-qos0", 0),
            Message::new("devices/sensor-3/up", "real-v3", 1),
        ],
    )
    .await;

    // The subscriber gets the allowed messages only: a denied one was never
    // routed (it would have arrived first).
    assert_eq!(
        watcher.next_message().await,
        ("devices/sensor-1/up".to_owned(), b"real".to_vec(), 1)
    );
    assert_eq!(
        watcher.next_message().await,
        ("devices/sensor-3/up".to_owned(), b"real-v3".to_vec(), 1)
    );
    assert_eq!(
        stored_payloads(&server, 2).await,
        BTreeSet::from(["real".to_owned(), "real-v3".to_owned()])
    );
    // Every PUBACK above came after its message and every earlier one of its
    // connection were complete, so nothing denied is on its way either.
    assert_eq!(
        metric(&weir, "weir_sink_matched_total{stream=\"telemetry\"}").await,
        2.0
    );
    let denied = |action: &str| format!("weir_ingress_acl_denied_total{{action=\"{action}\"}}");
    assert_eq!(metric(&weir, &denied("publish")).await, 3.0);
    assert_eq!(metric(&weir, &denied("subscribe")).await, 3.0);
    watcher.disconnect().await;
    weir.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate_and_names_the_others_by_their_cn() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = DevServer::start().await;
    let dir = scratch_dir();
    // No users: only a certificate gets a client in, as its common name.
    let listener = format!(
        r#"acl_no_match = "deny"

[[mqtt.listener.acl]]
permission = "allow"
action = "publish"
topics = ["devices/${{username}}/#"]

[mqtt.listener.tls]
bind = "127.0.0.1:0"
cert_file = "{}"
key_file = "{}"
client_ca_file = "{}"
peer_cert_as_username = "cn"
"#,
        pki.arg("server.pem"),
        pki.arg("server.key"),
        pki.arg("ca.pem"),
    );
    let weir = start(dir.path(), &server, &listener).await;
    let tls_port = weir
        .output()
        .lines()
        .find_map(|line| line.strip_prefix("weir mqtt tls listener on "))
        .and_then(|addr| addr.trim().parse::<std::net::SocketAddr>().ok())
        .expect("weir says where its TLS listener is")
        .port()
        .to_string();
    assert_eq!(
        connack_v5(weir.mqtt_port(), "plain", None).await,
        ConnectReturnCode::NotAuthorized,
        "plain TCP: no certificate, no users"
    );
    let ca = pki.arg("ca.pem");
    let (cert, key) = (pki.arg("client.pem"), pki.arg("client.key"));
    let no_certificate = publish_tls(&tls_port, &ca, None, "devices/weir/up", "no certificate");
    let (code, output) = no_certificate.await;
    assert_ne!(code, Some(0), "{output}");
    // The client certificate's common name is `weir`; no password is sent.
    let certificate = Some((cert.as_str(), key.as_str()));
    let (code, output) = publish_tls(&tls_port, &ca, certificate, "devices/weir/up", "mine").await;
    assert_eq!(code, Some(0), "{output}");
    let (code, output) = publish_tls(&tls_port, &ca, certificate, "devices/d/up", "not mine").await;
    assert_eq!(code, Some(0), "3.1.1: acknowledged and dropped: {output}");

    let stored = read_records(&client(&server.url()), "telemetry", 1).await;
    let record = json_of(&stored[0]);
    assert_eq!(record["payload"], "mine");
    assert_eq!(record["username"], "weir");
    assert_eq!(
        metric(&weir, "weir_sink_matched_total{stream=\"telemetry\"}").await,
        1.0
    );
    assert_eq!(
        metric(&weir, "weir_ingress_acl_denied_total{action=\"publish\"}").await,
        1.0
    );
    assert_eq!(
        metric(&weir, "weir_ingress_connections_refused_total").await,
        2.0
    );
    weir.stop().await;
    server.stop().await;
}

/// `mosquitto_pub` (MQTT 3.1.1) of one QoS 1 message over TLS, with a client
/// certificate and key when given.
async fn publish_tls(
    port: &str,
    ca: &str,
    certificate: Option<(&str, &str)>,
    topic: &str,
    payload: &str,
) -> (Option<i32>, String) {
    let mut args = vec![
        "-h",
        "127.0.0.1",
        "-p",
        port,
        "--cafile",
        ca,
        "-q",
        "1",
        "-t",
        topic,
        "-m",
        payload,
    ];
    if let Some((cert, key)) = certificate {
        args.extend(["--cert", cert, "--key", key]);
    }
    mosquitto_pub(&args).await
}
