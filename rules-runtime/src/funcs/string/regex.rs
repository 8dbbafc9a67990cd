//! Regular expressions for `regex_match`, `regex_replace` and
//! `regex_extract`.
//!
//! EMQX passes the pattern to Erlang's `re` (PCRE) without the `unicode`
//! option, so PCRE runs in byte mode: the pattern and the subject are bytes
//! (`.` is one byte, `é` in a pattern is its two UTF-8 bytes, `[é]` a class
//! of those two bytes), `\w`, `\d`, `\s`, `\b` and `(?i)` are ASCII
//! only, and a subject need not be UTF-8. weir runs the same semantics with
//! `regex-lite` (chosen over `regex` for size: the rule runtime module
//! carries it) by reading pattern and subject as Latin-1, one character per
//! byte, and writing results back as those bytes. The syntax is otherwise
//! PCRE's, with these differences (a pattern using one of the first is
//! refused with a message naming it, never run differently):
//! - no look-around (`(?=`, `(?!`, `(?<=`, `(?<!`), backreferences (`\1`,
//!   `\k<name>`), atomic groups (`(?>`), possessive quantifiers (`a*+`),
//!   recursion, conditionals, `\K`, `\G`, `\Z`, callouts, `(*VERB)`s,
//!   `\p{..}` classes and octal escapes;
//! - `$` matches only at the very end: PCRE's `$` also matches before a
//!   final `\n` (`regex_match('12\n', '^\d+$')` is true in EMQX, false
//!   here; `\n?$` matches both);
//! - after an empty match, `re:replace` first retries for a non-empty
//!   match at the same place; weir moves on one byte, which differs for
//!   patterns whose empty match hides a longer alternative (`x*|b`).
//!
//! Compiled patterns are cached per runtime (rules usually pass a literal),
//! and their size is bounded so that a pattern taken from a message cannot
//! exhaust memory.

use super::super::expects;
use crate::conv;
use crate::value::{OpError, Value};
use regex_lite::{Regex, RegexBuilder};
use std::cell::RefCell;
use std::sync::Arc;

/// How many compiled patterns the runtime keeps.
const CACHED: usize = 16;
/// The most memory one compiled pattern may take.
const SIZE_LIMIT: usize = 1 << 20;

/// Compiled patterns by their bytes, oldest first.
type Cache = Vec<(Box<[u8]>, Arc<Regex>)>;

thread_local! {
    static CACHE: RefCell<Cache> = const { RefCell::new(Vec::new()) };
}

/// Bytes as Latin-1 text: one character per byte, as PCRE's byte mode
/// sees them.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|b| char::from(*b)).collect()
}

/// The bytes of [`latin1`] text.
fn bytes_of(text: &str) -> impl Iterator<Item = u8> + '_ {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
}

/// The compiled regular expression `pattern` (a string argument of `f`).
pub(super) fn compiled(f: &str, pattern: &Value) -> Result<Arc<Regex>, OpError> {
    let bytes = pattern
        .as_binary()
        .ok_or_else(|| expects(f, "a regular expression string", pattern))?;
    let cached = CACHE.with(|c| {
        c.try_borrow().ok().and_then(|c| {
            c.iter()
                .find(|(p, _)| **p == *bytes)
                .map(|(_, re)| Arc::clone(re))
        })
    });
    if let Some(re) = cached {
        return Ok(re);
    }
    let re = RegexBuilder::new(&latin1(bytes))
        .size_limit(SIZE_LIMIT)
        .build()
        .map(Arc::new)
        .map_err(|e| {
            OpError(
                format!(
                    "{f}(): cannot use the regular expression `{}`: {e}",
                    conv::clip(&String::from_utf8_lossy(bytes))
                )
                .into(),
            )
        })?;
    CACHE.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            if c.len() >= CACHED {
                c.remove(0);
            }
            c.push((bytes.into(), Arc::clone(&re)));
        }
    });
    Ok(re)
}

/// Whether `re` matches somewhere in `subject`.
pub(super) fn is_match(re: &Regex, subject: &[u8]) -> bool {
    re.is_match(&latin1(subject))
}

/// A piece of an `re:replace` replacement.
enum Part {
    Text(Vec<u8>),
    /// A group's text (0: the whole match); nothing when the group did not
    /// take part or does not exist.
    Group(usize),
}

/// `re:replace`'s replacement syntax: `&` is the match, `\N`, `\gN` and
/// `\g{N}` are group N, a backslash before anything else stands for that
/// character (`\&`, `\\`, `\0` are `&`, `\`, `0`).
fn parse_replacement(f: &str, r: &[u8]) -> Result<Vec<Part>, OpError> {
    let mut parts = Vec::new();
    let mut text = Vec::new();
    let digits_at = |from: usize| {
        r.iter()
            .skip(from)
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let number = |from: usize, len: usize| -> usize {
        r.iter().skip(from).take(len).fold(0usize, |n, d| {
            n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
        })
    };
    let bad = || {
        OpError(
            format!("{f}(): a \\g in the replacement must be followed by a group number").into(),
        )
    };
    let mut i = 0;
    while let Some(&b) = r.get(i) {
        let next = r.get(i + 1).copied();
        let group = match (b, next) {
            (b'&', _) => {
                i += 1;
                Some(0)
            }
            (b'\\', Some(b'g')) if r.len() > i + 2 => {
                let braced = r.get(i + 2) == Some(&b'{') && r.len() > i + 3;
                let from = if braced { i + 3 } else { i + 2 };
                let len = digits_at(from);
                if len == 0 || (braced && r.get(from + len) != Some(&b'}')) {
                    return Err(bad());
                }
                i = from + len + usize::from(braced);
                Some(number(from, len))
            }
            (b'\\', Some(b'1'..=b'9')) => {
                let len = digits_at(i + 1);
                let n = number(i + 1, len);
                i += 1 + len;
                Some(n)
            }
            (b'\\', Some(c)) => {
                text.push(c);
                i += 2;
                None
            }
            (c, _) => {
                text.push(c);
                i += 1;
                None
            }
        };
        if let Some(n) = group {
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Group(n));
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

/// `re:replace(Subject, RE, Replacement, [global])`.
pub(super) fn replace_all(
    f: &str,
    re: &Regex,
    subject: &[u8],
    replacement: &[u8],
) -> Result<Vec<u8>, OpError> {
    let parts = parse_replacement(f, replacement)?;
    let text = latin1(subject);
    let mut out = Vec::with_capacity(subject.len());
    let mut done = 0;
    // re:replace's global loop: after a match, search again from its end;
    // after an empty match, one byte further (an empty match right after a
    // non-empty one counts, unlike in `captures_iter`).
    let mut at = 0;
    while at <= text.len() {
        let Some(caps) = re.captures_at(&text, at) else {
            break;
        };
        let Some(whole) = caps.get(0) else { break };
        at = if whole.is_empty() {
            whole.start()
                + text
                    .get(whole.start()..)
                    .and_then(|t| t.chars().next())
                    .map_or(1, char::len_utf8)
        } else {
            whole.end()
        };
        out.extend(bytes_of(text.get(done..whole.start()).unwrap_or_default()));
        for part in &parts {
            match part {
                Part::Text(t) => out.extend_from_slice(t),
                Part::Group(n) => {
                    if let Some(g) = caps.get(*n) {
                        out.extend(bytes_of(g.as_str()));
                    }
                }
            }
        }
        done = whole.end();
    }
    out.extend(bytes_of(text.get(done..).unwrap_or_default()));
    Ok(out)
}

/// The groups of the first match (`re:run` with `{capture, all_but_first,
/// binary}`): a group that did not take part is empty.
pub(super) fn first_groups(re: &Regex, subject: &[u8]) -> Vec<Vec<u8>> {
    let text = latin1(subject);
    match re.captures(&text) {
        Some(caps) => caps
            .iter()
            .skip(1)
            .map(|g| {
                g.map(|m| bytes_of(m.as_str()).collect())
                    .unwrap_or_default()
            })
            .collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use crate::funcs::testing::call;
    use crate::value::Value;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    fn ok(name: &str, args: &[Value]) -> Value {
        call(name, args).unwrap_or_else(|e| panic!("{name}({args:?}): {e}"))
    }

    #[test]
    fn regex_match() {
        // t_regex_match
        let cases = [
            ("acbcd", "c", true),
            ("acbcd", "(ac)+", true),
            ("bcd", "(ac)+", false),
            ("", ".*", true),
            ("", "[a-z]+", false),
            ("exebd", "^[a-z]+$", true),
            ("e2xebd", "^[a-z]+$", false),
            // The documentation's examples.
            ("123", r"^\d+$", true),
            ("a23", r"^\d+$", false),
            // Byte mode: `.` is a byte, classes are ASCII.
            ("é", "^..$", true),
            ("é", r"^\w+$", false),
            ("É", "(?i)^é$", false),
            ("é", "^é$", true),
            ("é", "^[é]+$", true),
            ("\u{e9}", r"^\xC3\xA9$", true),
            ("\u{e9}", r"^\xE9$", false),
            // PCRE's `$` before a final newline is not reproduced.
            ("12\n", r"^\d+$", false),
            ("12\n", r"^\d+\n?$", true),
        ];
        for (subject, re, want) in cases {
            assert_eq!(
                ok("regex_match", &[s(subject), s(re)]),
                Value::Bool(want),
                "regex_match({subject:?}, {re:?})"
            );
        }
        // atom_input_test_; any bytes are a subject.
        assert_eq!(
            ok("regex_match", &[Value::Bool(true), s("^true$")]),
            Value::Bool(true)
        );
        assert_eq!(
            ok("regex_match", &[Value::bytes(&b"\xff\x00"[..]), s(r"\x00")]),
            Value::Bool(true)
        );
    }

    #[test]
    fn unsupported_patterns_are_named() {
        for (re, says) in [
            ("a(?=b)", "look-around"),
            (r"(a)\1", "backreferences"),
            ("(", "open group"),
        ] {
            let e = call("regex_match", &[s("ab"), s(re)]).expect_err(re);
            assert!(e.0.contains(says), "{re}: {e}");
        }
        assert!(call("regex_match", &[Value::Null, s("a")]).is_err());
        assert!(call("regex_match", &[s("a"), Value::Int(1)]).is_err());
    }

    #[test]
    fn regex_replace() {
        // t_regex_replace
        let cases = [
            ("", "c.*", "e", ""),
            ("accbcd", "c+", "e", "aebed"),
            ("accbcd", "c+", "[&]", "a[cc]b[c]d"),
            // The documentation's examples.
            ("hello 123", r"\d+", "world", "hello world"),
            ("a;b; c", r";\s*", ",", "a,b,c"),
            // atom_input_test_
            ("atom", "a", "b", "btom"),
            // Groups and escapes of re:replace.
            (
                "2024-05-20",
                r"(\d+)-(\d+)-(\d+)",
                r"\3/\2/\1",
                "20/05/2024",
            ),
            ("ab", "(a)(b)", r"\g2\g{1}", "ba"),
            ("ab", "(a)", r"\&\\\0x", "&\\0xb"),
            ("ab", "(a)|(b)", r"[\2]", "[][b]"),
            ("ab", "a", r"\9", "b"),
            ("ab", "a", "x\\", "x\\b"),
            ("axb", "x*", "-", "-a--b-"),
        ];
        for (subject, re, rep, want) in cases {
            assert_eq!(
                ok("regex_replace", &[s(subject), s(re), s(rep)]),
                s(want),
                "regex_replace({subject:?}, {re:?}, {rep:?})"
            );
        }
        assert!(call("regex_replace", &[s("a"), s("a"), s(r"\g")]).is_ok());
        assert!(call("regex_replace", &[s("a"), s("a"), s(r"\gx")]).is_err());
        assert!(call("regex_replace", &[s("a"), s("a"), s(r"\g{1")]).is_err());
    }

    #[test]
    fn regex_extract() {
        // emqx_variform_bif_tests regex_extract_test_
        let cases: &[(&str, &str, &[&str])] = &[
            ("Order number: 12345", r"(\d+)", &["12345"]),
            ("Hello, world!", r"(\w+).*\s(\w+)", &["Hello", "world"]),
            ("No numbers here!", r"(\d+)", &[]),
            (
                "Date: 2021-05-20",
                r"(\d{4})-(\d{2})-(\d{2})",
                &["2021", "05", "20"],
            ),
            ("Hello, world!", "(Hello)", &["Hello"]),
            ("Items: 12, Price: 34", r"(\d+).*\s(\d+)", &["12", "34"]),
            (
                "Contact: john.doe@example.com",
                r"([\w\.]+@[\w\.]+)",
                &["john.doe@example.com"],
            ),
            ("Just some text, nothing more.", r"([A-Z]\d{3})", &[]),
            (
                "User: admin, Pass: 1234",
                r"User: (\w+), Pass: (\d+)",
                &["admin", "1234"],
            ),
            ("", r"(\d+)", &[]),
            ("$$$###!!!", r"(\d+)", &[]),
            ("Erlang 23.1 version", r"(\d+\.\d+)", &["23.1"]),
            (
                "Server IP: 192.168.1.1 at port 8080",
                r"(\d+\.\d+\.\d+\.\d+)",
                &["192.168.1.1"],
            ),
            // No groups; a group that did not take part is empty.
            ("abc", "b", &[]),
            ("b", "(a)?(b)", &["", "b"]),
        ];
        for (subject, re, want) in cases {
            let want = Value::array(want.iter().map(|x| s(x)).collect());
            assert_eq!(
                ok("regex_extract", &[s(subject), s(re)]),
                want,
                "regex_extract({subject:?}, {re:?})"
            );
        }
    }
}
