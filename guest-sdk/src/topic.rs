//! Topic filters and rule sources, in one place: what a rule may name in
//! `sources` (or `FROM`), how it is checked, and how a topic is matched
//! against a filter.
//!
//! The host's rule loader, its router, both ingress modes and the rule
//! runtime's `=~` operator all use this module, so a source the rules accept
//! is one ingress can subscribe to, and a topic matches a filter the same
//! way everywhere. It lives here, not in the host, because the rule runtime
//! (compiled to wasm32) needs the matcher too and depends on nothing in the
//! host.

use crate::abi::Kind;
use crate::schema;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The longest string MQTT can carry (a two-byte length).
pub const MAX_FILTER_LEN: usize = 65_535;

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

/// A checked MQTT topic filter: not empty, at most 65535 bytes, no NUL,
/// `+` and `#` only as whole levels and `#` only last.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(Box<str>);

/// Why a topic filter or a rule source was refused, in the terms of the
/// file that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceError {
    Empty,
    TooLong { len: usize },
    Nul { filter: String },
    HashNotLast { filter: String },
    PlusNotWhole { filter: String },
    UnknownEvent { source: String },
    Shared { source: String },
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Empty => f.write_str("a topic filter cannot be empty"),
            SourceError::TooLong { len } => write!(
                f,
                "a topic filter is at most {MAX_FILTER_LEN} bytes (MQTT's limit), this one is {len}"
            ),
            SourceError::Nul { filter } => {
                write!(f, "topic filter `{filter}` contains a NUL character")
            }
            SourceError::HashNotLast { filter } => {
                write!(
                    f,
                    "in `{filter}`, `#` must be a whole level and the last one"
                )
            }
            SourceError::PlusNotWhole { filter } => {
                write!(f, "in `{filter}`, `+` must be a whole level")
            }
            SourceError::UnknownEvent { source } => {
                let known: Vec<&str> = schema::event_sources().collect();
                write!(
                    f,
                    "unknown event source `{source}`; known: {}",
                    known.join(", ")
                )
            }
            SourceError::Shared { source } => write!(
                f,
                "`{source}` is a shared subscription, which a rule cannot name: \
                 subscribe to the topic itself and set `mqtt.bridge.share_group` to share it"
            ),
        }
    }
}

impl std::error::Error for SourceError {}

impl TopicFilter {
    /// Checks `filter` as MQTT says a SUBSCRIBE's filter must be. Shared
    /// subscriptions (`$share/...`) pass: to MQTT they are filters.
    pub fn parse(filter: &str) -> Result<TopicFilter, SourceError> {
        if filter.is_empty() {
            return Err(SourceError::Empty);
        }
        if filter.len() > MAX_FILTER_LEN {
            return Err(SourceError::TooLong { len: filter.len() });
        }
        if filter.contains('\0') {
            return Err(SourceError::Nul {
                filter: filter.to_owned(),
            });
        }
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            let last = levels.peek().is_none();
            if level.contains('#') && (level != "#" || !last) {
                return Err(SourceError::HashNotLast {
                    filter: filter.to_owned(),
                });
            }
            if level.contains('+') && level != "+" {
                return Err(SourceError::PlusNotWhole {
                    filter: filter.to_owned(),
                });
            }
        }
        Ok(TopicFilter(filter.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `topic` matches this filter.
    pub fn matches(&self, topic: &str) -> bool {
        matches(topic, &self.0)
    }
}

/// Lets a map keyed by filters be asked with the filter's text.
impl std::borrow::Borrow<str> for TopicFilter {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `topic` matches the MQTT topic filter `filter`: `+` is one level,
/// `#` (last) the level it stands at and every level below, and wildcards at
/// the first level do not match topics starting with `$` (MQTT-4.7.2-1). A
/// filter with `#` before its last level matches nothing.
pub fn matches(topic: &str, filter: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    let mut filter_levels = filter.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return filter_levels.next().is_none(),
            (Some("+"), Some(_)) => {}
            (Some(wanted), Some(level)) if wanted == level => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// What a rule reads: an MQTT topic filter, or every event of one
/// `$events/...` kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Topic(TopicFilter),
    Event(Kind),
}

impl Source {
    /// Checks a rule's source: one of the `$events/` sources of
    /// [`schema`] (or an alias, as EMQX 5.9 spells them), or a topic filter
    /// ingress can subscribe to. Shared subscriptions are refused: sharing is
    /// the bridge's `share_group`, not a rule's.
    pub fn parse(source: &str) -> Result<Source, SourceError> {
        if let Some(kind) = schema::kind_of_source(source) {
            return Ok(Source::Event(kind));
        }
        if source.starts_with("$events/") {
            return Err(SourceError::UnknownEvent {
                source: source.to_owned(),
            });
        }
        if source.starts_with("$share/") || source.starts_with("$queue/") {
            return Err(SourceError::Shared {
                source: source.to_owned(),
            });
        }
        TopicFilter::parse(source).map(Source::Topic)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Topic(filter) => f.write_str(filter.as_str()),
            Source::Event(kind) => f.write_str(kind.source().unwrap_or_default()),
        }
    }
}

/// The union of the loaded rules' sources: each topic filter with the
/// highest QoS any rule asks for, and the `$events/` kinds some rule reads.
/// The rule stage publishes it; ingress subscribes to it as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    pub topics: BTreeMap<TopicFilter, Qos>,
    pub events: BTreeSet<Kind>,
}

impl Sources {
    /// Adds `source`, keeping the highest QoS asked for a topic filter.
    pub fn add(&mut self, source: &Source, qos: Qos) {
        match source {
            Source::Topic(filter) => {
                let entry = self.topics.entry(filter.clone()).or_insert(qos);
                *entry = (*entry).max(qos);
            }
            Source::Event(kind) => {
                self.events.insert(*kind);
            }
        }
    }

    /// Whether some rule reads events of `kind`.
    pub fn wants(&self, kind: Kind) -> bool {
        self.events.contains(&kind)
    }

    /// Whether any topic source matches `topic`.
    pub fn wants_topic(&self, topic: &str) -> bool {
        self.topics.keys().any(|filter| filter.matches(topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_into_filters_and_events() {
        let topic = |s: &str| Source::Topic(TopicFilter(s.into()));
        assert_eq!(Source::parse("t/+/x/#"), Ok(topic("t/+/x/#")));
        assert_eq!(Source::parse("$SYS/#"), Ok(topic("$SYS/#")));
        assert_eq!(
            Source::parse("$events/client_connected"),
            Ok(Source::Event(Kind::ClientConnected))
        );
        assert_eq!(
            Source::parse("$events/client/disconnected"),
            Ok(Source::Event(Kind::ClientDisconnected))
        );
        assert!(Source::parse(&"a".repeat(MAX_FILTER_LEN)).is_ok());
        for (bad, error) in [
            ("", SourceError::Empty),
            (
                "t/#/x",
                SourceError::HashNotLast {
                    filter: "t/#/x".into(),
                },
            ),
            (
                "t/a+",
                SourceError::PlusNotWhole {
                    filter: "t/a+".into(),
                },
            ),
            (
                "a\0b",
                SourceError::Nul {
                    filter: "a\0b".into(),
                },
            ),
            (
                "$events/message_publish",
                SourceError::UnknownEvent {
                    source: "$events/message_publish".into(),
                },
            ),
            (
                "$share/g/t",
                SourceError::Shared {
                    source: "$share/g/t".into(),
                },
            ),
            (
                "$queue/t",
                SourceError::Shared {
                    source: "$queue/t".into(),
                },
            ),
        ] {
            assert_eq!(Source::parse(bad), Err(error), "{bad:?}");
        }
        assert_eq!(
            Source::parse(&"a".repeat(MAX_FILTER_LEN + 1)),
            Err(SourceError::TooLong {
                len: MAX_FILTER_LEN + 1
            })
        );
    }

    #[test]
    fn shared_subscriptions_are_filters_but_not_rule_sources() {
        assert!(TopicFilter::parse("$share/g/t/#").is_ok());
        let message = Source::parse("$share/g/t").expect_err("shared").to_string();
        assert!(message.contains("share_group"), "{message}");
    }

    #[test]
    fn every_event_source_of_the_schema_parses_and_prints_back() {
        for kind in Kind::ALL.into_iter().skip(1) {
            let source = kind.source().expect("a source");
            assert_eq!(Source::parse(source), Ok(Source::Event(kind)));
            assert_eq!(Source::Event(kind).to_string(), source);
        }
        let message = Source::parse("$events/nope")
            .expect_err("unknown")
            .to_string();
        assert!(message.contains("$events/message_delivered"), "{message}");
    }

    #[test]
    fn topic_matching_follows_mqtt() {
        for (topic, filter, want) in [
            ("t/a/x", "t/+/x", true),
            ("t/a/b/c", "t/#", true),
            ("t", "t/#", true),
            ("t/a/y", "t/+/x", false),
            ("$SYS/x", "#", false),
            ("$SYS/x", "+/x", false),
            ("$SYS/x", "$SYS/#", true),
            ("t/a", "t/a/+", false),
            ("t/a/b", "t/a", false),
            ("t//x", "t/+/x", true),
            ("a/b", "a/#/b", false),
            (
                "$SYS/brokers/n1/clients/c1/connected",
                "$SYS/brokers/+/clients/+/connected",
                true,
            ),
        ] {
            assert_eq!(matches(topic, filter), want, "{topic} {filter}");
        }
    }

    #[test]
    fn sources_keep_the_highest_qos_and_answer_what_they_want() {
        let mut sources = Sources::default();
        let parse = |s: &str| Source::parse(s).expect("valid");
        sources.add(&parse("t/#"), Qos::AtMostOnce);
        sources.add(&parse("t/#"), Qos::ExactlyOnce);
        sources.add(&parse("$events/client_connected"), Qos::AtLeastOnce);
        assert_eq!(
            sources.topics.get(&TopicFilter("t/#".into())),
            Some(&Qos::ExactlyOnce)
        );
        assert!(sources.wants(Kind::ClientConnected));
        assert!(!sources.wants(Kind::ClientDisconnected));
        assert!(sources.wants_topic("t/1"));
        assert!(!sources.wants_topic("u"));
    }
}
