//! peerfind's integration tests: the real binary, several processes at once, on loopback
//! ([`process`]) and on hosts behind real NATs ([`lab`]), and the status API as a user on
//! such a host calls it ([`cli`]); and the container image in those hosts ([`container`]).
//! Tests wait on what a node's status API reports ([`api`]), not on its log lines.
//!
//! Tests whose names start with `lab_` need root (network namespaces, nftables); run the
//! others alone with `cargo test -p peerfind-tests -- --skip lab_`.

pub mod api;
pub mod cli;
pub mod container;
pub mod dns;
pub mod hostile;
pub mod http;
pub mod interop;
pub mod lab;
pub mod local;
pub mod process;
pub mod scenario;
pub mod sim;
