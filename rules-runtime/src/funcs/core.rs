//! Type conversion and type tests: `str`, `int`, `float`, `bool`,
//! `is_null`, `is_str`, ... (EMQX's "data type conversion" and "data type
//! judgment" functions).

use super::{Env, Func, expects};
use crate::conv;
use crate::value::{OpError, Value};

pub(super) const FUNCS: &[Func] = &[
    Func {
        name: "str",
        arity: (1, 1),
        signature: "str(x)",
        doc: "x as text: numbers in decimal (floats with at most 10 decimals), objects and arrays as JSON, atoms by name",
        call: |a, _| Ok(Value::binary(conv::bin(&a[0]))),
    },
    Func {
        name: "str_utf8",
        arity: (1, 1),
        signature: "str_utf8(x)",
        doc: "x as UTF-8 text, like str(x)",
        call: str_utf8,
    },
    Func {
        name: "str_utf16_le",
        arity: (1, 1),
        signature: "str_utf16_le(x)",
        doc: "the text of x, as str() gives it, encoded as UTF-16 little-endian bytes",
        call: str_utf16_le,
    },
    Func {
        name: "int",
        arity: (1, 1),
        signature: "int(x)",
        doc: "x as an integer: floats rounded down, numeric text parsed, true 1 and false 0",
        call: |a, _| conv::to_int(&a[0]),
    },
    Func {
        name: "float",
        arity: (1, 2),
        signature: "float(x[, decimals])",
        doc: "x as a float (numeric text parsed), rounded to decimals places when given",
        call: float,
    },
    Func {
        name: "float2str",
        arity: (2, 2),
        signature: "float2str(x, decimals)",
        doc: "the float x as text with at most decimals decimals (trailing zeros dropped)",
        call: float2str,
    },
    Func {
        name: "bool",
        arity: (1, 1),
        signature: "bool(x)",
        doc: "x as a boolean: true, 'true' and 1 are true; false, 'false' and 0 are false",
        call: |a, _| conv::to_bool(&a[0]).map(Value::Bool),
    },
    Func {
        name: "is_null",
        arity: (1, 1),
        signature: "is_null(x)",
        doc: "whether x is undefined (an absent column or a path that finds nothing; JSON null is not)",
        call: |a, _| Ok(Value::Bool(a[0].is_undefined())),
    },
    Func {
        name: "is_not_null",
        arity: (1, 1),
        signature: "is_not_null(x)",
        doc: "whether x is not undefined",
        call: |a, _| Ok(Value::Bool(!a[0].is_undefined())),
    },
    Func {
        name: "is_null_var",
        arity: (1, 1),
        signature: "is_null_var(x)",
        doc: "whether x is undefined or JSON null",
        call: |a, _| Ok(Value::Bool(a[0].is_nullish())),
    },
    Func {
        name: "is_not_null_var",
        arity: (1, 1),
        signature: "is_not_null_var(x)",
        doc: "whether x is neither undefined nor JSON null",
        call: |a, _| Ok(Value::Bool(!a[0].is_nullish())),
    },
    Func {
        name: "is_str",
        arity: (1, 1),
        signature: "is_str(x)",
        doc: "whether x is a string (a binary)",
        call: |a, _| Ok(Value::Bool(a[0].is_binary())),
    },
    Func {
        name: "is_bool",
        arity: (1, 1),
        signature: "is_bool(x)",
        doc: "whether x is true or false",
        call: |a, _| Ok(Value::Bool(matches!(a[0], Value::Bool(_)))),
    },
    Func {
        name: "is_int",
        arity: (1, 1),
        signature: "is_int(x)",
        doc: "whether x is an integer",
        call: |a, _| Ok(Value::Bool(a[0].is_integer())),
    },
    Func {
        name: "is_float",
        arity: (1, 1),
        signature: "is_float(x)",
        doc: "whether x is a float",
        call: |a, _| Ok(Value::Bool(matches!(a[0], Value::Float(_)))),
    },
    Func {
        name: "is_num",
        arity: (1, 1),
        signature: "is_num(x)",
        doc: "whether x is a number",
        call: |a, _| Ok(Value::Bool(a[0].is_number())),
    },
    Func {
        name: "is_map",
        arity: (1, 1),
        signature: "is_map(x)",
        doc: "whether x is an object (a JSON string is not)",
        call: |a, _| Ok(Value::Bool(matches!(a[0], Value::Object(_)))),
    },
    Func {
        name: "is_array",
        arity: (1, 1),
        signature: "is_array(x)",
        doc: "whether x is an array",
        call: |a, _| Ok(Value::Bool(matches!(a[0], Value::Array(_)))),
    },
    Func {
        name: "is_empty",
        arity: (1, 1),
        signature: "is_empty(x)",
        doc: "whether x is an empty array, an empty object or the JSON text of an empty object",
        call: is_empty,
    },
    Func {
        name: "coalesce",
        arity: (1, 2),
        signature: "coalesce(array) | coalesce(a, b)",
        doc: "the first value that is not undefined (undefined when there is none)",
        call: |a, _| first_present("coalesce", a, |v| !v.is_undefined()),
    },
    Func {
        name: "coalesce_ne",
        arity: (1, 2),
        signature: "coalesce_ne(array) | coalesce_ne(a, b)",
        doc: "the first value that is neither undefined nor the empty string",
        call: |a, _| {
            first_present("coalesce_ne", a, |v| {
                !v.is_undefined() && v.as_binary() != Some(&b""[..])
            })
        },
    },
    Func {
        name: "null",
        arity: (0, 0),
        signature: "null()",
        doc: "undefined",
        call: |_, _| Ok(Value::Undefined),
    },
];

/// The text of `v` as `str()` gives it, which must be UTF-8.
fn utf8_text(f: &str, v: &Value) -> Result<String, OpError> {
    String::from_utf8(conv::bin(v))
        .map_err(|_| OpError(format!("{f}(): the value is not valid UTF-8 text").into()))
}

fn str_utf8(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    utf8_text("str_utf8", &a[0]).map(Value::from)
}

fn str_utf16_le(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let text = utf8_text("str_utf16_le", &a[0])?;
    Ok(Value::binary(
        text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
    ))
}

/// EMQX's `is_empty/1`: arrays and objects by their length, text as the
/// JSON of an object (`map/1`); anything else is refused.
fn is_empty(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    match &a[0] {
        Value::Array(items) => Ok(Value::Bool(items.is_empty())),
        other => super::map::to_map("is_empty", other).map(|m| Value::Bool(m.is_empty())),
    }
}

/// `coalesce`/`coalesce_ne`: EMQX defines both over a list, and the
/// two-argument forms as that list of two.
fn first_present(f: &str, a: &[Value], keep: fn(&Value) -> bool) -> Result<Value, OpError> {
    Ok(super::list_or_args(f, a)?
        .iter()
        .find(|v| keep(v))
        .cloned()
        .unwrap_or(Value::Undefined))
}

fn float(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let x = conv::to_float(&a[0])?;
    match a.get(1) {
        None => Ok(Value::Float(x)),
        Some(Value::Int(d)) if *d > 0 => {
            let decimals = usize::try_from(*d).unwrap_or(usize::MAX).min(253);
            let rounded: f64 = format!("{x:.decimals$}")
                .parse()
                .map_err(|_| OpError::new("float(): cannot round the value"))?;
            Value::float(rounded)
        }
        Some(other) => Err(expects("float", "a positive number of decimals", other)),
    }
}

fn float2str(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let Value::Float(x) = a[0] else {
        return Err(expects("float2str", "a float", &a[0]));
    };
    match a[1] {
        Value::Int(d @ 0..=253) => Ok(Value::from(conv::float_text(
            x,
            usize::try_from(d).unwrap_or(0),
        ))),
        ref other => Err(expects(
            "float2str",
            "a number of decimals from 0 to 253",
            other,
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::funcs::testing::call;
    use crate::value::Value;

    #[test]
    fn emptiness_and_coalescing_as_emqx_rule_funcs_suite_has_them() {
        let arr = |v: Vec<Value>| Value::array(v);
        for (x, empty) in [
            (arr(vec![]), true),
            (Value::str("{}"), true),
            (arr(vec![Value::Int(1)]), false),
            (Value::str(r#"{"a" : "b"}"#), false),
        ] {
            assert_eq!(call("is_empty", &[x]), Ok(Value::Bool(empty)));
        }
        assert!(call("is_empty", &[Value::Int(1)]).is_err());
        let u = Value::Undefined;
        assert_eq!(call("coalesce", &[arr(vec![])]), Ok(Value::Undefined));
        assert_eq!(
            call(
                "coalesce",
                &[arr(vec![u.clone(), Value::Int(42), u.clone()])]
            ),
            Ok(Value::Int(42))
        );
        assert_eq!(
            call("coalesce", &[u.clone(), Value::str("world")]),
            Ok(Value::str("world"))
        );
        assert_eq!(
            call(
                "coalesce_ne",
                &[arr(vec![Value::str(""), u.clone(), Value::str("")])]
            ),
            Ok(Value::Undefined)
        );
        assert_eq!(
            call("coalesce_ne", &[Value::str(""), Value::str("world")]),
            Ok(Value::str("world"))
        );
        assert_eq!(
            call("str_utf16_le", &[Value::str("a你")]),
            Ok(Value::binary(vec![b'a', 0, 0x60, 0x4f]))
        );
        assert_eq!(
            call("str_utf16_le", &[Value::Float(2.0)]),
            Ok(Value::binary(vec![b'2', 0, b'.', 0, b'0', 0]))
        );
    }

    #[test]
    fn conversions_and_tests() {
        assert_eq!(
            call("str", &[Value::Float(1.0 / 3.0)]),
            Ok(Value::str("0.3333333333"))
        );
        assert_eq!(call("int", &[Value::Float(-1.5)]), Ok(Value::Int(-2)));
        assert_eq!(
            call("float", &[Value::str("1"), Value::Int(2)]),
            Ok(Value::Float(1.0))
        );
        assert_eq!(
            call("float", &[Value::Float(1.23456), Value::Int(2)]),
            Ok(Value::Float(1.23))
        );
        assert_eq!(call("is_null", &[Value::Null]), Ok(Value::Bool(false)));
        assert_eq!(call("is_null_var", &[Value::Null]), Ok(Value::Bool(true)));
        assert_eq!(call("is_int", &[Value::Float(1.0)]), Ok(Value::Bool(false)));
        assert_eq!(call("null", &[]), Ok(Value::Undefined));
        assert_eq!(
            call("float2str", &[Value::Float(20.2), Value::Int(10)]),
            Ok(Value::str("20.2"))
        );
        assert_eq!(
            call("float2str", &[Value::Float(1.23456), Value::Int(2)]),
            Ok(Value::str("1.23"))
        );
        assert!(call("float2str", &[Value::Int(1), Value::Int(2)]).is_err());
    }
}
