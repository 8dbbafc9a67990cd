//! Array functions: `nth`, `length`, `sublist`, `first`, `last`,
//! `contains` (EMQX's "array operation" functions, Erlang's `lists`).
//!
//! Positions count from 1. Where Erlang's `lists` raises (`nth` outside
//! the array, `first` of an empty one, a negative length), the rule fails
//! for the event. EMQX 5's variform expressions (not rule SQL) give `''`
//! for `nth` past the end; rule SQL fails.

use super::string::count_arg;
use super::{Env, Func, expects};
use crate::value::{OpError, Value};

pub(super) const FUNCS: &[Func] = &[
    Func {
        name: "nth",
        arity: (2, 2),
        signature: "nth(n, array)",
        doc: "element n of array (counting from 1); fails outside the array",
        call: nth,
    },
    Func {
        name: "length",
        arity: (1, 1),
        signature: "length(array)",
        doc: "the number of elements of array",
        call: |a, _| {
            let items = list("length", &a[0])?;
            Ok(Value::Int(i64::try_from(items.len()).unwrap_or(i64::MAX)))
        },
    },
    Func {
        name: "sublist",
        arity: (2, 3),
        signature: "sublist([start, ]length, array)",
        doc: "at most length elements of array, from element start (counting from 1; 1 unless given)",
        call: sublist,
    },
    Func {
        name: "first",
        arity: (1, 1),
        signature: "first(array)",
        doc: "the first element of array; fails on an empty array",
        call: |a, _| {
            list("first", &a[0])?
                .first()
                .cloned()
                .ok_or_else(|| OpError::new("first() expects a non-empty array"))
        },
    },
    Func {
        name: "last",
        arity: (1, 1),
        signature: "last(array)",
        doc: "the last element of array; fails on an empty array",
        call: |a, _| {
            list("last", &a[0])?
                .last()
                .cloned()
                .ok_or_else(|| OpError::new("last() expects a non-empty array"))
        },
    },
    Func {
        name: "contains",
        arity: (2, 2),
        signature: "contains(x, array)",
        doc: "whether x is an element of array (exactly: 1 is not 1.0)",
        call: |a, _| {
            let items = list("contains", &a[1])?;
            Ok(Value::Bool(items.iter().any(|i| i.exact_eq(&a[0]))))
        },
    },
];

fn list<'v>(f: &str, v: &'v Value) -> Result<&'v [Value], OpError> {
    v.as_array().ok_or_else(|| expects(f, "an array", v))
}

fn nth(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let n = count_arg("nth", "an integer position", &a[0])?;
    let items = list("nth", &a[1])?;
    usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| items.get(i))
        .cloned()
        .ok_or_else(|| {
            OpError(
                format!(
                    "nth(): position {n} is outside an array of {} (positions count from 1)",
                    items.len()
                )
                .into(),
            )
        })
}

/// Erlang's `lists:sublist/2,3`: a negative length fails, a start below 1
/// fails, a start past the end gives `[]`.
fn sublist(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let (start, length, array) = match a {
        [length, array] => (1, length, array),
        [start, length, array, ..] => (
            count_arg("sublist", "an integer start", start)?,
            length,
            array,
        ),
        _ => return Err(OpError::new("sublist() expects a length and an array")),
    };
    let length = count_arg("sublist", "an integer length", length)?;
    let items = list("sublist", array)?;
    if start < 1 {
        return Err(OpError(
            format!("sublist(): start {start} is not a position (positions count from 1)").into(),
        ));
    }
    let skip = usize::try_from(start - 1).unwrap_or(usize::MAX);
    if skip > items.len() {
        // lists:sublist/3 reaches the end before the start: [] whatever
        // the length.
        return Ok(Value::array(Vec::new()));
    }
    let take = usize::try_from(length).map_err(|_| {
        OpError(format!("sublist() expects a length of 0 or more, got {length}").into())
    })?;
    Ok(Value::array(
        items.iter().skip(skip).take(take).cloned().collect(),
    ))
}

#[cfg(test)]
mod tests {
    use crate::funcs::testing::call;
    use crate::json;
    use crate::value::Value;

    fn j(text: &str) -> Value {
        json::decode(text.as_bytes()).expect("json")
    }

    fn ok(name: &str, args: &[Value]) -> Value {
        call(name, args).unwrap_or_else(|e| panic!("{name}({args:?}): {e}"))
    }

    #[test]
    fn nth_and_length() {
        // t_nth, t_length
        assert_eq!(ok("nth", &[Value::Int(2), j("[1,2,3,4]")]), Value::Int(2));
        assert_eq!(ok("nth", &[Value::Int(4), j("[1,2,3,4]")]), Value::Int(4));
        assert_eq!(ok("length", &[j("[1,2,3,4]")]), Value::Int(4));
        assert_eq!(ok("length", &[j("[]")]), Value::Int(0));
        // The documentation's "wrong" examples: lists:nth fails.
        assert!(call("nth", &[Value::Int(0), j("[1,2,3]")]).is_err());
        assert!(call("nth", &[Value::Int(4), j("[1,2,3]")]).is_err());
        assert!(call("nth", &[Value::Int(-1), j("[1,2,3]")]).is_err());
        assert!(call("nth", &[Value::str("1"), j("[1,2,3]")]).is_err());
        assert!(call("nth", &[Value::Int(1), Value::str("[1]")]).is_err());
        assert!(call("length", &[Value::Undefined]).is_err());
    }

    #[test]
    fn sublist_is_lists_sublist() {
        // t_slice
        let cases: &[(&[i64], &str)] = &[
            (&[4], "[1,2,3,4]"),
            (&[2], "[1,2]"),
            (&[4, 1], "[4]"),
            (&[4, 2], "[4]"),
            (&[5, 2], "[]"),
            (&[2, 2], "[2,3]"),
            (&[1, 1], "[1]"),
            // The documentation's examples; a start far past the end.
            (&[10], "[1,2,3,4]"),
            (&[2, 10], "[2,3,4]"),
            (&[9, 2], "[]"),
            (&[9, -1], "[]"),
            (&[0], "[]"),
        ];
        for (numbers, want) in cases {
            let mut args: Vec<Value> = numbers.iter().map(|n| Value::Int(*n)).collect();
            args.push(j("[1,2,3,4]"));
            assert_eq!(
                json::encode(&ok("sublist", &args)),
                *want,
                "sublist({numbers:?})"
            );
        }
        assert!(call("sublist", &[Value::Int(-1), j("[1]")]).is_err());
        assert!(call("sublist", &[Value::Int(0), Value::Int(1), j("[1]")]).is_err());
        assert!(call("sublist", &[Value::Int(1), Value::Int(-1), j("[1]")]).is_err());
        assert!(call("sublist", &[Value::Int(1), Value::Null]).is_err());
    }

    #[test]
    fn first_last_contains() {
        // t_first_last, t_contains
        assert_eq!(ok("first", &[j("[1,2,3,4]")]), Value::Int(1));
        assert_eq!(ok("last", &[j("[1,2,3,4]")]), Value::Int(4));
        assert!(call("first", &[j("[]")]).is_err());
        assert!(call("last", &[j("[]")]).is_err());
        let contains = |x: Value, list: &str| ok("contains", &[x, j(list)]);
        assert_eq!(contains(Value::Int(1), "[1,2,3,4]"), Value::Bool(true));
        assert_eq!(contains(Value::Int(3), "[1,2,3,4]"), Value::Bool(true));
        assert_eq!(
            contains(Value::str("a"), r#"["","ab",3,"a"]"#),
            Value::Bool(true)
        );
        assert_eq!(
            contains(j(r#"{"a":"b"}"#), r#"[{"a":1},{"a":"b"}]"#),
            Value::Bool(true)
        );
        assert_eq!(
            contains(j(r#"{"a":"b"}"#), r#"[{"a":1}]"#),
            Value::Bool(false)
        );
        assert_eq!(contains(Value::Int(3), "[1,2]"), Value::Bool(false));
        assert_eq!(
            contains(Value::str("c"), r#"["","ab",3,"a"]"#),
            Value::Bool(false)
        );
        // The documentation's examples; exact membership.
        assert_eq!(
            contains(Value::Float(2.3), "[1.8,2.5,2.0]"),
            Value::Bool(false)
        );
        assert_eq!(
            contains(j("[1,2]"), r#"["a","b",[1,2]]"#),
            Value::Bool(true)
        );
        assert_eq!(contains(Value::Int(2), "[2.0]"), Value::Bool(false));
        assert!(call("contains", &[Value::Int(1), Value::Int(1)]).is_err());
    }
}
