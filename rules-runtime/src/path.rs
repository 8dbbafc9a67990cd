//! Reading into and writing into nested values, as EMQX's rule engine does
//! (`payload.a.b[1]`, `SELECT x AS out.list[0]`).
//!
//! Indexes count from 1; a negative index counts from the end. A binary met
//! along a path is read as JSON, again if that gives a string (and a path
//! finds nothing in one that is not JSON: only a path rooted at the payload
//! column insists, see the evaluator). Writing creates the objects and
//! lists a path needs, replacing what is neither (as EMQX does, a JSON text
//! too), and never writes `undefined`. `map_get`, `map_put` and the
//! evaluator all go through here.

use crate::json;
use crate::program::PutStep;
use crate::value::{Map, OpError, Value};
use std::sync::Arc;

/// A step of a read, already evaluated.
#[derive(Debug, Clone)]
pub enum Get<'a> {
    Key(&'a str),
    /// An index; anything but a non-zero integer finds nothing.
    Index(Value),
}

/// The value at `steps` under `v`; `Undefined` when there is none.
pub fn get(v: &Value, steps: &[Get<'_>]) -> Value {
    let mut current = v.clone();
    for step in steps {
        current = get_one(&current, step);
        if current.is_undefined() {
            break;
        }
    }
    current
}

fn get_one(v: &Value, step: &Get<'_>) -> Value {
    match v {
        // A JSON string decodes to a shorter one, so this ends.
        Value::Str(_) | Value::Bytes(_) => match v.as_binary().map(json::decode) {
            Some(Ok(decoded)) => get_one(&decoded, step),
            _ => Value::Undefined,
        },
        Value::Object(map) => match step {
            Get::Key(k) => map.get(*k).cloned().unwrap_or(Value::Undefined),
            Get::Index(_) => Value::Undefined,
        },
        Value::Array(items) => match step {
            Get::Index(Value::Int(i)) => nth(items, *i).cloned().unwrap_or(Value::Undefined),
            _ => Value::Undefined,
        },
        _ => Value::Undefined,
    }
}

/// Element `i` (1-based, negative from the end) of a list.
pub fn nth(items: &[Value], i: i64) -> Option<&Value> {
    let len = i64::try_from(items.len()).ok()?;
    let at = match i {
        0 => return None,
        i if i > 0 => i - 1,
        i => len + i,
    };
    usize::try_from(at).ok().and_then(|at| items.get(at))
}

/// `v` with `value` put at `steps`. `undefined` is never put: the value
/// comes back unchanged.
pub fn put(v: Value, steps: &[PutStep], value: Value) -> Value {
    if value.is_undefined() {
        return v;
    }
    let Some((first, rest)) = steps.split_first() else {
        return value;
    };
    match first {
        PutStep::Key(k) => {
            let mut map = match v {
                Value::Object(m) => Arc::unwrap_or_clone(m),
                _ => Map::new(),
            };
            let inner = map.remove(k).unwrap_or(Value::Undefined);
            let inner = put(inner, rest, value);
            if !inner.is_undefined() {
                map.insert(k.clone(), inner);
            }
            Value::object(map)
        }
        step => {
            let mut items = match v {
                Value::Array(a) => Arc::unwrap_or_clone(a),
                // Anything but a list becomes a list of the value alone.
                _ => return Value::array(vec![put(Value::Undefined, rest, value)]),
            };
            match step {
                PutStep::Head => items.insert(0, put(Value::Undefined, rest, value)),
                PutStep::Tail => items.push(put(Value::Undefined, rest, value)),
                PutStep::Index(i) => {
                    let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
                    let at = if *i > 0 { *i - 1 } else { len + *i };
                    // Beyond the list: nothing changes.
                    if let Some(slot) = usize::try_from(at).ok().and_then(|at| items.get_mut(at)) {
                        let old = std::mem::replace(slot, Value::Undefined);
                        *slot = put(old, rest, value);
                    }
                }
                PutStep::Key(_) => {}
            }
            Value::array(items)
        }
    }
}

/// `[a..b]`: the integers from `a` to `b` (empty when `b < a`).
pub fn range(a: i64, b: i64) -> Result<Value, OpError> {
    const MAX: i64 = 1 << 20;
    if b >= a && b - a >= MAX {
        return Err(OpError::new("a range is limited to a million elements"));
    }
    Ok(Value::array((a..=b).map(Value::Int).collect()))
}

/// `x[a..b]`: elements `a` to `b` of a list (1-based, negative from the
/// end); an error for anything but a list, or an index of 0.
pub fn slice(v: &Value, a: i64, b: i64) -> Result<Value, OpError> {
    let Value::Array(items) = v else {
        return Err(OpError(
            format!("[{a}..{b}] needs an array, got {}", v.kind()).into(),
        ));
    };
    let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let index = |i: i64| -> Result<i64, OpError> {
        match i {
            0 => Err(OpError::new("range indexes start at 1 (0 is not an index)")),
            i if i > 0 => Ok(i),
            i => Ok(len + i + 1),
        }
    };
    let (from, to) = (index(a)?, index(b)?);
    // lists:sublist(List, From, To - From + 1).
    let count = to - from + 1;
    if from < 1 || count < 0 || from > len + 1 {
        return Err(OpError(
            format!("[{a}..{b}] is outside an array of {len}").into(),
        ));
    }
    let start = usize::try_from(from - 1).unwrap_or(usize::MAX);
    let take = usize::try_from(count).unwrap_or(0);
    Ok(Value::array(
        items.iter().skip(start).take(take).cloned().collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(text: &str) -> Value {
        json::decode(text.as_bytes()).expect("json")
    }

    #[test]
    fn reads_count_from_one_and_decode_binaries() {
        let v = j(r#"{"x": [1, 3, 4], "s": "{\"k\": 2}"}"#);
        let key = |k| Get::Key(k);
        let idx = |i| Get::Index(Value::Int(i));
        assert_eq!(get(&v, &[key("x"), idx(2)]), Value::Int(3));
        assert_eq!(get(&v, &[key("x"), idx(-1)]), Value::Int(4));
        assert_eq!(get(&v, &[key("x"), idx(0)]), Value::Undefined);
        assert_eq!(get(&v, &[key("x"), idx(4)]), Value::Undefined);
        assert_eq!(get(&v, &[key("s"), key("k")]), Value::Int(2));
        assert_eq!(get(&v, &[key("nope"), key("k")]), Value::Undefined);
        assert_eq!(
            get(&v, &[key("x"), Get::Index(Value::str("1"))]),
            Value::Undefined
        );
    }

    #[test]
    fn writes_build_what_the_path_needs() {
        let out = put(
            Value::Undefined,
            &[PutStep::Key("a".into()), PutStep::Key("b".into())],
            Value::Int(1),
        );
        assert_eq!(json::encode(&out), r#"{"a":{"b":1}}"#);
        let out = put(
            out,
            &[PutStep::Key("a".into()), PutStep::Key("c".into())],
            Value::Int(2),
        );
        assert_eq!(json::encode(&out), r#"{"a":{"b":1,"c":2}}"#);
        let same = put(out.clone(), &[PutStep::Key("z".into())], Value::Undefined);
        assert_eq!(same, out);
        let list = put(
            Value::Undefined,
            &[PutStep::Key("l".into()), PutStep::Head],
            Value::Int(1),
        );
        let list = put(
            list,
            &[PutStep::Key("l".into()), PutStep::Tail],
            Value::Int(2),
        );
        let list = put(
            list,
            &[PutStep::Key("l".into()), PutStep::Index(1)],
            Value::Int(9),
        );
        assert_eq!(json::encode(&list), r#"{"l":[9,2]}"#);
    }

    #[test]
    fn slices_and_ranges() {
        let v = j("[1,2,3,4]");
        assert_eq!(json::encode(&slice(&v, 2, 3).expect("ok")), "[2,3]");
        assert_eq!(json::encode(&slice(&v, 1, -1).expect("ok")), "[1,2,3,4]");
        assert!(slice(&v, 0, 2).is_err());
        assert!(slice(&Value::Int(1), 1, 2).is_err());
        assert_eq!(json::encode(&range(1, 3).expect("ok")), "[1,2,3]");
        assert_eq!(json::encode(&range(3, 1).expect("ok")), "[]");
    }
}
