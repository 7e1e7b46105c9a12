//! peerfind: peers find and reach each other, even behind NATs.
//!
//! A node meets a bootnode with a record (ENR, EIP-778) that has no address; the bootnode
//! tells it the address it sees, which goes into the record with seq + 1; the bootnode
//! gossips records, and peers dial the public ones directly.
//!
//! Read in this order:
//! - [`node`]: the running node and the path of one event from the wire to the record.
//! - [`confirm`]: when an observed address counts as ours.
//! - [`enr`]: the own record, its seq and its storage; [`identity`] and [`data_dir`]: the key
//!   and the files.
//! - [`nat`]: whether the node is behind a NAT (the `nat` flag).
//! - [`quic_fin`]: QUIC answers finish a moment after they are sent.
//! - [`liveness`]: when a connection is dead; [`redial`]: keeping every bootnode connected
//!   over each transport.
//! - [`strategy`]: how a learned peer is reached.
//! - [`behaviour`]: the libp2p behaviours composed into the swarm (the project's own are in
//!   the `peerfind-behaviours` crate).
//! - [`status`]: what the node reports about itself, and the handle the API asks it with.
//! - [`config`]: every setting and its default; [`inspect`]: `peerfind enr decode`.

pub mod api;
pub mod behaviour;
pub mod config;
pub mod confirm;
pub mod data_dir;
pub mod enr;
pub mod identify;
pub mod identity;
pub mod inspect;
pub mod liveness;
pub mod mesh;
pub mod nat;
pub mod node;
pub mod quic_fin;
pub mod redial;
pub mod relay_client;
pub mod relay_limits;
pub mod status;
pub mod strategy;

pub use config::Config;
pub use node::{Mode, Node, NodeError};
