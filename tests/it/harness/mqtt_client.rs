//! MQTT test clients: a rumqttc publisher (3.1.1 or 5) that waits until the
//! broker acknowledged everything it sent, `mosquitto_pub`, and Python
//! paho-mqtt from the repository's venv.

use rumqttc::v5::mqttbytes::v5::PublishProperties;
use std::time::Duration;

/// How long a test client may take to connect and publish.
const CLIENT_DEADLINE: Duration = Duration::from_secs(30);

/// One message to publish.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) topic: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) qos: u8,
    pub(crate) retain: bool,
    /// MQTT 5 only.
    pub(crate) properties: Option<PublishProperties>,
}

impl Message {
    pub(crate) fn new(topic: &str, payload: impl Into<Vec<u8>>, qos: u8) -> Message {
        Message {
            topic: topic.to_owned(),
            payload: payload.into(),
            qos,
            retain: false,
            properties: None,
        }
    }
}

/// Publishes `messages` in order with MQTT 5 (`v5`) or 3.1.1 as client
/// `client_id`, and returns once the broker acknowledged every QoS 1/2
/// message (QoS 0 ones once they are written).
pub(crate) async fn publish(port: u16, client_id: &str, v5: bool, messages: &[Message]) {
    let sent = tokio::time::timeout(CLIENT_DEADLINE, async {
        if v5 {
            publish_v5(port, client_id, messages).await
        } else {
            publish_v4(port, client_id, messages).await
        }
    })
    .await;
    sent.unwrap_or_else(|_| panic!("{client_id} did not finish publishing in time"));
}

async fn publish_v4(port: u16, client_id: &str, messages: &[Message]) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, messages.len() + 10);
    let mut expected_acks = 0;
    let mut expected_writes = 0;
    for m in messages {
        let qos = match m.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        };
        expected_acks += usize::from(m.qos > 0);
        expected_writes += 1;
        client
            .publish(m.topic.clone(), qos, m.retain, m.payload.clone())
            .await
            .expect("queue a publish");
    }
    let (mut acks, mut writes) = (0, 0);
    while acks < expected_acks || writes < expected_writes {
        match eventloop.poll().await.expect("test publisher connection") {
            Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_)) => acks += 1,
            Event::Outgoing(Outgoing::Publish(_)) => writes += 1,
            _ => {}
        }
    }
    client.disconnect().await.expect("queue DISCONNECT");
    while !matches!(
        eventloop.poll().await,
        Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_)
    ) {}
}

async fn publish_v5(port: u16, client_id: &str, messages: &[Message]) {
    use rumqttc::Outgoing;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, Incoming, MqttOptions};
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_max_packet_size(Some(1 << 20));
    let (client, mut eventloop) = AsyncClient::new(options, messages.len() + 10);
    let mut expected_acks = 0;
    for m in messages {
        let qos = match m.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        };
        expected_acks += usize::from(m.qos > 0);
        match &m.properties {
            Some(props) => client
                .publish_with_properties(
                    m.topic.clone(),
                    qos,
                    m.retain,
                    m.payload.clone(),
                    props.clone(),
                )
                .await
                .expect("queue a publish"),
            None => client
                .publish(m.topic.clone(), qos, m.retain, m.payload.clone())
                .await
                .expect("queue a publish"),
        }
    }
    let (mut acks, mut writes) = (0, 0);
    while acks < expected_acks || writes < messages.len() {
        match eventloop.poll().await.expect("test publisher connection") {
            Event::Incoming(Incoming::PubAck(_) | Incoming::PubComp(_)) => acks += 1,
            Event::Outgoing(Outgoing::Publish(_)) => writes += 1,
            _ => {}
        }
    }
    client.disconnect().await.expect("queue DISCONNECT");
    while !matches!(
        eventloop.poll().await,
        Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_)
    ) {}
}

/// Runs `mosquitto_pub` with `args` and returns its exit code and output.
pub(crate) async fn mosquitto_pub(args: &[&str]) -> (Option<i32>, String) {
    let output = tokio::time::timeout(
        CLIENT_DEADLINE,
        tokio::process::Command::new("mosquitto_pub")
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("mosquitto_pub finished in time")
    .expect("run mosquitto_pub");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

/// Runs a Python script with paho-mqtt and returns its exit code and output.
pub(crate) async fn paho(script: &str, args: &[&str]) -> (Option<i32>, String) {
    let python = super::python();
    let output = tokio::time::timeout(
        CLIENT_DEADLINE,
        tokio::process::Command::new(&python)
            .arg("-c")
            .arg(script)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the paho script finished in time")
    .expect("run python");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

/// An MQTT 5 subscriber (rumqttc) whose event loop runs in the background;
/// every packet it receives is kept, in order, for the test to wait on.
pub(crate) struct Subscriber {
    client: rumqttc::v5::AsyncClient,
    incoming: tokio::sync::mpsc::UnboundedReceiver<rumqttc::v5::Incoming>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    /// Connects as `client_id`; with `manual_acks` the subscriber never
    /// acknowledges a QoS 1 message (a stuck device).
    pub(crate) async fn connect(port: u16, client_id: &str, manual_acks: bool) -> Subscriber {
        use rumqttc::v5::{AsyncClient, Event, Incoming, MqttOptions};
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_manual_acks(manual_acks);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, incoming) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                match event {
                    Event::Incoming(packet) => {
                        if tx.send(packet).is_err() {
                            return;
                        }
                    }
                    // Polling on would reconnect.
                    Event::Outgoing(rumqttc::Outgoing::Disconnect) => return,
                    Event::Outgoing(_) => {}
                }
            }
        });
        let mut subscriber = Subscriber {
            client,
            incoming,
            task,
        };
        subscriber
            .wait_for("CONNACK", |p| matches!(p, Incoming::ConnAck(_)))
            .await;
        subscriber
    }

    /// Waits for the next packet `wanted` accepts, skipping others.
    async fn wait_for(
        &mut self,
        what: &str,
        wanted: impl Fn(&rumqttc::v5::Incoming) -> bool,
    ) -> rumqttc::v5::Incoming {
        let found = tokio::time::timeout(CLIENT_DEADLINE, async {
            while let Some(packet) = self.incoming.recv().await {
                if wanted(&packet) {
                    return Some(packet);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(packet)) => packet,
            Ok(None) => panic!("the subscriber's connection ended before {what}"),
            Err(_) => panic!("no {what} in time"),
        }
    }

    /// Subscribes and returns the SUBACK's reason codes.
    pub(crate) async fn subscribe(
        &mut self,
        filter: &str,
        qos: u8,
    ) -> Vec<rumqttc::v5::mqttbytes::v5::SubscribeReasonCode> {
        use rumqttc::v5::Incoming;
        use rumqttc::v5::mqttbytes::QoS;
        let qos = match qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        };
        self.client
            .subscribe(filter, qos)
            .await
            .expect("queue a SUBSCRIBE");
        match self
            .wait_for("SUBACK", |p| matches!(p, Incoming::SubAck(_)))
            .await
        {
            Incoming::SubAck(ack) => ack.return_codes,
            _ => unreachable!("wait_for returned a SUBACK"),
        }
    }

    pub(crate) async fn unsubscribe(&mut self, filter: &str) {
        use rumqttc::v5::Incoming;
        self.client
            .unsubscribe(filter)
            .await
            .expect("queue an UNSUBSCRIBE");
        self.wait_for("UNSUBACK", |p| matches!(p, Incoming::UnsubAck(_)))
            .await;
    }

    /// The next PUBLISH weir sent: its topic, payload and QoS level.
    pub(crate) async fn next_message(&mut self) -> (String, Vec<u8>, u8) {
        use rumqttc::v5::Incoming;
        match self
            .wait_for("a PUBLISH", |p| matches!(p, Incoming::Publish(_)))
            .await
        {
            Incoming::Publish(p) => (
                String::from_utf8_lossy(&p.topic).into_owned(),
                p.payload.to_vec(),
                p.qos as u8,
            ),
            _ => unreachable!("wait_for returned a PUBLISH"),
        }
    }

    /// Sends DISCONNECT and waits for the connection to end.
    pub(crate) async fn disconnect(self) {
        self.client.disconnect().await.expect("queue DISCONNECT");
        tokio::time::timeout(CLIENT_DEADLINE, self.task)
            .await
            .expect("the subscriber disconnected in time")
            .expect("the subscriber's task did not panic");
    }
}
