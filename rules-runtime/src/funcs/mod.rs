//! The function library of rule SQL: EMQX 5's rule-engine functions, each
//! implemented once, here, for both the host and the rule runtime module.
//!
//! Every function is a [`Func`] in one of the tables below (one module per
//! family, as EMQX's documentation groups them). A function takes its
//! already evaluated arguments and an [`Env`] (the clock, randomness and
//! the event's columns) and returns a value or an [`OpError`], which fails
//! the rule for that event exactly where EMQX's function would raise
//! (`function_clause`, `badarg`). The compiler checks names and argument
//! counts when a rule is loaded, so a call that reaches a function has a
//! count within its `arity`.

use crate::value::{OpError, Value};

mod array;
mod bits;
mod codec;
mod core;
mod date;
mod hash;
mod iot;
mod map;
mod math;
mod random;
mod string;

/// What a function may ask of the world besides its arguments.
pub trait Env {
    /// Wall clock, ms since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Fills `buf` with random bytes.
    fn random(&self, buf: &mut [u8]);
    /// A column of the event being processed (`Undefined` when the event
    /// has no such column), for functions that read the event themselves
    /// (`topic()`, `qos()`, ...).
    fn column(&self, name: &str) -> Value;
}

/// A function of the library.
#[derive(Debug)]
pub struct Func {
    /// The name a rule calls it by (lower case; calls are case-insensitive).
    pub name: &'static str,
    /// The fewest and most arguments it takes (`usize::MAX`: any number).
    pub arity: (usize, usize),
    /// How it is called, for errors and docs: `substr(s, start[, len])`.
    pub signature: &'static str,
    /// One sentence on what it gives.
    pub doc: &'static str,
    pub call: fn(&[Value], &dyn Env) -> Result<Value, OpError>,
}

/// Every table of the library, by family (docs/rules.md lists them in
/// this order, under these names).
pub const FAMILIES: &[(&str, &[Func])] = &[
    ("Type conversion and type tests", core::FUNCS),
    ("Strings", string::FUNCS),
    ("Arrays", array::FUNCS),
    ("Maps", map::FUNCS),
    ("The event", iot::FUNCS),
    ("Mathematics", math::FUNCS),
    ("Bits and bytes", bits::FUNCS),
    ("Hashes", hash::FUNCS),
    ("Encoding and compression", codec::FUNCS),
    ("Dates and times", date::FUNCS),
    ("Random values", random::FUNCS),
];

/// Every function of the library.
pub fn all() -> impl Iterator<Item = &'static Func> {
    FAMILIES.iter().flat_map(|(_, t)| t.iter())
}

/// The function a rule calls `name` (any case).
pub fn lookup(name: &str) -> Option<&'static Func> {
    all().find(|f| f.name.eq_ignore_ascii_case(name))
}

/// An error for a function given a value it does not take: `lower()
/// expects a string, got an integer`.
pub fn expects(f: &str, what: &str, got: &Value) -> OpError {
    OpError(format!("{f}() expects {what}, got {}", got.kind()).into())
}

/// The values of a function EMQX defines over a list, whose two-argument
/// form is that list of two (`concat`, `coalesce`): one array argument's
/// items, or the arguments themselves.
pub(crate) fn list_or_args<'v>(f: &str, a: &'v [Value]) -> Result<&'v [Value], OpError> {
    match a {
        [list] => list
            .as_array()
            .ok_or_else(|| expects(f, "an array (or two values)", list)),
        two => Ok(two),
    }
}

/// The text of a string argument (EMQX's functions take binaries; `true`
/// and `false` are taken by their names, as EMQX 5 does; undefined and
/// null are refused).
pub fn text_arg<'v>(f: &str, v: &'v Value) -> Result<std::borrow::Cow<'v, str>, OpError> {
    match v {
        Value::Str(s) => Ok(std::borrow::Cow::Borrowed(s)),
        Value::Bytes(b) => std::str::from_utf8(b)
            .map(std::borrow::Cow::Borrowed)
            .map_err(|_| {
                OpError(format!("{f}() expects text, got binary data that is not UTF-8").into())
            }),
        Value::Bool(_) | Value::Null => Ok(std::borrow::Cow::Borrowed(
            v.atom_name().unwrap_or_default(),
        )),
        other => Err(expects(f, "a string", other)),
    }
}

/// An integer argument that fits `i64`.
pub fn int_arg(f: &str, v: &Value) -> Result<i64, OpError> {
    match v {
        Value::Int(n) => Ok(*n),
        other => Err(expects(f, "an integer", other)),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A fixed environment for function tests.
    use super::*;
    use std::cell::Cell;

    pub(crate) struct TestEnv {
        pub now_ms: i64,
        pub columns: Vec<(&'static str, Value)>,
        seed: Cell<u64>,
    }

    impl Default for TestEnv {
        fn default() -> Self {
            TestEnv {
                now_ms: 1_700_000_123_456,
                columns: Vec::new(),
                seed: Cell::new(0x9E37_79B9_7F4A_7C15),
            }
        }
    }

    impl Env for TestEnv {
        fn now_ms(&self) -> i64 {
            self.now_ms
        }

        fn random(&self, buf: &mut [u8]) {
            for b in buf {
                // xorshift64: deterministic, good enough for tests.
                let mut x = self.seed.get();
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                self.seed.set(x);
                *b = x as u8;
            }
        }

        fn column(&self, name: &str) -> Value {
            self.columns
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(Value::Undefined, |(_, v)| v.clone())
        }
    }

    /// Calls `name` with `args` in a default environment.
    pub(crate) fn call(name: &str, args: &[Value]) -> Result<Value, OpError> {
        call_in(&TestEnv::default(), name, args)
    }

    pub(crate) fn call_in(env: &TestEnv, name: &str, args: &[Value]) -> Result<Value, OpError> {
        let f = lookup(name).unwrap_or_else(|| panic!("no function {name}"));
        assert!(
            args.len() >= f.arity.0 && args.len() <= f.arity.1,
            "{name} takes {:?} arguments",
            f.arity
        );
        (f.call)(args, env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The function tables of docs/rules.md, as the library has them.
    fn docs_tables() -> String {
        let mut out = String::new();
        for (family, funcs) in FAMILIES {
            out.push_str(&format!(
                "### {family}\n\n| Function | Gives |\n|---|---|\n"
            ));
            for f in *funcs {
                out.push_str(&format!(
                    "| `{}` | {} |\n",
                    // GFM splits cells at a `|` even inside a code span.
                    f.signature.replace('|', "\\|"),
                    f.doc.replace('|', "\\|")
                ));
            }
            out.push('\n');
        }
        out
    }

    #[test]
    fn docs_list_every_function_as_the_library_has_it() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/rules.md");
        let docs = std::fs::read_to_string(path).expect("docs/rules.md");
        let tables = docs_tables();
        assert!(
            docs.contains(&tables),
            "docs/rules.md must list the functions exactly as the library has them; the tables are:\n\n{tables}"
        );
    }

    #[test]
    fn names_are_unique_lower_case_and_documented() {
        let mut seen = std::collections::BTreeSet::new();
        for f in all() {
            assert!(seen.insert(f.name), "{} is defined twice", f.name);
            assert_eq!(f.name, f.name.to_ascii_lowercase());
            assert!(f.signature.starts_with(f.name), "{}", f.signature);
            assert!(!f.doc.is_empty());
            assert!(f.arity.0 <= f.arity.1);
        }
    }
}
