//! Reflection through hole punches, against the real binary on loopback: a stranger opens a
//! circuit to a peer through the bootnode's relay and, in DCUtR's CONNECT, names victims'
//! addresses as its own (`peerfind_tests::hostile::dcutr`); DCUtR dials whatever a relayed
//! peer sends, three attempts. The victims (`peerfind_tests::hostile::victim`, on 127.0.0.2)
//! count what reaches them.
//!
//! The test waits until the peer has given the punch up (its status counts the failed hole
//! punch), so a peer that misbehaves has had its three attempts, and no test sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use peerfind_tests::hostile::dcutr::HolePuncher;
use peerfind_tests::hostile::victim::{VICTIM_IP, Victim};
use peerfind_tests::local::{self, Bootnode, LISTEN, WAIT};
use peerfind_tests::process::Peerfind;

/// Victims, each named for TCP and QUIC: 20 addresses, as many as DCUtR's candidates hold.
const VICTIMS: usize = 10;

/// The peer's budget of dials nobody proved to one address block a minute (the dial guard's
/// `BUDGET_PER_BLOCK`): all the victims share 127.0.0.2's /24.
const BUDGET_PER_BLOCK: u64 = 8;

/// Three attempts, each waiting out QUIC dials to silent UDP sockets (5 s apiece).
const PUNCH_WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_stranger_naming_victims_in_its_hole_punch_gets_no_more_than_a_budget_of_dials() {
    let (mut boot, Bootnode { addrs, .. }) = local::bootnode().await.unwrap();
    let boot_tcp = addrs.iter().find(|a| a.contains("/tcp/")).unwrap().clone();
    // A peer that does not test its addresses with AutoNAT stays unsure it is public, and so
    // holds a relay slot at its bootnode (reservation rules), as a NAT'd peer does. Its
    // record names an address of its own choosing, so the address its bootnode sees it at is
    // new to it: a hole-punch candidate, which DCUtR needs to start a punch (a NAT'd peer's
    // candidate is the address its NAT gives it).
    let args = [
        "run",
        "--bootnode",
        &boot_tcp,
        "--autonat",
        "false",
        "--external-addr",
        "/ip4/198.51.100.1/tcp/4001",
    ]
    .into_iter()
    .chain(LISTEN);
    let mut peer = Peerfind::start("peer", Peerfind::command(args)).unwrap();
    let peer_id: PeerId = peer.peer_id().await.unwrap().parse().unwrap();
    peer.until("a relay slot at the bootnode", WAIT, |s| {
        s.bootnode(None)
            .is_some_and(|b| b.relay_reserved)
            .then_some(())
    })
    .await
    .unwrap();

    let mut victims = Vec::new();
    for _ in 0..VICTIMS {
        victims.push(Victim::start().await.unwrap());
    }
    let claims: Vec<Multiaddr> = victims
        .iter()
        .flat_map(|v| {
            let port = v.addr().port();
            [
                format!("/ip4/{VICTIM_IP}/tcp/{port}"),
                format!("/ip4/{VICTIM_IP}/udp/{port}/quic-v1"),
            ]
        })
        .map(|a| a.parse().unwrap())
        .collect();
    let relay: Multiaddr = boot_tcp.parse().unwrap();
    let puncher = HolePuncher::start(&relay, peer_id, claims).await.unwrap();

    let tried = peer
        .until_polled("the hole punch given up", PUNCH_WAIT, |s| {
            let c = s.counts();
            (c.hole_punches_failed > 0).then_some(c.hole_punches_tried)
        })
        .await
        .unwrap();
    drop(puncher);

    let tcp: u64 = victims.iter().map(|v| v.tcp_connections()).sum();
    let quic_hit = victims.iter().filter(|v| v.udp_datagrams() > 0).count() as u64;
    let summary: Vec<String> = victims.iter().map(|v| v.summary()).collect();
    let state = peer.state().await.unwrap();
    let over_budget = state
        .counts()
        .inputs_rejected
        .get("dial_over_budget")
        .copied()
        .unwrap_or(0);
    eprintln!(
        "punch attempts {tried}; victims: {tcp} TCP connections, {quic_hit} QUIC dials; refused over budget: {over_budget}; {summary:?}"
    );
    assert!(
        tcp + quic_hit <= BUDGET_PER_BLOCK,
        "the victims' block got {tcp} TCP connections and QUIC dials to {quic_hit} victims: {summary:?}"
    );
    assert!(over_budget > 0, "the refused dials are counted");

    peer.stop().await.unwrap();
    boot.stop().await.unwrap();
}
