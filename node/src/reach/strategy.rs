//! How the node reaches a peer it learned of: the connection strategy, in one place.
//!
//! Rules, first match wins:
//! 1. A bootnode does not dial the peers it gossips about: it is a meeting point, and its
//!    peers come to it.
//! 2. A peer we have a direct connection to needs nothing; one we reach only through a relay
//!    is left to the hole punch (DCUtR) and its retries.
//! 3. At `--max-peers` connected peers we dial no more.
//! 4. A public record (no `nat` flag) is dialed directly at every address it gives; without
//!    an address it is kept only. Unless we know strangers can reach us, the dial leaves from
//!    a fresh port, not the listen port: a record without the flag may still belong to a
//!    node behind a NAT that has not found out yet, and a dial to it that is never answered
//!    leaves an entry in our own NAT for the listen port and that peer. A later hole punch
//!    between the two must use exactly that pair of ports, and a TCP one then fails: the NAT
//!    judges the punch's packets against the dead dial's sequence numbers and drops them.
//! 5. A NAT'd record cannot be dialed: strangers' connections die at its NAT ("Hmm Alice
//!    didn't respond"). Without a connected bootnode to help, it is kept only.
//! 6. A NAT'd record while we know we are public: ask a bootnode to introduce us; the peer
//!    dials us back from its listen port (connection reversal). While our own status is not
//!    known yet we ask only if a bootnode saw our address untranslated (NAT rule 5: no NAT
//!    between us and it; AutoNAT's dial-back, which makes us Public, takes a few round trips
//!    more). Otherwise we wait: if we are behind a NAT too, the peer's dial back would die at
//!    our NAT and leave the entry rule 4 avoids in its NAT.
//! 7. A NAT'd record while we are behind a NAT too: the one of the two with the smaller
//!    PeerId acts, the other waits for it (two at once would start two hole punches racing
//!    for the same ports).
//! 8. Rule 7's actor punches through the introduction when both records give an address on
//!    a transport both speak ([`punch_addrs`]: QUIC first, since UDP punches more reliably
//!    and both sides must pick the same one): it asks a bootnode for an introduction and at
//!    once sends towards the peer's address (a dial in the listener's role, which opens our
//!    NAT for the peer and waits for its connection); the peer, introduced, dials our
//!    address from its listen port and finds our NAT open. One round trip through the
//!    bootnode and one direct, where a relayed connection first needs a circuit, its
//!    security handshake and DCUtR's exchange. QUIC's roles are settled by the
//!    introduction: the introduced peer is the QUIC client. While the punch is in flight
//!    nothing more is done; while our record has no address yet though a bootnode saw us
//!    translated (NAT rule 5 gives the verdict just before the address goes in), we wait
//!    for it.
//! 9. Otherwise rule 7's actor dials the peer through the bootnode's relay: no common
//!    transport, or a punch through the introduction asked within the last
//!    [`crate::reach::attempts::INTRO_INTERVAL`] (it failed: its fallback, attempts rule 5,
//!    brought us here). The relayed connection is then upgraded by DCUtR's hole punch, or
//!    kept as the fallback.

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use peerfind_behaviours::enr_ext::{self, Enr};

use crate::reach::nat;
use crate::status::Connection;

/// What to do about a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Dial these addresses from this local port (rule 4).
    Dial {
        /// The record's addresses.
        addrs: Vec<Multiaddr>,
        /// Where the dial leaves from.
        port: Port,
    },
    /// Ask this bootnode for an introduction (rule 6).
    Introduce {
        /// The bootnode.
        via: PeerId,
    },
    /// Ask this bootnode for an introduction and punch towards these addresses (rule 8).
    Punch {
        /// The bootnode.
        via: PeerId,
        /// The peer's addresses on the one transport the punch uses.
        addrs: Vec<Multiaddr>,
    },
    /// Dial through this bootnode's relay (rule 9).
    Relay {
        /// The bootnode.
        via: PeerId,
    },
    /// Do nothing now, for this reason.
    Keep(Reason),
}

/// The local port a direct dial leaves from (rule 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// The listen port: the peer sees the address we advertise.
    Listen,
    /// A new one, so a dial that fails leaves nothing behind for the listen port.
    Fresh,
}

/// Why a peer is not dialed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Rule 1.
    Bootnode,
    /// Rule 2, a direct connection.
    Connected,
    /// Rule 2, a relayed one.
    Relayed,
    /// Rule 3.
    PeerLimit,
    /// Rule 4.
    NoAddress,
    /// Rule 5.
    NoBootnode,
    /// Rule 6: our own NAT status is not known yet, nor whether our address is translated.
    Undecided,
    /// Rule 7: the peer acts.
    PeerDials,
    /// Rule 8: a punch to the peer is in flight.
    Punching,
}

/// What the strategy needs to know about the node and the peer.
#[derive(Debug, Clone, Copy)]
pub struct Situation<'a> {
    /// Our own record, whose addresses a punch needs (rule 8).
    pub own: Option<&'a Enr>,
    /// Whether we asked for an introduction to the peer within the last
    /// [`crate::reach::attempts::INTRO_INTERVAL`] (rule 9).
    pub asked_recently: bool,
    /// Whether a punch to the peer is in flight (rule 8).
    pub punching: bool,
    /// Our own PeerId.
    pub local: PeerId,
    /// Whether this node is a bootnode.
    pub bootnode: bool,
    /// Our connection to the peer now.
    pub connection: Connection,
    /// Peers we chose: dials under way and connections we dialed (bootnodes and peers that
    /// connected to us not counted), what `--max-peers` caps.
    pub peers: usize,
    /// `--max-peers`.
    pub max_peers: usize,
    /// Our own NAT status.
    pub nat: nat::Status,
    /// Whether a NAT translates our address, once a bootnode saw it (NAT rule 5).
    pub translated: Option<bool>,
    /// A connected bootnode to ask or relay through, preferably the one that told us of the
    /// peer.
    pub bootnode_via: Option<PeerId>,
}

/// Applies the rules (see the module doc) to `enr`, whose key is `peer`'s.
pub fn decide(enr: &Enr, peer: PeerId, now: Situation<'_>) -> Action {
    if now.bootnode {
        return Action::Keep(Reason::Bootnode);
    }
    match now.connection {
        Connection::Direct { .. } => return Action::Keep(Reason::Connected),
        Connection::Relayed => return Action::Keep(Reason::Relayed),
        Connection::None => {}
    }
    if now.peers >= now.max_peers {
        return Action::Keep(Reason::PeerLimit);
    }
    if !enr_ext::is_natted(enr) {
        let addrs = enr_ext::multiaddrs(enr, peer);
        if addrs.is_empty() {
            return Action::Keep(Reason::NoAddress);
        }
        let port = match now.nat {
            nat::Status::Public => Port::Listen,
            nat::Status::Unknown | nat::Status::Private => Port::Fresh,
        };
        return Action::Dial { addrs, port };
    }
    let Some(via) = now.bootnode_via else {
        return Action::Keep(Reason::NoBootnode);
    };
    match now.nat {
        nat::Status::Public => Action::Introduce { via },
        nat::Status::Unknown if now.translated == Some(false) => Action::Introduce { via },
        nat::Status::Unknown => Action::Keep(Reason::Undecided),
        nat::Status::Private if now.local > peer => Action::Keep(Reason::PeerDials),
        nat::Status::Private if now.punching => Action::Keep(Reason::Punching),
        nat::Status::Private => {
            let addrs = match now.own {
                Some(own)
                    if now.translated == Some(true)
                        && enr_ext::multiaddrs(own, now.local).is_empty() =>
                {
                    return Action::Keep(Reason::Undecided);
                }
                Some(own) if !now.asked_recently => punch_addrs(own, enr, peer),
                _ => Vec::new(),
            };
            if addrs.is_empty() {
                Action::Relay { via }
            } else {
                Action::Punch { via, addrs }
            }
        }
    }
}

/// The addresses of `theirs` (whose key is `peer`'s) a punch between two NAT'd nodes goes to
/// (rule 8): those of QUIC when both records give a QUIC address, else of TCP when both give
/// a TCP one, else none. Both sides compute it from the same two records, so they punch on
/// the same transport; one connection, not one per transport.
pub fn punch_addrs(ours: &Enr, theirs: &Enr, peer: PeerId) -> Vec<Multiaddr> {
    let transports = |enr: &Enr| -> Vec<(enr_ext::Transport, Multiaddr)> {
        enr_ext::multiaddrs(enr, peer)
            .into_iter()
            .filter_map(|a| enr_ext::socket_of(&a).map(|(_, _, t)| (t, a)))
            .collect()
    };
    let (ours, theirs) = (transports(ours), transports(theirs));
    for transport in [enr_ext::Transport::Quic, enr_ext::Transport::Tcp] {
        if !ours.iter().any(|(t, _)| *t == transport) {
            continue;
        }
        let addrs: Vec<Multiaddr> = theirs
            .iter()
            .filter(|(t, _)| *t == transport)
            .map(|(_, a)| a.clone())
            .collect();
        if !addrs.is_empty() {
            return addrs;
        }
    }
    Vec::new()
}

/// The addresses of `target` through the relay at each of `relay_addrs` (which end in the
/// relay's `/p2p/…`): `<relay>/p2p-circuit/p2p/<target>`.
pub fn circuit_addrs(relay_addrs: &[Multiaddr], target: PeerId) -> Vec<Multiaddr> {
    relay_addrs
        .iter()
        .map(|a| {
            a.clone()
                .with(Protocol::P2pCircuit)
                .with(Protocol::P2p(target))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;

    use peerfind_behaviours::enr_ext::{NAT_KEY, NAT_VALUE, QUIC_KEY, SigningKey};

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

    fn node(nat: nat::Status) -> Situation<'static> {
        Situation {
            own: None,
            asked_recently: false,
            punching: false,
            local: PeerId::random(),
            bootnode: false,
            connection: Connection::None,
            peers: 0,
            max_peers: 8,
            nat,
            translated: None,
            bootnode_via: Some(PeerId::random()),
        }
    }

    #[test]
    fn a_public_peer_is_dialed_at_its_record_address() {
        let (enr, peer) = record(false, true);
        let addrs: Vec<Multiaddr> = vec![
            format!("/ip4/198.51.100.9/tcp/9000/p2p/{peer}")
                .parse()
                .unwrap(),
        ];
        assert_eq!(
            decide(&enr, peer, node(nat::Status::Public)),
            Action::Dial {
                addrs: addrs.clone(),
                port: Port::Listen
            }
        );
        for unsure in [nat::Status::Unknown, nat::Status::Private] {
            assert_eq!(
                decide(&enr, peer, node(unsure)),
                Action::Dial {
                    addrs: addrs.clone(),
                    port: Port::Fresh
                },
                "a node not known to be public dials from a fresh port"
            );
        }
        let (enr, peer) = record(false, false);
        assert_eq!(
            decide(&enr, peer, node(nat::Status::Public)),
            Action::Keep(Reason::NoAddress)
        );
    }

    #[test]
    fn a_natted_peer_is_introduced_to_a_public_node_and_relayed_to_a_natted_one() {
        let (enr, peer) = record(true, true);
        let public = node(nat::Status::Public);
        let via = public.bootnode_via.unwrap();
        assert_eq!(decide(&enr, peer, public), Action::Introduce { via });
        let unknown = Situation {
            nat: nat::Status::Unknown,
            ..public
        };
        assert_eq!(
            decide(&enr, peer, unknown),
            Action::Keep(Reason::Undecided),
            "no introduction before we know we are public"
        );
        let untranslated = Situation {
            translated: Some(false),
            ..unknown
        };
        assert_eq!(
            decide(&enr, peer, untranslated),
            Action::Introduce { via },
            "nor before a bootnode saw our address untranslated"
        );
        let translated = Situation {
            translated: Some(true),
            ..unknown
        };
        assert_eq!(
            decide(&enr, peer, translated),
            Action::Keep(Reason::Undecided)
        );
        let private = Situation {
            nat: nat::Status::Private,
            ..public
        };
        let smaller = Situation {
            local: min_peer(peer),
            ..private
        };
        let larger = Situation {
            local: max_peer(peer),
            ..private
        };
        assert_eq!(
            decide(&enr, peer, smaller),
            Action::Relay { via },
            "rule 9: without our own record there is nothing to punch from"
        );
        assert_eq!(decide(&enr, peer, larger), Action::Keep(Reason::PeerDials));
        let alone = Situation {
            bootnode_via: None,
            ..public
        };
        assert_eq!(decide(&enr, peer, alone), Action::Keep(Reason::NoBootnode));
    }

    /// A record with a TCP and a QUIC port as given.
    fn record_on(nat: bool, tcp: Option<u16>, quic: Option<u16>) -> (Enr, PeerId) {
        let key =
            SigningKey::from_slice(&libp2p::identity::secp256k1::SecretKey::generate().to_bytes())
                .unwrap();
        let mut b = Enr::builder();
        b.ip4(Ipv4Addr::new(203, 0, 113, 7));
        if let Some(port) = tcp {
            b.tcp4(port);
        }
        if let Some(port) = quic {
            b.add_value(QUIC_KEY, &port);
        }
        if nat {
            b.add_value(NAT_KEY, &NAT_VALUE);
        }
        let enr = b.build(&key).unwrap();
        let peer = enr_ext::peer_id(&enr).unwrap();
        (enr, peer)
    }

    #[test]
    fn two_natted_nodes_punch_through_the_introduction_and_fall_back_to_the_relay() {
        let (theirs, peer) = record_on(true, Some(9000), Some(9001));
        let (ours, _) = record_on(true, Some(4000), Some(4001));
        let private = node(nat::Status::Private);
        let via = private.bootnode_via.unwrap();
        let smaller = Situation {
            local: min_peer(peer),
            own: Some(&ours),
            ..private
        };
        let quic: Multiaddr = format!("/ip4/203.0.113.7/udp/9001/quic-v1/p2p/{peer}")
            .parse()
            .unwrap();
        assert_eq!(
            decide(&theirs, peer, smaller),
            Action::Punch {
                via,
                addrs: vec![quic]
            },
            "rule 8, on QUIC"
        );
        let larger = Situation {
            local: max_peer(peer),
            ..smaller
        };
        assert_eq!(
            decide(&theirs, peer, larger),
            Action::Keep(Reason::PeerDials),
            "rule 7: the other one acts"
        );
        assert_eq!(
            decide(
                &theirs,
                peer,
                Situation {
                    punching: true,
                    ..smaller
                }
            ),
            Action::Keep(Reason::Punching)
        );
        let (no_addr_yet, _) = record_on(true, None, None);
        let translated_without_address = Situation {
            own: Some(&no_addr_yet),
            translated: Some(true),
            ..smaller
        };
        assert_eq!(
            decide(&theirs, peer, translated_without_address),
            Action::Keep(Reason::Undecided),
            "our address is on its way"
        );
        let failed = Situation {
            asked_recently: true,
            ..smaller
        };
        assert_eq!(
            decide(&theirs, peer, failed),
            Action::Relay { via },
            "rule 9: the punch was tried"
        );
        let (no_addr, peer) = record_on(true, None, None);
        let smaller = Situation {
            local: min_peer(peer),
            ..smaller
        };
        assert_eq!(decide(&no_addr, peer, smaller), Action::Relay { via });
    }

    #[test]
    fn a_punch_uses_quic_when_both_records_give_it_and_tcp_otherwise() {
        let (both, peer) = record_on(true, Some(9000), Some(9001));
        let (tcp_only, tcp_peer) = record_on(true, Some(9000), None);
        let (quic_only, _) = record_on(true, None, Some(9001));
        let addr = |s: &str, p: PeerId| -> Multiaddr { format!("{s}/p2p/{p}").parse().unwrap() };
        assert_eq!(
            punch_addrs(&both, &both, peer),
            [addr("/ip4/203.0.113.7/udp/9001/quic-v1", peer)]
        );
        assert_eq!(
            punch_addrs(&tcp_only, &both, peer),
            [addr("/ip4/203.0.113.7/tcp/9000", peer)],
            "we speak only TCP"
        );
        assert_eq!(
            punch_addrs(&both, &tcp_only, tcp_peer),
            [addr("/ip4/203.0.113.7/tcp/9000", tcp_peer)],
            "they speak only TCP"
        );
        assert!(punch_addrs(&quic_only, &tcp_only, tcp_peer).is_empty());
    }

    /// A peerfind PeerId (secp256k1, like every node's). `PeerId::random` would not do: it is
    /// a sha256 multihash, which always sorts after an inlined secp256k1 key.
    fn secp_peer() -> PeerId {
        libp2p::identity::Keypair::generate_secp256k1()
            .public()
            .to_peer_id()
    }

    /// A PeerId that sorts before `peer`.
    fn min_peer(peer: PeerId) -> PeerId {
        std::iter::repeat_with(secp_peer)
            .find(|p| *p < peer)
            .unwrap()
    }

    /// A PeerId that sorts after `peer`.
    fn max_peer(peer: PeerId) -> PeerId {
        std::iter::repeat_with(secp_peer)
            .find(|p| *p > peer)
            .unwrap()
    }

    #[test]
    fn bootnodes_connected_peers_and_the_peer_limit_stop_a_dial() {
        let (enr, peer) = record(true, true);
        let n = Situation {
            local: min_peer(peer),
            ..node(nat::Status::Private)
        };
        assert_eq!(
            decide(
                &enr,
                peer,
                Situation {
                    bootnode: true,
                    ..n
                }
            ),
            Action::Keep(Reason::Bootnode)
        );
        let direct = Situation {
            connection: Connection::Direct { transport: "tcp" },
            ..n
        };
        assert_eq!(decide(&enr, peer, direct), Action::Keep(Reason::Connected));
        let relayed = Situation {
            connection: Connection::Relayed,
            ..n
        };
        assert_eq!(decide(&enr, peer, relayed), Action::Keep(Reason::Relayed));
        assert_eq!(
            decide(&enr, peer, Situation { peers: 8, ..n }),
            Action::Keep(Reason::PeerLimit)
        );
    }

    #[test]
    fn a_circuit_address_goes_through_the_relay_to_the_target() {
        let relay = PeerId::random();
        let target = PeerId::random();
        let relay_addr: Multiaddr = format!("/ip4/198.51.100.10/tcp/9000/p2p/{relay}")
            .parse()
            .unwrap();
        assert_eq!(
            circuit_addrs(&[relay_addr], target),
            vec![
                format!("/ip4/198.51.100.10/tcp/9000/p2p/{relay}/p2p-circuit/p2p/{target}")
                    .parse::<Multiaddr>()
                    .unwrap()
            ]
        );
    }
}
