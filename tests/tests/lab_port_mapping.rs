//! Port mapping behind a home router (the lab's `upnp` router: endpoint-independent NAT plus
//! a UPnP-IGD gateway): the router maps Alice's listen ports, a dial-back proves the mapping,
//! her record names it and she is public there, a public peer dials her record directly, and
//! the mappings are gone once she stops. Without port mapping, the same router leaves her
//! private; a bootnode asks for no mapping; a gateway behind a carrier-grade NAT is refused.
//! A NAT'd peer whose TCP punch met the mapped port (and hangs there) still dials the record
//! once it is public.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use peerfind_proto::v1 as pb;
use peerfind_tests::lab::{Host, Lab, NatMode, Placement, Topology};
use peerfind_tests::process::Peerfind;
use peerfind_tests::scenario::{self, PORT, WAIT, bootnode, bootnode_in, listen, peer, peer_id};

fn behind_upnp() -> Topology {
    Topology::new(Placement::BehindNat(NatMode::Upnp), Placement::Public)
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The router's mappings, with its gateway's log on failure.
fn mappings(lab: &Lab) -> Vec<String> {
    lab.port_mappings(Host::NatA)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.gateway_log(Host::NatA)))
}

/// Waits until `node` is connected to its bootnode.
async fn meets_its_bootnode(node: &mut Peerfind) {
    node.until("connected to the bootnode", WAIT, |s| {
        s.bootnode_connected().then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn lab_alice_behind_a_upnp_router_is_public_at_its_mapped_ports_and_a_public_peer_dials_her_record()
 {
    let lab = Lab::up(behind_upnp()).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    let router = lab.public_ip(Host::Alice);

    let started = Instant::now();
    let mut alice = peer(&lab, Host::Alice, &enr, &args(&["--max-peers", "0"])).unwrap();
    let alice_id = peer_id(&mut alice).await.unwrap();
    let tcp = format!("/ip4/{router}/tcp/{PORT}");
    let quic = format!("/ip4/{router}/udp/{PORT}/quic-v1");
    // The IGD client maps the TCP and the UDP listen port; each is verified on its own.
    let mapping = alice
        .until("both mappings verified", WAIT, |s| {
            let m = s.port_mapping();
            let both = [&tcp, &quic].iter().all(|a| m.verified_addrs.contains(a));
            both.then_some(m)
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.gateway_log(Host::NatA)));
    let verified_after = started.elapsed();
    assert_eq!(mapping.state(), pb::PortMappingState::Verified);
    eprintln!("port mapping: both transports verified {verified_after:?} after the node's start");

    let state = alice
        .until("public, with the mapped address in the record", WAIT, |s| {
            let r = s.record();
            let mapped = r.ip == Some(router) && r.tcp == Some(PORT) && r.quic == Some(PORT);
            (s.nat() == pb::NatStatus::Public && mapped && !r.nat).then(|| s.clone())
        })
        .await
        .unwrap();
    assert!(
        state.status.external_addrs.contains(&tcp) && state.status.external_addrs.contains(&quic),
        "the swarm holds the verified addresses themselves: {:?}",
        state.status.external_addrs
    );
    let events = &state.events;
    let changes: Vec<_> = events
        .port_mapping_changes()
        .iter()
        .map(|c| c.state())
        .collect();
    assert_eq!(
        changes,
        [pb::PortMappingState::Mapped, pb::PortMappingState::Verified],
        "mapped first, then proven: {:?}",
        events.port_mapping_changes()
    );
    // Each mapping was tested as an address of its own, after the router mapped it.
    let tested: Vec<_> = events
        .autonat_tests()
        .into_iter()
        .filter(|t| t.reachable)
        .collect();
    for addr in [&tcp, &quic] {
        assert!(
            tested
                .iter()
                .any(|t| t.addr.starts_with(&format!("{addr}/p2p/"))),
            "{addr}: {tested:?}"
        );
    }
    let on_router = mappings(&lab);
    assert_eq!(on_router.len(), 2, "TCP and UDP: {on_router:?}");
    assert!(
        on_router
            .iter()
            .all(|m| m.contains(&format!("dport {PORT}"))),
        "{on_router:?}"
    );

    // Charlie learns her record from the bootnode and dials it: no introduction, no relay.
    let mut charlie = peer(&lab, Host::Charlie, &enr, &[]).unwrap();
    meets_its_bootnode(&mut charlie).await;
    let counts = charlie
        .until("charlie direct to alice", WAIT, |s| {
            s.direct_to(&alice_id).then(|| s.counts())
        })
        .await
        .unwrap();
    assert!(counts.direct_dials >= 1, "{counts:?}");
    assert_eq!(counts.introductions_asked, 0, "{counts:?}");
    assert_eq!(counts.circuit_dials, 0, "{counts:?}");
    let charlie_id = peer_id(&mut charlie).await.unwrap();
    alice
        .until(
            "charlie's connection arrives inbound at alice, directly",
            WAIT,
            |s| {
                s.events
                    .connections_opened_with(&charlie_id)
                    .iter()
                    .any(|c| c.direction() == pb::Direction::Inbound && !c.relayed)
                    .then_some(())
            },
        )
        .await
        .unwrap();

    // A graceful stop removes both mappings from the router.
    let stopping = Instant::now();
    alice.stop().await.unwrap();
    eprintln!("port mapping: the stop took {:?}", stopping.elapsed());
    let left = mappings(&lab);
    assert!(left.is_empty(), "{left:?}\n{}", lab.gateway_log(Host::NatA));
    scenario::stop_all(&mut [&mut charlie, &mut boot]).await;
}

#[tokio::test]
async fn lab_without_port_mapping_alice_behind_the_same_router_is_private_as_before() {
    let lab = Lab::up(behind_upnp()).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    let mut alice = peer(&lab, Host::Alice, &enr, &args(&["--port-mapping", "false"])).unwrap();
    let state = alice
        .until("private, flagged", WAIT, |s| {
            (s.nat() == pb::NatStatus::Private && s.record().nat).then(|| s.clone())
        })
        .await
        .unwrap();
    assert_eq!(state.port_mapping().state(), pb::PortMappingState::Off);
    assert!(state.events.port_mapping_changes().is_empty());
    assert!(mappings(&lab).is_empty());
    scenario::stop_all(&mut [&mut alice, &mut boot]).await;
}

#[tokio::test]
async fn lab_a_bootnode_behind_a_upnp_router_asks_for_no_mapping_by_default() {
    let lab = Lab::up(behind_upnp()).expect("lab");
    // A bootnode in Alice's host: it advertises its listen address, which the router's
    // gateway would map if it were asked.
    let (mut boot, _) = bootnode_in(&lab, Host::Alice, &["tcp", "quic"], &[])
        .await
        .unwrap();
    let state = boot.state().await.unwrap();
    assert_eq!(state.port_mapping().state(), pb::PortMappingState::Off);
    assert!(mappings(&lab).is_empty());
    // The IGD client's search is a multicast M-SEARCH to the gateway, sent as the swarm is
    // built, before the listeners the bootnode advertised; the gateway logs each one.
    let log = lab.gateway_log(Host::NatA);
    assert!(!log.contains("M-SEARCH"), "{log}");
    scenario::stop_all(&mut [&mut boot]).await;
}

#[tokio::test]
async fn lab_a_upnp_home_router_behind_a_carrier_grade_nat_is_refused_and_alice_stays_private() {
    // Alice's home router has a gateway, but its own WAN is on the carrier's network
    // (100.64.0.0/10): a mapping there would open only the home router, not the carrier's NAT.
    let lab = Lab::up(Topology::new(
        Placement::BehindCgnat(NatMode::Upnp),
        Placement::Public,
    ))
    .expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    let mut alice = peer(&lab, Host::Alice, &enr, &[]).unwrap();
    let state = alice
        .until("the gateway refused, and private", WAIT, |s| {
            let refused = s.port_mapping().state() == pb::PortMappingState::GatewayNotRoutable;
            (refused && s.nat() == pb::NatStatus::Private).then(|| s.clone())
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.gateway_log(Host::HomeA)));
    assert!(state.port_mapping().mapped_addrs.is_empty());
    let left = lab.port_mappings(Host::HomeA).unwrap();
    assert!(left.is_empty(), "the client asked for nothing: {left:?}");
    scenario::stop_all(&mut [&mut alice, &mut boot]).await;
}

/// Alice behind a symmetric NAT acts towards Bob behind the upnp router over TCP (keys made
/// ahead give her the smaller PeerId, strategy rule 7): her punch's SYN may reach the port
/// his router forwards, where his listener takes it, and both ends then wait in the
/// listener's role until the upgrade times out, long after the punch's 2 s. Once his mapping
/// is verified his record is public, and she dials it (strategy rule 4) though that dial
/// still hangs (connections rule 11): direct, at his mapped port, well before it ends.
#[tokio::test]
async fn lab_a_natd_peer_dials_a_peer_public_through_its_mapping_while_its_tcp_punch_hangs() {
    let lab = Lab::up(Topology::new(
        Placement::BehindNat(NatMode::Symmetric),
        Placement::BehindNat(NatMode::Upnp),
    ))
    .expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["tcp"]).await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let [alice_key, bob_key] = scenario::ordered_keys(keys.path()).await.unwrap();
    let node_args = |key: &std::path::Path| {
        let mut args = listen("tcp");
        args.extend(["--key-file".to_owned(), key.display().to_string()]);
        args
    };
    let mut alice = peer(&lab, Host::Alice, &enr, &node_args(&alice_key.0)).unwrap();
    alice
        .until("alice private, with a relay slot", WAIT, |s| {
            let slot = s.status.bootnodes.iter().any(|b| b.relay_reserved);
            (s.nat() == pb::NatStatus::Private && slot).then_some(())
        })
        .await
        .unwrap();
    let mut bob = peer(&lab, Host::Bob, &enr, &node_args(&bob_key.0)).unwrap();
    let bob_id = bob_key.1.clone();
    let mapped = format!("/ip4/{}/tcp/{PORT}", lab.public_ip(Host::Bob));
    let state = alice
        .until("alice direct to bob", WAIT, |s| {
            s.direct_to(&bob_id).then(|| s.clone())
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.gateway_log(Host::NatB)));
    let bob_state = bob.state().await.unwrap();
    assert_eq!(
        bob_state.port_mapping().state(),
        pb::PortMappingState::Verified,
        "bob is public through his mapping: {:?}",
        bob_state.port_mapping()
    );
    let opened = state.events.connections_opened_with(&bob_id);
    assert!(
        opened.iter().any(|c| !c.relayed
            && c.direction() == pb::Direction::Outbound
            && c.remote_addr.starts_with(&mapped)),
        "alice dialed bob at his mapped port {mapped}: {opened:?}"
    );
    scenario::stop_all(&mut [&mut alice, &mut bob, &mut boot]).await;
}
