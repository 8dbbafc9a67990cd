//! The operators of rule SQL, with EMQX's semantics.
//!
//! Comparisons never give "unknown": a comparison with `undefined` on one
//! side is false (both sides `undefined`: as the atoms compare), a number
//! compared with a string reads the string as a number (an error when it is
//! not one), an atom compared with a string compares its name, and anything
//! else compares in Erlang's term order. Arithmetic is Erlang's: integers
//! never overflow, `/` always gives a float, `+` with a string on either
//! side concatenates texts, and an operand of the wrong type is an error
//! for the event.

use crate::conv;
use crate::value::{OpError, Value, term_cmp};
use num_bigint::BigInt;
use num_integer::Integer;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `=~`: the left side is a topic, the right side an MQTT topic filter.
    TopicMatch,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::TopicMatch => "=~",
        }
    }

    fn holds(self, o: Ordering) -> bool {
        match self {
            CmpOp::Eq => o == Ordering::Equal,
            CmpOp::Ne => o != Ordering::Equal,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Le => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Ge | CmpOp::TopicMatch => o != Ordering::Less,
        }
    }
}

/// Arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArithOp {
    /// Numbers add; with a string on either side, the texts concatenate.
    Add,
    Sub,
    Mul,
    /// Always a float, as Erlang's `/`.
    Div,
    /// `div`: integer division, truncating.
    IntDiv,
    /// `mod`: remainder with the sign of the dividend (Erlang's `rem`).
    Mod,
}

impl ArithOp {
    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::IntDiv => "div",
            ArithOp::Mod => "mod",
        }
    }
}

/// `a op b` as a comparison in EMQX's rule engine.
pub fn compare(op: CmpOp, a: &Value, b: &Value) -> Result<bool, OpError> {
    match (a, b) {
        (Value::Undefined, Value::Undefined) => {
            if op == CmpOp::TopicMatch {
                return Err(OpError::new(
                    "`=~` needs a topic and a topic filter, got undefined",
                ));
            }
            return Ok(op.holds(Ordering::Equal));
        }
        (Value::Undefined, _) | (_, Value::Undefined) => return Ok(false),
        _ => {}
    }
    // Implicit conversions, in EMQX's order.
    let converted;
    let (a, b) = match (a, b) {
        (n, s) if n.is_number() && s.is_binary() => {
            converted = number_of_binary(s)?;
            (a, &converted)
        }
        (s, n) if s.is_binary() && n.is_number() => {
            converted = number_of_binary(s)?;
            (&converted, b)
        }
        (atom, s) if atom.is_atom() && s.is_binary() => {
            converted = Value::str(atom.atom_name().unwrap_or_default());
            (&converted, b)
        }
        (s, atom) if s.is_binary() && atom.is_atom() => {
            converted = Value::str(atom.atom_name().unwrap_or_default());
            (a, &converted)
        }
        _ => (a, b),
    };
    if op == CmpOp::TopicMatch {
        return match (a.as_str(), b.as_str()) {
            (Some(topic), Some(filter)) => Ok(topic_matches(topic, filter)),
            _ => Err(OpError(
                format!(
                    "`=~` needs a topic and a topic filter, got {} and {}",
                    a.kind(),
                    b.kind()
                )
                .into(),
            )),
        };
    }
    Ok(op.holds(term_cmp(a, b, false)))
}

/// A string compared with a number, read as a number.
fn number_of_binary(s: &Value) -> Result<Value, OpError> {
    let text = s
        .as_str()
        .ok_or_else(|| OpError::new("cannot compare binary data with a number"))?;
    conv::number_of_text(text)
        .map_err(|e| OpError(format!("cannot compare with a number: {e}").into()))
}

/// `a op b`.
pub fn arith(op: ArithOp, a: &Value, b: &Value) -> Result<Value, OpError> {
    if op == ArithOp::Add && (a.is_binary() || b.is_binary()) {
        let mut out = conv::bin(a);
        out.extend_from_slice(&conv::bin(b));
        return Ok(Value::binary(out));
    }
    let bad = || {
        let wants = match op {
            ArithOp::IntDiv | ArithOp::Mod => "integers",
            _ => "numbers",
        };
        OpError(
            format!(
                "`{}` needs {wants}, got {} and {}",
                op.symbol(),
                a.kind(),
                b.kind()
            )
            .into(),
        )
    };
    if !a.is_number() || !b.is_number() {
        return Err(bad());
    }
    let zero = || OpError::new("division by zero");
    if let (Value::Int(x), Value::Int(y)) = (a, b) {
        let (x, y) = (*x, *y);
        let small = match op {
            ArithOp::Add => x.checked_add(y),
            ArithOp::Sub => x.checked_sub(y),
            ArithOp::Mul => x.checked_mul(y),
            ArithOp::Div if y == 0 => return Err(zero()),
            ArithOp::Div => return Value::float(x as f64 / y as f64),
            ArithOp::IntDiv | ArithOp::Mod if y == 0 => return Err(zero()),
            ArithOp::IntDiv => x.checked_div(y),
            ArithOp::Mod => Some(x.wrapping_rem(y)),
        };
        if let Some(r) = small {
            return Ok(Value::Int(r));
        }
    }
    match (a.to_bigint(), b.to_bigint()) {
        (Some(x), Some(y)) => {
            let r: BigInt = match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div | ArithOp::IntDiv | ArithOp::Mod if y == BigInt::ZERO => {
                    return Err(zero());
                }
                ArithOp::Div => {
                    return Value::float(
                        a.to_f64().unwrap_or(f64::NAN) / b.to_f64().unwrap_or(f64::NAN),
                    );
                }
                // Truncating division and its remainder, as Erlang's.
                ArithOp::IntDiv => {
                    let (q, _) = x.div_rem(&y);
                    q
                }
                ArithOp::Mod => {
                    let (_, r) = x.div_rem(&y);
                    r
                }
            };
            Ok(Value::from_big(r))
        }
        _ => {
            let (x, y) = (
                a.to_f64().unwrap_or(f64::NAN),
                b.to_f64().unwrap_or(f64::NAN),
            );
            match op {
                ArithOp::Add => Value::float(x + y),
                ArithOp::Sub => Value::float(x - y),
                ArithOp::Mul => Value::float(x * y),
                ArithOp::Div if y == 0.0 => Err(zero()),
                ArithOp::Div => Value::float(x / y),
                ArithOp::IntDiv | ArithOp::Mod => Err(bad()),
            }
        }
    }
}

/// `-a`.
pub fn neg(a: &Value) -> Result<Value, OpError> {
    match a {
        Value::Int(n) => Ok(n
            .checked_neg()
            .map_or_else(|| Value::from_big(-BigInt::from(*n)), Value::Int)),
        Value::Big(b) => Ok(Value::from_big(-b.as_ref().clone())),
        Value::Float(x) => Ok(Value::Float(-x)),
        other => Err(OpError(
            format!("`-` needs a number, got {}", other.kind()).into(),
        )),
    }
}

/// Whether `topic` matches the MQTT topic filter `filter`, as weir's one
/// matcher (`weir_guest_sdk::topic`) says: the rule runtime and the host's
/// router cannot disagree about `=~`.
pub fn topic_matches(topic: &str, filter: &str) -> bool {
    weir_guest_sdk::topic::matches(topic, filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    #[test]
    fn comparisons_follow_emqx() {
        let cmp = |op, a: Value, b: Value| compare(op, &a, &b);
        assert_eq!(cmp(CmpOp::Eq, Value::Int(-42), s("-42")), Ok(true));
        assert_eq!(cmp(CmpOp::Eq, s("1"), Value::Int(1)), Ok(true));
        assert_eq!(cmp(CmpOp::Gt, s("10"), Value::Int(9)), Ok(true));
        assert_eq!(cmp(CmpOp::Eq, Value::Int(1), Value::Float(1.0)), Ok(true));
        assert!(cmp(CmpOp::Eq, Value::Int(1), s("x")).is_err());
        assert_eq!(cmp(CmpOp::Eq, Value::Undefined, Value::Undefined), Ok(true));
        assert_eq!(cmp(CmpOp::Ne, Value::Undefined, Value::Int(1)), Ok(false));
        assert_eq!(cmp(CmpOp::Eq, Value::Undefined, Value::Int(1)), Ok(false));
        assert_eq!(cmp(CmpOp::Eq, Value::Bool(true), s("true")), Ok(true));
        assert_eq!(cmp(CmpOp::Lt, Value::Int(1), Value::Bool(true)), Ok(true));
        assert_eq!(cmp(CmpOp::Lt, s("a"), s("b")), Ok(true));
        assert_eq!(cmp(CmpOp::TopicMatch, s("t/1/x"), s("t/+/x")), Ok(true));
        let big1 = conv::parse_integer("12345678901234567890").expect("big");
        assert_eq!(
            cmp(CmpOp::Eq, big1, Value::Float(12345678901234567891.0)),
            Ok(false)
        );
    }

    #[test]
    fn arithmetic_is_erlangs() {
        let ar = |op, a: Value, b: Value| arith(op, &a, &b);
        assert_eq!(
            ar(ArithOp::Add, Value::Int(2), Value::Int(3)),
            Ok(Value::Int(5))
        );
        assert_eq!(
            ar(ArithOp::Div, Value::Int(5), Value::Int(2)),
            Ok(Value::Float(2.5))
        );
        assert_eq!(
            ar(ArithOp::IntDiv, Value::Int(-7), Value::Int(2)),
            Ok(Value::Int(-3))
        );
        assert_eq!(
            ar(ArithOp::Mod, Value::Int(-7), Value::Int(2)),
            Ok(Value::Int(-1))
        );
        assert_eq!(ar(ArithOp::Add, s("a"), Value::Int(1)), Ok(s("a1")));
        assert_eq!(ar(ArithOp::Add, Value::Float(0.5), s("a")), Ok(s("0.5a")));
        assert!(ar(ArithOp::Add, Value::Undefined, Value::Int(1)).is_err());
        assert_eq!(
            ar(ArithOp::Mul, Value::Int(i64::MAX), Value::Int(2)),
            Ok(conv::parse_integer("18446744073709551614").expect("big"))
        );
        assert!(ar(ArithOp::Div, Value::Int(1), Value::Int(0)).is_err());
        assert!(ar(ArithOp::Mul, Value::Float(1e308), Value::Int(10)).is_err());
        assert!(ar(ArithOp::Mod, Value::Float(1.0), Value::Int(1)).is_err());
        assert_eq!(
            neg(&Value::Int(i64::MIN)).map(|v| conv::text(&v)),
            Ok("9223372036854775808".into())
        );
    }

    #[test]
    fn topic_filters_match_as_mqtt_says() {
        for (topic, filter, want) in [
            ("a/b", "a/#", true),
            ("a", "a/#", true),
            ("a/b/c", "a/+/c", true),
            ("a/b/c", "a/+", false),
            ("$SYS/x", "#", false),
            ("$SYS/x", "$SYS/#", true),
            ("a//b", "a/+/b", true),
            ("a/b", "a/b/c", false),
        ] {
            assert_eq!(topic_matches(topic, filter), want, "{topic} {filter}");
        }
    }
}
