//! Random values: `random()`, `uuid_v4()`, `uuid_v4_no_hyphen()` (EMQX's
//! random and UUID functions), from [`Env::random`], the runtime's source
//! of randomness.

use super::hash::hex;
use super::{Env, Func};
use crate::value::Value;

pub(super) const FUNCS: &[Func] = &[
    Func {
        name: "random",
        arity: (0, 0),
        signature: "random()",
        doc: "a random float from 0.0 (included) to 1.0 (excluded), uniformly distributed",
        call: |_, env| Ok(Value::Float(uniform(env))),
    },
    Func {
        name: "uuid_v4",
        arity: (0, 0),
        signature: "uuid_v4()",
        doc: "a random (version 4) UUID as lower-case hex with hyphens",
        call: |_, env| {
            let h = hex(&uuid_v4(env), false);
            let part = |from: usize, to: usize| h.get(from..to).unwrap_or_default();
            Ok(Value::from(format!(
                "{}-{}-{}-{}-{}",
                part(0, 8),
                part(8, 12),
                part(12, 16),
                part(16, 20),
                part(20, 32)
            )))
        },
    },
    Func {
        name: "uuid_v4_no_hyphen",
        arity: (0, 0),
        signature: "uuid_v4_no_hyphen()",
        doc: "a random (version 4) UUID as 32 lower-case hex digits",
        call: |_, env| Ok(Value::from(hex(&uuid_v4(env), false))),
    },
];

/// `rand:uniform/0`: 53 random bits as a float in [0, 1).
fn uniform(env: &dyn Env) -> f64 {
    let mut b = [0; 8];
    env.random(&mut b);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// RFC 9562's version 4: 122 random bits, the version and the variant.
fn uuid_v4(env: &dyn Env) -> [u8; 16] {
    let mut b = [0; 16];
    env.random(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    b
}

#[cfg(test)]
mod tests {
    use crate::funcs::testing::{TestEnv, call_in};
    use crate::value::Value;

    #[test]
    fn random_floats_are_in_the_unit_interval_and_vary() {
        let env = TestEnv::default();
        let draws: Vec<f64> = (0..1000)
            .map(|_| match call_in(&env, "random", &[]) {
                Ok(Value::Float(x)) => x,
                other => panic!("not a float: {other:?}"),
            })
            .collect();
        assert!(draws.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((0.4..0.6).contains(&mean), "{mean}");
        assert!(draws.windows(2).all(|w| w[0] != w[1]));
    }

    #[test]
    fn uuids_are_version_4() {
        let env = TestEnv::default();
        let text = |f: &str| {
            call_in(&env, f, &[])
                .expect("a UUID")
                .as_str()
                .expect("text")
                .to_string()
        };
        let with = text("uuid_v4");
        let groups: Vec<&str> = with.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{with}"
        );
        let plain = text("uuid_v4_no_hyphen");
        assert_eq!(plain.len(), 32);
        for id in [with.replace('-', ""), plain.clone()] {
            assert!(
                id.bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
                "{id}"
            );
            assert_eq!(&id[12..13], "4", "{id}");
            assert!(matches!(&id[16..17], "8" | "9" | "a" | "b"), "{id}");
        }
        assert_ne!(with.replace('-', ""), plain);
        assert_ne!(text("uuid_v4_no_hyphen"), plain);
    }
}
