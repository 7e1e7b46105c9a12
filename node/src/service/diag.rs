//! Wiring: `peerfind ping` and `peerfind netcheck` answered from the swarm and the connection
//! book ([`crate::diag`] has the rules).

use libp2p::PeerId;
use peerfind_behaviours::rtt;
use tokio::sync::oneshot;

use super::Node;
use crate::diag::netcheck::{self, Netcheck, Seen};
use crate::diag::ping::PingAnswer;

impl Node {
    /// Starts a round to `peer`; the answer goes to `reply` when it ends.
    pub(super) fn start_ping(&mut self, peer: PeerId, reply: oneshot::Sender<PingAnswer>) {
        if !self.rounds.has_room() {
            let _ = reply.send(PingAnswer::Busy);
            return;
        }
        match self.swarm.behaviour_mut().rtt.ping(peer) {
            Some((round, path)) => self.rounds.started(round, path.into(), reply),
            None => {
                let _ = reply.send(PingAnswer::NotConnected);
            }
        }
    }

    /// A round ended. An answer proves the connection alive as libp2p's own ping does
    /// (liveness rule 2): a diagnostic's rounds never leave it looking silent.
    pub(super) fn on_rtt(&mut self, event: rtt::Event) {
        if let Ok(rtt) = &event.result {
            self.connections
                .ping_answered(event.connection, tokio::time::Instant::now(), *rtt);
        }
        self.rounds.ended(event.round, event.result);
    }

    /// What the configured bootnodes see of us (netcheck rule 1 applied here: only their
    /// reports, on connections from our listen port).
    pub(super) fn netcheck(&self) -> Netcheck {
        let mut seen = Vec::new();
        let mut reached = Vec::new();
        for bootnode in self.bootnodes.iter() {
            for (transport, observed) in self.connections.reports_of(&bootnode.peer_id) {
                reached.push((bootnode.peer_id, transport));
                if let Some(observed) = observed {
                    seen.push(Seen {
                        bootnode: bootnode.peer_id,
                        transport,
                        observed,
                    });
                }
            }
        }
        let confirmed: Vec<_> = self.swarm.external_addresses().cloned().collect();
        netcheck::check(seen, &reached, &confirmed)
    }
}
