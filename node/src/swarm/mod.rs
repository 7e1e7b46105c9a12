//! The swarm: the libp2p behaviours composed into one (`behaviour`, one doc line per field)
//! and how the swarm is built for a node's role and flags (`build`: transports, the
//! `crate::upstream` wrappers in place of the originals, connection settings), with the one
//! limit libp2p has no behaviour for (`subnet_limits`: inbound connections per subnet).
//!
//! Uses `crate::config`, `crate::record` (the key and the record the behaviours start with),
//! `crate::mesh` and `crate::upstream`; driven by `crate::service`.

pub mod behaviour;
pub mod build;
pub mod dial_guard;
pub mod subnet_limits;
