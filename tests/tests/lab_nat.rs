//! NAT detection across real NATs: the third diagram ("Hmm no strangers. Must be a NAT.") and
//! the start of the fourth ("Update: NAT", then "Meet Alice (ENR with NAT …)").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use peerfind_tests::lab::{Host, Impairment, Lab, NatMode, Placement, Topology};
use peerfind_tests::process::{Peerfind, field};
use peerfind_tests::scenario::{self, WAIT, bootnode, peer, peer_id};

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
async fn status_becomes(node: &mut Peerfind, to: &str) -> String {
    let line = node
        .wait_for("NAT status changed", WAIT, |l| field(l, "to") == to)
        .await
        .unwrap_or_else(|e| panic!("NAT status {to}: {e}"));
    field(&line, "reason").to_owned()
}

#[tokio::test]
async fn lab_alice_behind_a_nat_is_flagged_from_her_translated_address_and_charlie_hears_of_it() {
    let lab = Lab::up(behind_nat()).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    let mut charlie = peer(&lab, Host::Charlie, &enr, &[]).unwrap();
    charlie
        .wait_for("connected", WAIT, |l| l["bootnode"] == true)
        .await
        .unwrap();

    // Alice dials no peers, so whatever Charlie hears of her comes through the bootnode.
    let mut alice = peer(&lab, Host::Alice, &enr, &args(&["--max-peers", "0"])).unwrap();
    let alice_id = peer_id(&mut alice).await.unwrap();
    let reason = status_becomes(&mut alice, "private").await;
    assert!(
        reason.contains("a NAT translated our address") && reason.contains("198.51.100.101"),
        "{reason}"
    );
    let flagged = alice
        .wait_for("local record updated", WAIT, |l| l["nat"] == true)
        .await
        .expect("alice sets the nat flag");
    let seq = flagged["seq"].as_u64().unwrap();

    // "Meet Alice (ENR with NAT …)": the bootnode passes the flagged record on to Charlie.
    // Whether it is news to him ("record learned") or an update of one he had ("record
    // updated") depends only on whether her first, unflagged record reached the bootnode
    // before her verdict, which comes within the same identify exchange.
    let deadline = tokio::time::Instant::now() + WAIT;
    let heard = loop {
        let flagged = ["record learned", "record updated"]
            .into_iter()
            .flat_map(|message| charlie.lines_with(message))
            .find(|l| {
                field(l, "peer") == alice_id
                    && l["nat"] == true
                    && l["seq"].as_u64().is_some_and(|s| s >= seq)
            });
        if let Some(line) = flagged {
            break line;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "charlie never received alice's flagged record"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        field(&heard, "from"),
        field(&boot.lines_with("starting")[0], "peer_id")
    );
    // AutoNAT, slower, agrees: the bootnode's dial-back dies at her NAT.
    alice
        .wait_for("AutoNAT test done", WAIT, |l| l["reachable"] == false)
        .await
        .expect("autonat finds her unreachable");
    assert_eq!(alice.lines_with("NAT status changed").len(), 1, "no flip");

    scenario::stop_all(&mut [&mut alice, &mut charlie, &mut boot]).await;
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
    let reason = status_becomes(&mut alice, "private").await;
    assert_eq!(
        reason,
        "no stranger reached us within 3 s of meeting a bootnode"
    );
    alice
        .wait_for("local record updated", WAIT, |l| l["nat"] == true)
        .await
        .unwrap();
    scenario::stop_all(&mut [&mut alice, &mut boot]).await;
}

#[tokio::test]
async fn lab_alice_on_the_public_segment_is_found_public_by_autonat_and_never_flagged() {
    let lab = Lab::up(Topology::new(Placement::Public, Placement::Public)).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    let mut alice = peer(&lab, Host::Alice, &enr, &[]).unwrap();
    let reason = status_becomes(&mut alice, "public").await;
    assert!(
        reason.contains("AutoNAT") && reason.contains("reached us"),
        "{reason}"
    );
    alice.stop().await.unwrap();
    assert!(
        alice
            .lines_with("NAT status changed")
            .iter()
            .all(|l| field(l, "to") != "private")
    );
    assert!(
        alice
            .lines_with("local record updated")
            .iter()
            .all(|l| l["nat"] == false)
    );
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
    charlie
        .wait_for("connected", WAIT, |l| l["bootnode"] == true)
        .await
        .unwrap();
    let mut alice = peer(
        &lab,
        Host::Alice,
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
    .unwrap();
    let reason = status_becomes(&mut alice, "public").await;
    assert_eq!(
        reason,
        format!("stranger {charlie_id} connected to us unsolicited")
    );
    alice.stop().await.unwrap();
    assert!(
        alice
            .lines_with("local record updated")
            .iter()
            .all(|l| l["nat"] == false)
    );
    scenario::stop_all(&mut [&mut charlie, &mut boot]).await;
}

/// Alice placed as given, with `loss` of the frames on her link lost and 20 ms each way: her
/// first NAT verdict must be `expect`, and must still hold once AutoNAT's dial-back (delayed
/// or lost and retried) has reported.
async fn verdict_holds(alice_at: Placement, loss: f64, expect: &str) {
    let topology = Topology::new(alice_at, Placement::Public).with_uplink(
        Host::Alice,
        Impairment::delay(Duration::from_millis(20)).with_loss(loss),
    );
    let lab = Lab::up(topology).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    let mut alice = peer(&lab, Host::Alice, &enr, &args(&["--max-peers", "0"])).unwrap();
    let first = alice
        .wait_for("NAT status changed", WAIT, |_| true)
        .await
        .expect("a verdict");
    assert_eq!(field(&first, "to"), expect, "{first}");
    // Every AutoNAT test that reports (one per transport) agrees or changes nothing.
    alice
        .wait_for("AutoNAT test done", WAIT, |l| {
            l["reachable"] == (expect == "public")
        })
        .await
        .expect("autonat reports");
    assert_eq!(
        alice.lines_with("NAT status changed").len(),
        1,
        "the verdict never flipped"
    );
    if expect == "public" {
        assert!(
            alice
                .lines_with("local record updated")
                .iter()
                .all(|l| l["nat"] == false),
            "never flagged"
        );
    }
    scenario::stop_all(&mut [&mut alice, &mut boot]).await;
}

#[tokio::test]
async fn lab_with_loss_on_her_link_public_alice_is_found_public() {
    verdict_holds(Placement::Public, 0.05, "public").await;
}

#[tokio::test]
async fn lab_with_loss_on_her_link_alice_behind_an_eim_nat_is_found_private() {
    verdict_holds(
        Placement::BehindNat(NatMode::EndpointIndependent),
        0.05,
        "private",
    )
    .await;
}

#[tokio::test]
async fn lab_with_loss_on_her_link_alice_behind_a_symmetric_nat_is_found_private() {
    verdict_holds(Placement::BehindNat(NatMode::Symmetric), 0.05, "private").await;
}

#[tokio::test]
async fn lab_alice_behind_a_symmetric_nat_is_found_private() {
    verdict_holds(Placement::BehindNat(NatMode::Symmetric), 0.0, "private").await;
}
