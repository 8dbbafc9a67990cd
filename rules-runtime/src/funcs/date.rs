//! Date and time: `now_timestamp`, `now_rfc3339`, `unix_ts_to_rfc3339`,
//! `rfc3339_to_unix_ts`, `format_date`, `date_to_unix_ts`,
//! `timezone_to_offset_seconds` (EMQX's "date and time conversion"
//! functions), with EMQX's units (`'second'`, `'millisecond'`,
//! `'microsecond'`, `'nanosecond'`), offsets (`'Z'`, `'+08:00'`,
//! `'+0800'`, `'+08:00:00'`, an integer of seconds, `'local'`) and format
//! directives (`%Y %m %d %H %M %S %N %3N %6N %z %:z %::z`; anything else is
//! copied as it is).
//!
//! The clock is [`Env::now_ms`], so a time "now" in micro- or nanoseconds
//! ends in zeros. A rule has no local time zone: weir takes it to be UTC,
//! as on an EMQX host whose zone is UTC (its container image's): `'local'`
//! is offset 0, and RFC 3339 times are written with `+00:00` (Erlang
//! writes the local offset, never `Z`).
//!
//! The arithmetic is Erlang's, quirks included: RFC 3339 text is read and
//! written as OTP's `calendar` does (the time of day is not range-checked
//! when read, a fraction is ignored for seconds, fractions of times before
//! 1970 are counted away from zero) and dates are formatted and parsed as
//! `emqx_utils_calendar` does (a literal in the format skips as many
//! characters of the date without comparing them, so `%H-%M` reads
//! `10:40`; fractions of a negative time are printed as Erlang prints
//! their remainder).

use super::{Env, Func, expects};
use crate::value::{OpError, Value};

pub(super) const FUNCS: &[Func] = &[
    Func {
        name: "now_timestamp",
        arity: (0, 1),
        signature: "now_timestamp([unit])",
        doc: "the time now since the Unix epoch, in seconds or the given unit",
        call: |a, env| {
            let unit = unit_arg_or_second("now_timestamp", a.first())?;
            Ok(Value::Int(unit.now(env)))
        },
    },
    Func {
        name: "now_rfc3339",
        arity: (0, 1),
        signature: "now_rfc3339([unit])",
        doc: "the time now as RFC 3339 text (UTC), to the second or the given unit",
        call: |a, env| {
            let unit = unit_arg_or_second("now_rfc3339", a.first())?;
            rfc3339_text("now_rfc3339", unit.now(env), unit)
        },
    },
    Func {
        name: "unix_ts_to_rfc3339",
        arity: (1, 2),
        signature: "unix_ts_to_rfc3339(epoch[, unit])",
        doc: "a time since the Unix epoch (in seconds or the given unit) as RFC 3339 text (UTC)",
        call: |a, _| {
            let unit = unit_arg_or_second("unix_ts_to_rfc3339", a.get(1))?;
            rfc3339_text(
                "unix_ts_to_rfc3339",
                epoch_arg("unix_ts_to_rfc3339", &a[0])?,
                unit,
            )
        },
    },
    Func {
        name: "rfc3339_to_unix_ts",
        arity: (1, 2),
        signature: "rfc3339_to_unix_ts(text[, unit])",
        doc: "RFC 3339 text as a time since the Unix epoch, in seconds or the given unit",
        call: rfc3339_to_unix_ts,
    },
    Func {
        name: "format_date",
        arity: (3, 4),
        signature: "format_date(unit, offset, format[, time])",
        doc: "a time (now, or the given time since the Unix epoch in unit) formatted at offset with %Y %m %d %H %M %S %N %3N %6N %z %:z %::z",
        call: format_date,
    },
    Func {
        name: "date_to_unix_ts",
        arity: (3, 4),
        signature: "date_to_unix_ts(unit, [offset,] format, text)",
        doc: "a date read by format as a time since the Unix epoch in unit; offset is the zone of a date that has none",
        call: date_to_unix_ts,
    },
    Func {
        name: "timezone_to_offset_seconds",
        arity: (1, 1),
        signature: "timezone_to_offset_seconds(offset)",
        doc: "an offset ('Z', '+08:00', '-0800', '+08:00:00', 'local' or seconds) in seconds",
        call: |a, _| timezone_to_offset_seconds("timezone_to_offset_seconds", &a[0]),
    },
    Func {
        name: "timezone_to_second",
        arity: (1, 1),
        signature: "timezone_to_second(offset)",
        doc: "timezone_to_offset_seconds(offset), by its EMQX 4 name",
        call: |a, _| timezone_to_offset_seconds("timezone_to_second", &a[0]),
    },
];

/// Seconds from 0000-01-01 to 1970-01-01 (`calendar`'s epoch to Unix's).
const SECONDS_0_TO_1970: i128 = 719_528 * 86_400;
/// Seconds from 0000-01-01 to 10000-01-01: the bound OTP checks Unix
/// seconds against.
const SECONDS_0_TO_10000: i128 = 2_932_897 * 86_400;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Unit {
    Second,
    Millisecond,
    Microsecond,
    Nanosecond,
}

impl Unit {
    fn per_second(self) -> i64 {
        match self {
            Unit::Second => 1,
            Unit::Millisecond => 1_000,
            Unit::Microsecond => 1_000_000,
            Unit::Nanosecond => 1_000_000_000,
        }
    }

    fn digits(self) -> usize {
        match self {
            Unit::Second => 0,
            Unit::Millisecond => 3,
            Unit::Microsecond => 6,
            Unit::Nanosecond => 9,
        }
    }

    /// `erlang:system_time(Unit)`.
    fn now(self, env: &dyn Env) -> i64 {
        let ms = env.now_ms();
        match self {
            Unit::Second => ms.div_euclid(1000),
            Unit::Millisecond => ms,
            Unit::Microsecond => ms.saturating_mul(1_000),
            Unit::Nanosecond => ms.saturating_mul(1_000_000),
        }
    }
}

/// `erlang:convert_time_unit`: exact to a finer unit, rounded down to a
/// coarser one.
fn convert(time: i128, from: Unit, to: Unit) -> i128 {
    let (f, t) = (i128::from(from.per_second()), i128::from(to.per_second()));
    if t >= f {
        time * (t / f)
    } else {
        time.div_euclid(f / t)
    }
}

fn unit_arg(f: &str, v: &Value) -> Result<Unit, OpError> {
    match v.as_binary() {
        Some(b"second") => Ok(Unit::Second),
        Some(b"millisecond") => Ok(Unit::Millisecond),
        Some(b"microsecond") => Ok(Unit::Microsecond),
        Some(b"nanosecond") => Ok(Unit::Nanosecond),
        _ => Err(expects(
            f,
            "a time unit of 'second', 'millisecond', 'microsecond' or 'nanosecond'",
            v,
        )),
    }
}

fn unit_arg_or_second(f: &str, v: Option<&Value>) -> Result<Unit, OpError> {
    v.map_or(Ok(Unit::Second), |v| unit_arg(f, v))
}

fn epoch_arg(f: &str, v: &Value) -> Result<i64, OpError> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::Big(_) => Err(out_of_range(f)),
        other => Err(expects(f, "an integer time", other)),
    }
}

fn out_of_range(f: &str) -> OpError {
    OpError(format!("{f}(): the time is outside the years 0 to 9999").into())
}

/// Erlang's `list_to_integer` (and `string:to_integer` taking the whole
/// text): an optional sign and decimal digits, here within `i64`.
fn erl_int(text: &[u8]) -> Option<i64> {
    crate::conv::parse_integer(std::str::from_utf8(text).ok()?)?.as_i64()
}

/// `emqx_utils_calendar:offset_second/1`: an offset in seconds.
fn offset_arg(f: &str, v: &Value) -> Result<i64, OpError> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::Undefined => Ok(0),
        Value::Str(_) | Value::Bytes(_) => {
            let text = v.as_binary().unwrap_or_default();
            offset_of_text(text).ok_or_else(|| {
                OpError(
                    format!(
                        "{f}(): `{}` is not an offset ('Z', '+08:00', '-0800', '+08:00:00' or 'local')",
                        crate::conv::clip(&String::from_utf8_lossy(text))
                    )
                    .into(),
                )
            })
        }
        Value::Big(_) => Err(OpError(format!("{f}(): the offset is out of range").into())),
        other => Err(expects(f, "an offset", other)),
    }
}

fn offset_of_text(text: &[u8]) -> Option<i64> {
    match text {
        // No local time zone in a rule: UTC.
        b"local" | b"Z" | b"z" => return Some(0),
        _ => {}
    }
    let (sign, rest) = match text.split_first()? {
        (b'+', rest) => (1, rest),
        (b'-', rest) => (-1, rest),
        _ => return None,
    };
    // string:tokens: empty parts between colons do not count.
    let parts: Vec<&[u8]> = rest
        .split(|&c| c == b':')
        .filter(|p| !p.is_empty())
        .collect();
    let (h, m, s) = match parts.as_slice() {
        [h, m] => (*h, *m, &b"0"[..]),
        [h, m, s] => (*h, *m, *s),
        [hhmm] if hhmm.len() == 4 => (hhmm.get(..2)?, hhmm.get(2..)?, &b"0"[..]),
        _ => return None,
    };
    let (h, m, s) = (erl_int(h)?, erl_int(m)?, erl_int(s)?);
    // Only the upper bounds are checked, as in EMQX (whose integers do not
    // overflow where these would).
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let total = h
        .checked_mul(3600)?
        .checked_add(m.checked_mul(60)?)?
        .checked_add(s)?;
    total.checked_mul(sign)
}

fn timezone_to_offset_seconds(f: &str, v: &Value) -> Result<Value, OpError> {
    match v {
        // Any integer is taken as it is.
        Value::Big(_) => Ok(v.clone()),
        _ => offset_arg(f, v).map(Value::Int),
    }
}

/// A date and time of day from seconds since 0000-01-01 (not negative).
fn datetime(gregorian_seconds: i128) -> (i128, u32, u32, u32, u32, u32) {
    let days = gregorian_seconds.div_euclid(86_400);
    let rest = gregorian_seconds.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days - 719_528);
    (y, m, d, rest / 3600, rest % 3600 / 60, rest % 60)
}

/// Year, month, day of a day counted from 1970-01-01 (proleptic
/// Gregorian).
fn civil_from_days(z: i128) -> (i128, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i128::from(m <= 2);
    (y, m, d)
}

/// Days from 0000-01-01 to a valid date, as `calendar` counts them; `None`
/// for a date `calendar` refuses.
fn gregorian_days(y: i64, m: i64, d: i64) -> Option<i128> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let last = match m {
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        1..=12 => 31,
        _ => return None,
    };
    if y < 0 || d < 1 || d > last {
        return None;
    }
    let (y, m, d) = (i128::from(y), i128::from(m), i128::from(d));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468 + 719_528)
}

/// OTP's bound on the Unix seconds of an RFC 3339 time.
fn in_calendar_range(secs: i128) -> bool {
    (-SECONDS_0_TO_1970..SECONDS_0_TO_10000).contains(&secs)
}

/// `calendar:system_time_to_rfc3339(Time, [{unit, Unit}])` in UTC.
fn rfc3339_text(f: &str, time: i64, unit: Unit) -> Result<Value, OpError> {
    let factor = unit.per_second();
    // Erlang's div and rem: toward zero.
    let secs = i128::from(time / factor);
    if !in_calendar_range(secs) {
        return Err(out_of_range(f));
    }
    let (y, mo, d, h, mi, s) = datetime(secs + SECONDS_0_TO_1970);
    let mut out = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
    if unit != Unit::Second {
        let fraction = (time % factor).unsigned_abs();
        out.push_str(&format!(".{fraction:0width$}", width = unit.digits()));
    }
    out.push_str("+00:00");
    Ok(Value::from(out))
}

fn rfc3339_to_unix_ts(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    const F: &str = "rfc3339_to_unix_ts";
    let text = a[0]
        .as_binary()
        .ok_or_else(|| expects(F, "RFC 3339 text", &a[0]))?;
    let unit = unit_arg_or_second(F, a.get(1))?;
    parse_rfc3339(text, unit)
        .map(Value::from_big)
        .ok_or_else(|| {
            OpError(
                format!(
                    "{F}(): `{}` is not an RFC 3339 time such as 2024-01-31T12:00:00+08:00",
                    crate::conv::clip(&String::from_utf8_lossy(text))
                )
                .into(),
            )
        })
}

/// `calendar:rfc3339_to_system_time(Text, [{unit, Unit}])`.
fn parse_rfc3339(text: &[u8], unit: Unit) -> Option<num_bigint::BigInt> {
    let head = text.get(..19)?;
    let rest = text.get(19..)?;
    if head.get(4) != Some(&b'-')
        || head.get(7) != Some(&b'-')
        || head.get(13) != Some(&b':')
        || head.get(16) != Some(&b':')
    {
        return None;
    }
    let field = |from: usize, to: usize| head.get(from..to).and_then(erl_int);
    let days = gregorian_days(field(0, 4)?, field(5, 7)?, field(8, 10)?)?;
    let time_of_day = field(11, 13)? * 3600 + field(14, 16)? * 60 + field(17, 19)?;
    let split = rest
        .iter()
        .position(|c| !(c.is_ascii_digit() || *c == b'.'))
        .unwrap_or(rest.len());
    let (fraction, offset) = rest.split_at(split);
    let adjustment = match offset {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (erl_int(&[*h1, *h2])?, erl_int(&[*m1, *m2])?);
            let secs = 3600 * h + 60 * m;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let secs = days * 86_400 + i128::from(time_of_day) - SECONDS_0_TO_1970 - i128::from(adjustment);
    if !in_calendar_range(secs) {
        return None;
    }
    let scaled = secs * i128::from(unit.per_second());
    let fraction = match (unit, fraction) {
        (Unit::Second, _) | (_, b"") => 0,
        (_, [b'.', digits @ ..]) if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) => {
            let value: f64 = std::str::from_utf8(fraction).ok()?.parse().ok()?;
            (unit.per_second() as f64 * value).round() as i128
        }
        _ => return None,
    };
    Some(
        if scaled < 0 {
            scaled - fraction
        } else {
            scaled + fraction
        }
        .into(),
    )
}

/// A piece of a date format.
#[derive(Clone, PartialEq, Debug)]
enum Piece {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
    Microsecond,
    Nanosecond,
    /// `%z`: `+0800`.
    Zone,
    /// `%:z`: `+08:00`.
    ZoneColon,
    /// `%::z`: `+08:00:00`.
    ZoneSeconds,
    Literal(Vec<u8>),
}

impl Piece {
    /// How many characters of a date the piece reads.
    fn width(&self) -> usize {
        match self {
            Piece::Year => 4,
            Piece::Month | Piece::Day | Piece::Hour | Piece::Minute | Piece::Second => 2,
            Piece::Millisecond => 3,
            Piece::Microsecond => 6,
            Piece::Nanosecond => 9,
            Piece::Zone => 5,
            Piece::ZoneColon => 6,
            Piece::ZoneSeconds => 9,
            Piece::Literal(l) => l.len(),
        }
    }
}

/// `emqx_utils_calendar:formatter/1`.
fn pieces(format: &[u8]) -> Vec<Piece> {
    const DIRECTIVES: &[(&[u8], Piece)] = &[
        (b"%Y", Piece::Year),
        (b"%m", Piece::Month),
        (b"%d", Piece::Day),
        (b"%H", Piece::Hour),
        (b"%M", Piece::Minute),
        (b"%S", Piece::Second),
        (b"%N", Piece::Nanosecond),
        (b"%3N", Piece::Millisecond),
        (b"%6N", Piece::Microsecond),
        (b"%z", Piece::Zone),
        (b"%:z", Piece::ZoneColon),
        (b"%::z", Piece::ZoneSeconds),
    ];
    let mut out = Vec::new();
    let mut rest = format;
    while let Some((&c, tail)) = rest.split_first() {
        if let Some((d, piece)) = DIRECTIVES.iter().find(|(d, _)| rest.starts_with(d)) {
            out.push(piece.clone());
            rest = rest.get(d.len()..).unwrap_or_default();
            continue;
        }
        match out.last_mut() {
            Some(Piece::Literal(l)) => l.push(c),
            _ => out.push(Piece::Literal(vec![c])),
        }
        rest = tail;
    }
    out
}

/// Erlang's `integer_to_list` padded with zeros in front to `width`
/// characters (a negative number keeps its sign after the zeros).
fn padded(n: impl std::fmt::Display, width: usize) -> String {
    let text = n.to_string();
    format!("{}{text}", "0".repeat(width.saturating_sub(text.len())))
}

fn format_date(a: &[Value], env: &dyn Env) -> Result<Value, OpError> {
    const F: &str = "format_date";
    let unit = unit_arg(F, &a[0])?;
    let offset = offset_arg(F, &a[1])?;
    let format = a[2]
        .as_binary()
        .ok_or_else(|| expects(F, "a format string", &a[2]))?;
    let time = match a.get(3) {
        Some(v) => epoch_arg(F, v)?,
        None => unit.now(env),
    };
    let factor = i128::from(unit.per_second());
    let secs = (i128::from(time) + i128::from(offset) * factor) / factor;
    if secs + SECONDS_0_TO_1970 < 0 {
        return Err(out_of_range(F));
    }
    let (y, mo, d, h, mi, s) = datetime(secs + SECONDS_0_TO_1970);
    let fraction = |to: Unit| {
        // emqx_utils_calendar's trans_x_second: from the time as given, with
        // Erlang's rem (the sign of the time).
        let t = i128::from(time);
        let value = match unit {
            Unit::Second => 0,
            _ if to >= unit => (t % factor) * i128::from(to.per_second() / unit.per_second()),
            _ => t / i128::from(unit.per_second() / to.per_second()) % i128::from(to.per_second()),
        };
        padded(value, to.digits())
    };
    let zone = |piece: &Piece| -> Result<String, OpError> {
        let abs = offset.unsigned_abs();
        if abs >= 86_400 {
            return Err(OpError(
                format!("{F}(): the offset {offset} is a day or more, which has no zone text")
                    .into(),
            ));
        }
        let sign = if offset >= 0 { '+' } else { '-' };
        let (hh, mm, ss) = (abs / 3600, abs % 3600 / 60, abs % 60);
        Ok(match piece {
            Piece::Zone => format!("{sign}{hh:02}{mm:02}"),
            Piece::ZoneColon => format!("{sign}{hh:02}:{mm:02}"),
            _ => format!("{sign}{hh:02}:{mm:02}:{ss:02}"),
        })
    };
    let mut out = Vec::new();
    for piece in pieces(format) {
        let text = match &piece {
            Piece::Year => padded(y, 4),
            Piece::Month => padded(mo, 2),
            Piece::Day => padded(d, 2),
            Piece::Hour => padded(h, 2),
            Piece::Minute => padded(mi, 2),
            Piece::Second => padded(s, 2),
            Piece::Millisecond => fraction(Unit::Millisecond),
            Piece::Microsecond => fraction(Unit::Microsecond),
            Piece::Nanosecond => fraction(Unit::Nanosecond),
            Piece::Zone | Piece::ZoneColon | Piece::ZoneSeconds => zone(&piece)?,
            Piece::Literal(l) => {
                out.extend_from_slice(l);
                continue;
            }
        };
        out.extend_from_slice(text.as_bytes());
    }
    Ok(Value::binary(out))
}

fn date_to_unix_ts(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    const F: &str = "date_to_unix_ts";
    let unit = unit_arg(F, &a[0])?;
    let (offset, format, text) = match a {
        [_, offset, format, text] => (offset_arg(F, offset)?, format, text),
        [_, format, text] => (0, format, text),
        _ => return Err(OpError::new("date_to_unix_ts() takes 3 or 4 arguments")),
    };
    let format = format
        .as_binary()
        .ok_or_else(|| expects(F, "a format string", format))?;
    let text = text
        .as_binary()
        .ok_or_else(|| expects(F, "a date string", text))?;
    let time = parse_date(text, &pieces(format), unit)?;
    let result = time - i128::from(offset) * i128::from(unit.per_second());
    Ok(Value::from_big(result.into()))
}

/// `emqx_utils_calendar:formatted_datetime_to_system_time/3`.
fn parse_date(text: &[u8], pieces: &[Piece], unit: Unit) -> Result<i128, OpError> {
    const F: &str = "date_to_unix_ts";
    let bad = |why: String| OpError(format!("{F}(): {why}").into());
    let mut parts: [Option<i64>; 9] = [None; 9];
    let mut zone = 0;
    let mut rest = text;
    for piece in pieces {
        if rest.is_empty() {
            break;
        }
        let width = piece.width();
        let (part, tail) = rest.split_at_checked(width).ok_or_else(|| {
            bad(format!(
                "the date `{}` is shorter than its format",
                crate::conv::clip(&String::from_utf8_lossy(text))
            ))
        })?;
        rest = tail;
        let slot = match piece {
            Piece::Year => 0,
            Piece::Month => 1,
            Piece::Day => 2,
            Piece::Hour => 3,
            Piece::Minute => 4,
            Piece::Second => 5,
            Piece::Millisecond => 6,
            Piece::Microsecond => 7,
            Piece::Nanosecond => 8,
            Piece::Zone | Piece::ZoneColon | Piece::ZoneSeconds => {
                zone = offset_of_text(part).ok_or_else(|| {
                    bad(format!(
                        "`{}` is not an offset",
                        String::from_utf8_lossy(part)
                    ))
                })?;
                continue;
            }
            // A literal skips its width without comparing (as EMQX does).
            Piece::Literal(_) => continue,
        };
        let value = erl_int(part).ok_or_else(|| {
            bad(format!(
                "`{}` in the date is not a number where its format has {}",
                String::from_utf8_lossy(part),
                ["%Y", "%m", "%d", "%H", "%M", "%S", "%3N", "%6N", "%N"][slot]
            ))
        })?;
        parts[slot] = Some(value);
    }
    const NAMES: [&str; 6] = ["year", "month", "day", "hour", "minute", "second"];
    let mut required = [0i64; 6];
    for (i, name) in NAMES.iter().enumerate() {
        required[i] = parts[i].ok_or_else(|| bad(format!("the date has no {name}")))?;
    }
    let [y, mo, d, h, mi, s] = required;
    let days = gregorian_days(y, mo, d)
        .ok_or_else(|| bad(format!("{y:04}-{mo:02}-{d:02} is not a date")))?;
    let secs = days * 86_400 + i128::from(h) * 3600 + i128::from(mi) * 60 + i128::from(s)
        - SECONDS_0_TO_1970
        - i128::from(zone);
    if !in_calendar_range(secs) {
        return Err(bad("the date is outside the years 0 to 9999".into()));
    }
    let [ms, us, ns] = [parts[6], parts[7], parts[8]];
    let precision = if ns.is_some() {
        Unit::Nanosecond
    } else if us.is_some() {
        Unit::Microsecond
    } else if ms.is_some() {
        Unit::Millisecond
    } else {
        Unit::Second
    };
    let total = convert(secs, Unit::Second, precision)
        + [
            (ms, Unit::Millisecond),
            (us, Unit::Microsecond),
            (ns, Unit::Nanosecond),
        ]
        .iter()
        .map(|(v, from)| convert(i128::from(v.unwrap_or(0)), *from, precision))
        .sum::<i128>();
    Ok(convert(total, precision, unit))
}

#[cfg(test)]
mod tests {
    use crate::funcs::testing::{TestEnv, call, call_in};
    use crate::value::Value;
    use proptest::prelude::*;

    fn s(text: &str) -> Value {
        Value::str(text)
    }

    fn i(n: i64) -> Value {
        Value::Int(n)
    }

    const UNITS: [&str; 4] = ["second", "millisecond", "microsecond", "nanosecond"];

    #[test]
    fn now_comes_from_the_environment() {
        // TestEnv's clock: 1700000123456 ms, 2023-11-14T22:15:23.456Z.
        assert_eq!(call("now_timestamp", &[]), Ok(i(1_700_000_123)));
        let stamps = [
            1_700_000_123,
            1_700_000_123_456,
            1_700_000_123_456_000,
            1_700_000_123_456_000_000,
        ];
        for (unit, want) in UNITS.iter().zip(stamps) {
            assert_eq!(call("now_timestamp", &[s(unit)]), Ok(i(want)), "{unit}");
        }
        assert_eq!(call("now_rfc3339", &[]), Ok(s("2023-11-14T22:15:23+00:00")));
        let texts = [
            "2023-11-14T22:15:23+00:00",
            "2023-11-14T22:15:23.456+00:00",
            "2023-11-14T22:15:23.456000+00:00",
            "2023-11-14T22:15:23.456000000+00:00",
        ];
        for (unit, want) in UNITS.iter().zip(texts) {
            assert_eq!(call("now_rfc3339", &[s(unit)]), Ok(s(want)), "{unit}");
        }
        let err = call("now_timestamp", &[s("hour")]).expect_err("no such unit");
        assert_eq!(
            err.0,
            "now_timestamp() expects a time unit of 'second', 'millisecond', 'microsecond' or 'nanosecond', got a string"
        );
        let mut before_1970 = TestEnv::default();
        before_1970.now_ms = -1500;
        assert_eq!(call_in(&before_1970, "now_timestamp", &[]), Ok(i(-2)));
    }

    #[test]
    fn rfc3339_both_ways() {
        // The documentation's examples (written at +08:00; weir's zone is
        // UTC).
        assert_eq!(
            call("unix_ts_to_rfc3339", &[i(1_650_874_276)]),
            Ok(s("2022-04-25T08:11:16+00:00"))
        );
        assert_eq!(
            call(
                "unix_ts_to_rfc3339",
                &[i(1_650_874_318_331), s("millisecond")]
            ),
            Ok(s("2022-04-25T08:11:58.331+00:00"))
        );
        assert_eq!(
            call("rfc3339_to_unix_ts", &[s("2022-04-25T16:11:16+08:00")]),
            Ok(i(1_650_874_276))
        );
        assert_eq!(
            call(
                "rfc3339_to_unix_ts",
                &[s("2022-04-25T16:11:58.331+08:00"), s("millisecond")]
            ),
            Ok(i(1_650_874_318_331))
        );
        // t_unix_ts_to_rfc3339, t_rfc3339_to_unix_ts: each unit round-trips.
        for unit in UNITS {
            let now = call("now_timestamp", &[s(unit)]).expect("now");
            let text = call("unix_ts_to_rfc3339", &[now.clone(), s(unit)]).expect("text");
            assert_eq!(
                call("rfc3339_to_unix_ts", &[text, s(unit)]),
                Ok(now),
                "{unit}"
            );
        }
        // OTP's reading: z, a fraction ignored for seconds and rounded to the
        // unit, the time of day unchecked, any separator between date and
        // time.
        let read = |text: &str, unit: &str| call("rfc3339_to_unix_ts", &[s(text), s(unit)]);
        assert_eq!(read("1970-01-01T00:00:00z", "second"), Ok(i(0)));
        assert_eq!(read("1970-01-01 00:00:01.999Z", "second"), Ok(i(1)));
        assert_eq!(read("1970-01-01T00:00:01.5Z", "millisecond"), Ok(i(1500)));
        assert_eq!(read("1970-01-01T00:00:00.0004Z", "millisecond"), Ok(i(0)));
        assert_eq!(read("1970-01-01T00:00:00.0005Z", "millisecond"), Ok(i(1)));
        assert_eq!(
            read("1970-01-01T00:00:00.123456789Z", "nanosecond"),
            Ok(i(123_456_789))
        );
        assert_eq!(read("1970-01-01T25:00:00Z", "second"), Ok(i(90_000)));
        assert_eq!(read("1970-01-01T00:00:00-01:30", "second"), Ok(i(5400)));
        // Before 1970 the fraction counts away from zero.
        assert_eq!(
            read("1969-12-31T23:59:59.250Z", "millisecond"),
            Ok(i(-1250))
        );
        for bad in [
            "2022-04-25T16:11:16",
            "2022-04-25T16:11:16+0800",
            "2022-04-25T16:11:16 08:00",
            "2022-02-30T00:00:00Z",
            "2022-13-01T00:00:00Z",
            "2022/04/25T16:11:16Z",
            "22-04-25T16:11:16Z",
            "2022-04-25T16:11:16.Z",
        ] {
            assert!(read(bad, "millisecond").is_err(), "{bad}");
        }
        assert!(call("rfc3339_to_unix_ts", &[i(1)]).is_err());
        // Negative times print as OTP prints them: seconds toward zero, the
        // fraction's magnitude.
        assert_eq!(
            call("unix_ts_to_rfc3339", &[i(-1), s("millisecond")]),
            Ok(s("1970-01-01T00:00:00.001+00:00"))
        );
        assert_eq!(
            call("unix_ts_to_rfc3339", &[i(-62_167_219_200)]),
            Ok(s("0000-01-01T00:00:00+00:00"))
        );
        assert!(call("unix_ts_to_rfc3339", &[i(-62_167_219_201)]).is_err());
        assert!(call("unix_ts_to_rfc3339", &[i(253_402_300_800)]).is_err());
        assert!(call("unix_ts_to_rfc3339", &[s("1650874276")]).is_err());
    }

    #[test]
    fn offsets() {
        // t_timezone_to_offset_seconds, for both names.
        for f in ["timezone_to_offset_seconds", "timezone_to_second"] {
            let cases = [
                (s("+02:00:00"), 7200),
                (s("-02:00:00"), -7200),
                (s("+00:01:42"), 102),
                (s("z"), 0),
                (s("Z"), 0),
                (i(42), 42),
                (Value::Undefined, 0),
                // 'local' is UTC in a rule.
                (s("local"), 0),
                (s("+0800"), 28_800),
                (s("-08:00"), -28_800),
                (s("+08::30"), 30_600),
            ];
            for (offset, want) in cases {
                assert_eq!(
                    call(f, std::slice::from_ref(&offset)),
                    Ok(i(want)),
                    "{f}({offset:?})"
                );
            }
            for bad in [
                "",
                "08:00",
                "+8",
                "+24:00",
                "+08:60",
                "+08:00:60",
                "+080",
                "+08:00:00:00",
                "UTC",
            ] {
                assert!(call(f, &[s(bad)]).is_err(), "{f}({bad})");
            }
            assert!(call(f, &[Value::Float(1.0)]).is_err());
            assert!(call(f, &[Value::Null]).is_err());
        }
    }

    #[test]
    fn format_date_examples() {
        // The documentation's examples.
        let fmt = |args: &[Value]| call("format_date", args);
        assert_eq!(
            fmt(&[
                s("second"),
                s("+0800"),
                s("%Y-%m-%d %H:%M:%S%:z"),
                i(1_653_561_612)
            ]),
            Ok(s("2022-05-26 18:40:12+08:00"))
        );
        // Now (TestEnv's clock) at offset 0, and 'local', which is UTC.
        for offset in [i(0), s("local"), s("Z")] {
            assert_eq!(
                fmt(&[s("second"), offset, s("%Y-%m-%d %H:%M:%S%:z")]),
                Ok(s("2023-11-14 22:15:23+00:00"))
            );
        }
        let at = |unit: &str, offset: Value, format: &str, time: i64| {
            fmt(&[s(unit), offset, s(format), i(time)])
        };
        assert_eq!(
            at(
                "millisecond",
                s("-03:30"),
                "%z|%:z|%::z|%N|%3N|%6N",
                1_653_561_612_345
            ),
            Ok(s("-0330|-03:30|-03:30:00|345000000|345|345000"))
        );
        assert_eq!(
            at(
                "nanosecond",
                i(-45),
                "%H:%M:%S.%N %::z",
                1_653_561_612_000_000_007
            ),
            Ok(s("10:39:27.000000007 -00:00:45"))
        );
        assert_eq!(
            at("microsecond", i(0), "%3N %6N", 1_653_561_612_345_678),
            Ok(s("345 345678"))
        );
        // Unknown directives and other bytes are copied.
        assert_eq!(
            at("second", i(0), "%y %9N %% 年%Y", 0),
            Ok(s("%y %9N %% 年1970"))
        );
        assert_eq!(at("second", i(0), "", 0), Ok(s("")));
        // Years before 1000 are padded; fractions of a negative time are
        // Erlang's remainder, padded ("0-1").
        assert_eq!(at("second", i(0), "%Y", -62_135_596_800), Ok(s("0001")));
        assert_eq!(at("millisecond", i(0), "%S.%3N", -1), Ok(s("00.0-1")));
        // An offset of a day or more has no zone text, but is fine without.
        assert!(at("second", i(86_400), "%z", 0).is_err());
        assert_eq!(at("second", i(86_400), "%d", 0), Ok(s("02")));
        assert!(at("second", i(0), "%Y", -62_167_219_201).is_err());
        assert!(fmt(&[s("second"), s("+08:00"), i(1), i(0)]).is_err());
        assert!(fmt(&[s("second"), s("+08:00"), s("%Y"), s("0")]).is_err());
        assert!(fmt(&[s("seconds"), s("+08:00"), s("%Y"), i(0)]).is_err());
    }

    #[test]
    fn date_to_unix_ts_as_emqx() {
        let parse = |args: &[Value]| call("date_to_unix_ts", args);
        // The documentation's examples ('local' is UTC here, +08:00 there).
        assert_eq!(
            parse(&[
                s("second"),
                s("%Y-%m-%d %H:%M:%S%:z"),
                s("2022-05-26 18:40:12+08:00")
            ]),
            Ok(i(1_653_561_612))
        );
        assert_eq!(
            parse(&[
                s("second"),
                s("local"),
                s("%Y-%m-%d %H-%M-%S"),
                s("2022-05-26 18:40:12")
            ]),
            Ok(i(1_653_590_412))
        );
        assert_eq!(
            parse(&[
                s("second"),
                s("%Y-%m-%d %H-%M-%S"),
                s("2022-05-26 10:40:12")
            ]),
            Ok(i(1_653_561_612))
        );
        // t_date_to_unix_ts: each equals calendar:rfc3339_to_system_time of
        // the same time.
        let table = [
            (
                "2024-03-01T10:30:38+08:00",
                "second",
                "%Y-%m-%d %H-%M-%S",
                "2024-03-01 10:30:38",
            ),
            (
                "2024-03-01T10:30:38.333+08:00",
                "second",
                "%Y-%m-%d %H-%M-%S.%3N",
                "2024-03-01 10:30:38.333",
            ),
            (
                "2024-03-01T10:30:38.333+08:00",
                "millisecond",
                "%Y-%m-%d %H-%M-%S.%3N",
                "2024-03-01 10:30:38.333",
            ),
            (
                "2024-03-01T10:30:38.333+08:00",
                "microsecond",
                "%Y-%m-%d %H-%M-%S.%3N",
                "2024-03-01 10:30:38.333",
            ),
            (
                "2024-03-01T10:30:38.333+08:00",
                "nanosecond",
                "%Y-%m-%d %H-%M-%S.%3N",
                "2024-03-01 10:30:38.333",
            ),
            (
                "2024-03-01T10:30:38.333444+08:00",
                "microsecond",
                "%Y-%m-%d %H-%M-%S.%6N",
                "2024-03-01 10:30:38.333444",
            ),
        ];
        for (rfc3339, unit, format, date) in table {
            let want = call("rfc3339_to_unix_ts", &[s(rfc3339), s(unit)]).expect("RFC 3339");
            assert_eq!(
                parse(&[s(unit), s("+08:00"), s(format), s(date)]),
                Ok(want),
                "{rfc3339} {unit}"
            );
        }
        assert_eq!(
            parse(&[
                s("second"),
                s("+08:00"),
                s("%Y-%m-%d %H-%M-%S"),
                s("2024-03-01 10:30:38")
            ]),
            Ok(i(1_709_260_238))
        );
        // t_parse_date_errors: compatibility, leap years and zones.
        let cases = [
            (
                1_653_561_612,
                None,
                "%Y-%m-%d %H:%M:%S",
                "2022-05-26 10:40:12",
            ),
            (
                1_653_561_612,
                None,
                "%Y-%m-%d %H-%M-%S",
                "2022-05-26 10:40:12",
            ),
            (
                1_653_561_612,
                None,
                "%Y-%m-%d %H:%M:%S",
                "2022-05-26 10-40-12",
            ),
            (
                1_709_217_100,
                None,
                "%Y-%m-%d %H:%M:%S",
                "2024-02-29 14:31:40",
            ),
            (
                1_709_297_071,
                None,
                "%Y-%m-%d %H:%M:%S",
                "2024-03-01 12:44:31",
            ),
            (
                4_107_588_271,
                None,
                "%Y-%m-%d %H:%M:%S",
                "2100-03-01 12:44:31",
            ),
            (
                1_709_188_300,
                Some("+08:00"),
                "%Y-%m-%d %H:%M:%S",
                "2024-02-29 14:31:40",
            ),
            (
                1_709_268_271,
                Some("+08:00"),
                "%Y-%m-%d %H:%M:%S",
                "2024-03-01 12:44:31",
            ),
            (
                4_107_559_471,
                Some("+08:00"),
                "%Y-%m-%d %H:%M:%S",
                "2100-03-01 12:44:31",
            ),
            (
                1_708_671_600,
                None,
                "%Y-%m-%d %H:%M:%S.%3N%:z",
                "2024-02-23 15:00:00.123+08:00",
            ),
        ];
        for (want, offset, format, date) in cases {
            let mut args = vec![s("second")];
            args.extend(offset.map(s));
            args.extend([s(format), s(date)]);
            assert_eq!(parse(&args), Ok(i(want)), "{format} {date}");
        }
        let errors = [
            (
                "%Y-%m-%d %H:%M:%S",
                "2022-059999-26 10:40:12",
                "not a number",
            ),
            ("%y-%m-%d %H:%M:%S", "2022-05-26 10:40:12", "not a number"),
            (
                "%Y-%d %H:%M:%S",
                "2022-32 10:40:12",
                "the date has no month",
            ),
            ("%H:%M:%S", "10:40:12", "the date has no year"),
            ("%Y-%m-%d %H:%M:%S", "2022-05-32 10:40:12", "is not a date"),
            ("%Y-%m-%d %H:%M:%S", "2023-02-29 10:40:12", "is not a date"),
            ("%Y-%m-%d %H:%M:%S", "2024-02-30 10:40:12", "is not a date"),
            ("%Y-%m-%d %H:%M:%S", "2024-02-2", "shorter than its format"),
            (
                "%Y-%m-%d %H:%M:%S%z",
                "2024-02-20 10:40:12+08",
                "shorter than its format",
            ),
            (
                "%Y-%m-%d %H:%M:%S%z",
                "2024-02-20 10:40:12 0800",
                "is not an offset",
            ),
        ];
        for (format, date, why) in errors {
            let err = parse(&[s("second"), s(format), s(date)]).expect_err("refused");
            assert!(err.0.contains(why), "{format} {date}: {err}");
        }
        // A date that ends early stops the reading; the rest of the format
        // is not needed unless it holds a required part.
        assert_eq!(
            parse(&[
                s("second"),
                s("%Y-%m-%d %H:%M:%S.%3N"),
                s("2022-05-26 10:40:12")
            ]),
            Ok(i(1_653_561_612))
        );
        assert!(parse(&[s("second"), i(1), s("2022")]).is_err());
        assert!(parse(&[s("second"), s("%Y"), i(2022)]).is_err());
    }

    #[test]
    fn format_then_parse_is_the_identity() {
        // prop_format_date_fun's cases that hold (its first, which gives
        // date_to_unix_ts both an offset and a %z, is not evaluated there).
        let now = 1_700_000_123_456i64;
        let cases = [
            (
                "millisecond",
                "+04:00",
                "--%m--%d--%Y---%H:%M:%S:%3N%z",
                None,
                now,
            ),
            ("second", "+08:00", "%Y-%m-%d-%H:%M:%S%z", None, now / 1000),
            (
                "second",
                "+04:00",
                "--%m--%d--%Y---%H:%M:%S",
                Some("+04:00"),
                now / 1000,
            ),
        ];
        for (unit, offset, format, parse_offset, time) in cases {
            let text =
                call("format_date", &[s(unit), s(offset), s(format), i(time)]).expect("formats");
            let mut args = vec![s(unit)];
            args.extend(parse_offset.map(s));
            args.extend([s(format), text]);
            assert_eq!(call("date_to_unix_ts", &args), Ok(i(time)), "{format}");
        }
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips(secs in -62_167_219_200i64..253_402_300_800, sub in 0i64..1_000_000_000, unit in 0usize..4) {
            let per_second = [1i64, 1_000, 1_000_000, 1_000_000_000][unit];
            let time = i128::from(secs) * i128::from(per_second) + i128::from(sub % per_second);
            // Nanoseconds beyond i64 (after 2262) are not rule integers here.
            let Ok(time) = i64::try_from(time) else { return Ok(()) };
            // OTP's seconds are rounded toward zero and its fraction keeps
            // only the magnitude, so negative fractions do not come back.
            prop_assume!(time >= 0 || time % per_second == 0);
            let unit = UNITS[unit];
            let text = call("unix_ts_to_rfc3339", &[i(time), s(unit)]).expect("text");
            prop_assert_eq!(call("rfc3339_to_unix_ts", &[text, s(unit)]), Ok(i(time)));
        }

        #[test]
        fn format_date_round_trips(time in -62_135_596_800_000i64..253_402_214_400_000, offset in -86_399i64..86_400) {
            let format = "%Y-%m-%dT%H:%M:%S.%3N%::z";
            let text = call("format_date", &[s("millisecond"), i(offset), s(format), i(time)]).expect("formats");
            prop_assume!(time >= 0 || time % 1000 == 0);
            prop_assert_eq!(call("date_to_unix_ts", &[s("millisecond"), s(format), text]), Ok(i(time)));
        }
    }
}
