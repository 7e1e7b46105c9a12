//! The status API across real NATs: what `peerfind status`, `peers` and `watch` say inside a
//! lab host, where the API listens on that host's loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;

use peerfind_tests::lab::{Host, Lab, NatMode, Placement, Topology};
use peerfind_tests::process::{binary, field};
use peerfind_tests::scenario::{self, WAIT, bootnode, peer, peer_id};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The API address inside a host: the default port, on the host's own loopback.
const API: &str = "127.0.0.1:5052";

/// Arguments that put a node's API on [`API`].
fn api_args() -> Vec<String> {
    vec!["--api".into(), API.into()]
}

/// Runs `peerfind ARGS --json --api API` inside `host` and parses its output.
async fn cli_json(lab: &Lab, host: Host, args: &[&str]) -> Value {
    let mut cmd = lab.tokio_command(host, binary());
    cmd.args(args)
        .args(["--json", "--api", API])
        .kill_on_drop(true);
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("the command ends within the bound")
        .unwrap();
    assert!(out.status.success(), "peerfind {args:?} in {host}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn lab_alice_behind_a_nat_reports_private_with_autonat_as_the_reason_and_a_watcher_sees_the_change()
 {
    let lab = Lab::up(Topology::new(
        Placement::BehindNat(NatMode::EndpointIndependent),
        Placement::Public,
    ))
    .expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    let mut alice = peer(&lab, Host::Alice, &enr, &api_args()).unwrap();
    alice.api_addr().await.unwrap();

    // Watch from inside Alice's host. Her first AutoNAT probe comes seconds after her start
    // (libp2p's probe interval), so the watcher is subscribed long before.
    let mut watch = lab.tokio_command(Host::Alice, binary());
    watch
        .args(["watch", "--json", "--api", API])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut watcher = watch.spawn().unwrap();
    let mut banner = BufReader::new(watcher.stderr.take().unwrap()).lines();
    let said = tokio::time::timeout(WAIT, banner.next_line())
        .await
        .expect("the watcher connects")
        .unwrap()
        .unwrap_or_default();
    assert!(said.starts_with("watching"), "{said}");
    assert!(
        alice.lines_with("NAT status changed").is_empty(),
        "alice's NAT status changed before the watcher was subscribed"
    );

    let mut lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
    let change = loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("a NAT status change within the bound")
            .unwrap()
            .expect("the watcher keeps running");
        let event: Value = serde_json::from_str(&line).unwrap();
        assert!(event["time"].is_string(), "{event}");
        if event["kind"] == "nat_status_changed" {
            break event;
        }
    };
    assert_eq!(change["from"], "unknown", "{change}");
    assert_eq!(change["to"], "private", "{change}");
    assert!(
        change["reason"].as_str().unwrap().contains("AutoNAT"),
        "{change}"
    );

    let status = cli_json(&lab, Host::Alice, &["status"]).await;
    assert_eq!(status["nat"]["status"], "private", "{status}");
    let reason = status["nat"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("AutoNAT") && reason.contains("could not reach us"),
        "{reason}"
    );
    assert_eq!(status["peer_id"], peer_id(&mut alice).await.unwrap());
    assert_eq!(status["bootnodes"][0]["connected"], true, "{status}");

    let _ = watcher.kill().await;
    scenario::stop_all(&mut [&mut alice, &mut boot]).await;
}

#[tokio::test]
async fn lab_charlie_lists_public_alice_as_directly_connected() {
    let lab = Lab::up(Topology::new(Placement::Public, Placement::Public)).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    let mut charlie = peer(&lab, Host::Charlie, &enr, &api_args()).unwrap();
    charlie
        .wait_for("connected", WAIT, |l| l["bootnode"] == true)
        .await
        .unwrap();
    let mut alice = peer(&lab, Host::Alice, &enr, &[]).unwrap();
    let alice_start = alice.wait_for("starting", WAIT, |_| true).await.unwrap();
    let alice_id = field(&alice_start, "peer_id").to_owned();

    // The bootnode tells each about the other, and one dials the other (or both do).
    charlie
        .wait_for("connected", WAIT, |l| field(l, "peer") == alice_id)
        .await
        .expect("charlie and alice connect");
    let peers = cli_json(&lab, Host::Charlie, &["peers"]).await;
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
    assert_eq!(listed["node_id"], field(&alice_start, "node_id"));
    assert_eq!(listed["nat"], false);
    assert!(listed["enr"].as_str().unwrap().starts_with("enr:"));

    let mut one = lab.tokio_command(Host::Charlie, binary());
    one.args(["peers", "--json", "--api", API, "--peer-id", &alice_id])
        .kill_on_drop(true);
    let out = tokio::time::timeout(WAIT, one.output())
        .await
        .unwrap()
        .unwrap();
    let only: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(only.as_array().map(Vec::len), Some(1), "{only}");

    scenario::stop_all(&mut [&mut alice, &mut charlie, &mut boot]).await;
}
