//! The HStreamDB side of weir: everything that talks to the cluster.
//!
//! [`client`] speaks the wire (URLs, TLS, discovery, pooled channels,
//! appends, stream administration, reads); it is also what the CLI's stream
//! and check commands use. It is the only part of weir that names tonic and
//! `weir-proto`.

pub mod client;
