//! Records from others: the ENR exchange's news ("Meet Alice": a record learned or updated,
//! which the strategy then acts on, and on bootnodes publishes to the record mesh, wired in
//! `mesh.rs`).

use std::net::IpAddr;

use libp2p::PeerId;
use peerfind_behaviours::enr_ext::{self, Enr};
use peerfind_behaviours::gossip;

use super::Node;
use crate::status;

impl Node {
    pub(super) fn on_gossip(&mut self, event: gossip::Event) {
        match event {
            gossip::Event::RecordLearned { enr, peer_id, from } => {
                self.vouch(&enr, peer_id);
                self.publish_to_mesh(&enr);
                self.swarm.behaviour_mut().intro.remember(enr.node_id());
                self.hub.publish(status::Event::RecordLearned {
                    peer_id,
                    seq: enr.seq(),
                    nat: enr_ext::is_natted(&enr),
                    from,
                });
                self.reach(&enr, peer_id)
            }
            gossip::Event::RecordUpdated {
                enr, peer_id, from, ..
            } => {
                self.vouch(&enr, peer_id);
                self.publish_to_mesh(&enr);
                self.hub.publish(status::Event::RecordUpdated {
                    peer_id,
                    seq: enr.seq(),
                    nat: enr_ext::is_natted(&enr),
                    from,
                });
                self.reach(&enr, peer_id)
            }
            gossip::Event::InputRejected { .. } => {}
        }
    }

    /// Dial guard rule 4: the IPs of a record taken with proof (gossip admission, or an
    /// introduction its bootnode vouched for) may be dialed for its owner.
    pub(super) fn vouch(&mut self, enr: &Enr, peer: PeerId) {
        let ips = [enr.ip4().map(IpAddr::V4), enr.ip6().map(IpAddr::V6)]
            .into_iter()
            .flatten()
            .collect();
        self.swarm.behaviour_mut().dial_guard.vouch(peer, ips);
    }
}
