//! Connection upkeep: which connections are open and what each is (direct TCP or QUIC,
//! relayed, which port it left from), whether each is still alive, keeping every bootnode
//! connected per transport, the listeners' readiness, and what each connected peer's
//! identify said.
//!
//! Each file owns one piece of that state, as a small state machine with numbered rules and
//! tests beside it: `connections` (the connection book), `liveness` (when a connection is
//! dead), `redial` (when to dial a bootnode again), `bootnodes` (the configured bootnodes),
//! `listeners` (ready to dial, advertised addresses), `identities` (identify's answers).
//! Nothing here touches the swarm: `crate::service` feeds it swarm events and carries out
//! the dials and closes it asks for. It may use `crate::config`, `crate::reach::confirm`'s
//! leg type and `crate::status`.

pub mod bootnodes;
pub mod connections;
pub mod identities;
pub mod listeners;
pub mod liveness;
pub mod redial;
