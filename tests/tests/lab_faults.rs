//! Faults across real NATs, as each node's API reports them: a NAT that forwards nothing for
//! 30 s, the bootnode's link down for a minute, a NAT that moves Alice to another port and
//! back, and a bootnode killed and restarted. Every wait polls `peerfind status|peers --json`
//! with a deadline; only the faults themselves last a fixed time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use peerfind_tests::cli::{self, api_args};
use peerfind_tests::lab::{Host, Lab, NatMode, Placement, Topology};
use peerfind_tests::process::Peerfind;
use peerfind_tests::scenario::{self, WAIT, bootnode_with, peer, peer_id};
use serde_json::Value;
use tokio::time::Instant;

/// peerfind's ping interval (`upkeep::liveness::PING_INTERVAL`): the unit of the liveness bounds.
const PING_INTERVAL: Duration = Duration::from_secs(15);

/// The bound on noticing a dead connection: two ping intervals (the node's own budget is
/// 27 s, `liveness::budget`).
const DEAD_WITHIN: Duration = Duration::from_secs(2 * PING_INTERVAL.as_secs());

/// Slack for one poll: a `peerfind status` process started in a namespace and its answer.
const POLL_SLACK: Duration = Duration::from_secs(3);

/// The bound on a record following a NAT rebinding: a dead connection is closed within the
/// liveness budget (27 s), redialed within 1 s, and identify tells the new address within a
/// connection set-up (at most 5 s).
const REBIND_WITHIN: Duration = Duration::from_secs(27 + 1 + 5);

/// How long after a fault ends every connection is back: the redial waits at most 10 s,
/// plus a dial and identify.
const BACK_WITHIN: Duration = Duration::from_secs(30);

/// Pause between two polls of the API.
const POLL_EVERY: Duration = Duration::from_millis(500);

const EIM: Placement = Placement::BehindNat(NatMode::EndpointIndependent);

/// Polls `check` until it returns `Some`, for at most `within`; returns the value and how
/// long it took. An error from `check` (a node not answering) counts as "not yet".
async fn until<T>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> (T, Duration) {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        match check().await {
            Ok(Some(v)) => return (v, start.elapsed()),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if start.elapsed() > within {
            panic!("{what}: not within {within:?} (last error: {last})");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// The transports of `host`'s connections to its bootnode, from `peerfind status --json`.
async fn bootnode_transports(lab: &Lab, host: Host) -> anyhow::Result<Vec<String>> {
    let status = cli::json(lab, host, &["status"]).await?;
    let Some(b) = status["bootnodes"].get(0) else {
        bail!("{host} lists no bootnode: {status}");
    };
    Ok(strings(&b["transports"]))
}

/// The transports of `host`'s direct connections to `peer`, from `peerfind peers --json`.
async fn transports_to(lab: &Lab, host: Host, peer: &str) -> anyhow::Result<Vec<String>> {
    let entry = cli::peer_entry(lab, host, peer).await?;
    Ok(strings(&entry["transports"]))
}

/// Every peer `host` is directly connected to, with the transports.
async fn connections(lab: &Lab, host: Host) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let peers = cli::json(lab, host, &["peers"]).await?;
    Ok(peers
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| !strings(&p["transports"]).is_empty())
        .map(|p| {
            (
                p["peer_id"].as_str().unwrap_or_default().to_owned(),
                strings(&p["transports"]),
            )
        })
        .collect())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn both() -> Vec<String> {
    vec!["quic".to_owned(), "tcp".to_owned()]
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Waits until `host` holds TCP and QUIC connections to the bootnode, and the bootnode to it.
async fn both_ways_connected(lab: &Lab, host: Host, id: &str, within: Duration) -> Duration {
    let (_, took) = until(
        &format!("{host} and the bootnode connected over QUIC and TCP"),
        within,
        async || {
            let here = bootnode_transports(lab, host).await?;
            let there = transports_to(lab, Host::Bootnode, id).await?;
            Ok((here == both() && there == both()).then_some(()))
        },
    )
    .await;
    took
}

/// A bootnode on TCP and QUIC with its API on its host's loopback.
async fn start_bootnode(lab: &Lab, extra: &[String]) -> (Peerfind, String) {
    let mut a = api_args();
    a.extend(extra.iter().cloned());
    bootnode_with(lab, &["tcp", "quic"], &a).await.unwrap()
}

/// A peer in `host` on TCP and QUIC with its API; returns it and its PeerId.
async fn start_peer(lab: &Lab, host: Host, enr: &str) -> (Peerfind, String) {
    let mut node = peer(lab, host, enr, &api_args()).unwrap();
    let id = peer_id(&mut node).await.unwrap();
    node.api_addr().await.unwrap();
    (node, id)
}

/// Must show 1, first half: Alice's NAT forwards nothing for 30 s. Alice and the bootnode
/// each report the other gone within two ping intervals, and both connections (TCP and QUIC)
/// are back once the NAT forwards again.
#[tokio::test]
async fn lab_a_blackholed_nat_is_noticed_on_both_sides_within_two_ping_intervals_and_healed() {
    let lab = Lab::up(Topology::new(EIM, Placement::Public)).expect("lab");
    let (mut boot, enr) = start_bootnode(&lab, &[]).await;
    let (mut alice, alice_id) = start_peer(&lab, Host::Alice, &enr).await;
    both_ways_connected(&lab, Host::Alice, &alice_id, WAIT).await;

    lab.blackhole(Host::NatA, true).unwrap();
    let fault = Instant::now();
    let (mut alice_saw, mut boot_saw) = (None, None);
    until(
        "alice and the bootnode report each other gone",
        DEAD_WITHIN + POLL_SLACK,
        async || {
            if alice_saw.is_none() {
                let status = cli::json(&lab, Host::Alice, &["status"]).await?;
                if status["bootnodes"][0]["connected"] == false {
                    alice_saw = Some(fault.elapsed());
                }
            }
            if boot_saw.is_none() {
                let entry = cli::peer_entry(&lab, Host::Bootnode, &alice_id).await?;
                if entry["connection"] == "none" {
                    boot_saw = Some(fault.elapsed());
                }
            }
            Ok(alice_saw.zip(boot_saw))
        },
    )
    .await;
    eprintln!("blackhole noticed: alice after {alice_saw:?}, the bootnode after {boot_saw:?}");

    // The fault lasts its 30 s; then both connections come back.
    tokio::time::sleep_until(fault + Duration::from_secs(30)).await;
    lab.blackhole(Host::NatA, false).unwrap();
    let back = both_ways_connected(&lab, Host::Alice, &alice_id, BACK_WITHIN).await;
    eprintln!("blackhole lifted: reconnected over QUIC and TCP after {back:?}");

    scenario::stop_all(&mut [&mut alice, &mut boot]).await;
}

/// Must show 1, second half: the bootnode's link is down for 60 s. Within 30 s of the link
/// coming back, every node holds the direct connections it held before (to the bootnode over
/// TCP and QUIC, and to each other).
#[tokio::test]
async fn lab_every_node_gets_its_connections_back_after_the_bootnodes_link_was_down_a_minute() {
    let lab = Lab::up(Topology::new(EIM, Placement::Public)).expect("lab");
    let (mut boot, enr) = start_bootnode(&lab, &[]).await;
    let (mut charlie, charlie_id) = start_peer(&lab, Host::Charlie, &enr).await;
    let (mut alice, alice_id) = start_peer(&lab, Host::Alice, &enr).await;
    both_ways_connected(&lab, Host::Charlie, &charlie_id, WAIT).await;
    both_ways_connected(&lab, Host::Alice, &alice_id, WAIT).await;
    let hosts = [Host::Bootnode, Host::Charlie, Host::Alice];
    let mut before = BTreeMap::new();
    for host in hosts {
        before.insert(host, connections(&lab, host).await.unwrap());
    }

    lab.set_link(Host::Bootnode, false).unwrap();
    let fault = Instant::now();
    for (host, id) in [(Host::Charlie, &charlie_id), (Host::Alice, &alice_id)] {
        let within = (DEAD_WITHIN + POLL_SLACK).saturating_sub(fault.elapsed());
        until(
            &format!("{host} and the bootnode report each other gone"),
            within,
            async || {
                let here = cli::json(&lab, host, &["status"]).await?;
                let there = cli::peer_entry(&lab, Host::Bootnode, id).await?;
                Ok(
                    (here["bootnodes"][0]["connected"] == false && there["connection"] == "none")
                        .then_some(()),
                )
            },
        )
        .await;
    }
    eprintln!("link down noticed by all after {:?}", fault.elapsed());

    tokio::time::sleep_until(fault + Duration::from_secs(60)).await;
    lab.set_link(Host::Bootnode, true).unwrap();
    let (_, took) = until(
        "every node back to its connections",
        BACK_WITHIN,
        async || {
            for host in hosts {
                let now = connections(&lab, host).await?;
                for (peer, transports) in &before[&host] {
                    if now.get(peer) != Some(transports) {
                        return Ok(None);
                    }
                }
            }
            Ok(Some(()))
        },
    )
    .await;
    eprintln!("link back: every connection back after {took:?}; before: {before:?}");

    scenario::stop_all(&mut [&mut alice, &mut charlie, &mut boot]).await;
}

/// Alice's record and connections as her own API reports them.
async fn alice_ports(lab: &Lab) -> anyhow::Result<(u64, Vec<String>)> {
    let status = cli::json(lab, Host::Alice, &["status"]).await?;
    let seq = status["seq"].as_u64().unwrap_or_default();
    Ok((seq, strings(&status["observed_addrs"])))
}

/// The addresses Alice's record should hold when her NAT maps her to `port`.
fn mapped(lab: &Lab, port: u16) -> Vec<String> {
    let ip = lab.public_ip(Host::Alice);
    let mut v = vec![
        format!("/ip4/{ip}/tcp/{port}"),
        format!("/ip4/{ip}/udp/{port}/quic-v1"),
    ];
    v.sort();
    v
}

/// Waits until Alice's record holds `want`, then until the bootnode and Charlie hold that
/// record or a later one (its seq or above: the `nat` flag may change meanwhile). Returns
/// how long Alice's record took.
async fn record_follows(lab: &Lab, alice_id: &str, want: &[String]) -> Duration {
    let (seq, took) = until(
        &format!("alice's record holds {want:?}"),
        REBIND_WITHIN + POLL_SLACK,
        async || {
            let (seq, mut addrs) = alice_ports(lab).await?;
            addrs.sort();
            Ok((addrs == want).then_some(seq))
        },
    )
    .await;
    for host in [Host::Bootnode, Host::Charlie] {
        until(
            &format!("{host} holds alice's record {seq}"),
            WAIT,
            async || {
                let entry = cli::peer_entry(lab, host, alice_id).await?;
                Ok((entry["seq"].as_u64() >= Some(seq)).then_some(()))
            },
        )
        .await;
    }
    took
}

/// Must show 2: Alice's NAT moves her from port 9000 to 9100, then back to 9000. Her record
/// follows each move within the bound (a dead connection's budget, a redial and a set-up),
/// and the bootnode and Charlie hold each new record.
#[tokio::test]
async fn lab_alices_record_follows_her_nat_to_another_port_and_back() {
    let lab = Lab::up(Topology::new(EIM, Placement::Public)).expect("lab");
    let (mut boot, enr) = start_bootnode(&lab, &[]).await;
    let (mut charlie, _) = start_peer(&lab, Host::Charlie, &enr).await;
    let (mut alice, alice_id) = start_peer(&lab, Host::Alice, &enr).await;
    record_follows(&lab, &alice_id, &mapped(&lab, 9000)).await;
    both_ways_connected(&lab, Host::Alice, &alice_id, WAIT).await;

    lab.remap(Host::NatA, Some(9100)).unwrap();
    let away = record_follows(&lab, &alice_id, &mapped(&lab, 9100)).await;
    eprintln!("mapping 9000 -> 9100: the record followed after {away:?}");
    both_ways_connected(&lab, Host::Alice, &alice_id, WAIT).await;

    lab.remap(Host::NatA, None).unwrap();
    let back = record_follows(&lab, &alice_id, &mapped(&lab, 9000)).await;
    eprintln!("mapping 9100 -> 9000: the record followed after {back:?}");
    both_ways_connected(&lab, Host::Alice, &alice_id, WAIT).await;

    scenario::stop_all(&mut [&mut alice, &mut charlie, &mut boot]).await;
}

/// The bootnode is killed (SIGKILL) and started again with its key: Alice and Charlie are
/// back to it over TCP and QUIC within 30 s of the restart.
#[tokio::test]
async fn lab_peers_return_to_a_bootnode_killed_and_restarted() {
    let lab = Lab::up(Topology::new(EIM, Placement::Public)).expect("lab");
    let (mut boot, enr) = start_bootnode(&lab, &[]).await;
    let (mut charlie, charlie_id) = start_peer(&lab, Host::Charlie, &enr).await;
    let (mut alice, alice_id) = start_peer(&lab, Host::Alice, &enr).await;
    both_ways_connected(&lab, Host::Charlie, &charlie_id, WAIT).await;
    both_ways_connected(&lab, Host::Alice, &alice_id, WAIT).await;

    boot.kill().await.unwrap();
    let dir = boot.data_dir().display().to_string();
    let (mut again, again_enr) = start_bootnode(&lab, &args(&["--data-dir", &dir])).await;
    let restarted = Instant::now();
    assert_eq!(
        peerfind_tests::process::decode_enr(&again_enr)
            .await
            .unwrap()["node_id"],
        peerfind_tests::process::decode_enr(&enr).await.unwrap()["node_id"],
        "the same bootnode"
    );
    both_ways_connected(&lab, Host::Charlie, &charlie_id, BACK_WITHIN).await;
    let within = BACK_WITHIN.saturating_sub(restarted.elapsed());
    both_ways_connected(&lab, Host::Alice, &alice_id, within).await;
    eprintln!(
        "bootnode restarted: both peers back after {:?}",
        restarted.elapsed()
    );

    scenario::stop_all(&mut [&mut alice, &mut charlie, &mut again]).await;
}
