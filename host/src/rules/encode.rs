//! Turning `Event`s into ABI v1 batch frames, and into EMQX-style JSON.
//!
//! The encoder sends a plugin only what it declared in its `weir.fields`
//! section: the listed fields, and the values at the listed payload paths,
//! extracted here on the host. A payload is parsed at most once per batch,
//! however many plugins ask for paths in it (`PayloadCache`).

use crate::event::{ClientConnected, ClientDisconnected, Event, MessagePublish};
use std::cell::OnceCell;
use weir_guest_sdk::abi::{self, BatchWriter, EventWriter, FieldsSpec, Kind, PathSeg, field};

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

fn kind(event: &Event) -> Kind {
    match event {
        Event::MessagePublish(_) => Kind::MessagePublish,
        Event::ClientConnected(_) => Kind::ClientConnected,
        Event::ClientDisconnected(_) => Kind::ClientDisconnected,
    }
}

/// Appends `event` (number `index` of the batch) to a batch frame.
pub(super) fn encode(
    batch: &mut BatchWriter<'_>,
    event: &Event,
    index: usize,
    sel: &Selection,
    cache: &PayloadCache,
) {
    let mut w = batch.event(kind(event));
    match event {
        Event::MessagePublish(m) => {
            publish(&mut w, m, sel);
            if sel.wants_paths() {
                let parsed = cache.get(index, &m.payload);
                for (i, path) in sel.paths.iter().enumerate() {
                    if let Some(value) = parsed.and_then(|p| abi::lookup(p, path)) {
                        let id = abi::PATH_FIELD_BASE + u16::try_from(i).unwrap_or(u16::MAX);
                        w.json_value(id, value);
                    }
                }
            }
        }
        Event::ClientConnected(c) => connected(&mut w, c, sel),
        Event::ClientDisconnected(d) => disconnected(&mut w, d, sel),
    }
    w.finish();
}

fn publish(w: &mut EventWriter<'_, '_>, m: &MessagePublish, sel: &Selection) {
    if sel.has(field::ID) {
        w.bytes(field::ID, &m.id.0.to_be_bytes());
    }
    if sel.has(field::CLIENTID) {
        w.opt_str(field::CLIENTID, m.clientid.as_deref());
    }
    if sel.has(field::USERNAME) {
        w.opt_str(field::USERNAME, m.username.as_deref());
    }
    if sel.has(field::TOPIC) {
        w.str(field::TOPIC, &m.topic);
    }
    if sel.has(field::QOS) {
        w.i64(field::QOS, i64::from(m.qos));
    }
    if sel.has(field::FLAGS_DUP) {
        w.bool(field::FLAGS_DUP, m.flags.dup);
    }
    if sel.has(field::FLAGS_RETAIN) {
        w.bool(field::FLAGS_RETAIN, m.flags.retain);
    }
    if sel.has(field::PAYLOAD) {
        w.bytes(field::PAYLOAD, &m.payload);
    }
    if sel.has(field::PUB_PROPS) {
        w.json_value(
            field::PUB_PROPS,
            &serde_json::Value::Object(m.pub_props.clone()),
        );
    }
    if sel.has(field::PEERHOST) {
        w.opt_str(field::PEERHOST, m.peerhost.as_deref());
    }
    if sel.has(field::PUBLISH_RECEIVED_AT) {
        w.i64(field::PUBLISH_RECEIVED_AT, m.publish_received_at);
    }
    common(w, m.timestamp, &m.node, sel);
}

fn common(w: &mut EventWriter<'_, '_>, timestamp: i64, node: &str, sel: &Selection) {
    if sel.has(field::TIMESTAMP) {
        w.i64(field::TIMESTAMP, timestamp);
    }
    if sel.has(field::NODE) {
        w.str(field::NODE, node);
    }
}

#[allow(clippy::too_many_arguments)]
fn client(
    w: &mut EventWriter<'_, '_>,
    sel: &Selection,
    clientid: &str,
    username: Option<&str>,
    peername: Option<&str>,
    sockname: Option<&str>,
    proto_name: Option<&str>,
    proto_ver: Option<u8>,
) {
    if sel.has(field::CLIENTID) {
        w.str(field::CLIENTID, clientid);
    }
    if sel.has(field::USERNAME) {
        w.opt_str(field::USERNAME, username);
    }
    if sel.has(field::PEERNAME) {
        w.opt_str(field::PEERNAME, peername);
    }
    if sel.has(field::SOCKNAME) {
        w.opt_str(field::SOCKNAME, sockname);
    }
    if sel.has(field::PROTO_NAME) {
        w.opt_str(field::PROTO_NAME, proto_name);
    }
    if sel.has(field::PROTO_VER) {
        w.opt_i64(field::PROTO_VER, proto_ver.map(i64::from));
    }
}

fn connected(w: &mut EventWriter<'_, '_>, c: &ClientConnected, sel: &Selection) {
    client(
        w,
        sel,
        &c.clientid,
        c.username.as_deref(),
        c.peername.as_deref(),
        c.sockname.as_deref(),
        c.proto_name.as_deref(),
        c.proto_ver,
    );
    if sel.has(field::KEEPALIVE) {
        w.opt_i64(field::KEEPALIVE, c.keepalive.map(i64::from));
    }
    if sel.has(field::CLEAN_START) {
        match c.clean_start {
            Some(b) => w.bool(field::CLEAN_START, b),
            None => w.null(field::CLEAN_START),
        }
    }
    if sel.has(field::EXPIRY_INTERVAL) {
        w.opt_i64(field::EXPIRY_INTERVAL, c.expiry_interval.map(i64::from));
    }
    if sel.has(field::CONNECTED_AT) {
        w.i64(field::CONNECTED_AT, c.connected_at);
    }
    common(w, c.timestamp, &c.node, sel);
}

fn disconnected(w: &mut EventWriter<'_, '_>, d: &ClientDisconnected, sel: &Selection) {
    client(
        w,
        sel,
        &d.clientid,
        d.username.as_deref(),
        d.peername.as_deref(),
        d.sockname.as_deref(),
        d.proto_name.as_deref(),
        d.proto_ver,
    );
    if sel.has(field::REASON) {
        w.str(field::REASON, &d.reason);
    }
    if sel.has(field::DISCONNECTED_AT) {
        w.i64(field::DISCONNECTED_AT, d.disconnected_at);
    }
    common(w, d.timestamp, &d.node, sel);
}

/// The event as an object of EMQX columns, for dead-letter records. A
/// payload that is not UTF-8 is given as `payload_hex` so nothing is lost.
pub fn event_to_json(event: &Event) -> serde_json::Value {
    use serde_json::json;
    match event {
        Event::MessagePublish(m) => {
            let mut v = json!({
                "event": "message.publish",
                "id": m.id.to_string(),
                "clientid": m.clientid,
                "username": m.username,
                "topic": m.topic,
                "qos": m.qos,
                "flags": {"dup": m.flags.dup, "retain": m.flags.retain},
                "pub_props": m.pub_props,
                "peerhost": m.peerhost,
                "publish_received_at": m.publish_received_at,
                "timestamp": m.timestamp,
                "node": m.node,
            });
            match std::str::from_utf8(&m.payload) {
                Ok(text) => v["payload"] = json!(text),
                Err(_) => {
                    let hex: String = m.payload.iter().map(|b| format!("{b:02x}")).collect();
                    v["payload_hex"] = json!(hex);
                }
            }
            v
        }
        Event::ClientConnected(c) => json!({
            "event": "client.connected",
            "clientid": c.clientid,
            "username": c.username,
            "peername": c.peername,
            "sockname": c.sockname,
            "proto_name": c.proto_name,
            "proto_ver": c.proto_ver,
            "keepalive": c.keepalive,
            "clean_start": c.clean_start,
            "expiry_interval": c.expiry_interval,
            "connected_at": c.connected_at,
            "timestamp": c.timestamp,
            "node": c.node,
        }),
        Event::ClientDisconnected(d) => json!({
            "event": "client.disconnected",
            "clientid": d.clientid,
            "username": d.username,
            "reason": d.reason,
            "peername": d.peername,
            "sockname": d.sockname,
            "proto_name": d.proto_name,
            "proto_ver": d.proto_ver,
            "disconnected_at": d.disconnected_at,
            "timestamp": d.timestamp,
            "node": d.node,
        }),
    }
}

/// The partition key of an event's dead-letter record: the topic of a
/// message, the client id of a client event.
pub(super) fn dead_letter_key(event: &Event) -> &str {
    match event {
        Event::MessagePublish(m) => &m.topic,
        Event::ClientConnected(c) => &c.clientid,
        Event::ClientDisconnected(d) => &d.clientid,
    }
}
