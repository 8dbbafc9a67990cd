//! String functions (EMQX's "string operation" functions): `lower`, `trim`,
//! `split`, `substr`, `pad`, `replace`, `sprintf`, `regex_match`, ...
//!
//! EMQX 5.8 implements them with Erlang's `string` module, and a rule means
//! what it means there only with that module's semantics, which are not
//! Rust's:
//! - Lengths, positions, trims and searches count grapheme clusters
//!   (`strlen('e\u0301')` is 1, `\r\n` is one character), and a search
//!   pattern only matches where its last character ends a cluster.
//! - `substr` positions count from 0 (`string:slice`).
//! - Whitespace is Unicode's Pattern_White_Space (not U+00A0).
//! - `tokens` works on bytes (EMQX converts with `binary_to_list`), so a
//!   multi-byte separator separates at each of its bytes.
//! - `reverse`, `pad` with a fill text and `sprintf` build an Erlang
//!   character list and turn it into a binary with `iolist_to_binary`: a
//!   character up to U+00FF becomes one byte (Latin-1, so `reverse('né')`
//!   is not UTF-8) and a character beyond it fails the call. weir gives the
//!   same bytes and the same failures.
//! - Regular expressions run in `re`'s default byte mode (see [`regex`]).
//!
//! Undefined and JSON null are refused where EMQX raises `badarg` for them;
//! `true` and `false` are taken by name, as EMQX 5 takes atoms.

mod regex;
mod sprintf;

use super::{Env, Func, expects, text_arg};
use crate::conv;
use crate::value::{OpError, Value};
use std::borrow::Cow;
use unicode_segmentation::UnicodeSegmentation;

pub(super) const FUNCS: &[Func] = &[
    Func {
        name: "lower",
        arity: (1, 1),
        signature: "lower(s)",
        doc: "s in lower case",
        call: |a, _| {
            Ok(Value::from(map_chars(
                &subject("lower", &a[0])?,
                char::to_lowercase,
            )))
        },
    },
    Func {
        name: "upper",
        arity: (1, 1),
        signature: "upper(s)",
        doc: "s in upper case",
        call: |a, _| {
            Ok(Value::from(map_chars(
                &subject("upper", &a[0])?,
                char::to_uppercase,
            )))
        },
    },
    Func {
        name: "trim",
        arity: (1, 1),
        signature: "trim(s)",
        doc: "s without leading and trailing whitespace (\\r\\n counts as one character)",
        call: |a, _| Ok(Value::str(trim_end(trim_start(&subject("trim", &a[0])?)))),
    },
    Func {
        name: "ltrim",
        arity: (1, 1),
        signature: "ltrim(s)",
        doc: "s without leading whitespace",
        call: |a, _| Ok(Value::str(trim_start(&subject("ltrim", &a[0])?))),
    },
    Func {
        name: "rtrim",
        arity: (1, 1),
        signature: "rtrim(s)",
        doc: "s without trailing whitespace",
        call: |a, _| Ok(Value::str(trim_end(&subject("rtrim", &a[0])?))),
    },
    Func {
        name: "reverse",
        arity: (1, 1),
        signature: "reverse(s)",
        doc: "s with its characters in reverse order (characters beyond U+00FF fail, as in EMQX)",
        call: reverse,
    },
    Func {
        name: "strlen",
        arity: (1, 1),
        signature: "strlen(s)",
        doc: "the number of characters (grapheme clusters) of s",
        call: |a, _| {
            let s = subject("strlen", &a[0])?;
            Ok(Value::Int(
                i64::try_from(s.graphemes(true).count()).unwrap_or(i64::MAX),
            ))
        },
    },
    Func {
        name: "substr",
        arity: (2, 3),
        signature: "substr(s, start[, length])",
        doc: "the characters of s from start (counting from 0), at most length of them",
        call: substr,
    },
    Func {
        name: "split",
        arity: (2, 3),
        signature: "split(s, separator[, 'notrim' | 'leading' | 'leading_notrim' | 'trailing' | 'trailing_notrim'])",
        doc: "the parts of s between separators, without empty parts unless 'notrim'; 'leading' and 'trailing' split at the first or last separator only",
        call: split,
    },
    Func {
        name: "tokens",
        arity: (2, 3),
        signature: "tokens(s, separator_chars[, 'nocrlf'])",
        doc: "the non-empty runs of s between any of the separator bytes ('nocrlf': also \\r, \\n and \\r\\n)",
        call: tokens,
    },
    Func {
        name: "concat",
        arity: (1, 2),
        signature: "concat(a, b) | concat(array)",
        doc: "the texts of the values joined (numbers, atoms and objects as str() gives them)",
        call: concat,
    },
    Func {
        name: "sprintf_s",
        arity: (2, 2),
        signature: "sprintf_s(format, args)",
        doc: "format filled in from the array args, as Erlang's io_lib:format (~s, ~p, ~w, ~b, ~.2f, ...)",
        call: |a, _| {
            let args = a[1]
                .as_array()
                .ok_or_else(|| expects("sprintf_s", "an array of arguments", &a[1]))?;
            sprintf_value("sprintf_s", &a[0], args)
        },
    },
    Func {
        name: "sprintf",
        arity: (1, usize::MAX),
        signature: "sprintf(format, arg...)",
        doc: "format filled in from the arguments, as Erlang's io_lib:format (~s, ~p, ~w, ~b, ~.2f, ...)",
        call: |a, _| sprintf_value("sprintf", &a[0], a.get(1..).unwrap_or_default()),
    },
    Func {
        name: "pad",
        arity: (2, 4),
        signature: "pad(s, length[, 'trailing' | 'leading' | 'both'[, fill]])",
        doc: "s padded to length characters with spaces (or with the text fill, repeated), at the end unless told",
        call: pad,
    },
    Func {
        name: "replace",
        arity: (3, 4),
        signature: "replace(s, search, replacement[, 'all' | 'leading' | 'trailing'])",
        doc: "s with every (or the first, or the last) occurrence of search replaced",
        call: replace,
    },
    Func {
        name: "regex_match",
        arity: (2, 2),
        signature: "regex_match(s, regex)",
        doc: "whether the regular expression matches somewhere in s",
        call: |a, _| {
            let s = subject_bytes("regex_match", &a[0])?;
            let re = regex::compiled("regex_match", &a[1])?;
            Ok(Value::Bool(regex::is_match(&re, &s)))
        },
    },
    Func {
        name: "regex_replace",
        arity: (3, 3),
        signature: "regex_replace(s, regex, replacement)",
        doc: "s with every match replaced (& in the replacement is the match, \\1 its first group)",
        call: |a, _| {
            let s = subject_bytes("regex_replace", &a[0])?;
            let re = regex::compiled("regex_replace", &a[1])?;
            let replacement = binary_bytes("regex_replace", "a replacement string", &a[2])?;
            Ok(Value::binary(regex::replace_all(
                "regex_replace",
                &re,
                &s,
                replacement,
            )?))
        },
    },
    Func {
        name: "regex_extract",
        arity: (2, 2),
        signature: "regex_extract(s, regex)",
        doc: "the groups of the first match (an empty array without a match or groups)",
        call: |a, _| {
            let s = subject_bytes("regex_extract", &a[0])?;
            let re = regex::compiled("regex_extract", &a[1])?;
            Ok(Value::array(
                regex::first_groups(&re, &s)
                    .into_iter()
                    .map(Value::binary)
                    .collect(),
            ))
        },
    },
    Func {
        name: "ascii",
        arity: (1, 1),
        signature: "ascii(s)",
        doc: "the code of the first byte of s",
        call: |a, _| {
            let s = subject_bytes("ascii", &a[0])?;
            s.first()
                .map(|b| Value::Int(i64::from(*b)))
                .ok_or_else(|| OpError::new("ascii() expects a non-empty string"))
        },
    },
    Func {
        name: "find",
        arity: (2, 3),
        signature: "find(s, search[, 'leading' | 'trailing'])",
        doc: "the rest of s from the first (or last) occurrence of search; '' when there is none",
        call: find,
    },
    Func {
        name: "join_to_string",
        arity: (1, 2),
        signature: "join_to_string([separator, ]array)",
        doc: "the texts of the array's items joined by separator (', ' unless given)",
        call: join_to_string,
    },
    Func {
        name: "join_to_sql_values_string",
        arity: (1, 1),
        signature: "join_to_sql_values_string(array)",
        doc: "the array's items as SQL values joined by ', ': text, objects and arrays quoted (`'a'`, `'[1,2]'`), numbers and booleans as they are",
        call: join_to_sql_values_string,
    },
    Func {
        name: "unescape",
        arity: (1, 1),
        signature: "unescape(s)",
        doc: "s with C escapes (\\n, \\t, \\\\, \\\", \\x41, ...) turned into the characters they stand for",
        call: unescape,
    },
];

/// The text of the string a function works on: a binary, or `true` /
/// `false` by name; undefined and null are refused (EMQX's `badarg`).
fn subject<'v>(f: &str, v: &'v Value) -> Result<Cow<'v, str>, OpError> {
    if v.is_nullish() {
        return Err(expects(f, "a string", v));
    }
    text_arg(f, v)
}

/// [`subject`] as bytes, for the functions that work on bytes (`tokens`,
/// `ascii`, the regular expressions), which take any binary.
fn subject_bytes<'v>(f: &str, v: &'v Value) -> Result<Cow<'v, [u8]>, OpError> {
    match v {
        Value::Str(_) | Value::Bytes(_) => Ok(Cow::Borrowed(v.as_binary().unwrap_or_default())),
        Value::Bool(_) => Ok(Cow::Borrowed(v.atom_name().unwrap_or_default().as_bytes())),
        other => Err(expects(f, "a string", other)),
    }
}

/// The bytes of an argument that EMQX requires to be a binary (a pattern, a
/// separator, a replacement).
fn binary_bytes<'v>(f: &str, what: &str, v: &'v Value) -> Result<&'v [u8], OpError> {
    v.as_binary().ok_or_else(|| expects(f, what, v))
}

/// The text of an argument that EMQX requires to be a binary.
pub(super) fn binary_text<'v>(f: &str, what: &str, v: &'v Value) -> Result<&'v str, OpError> {
    let bytes = binary_bytes(f, what, v)?;
    std::str::from_utf8(bytes).map_err(|_| {
        OpError(format!("{f}() expects {what}, got binary data that is not UTF-8").into())
    })
}

/// An option argument: one of `allowed`, exactly.
fn option<'a>(f: &str, v: &Value, allowed: &[&'a str]) -> Result<&'a str, OpError> {
    let given = v.as_binary();
    allowed
        .iter()
        .find(|o| given == Some(o.as_bytes()))
        .copied()
        .ok_or_else(|| {
            let list: Vec<String> = allowed.iter().map(|o| format!("'{o}'")).collect();
            let got = match v.as_text_lossy() {
                Some(text) => format!("'{}'", conv::clip(&text)),
                None => v.kind().to_string(),
            };
            OpError(format!("{f}() expects {}, got {got}", list.join(" or ")).into())
        })
}

/// An integer argument (a count or a position); a big integer stands for
/// the farthest `i64` of its sign, which no string reaches.
pub(super) fn count_arg(f: &str, what: &str, v: &Value) -> Result<i64, OpError> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::Big(b) if b.sign() == num_bigint::Sign::Minus => Ok(i64::MIN),
        Value::Big(_) => Ok(i64::MAX),
        other => Err(expects(f, what, other)),
    }
}

fn map_chars<I: Iterator<Item = char>>(s: &str, case: fn(char) -> I) -> String {
    // Character by character, as Erlang's unicode_util does: no final-sigma
    // rule (`str::to_lowercase` would write `ς` at the end of a word).
    s.chars().flat_map(case).collect()
}

/// Unicode's Pattern_White_Space, and `\r\n` as one character: what
/// Erlang's `string:trim/1` removes.
fn is_whitespace(grapheme: &str) -> bool {
    let mut chars = grapheme.chars();
    match (chars.next(), chars.next()) {
        (Some('\r'), Some('\n')) => chars.next().is_none(),
        (Some(c), None) => matches!(
            c,
            '\t' | '\n'
                | '\u{b}'
                | '\u{c}'
                | '\r'
                | ' '
                | '\u{85}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
        ),
        _ => false,
    }
}

fn trim_start(s: &str) -> &str {
    let mut rest = s;
    for g in s.graphemes(true) {
        if !is_whitespace(g) {
            break;
        }
        rest = rest.strip_prefix(g).unwrap_or(rest);
    }
    rest
}

fn trim_end(s: &str) -> &str {
    let mut rest = s;
    for g in s.graphemes(true).rev() {
        if !is_whitespace(g) {
            break;
        }
        rest = rest.strip_suffix(g).unwrap_or(rest);
    }
    rest
}

/// Erlang characters as the bytes `iolist_to_binary` makes of them: one
/// byte each up to U+00FF; a character beyond fails the call, as in EMQX.
fn latin1_bytes(f: &str, chars: impl IntoIterator<Item = char>) -> Result<Vec<u8>, OpError> {
    chars
        .into_iter()
        .map(|c| {
            u8::try_from(u32::from(c)).map_err(|_| {
                OpError(
                    format!(
                        "{f}(): EMQX cannot build this result: the character U+{:04X} is beyond U+00FF",
                        u32::from(c)
                    )
                    .into(),
                )
            })
        })
        .collect()
}

fn reverse(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let s = subject("reverse", &a[0])?;
    let chars = s.graphemes(true).rev().flat_map(str::chars);
    Ok(Value::binary(latin1_bytes("reverse", chars)?))
}

/// `s` from its `n`-th grapheme cluster (counting from 0) on.
fn skip_graphemes(s: &str, n: i64) -> &str {
    let Ok(n) = usize::try_from(n) else {
        return "";
    };
    match s.grapheme_indices(true).nth(n) {
        Some((at, _)) => s.get(at..).unwrap_or_default(),
        None => "",
    }
}

/// The first `n` grapheme clusters of `s`.
fn take_graphemes(s: &str, n: i64) -> &str {
    let Ok(n) = usize::try_from(n) else {
        return s;
    };
    match s.grapheme_indices(true).nth(n) {
        Some((at, _)) => s.get(..at).unwrap_or(s),
        None => s,
    }
}

fn substr(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let s = subject("substr", &a[0])?;
    let start = count_arg("substr", "an integer start", &a[1])?;
    if start < 0 {
        return Err(OpError(
            format!("substr() expects a start of 0 or more (positions count from 0), got {start}")
                .into(),
        ));
    }
    let rest = skip_graphemes(&s, start);
    let out = match a.get(2) {
        None => rest,
        Some(length) => {
            let n = count_arg("substr", "an integer length", length)?;
            if n < 0 {
                return Err(OpError(
                    format!("substr() expects a length of 0 or more, got {n}").into(),
                ));
            }
            take_graphemes(rest, n)
        }
    };
    Ok(Value::str(out))
}

/// Where `string:split` and `string:find` cut.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Where {
    All,
    Leading,
    Trailing,
}

/// The first place at or after byte `from` where `pattern` occurs in `s`
/// as Erlang's `string` module finds it: the bytes match and the pattern's
/// last character is a whole grapheme cluster of `s` there (so `e` is not
/// found in `e\u0301`, nor `\r` in `\r\n`).
fn find_from(s: &str, pattern: &str, mut from: usize) -> Option<usize> {
    let last = pattern.chars().next_back()?.len_utf8();
    loop {
        let at = from + s.get(from..)?.find(pattern)?;
        let last_at = at + pattern.len() - last;
        let whole = s
            .get(last_at..)
            .and_then(|t| t.graphemes(true).next())
            .is_some_and(|g| g.len() == last);
        if whole {
            return Some(at);
        }
        // Erlang moves on by one code point, so matches may overlap.
        from = at + s.get(at..)?.chars().next().map_or(1, char::len_utf8);
    }
}

/// The last place where `pattern` occurs in `s` (overlapping matches
/// considered, as `string:split(.., trailing)` and `string:find(..,
/// trailing)` search).
fn find_last(s: &str, pattern: &str) -> Option<usize> {
    let mut last = None;
    let mut from = 0;
    while let Some(at) = find_from(s, pattern, from) {
        last = Some(at);
        from = at + s.get(at..)?.chars().next().map_or(1, char::len_utf8);
    }
    last
}

/// Erlang's `string:split(S, Pattern, Where)`: every part (`All`), or the
/// two sides of the first (`Leading`) or last (`Trailing`) occurrence; `[S]`
/// when the pattern is empty or absent.
pub(super) fn split_str<'s>(s: &'s str, pattern: &str, at: Where) -> Vec<&'s str> {
    if pattern.is_empty() {
        return vec![s];
    }
    let cut = |p: usize| {
        vec![
            s.get(..p).unwrap_or_default(),
            s.get(p + pattern.len()..).unwrap_or_default(),
        ]
    };
    match at {
        Where::Leading => find_from(s, pattern, 0).map_or_else(|| vec![s], cut),
        Where::Trailing => find_last(s, pattern).map_or_else(|| vec![s], cut),
        Where::All => {
            let mut parts = Vec::new();
            let mut start = 0;
            while let Some(p) = find_from(s, pattern, start) {
                parts.push(s.get(start..p).unwrap_or_default());
                start = p + pattern.len();
            }
            parts.push(s.get(start..).unwrap_or_default());
            parts
        }
    }
}

fn split(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let s = subject("split", &a[0])?;
    let separator = binary_text("split", "a separator string", &a[1])?;
    let (at, keep_empty) = match a.get(2) {
        None => (Where::All, false),
        Some(o) => match option(
            "split",
            o,
            &[
                "notrim",
                "leading",
                "leading_notrim",
                "trailing",
                "trailing_notrim",
            ],
        )? {
            "notrim" => (Where::All, true),
            "leading" => (Where::Leading, false),
            "leading_notrim" => (Where::Leading, true),
            "trailing" => (Where::Trailing, false),
            _ => (Where::Trailing, true),
        },
    };
    Ok(Value::array(
        split_str(&s, separator, at)
            .into_iter()
            .filter(|part| keep_empty || !part.is_empty())
            .map(Value::str)
            .collect(),
    ))
}

fn tokens(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let s = subject_bytes("tokens", &a[0])?;
    let separators = binary_bytes("tokens", "a string of separator characters", &a[1])?;
    let crlf = match a.get(2) {
        Some(o) => {
            option("tokens", o, &["nocrlf"])?;
            true
        }
        None => false,
    };
    Ok(Value::array(
        lexemes(&s, separators, crlf)
            .into_iter()
            .map(|t| Value::binary(t.to_vec()))
            .collect(),
    ))
}

/// Erlang's `string:lexemes` over a byte list (each byte a character, and
/// `\r\n` one character): the non-empty runs between separators. A `\r\n`
/// separates only with `crlf` (it is not `\r` nor `\n`).
fn lexemes<'s>(s: &'s [u8], separators: &[u8], crlf: bool) -> Vec<&'s [u8]> {
    let is_separator = |b: u8| separators.contains(&b) || (crlf && (b == b'\r' || b == b'\n'));
    let mut out = Vec::new();
    let mut start = None;
    let mut i = 0;
    while i < s.len() {
        let pair = s.get(i..i + 2) == Some(b"\r\n");
        let width = if pair { 2 } else { 1 };
        let separates = if pair {
            crlf
        } else {
            s.get(i).is_some_and(|b| is_separator(*b))
        };
        match (separates, start) {
            (true, Some(from)) => {
                out.push(s.get(from..i).unwrap_or_default());
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
        i += width;
    }
    if let Some(from) = start {
        out.push(s.get(from..).unwrap_or_default());
    }
    out
}

fn concat(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let items = super::list_or_args("concat", a)?;
    let mut out = Vec::new();
    for item in items {
        out.extend_from_slice(&conv::bin(item));
    }
    // EMQX's unicode:characters_to_binary gives no binary for bytes that
    // are not UTF-8.
    String::from_utf8(out)
        .map(Value::from)
        .map_err(|_| OpError::new("concat(): the joined text is not valid UTF-8"))
}

fn sprintf_value(f: &str, format: &Value, args: &[Value]) -> Result<Value, OpError> {
    let format = binary_bytes(f, "a format string", format)?;
    sprintf::format(f, format, args).map(Value::binary)
}

/// The most characters `pad` makes: EMQX would build the list whatever the
/// length; weir refuses lengths that would exhaust the runtime's memory.
const MAX_PAD: i64 = 1 << 20;

fn pad(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let s = subject("pad", &a[0])?;
    let length = count_arg("pad", "an integer length", &a[1])?;
    if length > MAX_PAD {
        return Err(OpError(
            format!("pad(): a length of {length} is more than weir pads to ({MAX_PAD})").into(),
        ));
    }
    let at = match a.get(2) {
        Some(o) => option("pad", o, &["trailing", "leading", "both"])?,
        None => "trailing",
    };
    let fill = match a.get(3) {
        Some(fill) => latin1_bytes("pad", binary_text("pad", "a fill string", fill)?.chars())?,
        None => vec![b' '],
    };
    let have = i64::try_from(s.graphemes(true).count()).unwrap_or(i64::MAX);
    let missing = usize::try_from(length.saturating_sub(have)).unwrap_or(0);
    let fills = |n: usize| fill.repeat(n);
    let mut out = Vec::with_capacity(s.len() + missing * fill.len());
    match at {
        "leading" => {
            out.extend(fills(missing));
            out.extend_from_slice(s.as_bytes());
        }
        "both" => {
            out.extend(fills(missing / 2));
            out.extend_from_slice(s.as_bytes());
            out.extend(fills(missing / 2 + missing % 2));
        }
        _ => {
            out.extend_from_slice(s.as_bytes());
            out.extend(fills(missing));
        }
    }
    Ok(Value::binary(out))
}

fn replace(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let s = subject("replace", &a[0])?;
    let search = binary_text("replace", "a search string", &a[1])?;
    let replacement = binary_text("replace", "a replacement string", &a[2])?;
    let at = match a.get(3) {
        Some(o) => match option("replace", o, &["all", "leading", "trailing"])? {
            "all" => Where::All,
            "leading" => Where::Leading,
            _ => Where::Trailing,
        },
        None => Where::All,
    };
    Ok(Value::from(split_str(&s, search, at).join(replacement)))
}

fn find(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let at = match a.get(2) {
        Some(o) => option("find", o, &["leading", "trailing"])?,
        None => "leading",
    };
    let s = subject("find", &a[0])?;
    let search = binary_text("find", "a search string", &a[1])?;
    if search.is_empty() {
        return Ok(Value::str(s));
    }
    let found = if at == "leading" {
        find_from(&s, search, 0)
    } else {
        find_last(&s, search)
    };
    Ok(Value::str(
        found.and_then(|p| s.get(p..)).unwrap_or_default(),
    ))
}

fn join_to_string(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let (separator, list) = match a {
        [list] => (&b", "[..], list),
        [sep, list, ..] => (
            binary_bytes("join_to_string", "a separator string", sep)?,
            list,
        ),
        [] => return Err(OpError::new("join_to_string() expects an array")),
    };
    let items = list
        .as_array()
        .ok_or_else(|| expects("join_to_string", "an array", list))?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(separator);
        }
        out.extend_from_slice(&conv::bin(item));
    }
    Ok(Value::binary(out))
}

/// EMQX quotes each item as its SQL connectors quote a placeholder
/// (`emqx_placeholder:quote_sql`): quotes around text with `\\` and `'`
/// escaped by a backslash, JSON for arrays and objects, `undefined` and
/// `NULL` bare, numbers and booleans as text.
fn join_to_sql_values_string(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let items = a[0]
        .as_array()
        .ok_or_else(|| expects("join_to_sql_values_string", "an array", &a[0]))?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        match item {
            Value::Undefined => out.extend_from_slice(b"undefined"),
            Value::Null => out.extend_from_slice(b"NULL"),
            Value::Bool(_) | Value::Int(_) | Value::Big(_) | Value::Float(_) => {
                out.extend_from_slice(&conv::bin(item))
            }
            quoted => {
                // A list is JSON here, not the charlist text str() makes of it.
                let text = match quoted {
                    Value::Array(_) => crate::json::encode(quoted).into_bytes(),
                    other => conv::bin(other),
                };
                out.push(b'\'');
                for &byte in &text {
                    if byte == b'\\' || byte == b'\'' {
                        out.push(b'\\');
                    }
                    out.push(byte);
                }
                out.push(b'\'');
            }
        }
    }
    Ok(Value::binary(out))
}

fn unescape(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let s = subject("unescape", &a[0])?;
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        // A backslash at the very end stays as it is.
        let Some(&next) = chars.peek() else {
            out.push('\\');
            break;
        };
        let plain = match next {
            '\\' => Some('\\'),
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            '\'' => Some('\''),
            '"' => Some('"'),
            '?' => Some('?'),
            'a' => Some('\u{7}'),
            _ => None,
        };
        chars.next();
        if let Some(p) = plain {
            out.push(p);
            continue;
        }
        let starts_hex = next == 'x' && chars.peek().is_some_and(char::is_ascii_hexdigit);
        if !starts_hex {
            return Err(OpError(
                format!("unescape(): `\\{next}` is not an escape sequence it knows").into(),
            ));
        }
        // `\x` takes every hex digit that follows.
        let mut code: u32 = 0;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(16)) {
            chars.next();
            code = code
                .checked_mul(16)
                .and_then(|v| v.checked_add(d))
                .ok_or_else(|| OpError::new("unescape(): a \\x escape is beyond Unicode"))?;
        }
        out.push(char::from_u32(code).ok_or_else(|| {
            OpError(format!("unescape(): \\x{code:x} is not a Unicode character").into())
        })?);
    }
    Ok(Value::from(out))
}

#[cfg(test)]
mod tests {
    use crate::funcs::testing::call;
    use crate::value::{OpError, Value};

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    fn strs(items: &[&str]) -> Value {
        Value::array(items.iter().map(|x| s(x)).collect())
    }

    fn ok(name: &str, args: &[Value]) -> Value {
        call(name, args).unwrap_or_else(|e| panic!("{name}({args:?}): {e}"))
    }

    fn err(name: &str, args: &[Value]) -> OpError {
        match call(name, args) {
            Ok(v) => panic!("{name}({args:?}) gave {v:?}, expected an error"),
            Err(e) => e,
        }
    }

    #[test]
    fn sql_values_are_quoted_as_emqx_placeholder_quotes_them() {
        let items = Value::array(vec![
            Value::Int(1),
            Value::str("c"),
            Value::str("it's"),
            Value::object(crate::value::Map::from([("a".to_string(), Value::Int(1))])),
            Value::array(vec![Value::Int(1), Value::Int(2)]),
            Value::Bool(true),
            Value::Null,
        ]);
        assert_eq!(
            call("join_to_sql_values_string", &[items]),
            Ok(Value::str(
                r#"1, 'c', 'it\'s', '{"a":1}', '[1,2]', true, NULL"#
            ))
        );
        assert_eq!(
            call("join_to_sql_values_string", &[Value::array(vec![])]),
            Ok(Value::str(""))
        );
    }

    #[test]
    fn case_conversion() {
        // t_lower_upper
        assert_eq!(ok("upper", &[s("abc4")]), s("ABC4"));
        assert_eq!(ok("lower", &[s("0ABC")]), s("0abc"));
        // emqx_variform_bif_tests atom_input_test_ (atoms by name).
        assert_eq!(ok("upper", &[Value::Bool(true)]), s("TRUE"));
        assert_eq!(ok("lower", &[s("ÀÉΣ")]), s("àéσ"));
        assert_eq!(ok("upper", &[s("straße")]), s("STRASSE"));
        // null_badarg_test_
        for bad in [Value::Undefined, Value::Null, Value::Int(1)] {
            err("lower", std::slice::from_ref(&bad));
            err("upper", &[bad]);
        }
        assert_eq!(
            err("lower", &[Value::Undefined]).0,
            "lower() expects a string, got undefined"
        );
    }

    #[test]
    fn trims_remove_pattern_white_space() {
        // t_trim
        assert_eq!(ok("trim", &[s("")]), s(""));
        assert_eq!(ok("ltrim", &[s("")]), s(""));
        assert_eq!(ok("rtrim", &[s("")]), s(""));
        assert_eq!(ok("trim", &[s(" abc ")]), s("abc"));
        assert_eq!(ok("ltrim", &[s(" abc ")]), s("abc "));
        assert_eq!(ok("rtrim", &[s(" abc")]), s(" abc"));
        // The documentation's examples.
        assert_eq!(ok("trim", &[s("\t  hello  \n")]), s("hello"));
        assert_eq!(ok("trim", &[s("\t  hello \r\n")]), s("hello"));
        assert_eq!(ok("ltrim", &[s("\t  hello  \n")]), s("hello  \n"));
        assert_eq!(ok("rtrim", &[s("\t  hello \r\n")]), s("\t  hello"));
        // No-break space is not Pattern_White_Space; a space with a
        // combining mark is one character that is not whitespace.
        assert_eq!(ok("trim", &[s("\u{a0}x\u{a0}")]), s("\u{a0}x\u{a0}"));
        assert_eq!(ok("trim", &[s("x \u{301}")]), s("x \u{301}"));
        assert_eq!(ok("trim", &[s("\u{2028}x\u{85}")]), s("x"));
        err("trim", &[Value::Null]);
    }

    #[test]
    fn reverse_strlen_substr_count_graphemes() {
        // t_reverse, t_strlen, t_substr
        assert_eq!(ok("reverse", &[s("abcd")]), s("dcba"));
        assert_eq!(ok("reverse", &[s("1234")]), s("4321"));
        assert_eq!(ok("strlen", &[s("abcd")]), Value::Int(4));
        assert_eq!(ok("strlen", &[s("你好")]), Value::Int(2));
        assert_eq!(ok("substr", &[s(""), Value::Int(1)]), s(""));
        assert_eq!(ok("substr", &[s("abc"), Value::Int(1)]), s("bc"));
        assert_eq!(
            ok("substr", &[s("abcd"), Value::Int(1), Value::Int(2)]),
            s("bc")
        );
        // atom_input_test_
        assert_eq!(ok("reverse", &[Value::Bool(true)]), s("eurt"));
        assert_eq!(
            ok(
                "substr",
                &[Value::Bool(false), Value::Int(1), Value::Int(2)]
            ),
            s("al")
        );
        // The documentation's examples: positions count from 0.
        assert_eq!(ok("substr", &[s("hello"), Value::Int(0)]), s("hello"));
        assert_eq!(ok("substr", &[s("hello world"), Value::Int(6)]), s("world"));
        assert_eq!(
            ok("substr", &[s("hello world!"), Value::Int(6), Value::Int(5)]),
            s("world")
        );
        assert_eq!(ok("strlen", &[s("hello\n")]), Value::Int(6));
        // Grapheme clusters: e + combining acute, \r\n.
        assert_eq!(ok("strlen", &[s("e\u{301}\r\n")]), Value::Int(2));
        assert_eq!(
            ok("substr", &[s("e\u{301}xy"), Value::Int(1), Value::Int(1)]),
            s("x")
        );
        assert_eq!(ok("reverse", &[s("ab\r\n")]), s("\r\nba"));
        // Past the end, zero length; negative positions fail (slice's guard).
        assert_eq!(ok("substr", &[s("abc"), Value::Int(9)]), s(""));
        assert_eq!(
            ok("substr", &[s("abc"), Value::Int(1), Value::Int(0)]),
            s("")
        );
        err("substr", &[s("abc"), Value::Int(-1)]);
        err("substr", &[s("abc"), Value::Int(0), Value::Int(-1)]);
        err("substr", &[s("abc"), s("1")]);
        // iolist_to_binary of the reversed characters: Latin-1 bytes up to
        // U+00FF, a failure beyond.
        assert_eq!(ok("reverse", &[s("né")]), Value::bytes(&b"\xe9n"[..]));
        err("reverse", &[s("你好")]);
    }

    #[test]
    fn split_all() {
        // t_split_all
        let cases: &[(&str, &str, &[&str])] = &[
            ("", "/", &[]),
            ("/", "/", &[]),
            ("/a/b/c", "/", &["a", "b", "c"]),
            ("/a/b//c/", "/", &["a", "b", "c"]),
            ("a,b,c", ",", &["a", "b", "c"]),
            ("a, b ,c", ",", &["a", " b ", "c"]),
            ("a,b,c\n", ",", &["a", "b", "c\n"]),
            ("a,b,c\r\n", ",", &["a", "b", "c\r\n"]),
            // The brief's case and the documentation's.
            ("/a//b/", "/", &["a", "b"]),
            ("a;", ";", &["a"]),
            (
                "Sienna Blake; Howell Wise",
                "; ",
                &["Sienna Blake", "Howell Wise"],
            ),
        ];
        for (subject, sep, want) in cases {
            assert_eq!(
                ok("split", &[s(subject), s(sep)]),
                strs(want),
                "{subject:?}"
            );
        }
    }

    #[test]
    fn split_with_options() {
        // t_split_notrim_all, t_split_leading, t_split_leading_notrim,
        // t_split_trailing, t_split_trailing_notrim
        let cases: &[(&str, &str, &str, &[&str])] = &[
            ("", "/", "notrim", &[""]),
            ("/", "/", "notrim", &["", ""]),
            ("/a/b/c", "/", "notrim", &["", "a", "b", "c"]),
            ("/a/b//c/", "/", "notrim", &["", "a", "b", "", "c", ""]),
            (",a,b,c\n", ",", "notrim", &["", "a", "b", "c\n"]),
            ("a, b,c\r\n", ",", "notrim", &["a", " b", "c\r\n"]),
            (
                "哈哈, 你好, 是的\r\n",
                ",",
                "notrim",
                &["哈哈", " 你好", " 是的\r\n"],
            ),
            ("", "/", "leading", &[]),
            ("/", "/", "leading", &[]),
            ("/a/b/c", "/", "leading", &["a/b/c"]),
            ("a/b//c/", "/", "leading", &["a", "b//c/"]),
            ("a,b,c\n", ",", "leading", &["a", "b,c\n"]),
            ("a b,c\r\n", ",", "leading", &["a b", "c\r\n"]),
            (
                "哈哈, 你好, 是的\r\n",
                ",",
                "leading",
                &["哈哈", " 你好, 是的\r\n"],
            ),
            ("", "/", "leading_notrim", &[""]),
            ("/", "/", "leading_notrim", &["", ""]),
            ("/a/b/c", "/", "leading_notrim", &["", "a/b/c"]),
            ("a/b//c/", "/", "leading_notrim", &["a", "b//c/"]),
            ("a,b,c\n", ",", "leading_notrim", &["a", "b,c\n"]),
            ("a b,c\r\n", ",", "leading_notrim", &["a b", "c\r\n"]),
            (
                "哈哈, 你好, 是的\r\n",
                ",",
                "leading_notrim",
                &["哈哈", " 你好, 是的\r\n"],
            ),
            ("", "/", "trailing", &[]),
            ("/", "/", "trailing", &[]),
            ("/a/b/c", "/", "trailing", &["/a/b", "c"]),
            ("a/b//c/", "/", "trailing", &["a/b//c"]),
            ("a,b,c\n", ",", "trailing", &["a,b", "c\n"]),
            ("a b,c\r\n", ",", "trailing", &["a b", "c\r\n"]),
            (
                "哈哈, 你好, 是的\r\n",
                ",",
                "trailing",
                &["哈哈, 你好", " 是的\r\n"],
            ),
            ("", "/", "trailing_notrim", &[""]),
            ("/", "/", "trailing_notrim", &["", ""]),
            ("/a/b/c", "/", "trailing_notrim", &["/a/b", "c"]),
            ("a/b//c/", "/", "trailing_notrim", &["a/b//c", ""]),
            ("a,b,c\n", ",", "trailing_notrim", &["a,b", "c\n"]),
            ("a b,c\r\n", ",", "trailing_notrim", &["a b", "c\r\n"]),
            (
                "哈哈, 你好, 是的\r\n",
                ",",
                "trailing_notrim",
                &["哈哈, 你好", " 是的\r\n"],
            ),
            // The documentation's examples.
            ("a;;b;;c", ";", "notrim", &["a", "", "b", "", "c"]),
            (";a;b;c", ";", "leading_notrim", &["", "a;b;c"]),
            ("a;b;c;", ";", "trailing_notrim", &["a;b;c", ""]),
        ];
        for (subject, sep, option, want) in cases {
            assert_eq!(
                ok("split", &[s(subject), s(sep), s(option)]),
                strs(want),
                "split({subject:?}, {sep:?}, {option})"
            );
        }
        // atom_input_test_
        assert_eq!(
            ok("split", &[Value::Bool(true), s("r"), s("notrim")]),
            strs(&["t", "ue"])
        );
        // A separator is found only where it ends a character.
        assert_eq!(ok("split", &[s("a\r\nb"), s("\r")]), strs(&["a\r\nb"]));
        assert_eq!(ok("split", &[s("a\r\nb"), s("\r\n")]), strs(&["a", "b"]));
        assert_eq!(
            ok("split", &[s("xe\u{301}y"), s("e")]),
            strs(&["xe\u{301}y"])
        );
        // An empty separator leaves the string whole.
        assert_eq!(ok("split", &[s("abc"), s(""), s("notrim")]), strs(&["abc"]));
        // Overlapping occurrences: the last one counts for trailing.
        assert_eq!(
            ok("split", &[s("aaa"), s("aa"), s("trailing_notrim")]),
            strs(&["a", ""])
        );
        assert_eq!(
            ok("split", &[s("aaa"), s("aa"), s("notrim")]),
            strs(&["", "a"])
        );
        err("split", &[s("a/b"), s("/"), s("both")]);
        err("split", &[s("a/b"), Value::Int(1)]);
        err("split", &[Value::Undefined, s("/")]);
        err("split", &[Value::Null, s("/"), s("notrim")]);
    }

    #[test]
    fn tokens_split_at_bytes() {
        // t_tokens
        let cases: &[(&str, &str, Option<&str>, &[&str])] = &[
            ("", "/", None, &[]),
            ("/", "/", None, &[]),
            ("/a/b/c", "/", None, &["a", "b", "c"]),
            ("/a/b//c/", "/", None, &["a", "b", "c"]),
            (" /a/ b /c", " /", None, &["a", "b", "c"]),
            ("a ,\nb,c\n", ", ", None, &["a", "\nb", "c\n"]),
            ("a ,b,c\r\n", ", ", None, &["a", "b", "c\r\n"]),
            ("a,b, c\n", ", ", Some("nocrlf"), &["a", "b", "c"]),
            ("a,b,c\r\n", ",", Some("nocrlf"), &["a", "b", "c"]),
            ("a,b\r\n,c\n", ",", Some("nocrlf"), &["a", "b", "c"]),
            ("\r\n", ",", Some("nocrlf"), &[]),
            (
                "哈哈, 你好, 是的\r\n",
                ", ",
                Some("nocrlf"),
                &["哈哈", "你好", "是的"],
            ),
            // The documentation's examples.
            ("a,b;c,d", ",;", None, &["a", "b", "c", "d"]),
            ("a;;b", ";", None, &["a", "b"]),
            ("a\rb\nc\r\nd", ";", Some("nocrlf"), &["a", "b", "c", "d"]),
            // \r\n is one character: neither \r nor \n separates it.
            ("a\r\nb", "\n", None, &["a\r\nb"]),
            ("a\r\nb", "\r\n", None, &["a\r\nb"]),
            ("abc", "", None, &["abc"]),
        ];
        for (subject, seps, option, want) in cases {
            let mut args = vec![s(subject), s(seps)];
            args.extend(option.map(s));
            assert_eq!(
                ok("tokens", &args),
                strs(want),
                "tokens({subject:?}, {seps:?})"
            );
        }
        // Bytes: a multi-byte separator separates at each of its bytes.
        assert_eq!(ok("tokens", &[s("a，b"), s("，")]), strs(&["a", "b"]));
        assert_eq!(
            ok("tokens", &[s("é"), Value::bytes(&b"\xa9"[..])]),
            Value::array(vec![Value::bytes(&b"\xc3"[..])])
        );
        err("tokens", &[s("a"), s(","), s("crlf")]);
        err("tokens", &[Value::Undefined, s(",")]);
    }

    #[test]
    fn concat_joins_texts() {
        // t_concat
        assert_eq!(ok("concat", &[s("a"), s("b")]), s("ab"));
        assert_eq!(ok("concat", &[s("哈哈"), s("你好")]), s("哈哈你好"));
        let ab = ok("concat", &[s("a"), s("b")]);
        assert_eq!(ok("concat", &[ab, s("c")]), s("abc"));
        assert_eq!(ok("concat", &[s(""), s("a")]), s("a"));
        assert_eq!(ok("concat", &[s("a"), s("")]), s("a"));
        assert_eq!(ok("concat", &[s(""), s("")]), s(""));
        // The texts of other values, and the one-array form.
        assert_eq!(ok("concat", &[Value::Int(1), Value::Float(2.5)]), s("12.5"));
        assert_eq!(
            ok(
                "concat",
                &[Value::array(vec![
                    s("a"),
                    Value::Bool(true),
                    Value::Undefined
                ])]
            ),
            s("atrueundefined")
        );
        assert_eq!(ok("concat", &[Value::array(vec![])]), s(""));
        err("concat", &[s("abc")]);
        err("concat", &[Value::bytes(&b"\xff"[..]), s("a")]);
    }

    #[test]
    fn pad_fills_to_a_length() {
        // t_pad, t_pad_char
        let cases: &[(&[Value], &str)] = &[
            (&[s("abc"), Value::Int(5)], "abc  "),
            (&[s("abc"), Value::Int(0)], "abc"),
            (&[s("abc"), Value::Int(5), s("trailing")], "abc  "),
            (&[s("abc"), Value::Int(0), s("trailing")], "abc"),
            (&[s("abc"), Value::Int(5), s("both")], " abc "),
            (&[s("abc"), Value::Int(0), s("both")], "abc"),
            (&[s("abc"), Value::Int(5), s("leading")], "  abc"),
            (&[s("abc"), Value::Int(0), s("leading")], "abc"),
            (&[s("abc"), Value::Int(5), s("trailing"), s("e")], "abcee"),
            (
                &[s("abc"), Value::Int(5), s("trailing"), s("ex")],
                "abcexex",
            ),
            (&[s("abc"), Value::Int(5), s("both"), s("e")], "eabce"),
            (&[s("abc"), Value::Int(5), s("both"), s("ex")], "exabcex"),
            (&[s("abc"), Value::Int(5), s("leading"), s("e")], "eeabc"),
            (&[s("abc"), Value::Int(5), s("leading"), s("ex")], "exexabc"),
            // The documentation's examples; atom_input_test_.
            (&[s("hello"), Value::Int(8), s("both")], " hello  "),
            (
                &[s("hello"), Value::Int(8), s("trailing"), s("\r\n")],
                "hello\r\n\r\n\r\n",
            ),
            (&[Value::Bool(true), Value::Int(6)], "true  "),
            (&[s("你好"), Value::Int(3)], "你好 "),
            (&[s("abc"), Value::Int(-4)], "abc"),
        ];
        for (args, want) in cases {
            assert_eq!(ok("pad", args), s(want), "pad({args:?})");
        }
        // Fill characters become single bytes: beyond U+00FF EMQX fails.
        err("pad", &[s("a"), Value::Int(3), s("leading"), s("你")]);
        err("pad", &[s("a"), Value::Int(3), s("middle")]);
        err("pad", &[s("a"), Value::Int(i64::MAX)]);
        err("pad", &[Value::Null, Value::Int(1)]);
    }

    #[test]
    fn replace_occurrences() {
        // t_replace
        assert_eq!(ok("replace", &[s("ab c  "), s(" "), s("-")]), s("ab-c--"));
        assert_eq!(
            ok("replace", &[s("ab c  "), s(" "), s("::")]),
            s("ab::c::::")
        );
        assert_eq!(
            ok("replace", &[s("ab c  "), s(" "), s("-"), s("all")]),
            s("ab-c--")
        );
        assert_eq!(
            ok("replace", &[s("ab c  "), s(" "), s("-"), s("leading")]),
            s("ab-c  ")
        );
        assert_eq!(
            ok("replace", &[s("ab c  "), s(" "), s("-"), s("trailing")]),
            s("ab c -")
        );
        // The documentation's examples; atom_input_test_.
        assert_eq!(
            ok("replace", &[s("ab..cd..ef"), s(".."), s("")]),
            s("abcdef")
        );
        assert_eq!(
            ok("replace", &[Value::Bool(true), s("t"), s("b")]),
            s("brue")
        );
        assert_eq!(ok("replace", &[s("abc"), s(""), s("x")]), s("abc"));
        err("replace", &[s("abc"), s("a"), s("b"), s("first")]);
        err("replace", &[Value::Undefined, s("a"), s("b")]);
    }

    #[test]
    fn ascii_and_find() {
        // t_ascii
        assert_eq!(ok("ascii", &[s("a")]), Value::Int(97));
        assert_eq!(ok("ascii", &[s("ab")]), Value::Int(97));
        assert_eq!(ok("ascii", &[Value::Bool(true)]), Value::Int(116));
        assert_eq!(ok("ascii", &[s("é")]), Value::Int(0xc3));
        err("ascii", &[s("")]);
        err("ascii", &[Value::Null]);
        // t_find, t_find_trailing
        let cases: &[(&[Value], &str)] = &[
            (&[s("acbcd"), s("c")], "cbcd"),
            (&[s("acbcd"), s("c"), s("leading")], "cbcd"),
            (&[s("acbcd"), s("e")], ""),
            (&[s(""), s("c")], ""),
            (&[s(""), s("")], ""),
            (&[s("acbcd"), s("c"), s("trailing")], "cd"),
            (&[s("acbcd"), s("e"), s("trailing")], ""),
            (&[s(""), s("c"), s("trailing")], ""),
            (&[s(""), s(""), s("trailing")], ""),
            // The documentation's examples.
            (&[s("..., Value: 1.2"), s("Value:")], "Value: 1.2"),
            (&[s("Front, Middle, End"), s(", "), s("trailing")], ", End"),
            (&[s("abc"), s("")], "abc"),
            (&[s("xe\u{301}e"), s("e")], "e"),
        ];
        for (args, want) in cases {
            assert_eq!(ok("find", args), s(want), "find({args:?})");
        }
        err("find", &[s("abc"), s("b"), s("all")]);
        err("find", &[Value::Undefined, s("b")]);
    }

    #[test]
    fn join_to_string_uses_str() {
        assert_eq!(
            ok("join_to_string", &[strs(&["a", "b", "c"])]),
            s("a, b, c")
        );
        assert_eq!(
            ok(
                "join_to_string",
                &[
                    s("-"),
                    Value::array(vec![Value::Int(1), Value::Float(0.5), Value::Null])
                ]
            ),
            s("1-0.5-null")
        );
        assert_eq!(
            ok("join_to_string", &[s(", "), Value::array(vec![])]),
            s("")
        );
        err("join_to_string", &[s("abc")]);
        err("join_to_string", &[Value::Int(1), strs(&["a"])]);
    }

    #[test]
    fn unescape_c_escapes() {
        let cases = [
            (r"a\nb", "a\nb"),
            (r"\t\r\b\f\v\a", "\t\r\u{8}\u{c}\u{b}\u{7}"),
            (r#"\\ \' \" \?"#, "\\ ' \" ?"),
            (r"\x41\x4e2d", "A\u{4e2d}"),
            (r"\x41z", "Az"),
            ("trailing\\", "trailing\\"),
            ("plain", "plain"),
        ];
        for (input, want) in cases {
            assert_eq!(ok("unescape", &[s(input)]), s(want), "{input}");
        }
        assert_eq!(ok("unescape", &[Value::Bool(true)]), s("true"));
        for bad in [r"\q", r"\xz", r"\xD800", r"\x110000", r"\xFFFFFFFFF"] {
            err("unescape", &[s(bad)]);
        }
        err("unescape", &[Value::Null]);
    }
}
