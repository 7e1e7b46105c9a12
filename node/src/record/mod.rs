//! The node's own record and key: the signed ENR with its seq, the one secp256k1 key that is
//! both the libp2p identity and the record's signer, and the data directory that keeps both
//! across restarts.
//!
//! Owns: the key (`identity`), the own record and how it changes (`enr`), the files
//! (`data_dir`), and `peerfind enr decode` (`inspect`). Uses only `peerfind-behaviours`'
//! ENR keys; nothing here knows the swarm, so a record change is decided elsewhere
//! (`crate::service`'s `own_record`) and carried out here.

pub mod data_dir;
pub mod enr;
pub mod identity;
pub mod inspect;
