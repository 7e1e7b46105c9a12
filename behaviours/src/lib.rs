//! peerfind's own libp2p behaviours and the record logic they share.
//!
//! Read in this order:
//! - [`enr_ext`]: what a record is to peerfind (its keys, including the `nat` flag), how
//!   records from the network are decoded and checked, and how a record maps to libp2p's
//!   PeerId and addresses.
//! - [`frame`]: the length-prefixed protobuf frames every peerfind protocol uses, and the
//!   one `request_response` codec that carries them.
//! - [`table`]: the record table and its rules (newer seq wins, bounded, expiring).
//! - [`exchange`]: the `request_response` skeleton both protocols' behaviours share; each
//!   writes only its rules.
//! - [`gossip`]: the `/peerfind/enr/1.0.0` behaviour that exchanges and gossips records.
//! - [`intro`]: the `/peerfind/intro/1.0.0` behaviour: introductions through a bootnode.
//! - [`queue`]: the capped event queue both behaviours keep.
//! - [`rtt`]: `/peerfind/ping/1.0.0`, round trips on demand over a connection of our choice.
//! - [`forward_connection_handling!`]: the connection methods a wrapper behaviour passes on.

pub mod enr_ext;
pub mod exchange;
pub mod forward;
pub mod frame;
pub mod gossip;
pub mod intro;
pub mod ip_group;
pub mod limiter;
pub mod queue;
pub mod remotes;
pub mod rtt;
pub mod table;
