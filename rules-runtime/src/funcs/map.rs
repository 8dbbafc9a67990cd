//! Map functions: `map_get`, `map_put` (dotted key paths), `mget`, `mput`,
//! `map_keys`, `map_values`, `map_to_entries`, `map_new`, and `map()`, the
//! conversion.
//!
//! `map_get` and `map_put` follow EMQX's `emqx_rule_maps`: a binary met
//! along the path is read as JSON (decoded again if it decodes to a
//! string), a path that finds nothing gives the default, and `map_put`
//! builds the objects its path needs, replacing whatever is not an object
//! (a JSON text among them: EMQX does not write into it). The others
//! convert their map argument with `map()`, which takes an object or the
//! JSON text of one and refuses anything else.
//!
//! Keys are text, as every key of a JSON object is; EMQX's key order is
//! Erlang's map order, which is by key for maps of up to 32 keys (the
//! order weir always uses) and a hash order beyond.

use super::string::{Where, binary_text, split_str};
use super::{Func, expects};
use crate::json;
use crate::path;
use crate::program::PutStep;
use crate::value::{Map, OpError, Value};

pub(super) const FUNCS: &[Func] = &[
    Func {
        name: "map_new",
        arity: (0, 0),
        signature: "map_new()",
        doc: "an empty object",
        call: |_, _| Ok(Value::object(Map::new())),
    },
    Func {
        name: "map_get",
        arity: (2, 3),
        signature: "map_get(key, map[, default])",
        doc: "the value at the dotted key path ('a.b.c') in map (an object or JSON text); default (undefined) when there is none",
        call: |a, _| {
            let keys = key_path("map_get", &a[0])?;
            Ok(nested_get(&a[1], &keys)
                .unwrap_or_else(|| a.get(2).cloned().unwrap_or(Value::Undefined)))
        },
    },
    Func {
        name: "map_put",
        arity: (3, 3),
        signature: "map_put(key, value, map)",
        doc: "map with value put at the dotted key path ('a.b.c'), creating the objects the path needs",
        call: |a, _| {
            let keys = key_path("map_put", &a[0])?;
            Ok(nested_put(&keys, a[1].clone(), a[2].clone()))
        },
    },
    Func {
        name: "mget",
        arity: (2, 3),
        signature: "mget(key, map[, default])",
        doc: "the value of key (not a path) in map (an object or JSON text); default (undefined) when absent",
        call: |a, _| {
            let map = to_map("mget", &a[1])?;
            let found = key_text(&a[0]).and_then(|k| map.get(k.as_ref()).cloned());
            Ok(found.unwrap_or_else(|| a.get(2).cloned().unwrap_or(Value::Undefined)))
        },
    },
    Func {
        name: "mput",
        arity: (3, 3),
        signature: "mput(key, value, map)",
        doc: "map (an object or JSON text) with key (not a path) set to value",
        call: |a, _| {
            let mut map = to_map("mput", &a[2])?;
            let key = key_text(&a[0]).ok_or_else(|| expects("mput", "a string key", &a[0]))?;
            map.insert(key.into_owned(), a[1].clone());
            Ok(Value::object(map))
        },
    },
    Func {
        name: "map_keys",
        arity: (1, 1),
        signature: "map_keys(map)",
        doc: "the keys of map (an object or JSON text)",
        call: |a, _| {
            let map = to_map("map_keys", &a[0])?;
            Ok(Value::array(map.into_keys().map(Value::from).collect()))
        },
    },
    Func {
        name: "map_values",
        arity: (1, 1),
        signature: "map_values(map)",
        doc: "the values of map (an object or JSON text), in the order of their keys",
        call: |a, _| {
            let map = to_map("map_values", &a[0])?;
            Ok(Value::array(map.into_values().collect()))
        },
    },
    Func {
        name: "map_to_entries",
        arity: (1, 1),
        signature: "map_to_entries(map)",
        doc: "the members of map (an object or JSON text) as [{\"key\": k, \"value\": v}, ...]",
        call: |a, _| {
            let map = to_map("map_to_entries", &a[0])?;
            Ok(Value::array(
                map.into_iter()
                    .map(|(k, v)| {
                        Value::object(Map::from([
                            ("key".to_string(), Value::from(k)),
                            ("value".to_string(), v),
                        ]))
                    })
                    .collect(),
            ))
        },
    },
    Func {
        name: "map_size",
        arity: (1, 1),
        signature: "map_size(map)",
        doc: "the number of members of map (an object or JSON text)",
        call: |a, _| Ok(Value::from(to_map("map_size", &a[0])?.len() as i64)),
    },
    Func {
        name: "map",
        arity: (1, 1),
        signature: "map(x)",
        doc: "x as an object: an object as it is, the JSON text of an object decoded, [] as {}",
        call: |a, _| to_map("map", &a[0]).map(Value::object),
    },
];

/// EMQX's `map/1`: an object, the JSON text of an object, or an empty list
/// (`maps:from_list([])`); anything else fails.
pub(super) fn to_map(f: &str, v: &Value) -> Result<Map, OpError> {
    match v {
        Value::Object(m) => Ok(m.as_ref().clone()),
        Value::Str(_) | Value::Bytes(_) => match v.as_binary().map(json::decode) {
            Some(Ok(Value::Object(m))) => Ok(std::sync::Arc::unwrap_or_clone(m)),
            _ => Err(OpError(
                format!(
                    "{f}() expects an object or the JSON text of one, got a string that is not"
                )
                .into(),
            )),
        },
        Value::Array(items) if items.is_empty() => Ok(Map::new()),
        other => Err(expects(f, "an object or the JSON text of one", other)),
    }
}

/// A key as EMQX finds it in a map: a binary, or an atom by its name;
/// other keys find nothing (no JSON object has them).
fn key_text(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Value::Str(_) | Value::Bytes(_) => v.as_str().map(std::borrow::Cow::Borrowed),
        Value::Undefined | Value::Null | Value::Bool(_) => {
            v.atom_name().map(std::borrow::Cow::Borrowed)
        }
        _ => None,
    }
}

/// A dotted key path, split as EMQX's `map_path` splits it (every `.`, so
/// `a..b` has an empty key).
pub(super) fn key_path<'v>(f: &str, v: &'v Value) -> Result<Vec<&'v str>, OpError> {
    let text = binary_text(f, "a key path string", v)?;
    Ok(split_str(text, ".", Where::All))
}

/// `emqx_rule_maps:nested_get`: the value at `keys`, or `None` where the
/// path finds nothing (or finds undefined).
pub(super) fn nested_get(data: &Value, keys: &[&str]) -> Option<Value> {
    let steps: Vec<path::Get<'_>> = keys.iter().map(|k| path::Get::Key(k)).collect();
    Some(path::get(data, &steps)).filter(|v| !v.is_undefined())
}

/// `emqx_rule_maps:nested_put`: `data` with `value` at `keys`. A `data`
/// that is neither an object nor an array starts as an empty object;
/// undefined is never put.
pub(super) fn nested_put(keys: &[&str], value: Value, data: Value) -> Value {
    let data = match data {
        Value::Object(_) | Value::Array(_) => data,
        _ => Value::object(Map::new()),
    };
    let steps: Vec<PutStep> = keys.iter().map(|k| PutStep::Key((*k).to_owned())).collect();
    path::put(data, &steps, value)
}

#[cfg(test)]
mod tests {
    use crate::funcs::testing::call;
    use crate::json;
    use crate::value::Value;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    fn j(text: &str) -> Value {
        json::decode(text.as_bytes()).expect("json")
    }

    fn ok(name: &str, args: &[Value]) -> Value {
        call(name, args).unwrap_or_else(|e| panic!("{name}({args:?}): {e}"))
    }

    #[test]
    fn map_get_follows_dotted_paths() {
        // t_map_get
        assert_eq!(ok("map_get", &[s("a"), j(r#"{"a":1}"#)]), Value::Int(1));
        assert_eq!(ok("map_get", &[s("a"), j("{}")]), Value::Undefined);
        assert_eq!(
            ok("map_get", &[s("a.b"), j(r#"{"a":{"b":1}}"#)]),
            Value::Int(1)
        );
        assert_eq!(
            ok("map_get", &[s("a.c"), j(r#"{"a":{"b":1}}"#)]),
            Value::Undefined
        );
        // The documentation's examples.
        assert_eq!(
            ok(
                "map_get",
                &[s("msg"), ok("map", &[s(r#"{"msg": "hello"}"#)])]
            ),
            s("hello")
        );
        assert_eq!(
            ok("map_get", &[s("data"), j(r#"{"msg":"hello"}"#), s("")]),
            s("")
        );
        assert_eq!(
            ok(
                "map_get",
                &[s("value"), j(r#"{"data":[1.2,1.3]}"#), Value::array(vec![])]
            ),
            Value::array(vec![])
        );
        // JSON text is read along the way, twice-encoded text too.
        assert_eq!(
            ok("map_get", &[s("a.b"), s(r#"{"a":"{\"b\":2}"}"#)]),
            Value::Int(2)
        );
        assert_eq!(ok("map_get", &[s("a"), s(r#""{\"a\":3}""#)]), Value::Int(3));
        // JSON null is found; a path through it is not.
        assert_eq!(
            ok("map_get", &[s("a"), j(r#"{"a":null}"#), Value::Int(0)]),
            Value::Null
        );
        assert_eq!(
            ok("map_get", &[s("a.b"), j(r#"{"a":null}"#), Value::Int(0)]),
            Value::Int(0)
        );
        assert_eq!(
            ok("map_get", &[s("a"), Value::Int(5), Value::Int(0)]),
            Value::Int(0)
        );
        assert_eq!(
            ok("map_get", &[s("a..b"), j(r#"{"a":{"":{"b":1}}}"#)]),
            Value::Int(1)
        );
        assert!(call("map_get", &[Value::Int(1), j("{}")]).is_err());
    }

    #[test]
    fn map_put_builds_the_path() {
        // t_map_put
        let cases = [
            ("a", Value::Int(1), "{}", r#"{"a":1}"#),
            ("a", Value::Int(2), r#"{"a":1}"#, r#"{"a":2}"#),
            ("a.b", Value::Int(1), "{}", r#"{"a":{"b":1}}"#),
            (
                "a.c",
                Value::Int(1),
                r#"{"a":{"b":1}}"#,
                r#"{"a":{"b":1,"c":1}}"#,
            ),
            // Scalars and JSON text on the path are replaced by objects.
            ("a.b", Value::Int(1), r#"{"a":5}"#, r#"{"a":{"b":1}}"#),
            (
                "a.b",
                Value::Int(1),
                r#"{"a":"{\"x\":1}"}"#,
                r#"{"a":{"b":1}}"#,
            ),
            ("a", Value::Int(1), "[1]", r#"{"a":1}"#),
        ];
        for (key, value, map, want) in cases {
            assert_eq!(
                json::encode(&ok("map_put", &[s(key), value, j(map)])),
                want,
                "map_put({key}, .., {map})"
            );
        }
        // The documentation's example.
        let put = ok("map_put", &[s("a"), Value::Int(2), j(r#"{"a":1}"#)]);
        assert_eq!(ok("map_get", &[s("a"), put]), Value::Int(2));
        // Not a map: a fresh one (a JSON text too); undefined is not put.
        assert_eq!(
            json::encode(&ok("map_put", &[s("b"), Value::Int(1), s(r#"{"a":1}"#)])),
            r#"{"b":1}"#
        );
        assert_eq!(
            json::encode(&ok("map_put", &[s("b"), Value::Undefined, Value::Int(1)])),
            "{}"
        );
        assert_eq!(
            json::encode(&ok("map_put", &[s("b"), Value::Undefined, j("[1]")])),
            "[1]"
        );
        assert_eq!(
            json::encode(&ok(
                "map_put",
                &[s("a.b"), Value::Undefined, j(r#"{"a":1}"#)]
            )),
            r#"{"a":1}"#
        );
    }

    #[test]
    fn mget_and_mput_take_one_key() {
        // t_mget, t_mput
        assert_eq!(ok("mget", &[s("a"), j(r#"{"a":1}"#)]), Value::Int(1));
        assert_eq!(ok("mget", &[s("a"), j("{}")]), Value::Undefined);
        assert_eq!(
            ok("mget", &[s("a.b"), j(r#"{"a":{"b":1}}"#)]),
            Value::Undefined
        );
        assert_eq!(ok("mget", &[s("a.b"), j(r#"{"a.b":3}"#)]), Value::Int(3));
        assert_eq!(
            ok("mget", &[s("x"), s(r#"{"a":1}"#), Value::Int(9)]),
            Value::Int(9)
        );
        assert_eq!(
            ok("mget", &[Value::Bool(true), j(r#"{"true":1}"#)]),
            Value::Int(1)
        );
        assert_eq!(
            ok("mget", &[Value::Int(1), j(r#"{"1":1}"#)]),
            Value::Undefined
        );
        assert_eq!(
            ok("mget", &[s("a"), Value::array(vec![])]),
            Value::Undefined
        );
        assert_eq!(
            json::encode(&ok("mput", &[s("a"), Value::Int(1), j("{}")])),
            r#"{"a":1}"#
        );
        assert_eq!(
            json::encode(&ok("mput", &[s("a"), Value::Int(2), s(r#"{"a":1,"b":0}"#)])),
            r#"{"a":2,"b":0}"#
        );
        assert_eq!(
            json::encode(&ok("mput", &[s("a.b"), Value::Int(2), j("{}")])),
            r#"{"a.b":2}"#
        );
        // EMQX's map() refuses what is not a map.
        for bad in [Value::Undefined, Value::Int(1), s("a"), s("[1]"), j("[1]")] {
            assert!(call("mget", &[s("a"), bad.clone()]).is_err(), "{bad:?}");
            assert!(call("mput", &[s("a"), Value::Int(1), bad]).is_err());
        }
        assert!(call("mput", &[Value::Int(1), Value::Int(1), j("{}")]).is_err());
    }

    #[test]
    fn keys_values_entries_and_conversion() {
        let m = j(r#"{"b":2,"a":1}"#);
        // The documentation's examples.
        assert_eq!(
            ok("map_keys", std::slice::from_ref(&m)),
            Value::array(vec![s("a"), s("b")])
        );
        assert_eq!(
            ok("map_values", std::slice::from_ref(&m)),
            Value::array(vec![Value::Int(1), Value::Int(2)])
        );
        assert_eq!(
            json::encode(&ok("map_to_entries", std::slice::from_ref(&m))),
            r#"[{"key":"a","value":1},{"key":"b","value":2}]"#
        );
        assert_eq!(
            ok("map_keys", &[s(r#"{"x":1}"#)]),
            Value::array(vec![s("x")])
        );
        // t_map
        assert_eq!(ok("map", &[s(r#"{"a":1}"#)]), j(r#"{"a":1}"#));
        assert_eq!(ok("map", std::slice::from_ref(&m)), m);
        assert_eq!(ok("map", &[Value::array(vec![])]), j("{}"));
        for bad in [s("a"), Value::Float(1.0), s("[1]"), Value::Undefined] {
            assert!(call("map", std::slice::from_ref(&bad)).is_err(), "{bad:?}");
        }
        assert_eq!(json::encode(&ok("map_new", &[])), "{}");
    }
}
