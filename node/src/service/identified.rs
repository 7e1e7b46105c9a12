//! Wiring: identify's answer on a connection reaches the own record (the observed address),
//! the ENR exchange, the mesh and its admission (which protocols the peer speaks), the NAT
//! window and the relay slots (what a bootnode offers); [`crate::upkeep::identities`] keeps
//! what it said.

use libp2p::{Multiaddr, PeerId, StreamProtocol, identify, swarm::ConnectionId};

use super::Node;
use crate::reach::nat;
use crate::status;
use crate::upkeep::identities::Identified;

impl Node {
    /// Identify's answer on one connection: our observed address, the ENR exchange with a
    /// peer that speaks it, and what a bootnode lacks (logged once per bootnode).
    pub(super) fn on_identify(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        info: &identify::Info,
    ) {
        self.on_observed(peer, connection, &info.observed_addr);
        let protocols: Vec<&StreamProtocol> = info.protocols.iter().collect();
        self.swarm
            .behaviour_mut()
            .gossip
            .on_identified(peer, protocols);
        if let Some(mesh) = self.swarm.behaviour_mut().mesh.as_mut() {
            mesh.identified(peer, info.protocols.iter());
        }
        if let Some(admission) = self.swarm.behaviour_mut().mesh_admission.as_mut() {
            // Members rule 4: a bootnode that speaks the admission protocol gets our proof.
            admission.with(|a, io| a.identified(io, peer, info.protocols.iter()));
        }
        let identified = Identified::new(info);
        let bootnode = self.bootnodes.contains(&peer);
        if bootnode && identified.tells_strangers() {
            // NAT rule 4: the window opens with the first bootnode that gossips our record.
            self.nat.bootnode_connected(tokio::time::Instant::now());
        }
        if bootnode && identified.has_relay() && self.nat.status().0 != nat::Status::Public {
            // Reach-state: a slot on its relay before the verdict, released if we are public.
            self.reserve_relay_slots();
        }
        if self.bootnodes.first_identify(peer) {
            let lacks = identified.lacks();
            if !lacks.is_empty() {
                tracing::info!(
                    %peer, agent = %identified.0.agent, lacks = %lacks.join("; "),
                    "bootnode is not a full peerfind bootnode; using it for what it offers"
                );
            }
        }
        self.identified.insert(peer, identified);
    }

    /// Connected peers whose record we do not hold, as `peers` lists them.
    pub(super) fn peers_without_record(&self) -> Vec<status::Peer> {
        let table = self.swarm.behaviour().gossip.table();
        self.connections
            .peers()
            .filter(|peer| table.get_by_peer(peer).is_none())
            .map(|peer| status::Peer {
                node_id: String::new(),
                peer_id: peer,
                enr: String::new(),
                seq: 0,
                addrs: Vec::<Multiaddr>::new(),
                nat: false,
                mappings: status::NatMappings::default(),
                last_seen: std::time::SystemTime::now(),
                met: status::Met::Connected,
                connection: self.connections.best(&peer),
                has_record: false,
                identify: self.identified.get(&peer),
                transports: self.connections.transports_of(&peer),
                rtt: self.connections.rtt_of(&peer),
            })
            .collect()
    }
}
