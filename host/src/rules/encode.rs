//! Turning `Event`s into ABI v1 batch frames, and into EMQX-style JSON.
//!
//! The encoder sends a plugin only what it declared in its `weir.fields`
//! section: the listed fields, and the values at the listed payload paths,
//! extracted here on the host. A payload is parsed at most once per batch,
//! however many plugins ask for paths in it (`PayloadCache`).

use crate::event::{Event, MessageDelivery, MessagePublish};
use serde_json::Map;
use std::cell::OnceCell;
use weir_guest_sdk::abi::{
    self, BatchReader, BatchWriter, EventWriter, FieldsSpec, Kind, PathSeg, field,
};

/// What a plugin reads of an event, resolved from its `weir.fields`.
#[derive(Debug, Clone)]
pub(super) struct Selection {
    mask: [bool; field::COUNT],
    paths: Vec<Vec<PathSeg>>,
}

impl Selection {
    /// Everything, and no paths (a module without the section).
    pub(super) fn all() -> Self {
        Selection {
            mask: [true; field::COUNT],
            paths: Vec::new(),
        }
    }

    /// The selection a checked spec describes (an empty field list means all
    /// fields).
    pub(super) fn from_spec(spec: &FieldsSpec) -> Result<Self, abi::SpecError> {
        spec.validate()?;
        let mask = if spec.fields.is_empty() {
            [true; field::COUNT]
        } else {
            spec.field_mask()
        };
        let paths = spec
            .paths
            .iter()
            .map(|p| abi::parse_payload_path(p))
            .collect::<Result<_, _>>()?;
        Ok(Selection { mask, paths })
    }

    pub(super) fn wants_paths(&self) -> bool {
        !self.paths.is_empty()
    }

    fn has(&self, id: u16) -> bool {
        self.mask[usize::from(id)]
    }
}

/// Parsed payloads of one batch, shared by all plugins.
#[derive(Debug)]
pub(super) struct PayloadCache {
    parsed: Vec<OnceCell<Option<serde_json::Value>>>,
}

impl PayloadCache {
    pub(super) fn new(len: usize) -> Self {
        PayloadCache {
            parsed: (0..len).map(|_| OnceCell::new()).collect(),
        }
    }

    fn get(&self, index: usize, payload: &[u8]) -> Option<&serde_json::Value> {
        self.parsed
            .get(index)?
            .get_or_init(|| serde_json::from_slice(payload).ok())
            .as_ref()
    }
}

/// Appends `event` (number `index` of the batch) to a batch frame, with
/// exactly the columns `weir_guest_sdk::schema` lists for its kind (a test
/// holds the two together).
pub(super) fn encode(
    batch: &mut BatchWriter<'_>,
    event: &Event,
    index: usize,
    sel: &Selection,
    cache: &PayloadCache,
) {
    let mut w = batch.event(event.kind());
    let mut out = Out { w: &mut w, sel };
    match event {
        Event::MessagePublish(m) => {
            out.opt_str(field::CLIENTID, m.clientid.as_deref());
            out.opt_str(field::USERNAME, m.username.as_deref());
            out.opt_str(field::PEERHOST, m.peerhost.as_deref());
            out.message(m, m.qos);
            out.common(m.timestamp, &m.node);
        }
        Event::ClientConnected(c) => {
            out.str(field::CLIENTID, &c.clientid);
            out.opt_str(field::USERNAME, c.username.as_deref());
            out.connection(
                c.peername.as_deref(),
                c.sockname.as_deref(),
                c.proto_name.as_deref(),
                c.proto_ver,
            );
            out.session(c.keepalive, c.clean_start, c.expiry_interval);
            out.i64(field::CONNECTED_AT, c.connected_at);
            out.common(c.timestamp, &c.node);
        }
        Event::ClientDisconnected(d) => {
            out.str(field::REASON, &d.reason);
            out.str(field::CLIENTID, &d.clientid);
            out.opt_str(field::USERNAME, d.username.as_deref());
            out.connection(
                d.peername.as_deref(),
                d.sockname.as_deref(),
                d.proto_name.as_deref(),
                d.proto_ver,
            );
            out.i64(field::DISCONNECTED_AT, d.disconnected_at);
            out.common(d.timestamp, &d.node);
        }
        Event::ClientConnack(c) => {
            out.str(field::REASON_CODE, &c.reason_code);
            out.str(field::CLIENTID, &c.clientid);
            out.opt_str(field::USERNAME, c.username.as_deref());
            out.connection(
                c.peername.as_deref(),
                c.sockname.as_deref(),
                c.proto_name.as_deref(),
                c.proto_ver,
            );
            out.session(c.keepalive, c.clean_start, c.expiry_interval);
            out.common(c.timestamp, &c.node);
        }
        Event::SessionSubscribed(s) | Event::SessionUnsubscribed(s) => {
            out.str(field::CLIENTID, &s.clientid);
            out.opt_str(field::USERNAME, s.username.as_deref());
            out.opt_str(field::PEERHOST, s.peerhost.as_deref());
            out.opt_str(field::PEERNAME, s.peername.as_deref());
            out.str(field::TOPIC, &s.topic);
            out.i64(field::QOS, i64::from(s.qos));
            let props = if event.kind() == Kind::SessionSubscribed {
                field::SUB_PROPS
            } else {
                field::UNSUB_PROPS
            };
            out.map(props, &s.props);
            out.common(s.timestamp, &s.node);
        }
        Event::MessageDelivered(d) => out.delivery(d),
        Event::MessageAcked(a) => {
            out.delivery(&a.delivery);
            out.map(field::PUBACK_PROPS, &a.puback_props);
        }
        Event::DeliveryDropped(d) => {
            out.delivery(&d.delivery);
            out.str(field::REASON, &d.reason);
        }
        Event::MessageDropped(d) => {
            let m = &d.message;
            out.str(field::REASON, &d.reason);
            out.opt_str(field::CLIENTID, m.clientid.as_deref());
            out.opt_str(field::USERNAME, m.username.as_deref());
            out.opt_str(field::PEERHOST, m.peerhost.as_deref());
            out.message(m, m.qos);
            out.common(d.timestamp, &m.node);
        }
    }
    if sel.wants_paths()
        && let Some(m) = event.message()
    {
        let parsed = cache.get(index, &m.payload);
        for (i, path) in sel.paths.iter().enumerate() {
            if let Some(value) = parsed.and_then(|p| abi::lookup(p, path)) {
                let id = abi::PATH_FIELD_BASE + u16::try_from(i).unwrap_or(u16::MAX);
                w.json_value(id, value);
            }
        }
    }
    w.finish();
}

/// An event writer that skips the fields a plugin did not ask for.
struct Out<'w, 'b, 'a> {
    w: &'w mut EventWriter<'b, 'a>,
    sel: &'w Selection,
}

impl Out<'_, '_, '_> {
    fn str(&mut self, id: u16, v: &str) {
        if self.sel.has(id) {
            self.w.str(id, v);
        }
    }

    fn opt_str(&mut self, id: u16, v: Option<&str>) {
        if self.sel.has(id) {
            self.w.opt_str(id, v);
        }
    }

    fn i64(&mut self, id: u16, v: i64) {
        if self.sel.has(id) {
            self.w.i64(id, v);
        }
    }

    fn opt_i64(&mut self, id: u16, v: Option<i64>) {
        if self.sel.has(id) {
            self.w.opt_i64(id, v);
        }
    }

    fn map(&mut self, id: u16, v: &Map<String, serde_json::Value>) {
        if self.sel.has(id) {
            self.w.json_value(id, &serde_json::Value::Object(v.clone()));
        }
    }

    /// The columns of a message itself, whoever it is delivered to.
    fn message(&mut self, m: &MessagePublish, qos: u8) {
        if self.sel.has(field::ID) {
            self.w.bytes(field::ID, &m.id.0.to_be_bytes());
        }
        self.str(field::TOPIC, &m.topic);
        self.i64(field::QOS, i64::from(qos));
        if self.sel.has(field::FLAGS_DUP) {
            self.w.bool(field::FLAGS_DUP, m.flags.dup);
        }
        if self.sel.has(field::FLAGS_RETAIN) {
            self.w.bool(field::FLAGS_RETAIN, m.flags.retain);
        }
        if self.sel.has(field::PAYLOAD) {
            self.w.bytes(field::PAYLOAD, &m.payload);
        }
        self.map(field::PUB_PROPS, &m.pub_props);
        self.i64(field::PUBLISH_RECEIVED_AT, m.publish_received_at);
    }

    /// A delivery's columns: the message, its publisher as `from_*`, the
    /// receiver as `clientid`, `username`, `peerhost`, `peername`.
    fn delivery(&mut self, d: &MessageDelivery) {
        let m = &d.message;
        self.opt_str(field::FROM_CLIENTID, m.clientid.as_deref());
        self.opt_str(field::FROM_USERNAME, m.username.as_deref());
        self.str(field::CLIENTID, &d.to.clientid);
        self.opt_str(field::USERNAME, d.to.username.as_deref());
        self.opt_str(field::PEERHOST, d.to.peerhost.as_deref());
        self.opt_str(field::PEERNAME, d.to.peername.as_deref());
        // The QoS the receiver got it with.
        self.message(m, d.qos);
        self.common(d.timestamp, &m.node);
    }

    fn connection(
        &mut self,
        peername: Option<&str>,
        sockname: Option<&str>,
        proto_name: Option<&str>,
        proto_ver: Option<u8>,
    ) {
        self.opt_str(field::PEERNAME, peername);
        self.opt_str(field::SOCKNAME, sockname);
        self.opt_str(field::PROTO_NAME, proto_name);
        self.opt_i64(field::PROTO_VER, proto_ver.map(i64::from));
    }

    fn session(&mut self, keepalive: Option<u16>, clean_start: Option<bool>, expiry: Option<u32>) {
        self.opt_i64(field::KEEPALIVE, keepalive.map(i64::from));
        if self.sel.has(field::CLEAN_START) {
            match clean_start {
                Some(b) => self.w.bool(field::CLEAN_START, b),
                None => self.w.null(field::CLEAN_START),
            }
        }
        self.opt_i64(field::EXPIRY_INTERVAL, expiry.map(i64::from));
    }

    fn common(&mut self, timestamp: i64, node: &str) {
        self.i64(field::TIMESTAMP, timestamp);
        self.str(field::NODE, node);
    }
}

/// The event as an object of EMQX columns (and `event`), for dead-letter
/// records, read back from its own ABI encoding so it cannot list other
/// columns than a rule sees. A payload that is not UTF-8 is given as
/// `payload_hex` so nothing is lost.
pub(crate) fn event_to_json(event: &Event) -> serde_json::Value {
    use serde_json::Value as J;
    let mut buf = Vec::new();
    let mut batch = BatchWriter::new(&mut buf);
    encode(
        &mut batch,
        event,
        0,
        &Selection::all(),
        &PayloadCache::new(0),
    );
    batch.finish();
    let mut out = Map::new();
    out.insert("event".into(), J::from(event.kind().name()));
    let mut flags = Map::new();
    let frame = BatchReader::new(&buf).ok().and_then(|mut r| r.next_event());
    let fields = frame.and_then(Result::ok).map(|f| f.fields());
    for (id, value) in fields.into_iter().flatten().filter_map(Result::ok) {
        let name = abi::FIELD_NAMES.get(usize::from(id)).copied().unwrap_or("");
        let json = match value {
            abi::Value::Null => J::Null,
            abi::Value::Bool(b) => J::Bool(b),
            abi::Value::I64(n) => J::from(n),
            abi::Value::F64(x) => J::from(x),
            abi::Value::Str(s) => J::from(s),
            abi::Value::Json(text) => serde_json::from_str(text).unwrap_or(J::Null),
            abi::Value::Bytes(b) if id == field::ID => J::from(hex(b).to_uppercase()),
            abi::Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(text) => J::from(text),
                Err(_) => {
                    out.insert(format!("{name}_hex"), J::from(hex(b)));
                    continue;
                }
            },
        };
        match id {
            field::FLAGS_DUP => drop(flags.insert("dup".into(), json)),
            field::FLAGS_RETAIN => drop(flags.insert("retain".into(), json)),
            _ => drop(out.insert(name.to_owned(), json)),
        }
    }
    if !flags.is_empty() {
        out.insert("flags".into(), J::Object(flags));
    }
    J::Object(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The partition key of an event's dead-letter record: the topic of a
/// message or subscription, the client id of a client event.
pub(crate) fn dead_letter_key(event: &Event) -> &str {
    match event {
        Event::ClientConnected(c) => &c.clientid,
        Event::ClientDisconnected(d) => &d.clientid,
        Event::ClientConnack(c) => &c.clientid,
        Event::SessionSubscribed(s) | Event::SessionUnsubscribed(s) => &s.topic,
        other => other.message().map_or("", |m| m.topic.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::sample_events;
    use weir_guest_sdk::schema;

    /// Every kind is encoded with exactly the columns the schema lists.
    #[test]
    fn encoding_writes_the_schema_columns_of_every_kind() {
        let events = sample_events();
        for kind in Kind::ALL {
            let event = events
                .iter()
                .find(|e| e.kind() == kind)
                .unwrap_or_else(|| panic!("no sample event of {kind}"));
            let mut buf = Vec::new();
            let mut batch = BatchWriter::new(&mut buf);
            encode(
                &mut batch,
                event,
                0,
                &Selection::all(),
                &PayloadCache::new(1),
            );
            batch.finish();
            let mut reader = BatchReader::new(&buf).expect("batch");
            let frame = reader.next_event().expect("one event").expect("valid");
            assert_eq!(frame.kind, kind);
            let mut written: Vec<u16> = frame.fields().map(|f| f.expect("field").0).collect();
            let mut expected: Vec<u16> = schema::schema(kind).fields().collect();
            let unsorted = written.clone();
            written.sort_unstable();
            expected.sort_unstable();
            assert_eq!(written, expected, "{kind}: {unsorted:?}");
        }
    }

    #[test]
    fn dead_letter_json_names_every_column() {
        for event in sample_events() {
            let json = event_to_json(&event);
            let object = json.as_object().expect("an object");
            for column in schema::schema(event.kind()).columns {
                assert!(
                    object.contains_key(*column)
                        || (*column == "payload" && object.contains_key("payload_hex")),
                    "{}: {column} missing from {json}",
                    event.kind()
                );
            }
        }
    }
}
