//! Which plugins see an event: an index of MQTT topic filters.
//!
//! Filters are stored in a trie keyed by topic level, with separate edges
//! for `+` and `#`, so matching a topic costs one walk over its levels (plus
//! the `+` branches that exist), independent of how many plugins are loaded:
//! no linear scan of filters or regexes. Other events are not topics: each
//! `$events/...` source (from `weir_guest_sdk::schema`) maps to a plain list. MQTT's rule that `+` and `#` at
//! the first level do not match topics beginning with `$` is kept.

use crate::event::{Event, EventKind};
use std::collections::{BTreeMap, BTreeSet};
use weir_guest_sdk::schema;

/// A parsed plugin source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Filter {
    /// An MQTT topic filter, as written.
    Topic(String),
    /// An `$events/...` source: every event of that kind.
    Event(EventKind),
}

impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Filter::Topic(topic) => topic,
            Filter::Event(kind) => kind.source().unwrap_or_default(),
        })
    }
}

/// Checks a source string: an MQTT topic filter (`+` a whole level, `#`
/// only as the last level) or one of the `$events/` names.
pub(super) fn parse_filter(source: &str) -> Result<Filter, String> {
    if let Some(kind) = schema::kind_of_source(source) {
        return Ok(Filter::Event(kind));
    }
    if source.starts_with("$events/") {
        let known: Vec<&str> = schema::event_sources().collect();
        return Err(format!(
            "unknown event source `{source}`; known: {}",
            known.join(", ")
        ));
    }
    if source.is_empty() {
        return Err("a topic filter cannot be empty".into());
    }
    if source.len() > 65535 {
        return Err("a topic filter is at most 65535 bytes".into());
    }
    if source.contains('\0') {
        return Err(format!("topic filter `{source}` contains a NUL character"));
    }
    let levels: Vec<&str> = source.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!(
                "in `{source}`, `#` must be a whole level and the last one"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("in `{source}`, `+` must be a whole level"));
        }
    }
    Ok(Filter::Topic(source.to_owned()))
}

#[derive(Debug, Default)]
struct Node {
    /// Ordered map: for the few children a level usually has, comparing
    /// strings beats hashing them.
    children: BTreeMap<Box<str>, Node>,
    plus: Option<Box<Node>>,
    /// Plugins whose filter ends with `#` here (matches this level and below).
    hash: Vec<usize>,
    /// Plugins whose filter ends exactly here.
    exact: Vec<usize>,
}

/// The filters of every loaded plugin, by plugin index.
#[derive(Debug, Default)]
pub(super) struct TopicIndex {
    root: Node,
    /// Plugins by the kind of their `$events/...` sources.
    events: [Vec<usize>; EventKind::COUNT],
}

impl TopicIndex {
    /// Adds `filter` for plugin `id`.
    pub(super) fn insert(&mut self, filter: &Filter, id: usize) {
        match filter {
            Filter::Event(kind) => self.events[*kind as usize].push(id),
            Filter::Topic(topic) => {
                let mut node = &mut self.root;
                for level in topic.split('/') {
                    node = match level {
                        "#" => {
                            node.hash.push(id);
                            return;
                        }
                        "+" => node.plus.get_or_insert_with(Box::default),
                        _ => node.children.entry(level.into()).or_default(),
                    };
                }
                node.exact.push(id);
            }
        }
    }

    /// Calls `found` with every plugin whose sources match `event` (a plugin
    /// with several matching filters may be reported more than once).
    pub(super) fn matches(&self, event: &Event, found: &mut impl FnMut(usize)) {
        match event.kind() {
            EventKind::MessagePublish => self.matches_topic(event.source(), found),
            kind => self.events[kind as usize].iter().for_each(|id| found(*id)),
        }
    }

    /// Calls `found` with every plugin whose topic filters match `topic`.
    pub(super) fn matches_topic(&self, topic: &str, found: &mut impl FnMut(usize)) {
        let dollar = topic.starts_with('$');
        walk(&self.root, topic, true, dollar, found);
    }
}

fn walk(node: &Node, rest: &str, first: bool, dollar: bool, found: &mut impl FnMut(usize)) {
    let wildcards = !(first && dollar);
    if wildcards {
        // `a/#` matches `a` itself and everything below it.
        node.hash.iter().for_each(|id| found(*id));
    }
    let (level, tail) = match rest.split_once('/') {
        Some((level, tail)) => (level, Some(tail)),
        None => (rest, None),
    };
    if let Some(child) = node.children.get(level) {
        descend(child, tail, dollar, found);
    }
    if wildcards && let Some(plus) = &node.plus {
        descend(plus, tail, dollar, found);
    }
}

fn descend(node: &Node, tail: Option<&str>, dollar: bool, found: &mut impl FnMut(usize)) {
    match tail {
        Some(tail) => walk(node, tail, false, dollar, found),
        None => {
            node.exact.iter().for_each(|id| found(*id));
            node.hash.iter().for_each(|id| found(*id));
        }
    }
}

/// What weir must subscribe to for the loaded plugins: the union of their
/// topic filters with the highest QoS any plugin asks for, and the kinds of
/// the `$events/...` sources any plugin reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscriptions {
    pub topics: BTreeMap<String, u8>,
    pub events: BTreeSet<EventKind>,
}

impl Subscriptions {
    pub(crate) fn add(&mut self, filter: &Filter, qos: u8) {
        match filter {
            Filter::Topic(t) => {
                let q = self.topics.entry(t.clone()).or_insert(qos);
                *q = (*q).max(qos);
            }
            Filter::Event(kind) => {
                self.events.insert(*kind);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(filters: &[&str]) -> TopicIndex {
        let mut index = TopicIndex::default();
        for (id, f) in filters.iter().enumerate() {
            index.insert(&parse_filter(f).expect("valid filter"), id);
        }
        index
    }

    fn matched(index: &TopicIndex, topic: &str) -> Vec<usize> {
        let mut ids = Vec::new();
        index.matches_topic(topic, &mut |id| ids.push(id));
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    #[test]
    fn wildcards_follow_mqtt() {
        let idx = index(&["t/#", "t/+", "t/+/x", "#", "a/b", "+/+", "t/1/#"]);
        assert_eq!(matched(&idx, "t"), vec![0, 3]);
        assert_eq!(matched(&idx, "t/1"), vec![0, 1, 3, 5, 6]);
        assert_eq!(matched(&idx, "t/1/x"), vec![0, 2, 3, 6]);
        assert_eq!(matched(&idx, "a/b"), vec![3, 4, 5]);
        assert_eq!(matched(&idx, "a/b/c"), vec![3]);
        assert_eq!(matched(&idx, "t//x"), vec![0, 2, 3]);
    }

    #[test]
    fn dollar_topics_need_an_explicit_first_level() {
        let idx = index(&["#", "+/x", "$SYS/#"]);
        assert_eq!(matched(&idx, "$SYS/x"), vec![2]);
        assert_eq!(matched(&idx, "a/x"), vec![0, 1]);
    }

    #[test]
    fn bad_filters_are_rejected() {
        for bad in ["a/#/b", "a#", "a/b+", "", "$events/nope"] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_event_source_of_the_schema_is_a_filter() {
        for kind in EventKind::ALL.into_iter().skip(1) {
            let source = kind.source().expect("a source");
            assert_eq!(parse_filter(source), Ok(Filter::Event(kind)));
            assert_eq!(Filter::Event(kind).to_string(), source);
        }
        let err = parse_filter("$events/message_publish").expect_err("not a source");
        assert!(err.contains("$events/message_delivered"), "{err}");
    }

    #[test]
    fn subscriptions_keep_the_highest_qos() {
        let mut subs = Subscriptions::default();
        subs.add(&parse_filter("t/#").expect("valid"), 0);
        subs.add(&parse_filter("t/#").expect("valid"), 2);
        subs.add(&parse_filter("$events/client_connected").expect("valid"), 1);
        assert_eq!(subs.topics.get("t/#"), Some(&2));
        assert_eq!(subs.events, BTreeSet::from([EventKind::ClientConnected]));
    }
}
