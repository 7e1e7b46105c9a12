//! ENR gossip, `/peerfind/enr/1.0.0`: the first diagram of the design note.
//!
//! On every new connection both sides announce their own record ("Hello (ENR …)") and ask for
//! up to [`Config::find_max`] records the other knows. A bootnode (with [`Config::pass_on`] on)
//! passes every new or updated record on to a bounded fanout of its peers ("Meet Alice (ENR
//! …)"), through a per-peer outbox that batches records when many arrive at once. Records go
//! through the [`crate::table`] rules; whatever breaks the protocol is dropped, logged once
//! with the peer and the reason, counted, and reported as [`Event::InputRejected`]. A record
//! travels only with proof (`admission.rs`): an owner's announcement must name the IP its
//! connection comes from, and records passed on by others are taken only from the peers the
//! node trusts ([`Config::trust`], its configured bootnodes).
//!
//! Built on the shared `request_response` skeleton ([`crate::exchange`]) with a prost codec
//! ([`protocol`]); [`Gossip`], its rules, owns the record table.

mod admission;
mod behaviour;
mod config;
mod outbox;
pub mod protocol;
mod rate;
mod violation;

pub use admission::{Trust, Unproven};
pub use behaviour::{Behaviour, Event, Gossip, Offered};
pub use config::{Config, DEFAULT_ANNOUNCE_INTERVAL, DEFAULT_FANOUT, DEFAULT_FIND_MAX};
pub use rate::{DEFAULT_PER_GROUP, DEFAULT_PER_PEER, Rates};
pub use violation::Violation;
