//! `sprintf` and `sprintf_s`: Erlang's `io_lib:format`, which EMQX calls
//! with the format's bytes and then turns into a binary with
//! `iolist_to_binary`.
//!
//! A control sequence is `~[-][width][.precision[.pad]][t|l|k]C`, where a
//! width or a precision may be `*` (taken from the arguments). Supported
//! controls: `~~`, `~n`, `~c`, `~s`, `~ts`, `~w`, `~p`, `~b`, `~B`, `~#`,
//! `~+`, `~f`, `~e`, `~g` and `~i`, with io_lib's field, adjustment,
//! truncation (`***` when a number does not fit) and padding rules. Refused,
//! with an error that says so: `~x`, `~X`, `~P`, `~W`, `~K` (they take
//! Erlang-specific arguments), `~tp` and `~tw`, and a `~p` whose term EMQX
//! would lay out over several lines (io_lib_pretty's layout is not
//! reproduced; `~w` prints the same term on one line).
//!
//! The output is bytes: every character is one byte, so a character beyond
//! U+00FF (from `~ts` or `~tc`) fails the call, as it does in EMQX.

use crate::value::{OpError, Value};
use num_bigint::BigInt;

/// The widest field and the longest precision weir formats: EMQX would try
/// any size; these bound what one call can allocate in the runtime.
const MAX_FIELD: i64 = 1 << 16;

/// Maps of more keys than this are hash-ordered in Erlang, so EMQX prints
/// their keys in an order weir cannot reproduce (`~kp` sorts them).
const FLAT_MAP_KEYS: usize = 32;

/// The bytes of `io_lib:format(Format, Args)` for `f` (`sprintf` or
/// `sprintf_s`).
pub(super) fn format(f: &str, fmt: &[u8], args: &[Value]) -> Result<Vec<u8>, OpError> {
    let mut out = Out::default();
    let mut args = args.iter();
    let mut rest = fmt;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b != b'~' {
            out.push(&[u32::from(b)], f)?;
            continue;
        }
        let spec = Spec::parse(f, &mut rest, &mut args)?;
        let text = spec.control(f, &mut args, out.column)?;
        out.push(&text, f)?;
    }
    if args.next().is_some() {
        return Err(OpError(
            format!("{f}(): there are more arguments than the format uses").into(),
        ));
    }
    Ok(out.bytes)
}

/// The output so far, and the column it ends at (for `~p`).
#[derive(Default)]
struct Out {
    bytes: Vec<u8>,
    column: i64,
}

impl Out {
    fn push(&mut self, chars: &[u32], f: &str) -> Result<(), OpError> {
        for &c in chars {
            let byte = u8::try_from(c).map_err(|_| {
                OpError(
                    format!(
                        "{f}(): EMQX cannot build this result: the character U+{c:04X} is beyond U+00FF"
                    )
                    .into(),
                )
            })?;
            self.column = match byte {
                b'\n' => 0,
                b'\t' => (self.column + 8) / 8 * 8,
                _ => self.column + 1,
            };
            self.bytes.push(byte);
        }
        Ok(())
    }
}

fn bad(f: &str, why: impl std::fmt::Display) -> OpError {
    OpError(format!("{f}(): {why}").into())
}

fn chars_of(s: &[u8]) -> Vec<u32> {
    s.iter().map(|b| u32::from(*b)).collect()
}

fn repeat(c: u32, n: i64) -> Vec<u32> {
    vec![c; usize::try_from(n).unwrap_or(0)]
}

/// One parsed control sequence.
struct Spec {
    width: Option<i64>,
    left: bool,
    precision: Option<i64>,
    pad: u32,
    unicode: bool,
    strings: bool,
    ordered: bool,
    control: u8,
}

fn next_arg<'a>(f: &str, args: &mut std::slice::Iter<'a, Value>) -> Result<&'a Value, OpError> {
    args.next()
        .ok_or_else(|| bad(f, "the format needs more arguments than were given"))
}

/// A width or a precision: digits, `*` (an integer argument), or none.
fn field_value(
    f: &str,
    rest: &mut &[u8],
    args: &mut std::slice::Iter<'_, Value>,
) -> Result<Option<i64>, OpError> {
    match rest.first() {
        Some(b'*') => {
            *rest = rest.get(1..).unwrap_or_default();
            match next_arg(f, args)? {
                Value::Int(n) => Ok(Some(*n)),
                other => Err(bad(
                    f,
                    format_args!("`*` takes an integer argument, got {}", other.kind()),
                )),
            }
        }
        Some(d) if d.is_ascii_digit() => {
            let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let n = rest.iter().take(len).fold(0i64, |n, d| {
                n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
            });
            *rest = rest.get(len..).unwrap_or_default();
            Ok(Some(n))
        }
        _ => Ok(None),
    }
}

impl Spec {
    fn parse(
        f: &str,
        rest: &mut &[u8],
        args: &mut std::slice::Iter<'_, Value>,
    ) -> Result<Spec, OpError> {
        let minus = rest.first() == Some(&b'-');
        if minus {
            *rest = rest.get(1..).unwrap_or_default();
        }
        let (width, left) = match field_value(f, rest, args)? {
            None if minus => return Err(bad(f, "`~-` must be followed by a field width")),
            None => (None, false),
            Some(w) => {
                let w = if minus { w.saturating_neg() } else { w };
                (Some(w.saturating_abs()), w < 0)
            }
        };
        let mut precision = None;
        if rest.first() == Some(&b'.') {
            *rest = rest.get(1..).unwrap_or_default();
            precision = field_value(f, rest, args)?;
        }
        let mut pad = u32::from(b' ');
        if rest.first() == Some(&b'.') {
            pad = match rest.get(1) {
                Some(b'*') => match next_arg(f, args)? {
                    Value::Int(c) => u32::try_from(*c)
                        .map_err(|_| bad(f, "a `.*` pad character must be a character code"))?,
                    other => {
                        return Err(bad(
                            f,
                            format_args!("`.*` takes a character code, got {}", other.kind()),
                        ));
                    }
                },
                Some(c) => u32::from(*c),
                None => return Err(bad(f, "the format ends inside a control sequence")),
            };
            *rest = rest.get(2..).unwrap_or_default();
        }
        let (mut unicode, mut strings, mut ordered) = (false, true, false);
        loop {
            match rest.first() {
                Some(b't') => unicode = true,
                Some(b'l') => strings = false,
                Some(b'k') => ordered = true,
                Some(b'K') => {
                    return Err(bad(
                        f,
                        "the `K` modifier takes an Erlang ordering function, which rules cannot give",
                    ));
                }
                _ => break,
            }
            *rest = rest.get(1..).unwrap_or_default();
        }
        let (&control, tail) = rest
            .split_first()
            .ok_or_else(|| bad(f, "the format ends inside a control sequence"))?;
        *rest = tail;
        for n in [width, precision].into_iter().flatten() {
            if n > MAX_FIELD {
                return Err(bad(
                    f,
                    format_args!("a field of {n} is more than weir formats ({MAX_FIELD})"),
                ));
            }
        }
        Ok(Spec {
            width,
            left,
            precision,
            pad,
            unicode,
            strings,
            ordered,
            control,
        })
    }

    /// The characters this control sequence writes.
    fn control(
        &self,
        f: &str,
        args: &mut std::slice::Iter<'_, Value>,
        column: i64,
    ) -> Result<Vec<u32>, OpError> {
        match self.control {
            b'~' => self.char_field(f, u32::from(b'~')),
            b'n' => match (self.width, self.left) {
                (None, _) => Ok(vec![u32::from(b'\n')]),
                (Some(n), false) => Ok(repeat(u32::from(b'\n'), n)),
                (Some(_), true) => Err(bad(f, "`~n` cannot be left-adjusted")),
            },
            b'i' => next_arg(f, args).map(|_| Vec::new()),
            b'c' => match next_arg(f, args)? {
                Value::Int(n) => {
                    let code = if self.unicode { *n } else { n & 255 };
                    let code = u32::try_from(code)
                        .map_err(|_| bad(f, format_args!("~c takes a character code, got {n}")))?;
                    self.char_field(f, code)
                }
                other => Err(bad(
                    f,
                    format_args!("~c takes a character code, got {}", other.kind()),
                )),
            },
            b's' => {
                let chars = string_chars(f, next_arg(f, args)?, self.unicode)?;
                self.string_field(f, chars)
            }
            b'w' | b'p' if self.unicode => Err(bad(
                f,
                format_args!(
                    "~t{} is not supported (EMQX prints Unicode terms its own way); use ~{}",
                    char::from(self.control),
                    char::from(self.control)
                ),
            )),
            b'w' => {
                let mut text = Vec::new();
                write_term(f, &mut text, next_arg(f, args)?, Style::Plain, self.ordered)?;
                Ok(self.term(chars_of(&text), self.precision))
            }
            b'p' => self.pretty(f, next_arg(f, args)?, column),
            b'b' | b'B' | b'#' | b'+' => {
                let n = match next_arg(f, args)? {
                    Value::Int(n) => BigInt::from(*n),
                    Value::Big(b) => b.as_ref().clone(),
                    other => {
                        return Err(bad(
                            f,
                            format_args!(
                                "~{} takes an integer, got {}",
                                char::from(self.control),
                                other.kind()
                            ),
                        ));
                    }
                };
                self.integer(f, &n)
            }
            b'f' | b'e' | b'g' => match next_arg(f, args)? {
                Value::Float(x) => self.float(f, *x),
                other => Err(bad(
                    f,
                    format_args!(
                        "~{} takes a float, got {} (io_lib does not format integers with it)",
                        char::from(self.control),
                        other.kind()
                    ),
                )),
            },
            b'x' | b'X' | b'P' | b'W' => Err(bad(
                f,
                format_args!(
                    "~{} takes an Erlang-specific argument and is not supported",
                    char::from(self.control)
                ),
            )),
            other => Err(bad(
                f,
                format_args!(
                    "~{} is not a control sequence (supported: ~~ ~n ~c ~s ~w ~p ~b ~B ~# ~+ ~f ~e ~g ~i)",
                    char::from(other)
                ),
            )),
        }
    }

    /// io_lib_format's `char/5`.
    fn char_field(&self, f: &str, c: u32) -> Result<Vec<u32>, OpError> {
        match (self.width, self.precision) {
            (None, None) => Ok(vec![c]),
            (Some(n), None) | (None, Some(n)) if n >= 0 => Ok(repeat(c, n)),
            (Some(w), Some(p)) if w >= p && p >= 0 => {
                Ok(self.adjust(repeat(c, p), repeat(self.pad, w - p)))
            }
            _ => Err(bad(
                f,
                "a character's precision must not exceed its field width",
            )),
        }
    }

    fn adjust(&self, data: Vec<u32>, padding: Vec<u32>) -> Vec<u32> {
        if self.left {
            [data, padding].concat()
        } else {
            [padding, data].concat()
        }
    }

    /// io_lib_format's `string/6`: fit a string into its field.
    fn string_field(&self, f: &str, s: Vec<u32>) -> Result<Vec<u32>, OpError> {
        let len = str_len(&s, self.unicode);
        let fit = |s: Vec<u32>, field: i64, left: bool| -> Vec<u32> {
            let len = str_len(&s, self.unicode);
            if len > field {
                truncate(&s, field, self.unicode)
            } else {
                let padding = repeat(self.pad, field - len);
                if left {
                    [s, padding].concat()
                } else {
                    [padding, s].concat()
                }
            }
        };
        match (self.width, self.precision) {
            (None, None) => Ok(s),
            (Some(w), None) => Ok(fit(s, w, self.left)),
            (None, Some(p)) if p >= 0 => Ok(fit(s, p, true)),
            (Some(w), Some(p)) if w > p && p >= 0 => {
                let body = if len > p {
                    truncate(&s, p, self.unicode)
                } else {
                    [s, repeat(self.pad, p - len)].concat()
                };
                Ok(self.adjust(body, repeat(self.pad, w - p)))
            }
            (Some(w), Some(p)) if w == p => Ok(fit(s, w, self.left)),
            _ => Err(bad(
                f,
                "a string's precision must not exceed its field width",
            )),
        }
    }

    /// io_lib_format's `term/5`: pad `t` to the field, or fill the field
    /// with `*` when it does not fit.
    fn term(&self, t: Vec<u32>, precision: Option<i64>) -> Vec<u32> {
        let width = match (self.width, precision) {
            (None, None) => return t,
            (None, Some(p)) => p,
            (Some(w), _) => w,
        };
        let len = i64::try_from(t.len()).unwrap_or(i64::MAX);
        let limit = len.min(precision.map_or(width, |p| p.min(width)));
        if len > limit {
            self.adjust(
                repeat(u32::from(b'*'), limit),
                repeat(self.pad, width - limit),
            )
        } else {
            self.adjust(t, repeat(self.pad, width - len))
        }
    }

    fn integer(&self, f: &str, n: &BigInt) -> Result<Vec<u32>, OpError> {
        let base = match self.precision {
            None => 10,
            Some(b @ 2..=36) => u32::try_from(b).unwrap_or(10),
            Some(b) => return Err(bad(f, format_args!("{b} is not a base from 2 to 36"))),
        };
        let mut digits = n.magnitude().to_str_radix(base);
        let lower = matches!(self.control, b'b' | b'+');
        if !lower {
            digits.make_ascii_uppercase();
        }
        let mut text = String::new();
        if n.sign() == num_bigint::Sign::Minus {
            text.push('-');
        }
        if matches!(self.control, b'#' | b'+') {
            text.push_str(&format!("{base}#"));
        }
        text.push_str(&digits);
        Ok(self.term(chars_of(text.as_bytes()), None))
    }

    fn float(&self, f: &str, x: f64) -> Result<Vec<u32>, OpError> {
        match self.control {
            b'f' => self.fixed(f, x, self.precision.unwrap_or(6)),
            b'e' => self.scientific(f, x, self.precision.unwrap_or(6)),
            _ => {
                // io_lib_format's fwrite_g: fixed notation from 0.1 up to
                // 10000, with precision significant digits.
                let p = self.precision.unwrap_or(6);
                if p < 1 {
                    return Err(bad(f, "~g needs a precision of 1 or more"));
                }
                let a = x.abs();
                let e = [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0]
                    .iter()
                    .position(|limit| a < *limit)
                    .and_then(|i| i64::try_from(i).ok())
                    .map(|i| i - 2);
                match e {
                    Some(-1) if p <= 1 => self.fixed(f, x, p),
                    Some(e) if p - 1 > e && e >= -1 => self.fixed(f, x, p - 1 - e),
                    _ if p <= 1 => self.scientific(f, x, 2),
                    _ => self.scientific(f, x, p),
                }
            }
        }
    }

    fn fixed(&self, f: &str, x: f64, p: i64) -> Result<Vec<u32>, OpError> {
        if p < 1 {
            return Err(bad(f, "~f needs a precision of 1 or more"));
        }
        let text = float_f(x, p);
        Ok(self.term(chars_of(text.as_bytes()), self.width))
    }

    fn scientific(&self, f: &str, x: f64, p: i64) -> Result<Vec<u32>, OpError> {
        if p < 2 {
            return Err(bad(f, "~e needs a precision of 2 or more"));
        }
        let text = float_e(x, p);
        Ok(self.term(chars_of(text.as_bytes()), self.width))
    }

    /// `~p` on one line, when EMQX prints it on one line: io_lib_pretty
    /// writes a term flat when it is shorter than the line length (the
    /// field width, 80 by default) minus the column it starts at.
    fn pretty(&self, f: &str, v: &Value, column: i64) -> Result<Vec<u32>, OpError> {
        if self.left {
            return Err(bad(f, "`~p` cannot be left-adjusted"));
        }
        let style = if self.strings {
            Style::Pretty
        } else {
            Style::PrettyNoStrings
        };
        let mut text = Vec::new();
        write_term(f, &mut text, v, style, self.ordered)?;
        let line = self.width.unwrap_or(80);
        let at = self.precision.unwrap_or(column + 1);
        let len = i64::try_from(text.len()).unwrap_or(i64::MAX);
        if len < line - at {
            Ok(chars_of(&text))
        } else {
            Err(bad(
                f,
                format_args!(
                    "~p of this value ({len} characters from column {at}) is laid out over several lines by EMQX, \
                     which weir does not reproduce; use ~w, or a wider line (~200p)"
                ),
            ))
        }
    }
}

/// The characters of a `~s` argument: a binary, an atom, or a list of
/// characters and binaries (an iolist; with `t`, any character codes and
/// UTF-8 binaries).
fn string_chars(f: &str, v: &Value, unicode: bool) -> Result<Vec<u32>, OpError> {
    fn binary(b: &[u8], unicode: bool, out: &mut Vec<u32>) {
        match std::str::from_utf8(b) {
            Ok(s) if unicode => out.extend(s.chars().map(u32::from)),
            _ => out.extend(b.iter().map(|c| u32::from(*c))),
        }
    }
    fn list(f: &str, items: &[Value], unicode: bool, out: &mut Vec<u32>) -> Result<(), OpError> {
        for item in items {
            match item {
                Value::Int(c) if (0..=255).contains(c) || (unicode && *c >= 0) => {
                    out.push(u32::try_from(*c).map_err(|_| bad(f, "~ts: not a character code"))?);
                }
                Value::Str(_) | Value::Bytes(_) => {
                    binary(item.as_binary().unwrap_or_default(), unicode, out);
                }
                Value::Array(inner) => list(f, inner, unicode, out)?,
                other => {
                    return Err(bad(
                        f,
                        format_args!(
                            "~s takes a list of characters and strings, got {} in it",
                            other.kind()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    match v {
        Value::Str(_) | Value::Bytes(_) => {
            binary(v.as_binary().unwrap_or_default(), unicode, &mut out)
        }
        Value::Undefined | Value::Null | Value::Bool(_) => {
            out.extend(v.atom_name().unwrap_or_default().bytes().map(u32::from));
        }
        Value::Array(items) => list(f, items, unicode, &mut out)?,
        other => {
            return Err(bad(
                f,
                format_args!(
                    "~s takes a string, an atom or a list of characters, got {} (use ~p or ~w)",
                    other.kind()
                ),
            ));
        }
    }
    Ok(out)
}

/// `io_lib:chars_length`: characters, with `\r\n` one under `t` (where
/// Erlang counts grapheme clusters; the only cluster of characters up to
/// U+00FF, which are all that can be printed, is `\r\n`).
fn str_len(s: &[u32], unicode: bool) -> i64 {
    let pairs = if unicode {
        s.windows(2).filter(|w| w == &[13, 10]).count()
    } else {
        0
    };
    i64::try_from(s.len() - pairs).unwrap_or(i64::MAX)
}

/// The first `n` characters (as [`str_len`] counts them).
fn truncate(s: &[u32], n: i64, unicode: bool) -> Vec<u32> {
    let mut out = Vec::new();
    let mut count = 0;
    let mut i = 0;
    while count < n {
        let Some(&c) = s.get(i) else { break };
        out.push(c);
        i += 1;
        if unicode && c == 13 && s.get(i) == Some(&10) {
            out.push(10);
            i += 1;
        }
        count += 1;
    }
    out
}

/// The digits of `x` to 21 significant places and its decimal exponent,
/// as io_lib_format's `float_data` reads them from `float_to_list/1`:
/// x = 0.D1D2... × 10^E.
fn float_data(x: f64) -> (Vec<u8>, i64) {
    let text = format!("{:.20e}", x.abs());
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let digits = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    (digits, exp.parse::<i64>().unwrap_or(0) + 1)
}

/// io_lib_format's `float_man/3`: `i` integer digits, a point and `dc`
/// decimals of `ds`, rounded half up on the next digit; and whether the
/// rounding carried out of the first digit.
fn float_man(ds: &[u8], i: i64, dc: i64) -> (Vec<u8>, bool) {
    if i == 0 {
        let (decimals, carry) = float_man_decimals(ds, dc);
        return ([&b"."[..], &decimals].concat(), carry);
    }
    match ds.split_first() {
        Some((&d, rest)) => {
            let (tail, carry) = float_man(rest, i - 1, dc);
            bump(d, tail, carry)
        }
        None => {
            let zeros = usize::try_from(i).unwrap_or(0);
            let decimals = usize::try_from(dc).unwrap_or(0);
            (
                [vec![b'0'; zeros], vec![b'.'], vec![b'0'; decimals]].concat(),
                false,
            )
        }
    }
}

fn float_man_decimals(ds: &[u8], dc: i64) -> (Vec<u8>, bool) {
    if dc <= 0 {
        return (Vec::new(), ds.first().is_some_and(|d| *d >= b'5'));
    }
    match ds.split_first() {
        Some((&d, rest)) => {
            let (tail, carry) = float_man_decimals(rest, dc - 1);
            bump(d, tail, carry)
        }
        None => (vec![b'0'; usize::try_from(dc).unwrap_or(0)], false),
    }
}

/// Digit `d` before `tail`, plus a carry from `tail`.
fn bump(d: u8, tail: Vec<u8>, carry: bool) -> (Vec<u8>, bool) {
    match (carry, d) {
        (true, b'9') => ([&[b'0'][..], &tail].concat(), true),
        (true, _) => ([&[d + 1][..], &tail].concat(), false),
        (false, _) => ([&[d][..], &tail].concat(), false),
    }
}

fn sign(x: f64) -> &'static str {
    if x.is_sign_negative() { "-" } else { "" }
}

/// `~.Pf`.
fn float_f(x: f64, p: i64) -> String {
    let (mut ds, mut e) = float_data(x);
    if e <= 0 {
        let zeros = usize::try_from(1 - e).unwrap_or(0);
        ds = [vec![b'0'; zeros], ds].concat();
        e = 1;
    }
    let (text, carry) = float_man(&ds, e, p);
    let lead = if carry { "1" } else { "" };
    format!("{}{lead}{}", sign(x), String::from_utf8_lossy(&text))
}

/// `~.Pe`: P significant digits, `e+N` or `e-N`.
fn float_e(x: f64, p: i64) -> String {
    let (ds, e) = float_data(x);
    let (text, carry) = float_man(&ds, 1, p - 1);
    let (mantissa, exp) = if carry {
        let rest = text.get(1..).unwrap_or_default();
        (format!("1{}", String::from_utf8_lossy(rest)), e)
    } else {
        (String::from_utf8_lossy(&text).into_owned(), e - 1)
    };
    let exp = if exp >= 0 {
        format!("e+{exp}")
    } else {
        format!("e{exp}")
    };
    format!("{}{mantissa}{exp}", sign(x))
}

/// A float as `~w` and `~p` write it (`io_lib_format:fwrite_g/1`): the
/// shortest digits that read back the same, in fixed or scientific
/// notation, whichever is shorter (`1.0e3`, `100.0`, `0.001`, `1.0e-5`).
fn short_float(x: f64) -> String {
    let text = format!("{:e}", x.abs());
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let place = exp.parse::<i64>().unwrap_or(0) + 1;
    let len = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    let scientific = || {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{first}.{rest}e{}", place - 1)
    };
    let body = if place == 0 {
        format!("0.{digits}")
    } else if place > 0 && place < len {
        let (int, frac) = digits.split_at(usize::try_from(place).unwrap_or(0));
        format!("{int}.{frac}")
    } else {
        let exp_len = i64::try_from((place - 1).to_string().len()).unwrap_or(0);
        let cost = exp_len + 1 + if len == 1 { 2 } else { 1 };
        if place < 0 {
            if 2 - place <= cost {
                let zeros = "0".repeat(usize::try_from(-place).unwrap_or(0));
                format!("0.{zeros}{digits}")
            } else {
                scientific()
            }
        } else if place - len + 2 <= cost {
            let zeros = "0".repeat(usize::try_from(place - len).unwrap_or(0));
            format!("{digits}{zeros}.0")
        } else {
            scientific()
        }
    };
    format!("{}{body}", sign(x))
}

/// How a term is written: `~w`, or `~p` (strings detected, or not: `~lp`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Pretty,
    PrettyNoStrings,
}

/// The characters Erlang prints inside a string literal as they are
/// (`io_lib:printable_latin1_list`).
fn printable(c: u8) -> bool {
    matches!(c, 8..=13 | 27 | 32..=126 | 160..=255)
}

fn write_escaped(out: &mut Vec<u8>, chars: impl Iterator<Item = u8>) {
    out.push(b'"');
    for c in chars {
        let escape = match c {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'\n' => Some(b'n'),
            b'\r' => Some(b'r'),
            b'\t' => Some(b't'),
            11 => Some(b'v'),
            8 => Some(b'b'),
            12 => Some(b'f'),
            27 => Some(b'e'),
            _ => None,
        };
        match escape {
            Some(e) => out.extend_from_slice(&[b'\\', e]),
            None => out.push(c),
        }
    }
    out.push(b'"');
}

/// A value as the Erlang term EMQX holds, written as `~w` or `~p` writes
/// it on one line.
fn write_term(
    f: &str,
    out: &mut Vec<u8>,
    v: &Value,
    style: Style,
    ordered: bool,
) -> Result<(), OpError> {
    match v {
        Value::Undefined | Value::Null | Value::Bool(_) => {
            out.extend_from_slice(v.atom_name().unwrap_or_default().as_bytes());
        }
        Value::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Value::Big(b) => out.extend_from_slice(b.to_string().as_bytes()),
        Value::Float(x) => out.extend_from_slice(short_float(*x).as_bytes()),
        Value::Str(_) | Value::Bytes(_) => {
            write_binary(out, v.as_binary().unwrap_or_default(), style);
        }
        Value::Array(items) => {
            let chars: Option<Vec<u8>> = items
                .iter()
                .map(|i| match i {
                    Value::Int(c) => u8::try_from(*c).ok().filter(|c| printable(*c)),
                    _ => None,
                })
                .collect();
            match chars {
                Some(chars) if style == Style::Pretty && !chars.is_empty() => {
                    write_escaped(out, chars.into_iter());
                }
                _ => {
                    out.push(b'[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        write_term(f, out, item, style, ordered)?;
                    }
                    out.push(b']');
                }
            }
        }
        Value::Object(map) => {
            if map.len() > FLAT_MAP_KEYS && !ordered {
                return Err(bad(
                    f,
                    format_args!(
                        "EMQX prints the keys of a map of more than {FLAT_MAP_KEYS} in hash order, \
                         which weir cannot reproduce; the k modifier (~kp, ~kw) sorts them"
                    ),
                ));
            }
            out.extend_from_slice(b"#{");
            for (i, (key, value)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_binary(out, key.as_bytes(), style);
                out.extend_from_slice(b" => ");
                write_term(f, out, value, style, ordered)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// A binary: `<<"text">>` under `~p` when every byte is printable, else
/// its bytes (`<<104,105>>`, always under `~w`).
fn write_binary(out: &mut Vec<u8>, bytes: &[u8], style: Style) {
    out.extend_from_slice(b"<<");
    if style != Style::Plain && !bytes.is_empty() && bytes.iter().all(|c| printable(*c)) {
        write_escaped(out, bytes.iter().copied());
    } else {
        for (i, b) in bytes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(itoa::Buffer::new().format(*b).as_bytes());
        }
    }
    out.extend_from_slice(b">>");
}

#[cfg(test)]
mod tests {
    use super::short_float;
    use crate::funcs::testing::call;
    use crate::json;
    use crate::value::Value;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    fn fmt(args: &[Value]) -> Result<String, String> {
        match call("sprintf", args) {
            Ok(v) => Ok(String::from_utf8_lossy(v.as_binary().expect("a binary")).into_owned()),
            Err(e) => Err(e.0.into_owned()),
        }
    }

    fn ok(args: &[Value]) -> String {
        fmt(args).unwrap_or_else(|e| panic!("sprintf({args:?}): {e}"))
    }

    #[test]
    fn suite_cases() {
        // t_sprintf
        assert_eq!(ok(&[s("Hello ~ts!"), s("Shawn")]), "Hello Shawn!");
        assert_eq!(
            ok(&[s("Name: ~ts, Count: ~p"), s("ABC"), Value::Int(2)]),
            "Name: ABC, Count: 2"
        );
        // The documentation's examples.
        assert_eq!(ok(&[s("hello, ~s!"), s("steve")]), "hello, steve!");
        assert_eq!(ok(&[s("count: ~p~n"), Value::Int(100)]), "count: 100\n");
        // sprintf_s takes the arguments as one array.
        assert_eq!(
            call(
                "sprintf_s",
                &[s("~s=~w"), Value::array(vec![s("a"), Value::Int(1)])]
            ),
            Ok(s("a=1"))
        );
        assert!(call("sprintf_s", &[s("~s"), s("a")]).is_err());
    }

    #[test]
    fn strings_and_fields() {
        let cases: &[(&str, Value, &str)] = &[
            ("[~s]", s("abc"), "[abc]"),
            ("[~5s]", s("abc"), "[  abc]"),
            ("[~-5s]", s("abc"), "[abc  ]"),
            ("[~2s]", s("abc"), "[ab]"),
            ("[~.2s]", s("abc"), "[ab]"),
            ("[~5.2s]", s("abc"), "[   ab]"),
            ("[~5.4s]", s("abc"), "[ abc ]"),
            ("[~5..xs]", s("abc"), "[xxabc]"),
            ("[~s]", Value::Bool(true), "[true]"),
            ("[~s]", Value::Undefined, "[undefined]"),
            (
                "[~s]",
                Value::array(vec![
                    Value::Int(104),
                    s("i"),
                    Value::array(vec![Value::Int(33)]),
                ]),
                "[hi!]",
            ),
            ("[~s]", s("你好"), "[你好]"),
            ("[~c]", Value::Int(97), "[a]"),
            ("[~3c]", Value::Int(97), "[aaa]"),
            ("[~c]", Value::Int(256 + 97), "[a]"),
        ];
        for (format, arg, want) in cases {
            assert_eq!(ok(&[s(format), arg.clone()]), *want, "{format}");
        }
        assert_eq!(ok(&[s("[~~]")]), "[~]");
        assert_eq!(ok(&[s("[~3n]")]), "[\n\n\n]");
        assert_eq!(ok(&[s("[~i]"), Value::Int(1)]), "[]");
        // ~ts decodes UTF-8: beyond U+00FF EMQX fails, below it gives a
        // Latin-1 byte.
        assert!(fmt(&[s("~ts"), s("你好")]).is_err());
        assert_eq!(
            call("sprintf", &[s("~ts"), s("é")]),
            Ok(Value::bytes(&b"\xe9"[..]))
        );
        assert!(fmt(&[s("~s"), Value::Int(1)]).is_err());
        assert!(fmt(&[s("~s"), Value::array(vec![Value::Int(300)])]).is_err());
    }

    #[test]
    fn terms() {
        let obj = json::decode(br#"{"b":[1,"x"],"a":{"c":null}}"#).expect("json");
        let cases: &[(&str, Value, &str)] = &[
            ("~w", Value::Int(-42), "-42"),
            ("~p", s("abc"), "<<\"abc\">>"),
            ("~w", s("abc"), "<<97,98,99>>"),
            ("~p", Value::bytes(&b"\x01\x02"[..]), "<<1,2>>"),
            ("~p", s(""), "<<>>"),
            ("~p", s("a\"b\\c\n"), "<<\"a\\\"b\\\\c\\n\">>"),
            (
                "~p",
                Value::array(vec![Value::Int(104), Value::Int(105)]),
                "\"hi\"",
            ),
            (
                "~lp",
                Value::array(vec![Value::Int(104), Value::Int(105)]),
                "[104,105]",
            ),
            (
                "~w",
                Value::array(vec![Value::Int(104), Value::Int(105)]),
                "[104,105]",
            ),
            ("~p", Value::array(vec![]), "[]"),
            (
                "~p",
                obj.clone(),
                "#{<<\"a\">> => #{<<\"c\">> => null},<<\"b\">> => [1,<<\"x\">>]}",
            ),
            (
                "~w",
                obj,
                "#{<<97>> => #{<<99>> => null},<<98>> => [1,<<120>>]}",
            ),
            ("~p", Value::Float(0.1), "0.1"),
            ("~p", Value::Float(1000.0), "1.0e3"),
            ("~p", Value::Bool(false), "false"),
            ("[~6w]", Value::Int(42), "[    42]"),
            ("[~-6w]", Value::Int(42), "[42    ]"),
            ("[~3w]", Value::Int(12345), "[***]"),
        ];
        for (format, arg, want) in cases {
            assert_eq!(ok(&[s(format), arg.clone()]), *want, "{format} {arg:?}");
        }
        // Laid out over lines by EMQX: refused.
        let long = Value::array((0..40).map(Value::Int).collect());
        assert!(fmt(&[s("~p"), long.clone()]).is_err());
        assert!(fmt(&[s("~w"), long.clone()]).is_ok());
        assert!(fmt(&[s("~500p"), long]).is_ok());
        assert!(fmt(&[s("~tp"), Value::Int(1)]).is_err());
        let wide: crate::Map = (0..33)
            .map(|i| (format!("k{i:02}"), Value::Int(i)))
            .collect();
        assert!(fmt(&[s("~w"), Value::object(wide.clone())]).is_err());
        assert!(fmt(&[s("~kw"), Value::object(wide)]).is_ok());
    }

    #[test]
    fn integers_and_floats() {
        let cases: &[(&str, Value, &str)] = &[
            ("~b", Value::Int(10), "10"),
            ("~.2b", Value::Int(5), "101"),
            ("~.16B", Value::Int(255), "FF"),
            ("~.16b", Value::Int(-255), "-ff"),
            ("~.16#", Value::Int(255), "16#FF"),
            ("~.16+", Value::Int(255), "16#ff"),
            ("~5.16.0B", Value::Int(255), "000FF"),
            ("~f", Value::Float(1.23456), "1.234560"),
            ("~.2f", Value::Float(1.23456), "1.23"),
            ("~.2f", Value::Float(0.125), "0.13"),
            ("~.2f", Value::Float(0.005), "0.01"),
            ("~.1f", Value::Float(9.96), "10.0"),
            ("~.2f", Value::Float(-1.5), "-1.50"),
            ("~8.2f", Value::Float(1.23456), "    1.23"),
            ("~3.2f", Value::Float(27.1828), "***"),
            ("~e", Value::Float(1.5), "1.50000e+0"),
            ("~.3e", Value::Float(-0.000123), "-1.23e-4"),
            ("~.2e", Value::Float(9.99), "1.0e+1"),
            ("~g", Value::Float(1.5), "1.50000"),
            ("~g", Value::Float(12345.0), "1.23450e+4"),
            ("~g", Value::Float(0.05), "5.00000e-2"),
        ];
        for (format, arg, want) in cases {
            assert_eq!(ok(&[s(format), arg.clone()]), *want, "{format} {arg:?}");
        }
        let big = crate::conv::parse_integer("123456789012345678901234567890").expect("big");
        assert_eq!(ok(&[s("~b"), big]), "123456789012345678901234567890");
        // io_lib formats only floats with ~f.
        assert!(fmt(&[s("~f"), Value::Int(1)]).is_err());
        assert!(fmt(&[s("~.0f"), Value::Float(1.0)]).is_err());
        assert!(fmt(&[s("~.1e"), Value::Float(1.0)]).is_err());
        assert!(fmt(&[s("~.99b"), Value::Int(1)]).is_err());
    }

    #[test]
    fn argument_counts_and_bad_formats() {
        assert!(fmt(&[s("~s ~s"), s("a")]).is_err());
        assert!(fmt(&[s("~s"), s("a"), s("b")]).is_err());
        assert!(fmt(&[s("~")]).is_err());
        assert!(fmt(&[s("~q"), s("a")]).is_err());
        assert!(fmt(&[s("~x"), s("a")]).is_err());
        assert_eq!(ok(&[s("~*s|"), Value::Int(4), s("a")]), "   a|");
        assert_eq!(ok(&[s("~*s|"), Value::Int(-4), s("a")]), "a   |");
        assert_eq!(ok(&[s("no controls")]), "no controls");
        assert!(fmt(&[s("~99999999s"), s("a")]).is_err());
        assert!(call("sprintf", &[Value::Int(1)]).is_err());
    }

    #[test]
    fn floats_print_like_erlang() {
        for (x, want) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (2.5, "2.5"),
            (100.0, "100.0"),
            (1000.0, "1.0e3"),
            (123456.0, "123456.0"),
            (1.0e6, "1.0e6"),
            (0.1, "0.1"),
            (0.001, "0.001"),
            (0.0001, "0.0001"),
            (1.0e-5, "1.0e-5"),
            (1.5e-7, "1.5e-7"),
            (-3.25, "-3.25"),
            (1.0e21, "1.0e21"),
            (5.0e-324, "5.0e-324"),
            (0.30000000000000004, "0.30000000000000004"),
        ] {
            assert_eq!(short_float(x), want, "{x:e}");
        }
    }
}
