//! peerfind's protobuf messages: the ENR exchange protocol (`/peerfind/enr/1.0.0`).
//!
//! The `.proto` files under `peerfind/v1/` are the source of truth and document every field;
//! this crate only carries the types `prost` generates from them. The rest of peerfind converts
//! these types into its own at the edge (each protocol's `protocol.rs`).

/// Version 1 of every peerfind message.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/peerfind.v1.rs"));
}
