//! Tests of the NAT lab's network itself: the routers map and filter as their mode says, an
//! impaired uplink delays and loses as it is given, and hosts reach each other as soon as the
//! lab is up. How a lab is made, used and removed is tested in `lab_self_lifecycle.rs`. They
//! need root; `cargo test -- --skip lab_` runs everything else.

#![allow(clippy::unwrap_used)]

mod lab_probe;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use lab_probe::{address, arrives_soon, behind, observed_by_two, receive, recv_from, socket, up};
use peerfind_tests::lab::{Host, Impairment, Lab, NatMode, Placement, Topology};

#[test]
fn lab_symmetric_nat_maps_a_new_public_port_per_destination() {
    let lab = up(behind(NatMode::Symmetric), Placement::Public);
    let (_, by_bootnode, by_charlie) = observed_by_two(&lab);
    let wan = lab.public_ip(Host::Alice);
    assert_eq!(wan, lab.ip(Host::NatA));
    assert_eq!(by_bootnode.ip(), wan);
    assert_eq!(by_charlie.ip(), wan);
    assert_ne!(
        by_bootnode.port(),
        by_charlie.port(),
        "one port for two destinations"
    );
}

#[test]
fn lab_endpoint_independent_nat_keeps_one_public_port_for_every_destination() {
    let lab = up(behind(NatMode::EndpointIndependent), Placement::Public);
    let (local_port, by_bootnode, by_charlie) = observed_by_two(&lab);
    let expected = SocketAddr::from((lab.public_ip(Host::Alice), local_port));
    // Plain masquerade keeps the host's own port when it is free, as it is here.
    assert_eq!(by_bootnode, expected);
    assert_eq!(by_charlie, expected);
}

#[test]
fn lab_endpoint_independent_nat_drops_unsolicited_inbound_and_passes_replies() {
    let lab = up(behind(NatMode::EndpointIndependent), Placement::Public);
    let alice = socket(&lab, Host::Alice);
    let bootnode = socket(&lab, Host::Bootnode);
    let charlie = socket(&lab, Host::Charlie);

    // Alice opens a mapping towards the bootnode, which learns her public address.
    alice
        .send_to(b"hello", address(&lab, Host::Bootnode, &bootnode))
        .unwrap();
    let (_, mapped) = receive(&bootnode);
    assert_eq!(mapped.ip(), lab.public_ip(Host::Alice));

    // Charlie, to whom Alice never sent, uses that mapping: the router drops it.
    charlie.send_to(b"unsolicited", mapped).unwrap();
    assert!(
        !arrives_soon(&alice),
        "an unsolicited datagram reached Alice"
    );

    // The bootnode's reply comes in, and so does Charlie's once Alice has sent to him.
    bootnode.send_to(b"reply", mapped).unwrap();
    assert_eq!(
        receive(&alice),
        (
            b"reply".to_vec(),
            SocketAddr::V4(address(&lab, Host::Bootnode, &bootnode))
        )
    );
    alice
        .send_to(b"punch", address(&lab, Host::Charlie, &charlie))
        .unwrap();
    let (payload, seen) = receive(&charlie);
    assert_eq!(payload, b"punch");
    assert_eq!(
        seen, mapped,
        "Alice kept her public port for a second destination"
    );
    charlie.send_to(b"welcome", seen).unwrap();
    let (payload, from) = receive(&alice);
    assert_eq!(payload, b"welcome");
    assert_eq!(from, SocketAddr::V4(address(&lab, Host::Charlie, &charlie)));
}

#[test]
fn lab_full_cone_nat_forwards_unsolicited_inbound_to_its_host() {
    let lab = up(behind(NatMode::FullCone), Placement::Public);
    let alice = socket(&lab, Host::Alice);
    let charlie = socket(&lab, Host::Charlie);
    let port = alice.local_addr().unwrap().port();

    charlie
        .send_to(b"unsolicited", (lab.public_ip(Host::Alice), port))
        .unwrap();
    let (payload, from) = receive(&alice);
    assert_eq!(payload, b"unsolicited");
    assert_eq!(from, SocketAddr::V4(address(&lab, Host::Charlie, &charlie)));

    // Alice's answer leaves from the same public address and port.
    alice.send_to(b"answer", from).unwrap();
    let (payload, seen) = receive(&charlie);
    assert_eq!(payload, b"answer");
    assert_eq!(seen, SocketAddr::from((lab.public_ip(Host::Alice), port)));
}

#[test]
fn lab_puts_alice_on_the_public_segment_without_a_router() {
    let lab = up(Placement::Public, behind(NatMode::EndpointIndependent));
    assert!(!lab.has(Host::NatA));
    assert!(lab.has(Host::NatB));
    assert_eq!(lab.ip(Host::Alice), lab.public_ip(Host::Alice));
    let (port, by_bootnode, by_charlie) = observed_by_two(&lab);
    let own = SocketAddr::from((Ipv4Addr::new(198, 51, 100, 30), port));
    assert_eq!((by_bootnode, by_charlie), (own, own));

    // Bob, behind his router, reaches public Alice directly.
    let alice = socket(&lab, Host::Alice);
    let bob = socket(&lab, Host::Bob);
    bob.send_to(b"hi alice", address(&lab, Host::Alice, &alice))
        .unwrap();
    let (_, from) = receive(&alice);
    assert_eq!(from.ip(), Ipv4Addr::new(198, 51, 100, 102));
}

/// The shortest of `rounds` UDP round trips from `a` in `from` to `b` in `to` and back: the
/// shortest, because the lab's latency is a floor that scheduling only adds to.
fn round_trip(lab: &Lab, a: &UdpSocket, to: Host, b: &UdpSocket, rounds: usize) -> Duration {
    let target = address(lab, to, b);
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            a.send_to(b"ping", target).unwrap();
            let (_, from) = receive(b);
            b.send_to(b"pong", from).unwrap();
            receive(a);
            start.elapsed()
        })
        .min()
        .unwrap()
}

#[test]
fn lab_delays_an_impaired_uplink_in_both_directions() {
    let charlie_delay = Duration::from_millis(25);
    let (alice_delay, nat_a_delay) = (Duration::from_millis(10), Duration::from_millis(15));
    let topology = Topology::new(behind(NatMode::EndpointIndependent), Placement::Public)
        .with_uplink(Host::Charlie, Impairment::delay(charlie_delay))
        .with_uplink(Host::Alice, Impairment::delay(alice_delay))
        .with_uplink(Host::NatA, Impairment::delay(nat_a_delay));
    let lab = Lab::up(topology).expect("the lab comes up");
    let bootnode = socket(&lab, Host::Bootnode);
    let charlie = socket(&lab, Host::Charlie);
    let bob = socket(&lab, Host::Bob);
    let alice = socket(&lab, Host::Alice);

    // Bob's link is plain veth: the baseline.
    let plain = round_trip(&lab, &bootnode, Host::Bob, &bob, 5);
    assert!(
        plain < Duration::from_millis(5),
        "plain round trip {plain:?}"
    );

    // A public host's link to the bridge.
    let over_charlie = round_trip(&lab, &bootnode, Host::Charlie, &charlie, 5);
    let expected = 2 * charlie_delay;
    assert!(
        over_charlie >= expected && over_charlie < expected + Duration::from_millis(15),
        "round trip over a {charlie_delay:?} link: {over_charlie:?}"
    );

    // Alice's LAN and her router's WAN in a row, through the NAT: Alice starts the exchange.
    let over_alice = round_trip(&lab, &alice, Host::Bootnode, &bootnode, 5);
    let expected = 2 * (alice_delay + nat_a_delay);
    assert!(
        over_alice >= expected && over_alice < expected + Duration::from_millis(15),
        "round trip over {alice_delay:?} and {nat_a_delay:?} links: {over_alice:?}"
    );
    eprintln!(
        "round trips: plain {plain:?}, over charlie {over_charlie:?}, over alice {over_alice:?}"
    );
}

#[test]
fn lab_loses_the_share_of_frames_an_impaired_uplink_is_given() {
    const SENT: usize = 1000;
    const LOSS: f64 = 0.25;
    const PACE: Duration = Duration::from_micros(200);
    let topology = Topology::new(Placement::Public, Placement::Public)
        .with_uplink(Host::Charlie, Impairment::default().with_loss(LOSS));
    let lab = Lab::up(topology).expect("the lab comes up");
    let bootnode = socket(&lab, Host::Bootnode);
    let charlie = socket(&lab, Host::Charlie);
    let target = address(&lab, Host::Charlie, &charlie);

    // Until one round trip succeeds, ARP may be what was lost; after it both ends know each
    // other's link address and only the datagrams are at stake.
    charlie
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    bootnode
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64];
    let warmed = (0..50).any(|_| {
        bootnode.send_to(b"warm", target).unwrap();
        let Ok((_, from)) = recv_from(&charlie, &mut buf) else {
            return false;
        };
        charlie.send_to(b"warm", from).unwrap();
        recv_from(&bootnode, &mut buf).is_ok()
    });
    assert!(warmed, "no round trip in 50 tries at {LOSS} loss");
    // Drain late duplicates of the warm-up.
    while recv_from(&charlie, &mut buf).is_ok() {}

    // Count what arrives until the link has been silent for a while: the one end a lossy
    // stream has.
    charlie
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let counter = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut count = 0usize;
        while recv_from(&charlie, &mut buf).is_ok() {
            count += 1;
        }
        count
    });
    // Paced, so that no queue on the way overflows: only the emulated loss may count.
    for _ in 0..SENT {
        bootnode.send_to(b"count me", target).unwrap();
        std::thread::sleep(PACE);
    }
    let received = counter.join().unwrap();
    eprintln!("received {received} of {SENT} at {LOSS} loss");
    let expected = SENT as f64 * (1.0 - LOSS);
    // Six standard deviations of the binomial count: a false alarm is practically impossible.
    let spread = 6.0 * (SENT as f64 * LOSS * (1.0 - LOSS)).sqrt();
    assert!(
        (received as f64 - expected).abs() < spread,
        "received {received} of {SENT} at {LOSS} loss, expected {expected} ± {spread:.0}"
    );
}

#[test]
fn lab_carries_tcp_through_an_impaired_uplink_and_a_nat() {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    const SIZE: usize = 1 << 20;
    let delay = Duration::from_millis(5);
    let topology = Topology::new(behind(NatMode::EndpointIndependent), Placement::Public)
        .with_uplink(Host::Alice, Impairment::delay(delay));
    let lab = Lab::up(topology).expect("the lab comes up");
    let listener = lab
        .in_host(Host::Charlie, || {
            TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))
        })
        .unwrap()
        .unwrap();
    let target = SocketAddrV4::new(lab.ip(Host::Charlie), listener.local_addr().unwrap().port());
    let server = std::thread::spawn(move || {
        let (mut stream, from) = listener.accept().unwrap();
        let mut received = Vec::new();
        stream.read_to_end(&mut received).unwrap();
        (received, from)
    });

    // Segments larger than one frame would not cross a TAP device whole: the stack must cut
    // them, which it does because TAP devices offer no segmentation offload.
    let start = Instant::now();
    let mut stream = lab
        .in_host(Host::Alice, || TcpStream::connect(target))
        .unwrap()
        .unwrap();
    let connected = start.elapsed();
    let payload: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    stream.write_all(&payload).unwrap();
    drop(stream);
    let (received, from) = server.join().unwrap();
    assert_eq!(from.ip(), lab.public_ip(Host::Alice));
    assert!(
        received == payload,
        "{} bytes arrived, not the ones sent",
        received.len()
    );
    assert!(connected >= 2 * delay, "connected in {connected:?}");
    eprintln!("connected in {connected:?}, 1 MiB in {:?}", start.elapsed());
}

#[test]
fn lab_hosts_reach_each_other_as_soon_as_the_lab_is_up() {
    // A link still waiting for the kernel's link watch drops the first ARP request, and the
    // retry comes a second later: the first datagram must not take that long.
    let lab = up(behind(NatMode::EndpointIndependent), Placement::Public);
    let start = Instant::now();
    let (_, by_bootnode, _) = observed_by_two(&lab);
    let first = start.elapsed();
    assert_eq!(by_bootnode.ip(), lab.public_ip(Host::Alice));
    assert!(
        first < Duration::from_millis(500),
        "first datagrams took {first:?}"
    );
    let charlie = socket(&lab, Host::Charlie);
    let bob = socket(&lab, Host::Bob);
    let start = Instant::now();
    charlie
        .send_to(b"first", address(&lab, Host::Bob, &bob))
        .unwrap();
    receive(&bob);
    let first = start.elapsed();
    assert!(
        first < Duration::from_millis(500),
        "first datagram took {first:?}"
    );
}
