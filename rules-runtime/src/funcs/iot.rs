//! The "IoT functions", which read the event itself: `msgid()`, `qos()`,
//! `topic()`, `topic(n)`, `flags()`, `flag(name)`, `username()`,
//! `clientip()`, `peerhost()`, `payload()`, `payload(path)`, and
//! `contains_topic`, `contains_topic_match`.
//!
//! Each reads the column EMQX 5's function reads, so each gives what it
//! gives in EMQX 5, including where that is nothing:
//! - `clientip()` and `peerhost()` read `peerhost`, which only the message
//!   events have (client events have `peername`): undefined elsewhere.
//! - `payload(path)` looks into the payload only when the payload column
//!   is an object; for MQTT messages it is a binary, so it is undefined
//!   (write `payload.a.b`, which decodes the payload).
//! - `contains_topic` and `contains_topic_match` look for elements that
//!   are Erlang maps with the atom key `topic`; a JSON object's keys are
//!   binaries, and no event column holds such maps, so in EMQX 5 they are
//!   false for every array (and fail for anything else).
//! - `clientid()` reads a column EMQX 5 no longer has (`from`): it is not
//!   a function here; the compiler points to the `clientid` column.

use super::map::{key_path, nested_get};
use super::string::count_arg;
use super::{Env, Func, expects};
use crate::value::{Map, OpError, Value};

pub(super) const FUNCS: &[Func] = &[
    Func {
        name: "msgid",
        arity: (0, 0),
        signature: "msgid()",
        doc: "the message id (the id column)",
        call: |_, env| Ok(env.column("id")),
    },
    Func {
        name: "qos",
        arity: (0, 0),
        signature: "qos()",
        doc: "the QoS of the message (the qos column)",
        call: |_, env| Ok(env.column("qos")),
    },
    Func {
        name: "topic",
        arity: (0, 1),
        signature: "topic([n])",
        doc: "the topic, or its level n (counting from 1; fails past the last level)",
        call: topic,
    },
    Func {
        name: "flags",
        arity: (0, 0),
        signature: "flags()",
        doc: "the message's flags ({} for an event without flags)",
        call: |_, env| match env.column("flags") {
            Value::Undefined => Ok(Value::object(Map::new())),
            flags => Ok(flags),
        },
    },
    Func {
        name: "flag",
        arity: (1, 1),
        signature: "flag(name)",
        doc: "the message's flag name ('dup', 'retain')",
        call: |a, env| {
            let flags = env.column("flags");
            let name = match &a[0] {
                v @ (Value::Str(_) | Value::Bytes(_)) => v.as_str(),
                v @ (Value::Bool(_) | Value::Null | Value::Undefined) => v.atom_name(),
                _ => None,
            };
            Ok(name
                .and_then(|n| nested_get(&flags, &[n]))
                .unwrap_or(Value::Undefined))
        },
    },
    Func {
        name: "username",
        arity: (0, 0),
        signature: "username()",
        doc: "the client's username (the username column)",
        call: |_, env| Ok(env.column("username")),
    },
    Func {
        name: "clientip",
        arity: (0, 0),
        signature: "clientip()",
        doc: "the client's IP address (the peerhost column: message events only)",
        call: peerhost,
    },
    Func {
        name: "peerhost",
        arity: (0, 0),
        signature: "peerhost()",
        doc: "the client's IP address (the peerhost column: message events only)",
        call: peerhost,
    },
    Func {
        name: "payload",
        arity: (0, 1),
        signature: "payload([path])",
        doc: "the payload; with a dotted path, the value there when the payload column is an object (an MQTT payload is not: use payload.a.b)",
        call: payload,
    },
    Func {
        name: "contains_topic",
        arity: (2, 3),
        signature: "contains_topic(filters, topic[, qos])",
        doc: "false for every array, as in EMQX 5 (it looks for Erlang maps that JSON cannot give)",
        call: |a, _| contains("contains_topic", &a[0]),
    },
    Func {
        name: "contains_topic_match",
        arity: (2, 3),
        signature: "contains_topic_match(filters, topic[, qos])",
        doc: "false for every array, as in EMQX 5 (it looks for Erlang maps that JSON cannot give)",
        call: |a, _| contains("contains_topic_match", &a[0]),
    },
];

/// `clientip()` and `peerhost()`: the same column.
fn peerhost(_: &[Value], env: &dyn Env) -> Result<Value, OpError> {
    Ok(env.column("peerhost"))
}

fn topic(a: &[Value], env: &dyn Env) -> Result<Value, OpError> {
    let Some(level) = a.first() else {
        return Ok(env.column("topic"));
    };
    let n = count_arg("topic", "an integer level", level)?;
    let topic = env.column("topic");
    if topic.is_undefined() {
        return Ok(Value::Undefined);
    }
    let bytes = topic
        .as_binary()
        .ok_or_else(|| expects("topic", "a topic column that is a string", &topic))?;
    // emqx_topic:tokens/1: every level, empty ones too.
    let levels: Vec<&[u8]> = bytes.split(|b| *b == b'/').collect();
    usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| levels.get(i))
        .map(|level| Value::binary(level.to_vec()))
        .ok_or_else(|| {
            OpError(
                format!(
                    "topic(): level {n} is outside a topic of {} levels (levels count from 1)",
                    levels.len()
                )
                .into(),
            )
        })
}

fn payload(a: &[Value], env: &dyn Env) -> Result<Value, OpError> {
    let payload = env.column("payload");
    let Some(path) = a.first() else {
        return Ok(payload);
    };
    // EMQX's payload/1 matches only a payload that is a map; the path is
    // not even looked at otherwise.
    if !matches!(payload, Value::Object(_)) {
        return Ok(Value::Undefined);
    }
    let keys = key_path("payload", path)?;
    Ok(nested_get(&payload, &keys).unwrap_or(Value::Undefined))
}

/// `contains_topic` and `contains_topic_match` in EMQX 5: they search the
/// list for `#{topic := _}` maps, which rule values never are.
fn contains(f: &str, filters: &Value) -> Result<Value, OpError> {
    filters
        .as_array()
        .map(|_| Value::Bool(false))
        .ok_or_else(|| expects(f, "an array of topic filters", filters))
}

#[cfg(test)]
mod tests {
    use crate::funcs::testing::{TestEnv, call_in};
    use crate::json;
    use crate::value::Value;

    fn j(text: &str) -> Value {
        json::decode(text.as_bytes()).expect("json")
    }

    fn with(columns: Vec<(&'static str, Value)>) -> TestEnv {
        let mut env = TestEnv::default();
        env.columns = columns;
        env
    }

    /// A message.publish event's columns, as EMQX 5 gives them.
    fn publish() -> TestEnv {
        with(vec![
            ("id", Value::str("0006126E8F4A1B9CF4420000D4C20002")),
            ("qos", Value::Int(1)),
            ("topic", Value::str("topic/#")),
            ("flags", j(r#"{"dup":false,"retain":true}"#)),
            ("username", Value::str("feng")),
            ("peerhost", Value::str("127.0.0.1")),
            ("clientid", Value::str("clientid")),
            ("payload", Value::str(r#"{"a":{"b":1}}"#)),
        ])
    }

    fn ok(env: &TestEnv, name: &str, args: &[Value]) -> Value {
        call_in(env, name, args).unwrap_or_else(|e| panic!("{name}({args:?}): {e}"))
    }

    #[test]
    fn read_the_event() {
        let none = TestEnv::default();
        let msg = publish();
        // t_msgid, t_qos, t_topic, t_clientip, t_peerhost, t_username
        assert_eq!(ok(&none, "msgid", &[]), Value::Undefined);
        assert_eq!(
            ok(&msg, "msgid", &[]),
            Value::str("0006126E8F4A1B9CF4420000D4C20002")
        );
        assert_eq!(ok(&none, "qos", &[]), Value::Undefined);
        assert_eq!(ok(&msg, "qos", &[]), Value::Int(1));
        assert_eq!(ok(&msg, "topic", &[]), Value::str("topic/#"));
        assert_eq!(ok(&msg, "topic", &[Value::Int(1)]), Value::str("topic"));
        assert_eq!(ok(&none, "clientip", &[]), Value::Undefined);
        assert_eq!(ok(&msg, "clientip", &[]), Value::str("127.0.0.1"));
        assert_eq!(ok(&msg, "peerhost", &[]), Value::str("127.0.0.1"));
        assert_eq!(ok(&msg, "username", &[]), Value::str("feng"));
        // t_flags, t_flag
        assert_eq!(ok(&msg, "flags", &[]), j(r#"{"dup":false,"retain":true}"#));
        assert_eq!(ok(&none, "flags", &[]), j("{}"));
        assert_eq!(ok(&msg, "flag", &[Value::str("dup")]), Value::Bool(false));
        assert_eq!(ok(&msg, "flag", &[Value::str("retain")]), Value::Bool(true));
        assert_eq!(ok(&msg, "flag", &[Value::str("other")]), Value::Undefined);
        assert_eq!(ok(&none, "flag", &[Value::str("dup")]), Value::Undefined);
        assert_eq!(ok(&msg, "flag", &[Value::Int(1)]), Value::Undefined);
    }

    #[test]
    fn topic_levels_count_from_one() {
        let env = with(vec![("topic", Value::str("a//b/"))]);
        let level = |n| call_in(&env, "topic", &[Value::Int(n)]);
        assert_eq!(level(1), Ok(Value::str("a")));
        assert_eq!(level(2), Ok(Value::str("")));
        assert_eq!(level(3), Ok(Value::str("b")));
        assert_eq!(level(4), Ok(Value::str("")));
        assert!(level(5).is_err());
        assert!(level(0).is_err());
        assert!(call_in(&env, "topic", &[Value::str("1")]).is_err());
        assert_eq!(
            call_in(&TestEnv::default(), "topic", &[Value::Int(9)]),
            Ok(Value::Undefined)
        );
    }

    #[test]
    fn payload_paths_need_an_object_payload() {
        // t_payload: a map payload is looked into; a binary one is not.
        let msg = publish();
        assert_eq!(ok(&msg, "payload", &[]), Value::str(r#"{"a":{"b":1}}"#));
        assert_eq!(ok(&msg, "payload", &[Value::str("a.b")]), Value::Undefined);
        let map = with(vec![("payload", j(r#"{"a":{"b":{"c":"c"}}}"#))]);
        assert_eq!(ok(&map, "payload", &[Value::str("a.b.c")]), Value::str("c"));
        assert_eq!(ok(&map, "payload", &[Value::str("a.x")]), Value::Undefined);
        assert!(call_in(&map, "payload", &[Value::Int(1)]).is_err());
        assert_eq!(ok(&msg, "payload", &[Value::Int(1)]), Value::Undefined);
    }

    #[test]
    fn contains_topic_is_false_as_in_emqx_5() {
        let env = TestEnv::default();
        let filters = j(r#"[{"topic":"t/1","qos":1},{"topic":"t/#","qos":0}]"#);
        for name in ["contains_topic", "contains_topic_match"] {
            assert_eq!(
                ok(&env, name, &[filters.clone(), Value::str("t/1")]),
                Value::Bool(false)
            );
            assert_eq!(
                ok(
                    &env,
                    name,
                    &[filters.clone(), Value::str("t/1"), Value::Int(1)]
                ),
                Value::Bool(false)
            );
            assert!(call_in(&env, name, &[Value::str("t/1"), Value::str("t/1")]).is_err());
        }
    }
}
