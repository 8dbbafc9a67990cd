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
        name: "null",
        arity: (0, 0),
        signature: "null()",
        doc: "undefined",
        call: |_, _| Ok(Value::Undefined),
    },
];

fn str_utf8(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let bytes = conv::bin(&a[0]);
    match String::from_utf8(bytes) {
        Ok(s) => Ok(Value::from(s)),
        Err(_) => Err(OpError::new(
            "str_utf8(): the value is not valid UTF-8 text",
        )),
    }
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
