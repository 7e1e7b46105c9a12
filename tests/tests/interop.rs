//! peerfind with libp2p peers that are not peerfind: js-libp2p, py-libp2p and plain
//! rust-libp2p probes (`peerfind_tests::interop`) against the real binary on loopback. Each
//! test asserts what both sides observed: the probe's JSON lines, and the node's own
//! `peerfind peers --json` and `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use peerfind_tests::interop::{self, Implementation, PROBE_WAIT, Probe, circuit, dial_once};
use peerfind_tests::local::{self, LISTEN, WAIT};
use peerfind_tests::process::{Peerfind, field};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Dials per implementation and transport in one test run. `interop-bench` runs 20; every
/// one of these must pass.
const TRIES: usize = 3;

/// `peerfind peers --json --api API --peer-id PEER`, polled until the entry carries what the
/// peer's identify said; the entry.
async fn foreign_peer_entry(api: SocketAddr, peer: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let out = Peerfind::command([
            "peers",
            "--json",
            "--api",
            &api.to_string(),
            "--peer-id",
            peer,
        ])
        .output()
        .await
        .unwrap();
        let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if let Some(entry) = list.as_array().and_then(|l| l.first())
            && entry["identify"].is_object()
        {
            return entry.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "peers --json never listed {peer} with its identify: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a probe must have seen of a peerfind node on a direct connection.
fn assert_saw_peerfind(implementation: Implementation, transport: &str, identify: &Value) {
    let name = implementation.name();
    assert!(
        field(identify, "agent").starts_with("peerfind/"),
        "{name}: {identify}"
    );
    let protocols: Vec<&str> = identify["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for p in ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/peerfind/enr/1.0.0"] {
        assert!(
            protocols.contains(&p),
            "{name} over {transport}: {p} missing in {identify}"
        );
    }
    let observed = field(identify, "observed_addr");
    assert!(
        observed.starts_with("/ip4/127.0.0.1/"),
        "{name} over {transport}: observed {observed}"
    );
    // py-libp2p 0.8.1 prints a QUIC observed address as /tcp/N (its own bug); the others
    // print the transport they used.
    if implementation != Implementation::Py {
        let want = if transport == "tcp" {
            "/tcp/"
        } else {
            "/quic-v1"
        };
        assert!(
            observed.contains(want),
            "{name} over {transport}: {observed}"
        );
    }
}

/// Must-show 1 and 6 for one implementation: it dials a bootnode over each of its transports
/// [`TRIES`] times, completing identify and ping every time; then, while one more such peer
/// stays connected, the bootnode's `peers --json` lists it without a record, with what its
/// identify said and how it is connected.
async fn identifies_and_pings_a_bootnode(implementation: Implementation) {
    let (mut boot, bootnode) = local::bootnode().await.unwrap();
    let api = boot.api_addr().await.unwrap();
    for transport in implementation.transports() {
        let addr = bootnode
            .addrs
            .iter()
            .find(|a| {
                a.contains(if *transport == "tcp" {
                    "/tcp/"
                } else {
                    "/quic-v1"
                })
            })
            .unwrap();
        for _ in 0..TRIES {
            let dialed = dial_once(implementation, addr).await.unwrap();
            assert_saw_peerfind(implementation, transport, &dialed.identify);
            assert!(
                dialed.ping["rtt_us"].as_u64().is_some(),
                "{:?}",
                dialed.ping
            );
        }

        let mut held = Probe::start(
            implementation.name(),
            implementation,
            ["dial", addr, "--hold"],
        )
        .unwrap();
        held.wait_for("done", PROBE_WAIT, |d| d["ok"] == true)
            .await
            .unwrap();
        let started = held.events("identify");
        let id = started
            .iter()
            .find(|i| field(i, "agent").starts_with("peerfind/"))
            .expect("identify of the bootnode");
        // The probe's own PeerId, as it printed it.
        let probe_peer = field(&held.events("started")[0], "peer").to_owned();
        let entry = foreign_peer_entry(api, &probe_peer).await;
        assert_eq!(entry["has_record"], false, "{entry}");
        assert_eq!(entry["met"], "connected", "{entry}");
        assert_eq!(entry["connection"], "direct", "{entry}");
        assert_eq!(entry["transport"], *transport, "{entry}");
        let agent = entry["identify"]["agent"].as_str().unwrap_or_default();
        let want = match implementation {
            Implementation::Js => "js-libp2p/",
            Implementation::Py => "py-libp2p/",
            Implementation::Rust => "rust-libp2p-interop/",
        };
        assert!(agent.starts_with(want), "{entry}");
        let protocols = entry["identify"]["protocols"].as_array().unwrap();
        assert!(protocols.iter().any(|p| p == "/ipfs/ping/1.0.0"), "{entry}");
        assert!(id["observed_addr"].is_string());
        drop(held);
    }
    boot.stop().await.unwrap();
}

#[tokio::test]
async fn interop_js_libp2p_identifies_and_pings_a_bootnode_over_tcp_and_quic() {
    identifies_and_pings_a_bootnode(Implementation::Js).await;
}

#[tokio::test]
async fn interop_py_libp2p_identifies_and_pings_a_bootnode_over_tcp_and_quic() {
    identifies_and_pings_a_bootnode(Implementation::Py).await;
}

#[tokio::test]
async fn interop_rust_libp2p_identifies_and_pings_a_bootnode_over_tcp_and_quic() {
    identifies_and_pings_a_bootnode(Implementation::Rust).await;
}

/// py-libp2p's ping service pings several times on one stream: over QUIC, each gets its pong.
#[tokio::test]
async fn interop_py_libp2p_gets_three_pongs_on_one_quic_stream_from_a_bootnode() {
    let (mut boot, node) = local::bootnode().await.unwrap();
    let quic = node.addrs.iter().find(|a| a.contains("/quic-v1"));
    for _ in 0..TRIES {
        let dialed = interop::dial_pinging(Implementation::Py, quic.unwrap(), 3).await;
        let pongs = dialed.unwrap().pongs;
        let i: Vec<_> = pongs.iter().map(|p| p["i"].as_u64()).collect();
        assert_eq!(i, [Some(0), Some(1), Some(2)], "{pongs:?}");
    }
    boot.stop().await.unwrap();
}

/// `GET /metrics` from `addr`.
async fn scrape(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body
}

/// Polls `/metrics` at `addr` until it has a line starting with `series`.
async fn wait_for_series(addr: SocketAddr, series: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let body = scrape(addr).await;
        if body.lines().any(|l| l.starts_with(series)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {series} series at {addr}:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Where the node serves `/metrics` (bound to port 0: only the node knows the port).
async fn metrics_addr(node: &mut Peerfind) -> SocketAddr {
    let state = node.state().await.unwrap();
    state
        .status
        .metrics_addr
        .parse()
        .unwrap_or_else(|e| panic!("metrics address in {:?}: {e}", state.status))
}

/// What a probe saw over a circuit: the peer's identify and a ping.
async fn dialed_through(implementation: Implementation, relay: &str, peer: &str) -> Value {
    let dialed = dial_once(implementation, &circuit(relay, peer))
        .await
        .unwrap();
    assert!(dialed.ping["rtt_us"].as_u64().is_some());
    dialed.identify
}

/// Must-show 3 and 6: js- and rust-libp2p peers reserve on a peerfind bootnode's relay and
/// reach each other and a peerfind peer through it, identify + ping over the circuit, both
/// directions; the bootnode's `/metrics` then shows relay series and the peerfind peer's
/// DCUtR series.
#[tokio::test]
async fn interop_foreign_peers_reach_each_other_and_peerfind_through_a_bootnode_relay() {
    let (mut boot, ready) = local::bootnode_with(Peerfind::command(
        ["bootnode", "--metrics", "127.0.0.1:0"]
            .iter()
            .chain(&LISTEN),
    ))
    .await
    .unwrap();
    let relay = ready
        .addrs
        .iter()
        .find(|a| a.contains("/tcp/"))
        .unwrap()
        .clone();
    let boot_metrics = metrics_addr(&mut boot).await;

    // A peerfind peer that believes it is behind a NAT at once reserves on its bootnode.
    let mut alice = Peerfind::start(
        "alice",
        Peerfind::command(
            [
                "run",
                "--bootnode",
                &relay,
                "--nat-window",
                "1s",
                "--autonat",
                "false",
                "--metrics",
                "127.0.0.1:0",
            ]
            .iter()
            .chain(&LISTEN),
        ),
    )
    .unwrap();
    let alice_id = alice.peer_id().await.unwrap();
    let alice_metrics = metrics_addr(&mut alice).await;
    alice
        .until("a relay slot on the bootnode", WAIT, |s| {
            s.bootnode(None)
                .is_some_and(|b| b.relay_reserved)
                .then_some(())
        })
        .await
        .unwrap();

    let mut reserved = Vec::new();
    for implementation in [Implementation::Js, Implementation::Rust] {
        let mut probe =
            Probe::start(implementation.name(), implementation, ["reserve", &relay]).unwrap();
        let id = probe
            .wait_for("started", PROBE_WAIT, |_| true)
            .await
            .unwrap()["peer"]
            .as_str()
            .unwrap()
            .to_owned();
        probe
            .wait_for("reserved", PROBE_WAIT, |_| true)
            .await
            .unwrap();
        reserved.push((implementation, id, probe));
    }

    // Foreign to foreign, both directions, through peerfind's relay.
    let js_id = reserved[0].1.clone();
    let rust_id = reserved[1].1.clone();
    let js_seen = dialed_through(Implementation::Rust, &relay, &js_id).await;
    assert!(
        field(&js_seen, "agent").starts_with("js-libp2p/"),
        "{js_seen}"
    );
    // js to plain rust-libp2p: the circuit carries ping, and rust identifies js; js never
    // identifies rust, since rust-libp2p tells a circuit's dialer it is "observed" at
    // `/p2p/<id>`, on which js-libp2p 3.3's identify fails (see README). peerfind tells no
    // address there, so js identifies peerfind below.
    let mut js_to_rust = Probe::start(
        "js-to-rust",
        Implementation::Js,
        ["dial", &circuit(&relay, &rust_id)],
    )
    .unwrap();
    let js_dialer = field(
        &js_to_rust
            .wait_for("started", PROBE_WAIT, |_| true)
            .await
            .unwrap(),
        "peer",
    )
    .to_owned();
    js_to_rust
        .wait_for("ping", PROBE_WAIT, |p| field(p, "peer") == rust_id)
        .await
        .unwrap();
    let rust_probe = &mut reserved[1].2;
    let js_as_rust_saw_it = rust_probe
        .wait_for("identify", PROBE_WAIT, |i| field(i, "peer") == js_dialer)
        .await
        .unwrap();
    assert!(
        field(&js_as_rust_saw_it, "agent").starts_with("js-libp2p/"),
        "{js_as_rust_saw_it}"
    );
    drop(js_to_rust);
    // Foreign to peerfind through the circuit; and the reserved foreign peers saw the dialers.
    let alice_seen = dialed_through(Implementation::Js, &relay, &alice_id).await;
    assert!(
        field(&alice_seen, "agent").starts_with("peerfind/"),
        "{alice_seen}"
    );
    // The rust dialer stays connected until alice's hole punch attempt over the circuit
    // reported.
    let to_alice = circuit(&relay, &alice_id);
    let mut dialer = Probe::start(
        "rust-to-alice",
        Implementation::Rust,
        ["dial", &to_alice, "--hold"],
    )
    .unwrap();
    dialer
        .wait_for("done", PROBE_WAIT, |d| d["ok"] == true)
        .await
        .unwrap();
    let seen = dialer
        .wait_for("identify", PROBE_WAIT, |i| field(i, "peer") == alice_id)
        .await
        .unwrap();
    assert!(field(&seen, "agent").starts_with("peerfind/"), "{seen}");
    dialer
        .wait_for("hole_punch", PROBE_WAIT, |h| field(h, "peer") == alice_id)
        .await
        .unwrap();
    for (implementation, _, probe) in &mut reserved {
        let name = implementation.name();
        probe
            .wait_for("identify", PROBE_WAIT, |i| i["peer"].is_string())
            .await
            .unwrap_or_else(|e| panic!("{name} saw nobody through the circuit: {e}"));
    }

    // The bootnode relayed; alice took part in a hole punch attempt (or its failure).
    wait_for_series(boot_metrics, "libp2p_relay_").await;
    wait_for_series(alice_metrics, "libp2p_dcutr_").await;
    drop(dialer);
    alice.stop().await.unwrap();
    boot.stop().await.unwrap();
}

/// Must-show 2: a js- or rust-libp2p relay as a peerfind node's only bootnode. The node
/// learns its address from it, reserves a slot on its relay, says in `status` what the
/// bootnode lacks, and a foreign peer reaches it through the circuit with identify + ping.
async fn a_foreign_bootnode_serves_a_peerfind_node(implementation: Implementation) {
    let name = implementation.name();
    let mut relay = Probe::start(
        name,
        implementation,
        ["listen", "--listen", "/ip4/127.0.0.1/tcp/0", "--relay"],
    )
    .unwrap();
    let relay_id = relay
        .wait_for("started", PROBE_WAIT, |_| true)
        .await
        .unwrap()["peer"]
        .as_str()
        .unwrap()
        .to_owned();
    let listening = relay
        .wait_for("listening", PROBE_WAIT, |l| {
            field(l, "addr").starts_with("/ip4/127.0.0.1/tcp/")
        })
        .await
        .unwrap();
    let relay_addr = format!(
        "{}/p2p/{relay_id}",
        field(&listening, "addr").split("/p2p/").next().unwrap()
    );

    let mut node = Peerfind::start(
        "node",
        Peerfind::command(
            [
                "run",
                "--bootnode",
                &relay_addr,
                "--nat-window",
                "1s",
                "--autonat",
                "false",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
            ]
            .iter(),
        ),
    )
    .unwrap();
    let node_id = node.peer_id().await.unwrap();
    let api = node.api_addr().await.unwrap();
    node.until("a record with a tcp address", WAIT, |s| {
        s.record().has(&["tcp"]).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("no address learned from the {name} bootnode: {e:#}"));
    node.until("a relay slot on the bootnode", WAIT, |s| {
        s.bootnode(None)
            .is_some_and(|b| b.relay_reserved)
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("no reservation on the {name} relay: {e}"));

    let out = Peerfind::command(["status", "--json", "--api", &api.to_string()])
        .output()
        .await
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let boot = &status["bootnodes"][0];
    assert_eq!(boot["connected"], true, "{status}");
    let lacks = boot["lacks"].to_string();
    assert!(lacks.contains("not a peerfind node"), "{status}");
    assert!(!lacks.contains("circuit relay"), "it relays: {status}");

    // A peer of the relay's own implementation dials it through the relay's circuit.
    let seen = dialed_through(implementation, &relay_addr, &node_id).await;
    assert!(field(&seen, "agent").starts_with("peerfind/"), "{seen}");
    node.stop().await.unwrap();
}

#[tokio::test]
async fn interop_a_js_libp2p_relay_as_the_only_bootnode() {
    a_foreign_bootnode_serves_a_peerfind_node(Implementation::Js).await;
}

#[tokio::test]
async fn interop_a_rust_libp2p_relay_as_the_only_bootnode() {
    a_foreign_bootnode_serves_a_peerfind_node(Implementation::Rust).await;
}

/// Must-show 5: 100 peers from one IP hold reservations on a bootnode with default settings.
#[tokio::test]
async fn interop_a_hundred_peers_from_one_ip_hold_reservations_on_a_bootnode() {
    let (mut boot, bootnode) = local::bootnode().await.unwrap();
    let addr = bootnode.addrs.iter().find(|a| a.contains("/tcp/")).unwrap();
    let mut probe = Probe::start(
        "reservations",
        Implementation::Rust,
        ["reservations", addr, "--count", "100"],
    )
    .unwrap();
    let counted = probe
        .wait_for("reservations", PROBE_WAIT, |_| true)
        .await
        .unwrap();
    assert_eq!(counted["accepted"], 100, "{counted}");
    boot.stop().await.unwrap();
}
