//! What we see of each connected peer's address: the IP of every direct connection, from the
//! connection itself (the address we dialed, or the one its packets came from), never from
//! anything the peer says.
//!
//! Both protocols check a peer's claims against it: a record announced by its owner must
//! name the IP its connection comes from before a bootnode passes it on, and a bootnode
//! vouches for an introduction's requester the same way. A relayed connection shows no IP of
//! the peer (the relay's address is not the peer's), so it proves nothing.
//!
//! Bounded by the swarm's connections: an entry is added when a connection is established
//! and removed when it closes.

use std::collections::HashMap;
use std::net::IpAddr;

use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

/// Each connected peer's direct connections and the IP each comes from.
#[derive(Debug, Default)]
pub struct Remotes(HashMap<PeerId, Vec<(ConnectionId, Option<IpAddr>)>>);

impl Remotes {
    /// A connection to `peer` was established.
    pub fn established(&mut self, peer: PeerId, id: ConnectionId, endpoint: &ConnectedPoint) {
        let ip = direct_ip(endpoint.get_remote_address());
        self.0.entry(peer).or_default().push((id, ip));
    }

    /// A connection to `peer` closed.
    pub fn closed(&mut self, peer: &PeerId, id: ConnectionId) {
        if let Some(list) = self.0.get_mut(peer) {
            list.retain(|(c, _)| *c != id);
            if list.is_empty() {
                self.0.remove(peer);
            }
        }
    }

    /// The IPs `peer`'s direct connections come from (none over relayed connections only).
    pub fn ips(&self, peer: &PeerId) -> impl Iterator<Item = IpAddr> + '_ {
        self.0
            .get(peer)
            .into_iter()
            .flatten()
            .filter_map(|(_, ip)| *ip)
    }

    /// Whether `peer` has a direct connection from `ip`.
    pub fn has_ip(&self, peer: &PeerId, ip: IpAddr) -> bool {
        self.ips(peer).any(|seen| seen == ip)
    }
}

/// The peer's IP on a connection to or from `addr`, or `None` for a relayed circuit (its
/// address is the relay's) or an address without an IP.
pub fn direct_ip(addr: &Multiaddr) -> Option<IpAddr> {
    if addr.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
        return None;
    }
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use libp2p::core::Endpoint;
    use libp2p::core::transport::PortUse;

    fn dialer(addr: &str) -> ConnectedPoint {
        ConnectedPoint::Dialer {
            address: addr.parse().unwrap(),
            role_override: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        }
    }

    fn listener(send_back: &str) -> ConnectedPoint {
        ConnectedPoint::Listener {
            local_addr: "/ip4/10.0.0.1/tcp/9000".parse().unwrap(),
            send_back_addr: send_back.parse().unwrap(),
        }
    }

    #[test]
    fn a_direct_connection_shows_the_ip_it_comes_from_both_ways() {
        let mut remotes = Remotes::default();
        let peer = PeerId::random();
        remotes.established(
            peer,
            ConnectionId::new_unchecked(1),
            &listener("/ip4/198.51.100.7/tcp/4001"),
        );
        remotes.established(
            peer,
            ConnectionId::new_unchecked(2),
            &dialer("/ip4/203.0.113.9/udp/4001/quic-v1"),
        );
        assert!(remotes.has_ip(&peer, "198.51.100.7".parse().unwrap()));
        assert!(remotes.has_ip(&peer, "203.0.113.9".parse().unwrap()));
        remotes.closed(&peer, ConnectionId::new_unchecked(1));
        assert!(!remotes.has_ip(&peer, "198.51.100.7".parse().unwrap()));
        remotes.closed(&peer, ConnectionId::new_unchecked(2));
        assert!(remotes.0.is_empty(), "a peer's last close forgets it");
    }

    #[test]
    fn a_relayed_connection_shows_no_ip_of_the_peer() {
        let mut remotes = Remotes::default();
        let peer = PeerId::random();
        let relayed = format!(
            "/ip4/198.51.100.1/tcp/4001/p2p/{}/p2p-circuit",
            PeerId::random()
        );
        remotes.established(peer, ConnectionId::new_unchecked(1), &dialer(&relayed));
        assert_eq!(remotes.ips(&peer).count(), 0);
    }
}
