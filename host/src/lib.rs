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

pub mod ack;
pub mod admin;
pub mod cli;
pub mod config;
pub mod event;
pub mod import;
pub mod ingress;
pub mod pipeline;
pub mod render;
pub mod rules;
pub mod sink;
