//! JSON text without a tree: validation to compact form, navigation by key
//! or index, scalar decoding, and string escaping.
//!
//! Values that stay JSON (a payload that parses, nested objects and arrays)
//! are kept as their compact text and only scanned when a rule reaches into
//! them, so nothing allocates a tree per event. What is accepted is what
//! `serde_json` accepts (the sink turns records into HRecords with it):
//! RFC 8259, UTF-8, no lone surrogates in `\u` escapes, numbers that fit an
//! f64, nesting below 128 levels.

use crate::value::Value;
use std::borrow::Cow;

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

/// Parses JSON text into a value: arrays and objects stay compact JSON
/// text, scalars are decoded. `None` when it is not valid JSON.
pub fn decode(input: &[u8]) -> Option<Value<'static>> {
    let mut out = Vec::with_capacity(input.len());
    if !compact_into(input, &mut out) {
        return None;
    }
    let text = String::from_utf8(out).ok()?;
    match text.as_bytes().first() {
        Some(b'{' | b'[') => Some(Value::Json(Cow::Owned(text))),
        _ => Some(scalar(&text)?.into_owned()),
    }
}

/// The value of member `key` of an object (the last one if the key is
/// repeated, as `serde_json` does), or `None`.
pub fn get<'a>(json: &'a str, key: &str) -> Option<Value<'a>> {
    let mut s = Scanner::new(json);
    s.skip_ws();
    s.eat(b'{')?;
    let mut found = None;
    s.skip_ws();
    if s.eat(b'}').is_some() {
        return None;
    }
    loop {
        s.skip_ws();
        let k = s.string_span()?;
        s.skip_ws();
        s.eat(b':')?;
        s.skip_ws();
        let v = s.skip_value()?;
        if unescape(&json[k.0 + 1..k.1 - 1])? == key {
            found = Some(v);
        }
        s.skip_ws();
        match s.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    found.and_then(|(a, b)| element(&json[a..b]))
}

/// Element `index` (0-based) of an array, or `None`.
pub fn index(json: &str, index: usize) -> Option<Value<'_>> {
    let mut found = None;
    each_element(json, |i, span| {
        if i == index {
            found = Some(span);
            false
        } else {
            true
        }
    })?;
    found.and_then(|(a, b)| element(&json[a..b]))
}

/// The number of elements of an array or members of an object.
pub fn count(json: &str) -> Option<usize> {
    let mut s = Scanner::new(json);
    s.skip_ws();
    if s.peek()? == b'[' {
        let mut n = 0;
        each_element(json, |_, _| {
            n += 1;
            true
        })?;
        return Some(n);
    }
    s.eat(b'{')?;
    s.skip_ws();
    if s.eat(b'}').is_some() {
        return Some(0);
    }
    let mut n = 0;
    loop {
        s.skip_ws();
        s.string_span()?;
        s.skip_ws();
        s.eat(b':')?;
        s.skip_ws();
        s.skip_value()?;
        n += 1;
        s.skip_ws();
        match s.next()? {
            b',' => continue,
            b'}' => return Some(n),
            _ => return None,
        }
    }
}

/// Calls `f(i, span)` for each element of an array until it returns false.
fn each_element(json: &str, mut f: impl FnMut(usize, (usize, usize)) -> bool) -> Option<()> {
    let mut s = Scanner::new(json);
    s.skip_ws();
    s.eat(b'[')?;
    s.skip_ws();
    if s.eat(b']').is_some() {
        return Some(());
    }
    let mut i = 0;
    loop {
        s.skip_ws();
        let span = s.skip_value()?;
        if !f(i, span) {
            return Some(());
        }
        i += 1;
        s.skip_ws();
        match s.next()? {
            b',' => continue,
            b']' => return Some(()),
            _ => return None,
        }
    }
}

/// Turns the text of one JSON value into a value.
fn element(text: &str) -> Option<Value<'_>> {
    match text.as_bytes().first()? {
        b'{' | b'[' => Some(Value::Json(Cow::Borrowed(text))),
        _ => scalar(text),
    }
}

/// Decodes a scalar: null, a boolean, a number or a string.
fn scalar(text: &str) -> Option<Value<'_>> {
    match text {
        "null" => return Some(Value::Null),
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return unescape(inner).map(Value::Str);
    }
    number(text)
}

/// A JSON number: an integer that fits i64, else a float (as the host's
/// payload paths give them).
pub fn number(text: &str) -> Option<Value<'static>> {
    let integral = !text.contains(['.', 'e', 'E']);
    if integral && let Ok(n) = text.parse::<i64>() {
        return Some(Value::Int(n));
    }
    text.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .map(Value::Float)
}

/// Whether the number `text` (valid JSON syntax) is finite as a double
/// without parsing it: true for any number without an exponent whose digits
/// are fewer than the 309 a double's largest finite value has.
fn surely_finite(text: &str) -> bool {
    text.len() < 300 && !text.bytes().any(|c| matches!(c, b'e' | b'E'))
}

/// The text of a JSON string's contents (between the quotes).
fn unescape(inner: &str) -> Option<Cow<'_, str>> {
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
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
    Some(Cow::Owned(out))
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut n = 0;
    for _ in 0..4 {
        n = n * 16 + chars.next()?.to_digit(16)?;
    }
    Some(n)
}

/// A cursor over JSON bytes; every method returns `None` on bad input.
struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(s: &'a str) -> Self {
        Scanner {
            b: s.as_bytes(),
            pos: 0,
        }
    }

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
                    number(text)?;
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
            let rest = self.b.get(self.pos..)?;
            self.pos += rest
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .unwrap_or(rest.len());
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

    /// Skips one value without recursion and returns its span.
    fn skip_value(&mut self) -> Option<(usize, usize)> {
        let start = self.pos;
        match self.peek()? {
            b'"' => {
                self.string_span()?;
            }
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string_span()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.checked_sub(1)?;
                            if depth == 0 {
                                self.pos += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
            }
            _ => {
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.pos += 1;
                }
                if self.pos == start {
                    return None;
                }
            }
        }
        Some((start, self.pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compact(s: &str) -> Option<String> {
        let mut out = Vec::new();
        compact_into(s.as_bytes(), &mut out).then(|| String::from_utf8(out).expect("UTF-8"))
    }

    #[test]
    fn compaction_keeps_tokens_as_written() {
        assert_eq!(
            compact(" { \"a\" : [1, 2.50 ,\"x y\"], \"b\":{} , \"a\": null } ").as_deref(),
            Some(r#"{"a":[1,2.50,"x y"],"b":{},"a":null}"#)
        );
        assert_eq!(
            compact("12345678901234567890123").as_deref(),
            Some("12345678901234567890123")
        );
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\"}",
            "01",
            "1.",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "1e999",
            "nul",
            "\"\t\"",
            "[] x",
            &format!("1{}", "0".repeat(309)),
            &format!("-1{}.5", "0".repeat(400)),
        ] {
            assert_eq!(compact(bad), None, "{bad:?}");
        }
        let largest_whole = format!("1{}", "0".repeat(308));
        assert_eq!(compact(&largest_whole), Some(largest_whole.clone()));
        assert_eq!(compact("\"\\u00e9 ok\""), Some("\"\\u00e9 ok\"".to_owned()));
    }

    #[test]
    fn navigation_finds_members_and_elements() {
        let j = r#"{"a":{"b":[10,"x\"y",{"c":true}]},"n":-1.5e2,"a2":null,"d":1,"d":2}"#;
        let a = get(j, "a").expect("a");
        let Value::Json(a) = a else {
            panic!("object expected")
        };
        let b = get(&a, "b").expect("b");
        let Value::Json(b) = b else {
            panic!("array expected")
        };
        assert_eq!(index(&b, 0), Some(Value::Int(10)));
        assert_eq!(index(&b, 1), Some(Value::str("x\"y")));
        assert_eq!(index(&b, 3), None);
        assert_eq!(count(&b), Some(3));
        assert_eq!(get(j, "n"), Some(Value::Float(-150.0)));
        assert_eq!(get(j, "a2"), Some(Value::Null));
        assert_eq!(get(j, "d"), Some(Value::Int(2)));
        assert_eq!(get(j, "zz"), None);
        assert_eq!(count(j), Some(5));
        assert_eq!(get("[1]", "a"), None);
        assert_eq!(get("{\"\\u0041\":1}", "A"), Some(Value::Int(1)));
    }

    #[test]
    fn strings_escape_as_serde_json_does() {
        let s = "a\"b\\c\n\u{1}\u{7f}é/";
        let mut out = vec![b'"'];
        escape_into(&mut out, s);
        out.push(b'"');
        assert_eq!(
            String::from_utf8(out).expect("UTF-8"),
            serde_json::to_string(s).expect("JSON")
        );
    }

    proptest::proptest! {
        #[test]
        fn validity_agrees_with_serde_json(s in "[\\[\\]{}\",:0-9a-z\\\\. eE+-]{0,24}") {
            let ours = is_valid(s.as_bytes());
            let theirs = serde_json::from_str::<serde_json::Value>(&s).is_ok();
            proptest::prop_assert_eq!(ours, theirs, "{:?}", s);
        }

        #[test]
        fn compacting_pretty_json_gives_serde_json_compact_text(v in json_value()) {
            let pretty = serde_json::to_string_pretty(&v).expect("JSON");
            let compact = compact(&pretty).expect("valid");
            proptest::prop_assert_eq!(compact, serde_json::to_string(&v).expect("JSON"));
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            (-1e300f64..1e300).prop_map(serde_json::Value::from),
            ".{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(".{0,4}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn nesting_is_limited_like_serde_json() {
        for depth in [126, 127, 128, 129] {
            let s = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            assert_eq!(
                is_valid(s.as_bytes()),
                serde_json::from_str::<serde_json::Value>(&s).is_ok(),
                "depth {depth}"
            );
        }
    }
}
