//! Bitwise operations on integers (`bitnot`, `bitand`, `bitor`, `bitxor`,
//! `bitsl`, `bitsr`) and bit sequences of binaries (`bitsize`, `bytesize`,
//! `subbits`): EMQX's "bit operation" and "bit sequence" functions.
//!
//! Erlang's integers have no size limit and its bitwise operators work on
//! their two's complement, so `bitsl(1, 100)` is exact and `bitnot(0)` is
//! -1. To keep a rule from exhausting the sandbox, a shift whose result
//! would have more than [`MAX_SHIFT_BITS`] bits fails (Erlang's limit is
//! about a gigabit).
//!
//! `subbits` reads a segment of a binary as Erlang's bit syntax does
//! (`<<_:Begin, X:Len/integer-signed-little, _/bits>>`): an integer of any
//! length, signed or not, big- or little-endian (a little-endian segment
//! whose length is not a multiple of 8 keeps its most significant bits in
//! the last, partial byte), a 16-, 32- or 64-bit float, or the bits
//! themselves. A `bits` segment whose length is not a multiple of 8 is a
//! bitstring that is not a binary, which rules have no value for: it
//! fails, with an error that says to read it as an integer instead (EMQX
//! gives the bitstring, and `bin2hexstr` of it pads it to whole bytes).

use super::{Env, Func, expects};
use crate::value::{OpError, Value};
use num_bigint::{BigInt, BigUint};
use std::borrow::Cow;

/// The most bits a shift may produce.
const MAX_SHIFT_BITS: u64 = 1 << 20;

pub(super) const FUNCS: &[Func] = &[
    Func {
        name: "bitnot",
        arity: (1, 1),
        signature: "bitnot(n)",
        doc: "the bitwise complement of the integer n (-n - 1)",
        call: |a, _| Ok(Int::of("bitnot", &a[0])?.not()),
    },
    Func {
        name: "bitand",
        arity: (2, 2),
        signature: "bitand(x, y)",
        doc: "the bitwise and of two integers",
        call: |a, _| logic("bitand", a, |x, y| x & y, |x, y| x & y),
    },
    Func {
        name: "bitor",
        arity: (2, 2),
        signature: "bitor(x, y)",
        doc: "the bitwise or of two integers",
        call: |a, _| logic("bitor", a, |x, y| x | y, |x, y| x | y),
    },
    Func {
        name: "bitxor",
        arity: (2, 2),
        signature: "bitxor(x, y)",
        doc: "the bitwise exclusive or of two integers",
        call: |a, _| logic("bitxor", a, |x, y| x ^ y, |x, y| x ^ y),
    },
    Func {
        name: "bitsl",
        arity: (2, 2),
        signature: "bitsl(x, n)",
        doc: "x shifted left by n bits (right for a negative n), exactly",
        call: |a, _| shift("bitsl", a, false),
    },
    Func {
        name: "bitsr",
        arity: (2, 2),
        signature: "bitsr(x, n)",
        doc: "x shifted right by n bits, rounding down (left for a negative n)",
        call: |a, _| shift("bitsr", a, true),
    },
    Func {
        name: "bitsize",
        arity: (1, 1),
        signature: "bitsize(bin)",
        doc: "the number of bits of a binary",
        call: bitsize,
    },
    Func {
        name: "bytesize",
        arity: (1, 1),
        signature: "bytesize(data)",
        doc: "the number of bytes of a binary, or of a list of bytes and binaries",
        call: |a, _| Ok(Value::Int(iodata("bytesize", &a[0])?.len() as i64)),
    },
    Func {
        name: "subbits",
        arity: (2, 6),
        signature: "subbits(bin, [start,] len[, type[, signedness[, endianness]]])",
        doc: "len bits of bin from bit start (1-based; default 1) as an integer ('integer', default), a 'float' or 'bits'; 'unsigned' (default) or 'signed'; 'big' (default) or 'little'",
        call: subbits,
    },
];

/// An integer argument.
enum Int {
    Small(i64),
    Big(BigInt),
}

impl Int {
    fn of(f: &str, v: &Value) -> Result<Int, OpError> {
        match v {
            Value::Int(n) => Ok(Int::Small(*n)),
            Value::Big(b) => Ok(Int::Big(b.as_ref().clone())),
            other => Err(expects(f, "an integer", other)),
        }
    }

    fn big(self) -> BigInt {
        match self {
            Int::Small(n) => BigInt::from(n),
            Int::Big(b) => b,
        }
    }

    fn not(self) -> Value {
        match self {
            Int::Small(n) => Value::Int(!n),
            Int::Big(b) => Value::from_big(!b),
        }
    }
}

fn logic(
    f: &str,
    a: &[Value],
    small: fn(i64, i64) -> i64,
    big: fn(BigInt, BigInt) -> BigInt,
) -> Result<Value, OpError> {
    match (Int::of(f, &a[0])?, Int::of(f, &a[1])?) {
        (Int::Small(x), Int::Small(y)) => Ok(Value::Int(small(x, y))),
        (x, y) => Ok(Value::from_big(big(x.big(), y.big()))),
    }
}

/// `x bsl n` (`x bsr n` when `right`): a negative count shifts the other
/// way.
fn shift(f: &str, a: &[Value], right: bool) -> Result<Value, OpError> {
    let x = Int::of(f, &a[0])?;
    let count = Int::of(f, &a[1])?.big();
    let left = if right { -count } else { count };
    let zero = matches!(x, Int::Small(0));
    match i64::try_from(&left) {
        // Right: the sign, or nothing, is all that is left.
        Ok(n) if n < 0 => Ok(shift_right(x, n.unsigned_abs())),
        Err(_) if left.sign() == num_bigint::Sign::Minus => Ok(shift_right(x, u64::MAX)),
        _ if zero => Ok(Value::Int(0)),
        Ok(n) => shift_left(f, x, n.unsigned_abs()),
        Err(_) => Err(too_large(f)),
    }
}

fn shift_right(x: Int, n: u64) -> Value {
    match x {
        Int::Small(v) => Value::Int(v >> n.min(63)),
        Int::Big(b) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if u64::try_from(n).is_ok_and(|n| n >= b.bits()) {
                // Only the sign is left (what `>>` gives, without the work).
                Value::Int(if b.sign() == num_bigint::Sign::Minus {
                    -1
                } else {
                    0
                })
            } else {
                Value::from_big(b >> n)
            }
        }
    }
}

fn shift_left(f: &str, x: Int, n: u64) -> Result<Value, OpError> {
    if let Int::Small(v) = x
        && n < 64
    {
        // |v| < 2^63 and n < 64: the result fits an i128.
        return Ok(Value::from_big(BigInt::from(i128::from(v) << n)));
    }
    let b = x.big();
    if b.bits().saturating_add(n) > MAX_SHIFT_BITS {
        return Err(too_large(f));
    }
    Ok(Value::from_big(b << n))
}

fn too_large(f: &str) -> OpError {
    OpError(format!("{f}(): the result would have more than {MAX_SHIFT_BITS} bits").into())
}

fn bitsize(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    match a[0].as_binary() {
        Some(b) => Ok(Value::Int(b.len() as i64 * 8)),
        None => Err(expects("bitsize", "a binary", &a[0])),
    }
}

/// The bytes of Erlang iodata: a binary, or a list of bytes, binaries and
/// such lists (what `iolist_size` counts and `crypto:hash` hashes).
pub(super) fn iodata<'v>(f: &str, v: &'v Value) -> Result<Cow<'v, [u8]>, OpError> {
    fn flatten(f: &str, items: &[Value], out: &mut Vec<u8>) -> Result<(), OpError> {
        for item in items {
            match item {
                Value::Int(b @ 0..=255) => out.push(*b as u8),
                Value::Str(_) | Value::Bytes(_) => {
                    out.extend_from_slice(item.as_binary().unwrap_or_default())
                }
                Value::Array(inner) => flatten(f, inner, out)?,
                other => {
                    return Err(OpError(
                        format!(
                            "{f}() expects a list of bytes and binaries, but an element is {}",
                            other.kind()
                        )
                        .into(),
                    ));
                }
            }
        }
        Ok(())
    }
    match v {
        Value::Str(_) | Value::Bytes(_) => Ok(Cow::Borrowed(v.as_binary().unwrap_or_default())),
        Value::Array(items) => {
            let mut out = Vec::new();
            flatten(f, items, &mut out)?;
            Ok(Cow::Owned(out))
        }
        other => Err(expects(
            f,
            "a binary or a list of bytes and binaries",
            other,
        )),
    }
}

/// How `subbits` reads a segment.
#[derive(Clone, Copy)]
enum Kind {
    Integer,
    Float,
    Bits,
}

fn subbits(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    const F: &str = "subbits";
    let bytes = a[0]
        .as_binary()
        .ok_or_else(|| expects(F, "a binary", &a[0]))?;
    // subbits(bin, len) starts at the first bit.
    let (start, len) = match a.len() {
        2 => (&Value::Int(1), &a[1]),
        _ => (&a[1], &a[2]),
    };
    for v in [start, len] {
        if !v.is_integer() {
            return Err(expects(F, "an integer start and length", v));
        }
    }
    let total = bytes.len() as u64 * 8;
    // `<<_:Begin, Rest/bits>>` with something left, else undefined.
    let begin = match start.as_i64().and_then(|s| s.checked_sub(1)) {
        Some(b) if b >= 0 && (b as u64) < total => b as u64,
        _ => return Ok(Value::Undefined),
    };
    let kind = choice(
        a,
        3,
        "type",
        &[
            ("integer", Kind::Integer),
            ("float", Kind::Float),
            ("bits", Kind::Bits),
        ],
    )?;
    let signed = choice(a, 4, "signedness", &[("unsigned", false), ("signed", true)])?;
    let little = choice(a, 5, "endianness", &[("big", false), ("little", true)])?;
    let rest = total - begin;
    let segment = |len: u64| Segment {
        bytes,
        start: begin,
        len,
        little,
    };
    // The segment of `len` bits if the rest has them, else the rest
    // (EMQX's second pattern); a float that does not match either fails.
    let wanted = len
        .as_i64()
        .and_then(|l| u64::try_from(l).ok())
        .filter(|&l| l <= rest);
    if let Some(l) = wanted
        && let Some(v) = segment(l).read(kind, signed)?
    {
        return Ok(v);
    }
    segment(rest).read(kind, signed)?.ok_or_else(|| {
        OpError(
            format!(
                "subbits(): {} bits from bit {} are not a 16-, 32- or 64-bit finite float",
                wanted.unwrap_or(rest),
                begin + 1
            )
            .into(),
        )
    })
}

/// Option `i` of `subbits`, one of `allowed` (the first when it is not
/// given).
fn choice<T: Copy>(a: &[Value], i: usize, what: &str, allowed: &[(&str, T)]) -> Result<T, OpError> {
    let Some(v) = a.get(i) else {
        return Ok(allowed[0].1);
    };
    let name = v.as_binary().unwrap_or_default();
    match allowed.iter().find(|(n, _)| n.as_bytes() == name) {
        Some((_, t)) => Ok(*t),
        None => {
            let names: Vec<String> = allowed.iter().map(|(n, _)| format!("'{n}'")).collect();
            Err(expects(
                "subbits",
                &format!("a {what} of {}", names.join(" or ")),
                v,
            ))
        }
    }
}

/// `len` bits of `bytes` from bit `start` (0-based); `start + len` is within
/// the bytes.
struct Segment<'b> {
    bytes: &'b [u8],
    start: u64,
    len: u64,
    little: bool,
}

impl Segment<'_> {
    /// The value as `kind`, or `None` for a float segment that Erlang's
    /// bit syntax does not match (not 16, 32 or 64 bits, or not finite).
    fn read(&self, kind: Kind, signed: bool) -> Result<Option<Value>, OpError> {
        match kind {
            Kind::Integer => {
                let n = BigInt::from(self.unsigned());
                let n = if signed && self.len > 0 && n.bit(self.len - 1) {
                    n - (BigInt::from(1) << self.len)
                } else {
                    n
                };
                Ok(Some(Value::from_big(n)))
            }
            Kind::Float => {
                let bits = u64::try_from(self.unsigned()).unwrap_or(0);
                let x = match self.len {
                    16 => f16_to_f64(bits as u16),
                    32 => f64::from(f32::from_bits(bits as u32)),
                    64 => f64::from_bits(bits),
                    _ => return Ok(None),
                };
                Ok(x.is_finite().then_some(Value::Float(x)))
            }
            Kind::Bits if self.len.is_multiple_of(8) => Ok(Some(Value::binary(self.left_aligned()))),
            Kind::Bits => Err(OpError(
                format!(
                    "subbits(): {} bits are not whole bytes, which rules have no value for; read them as an integer ('integer') instead",
                    self.len
                )
                .into(),
            )),
        }
    }

    /// The bits, first bit first, in whole bytes (the last one padded with
    /// zeros).
    fn left_aligned(&self) -> Vec<u8> {
        let shift = (self.start % 8) as u32;
        let first = (self.start / 8) as usize;
        let n = self.len.div_ceil(8) as usize;
        let at = |i: usize| self.bytes.get(i).copied().unwrap_or(0);
        let mut out: Vec<u8> = (first..first + n)
            .map(|i| {
                if shift == 0 {
                    at(i)
                } else {
                    (at(i) << shift) | (at(i + 1) >> (8 - shift))
                }
            })
            .collect();
        let partial = (self.len % 8) as u32;
        if partial != 0
            && let Some(last) = out.last_mut()
        {
            *last &= 0xff << (8 - partial);
        }
        out
    }

    /// The segment as an unsigned integer: big-endian, or little-endian in
    /// 8-bit chunks from the first bit (a partial last chunk holding the
    /// most significant bits).
    fn unsigned(&self) -> BigUint {
        let mut bytes = self.left_aligned();
        let partial = (self.len % 8) as u32;
        if self.little {
            if partial != 0
                && let Some(last) = bytes.last_mut()
            {
                *last >>= 8 - partial;
            }
            BigUint::from_bytes_le(&bytes)
        } else {
            let padding = if partial == 0 { 0 } else { 8 - partial };
            BigUint::from_bytes_be(&bytes) >> padding
        }
    }
}

/// An IEEE 754 half-precision float.
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits >> 15 == 1 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f64::from(bits & 0x3ff);
    match exponent {
        0 => sign * mantissa * 2f64.powi(-24),
        31 => f64::NAN,
        e => sign * (1024.0 + mantissa) * 2f64.powi(e - 25),
    }
}

#[cfg(test)]
mod tests {
    use crate::funcs::testing::call;
    use crate::value::Value;
    use num_bigint::BigInt;
    use num_integer::Integer;
    use proptest::prelude::*;

    fn i(n: i64) -> Value {
        Value::Int(n)
    }

    fn big(n: BigInt) -> Value {
        Value::from_big(n)
    }

    fn bin(b: &[u8]) -> Value {
        Value::binary(b.to_vec())
    }

    fn s(text: &str) -> Value {
        Value::str(text)
    }

    fn two_pow(n: u32) -> BigInt {
        BigInt::from(1) << n
    }

    #[test]
    fn shifts_are_exact_for_any_size() {
        assert_eq!(call("bitsl", &[i(1), i(100)]), Ok(big(two_pow(100))));
        assert_eq!(call("bitsl", &[i(-1), i(64)]), Ok(big(-two_pow(64))));
        assert_eq!(
            call("bitsl", &[i(i64::MAX), i(1)]),
            Ok(big(BigInt::from(i64::MAX) * 2))
        );
        assert_eq!(call("bitsl", &[i(5), i(-1)]), Ok(i(2)));
        assert_eq!(call("bitsr", &[i(5), i(-2)]), Ok(i(20)));
        // bsr rounds down, like an arithmetic shift.
        assert_eq!(call("bitsr", &[i(-5), i(1)]), Ok(i(-3)));
        assert_eq!(call("bitsr", &[i(-1), i(1000)]), Ok(i(-1)));
        assert_eq!(call("bitsr", &[i(7), i(64)]), Ok(i(0)));
        assert_eq!(call("bitsr", &[big(two_pow(100)), i(99)]), Ok(i(2)));
        assert_eq!(call("bitsr", &[big(-two_pow(100)), i(1000)]), Ok(i(-1)));
        assert_eq!(call("bitsr", &[big(-two_pow(100) - 1), i(100)]), Ok(i(-2)));
        let huge = big(two_pow(80));
        assert_eq!(call("bitsl", &[i(0), huge.clone()]), Ok(i(0)));
        assert_eq!(call("bitsr", &[i(-9), huge.clone()]), Ok(i(-1)));
        assert_eq!(call("bitsl", &[i(9), big(-two_pow(80))]), Ok(i(0)));
        assert!(call("bitsl", &[i(1), huge]).is_err());
        let err = call("bitsl", &[i(1), i(1 << 21)]).expect_err("too many bits");
        assert_eq!(
            err.0,
            "bitsl(): the result would have more than 1048576 bits"
        );
        assert!(call("bitsr", &[i(1), i(i64::MIN)]).is_err());
    }

    #[test]
    fn logic_uses_twos_complement() {
        assert_eq!(call("bitnot", &[i(0)]), Ok(i(-1)));
        assert_eq!(call("bitnot", &[i(i64::MIN)]), Ok(i(i64::MAX)));
        assert_eq!(
            call("bitnot", &[big(two_pow(64))]),
            Ok(big(-two_pow(64) - 1))
        );
        assert_eq!(
            call("bitand", &[i(-1), big(two_pow(70))]),
            Ok(big(two_pow(70)))
        );
        assert_eq!(
            call("bitand", &[big(-two_pow(70)), big(two_pow(70) - 1)]),
            Ok(i(0))
        );
        assert_eq!(call("bitor", &[i(12), i(3)]), Ok(i(15)));
        assert_eq!(
            call("bitxor", &[i(-1), big(two_pow(64))]),
            Ok(big(-two_pow(64) - 1))
        );
        assert_eq!(
            call("bitand", &[Value::Float(1.0), i(1)])
                .expect_err("floats are refused")
                .0,
            "bitand() expects an integer, got a float"
        );
        assert!(call("bitnot", &[s("1")]).is_err());
        assert!(call("bitsl", &[i(1), Value::Float(2.0)]).is_err());
    }

    proptest! {
        // emqx_rule_funcs_SUITE:t_bits_op: each function equals Erlang's
        // operator (bnot, band, bor, bxor, bsl, bsr), here against i128 and
        // big-integer arithmetic.
        #[test]
        fn bits_ops_equal_the_operators(x in any::<i64>(), y in any::<i64>(), wide in any::<i128>(), n in -200i64..200) {
            prop_assert_eq!(call("bitnot", &[i(x)]), Ok(i(!x)));
            prop_assert_eq!(call("bitand", &[i(x), i(y)]), Ok(i(x & y)));
            prop_assert_eq!(call("bitor", &[i(x), i(y)]), Ok(i(x | y)));
            prop_assert_eq!(call("bitxor", &[i(x), i(y)]), Ok(i(x ^ y)));
            let w = big(BigInt::from(wide));
            let yy = i128::from(y);
            prop_assert_eq!(call("bitnot", std::slice::from_ref(&w)), Ok(big(BigInt::from(!wide))));
            prop_assert_eq!(call("bitand", &[w.clone(), i(y)]), Ok(big(BigInt::from(wide & yy))));
            prop_assert_eq!(call("bitor", &[w.clone(), i(y)]), Ok(big(BigInt::from(wide | yy))));
            prop_assert_eq!(call("bitxor", &[w.clone(), i(y)]), Ok(big(BigInt::from(wide ^ yy))));
            for v in [i(x), w] {
                let b = v.to_bigint().expect("an integer");
                let scale = two_pow(n.unsigned_abs() as u32);
                let (left, right) = if n >= 0 {
                    (&b * &scale, b.div_floor(&scale))
                } else {
                    (b.div_floor(&scale), &b * &scale)
                };
                prop_assert_eq!(call("bitsl", &[v.clone(), i(n)]), Ok(big(left)));
                prop_assert_eq!(call("bitsr", &[v.clone(), i(n)]), Ok(big(right)));
            }
        }
    }

    #[test]
    fn sizes() {
        // t_bitsize, t_bytesize (a 4-bit bitstring is no rule value).
        assert_eq!(call("bitsize", &[s("a")]), Ok(i(8)));
        assert_eq!(call("bitsize", &[bin(&[0xff, 0])]), Ok(i(16)));
        assert_eq!(call("bytesize", &[s("a")]), Ok(i(1)));
        assert_eq!(call("bytesize", &[s("")]), Ok(i(0)));
        assert_eq!(call("bytesize", &[s("你好")]), Ok(i(6)));
        // bytesize is iolist_size: lists of bytes and binaries count too.
        let iolist = Value::array(vec![i(1), s("ab"), Value::array(vec![i(255), s("c")])]);
        assert_eq!(call("bytesize", &[iolist]), Ok(i(5)));
        assert!(call("bytesize", &[Value::array(vec![i(256)])]).is_err());
        assert!(call("bytesize", &[i(1)]).is_err());
        assert!(call("bitsize", &[Value::array(vec![])]).is_err());
    }

    #[test]
    fn subbits_reads_unsigned_big_endian_integers_by_default() {
        let ff = bin(&[255]);
        for n in 1..=8i64 {
            let want = i((1 << n) - 1);
            // t_subbits, t_subbits2
            assert_eq!(call("subbits", &[ff.clone(), i(n)]), Ok(want.clone()));
            assert_eq!(call("subbits", &[ff.clone(), i(1), i(n)]), Ok(want));
        }
        // t_subbits2_1: from the second bit only 7 are left, so asking for 8
        // gives those 7.
        for n in 1..=7i64 {
            assert_eq!(
                call("subbits", &[ff.clone(), i(2), i(n)]),
                Ok(i((1 << n) - 1))
            );
        }
        assert_eq!(call("subbits", &[ff.clone(), i(2), i(8)]), Ok(i(127)));
        // The documentation's examples.
        let abc = s("abc");
        assert_eq!(call("subbits", &[abc.clone(), i(8)]), Ok(i(97)));
        assert_eq!(call("subbits", &[abc.clone(), i(9), i(8)]), Ok(i(98)));
        assert_eq!(call("subbits", &[abc.clone(), i(17), i(8)]), Ok(i(99)));
        let typed = |endianness: &str| {
            call(
                "subbits",
                &[
                    abc.clone(),
                    i(9),
                    i(16),
                    s("integer"),
                    s("signed"),
                    s(endianness),
                ],
            )
        };
        assert_eq!(typed("big"), Ok(i(25187)));
        assert_eq!(typed("little"), Ok(i(25442)));
    }

    #[test]
    fn subbits_signedness_endianness_and_lengths() {
        let be32 = |n: i32| bin(&n.to_be_bytes());
        // t_subbits2_integer, t_subbits_5_args
        for n in [456, -456] {
            assert_eq!(
                call(
                    "subbits",
                    &[be32(n), i(1), i(32), s("integer"), s("signed"), s("big")]
                ),
                Ok(i(i64::from(n)))
            );
        }
        assert_eq!(
            call(
                "subbits",
                &[be32(456), i(1), i(32), s("integer"), s("unsigned")]
            ),
            Ok(i(456))
        );
        assert_eq!(
            call("subbits", &[be32(-456), i(1), i(32)]),
            Ok(i(i64::from(-456i32 as u32)))
        );
        // A little-endian 12-bit segment: the first 8 bits are the low byte,
        // the last 4 the high nibble (<<16#123:12/little>> is <<16#23, 1:4>>).
        let le12 = bin(&[0x23, 0x10]);
        let read = |v: &Value, signed: &str, end: &str| {
            call(
                "subbits",
                &[v.clone(), i(1), i(12), s("integer"), s(signed), s(end)],
            )
        };
        assert_eq!(read(&le12, "unsigned", "little"), Ok(i(0x123)));
        assert_eq!(read(&le12, "unsigned", "big"), Ok(i(0x231)));
        assert_eq!(read(&bin(&[0xff, 0xf0]), "signed", "little"), Ok(i(-1)));
        assert_eq!(read(&bin(&[0x00, 0x80]), "signed", "little"), Ok(i(-2048)));
        assert_eq!(read(&bin(&[0x80, 0x00]), "signed", "big"), Ok(i(-2048)));
        // Unaligned start, wider than a word: 0111_1111... from the second
        // bit is 1111_1110...
        let wide = bin(&[0x7f; 12]);
        assert_eq!(
            call("subbits", &[wide, i(2), i(80)]),
            Ok(big(BigInt::from_bytes_be(
                num_bigint::Sign::Plus,
                &[0xfe; 10]
            )))
        );
        assert_eq!(call("subbits", &[bin(&[0xab]), i(3), i(0)]), Ok(i(0)));
        // A negative length takes the rest, as Erlang's second pattern does.
        assert_eq!(call("subbits", &[bin(&[0xab]), i(5), i(-3)]), Ok(i(0xb)));
    }

    #[test]
    fn subbits_floats() {
        // t_subbits2_float, t_subbits_4_args
        let f64be = |x: f64| bin(&x.to_be_bytes());
        for x in [5.3, -5.3] {
            for signedness in ["unsigned", "signed"] {
                assert_eq!(
                    call(
                        "subbits",
                        &[f64be(x), i(1), i(64), s("float"), s(signedness), s("big")]
                    ),
                    Ok(Value::Float(x))
                );
            }
        }
        assert_eq!(
            call("subbits", &[f64be(5.3), i(1), i(64), s("float")]),
            Ok(Value::Float(5.3))
        );
        let f64le = bin(&2.5f64.to_le_bytes());
        assert_eq!(
            call(
                "subbits",
                &[f64le, i(1), i(64), s("float"), s("unsigned"), s("little")]
            ),
            Ok(Value::Float(2.5))
        );
        let f32be = bin(&[0x3f, 0xc0, 0, 0, 0xff]);
        assert_eq!(
            call("subbits", &[f32be, i(1), i(32), s("float")]),
            Ok(Value::Float(1.5))
        );
        let half = bin(&[0x3c, 0x00]);
        assert_eq!(
            call("subbits", &[half, i(1), i(16), s("float")]),
            Ok(Value::Float(1.0))
        );
        assert_eq!(
            call("subbits", &[bin(&[0xc0, 0x00]), i(1), i(16), s("float")]),
            Ok(Value::Float(-2.0))
        );
        // 24 bits match no float pattern, so the rest (64 bits) is read.
        assert_eq!(
            call("subbits", &[f64be(5.3), i(1), i(24), s("float")]),
            Ok(Value::Float(5.3))
        );
        // Neither 24 bits nor the 40 left are a float.
        assert!(call("subbits", &[bin(&[0; 5]), i(1), i(24), s("float")]).is_err());
        // Infinity does not match a float segment.
        assert!(call("subbits", &[f64be(f64::INFINITY), i(1), i(64), s("float")]).is_err());
    }

    #[test]
    fn subbits_bits_are_whole_bytes_only() {
        // t_subbits_not_even_bytes: EMQX gives a 6-bit bitstring there,
        // which rules have no value for.
        let input = bin(&[0x9f, 0x4e, 0x58]);
        let bits = |start: i64, len: i64| {
            call(
                "subbits",
                &[
                    input.clone(),
                    i(start),
                    i(len),
                    s("bits"),
                    s("unsigned"),
                    s("big"),
                ],
            )
        };
        let err = bits(1, 6).expect_err("6 bits are no binary");
        assert!(err.0.contains("6 bits are not whole bytes"), "{err}");
        assert_eq!(bits(1, 8), Ok(bin(&[0x9f])));
        assert_eq!(bits(5, 16), Ok(bin(&[0xf4, 0xe5])));
        assert_eq!(bits(9, 100), Ok(bin(&[0x4e, 0x58])));
    }

    #[test]
    fn subbits_outside_the_binary_is_undefined() {
        let one = bin(&[1]);
        assert_eq!(
            call("subbits", &[one.clone(), i(0), i(1)]),
            Ok(Value::Undefined)
        );
        assert_eq!(
            call("subbits", &[one.clone(), i(9), i(1)]),
            Ok(Value::Undefined)
        );
        assert_eq!(
            call("subbits", &[one.clone(), i(-3), i(1)]),
            Ok(Value::Undefined)
        );
        assert_eq!(call("subbits", &[s(""), i(1)]), Ok(Value::Undefined));
        assert_eq!(
            call("subbits", &[one.clone(), big(two_pow(70)), i(1)]),
            Ok(Value::Undefined)
        );
        // The options are only looked at when there are bits to read.
        assert_eq!(
            call("subbits", &[one.clone(), i(9), i(1), s("nonsense")]),
            Ok(Value::Undefined)
        );
        assert_eq!(call("subbits", &[one, i(8), i(1), s("integer")]), Ok(i(1)));
    }

    #[test]
    fn subbits_refuses_what_emqx_refuses() {
        let one = bin(&[1]);
        assert!(call("subbits", &[i(1), i(1)]).is_err());
        assert!(call("subbits", &[one.clone(), s("1")]).is_err());
        assert!(call("subbits", &[one.clone(), i(1), Value::Float(1.0)]).is_err());
        let err = call("subbits", &[one.clone(), i(1), i(8), s("int")]).expect_err("no such type");
        assert_eq!(
            err.0,
            "subbits() expects a type of 'integer' or 'float' or 'bits', got a string"
        );
        assert!(
            call(
                "subbits",
                &[one.clone(), i(1), i(8), s("integer"), s("Signed")]
            )
            .is_err()
        );
        assert!(
            call(
                "subbits",
                &[
                    one.clone(),
                    i(1),
                    i(8),
                    s("integer"),
                    s("signed"),
                    s("middle")
                ]
            )
            .is_err()
        );
        assert!(call("subbits", &[one, i(1), i(8), i(1)]).is_err());
    }
}
