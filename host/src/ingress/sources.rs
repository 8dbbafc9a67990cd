//! The rules' sources as ingress reads them: the `SubscriptionSet` a rule
//! stage publishes, each entry checked into a topic filter or an `$events/`
//! kind, and MQTT topic matching.

use super::Qos;
use super::status::Counters;
use crate::event::EventKind;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

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
pub(crate) struct SourceError {
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
}
