//! Every kind of event weir can produce, in one table: EMQX's `event` name,
//! the `$events/` source a rule selects it with, and its columns in the
//! order EMQX 5's rule engine documents them for `SELECT *`.
//!
//! This is the single owner of "which event has which column": the host's
//! encoder, router and rule compiler, the rule runtime's decoder and the
//! documentation (checked by a test in the host) all derive from it, so a
//! column cannot exist in one place and be missing in another. The table
//! lives in the guest SDK because both sides of the ABI need it.

use crate::abi::{FieldId, Kind, field, field_id};

/// One kind of event and its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSchema {
    pub kind: Kind,
    /// The value of the `event` column: `message.publish`, ...
    pub event: &'static str,
    /// The rule source that selects this kind (`$events/client_connack`);
    /// `None` for `message.publish`, which topic filters select.
    pub source: Option<&'static str>,
    /// Other spellings of the source EMQX accepts (5.9's slash form).
    pub aliases: &'static [&'static str],
    /// Column names in EMQX's `SELECT *` order. `event` is not an ABI
    /// field (it is the kind); `flags` is two (`flags.dup`, `flags.retain`).
    pub columns: &'static [&'static str],
}

/// Every event kind, indexed by its ABI kind number.
pub const EVENTS: [EventSchema; Kind::COUNT] = [
    EventSchema {
        kind: Kind::MessagePublish,
        event: "message.publish",
        source: None,
        aliases: &[],
        columns: &[
            "event",
            "id",
            "clientid",
            "username",
            "payload",
            "peerhost",
            "topic",
            "qos",
            "flags",
            "publish_received_at",
            "pub_props",
            "timestamp",
            "node",
        ],
    },
    EventSchema {
        kind: Kind::ClientConnected,
        event: "client.connected",
        source: Some("$events/client_connected"),
        aliases: &["$events/client/connected"],
        columns: &[
            "event",
            "clientid",
            "username",
            "peername",
            "sockname",
            "proto_name",
            "proto_ver",
            "keepalive",
            "clean_start",
            "expiry_interval",
            "connected_at",
            "timestamp",
            "node",
        ],
    },
    EventSchema {
        kind: Kind::ClientDisconnected,
        event: "client.disconnected",
        source: Some("$events/client_disconnected"),
        aliases: &["$events/client/disconnected"],
        columns: &[
            "event",
            "reason",
            "clientid",
            "username",
            "peername",
            "sockname",
            "proto_name",
            "proto_ver",
            "disconnected_at",
            "timestamp",
            "node",
        ],
    },
    EventSchema {
        kind: Kind::ClientConnack,
        event: "client.connack",
        source: Some("$events/client_connack"),
        aliases: &["$events/client/connack"],
        columns: &[
            "event",
            "reason_code",
            "clientid",
            "username",
            "peername",
            "sockname",
            "proto_name",
            "proto_ver",
            "keepalive",
            "clean_start",
            "expiry_interval",
            "timestamp",
            "node",
        ],
    },
    EventSchema {
        kind: Kind::SessionSubscribed,
        event: "session.subscribed",
        source: Some("$events/session_subscribed"),
        aliases: &["$events/session/subscribed"],
        columns: &[
            "event",
            "clientid",
            "username",
            "peerhost",
            "peername",
            "topic",
            "qos",
            "sub_props",
            "timestamp",
            "node",
        ],
    },
    EventSchema {
        kind: Kind::SessionUnsubscribed,
        event: "session.unsubscribed",
        source: Some("$events/session_unsubscribed"),
        aliases: &["$events/session/unsubscribed"],
        columns: &[
            "event",
            "clientid",
            "username",
            "peerhost",
            "peername",
            "topic",
            "qos",
            "unsub_props",
            "timestamp",
            "node",
        ],
    },
    EventSchema {
        kind: Kind::MessageDelivered,
        event: "message.delivered",
        source: Some("$events/message_delivered"),
        aliases: &["$events/message/delivered"],
        columns: &[
            "event",
            "id",
            "from_clientid",
            "from_username",
            "clientid",
            "username",
            "payload",
            "peerhost",
            "peername",
            "topic",
            "qos",
            "flags",
            "publish_received_at",
            "pub_props",
            "timestamp",
            "node",
        ],
    },
    EventSchema {
        kind: Kind::MessageAcked,
        event: "message.acked",
        source: Some("$events/message_acked"),
        aliases: &["$events/message/acked"],
        columns: &[
            "event",
            "id",
            "from_clientid",
            "from_username",
            "clientid",
            "username",
            "payload",
            "peerhost",
            "peername",
            "topic",
            "qos",
            "flags",
            "publish_received_at",
            "pub_props",
            "puback_props",
            "timestamp",
            "node",
        ],
    },
    EventSchema {
        kind: Kind::MessageDropped,
        event: "message.dropped",
        source: Some("$events/message_dropped"),
        aliases: &["$events/message/dropped"],
        columns: &[
            "event",
            "id",
            "reason",
            "clientid",
            "username",
            "payload",
            "peerhost",
            "topic",
            "qos",
            "flags",
            "publish_received_at",
            "pub_props",
            "timestamp",
            "node",
        ],
    },
    EventSchema {
        kind: Kind::DeliveryDropped,
        event: "delivery.dropped",
        source: Some("$events/delivery_dropped"),
        aliases: &["$events/delivery/dropped"],
        columns: &[
            "event",
            "id",
            "reason",
            "from_clientid",
            "from_username",
            "clientid",
            "username",
            "payload",
            "peerhost",
            "peername",
            "topic",
            "qos",
            "flags",
            "publish_received_at",
            "pub_props",
            "timestamp",
            "node",
        ],
    },
];

/// The schema of `kind`.
pub fn schema(kind: Kind) -> &'static EventSchema {
    &EVENTS[kind as usize]
}

/// The kind a `$events/...` rule source (or one of its aliases) selects.
pub fn kind_of_source(source: &str) -> Option<Kind> {
    EVENTS
        .iter()
        .find(|s| s.source == Some(source) || s.aliases.contains(&source))
        .map(|s| s.kind)
}

/// The kind whose `event` name is `name` (`message.delivered`, ...).
pub fn kind_of_event(name: &str) -> Option<Kind> {
    EVENTS.iter().find(|s| s.event == name).map(|s| s.kind)
}

/// Every `$events/...` source, in kind order.
pub fn event_sources() -> impl Iterator<Item = &'static str> {
    EVENTS.iter().filter_map(|s| s.source)
}

impl EventSchema {
    /// Whether the kind has column `name`.
    pub fn has(&self, name: &str) -> bool {
        self.columns.contains(&name)
    }

    /// The ABI field ids that carry the kind's columns.
    pub fn fields(&self) -> impl Iterator<Item = FieldId> + '_ {
        self.columns.iter().flat_map(|c| {
            let ids: [Option<FieldId>; 2] = match *c {
                "event" => [None, None],
                "flags" => [Some(field::FLAGS_DUP), Some(field::FLAGS_RETAIN)],
                other => [field_id(other), None],
            };
            ids.into_iter().flatten()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::FIELD_NAMES;

    #[test]
    fn the_table_is_indexed_by_kind_number() {
        for (i, s) in EVENTS.iter().enumerate() {
            assert_eq!(s.kind as usize, i, "{}", s.event);
            assert_eq!(s.kind.name(), s.event);
            assert_eq!(s.kind.source(), s.source);
        }
    }

    #[test]
    fn every_column_is_an_abi_field_and_every_field_has_an_event() {
        for s in &EVENTS {
            assert_eq!(s.columns.first(), Some(&"event"), "{}", s.event);
            assert!(s.has("timestamp") && s.has("node"), "{}", s.event);
            for c in s.columns {
                assert!(
                    matches!(*c, "event" | "flags") || field_id(c).is_some(),
                    "{}: column {c} has no field id",
                    s.event
                );
            }
            let mut seen = std::collections::BTreeSet::new();
            assert!(s.columns.iter().all(|c| seen.insert(c)), "{}", s.event);
        }
        for (id, name) in FIELD_NAMES.iter().enumerate().skip(1) {
            let id = FieldId::try_from(id).expect("small");
            assert!(
                EVENTS.iter().any(|s| s.fields().any(|f| f == id)),
                "field {name} belongs to no event"
            );
        }
    }

    #[test]
    fn sources_and_names_resolve_both_ways() {
        assert_eq!(
            kind_of_source("$events/message_delivered"),
            Some(Kind::MessageDelivered)
        );
        assert_eq!(
            kind_of_source("$events/client/connected"),
            Some(Kind::ClientConnected)
        );
        assert_eq!(kind_of_source("t/#"), None);
        assert_eq!(
            kind_of_event("delivery.dropped"),
            Some(Kind::DeliveryDropped)
        );
        assert_eq!(event_sources().count(), Kind::COUNT - 1);
    }
}
