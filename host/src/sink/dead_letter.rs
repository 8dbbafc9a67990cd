//! Dead letters: the one place a dead-letter record is made.
//!
//! Three stages can give up on something: the rules (a poison event, an
//! event a tripped or unavailable plugin refused), render (an output that
//! cannot become a record) and the sink itself (a stream that does not
//! exist, a record the server refuses or that exceeds the record limit).
//! They all report a [`Rejection`] as data; [`record`] (or [`stamp`], for a
//! record that already exists) turns it into the record that goes to the
//! dead-letter stream, so every dead letter has the same shape:
//!
//! - the payload is what was meant to be stored: the record as it was (its
//!   key, flag and bytes), or, for an event no rule could handle, the event
//!   as an HRecord (the JSON object `weir rule test` shows), keyed by the
//!   message's topic or the client id;
//! - the header's attributes say why (see the `ATTR_*` names and
//!   docs/admin.md, "Dead letters").
//!
//! The sink picks the dead-letter stream (a plugin's own, else
//! `sink.dead_letter_stream`) and resolves the record's ack share
//! *dead-lettered* once it is appended there; what the dead-letter stream
//! cannot take goes to the quarantine file (`quarantine`).

use bytes::Bytes;
use std::sync::Arc;
use weir_proto::pb::HStreamRecord;
use weir_proto::record::{hrecord_from_json_text, raw_record};

/// Where the record was going (absent for an event no rule handled).
pub(crate) const ATTR_STREAM: &str = "weir.dead_letter.stream";
/// Why it is a dead letter, in words.
pub(crate) const ATTR_REASON: &str = "weir.dead_letter.reason";
/// Why, as a stable name: `trap`, `deadline`, `out_of_memory`,
/// `bad_output`, `tripped`, `unavailable`, `batch_deadline` (rules), `not_json`,
/// `not_an_hrecord` (render), `stream_missing`, `refused`, `oversize`,
/// `no_shard` (sink).
pub(crate) const ATTR_KIND: &str = "weir.dead_letter.kind";
/// The stage that gave up: `rules`, `render` or `sink`.
pub(crate) const ATTR_STAGE: &str = "weir.dead_letter.stage";
/// The plugin (rules and render) and its load version.
pub(crate) const ATTR_PLUGIN: &str = "weir.dead_letter.plugin";
pub(crate) const ATTR_VERSION: &str = "weir.dead_letter.version";
/// When the rejection was made, RFC 3339 with milliseconds (UTC).
pub(crate) const ATTR_TIME: &str = "weir.dead_letter.time";

/// The stage that gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Rules,
    Render,
    Sink,
}

impl Stage {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Stage::Rules => "rules",
            Stage::Render => "render",
            Stage::Sink => "sink",
        }
    }
}

/// Why something could not be stored, as the stage that gave up reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) stage: Stage,
    /// A stable name (see [`ATTR_KIND`]).
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    /// The stream the record was meant for, when there was one.
    pub(crate) stream: Option<Arc<str>>,
    /// The plugin and its load version, for the rules and render stages.
    pub(crate) plugin: Option<(Arc<str>, u64)>,
    /// A plugin's own dead-letter stream, used instead of the sink's.
    pub(crate) dead_letter_stream: Option<Arc<str>>,
}

/// What was rejected, before it is a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// An event no rule could handle, as the JSON text of an object.
    Event { key: String, json: String },
    /// An output that could not be rendered: its bytes as they were.
    Output { key: String, bytes: Bytes },
}

/// The dead-letter record for a rejection made before a record existed.
pub(crate) fn record(rejected: Rejected, rejection: &Rejection) -> HStreamRecord {
    let mut record = match rejected {
        Rejected::Event { key, json } => hrecord_from_json_text(&key, json.as_bytes())
            // An event's JSON is always an object; should that ever break,
            // the text is still kept, as RAW.
            .unwrap_or_else(|_| raw_record(key, json)),
        Rejected::Output { key, bytes } => raw_record(key, bytes),
    };
    stamp(&mut record, rejection);
    record
}

/// Turns `record` into a dead letter: the same key, flag and payload, with
/// the rejection in its attributes.
pub(crate) fn stamp(record: &mut HStreamRecord, rejection: &Rejection) {
    let header = record.header.get_or_insert_with(Default::default);
    let attributes = &mut header.attributes;
    attributes.insert(ATTR_REASON.into(), rejection.message.clone());
    attributes.insert(ATTR_KIND.into(), rejection.kind.into());
    attributes.insert(ATTR_STAGE.into(), rejection.stage.name().into());
    attributes.insert(
        ATTR_TIME.into(),
        humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
    );
    if let Some(stream) = &rejection.stream {
        attributes.insert(ATTR_STREAM.into(), stream.to_string());
    }
    if let Some((plugin, version)) = &rejection.plugin {
        attributes.insert(ATTR_PLUGIN.into(), plugin.to_string());
        attributes.insert(ATTR_VERSION.into(), version.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_proto::pb::h_stream_record_header::Flag;
    use weir_proto::record::{decode_hrecord, flag_of, key_of};

    fn rejection(stage: Stage, kind: &'static str) -> Rejection {
        Rejection {
            stage,
            kind,
            message: "it broke".into(),
            stream: Some("s".into()),
            plugin: Some(("p".into(), 3)),
            dead_letter_stream: None,
        }
    }

    #[test]
    fn an_event_becomes_an_hrecord_with_the_rejection_in_its_attributes() {
        let record = record(
            Rejected::Event {
                key: "t/1".into(),
                json: r#"{"topic":"t/1","payload":"x"}"#.into(),
            },
            &rejection(Stage::Rules, "trap"),
        );
        assert_eq!(flag_of(&record), Flag::Json);
        assert_eq!(key_of(&record), "t/1");
        assert_eq!(
            decode_hrecord(&record.payload).expect("a Struct")["topic"],
            "t/1"
        );
        let attributes = &record.header.as_ref().expect("header").attributes;
        for (name, value) in [
            (ATTR_KIND, "trap"),
            (ATTR_STAGE, "rules"),
            (ATTR_REASON, "it broke"),
            (ATTR_STREAM, "s"),
            (ATTR_PLUGIN, "p"),
            (ATTR_VERSION, "3"),
        ] {
            assert_eq!(attributes.get(name).map(String::as_str), Some(value));
        }
        assert!(attributes.contains_key(ATTR_TIME));
    }

    #[test]
    fn an_unrenderable_output_keeps_its_bytes() {
        let record = record(
            Rejected::Output {
                key: "k".into(),
                bytes: Bytes::from_static(b"{oops"),
            },
            &rejection(Stage::Render, "not_json"),
        );
        assert_eq!(flag_of(&record), Flag::Raw);
        assert_eq!(&record.payload[..], b"{oops");
    }

    #[test]
    fn stamping_a_refused_record_keeps_key_flag_payload_and_attributes() {
        let mut record = raw_record("k", &b"bytes"[..]);
        if let Some(header) = record.header.as_mut() {
            header.attributes.insert("mine".into(), "kept".into());
        }
        stamp(&mut record, &rejection(Stage::Sink, "refused"));
        let attributes = &record.header.as_ref().expect("header").attributes;
        assert_eq!(attributes.get("mine").map(String::as_str), Some("kept"));
        assert_eq!(
            attributes.get(ATTR_KIND).map(String::as_str),
            Some("refused")
        );
        assert_eq!((key_of(&record), &record.payload[..]), ("k", &b"bytes"[..]));
    }
}
