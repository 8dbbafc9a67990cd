//! What the values of weir's declarative rules are and what every operation
//! on them does, in one place.
//!
//! weir compiles a rule file (SQL and record template) to a Wasm module:
//! the control flow (WHERE, CASE, short-circuit `and`/`or`) becomes Wasm
//! instructions, and every operation on a value (comparing, adding, calling
//! `lower`, writing a value into a record) is a call into a runtime library.
//! That library is this crate compiled to wasm32 (`guest/`, embedded as
//! [`WASM`] by the build script), and the host's native evaluator calls the
//! very same functions, so the two can only differ in what the compiler
//! generated, which is what weir's property tests compare.
//!
//! The numbering of operators, functions and modes ([`CmpOp`], [`ArithOp`],
//! [`Func`], [`Mode`]) is the contract between generated code and the
//! runtime library.

mod emit;
pub mod json;
mod ops;
mod value;

pub use emit::{Mode, emit, text};
pub use ops::{ArithOp, CmpOp, Func, arith, call, compare, get, index, neg, topic_matches, truth};
pub use value::{OpError, Tri, Value};

/// The runtime library: `guest/` compiled to `wasm32-unknown-unknown`.
#[cfg(feature = "embed")]
pub const WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/weir_rules_guest.wasm"));
