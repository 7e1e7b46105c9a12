//! The status API: what a running node tells about itself, over gRPC and Prometheus.
//!
//! - [`server`] serves `peerfind.v1.Node` (`proto/peerfind/v1/node.proto` documents every
//!   field) over a [`crate::status::Handle`], with gRPC health and reflection beside it;
//! - [`metrics`] serves `/metrics`: libp2p's registry and the node's own counts;
//! - [`services`] runs both beside the node, bound before it starts and stopped with it;
//! - [`diag`] serves `peerfind.v1.Diagnostics`: `Ping` and `Netcheck`;
//! - [`client`] is the command line's side: `peerfind status`, `peers`, `watch`, `ping` and
//!   `netcheck`.
//!
//! The generated protobuf types stay in here: `convert` turns the node's own types into them
//! (the one place that knows both), `filter` checks `ListPeers`' filters, and `render` prints
//! answers for people and scripts.
//!
//! The API only reads (`Ping` sends round trips, and changes nothing either), and has no
//! authentication: it listens on loopback unless `--api` says
//! otherwise, and binding another address is the operator's explicit choice.

mod calls;
pub mod client;
mod conn;
mod convert;
mod diag;
mod filter;
mod health;
pub mod metrics;
pub mod probes;
mod process_metrics;
mod render;
pub mod server;
pub mod services;

/// A PeerId of a fresh secp256k1 key, as every node has: the API's unit tests share it.
#[cfg(test)]
fn some_peer_id() -> libp2p::PeerId {
    libp2p::identity::Keypair::generate_secp256k1()
        .public()
        .to_peer_id()
}

pub use server::serve;

pub use services::Services;
