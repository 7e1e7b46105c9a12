//! libp2p's identify, minus one thing it tells: the address a relayed peer is "observed" at.
//!
//! Works around: libp2p-identify 0.48.0 (Cargo.lock), which tells a peer, as the address it is
//! observed at, the connection's remote address unchanged: `Behaviour::
//! handle_established_inbound_connection` and `handle_established_outbound_connection`
//! (`src/behaviour.rs`) hand it to `Handler::new`, and `Handler::build_info`
//! (`src/handler.rs`) sends it. For the listener of a circuit that address is `/p2p/<dialer>`,
//! the `send_back_addr` libp2p-relay 0.22.0's client transport gives an inbound circuit
//! (`Listener::poll_next`, `src/priv_client/transport.rs`); for its dialer it is the circuit
//! through the relay's address. No rust-libp2p issue found; behaviour in `src/behaviour.rs`:
//! `Behaviour::handle_established_inbound_connection`. Other implementations avoid it:
//! js-libp2p sends only IP and DNS observed addresses since libp2p/js-libp2p#2201, and
//! go-libp2p (#3043) and nim-libp2p (#990) ignore observations made over a relayed connection.
//! Remove when: libp2p-identify tells no observed address over a relayed connection (then
//! `upstream_identify_still_tells_the_ends_of_a_circuit_a_peer_id_and_the_relays_address`
//! fails), or, for the listener's half only, when no peer we serve runs a js-libp2p whose
//! `addObservedAddr` throws on `/p2p/<id>` (3.3 does).
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
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use either::Either;
    use futures::StreamExt;
    use libp2p::core::muxing::StreamMuxerBox;
    use libp2p::core::transport::{Boxed, MemoryTransport, Transport as _, upgrade::Version};
    use libp2p::identity::Keypair;
    use libp2p::swarm::{Swarm, SwarmEvent};
    use libp2p::{noise, relay, yamux};

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

    /// A peer of the circuit tests: a relay client, and libp2p's identify (left) or ours.
    #[derive(NetworkBehaviour)]
    struct Peer {
        relay: relay::client::Behaviour,
        identify: Either<identify::Behaviour, Identify>,
    }

    /// How long a circuit test may take before it fails (it takes milliseconds).
    const CIRCUIT_TIMEOUT: Duration = Duration::from_secs(30);

    /// Connections stay open longer than any test.
    const IDLE: Duration = Duration::from_secs(60);

    /// libp2p's in-memory transport, authenticated with noise, multiplexed with yamux.
    fn memory(key: &Keypair) -> Boxed<(PeerId, StreamMuxerBox)> {
        MemoryTransport::default()
            .upgrade(Version::V1)
            .authenticate(noise::Config::new(key).unwrap())
            .multiplex(yamux::Config::default())
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed()
    }

    fn relay_node() -> Swarm<relay::Behaviour> {
        libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_other_transport(memory)
            .unwrap()
            .with_behaviour(|key| {
                relay::Behaviour::new(key.public().to_peer_id(), relay::Config::default())
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE))
            .build()
    }

    fn peer(upstream: bool) -> Swarm<Peer> {
        libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_other_transport(memory)
            .unwrap()
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .unwrap()
            .with_behaviour(|key, relay| {
                let config = identify::Config::new("/peerfind-test/1".into(), key.public());
                let identify = if upstream {
                    Either::Left(identify::Behaviour::new(config))
                } else {
                    Either::Right(Identify::new(config))
                };
                Peer { relay, identify }
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE))
            .build()
    }

    /// What identify told each end of a circuit through a relay.
    struct Told {
        /// The relay's circuit address: `/memory/<port>/p2p/<relay>/p2p-circuit`.
        circuit: Multiaddr,
        dialer: PeerId,
        /// The observed address the circuit's listener told its dialer.
        to_dialer: Multiaddr,
        /// The observed address the circuit's dialer told its listener.
        to_listener: Multiaddr,
    }

    /// A relay, a listener with a slot on it, and a dialer that reaches the listener through
    /// the relay, all in memory; each end runs libp2p's identify (`upstream`) or ours.
    async fn identify_over_a_circuit(upstream: bool) -> Told {
        let mut relay = relay_node();
        let relay_addr = Multiaddr::empty().with(Protocol::Memory(rand::random()));
        relay.listen_on(relay_addr.clone()).unwrap();
        relay.add_external_address(relay_addr.clone());
        let circuit = relay_addr
            .with(Protocol::P2p(*relay.local_peer_id()))
            .with(Protocol::P2pCircuit);
        let relay = tokio::spawn(async move {
            loop {
                relay.select_next_some().await;
            }
        });

        let mut listener = peer(upstream);
        let listener_id = *listener.local_peer_id();
        listener.listen_on(circuit.clone()).unwrap();
        // The relay granted the slot.
        while !matches!(
            listener.select_next_some().await,
            SwarmEvent::NewListenAddr { address, .. } if is_relayed(&address)
        ) {}

        let mut dialer = peer(upstream);
        let dialer_id = *dialer.local_peer_id();
        dialer
            .dial(circuit.clone().with(Protocol::P2p(listener_id)))
            .unwrap();
        let (mut to_dialer, mut to_listener) = (None, None);
        while to_dialer.is_none() || to_listener.is_none() {
            tokio::select! {
                event = dialer.select_next_some() => {
                    if let SwarmEvent::Behaviour(PeerEvent::Identify(event)) = event
                        && let identify::Event::Received { peer_id, info, .. } = event.into_inner()
                        && peer_id == listener_id
                    {
                        to_dialer = Some(info.observed_addr);
                    }
                }
                event = listener.select_next_some() => {
                    if let SwarmEvent::Behaviour(PeerEvent::Identify(event)) = event
                        && let identify::Event::Received { peer_id, info, .. } = event.into_inner()
                        && peer_id == dialer_id
                    {
                        to_listener = Some(info.observed_addr);
                    }
                }
            }
        }
        relay.abort();
        Told {
            circuit,
            dialer: dialer_id,
            to_dialer: to_dialer.unwrap(),
            to_listener: to_listener.unwrap(),
        }
    }

    /// Canary: what this wrapper exists for. If libp2p-identify stops telling these, the
    /// wrapper may no longer be needed (or, if it tells something else, may be wrong).
    #[tokio::test]
    async fn upstream_identify_still_tells_the_ends_of_a_circuit_a_peer_id_and_the_relays_address()
    {
        let told = tokio::time::timeout(CIRCUIT_TIMEOUT, identify_over_a_circuit(true))
            .await
            .expect("identify ran over the circuit");
        assert_eq!(
            told.to_dialer,
            Multiaddr::empty().with(Protocol::P2p(told.dialer)),
            "libp2p-identify no longer tells the dialer of a circuit `/p2p/<dialer>` as its \
             observed address: the Identify wrapper may no longer be needed (see its module doc)"
        );
        assert_eq!(
            told.to_listener, told.circuit,
            "libp2p-identify no longer tells the listener of a circuit the circuit through the \
             relay as its observed address: the Identify wrapper may no longer be needed (see \
             its module doc)"
        );
    }

    #[tokio::test]
    async fn over_a_circuit_identify_tells_neither_end_an_address() {
        let told = tokio::time::timeout(CIRCUIT_TIMEOUT, identify_over_a_circuit(false))
            .await
            .expect("identify ran over the circuit");
        assert_eq!(told.to_dialer, Multiaddr::empty());
        assert_eq!(told.to_listener, Multiaddr::empty());
    }
}
