//! The values rule expressions compute with: the terms EMQX's rule engine
//! computes with, in Rust.
//!
//! EMQX evaluates rule SQL over Erlang terms, and a rule means what it means
//! there only if weir's values behave like those terms: `undefined` (an
//! absent column, a path that finds nothing) is not JSON `null`, integers
//! have no size limit, a string and the payload are both binaries, and
//! values of different types still compare, in Erlang's term order. Each
//! variant below is one of those terms; `Str` and `Bytes` are both binaries
//! and differ only in how a JSON-aware record template writes them (a
//! `Bytes` value that holds JSON goes in as JSON).
//!
//! Values are cheap to clone (shared, immutable contents), so reading a
//! column or passing an argument copies no text.

use num_bigint::BigInt;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// An object's members, in the order EMQX's (small) maps keep them: by key.
pub type Map = BTreeMap<String, Value>;

/// A value of a rule expression.
#[derive(Debug, Clone)]
pub enum Value {
    /// EMQX's `undefined`: an absent column, a path that finds nothing, a
    /// `CASE` without a matching branch. SELECT leaves it out of its output.
    Undefined,
    /// JSON `null` (EMQX's atom `null`): what a JSON document says.
    Null,
    Bool(bool),
    Int(i64),
    /// An integer outside `i64` (EMQX's integers have no limit). Never holds
    /// a value that fits `Int`: use [`Value::from_big`].
    Big(Arc<BigInt>),
    /// Always finite: operations that would give NaN or an infinity fail,
    /// as in Erlang.
    Float(f64),
    /// A binary that is UTF-8 text.
    Str(Arc<str>),
    /// A binary as received (the payload): any bytes.
    Bytes(Arc<[u8]>),
    Array(Arc<Vec<Value>>),
    Object(Arc<Map>),
}

impl Value {
    pub fn str(s: impl Into<Arc<str>>) -> Value {
        Value::Str(s.into())
    }

    pub fn bytes(b: impl Into<Arc<[u8]>>) -> Value {
        Value::Bytes(b.into())
    }

    /// A binary: text when it is UTF-8 (so string functions take it as
    /// is), else bytes.
    pub fn binary(b: Vec<u8>) -> Value {
        match String::from_utf8(b) {
            Ok(s) => Value::Str(s.into()),
            Err(e) => Value::Bytes(e.into_bytes().into()),
        }
    }

    pub fn array(items: Vec<Value>) -> Value {
        Value::Array(Arc::new(items))
    }

    pub fn object(map: Map) -> Value {
        Value::Object(Arc::new(map))
    }

    /// A float, or an error when it is NaN or infinite (Erlang's
    /// `badarith`).
    pub fn float(x: f64) -> Result<Value, OpError> {
        if x.is_finite() {
            Ok(Value::Float(x))
        } else {
            Err(OpError::new("the result is not a finite number"))
        }
    }

    /// An integer of any size, as `Int` when it fits.
    pub fn from_big(n: BigInt) -> Value {
        match i64::try_from(&n) {
            Ok(small) => Value::Int(small),
            Err(_) => Value::Big(Arc::new(n)),
        }
    }

    pub fn is_undefined(&self) -> bool {
        matches!(self, Value::Undefined)
    }

    /// `undefined` or JSON `null`: what EMQX's newer functions treat as
    /// "no value".
    pub fn is_nullish(&self) -> bool {
        matches!(self, Value::Undefined | Value::Null)
    }

    pub fn is_number(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Big(_) | Value::Float(_))
    }

    pub fn is_integer(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Big(_))
    }

    /// A binary (text or bytes).
    pub fn is_binary(&self) -> bool {
        matches!(self, Value::Str(_) | Value::Bytes(_))
    }

    /// An atom in EMQX: `undefined`, `null`, `true`, `false`.
    pub fn is_atom(&self) -> bool {
        matches!(self, Value::Undefined | Value::Null | Value::Bool(_))
    }

    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Undefined => "undefined",
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Big(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Bytes(_) => "binary data",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }

    /// The bytes of a binary.
    pub fn as_binary(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s.as_bytes()),
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The text of a binary that is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The text of a binary, invalid UTF-8 replaced by U+FFFD.
    pub fn as_text_lossy(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::Str(s) => Some(Cow::Borrowed(s)),
            Value::Bytes(b) => Some(String::from_utf8_lossy(b)),
            _ => None,
        }
    }

    /// The name of an atom, as `atom_to_binary` gives it.
    pub fn atom_name(&self) -> Option<&'static str> {
        match self {
            Value::Undefined => Some("undefined"),
            Value::Null => Some("null"),
            Value::Bool(true) => Some("true"),
            Value::Bool(false) => Some("false"),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Map> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// An `i64` integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// Any integer, as a big integer.
    pub fn to_bigint(&self) -> Option<BigInt> {
        match self {
            Value::Int(n) => Some(BigInt::from(*n)),
            Value::Big(b) => Some(b.as_ref().clone()),
            _ => None,
        }
    }

    /// A number as a float (big integers rounded to the nearest).
    pub fn to_f64(&self) -> Option<f64> {
        match self {
            Value::Int(n) => Some(*n as f64),
            Value::Big(b) => Some(big_to_f64(b)),
            Value::Float(x) => Some(*x),
            _ => None,
        }
    }

    /// Erlang's `==`: equal terms, with numbers compared by value (`1 == 1.0`).
    pub fn loose_eq(&self, other: &Value) -> bool {
        term_cmp(self, other, false) == Ordering::Equal
    }

    /// Erlang's `=:=`: equal terms, where an integer never equals a float
    /// (`IN`, `CASE x WHEN`, `contains`).
    pub fn exact_eq(&self, other: &Value) -> bool {
        term_cmp(self, other, true) == Ordering::Equal
    }
}

impl PartialEq for Value {
    /// Exact equality (`=:=`), so that tests compare what they mean.
    fn eq(&self, other: &Value) -> bool {
        self.exact_eq(other)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.into())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s.into())
    }
}

/// A big integer as the nearest float (infinite beyond `f64`).
pub(crate) fn big_to_f64(b: &BigInt) -> f64 {
    // The decimal text parses to the correctly rounded float.
    b.to_string().parse::<f64>().unwrap_or(f64::NAN)
}

/// The rank of a value's type in Erlang's term order: number < atom <
/// (reference, fun, port, pid, tuple) < map < list < binary.
fn rank(v: &Value) -> u8 {
    match v {
        Value::Int(_) | Value::Big(_) | Value::Float(_) => 0,
        Value::Undefined | Value::Null | Value::Bool(_) => 1,
        Value::Object(_) => 2,
        Value::Array(_) => 3,
        Value::Str(_) | Value::Bytes(_) => 4,
    }
}

/// Erlang's term order. With `exact`, an integer and a float that are equal
/// in value are still different (ordered integer first), as `=:=` sees them.
pub fn term_cmp(a: &Value, b: &Value, exact: bool) -> Ordering {
    let (ra, rb) = (rank(a), rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        _ if ra == 0 => {
            let by_value = number_cmp(a, b);
            if by_value == Ordering::Equal && exact {
                let float = |v: &Value| matches!(v, Value::Float(_));
                float(a).cmp(&float(b))
            } else {
                by_value
            }
        }
        // Atoms order by name: false < null < true < undefined.
        _ if ra == 1 => a.atom_name().cmp(&b.atom_name()),
        (Value::Object(x), Value::Object(y)) => {
            // Maps: by size, then keys in order, then values in key order.
            x.len()
                .cmp(&y.len())
                .then_with(|| x.keys().cmp(y.keys()))
                .then_with(|| {
                    for (vx, vy) in x.values().zip(y.values()) {
                        let o = term_cmp(vx, vy, exact);
                        if o != Ordering::Equal {
                            return o;
                        }
                    }
                    Ordering::Equal
                })
        }
        (Value::Array(x), Value::Array(y)) => {
            for (vx, vy) in x.iter().zip(y.iter()) {
                let o = term_cmp(vx, vy, exact);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => a.as_binary().cmp(&b.as_binary()),
    }
}

/// Two numbers by value; integers and floats compare exactly (no rounding
/// of a large integer to a float).
pub(crate) fn number_cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => x.total_cmp(y).then(Ordering::Equal),
        (Value::Float(x), other) => float_vs_int(*x, other),
        (other, Value::Float(y)) => float_vs_int(*y, other).reverse(),
        _ => match (a.to_bigint(), b.to_bigint()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => Ordering::Equal,
        },
    }
}

/// A float against an integer, exactly.
fn float_vs_int(f: f64, i: &Value) -> Ordering {
    if f.is_nan() {
        return Ordering::Equal;
    }
    let Some(int) = i.to_bigint() else {
        return Ordering::Equal;
    };
    let whole = f.trunc();
    // A finite float's integral part is an exact integer.
    let Some(w) = float_trunc_to_big(whole) else {
        return Ordering::Equal;
    };
    w.cmp(&int).then_with(|| (f - whole).total_cmp(&0.0))
}

/// The integral float `x` as an exact big integer.
pub(crate) fn float_trunc_to_big(x: f64) -> Option<BigInt> {
    if !x.is_finite() {
        return None;
    }
    let x = x.trunc();
    if x.abs() < 9.0e15 {
        // Exact in i64.
        return Some(BigInt::from(x as i64));
    }
    // Decompose: x = mantissa * 2^exp, exactly.
    let bits = x.to_bits();
    let negative = bits >> 63 == 1;
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1075;
    let mantissa = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    let mut n = BigInt::from(mantissa);
    if exp >= 0 {
        n <<= exp as u32;
    } else {
        n >>= (-exp) as u32;
    }
    Some(if negative { -n } else { n })
}

/// Why an operation failed for an event: the rule gets an error for the
/// event and produces no record from it, as EMQX's rule does when an
/// expression raises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError(pub Cow<'static, str>);

impl OpError {
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        OpError(message.into())
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn term_order_is_erlangs() {
        let order = [
            Value::Int(-5),
            Value::Float(1.5),
            Value::Int(2),
            Value::Bool(false),
            Value::Null,
            Value::Bool(true),
            Value::Undefined,
            Value::object(Map::new()),
            Value::array(vec![]),
            Value::array(vec![Value::Int(1)]),
            Value::str(""),
            Value::str("a"),
            Value::bytes(&b"b"[..]),
        ];
        for pair in order.windows(2) {
            assert_eq!(
                term_cmp(&pair[0], &pair[1], true),
                Ordering::Less,
                "{:?} < {:?}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn numbers_compare_exactly_across_types() {
        assert!(Value::Int(1).loose_eq(&Value::Float(1.0)));
        assert!(!Value::Int(1).exact_eq(&Value::Float(1.0)));
        let big = Value::from_big("12345678901234567890".parse().expect("big"));
        let big_plus = Value::from_big("12345678901234567891".parse().expect("big"));
        assert!(matches!(big, Value::Big(_)));
        assert!(!big.loose_eq(&big_plus));
        assert_eq!(term_cmp(&big, &big_plus, false), Ordering::Less);
        // 2^63 as a float is above i64::MAX.
        assert_eq!(
            term_cmp(
                &Value::Int(i64::MAX),
                &Value::Float(9_223_372_036_854_775_808.0),
                false
            ),
            Ordering::Less
        );
        assert_eq!(
            term_cmp(&Value::Float(2.5), &Value::Int(2), false),
            Ordering::Greater
        );
        assert!(Value::str("a").exact_eq(&Value::bytes(&b"a"[..])));
    }
}
