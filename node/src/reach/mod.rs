//! Reachability decisions: whether an observed address is ours, whether we are behind a NAT,
//! and how a peer we learned of is reached; and what the node remembers of its tries
//! (introductions asked, punches and circuits to retry, relay slots).
//!
//! Each file is a small state machine with numbered rules and its tests beside it: `confirm`
//! (observed-address votes), `nat` (the NAT verdict), `strategy` (direct dial, introduction,
//! circuit), `guess` (port guessing's ports, spray and listeners), `attempts` (retries and
//! their backoff), `reservation` (relay slots), `mapping`
//! (the port our router forwards to us, and whether a dial-back proved it). They take
//! facts as arguments and return decisions; none touches the swarm, which is
//! `crate::service`'s to drive. They may use `crate::status` for the types they report.

pub mod attempts;
pub mod confirm;
pub mod guess;
pub mod mapping;
pub mod nat;
pub mod reservation;
pub mod strategy;
