//! peerfind: peers find and reach each other, even behind NATs.
//!
//! A node meets a bootnode with a record (ENR, EIP-778) that has no address; the bootnode
//! tells it the address it sees, which goes into the record with seq + 1; the bootnode
//! gossips records, and peers dial the public ones directly.
//!
//! The crate is layered: a module uses only modules listed after it (`reach` and `status`
//! share the types the node reports in; `ARCHITECTURE.md` has the full table).
//! - [`service`]: the running node, its event loop and the wiring between everything below;
//!   the path of one event from the wire to the record.
//! - [`swarm`]: the libp2p behaviours composed into one swarm, and building it.
//! - [`upkeep`]: connection upkeep: the connection book, liveness, bootnode redials.
//! - [`reach`]: reachability decisions: [`reach::confirm`] (when an observed address is ours),
//!   [`reach::nat`] (the `nat` flag), [`reach::strategy`] (how a learned peer is reached).
//! - [`api`]: the status API (gRPC, `/metrics`) and the CLI's `status`, `peers`, `watch`.
//! - [`config`]: every setting and its default; a bootnode named by the URL of its record.
//! - [`probe`]: the probes' client side (`peerfind probe`, fetching a bootnode's `/enr`).
//! - [`status`]: what the node reports about itself, and the handle the API asks it with.
//! - [`diag`]: `peerfind ping` and `peerfind netcheck`, the active diagnostics.
//! - [`mesh`]: the bootnodes' record mesh over gossipsub.
//! - [`upstream`]: libp2p parts wrapped for one upstream bug or behaviour each.
//! - [`igd`]: port mapping, our own UPnP-IGD client.
//! - [`record`]: the own record, its key and its files.
//!
//! The project's own protocols (ENR gossip, introductions, the record table) are in the
//! `peerfind-behaviours` crate.

pub mod api;
pub mod config;
pub mod diag;
pub mod igd;
pub mod mesh;
pub mod probe;
pub mod reach;
pub mod record;
pub mod service;
pub mod status;
pub mod swarm;
pub mod upkeep;
pub mod upstream;

pub use config::{Config, Mode};
pub use service::{Node, NodeError};
