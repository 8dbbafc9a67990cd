//! Mathematical functions: `abs`, `ceil`, `floor`, `round`, `sqrt`, the
//! trigonometric, hyperbolic, exponential and logarithmic functions, `fmod`
//! and `power` (EMQX's "mathematical functions").
//!
//! EMQX hands these to Erlang's `math` module, so they take any number
//! (integers are converted to floats), give a float, and fail where the
//! result is not a finite number (`sqrt(-1)`, `log(0)`, `acos(2)`,
//! `exp(1000)`: Erlang's `badarith`). `ceil`, `floor` and `round` give
//! integers, exact however large the float. `abs` takes integers only, as
//! EMQX 5's `abs/1` does (its guard is `is_integer`; the documentation's
//! `abs(-1.2) = 1.2` is not what the code does).
//!
//! The native build computes with the platform's libm (glibc, as Erlang on
//! Linux does); the wasm build with Rust's port of musl's, whose results for
//! the transcendental functions can differ in the last bit.

use super::{Env, Func, expects};
use crate::value::{OpError, Value};
use crate::{conv, json};

/// A function of one number computed in floats, as Erlang's `math` does.
macro_rules! float_fn {
    ($name:literal, $doc:literal, $op:expr) => {
        Func {
            name: $name,
            arity: (1, 1),
            signature: concat!($name, "(x)"),
            doc: $doc,
            call: |a, _| unary($name, &a[0], $op),
        }
    };
}

pub(super) const FUNCS: &[Func] = &[
    Func {
        name: "abs",
        arity: (1, 1),
        signature: "abs(n)",
        doc: "the absolute value of the integer n",
        call: abs,
    },
    float_fn!("acos", "the arc cosine of x, in radians", f64::acos),
    float_fn!("acosh", "the inverse hyperbolic cosine of x", f64::acosh),
    float_fn!("asin", "the arc sine of x, in radians", f64::asin),
    float_fn!("asinh", "the inverse hyperbolic sine of x", f64::asinh),
    float_fn!("atan", "the arc tangent of x, in radians", f64::atan),
    float_fn!("atanh", "the inverse hyperbolic tangent of x", f64::atanh),
    Func {
        name: "ceil",
        arity: (1, 1),
        signature: "ceil(x)",
        doc: "the smallest integer not below x",
        call: |a, _| to_integer("ceil", &a[0], f64::ceil),
    },
    float_fn!("cos", "the cosine of x (in radians)", f64::cos),
    float_fn!("cosh", "the hyperbolic cosine of x", f64::cosh),
    float_fn!("exp", "e to the power x", f64::exp),
    Func {
        name: "floor",
        arity: (1, 1),
        signature: "floor(x)",
        doc: "the largest integer not above x",
        call: |a, _| to_integer("floor", &a[0], f64::floor),
    },
    Func {
        name: "fmod",
        arity: (2, 2),
        signature: "fmod(x, y)",
        doc: "the remainder of x / y as a float, with the sign of x",
        call: |a, _| binary("fmod", a, |x, y| x % y),
    },
    float_fn!("log", "the natural logarithm of x", f64::ln),
    float_fn!("log10", "the base-10 logarithm of x", f64::log10),
    float_fn!("log2", "the base-2 logarithm of x", f64::log2),
    Func {
        name: "power",
        arity: (2, 2),
        signature: "power(x, y)",
        doc: "x to the power y, as a float",
        call: |a, _| binary("power", a, f64::powf),
    },
    Func {
        name: "round",
        arity: (1, 1),
        signature: "round(x)",
        doc: "x rounded to the nearest integer, halves away from zero",
        call: |a, _| to_integer("round", &a[0], f64::round),
    },
    float_fn!("sin", "the sine of x (in radians)", f64::sin),
    float_fn!("sinh", "the hyperbolic sine of x", f64::sinh),
    float_fn!("sqrt", "the square root of x", f64::sqrt),
    float_fn!("tan", "the tangent of x (in radians)", f64::tan),
    float_fn!("tanh", "the hyperbolic tangent of x", f64::tanh),
];

fn abs(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    match &a[0] {
        Value::Int(n) if *n != i64::MIN => Ok(Value::Int(n.abs())),
        v @ (Value::Int(_) | Value::Big(_)) => Ok(Value::from_big(
            v.to_bigint().unwrap_or_default().magnitude().clone().into(),
        )),
        other => Err(expects("abs", "an integer", other)),
    }
}

/// A number as the float Erlang's `math` functions compute with (an
/// integer beyond the range of floats is Erlang's `badarg`).
fn number_arg(f: &str, v: &Value) -> Result<f64, OpError> {
    match v {
        Value::Int(_) | Value::Big(_) | Value::Float(_) => v
            .to_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| OpError(format!("{f}(): the integer is too large for a float").into())),
        other => Err(expects(f, "a number", other)),
    }
}

/// The result of `f(args)`, or an error where it is not a finite number.
fn finite(f: &str, args: &[Value], x: f64) -> Result<Value, OpError> {
    if x.is_finite() {
        return Ok(Value::Float(x));
    }
    let shown: Vec<String> = args.iter().map(json::encode).collect();
    Err(OpError(
        format!("{f}({}) has no finite result", shown.join(", ")).into(),
    ))
}

fn unary(f: &str, x: &Value, op: fn(f64) -> f64) -> Result<Value, OpError> {
    let n = number_arg(f, x)?;
    finite(f, std::slice::from_ref(x), op(n))
}

fn binary(f: &str, a: &[Value], op: fn(f64, f64) -> f64) -> Result<Value, OpError> {
    let (x, y) = (number_arg(f, &a[0])?, number_arg(f, &a[1])?);
    finite(f, a, op(x, y))
}

/// `ceil`, `floor`, `round`: integers as they are, floats rounded by `op`
/// to the exact integer.
fn to_integer(f: &str, v: &Value, op: fn(f64) -> f64) -> Result<Value, OpError> {
    match v {
        Value::Int(_) | Value::Big(_) => Ok(v.clone()),
        // op gives an integral float, which floor_to_int keeps exact.
        Value::Float(x) => Ok(conv::floor_to_int(op(*x))),
        other => Err(expects(f, "a number", other)),
    }
}

#[cfg(test)]
mod tests {
    use crate::funcs::testing::call;
    use crate::value::Value;
    use proptest::prelude::*;

    fn f(x: f64) -> Value {
        Value::Float(x)
    }

    fn i(n: i64) -> Value {
        Value::Int(n)
    }

    fn big(text: &str) -> Value {
        Value::from_big(text.parse().expect("a big integer"))
    }

    #[test]
    fn abs_takes_integers_of_any_size() {
        // EMQX docs: abs(-12) = 12.
        assert_eq!(call("abs", &[i(-12)]), Ok(i(12)));
        assert_eq!(call("abs", &[i(7)]), Ok(i(7)));
        assert_eq!(call("abs", &[i(i64::MIN)]), Ok(big("9223372036854775808")));
        assert_eq!(
            call("abs", &[big("-123456789012345678901234567890")]),
            Ok(big("123456789012345678901234567890"))
        );
        // abs/1's guard is is_integer: a float is a function_clause error.
        let err = call("abs", &[f(-1.2)]).expect_err("floats are refused");
        assert_eq!(err.0, "abs() expects an integer, got a float");
        assert!(call("abs", &[Value::str("-1")]).is_err());
    }

    #[test]
    fn float_functions_give_erlangs_values() {
        // The examples of EMQX's documentation of the built-in functions
        // (its acos(0.5) and asin(0.5) are not glibc's, which Erlang on Linux
        // uses: 1.0471975511965979 and 0.5235987755982989).
        let cases: &[(&str, &[Value], f64)] = &[
            ("cos", &[f(1.5)], 0.0707372016677029),
            ("cosh", &[f(1.5)], 2.352409615243247),
            ("acos", &[f(0.0707372016677029)], 1.5),
            ("acosh", &[f(2.352409615243247)], 1.5),
            ("sin", &[f(0.5)], 0.479425538604203),
            ("sinh", &[f(0.5)], 0.5210953054937474),
            ("asin", &[f(0.479425538604203)], 0.5),
            ("asinh", &[f(0.5210953054937474)], 0.5),
            ("tan", &[f(1.4)], 5.797883715482887),
            ("tanh", &[f(1.4)], 0.8853516482022625),
            ("atan", &[f(5.797883715482887)], 1.4),
            ("atanh", &[f(0.8853516482022625)], 1.4000000000000001),
            ("acosh", &[f(1.5)], 0.9624236501192069),
            ("asinh", &[f(0.5)], 0.48121182505960347),
            ("exp", &[i(10)], 22026.465794806718),
            ("power", &[i(2), i(10)], 1024.0),
            // 1.4142135623730951 in the documentation.
            ("sqrt", &[i(2)], std::f64::consts::SQRT_2),
            ("fmod", &[i(-32), i(5)], -2.0),
            ("log10", &[i(1000)], 3.0),
            ("log2", &[i(1024)], 10.0),
            ("log", &[i(1)], 0.0),
            ("power", &[f(2.0), f(0.5)], std::f64::consts::SQRT_2),
        ];
        for (name, args, want) in cases {
            assert_eq!(call(name, args), Ok(f(*want)), "{name}({args:?})");
        }
    }

    #[test]
    fn results_that_are_not_finite_numbers_fail() {
        // math:sqrt(-1), math:log(0), math:acos(2), ... raise badarith; the
        // SUITE's property test skips exp/sinh/cosh from 710 for that reason.
        let cases: &[(&str, &[Value])] = &[
            ("sqrt", &[i(-1)]),
            ("log", &[i(0)]),
            ("log10", &[f(-1.0)]),
            ("log2", &[i(0)]),
            ("acos", &[i(2)]),
            ("asin", &[f(-1.5)]),
            ("acosh", &[f(0.5)]),
            ("atanh", &[i(1)]),
            ("exp", &[i(710)]),
            ("sinh", &[i(711)]),
            ("cosh", &[i(-711)]),
            ("power", &[i(0), i(-1)]),
            ("power", &[i(-8), f(1.0 / 3.0)]),
            ("power", &[i(10), i(400)]),
            ("fmod", &[i(1), i(0)]),
        ];
        for (name, args) in cases {
            assert!(call(name, args).is_err(), "{name}({args:?})");
        }
        assert_eq!(
            call("sqrt", &[i(-1)]).expect_err("no square root").0,
            "sqrt(-1) has no finite result"
        );
    }

    #[test]
    fn float_functions_take_numbers_only() {
        let err = call("sqrt", &[Value::str("4")]).expect_err("text is refused");
        assert_eq!(err.0, "sqrt() expects a number, got a string");
        assert!(call("power", &[i(2), Value::Undefined]).is_err());
        assert!(call("cos", &[Value::Bool(true)]).is_err());
        // An integer beyond the floats is badarg in Erlang's float conversion.
        let huge = Value::from_big(num_bigint::BigInt::from(1) << 1100u32);
        assert!(call("sqrt", &[huge]).is_err());
        assert_eq!(
            call("sqrt", &[big("100000000000000000000000000000000")]),
            Ok(f(1e16))
        );
    }

    #[test]
    fn ceil_floor_round_give_exact_integers() {
        // EMQX docs: ceil(1.34) = 2, floor(1.34) = 1, round(1.34) = 1,
        // round(1.54) = 2.
        let cases: &[(&str, Value, Value)] = &[
            ("ceil", f(1.34), i(2)),
            ("floor", f(1.34), i(1)),
            ("round", f(1.34), i(1)),
            ("round", f(1.54), i(2)),
            ("ceil", f(-1.5), i(-1)),
            ("floor", f(-1.5), i(-2)),
            ("round", f(2.5), i(3)),
            ("round", f(-2.5), i(-3)),
            ("round", f(-0.4), i(0)),
            ("ceil", i(5), i(5)),
            (
                "floor",
                big("-99999999999999999999"),
                big("-99999999999999999999"),
            ),
            ("round", f(1e20), big("100000000000000000000")),
            ("floor", f(-1.5e19), big("-15000000000000000000")),
            ("ceil", f(9.007199254740993e15), i(9007199254740992)),
        ];
        for (name, arg, want) in cases {
            assert_eq!(
                call(name, std::slice::from_ref(arg)),
                Ok(want.clone()),
                "{name}({arg:?})"
            );
        }
        assert!(call("round", &[Value::str("1.5")]).is_err());
    }

    proptest! {
        // emqx_rule_funcs_SUITE:t_math_fun: for positive integers, each
        // function equals Erlang's math function of the same name, which
        // computes in doubles (exp, sinh, cosh only below 710).
        #[test]
        fn math_of_positive_integers(x in 1i64..100_000, y in 1i64..100) {
            let fx = x as f64;
            let want: &[(&str, Option<f64>)] = &[
                ("sin", Some(fx.sin())),
                ("cos", Some(fx.cos())),
                ("tan", Some(fx.tan())),
                ("atan", Some(fx.atan())),
                ("asinh", Some(fx.asinh())),
                ("acosh", Some(fx.acosh())),
                ("tanh", Some(fx.tanh())),
                ("sqrt", Some(fx.sqrt())),
                ("log", Some(fx.ln())),
                ("log2", Some(fx.log2())),
                ("log10", Some(fx.log10())),
                ("exp", (x < 710).then(|| fx.exp())),
                ("sinh", (x < 710).then(|| fx.sinh())),
                ("cosh", (x < 710).then(|| fx.cosh())),
            ];
            for (name, expected) in want {
                let got = call(name, &[i(x)]);
                match expected {
                    Some(v) => prop_assert_eq!(got, Ok(f(*v)), "{}({})", name, x),
                    None => prop_assert!(got.is_err()),
                }
            }
            prop_assert_eq!(call("fmod", &[i(x), i(y)]), Ok(f(fx % y as f64)));
            let pow = fx.powf(y as f64);
            if pow.is_finite() {
                prop_assert_eq!(call("power", &[i(x), i(y)]), Ok(f(pow)));
            } else {
                prop_assert!(call("power", &[i(x), i(y)]).is_err());
            }
        }

        #[test]
        fn rounding_agrees_with_floats(x in -1e15f64..1e15) {
            for (name, op) in [("ceil", x.ceil()), ("floor", x.floor()), ("round", x.round())] {
                prop_assert_eq!(call(name, &[f(x)]), Ok(i(op as i64)));
            }
        }
    }
}
