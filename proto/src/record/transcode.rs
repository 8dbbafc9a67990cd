//! JSON text straight to an HRecord's wire bytes.
//!
//! Every JSON record a rule emits becomes a binary `google.protobuf.Struct`.
//! Going through `serde_json::Value` and `prost_types::Struct` builds two
//! trees per record (a string allocation per key and per value, a sorted map
//! per object) only to serialise them again; under load that was a fifth of
//! the gateway's CPU. Here serde_json's parser drives a visitor that writes
//! protobuf as it reads, so a record costs one parse and one output buffer.
//!
//! The bytes decode to the same `Struct` as the tree route: fields come in
//! document order instead of sorted, and a key given twice is written twice,
//! which protobuf's map semantics (the last entry wins) read as serde_json's
//! `Map` does.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// `google.protobuf.Struct.fields` (1), `ListValue.values` (1), and in a
/// map entry, `key` (1): all length-delimited field 1.
const FIELD_1_BYTES: u8 = 0x0A;
/// A map entry's `value` (2).
const ENTRY_VALUE: u8 = 0x12;
/// `google.protobuf.Value`'s oneof `kind`.
const NULL_VALUE: u8 = 0x08;
const NUMBER_VALUE: u8 = 0x11;
const STRING_VALUE: u8 = 0x1A;
const BOOL_VALUE: u8 = 0x20;
const STRUCT_VALUE: u8 = 0x2A;
const LIST_VALUE: u8 = 0x32;

/// Why JSON text is not an HRecord.
#[derive(Debug)]
pub(super) enum TranscodeError {
    Json(serde_json::Error),
    /// The text is JSON, but its top level is this kind of value.
    NotAnObject(&'static str),
}

/// The HRecord payload (an encoded `Struct`) of the JSON object in `text`.
pub(super) fn json_text_to_struct_bytes(text: &[u8]) -> Result<Vec<u8>, TranscodeError> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 4);
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let top = TopLevel { out: &mut out }
        .deserialize(&mut deserializer)
        .and_then(|top| deserializer.end().map(|()| top))
        .map_err(TranscodeError::Json)?;
    match top {
        Top::Object => Ok(out),
        Top::Other(kind) => Err(TranscodeError::NotAnObject(kind)),
    }
}

/// What the top level turned out to be.
enum Top {
    Object,
    Other(&'static str),
}

/// The top level: an object's entries are written as the `Struct` itself;
/// anything else is parsed (so syntax errors still win) and reported.
struct TopLevel<'o> {
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = Top;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Top, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Top, A::Error> {
        write_entries(self.out, map)?;
        Ok(Top::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Top::Other("an array"))
    }

    fn visit_unit<E>(self) -> Result<Top, E> {
        Ok(Top::Other("null"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Top, E> {
        Ok(Top::Other("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Top, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Top, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Top, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Top, E> {
        Ok(Top::Other("a string"))
    }
}

/// Writes an object's entries as `Struct.fields` map entries.
fn write_entries<'de, A: MapAccess<'de>>(out: &mut Vec<u8>, mut map: A) -> Result<(), A::Error> {
    loop {
        let entry = begin_nested(out, FIELD_1_BYTES);
        if map.next_key_seed(Key { out: &mut *out })?.is_none() {
            out.truncate(entry.tag_at);
            return Ok(());
        }
        let value = begin_nested(out, ENTRY_VALUE);
        map.next_value_seed(AnyValue { out: &mut *out })?;
        end_nested(out, value);
        end_nested(out, entry);
    }
}

/// A map key: the entry's `key` field.
struct Key<'o> {
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<(), E> {
        write_bytes(self.out, FIELD_1_BYTES, key.as_bytes());
        Ok(())
    }
}

/// Any JSON value, written as the body of a `google.protobuf.Value`.
struct AnyValue<'o> {
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for AnyValue<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnyValue<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.extend_from_slice(&[NULL_VALUE, 0]);
        Ok(())
    }

    fn visit_bool<E>(self, b: bool) -> Result<(), E> {
        self.out.extend_from_slice(&[BOOL_VALUE, u8::from(b)]);
        Ok(())
    }

    // `Struct` numbers are doubles: integers convert as `Number::as_f64`
    // does, rounding beyond 2^53.
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<(), E> {
        self.visit_f64(n as f64)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<(), E> {
        self.visit_f64(n as f64)
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<(), E> {
        if !x.is_finite() {
            return Err(E::custom(format_args!(
                "the number {x} cannot be stored in an HRecord"
            )));
        }
        self.out.push(NUMBER_VALUE);
        self.out.extend_from_slice(&x.to_le_bytes());
        Ok(())
    }

    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        write_bytes(self.out, STRING_VALUE, s.as_bytes());
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let list = begin_nested(self.out, LIST_VALUE);
        loop {
            let item = begin_nested(self.out, FIELD_1_BYTES);
            if seq
                .next_element_seed(AnyValue {
                    out: &mut *self.out,
                })?
                .is_none()
            {
                self.out.truncate(item.tag_at);
                break;
            }
            end_nested(self.out, item);
        }
        end_nested(self.out, list);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let object = begin_nested(self.out, STRUCT_VALUE);
        write_entries(self.out, map)?;
        end_nested(self.out, object);
        Ok(())
    }
}

fn write_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    write_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn write_varint(out: &mut Vec<u8>, n: u64) {
    let (bytes, len) = varint(n);
    out.extend_from_slice(&bytes[..len]);
}

/// `n` as a protobuf varint: the bytes and how many of them are used.
fn varint(mut n: u64) -> ([u8; 10], usize) {
    let (mut bytes, mut len) = ([0u8; 10], 0);
    while n >= 0x80 {
        bytes[len] = (n as u8) | 0x80;
        len += 1;
        n >>= 7;
    }
    bytes[len] = n as u8;
    (bytes, len + 1)
}

/// A length-delimited field whose body is being written.
#[derive(Clone, Copy)]
struct Nested {
    tag_at: usize,
}

/// Writes `tag` and a one-byte length placeholder: most bodies are shorter
/// than 128 bytes, so most fields never move.
fn begin_nested(out: &mut Vec<u8>, tag: u8) -> Nested {
    let tag_at = out.len();
    out.extend_from_slice(&[tag, 0]);
    Nested { tag_at }
}

/// Fills in the body's length, moving the body when it needs more than one
/// byte.
fn end_nested(out: &mut Vec<u8>, nested: Nested) {
    let length_at = nested.tag_at + 1;
    let body_len = out.len() - length_at - 1;
    if body_len < 0x80 {
        out[length_at] = body_len as u8;
    } else {
        let (length, length_len) = varint(body_len as u64);
        // Shift the body right in place (one move, no allocation) to make
        // room for the longer length.
        let end = out.len();
        out.resize(end + length_len - 1, 0);
        out.copy_within(length_at + 1..end, length_at + length_len);
        out[length_at..length_at + length_len].copy_from_slice(&length[..length_len]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::json_to_hrecord;
    use proptest::prelude::*;
    use prost::Message;
    use prost_types::Struct;
    use serde_json::{Value, json};

    /// The `Struct` the tree route (serde_json → prost) makes of `text`.
    fn by_tree(text: &str) -> Struct {
        let value: Value = serde_json::from_str(text).expect("valid JSON");
        let bytes = json_to_hrecord(&value).expect("an object");
        Struct::decode(&bytes[..]).expect("a Struct")
    }

    fn transcoded(text: &str) -> Struct {
        let bytes = json_text_to_struct_bytes(text.as_bytes()).expect("transcodes");
        Struct::decode(&bytes[..]).expect("a Struct")
    }

    #[test]
    fn transcoding_reads_like_the_tree_route() {
        let long = "x".repeat(300);
        for text in [
            r#"{}"#,
            r#"{"a": 1, "b": [true, null, "x"], "c": {"d": 2.5, "e": {}}, "f": []}"#,
            r#"{"id": "00\"\\\n", "é": "\u00e9\ud83d\ude00", "": 0}"#,
            r#"{"big": 18446744073709551615, "neg": -9007199254740993, "exp": 1e308, "tiny": 5e-324}"#,
            r#"{"dup": 1, "dup": [2]}"#,
            &format!(r#"{{"long": "{long}", "nested": [[["{long}"]], {{"k": "{long}"}}]}}"#),
        ] {
            assert_eq!(transcoded(text), by_tree(text), "{text}");
        }
    }

    #[test]
    fn what_is_not_an_object_is_an_error_that_says_so() {
        for (text, kind) in [
            ("[1, 2]", "an array"),
            ("null", "null"),
            ("true", "a boolean"),
            ("-1.5", "a number"),
            (r#""s""#, "a string"),
        ] {
            match json_text_to_struct_bytes(text.as_bytes()) {
                Err(TranscodeError::NotAnObject(found)) => assert_eq!(found, kind, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        for text in [
            "",
            "{",
            r#"{"a": }"#,
            r#"{"a": 1} trailing"#,
            r#"{"a": 1e400}"#,
            "{\"a\": \"\u{1}\"}",
            // Deeper than serde_json's recursion limit.
            &format!(r#"{{"a": {}1{}}}"#, "[".repeat(200), "]".repeat(200)),
        ] {
            assert!(
                matches!(
                    json_text_to_struct_bytes(text.as_bytes()),
                    Err(TranscodeError::Json(_))
                ),
                "{text:?} was accepted"
            );
        }
        let not_utf8 = b"{\"a\": \"\xff\"}";
        assert!(matches!(
            json_text_to_struct_bytes(not_utf8),
            Err(TranscodeError::Json(_))
        ));
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(Value::from),
            ".{0,200}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((".{0,12}", inner), 0..8)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_object_transcodes_to_the_same_struct(
            entries in prop::collection::vec((".{0,12}", any_json()), 0..10),
            pretty in any::<bool>(),
        ) {
            let object = Value::Object(entries.into_iter().collect());
            let text = if pretty {
                serde_json::to_string_pretty(&object)
            } else {
                serde_json::to_string(&object)
            }
            .expect("serialises");
            prop_assert_eq!(transcoded(&text), by_tree(&text));
        }
    }

    #[test]
    fn the_seed_record_transcodes() {
        let record = json!({"id": "0006", "topic": "t/1", "qos": 1, "payload": {"temp": 21.5}});
        assert_eq!(
            transcoded(&record.to_string()),
            by_tree(&record.to_string())
        );
    }
}
