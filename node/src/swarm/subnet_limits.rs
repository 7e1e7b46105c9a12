//! Caps the inbound connections from one subnet, so that one machine, or one provider's block
//! of addresses, cannot take every inbound slot of `--max-inbound` (`--max-inbound-per-subnet`).
//!
//! Hand-written rather than libp2p's: `connection_limits` (libp2p 0.57, version 0.7) counts
//! connections in total, per direction and per peer, never per remote address, and a PeerId
//! costs an attacker nothing to make, so a per-peer count stops no one. This is the smallest
//! `NetworkBehaviour` that can say no before a handshake: it keeps no handler
//! (`dummy::ConnectionHandler`), emits nothing, and denies in
//! `handle_pending_inbound_connection` with a `ConnectionDenied` ([`Exceeded`]).
//!
//! Rules:
//! 1. An inbound connection's subnet is its remote IP's /24 (IPv4) or /64 (IPv6); an
//!    IPv4-mapped IPv6 address is taken as its IPv4 one. A connection through a relay's
//!    circuit, or from no IP at all, is in none: the relay's address says nothing of the peer,
//!    and the relay server limits its own circuits.
//! 2. It counts against its subnet from its handshake (pending) until it fails or closes.
//! 3. A new inbound connection from a subnet that already holds the cap is denied before its
//!    handshake, and counted ([`Behaviour::denied`]). The first denial for a subnet is logged
//!    as a warning, the next only once the subnet has fallen to half the cap (so a subnet
//!    that churns at the cap warns once, not once per connection); the others at debug level.
//! 4. A configured bootnode's connection stops counting once established (only then is its
//!    PeerId known).
//! 5. Outbound connections never count: we chose them.
//!
//! The state is one entry per counted connection and one per subnet holding any: bounded by
//! the swarm's inbound limits.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use peerfind_behaviours::ip_group::Group;

/// Why a connection was denied (rule 3): what a `ListenError::Denied` carries.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("inbound connection limit per subnet reached: {subnet} already holds {max}")]
pub struct Exceeded {
    /// The full subnet.
    pub subnet: Group,
    /// The cap.
    pub max: u32,
}

/// What one subnet holds now.
#[derive(Debug, Default)]
struct Held {
    connections: u32,
    /// Whether its being full was logged since it last held half the cap (rule 3).
    warned: bool,
}

/// The per-subnet cap on inbound connections. See the module doc.
#[derive(Debug)]
pub struct Behaviour {
    max: u32,
    /// Peers whose connections do not count once established (rule 4).
    exempt: HashSet<PeerId>,
    /// The subnet of each counted connection.
    counted: HashMap<ConnectionId, Group>,
    held: HashMap<Group, Held>,
    denied: u64,
}

impl Behaviour {
    /// At most `max` inbound connections per subnet (at least 1); `exempt` peers' established
    /// connections do not count.
    pub fn new(max: u32, exempt: impl IntoIterator<Item = PeerId>) -> Self {
        Self {
            max: max.max(1),
            exempt: exempt.into_iter().collect(),
            counted: HashMap::new(),
            held: HashMap::new(),
            denied: 0,
        }
    }

    /// Inbound connections denied since the start (rule 3).
    pub fn denied(&self) -> u64 {
        self.denied
    }

    /// Rules 2 and 3 for a new inbound connection from `subnet`.
    fn admit(&mut self, id: ConnectionId, subnet: Group) -> Result<(), Exceeded> {
        let held = self.held.entry(subnet).or_default();
        if held.connections >= self.max {
            self.denied += 1;
            if std::mem::replace(&mut held.warned, true) {
                tracing::debug!(%subnet, max = self.max, "inbound connection refused: subnet full");
            } else {
                tracing::warn!(
                    %subnet, max = self.max,
                    "a subnet reached the inbound connection cap; refusing its new connections \
                     (--max-inbound-per-subnet)"
                );
            }
            return Err(Exceeded {
                subnet,
                max: self.max,
            });
        }
        held.connections += 1;
        self.counted.insert(id, subnet);
        Ok(())
    }

    /// A counted connection failed, closed or stopped counting.
    fn release(&mut self, id: ConnectionId) {
        let Some(subnet) = self.counted.remove(&id) else {
            return;
        };
        if let Some(held) = self.held.get_mut(&subnet) {
            held.connections = held.connections.saturating_sub(1);
            if held.connections <= self.max / 2 {
                held.warned = false;
            }
            if held.connections == 0 {
                self.held.remove(&subnet);
            }
        }
    }

    /// Connections counted against `subnet` now.
    #[cfg(test)]
    fn holds(&self, subnet: Group) -> u32 {
        self.held.get(&subnet).map_or(0, |h| h.connections)
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        match Group::of_addr(remote_addr) {
            Some(subnet) => self
                .admit(connection_id, subnet)
                .map_err(ConnectionDenied::new),
            None => Ok(()),
        }
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if self.exempt.contains(&peer) {
            self.release(connection_id);
        }
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. })
            | FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                self.release(connection_id)
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        libp2p::core::util::unreachable(event)
    }

    fn poll(&mut self, _cx: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    fn pending(b: &mut Behaviour, remote: &str) -> Result<ConnectionId, ConnectionDenied> {
        let id = ConnectionId::new_unchecked(rand::random());
        b.handle_pending_inbound_connection(id, &addr("/ip4/0.0.0.0/tcp/9000"), &addr(remote))
            .map(|()| id)
    }

    fn closed(b: &mut Behaviour, id: ConnectionId) {
        b.release(id);
    }

    #[test]
    fn ipv4_groups_by_24_ipv6_by_64_and_a_mapped_ipv4_as_itself() {
        let s = |a: &str| Group::of_addr(&addr(a)).unwrap().to_string();
        assert_eq!(s("/ip4/198.51.100.7/tcp/1"), "198.51.100.0/24");
        assert_eq!(s("/ip4/198.51.100.250/udp/1/quic-v1"), "198.51.100.0/24");
        assert_eq!(s("/ip6/2001:db8:1:2:3:4:5:6/tcp/1"), "2001:db8:1:2::/64");
        assert_eq!(s("/ip6/::ffff:198.51.100.9/tcp/1"), "198.51.100.0/24");
        assert_ne!(s("/ip4/198.51.101.7/tcp/1"), s("/ip4/198.51.100.7/tcp/1"));
    }

    #[test]
    fn a_circuit_or_an_address_without_ip_is_in_no_subnet() {
        let circuit = "/ip4/198.51.100.7/tcp/9000/p2p/12D3KooWAw8BiXiGiGALGkqB8CdhKg4pEqsoBhStdf7GxyJFo9Tw/p2p-circuit";
        assert_eq!(Group::of_addr(&addr(circuit)), None);
        assert_eq!(Group::of_addr(&addr("/dns4/example.com/tcp/1")), None);
        let mut b = Behaviour::new(1, []);
        for _ in 0..3 {
            assert!(pending(&mut b, circuit).is_ok(), "rule 1: never capped");
        }
        assert_eq!(b.denied(), 0);
    }

    #[test]
    fn beyond_the_cap_a_subnet_is_refused_and_counted_while_another_gets_in() {
        let mut b = Behaviour::new(2, []);
        let first = pending(&mut b, "/ip4/203.0.113.1/tcp/1").unwrap();
        pending(&mut b, "/ip4/203.0.113.2/tcp/1").unwrap();
        let refused = pending(&mut b, "/ip4/203.0.113.3/tcp/1").unwrap_err();
        let exceeded = refused.downcast_ref::<Exceeded>().unwrap();
        assert_eq!(exceeded.subnet.to_string(), "203.0.113.0/24");
        assert_eq!(exceeded.max, 2);
        assert!(pending(&mut b, "/ip4/203.0.113.4/tcp/1").is_err());
        assert_eq!(b.denied(), 2, "rule 3: each refusal counted");
        assert!(pending(&mut b, "/ip4/203.0.114.1/tcp/1").is_ok());

        // Rule 2: a place comes free when a connection closes (or fails).
        closed(&mut b, first);
        assert!(pending(&mut b, "/ip4/203.0.113.5/tcp/1").is_ok());
        assert!(pending(&mut b, "/ip4/203.0.113.6/tcp/1").is_err());
        assert_eq!(b.denied(), 3);
    }

    #[test]
    fn a_subnet_churning_at_the_cap_warns_again_only_after_falling_to_half() {
        let mut b = Behaviour::new(4, []);
        let subnet = Group::of_addr(&addr("/ip4/203.0.113.1/tcp/1")).unwrap();
        let warned = |b: &Behaviour| b.held.get(&subnet).is_some_and(|h| h.warned);
        let mut open: Vec<ConnectionId> = (0..4)
            .map(|_| pending(&mut b, "/ip4/203.0.113.1/tcp/1").unwrap())
            .collect();
        assert!(!warned(&b));
        assert!(pending(&mut b, "/ip4/203.0.113.1/tcp/1").is_err());
        assert!(warned(&b), "the first refusal warns");
        // One leaves, one more comes and fills it again: no second warning.
        closed(&mut b, open.pop().unwrap());
        assert!(warned(&b));
        open.push(pending(&mut b, "/ip4/203.0.113.1/tcp/1").unwrap());
        assert!(pending(&mut b, "/ip4/203.0.113.1/tcp/1").is_err());
        // Down to half the cap: the next refusal warns again.
        closed(&mut b, open.pop().unwrap());
        closed(&mut b, open.pop().unwrap());
        assert!(!warned(&b));
        assert_eq!(b.denied(), 2);
    }

    #[test]
    fn a_bootnode_stops_counting_once_established_and_state_goes_with_the_connections() {
        let bootnode = PeerId::random();
        let mut b = Behaviour::new(1, [bootnode]);
        let local = addr("/ip4/0.0.0.0/tcp/9000");
        let remote = addr("/ip4/192.0.2.1/tcp/1");
        let id = pending(&mut b, "/ip4/192.0.2.1/tcp/1").unwrap();
        let subnet = Group::of_addr(&remote).unwrap();
        assert_eq!(b.holds(subnet), 1);
        b.handle_established_inbound_connection(id, bootnode, &local, &remote)
            .unwrap();
        assert_eq!(b.holds(subnet), 0, "rule 4");
        let other = pending(&mut b, "/ip4/192.0.2.2/tcp/1").unwrap();
        b.handle_established_inbound_connection(other, PeerId::random(), &local, &remote)
            .unwrap();
        assert_eq!(b.holds(subnet), 1, "anyone else keeps counting");
        closed(&mut b, other);
        closed(&mut b, id);
        assert!(b.counted.is_empty() && b.held.is_empty());
    }
}
