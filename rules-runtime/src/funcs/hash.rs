//! Hash functions: `md5`, `sha`, `sha256` and `hash(algorithm, data)`,
//! each giving the digest as lower-case hex text, as EMQX 5 does.
//!
//! `hash` takes the algorithms of Erlang's `crypto:hash` that every EMQX
//! build has: md5, sha (or sha1), the SHA-2 family (sha224, sha256,
//! sha384, sha512), the SHA-3 family (sha3_224 ... sha3_512) and
//! shake128/shake256 (their default 128- and 256-bit outputs). md4,
//! ripemd160, blake2b, blake2s and sm3, which `crypto:hash` has when
//! OpenSSL provides them, are refused, to keep them out of every rule
//! module.

use super::bits::iodata;
use super::{Env, Func, expects, text_arg};
use crate::value::{OpError, Value};
use md5::Md5;
use sha1::Sha1;
use sha2_011::{Sha224, Sha256, Sha384, Sha512};
use sha3::{Digest, Sha3_224, Sha3_256, Sha3_384, Sha3_512};
use shake::{ExtendableOutput, Shake128, Shake256, Update, XofReader};

pub(super) const FUNCS: &[Func] = &[
    Func {
        name: "md5",
        arity: (1, 1),
        signature: "md5(data)",
        doc: "the MD5 digest of a binary, as lower-case hex",
        call: |a, _| digest_of_binary("md5", &a[0], Algorithm::Md5),
    },
    Func {
        name: "sha",
        arity: (1, 1),
        signature: "sha(data)",
        doc: "the SHA-1 digest of a binary, as lower-case hex",
        call: |a, _| digest_of_binary("sha", &a[0], Algorithm::Sha1),
    },
    Func {
        name: "sha256",
        arity: (1, 1),
        signature: "sha256(data)",
        doc: "the SHA-256 digest of a binary, as lower-case hex",
        call: |a, _| digest_of_binary("sha256", &a[0], Algorithm::Sha256),
    },
    Func {
        name: "hash",
        arity: (2, 2),
        signature: "hash(algorithm, data)",
        doc: "the digest of data (a binary or a list of bytes and binaries) as lower-case hex; algorithm is md5, sha (sha1), sha224, sha256, sha384, sha512, sha3_224, sha3_256, sha3_384, sha3_512, shake128 or shake256",
        call: hash,
    },
];

#[derive(Clone, Copy)]
enum Algorithm {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha3_224,
    Sha3_256,
    Sha3_384,
    Sha3_512,
    Shake128,
    Shake256,
}

/// The names `hash` takes, as `crypto:hash` calls them.
const ALGORITHMS: &[(&str, Algorithm)] = &[
    ("md5", Algorithm::Md5),
    ("sha", Algorithm::Sha1),
    ("sha1", Algorithm::Sha1),
    ("sha224", Algorithm::Sha224),
    ("sha256", Algorithm::Sha256),
    ("sha384", Algorithm::Sha384),
    ("sha512", Algorithm::Sha512),
    ("sha3_224", Algorithm::Sha3_224),
    ("sha3_256", Algorithm::Sha3_256),
    ("sha3_384", Algorithm::Sha3_384),
    ("sha3_512", Algorithm::Sha3_512),
    ("shake128", Algorithm::Shake128),
    ("shake256", Algorithm::Shake256),
];

impl Algorithm {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        fn fixed<D: Digest>(data: &[u8]) -> Vec<u8> {
            D::digest(data).to_vec()
        }
        fn xof<X: Default + Update + ExtendableOutput>(data: &[u8], bytes: usize) -> Vec<u8> {
            let mut x = X::default();
            x.update(data);
            let mut out = vec![0; bytes];
            x.finalize_xof().read(&mut out);
            out
        }
        match self {
            Algorithm::Md5 => fixed::<Md5>(data),
            Algorithm::Sha1 => fixed::<Sha1>(data),
            Algorithm::Sha224 => fixed::<Sha224>(data),
            Algorithm::Sha256 => fixed::<Sha256>(data),
            Algorithm::Sha384 => fixed::<Sha384>(data),
            Algorithm::Sha512 => fixed::<Sha512>(data),
            Algorithm::Sha3_224 => fixed::<Sha3_224>(data),
            Algorithm::Sha3_256 => fixed::<Sha3_256>(data),
            Algorithm::Sha3_384 => fixed::<Sha3_384>(data),
            Algorithm::Sha3_512 => fixed::<Sha3_512>(data),
            Algorithm::Shake128 => xof::<Shake128>(data, 16),
            Algorithm::Shake256 => xof::<Shake256>(data, 32),
        }
    }
}

/// `md5/1`, `sha/1`, `sha256/1`: a binary only (their guard is
/// `is_binary`).
fn digest_of_binary(f: &str, v: &Value, algorithm: Algorithm) -> Result<Value, OpError> {
    let data = v.as_binary().ok_or_else(|| expects(f, "a binary", v))?;
    Ok(Value::from(hex(&algorithm.digest(data), false)))
}

fn hash(a: &[Value], _: &dyn Env) -> Result<Value, OpError> {
    let name = text_arg("hash", &a[0])?;
    let algorithm = ALGORITHMS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, alg)| *alg)
        .ok_or_else(|| {
            let known: Vec<&str> = ALGORITHMS.iter().map(|(n, _)| *n).collect();
            OpError(
                format!(
                    "hash(): unknown algorithm `{}` (known: {})",
                    crate::conv::clip(&name),
                    known.join(", ")
                )
                .into(),
            )
        })?;
    let data = iodata("hash", &a[1])?;
    Ok(Value::from(hex(&algorithm.digest(&data), false)))
}

/// Bytes as hex text, two digits a byte.
pub(super) fn hex(bytes: &[u8], upper: bool) -> String {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(digits[usize::from(b >> 4)]));
        out.push(char::from(digits[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::funcs::testing::call;
    use crate::value::Value;
    use proptest::prelude::*;

    fn s(text: &str) -> Value {
        Value::str(text)
    }

    #[test]
    fn digests_are_lower_case_hex() {
        // The documentation's examples.
        assert_eq!(
            call("md5", &[s("some val")]),
            Ok(s("1b68352b3e9c2de52ffd322e30bffcc4"))
        );
        assert_eq!(
            call("sha", &[s("some val")]),
            Ok(s("f85ba28ff5ea84a0cbfa118319acb0c5e58ee2b9"))
        );
        assert_eq!(
            call("sha256", &[s("some val")]),
            Ok(s(
                "67f97635d8a0e064f60ba6e8846a0ac0be664f18f0c1dc6445cd3542d2b71993"
            ))
        );
        // Binary data that is not text hashes as it is.
        assert_eq!(
            call("md5", &[Value::bytes(&[0xff, 0x00][..])]),
            call("hash", &[s("md5"), Value::bytes(&[0xff, 0x00][..])])
        );
    }

    #[test]
    fn hash_takes_cryptos_names() {
        // Digests of "abc" from the standards' test vectors.
        let cases = [
            ("md5", "900150983cd24fb0d6963f7d28e17f72"),
            ("sha", "a9993e364706816aba3e25717850c26c9cd0d89d"),
            ("sha1", "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                "sha224",
                "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
            ),
            (
                "sha256",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                "sha384",
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                "sha512",
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
            (
                "sha3_224",
                "e642824c3f8cf24ad09234ee7d3c766fc9a3a5168d0c94ad73b46fdf",
            ),
            (
                "sha3_256",
                "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532",
            ),
            (
                "sha3_384",
                "ec01498288516fc926459f58e2c6ad8df9b473cb0fc08c2596da7cf0e49be4b298d88cea927ac7f539f1edf228376d25",
            ),
            (
                "sha3_512",
                "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0",
            ),
            ("shake128", "5881092dd818bf5cf8a3ddb793fbcba7"),
            (
                "shake256",
                "483366601360a8771c6863080cc4114d8db44530f8f1e1ee4f94ea37e78b5739",
            ),
        ];
        for (algorithm, want) in cases {
            assert_eq!(
                call("hash", &[s(algorithm), s("abc")]),
                Ok(s(want)),
                "{algorithm}"
            );
        }
        // crypto:hash takes iodata.
        let iolist = Value::array(vec![Value::Int(97), s("b"), Value::array(vec![s("c")])]);
        assert_eq!(
            call("hash", &[s("md5"), iolist]),
            Ok(s("900150983cd24fb0d6963f7d28e17f72"))
        );
    }

    #[test]
    fn refusals() {
        let err = call("hash", &[s("blake2b"), s("abc")]).expect_err("not available");
        assert!(
            err.0.starts_with("hash(): unknown algorithm `blake2b`"),
            "{err}"
        );
        assert!(call("hash", &[s("SHA256"), s("abc")]).is_err());
        assert!(call("hash", &[Value::Int(5), s("abc")]).is_err());
        assert!(call("hash", &[s("md5"), Value::Int(5)]).is_err());
        // md5/1, sha/1 and sha256/1 take binaries only.
        assert_eq!(
            call("md5", &[Value::Int(1)]).expect_err("not a binary").0,
            "md5() expects a binary, got an integer"
        );
        assert!(call("sha", &[Value::array(vec![])]).is_err());
        assert!(call("sha256", &[Value::Undefined]).is_err());
    }

    proptest! {
        // emqx_rule_funcs_SUITE:t_hash_funcs: 32, 40 and 64 hex digits.
        #[test]
        fn digest_lengths(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let v = Value::binary(data);
            for (name, len) in [("md5", 32), ("sha", 40), ("sha256", 64)] {
                let out = call(name, std::slice::from_ref(&v)).expect("a digest");
                let text = out.as_str().expect("text");
                prop_assert_eq!(text.len(), len);
                prop_assert!(text.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
            }
        }
    }
}
