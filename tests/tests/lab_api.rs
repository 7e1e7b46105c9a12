//! The status API across real NATs: what `peerfind status`, `peers` and `watch` say inside a
//! lab host, where the API listens on that host's loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use peerfind_tests::cli::{self, Watcher, api_args};
use peerfind_tests::lab::{Host, Lab, NatMode, Placement, Topology};
use peerfind_tests::scenario::{self, WAIT, bootnode, peer, peer_id};

#[tokio::test]
async fn lab_alice_behind_a_nat_reports_private_with_the_translation_as_the_reason_and_a_watcher_sees_the_change()
 {
    let lab = Lab::up(Topology::new(
        Placement::BehindNat(NatMode::EndpointIndependent),
        Placement::Public,
    ))
    .expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    // Her verdict comes a round trip after she meets the bootnode: the bootnode is held still
    // until the watcher is subscribed.
    boot.pause().unwrap();
    let mut alice = peer(&lab, Host::Alice, &enr, &api_args()).unwrap();
    alice.api_addr().await.unwrap();

    // Watch from inside Alice's host.
    let mut watcher = Watcher::start(&lab, Host::Alice).await.unwrap();
    let before = cli::json(&lab, Host::Alice, &["status"]).await.unwrap();
    assert_eq!(
        before["nat"]["status"], "unknown",
        "alice's NAT status changed before the watcher was subscribed: {before}"
    );
    boot.resume().unwrap();
    let change = watcher
        .wait_for(&["nat_status_changed"], WAIT, |_| true)
        .await
        .unwrap();
    assert!(change["time"].is_string(), "{change}");
    assert_eq!(change["from"], "unknown", "{change}");
    assert_eq!(change["to"], "private", "{change}");
    assert!(
        change["reason"]
            .as_str()
            .unwrap()
            .contains("a NAT translated our address"),
        "{change}"
    );

    let status = cli::json(&lab, Host::Alice, &["status"]).await.unwrap();
    assert_eq!(status["nat"]["status"], "private", "{status}");
    let reason = status["nat"]["reason"].as_str().unwrap();
    assert_eq!(reason, change["reason"], "{status}");
    assert_eq!(status["peer_id"], peer_id(&mut alice).await.unwrap());
    assert_eq!(status["bootnodes"][0]["connected"], true, "{status}");

    watcher.stop().await;
    scenario::stop_all(&mut [&mut alice, &mut boot]).await;
}

#[tokio::test]
async fn lab_charlie_lists_public_alice_as_directly_connected() {
    let lab = Lab::up(Topology::new(Placement::Public, Placement::Public)).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    let mut charlie = peer(&lab, Host::Charlie, &enr, &api_args()).unwrap();
    charlie
        .until("charlie connected to the bootnode", WAIT, |s| {
            s.bootnode_connected().then_some(())
        })
        .await
        .unwrap();
    let mut alice = peer(&lab, Host::Alice, &enr, &[]).unwrap();
    let alice_status = alice.state().await.unwrap().status;
    let alice_id = alice_status.peer_id.clone();

    // The bootnode tells each about the other, and one dials the other (or both do).
    charlie
        .until("charlie connected to alice", WAIT, |s| {
            s.direct_to(&alice_id).then_some(())
        })
        .await
        .expect("charlie and alice connect");
    let peers = cli::json(&lab, Host::Charlie, &["peers"]).await.unwrap();
    let listed = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer_id"] == alice_id.as_str())
        .unwrap_or_else(|| panic!("alice in {peers}"));
    assert_eq!(listed["connection"], "direct", "{listed}");
    assert!(
        ["tcp", "quic"].contains(&listed["transport"].as_str().unwrap_or_default()),
        "{listed}"
    );
    assert_eq!(listed["node_id"], alice_status.node_id.as_str());
    assert_eq!(listed["nat"], false);
    assert!(listed["enr"].as_str().unwrap().starts_with("enr:"));

    let only = cli::peer_entry(&lab, Host::Charlie, &alice_id)
        .await
        .unwrap();
    assert_eq!(only["peer_id"], alice_id.as_str(), "{only}");

    scenario::stop_all(&mut [&mut alice, &mut charlie, &mut boot]).await;
}
