//! NAT detection across real NATs: the third diagram ("Hmm no strangers. Must be a NAT.") and
//! the start of the fourth ("Update: NAT", then "Meet Alice (ENR with NAT …)").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use peerfind_proto::v1 as pb;
use peerfind_tests::lab::{Host, Impairment, Lab, NatMode, Placement, Topology};
use peerfind_tests::process::Peerfind;
use peerfind_tests::scenario::{self, WAIT, bootnode, peer, peer_id, peer_watched};

fn behind_nat() -> Topology {
    Topology::new(
        Placement::BehindNat(NatMode::EndpointIndependent),
        Placement::Public,
    )
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Waits for the node's NAT status to become `to`; returns the reason it gave.
async fn status_becomes(node: &mut Peerfind, to: pb::NatStatus) -> String {
    node.until(&format!("NAT status {to:?}"), WAIT, |s| {
        (s.nat() == to).then(|| s.nat_reason().to_owned())
    })
    .await
    .unwrap_or_else(|e| panic!("NAT status {to:?}: {e:#}"))
}

/// Waits until `node` is connected to its bootnode.
async fn meets_its_bootnode(node: &mut Peerfind) {
    node.until("connected to the bootnode", WAIT, |s| {
        s.bootnode_connected().then_some(())
    })
    .await
    .unwrap();
}

/// Waits until the node's own record carries the `nat` flag; returns its seq.
async fn flagged(node: &mut Peerfind) -> u64 {
    node.until("the nat flag in the record", WAIT, |s| {
        let record = s.record();
        record.nat.then_some(record.seq)
    })
    .await
    .expect("the node sets the nat flag")
}

/// Stops `node`, watched since its start ([`peer_watched`]), and asserts that it never turned
/// private and never flagged its record: its record had no flag at the end, no event of its
/// whole run took it private, and `boot`, watching since before `node` started, never heard
/// a flagged record of it.
async fn stop_never_flagged(node: &mut Peerfind, boot: &mut Peerfind) {
    let id = node.peer_id().await.unwrap();
    let record = node.state().await.unwrap().record();
    node.stop().await.unwrap();
    assert!(!record.nat, "{record:?}");
    let events = node.api().await.unwrap().events();
    assert_eq!(events.missed(), 0);
    let changes = events.nat_changes();
    assert!(!changes.is_empty(), "a verdict was delivered");
    assert!(
        changes.iter().all(|c| c.to() != pb::NatStatus::Private),
        "{changes:?}"
    );
    let heard = boot.api().await.unwrap().events();
    let records = heard.records_heard_of(&id);
    assert!(!records.is_empty(), "the bootnode heard the node's record");
    assert!(records.iter().all(|(_, nat)| !nat), "{records:?}");
}

#[tokio::test]
async fn lab_alice_behind_a_nat_is_flagged_from_her_translated_address_and_charlie_hears_of_it() {
    let lab = Lab::up(behind_nat()).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    let boot_id = peer_id(&mut boot).await.unwrap();
    let mut charlie = peer(&lab, Host::Charlie, &enr, &[]).unwrap();
    meets_its_bootnode(&mut charlie).await;

    // Alice dials no peers, so whatever Charlie hears of her comes through the bootnode.
    let mut alice = peer_watched(&lab, Host::Alice, &boot, &enr, &args(&["--max-peers", "0"]))
        .await
        .unwrap();
    let alice_id = peer_id(&mut alice).await.unwrap();
    let reason = status_becomes(&mut alice, pb::NatStatus::Private).await;
    assert!(
        reason.contains("a NAT translated our address") && reason.contains("198.51.100.101"),
        "{reason}"
    );
    let seq = flagged(&mut alice).await;

    // "Meet Alice (ENR with NAT …)": the bootnode passes the flagged record on to Charlie.
    // Whether it is news to him (learned) or an update of one he had (updated) depends only
    // on whether her first, unflagged record reached the bootnode before her verdict, which
    // comes within the same identify exchange.
    let heard = charlie
        .until("charlie holds alice's flagged record", WAIT, |s| {
            s.peer(&alice_id)
                .filter(|p| p.has_record && p.nat && p.seq >= seq)
                .cloned()
        })
        .await
        .expect("charlie receives alice's flagged record");
    // The first flagged record of hers he took came from the bootnode (the ones Alice
    // announces herself, once his introduction made her dial him, come later). Charlie was
    // watched from before Alice started: every record of hers he took is in his events.
    let (seq, from) = charlie
        .until("charlie's first flagged record of alice", WAIT, |s| {
            s.events
                .records_of_with_sender(&alice_id)
                .into_iter()
                .find(|(_, nat, _)| *nat)
                .map(|(seq, _, from)| (seq, from.to_owned()))
        })
        .await
        .expect("charlie took alice's flagged record");
    assert_eq!(from, boot_id, "seq {seq} ({heard:?})");
    // AutoNAT, slower, agrees: the bootnode's dial-back dies at her NAT (one of its single
    // tests; her verdict came before).
    alice
        .until("an AutoNAT test finding her unreachable", WAIT, |s| {
            s.events
                .autonat_tests()
                .iter()
                .any(|t| !t.reachable)
                .then_some(())
        })
        .await
        .expect("autonat finds her unreachable");
    let events = alice.api().await.unwrap().events();
    assert_eq!(events.missed(), 0);
    assert_eq!(
        events.nat_changes().len(),
        1,
        "no flip: {:?}",
        events.nat_changes()
    );

    scenario::stop_all(&mut [&mut alice, &mut charlie, &mut boot]).await;
}

/// Behind an address-restricted NAT the bootnode's AutoNAT dial-back gets in (it comes from an
/// IP Alice sent to), yet strangers' packets do not: the dial-back must not make her public,
/// or peers would dial her straight and never through the bootnode.
#[tokio::test]
async fn lab_alice_behind_an_address_restricted_nat_stays_private_though_a_dial_back_gets_in() {
    let lab = Lab::up(Topology::new(
        Placement::BehindNat(NatMode::AddressRestricted),
        Placement::Public,
    ))
    .expect("lab");
    let (boot, enr) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    let mut alice = peer_watched(&lab, Host::Alice, &boot, &enr, &args(&["--max-peers", "0"]))
        .await
        .unwrap();
    let reason = status_becomes(&mut alice, pb::NatStatus::Private).await;
    assert!(reason.contains("a NAT translated our address"), "{reason}");
    alice
        .until("an AutoNAT dial-back reaching her", WAIT, |s| {
            s.events
                .autonat_tests()
                .iter()
                .any(|t| t.reachable)
                .then_some(())
        })
        .await
        .expect("the bootnode's dial-back passes her address-restricted NAT");
    flagged(&mut alice).await;
    let state = alice.state().await.unwrap();
    assert_eq!(state.nat(), pb::NatStatus::Private);
    let events = alice.api().await.unwrap().events();
    assert_eq!(events.missed(), 0);
    assert_eq!(
        events.nat_changes().len(),
        1,
        "no flip to public: {:?}",
        events.nat_changes()
    );
}

#[tokio::test]
async fn lab_alice_behind_a_nat_is_flagged_by_the_window_alone() {
    let lab = Lab::up(behind_nat()).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    let mut alice = peer(
        &lab,
        Host::Alice,
        &enr,
        &args(&["--autonat", "false", "--nat-window", "3s"]),
    )
    .unwrap();
    let reason = status_becomes(&mut alice, pb::NatStatus::Private).await;
    assert_eq!(
        reason,
        "no stranger reached us within 3 s of meeting a bootnode"
    );
    flagged(&mut alice).await;
    scenario::stop_all(&mut [&mut alice, &mut boot]).await;
}

#[tokio::test]
async fn lab_alice_on_the_public_segment_is_found_public_by_autonat_and_never_flagged() {
    let lab = Lab::up(Topology::new(Placement::Public, Placement::Public)).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    let mut alice = peer_watched(&lab, Host::Alice, &boot, &enr, &[])
        .await
        .unwrap();
    let reason = status_becomes(&mut alice, pb::NatStatus::Public).await;
    assert!(
        reason.contains("AutoNAT") && reason.contains("reached us"),
        "{reason}"
    );
    stop_never_flagged(&mut alice, &mut boot).await;
    scenario::stop_all(&mut [&mut boot]).await;
}

#[tokio::test]
async fn lab_a_stranger_reaching_public_alice_keeps_the_window_from_flagging_her() {
    let lab = Lab::up(Topology::new(Placement::Public, Placement::Public)).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    // Charlie first, so the bootnode's gossip about Alice makes him dial her at once; Alice
    // dials no peers herself, so his connection is unsolicited.
    let mut charlie = peer(&lab, Host::Charlie, &enr, &[]).unwrap();
    let charlie_id = peer_id(&mut charlie).await.unwrap();
    meets_its_bootnode(&mut charlie).await;
    let mut alice = peer_watched(
        &lab,
        Host::Alice,
        &boot,
        &enr,
        &args(&[
            "--autonat",
            "false",
            "--nat-window",
            "20s",
            "--max-peers",
            "0",
        ]),
    )
    .await
    .unwrap();
    let reason = status_becomes(&mut alice, pb::NatStatus::Public).await;
    assert_eq!(
        reason,
        format!("stranger {charlie_id} connected to us unsolicited")
    );
    stop_never_flagged(&mut alice, &mut boot).await;
    scenario::stop_all(&mut [&mut charlie, &mut boot]).await;
}

/// Alice placed as given, with `loss` of the frames on her link lost and 20 ms each way: her
/// first NAT verdict must be `expect`, and must still hold once AutoNAT's dial-back (delayed
/// or lost and retried) has reported.
async fn verdict_holds(alice_at: Placement, loss: f64, expect: pb::NatStatus) {
    let topology = Topology::new(alice_at, Placement::Public).with_uplink(
        Host::Alice,
        Impairment::delay(Duration::from_millis(20)).with_loss(loss),
    );
    let lab = Lab::up(topology).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    let mut alice = peer_watched(&lab, Host::Alice, &boot, &enr, &args(&["--max-peers", "0"]))
        .await
        .unwrap();
    // Watched since her start: the first change delivered is her first verdict.
    let first = alice
        .until("a verdict", WAIT, |s| {
            s.events.nat_changes().first().map(|c| (*c).clone())
        })
        .await
        .expect("a verdict");
    assert_eq!(first.to(), expect, "{first:?}");
    // Every AutoNAT test that reports (one per transport) agrees or changes nothing.
    let reachable = expect == pb::NatStatus::Public;
    alice
        .until("an AutoNAT test that agrees", WAIT, |s| {
            s.events
                .autonat_tests()
                .iter()
                .any(|t| t.reachable == reachable)
                .then_some(())
        })
        .await
        .expect("autonat reports");
    let events = alice.api().await.unwrap().events();
    assert_eq!(events.missed(), 0);
    assert_eq!(
        events.nat_changes().len(),
        1,
        "the verdict never flipped: {:?}",
        events.nat_changes()
    );
    if expect == pb::NatStatus::Public {
        stop_never_flagged(&mut alice, &mut boot).await;
    }
    scenario::stop_all(&mut [&mut alice, &mut boot]).await;
}

#[tokio::test]
async fn lab_with_loss_on_her_link_public_alice_is_found_public() {
    verdict_holds(Placement::Public, 0.05, pb::NatStatus::Public).await;
}

#[tokio::test]
async fn lab_with_loss_on_her_link_alice_behind_an_eim_nat_is_found_private() {
    verdict_holds(
        Placement::BehindNat(NatMode::EndpointIndependent),
        0.05,
        pb::NatStatus::Private,
    )
    .await;
}

#[tokio::test]
async fn lab_with_loss_on_her_link_alice_behind_a_symmetric_nat_is_found_private() {
    verdict_holds(
        Placement::BehindNat(NatMode::Symmetric),
        0.05,
        pb::NatStatus::Private,
    )
    .await;
}

#[tokio::test]
async fn lab_alice_behind_a_symmetric_nat_is_found_private() {
    verdict_holds(
        Placement::BehindNat(NatMode::Symmetric),
        0.0,
        pb::NatStatus::Private,
    )
    .await;
}
