//! Durations and sizes as EMQX writes them (`30s`, `500ms`, `1h30m`,
//! `infinity`; `256MB`, `1KB`), accepted by the fields of weir's
//! configuration that hold a duration or a size, next to plain numbers.
//!
//! Why: an EMQX user's settings (and `weir import emqx`'s output) carry over
//! as they were written, instead of being converted by hand into
//! milliseconds and bytes. A number keeps meaning what the field's name
//! says (`*_ms` milliseconds, `*_secs` seconds, sizes bytes), so existing
//! files are unchanged. The syntax is EMQX's (its HOCON post-processing):
//! a duration is one or more `<number><unit>` terms, the number possibly
//! with decimals, the unit one of `ms`, `s`, `m`, `h`, `d`, `w`, `f`
//! (fortnight), in lower or upper case, rounded to whole milliseconds; a
//! duration given to a seconds field is rounded up to whole seconds, as
//! EMQX's `duration_s` does; a size is an integer followed by `B`, `KB`,
//! `MB` or `GB` (lower or upper case; `1KB` is 1024 bytes).

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// What a duration field given `"infinity"` holds, in milliseconds: larger
/// than any wait weir will see, small enough for TOML's signed integers and
/// for the arithmetic of clocks once the sink caps it.
pub(crate) const INFINITY_MS: u64 = i64::MAX as u64;

/// Why a text is not a duration or a size; shown after the field's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UnitError {
    #[error(
        "`{0}` is not a duration: write a number of {1} or EMQX's notation, e.g. `500ms`, `30s`, `1h30m`"
    )]
    Duration(String, &'static str),
    #[error("`{0}` is not a size: write a number of bytes or EMQX's notation, e.g. `1KB`, `256MB`")]
    Size(String),
    #[error("`infinity` is not allowed here")]
    Infinity,
    #[error("{0} is too large")]
    TooLarge(String),
}

/// Milliseconds in `text`, EMQX's duration notation; `None` when it is not
/// one (including `infinity`, which only some fields take).
pub(crate) fn parse_duration_ms(text: &str) -> Option<u64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number.matches('.').count() > 1 || number == "." {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "ms" | "MS" => 1.0,
            "s" | "S" => 1_000.0,
            "m" | "M" => 60_000.0,
            "h" | "H" => 3_600_000.0,
            "d" | "D" => 86_400_000.0,
            "w" | "W" => 604_800_000.0,
            "f" | "F" => 1_209_600_000.0,
            _ => return None,
        };
        total += value * scale;
        rest = next;
    }
    let rounded = total.round();
    // An f64 past 2^64 would saturate silently in the cast.
    (rounded < 1.8e19).then_some(rounded as u64)
}

/// Bytes in `text`, EMQX's size notation; `None` when it is not one.
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim_start();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let scale: u64 = match unit {
        "b" | "B" => 1,
        "kb" | "KB" => 1 << 10,
        "mb" | "MB" => 1 << 20,
        "gb" | "GB" => 1 << 30,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(scale)
}

/// How a field reads numbers, and what else it takes.
#[derive(Clone, Copy)]
enum Kind {
    Millis { infinity: bool },
    Secs,
    Bytes,
}

impl Kind {
    fn read_text(self, text: &str) -> Result<u64, UnitError> {
        if text.trim() == "infinity" && !matches!(self, Kind::Bytes) {
            return match self {
                Kind::Millis { infinity: true } => Ok(INFINITY_MS),
                _ => Err(UnitError::Infinity),
            };
        }
        match self {
            Kind::Millis { .. } => parse_duration_ms(text)
                .ok_or_else(|| UnitError::Duration(text.to_owned(), "milliseconds")),
            Kind::Secs => parse_duration_ms(text)
                .map(|ms| ms.div_ceil(1000))
                .ok_or_else(|| UnitError::Duration(text.to_owned(), "seconds")),
            Kind::Bytes => parse_size(text).ok_or_else(|| UnitError::Size(text.to_owned())),
        }
    }

    fn expecting(self) -> &'static str {
        match self {
            Kind::Millis { infinity: false } => "milliseconds or a duration such as \"30s\"",
            Kind::Millis { infinity: true } => {
                "milliseconds, a duration such as \"30s\", or \"infinity\""
            }
            Kind::Secs => "seconds or a duration such as \"1h\"",
            Kind::Bytes => "bytes or a size such as \"256MB\"",
        }
    }
}

struct UnitVisitor(Kind);

impl Visitor<'_> for UnitVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.expecting())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        self.0.read_text(v).map_err(E::custom)
    }
}

fn deserialize<'de, D, T>(deserializer: D, kind: Kind) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let value = deserializer.deserialize_any(UnitVisitor(kind))?;
    T::try_from(value).map_err(|_| de::Error::custom(UnitError::TooLarge(value.to_string())))
}

/// A duration field in milliseconds.
pub(crate) fn millis<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    deserialize(d, Kind::Millis { infinity: false })
}

/// A duration field in milliseconds that EMQX lets be `infinity`
/// ([`INFINITY_MS`]).
pub(crate) fn millis_or_infinity<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
    d: D,
) -> Result<T, D::Error> {
    deserialize(d, Kind::Millis { infinity: true })
}

/// A duration field in whole seconds.
pub(crate) fn secs<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    deserialize(d, Kind::Secs)
}

/// A size field in bytes.
pub(crate) fn bytes<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    deserialize(d, Kind::Bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_emqx_reads_them() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("1m", 60_000),
            ("1h30m", 5_400_000),
            ("1.5s", 1_500),
            ("2D", 172_800_000),
            ("1w", 604_800_000),
            ("1f", 1_209_600_000),
            ("0.5ms", 1),
            ("15S", 15_000),
            ("500MS", 500),
        ] {
            assert_eq!(parse_duration_ms(text), Some(ms), "{text}");
        }
        for text in ["", "30", "s", "30x", "1.2.3s", "-1s", "30 s", "30sec", ".s"] {
            assert_eq!(parse_duration_ms(text), None, "{text}");
        }
    }

    #[test]
    fn sizes_read_as_emqx_reads_them() {
        for (text, bytes) in [
            ("1KB", 1024),
            ("1kb", 1024),
            ("256MB", 256 << 20),
            ("2GB", 2 << 30),
            ("10B", 10),
        ] {
            assert_eq!(parse_size(text), Some(bytes), "{text}");
        }
        for text in [
            "",
            "1K",
            "1KiB",
            "1.5MB",
            "MB",
            "1Mb",
            "99999999999999999999GB",
        ] {
            assert_eq!(parse_size(text), None, "{text}");
        }
    }

    #[derive(Debug, serde::Deserialize)]
    struct Fields {
        #[serde(default, deserialize_with = "millis")]
        timeout_ms: u64,
        #[serde(default, deserialize_with = "millis_or_infinity")]
        ttl_ms: u64,
        #[serde(default, deserialize_with = "secs")]
        keepalive_secs: u16,
        #[serde(default, deserialize_with = "bytes")]
        buffer_bytes: usize,
    }

    fn read(text: &str) -> Result<Fields, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn fields_take_numbers_in_their_unit_and_emqx_notation() {
        let f =
            read("timeout_ms = 250\nkeepalive_secs = 60\nbuffer_bytes = 4096").expect("numbers");
        assert_eq!(
            (f.timeout_ms, f.keepalive_secs, f.buffer_bytes),
            (250, 60, 4096)
        );
        let f = read(
            "timeout_ms = \"30s\"\nttl_ms = \"infinity\"\nkeepalive_secs = \"1500ms\"\nbuffer_bytes = \"256MB\"",
        )
        .expect("EMQX notation");
        assert_eq!(f.timeout_ms, 30_000);
        assert_eq!(f.ttl_ms, INFINITY_MS);
        assert_eq!(f.keepalive_secs, 2, "rounded up to whole seconds");
        assert_eq!(f.buffer_bytes, 256 << 20);
    }

    #[test]
    fn bad_values_say_what_was_expected() {
        let e = read("timeout_ms = \"30 seconds\"").expect_err("not a duration");
        assert!(e.contains("`30 seconds` is not a duration"), "{e}");
        let e = read("timeout_ms = \"infinity\"").expect_err("no infinity");
        assert!(e.contains("`infinity` is not allowed here"), "{e}");
        let e = read("buffer_bytes = \"1KiB\"").expect_err("not a size");
        assert!(e.contains("`1KiB` is not a size"), "{e}");
        let e = read("keepalive_secs = \"1000h\"").expect_err("too large for u16");
        assert!(e.contains("too large"), "{e}");
        let e = read("timeout_ms = -1").expect_err("negative");
        assert!(e.contains("negative"), "{e}");
        let e = read("timeout_ms = true").expect_err("wrong type");
        assert!(e.contains("milliseconds or a duration"), "{e}");
    }
}
