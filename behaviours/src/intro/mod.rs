//! Introductions, `/peerfind/intro/1.0.0`: the fourth diagram.
//!
//! Charlie sees the `nat` flag in Alice's record and asks a bootnode to introduce him
//! ([`Behaviour::ask`]). The bootnode checks his record and its rate limits, and forwards
//! "Hello Alice, from Charlie (his record)" only to a target connected to it; Alice checks the
//! record, answers that she is dialing, and the node dials Charlie ([`Event::Introduced`]):
//! her outgoing connection creates the mapping in her NAT that his dial could not. Her answer
//! travels back through the bootnode to Charlie ([`Event::Answered`]).
//!
//! An introduction makes the target dial whatever address the record names, so a record
//! naming someone else's `ip:port` would make her a reflector (the victim gets a TCP
//! connection and seven 1,200-byte QUIC packets per introduction). The rules close that:
//!
//! 1. A target takes an `Introduce` only from one of its configured bootnodes
//!    ([`Behaviour::set_bootnodes`]; none until told). From anyone else it is refused before
//!    its record is read ([`Refusal::NotFromBootnode`]).
//! 2. A bootnode vouches for the requester's address with what it observes: every IP the
//!    requester's record names must be one a direct connection of the requester comes from
//!    ([`crate::remotes`]; a relayed connection shows none). Otherwise the ask is refused
//!    ([`BadRecord::NotObserved`]). So a requester can make a target dial only its own IP;
//!    the port is not checked (the record's TCP and QUIC ports cannot both be seen on one
//!    connection, and a dial to the requester's own IP harms no one else).
//! 3. Work is rate-limited before any signature is checked. A bootnode counts each ask
//!    against the requester's IP group (an IPv4 /24 or IPv6 /64, [`Config::per_ip_group`];
//!    requesters seen on no direct connection share one count) and then against its PeerId
//!    ([`Config::per_requester`]); a target counts introductions per bootnode
//!    ([`Config::per_target`]). Each limiter holds at most 4,096 keys and, when full, forgets
//!    the oldest: fresh keys (free to make) lock nobody out, and share their group's count.
//! 4. A record in a request must be valid (size, signature), have an address to dial, and,
//!    in an ask, be the requester's own. A record naming no IP passes rule 2 and fails here
//!    at the bootnode and again at the target, which so never dials an address the record
//!    does not name (it can only answer, back through the bootnode).
//! 5. Every refusal is answered with its outcome ([`Outcome`]), reported
//!    ([`Event::Refused`]), counted by label when it broke a rule ([`Behaviour::rejected`]:
//!    an ask for a target the bootnode does not hold is an honest miss), and logged at
//!    debug; at warn at most once a minute per reason, with the count since.
//! 6. A requester's LAN addresses (private or unique-local TCP/QUIC addresses, at most
//!    [`protocol::MAX_LAN_ADDRS`], [`protocol::lan_addr`]) go to the target only when the
//!    bootnode sees both come from the same IP: two nodes behind one NAT, whose NAT may not
//!    hairpin. To any other target they are dropped, so they never leave the NAT's network
//!    but to the bootnode; the target dials them only where they are on one of its own
//!    networks (the node checks). An ask with more, or with any other address, breaks the
//!    wire rules and is refused.
//!
//! The bootnode also limits introductions per target and keeps at most a bounded number in
//! flight, so it can never be used as an amplifier.
//!
//! Built on the shared `request_response` skeleton ([`crate::exchange`]) with a prost codec
//! ([`protocol`]); [`Intro`] holds its rules, [`crate::limiter`] its rate limits and
//! `refusal.rs` its refusals.

mod behaviour;
pub mod protocol;
mod refusal;

pub use crate::limiter::Limit;
pub use behaviour::{Behaviour, Config, Event, Intro};
pub use protocol::Outcome;
pub use refusal::{BadRecord, Refusal};
