//! The first diagram of the design note on loopback, with the real binary: a node learns its
//! address from a bootnode, and a bootnode's gossip leads Charlie to dial Alice directly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use peerfind_proto::v1 as pb;
use peerfind_tests::local::{Bootnode, WAIT, bootnode, peer, peer_watched};
use peerfind_tests::process::{Peerfind, decode_enr, field, strip_p2p};
use serde_json::Value;

async fn peer_id(node: &mut Peerfind) -> String {
    node.peer_id().await.unwrap()
}

/// Waits until the node's record carries an address for each of `transports` ("tcp",
/// "quic") and returns the decoded record.
async fn record_with(node: &mut Peerfind, transports: &[&str]) -> Value {
    let enr = node
        .until("a record with an address", WAIT, |s| {
            s.record().has(transports).then(|| s.status.enr.clone())
        })
        .await
        .expect("record updated with an address");
    decode_enr(&enr).await.unwrap()
}

async fn node_records_the_address_the_bootnode_observed(transport: &'static str) {
    let (mut boot, Bootnode { addrs, .. }) = bootnode().await.unwrap();
    let boot_id = peer_id(&mut boot).await;
    let boot_addr = addrs
        .iter()
        .find(|a| a.contains(transport))
        .expect("bootnode address");
    let mut node = peer("node", boot_addr).unwrap();

    // What the bootnode observed: the remote address of its connection from the node, which
    // it reports to the node in identify (identify has no event: polled).
    let observed = node
        .until_polled("the bootnode's identify", WAIT, |s| {
            let identify = s.peer(&boot_id)?.identify.as_ref()?;
            (!identify.observed_addr.is_empty()).then(|| identify.observed_addr.clone())
        })
        .await
        .expect("the bootnode tells the node what it sees");
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

    // Charlie meets the bootnode, which tells him about Alice; he dials her. He is watched
    // from his start: every connection he opens and every record he takes is in his events.
    let mut charlie = peer_watched("charlie", &boot, &boot_enr).await.unwrap();
    let charlie_id = peer_id(&mut charlie).await;
    charlie
        .until("charlie connected directly to alice", WAIT, |s| {
            s.direct_to(&alice_id).then_some(())
        })
        .await
        .expect("charlie connects to alice");
    let dialed = charlie
        .until("charlie dialed alice", WAIT, |s| {
            s.events
                .connection_opened(&alice_id, pb::Direction::Outbound)
        })
        .await
        .expect("charlie dialed alice");
    let remote = strip_p2p(&dialed.remote_addr).to_owned();
    assert!(
        alice_addrs.contains(&remote),
        "charlie reached alice at {remote}, her record says {alice_addrs:?}"
    );
    let learned = charlie
        .until("charlie holds alice's record", WAIT, |s| {
            s.peer(&alice_id).filter(|p| p.has_record).cloned()
        })
        .await
        .unwrap();
    assert_eq!(learned.met(), pb::Met::Gossip, "{learned:?}");
    // And who gossiped it: the bootnode.
    let boot_id = peer_id(&mut boot).await;
    charlie
        .until(
            "charlie learned alice's record from the bootnode",
            WAIT,
            |s| {
                s.events
                    .kinds()
                    .any(|k| {
                        matches!(k, pb::event::Kind::RecordLearned(r)
                        if r.peer_id == alice_id && r.from == boot_id)
                    })
                    .then_some(())
            },
        )
        .await
        .expect("charlie learned alice's record from the bootnode");

    // "Hello (ENR …)": Alice holds Charlie's record, from Charlie himself or via the bootnode.
    alice
        .until("alice holds charlie's record", WAIT, |s| {
            s.holds_record_of(&charlie_id).then_some(())
        })
        .await
        .expect("alice holds charlie's record");

    for node in [&mut charlie, &mut alice, &mut boot] {
        node.stop().await.unwrap();
    }
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

/// A peerfind bootnode offers all a peer uses of it (record gossip, relay, AutoNAT): its
/// status lists nothing lacking (it once said "no DCUtR", which a bootnode never needs: hole
/// punches run between peers).
#[tokio::test]
async fn a_peerfind_bootnode_lacks_nothing_a_peer_uses() {
    let (mut boot, Bootnode { addrs, .. }) = bootnode().await.unwrap();
    let boot_tcp = addrs.iter().find(|a| a.contains("/tcp/")).unwrap();
    let mut peer = peer("peer", boot_tcp).unwrap();
    let bootnode = peer
        .until_polled("the bootnode identified", WAIT, |s| {
            s.bootnode(None).filter(|b| !b.agent.is_empty()).cloned()
        })
        .await
        .unwrap();
    assert!(bootnode.lacks.is_empty(), "{:?}", bootnode.lacks);
    // `peers` gives its round trip once a ping was answered.
    let boot_id = bootnode.peer_id.clone();
    let rtt = peer
        .until_polled("the bootnode's round trip", WAIT, |s| {
            s.peer(&boot_id).and_then(|p| p.rtt_ms)
        })
        .await
        .unwrap();
    assert!((0.0..1000.0).contains(&rtt), "{rtt} ms on loopback");
    peer.stop().await.unwrap();
    boot.stop().await.unwrap();
}

/// A peer takes a relay slot before its NAT verdict and gives it back once AutoNAT finds it
/// public: normal operation, so the slot's closing listener is logged at info, not as the
/// warning it was.
#[tokio::test]
async fn a_relay_slot_given_back_closes_its_listener_without_a_warning() {
    let (mut boot, Bootnode { addrs, .. }) = bootnode().await.unwrap();
    let boot_tcp = addrs.iter().find(|a| a.contains("/tcp/")).unwrap();
    let mut peer = peer("peer", boot_tcp).unwrap();
    let closed = peer
        .wait_for("listener closed", WAIT, |line| {
            field(line, "addresses").contains("p2p-circuit")
        })
        .await
        .unwrap();
    assert_eq!(field(&closed, "level"), "INFO", "{closed}");
    peer.stop().await.unwrap();
    boot.stop().await.unwrap();
}

/// Bootnodes named by DNS, as compose, Kubernetes and load balancers name them: a peer given
/// only `/dns4/localhost/tcp/…` and `/dns/localhost/udp/…/quic-v1` (the hosts file resolves
/// them, nothing leaves the machine) connects to its bootnode over both.
#[tokio::test]
async fn a_peer_joins_through_a_bootnode_named_by_dns() {
    let (mut boot, Bootnode { addrs, .. }) = bootnode().await.unwrap();
    let by_name = |transport: &str, scheme: &str| {
        addrs
            .iter()
            .find(|a| a.contains(transport))
            .unwrap()
            .replace("/ip4/127.0.0.1/", &format!("/{scheme}/localhost/"))
    };
    let (tcp, quic) = (by_name("/tcp/", "dns4"), by_name("/quic-v1", "dns"));
    let args = ["run", "--bootnode", &tcp, "--bootnode", &quic]
        .into_iter()
        .chain(peerfind_tests::local::LISTEN);
    let mut peer = Peerfind::start("peer", Peerfind::command(args)).unwrap();
    let transports = peer
        .until("connected to the bootnode over TCP and QUIC", WAIT, |s| {
            s.bootnode(None)
                .filter(|b| b.transports.len() == 2)
                .map(|b| b.transports.clone())
        })
        .await
        .unwrap();
    assert_eq!(transports, ["quic", "tcp"]);
    peer.stop().await.unwrap();
    boot.stop().await.unwrap();
}

/// A key made ahead (`peerfind key generate`) gives the PeerId it printed to the node that
/// runs with it (`--key-file`), so a bootnode's PeerId is known before it starts; the file is
/// only read.
#[tokio::test]
async fn a_key_made_ahead_is_the_identity_of_the_node_run_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("node.key");
    let out = Peerfind::command(["key", "generate", "--out", key.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    let printed_id = printed
        .lines()
        .find_map(|l| l.strip_prefix("peer_id: "))
        .unwrap()
        .to_owned();
    let mut read_only = std::fs::metadata(&key).unwrap().permissions();
    read_only.set_readonly(true);
    std::fs::set_permissions(&key, read_only).unwrap();

    let args = ["bootnode", "--key-file", key.to_str().unwrap()]
        .into_iter()
        .chain(peerfind_tests::local::LISTEN);
    let mut node = Peerfind::start("bootnode", Peerfind::command(args)).unwrap();
    assert_eq!(peer_id(&mut node).await, printed_id);
    node.stop().await.unwrap();
}
