//! libp2p's identify, minus one thing it tells: the address a relayed peer is "observed" at.
//!
//! Identify tells each peer the address we see it at, taken from the connection. Over a relay
//! circuit there is no such address: rust-libp2p gives the listener of a circuit `/p2p/<dialer>`
//! as the dialer's address, and the dialer of one the whole circuit, which names the relay's
//! IP and port, not the peer's. js-libp2p 3.3 takes the first for an address and fails on it
//! (`addObservedAddr` throws, its identify ends, no `peer:identify`), so a js peer that reached
//! a peerfind node through a circuit never identified it; the second would give any peer the
//! relay's public address as its own. On a relayed connection identify therefore tells no
//! observed address (the field is sent empty, which every implementation reads as none), and
//! on a direct one what libp2p tells.

use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, multiaddr::Protocol};
use libp2p::identify;
use libp2p::swarm::{ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler};
use libp2p::{Multiaddr, PeerId};

/// Whether `addr` goes through a relay circuit.
fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// The address identify tells the peer at the other end of a connection whose addresses are
/// `local` (ours: the listen address, or none for a dial) and `remote` (the peer's): none
/// when either goes through a circuit.
fn observed(local: Option<&Multiaddr>, remote: &Multiaddr) -> Multiaddr {
    if local.is_some_and(is_relayed) || is_relayed(remote) {
        Multiaddr::empty()
    } else {
        remote.clone()
    }
}

/// libp2p's identify behaviour that tells no observed address over a circuit. See the
/// module doc; everything else is identify's own.
pub struct Identify {
    inner: identify::Behaviour,
}

impl Identify {
    /// Identify with `config`.
    pub fn new(config: identify::Config) -> Self {
        Self {
            inner: identify::Behaviour::new(config),
        }
    }
}

impl NetworkBehaviour for Identify {
    type ConnectionHandler = <identify::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = identify::Event;

    peerfind_behaviours::forward_pending_connections!(inner);

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            &observed(Some(local_addr), remote_addr),
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            &observed(None, addr),
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event);
    }

    peerfind_behaviours::forward_handler_events!(inner);

    peerfind_behaviours::forward_poll!(inner);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("a valid multiaddr")
    }

    const DIALER: &str = "12D3KooWK9XPjtwgc7dsf5X6q82EsTcZnYPDeEEfYp9LbGQCon5F";

    #[test]
    fn a_direct_connection_tells_the_peer_its_address() {
        let remote = addr("/ip4/198.51.100.7/tcp/40123");
        assert_eq!(
            observed(Some(&addr("/ip4/0.0.0.0/tcp/9000")), &remote),
            remote
        );
        assert_eq!(observed(None, &remote), remote);
    }

    #[test]
    fn the_listener_of_a_circuit_tells_no_address() {
        // What the relay client gives as the dialer's address: no address at all.
        let local = addr(
            "/ip4/198.51.100.1/tcp/9000/p2p/12D3KooWSDtR8yLnVQFhvcbSyde5CgGmGZvk68AKBVVhuG5nqQES/p2p-circuit",
        );
        let remote = addr(&format!("/p2p/{DIALER}"));
        assert_eq!(observed(Some(&local), &remote), Multiaddr::empty());
    }

    #[test]
    fn the_dialer_of_a_circuit_tells_no_address() {
        // The relay's address, which is not the peer's.
        let remote = addr(&format!(
            "/ip4/198.51.100.1/tcp/9000/p2p/12D3KooWSDtR8yLnVQFhvcbSyde5CgGmGZvk68AKBVVhuG5nqQES/p2p-circuit/p2p/{DIALER}"
        ));
        assert_eq!(observed(None, &remote), Multiaddr::empty());
    }
}
