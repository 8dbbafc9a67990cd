//! weir's view of the HStreamDB wire protocol.
//!
//! Both sides of the wire live on this crate: the sink and the CLI speak it as
//! a client, the development server speaks it as a server. Keeping the
//! generated types and the rules that are not expressible in `.proto` (how a
//! batch is compressed, how a key picks a shard, what an error body looks
//! like) in one place is what keeps the two sides from drifting apart.
//!
//! - [`pb`]: the generated messages and gRPC stubs for `hstream.server.HStreamApi`
//!   (and the development server's `FaultControl` and `ClusterControl` services).
//! - [`record`]: encoding and decoding of record batches, compression, HRecords.
//! - [`keyspace`]: the 128-bit MD5 key space, its division into shards and the
//!   key-to-shard lookup.
//! - [`error_body`]: HStreamDB's JSON error bodies carried in gRPC statuses.

pub mod error_body;
pub mod keyspace;
pub mod record;

/// Generated protobuf types and gRPC stubs.
pub mod pb {
    #![allow(
        missing_docs,
        unreachable_pub,
        clippy::all,
        missing_debug_implementations
    )]
    tonic::include_proto!("hstream.server");

    /// The development server's test-control services (not part of HStreamDB).
    pub mod devserver {
        #![allow(
            missing_docs,
            unreachable_pub,
            clippy::all,
            missing_debug_implementations
        )]
        tonic::include_proto!("weir.devserver.v1");
    }
}
