//! MQTT in: turns MQTT traffic into [`Event`]s paired with acknowledgement
//! tokens, in one of two modes.
//!
//! - [`Bridge`]: weir is an MQTT client of a broker (rumqttc). It subscribes
//!   to the union of the rules' sources, and learns about client connects and
//!   disconnects from the broker's presence messages (see [`presence`]).
//! - [`Listener`]: devices connect to weir itself, so every field of the
//!   event model is known first hand.
//!
//! Both send [`Delivery`]s (event + [`AckToken`]) on a bounded channel and
//! take the rules' sources as a `watch` of a [`SubscriptionSet`]. Only this
//! module names rumqttc or MQTT packets; the rest of weir sees `Event`s.

mod bridge;
mod config;
mod listener;
pub mod presence;
mod props;
mod tls;

pub use bridge::Bridge;
pub use config::{
    BridgeConfig, ClientTlsConfig, ConfigError, ListenerConfig, ListenerTlsConfig, MqttVersion,
    UserConfig,
};
pub use listener::Listener;
pub use presence::{PresenceConfig, PresenceFields};

use crate::ack::{AckCounts, AckStats, AckToken};
use crate::event::{Event, EventKind, MessageId};
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// One event and the token that acknowledges the MQTT message it came from.
/// Pass `ack` along with everything derived from `event`.
#[derive(Debug)]
pub struct Delivery {
    pub event: Event,
    pub ack: AckToken,
}

/// An MQTT quality-of-service level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Qos {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl Qos {
    pub fn level(self) -> u8 {
        self as u8
    }

    /// The QoS with this level, if it is one of 0, 1 and 2.
    pub fn from_level(level: u8) -> Option<Qos> {
        match level {
            0 => Some(Qos::AtMostOnce),
            1 => Some(Qos::AtLeastOnce),
            2 => Some(Qos::ExactlyOnce),
            _ => None,
        }
    }
}

pub(crate) fn qos_from_v4(qos: rumqttc::QoS) -> Qos {
    match qos {
        rumqttc::QoS::AtMostOnce => Qos::AtMostOnce,
        rumqttc::QoS::AtLeastOnce => Qos::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce => Qos::ExactlyOnce,
    }
}

pub(crate) fn qos_from_v5(qos: rumqttc::v5::mqttbytes::QoS) -> Qos {
    use rumqttc::v5::mqttbytes::QoS;
    match qos {
        QoS::AtMostOnce => Qos::AtMostOnce,
        QoS::AtLeastOnce => Qos::AtLeastOnce,
        QoS::ExactlyOnce => Qos::ExactlyOnce,
    }
}

/// What the rules want to see: each source (a topic filter such as `t/+/x`
/// or `t/#`, or `$events/client_connected` / `$events/client_disconnected`)
/// with the QoS to subscribe with. Publish a new set through the `watch`
/// channel whenever the loaded rules change.
pub type SubscriptionSet = BTreeMap<String, Qos>;

/// One entry of a [`SubscriptionSet`], checked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Source {
    /// A topic filter, valid per MQTT (wildcards only as whole levels, `#`
    /// last).
    Topic(String),
    /// An `$events/...` source.
    Event(EventKind),
}

/// Why a rule source cannot be subscribed to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule source {entry:?} {reason}")]
pub struct SourceError {
    /// The source as the rule wrote it.
    pub entry: String,
    pub reason: String,
}

/// The longest string MQTT can carry (a two-byte length).
const MQTT_MAX_STRING: usize = 65_535;

impl Source {
    pub(crate) fn parse(source: &str) -> Result<Source, SourceError> {
        let error = |reason: &str| SourceError {
            entry: source.to_owned(),
            reason: reason.to_owned(),
        };
        // EMQX 5.9 also accepts the slash spellings (`$events/client/connected`).
        if let Some(kind) = weir_guest_sdk::schema::kind_of_source(source) {
            return Ok(Source::Event(kind));
        }
        if source.starts_with("$events/") {
            let known: Vec<&str> = weir_guest_sdk::schema::event_sources().collect();
            return Err(error(&format!(
                "is not an event weir produces: use one of {}",
                known.join(", ")
            )));
        }
        if source.starts_with("$share/") || source.starts_with("$queue/") {
            return Err(error(
                "is a shared subscription: set the bridge's share_group instead",
            ));
        }
        if source.is_empty() {
            return Err(error("is empty"));
        }
        if source.len() > MQTT_MAX_STRING {
            return Err(error("is longer than MQTT's 65535-byte limit"));
        }
        if source.contains('\0') {
            return Err(error("contains a NUL character"));
        }
        if !rumqttc::valid_filter(source) {
            return Err(error(
                "is not a valid topic filter: `+` and `#` must fill a whole level and `#` must be last",
            ));
        }
        Ok(Source::Topic(source.to_owned()))
    }
}

/// Whether `topic` matches the MQTT topic `filter`. Wildcards at the first
/// level do not match topics starting with `$` (MQTT-4.7.2-1).
pub(crate) fn topic_matches(topic: &str, filter: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut levels = topic.split('/');
    for part in filter.split('/') {
        match (part, levels.next()) {
            // `#` also matches the parent level: `a/#` matches `a`.
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (part, Some(level)) if part == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

/// The checked sources of a [`SubscriptionSet`]; invalid sources are logged
/// and counted, and the rest still apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Sources {
    pub(crate) topics: BTreeMap<String, Qos>,
    /// The `$events/...` kinds some rule reads, with the QoS it asked for.
    pub(crate) events: BTreeMap<EventKind, Qos>,
}

impl Sources {
    pub(crate) fn from_set(set: &SubscriptionSet, counters: &Counters) -> Sources {
        let mut sources = Sources::default();
        for (source, &qos) in set {
            match Source::parse(source) {
                Ok(Source::Topic(filter)) => {
                    sources.topics.insert(filter, qos);
                }
                Ok(Source::Event(kind)) => {
                    sources.events.insert(kind, qos);
                }
                Err(error) => {
                    counters.invalid_sources.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%error, "ignoring a rule source");
                }
            }
        }
        sources
    }

    /// Whether some rule reads events of `kind`.
    pub(crate) fn wants(&self, kind: EventKind) -> bool {
        self.events.contains_key(&kind)
    }

    /// Whether any topic source matches `topic`.
    pub(crate) fn wants_topic(&self, topic: &str) -> bool {
        self.topics
            .keys()
            .any(|filter| topic_matches(topic, filter))
    }
}

/// Where an ingress stands with its broker (bridge) or its sockets
/// (listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Connecting or waiting to reconnect.
    Connecting,
    /// Connected to the broker, or (listener) accepting connections.
    Connected,
    /// Stopped: shut down, or the pipeline went away.
    Disconnected,
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectionState::Connecting => "connecting",
            ConnectionState::Connected => "connected",
            ConnectionState::Disconnected => "disconnected",
        })
    }
}

/// The connection status an admin API shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStatus {
    pub state: ConnectionState,
    /// When `state` was entered.
    pub since: SystemTime,
    /// The last error, with the broker's address and its reason, kept after
    /// recovery so an operator can see why the last disconnect happened.
    pub last_error: Option<String>,
}

impl ConnectionStatus {
    fn new(state: ConnectionState) -> ConnectionStatus {
        ConnectionStatus {
            state,
            since: SystemTime::now(),
            last_error: None,
        }
    }
}

/// Counters of one ingress, updated with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) malformed_presence: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) dropped_qos0: AtomicU64,
    pub(crate) invalid_sources: AtomicU64,
    pub(crate) refused_subscriptions: AtomicU64,
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) clients_connected: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
}

/// A snapshot of an ingress's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngressStats {
    /// MQTT PUBLISH packets received (messages and presence messages).
    pub received: u64,
    /// Presence messages that could not be turned into client events.
    pub malformed_presence: u64,
    /// Bridge: connections to the broker established after the first.
    pub reconnects: u64,
    /// QoS 0 messages dropped because the pipeline already held `qos0_window` of them.
    pub dropped_qos0: u64,
    /// Rule sources that are not valid topic filters or event names.
    pub invalid_sources: u64,
    /// Bridge: subscriptions the broker refused.
    pub refused_subscriptions: u64,
    /// Listener: connections whose CONNECT was accepted.
    pub connections_accepted: u64,
    /// Listener: connections refused (credentials, limits, bad CONNECT).
    pub connections_refused: u64,
    /// Listener: clients connected right now.
    pub clients_connected: u64,
    /// Listener: connections closed for breaking the protocol.
    pub protocol_errors: u64,
    /// Messages by completed outcome (see `crate::ack`).
    pub acks: AckCounts,
}

/// A handle on an ingress's status, for the admin API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StatusHandle {
    connection: watch::Receiver<ConnectionStatus>,
    counters: Arc<Counters>,
    acks: AckStats,
}

impl StatusHandle {
    pub fn connection(&self) -> ConnectionStatus {
        self.connection.borrow().clone()
    }

    /// A receiver that sees every change of the connection status.
    pub fn watch(&self) -> watch::Receiver<ConnectionStatus> {
        self.connection.clone()
    }

    pub fn stats(&self) -> IngressStats {
        let c = &self.counters;
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        IngressStats {
            received: get(&c.received),
            malformed_presence: get(&c.malformed_presence),
            reconnects: get(&c.reconnects),
            dropped_qos0: get(&c.dropped_qos0),
            invalid_sources: get(&c.invalid_sources),
            refused_subscriptions: get(&c.refused_subscriptions),
            connections_accepted: get(&c.connections_accepted),
            connections_refused: get(&c.connections_refused),
            clients_connected: get(&c.clients_connected),
            protocol_errors: get(&c.protocol_errors),
            acks: self.acks.counts(),
        }
    }
}

/// The status side an ingress task writes to.
#[derive(Debug)]
pub(crate) struct StatusWriter {
    connection: watch::Sender<ConnectionStatus>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) acks: AckStats,
}

impl StatusWriter {
    pub(crate) fn new(initial: ConnectionState) -> StatusWriter {
        StatusWriter {
            connection: watch::Sender::new(ConnectionStatus::new(initial)),
            counters: Arc::default(),
            acks: AckStats::default(),
        }
    }

    pub(crate) fn handle(&self) -> StatusHandle {
        StatusHandle {
            connection: self.connection.subscribe(),
            counters: self.counters.clone(),
            acks: self.acks.clone(),
        }
    }

    pub(crate) fn set_state(&self, state: ConnectionState) {
        self.connection.send_if_modified(|status| {
            if status.state == state {
                return false;
            }
            status.state = state;
            status.since = SystemTime::now();
            true
        });
    }

    pub(crate) fn set_error(&self, error: String) {
        self.connection
            .send_modify(|status| status.last_error = Some(error));
    }

    pub(crate) fn count(&self, counter: impl Fn(&Counters) -> &AtomicU64) {
        counter(&self.counters).fetch_add(1, Ordering::Relaxed);
    }
}

/// Makes [`MessageId`]s: microseconds since the epoch in the high 64 bits
/// (ids sort by arrival, like EMQX's), a random per-process salt (distinct
/// weir processes do not collide), and a counter (distinct messages in the
/// same microsecond do not collide).
#[derive(Debug)]
pub(crate) struct MessageIds {
    salt: u32,
    next: AtomicU32,
}

impl MessageIds {
    pub(crate) fn new() -> MessageIds {
        // RandomState is seeded from the OS's randomness.
        let salt = RandomState::new().hash_one(std::process::id()) as u32;
        MessageIds {
            salt,
            next: AtomicU32::new(0),
        }
    }

    pub(crate) fn next(&self) -> MessageId {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or_default();
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        MessageId((u128::from(micros) << 64) | (u128::from(self.salt) << 32) | u128::from(seq))
    }
}

/// Milliseconds since the Unix epoch, the unit of every event time.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_into_filters_and_events() {
        assert_eq!(
            Source::parse("t/+/x/#"),
            Ok(Source::Topic("t/+/x/#".into()))
        );
        assert_eq!(
            Source::parse("$events/client_connected"),
            Ok(Source::Event(EventKind::ClientConnected))
        );
        assert_eq!(
            Source::parse("$events/client/disconnected"),
            Ok(Source::Event(EventKind::ClientDisconnected))
        );
        assert_eq!(
            Source::parse("$events/message_acked"),
            Ok(Source::Event(EventKind::MessageAcked))
        );
        for bad in [
            "",
            "t/#/x",
            "t/a+",
            "$events/message_publish",
            "$share/g/t",
            "a\0b",
        ] {
            let error = Source::parse(bad).expect_err(bad);
            assert_eq!(error.entry, bad);
        }
        assert!(Source::parse(&"a".repeat(MQTT_MAX_STRING)).is_ok());
        assert!(Source::parse(&"a".repeat(MQTT_MAX_STRING + 1)).is_err());
    }

    #[test]
    fn topic_matching_follows_mqtt() {
        assert!(topic_matches("t/a/x", "t/+/x"));
        assert!(topic_matches("t/a/b/c", "t/#"));
        assert!(topic_matches("t", "t/#"));
        assert!(!topic_matches("t/a/y", "t/+/x"));
        assert!(!topic_matches("$SYS/x", "#"));
        assert!(!topic_matches("$SYS/x", "+/x"));
        assert!(!topic_matches("t/a", "t/a/+"));
        assert!(!topic_matches("t/a/b", "t/a"));
        assert!(topic_matches("t//x", "t/+/x"));
        assert!(topic_matches(
            "$SYS/brokers/n1/clients/c1/connected",
            "$SYS/brokers/+/clients/+/connected"
        ));
    }

    #[test]
    fn invalid_sources_are_counted_and_the_rest_apply() {
        let counters = Counters::default();
        let set = SubscriptionSet::from([
            ("a/#".to_owned(), Qos::AtLeastOnce),
            ("bad/#/x".to_owned(), Qos::AtLeastOnce),
            ("$events/client_connected".to_owned(), Qos::ExactlyOnce),
        ]);
        let sources = Sources::from_set(&set, &counters);
        assert_eq!(
            sources.topics,
            BTreeMap::from([("a/#".to_owned(), Qos::AtLeastOnce)])
        );
        assert_eq!(
            sources.events,
            BTreeMap::from([(EventKind::ClientConnected, Qos::ExactlyOnce)])
        );
        assert_eq!(counters.invalid_sources.load(Ordering::Relaxed), 1);
        assert!(sources.wants_topic("a/b"));
        assert!(!sources.wants_topic("b"));
    }

    #[test]
    fn message_ids_are_unique_and_ordered() {
        let ids = MessageIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert!(a.0 >> 64 <= b.0 >> 64);
        assert_eq!(a.to_string().len(), 32);
    }
}
