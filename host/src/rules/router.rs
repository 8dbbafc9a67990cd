//! Which plugins see an event: an index of the loaded plugins' sources
//! (`weir_guest_sdk::topic::Source`, parsed and checked where a manifest or
//! rule file is read).
//!
//! Filters are stored in a trie keyed by topic level, with separate edges
//! for `+` and `#`, so matching a topic costs one walk over its levels (plus
//! the `+` branches that exist), independent of how many plugins are loaded:
//! no linear scan of filters or regexes. Other events are not topics: each
//! `$events/...` source (from `weir_guest_sdk::schema`) maps to a plain list. MQTT's rule that `+` and `#` at
//! the first level do not match topics beginning with `$` is kept.

use crate::event::{Event, EventKind};
use std::collections::BTreeMap;
use weir_guest_sdk::topic::Source;

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
    pub(super) fn insert(&mut self, source: &Source, id: usize) {
        match source {
            Source::Event(kind) => self.events[*kind as usize].push(id),
            Source::Topic(filter) => {
                let mut node = &mut self.root;
                for level in filter.as_str().split('/') {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn index(filters: &[&str]) -> TopicIndex {
        let mut index = TopicIndex::default();
        for (id, f) in filters.iter().enumerate() {
            index.insert(&Source::parse(f).expect("valid filter"), id);
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

    /// The index is a faster way to ask `weir_guest_sdk::topic::matches` of
    /// many filters at once; it must give the same answers.
    #[test]
    fn the_index_agrees_with_the_one_matcher() {
        let filters = [
            "#", "+", "t/#", "t/+", "t/+/x", "a/b", "+/+", "t/1/#", "$SYS/#", "+/x", "t//x",
            "t/+/+", "$SYS/+/b",
        ];
        let topics = [
            "t", "t/1", "t/1/x", "a/b", "a/b/c", "t//x", "$SYS/x", "$SYS/a/b", "a/x", "/", "",
        ];
        for filter in filters {
            let idx = index(&[filter]);
            for topic in topics {
                assert_eq!(
                    !matched(&idx, topic).is_empty(),
                    weir_guest_sdk::topic::matches(topic, filter),
                    "{topic:?} against {filter:?}"
                );
            }
        }
    }
}
