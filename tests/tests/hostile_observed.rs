//! Forged observed addresses, against the real binary on loopback: fresh identities that tell a
//! peerfind node, through identify, that they see it at an address that is not its own
//! (`peerfind_tests::hostile::observed`). The security issue: two such identities moved a
//! public peer's record to the false address (TCP and QUIC, seq + 2), whether they dialed it
//! or it dialed them, and moved a bootnode's record and set its `nat` flag (its AutoNAT test
//! of the false address failed).
//!
//! Each test waits until the node took in every lie (the liar's identify, as the node's
//! `ListPeers` shows it, names the false address: the node weighs an observed address before
//! it keeps what identify said) and, for the bootnode, until its AutoNAT tests of the false
//! addresses ended; then it asserts what a user sees: the record (seq, addresses, `nat`) is
//! the one the node had before the liars came.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use libp2p::{Multiaddr, PeerId};
use peerfind_proto::v1 as pb;
use peerfind_tests::api::Record;
use peerfind_tests::hostile::observed::{self, Liar};
use peerfind_tests::local::{self, WAIT};
use peerfind_tests::process::Peerfind;

/// The IP the liars claim to see the node at: loopback too (a dial-back there fails at once,
/// nothing listens), but none of the node's.
const CLAIM: &str = "127.0.0.2";

/// How many liars: the two, and two more, so that a threshold of distinct PeerIds
/// as high as go-libp2p's (4) would not stop them either.
const LIARS: usize = 4;

fn claim() -> IpAddr {
    CLAIM.parse().unwrap()
}

/// The node's record, as a user reads it off the status API.
async fn record(node: &mut Peerfind) -> Record {
    node.state().await.unwrap().record()
}

/// The address a liar tells when the node is at `real`.
fn lie(real: &str) -> String {
    observed::forge(&real.parse().unwrap(), claim()).to_string()
}

/// Waits until `node` has weighed what `liar` told it last: the liar's identify, as the
/// node's `ListPeers` shows it (polled: identify has no event), names `told`.
async fn took_in(node: &mut Peerfind, liar: PeerId, told: &str) {
    let liar = liar.to_string();
    node.until_polled(&format!("{liar}'s identify naming {told}"), WAIT, |s| {
        let identify = s.peer(&liar)?.identify.as_ref()?;
        (identify.observed_addr == told).then_some(())
    })
    .await
    .expect("the node hears the liar's identify");
}

/// The node's listen address of `transport` ("tcp" or "/quic-v1").
async fn listen_addr(node: &mut Peerfind, transport: &str) -> String {
    node.until_polled(&format!("listening on {transport}"), WAIT, |s| {
        s.status
            .listen_addrs
            .iter()
            .find(|a| a.contains(transport))
            .cloned()
    })
    .await
    .unwrap()
}

/// Waits until `node` holds an address for TCP and QUIC in its record, and is found public
/// (AutoNAT: the bootnode's dial-back reached it): its record is final, and the dials it makes
/// leave from its listen ports.
async fn settled_public(node: &mut Peerfind) -> Record {
    node.until("a public node with both addresses", WAIT, |s| {
        let record = s.record();
        (record.has(&["tcp", "quic"]) && s.nat() == pb::NatStatus::Public).then_some(record)
    })
    .await
    .expect("the node settles")
}

/// Liars that each dial `target`, at each of `addrs`, and tell it the false address.
async fn lie_to(node: &mut Peerfind, target: PeerId, addrs: &[String]) -> Vec<Liar> {
    let mut liars = Vec::new();
    for _ in 0..LIARS {
        let liar = Liar::start(target, claim(), observed::Record::Bare)
            .await
            .unwrap();
        for addr in addrs {
            let at: Multiaddr = addr.parse().unwrap();
            liar.dial(target, at).await.unwrap();
            took_in(node, liar.peer_id(), &lie(addr)).await;
        }
        liars.push(liar);
    }
    liars
}

/// Fails with the records the node took since `before` when its record is not `before`.
async fn unchanged(node: &mut Peerfind, before: &Record) {
    let after = record(node).await;
    let taken: Vec<_> = node
        .api()
        .await
        .unwrap()
        .events()
        .own_records()
        .into_iter()
        .filter(|r| r.seq > before.seq)
        .map(|r| (r.seq, r.addrs.clone(), r.nat, r.reason.clone()))
        .collect();
    assert_eq!(
        &after, before,
        "the liars changed the record (seq {} -> {}); records taken since: {taken:#?}",
        before.seq, after.seq
    );
}

#[tokio::test]
async fn liars_that_dial_a_public_peer_never_move_its_record() {
    let (mut boot, local::Bootnode { enr, .. }) = local::bootnode().await.unwrap();
    let mut alice = local::peer("alice", &enr).unwrap();
    let alice_id: PeerId = alice.peer_id().await.unwrap().parse().unwrap();
    let before = settled_public(&mut alice).await;
    let tcp = listen_addr(&mut alice, "/tcp/").await;
    let quic = listen_addr(&mut alice, "/quic-v1").await;

    let liars = lie_to(&mut alice, alice_id, &[tcp, quic]).await;
    unchanged(&mut alice, &before).await;

    drop(liars);
    alice.stop().await.unwrap();
    boot.stop().await.unwrap();
}

#[tokio::test]
async fn liars_a_public_peer_dials_never_move_its_record() {
    let (mut boot, local::Bootnode { enr, addrs }) = local::bootnode().await.unwrap();
    let boot_tcp = addrs.iter().find(|a| a.contains("/tcp/")).unwrap().clone();
    let boot_id: PeerId = boot.peer_id().await.unwrap().parse().unwrap();
    let mut alice = local::peer("alice", &enr).unwrap();
    let alice_id: PeerId = alice.peer_id().await.unwrap().parse().unwrap();
    let before = settled_public(&mut alice).await;
    let alice_tcp = listen_addr(&mut alice, "/tcp/").await;

    // Each liar announces its record (its TCP listen address) to the bootnode, which passes
    // it on to Alice; she dials the liar from her listen port, and it lies to her.
    let mut liars = Vec::new();
    for _ in 0..LIARS {
        let liar = Liar::start(alice_id, claim(), observed::Record::Tcp)
            .await
            .unwrap();
        liar.dial(boot_id, boot_tcp.parse().unwrap()).await.unwrap();
        let id = liar.peer_id().to_string();
        alice
            .until("alice dialed the liar", WAIT, |s| {
                s.events.connection_opened(&id, pb::Direction::Outbound)
            })
            .await
            .expect("alice learns the liar's record from the bootnode and dials it");
        took_in(&mut alice, liar.peer_id(), &lie(&alice_tcp)).await;
        liars.push(liar);
    }
    unchanged(&mut alice, &before).await;

    drop(liars);
    alice.stop().await.unwrap();
    boot.stop().await.unwrap();
}

#[tokio::test]
async fn liars_never_move_a_bootnodes_record_nor_flag_it() {
    let (mut boot, local::Bootnode { enr, .. }) = local::bootnode().await.unwrap();
    let boot_id: PeerId = boot.peer_id().await.unwrap().parse().unwrap();
    // An honest peer: the bootnode's AutoNAT server, which tests the false addresses too.
    let mut alice = local::peer("alice", &enr).unwrap();
    settled_public(&mut alice).await;
    let before = record(&mut boot).await;
    let tcp = listen_addr(&mut boot, "/tcp/").await;
    let quic = listen_addr(&mut boot, "/quic-v1").await;

    let liars = lie_to(&mut boot, boot_id, &[tcp, quic]).await;
    // Every lie became an AutoNAT candidate (identify hands each observed address to the
    // swarm): the bootnode tests them, and each test fails.
    let tested = boot
        .until(
            "the bootnode's AutoNAT tests of both false addresses",
            WAIT,
            |s| {
                let tests = s.events.autonat_tests();
                let done = |transport: &str| {
                    tests
                        .iter()
                        .any(|t| t.addr.contains(CLAIM) && t.addr.contains(transport))
                };
                (done("/tcp/") && done("/quic-v1")).then(|| {
                    tests
                        .iter()
                        .filter(|t| t.addr.contains(CLAIM))
                        .map(|t| (t.addr.clone(), t.reachable))
                        .collect::<Vec<_>>()
                })
            },
        )
        .await
        .expect("the bootnode tests the false addresses");
    assert!(tested.iter().all(|(_, reachable)| !reachable), "{tested:?}");
    unchanged(&mut boot, &before).await;
    let state = boot.state().await.unwrap();
    assert_ne!(
        state.nat(),
        pb::NatStatus::Private,
        "{}",
        state.nat_reason()
    );

    drop(liars);
    alice.stop().await.unwrap();
    boot.stop().await.unwrap();
}
