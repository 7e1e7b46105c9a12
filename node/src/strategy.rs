//! How the node reaches a peer it learned of: the connection strategy.
//!
//! Rules, first match wins:
//! 1. A bootnode does not dial the peers it gossips about: it is a meeting point, and its
//!    peers come to it.
//! 2. A peer we are connected to needs nothing.
//! 3. At `--max-peers` connected peers we dial no more.
//! 4. A record without an address we can dial (no IP, or no TCP/QUIC port) is kept only.
//! 5. A record with the `nat` flag is kept, not dialed: strangers cannot reach that peer at
//!    its address, and dialing it would only fail ("Hmm Alice didn't respond").
//! 6. Otherwise the peer is public: dial it directly at every address its record gives.

use libp2p::{Multiaddr, PeerId};
use peerfind_behaviours::enr_ext::{self, Enr};

/// What to do about a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Dial these addresses (rule 6).
    Dial(Vec<Multiaddr>),
    /// Do nothing now, for this reason.
    Keep(Reason),
}

/// Why a peer is not dialed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Rule 1.
    Bootnode,
    /// Rule 2.
    Connected,
    /// Rule 3.
    PeerLimit,
    /// Rule 4.
    NoAddress,
    /// Rule 5.
    Natted,
}

/// What the strategy needs to know about the node itself.
#[derive(Debug, Clone, Copy)]
pub struct Situation {
    /// Whether this node is a bootnode.
    pub bootnode: bool,
    /// Whether the peer is connected already.
    pub connected: bool,
    /// Peers connected now.
    pub peers: usize,
    /// `--max-peers`.
    pub max_peers: usize,
}

/// Applies the rules (see the module doc) to `enr`, whose key is `peer`'s.
pub fn decide(enr: &Enr, peer: PeerId, now: Situation) -> Action {
    if now.bootnode {
        return Action::Keep(Reason::Bootnode);
    }
    if now.connected {
        return Action::Keep(Reason::Connected);
    }
    if now.peers >= now.max_peers {
        return Action::Keep(Reason::PeerLimit);
    }
    let addrs = enr_ext::multiaddrs(enr, peer);
    if addrs.is_empty() {
        return Action::Keep(Reason::NoAddress);
    }
    if enr_ext::is_natted(enr) {
        return Action::Keep(Reason::Natted);
    }
    Action::Dial(addrs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;

    use peerfind_behaviours::enr_ext::{NAT_KEY, NAT_VALUE, SigningKey};

    use super::*;

    fn record(nat: bool, ip: bool) -> (Enr, PeerId) {
        let key =
            SigningKey::from_slice(&libp2p::identity::secp256k1::SecretKey::generate().to_bytes())
                .unwrap();
        let mut b = Enr::builder();
        if ip {
            b.ip4(Ipv4Addr::new(198, 51, 100, 9)).tcp4(9000);
        }
        if nat {
            b.add_value(NAT_KEY, &NAT_VALUE);
        }
        let enr = b.build(&key).unwrap();
        let peer = enr_ext::peer_id(&enr).unwrap();
        (enr, peer)
    }

    const NODE: Situation = Situation {
        bootnode: false,
        connected: false,
        peers: 0,
        max_peers: 8,
    };

    #[test]
    fn a_public_peer_is_dialed_at_its_record_address() {
        let (enr, peer) = record(false, true);
        let Action::Dial(addrs) = decide(&enr, peer, NODE) else {
            panic!("not dialed")
        };
        assert_eq!(
            addrs,
            vec![
                format!("/ip4/198.51.100.9/tcp/9000/p2p/{peer}")
                    .parse()
                    .unwrap()
            ]
        );
    }

    #[test]
    fn a_natted_or_addressless_peer_is_kept_not_dialed() {
        let (enr, peer) = record(true, true);
        assert_eq!(decide(&enr, peer, NODE), Action::Keep(Reason::Natted));
        let (enr, peer) = record(false, false);
        assert_eq!(decide(&enr, peer, NODE), Action::Keep(Reason::NoAddress));
    }

    #[test]
    fn bootnodes_connected_peers_and_the_peer_limit_stop_a_dial() {
        let (enr, peer) = record(false, true);
        let boot = Situation {
            bootnode: true,
            ..NODE
        };
        assert_eq!(decide(&enr, peer, boot), Action::Keep(Reason::Bootnode));
        let connected = Situation {
            connected: true,
            ..NODE
        };
        assert_eq!(
            decide(&enr, peer, connected),
            Action::Keep(Reason::Connected)
        );
        let full = Situation { peers: 8, ..NODE };
        assert_eq!(decide(&enr, peer, full), Action::Keep(Reason::PeerLimit));
    }
}
