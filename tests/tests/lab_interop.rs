//! Must-show 4 across real NATs: a peerfind peer (Alice, behind nat-a) and a plain rust-libp2p
//! peer (Bob, behind nat-b), both endpoint-independent NATs, end with a direct hole-punched
//! connection, coordinated through a relay on the public side: a peerfind bootnode's, or a
//! plain rust-libp2p relay that is Alice's only bootnode.
//!
//! The foreign peer has no record, so peerfind never dials it: Bob is given the relay's
//! address (from the bootnode's status API, or the plain relay's own lines) and Alice's PeerId
//! (from her status API), dials Alice through the relay's circuit, and
//! DCUtR (Alice starts it, as the circuit's listener) punches. Both sides are asserted: Alice
//! through her API (`peerfind status|peers|watch --json`), Bob through his probe's JSON lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use peerfind_tests::cli::{self, Watcher, api_args};
use peerfind_tests::interop::{Implementation, PROBE_WAIT, Probe};
use peerfind_tests::lab::{Host, Lab, NatMode, Placement, Topology};
use peerfind_tests::process::{Peerfind, field};
use peerfind_tests::scenario::{self, PORT, WAIT, bootnode_with, listen, peer};
use serde_json::Value;

/// A hole punch needs Alice's NAT verdict, her reservation, Bob's circuit and DCUtR's
/// attempts: allow more than the usual bound.
const PUNCH_WAIT: Duration = Duration::from_secs(90);

const EIM: Placement = Placement::BehindNat(NatMode::EndpointIndependent);

/// Who relays the circuit the punch is coordinated over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relay {
    /// A peerfind bootnode.
    Peerfind,
    /// `interop-rust listen --relay`: plain rust-libp2p, Alice's only bootnode.
    Rust,
}

/// The relay process, kept running for the test.
enum Running {
    Peerfind(Box<Peerfind>),
    Rust(Box<Probe>),
}

/// `ip`'s address for `transport` ("tcp" or "quic") at the lab's port, without `/p2p/`.
fn addr(ip: impl std::fmt::Display, transport: &str) -> String {
    match transport {
        "tcp" => format!("/ip4/{ip}/tcp/{PORT}"),
        _ => format!("/ip4/{ip}/udp/{PORT}/quic-v1"),
    }
}

/// Starts the relay in the bootnode host, listening on `transport`; returns it and its
/// `/p2p/` address on the public segment.
async fn start_relay(lab: &Lab, relay: Relay, transport: &str) -> (Running, String) {
    let public = lab.ip(Host::Bootnode);
    match relay {
        Relay::Peerfind => {
            let (boot, _enr) = bootnode_with(lab, &[transport], &api_args()).await.unwrap();
            let status = cli::json(lab, Host::Bootnode, &["status"]).await.unwrap();
            let id = status["peer_id"].as_str().unwrap();
            let relay_addr = format!("{}/p2p/{id}", addr(public, transport));
            (Running::Peerfind(Box::new(boot)), relay_addr)
        }
        Relay::Rust => {
            let mut probe = Probe::start_in(
                lab,
                Host::Bootnode,
                "rust-libp2p relay",
                Implementation::Rust,
                ["listen", "--relay", "--listen", &addr("0.0.0.0", transport)],
            )
            .unwrap();
            let id = probe
                .wait_for("started", PROBE_WAIT, |_| true)
                .await
                .unwrap()["peer"]
                .as_str()
                .unwrap()
                .to_owned();
            let public = addr(public, transport);
            probe
                .wait_for("listening", PROBE_WAIT, |l| field(l, "addr") == public)
                .await
                .unwrap();
            (Running::Rust(Box::new(probe)), format!("{public}/p2p/{id}"))
        }
    }
}

/// Alice behind nat-a and Bob (plain rust-libp2p) behind nat-b punch a direct connection
/// over `transport`, coordinated through `relay`.
async fn peerfind_and_rust_libp2p_punch(relay: Relay, transport: &str) {
    let lab = Lab::up(Topology::new(EIM, EIM)).expect("lab");
    let (mut relay_process, relay_addr) = start_relay(&lab, relay, transport).await;
    let relay_id = relay_addr.rsplit("/p2p/").next().unwrap().to_owned();
    let mut alice_args = listen(transport);
    alice_args.extend(api_args());
    let mut alice = peer(&lab, Host::Alice, &relay_addr, &alice_args).unwrap();

    // Alice knows she is behind a NAT and holds a slot on the relay: her listen addresses
    // then include the circuit address (`<relay>/p2p-circuit/p2p/<alice>`).
    let circuit = format!("/p2p/{relay_id}/p2p-circuit");
    let status = cli::json_until(&lab, Host::Alice, &["status"], WAIT, |s| {
        s["nat"]["status"] == "private"
            && s["listen_addrs"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|a| a.as_str().unwrap_or("").contains(&circuit))
            })
    })
    .await
    .unwrap_or_else(|e| panic!("alice private and reserved on the relay: {e}"));
    let alice_id = status["peer_id"].as_str().unwrap().to_owned();
    let boot = &status["bootnodes"][0];
    assert_eq!(boot["peer_id"], relay_id.as_str(), "{status}");
    assert_eq!(boot["connected"], true, "{status}");
    if relay == Relay::Rust {
        assert!(
            field(boot, "agent").starts_with("rust-libp2p-interop/"),
            "{status}"
        );
        assert!(
            boot["lacks"].to_string().contains("not a peerfind node"),
            "{status}"
        );
    }
    // Subscribed before Bob exists: the punch cannot have happened yet.
    let mut alice_watch = Watcher::start(&lab, Host::Alice).await.unwrap();

    let mut bob = Probe::start_in(
        &lab,
        Host::Bob,
        "bob (rust-libp2p)",
        Implementation::Rust,
        [
            "punch",
            &relay_addr,
            "--target",
            &alice_id,
            "--listen",
            &addr("0.0.0.0", transport),
        ],
    )
    .unwrap();
    let bob_id = bob.wait_for("started", PROBE_WAIT, |_| true).await.unwrap()["peer"]
        .as_str()
        .unwrap()
        .to_owned();

    // Alice's side, as her API tells it.
    let punch = alice_watch
        .wait_for(&["hole_punch"], PUNCH_WAIT, |e| {
            e["peer_id"] == bob_id.as_str()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- bob ---\n{}", bob.output()));
    assert_eq!(
        punch["succeeded"],
        true,
        "{punch}\n--- bob ---\n{}",
        bob.output()
    );
    let listed = cli::peer_entry(&lab, Host::Alice, &bob_id).await.unwrap();
    assert_eq!(listed["connection"], "direct", "{listed}");
    assert_eq!(listed["transport"], transport, "{listed}");
    assert_eq!(listed["has_record"], false, "{listed}");
    assert_eq!(listed["met"], "connected", "{listed}");
    let agent = field(&listed["identify"], "agent");
    assert!(agent.starts_with("rust-libp2p-interop/"), "{listed}");
    let status = cli::json(&lab, Host::Alice, &["status"]).await.unwrap();
    assert_eq!(status["nat"]["status"], "private", "{status}");
    assert!(
        status["counts"]["hole_punches_succeeded"].as_u64() >= Some(1),
        "{status}"
    );

    // Bob's side, as his probe printed it: the circuit, the punch, a direct connection from
    // nat-a's public address, a ping over it, and the circuit closed (Alice drops it once
    // the direct connection is up).
    let of_alice = |l: &Value| field(l, "peer") == alice_id;
    bob.wait_for("connected", WAIT, |l| of_alice(l) && l["relayed"] == true)
        .await
        .unwrap();
    let punched = bob
        .wait_for("hole_punch", WAIT, |l| of_alice(l))
        .await
        .unwrap();
    assert_eq!(punched["ok"], true, "{}", bob.output());
    let direct = bob
        .wait_for("connected", WAIT, |l| of_alice(l) && l["relayed"] == false)
        .await
        .unwrap();
    let nat_a = addr(lab.public_ip(Host::Alice), transport);
    assert!(
        field(&direct, "addr").starts_with(&nat_a),
        "bob reaches alice at nat-a's {nat_a}: {direct}"
    );
    let connection = field(&direct, "connection").to_owned();
    let ping = bob
        .wait_for("ping", WAIT, |l| {
            of_alice(l) && field(l, "connection") == connection
        })
        .await
        .unwrap();
    assert!(ping["rtt_us"].as_u64().is_some(), "{ping}");
    bob.wait_for("disconnected", WAIT, |l| {
        of_alice(l) && l["relayed"] == true
    })
    .await
    .unwrap();

    // A plain relay says nothing of the circuit, but it saw both peers connect.
    if let Running::Rust(relay) = &mut relay_process {
        for peer in [&alice_id, &bob_id] {
            relay
                .wait_for("connected", WAIT, |l| field(l, "peer") == peer.as_str())
                .await
                .unwrap();
        }
    }

    alice_watch.stop().await;
    drop(bob);
    match &mut relay_process {
        Running::Peerfind(boot) => scenario::stop_all(&mut [&mut alice, &mut **boot]).await,
        Running::Rust(_) => scenario::stop_all(&mut [&mut alice]).await,
    }
}

#[tokio::test]
async fn lab_peerfind_and_rust_libp2p_punch_through_a_peerfind_relay_over_tcp() {
    peerfind_and_rust_libp2p_punch(Relay::Peerfind, "tcp").await;
}

#[tokio::test]
async fn lab_peerfind_and_rust_libp2p_punch_through_a_peerfind_relay_over_quic() {
    peerfind_and_rust_libp2p_punch(Relay::Peerfind, "quic").await;
}

#[tokio::test]
async fn lab_peerfind_and_rust_libp2p_punch_through_a_rust_libp2p_relay_over_tcp() {
    peerfind_and_rust_libp2p_punch(Relay::Rust, "tcp").await;
}

#[tokio::test]
async fn lab_peerfind_and_rust_libp2p_punch_through_a_rust_libp2p_relay_over_quic() {
    peerfind_and_rust_libp2p_punch(Relay::Rust, "quic").await;
}
