//! Reading weir's TOML files (weir.toml into [`Config`](super::Config),
//! and rule files and plugin manifests through [`read_document`]) with
//! errors in the user's terms.
//!
//! serde reports a wrong value as "invalid type: string \"x\", expected
//! usize", in Rust's vocabulary, and an unknown key as one flat list.
//! Deserializing through [`Node`], whose error type is [`DeError`], lets
//! weir see what serde knew (the kind of value found, what was expected,
//! the unknown key and the keys the table has) and say it as a person who
//! writes TOML reads it: "expected a whole number, found text \"x\"". For
//! weir.toml the position and the did-you-mean are added by `config.rs`,
//! which also knows the environment's overrides; [`read_document`] adds
//! them for the other files.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, Deserializer, Expected, IntoDeserializer, Unexpected, Visitor};
use std::fmt;

/// What serde found wrong with one value of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeError {
    /// A complete message: the value's type or content, or the field's own
    /// reason (durations and sizes say theirs in `units`).
    Message(String),
    /// A key the table does not have, and the keys it has.
    UnknownKey {
        key: String,
        known: &'static [&'static str],
    },
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeError::Message(message) => f.write_str(message),
            DeError::UnknownKey { key, .. } => write!(f, "unknown key `{key}`"),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        let message = message.to_string();
        // The standard library's words for an address that does not parse,
        // which serde passes on as they are.
        DeError::Message(match message.as_str() {
            "invalid socket address syntax" => {
                "expected an address such as \"127.0.0.1:1883\" (an IP address and a port)"
                    .to_owned()
            }
            "invalid IP address syntax" => {
                "expected an IP address such as \"127.0.0.1\"".to_owned()
            }
            _ => message,
        })
    }

    fn invalid_type(found: Unexpected<'_>, expected: &dyn Expected) -> Self {
        DeError::Message(format!(
            "expected {}, found {}",
            in_user_terms(expected, Wrong::Type),
            value_text(found)
        ))
    }

    fn invalid_value(found: Unexpected<'_>, expected: &dyn Expected) -> Self {
        DeError::Message(format!(
            "expected {}, found {}",
            in_user_terms(expected, Wrong::Value),
            value_text(found)
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::Message(format!(
            "expected {}, found {}{}",
            one_of(expected),
            value_text(Unexpected::Str(variant)),
            crate::suggest::did_you_mean(variant, expected.iter().copied())
        ))
    }

    fn unknown_field(key: &str, known: &'static [&'static str]) -> Self {
        DeError::UnknownKey {
            key: key.to_owned(),
            known,
        }
    }

    fn missing_field(key: &'static str) -> Self {
        DeError::Message(format!("the key `{key}` is missing"))
    }

    fn duplicate_field(key: &'static str) -> Self {
        DeError::Message(format!("the key `{key}` is given twice"))
    }
}

/// Whether a value was of the wrong kind or of the right kind and out of
/// range: a number's range is worth saying only in the second case.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wrong {
    Type,
    Value,
}

/// What serde's `expected` means to someone writing TOML. Expectations
/// that are already in those terms (a duration's, a size's, the MQTT
/// version's) are kept as they are.
fn in_user_terms(expected: &dyn Expected, wrong: Wrong) -> String {
    let serde_says = expected.to_string();
    let range = |min: i64, max: u64| format!("a whole number from {min} to {max}");
    match serde_says.as_str() {
        "u8" => range(0, u8::MAX.into()),
        "u16" => range(0, u16::MAX.into()),
        "u32" if wrong == Wrong::Value => range(0, u32::MAX.into()),
        "u32" | "u64" | "u128" | "usize" => "a non-negative whole number".to_owned(),
        "i8" => range(i8::MIN.into(), 127),
        "i16" => range(i16::MIN.into(), 32_767),
        "i32" if wrong == Wrong::Value => range(i32::MIN.into(), 2_147_483_647),
        "i32" | "i64" | "i128" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a string" | "a character" | "a borrowed string" => "text".to_owned(),
        "path string" => "a path (text)".to_owned(),
        "socket address" => "an address such as \"127.0.0.1:1883\"".to_owned(),
        "IP address" => "an IP address such as \"127.0.0.1\"".to_owned(),
        "a sequence" => "a list".to_owned(),
        "a map" => "a table".to_owned(),
        other if other.starts_with("struct ") => "a table".to_owned(),
        other if other.starts_with("enum ") => "text".to_owned(),
        other => other.to_owned(),
    }
}

/// A value as the user wrote it, after "found".
fn value_text(found: Unexpected<'_>) -> String {
    match found {
        Unexpected::Str(text) => format!("text {text:?}"),
        Unexpected::Char(c) => format!("text {:?}", c.to_string()),
        Unexpected::Signed(n) => n.to_string(),
        Unexpected::Unsigned(n) => n.to_string(),
        Unexpected::Float(n) => n.to_string(),
        Unexpected::Bool(b) => b.to_string(),
        Unexpected::Seq => "a list".to_owned(),
        Unexpected::Map => "a table".to_owned(),
        other => other.to_string(),
    }
}

/// The dotted path of the table that holds the key at serde path `field`;
/// empty at the top level.
pub(crate) fn section_of(field: &str) -> &str {
    field.rsplit_once('.').map_or("", |(section, _)| section)
}

/// "unknown key `k` in [sink.batch] (did you mean `x`?)", or with the keys
/// the table takes when none is near: the one wording of an unknown key in
/// any of weir's TOML files.
pub(crate) fn unknown_key_message(section: &str, key: &str, known: &[&str]) -> String {
    let (place, table) = if section.is_empty() {
        ("at the top level".to_owned(), "the top level".to_owned())
    } else {
        (format!("in [{section}]"), format!("[{section}]"))
    };
    let hint = match crate::suggest::nearest(key, known.iter().copied()) {
        Some(near) => format!(" (did you mean `{near}`?)"),
        None => format!("; {table} takes {}", one_of(known)),
    };
    format!("unknown key `{key}` {place}{hint}")
}

/// Why a TOML document could not be read: where (the serde path, `.` for
/// the document, and the position when the field is written in the text)
/// and what, in the user's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DocumentError {
    pub(crate) field: String,
    pub(crate) at: Option<super::spans::Position>,
    pub(crate) message: String,
}

/// Reads `text`, a TOML document without environment overrides (a rule
/// file, a plugin manifest), into `T`, with the errors weir.toml gets: a
/// type error in TOML's terms at the value, an unknown key at the key with
/// the nearest known one.
pub(crate) fn read_document<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<T, DocumentError> {
    use super::spans::{Part, Position, Spans};
    let syntax = |e: toml::de::Error| DocumentError {
        field: ".".to_owned(),
        at: e.span().map(|span| Position::of(text, span.start)),
        message: e.message().trim_end().replace('\n', "; "),
    };
    let spans = Spans::parse(text).map_err(syntax)?;
    let table: toml::Table = text.parse().map_err(syntax)?;
    serde_path_to_error::deserialize(Node(toml::Value::Table(table))).map_err(|e| {
        let field = e.path().to_string();
        match e.into_inner() {
            DeError::UnknownKey { key, known } => DocumentError {
                at: spans.find(&field, Part::Key),
                message: unknown_key_message(section_of(&field), &key, known),
                field,
            },
            DeError::Message(message) => DocumentError {
                at: spans.find(&field, Part::Value),
                message,
                field,
            },
        }
    })
}

/// "`a`", "`a` or `b`", "one of `a`, `b`, `c`".
pub(crate) fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [] => "nothing".to_owned(),
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        many => format!("one of {}", many.join(", ")),
    }
}

/// A parsed TOML value as a serde deserializer whose errors are
/// [`DeError`]s.
pub(crate) struct Node(pub(crate) toml::Value);

impl<'de> IntoDeserializer<'de, DeError> for Node {
    type Deserializer = Node;

    fn into_deserializer(self) -> Node {
        self
    }
}

impl<'de> Deserializer<'de> for Node {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            toml::Value::String(text) => visitor.visit_string(text),
            toml::Value::Integer(n) => visitor.visit_i64(n),
            toml::Value::Float(n) => visitor.visit_f64(n),
            toml::Value::Boolean(b) => visitor.visit_bool(b),
            // No field of weir.toml is a date; one written anyway is
            // refused rather than read as its text.
            toml::Value::Datetime(_) => Err(de::Error::invalid_type(
                Unexpected::Other("a date"),
                &visitor,
            )),
            toml::Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter().map(Node));
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            toml::Value::Table(table) => {
                let mut map =
                    MapDeserializer::new(table.into_iter().map(|(key, value)| (key, Node(value))));
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    /// A key that is present holds a value: TOML has no null.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    /// Enums are written as their variant's name (`mode = "listener"`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            toml::Value::String(text) => IntoDeserializer::<'de, DeError>::into_deserializer(text)
                .deserialize_enum(name, variants, visitor),
            other => Node(other).deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}
