//! `peerfind ping`: one round trip per call, over the peer's best connection
//! (`peerfind_behaviours::rtt` picks it and measures), told with the path it took.
//!
//! The node holds each round's reply until its end arrives; a round always ends (the
//! behaviour's rule 3), and at most [`MAX_ROUNDS`] wait at once, so API callers cannot grow the
//! map beyond that.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::Multiaddr;
use peerfind_behaviours::enr_ext::Transport;
use peerfind_behaviours::rtt::{self, RoundId};
use tokio::sync::oneshot;

/// Rounds in flight at once, all callers together: a few people or scripts pinging a few
/// peers each.
pub const MAX_ROUNDS: usize = 64;

/// The connection a round went over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingPath {
    /// Through a relay's circuit.
    pub relayed: bool,
    /// The transport: of the connection, or for a relayed one of the connection to the relay.
    pub transport: Option<Transport>,
    /// The connection's remote address (for a relayed one, the relay's, with `/p2p-circuit`).
    pub remote: Multiaddr,
}

impl From<rtt::Path> for PingPath {
    fn from(path: rtt::Path) -> Self {
        Self {
            relayed: path.relayed,
            transport: path.transport,
            remote: path.remote,
        }
    }
}

/// What one call of `ping` gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingAnswer {
    /// No connection to the peer is open: nothing to measure.
    NotConnected,
    /// [`MAX_ROUNDS`] rounds are in flight already.
    Busy,
    /// The round went over `path` and took `rtt`, or failed with the reason given.
    Round {
        /// Where it went.
        path: PingPath,
        /// Its round trip, or why there is none.
        rtt: Result<Duration, String>,
    },
}

/// The replies of rounds in flight.
#[derive(Debug, Default)]
pub struct Rounds {
    waiting: HashMap<RoundId, (PingPath, oneshot::Sender<PingAnswer>)>,
}

impl Rounds {
    /// Whether another round may start.
    pub fn has_room(&self) -> bool {
        self.waiting.len() < MAX_ROUNDS
    }

    /// `round` started over `path`; its answer goes to `reply`.
    pub fn started(&mut self, round: RoundId, path: PingPath, reply: oneshot::Sender<PingAnswer>) {
        self.waiting.insert(round, (path, reply));
    }

    /// `round` ended: its caller hears, if still there.
    pub fn ended(&mut self, round: RoundId, rtt: Result<Duration, rtt::Failure>) {
        if let Some((path, reply)) = self.waiting.remove(&round) {
            let _ = reply.send(PingAnswer::Round {
                path,
                rtt: rtt.map_err(|e| e.to_string()),
            });
        }
    }
}
