//! The HStreamDB side of weir: everything that talks to the cluster.
//!
//! [`client`] speaks the wire (URLs, TLS, discovery, pooled channels,
//! appends, stream administration, reads); it is also what the CLI's stream
//! and check commands use. Only the sink, and the CLI commands that reuse
//! its client, name tonic and `weir-proto`.

pub mod client;
