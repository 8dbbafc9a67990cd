//! JSON for rules: validation to compact form (how a JSON-aware template
//! writes a payload that is JSON), decoding into values (how a rule reads
//! `payload.a.b`), encoding values (how a map or array becomes text), and
//! string escaping.
//!
//! Decoding follows what EMQX's JSON decoder gives a rule: objects become
//! maps, arrays lists, strings binaries, `null` the atom `null`, and a
//! number without a fraction or exponent an integer of any size (so
//! `12345678901234567890` stays exact). What compaction accepts is what
//! `serde_json` accepts, because the sink turns HRecord text into a
//! protobuf `Struct` with it: RFC 8259, UTF-8, no lone surrogates, numbers
//! that fit an f64, nesting below 128 levels.

use crate::value::{Map, Value};
use num_bigint::BigInt;

/// Escaping is the guest SDK's, so a compiled rule and a hand-written plugin
/// template write the same bytes.
pub use weir_guest_sdk::json::escape_into;

/// Deepest nesting accepted, as in `serde_json`.
const MAX_DEPTH: usize = 127;

/// Appends `input` to `out` without insignificant whitespace if it is one
/// valid JSON value, and says whether it was; on `false` `out` is left as
/// it was. Numbers and strings are copied as written, so nothing is lost.
pub fn compact_into(input: &[u8], out: &mut Vec<u8>) -> bool {
    if std::str::from_utf8(input).is_err() {
        return false;
    }
    let start = out.len();
    let mut s = Scanner { b: input, pos: 0 };
    let ok = s.value(0, out).is_some() && {
        s.skip_ws();
        s.pos == input.len()
    };
    if !ok {
        out.truncate(start);
    }
    ok
}

/// Whether `input` is one valid JSON value.
pub fn is_valid(input: &[u8]) -> bool {
    compact_into(input, &mut Vec::new())
}

/// Whether the number `text` (valid JSON syntax) is finite as a double
/// without parsing it: true for any number without an exponent whose digits
/// are fewer than the 309 a double's largest finite value has.
fn surely_finite(text: &str) -> bool {
    text.len() < 300 && !text.bytes().any(|c| matches!(c, b'e' | b'E'))
}

/// Why a text is not JSON, for the rule error EMQX also raises
/// (`decode_json_failed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset of the first character that is wrong.
    pub at: usize,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not valid JSON (at byte {})", self.at)
    }
}

/// Decodes one JSON value (surrounding whitespace allowed).
pub fn decode(input: &[u8]) -> Result<Value, JsonError> {
    let mut d = Decoder { b: input, pos: 0 };
    d.ws();
    let v = d.value(0)?;
    d.ws();
    if d.pos != input.len() {
        return Err(d.err());
    }
    Ok(v)
}

struct Decoder<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn err(&self) -> JsonError {
        JsonError { at: self.pos }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), JsonError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err())
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        match self.peek().ok_or_else(|| self.err())? {
            b'{' => {
                if depth >= MAX_DEPTH {
                    return Err(self.err());
                }
                self.pos += 1;
                let mut map = Map::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(Value::object(map));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    let v = self.value(depth + 1)?;
                    // A repeated key: the last one wins.
                    map.insert(key, v);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Value::object(map));
                        }
                        _ => return Err(self.err()),
                    }
                }
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return Err(self.err());
                }
                self.pos += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Value::array(items));
                }
                loop {
                    self.ws();
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Value::array(items));
                        }
                        _ => return Err(self.err()),
                    }
                }
            }
            b'"' => Ok(Value::from(self.string()?)),
            b't' => self.word("true", Value::Bool(true)),
            b'f' => self.word("false", Value::Bool(false)),
            b'n' => self.word("null", Value::Null),
            _ => self.number(),
        }
    }

    fn word(&mut self, word: &str, v: Value) -> Result<Value, JsonError> {
        let end = self.pos + word.len();
        if self.b.get(self.pos..end) == Some(word.as_bytes()) {
            self.pos = end;
            Ok(v)
        } else {
            Err(self.err())
        }
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        let mut s = Scanner {
            b: self.b,
            pos: self.pos,
        };
        s.number_span().ok_or(JsonError { at: start })?;
        self.pos = s.pos;
        let text = std::str::from_utf8(&self.b[start..self.pos]).map_err(|_| self.err())?;
        number(text).ok_or(JsonError { at: start })
    }

    fn string(&mut self) -> Result<String, JsonError> {
        let start = self.pos;
        let mut s = Scanner {
            b: self.b,
            pos: self.pos,
        };
        let (a, b) = s.string_span().ok_or(JsonError { at: start })?;
        self.pos = s.pos;
        let inner = std::str::from_utf8(&self.b[a + 1..b - 1]).map_err(|_| JsonError { at: a })?;
        unescape(inner).ok_or(JsonError { at: a })
    }
}

/// A JSON number as EMQX's decoder reads it: an integer (of any size) when
/// it has no fraction and no exponent, else a float; `None` when the float
/// is out of range.
pub fn number(text: &str) -> Option<Value> {
    if !text.contains(['.', 'e', 'E']) {
        if let Ok(n) = text.parse::<i64>() {
            return Some(Value::Int(n));
        }
        return text.parse::<BigInt>().ok().map(Value::from_big);
    }
    text.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .map(Value::Float)
}

/// The text of a JSON string's contents (between the quotes), already
/// checked by the scanner.
fn unescape(inner: &str) -> Option<String> {
    if !inner.contains('\\') {
        return Some(inner.to_owned());
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let decoded = match chars.next()? {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hi = hex4(&mut chars)?;
                if (0xD800..0xDC00).contains(&hi) {
                    if chars.next()? != '\\' || chars.next()? != 'u' {
                        return None;
                    }
                    let lo = hex4(&mut chars)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                } else {
                    char::from_u32(hi)?
                }
            }
            _ => return None,
        };
        out.push(decoded);
    }
    Some(out)
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut n = 0;
    for _ in 0..4 {
        n = n * 16 + chars.next()?.to_digit(16)?;
    }
    Some(n)
}

/// The JSON text of a value, as EMQX's encoder writes a map or a list:
/// binaries as strings (invalid UTF-8 replaced by U+FFFD), integers of any
/// size as written, floats in their shortest form. `undefined` is written
/// as `null` (EMQX writes the text `"undefined"`; see docs/rules.md).
pub fn encode(v: &Value) -> String {
    let mut out = Vec::new();
    encode_into(&mut out, v);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the JSON text of `v` to `out` (see [`encode`]).
pub fn encode_into(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Undefined | Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Value::Big(b) => out.extend_from_slice(b.to_string().as_bytes()),
        Value::Float(x) => write_float(out, *x),
        Value::Str(s) => write_string(out, s),
        Value::Bytes(b) => write_string(out, &String::from_utf8_lossy(b)),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                encode_into(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, k);
                out.push(b':');
                encode_into(out, item);
            }
            out.push(b'}');
        }
    }
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape_into(out, s);
    out.push(b'"');
}

/// A finite float in its shortest round-trip form, always with a fraction
/// or an exponent so that it reads back as a float (`1.0`, not `1`).
pub(crate) fn write_float(out: &mut Vec<u8>, x: f64) {
    if !x.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    out.extend_from_slice(zmij::Buffer::new().format_finite(x).as_bytes());
}

/// A cursor over JSON bytes; every method returns `None` on bad input.
struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.pos += 1)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Validates one value and appends its compact form.
    fn value(&mut self, depth: usize, out: &mut Vec<u8>) -> Option<()> {
        self.skip_ws();
        match self.peek()? {
            b'{' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.pos += 1;
                out.push(b'{');
                self.skip_ws();
                if self.eat(b'}').is_some() {
                    out.push(b'}');
                    return Some(());
                }
                loop {
                    self.skip_ws();
                    let (a, b) = self.string_span()?;
                    out.extend_from_slice(&self.b[a..b]);
                    self.skip_ws();
                    self.eat(b':')?;
                    out.push(b':');
                    self.value(depth + 1, out)?;
                    self.skip_ws();
                    let c = self.next()?;
                    out.push(c);
                    match c {
                        b',' => continue,
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.pos += 1;
                out.push(b'[');
                self.skip_ws();
                if self.eat(b']').is_some() {
                    out.push(b']');
                    return Some(());
                }
                loop {
                    self.value(depth + 1, out)?;
                    self.skip_ws();
                    let c = self.next()?;
                    out.push(c);
                    match c {
                        b',' => continue,
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'"' => {
                let (a, b) = self.string_span()?;
                out.extend_from_slice(&self.b[a..b]);
                Some(())
            }
            b't' => self.word(b"true", out),
            b'f' => self.word(b"false", out),
            b'n' => self.word(b"null", out),
            _ => {
                let (a, b) = self.number_span()?;
                let text = std::str::from_utf8(&self.b[a..b]).ok()?;
                if !surely_finite(text) {
                    text.parse::<f64>().ok().filter(|x| x.is_finite())?;
                }
                out.extend_from_slice(text.as_bytes());
                Some(())
            }
        }
    }

    fn word(&mut self, word: &[u8], out: &mut Vec<u8>) -> Option<()> {
        let end = self.pos.checked_add(word.len())?;
        (self.b.get(self.pos..end)? == word).then_some(())?;
        self.pos = end;
        out.extend_from_slice(word);
        Some(())
    }

    /// A number's span, checked against JSON's grammar.
    fn number_span(&mut self) -> Option<(usize, usize)> {
        let start = self.pos;
        self.eat(b'-');
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.').is_some() {
            self.peek().filter(u8::is_ascii_digit)?;
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.peek().filter(u8::is_ascii_digit)?;
            self.digits();
        }
        Some((start, self.pos))
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    /// A string's span, quotes included, with its escapes checked.
    fn string_span(&mut self) -> Option<(usize, usize)> {
        let start = self.pos;
        self.eat(b'"')?;
        loop {
            // Most string bytes stand for themselves: skip them in one go.
            self.pos += plain_run(self.b.get(self.pos..)?);
            match self.next()? {
                b'"' => return Some((start, self.pos)),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        let hi = self.hex4()?;
                        if (0xD800..0xDC00).contains(&hi) {
                            self.eat(b'\\')?;
                            self.eat(b'u')?;
                            let lo = self.hex4()?;
                            if !(0xDC00..0xE000).contains(&lo) {
                                return None;
                            }
                        } else if (0xDC00..0xE000).contains(&hi) {
                            return None;
                        }
                    }
                    _ => return None,
                },
                c if c < 0x20 => return None,
                _ => {}
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let mut n = 0;
        for _ in 0..4 {
            n = n * 16 + char::from(self.next()?).to_digit(16)?;
        }
        Some(n)
    }
}

/// How many bytes at the start of `bytes` stand for themselves in a JSON
/// string (none is `"`, `\\` or a control character). Eight bytes are looked
/// at together while none of them is special: in Wasm, a loop over each byte
/// was most of what a large payload cost a rule.
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Whether any byte of `x` is below `n` (n ≤ 128); exact as a whole.
    let any_below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS != 0;
    let any_equal = |x: u64, c: u8| any_below(x ^ (ONES * u64::from(c)), 1);
    let mut words = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        if any_equal(x, b'"') || any_equal(x, b'\\') || any_below(x, 0x20) {
            break;
        }
        words += 1;
    }
    let start = words * 8;
    let rest = &bytes[start..];
    start
        + rest
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .unwrap_or(rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_run_ends_at_the_first_special_byte_wherever_it_is() {
        for special in [b'"', b'\\', 0x00, 0x1f] {
            for at in 0..40 {
                let mut bytes = vec![b'x'; 40];
                // Bytes around the special one that the word test must not
                // take for special: high bytes (UTF-8) and the neighbours.
                bytes[(at + 1) % 40] = 0xC3;
                bytes[(at + 39) % 40] = 0x20;
                bytes[at] = special;
                let expected = bytes
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                    .unwrap_or(40);
                assert_eq!(plain_run(&bytes), expected, "{special:#x} at {at}");
            }
        }
        assert_eq!(plain_run(&[b'x'; 40]), 40);
        assert_eq!(plain_run("é€😀 plain text ".repeat(5).as_bytes()), 105);
    }

    fn compact(s: &str) -> Option<String> {
        let mut out = Vec::new();
        compact_into(s.as_bytes(), &mut out).then(|| String::from_utf8(out).expect("UTF-8"))
    }

    #[test]
    fn compaction_keeps_tokens_as_written() {
        assert_eq!(
            compact(" { \"a\" : [ 1.50 , -0 , 1e3 ], \"b\\n\" : \"x y\" } ").as_deref(),
            Some(r#"{"a":[1.50,-0,1e3],"b\n":"x y"}"#)
        );
        assert_eq!(
            compact("\"\\ud83d\\ude00\"").as_deref(),
            Some(r#""\ud83d\ude00""#)
        );
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":}",
            "01",
            "1.",
            "\"\\ud800\"",
            "nul",
            "1e999",
            "\"\t\"",
        ] {
            assert_eq!(compact(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn decoding_gives_emqx_terms() {
        let v =
            decode(br#" {"a": [1, 2.5, "x", null, true], "n": 12345678901234567890, "a2": {}} "#)
                .expect("valid");
        let m = v.as_object().expect("object");
        let a = m["a"].as_array().expect("array");
        assert_eq!(a[0], Value::Int(1));
        assert_eq!(a[1], Value::Float(2.5));
        assert_eq!(a[2], Value::str("x"));
        assert_eq!(a[3], Value::Null);
        assert_eq!(a[4], Value::Bool(true));
        assert!(matches!(m["n"], Value::Big(_)));
        assert_eq!(encode(&m["n"]), "12345678901234567890");
        assert_eq!(decode(b"1.0").expect("float"), Value::Float(1.0));
        assert_eq!(
            decode(br#"{"k":1,"k":2}"#)
                .expect("dup")
                .as_object()
                .expect("o")["k"],
            Value::Int(2)
        );
        for bad in [&b""[..], b"abc", b"{", b"[1,]", b"1 2", b"\xff"] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(decode(deep.as_bytes()).is_err());
    }

    #[test]
    fn encoding_round_trips() {
        let text = r#"{"a":[1,2.5,"x\"y",null,true],"b":{"c":-7}}"#;
        assert_eq!(encode(&decode(text.as_bytes()).expect("valid")), text);
        assert_eq!(encode(&Value::Float(1.0)), "1.0");
        assert_eq!(encode(&Value::Undefined), "null");
        assert_eq!(encode(&Value::bytes(&b"a\xffb"[..])), "\"a\u{fffd}b\"");
    }

    proptest::proptest! {
        #[test]
        fn validity_agrees_with_serde_json(s in "[\\[\\]{}\",:0-9a-z\\\\. eE+-]{0,24}") {
            let ours = is_valid(s.as_bytes());
            let theirs = serde_json::from_str::<serde_json::Value>(&s).is_ok();
            proptest::prop_assert_eq!(ours, theirs);
        }
    }
}
