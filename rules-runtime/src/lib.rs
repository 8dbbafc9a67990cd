//! The rule language's values and the evaluator of checked rules, in one
//! place for the host and for the rule runtime module.
//!
//! weir compiles a rule file (EMQX rule SQL and a record template) to a
//! [`Program`]: names resolved, functions checked, templates parsed. This
//! crate runs programs, with EMQX 5's semantics (its values, comparisons,
//! paths and functions). The host calls it directly (`weir rule test`,
//! property tests); `guest/` compiles the same code to
//! `wasm32-unknown-unknown`, embedded as [`WASM`] by the build script, and
//! that module runs every compiled rule under the limits and isolation of
//! any plugin, with the program handed to it in the init document. One
//! implementation, so the two cannot drift apart.

pub mod batch;
pub mod conv;
mod emit;
mod eval;
pub mod funcs;
pub mod json;
mod ops;
pub mod path;
pub mod program;
mod value;

pub use emit::{Mode, emit};
pub use eval::{Host, Rendered, Scope, run};
pub use ops::{ArithOp, CmpOp, arith, compare, neg, topic_matches};
pub use value::{Map, OpError, Value, term_cmp};

/// The runtime library: `guest/` compiled to `wasm32-unknown-unknown`.
#[cfg(feature = "embed")]
pub const WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/weir_rules_guest.wasm"));
