//! libp2p's UPnP port mapping, minus one thing it does: take a mapped port for a verified
//! external address.
//!
//! Works around: libp2p-upnp 0.7.0 (Cargo.lock), whose `Behaviour::poll` (`src/behaviour.rs`,
//! on `GatewayEvent::Mapped`) returns `ToSwarm::ExternalAddrConfirmed` for every port the
//! router maps: the swarm then holds the router's public address as one strangers reach,
//! identify announces it, and nobody ever dialed it. A router may grant a mapping that does
//! not work (a second NAT in front of it, a firewall beyond it, a mapping another device
//! holds). Remove when: libp2p-upnp reports a mapping as a candidate. No unit test drives
//! libp2p-upnp (its gateway is private, and a search would go out to the machine's network);
//! the lab's `lab_port_mapping` tests hold the wrapped behaviour to this, behind a real
//! router (the mapped address is external, and in the record, only once a dial-back
//! reached it).
//!
//! Here the mapped address becomes an external address *candidate*, which AutoNAT's client
//! tests like any other: its dial-back is the proof, and the swarm holds the address only
//! once AutoNAT confirmed it. The candidate carries our own `/p2p/<id>` (see [`candidate`]),
//! so it is tested as an address of its own, after the router mapped it: under an
//! endpoint-independent NAT the router's own translation of our listen port is the same
//! `ip:port`, which identify's observers may have had tested (and failed) before the router
//! forwarded the port, and AutoNAT never tests an address twice. The wiring
//! (`service/mapping.rs`) knows the tested address is the mapped one by that suffix.
//!
//! It also keeps the listeners whose addresses it handed libp2p-upnp, so the node's shutdown
//! can close them: closing a listener is the one way libp2p-upnp removes its mapping
//! (`FromSwarm::ExpiredListenAddr`); it has no call for it.

use std::collections::HashSet;
use std::task::{Context, Poll};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{FromSwarm, NetworkBehaviour, THandlerInEvent, ToSwarm};
use libp2p::{Multiaddr, PeerId, upnp};

/// Bound on the listeners kept: a node listens on a handful of addresses (TCP and QUIC, per
/// interface); more would be a listener churning, and the oldest are then forgotten.
const MAX_LISTENERS: usize = 64;

/// The candidate AutoNAT tests for a mapped `external` address: the address with our
/// `/p2p/<local>` appended.
pub fn candidate(external: &Multiaddr, local: PeerId) -> Multiaddr {
    external.clone().with(Protocol::P2p(local))
}

/// The mapped address `tested` stands for, when it is a [`candidate`] of ours: `tested`
/// without its trailing `/p2p/<local>`.
pub fn mapped(tested: &Multiaddr, local: PeerId) -> Option<Multiaddr> {
    let mut addr = tested.clone();
    match addr.pop() {
        Some(Protocol::P2p(peer)) if peer == local => Some(addr),
        _ => None,
    }
}

/// Whether libp2p-upnp maps `addr`: a private IPv4 address (RFC 1918) with a TCP or UDP port,
/// as its `multiaddr_to_socketaddr_protocol` takes them.
fn mappable(addr: &Multiaddr) -> bool {
    let mut parts = addr.iter();
    matches!(parts.next(), Some(Protocol::Ip4(ip)) if ip.is_private())
        && matches!(parts.next(), Some(Protocol::Tcp(_) | Protocol::Udp(_)))
}

/// libp2p-upnp's behaviour that proposes its mappings instead of confirming them. See the
/// module doc; everything else is libp2p-upnp's own.
pub struct PortMapping {
    inner: upnp::tokio::Behaviour,
    local: PeerId,
    /// The listeners whose addresses libp2p-upnp may map (bounded by [`MAX_LISTENERS`]).
    listeners: HashSet<ListenerId>,
}

impl PortMapping {
    /// Starts looking for the gateway (SSDP, at once, on the tokio runtime) for node `local`.
    pub fn new(local: PeerId) -> Self {
        Self {
            inner: upnp::tokio::Behaviour::default(),
            local,
            listeners: HashSet::new(),
        }
    }

    /// The listeners whose addresses were handed to libp2p-upnp: closing them removes their
    /// mappings.
    pub fn listeners(&self) -> Vec<ListenerId> {
        self.listeners.iter().copied().collect()
    }
}

impl NetworkBehaviour for PortMapping {
    type ConnectionHandler = <upnp::tokio::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = upnp::Event;

    peerfind_behaviours::forward_connection_handling!(inner);

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match &event {
            FromSwarm::NewListenAddr(e)
                if self.listeners.len() < MAX_LISTENERS && mappable(e.addr) =>
            {
                self.listeners.insert(e.listener_id);
            }
            FromSwarm::ListenerClosed(e) => {
                self.listeners.remove(&e.listener_id);
            }
            _ => {}
        }
        self.inner.on_swarm_event(event);
    }

    peerfind_behaviours::forward_handler_events!(inner);

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        match self.inner.poll(cx) {
            Poll::Ready(ToSwarm::ExternalAddrConfirmed(external)) => Poll::Ready(
                ToSwarm::NewExternalAddrCandidate(candidate(&external, self.local)),
            ),
            other => other,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_private_ipv4_listen_addresses_are_kept_for_removal() {
        let yes = [
            "/ip4/192.168.1.2/tcp/9000",
            "/ip4/10.0.0.2/udp/9000/quic-v1",
        ];
        let no = [
            "/ip4/127.0.0.1/tcp/9000",
            "/ip4/198.51.100.30/tcp/9000",
            "/ip6/fd00::2/tcp/9000",
            "/ip4/198.51.100.10/tcp/9000/p2p/16Uiu2HAmQNmemJeVgD5TsgxLYjhrFAKDuS5w4qMwvs4BMPXxVXFy/p2p-circuit",
        ];
        for a in yes {
            assert!(mappable(&a.parse().unwrap()), "{a}");
        }
        for a in no {
            assert!(!mappable(&a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn a_mapped_address_is_tested_as_a_candidate_of_its_own_and_read_back() {
        let local = PeerId::random();
        let external: Multiaddr = "/ip4/11.51.100.101/udp/9000/quic-v1".parse().unwrap();
        let tested = candidate(&external, local);
        assert_ne!(tested, external, "not the NAT's own translation");
        assert_eq!(mapped(&tested, local), Some(external.clone()));
        assert_eq!(mapped(&external, local), None, "a plain address");
        assert_eq!(
            mapped(&candidate(&external, PeerId::random()), local),
            None,
            "another node's"
        );
    }
}
