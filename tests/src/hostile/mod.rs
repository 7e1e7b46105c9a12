//! Hostile peers for the adversarial suite (`tests/tests/hostile_*.rs`): libp2p swarms built
//! here that speak peerfind's protocols, or libp2p's, the way an attacker would (forged
//! records, false observed addresses, floods), and the victims they aim at. Each attack runs
//! against the real binary on loopback; the tests assert what a user can see: the victim's
//! counts, the node's status API, its tables.

pub mod dcutr;
pub mod gossip;
pub mod intro;
pub mod limits;
pub mod mesh;
pub mod observed;
pub mod relay;
pub mod table;
pub mod victim;
