//! What can go wrong when making, using or removing a lab.

use std::fmt;
use std::io;
use std::process::ExitStatus;

use super::Host;

/// What can go wrong when making, using or removing a lab.
#[derive(thiserror::Error)]
pub enum LabError {
    /// This machine or process cannot make a lab: not root, or `ip` or `nft` missing.
    #[error(
        "the NAT lab needs root and iproute2 (`ip`) and nftables (`nft`), and {reason}. Run the \
         lab tests as root on Linux after `apt-get install -y iproute2 nftables conntrack`, or \
         run only the tests that need neither: `cargo test -- --skip lab_`"
    )]
    Unavailable {
        /// What is missing.
        reason: String,
    },
    /// A command the lab runs could not be started or waited for.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: io::Error,
    },
    /// A command the lab runs failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// What it printed on standard error, and its input.
        stderr: String,
    },
    /// An operation of the lab's own process failed: entering a namespace, scanning processes.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// A prefix that cannot name a lab, or names one that exists already.
    #[error("lab prefix {prefix:?} {reason}")]
    Prefix {
        /// The prefix asked for.
        prefix: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An impairment that cannot be emulated.
    #[error("{host}'s uplink: the loss rate must be from 0 to 1, not {loss}")]
    Loss {
        /// Whose uplink.
        host: Host,
        /// The rate asked for.
        loss: f64,
    },
    /// A host name that names no host.
    #[error(
        "no host is called {0:?}: try bootnode, charlie, alice, bob, nat-a, nat-b, home-a or home-b"
    )]
    UnknownHost(String),
    /// Placements that describe no network.
    #[error("no such topology: {0}")]
    Topology(&'static str),
}

impl LabError {
    pub(super) fn io(what: impl Into<String>, source: io::Error) -> Self {
        LabError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Shows the message, so that a test's `expect` or `unwrap` prints what to do.
impl fmt::Debug for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
