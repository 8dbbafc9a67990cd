//! The native evaluator: runs a [`Program`] on an [`Event`] directly, with
//! the same value operations as the Wasm runtime library and the same
//! evaluation order as the generated code (columns the condition reads,
//! the condition, the other columns, the key, the record; the first error
//! wins). It is the reference the compiled modules are tested against and
//! the baseline of the benchmark.

use super::ir::{Expr, FIELD_EVENT, FIELD_FLAGS, Part, Program, Record, Step};
use crate::event::Event;
use std::borrow::Cow;
use std::cell::OnceCell;
use weir_guest_sdk::abi::{self, field};
use weir_rules_runtime::{self as rt, CmpOp, Mode, Tri, Value};

/// What a rule does with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// One record, with its partition key (empty: none).
    Record {
        key: String,
        raw: bool,
        record: Vec<u8>,
    },
    /// The condition was not true.
    Filtered,
    /// The event failed (a rule error).
    Error(String),
}

pub(crate) fn evaluate(p: &Program, event: &Event) -> Outcome {
    let mut env = Env {
        p,
        event,
        payload: OnceCell::new(),
        columns: vec![Value::Null; p.columns.len()],
        error: None,
    };
    for &i in &p.before {
        env.columns[i] = env.value(&p.columns[i].expr);
    }
    let pass = p
        .condition
        .as_ref()
        .is_none_or(|c| env.cond(c) == Tri::True);
    let mut output = None;
    if pass {
        for &i in &p.after {
            env.columns[i] = env.value(&p.columns[i].expr);
        }
        let mut key = Vec::new();
        env.parts(&p.key, &mut key);
        let mut record = Vec::new();
        match &p.record {
            Record::Template(parts) => env.parts(parts, &mut record),
            Record::Object { star, columns } => {
                let mode = if p.raw { Mode::Text } else { Mode::Json };
                let mut first = true;
                record.push(b'{');
                for (id, name) in star {
                    if env.has(*id) {
                        let v = env.field(*id);
                        member(&mut record, &mut first, name, &v, mode);
                    }
                }
                for (name, e) in columns {
                    let v = env.value(e);
                    member(&mut record, &mut first, name, &v, mode);
                }
                record.push(b'}');
            }
        }
        if p.check_object && record.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            env.fail(Cow::Borrowed(
                "the record template gave a value that is not a JSON object, which an HRecord must be",
            ));
        }
        output = Some((String::from_utf8_lossy(&key).into_owned(), record));
    }
    match (env.error, output) {
        (Some(e), _) => Outcome::Error(e),
        (None, None) => Outcome::Filtered,
        (None, Some((key, record))) => Outcome::Record {
            key,
            raw: p.raw,
            record,
        },
    }
}

fn member(out: &mut Vec<u8>, first: &mut bool, name: &str, v: &Value<'_>, mode: Mode) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    out.push(b'"');
    rt::json::escape_into(out, name);
    out.extend_from_slice(b"\":");
    rt::emit(out, v, mode);
}

struct Env<'p, 'e> {
    p: &'p Program,
    event: &'e Event,
    payload: OnceCell<Option<serde_json::Value>>,
    columns: Vec<Value<'e>>,
    error: Option<String>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn opt<'e>(s: Option<&'e str>) -> Value<'e> {
    s.map_or(Value::Null, |s| Value::Str(Cow::Borrowed(s)))
}

fn opt_int(n: Option<i64>) -> Value<'static> {
    n.map_or(Value::Null, Value::Int)
}

/// A JSON value as the host sends a payload path's value.
fn from_json(v: &serde_json::Value) -> Value<'static> {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => n
                .as_f64()
                .filter(|x| x.is_finite())
                .map_or(Value::Null, Value::Float),
        },
        serde_json::Value::String(s) => Value::Str(Cow::Owned(s.clone())),
        other => Value::Json(Cow::Owned(other.to_string())),
    }
}

impl<'e> Env<'_, 'e> {
    fn fail(&mut self, message: Cow<'static, str>) {
        if self.error.is_none() {
            self.error = Some(message.into_owned());
        }
    }

    fn result(&mut self, r: Result<Value<'static>, rt::OpError>) -> Value<'e> {
        r.unwrap_or_else(|e| {
            self.fail(e.0);
            Value::Null
        })
    }

    /// Whether the event has the field (present, possibly null), as the
    /// runtime library's `rt_has`.
    fn has(&self, id: u32) -> bool {
        self.lookup(id).is_some()
    }

    fn field(&self, id: u32) -> Value<'e> {
        self.lookup(id).unwrap_or(Value::Null)
    }

    /// The value of field `id`, `None` when the event does not have it
    /// (what the host's encoder and the runtime library give).
    fn lookup(&self, id: u32) -> Option<Value<'e>> {
        let ev = self.event;
        if id == FIELD_EVENT {
            return Some(Value::Str(Cow::Borrowed(ev.kind().name())));
        }
        if id >= u32::from(abi::PATH_FIELD_BASE) {
            let Event::MessagePublish(m) = ev else {
                return None;
            };
            let path = self
                .p
                .paths
                .get((id - u32::from(abi::PATH_FIELD_BASE)) as usize)?;
            let segs = abi::parse_payload_path(path).ok()?;
            let parsed = self
                .payload
                .get_or_init(|| serde_json::from_slice(&m.payload).ok())
                .as_ref()?;
            return abi::lookup(parsed, &segs).map(from_json);
        }
        let id = u16::try_from(id).ok();
        match ev {
            Event::MessagePublish(m) => Some(match id? {
                field::ID => Value::Str(Cow::Owned(m.id.to_string())),
                field::CLIENTID => opt(m.clientid.as_deref()),
                field::USERNAME => opt(m.username.as_deref()),
                field::TOPIC => Value::Str(Cow::Borrowed(&m.topic)),
                field::QOS => Value::Int(i64::from(m.qos)),
                field::FLAGS_DUP => Value::Bool(m.flags.dup),
                field::FLAGS_RETAIN => Value::Bool(m.flags.retain),
                field::PAYLOAD => Value::Bytes(Cow::Borrowed(&m.payload)),
                field::PUB_PROPS => Value::Json(Cow::Owned(
                    serde_json::Value::Object(m.pub_props.clone()).to_string(),
                )),
                field::PEERHOST => opt(m.peerhost.as_deref()),
                field::PUBLISH_RECEIVED_AT => Value::Int(m.publish_received_at),
                field::TIMESTAMP => Value::Int(m.timestamp),
                field::NODE => Value::Str(Cow::Borrowed(&m.node)),
                n if u32::from(n) == FIELD_FLAGS => Value::Json(Cow::Owned(format!(
                    "{{\"dup\":{},\"retain\":{}}}",
                    m.flags.dup, m.flags.retain
                ))),
                _ => return None,
            }),
            Event::ClientConnected(c) => Some(match id? {
                field::CLIENTID => Value::Str(Cow::Borrowed(&c.clientid)),
                field::USERNAME => opt(c.username.as_deref()),
                field::PEERNAME => opt(c.peername.as_deref()),
                field::SOCKNAME => opt(c.sockname.as_deref()),
                field::PROTO_NAME => opt(c.proto_name.as_deref()),
                field::PROTO_VER => opt_int(c.proto_ver.map(i64::from)),
                field::KEEPALIVE => opt_int(c.keepalive.map(i64::from)),
                field::CLEAN_START => c.clean_start.map_or(Value::Null, Value::Bool),
                field::EXPIRY_INTERVAL => opt_int(c.expiry_interval.map(i64::from)),
                field::CONNECTED_AT => Value::Int(c.connected_at),
                field::TIMESTAMP => Value::Int(c.timestamp),
                field::NODE => Value::Str(Cow::Borrowed(&c.node)),
                _ => return None,
            }),
            Event::ClientDisconnected(d) => Some(match id? {
                field::CLIENTID => Value::Str(Cow::Borrowed(&d.clientid)),
                field::USERNAME => opt(d.username.as_deref()),
                field::PEERNAME => opt(d.peername.as_deref()),
                field::SOCKNAME => opt(d.sockname.as_deref()),
                field::PROTO_NAME => opt(d.proto_name.as_deref()),
                field::PROTO_VER => opt_int(d.proto_ver.map(i64::from)),
                field::REASON => Value::Str(Cow::Borrowed(&d.reason)),
                field::DISCONNECTED_AT => Value::Int(d.disconnected_at),
                field::TIMESTAMP => Value::Int(d.timestamp),
                field::NODE => Value::Str(Cow::Borrowed(&d.node)),
                _ => return None,
            }),
        }
    }

    fn parts(&mut self, parts: &[Part], out: &mut Vec<u8>) {
        for part in parts {
            match part {
                Part::Lit(bytes) => out.extend_from_slice(bytes),
                Part::Value(e, mode) => {
                    let v = self.value(e);
                    rt::emit(out, &v, *mode);
                }
            }
        }
    }

    fn value(&mut self, e: &Expr) -> Value<'e> {
        match e {
            Expr::Null => Value::Null,
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Int(n) => Value::Int(*n),
            Expr::Float(x) => Value::Float(*x),
            Expr::Str(s) => Value::Str(Cow::Owned(s.clone())),
            Expr::Field(id) => self.field(*id),
            Expr::Get(base, steps) => {
                let mut v = self.value(base);
                for step in steps {
                    v = match step {
                        Step::Key(k) => rt::get(&v, k).into_owned(),
                        Step::Index(i) => rt::index(&v, *i).into_owned(),
                    };
                }
                v
            }
            Expr::Column(i) => self.columns.get(*i).cloned().unwrap_or(Value::Null),
            Expr::Neg(x) => {
                let v = self.value(x);
                let r = rt::neg(&v);
                self.result(r)
            }
            Expr::Arith(op, a, b) => {
                let (a, b) = (self.value(a), self.value(b));
                let r = rt::arith(*op, &a, &b);
                self.result(r)
            }
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                let subject = operand.as_ref().map(|o| self.value(o));
                for (when, then) in whens {
                    let t = match &subject {
                        Some(s) => {
                            let w = self.value(when);
                            rt::compare(CmpOp::Eq, s, &w)
                        }
                        None => self.cond(when),
                    };
                    if t == Tri::True {
                        return self.value(then);
                    }
                }
                self.value(otherwise)
            }
            Expr::Call(f, args) => {
                let values: Vec<Value<'e>> = args.iter().take(3).map(|a| self.value(a)).collect();
                let r = rt::call(*f, &values, &now_ms);
                self.result(r)
            }
            Expr::Coalesce(args) => {
                for a in args {
                    let v = self.value(a);
                    if !v.is_null() {
                        return v;
                    }
                }
                Value::Null
            }
            cond => self.cond(cond).to_value(),
        }
    }

    fn cond(&mut self, e: &Expr) -> Tri {
        match e {
            Expr::Bool(b) => Tri::from_bool(*b),
            Expr::Null => Tri::Unknown,
            Expr::Cmp(op, a, b) => {
                let (a, b) = (self.value(a), self.value(b));
                rt::compare(*op, &a, &b)
            }
            Expr::And(a, b) => {
                let ta = self.cond(a);
                if ta == Tri::False {
                    return Tri::False;
                }
                match self.cond(b) {
                    Tri::False => Tri::False,
                    Tri::True if ta == Tri::True => Tri::True,
                    _ => Tri::Unknown,
                }
            }
            Expr::Or(a, b) => {
                let ta = self.cond(a);
                if ta == Tri::True {
                    return Tri::True;
                }
                match self.cond(b) {
                    Tri::True => Tri::True,
                    Tri::False if ta == Tri::False => Tri::False,
                    _ => Tri::Unknown,
                }
            }
            Expr::Not(a) => !self.cond(a),
            Expr::IsNull(x, negated) => Tri::from_bool(self.value(x).is_null() != *negated),
            Expr::In(x, list, negated) => {
                let subject = self.value(x);
                let mut acc = Tri::False;
                for item in list {
                    let v = self.value(item);
                    match rt::compare(CmpOp::Eq, &subject, &v) {
                        Tri::True => {
                            acc = Tri::True;
                            break;
                        }
                        Tri::Unknown => acc = Tri::Unknown,
                        Tri::False => {}
                    }
                }
                if *negated { !acc } else { acc }
            }
            value => {
                let v = self.value(value);
                match rt::truth(&v) {
                    Ok(t) => t,
                    Err(e) => {
                        self.fail(e.0);
                        Tri::Unknown
                    }
                }
            }
        }
    }
}
