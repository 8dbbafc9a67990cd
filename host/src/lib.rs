//! weir: a WebAssembly-extensible MQTT → HStreamDB gateway.
//!
//! Events flow one way through stages joined by channels, and
//! acknowledgements flow back only through ack tokens:
//!
//! ```text
//! ingress (MQTT) → rules (Wasm) → sink (HStreamDB) → ack back to ingress
//! ```
//!
//! See ARCHITECTURE.md at the repository root for the stages, who owns what
//! and the invariants each stage keeps.

// The crate root exposes what the `weir` binary, tests/it, the benches,
// weir-bench and the fuzz targets use; everything else is `pub(crate)`, so
// `unreachable_pub` flags a `pub` that nothing outside can reach.
mod ack;
mod admin;
pub mod cli;
pub mod config;
pub mod event;
mod import;
pub mod ingress;
mod pipeline;
mod render;
pub mod rules;
mod secret;
pub mod sink;
mod suggest;
mod tls;
