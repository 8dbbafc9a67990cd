//! Conversions between values, as EMQX makes them: the text of any value
//! (`str()`, templates, concatenation), and `int()`, `float()`, `bool()`.
//!
//! These are the conversions EMQX applies implicitly too (a number compared
//! with a numeric string, a float pasted into a template), so every place
//! that needs one calls these and nothing else.

use crate::json;
use crate::value::{OpError, Value, big_to_f64, float_trunc_to_big};
use num_bigint::BigInt;

/// The text of a value as EMQX's `bin/1` gives it: binaries as they are,
/// integers in decimal, floats with at most 10 decimals (`0.3333333333`,
/// `1.0`), atoms by name (`true`, `null`, `undefined`), objects as JSON, and
/// arrays as JSON unless they are a list of printable character codes
/// (Erlang's strings), which become that text.
pub fn bin(v: &Value) -> Vec<u8> {
    match v {
        Value::Str(s) => s.as_bytes().to_vec(),
        Value::Bytes(b) => b.to_vec(),
        Value::Int(n) => itoa::Buffer::new().format(*n).as_bytes().to_vec(),
        Value::Big(b) => b.to_string().into_bytes(),
        Value::Float(x) => float_text(*x, 10).into_bytes(),
        Value::Undefined | Value::Null | Value::Bool(_) => {
            v.atom_name().unwrap_or_default().as_bytes().to_vec()
        }
        Value::Object(_) => json::encode(v).into_bytes(),
        Value::Array(items) => match printable_chars(items) {
            Some(text) => text.into_bytes(),
            None => json::encode(v).into_bytes(),
        },
    }
}

/// [`bin`] as UTF-8 text (invalid UTF-8 in a binary replaced by U+FFFD).
pub fn text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        other => String::from_utf8(bin(other))
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// A list that Erlang's `io_lib:printable_list/1` accepts (Latin-1
/// printable character codes; the empty list too), as the text it stands
/// for.
fn printable_chars(items: &[Value]) -> Option<String> {
    items
        .iter()
        .map(|item| match item {
            Value::Int(c @ (8..=13 | 27 | 32..=126 | 160..=255)) => {
                char::from_u32(u32::try_from(*c).ok()?)
            }
            _ => None,
        })
        .collect()
}

/// `float_to_binary(X, [{decimals, D}, compact])`: fixed notation rounded to
/// `decimals` places, trailing zeros dropped but one kept (`1.0`).
pub fn float_text(x: f64, decimals: usize) -> String {
    let mut s = format!("{x:.decimals$}");
    if decimals == 0 {
        s.push_str(".0");
        return s;
    }
    while s.ends_with('0') && !s.ends_with(".0") {
        s.pop();
    }
    s
}

/// Erlang's `binary_to_integer/1`: an optional sign and decimal digits,
/// nothing else (no spaces, no fraction).
pub fn parse_integer(text: &str) -> Option<Value> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if let Ok(n) = text.parse::<i64>() {
        return Some(Value::Int(n));
    }
    text.trim_start_matches('+')
        .parse::<BigInt>()
        .ok()
        .map(Value::from_big)
}

/// Erlang's `binary_to_float/1`: digits, a point, digits, and an optional
/// exponent (`1.5`, `-2.0e3`); `1`, `.5`, `1.` and `1e3` are not floats.
pub fn parse_float(text: &str) -> Option<f64> {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (whole, fraction) = mantissa.split_once('.')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    if let Some(e) = exponent
        && !all_digits(e.strip_prefix(['+', '-']).unwrap_or(e))
    {
        return None;
    }
    text.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// A numeric string as EMQX reads it when comparing it with a number or
/// converting it: an integer, else a float; an error otherwise (EMQX's
/// `badarg`).
pub fn number_of_text(text: &str) -> Result<Value, OpError> {
    parse_integer(text)
        .or_else(|| parse_float(text).map(Value::Float))
        .ok_or_else(|| OpError(format!("`{}` is not a number", clip(text)).into()))
}

/// `int(X)`: integers as they are, floats rounded down (`int(-1.5)` is
/// -2), numeric text parsed (an integer, else a float rounded down),
/// `true` 1 and `false` 0.
pub fn to_int(v: &Value) -> Result<Value, OpError> {
    match v {
        Value::Int(_) | Value::Big(_) => Ok(v.clone()),
        Value::Float(x) => Ok(floor_to_int(*x)),
        Value::Bool(b) => Ok(Value::Int(i64::from(*b))),
        Value::Str(_) | Value::Bytes(_) => {
            let text = v
                .as_str()
                .ok_or_else(|| OpError::new("int(): the text is not valid UTF-8"))?;
            match parse_integer(text) {
                Some(n) => Ok(n),
                None => parse_float(text).map(floor_to_int).ok_or_else(|| {
                    OpError(format!("int(): `{}` is not a number", clip(text)).into())
                }),
            }
        }
        other => Err(OpError(
            format!("int() cannot convert {}", other.kind()).into(),
        )),
    }
}

/// The largest integer not above `x`.
pub fn floor_to_int(x: f64) -> Value {
    let f = x.floor();
    if f.abs() < 9.0e18 {
        Value::Int(f as i64)
    } else {
        float_trunc_to_big(f).map_or(Value::Undefined, Value::from_big)
    }
}

/// `float(X)`: numbers as floats, numeric text parsed (a float, else an
/// integer).
pub fn to_float(v: &Value) -> Result<f64, OpError> {
    match v {
        Value::Float(x) => Ok(*x),
        Value::Int(n) => Ok(*n as f64),
        Value::Big(b) => {
            let x = big_to_f64(b);
            if x.is_finite() {
                Ok(x)
            } else {
                Err(OpError::new(
                    "float(): the integer is too large for a float",
                ))
            }
        }
        Value::Str(_) | Value::Bytes(_) => {
            let text = v
                .as_str()
                .ok_or_else(|| OpError::new("float(): the text is not valid UTF-8"))?;
            parse_float(text)
                .or_else(|| parse_integer(text).and_then(|n| n.to_f64()))
                .filter(|x| x.is_finite())
                .ok_or_else(|| OpError(format!("float(): `{}` is not a number", clip(text)).into()))
        }
        other => Err(OpError(
            format!("float() cannot convert {}", other.kind()).into(),
        )),
    }
}

/// `bool(X)`: `true`, `'true'` and 1 (or 1.0) are true; `false`, `'false'`
/// and 0 are false; anything else is an error.
pub fn to_bool(v: &Value) -> Result<bool, OpError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Str(_) | Value::Bytes(_) => match v.as_binary() {
            Some(b"true") => Ok(true),
            Some(b"false") => Ok(false),
            _ => Err(OpError(
                format!(
                    "bool(): `{}` is not true or false",
                    clip(&v.as_text_lossy().unwrap_or_default())
                )
                .into(),
            )),
        },
        n if n.is_number() && n.loose_eq(&Value::Int(1)) => Ok(true),
        n if n.is_number() && n.loose_eq(&Value::Int(0)) => Ok(false),
        other => Err(OpError(
            format!("bool() cannot convert {}", other.kind()).into(),
        )),
    }
}

/// The first characters of a text, for error messages.
pub fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: Value) -> String {
        text(&v)
    }

    #[test]
    fn text_is_emqx_bin() {
        assert_eq!(t(Value::Float(1.0 / 3.0)), "0.3333333333");
        assert_eq!(t(Value::Float(1.0)), "1.0");
        assert_eq!(t(Value::Float(-0.5)), "-0.5");
        assert_eq!(t(Value::Float(1e21)), "1000000000000000000000.0");
        assert_eq!(t(Value::Float(1e-11)), "0.0");
        assert_eq!(t(Value::Int(-42)), "-42");
        assert_eq!(t(Value::Undefined), "undefined");
        assert_eq!(t(Value::Null), "null");
        assert_eq!(t(Value::Bool(true)), "true");
        assert_eq!(t(Value::array(vec![])), "");
        assert_eq!(
            t(Value::array(vec![Value::Int(104), Value::Int(105)])),
            "hi"
        );
        assert_eq!(
            t(Value::array(vec![Value::str("a"), Value::Int(1)])),
            r#"["a",1]"#
        );
    }

    #[test]
    fn numbers_parse_as_erlang_does() {
        assert_eq!(parse_integer("-42"), Some(Value::Int(-42)));
        assert_eq!(parse_integer("+7"), Some(Value::Int(7)));
        assert_eq!(parse_integer(" 1"), None);
        assert_eq!(parse_integer("1.0"), None);
        assert!(matches!(
            parse_integer("123456789012345678901234567890"),
            Some(Value::Big(_))
        ));
        assert_eq!(parse_float("1.5"), Some(1.5));
        assert_eq!(parse_float("-2.0e3"), Some(-2000.0));
        for bad in ["1", "1e3", ".5", "1.", "1.5 ", "abc"] {
            assert_eq!(parse_float(bad), None, "{bad}");
        }
    }

    #[test]
    fn conversions_follow_emqx() {
        assert_eq!(to_int(&Value::Float(-1.5)), Ok(Value::Int(-2)));
        assert_eq!(to_int(&Value::str("1.7")), Ok(Value::Int(1)));
        assert_eq!(to_int(&Value::str("-42")), Ok(Value::Int(-42)));
        assert!(to_int(&Value::str(" 42 ")).is_err());
        assert_eq!(to_int(&Value::Bool(true)), Ok(Value::Int(1)));
        assert_eq!(to_float(&Value::str("3")), Ok(3.0));
        assert_eq!(to_float(&Value::str("3.5")), Ok(3.5));
        assert_eq!(to_bool(&Value::Float(1.0)), Ok(true));
        assert_eq!(to_bool(&Value::str("false")), Ok(false));
        assert!(to_bool(&Value::Int(2)).is_err());
        assert!(to_bool(&Value::str("yes")).is_err());
    }
}
