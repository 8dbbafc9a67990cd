//! The values rule expressions compute with.
//!
//! Seven kinds, close to what EMQX's rule engine sees: null, booleans, 64-bit
//! integers, finite floats, text, bytes (the payload: text when it is UTF-8,
//! JSON when it parses) and JSON text of an array or object (nested payload
//! values, `pub_props`, `flags`). Strings borrow from the event where they
//! can (`Cow`), so reading a field copies nothing.

use std::borrow::Cow;
use std::fmt;

/// A value of a rule expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// SQL NULL; also what an absent field or a missing path gives.
    Null,
    Bool(bool),
    Int(i64),
    /// Always finite: operations that would give NaN or an infinity fail.
    Float(f64),
    Str(Cow<'a, str>),
    /// Raw bytes (the payload), not necessarily UTF-8.
    Bytes(Cow<'a, [u8]>),
    /// The compact JSON text of an array or an object.
    Json(Cow<'a, str>),
}

impl<'a> Value<'a> {
    pub fn str(s: impl Into<Cow<'a, str>>) -> Self {
        Value::Str(s.into())
    }

    /// A float, or an error when it is NaN or infinite.
    pub fn float(x: f64) -> Result<Value<'static>, OpError> {
        if x.is_finite() {
            Ok(Value::Float(x))
        } else {
            Err(OpError::new("the result is not a finite number"))
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Bytes(_) => "bytes",
            Value::Json(j) if j.starts_with('[') => "an array",
            Value::Json(_) => "an object",
        }
    }

    /// The value with no borrow left.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            Value::Int(n) => Value::Int(n),
            Value::Float(x) => Value::Float(x),
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Bytes(b) => Value::Bytes(Cow::Owned(b.into_owned())),
            Value::Json(j) => Value::Json(Cow::Owned(j.into_owned())),
        }
    }

    /// A borrowed copy (cheap).
    pub fn borrowed(&self) -> Value<'_> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(n) => Value::Int(*n),
            Value::Float(x) => Value::Float(*x),
            Value::Str(s) => Value::Str(Cow::Borrowed(s)),
            Value::Bytes(b) => Value::Bytes(Cow::Borrowed(b)),
            Value::Json(j) => Value::Json(Cow::Borrowed(j)),
        }
    }

    /// The text of a string or of bytes (invalid UTF-8 replaced by U+FFFD).
    pub fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::Str(s) => Some(Cow::Borrowed(s)),
            Value::Bytes(b) => Some(String::from_utf8_lossy(b)),
            _ => None,
        }
    }
}

/// Why an operation failed for an event: the event gets a rule error and
/// no record.
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

impl std::ops::Not for Tri {
    type Output = Tri;

    fn not(self) -> Tri {
        match self {
            Tri::False => Tri::True,
            Tri::True => Tri::False,
            Tri::Unknown => Tri::Unknown,
        }
    }
}

/// SQL's three-valued logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Tri {
    False = 0,
    True = 1,
    /// NULL as a truth value: a comparison with NULL, `NOT NULL`, ...
    Unknown = 2,
}

impl Tri {
    pub fn from_i32(n: i32) -> Tri {
        match n {
            0 => Tri::False,
            1 => Tri::True,
            _ => Tri::Unknown,
        }
    }

    pub fn from_bool(b: bool) -> Tri {
        if b { Tri::True } else { Tri::False }
    }

    /// The value of a condition used as an expression: a boolean or NULL.
    pub fn to_value(self) -> Value<'static> {
        match self {
            Tri::False => Value::Bool(false),
            Tri::True => Value::Bool(true),
            Tri::Unknown => Value::Null,
        }
    }
}
