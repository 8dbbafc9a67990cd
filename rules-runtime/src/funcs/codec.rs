//! Encoding and decoding: base64, hex, JSON, the zlib formats (`gzip`,
//! `zip` for raw deflate, `zip_compress` for zlib, and their inverses) and
//! Erlang's external term format (`term_encode`, `term_decode`; see
//! [`term`]). EMQX's "encoding and decoding" and "compression" functions.
//!
//! Compression uses miniz_oxide at zlib's default level, with the header
//! Erlang's zlib writes (a gzip header with no time and the Unix OS byte),
//! so what weir compresses any inflater reads back; the deflate bytes
//! themselves can differ from zlib's for the same input (they already
//! differ between zlib builds). Decompression fails on truncated or
//! corrupt data, as Erlang's does, and on data that inflates to more than
//! [`MAX_INFLATED`] bytes, which keeps a small payload from filling the
//! sandbox.

mod term;

use super::hash::hex;
use super::{Env, Func, expects};
use crate::json;
use crate::value::{OpError, Value};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::io::{Read, Write};

/// The most bytes decompression gives: well within a rule instance's
/// default memory limit (64 MiB), so that the function fails with its own
/// error before the instance does. Smaller in unit tests, which check the
/// limit without compressing 16 MiB.
const MAX_INFLATED: usize = if cfg!(test) { 1 << 20 } else { 16 << 20 };

pub(super) const FUNCS: &[Func] = &[
    Func {
        name: "base64_encode",
        arity: (1, 1),
        signature: "base64_encode(data)",
        doc: "a binary as base64 text (standard alphabet, padded)",
        call: |a, _| {
            Ok(Value::from(base64_encode(binary_arg(
                "base64_encode",
                &a[0],
            )?)))
        },
    },
    Func {
        name: "base64_decode",
        arity: (1, 1),
        signature: "base64_decode(text)",
        doc: "the binary that base64 text encodes (padding required, whitespace skipped)",
        call: |a, _| base64_decode(binary_arg("base64_decode", &a[0])?).map(Value::binary),
    },
    Func {
        name: "bin2hexstr",
        arity: (1, 2),
        signature: "bin2hexstr(data[, prefix])",
        doc: "a binary as upper-case hex text, after prefix when given (`0x`)",
        call: |a, _| {
            let prefix = match a.get(1) {
                Some(p) => binary_arg("bin2hexstr", p)?,
                None => b"",
            };
            let mut text = prefix.to_vec();
            text.extend_from_slice(hex(binary_arg("bin2hexstr", &a[0])?, true).as_bytes());
            Ok(Value::binary(text))
        },
    },
    Func {
        name: "sqlserver_bin2hexstr",
        arity: (1, 1),
        signature: "sqlserver_bin2hexstr(data)",
        doc: "a binary as SQL Server writes a binary literal: `0x` and upper-case hex",
        call: |a, _| {
            let digits = hex(binary_arg("sqlserver_bin2hexstr", &a[0])?, true);
            Ok(Value::from(format!("0x{digits}")))
        },
    },
    Func {
        name: "hexstr2bin",
        arity: (1, 2),
        signature: "hexstr2bin(text[, prefix])",
        doc: "the binary that hex text (either case) spells, after prefix when given; an odd first digit stands alone",
        call: |a, _| {
            let text = binary_arg("hexstr2bin", &a[0])?;
            let digits = match a.get(1) {
                None => text,
                Some(p) => text
                    .strip_prefix(binary_arg("hexstr2bin", p)?)
                    .ok_or_else(|| {
                        OpError::new("hexstr2bin(): the text does not start with the prefix")
                    })?,
            };
            hexstr2bin(digits).map(Value::binary)
        },
    },
    Func {
        name: "json_encode",
        arity: (1, 1),
        signature: "json_encode(x)",
        doc: "x as JSON text",
        call: |a, _| Ok(Value::from(json::encode(&a[0]))),
    },
    Func {
        name: "json_decode",
        arity: (1, 1),
        signature: "json_decode(text)",
        doc: "the value that JSON text holds",
        call: json_decode,
    },
    Func {
        name: "gzip",
        arity: (1, 1),
        signature: "gzip(data)",
        doc: "a binary compressed in the gzip format",
        call: |a, _| compress("gzip", &a[0], Format::Gzip),
    },
    Func {
        name: "gunzip",
        arity: (1, 1),
        signature: "gunzip(data)",
        doc: "gzip data decompressed",
        call: |a, _| decompress("gunzip", &a[0], Format::Gzip),
    },
    Func {
        name: "zip",
        arity: (1, 1),
        signature: "zip(data)",
        doc: "a binary compressed as raw deflate data (no header, no checksum)",
        call: |a, _| compress("zip", &a[0], Format::Raw),
    },
    Func {
        name: "unzip",
        arity: (1, 1),
        signature: "unzip(data)",
        doc: "raw deflate data decompressed",
        call: |a, _| decompress("unzip", &a[0], Format::Raw),
    },
    Func {
        name: "zip_compress",
        arity: (1, 1),
        signature: "zip_compress(data)",
        doc: "a binary compressed in the zlib format (header and checksum)",
        call: |a, _| compress("zip_compress", &a[0], Format::Zlib),
    },
    Func {
        name: "zip_uncompress",
        arity: (1, 1),
        signature: "zip_uncompress(data)",
        doc: "zlib data decompressed",
        call: |a, _| decompress("zip_uncompress", &a[0], Format::Zlib),
    },
    Func {
        name: "term_encode",
        arity: (1, 1),
        signature: "term_encode(x)",
        doc: "x in Erlang's external term format, as term_to_binary writes it",
        call: |a, _| Ok(Value::binary(term::encode(&a[0]))),
    },
    Func {
        name: "term_decode",
        arity: (1, 1),
        signature: "term_decode(data)",
        doc: "the value of a binary in Erlang's external term format (numbers, binaries, lists, maps, atoms)",
        call: |a, _| term::decode(binary_arg("term_decode", &a[0])?),
    },
];

/// The bytes of a binary argument (EMQX's `is_binary` guard).
pub(super) fn binary_arg<'v>(f: &str, v: &'v Value) -> Result<&'v [u8], OpError> {
    v.as_binary().ok_or_else(|| expects(f, "a binary", v))
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// RFC 4648 base64, standard alphabet, padded (Erlang's `base64:encode`).
fn base64_encode(data: &[u8]) -> String {
    let symbol = |sextet: u32| char::from(BASE64[(sextet & 63) as usize]);
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let [a, b, c] = [0, 1, 2].map(|i| u32::from(chunk.get(i).copied().unwrap_or(0)));
        let group = (a << 16) | (b << 8) | c;
        out.push(symbol(group >> 18));
        out.push(symbol(group >> 12));
        out.push(if chunk.len() > 1 {
            symbol(group >> 6)
        } else {
            '='
        });
        out.push(if chunk.len() > 2 { symbol(group) } else { '=' });
    }
    out
}

/// Erlang's `base64:decode`: the standard alphabet in groups of four, the
/// last padded with `=`; whitespace (space, tab, CR, LF) is skipped
/// anywhere, and nothing else may follow the padding. Unused bits of the
/// last symbol are not checked.
fn base64_decode(text: &[u8]) -> Result<Vec<u8>, OpError> {
    const PAD: u8 = 64;
    let bad = |why: &str| OpError(format!("base64_decode(): {why}").into());
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut group = [0u8; 4];
    let mut filled = 0;
    let mut ended = false;
    for &c in text {
        let sextet = match c {
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => PAD,
            _ => {
                return Err(bad(&format!(
                    "`{}` is not a base64 character",
                    char::from(c).escape_default()
                )));
            }
        };
        if ended {
            return Err(bad("there is more after the padding"));
        }
        group[filled] = sextet;
        filled += 1;
        if filled < 4 {
            continue;
        }
        filled = 0;
        let [a, b, c, d] = group.map(u32::from);
        if a == 64 || b == 64 || (c == 64 && d != 64) {
            return Err(bad("misplaced padding"));
        }
        let bits = (a << 18) | (b << 12) | ((c & 63) << 6) | (d & 63);
        out.push((bits >> 16) as u8);
        if c != 64 {
            out.push((bits >> 8) as u8);
        }
        if d != 64 {
            out.push(bits as u8);
        } else {
            ended = true;
        }
    }
    if filled != 0 {
        return Err(bad("the text is not padded to a multiple of 4 characters"));
    }
    Ok(out)
}

/// EMQX's `hexstr_to_bin`: pairs of hex digits of either case, an odd
/// first digit making a byte of its own (`"a"` is `<<10>>`).
fn hexstr2bin(text: &[u8]) -> Result<Vec<u8>, OpError> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(OpError(
            format!(
                "hexstr2bin(): `{}` is not a hex digit",
                char::from(c).escape_default()
            )
            .into(),
        )),
    };
    let (head, pairs) = text.split_at(text.len() % 2);
    let mut out = Vec::with_capacity(text.len().div_ceil(2));
    for &c in head {
        out.push(digit(c)?);
    }
    for pair in pairs.chunks_exact(2) {
        if let [hi, lo] = pair {
            out.push(digit(*hi)? << 4 | digit(*lo)?);
        }
    }
    Ok(out)
}

fn json_decode(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let text = binary_arg("json_decode", &a[0])?;
    json::decode(text).map_err(|e| OpError(format!("json_decode(): {e}").into()))
}

#[derive(Clone, Copy)]
enum Format {
    /// RFC 1952.
    Gzip,
    /// RFC 1951, no header or checksum.
    Raw,
    /// RFC 1950.
    Zlib,
}

fn compress(f: &str, v: &Value, format: Format) -> Result<Value, OpError> {
    let data = binary_arg(f, v)?;
    let out = match format {
        Format::Gzip => {
            // Erlang's zlib writes no name and no time, and its OS byte is
            // Unix (3).
            let mut w = flate2::GzBuilder::new()
                .operating_system(3)
                .write(Vec::new(), Compression::default());
            w.write_all(data).and_then(|()| w.finish())
        }
        Format::Raw | Format::Zlib => {
            let mut c = Compress::new(Compression::default(), matches!(format, Format::Zlib));
            let mut out = Vec::with_capacity(data.len() / 2 + 64);
            loop {
                let done = c.total_in() as usize;
                let status = c
                    .compress_vec(
                        data.get(done..).unwrap_or_default(),
                        &mut out,
                        FlushCompress::Finish,
                    )
                    .map_err(std::io::Error::other);
                match status {
                    Ok(Status::StreamEnd) => break Ok(out),
                    Ok(_) => out.reserve(out.capacity().max(64)),
                    Err(e) => break Err(e),
                }
            }
        }
    };
    out.map(Value::binary)
        .map_err(|e| OpError(format!("{f}(): {e}").into()))
}

fn decompress(f: &str, v: &Value, format: Format) -> Result<Value, OpError> {
    let data = binary_arg(f, v)?;
    let fail = |why: &str| OpError(format!("{f}(): {why}").into());
    let out = match format {
        Format::Gzip => {
            // Members after the first are read too, as `gzip -d` does.
            let mut out = Vec::new();
            flate2::bufread::MultiGzDecoder::new(data)
                .take(MAX_INFLATED as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| fail(&format!("the data is not gzip data ({e})")))?;
            out
        }
        Format::Raw | Format::Zlib => {
            inflate(data, matches!(format, Format::Zlib)).map_err(|e| fail(&e))?
        }
    };
    if out.len() > MAX_INFLATED {
        return Err(fail(&format!(
            "the data inflates to more than {MAX_INFLATED} bytes"
        )));
    }
    Ok(Value::binary(out))
}

/// Raw deflate or zlib data, which must end within `data` (what follows
/// the end is ignored, as zlib does).
fn inflate(data: &[u8], zlib: bool) -> Result<Vec<u8>, String> {
    let what = if zlib { "zlib" } else { "deflate" };
    let mut d = Decompress::new(zlib);
    let mut out = Vec::with_capacity((data.len() * 3).min(MAX_INFLATED) + 64);
    loop {
        let (was_in, was_out) = (d.total_in(), d.total_out());
        let rest = data.get(was_in as usize..).unwrap_or_default();
        let status = d
            // Not `Finish`: miniz_oxide takes that to mean the output fits.
            .decompress_vec(rest, &mut out, FlushDecompress::None)
            .map_err(|e| format!("the data is not {what} data ({e})"))?;
        if status == Status::StreamEnd {
            return Ok(out);
        }
        if out.len() > MAX_INFLATED {
            return Err(format!(
                "the data inflates to more than {MAX_INFLATED} bytes"
            ));
        }
        if out.len() < out.capacity() {
            if (d.total_in(), d.total_out()) == (was_in, was_out) {
                return Err(format!("the {what} data is truncated"));
            }
        } else {
            // Grow, but not past the limit (and so not past the memory).
            let room = MAX_INFLATED + 1 - out.len().min(MAX_INFLATED);
            out.reserve(out.capacity().clamp(1, room));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MAX_INFLATED;
    use crate::funcs::testing::call;
    use crate::value::Value;
    use proptest::prelude::*;

    fn s(text: &str) -> Value {
        Value::str(text)
    }

    fn bin(b: &[u8]) -> Value {
        Value::binary(b.to_vec())
    }

    fn unhex(text: &str) -> Value {
        call("hexstr2bin", &[s(text)]).expect("hex")
    }

    #[test]
    fn base64_is_rfc_4648_as_erlang_reads_it() {
        // The documentation's example, then RFC 4648's vectors.
        assert_eq!(
            call("base64_encode", &[s("some val")]),
            Ok(s("c29tZSB2YWw="))
        );
        assert_eq!(
            call("base64_decode", &[s("c29tZSB2YWw=")]),
            Ok(s("some val"))
        );
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(call("base64_encode", &[s(plain)]), Ok(s(encoded)));
            assert_eq!(call("base64_decode", &[s(encoded)]), Ok(s(plain)));
        }
        assert_eq!(call("base64_encode", &[bin(&[0xfb, 0xff])]), Ok(s("+/8=")));
        // Whitespace is skipped anywhere, and the unused bits of the last
        // symbol are not checked.
        assert_eq!(
            call("base64_decode", &[s(" Zm9v\r\nYm Fy\t")]),
            Ok(s("foobar"))
        );
        assert_eq!(call("base64_decode", &[s("Zg= = \n")]), Ok(s("f")));
        assert_eq!(call("base64_decode", &[s("Zh==")]), Ok(s("f")));
        assert_eq!(call("base64_decode", &[s("+/8=")]), Ok(bin(&[0xfb, 0xff])));
        for bad in [
            "Zg", "Zg=", "Zm9vY", "Z===", "=Zg=", "Zm=v", "Zg==Zg==", "Zg==x", "Zm9v!", "Zm9-",
            "Zm9_",
        ] {
            assert!(call("base64_decode", &[s(bad)]).is_err(), "{bad}");
        }
        assert!(call("base64_encode", &[Value::Int(1)]).is_err());
        assert!(call("base64_decode", &[Value::Undefined]).is_err());
    }

    #[test]
    fn hex_text() {
        // t_hexstr2bin: an odd first digit makes a byte of its own.
        let cases: &[(&str, &[u8])] = &[
            ("6364f", &[6, 54, 79]),
            ("a", &[10]),
            ("f", &[15]),
            ("5", &[5]),
            ("0102", &[1, 2]),
            ("1121", &[17, 33]),
            ("aBcD", &[0xab, 0xcd]),
            ("", &[]),
        ];
        for (text, bytes) in cases {
            assert_eq!(call("hexstr2bin", &[s(text)]), Ok(bin(bytes)), "{text}");
        }
        // t_bin2hexstr
        assert_eq!(call("bin2hexstr", &[bin(&[1, 2])]), Ok(s("0102")));
        assert_eq!(call("bin2hexstr", &[bin(&[17, 33])]), Ok(s("1121")));
        assert_eq!(call("bin2hexstr", &[bin(&[0xab, 0xff])]), Ok(s("ABFF")));
        // The documentation's bin2hexstr(hexstr2bin('ABEF123')) is '0ABEF123'
        // by the code (it says 'ABEF123').
        assert_eq!(call("bin2hexstr", &[unhex("ABEF123")]), Ok(s("0ABEF123")));
        assert_eq!(
            call("bin2hexstr", &[bin(&[1, 2]), s("0x")]),
            Ok(s("0x0102"))
        );
        assert_eq!(
            call("sqlserver_bin2hexstr", &[bin(&[17, 33])]),
            Ok(s("0x1121"))
        );
        assert_eq!(
            call("hexstr2bin", &[s("0x6364f"), s("0x")]),
            Ok(bin(&[6, 54, 79]))
        );
        assert!(call("hexstr2bin", &[s("0x6364f"), s("ab")]).is_err());
        let err = call("hexstr2bin", &[s("0g")]).expect_err("not hex");
        assert_eq!(err.0, "hexstr2bin(): `g` is not a hex digit");
        assert!(call("hexstr2bin", &[s("0x12")]).is_err());
        assert!(call("hexstr2bin", &[Value::Int(12)]).is_err());
        assert!(call("bin2hexstr", &[Value::Int(12)]).is_err());
    }

    proptest! {
        // t_hex_convert, t_base64_encode, t_zip_funcs, t_gzip_funcs,
        // t_zip_compress_funcs: each decoder undoes its encoder.
        #[test]
        fn codecs_round_trip(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let v = bin(&data);
            for (encode, decode) in [
                ("bin2hexstr", "hexstr2bin"),
                ("base64_encode", "base64_decode"),
                ("zip", "unzip"),
                ("gzip", "gunzip"),
                ("zip_compress", "zip_uncompress"),
                ("term_encode", "term_decode"),
            ] {
                let encoded = call(encode, std::slice::from_ref(&v)).expect("encodes");
                prop_assert_eq!(call(decode, &[encoded]), Ok(v.clone()), "{}", encode);
            }
        }
    }

    #[test]
    fn json() {
        // The documentation's example.
        let decoded = call("json_decode", &[s(r#"{ "a" : 1 }"#)]).expect("JSON");
        assert_eq!(call("json_encode", &[decoded]), Ok(s(r#"{"a":1}"#)));
        assert_eq!(call("json_encode", &[s("abc")]), Ok(s(r#""abc""#)));
        assert_eq!(call("json_encode", &[Value::Float(1.0)]), Ok(s("1.0")));
        assert_eq!(
            call("json_decode", &[s("[1, 2.5, null]")]),
            Ok(Value::array(vec![
                Value::Int(1),
                Value::Float(2.5),
                Value::Null
            ]))
        );
        assert_eq!(
            call("json_decode", &[s("123456789012345678901234567890")]),
            Ok(Value::from_big(
                "123456789012345678901234567890".parse().expect("big")
            ))
        );
        let err = call("json_decode", &[s("{")]).expect_err("not JSON");
        assert_eq!(err.0, "json_decode(): not valid JSON (at byte 1)");
        assert!(call("json_decode", &[Value::Int(1)]).is_err());
    }

    #[test]
    fn compression_formats() {
        // The documentation's examples: Erlang's zlib output for
        // "hello world", which weir both reads and writes.
        let cases = [
            (
                "gzip",
                "gunzip",
                "1F8B0800000000000003CB48CDC9C95728CF2FCA49010085114A0D0B000000",
            ),
            ("zip", "unzip", "CB48CDC9C95728CF2FCA490100"),
            (
                "zip_compress",
                "zip_uncompress",
                "789CCB48CDC9C95728CF2FCA4901001A0B045D",
            ),
        ];
        for (encode, decode, hex) in cases {
            assert_eq!(
                call(decode, &[unhex(hex)]),
                Ok(s("hello world")),
                "{decode}"
            );
            let encoded = call(encode, &[s("hello world")]).expect("compresses");
            assert_eq!(call("bin2hexstr", &[encoded]), Ok(s(hex)), "{encode}");
        }
        // Concatenated gzip members are all read.
        let mut two = call("gzip", &[s("ab")])
            .expect("gzip")
            .as_binary()
            .expect("binary")
            .to_vec();
        two.extend_from_slice(
            call("gzip", &[s("cd")])
                .expect("gzip")
                .as_binary()
                .expect("binary"),
        );
        assert_eq!(call("gunzip", &[bin(&two)]), Ok(s("abcd")));
        // What follows the end of a zlib stream is ignored, as by zlib.
        let mut z = unhex("789CCB48CDC9C95728CF2FCA4901001A0B045D")
            .as_binary()
            .expect("binary")
            .to_vec();
        z.extend_from_slice(b"tail");
        assert_eq!(call("zip_uncompress", &[bin(&z)]), Ok(s("hello world")));
    }

    #[test]
    fn decompression_fails_on_bad_data() {
        let gz = "1F8B0800000000000003CB48CDC9C95728CF2FCA49010085114A0D0B000000";
        let cases = [
            ("gunzip", &gz[..gz.len() - 8]),
            (
                "gunzip",
                "1F8B0800000000000003CB48CDC9C95728CF2FCA49010085114A0D0B000001",
            ),
            ("gunzip", "789CCB48CDC9C95728CF2FCA4901001A0B045D"),
            ("unzip", "CB48CDC9C95728CF2F"),
            ("unzip", "FFFFFFFF"),
            ("zip_uncompress", "789CCB48CDC9C95728CF2FCA4901001A0B045E"),
            ("zip_uncompress", "789CCB48CDC9"),
            ("zip_uncompress", ""),
        ];
        for (f, hex) in cases {
            assert!(call(f, &[unhex(hex)]).is_err(), "{f}({hex})");
        }
        let err = call("unzip", &[unhex("CB48CDC9C95728CF2F")]).expect_err("truncated");
        assert_eq!(err.0, "unzip(): the deflate data is truncated");
        for f in [
            "gzip",
            "gunzip",
            "zip",
            "unzip",
            "zip_compress",
            "zip_uncompress",
        ] {
            assert!(call(f, &[Value::Int(1)]).is_err(), "{f}");
        }
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        let zeros = bin(&vec![0; MAX_INFLATED + 1]);
        for (encode, decode) in [
            ("zip", "unzip"),
            ("gzip", "gunzip"),
            ("zip_compress", "zip_uncompress"),
        ] {
            let bomb = call(encode, std::slice::from_ref(&zeros)).expect("compresses");
            let err = call(decode, &[bomb]).expect_err("too large");
            assert!(err.0.contains("inflates to more than"), "{decode}: {err}");
        }
    }
}
