#![allow(clippy::unwrap_used)]

use super::*;

fn peer() -> PeerId {
    PeerId::random()
}

fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

fn sent_to(b: &mut Behaviour) -> Vec<ConnectionId> {
    b.events
        .drain(..)
        .filter_map(|e| match e {
            ToSwarm::NotifyHandler {
                handler: NotifyHandler::One(c),
                ..
            } => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn rule_1_direct_before_relayed_quic_before_tcp_newest_first() {
    let mut b = Behaviour::new();
    let p = peer();
    assert_eq!(b.ping(p), None, "no connection, no round");
    let (relayed, tcp, quic, tcp2) = (
        ConnectionId::new_unchecked(1),
        ConnectionId::new_unchecked(2),
        ConnectionId::new_unchecked(3),
        ConnectionId::new_unchecked(4),
    );
    let relay = PeerId::random();
    b.opened(
        p,
        relayed,
        &addr(&format!(
            "/ip4/198.51.100.10/tcp/9000/p2p/{relay}/p2p-circuit"
        )),
    );
    let (_, path) = b.ping(p).unwrap();
    assert!(path.relayed);
    assert_eq!(path.transport, Some(Transport::Tcp), "to the relay");
    b.opened(p, tcp, &addr("/ip4/203.0.113.2/tcp/4001"));
    assert_eq!(b.ping(p).unwrap().1.connection, tcp);
    b.opened(p, quic, &addr("/ip4/203.0.113.2/udp/4001/quic-v1"));
    assert_eq!(b.ping(p).unwrap().1.connection, quic);
    b.opened(p, tcp2, &addr("/ip4/203.0.113.2/tcp/4002"));
    assert_eq!(
        b.ping(p).unwrap().1.connection,
        quic,
        "QUIC before a newer TCP"
    );
    b.closed(p, quic);
    let (_, path) = b.ping(p).unwrap();
    assert_eq!(path.connection, tcp2, "then the newest TCP");
    assert!(!path.relayed);
    assert_eq!(
        sent_to(&mut b),
        vec![relayed, tcp, quic, quic, tcp2],
        "each round goes to its connection's handler"
    );
}

#[test]
fn an_accepted_circuit_is_relayed_though_its_remote_address_is_only_the_peer() {
    let mut b = Behaviour::new();
    let p = peer();
    let relay = PeerId::random();
    let local = addr(&format!(
        "/ip4/198.51.100.10/udp/9000/quic-v1/p2p/{relay}/p2p-circuit"
    ));
    b.handle_established_inbound_connection(
        ConnectionId::new_unchecked(1),
        p,
        &local,
        &addr(&format!("/p2p/{p}")),
    )
    .unwrap();
    let (_, path) = b.ping(p).unwrap();
    assert!(path.relayed);
    assert_eq!(path.remote, local);
    assert_eq!(path.transport, Some(Transport::Quic));
}

#[test]
fn rule_3_a_closing_connection_ends_its_rounds_once() {
    let mut b = Behaviour::new();
    let p = peer();
    let (c1, c2) = (
        ConnectionId::new_unchecked(1),
        ConnectionId::new_unchecked(2),
    );
    b.opened(p, c1, &addr("/ip4/203.0.113.2/udp/4001/quic-v1"));
    let (r1, _) = b.ping(p).unwrap();
    b.opened(p, c2, &addr("/ip4/203.0.113.2/udp/4002/quic-v1"));
    let (r2, _) = b.ping(p).unwrap();
    assert_eq!(b.in_flight(), 2);
    sent_to(&mut b);
    b.closed(p, c1);
    let ended: Vec<_> = b
        .events
        .drain(..)
        .filter_map(|e| match e {
            ToSwarm::GenerateEvent(e) => Some((e.round, e.result)),
            _ => None,
        })
        .collect();
    assert_eq!(ended, vec![(r1, Err(Failure::Closed))]);
    // The handler's late answer for the ended round is dropped; the other round's counts.
    b.on_connection_handler_event(p, c1, (r1, Ok(Duration::from_millis(5))));
    b.on_connection_handler_event(p, c2, (r2, Ok(Duration::from_millis(7))));
    let ended: Vec<_> = b
        .events
        .drain(..)
        .filter_map(|e| match e {
            ToSwarm::GenerateEvent(e) => Some(e.round),
            _ => None,
        })
        .collect();
    assert_eq!(ended, vec![r2]);
    assert_eq!(b.in_flight(), 0);
    b.closed(p, c2);
    assert!(b.connections.is_empty(), "nothing kept for a peer gone");
}
