//! libp2p's relay client (circuit relay v2), kept from one panic of its own.
//!
//! A node gives back its relay slot when it finds it is public (`reach/reservation.rs` rule 4):
//! it removes the reservation's listener, and the relay client forgets the reservation. If the
//! relay's answer to that reservation is still on its way (the verdict often comes within a
//! round trip of asking, and a renewal may be in flight at any time), libp2p-relay 0.22's
//! client gets an acceptance for a reservation it no longer knows and panics ("Relay
//! connection exist"), taking the node down. So the events of a relay's connection handlers
//! reach the client only while the node has not given back its slot on that relay.
//!
//! Rules:
//! 1. After the node gives back its slot on a relay, that relay's handler events are dropped:
//!    the late answer to the reservation, and what the client would only have reported (a
//!    circuit through that relay opened); circuits themselves are not affected.
//! 2. Asking that relay for a slot again, or losing the last connection to it, ends rule 1.
//!
//! The state is one entry per relay given back: bounded by the bootnodes.

use std::collections::HashSet;

use libp2p::swarm::{ConnectionId, FromSwarm, NetworkBehaviour, THandlerOutEvent};
use libp2p::{PeerId, relay};

/// The relay client behind rule 1. See the module doc.
pub struct RelayClient {
    inner: relay::client::Behaviour,
    /// Relays whose slot the node gave back (rule 1).
    given_back: HashSet<PeerId>,
}

impl RelayClient {
    /// `inner`, passing everything on until a slot is given back.
    pub fn new(inner: relay::client::Behaviour) -> Self {
        Self {
            inner,
            given_back: HashSet::new(),
        }
    }

    /// The node removed its reservation listener on `relay` (rule 1).
    pub fn gave_back(&mut self, relay: PeerId) {
        self.given_back.insert(relay);
    }

    /// The node asks `relay` for a slot (rule 2).
    pub fn asking(&mut self, relay: PeerId) {
        self.given_back.remove(&relay);
    }

    /// Whether the handler events of `relay`'s connections reach the client.
    fn passes(&self, relay: &PeerId) -> bool {
        !self.given_back.contains(relay)
    }
}

impl NetworkBehaviour for RelayClient {
    type ConnectionHandler = <relay::client::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = relay::client::Event;

    peerfind_behaviours::forward_connection_handling!(inner);

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(closed) = &event
            && closed.remaining_established == 0
        {
            // Rule 2: with no connection left, no answer can come.
            self.given_back.remove(&closed.peer_id);
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        if !self.passes(&peer_id) {
            tracing::debug!(relay = %peer_id, "dropped a relay handler event: the slot on this relay was given back");
            return;
        }
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    peerfind_behaviours::forward_poll!(inner);
}

#[cfg(test)]
mod tests {
    use libp2p::core::{ConnectedPoint, Endpoint, transport::PortUse};
    use libp2p::swarm::behaviour::{ConnectionClosed, ConnectionEstablished};

    use super::*;

    fn client() -> RelayClient {
        let (_, inner) = relay::client::new(PeerId::random());
        RelayClient::new(inner)
    }

    fn endpoint() -> ConnectedPoint {
        ConnectedPoint::Dialer {
            address: "/ip4/198.51.100.10/tcp/9000".parse().expect("an address"),
            role_override: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        }
    }

    fn established(client: &mut RelayClient, peer: PeerId, id: usize, others: usize) {
        client.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: peer,
            connection_id: ConnectionId::new_unchecked(id),
            endpoint: &endpoint(),
            failed_addresses: &[],
            other_established: others,
        }));
    }

    fn closed(client: &mut RelayClient, peer: PeerId, id: usize, remaining: usize) {
        client.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: peer,
            connection_id: ConnectionId::new_unchecked(id),
            endpoint: &endpoint(),
            cause: None,
            remaining_established: remaining,
        }));
    }

    #[test]
    fn a_relay_whose_slot_was_given_back_is_not_heard_until_asked_again() {
        let mut client = client();
        let (relay, other) = (PeerId::random(), PeerId::random());
        assert!(client.passes(&relay));
        client.gave_back(relay);
        assert!(!client.passes(&relay), "rule 1");
        assert!(client.passes(&other), "rule 1 is per relay");
        client.asking(relay);
        assert!(client.passes(&relay), "rule 2: asked again");
    }

    #[test]
    fn losing_the_last_connection_to_a_relay_forgets_it() {
        let mut client = client();
        let relay = PeerId::random();
        established(&mut client, relay, 1, 0);
        established(&mut client, relay, 2, 1);
        client.gave_back(relay);
        closed(&mut client, relay, 1, 1);
        assert!(!client.passes(&relay), "one connection is left");
        closed(&mut client, relay, 2, 0);
        assert!(client.passes(&relay), "rule 2: no connection left");
        assert!(client.given_back.is_empty());
    }
}
