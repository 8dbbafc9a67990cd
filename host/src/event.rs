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

/// One event, as a rule sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    MessagePublish(MessagePublish),
    ClientConnected(ClientConnected),
    ClientDisconnected(ClientDisconnected),
}

/// The three kinds of event, with EMQX's `event` names and `$events/` sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    MessagePublish,
    ClientConnected,
    ClientDisconnected,
}

impl EventKind {
    /// The value of the `event` field: `message.publish`, `client.connected`
    /// or `client.disconnected`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::MessagePublish => "message.publish",
            EventKind::ClientConnected => "client.connected",
            EventKind::ClientDisconnected => "client.disconnected",
        }
    }

    /// The rule source that selects this kind of client event
    /// (`$events/client_connected`); message events are selected by topic
    /// filters instead.
    pub fn event_source(self) -> Option<&'static str> {
        match self {
            EventKind::MessagePublish => None,
            EventKind::ClientConnected => Some("$events/client_connected"),
            EventKind::ClientDisconnected => Some("$events/client_disconnected"),
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::MessagePublish(_) => EventKind::MessagePublish,
            Event::ClientConnected(_) => EventKind::ClientConnected,
            Event::ClientDisconnected(_) => EventKind::ClientDisconnected,
        }
    }

    /// What rule sources match against: the topic of a message, or the
    /// `$events/...` name of a client event.
    pub fn source(&self) -> &str {
        match self {
            Event::MessagePublish(m) => &m.topic,
            other => other.kind().event_source().unwrap_or_default(),
        }
    }

    pub fn timestamp(&self) -> i64 {
        match self {
            Event::MessagePublish(m) => m.timestamp,
            Event::ClientConnected(c) => c.timestamp,
            Event::ClientDisconnected(d) => d.timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
