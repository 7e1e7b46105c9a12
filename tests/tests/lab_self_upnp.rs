//! The lab's `upnp` router kind: its gateway maps a port for a UPnP client on the LAN host,
//! and a stranger on the public segment then reaches the host through it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use peerfind_tests::lab::{Host, Lab, NatMode, Placement, Topology};

/// Bound on a datagram's trip across the lab: it takes microseconds.
const TRIP: Duration = Duration::from_secs(5);

/// Runs miniupnpc's `upnpc` in Alice's host with `args`; returns whether it succeeded and
/// what it printed. With `-i`: upnpc (2.2) takes a gateway whose external address is in a
/// reserved range, the lab's documentation range included, for one "not connected", and
/// uses it only when told to.
fn try_upnpc(lab: &Lab, args: &[&str]) -> (bool, String) {
    let out = lab
        .command(Host::Alice, "upnpc")
        .arg("-i")
        .args(args)
        .output()
        .expect("upnpc runs (apt-get install miniupnpc)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success(), text)
}

/// [`try_upnpc`], which must succeed; returns what it printed.
fn upnpc(lab: &Lab, args: &[&str]) -> String {
    let (ok, text) = try_upnpc(lab, args);
    assert!(ok, "upnpc {args:?}: {text}");
    text
}

#[test]
fn lab_a_upnp_client_on_alice_maps_a_port_and_a_stranger_reaches_her_through_it() {
    let lab = Lab::up(Topology::new(
        Placement::BehindNat(NatMode::Upnp),
        Placement::Public,
    ))
    .expect("lab");
    let public = lab.public_ip(Host::Alice);
    assert!(
        public.is_documentation(),
        "on the public segment like every router: {public}"
    );
    assert_eq!(lab.ip(Host::NatA), public);
    let alice = lab
        .in_host(Host::Alice, || UdpSocket::bind("0.0.0.0:0"))
        .unwrap()
        .unwrap();
    alice.set_read_timeout(Some(TRIP)).unwrap();
    let port = alice.local_addr().unwrap().port().to_string();
    let lan = lab.ip(Host::Alice).to_string();
    assert!(lab.port_mappings(Host::NatA).unwrap().is_empty());

    let added = upnpc(&lab, &["-a", &lan, &port, &port, "UDP"]);
    assert!(
        added.contains(&format!("ExternalIPAddress = {public}")),
        "{added}"
    );
    // Secure mode: a client maps only to its own address.
    let (ok, text) = try_upnpc(&lab, &["-a", "192.168.1.9", "40000", "40000", "UDP"]);
    assert!(!ok && text.contains("failed"), "{text}");
    let mappings = lab.port_mappings(Host::NatA).unwrap();
    assert_eq!(
        mappings.len(),
        1,
        "{mappings:?}\n{}",
        lab.gateway_log(Host::NatA)
    );
    assert!(
        mappings[0].contains(&format!("dport {port}")) && mappings[0].contains(&lan),
        "{mappings:?}"
    );

    // Charlie has never heard from Alice; the mapping lets him in.
    let charlie = lab
        .in_host(Host::Charlie, || UdpSocket::bind("0.0.0.0:0"))
        .unwrap()
        .unwrap();
    let to = SocketAddr::from((public, alice.local_addr().unwrap().port()));
    charlie.send_to(b"hello alice", to).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = alice.recv_from(&mut buf).unwrap_or_else(|e| {
        panic!(
            "nothing came through the mapping: {e}\n{}",
            lab.gateway_log(Host::NatA)
        )
    });
    assert_eq!(&buf[..n], b"hello alice");
    assert_eq!(from.ip(), lab.ip(Host::Charlie));

    upnpc(&lab, &["-d", &port, "UDP"]);
    assert!(lab.port_mappings(Host::NatA).unwrap().is_empty());
    // The gateway logs each search it answered (the port-mapping tests read that).
    assert!(lab.gateway_log(Host::NatA).contains("M-SEARCH"));
}
