//! Unit-testing a rule natively, with `cargo test` and no wasm.
//!
//! [`Harness`] runs a rule's `RULE` through the same code the plugin runs
//! under weir: events are encoded with the ABI's batch writer, decoded by
//! the guest runtime, and the outputs are read back with the ABI's output
//! frame reader, exactly as the host reads them. Only the last step differs:
//! there is no wasm instance in between, and the host-side checks (allowed
//! streams, limits) are not applied. To run a built `.wasm` under the real
//! runtime, see `weir::rules` (README: "Testing under the real host").
//!
//! ```
//! use weir_guest_sdk::testing::{Harness, TestEvent};
//! # use weir_guest_sdk::{Event, Outputs, Error, RuleDef, InitContext};
//! # fn rule(e: &Event<'_>, _: &(), out: &mut Outputs<'_>) -> Result<(), Error> {
//! #     out.emit().bytes(e.topic().as_bytes()); Ok(())
//! # }
//! # const RULE: RuleDef<()> = RuleDef { init: |_: &InitContext| Ok(()), process: rule, fields: None };
//! let mut h = Harness::new(RULE).stream("s").start().expect("init");
//! let result = h.run(&[TestEvent::publish("t/1", b"{}")]);
//! assert_eq!(result.outputs[0].record, b"t/1");
//! ```

use crate::abi::{self, BatchWriter, FieldId, FieldsSpec, Flag, Kind, OutputFrameReader, field};
use crate::error::Error;
use crate::host::CAPTURE;
use crate::runtime::{Instance, RuleDef};

/// A field value owned by a [`TestEvent`].
#[derive(Debug, Clone, PartialEq)]
enum Owned {
    Null,
    Bool(bool),
    I64(i64),
    Str(String),
    Bytes(Vec<u8>),
    Json(String),
}

/// An event to feed a rule in a test; builders set EMQX's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct TestEvent {
    kind: Kind,
    fields: Vec<(FieldId, Owned)>,
}

impl TestEvent {
    fn new(kind: Kind) -> Self {
        TestEvent {
            kind,
            fields: vec![
                (field::TIMESTAMP, Owned::I64(1_700_000_000_000)),
                (field::NODE, Owned::Str("weir@test".into())),
            ],
        }
    }

    fn set(mut self, id: FieldId, value: Owned) -> Self {
        self.fields.retain(|(f, _)| *f != id);
        self.fields.push((id, value));
        self
    }

    /// A `message.publish` on `topic` with QoS 0 and id 1.
    pub fn publish(topic: &str, payload: &[u8]) -> Self {
        TestEvent::new(Kind::MessagePublish)
            .set(field::ID, Owned::Bytes(1u128.to_be_bytes().to_vec()))
            .set(field::CLIENTID, Owned::Null)
            .set(field::USERNAME, Owned::Null)
            .set(field::TOPIC, Owned::Str(topic.into()))
            .set(field::QOS, Owned::I64(0))
            .set(field::FLAGS_DUP, Owned::Bool(false))
            .set(field::FLAGS_RETAIN, Owned::Bool(false))
            .set(field::PAYLOAD, Owned::Bytes(payload.to_vec()))
            .set(field::PUB_PROPS, Owned::Json("{}".into()))
            .set(field::PEERHOST, Owned::Null)
            .set(field::PUBLISH_RECEIVED_AT, Owned::I64(1_700_000_000_000))
    }

    /// A `client.connected` of `clientid`.
    pub fn connected(clientid: &str) -> Self {
        TestEvent::new(Kind::ClientConnected)
            .set(field::CLIENTID, Owned::Str(clientid.into()))
            .set(field::USERNAME, Owned::Null)
            .set(field::CONNECTED_AT, Owned::I64(1_700_000_000_000))
    }

    /// A `client.disconnected` of `clientid` for `reason`.
    pub fn disconnected(clientid: &str, reason: &str) -> Self {
        TestEvent::new(Kind::ClientDisconnected)
            .set(field::CLIENTID, Owned::Str(clientid.into()))
            .set(field::USERNAME, Owned::Null)
            .set(field::REASON, Owned::Str(reason.into()))
            .set(field::DISCONNECTED_AT, Owned::I64(1_700_000_000_000))
    }

    pub fn id(self, id: u128) -> Self {
        self.set(field::ID, Owned::Bytes(id.to_be_bytes().to_vec()))
    }

    pub fn qos(self, qos: u8) -> Self {
        self.set(field::QOS, Owned::I64(i64::from(qos)))
    }

    pub fn clientid(self, clientid: &str) -> Self {
        self.set(field::CLIENTID, Owned::Str(clientid.into()))
    }

    pub fn username(self, username: &str) -> Self {
        self.set(field::USERNAME, Owned::Str(username.into()))
    }

    pub fn timestamp(self, ms: i64) -> Self {
        self.set(field::TIMESTAMP, Owned::I64(ms))
    }

    /// Sets any field by EMQX name from a JSON value (strings become
    /// strings, `pub_props` stays JSON, `null` means unknown).
    pub fn field(self, name: &str, value: serde_json::Value) -> Self {
        let Some(id) = abi::field_id(name) else {
            return self;
        };
        let owned = match value {
            serde_json::Value::Null => Owned::Null,
            serde_json::Value::Bool(b) => Owned::Bool(b),
            serde_json::Value::Number(n) if n.is_i64() => Owned::I64(n.as_i64().unwrap_or(0)),
            serde_json::Value::String(s) if id == field::PAYLOAD => Owned::Bytes(s.into_bytes()),
            serde_json::Value::String(s) => Owned::Str(s),
            other => Owned::Json(other.to_string()),
        };
        self.set(id, owned)
    }

    fn encode(&self, batch: &mut BatchWriter<'_>, spec: Option<&FieldsSpec>) {
        let mask = spec
            .filter(|s| !s.fields.is_empty())
            .map(FieldsSpec::field_mask);
        let mut ev = batch.event(self.kind);
        for (id, value) in &self.fields {
            if mask.is_some_and(|m| !m.get(usize::from(*id)).copied().unwrap_or(false)) {
                continue;
            }
            match value {
                Owned::Null => ev.null(*id),
                Owned::Bool(b) => ev.bool(*id, *b),
                Owned::I64(n) => ev.i64(*id, *n),
                Owned::Str(s) => ev.str(*id, s),
                Owned::Bytes(b) => ev.bytes(*id, b),
                Owned::Json(j) => ev.json(*id, j),
            }
        }
        if let Some(spec) = spec {
            let payload = self.fields.iter().find_map(|(id, v)| match (id, v) {
                (&field::PAYLOAD, Owned::Bytes(b)) => serde_json::from_slice(b).ok(),
                _ => None,
            });
            for (i, path) in spec.paths.iter().enumerate() {
                let Ok(segs) = abi::parse_payload_path(path) else {
                    continue;
                };
                let id = abi::PATH_FIELD_BASE + u16::try_from(i).unwrap_or(0);
                if let Some(v) = payload.as_ref().and_then(|p| abi::lookup(p, &segs)) {
                    ev.json_value(id, v);
                }
            }
        }
        ev.finish();
    }
}

/// One output, copied out of the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutput {
    pub event: u32,
    pub flag: Flag,
    /// Empty: the manifest's stream.
    pub target: String,
    pub key: String,
    pub record: Vec<u8>,
}

impl TestOutput {
    /// The record parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.record).unwrap_or(serde_json::Value::Null)
    }

    /// The record as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.record).into_owned()
    }
}

/// Everything one batch produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestResult {
    pub outputs: Vec<TestOutput>,
    /// `(event index, code, message)`.
    pub errors: Vec<(u32, u32, String)>,
    /// `(level, message)` logged while the batch ran.
    pub logs: Vec<(u32, String)>,
    /// `(name, delta)` counter increments.
    pub counters: Vec<(String, i64)>,
}

/// Configures a rule's init document for a test.
#[derive(Debug)]
pub struct Harness<S: 'static> {
    def: RuleDef<S>,
    plugin: String,
    config: serde_json::Value,
    stream: String,
    streams: Vec<String>,
    partition_key: Option<String>,
    format: crate::init::RecordFormat,
}

impl<S: 'static> Harness<S> {
    /// A harness for `RULE`, with stream `test` and no config.
    pub fn new(def: RuleDef<S>) -> Self {
        Harness {
            def,
            plugin: "test".into(),
            config: serde_json::Value::Object(Default::default()),
            stream: "test".into(),
            streams: Vec::new(),
            partition_key: None,
            format: crate::init::RecordFormat::Hrecord,
        }
    }

    /// The manifest's `[config]` table, as JSON.
    pub fn config(mut self, config: serde_json::Value) -> Self {
        self.config = config;
        self
    }

    pub fn stream(mut self, stream: &str) -> Self {
        self.stream = stream.into();
        self
    }

    pub fn streams(mut self, streams: &[&str]) -> Self {
        self.streams = streams.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    pub fn partition_key(mut self, template: &str) -> Self {
        self.partition_key = Some(template.into());
        self
    }

    /// Default record flag: RAW instead of JSON.
    pub fn raw(mut self) -> Self {
        self.format = crate::init::RecordFormat::Raw;
        self
    }

    /// Runs the rule's init, as the host does after loading the module.
    pub fn start(self) -> Result<Running<S>, Error> {
        let doc = crate::init::InitDocument {
            abi: abi::ABI_VERSION,
            plugin: self.plugin,
            version: 1,
            config: self.config,
            action: crate::init::InitAction {
                stream: self.stream,
                streams: self.streams,
                partition_key: self.partition_key,
                format: self.format,
            },
        };
        let doc =
            serde_json::to_vec(&doc).map_err(|e| Error::msg(format!("init document: {e}")))?;
        let spec = match self.def.fields {
            Some(text) => Some(FieldsSpec::parse(text.as_bytes()).map_err(|e| Error::msg(e.0))?),
            None => None,
        };
        let instance = Instance::new(&self.def, &doc)?;
        Ok(Running {
            def: self.def,
            instance,
            spec,
            batch: Vec::new(),
        })
    }
}

/// A started rule.
pub struct Running<S: 'static> {
    def: RuleDef<S>,
    instance: Instance<S>,
    spec: Option<FieldsSpec>,
    batch: Vec<u8>,
}

impl<S: 'static> std::fmt::Debug for Running<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("spec", &self.spec).finish()
    }
}

impl<S: 'static> Running<S> {
    /// Runs one batch and returns what it produced. Only the fields and
    /// payload paths the rule declares are sent, as the host would.
    pub fn run(&mut self, events: &[TestEvent]) -> TestResult {
        self.batch.clear();
        let mut writer = BatchWriter::new(&mut self.batch);
        for event in events {
            event.encode(&mut writer, self.spec.as_ref());
        }
        writer.finish();
        CAPTURE.with_borrow_mut(|c| {
            c.logs.clear();
            c.counters.clear();
        });
        let frame = self.instance.process(&self.def, &self.batch);
        let mut result = decode(frame);
        CAPTURE.with_borrow_mut(|c| {
            result.logs = std::mem::take(&mut c.logs);
            result.counters = std::mem::take(&mut c.counters);
        });
        result
    }
}

fn decode(frame: &[u8]) -> TestResult {
    let mut result = TestResult::default();
    let Ok(mut reader) = OutputFrameReader::new(frame) else {
        return result;
    };
    let text = |r: std::ops::Range<usize>| String::from_utf8_lossy(&frame[r]).into_owned();
    while let Some(Ok(out)) = reader.next_output() {
        result.outputs.push(TestOutput {
            event: out.event,
            flag: out.flag,
            target: out.target.to_owned(),
            key: text(out.key),
            record: frame[out.record].to_vec(),
        });
    }
    while let Some(Ok(err)) = reader.next_error() {
        result
            .errors
            .push((err.event, err.code, err.message.to_owned()));
    }
    result
}
