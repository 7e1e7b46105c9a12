//! Tests of the NAT lab's router kinds beyond the basic ones in `lab_self.rs`, with real
//! packets: symmetric NATs that allocate sequentially or preserve the first port, two NATs in
//! a row behind a carrier, and two hosts on one LAN whose router hairpins or not. They need
//! root; `cargo test -- --skip lab_` runs everything else.

#![allow(clippy::unwrap_used)]

mod lab_probe;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

use lab_probe::{
    ARRIVAL, SILENCE, address, arrives_soon, behind, observed_by_two, receive, socket, up,
};
use peerfind_tests::lab::{Host, Lab, LabError, NatMode, Placement, Topology};

#[test]
fn lab_sequential_symmetric_nat_gives_each_new_destination_the_next_port() {
    let lab = up(behind(NatMode::SymmetricSequential), Placement::Public);
    let (local, by_bootnode, by_charlie) = observed_by_two(&lab);
    let wan = lab.public_ip(Host::Alice);
    assert_eq!(
        (by_bootnode.ip(), by_charlie.ip()),
        (wan.into(), wan.into())
    );
    assert!(
        (40000..=40191).contains(&by_bootnode.port()),
        "first mapping on {by_bootnode}, from local port {local}"
    );
    assert_eq!(by_charlie.port(), by_bootnode.port() + 1);

    // Another socket's first mapping takes the port after that.
    let alice = socket(&lab, Host::Alice);
    let bootnode = socket(&lab, Host::Bootnode);
    alice
        .send_to(b"third", address(&lab, Host::Bootnode, &bootnode))
        .unwrap();
    let (_, third) = receive(&bootnode);
    assert_eq!(third.port(), by_charlie.port() + 1);
}

#[test]
fn lab_port_preserving_symmetric_nat_keeps_the_port_for_the_first_destination_only() {
    let lab = up(behind(NatMode::SymmetricPreserving), Placement::Public);
    let (local, by_bootnode, by_charlie) = observed_by_two(&lab);
    let wan = lab.public_ip(Host::Alice);
    assert_eq!(by_bootnode, SocketAddr::from((wan, local)));
    assert_eq!(by_charlie.ip(), wan);
    assert_ne!(
        by_charlie.port(),
        local,
        "the second destination kept the port"
    );

    // Another local port starts over: its first destination, Charlie now, sees it unchanged.
    let alice = socket(&lab, Host::Alice);
    let charlie = socket(&lab, Host::Charlie);
    alice
        .send_to(b"first", address(&lab, Host::Charlie, &charlie))
        .unwrap();
    let (_, seen) = receive(&charlie);
    assert_eq!(
        seen,
        SocketAddr::from((wan, alice.local_addr().unwrap().port()))
    );
}

#[test]
fn lab_cgnat_puts_a_home_nat_behind_the_carrier_s_and_shows_the_carrier_s_address() {
    let lab = up(
        Placement::BehindCgnat(NatMode::EndpointIndependent),
        Placement::Public,
    );
    assert!(lab.has(Host::HomeA) && lab.has(Host::NatA) && !lab.has(Host::HomeB));
    let carrier_side = lab.ip(Host::HomeA);
    assert_eq!(carrier_side, Ipv4Addr::new(100, 64, 1, 2));
    assert_eq!(lab.ip(Host::Alice), Ipv4Addr::new(192, 168, 1, 2));
    assert_eq!(lab.public_ip(Host::Alice), lab.ip(Host::NatA));

    // Two endpoint-independent NATs in a row keep one public port for every destination.
    let (local, by_bootnode, by_charlie) = observed_by_two(&lab);
    let expected = SocketAddr::from((lab.public_ip(Host::Alice), local));
    assert_eq!((by_bootnode, by_charlie), (expected, expected));

    // The carrier's router saw the home router's carrier address, not Alice's.
    let output = lab
        .command(Host::NatA, "conntrack")
        .args(["-L", "-p", "udp"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains(&format!("src={carrier_side} ")) && !table.contains("src=192.168.1.2 "),
        "{table}"
    );

    // Unsolicited packets stop at the carrier; a reply passes both NATs.
    let alice = socket(&lab, Host::Alice);
    let bootnode = socket(&lab, Host::Bootnode);
    let charlie = socket(&lab, Host::Charlie);
    alice
        .send_to(b"hello", address(&lab, Host::Bootnode, &bootnode))
        .unwrap();
    let (_, mapped) = receive(&bootnode);
    charlie.send_to(b"unsolicited", mapped).unwrap();
    assert!(
        !arrives_soon(&alice),
        "an unsolicited datagram reached Alice"
    );
    bootnode.send_to(b"reply", mapped).unwrap();
    assert_eq!(receive(&alice).0, b"reply");
}

#[test]
fn lab_refuses_bob_on_the_lan_of_a_public_alice() {
    for topology in [
        Topology::new(Placement::Public, Placement::SameLan),
        Topology::new(Placement::SameLan, Placement::Public),
    ] {
        let error = Lab::up(topology).unwrap_err();
        assert!(matches!(error, LabError::Topology(_)), "{error}");
    }
}

/// A shared LAN behind an eim nat-a: Alice and Bob each map the same local port (as two
/// peers listening on one configured port do) towards the bootnode; returns the lab, their
/// sockets, what the bootnode saw of each, and its socket. Bob's mapping cannot take the
/// port Alice's took for the same destination, so their public ports differ.
fn shared_lan(hairpin: bool) -> (Lab, [UdpSocket; 2], [SocketAddr; 2], UdpSocket) {
    let topology = Topology::shared_lan(NatMode::EndpointIndependent).with_hairpin(hairpin);
    let lab = Lab::up(topology).expect("the lab comes up");
    assert!(!lab.has(Host::NatB));
    assert_eq!(lab.ip(Host::Bob), Ipv4Addr::new(192, 168, 1, 3));
    assert_eq!(lab.public_ip(Host::Bob), lab.public_ip(Host::Alice));
    let bootnode = socket(&lab, Host::Bootnode);
    let target = address(&lab, Host::Bootnode, &bootnode);
    let alice = socket(&lab, Host::Alice);
    let port = alice.local_addr().unwrap().port();
    let bob = lab
        .in_host(Host::Bob, || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)))
        .unwrap()
        .unwrap();
    bob.set_read_timeout(Some(ARRIVAL)).unwrap();
    let sockets = [alice, bob];
    let mut seen = Vec::new();
    for (socket, payload) in sockets.iter().zip([b"from alice", b"from bob  "]) {
        socket.send_to(payload, target).unwrap();
        let (got, from) = receive(&bootnode);
        assert_eq!(got, payload);
        assert_eq!(from.ip(), lab.public_ip(Host::Alice));
        seen.push(from);
    }
    let seen = [seen[0], seen[1]];
    assert_ne!(
        seen[0].port(),
        seen[1].port(),
        "one public port for two hosts"
    );
    (lab, sockets, seen, bootnode)
}

#[test]
fn lab_hairpinning_router_takes_a_lan_host_s_packet_to_the_other_s_public_address() {
    let (lab, [alice, bob], [alice_public, bob_public], _bootnode) = shared_lan(true);
    alice.send_to(b"hairpin", bob_public).unwrap();
    let (payload, from) = receive(&bob);
    assert_eq!(payload, b"hairpin");
    assert_eq!(from, alice_public, "Bob sees Alice as from outside");
    bob.send_to(b"back", from).unwrap();
    assert_eq!(receive(&alice), (b"back".to_vec(), bob_public));

    // The LAN itself connects them too, without the router's firewall in the way.
    alice
        .send_to(b"on the lan", address(&lab, Host::Bob, &bob))
        .unwrap();
    let (_, from) = receive(&bob);
    assert_eq!(from, SocketAddr::V4(address(&lab, Host::Alice, &alice)));
}

/// Two TCP sockets on one fresh port inside `host` (`SO_REUSEPORT`), as a peer that punches
/// holds them: one listening, one to connect out from that port.
fn tcp_pair(lab: &Lab, host: Host) -> (tokio::net::TcpListener, tokio::net::TcpSocket) {
    let runtime = tokio::runtime::Handle::current();
    lab.in_host(host, move || {
        // The listener registers with the test's runtime.
        let _entered = runtime.enter();
        let listening = tokio::net::TcpSocket::new_v4()?;
        listening.set_reuseport(true)?;
        listening.bind((Ipv4Addr::UNSPECIFIED, 0).into())?;
        let outgoing = tokio::net::TcpSocket::new_v4()?;
        outgoing.set_reuseport(true)?;
        outgoing.bind(listening.local_addr()?)?;
        std::io::Result::Ok((listening.listen(8)?, outgoing))
    })
    .unwrap()
    .unwrap()
}

#[tokio::test]
async fn lab_hairpinning_router_takes_a_tcp_connection_to_the_other_lan_host() {
    let lab = Lab::up(Topology::shared_lan(NatMode::EndpointIndependent).with_hairpin(true))
        .expect("the lab comes up");
    let charlie = lab
        .in_host(Host::Charlie, || {
            std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))
        })
        .unwrap()
        .unwrap();
    let charlie_at = SocketAddrV4::new(lab.ip(Host::Charlie), charlie.local_addr().unwrap().port());
    // Each maps its port with a connection to Charlie, who sees their public addresses.
    let (bob_listener, bob_out) = tcp_pair(&lab, Host::Bob);
    let _bob_to_charlie = bob_out.connect(charlie_at.into()).await.unwrap();
    let (_, bob_public) = charlie.accept().unwrap();
    let (_alice_listener, alice_out) = tcp_pair(&lab, Host::Alice);
    let alice_port = alice_out.local_addr().unwrap();
    let _alice_to_charlie = alice_out.connect(charlie_at.into()).await.unwrap();
    let (_, alice_public) = charlie.accept().unwrap();
    assert_eq!(bob_public.ip(), lab.public_ip(Host::Bob));

    // From the same port, Alice connects to Bob's public address and reaches his listener,
    // which sees her public address.
    let alice_again = lab
        .in_host(Host::Alice, move || {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.set_reuseport(true)?;
            socket.bind(alice_port)?;
            std::io::Result::Ok(socket)
        })
        .unwrap()
        .unwrap();
    let _alice_to_bob = alice_again.connect(bob_public).await.unwrap();
    let (_, from) = bob_listener.accept().await.unwrap();
    assert_eq!(from, alice_public);
}

#[test]
fn lab_router_without_hairpin_drops_a_lan_host_s_packet_to_its_public_address() {
    let (lab, [alice, bob], [_, bob_public], _bootnode) = shared_lan(false);
    alice.send_to(b"hairpin", bob_public).unwrap();
    assert!(!arrives_soon(&bob), "the router hairpinned");

    // Dropped, not refused: a connected socket would hear of an ICMP error as a refusal.
    let probe = socket(&lab, Host::Alice);
    probe.connect(bob_public).unwrap();
    probe.send(b"hairpin").unwrap();
    probe.set_read_timeout(Some(SILENCE)).unwrap();
    let mut buf = [0u8; 64];
    let error = loop {
        match probe.recv(&mut buf) {
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => break error,
            Ok(len) => panic!("{len} bytes came back"),
        }
    };
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{error}"
    );

    alice
        .send_to(b"on the lan", address(&lab, Host::Bob, &bob))
        .unwrap();
    assert_eq!(receive(&bob).0, b"on the lan");
}
