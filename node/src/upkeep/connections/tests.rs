//! The connection book's rules, each shown on a few connections.

use libp2p::Multiaddr;
use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;

use super::*;

fn addr(s: &str) -> Multiaddr {
    s.parse().expect("test address")
}

fn ours(transport: Transport) -> Observation {
    Observation::Direct(transport, Leg::ListenPort)
}

fn id(n: usize) -> ConnectionId {
    ConnectionId::new_unchecked(n)
}

fn dialer(address: &str) -> ConnectedPoint {
    ConnectedPoint::Dialer {
        address: addr(address),
        role_override: Endpoint::Dialer,
        port_use: PortUse::Reuse,
    }
}

fn listener(from: &str) -> ConnectedPoint {
    ConnectedPoint::Listener {
        local_addr: addr("/ip4/0.0.0.0/tcp/9000"),
        send_back_addr: addr(from),
    }
}

/// A circuit through a relay that reached us.
fn relayed() -> ConnectedPoint {
    ConnectedPoint::Listener {
        local_addr: addr(
            "/ip4/198.51.100.10/tcp/9000/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
        ),
        send_back_addr: addr("/p2p-circuit"),
    }
}

#[tokio::test(start_paused = true)]
async fn kinds_and_the_best_connection() {
    let mut book = ConnectionBook::new();
    let peer = PeerId::random();
    let now = Instant::now();
    let relayed = book.opened(id(1), peer, &relayed(), now);
    assert_eq!(relayed.link, Some(Link::Relayed));
    assert_eq!(relayed.before, status::Connection::None);
    assert_eq!(book.best(&peer), status::Connection::Relayed);
    book.opened(id(2), peer, &dialer("/ip4/198.51.100.20/tcp/9000"), now);
    assert_eq!(
        book.best(&peer),
        status::Connection::Direct { transport: "tcp" }
    );
    book.opened(
        id(3),
        peer,
        &dialer("/ip4/198.51.100.20/udp/9000/quic-v1"),
        now,
    );
    assert_eq!(
        book.best(&peer),
        status::Connection::Direct { transport: "quic" }
    );
    assert_eq!(book.transports_of(&peer), ["quic", "tcp"]);
    assert_eq!(book.counts(), (2, 1));
    assert_eq!(book.relayed_to(&peer, id(3)), [id(1)]);
    let unknown = book.opened(id(4), peer, &dialer("/dns4/example.org/tcp/1"), now);
    assert_eq!(unknown.link, None, "rule 1: not a socket, not relayed");
    assert_eq!(book.peers().count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_fresh_port_dial_is_not_looked_at() {
    let mut book = ConnectionBook::new();
    let (peer, now) = (PeerId::random(), Instant::now());
    book.dialing(peer, id(1), true);
    book.opened(id(1), peer, &dialer("/ip4/198.51.100.20/tcp/9000"), now);
    assert_eq!(book.observation(id(1)), Observation::FreshPort);
    book.opened(id(2), peer, &dialer("/ip4/198.51.100.30/tcp/9000"), now);
    assert_eq!(book.observation(id(2)), ours(Transport::Tcp));
    book.opened(id(3), peer, &relayed(), now);
    assert_eq!(book.observation(id(3)), Observation::Unknown, "relayed");
    assert_eq!(book.observation(id(9)), Observation::Unknown, "not open");
    book.dialing(peer, id(5), true);
    book.dial_failed(id(5));
    assert!(book.dials.is_empty(), "a failed dial is forgotten");
}

#[tokio::test(start_paused = true)]
async fn a_second_tcp_connection_to_the_same_address_is_told_from_the_first() {
    let mut book = ConnectionBook::new();
    let (peer, now) = (PeerId::random(), Instant::now());
    let boot = "/ip4/198.51.100.10/tcp/9000";
    book.opened(id(1), peer, &dialer(boot), now);
    book.opened(id(2), peer, &dialer(boot), now);
    book.opened(id(3), peer, &dialer("/ip4/198.51.100.20/tcp/9000"), now);
    assert_eq!(book.observation(id(1)), ours(Transport::Tcp));
    let twin = Observation::Direct(Transport::Tcp, Leg::OtherPort);
    assert_eq!(book.observation(id(2)), twin, "a twin");
    assert_eq!(
        book.observation(id(3)),
        ours(Transport::Tcp),
        "another address is another pair"
    );
    book.closed(id(1), peer, 2, now);
    book.closed(id(2), peer, 1, now);
    book.opened(id(4), peer, &dialer(boot), now);
    assert_eq!(book.observation(id(4)), ours(Transport::Tcp), "alone again");
}

#[tokio::test(start_paused = true)]
async fn a_tcp_redial_while_quic_to_the_same_ip_and_port_is_open_is_no_twin() {
    let mut book = ConnectionBook::new();
    let (peer, now) = (PeerId::random(), Instant::now());
    book.opened(
        id(1),
        peer,
        &dialer("/ip4/198.51.100.10/udp/9000/quic-v1"),
        now,
    );
    book.opened(id(2), peer, &dialer("/ip4/198.51.100.10/tcp/9000"), now);
    assert_eq!(book.observation(id(2)), ours(Transport::Tcp));
}

#[tokio::test(start_paused = true)]
async fn the_stranger_test() {
    let mut book = ConnectionBook::new();
    let now = Instant::now();
    let inbound = listener("/ip4/198.51.100.20/tcp/1234");
    let stranger = PeerId::random();
    assert!(book.is_stranger(&stranger, &inbound, now));
    assert!(!book.is_stranger(&stranger, &dialer("/ip4/198.51.100.20/tcp/9000"), now));
    assert!(!book.is_stranger(&stranger, &relayed(), now));

    // Rule 2: dialed, until its last connection closes.
    let dialed = PeerId::random();
    book.dialing(dialed, id(1), false);
    assert!(!book.is_stranger(&dialed, &inbound, now));
    assert!(book.was_dialed(&dialed));
    book.opened(id(1), dialed, &dialer("/ip4/198.51.100.30/tcp/9000"), now);
    book.closed(id(1), dialed, 0, now);
    assert!(book.is_stranger(&dialed, &inbound, now));

    // Rules 5 and 6: relayed now, or within the grace.
    let punched = PeerId::random();
    book.opened(id(2), punched, &relayed(), now);
    assert!(!book.is_stranger(&punched, &inbound, now));
    book.closed(id(2), punched, 0, now);
    tokio::time::advance(PUNCH_GRACE - Duration::from_secs(1)).await;
    assert!(!book.is_stranger(&punched, &inbound, Instant::now()));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(book.is_stranger(&punched, &inbound, Instant::now()));
}

#[tokio::test(start_paused = true)]
async fn relay_closes_are_forgotten_after_the_grace() {
    let mut book = ConnectionBook::new();
    for n in 0..10 {
        let peer = PeerId::random();
        book.opened(id(n), peer, &relayed(), Instant::now());
        book.closed(id(n), peer, 0, Instant::now());
    }
    assert_eq!(book.relay_closed.len(), 10);
    tokio::time::advance(PUNCH_GRACE).await;
    let peer = PeerId::random();
    book.opened(id(99), peer, &relayed(), Instant::now());
    book.closed(id(99), peer, 0, Instant::now());
    assert_eq!(book.relay_closed.len(), 1, "rule 6: bounded by the grace");
}

#[tokio::test(start_paused = true)]
async fn liveness_from_open_to_close() {
    let mut book = ConnectionBook::new();
    let peer = PeerId::random();
    book.opened(
        id(1),
        peer,
        &dialer("/ip4/198.51.100.20/tcp/9000"),
        Instant::now(),
    );
    book.opened(
        id(2),
        peer,
        &dialer("/ip4/198.51.100.20/udp/9000/quic-v1"),
        Instant::now(),
    );
    let ms = Duration::from_millis;
    assert_eq!(book.rtt_of(&peer), None, "no ping answered yet");
    assert!(
        book.ping_answered(id(1), Instant::now(), ms(30)),
        "first answer"
    );
    assert!(
        !book.ping_answered(id(1), Instant::now(), ms(20)),
        "not the first"
    );
    assert_eq!(book.rtt_of(&peer), Some(ms(20)), "the last answer's");
    tokio::time::advance(crate::upkeep::liveness::budget()).await;
    book.ping_answered(id(1), Instant::now(), ms(25));
    assert_eq!(book.expired(Instant::now()), [(id(2), Some(peer))]);
    assert!(book.closed(id(2), peer, 1, Instant::now()).lost);
    assert!(
        !book.closed(id(1), peer, 0, Instant::now()).lost,
        "a close it chose"
    );
    assert!(book.peers().next().is_none());
}

#[tokio::test(start_paused = true)]
async fn max_peers_counts_the_peers_we_dial_and_hold_never_those_that_connect_to_us() {
    let mut book = ConnectionBook::new();
    let now = Instant::now();
    let bootnode = PeerId::random();
    let is_bootnode = |p: &PeerId| *p == bootnode;

    // Rule 9: fifty strangers connecting to us count for nothing.
    for n in 0..50 {
        book.opened(
            id(100 + n),
            PeerId::random(),
            &listener("/ip4/203.0.113.7/tcp/4000"),
            now,
        );
    }
    assert_eq!(book.chosen_peers(is_bootnode), 0);

    // A dial of ours counts from its start, and while the connection it opened stays.
    let (alice, bob) = (PeerId::random(), PeerId::random());
    book.dialing(alice, id(1), true);
    book.dialing(bob, id(2), false);
    book.dialing(bootnode, id(3), false);
    assert_eq!(book.chosen_peers(is_bootnode), 2, "two dials under way");
    book.opened(id(1), alice, &dialer("/ip4/198.51.100.20/tcp/9000"), now);
    book.dialing(alice, id(4), false);
    assert_eq!(book.chosen_peers(is_bootnode), 2, "a peer counts once");
    book.dial_failed(id(2));
    book.dial_failed(id(4));
    assert_eq!(
        book.chosen_peers(is_bootnode),
        1,
        "a failed dial stops counting"
    );
    assert_eq!(
        book.observation(id(1)),
        Observation::FreshPort,
        "rule 3 still holds"
    );

    // A peer that dialed us, then we it: counts only for our connection.
    let carol = PeerId::random();
    book.opened(id(5), carol, &listener("/ip4/203.0.113.8/tcp/4000"), now);
    book.dialing(carol, id(6), false);
    book.opened(
        id(6),
        carol,
        &dialer("/ip4/203.0.113.8/udp/4000/quic-v1"),
        now,
    );
    assert_eq!(book.chosen_peers(is_bootnode), 2);
    book.closed(id(6), carol, 1, now);
    assert_eq!(
        book.chosen_peers(is_bootnode),
        1,
        "its own connection is left"
    );
    book.closed(id(1), alice, 0, now);
    assert_eq!(book.chosen_peers(is_bootnode), 0);
}

#[tokio::test(start_paused = true)]
async fn a_direct_connection_keeps_where_it_comes_from_and_its_first_report() {
    let mut book = ConnectionBook::new();
    let peer = PeerId::random();
    let now = Instant::now();
    book.opened(id(1), peer, &listener("/ip4/203.0.113.7/tcp/40000"), now);
    book.opened(id(2), peer, &relayed(), now);
    let (a, b) = (
        addr("/ip4/198.51.100.2/tcp/9000"),
        addr("/ip4/198.51.100.3/tcp/9000"),
    );
    let from = "203.0.113.7".parse().expect("test address");
    let first = Reported {
        from,
        changed: false,
    };
    assert_eq!(book.reported(id(1), &a), Some(first));
    assert_eq!(book.reported(id(1), &a), Some(first), "the same again");
    assert_eq!(
        book.reported(id(1), &b),
        Some(Reported {
            from,
            changed: true
        }),
        "a push naming another"
    );
    assert_eq!(book.reported(id(1), &a), Some(first), "the first is kept");
    assert_eq!(
        book.reported(id(2), &a),
        None,
        "a circuit shows no observer"
    );
    book.closed(id(1), peer, 1, now);
    assert_eq!(
        book.reported(id(1), &a),
        None,
        "forgotten with the connection"
    );
    assert!(book.observers.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_record_dial_is_told_from_a_punch_and_one_is_under_way_at_a_time() {
    let mut book = ConnectionBook::new();
    let (peer, other, now) = (PeerId::random(), PeerId::random(), Instant::now());
    // A punch's dial that hangs does not count as a record dial (rule 11).
    book.dialing(peer, id(1), false);
    assert!(!book.record_dial_pending(&peer));
    book.dialing(peer, id(2), true);
    book.is_record_dial(id(2));
    assert!(book.record_dial_pending(&peer));
    assert!(!book.record_dial_pending(&other), "per peer");
    // Ended either way, it is no longer under way.
    book.dial_failed(id(2));
    assert!(!book.record_dial_pending(&peer));
    book.dialing(peer, id(3), false);
    book.is_record_dial(id(3));
    book.opened(id(3), peer, &dialer("/ip4/198.51.100.20/tcp/9000"), now);
    assert!(!book.record_dial_pending(&peer));
    assert_eq!(book.observation(id(3)), ours(Transport::Tcp));
    book.dialing(peer, id(4), true);
    book.is_record_dial(id(4));
    book.opened(id(4), peer, &dialer("/ip4/198.51.100.20/tcp/9000"), now);
    assert_eq!(
        book.observation(id(4)),
        Observation::FreshPort,
        "rule 3 as any dial"
    );
}
