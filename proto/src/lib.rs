//! peerfind's protobuf messages: the ENR exchange (`/peerfind/enr/1.0.0`), introductions
//! (`/peerfind/intro/1.0.0`), admission to the bootnodes' mesh (`/peerfind/mesh/1.0.0`), and
//! the status API (`peerfind.v1.Node`, gRPC).
//!
//! The `.proto` files under `peerfind/v1/` are the source of truth and document every field;
//! this crate only carries the types `prost` generates from them. The rest of peerfind converts
//! these types into its own at the edge (each protocol's `protocol.rs`, the API's
//! `api/convert.rs`).
//!
//! The status API's messages, service and descriptors come with the feature `api`; without
//! it, [`v1`] holds only the wire protocols' messages.

/// Version 1 of every peerfind message.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/peerfind.v1.rs"));
}

/// The encoded `FileDescriptorSet` of the status API (`peerfind/v1/node.proto` and its
/// imports, comments included), which gRPC server reflection serves so that generic tools can
/// list and call `peerfind.v1.Node` without the `.proto` file.
#[cfg(feature = "api")]
pub const API_DESCRIPTORS: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/peerfind_api_descriptors.bin"));
