//! gossipsub, told of a connection only once its peer is known to speak gossipsub.
//!
//! gossipsub greets every new connection with our subscriptions, on a stream it opens at
//! once. A bootnode's connections are mostly to peers (peerfind peers run no gossipsub, nor
//! do most foreign peers), so each of them got a stream the peer refused, beside identify and
//! ping, the instant it came up: a wasted negotiation per joining peer, and the kind of early
//! stream py-libp2p's QUIC stumbles on. This gate holds the connection back from gossipsub
//! until the peer shows it speaks gossipsub.
//!
//! Rules:
//! 1. A new connection waits, unless its peer already showed it speaks gossipsub.
//! 2. A peer shows it by listing a gossipsub protocol in identify ([`Gated::identified`]) or
//!    by any gossipsub event from one of its connections (it opened a gossipsub stream to us):
//!    every connection of it that waits is then passed on, in order, with the count of its
//!    connections gossipsub was told of before it.
//! 3. A closed connection is always passed on: gossipsub registers a connection when it
//!    makes its handler, whether told of it or not, and forgets it only at its close.
//!
//! What the gate does not hold back: gossipsub 0.50 queues an extensions message for a new
//! peer when it makes the connection's handler, and the handler opens a stream for it at
//! once, before the swarm reports the connection. Its negotiation fails against a peer that
//! does not speak gossipsub, except that the last protocol offered (`/meshsub/1.0.0`) is
//! sent lazily, so the handler reports that peer kind and rule 2 takes it for the peer's
//! word. A handler wrapped to stay unpolled until released does hold all of it back, and
//! was tried: py-libp2p 0.8.1 then completed identify + ping over QUIC in 13-20 of 20 tries
//! (mean 16) instead of 18-20 (mean 19), the same stream race of its own as against a plain
//! rust-libp2p node, made likelier by fewer streams from us. One refused stream per peer
//! costs a bootnode less than that, so it stays.
//!
//! The state is one entry per waiting connection and one per connected peer that speaks
//! gossipsub, each gone at the connection's or the peer's last close: bounded by the
//! connections.

use std::collections::{HashMap, HashSet};
use std::ops::{Deref, DerefMut};

use libp2p::core::ConnectedPoint;
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::{ConnectionId, FromSwarm, NetworkBehaviour, THandlerOutEvent};
use libp2p::{PeerId, StreamProtocol, gossipsub};

/// The protocol ids gossipsub speaks (v1.0 to v1.2).
fn is_gossipsub(protocol: &StreamProtocol) -> bool {
    protocol.as_ref().starts_with("/meshsub/")
}

/// gossipsub behind the gate. See the module doc.
pub struct Gated {
    inner: gossipsub::Behaviour,
    /// Rule 1: connections gossipsub was not told of yet, oldest first per peer.
    waiting: HashMap<PeerId, Vec<(ConnectionId, ConnectedPoint)>>,
    /// Rule 2: connections gossipsub was told of, per peer.
    told: HashMap<PeerId, HashSet<ConnectionId>>,
    /// Rule 2: connected peers that showed they speak gossipsub.
    speaking: HashSet<PeerId>,
}

impl Gated {
    /// `inner` behind the gate.
    pub fn new(inner: gossipsub::Behaviour) -> Self {
        Self {
            inner,
            waiting: HashMap::new(),
            told: HashMap::new(),
            speaking: HashSet::new(),
        }
    }

    /// Identify told us `peer`'s protocols (rule 2).
    pub fn identified<'a>(
        &mut self,
        peer: PeerId,
        mut protocols: impl Iterator<Item = &'a StreamProtocol>,
    ) {
        if protocols.any(is_gossipsub) {
            self.speaks(peer);
        }
    }

    /// Rule 2: `peer` speaks gossipsub; gossipsub is told of its waiting connections.
    fn speaks(&mut self, peer: PeerId) {
        self.speaking.insert(peer);
        for (connection, endpoint) in self.waiting.remove(&peer).unwrap_or_default() {
            self.tell(peer, connection, &endpoint);
        }
    }

    fn tell(&mut self, peer: PeerId, connection: ConnectionId, endpoint: &ConnectedPoint) {
        let told = self.told.entry(peer).or_default();
        let other_established = told.len();
        told.insert(connection);
        self.inner
            .on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id: peer,
                connection_id: connection,
                endpoint,
                failed_addresses: &[],
                other_established,
            }));
    }

    fn is_waiting(&self, peer: &PeerId, connection: ConnectionId) -> bool {
        self.waiting
            .get(peer)
            .is_some_and(|w| w.iter().any(|(id, _)| *id == connection))
    }
}

impl Deref for Gated {
    type Target = gossipsub::Behaviour;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl DerefMut for Gated {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl NetworkBehaviour for Gated {
    type ConnectionHandler = <gossipsub::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = gossipsub::Event;

    peerfind_behaviours::forward_connection_handling!(inner);

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                if self.speaking.contains(&e.peer_id) {
                    self.tell(e.peer_id, e.connection_id, e.endpoint);
                } else {
                    self.waiting
                        .entry(e.peer_id)
                        .or_default()
                        .push((e.connection_id, e.endpoint.clone()));
                }
            }
            FromSwarm::ConnectionClosed(e) => {
                if let Some(waiting) = self.waiting.get_mut(&e.peer_id) {
                    waiting.retain(|(id, _)| *id != e.connection_id);
                    if waiting.is_empty() {
                        self.waiting.remove(&e.peer_id);
                    }
                }
                if let Some(told) = self.told.get_mut(&e.peer_id) {
                    told.remove(&e.connection_id);
                    if told.is_empty() {
                        self.told.remove(&e.peer_id);
                    }
                }
                if e.remaining_established == 0 {
                    self.speaking.remove(&e.peer_id);
                }
                self.inner.on_swarm_event(FromSwarm::ConnectionClosed(e));
            }
            FromSwarm::AddressChange(ref e) if self.is_waiting(&e.peer_id, e.connection_id) => {
                if let Some(waiting) = self.waiting.get_mut(&e.peer_id) {
                    for (id, endpoint) in waiting.iter_mut() {
                        if *id == e.connection_id {
                            *endpoint = e.new.clone();
                        }
                    }
                }
            }
            other => self.inner.on_swarm_event(other),
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        if self.is_waiting(&peer_id, connection_id) {
            // Rule 2: the event comes from a stream the peer opened, or from the one the
            // handler opened for gossipsub's extensions message (see the module doc).
            self.speaks(peer_id);
        }
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    peerfind_behaviours::forward_poll!(inner);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use libp2p::core::Endpoint;
    use libp2p::core::transport::PortUse;
    use libp2p::identity::Keypair;
    use libp2p::swarm::behaviour::ConnectionClosed;

    use super::*;
    use crate::mesh::{self, DEFAULT_TOPIC};

    fn gate() -> Gated {
        Gated::new(mesh::behaviour(&Keypair::generate_secp256k1(), DEFAULT_TOPIC).unwrap())
    }

    fn endpoint() -> ConnectedPoint {
        ConnectedPoint::Dialer {
            address: "/ip4/198.51.100.7/tcp/9000".parse().unwrap(),
            role_override: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        }
    }

    /// The swarm's side of a connection: gossipsub makes its handler, then hears of it.
    fn open(gate: &mut Gated, peer: PeerId, id: usize, others: usize) -> ConnectionId {
        let id = ConnectionId::new_unchecked(id);
        let endpoint = endpoint();
        let addr = endpoint.get_remote_address().clone();
        gate.handle_established_outbound_connection(
            id,
            peer,
            &addr,
            Endpoint::Dialer,
            PortUse::Reuse,
        )
        .unwrap();
        gate.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: peer,
            connection_id: id,
            endpoint: &endpoint,
            failed_addresses: &[],
            other_established: others,
        }));
        id
    }

    fn close(gate: &mut Gated, peer: PeerId, id: ConnectionId, remaining: usize) {
        gate.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: peer,
            connection_id: id,
            endpoint: &endpoint(),
            cause: None,
            remaining_established: remaining,
        }));
    }

    #[test]
    fn a_connection_waits_until_identify_lists_gossipsub() {
        let mut gate = gate();
        let (peer, bootnode) = (PeerId::random(), PeerId::random());
        let first = open(&mut gate, peer, 1, 0);
        let other = open(&mut gate, bootnode, 2, 0);
        assert!(gate.is_waiting(&peer, first) && gate.is_waiting(&bootnode, other));
        let plain = [
            StreamProtocol::new("/ipfs/id/1.0.0"),
            StreamProtocol::new("/ipfs/ping/1.0.0"),
        ];
        gate.identified(peer, plain.iter());
        assert!(
            gate.is_waiting(&peer, first),
            "rule 1: no gossipsub, no greeting"
        );
        let speaks = [StreamProtocol::new("/meshsub/1.1.0")];
        gate.identified(bootnode, speaks.iter());
        assert!(!gate.is_waiting(&bootnode, other), "rule 2");
        assert_eq!(gate.told[&bootnode], HashSet::from([other]));
        let second = open(&mut gate, bootnode, 3, 1);
        assert_eq!(
            gate.told[&bootnode].len(),
            2,
            "rule 1: a speaking peer's next connection"
        );
        assert!(!gate.is_waiting(&bootnode, second));
    }

    #[test]
    fn every_close_reaches_gossipsub_and_leaves_nothing_behind() {
        let mut gate = gate();
        let (peer, bootnode) = (PeerId::random(), PeerId::random());
        let waiting = open(&mut gate, peer, 1, 0);
        let told = open(&mut gate, bootnode, 2, 0);
        gate.identified(bootnode, [StreamProtocol::new("/meshsub/1.2.0")].iter());
        // Rule 3: gossipsub forgets both peers; it would panic on a close it cannot place.
        close(&mut gate, peer, waiting, 0);
        close(&mut gate, bootnode, told, 0);
        assert!(gate.waiting.is_empty() && gate.told.is_empty() && gate.speaking.is_empty());
        assert_eq!(gate.all_peers().count(), 0);
    }
}
