//! The first diagram of the design note on loopback, with the real binary: a node learns its
//! address from a bootnode, and a bootnode's gossip leads Charlie to dial Alice directly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use peerfind_tests::local::{Bootnode, WAIT, bootnode, peer};
use peerfind_tests::process::{Peerfind, decode_enr, field, strip_p2p};
use serde_json::Value;

async fn peer_id(node: &mut Peerfind) -> String {
    let start = node.wait_for("starting", WAIT, |_| true).await.unwrap();
    field(&start, "peer_id").to_owned()
}

/// Waits until the node's record carries an address for each of `transports` ("tcp",
/// "quic") and returns the decoded record.
async fn record_with(node: &mut Peerfind, transports: &[&str]) -> Value {
    let line = node
        .wait_for("local record updated", WAIT, |l| {
            field(l, "ip").starts_with("Some(")
                && transports.iter().all(|t| field(l, t).starts_with("Some("))
        })
        .await
        .expect("record updated with an address");
    decode_enr(field(&line, "enr")).await.unwrap()
}

async fn node_records_the_address_the_bootnode_observed(transport: &'static str) {
    let (mut boot, Bootnode { addrs, .. }) = bootnode().await.unwrap();
    let boot_addr = addrs
        .iter()
        .find(|a| a.contains(transport))
        .expect("bootnode address");
    let mut node = peer("node", boot_addr).unwrap();
    let node_id = peer_id(&mut node).await;

    let seen = boot
        .wait_for("connected", WAIT, |l| field(l, "peer") == node_id)
        .await
        .expect("bootnode sees the node");
    let observed = field(&seen, "remote_addr").to_owned();
    let record = record_with(&mut node, &[transport]).await;

    let port = record[transport].as_u64().unwrap();
    let expected = match transport {
        "tcp" => format!("/ip4/127.0.0.1/tcp/{port}"),
        _ => format!("/ip4/127.0.0.1/udp/{port}/quic-v1"),
    };
    assert_eq!(
        strip_p2p(&observed),
        expected,
        "record holds what the bootnode observed"
    );
    assert_eq!(record["ip"], "127.0.0.1");
    assert!(
        record["seq"].as_u64().unwrap() >= 2,
        "seq grew from the address-less record"
    );
    node.stop().await.unwrap();
    boot.stop().await.unwrap();
}

#[tokio::test]
async fn a_node_records_the_address_the_bootnode_observed_over_tcp() {
    node_records_the_address_the_bootnode_observed("tcp").await;
}

#[tokio::test]
async fn a_node_records_the_address_the_bootnode_observed_over_quic() {
    node_records_the_address_the_bootnode_observed("quic").await;
}

#[tokio::test]
async fn charlie_learns_alice_from_the_bootnode_and_dials_her_directly() {
    let (
        mut boot,
        Bootnode {
            enr: boot_enr,
            addrs,
        },
    ) = bootnode().await.unwrap();
    assert!(!addrs.is_empty());

    // Alice says hello and learns her address (both transports, so her record is final).
    let mut alice = peer("alice", &boot_enr).unwrap();
    let alice_id = peer_id(&mut alice).await;
    let alice_record = record_with(&mut alice, &["tcp", "quic"]).await;
    let alice_addrs: Vec<String> = alice_record["multiaddrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| strip_p2p(a.as_str().unwrap()).to_owned())
        .collect();
    assert_eq!(alice_addrs.len(), 2, "tcp and quic in {alice_record}");

    // Charlie meets the bootnode, which tells him about Alice; he dials her.
    let mut charlie = peer("charlie", &boot_enr).unwrap();
    let charlie_id = peer_id(&mut charlie).await;
    let dialed = charlie
        .wait_for("connected", WAIT, |l| {
            field(l, "peer") == alice_id && field(l, "direction") == "outbound"
        })
        .await
        .expect("charlie connects to alice");
    let remote = strip_p2p(field(&dialed, "remote_addr")).to_owned();
    assert!(
        alice_addrs.contains(&remote),
        "charlie reached alice at {remote}, her record says {alice_addrs:?}"
    );
    let learned = charlie
        .wait_for("record learned", WAIT, |l| field(l, "peer") == alice_id)
        .await
        .unwrap();
    assert_eq!(
        field(&learned, "from"),
        field(&boot_enr_peer(&boot), "peer_id")
    );

    // "Hello (ENR …)": Alice holds Charlie's record, from Charlie himself or via the bootnode.
    alice
        .wait_for("record learned", WAIT, |l| field(l, "peer") == charlie_id)
        .await
        .expect("alice holds charlie's record");

    for node in [&mut charlie, &mut alice, &mut boot] {
        node.stop().await.unwrap();
    }
}

fn boot_enr_peer(boot: &Peerfind) -> Value {
    boot.lines_with("starting").into_iter().next().unwrap()
}

#[tokio::test]
async fn enr_decode_names_what_is_wrong_with_a_bad_record() {
    let out = Peerfind::command(["enr", "decode", "enr:AAAA"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid ENR") && err.contains("not a valid v4 record"),
        "{err}"
    );
    let out = Peerfind::command(["enr", "decode", "nope"])
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("starts with \"enr:\""));
}

#[tokio::test]
async fn sigterm_stops_the_node_cleanly() {
    let (mut boot, _) = bootnode().await.unwrap();
    let status = boot.stop().await.unwrap();
    assert!(status.success(), "exit status {status}");
    boot.wait_for("shutting down", WAIT, |l| field(l, "signal") == "SIGTERM")
        .await
        .unwrap();
}
