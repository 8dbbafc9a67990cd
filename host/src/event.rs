//! The events weir processes, with EMQX's field names and meanings.
//!
//! Rules written for EMQX's rule engine (`SELECT clientid, payload.temp FROM
//! "t/#"`) and templates (`${clientid}`) carry over unchanged because every
//! field here has the name and meaning of the column EMQX exposes. A field
//! that a mode cannot know (the publisher's client id, seen from a plain MQTT
//! 3.1.1 subscription) is `None` and renders as JSON `null`; it is never
//! invented.
//!
//! Events are plain data: they carry no acknowledgement handle and know
//! nothing of MQTT sessions or HStreamDB. The pipeline pairs each event with
//! its acknowledgement separately (see `crate::ack`).

use bytes::Bytes;
use serde_json::{Map, Value};
use std::fmt;

/// One event, as a rule sees it. `crate::schema` (re-exported from the guest
/// SDK) lists each kind's columns; `rules::encode` writes exactly those.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    MessagePublish(MessagePublish),
    ClientConnected(ClientConnected),
    ClientDisconnected(ClientDisconnected),
    ClientConnack(ClientConnack),
    SessionSubscribed(Subscription),
    SessionUnsubscribed(Subscription),
    MessageDelivered(MessageDelivery),
    MessageAcked(MessageAcked),
    MessageDropped(MessageDropped),
    DeliveryDropped(DeliveryDropped),
}

/// The kinds of event, with EMQX's `event` names and `$events/` sources:
/// the ABI's kind, so host and guest number them alike.
pub(crate) use weir_guest_sdk::abi::Kind as EventKind;

/// A 128-bit message id, unique per message, printed as 32 upper-case hex
/// digits like EMQX's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u128);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032X}", self.0)
    }
}

/// `message.publish`: an MQTT PUBLISH as it arrived at weir.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePublish {
    pub id: MessageId,
    /// The publisher's client id; `None` when weir receives the message as a
    /// subscriber and the broker does not say who published it.
    pub clientid: Option<String>,
    pub username: Option<String>,
    pub topic: String,
    pub qos: u8,
    pub flags: PublishFlags,
    /// Bytes as published; not necessarily UTF-8 or JSON.
    pub payload: Bytes,
    /// MQTT 5 publish properties with EMQX's keys (`User-Property` is an
    /// object of the user properties, `Content-Type`, `Message-Expiry-Interval`,
    /// ...); empty for MQTT 3.1.1.
    pub pub_props: Map<String, Value>,
    /// The publisher's IP address, when known.
    pub peerhost: Option<String>,
    /// When weir received the message, in milliseconds since the Unix epoch.
    pub publish_received_at: i64,
    /// When the event was created, in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The name of the weir node that received the message.
    pub node: String,
}

/// The `flags` column: EMQX has no top-level `retain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublishFlags {
    pub dup: bool,
    pub retain: bool,
}

/// `client.connected`: a client finished connecting (source
/// `$events/client_connected`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConnected {
    pub clientid: String,
    pub username: Option<String>,
    /// `ip:port` of the client.
    pub peername: Option<String>,
    /// `ip:port` of the listener the client connected to.
    pub sockname: Option<String>,
    pub proto_name: Option<String>,
    pub proto_ver: Option<u8>,
    pub keepalive: Option<u16>,
    pub clean_start: Option<bool>,
    /// Session expiry interval in seconds.
    pub expiry_interval: Option<u32>,
    pub connected_at: i64,
    pub timestamp: i64,
    pub node: String,
}

/// `client.disconnected`: a client's connection ended (source
/// `$events/client_disconnected`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientDisconnected {
    pub clientid: String,
    pub username: Option<String>,
    /// Why the connection ended, with EMQX's words where they apply:
    /// `normal`, `kicked`, `keepalive_timeout`, `tcp_closed`, ...
    pub reason: String,
    pub peername: Option<String>,
    pub sockname: Option<String>,
    pub proto_name: Option<String>,
    pub proto_ver: Option<u8>,
    pub disconnected_at: i64,
    pub timestamp: i64,
    pub node: String,
}

/// `client.connack`: weir answered a CONNECT (source
/// `$events/client_connack`), accepting or refusing it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConnack {
    /// EMQX's word for the CONNACK reason: `success`, `not_authorized`,
    /// `bad_username_or_password`, `client_identifier_not_valid`,
    /// `server_busy`, `unsupported_protocol_version`.
    pub reason_code: String,
    pub clientid: String,
    pub username: Option<String>,
    pub peername: Option<String>,
    pub sockname: Option<String>,
    pub proto_name: Option<String>,
    pub proto_ver: Option<u8>,
    pub keepalive: Option<u16>,
    pub clean_start: Option<bool>,
    /// Session expiry interval the client asked for, in seconds.
    pub expiry_interval: Option<u32>,
    pub timestamp: i64,
    pub node: String,
}

/// `session.subscribed` / `session.unsubscribed`: one topic filter of a
/// SUBSCRIBE or UNSUBSCRIBE that weir accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub clientid: String,
    pub username: Option<String>,
    pub peerhost: Option<String>,
    pub peername: Option<String>,
    /// The topic filter.
    pub topic: String,
    /// The QoS granted (subscribed) or that the subscription had
    /// (unsubscribed).
    pub qos: u8,
    /// MQTT 5 SUBSCRIBE / UNSUBSCRIBE properties with EMQX's keys: the
    /// `sub_props` or `unsub_props` column.
    pub props: Map<String, Value>,
    pub timestamp: i64,
    pub node: String,
}

/// The subscriber a message went (or did not go) to.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    pub clientid: String,
    pub username: Option<String>,
    pub peerhost: Option<String>,
    pub peername: Option<String>,
}

/// `message.delivered`: weir sent a PUBLISH to a subscriber. `clientid` and
/// `username` are the receiver's; the publisher's are `from_clientid` and
/// `from_username` (the message's `clientid` and `username`).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageDelivery {
    /// The message as it was published (shared by every subscriber).
    pub message: std::sync::Arc<MessagePublish>,
    pub to: Receiver,
    /// The QoS of the delivery (the lower of the message's and the
    /// subscription's).
    pub qos: u8,
    pub timestamp: i64,
}

/// `message.acked`: a subscriber acknowledged a QoS 1 delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageAcked {
    pub delivery: MessageDelivery,
    /// MQTT 5 PUBACK properties with EMQX's keys.
    pub puback_props: Map<String, Value>,
}

/// `delivery.dropped`: a message matched a subscriber but was not sent.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryDropped {
    pub delivery: MessageDelivery,
    /// `queue_full` (the subscriber's queue was full) or `session_closed`
    /// (the subscriber went away before the message was sent or
    /// acknowledged).
    pub reason: String,
}

/// `message.dropped`: a message no subscriber received.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageDropped {
    pub message: std::sync::Arc<MessagePublish>,
    /// `no_subscribers`.
    pub reason: String,
    pub timestamp: i64,
}

impl Event {
    /// The message the event is about, for the message events.
    pub(crate) fn message(&self) -> Option<&MessagePublish> {
        match self {
            Event::MessagePublish(m) => Some(m),
            Event::MessageDelivered(d) => Some(&d.message),
            Event::MessageAcked(a) => Some(&a.delivery.message),
            Event::DeliveryDropped(d) => Some(&d.delivery.message),
            Event::MessageDropped(d) => Some(&d.message),
            Event::ClientConnected(_)
            | Event::ClientDisconnected(_)
            | Event::ClientConnack(_)
            | Event::SessionSubscribed(_)
            | Event::SessionUnsubscribed(_) => None,
        }
    }

    pub fn kind(&self) -> EventKind {
        match self {
            Event::MessagePublish(_) => EventKind::MessagePublish,
            Event::ClientConnected(_) => EventKind::ClientConnected,
            Event::ClientDisconnected(_) => EventKind::ClientDisconnected,
            Event::ClientConnack(_) => EventKind::ClientConnack,
            Event::SessionSubscribed(_) => EventKind::SessionSubscribed,
            Event::SessionUnsubscribed(_) => EventKind::SessionUnsubscribed,
            Event::MessageDelivered(_) => EventKind::MessageDelivered,
            Event::MessageAcked(_) => EventKind::MessageAcked,
            Event::MessageDropped(_) => EventKind::MessageDropped,
            Event::DeliveryDropped(_) => EventKind::DeliveryDropped,
        }
    }

    /// What rule sources match against: the topic of a published message,
    /// or the `$events/...` source of every other kind.
    pub fn source(&self) -> &str {
        match self {
            Event::MessagePublish(m) => &m.topic,
            other => other.kind().source().unwrap_or_default(),
        }
    }

    pub fn timestamp(&self) -> i64 {
        match self {
            Event::MessagePublish(m) => m.timestamp,
            Event::ClientConnected(c) => c.timestamp,
            Event::ClientDisconnected(d) => d.timestamp,
            Event::ClientConnack(c) => c.timestamp,
            Event::SessionSubscribed(s) | Event::SessionUnsubscribed(s) => s.timestamp,
            Event::MessageDelivered(d) => d.timestamp,
            Event::MessageAcked(a) => a.delivery.timestamp,
            Event::DeliveryDropped(d) => d.delivery.timestamp,
            Event::MessageDropped(m) => m.timestamp,
        }
    }
}

/// One event of every kind, with every optional field known, for tests
/// that must cover each kind.
#[cfg(test)]
pub(crate) fn sample_events() -> Vec<Event> {
    use std::sync::Arc;
    let message = Arc::new(MessagePublish {
        id: MessageId(0xABCD),
        clientid: Some("pub-1".into()),
        username: Some("alice".into()),
        topic: "t/1".into(),
        qos: 1,
        flags: PublishFlags {
            dup: false,
            retain: true,
        },
        payload: Bytes::from_static(br#"{"temp":21}"#),
        pub_props: Map::new(),
        peerhost: Some("127.0.0.1".into()),
        publish_received_at: 10,
        timestamp: 10,
        node: "weir@local".into(),
    });
    let delivery = MessageDelivery {
        message: message.clone(),
        to: Receiver {
            clientid: "sub-1".into(),
            username: Some("bob".into()),
            peerhost: Some("127.0.0.2".into()),
            peername: Some("127.0.0.2:5001".into()),
        },
        qos: 1,
        timestamp: 11,
    };
    let subscription = Subscription {
        clientid: "sub-1".into(),
        username: None,
        peerhost: Some("127.0.0.2".into()),
        peername: Some("127.0.0.2:5001".into()),
        topic: "t/#".into(),
        qos: 1,
        props: Map::new(),
        timestamp: 9,
        node: "weir@local".into(),
    };
    vec![
        Event::MessagePublish((*message).clone()),
        Event::ClientConnected(ClientConnected {
            clientid: "c1".into(),
            username: None,
            peername: Some("127.0.0.1:5000".into()),
            sockname: Some("127.0.0.1:1883".into()),
            proto_name: Some("MQTT".into()),
            proto_ver: Some(5),
            keepalive: Some(60),
            clean_start: Some(true),
            expiry_interval: Some(0),
            connected_at: 1,
            timestamp: 2,
            node: "weir@local".into(),
        }),
        Event::ClientDisconnected(ClientDisconnected {
            clientid: "c1".into(),
            username: None,
            reason: "normal".into(),
            peername: Some("127.0.0.1:5000".into()),
            sockname: Some("127.0.0.1:1883".into()),
            proto_name: Some("MQTT".into()),
            proto_ver: Some(4),
            disconnected_at: 3,
            timestamp: 3,
            node: "weir@local".into(),
        }),
        Event::ClientConnack(ClientConnack {
            reason_code: "not_authorized".into(),
            clientid: "c2".into(),
            username: Some("mallory".into()),
            peername: Some("127.0.0.1:5002".into()),
            sockname: Some("127.0.0.1:1883".into()),
            proto_name: Some("MQTT".into()),
            proto_ver: Some(5),
            keepalive: Some(30),
            clean_start: Some(false),
            expiry_interval: Some(60),
            timestamp: 4,
            node: "weir@local".into(),
        }),
        Event::SessionSubscribed(subscription.clone()),
        Event::SessionUnsubscribed(subscription),
        Event::MessageDelivered(delivery.clone()),
        Event::MessageAcked(MessageAcked {
            delivery: delivery.clone(),
            puback_props: Map::new(),
        }),
        Event::MessageDropped(MessageDropped {
            message,
            reason: "no_subscribers".into(),
            timestamp: 12,
        }),
        Event::DeliveryDropped(DeliveryDropped {
            delivery,
            reason: "queue_full".into(),
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/rules.md's table of sources lists each kind's columns in the
    /// schema's order, so the documentation cannot drift from the code.
    #[test]
    fn the_documented_sources_are_the_schema() {
        let docs = include_str!("../../docs/rules.md");
        let rows: Vec<Vec<&str>> = docs
            .lines()
            .filter(|l| l.starts_with("| `\"$events/") || l.starts_with("| a topic filter |"))
            .map(|l| l.split('|').map(str::trim).collect())
            .collect();
        assert_eq!(rows.len(), EventKind::COUNT, "one row per kind");
        for kind in EventKind::ALL {
            let schema = weir_guest_sdk::schema::schema(kind);
            let source = match schema.source {
                Some(s) => format!("`\"{s}\"`"),
                None => "a topic filter".to_owned(),
            };
            let row = rows
                .iter()
                .find(|r| r[1] == source)
                .unwrap_or_else(|| panic!("docs/rules.md has no row for {source}"));
            assert_eq!(row[2], format!("`{}`", schema.event), "{source}");
            let columns: Vec<String> = schema.columns.iter().map(|c| format!("`{c}`")).collect();
            assert_eq!(row[3], columns.join(", "), "columns of {source}");
        }
    }

    #[test]
    fn message_ids_print_as_32_hex_digits() {
        assert_eq!(
            MessageId(0xAB).to_string(),
            "000000000000000000000000000000AB"
        );
        assert_eq!(MessageId(u128::MAX).to_string(), "F".repeat(32));
    }

    #[test]
    fn sources_and_names_follow_emqx() {
        let event = Event::ClientConnected(ClientConnected {
            clientid: "c1".into(),
            username: None,
            peername: Some("127.0.0.1:5000".into()),
            sockname: None,
            proto_name: Some("MQTT".into()),
            proto_ver: Some(5),
            keepalive: Some(60),
            clean_start: Some(true),
            expiry_interval: Some(0),
            connected_at: 1,
            timestamp: 2,
            node: "weir@local".into(),
        });
        assert_eq!(event.source(), "$events/client_connected");
        assert_eq!(event.kind().name(), "client.connected");
    }
}
