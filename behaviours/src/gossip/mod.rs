//! ENR gossip, `/peerfind/enr/1.0.0`: the first diagram of the design note.
//!
//! On every new connection both sides announce their own record ("Hello (ENR …)") and ask for
//! up to [`Config::find_max`] records the other knows. A bootnode (with [`Config::gossip`] on)
//! passes every new or updated record on to a bounded fanout of its peers ("Meet Alice (ENR
//! …)"), through a per-peer outbox that batches records when many arrive at once. Records go
//! through the [`crate::table`] rules; whatever breaks the protocol is dropped, logged once
//! with the peer and the reason, counted, and reported as [`Event::InputRejected`].
//!
//! Built on the shared `request_response` skeleton ([`crate::exchange`]) with a prost codec
//! ([`protocol`]); [`Gossip`], its rules, owns the record table.

mod behaviour;
mod outbox;
pub mod protocol;

pub use behaviour::{
    Behaviour, Config, DEFAULT_ANNOUNCE_INTERVAL, DEFAULT_FANOUT, DEFAULT_FIND_MAX, Event, Gossip,
    Offered, Violation,
};
