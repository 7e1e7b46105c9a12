//! The address-confirmation rules, each shown on a few reports.
#![allow(clippy::unwrap_used)]

use super::*;

fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

/// No listen address known: rules 9 and 12 never apply, only loopback is this host.
const NOBODY: Own<'static> = Own {
    listen: &[],
    bootnode: false,
};

/// A report over `transport`, on a connection from the listen port, from `from`.
fn seen(peer: PeerId, bootnode: bool, transport: Transport, from: &str) -> Seen {
    Seen {
        peer,
        bootnode,
        transport,
        leg: Leg::ListenPort,
        from: from.parse().unwrap(),
        changed: false,
    }
}

/// A stranger in the network `198.51.<n>.0/24`.
fn stranger(n: u8, transport: Transport) -> Seen {
    seen(PeerId::random(), false, transport, &format!("198.51.{n}.7"))
}

fn confirmed(outcome: Outcome) -> Confirmed {
    match outcome {
        Outcome::Confirmed(c) => c,
        other => panic!("not confirmed: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_bootnode_report_confirms_at_once() {
    let mut c = Confirmations::new(DEFAULT_THRESHOLD);
    let boot = PeerId::random();
    let report = seen(boot, true, Transport::Tcp, "203.0.113.10");
    let a = addr("/ip4/198.51.100.2/tcp/9000");
    assert_eq!(
        c.observe(report, &a, NOBODY, Instant::now()),
        Outcome::Confirmed(Confirmed {
            socket: "198.51.100.2:9000".parse().unwrap(),
            transport: Transport::Tcp,
            by: Witness::Bootnode(boot),
        })
    );
    // The same again is no news (rule 7).
    assert_eq!(
        c.observe(report, &a, NOBODY, Instant::now()),
        Outcome::Counted
    );
    assert!(c.bootnode_saw("198.51.100.2".parse().unwrap()));
}

#[tokio::test(start_paused = true)]
async fn fresh_peer_ids_in_one_network_are_one_vote_however_many() {
    let mut c = Confirmations::new(3);
    let a = addr("/ip4/198.51.100.2/udp/9000/quic-v1");
    // A hundred identities on one machine, and as many across one /24: two votes.
    for i in 0..100u8 {
        for from in ["127.0.0.1".to_owned(), format!("203.0.113.{i}")] {
            let liar = seen(PeerId::random(), false, Transport::Quic, &from);
            assert_eq!(
                c.observe(liar, &a, NOBODY, Instant::now()),
                Outcome::Counted
            );
        }
    }
    assert_eq!(c.votes[&Transport::Quic].len(), 2);
    assert_eq!(c.confirmed().count(), 0);
}

#[tokio::test(start_paused = true)]
async fn observers_in_threshold_networks_confirm() {
    let mut c = Confirmations::new(DEFAULT_THRESHOLD);
    let a = addr("/ip4/198.51.100.2/udp/9000/quic-v1");
    for n in 1..DEFAULT_THRESHOLD as u8 {
        let outcome = c.observe(stranger(n, Transport::Quic), &a, NOBODY, Instant::now());
        assert_eq!(outcome, Outcome::Counted, "{n} groups");
    }
    let got = confirmed(c.observe(stranger(99, Transport::Quic), &a, NOBODY, Instant::now()));
    assert_eq!(got.by, Witness::Groups(DEFAULT_THRESHOLD));
    assert!(
        !c.bootnode_saw("198.51.100.2".parse().unwrap()),
        "strangers are no bootnode"
    );
}

#[tokio::test(start_paused = true)]
async fn a_groups_latest_vote_replaces_its_earlier_one() {
    let mut c = Confirmations::new(2);
    let (a, b) = (
        addr("/ip4/198.51.100.2/tcp/9000"),
        addr("/ip4/198.51.100.3/tcp/9000"),
    );
    let now = Instant::now();
    assert_eq!(
        c.observe(stranger(1, Transport::Tcp), &a, NOBODY, now),
        Outcome::Counted
    );
    // Another identity in the same /24 changes the group's vote; a.
    assert_eq!(
        c.observe(stranger(1, Transport::Tcp), &b, NOBODY, now),
        Outcome::Counted
    );
    assert_eq!(
        c.observe(stranger(2, Transport::Tcp), &a, NOBODY, now),
        Outcome::Counted
    );
    assert_eq!(c.votes[&Transport::Tcp].len(), 2);
    confirmed(c.observe(stranger(2, Transport::Tcp), &b, NOBODY, now));
}

#[test]
fn an_observers_group_is_its_network_and_this_host_is_one() {
    let group = |ip: &str| Group::of(ip.parse().unwrap(), NOBODY);
    assert_eq!(group("198.51.100.7"), group("198.51.100.200"));
    assert_ne!(group("198.51.100.7"), group("198.51.101.7"));
    assert_eq!(
        group("2001:db8:1:ffff::1"),
        group("2001:db8:1:1::2"),
        "one /48"
    );
    assert_ne!(group("2001:db8:1::1"), group("2001:db8:2::1"));
    assert_eq!(
        group("::ffff:198.51.100.7"),
        group("198.51.100.9"),
        "mapped"
    );
    assert_eq!(group("127.0.0.1"), Group::ThisHost);
    assert_eq!(group("127.0.0.2"), Group::ThisHost);
    assert_eq!(group("::1"), Group::ThisHost);
    let listen = [addr("/ip4/192.0.2.5/tcp/9000")];
    let own = Own {
        listen: &listen,
        bootnode: false,
    };
    assert_eq!(
        Group::of("192.0.2.5".parse().unwrap(), own),
        Group::ThisHost,
        "a peer on this host reaching us at our own interface's IP"
    );
    assert_eq!(
        Group::of("192.0.2.6".parse().unwrap(), own),
        group("192.0.2.77")
    );
}

#[tokio::test(start_paused = true)]
async fn an_address_of_the_wrong_transport_or_shape_is_ignored() {
    let mut c = Confirmations::new(1);
    let p = PeerId::random();
    let now = Instant::now();
    let cannot = Outcome::NotTaken(NotTaken::CannotBeOurs);
    let quic = seen(p, true, Transport::Quic, "203.0.113.10");
    let tcp = seen(p, true, Transport::Tcp, "203.0.113.10");
    assert_eq!(
        c.observe(quic, &addr("/ip4/198.51.100.2/tcp/1"), NOBODY, now),
        cannot
    );
    assert_eq!(
        c.observe(tcp, &addr("/ip4/0.0.0.0/tcp/1"), NOBODY, now),
        cannot
    );
    assert_eq!(
        c.observe(tcp, &addr("/dns4/x.example/tcp/1"), NOBODY, now),
        cannot
    );
}

#[tokio::test(start_paused = true)]
async fn votes_are_bounded() {
    let mut c = Confirmations::new(3);
    for i in 0..(MAX_VOTERS * 2) {
        let a = addr(&format!("/ip4/198.51.100.2/tcp/{}", 1000 + i));
        let from = format!("10.{}.{}.1", i / 256, i % 256);
        let report = seen(PeerId::random(), false, Transport::Tcp, &from);
        c.observe(report, &a, NOBODY, Instant::now());
    }
    assert_eq!(c.votes[&Transport::Tcp].len(), MAX_VOTERS);
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_did_not_leave_from_the_listen_port_never_confirms() {
    let mut c = Confirmations::new(1);
    let ephemeral = addr("/ip4/198.51.100.2/tcp/40123");
    let now = Instant::now();
    let other_port = Outcome::NotTaken(NotTaken::OtherPort);
    let boot = Seen {
        leg: Leg::OtherPort,
        ..seen(PeerId::random(), true, Transport::Tcp, "203.0.113.10")
    };
    assert_eq!(c.observe(boot, &ephemeral, NOBODY, now), other_port);
    let stranger = Seen {
        leg: Leg::OtherPort,
        ..stranger(1, Transport::Tcp)
    };
    assert_eq!(
        c.observe(stranger, &ephemeral, NOBODY, now),
        other_port,
        "nor does it vote"
    );
    assert_eq!(c.confirmed().count(), 0);
}

#[tokio::test(start_paused = true)]
async fn on_our_own_ip_only_a_listen_port_is_ours() {
    let mut c = Confirmations::new(1);
    let listen = [
        addr("/ip4/127.0.0.1/tcp/9000"),
        addr("/ip4/127.0.0.1/udp/9001/quic-v1"),
    ];
    let own = Own {
        listen: &listen,
        bootnode: false,
    };
    let boot = seen(PeerId::random(), true, Transport::Tcp, "127.0.0.1");
    let now = Instant::now();
    let other_port = Outcome::NotTaken(NotTaken::OtherPort);
    // A silent port-reuse fallback: our IP, a port we do not listen on.
    assert_eq!(
        c.observe(boot, &addr("/ip4/127.0.0.1/tcp/40123"), own, now),
        other_port
    );
    // The QUIC port is no TCP listen port.
    assert_eq!(
        c.observe(boot, &addr("/ip4/127.0.0.1/tcp/9001"), own, now),
        other_port
    );
    confirmed(c.observe(boot, &addr("/ip4/127.0.0.1/tcp/9000"), own, now));
    // Behind a NAT the port may change: another IP is not judged by our ports.
    confirmed(c.observe(boot, &addr("/ip4/198.51.100.101/tcp/1024"), own, now));
}

#[tokio::test(start_paused = true)]
async fn a_stranger_that_changes_its_story_on_a_connection_is_dropped_a_bootnode_is_not() {
    let mut c = Confirmations::new(1);
    let now = Instant::now();
    let pushed = Seen {
        changed: true,
        ..stranger(1, Transport::Tcp)
    };
    assert_eq!(
        c.observe(pushed, &addr("/ip4/198.51.100.9/tcp/9000"), NOBODY, now),
        Outcome::Changed
    );
    assert_eq!(c.counts().changed, 1);
    assert!(c.votes.is_empty(), "it did not vote");
    let rebound = Seen {
        changed: true,
        ..seen(PeerId::random(), true, Transport::Quic, "203.0.113.10")
    };
    let a = addr("/ip4/198.51.100.9/udp/40000/quic-v1");
    confirmed(c.observe(rebound, &a, NOBODY, now));
}

#[tokio::test(start_paused = true)]
async fn the_record_moves_at_most_max_moves_times_per_window_and_the_latest_waits() {
    let mut c = Confirmations::new(1);
    let boot = seen(PeerId::random(), true, Transport::Tcp, "203.0.113.10");
    let at = |port: u16| addr(&format!("/ip4/198.51.100.2/tcp/{port}"));
    let start = Instant::now();
    for port in 0..MAX_MOVES as u16 {
        confirmed(c.observe(boot, &at(1000 + port), NOBODY, Instant::now()));
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    // The flood goes on: the next move waits for the window, and only the latest waits.
    let due = start + MOVE_WINDOW;
    assert_eq!(
        c.observe(boot, &at(2000), NOBODY, Instant::now()),
        Outcome::Deferred(due)
    );
    assert_eq!(
        c.observe(boot, &at(2001), NOBODY, Instant::now()),
        Outcome::Deferred(due)
    );
    assert_eq!(
        c.observe(boot, &at(2001), NOBODY, Instant::now()),
        Outcome::Counted
    );
    assert_eq!(c.counts().deferred, 2);
    assert_eq!(c.next_due(), Some(due));
    assert!(c.due(Instant::now()).is_empty(), "not yet");

    tokio::time::sleep_until(due).await;
    let taken = c.due(Instant::now());
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].socket, "198.51.100.2:2001".parse().unwrap());
    assert_eq!(c.next_due(), None);
    // One second later the second move of the window leaves it too.
    assert!(matches!(
        c.observe(boot, &at(3000), NOBODY, Instant::now()),
        Outcome::Deferred(_)
    ));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(c.due(Instant::now()).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_address_gives_way_to_the_one_the_record_holds() {
    let mut c = Confirmations::new(1);
    let boot = seen(PeerId::random(), true, Transport::Tcp, "203.0.113.10");
    let at = |port: u16| addr(&format!("/ip4/198.51.100.2/tcp/{port}"));
    for port in 0..MAX_MOVES as u16 {
        confirmed(c.observe(boot, &at(1000 + port), NOBODY, Instant::now()));
    }
    let held = 1000 + MAX_MOVES as u16 - 1;
    assert!(matches!(
        c.observe(boot, &at(5000), NOBODY, Instant::now()),
        Outcome::Deferred(_)
    ));
    assert_eq!(
        c.observe(boot, &at(held), NOBODY, Instant::now()),
        Outcome::Counted
    );
    assert_eq!(c.next_due(), None, "nothing waits any more");
    tokio::time::advance(MOVE_WINDOW).await;
    assert!(c.due(Instant::now()).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_bootnode_on_a_routable_ip_keeps_its_listen_address() {
    let mut c = Confirmations::new(2);
    let listen = [
        addr("/ip4/198.51.100.10/tcp/9000"),
        addr("/ip4/127.0.0.1/udp/9000/quic-v1"),
    ];
    let own = Own {
        listen: &listen,
        bootnode: true,
    };
    let now = Instant::now();
    let (tcp, quic) = (
        addr("/ip4/192.0.2.1/tcp/9000"),
        addr("/ip4/192.0.2.1/udp/9000/quic-v1"),
    );
    for n in 1..=4 {
        assert_eq!(
            c.observe(stranger(n, Transport::Tcp), &tcp, own, now),
            Outcome::Counted
        );
    }
    // QUIC listens on loopback only: observers in enough networks may tell it more.
    c.observe(stranger(1, Transport::Quic), &quic, own, now);
    confirmed(c.observe(stranger(2, Transport::Quic), &quic, own, now));
    // A member of its mesh (a configured bootnode) still may.
    let mesh = seen(PeerId::random(), true, Transport::Tcp, "198.51.100.11");
    confirmed(c.observe(mesh, &tcp, own, now));
}

#[test]
fn which_ips_are_routable() {
    for ip in ["198.51.100.10", "203.0.113.1", "8.8.8.8", "2001:db8::1"] {
        assert!(is_routable(ip.parse().unwrap()), "{ip}");
    }
    for ip in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.2",
        "169.254.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fd00::1",
        "fe80::1",
    ] {
        assert!(!is_routable(ip.parse().unwrap()), "{ip}");
    }
}

#[test]
fn which_connections_left_from_the_listen_port() {
    use libp2p::core::Endpoint;
    let dialer = |port_use| ConnectedPoint::Dialer {
        address: addr("/ip4/198.51.100.10/tcp/9000"),
        role_override: Endpoint::Dialer,
        port_use,
    };
    let listener = ConnectedPoint::Listener {
        local_addr: addr("/ip4/0.0.0.0/tcp/9000"),
        send_back_addr: addr("/ip4/198.51.100.20/tcp/1234"),
    };
    let reuse = dialer(PortUse::Reuse);
    assert_eq!(Leg::of(&reuse, Transport::Tcp, false), Leg::ListenPort);
    assert_eq!(
        Leg::of(&reuse, Transport::Tcp, true),
        Leg::OtherPort,
        "a second TCP connection to the same address cannot reuse the port"
    );
    assert_eq!(Leg::of(&reuse, Transport::Quic, true), Leg::ListenPort);
    assert_eq!(
        Leg::of(&dialer(PortUse::New), Transport::Tcp, false),
        Leg::OtherPort
    );
    assert_eq!(Leg::of(&listener, Transport::Tcp, true), Leg::ListenPort);
}
