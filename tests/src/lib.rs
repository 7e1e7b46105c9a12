//! peerfind's integration tests: the real binary, several processes at once, on loopback
//! ([`process`]) and on hosts behind real NATs ([`lab`]).
//!
//! Tests whose names start with `lab_` need root (network namespaces, nftables); run the
//! others alone with `cargo test -p peerfind-tests -- --skip lab_`.

pub mod lab;
pub mod process;
pub mod scenario;
