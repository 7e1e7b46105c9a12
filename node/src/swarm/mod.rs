//! The swarm: the libp2p behaviours composed into one (`behaviour`, one doc line per field)
//! and how the swarm is built for a node's role and flags (`build`: transports, the
//! `crate::upstream` wrappers in place of the originals, connection settings), with the checks
//! libp2p has no behaviour for: inbound connections per subnet (`subnet_limits`), relay
//! reservations per subnet (`relay_per_subnet`), and every outbound dial (`dial_guard`, in the
//! transports).
//!
//! Uses `crate::config`, `crate::record` (the key and the record the behaviours start with),
//! `crate::mesh` and `crate::upstream`; driven by `crate::service`.

pub mod behaviour;
pub mod build;
pub mod dial_guard;
pub mod relay_per_subnet;
pub mod subnet_limits;
