#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use peerfind_behaviours::enr_ext::{
    NAT_KEY, NAT_VALUE, QUIC_KEY, QUIC_MAPPING_KEY, SigningKey, TCP_MAPPING_KEY,
};

use super::*;

/// The record `b` holds, signed with a fresh key, and its PeerId.
fn signed(b: &mut enr::Builder<SigningKey>) -> (Enr, PeerId) {
    let key =
        SigningKey::from_slice(&libp2p::identity::secp256k1::SecretKey::generate().to_bytes())
            .unwrap();
    let enr = b.build(&key).unwrap();
    let peer = enr_ext::peer_id(&enr).unwrap();
    (enr, peer)
}

/// A record at `at` (an IP, a TCP and a QUIC port), flagged when `nat`.
fn build(nat: bool, at: Option<(Ipv4Addr, Option<u16>, Option<u16>)>) -> (Enr, PeerId) {
    let mut b = Enr::builder();
    if let Some((ip, tcp, quic)) = at {
        b.ip4(ip);
        if let Some(port) = tcp {
            b.tcp4(port);
        }
        if let Some(port) = quic {
            b.add_value(QUIC_KEY, &port);
        }
    }
    if nat {
        b.add_value(NAT_KEY, &NAT_VALUE);
    }
    signed(&mut b)
}

fn record(nat: bool, ip: bool) -> (Enr, PeerId) {
    build(
        nat,
        ip.then_some((Ipv4Addr::new(198, 51, 100, 9), Some(9000), None)),
    )
}

fn node(nat: nat::Status) -> Situation<'static> {
    Situation {
        own: None,
        asked_recently: false,
        punching: false,
        guessed_recently: false,
        local: PeerId::random(),
        bootnode: false,
        connection: Connection::None,
        peers: 0,
        max_peers: 8,
        nat,
        translated: None,
        report_pending: false,
        bootnode_via: Some(PeerId::random()),
        port_guessing: true,
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

/// A record on 203.0.113.7 with a TCP and a QUIC port as given.
fn record_on(nat: bool, tcp: Option<u16>, quic: Option<u16>) -> (Enr, PeerId) {
    build(nat, Some((Ipv4Addr::new(203, 0, 113, 7), tcp, quic)))
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

/// A NAT'd record on 203.0.113.7 with TCP and QUIC ports, and these mappings.
fn mapped(tcp: Option<u8>, quic: Option<u8>) -> (Enr, PeerId) {
    let mut b = Enr::builder();
    b.ip4(Ipv4Addr::new(203, 0, 113, 7))
        .tcp4(9000)
        .add_value(QUIC_KEY, &9001u16)
        .add_value(NAT_KEY, &NAT_VALUE);
    if let Some(v) = tcp {
        b.add_value(TCP_MAPPING_KEY, &v);
    }
    if let Some(v) = quic {
        b.add_value(QUIC_MAPPING_KEY, &v);
    }
    signed(&mut b)
}

#[test]
fn a_transport_both_records_say_varies_by_destination_is_not_punched() {
    const SAME: u8 = 1;
    const VARIES: u8 = 2;
    let addr = |s: &str, p: PeerId| -> Multiaddr { format!("{s}/p2p/{p}").parse().unwrap() };
    let (symmetric, _) = mapped(Some(VARIES), Some(VARIES));
    let (their_symmetric, peer) = mapped(Some(VARIES), Some(VARIES));
    assert!(
        punch_addrs(&symmetric, &their_symmetric, peer).is_empty(),
        "neither learns the other's port"
    );
    let private = node(nat::Status::Private);
    let via = private.bootnode_via.unwrap();
    let acting = Situation {
        local: min_peer(peer),
        own: Some(&symmetric),
        ..private
    };
    assert_eq!(
        decide(&their_symmetric, peer, acting),
        Action::Relay { via },
        "rule 9 up front, with no punch first"
    );
    assert_eq!(
        decide(
            &their_symmetric,
            peer,
            Situation {
                report_pending: true,
                ..acting
            }
        ),
        Action::Keep(Reason::Undecided),
        "a bootnode's report, and with it our mapping, is one round trip away"
    );
    let punching = Situation {
        punching: true,
        asked_recently: true,
        ..acting
    };
    assert_eq!(
        decide(&their_symmetric, peer, punching),
        Action::Relay { via },
        "a punch started before the peer's record said it varies gives way"
    );
    // One side endpoint-independent, or unknown: its filter may still let the other in.
    let (eim, peer) = mapped(Some(SAME), Some(SAME));
    assert_eq!(
        punch_addrs(&symmetric, &eim, peer),
        [addr("/ip4/203.0.113.7/udp/9001/quic-v1", peer)]
    );
    let (unknown, peer) = mapped(None, None);
    assert_eq!(
        punch_addrs(&symmetric, &unknown, peer),
        [addr("/ip4/203.0.113.7/udp/9001/quic-v1", peer)]
    );
    // Per transport: QUIC varies on both sides, TCP does not, so the punch takes TCP.
    let (quic_varies, peer) = mapped(Some(SAME), Some(VARIES));
    assert_eq!(
        punch_addrs(&symmetric, &quic_varies, peer),
        [addr("/ip4/203.0.113.7/tcp/9000", peer)]
    );
}

#[test]
fn where_one_nat_maps_a_port_per_destination_and_the_other_one_for_all_ports_are_guessed() {
    const SAME: u8 = 1;
    const VARIES: u8 = 2;
    let (symmetric, sym_peer) = mapped(Some(VARIES), Some(VARIES));
    let (eim, eim_peer) = mapped(Some(SAME), Some(SAME));
    assert_eq!(guess_role(&symmetric, &eim), Some(GuessRole::Open));
    assert_eq!(guess_role(&eim, &symmetric), Some(GuessRole::Spray));
    assert_eq!(guess_role(&symmetric, &symmetric), None, "rule 9's");
    assert_eq!(guess_role(&eim, &eim), None, "rule 8's");
    let (unknown, _) = mapped(None, None);
    assert_eq!(guess_role(&symmetric, &unknown), None, "a claim needs both");
    let (tcp_varies, _) = mapped(Some(VARIES), Some(SAME));
    assert_eq!(
        guess_role(&tcp_varies, &eim),
        None,
        "QUIC's mappings decide"
    );
    let private = node(nat::Status::Private);
    let via = private.bootnode_via.unwrap();
    let quic = |p: PeerId| -> Vec<Multiaddr> {
        vec![
            format!("/ip4/203.0.113.7/udp/9001/quic-v1/p2p/{p}")
                .parse()
                .unwrap(),
        ]
    };
    // The guessing side acts even with the larger PeerId (rule 7's exception) ...
    let opening = Situation {
        local: max_peer(eim_peer),
        own: Some(&symmetric),
        ..private
    };
    assert_eq!(
        decide(&eim, eim_peer, opening),
        Action::Guess {
            via,
            addrs: quic(eim_peer)
        }
    );
    // ... and the spraying side waits, even with the smaller one.
    let spraying = Situation {
        local: min_peer(sym_peer),
        own: Some(&eim),
        ..private
    };
    assert_eq!(
        decide(&symmetric, sym_peer, spraying),
        Action::Keep(Reason::PeerDials)
    );
    // Guessing off: rule 8's punch (it may meet where the peer's NAT filters loosely).
    let off = Situation {
        port_guessing: false,
        ..opening
    };
    assert_eq!(
        decide(&eim, eim_peer, off),
        Action::Punch {
            via,
            addrs: quic(eim_peer)
        }
    );
    // A guess in flight is waited for; one asked lately failed: the relay.
    let guessing = Situation {
        punching: true,
        asked_recently: true,
        guessed_recently: true,
        ..opening
    };
    assert_eq!(
        decide(&eim, eim_peer, guessing),
        Action::Keep(Reason::Punching)
    );
    let failed = Situation {
        punching: false,
        ..guessing
    };
    assert_eq!(decide(&eim, eim_peer, failed), Action::Relay { via });
    // A punch started before the records told how the NATs map (the peer's, or our own
    // plain one) is no guess.
    for asked_recently in [false, true] {
        let punching = Situation {
            punching: true,
            asked_recently,
            ..opening
        };
        assert_eq!(
            decide(&eim, eim_peer, punching),
            Action::Guess {
                via,
                addrs: quic(eim_peer)
            }
        );
    }
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
