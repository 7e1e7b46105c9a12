//! Introductions, `/peerfind/intro/1.0.0`: the fourth diagram.
//!
//! Charlie sees the `nat` flag in Alice's record and asks a bootnode to introduce him
//! ([`Behaviour::ask`]). The bootnode checks his record (valid, his own, with an address) and
//! its rate limits, and forwards "Hello Alice, from Charlie (his record)" only to a target
//! connected to it; Alice checks the record, answers that she is dialing, and the node dials
//! Charlie ([`Event::Introduced`]): her outgoing connection creates the mapping in her NAT that
//! his dial could not. Her answer travels back through the bootnode to Charlie
//! ([`Event::Answered`]).
//!
//! Refusals are answered with the reason ([`Outcome`]): unknown target, target not connected,
//! rate limited, bad record. A bootnode limits asks per requester and introductions per
//! target, and keeps at most a bounded number in flight, so it can never be used as an
//! amplifier.
//!
//! Built on the shared `request_response` skeleton ([`crate::exchange`]) with a prost codec
//! ([`protocol`]); [`Intro`] holds its rules.

mod behaviour;
pub mod protocol;

pub use behaviour::{BadRecord, Behaviour, Config, Event, Intro, Limit};
pub use protocol::Outcome;
