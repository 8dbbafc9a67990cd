//! Erlang's external term format for the values a rule has: what
//! `term_to_binary` writes for them (as OTP 26, which EMQX 5.8 runs on,
//! does by default) and what `binary_to_term` reads back.
//!
//! Encoding covers every value: integers (small, 32-bit, big), floats
//! (`NEW_FLOAT_EXT`), binaries, lists (a list of bytes as `STRING_EXT`),
//! maps with binary keys, and the atoms `true`, `false`, `null` and
//! `undefined` (`SMALL_ATOM_UTF8_EXT`). A map is written with its keys in
//! term order, which is what Erlang writes for maps of up to 32 keys; a
//! larger Erlang map is written in its internal hash order instead, so its
//! bytes differ (the decoded map is the same).
//!
//! Decoding takes those terms in any of their encodings (old `FLOAT_EXT`,
//! Latin-1 atoms, compressed terms), and refuses what rules have no value
//! for: tuples, pids, ports, references, funs, bitstrings that are not
//! whole bytes, improper lists, and map keys other than binaries (UTF-8)
//! and atoms. An atom other than the four above becomes its name as text,
//! and an atom map key the binary key of that name, which is how EMQX's
//! rules read them anyway (paths find atom keys by name, and JSON writes
//! atoms as strings). Trailing bytes after the term are refused, as by
//! `binary_to_term/1`.

use super::inflate;
use crate::value::{Map, OpError, Value};
use num_bigint::{BigInt, Sign};

const VERSION: u8 = 131;
const COMPRESSED: u8 = 80;
const NEW_FLOAT_EXT: u8 = 70;
const BIT_BINARY_EXT: u8 = 77;
const FLOAT_EXT: u8 = 99;
const SMALL_INTEGER_EXT: u8 = 97;
const INTEGER_EXT: u8 = 98;
const ATOM_EXT: u8 = 100;
const NIL_EXT: u8 = 106;
const STRING_EXT: u8 = 107;
const LIST_EXT: u8 = 108;
const BINARY_EXT: u8 = 109;
const SMALL_BIG_EXT: u8 = 110;
const LARGE_BIG_EXT: u8 = 111;
const SMALL_ATOM_EXT: u8 = 115;
const MAP_EXT: u8 = 116;
const ATOM_UTF8_EXT: u8 = 118;
const SMALL_ATOM_UTF8_EXT: u8 = 119;

/// Deepest nesting decoded, as for JSON.
const MAX_DEPTH: usize = 128;

/// `term_to_binary(V)`.
pub(super) fn encode(v: &Value) -> Vec<u8> {
    let mut out = vec![VERSION];
    encode_into(&mut out, v);
    out
}

fn encode_into(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Undefined | Value::Null | Value::Bool(_) => {
            let name = v.atom_name().unwrap_or_default();
            out.push(SMALL_ATOM_UTF8_EXT);
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
        }
        Value::Int(n @ 0..=255) => {
            out.push(SMALL_INTEGER_EXT);
            out.push(*n as u8);
        }
        Value::Int(n) => match i32::try_from(*n) {
            Ok(small) => {
                out.push(INTEGER_EXT);
                out.extend_from_slice(&small.to_be_bytes());
            }
            Err(_) => encode_big(out, &BigInt::from(*n)),
        },
        Value::Big(b) => encode_big(out, b),
        Value::Float(x) => {
            out.push(NEW_FLOAT_EXT);
            out.extend_from_slice(&x.to_bits().to_be_bytes());
        }
        Value::Str(_) | Value::Bytes(_) => encode_binary(out, v.as_binary().unwrap_or_default()),
        Value::Array(items) if items.is_empty() => out.push(NIL_EXT),
        Value::Array(items) => {
            let bytes: Option<Vec<u8>> = items
                .iter()
                .map(|item| match item {
                    Value::Int(b @ 0..=255) => Some(*b as u8),
                    _ => None,
                })
                .collect();
            match bytes {
                Some(bytes) if bytes.len() <= usize::from(u16::MAX) => {
                    out.push(STRING_EXT);
                    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
                    out.extend_from_slice(&bytes);
                }
                _ => {
                    out.push(LIST_EXT);
                    out.extend_from_slice(&(items.len() as u32).to_be_bytes());
                    for item in items.iter() {
                        encode_into(out, item);
                    }
                    out.push(NIL_EXT);
                }
            }
        }
        Value::Object(map) => {
            out.push(MAP_EXT);
            out.extend_from_slice(&(map.len() as u32).to_be_bytes());
            for (k, item) in map.iter() {
                encode_binary(out, k.as_bytes());
                encode_into(out, item);
            }
        }
    }
}

fn encode_binary(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(BINARY_EXT);
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn encode_big(out: &mut Vec<u8>, n: &BigInt) {
    let (sign, digits) = n.to_bytes_le();
    match u8::try_from(digits.len()) {
        Ok(len) => out.extend_from_slice(&[SMALL_BIG_EXT, len]),
        Err(_) => {
            out.push(LARGE_BIG_EXT);
            out.extend_from_slice(&(digits.len() as u32).to_be_bytes());
        }
    }
    out.push(u8::from(sign == Sign::Minus));
    out.extend_from_slice(&digits);
}

/// `binary_to_term(Data)` for the terms rules have values for.
pub(super) fn decode(data: &[u8]) -> Result<Value, OpError> {
    let body = match data {
        [VERSION, COMPRESSED, rest @ ..] => {
            let mut r = Reader { b: rest, pos: 0 };
            let size = r.u32()? as usize;
            let inflated =
                inflate(r.rest(), true).map_err(|e| fail(&format!("the compressed term: {e}")))?;
            if inflated.len() != size {
                return Err(fail("the compressed term is not the size it says"));
            }
            std::borrow::Cow::Owned(inflated)
        }
        [VERSION, rest @ ..] => std::borrow::Cow::Borrowed(rest),
        _ => {
            return Err(fail(
                "the data does not start with the format's version byte (131)",
            ));
        }
    };
    let mut r = Reader { b: &body, pos: 0 };
    let v = r.term(0)?;
    if r.pos != body.len() {
        return Err(fail("there are bytes after the term"));
    }
    Ok(v)
}

fn fail(why: &str) -> OpError {
    OpError(format!("term_decode(): {why}").into())
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], OpError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        match end.and_then(|e| self.b.get(self.pos..e)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(fail("the data ends inside a term")),
        }
    }

    fn rest(&self) -> &'a [u8] {
        self.b.get(self.pos..).unwrap_or_default()
    }

    fn u8(&mut self) -> Result<u8, OpError> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }

    fn u16(&mut self) -> Result<u16, OpError> {
        let mut b = [0; 2];
        b.copy_from_slice(self.take(2)?);
        Ok(u16::from_be_bytes(b))
    }

    fn u32(&mut self) -> Result<u32, OpError> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    /// A count of items that each take at least a byte: more than the
    /// bytes left cannot be right.
    fn count(&mut self, n: usize) -> Result<usize, OpError> {
        if n > self.b.len() - self.pos {
            return Err(fail("the data ends inside a term"));
        }
        Ok(n)
    }

    fn term(&mut self, depth: usize) -> Result<Value, OpError> {
        if depth > MAX_DEPTH {
            return Err(fail(&format!(
                "the term nests deeper than {MAX_DEPTH} levels"
            )));
        }
        let tag = self.u8()?;
        match tag {
            SMALL_INTEGER_EXT => Ok(Value::Int(i64::from(self.u8()?))),
            INTEGER_EXT => Ok(Value::Int(i64::from(self.u32()? as i32))),
            SMALL_BIG_EXT => {
                let n = usize::from(self.u8()?);
                self.big(n)
            }
            LARGE_BIG_EXT => {
                let n = self.u32()? as usize;
                self.big(n)
            }
            NEW_FLOAT_EXT => {
                let mut b = [0; 8];
                b.copy_from_slice(self.take(8)?);
                Value::float(f64::from_be_bytes(b)).map_err(|_| fail("the float is not finite"))
            }
            FLOAT_EXT => {
                let text = self.take(31)?;
                std::str::from_utf8(text)
                    .ok()
                    .and_then(|t| t.trim_end_matches('\0').trim().parse::<f64>().ok())
                    .filter(|x| x.is_finite())
                    .map(Value::Float)
                    .ok_or_else(|| fail("the float text is not a number"))
            }
            ATOM_EXT | ATOM_UTF8_EXT => {
                let n = usize::from(self.u16()?);
                self.atom(n, tag == ATOM_UTF8_EXT)
            }
            SMALL_ATOM_EXT | SMALL_ATOM_UTF8_EXT => {
                let n = usize::from(self.u8()?);
                self.atom(n, tag == SMALL_ATOM_UTF8_EXT)
            }
            BINARY_EXT => {
                let n = self.u32()? as usize;
                Ok(Value::binary(self.take(n)?.to_vec()))
            }
            BIT_BINARY_EXT => {
                let n = self.u32()? as usize;
                let bits = self.u8()?;
                let bytes = self.take(n)?;
                if bits != 8 && n > 0 {
                    return Err(fail(
                        "the term holds a bitstring that is not whole bytes, which rules have no value for",
                    ));
                }
                Ok(Value::binary(bytes.to_vec()))
            }
            NIL_EXT => Ok(Value::array(Vec::new())),
            STRING_EXT => {
                let n = usize::from(self.u16()?);
                let bytes = self.take(n)?;
                Ok(Value::array(
                    bytes.iter().map(|&b| Value::Int(i64::from(b))).collect(),
                ))
            }
            LIST_EXT => {
                let n = self.u32()? as usize;
                let n = self.count(n)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.term(depth + 1)?);
                }
                if self.u8()? != NIL_EXT {
                    return Err(fail(
                        "the term holds an improper list, which rules have no value for",
                    ));
                }
                Ok(Value::array(items))
            }
            MAP_EXT => {
                let n = self.u32()? as usize;
                let n = self.count(n)?;
                let mut map = Map::new();
                for _ in 0..n {
                    let key = self.key(depth + 1)?;
                    let item = self.term(depth + 1)?;
                    if map.insert(key, item).is_some() {
                        return Err(fail(
                            "the map has an atom key and a binary key of the same name",
                        ));
                    }
                }
                Ok(Value::object(map))
            }
            other => Err(fail(&format!(
                "the term holds {}, which rules have no value for",
                refused(other)
            ))),
        }
    }

    fn big(&mut self, n: usize) -> Result<Value, OpError> {
        let sign = self.u8()?;
        let digits = self.take(n)?;
        let sign = if sign == 0 { Sign::Plus } else { Sign::Minus };
        Ok(Value::from_big(BigInt::from_bytes_le(sign, digits)))
    }

    /// An atom: `true`, `false`, `null`, `undefined`, or its name as text.
    fn atom(&mut self, n: usize, utf8: bool) -> Result<Value, OpError> {
        let name = self.atom_name(n, utf8)?;
        Ok(match name.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            "undefined" => Value::Undefined,
            _ => Value::from(name),
        })
    }

    fn atom_name(&mut self, n: usize, utf8: bool) -> Result<String, OpError> {
        let bytes = self.take(n)?;
        if utf8 {
            String::from_utf8(bytes.to_vec()).map_err(|_| fail("an atom's name is not UTF-8"))
        } else {
            // Latin-1.
            Ok(bytes.iter().map(|&b| char::from(b)).collect())
        }
    }

    /// A map key: a binary that is UTF-8 text, or an atom (by name).
    fn key(&mut self, depth: usize) -> Result<String, OpError> {
        let tag = self.b.get(self.pos).copied();
        match tag {
            Some(ATOM_EXT | ATOM_UTF8_EXT | SMALL_ATOM_EXT | SMALL_ATOM_UTF8_EXT) => {
                self.pos += 1;
                let n = match tag {
                    Some(ATOM_EXT | ATOM_UTF8_EXT) => usize::from(self.u16()?),
                    _ => usize::from(self.u8()?),
                };
                self.atom_name(n, matches!(tag, Some(ATOM_UTF8_EXT | SMALL_ATOM_UTF8_EXT)))
            }
            _ => match self.term(depth)? {
                Value::Str(s) => Ok(s.to_string()),
                other => Err(fail(&format!(
                    "a map key is {}; rules take text keys only",
                    match other {
                        Value::Bytes(_) => "binary data that is not UTF-8",
                        _ => other.kind(),
                    }
                ))),
            },
        }
    }
}

/// What a tag that rules have no value for stands for.
fn refused(tag: u8) -> String {
    match tag {
        104 | 105 => "a tuple".into(),
        88 | 103 => "a pid".into(),
        89 | 102 | 120 => "a port".into(),
        90 | 101 | 114 => "a reference".into(),
        112 | 117 => "a fun".into(),
        113 => "an external fun".into(),
        68 | 82 => "an atom cache reference (a distribution header)".into(),
        other => format!("an unknown tag ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use crate::funcs::testing::call;
    use crate::value::{Map, Value};
    use num_bigint::BigInt;

    fn bin(b: &[u8]) -> Value {
        Value::binary(b.to_vec())
    }

    fn encode(v: Value) -> Vec<u8> {
        call("term_encode", &[v])
            .expect("encodes")
            .as_binary()
            .expect("a binary")
            .to_vec()
    }

    fn decode(b: &[u8]) -> Result<Value, crate::value::OpError> {
        call("term_decode", &[bin(b)])
    }

    fn object(pairs: &[(&str, Value)]) -> Value {
        Value::object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<Map>(),
        )
    }

    #[test]
    fn encodes_as_term_to_binary() {
        // term_to_binary/1 of OTP 26 for each kind of value.
        let big = |text: &str| Value::from_big(text.parse::<BigInt>().expect("big"));
        let cases: Vec<(Value, Vec<u8>)> = vec![
            (Value::str("abc"), vec![131, 109, 0, 0, 0, 3, 97, 98, 99]),
            (Value::Int(1), vec![131, 97, 1]),
            (Value::Int(256), vec![131, 98, 0, 0, 1, 0]),
            (Value::Int(-1), vec![131, 98, 255, 255, 255, 255]),
            (Value::Int(1 << 40), vec![131, 110, 6, 0, 0, 0, 0, 0, 0, 1]),
            (
                big("-18446744073709551616"),
                vec![131, 110, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            ),
            (Value::Float(1.5), vec![131, 70, 63, 248, 0, 0, 0, 0, 0, 0]),
            (Value::Bool(true), b"\x83\x77\x04true".to_vec()),
            (Value::Null, b"\x83\x77\x04null".to_vec()),
            (Value::Undefined, b"\x83\x77\x09undefined".to_vec()),
            (Value::array(vec![]), vec![131, 106]),
            (
                Value::array(vec![Value::Int(1), Value::Int(2), Value::Int(4)]),
                vec![131, 107, 0, 3, 1, 2, 4],
            ),
            (
                Value::array(vec![Value::Int(1), Value::str("a")]),
                vec![131, 108, 0, 0, 0, 2, 97, 1, 109, 0, 0, 0, 1, 97, 106],
            ),
            (
                object(&[("b", Value::Int(2)), ("a", Value::Int(1))]),
                vec![
                    131, 116, 0, 0, 0, 2, 109, 0, 0, 0, 1, 97, 97, 1, 109, 0, 0, 0, 1, 98, 97, 2,
                ],
            ),
        ];
        for (v, want) in cases {
            assert_eq!(encode(v.clone()), want, "{v:?}");
            assert_eq!(decode(&want), Ok(v));
        }
        // A large big integer (LARGE_BIG_EXT) reads back.
        let huge = Value::from_big(BigInt::from(7) << 3000u32);
        assert_eq!(encode(huge.clone()).get(1), Some(&111));
        assert_eq!(decode(&encode(huge.clone())), Ok(huge));
    }

    #[test]
    fn round_trips_what_the_suite_round_trips() {
        // t_term_encode: <<"abc">>, #{a => 1} (atom keys are text keys
        // here), #{<<"3">> => [1, 2, 4]}.
        let list = Value::array(vec![Value::Int(1), Value::Int(2), Value::Int(4)]);
        for v in [
            Value::str("abc"),
            object(&[("a", Value::Int(1))]),
            object(&[("3", list)]),
        ] {
            assert_eq!(decode(&encode(v.clone())), Ok(v));
        }
    }

    #[test]
    fn decodes_the_other_encodings_erlang_writes() {
        // #{a => 1} from OTP 26 (SMALL_ATOM_UTF8_EXT key) and OTP 25
        // (ATOM_EXT key).
        let a1 = object(&[("a", Value::Int(1))]);
        assert_eq!(
            decode(&[131, 116, 0, 0, 0, 1, 119, 1, 97, 97, 1]),
            Ok(a1.clone())
        );
        assert_eq!(
            decode(&[131, 116, 0, 0, 0, 1, 100, 0, 1, 97, 97, 1]),
            Ok(a1)
        );
        // An atom other than true/false/null/undefined is its name; Latin-1
        // atoms are converted.
        assert_eq!(decode(b"\x83\x77\x02ok"), Ok(Value::str("ok")));
        assert_eq!(decode(&[131, 115, 1, 0xe9]), Ok(Value::str("é")));
        assert_eq!(decode(b"\x83\x64\x00\x05false"), Ok(Value::Bool(false)));
        // FLOAT_EXT (minor version 0).
        let mut old = vec![131, 99];
        let mut text = b"1.50000000000000000000e+00".to_vec();
        text.resize(31, 0);
        old.extend_from_slice(&text);
        assert_eq!(decode(&old), Ok(Value::Float(1.5)));
        // A BIT_BINARY_EXT of whole bytes.
        assert_eq!(decode(&[131, 77, 0, 0, 0, 1, 8, 65]), Ok(Value::str("A")));
        // term_to_binary(Term, [compressed]).
        let body = encode(Value::array(vec![Value::str("x"); 50]));
        let zipped = call("zip_compress", &[bin(&body[1..])]).expect("compresses");
        let mut compressed = vec![131, 80];
        compressed.extend_from_slice(&((body.len() - 1) as u32).to_be_bytes());
        compressed.extend_from_slice(zipped.as_binary().expect("binary"));
        assert_eq!(
            decode(&compressed),
            Ok(Value::array(vec![Value::str("x"); 50]))
        );
    }

    #[test]
    fn refuses_what_rules_have_no_value_for() {
        let cases: &[(&[u8], &str)] = &[
            (&[131, 104, 2, 97, 1, 97, 2], "the term holds a tuple"),
            (
                &[131, 88, 119, 1, 97, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
                "the term holds a pid",
            ),
            (&[131, 108, 0, 0, 0, 1, 97, 1, 97, 2], "an improper list"),
            (
                &[131, 77, 0, 0, 0, 1, 4, 16],
                "a bitstring that is not whole bytes",
            ),
            (
                &[131, 116, 0, 0, 0, 1, 97, 1, 97, 2],
                "a map key is an integer",
            ),
            (
                &[131, 116, 0, 0, 0, 1, 109, 0, 0, 0, 1, 0xff, 97, 2],
                "a map key is binary data that is not UTF-8",
            ),
            (
                &[
                    131, 116, 0, 0, 0, 2, 119, 1, 97, 97, 1, 109, 0, 0, 0, 1, 97, 97, 2,
                ],
                "an atom key and a binary key of the same name",
            ),
            (
                &[131, 70, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0],
                "the float is not finite",
            ),
            (&[131, 97, 1, 0], "there are bytes after the term"),
            (&[131, 109, 0, 0, 0, 5, 97], "the data ends inside a term"),
            (
                &[131, 108, 0xff, 0xff, 0xff, 0xff, 106],
                "the data ends inside a term",
            ),
            (&[97, 1], "version byte"),
            (&[], "version byte"),
            (&[131, 80, 0, 0, 0, 9, 1, 2, 3], "the compressed term"),
        ];
        for (data, why) in cases {
            let err = decode(data).expect_err("refused");
            assert!(err.0.contains(why), "{data:?}: {err}");
        }
        let mut deep = vec![131];
        deep.extend(std::iter::repeat_n([108, 0, 0, 0, 1], 200).flatten());
        deep.push(106);
        deep.extend(std::iter::repeat_n(106, 200));
        assert!(
            decode(&deep)
                .expect_err("too deep")
                .0
                .contains("deeper than")
        );
        assert!(call("term_decode", &[Value::Int(1)]).is_err());
    }
}
