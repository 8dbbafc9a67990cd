//! Operators and functions of the rule language.
//!
//! NULL propagates as in SQL: an operator with a NULL operand gives NULL (a
//! comparison gives "unknown"), functions give NULL for a NULL argument
//! unless documented otherwise (`concat` skips them, `is_null` tests them).
//! A value of the wrong type is an error for the event, never a silent
//! default.

use crate::emit::{self, Mode};
use crate::json;
use crate::value::{OpError, Tri, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

/// Comparison operators; numbers are the generated code's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum CmpOp {
    Eq = 0,
    Ne = 1,
    Lt = 2,
    Le = 3,
    Gt = 4,
    Ge = 5,
    /// `=~`: the left side is a topic, the right side an MQTT topic filter.
    TopicMatch = 6,
}

impl CmpOp {
    pub fn from_i32(n: i32) -> Option<CmpOp> {
        Some(match n {
            0 => CmpOp::Eq,
            1 => CmpOp::Ne,
            2 => CmpOp::Lt,
            3 => CmpOp::Le,
            4 => CmpOp::Gt,
            5 => CmpOp::Ge,
            6 => CmpOp::TopicMatch,
            _ => return None,
        })
    }
}

/// Arithmetic operators; numbers are the generated code's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ArithOp {
    /// Numbers add; with a string on either side, text concatenation.
    Add = 0,
    Sub = 1,
    Mul = 2,
    /// Always a float, as EMQX's `/`.
    Div = 3,
    /// `div`: integer division, truncating.
    IntDiv = 4,
    /// `mod` and `%`: remainder with the sign of the dividend.
    Mod = 5,
    /// `||`: text concatenation.
    Concat = 6,
}

impl ArithOp {
    pub fn from_i32(n: i32) -> Option<ArithOp> {
        Some(match n {
            0 => ArithOp::Add,
            1 => ArithOp::Sub,
            2 => ArithOp::Mul,
            3 => ArithOp::Div,
            4 => ArithOp::IntDiv,
            5 => ArithOp::Mod,
            6 => ArithOp::Concat,
            _ => return None,
        })
    }

    fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::IntDiv => "div",
            ArithOp::Mod => "mod",
            ArithOp::Concat => "||",
        }
    }
}

/// Compares two values (see the rules in `docs/rules.md`).
pub fn compare(op: CmpOp, a: &Value<'_>, b: &Value<'_>) -> Tri {
    if a.is_null() || b.is_null() {
        return Tri::Unknown;
    }
    if op == CmpOp::TopicMatch {
        return match (a.as_text(), b.as_text()) {
            (Some(topic), Some(filter)) => Tri::from_bool(topic_matches(&topic, &filter)),
            _ => Tri::Unknown,
        };
    }
    let ordering = match (a, b) {
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => compare_numbers(a, b),
        (Value::Str(_) | Value::Bytes(_), Value::Str(_) | Value::Bytes(_)) => {
            Some(text_bytes(a).cmp(text_bytes(b)))
        }
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Json(x), Value::Json(y)) if matches!(op, CmpOp::Eq | CmpOp::Ne) => {
            Some(if x == y {
                Ordering::Equal
            } else {
                Ordering::Less
            })
        }
        _ => None,
    };
    match (op, ordering) {
        (CmpOp::Eq, o) => Tri::from_bool(o == Some(Ordering::Equal)),
        (CmpOp::Ne, o) => Tri::from_bool(o != Some(Ordering::Equal)),
        (_, None) => Tri::Unknown,
        (CmpOp::Lt, Some(o)) => Tri::from_bool(o == Ordering::Less),
        (CmpOp::Le, Some(o)) => Tri::from_bool(o != Ordering::Greater),
        (CmpOp::Gt, Some(o)) => Tri::from_bool(o == Ordering::Greater),
        (CmpOp::Ge | CmpOp::TopicMatch, Some(o)) => Tri::from_bool(o != Ordering::Less),
    }
}

fn text_bytes<'v>(v: &'v Value<'_>) -> &'v [u8] {
    match v {
        Value::Str(s) => s.as_bytes(),
        Value::Bytes(b) => b,
        _ => &[],
    }
}

fn compare_numbers(a: &Value<'_>, b: &Value<'_>) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Float(y)) => int_vs_float(*x, *y),
        (Value::Float(x), Value::Int(y)) => int_vs_float(*y, *x).map(Ordering::reverse),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        _ => None,
    }
}

/// Exact comparison of an integer with a float (no rounding of the integer).
fn int_vs_float(i: i64, f: f64) -> Option<Ordering> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return None;
    }
    if f >= TWO_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let whole = f.trunc();
    // In range, so the cast is exact.
    let w = whole as i64;
    Some(i.cmp(&w).then_with(|| 0.0f64.total_cmp(&(f - whole))))
}

/// A condition's truth: booleans, and NULL as unknown; anything else is
/// an error.
pub fn truth(v: &Value<'_>) -> Result<Tri, OpError> {
    match v {
        Value::Bool(b) => Ok(Tri::from_bool(*b)),
        Value::Null => Ok(Tri::Unknown),
        other => Err(OpError(Cow::Owned(format!(
            "a condition must be true, false or null, not {}",
            other.kind()
        )))),
    }
}

/// `a op b`.
pub fn arith(op: ArithOp, a: &Value<'_>, b: &Value<'_>) -> Result<Value<'static>, OpError> {
    if a.is_null() || b.is_null() {
        return Ok(Value::Null);
    }
    let texty = |v: &Value<'_>| matches!(v, Value::Str(_) | Value::Bytes(_));
    if op == ArithOp::Concat || (op == ArithOp::Add && (texty(a) || texty(b))) {
        let mut s = emit::text(a).unwrap_or_default();
        s.push_str(&emit::text(b).unwrap_or_default());
        return Ok(Value::Str(Cow::Owned(s)));
    }
    let overflow = || OpError::new("integer overflow");
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => {
            let (x, y) = (*x, *y);
            let r = match op {
                ArithOp::Add => x.checked_add(y).ok_or_else(overflow)?,
                ArithOp::Sub => x.checked_sub(y).ok_or_else(overflow)?,
                ArithOp::Mul => x.checked_mul(y).ok_or_else(overflow)?,
                ArithOp::Div => {
                    if y == 0 {
                        return Err(OpError::new("division by zero"));
                    }
                    return Value::float(x as f64 / y as f64);
                }
                ArithOp::IntDiv | ArithOp::Mod => {
                    if y == 0 {
                        return Err(OpError::new("division by zero"));
                    }
                    if op == ArithOp::IntDiv {
                        x.checked_div(y).ok_or_else(overflow)?
                    } else {
                        x.checked_rem(y).unwrap_or(0)
                    }
                }
                ArithOp::Concat => return Ok(Value::Null),
            };
            Ok(Value::Int(r))
        }
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let (x, y) = (as_f64(a), as_f64(b));
            match op {
                ArithOp::Add => Value::float(x + y),
                ArithOp::Sub => Value::float(x - y),
                ArithOp::Mul => Value::float(x * y),
                ArithOp::Div if y == 0.0 => Err(OpError::new("division by zero")),
                ArithOp::Div => Value::float(x / y),
                _ => Err(OpError(Cow::Owned(format!(
                    "`{}` needs integers, got a float",
                    op.symbol()
                )))),
            }
        }
        _ => Err(OpError(Cow::Owned(format!(
            "`{}` needs numbers, got {} and {}",
            op.symbol(),
            a.kind(),
            b.kind()
        )))),
    }
}

fn as_f64(v: &Value<'_>) -> f64 {
    match v {
        Value::Int(n) => *n as f64,
        Value::Float(x) => *x,
        _ => f64::NAN,
    }
}

/// `-a`.
pub fn neg(a: &Value<'_>) -> Result<Value<'static>, OpError> {
    match a {
        Value::Null => Ok(Value::Null),
        Value::Int(n) => n
            .checked_neg()
            .map(Value::Int)
            .ok_or_else(|| OpError::new("integer overflow")),
        Value::Float(x) => Ok(Value::Float(-x)),
        other => Err(OpError(Cow::Owned(format!(
            "`-` needs a number, got {}",
            other.kind()
        )))),
    }
}

/// Member `key` of an object (a string or the payload is decoded as JSON
/// first, as EMQX does); NULL when there is none.
pub fn get<'v>(v: &'v Value<'_>, key: &str) -> Value<'v> {
    match v {
        Value::Json(j) => json::get(j, key).unwrap_or(Value::Null),
        Value::Str(_) | Value::Bytes(_) => match decoded(v) {
            Some(Value::Json(j)) => json::get(&j, key).map_or(Value::Null, Value::into_owned),
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

/// Element `i` (0-based) of an array; NULL when there is none.
pub fn index<'v>(v: &'v Value<'_>, i: usize) -> Value<'v> {
    match v {
        Value::Json(j) => json::index(j, i).unwrap_or(Value::Null),
        Value::Str(_) | Value::Bytes(_) => match decoded(v) {
            Some(Value::Json(j)) => json::index(&j, i).map_or(Value::Null, Value::into_owned),
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

fn decoded(v: &Value<'_>) -> Option<Value<'static>> {
    match v {
        Value::Str(s) => json::decode(s.as_bytes()),
        Value::Bytes(b) => json::decode(b),
        _ => None,
    }
}

/// Whether `topic` matches the MQTT topic filter `filter` (`+` one level,
/// `#` the rest; wildcards at the first level do not match `$` topics).
pub fn topic_matches(topic: &str, filter: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut t = topic.split('/');
    let mut f = filter.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return f.next().is_none(),
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

macro_rules! funcs {
    ($($variant:ident = $n:literal, $name:literal, $min:literal, $max:literal, $doc:literal;)*) => {
        /// The functions a rule may call; numbers are the generated code's.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(i32)]
        pub enum Func {
            $(#[doc = $doc] $variant = $n,)*
        }

        impl Func {
            /// Every function, in number order.
            pub const ALL: &[Func] = &[$(Func::$variant,)*];

            pub fn from_i32(n: i32) -> Option<Func> {
                match n {
                    $($n => Some(Func::$variant),)*
                    _ => None,
                }
            }

            /// The name a rule calls it by.
            pub fn name(self) -> &'static str {
                match self {
                    $(Func::$variant => $name,)*
                }
            }

            /// The least and the most arguments it takes (`usize::MAX`: any number).
            pub fn arity(self) -> (usize, usize) {
                match self {
                    $(Func::$variant => ($min, $max),)*
                }
            }

            /// One line on what it does.
            pub fn doc(self) -> &'static str {
                match self {
                    $(Func::$variant => $doc,)*
                }
            }
        }
    };
}

funcs! {
    Lower = 0, "lower", 1, 1, "lower(s): s in lower case (Unicode)";
    Upper = 1, "upper", 1, 1, "upper(s): s in upper case (Unicode)";
    Trim = 2, "trim", 1, 1, "trim(s): s without leading and trailing whitespace";
    Ltrim = 3, "ltrim", 1, 1, "ltrim(s): s without leading whitespace";
    Rtrim = 4, "rtrim", 1, 1, "rtrim(s): s without trailing whitespace";
    Concat = 5, "concat", 1, 1000, "concat(a, b, ...): the texts of the arguments joined, NULLs skipped";
    Substr = 6, "substr", 2, 3, "substr(s, start[, len]): characters from start (0-based), at most len of them";
    Strlen = 7, "strlen", 1, 1, "strlen(s): the number of characters of s";
    Replace = 8, "replace", 3, 3, "replace(s, from, to): s with every from replaced by to";
    Split = 9, "split", 2, 2, "split(s, sep): the array of the parts of s between seps";
    Str = 10, "str", 1, 1, "str(x): x as text (numbers shortest round-trip, JSON as JSON text)";
    Int = 11, "int", 1, 1, "int(x): x as an integer (floats truncated, text parsed, booleans 1/0)";
    Float = 12, "float", 1, 1, "float(x): x as a float (text parsed)";
    Bool = 13, "bool", 1, 1, "bool(x): x as a boolean (true/false, 1/0, 'true'/'false')";
    Nth = 14, "nth", 2, 2, "nth(n, array): element n (1-based) of an array, NULL past the end";
    Length = 15, "length", 1, 1, "length(x): elements of an array, members of an object, characters of a string";
    JsonEncode = 16, "json_encode", 1, 1, "json_encode(x): the JSON text of x, as a string";
    JsonDecode = 17, "json_decode", 1, 1, "json_decode(s): the value of the JSON text s";
    IsNull = 18, "is_null", 1, 1, "is_null(x): whether x is NULL (absent fields are NULL)";
    IsNotNull = 19, "is_not_null", 1, 1, "is_not_null(x): whether x is not NULL";
    Abs = 20, "abs", 1, 1, "abs(n): the absolute value of n";
    Floor = 21, "floor", 1, 1, "floor(n): the largest integer not above n";
    Ceil = 22, "ceil", 1, 1, "ceil(n): the smallest integer not below n";
    Round = 23, "round", 1, 1, "round(n): n rounded to the nearest integer, halves away from zero";
    NowTimestamp = 24, "now_timestamp", 0, 1, "now_timestamp([unit]): the time now, in 'second' (default) or 'millisecond' since the Unix epoch";
    Topic = 25, "topic", 0, 1, "topic([n]): the topic, or its level n (1-based), NULL past the end";
    Coalesce = 26, "coalesce", 1, 1000, "coalesce(a, b, ...): the first argument that is not NULL (later ones are not evaluated)";
}

/// Accepted alias names.
impl Func {
    pub fn lookup(name: &str) -> Option<Func> {
        let lower = name.to_ascii_lowercase();
        let name = match lower.as_str() {
            "len" => "length",
            "substring" => "substr",
            other => other,
        };
        Func::ALL.iter().copied().find(|f| f.name() == name)
    }
}

fn type_error(f: Func, expected: &str, got: &Value<'_>) -> OpError {
    OpError(Cow::Owned(format!(
        "{}() expects {expected}, got {}",
        f.name(),
        got.kind()
    )))
}

/// Calls `f` with already evaluated arguments. `now_ms` is the clock for
/// `now_timestamp`. `topic(n)` takes the event's topic as its first
/// argument (the compiler adds it). `coalesce` is evaluated lazily by the
/// compiler and the native evaluator; here it is eager.
pub fn call(
    f: Func,
    args: &[Value<'_>],
    now_ms: &dyn Fn() -> i64,
) -> Result<Value<'static>, OpError> {
    let arg = |i: usize| args.get(i).unwrap_or(&Value::Null);
    let a = arg(0);
    if a.is_null()
        && !matches!(
            f,
            Func::Concat | Func::IsNull | Func::IsNotNull | Func::NowTimestamp | Func::Coalesce
        )
    {
        return Ok(Value::Null);
    }
    let text = |v: &Value<'_>, what: &str| -> Result<String, OpError> {
        v.as_text()
            .map(Cow::into_owned)
            .ok_or_else(|| type_error(f, what, v))
    };
    let int = |v: &Value<'_>, what: &str| -> Result<i64, OpError> {
        match v {
            Value::Int(n) => Ok(*n),
            other => Err(type_error(f, what, other)),
        }
    };
    Ok(match f {
        Func::Lower => Value::str(text(a, "a string")?.to_lowercase()),
        Func::Upper => Value::str(text(a, "a string")?.to_uppercase()),
        Func::Trim => Value::str(text(a, "a string")?.trim().to_owned()),
        Func::Ltrim => Value::str(text(a, "a string")?.trim_start().to_owned()),
        Func::Rtrim => Value::str(text(a, "a string")?.trim_end().to_owned()),
        Func::Concat => {
            let joined: String = args.iter().filter_map(emit::text).collect();
            Value::str(joined)
        }
        Func::Substr => {
            let s = text(a, "a string")?;
            if args[1..].iter().any(Value::is_null) {
                return Ok(Value::Null);
            }
            let start = usize::try_from(int(arg(1), "an integer start")?)
                .map_err(|_| OpError::new("substr(): start must not be negative"))?;
            let chars = s.chars().skip(start);
            let out: String = match args.get(2) {
                Some(len) => {
                    let len = usize::try_from(int(len, "an integer length")?)
                        .map_err(|_| OpError::new("substr(): length must not be negative"))?;
                    chars.take(len).collect()
                }
                None => chars.collect(),
            };
            Value::str(out)
        }
        Func::Strlen => Value::Int(count_chars(&text(a, "a string")?)),
        Func::Replace => {
            let s = text(a, "a string")?;
            if arg(1).is_null() || arg(2).is_null() {
                return Ok(Value::Null);
            }
            let from = text(arg(1), "strings")?;
            let to = text(arg(2), "strings")?;
            if from.is_empty() {
                Value::str(s)
            } else {
                Value::str(s.replace(&from, &to))
            }
        }
        Func::Split => {
            let s = text(a, "a string")?;
            if arg(1).is_null() {
                return Ok(Value::Null);
            }
            let sep = text(arg(1), "a string separator")?;
            if sep.is_empty() {
                return Err(OpError::new("split(): the separator is empty"));
            }
            let mut out = vec![b'['];
            for (i, part) in s.split(sep.as_str()).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                json::escape_into(&mut out, part);
                out.push(b'"');
            }
            out.push(b']');
            Value::Json(Cow::Owned(String::from_utf8_lossy(&out).into_owned()))
        }
        Func::Str => emit::text(a).map_or(Value::Null, Value::str),
        Func::Int => to_int(a)?,
        Func::Float => match a {
            Value::Int(n) => Value::Float(*n as f64),
            Value::Float(x) => Value::Float(*x),
            Value::Str(_) | Value::Bytes(_) => {
                let t = text(a, "a number")?;
                let x = t
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| {
                        OpError(Cow::Owned(format!(
                            "float(): `{}` is not a number",
                            clip(&t)
                        )))
                    })?;
                Value::Float(x)
            }
            other => return Err(type_error(f, "a number or a string", other)),
        },
        Func::Bool => match a {
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(0) => Value::Bool(false),
            Value::Int(1) => Value::Bool(true),
            Value::Str(_) | Value::Bytes(_) => match text(a, "a boolean")?.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                other => {
                    return Err(OpError(Cow::Owned(format!(
                        "bool(): `{}` is not true or false",
                        clip(other)
                    ))));
                }
            },
            other => return Err(type_error(f, "true, false, 1, 0 or their text", other)),
        },
        Func::Nth => {
            let n = int(a, "an integer position")?;
            let array = arg(1);
            if array.is_null() {
                return Ok(Value::Null);
            }
            let decoded_array;
            let array_text = match array {
                Value::Json(j) if j.starts_with('[') => j.as_ref(),
                Value::Str(_) | Value::Bytes(_) => {
                    decoded_array = decoded(array);
                    match &decoded_array {
                        Some(Value::Json(j)) if j.starts_with('[') => j.as_ref(),
                        _ => return Err(type_error(f, "an array", array)),
                    }
                }
                other => return Err(type_error(f, "an array", other)),
            };
            if n < 1 {
                return Err(OpError::new("nth(): positions start at 1"));
            }
            usize::try_from(n - 1)
                .ok()
                .and_then(|i| json::index(array_text, i))
                .map_or(Value::Null, Value::into_owned)
        }
        Func::Length => match a {
            Value::Json(j) => {
                Value::Int(json::count(j).map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX)))
            }
            Value::Str(_) | Value::Bytes(_) => Value::Int(count_chars(&text(a, "a string")?)),
            other => return Err(type_error(f, "an array, an object or a string", other)),
        },
        Func::JsonEncode => {
            let mut out = Vec::new();
            emit::emit(&mut out, a, Mode::Json);
            Value::str(String::from_utf8_lossy(&out).into_owned())
        }
        Func::JsonDecode => match a {
            Value::Json(j) => Value::Json(Cow::Owned(j.to_string())),
            Value::Str(_) | Value::Bytes(_) => {
                let bytes: &[u8] = match a {
                    Value::Str(s) => s.as_bytes(),
                    Value::Bytes(b) => b,
                    _ => &[],
                };
                json::decode(bytes).ok_or_else(|| OpError::new("json_decode(): not valid JSON"))?
            }
            other => return Err(type_error(f, "a string", other)),
        },
        Func::IsNull => Value::Bool(a.is_null()),
        Func::IsNotNull => Value::Bool(!a.is_null()),
        Func::Abs => match a {
            Value::Int(n) => Value::Int(
                n.checked_abs()
                    .ok_or_else(|| OpError::new("integer overflow"))?,
            ),
            Value::Float(x) => Value::Float(x.abs()),
            other => return Err(type_error(f, "a number", other)),
        },
        Func::Floor | Func::Ceil | Func::Round => match a {
            Value::Int(n) => Value::Int(*n),
            Value::Float(x) => {
                let r = match f {
                    Func::Floor => x.floor(),
                    Func::Ceil => x.ceil(),
                    _ => x.round(),
                };
                Value::Int(float_to_int(r).ok_or_else(|| {
                    OpError(Cow::Owned(format!(
                        "{}(): the result is out of the integer range",
                        f.name()
                    )))
                })?)
            }
            other => return Err(type_error(f, "a number", other)),
        },
        Func::NowTimestamp => {
            let ms = now_ms();
            match a {
                Value::Null => Value::Int(ms.div_euclid(1000)),
                other => match text(other, "a unit")?.as_str() {
                    "second" | "s" => Value::Int(ms.div_euclid(1000)),
                    "millisecond" | "ms" => Value::Int(ms),
                    unit => {
                        return Err(OpError(Cow::Owned(format!(
                            "now_timestamp(): unknown unit `{}` (use 'second' or 'millisecond')",
                            clip(unit)
                        ))));
                    }
                },
            }
        }
        Func::Topic => {
            let topic = text(a, "a topic")?;
            match arg(1) {
                Value::Null if args.len() < 2 => Value::str(topic),
                Value::Null => Value::Null,
                n => {
                    let n = int(n, "an integer level")?;
                    if n < 1 {
                        return Err(OpError::new("topic(): levels start at 1"));
                    }
                    usize::try_from(n - 1)
                        .ok()
                        .and_then(|i| topic.split('/').nth(i))
                        .map_or(Value::Null, |level| Value::str(level.to_owned()))
                }
            }
        }
        Func::Coalesce => args
            .iter()
            .find(|v| !v.is_null())
            .map_or(Value::Null, |v| v.clone().into_owned()),
    })
}

fn count_chars(s: &str) -> i64 {
    i64::try_from(s.chars().count()).unwrap_or(i64::MAX)
}

/// The first characters of a text, for error messages.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

fn float_to_int(x: f64) -> Option<i64> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    // In range, so the cast is exact after truncation.
    (-TWO_63..TWO_63).contains(&x).then(|| x.trunc() as i64)
}

fn to_int(a: &Value<'_>) -> Result<Value<'static>, OpError> {
    Ok(match a {
        Value::Int(n) => Value::Int(*n),
        Value::Float(x) => Value::Int(
            float_to_int(*x)
                .ok_or_else(|| OpError::new("int(): the float is out of the integer range"))?,
        ),
        Value::Bool(b) => Value::Int(i64::from(*b)),
        Value::Str(_) | Value::Bytes(_) => {
            let t = a.as_text().map(Cow::into_owned).unwrap_or_default();
            let trimmed = t.trim();
            if let Ok(n) = trimmed.parse::<i64>() {
                Value::Int(n)
            } else {
                let x = trimmed
                    .parse::<f64>()
                    .ok()
                    .and_then(float_to_int)
                    .ok_or_else(|| {
                        OpError(Cow::Owned(format!("int(): `{}` is not a number", clip(&t))))
                    })?;
                Value::Int(x)
            }
        }
        other => {
            return Err(type_error(
                Func::Int,
                "a number, a boolean or a string",
                other,
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value<'static> {
        Value::str(x.to_owned())
    }

    fn run(f: Func, args: &[Value<'_>]) -> Result<Value<'static>, OpError> {
        call(f, args, &|| 1_700_000_123_456)
    }

    #[test]
    fn comparisons_follow_sql_and_numbers_compare_exactly() {
        assert_eq!(
            compare(CmpOp::Eq, &Value::Int(1), &Value::Float(1.0)),
            Tri::True
        );
        assert_eq!(
            compare(CmpOp::Lt, &Value::Int(i64::MAX), &Value::Float(9.3e18)),
            Tri::True
        );
        assert_eq!(
            compare(CmpOp::Gt, &Value::Int(2), &Value::Float(1.5)),
            Tri::True
        );
        assert_eq!(
            compare(CmpOp::Lt, &Value::Int(1), &Value::Float(1.5)),
            Tri::True
        );
        assert_eq!(compare(CmpOp::Eq, &Value::Null, &Value::Null), Tri::Unknown);
        assert_eq!(compare(CmpOp::Eq, &Value::Int(1), &s("1")), Tri::False);
        assert_eq!(compare(CmpOp::Ne, &Value::Int(1), &s("1")), Tri::True);
        assert_eq!(compare(CmpOp::Lt, &Value::Int(1), &s("1")), Tri::Unknown);
        assert_eq!(compare(CmpOp::Lt, &s("a"), &s("b")), Tri::True);
        assert_eq!(
            compare(CmpOp::TopicMatch, &s("t/1/x"), &s("t/+/x")),
            Tri::True
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

    #[test]
    fn arithmetic_keeps_integers_and_fails_loudly() {
        assert_eq!(
            arith(ArithOp::Add, &Value::Int(2), &Value::Int(3)),
            Ok(Value::Int(5))
        );
        assert_eq!(
            arith(ArithOp::Div, &Value::Int(5), &Value::Int(2)),
            Ok(Value::Float(2.5))
        );
        assert_eq!(
            arith(ArithOp::IntDiv, &Value::Int(-7), &Value::Int(2)),
            Ok(Value::Int(-3))
        );
        assert_eq!(
            arith(ArithOp::Mod, &Value::Int(-7), &Value::Int(2)),
            Ok(Value::Int(-1))
        );
        assert_eq!(arith(ArithOp::Add, &s("a"), &Value::Int(1)), Ok(s("a1")));
        assert_eq!(
            arith(ArithOp::Add, &Value::Null, &Value::Int(1)),
            Ok(Value::Null)
        );
        assert!(arith(ArithOp::Add, &Value::Int(i64::MAX), &Value::Int(1)).is_err());
        assert!(arith(ArithOp::Div, &Value::Int(1), &Value::Int(0)).is_err());
        assert!(arith(ArithOp::Mul, &Value::Float(1e308), &Value::Int(10)).is_err());
        assert!(arith(ArithOp::Sub, &Value::Bool(true), &Value::Int(1)).is_err());
    }

    #[test]
    fn functions_do_what_their_docs_say() {
        assert_eq!(run(Func::Upper, &[s("straße")]), Ok(s("STRASSE")));
        assert_eq!(
            run(Func::Substr, &[s("héllo"), Value::Int(1), Value::Int(3)]),
            Ok(s("éll"))
        );
        assert_eq!(
            run(
                Func::Concat,
                &[s("a"), Value::Null, Value::Int(1), Value::Float(0.5)]
            ),
            Ok(s("a10.5"))
        );
        assert_eq!(run(Func::Int, &[s(" 42 ")]), Ok(Value::Int(42)));
        assert_eq!(run(Func::Int, &[Value::Float(-2.7)]), Ok(Value::Int(-2)));
        assert!(run(Func::Int, &[s("x")]).is_err());
        assert_eq!(
            run(
                Func::Nth,
                &[Value::Int(2), Value::Json("[1,{\"a\":2}]".into())]
            ),
            Ok(Value::Json("{\"a\":2}".into()))
        );
        assert_eq!(
            run(Func::Nth, &[Value::Int(3), Value::Json("[1]".into())]),
            Ok(Value::Null)
        );
        assert_eq!(
            run(Func::Length, &[Value::Json("[1,2,[3]]".into())]),
            Ok(Value::Int(3))
        );
        assert_eq!(
            run(Func::Split, &[s("a/b//c"), s("/")]),
            Ok(Value::Json("[\"a\",\"b\",\"\",\"c\"]".into()))
        );
        assert_eq!(run(Func::Topic, &[s("a/b/c"), Value::Int(2)]), Ok(s("b")));
        assert_eq!(run(Func::NowTimestamp, &[]), Ok(Value::Int(1_700_000_123)));
        assert_eq!(
            run(Func::NowTimestamp, &[s("millisecond")]),
            Ok(Value::Int(1_700_000_123_456))
        );
        assert_eq!(run(Func::Round, &[Value::Float(2.5)]), Ok(Value::Int(3)));
        assert_eq!(run(Func::Lower, &[Value::Null]), Ok(Value::Null));
        assert_eq!(
            run(Func::JsonDecode, &[s(" {\"a\": [1]} ")]),
            Ok(Value::Json("{\"a\":[1]}".into()))
        );
        assert_eq!(run(Func::Str, &[Value::Float(1e21)]), Ok(s("1e+21")));
        for f in Func::ALL {
            assert_eq!(Func::from_i32(*f as i32), Some(*f));
            assert_eq!(Func::lookup(&f.name().to_uppercase()), Some(*f));
        }
    }
}
