//! The fourth diagram and what it leaves open, across real NATs: introductions, hole punches,
//! and the relayed fallback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use peerfind_proto::v1 as pb;
use peerfind_tests::cli::{self, Watcher, api_args};
use peerfind_tests::lab::{Host, Lab, NatMode, Placement, Topology};
use peerfind_tests::process::{Peerfind, strip_p2p};
use peerfind_tests::scenario::{
    self, WAIT, bootnode, listen, peer, peer_id, peer_watched, record_with,
};

/// A hole punch needs both NAT verdicts, a relay reservation, a circuit and DCUtR's attempts
/// (and a failed one its retry): allow more than the usual bound.
const PUNCH_WAIT: Duration = Duration::from_secs(90);

const EIM: Placement = Placement::BehindNat(NatMode::EndpointIndependent);

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Waits until `node` has flagged itself as NAT'd.
async fn flagged(node: &mut Peerfind) {
    node.until("the nat flag in the record", WAIT, |s| {
        s.record().nat.then_some(())
    })
    .await
    .expect("nat flag");
}

/// Fourth diagram: Charlie (public) sees the `nat` flag in Alice's record and asks the
/// bootnode to introduce him; Alice dials him, and Charlie ends with a direct connection
/// from her mapped address, which his `peerfind peers` shows. Alice dials no one on her own
/// (`--max-peers 0`), so her connection can only come from the introduction.
async fn introduction_makes_alice_dial_charlie(transport: &str) {
    let lab = Lab::up(Topology::new(EIM, Placement::Public)).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &[transport]).await.unwrap();
    let boot_id = peer_id(&mut boot).await.unwrap();
    let mut charlie_args = listen(transport);
    charlie_args.extend(api_args());
    let mut charlie = peer(&lab, Host::Charlie, &enr, &charlie_args).unwrap();
    // Charlie's events are watched from before Alice exists.
    let charlie_id = peer_id(&mut charlie).await.unwrap();
    let mut alice_args = listen(transport);
    alice_args.extend(args(&["--max-peers", "0"]));
    // Alice is watched from her start: the introduction she gets is in her events.
    let mut alice = peer_watched(&lab, Host::Alice, &boot, &enr, &alice_args)
        .await
        .unwrap();
    let alice_id = peer_id(&mut alice).await.unwrap();
    let record = record_with(&mut alice, transport).await.unwrap();
    let mapped = strip_p2p(record["multiaddrs"][0].as_str().unwrap()).to_owned();
    flagged(&mut alice).await;

    charlie
        .until("charlie asks the bootnode", WAIT, |s| {
            s.events
                .kinds()
                .any(|k| {
                    matches!(k, pb::event::Kind::IntroductionAsked(i)
                        if i.target == alice_id && i.via == boot_id)
                })
                .then_some(())
        })
        .await
        .expect("charlie asks the bootnode");
    boot.until("the bootnode forwards it", WAIT, |s| {
        s.events
            .kinds()
            .any(|k| {
                matches!(k, pb::event::Kind::IntroductionServed(i)
                    if i.requester == charlie_id && i.target == alice_id)
            })
            .then_some(())
    })
    .await
    .expect("the bootnode forwards it");
    alice
        .until("alice is introduced to charlie and dials him", WAIT, |s| {
            s.events
                .kinds()
                .any(|k| matches!(k, pb::event::Kind::Introduced(i) if i.peer_id == charlie_id))
                .then_some(())
        })
        .await
        .expect("alice dials charlie");
    charlie
        .until("charlie connected directly to alice", WAIT, |s| {
            s.direct_to(&alice_id).then_some(())
        })
        .await
        .expect("charlie has a direct connection with alice");
    let connected = charlie
        .until("a connection from alice", WAIT, |s| {
            s.events
                .connection_opened(&alice_id, pb::Direction::Inbound)
        })
        .await
        .expect("charlie has a direct connection from alice");
    assert_eq!(
        strip_p2p(&connected.remote_addr),
        mapped,
        "from her mapped address"
    );
    // And the bootnode told Charlie that the peer is dialing him.
    charlie
        .until("the bootnode's answer: dialing", WAIT, |s| {
            s.events
                .kinds()
                .any(|k| {
                    matches!(k, pb::event::Kind::IntroductionAnswered(a)
                        if a.outcome() == pb::IntroductionOutcome::Dialing)
                })
                .then_some(())
        })
        .await
        .unwrap();

    // What Charlie's API says: Alice NAT'd, and directly connected over the transport.
    let listed = cli::peer_entry(&lab, Host::Charlie, &alice_id)
        .await
        .unwrap();
    assert_eq!(listed["connection"], "direct", "{listed}");
    assert_eq!(listed["transport"], transport, "{listed}");
    assert_eq!(listed["nat"], true, "{listed}");
    let status = cli::json(&lab, Host::Charlie, &["status"]).await.unwrap();
    assert_eq!(status["nat"]["status"], "public", "{status}");
    assert!(
        status["counts"]["introductions_asked"].as_u64() >= Some(1),
        "{status}"
    );

    scenario::stop_all(&mut [&mut alice, &mut charlie, &mut boot]).await;
}

#[tokio::test]
async fn lab_an_introduction_makes_alice_dial_charlie_over_tcp() {
    introduction_makes_alice_dial_charlie("tcp").await;
}

#[tokio::test]
async fn lab_an_introduction_makes_alice_dial_charlie_over_quic() {
    introduction_makes_alice_dial_charlie("quic").await;
}

/// Alice and Bob, each with a watcher on its API.
struct Pair {
    alice: Peerfind,
    alice_id: String,
    alice_watch: Watcher,
    bob: Peerfind,
    bob_id: String,
    bob_watch: Watcher,
}

/// Starts Alice, waits for her `nat` flag, then starts Bob: Bob meets only a flagged Alice,
/// so nothing but the relay and the punch connects them (two early direct dials at once
/// could open both NATs by chance). Each gets a watcher on its API as soon as the API
/// listens; Bob's is subscribed while the bootnode is held still, since his verdict and his
/// punch follow within round trips of meeting it.
async fn alice_then_bob(
    lab: &Lab,
    boot: &Peerfind,
    enr: &str,
    transport: &str,
    extra: &[&str],
) -> Pair {
    let mut node_args = listen(transport);
    node_args.extend(api_args());
    node_args.extend(args(extra));
    let mut alice = peer(lab, Host::Alice, enr, &node_args).unwrap();
    let alice_id = peer_id(&mut alice).await.unwrap();
    alice.api_addr().await.unwrap();
    let alice_watch = Watcher::start(lab, Host::Alice).await.unwrap();
    flagged(&mut alice).await;
    // Bob may punch within a second of meeting the bootnode: it is held still until his
    // watcher is subscribed.
    boot.pause().unwrap();
    let mut bob = peer(lab, Host::Bob, enr, &node_args).unwrap();
    let bob_id = peer_id(&mut bob).await.unwrap();
    bob.api_addr().await.unwrap();
    let bob_watch = Watcher::start(lab, Host::Bob).await.unwrap();
    let counts = bob.state().await.unwrap().counts();
    boot.resume().unwrap();
    assert_eq!(
        counts.hole_punches_succeeded + counts.hole_punches_failed,
        0,
        "bob punched before his watcher was subscribed: {counts:?}"
    );
    Pair {
        alice,
        alice_id,
        alice_watch,
        bob,
        bob_id,
        bob_watch,
    }
}

impl Pair {
    /// Stops the watchers, Alice, Bob and `boot`.
    async fn stop(mut self, boot: &mut Peerfind) {
        self.alice_watch.stop().await;
        self.bob_watch.stop().await;
        scenario::stop_all(&mut [&mut self.alice, &mut self.bob, boot]).await;
    }
}

/// The first direct connection between `node` and `other` that opened, as `node`'s API
/// reports it.
async fn direct_connection_opened(node: &mut Peerfind, other: &str) -> pb::ConnectionOpened {
    node.until("a direct connection opened", WAIT, |s| {
        s.events
            .connections_opened_with(other)
            .into_iter()
            .find(|c| !c.relayed)
            .cloned()
    })
    .await
    .expect("a direct connection")
}

/// The first `hole_punch` event either watcher delivers about the other node.
async fn punch_event(pair: &mut Pair) -> serde_json::Value {
    let (alice_id, bob_id) = (pair.alice_id.clone(), pair.bob_id.clone());
    let about = |other: String| move |e: &serde_json::Value| e["peer_id"] == other.as_str();
    tokio::select! {
        e = pair.alice_watch.wait_for(&["hole_punch"], PUNCH_WAIT, about(bob_id)) => e.expect("alice's watcher"),
        e = pair.bob_watch.wait_for(&["hole_punch"], PUNCH_WAIT, about(alice_id)) => e.expect("bob's watcher"),
    }
}

/// How two NAT'd nodes came to be direct.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// A circuit through the bootnode's relay, then DCUtR: the way with the introduction's
    /// punch off (`--intro-punch false`), its fallback, and the way to foreign peers.
    RelayThenDcutr,
    /// The punch through the introduction (strategy rule 8): no circuit at all.
    Introduction,
}

/// Alice and Bob each behind an endpoint-independent NAT: a direct connection by a hole
/// punch (through the relay and DCUtR, or through the introduction), which their watchers
/// report and their `peerfind peers` shows.
async fn alice_and_bob_punch_a_hole(transport: &str, path: Path) {
    let lab = Lab::up(Topology::new(EIM, EIM)).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &[transport]).await.unwrap();
    let extra: &[&str] = match path {
        Path::RelayThenDcutr => &["--intro-punch", "false"],
        Path::Introduction => &[],
    };
    let mut pair = alice_then_bob(&lab, &boot, &enr, transport, extra).await;

    let punch = punch_event(&mut pair).await;
    assert_eq!(punch["succeeded"], true, "{punch}");
    // Bob's flagged record reaches Alice through the bootnode, maybe after the punch: her
    // watcher, subscribed before Bob started, sees it arrive. (Bob only ever knew Alice's
    // record flagged.)
    let bob_flagged =
        |e: &serde_json::Value| e["peer_id"] == pair.bob_id.as_str() && e["nat"] == true;
    pair.alice_watch
        .wait_for(&["record_learned", "record_updated"], WAIT, bob_flagged)
        .await
        .expect("alice learns bob's flag");
    for (node, other) in [
        (&mut pair.alice, pair.bob_id.clone()),
        (&mut pair.bob, pair.alice_id.clone()),
    ] {
        node.until("a direct connection between alice and bob", WAIT, |s| {
            s.direct_to(&other).then_some(())
        })
        .await
        .expect("direct between alice and bob");
    }
    // Both were watched from before they met: their first direct connection is in their
    // events.
    let a = direct_connection_opened(&mut pair.alice, &pair.bob_id).await;
    let b = direct_connection_opened(&mut pair.bob, &pair.alice_id).await;
    let nat_b = lab.public_ip(Host::Bob).to_string();
    let nat_a = lab.public_ip(Host::Alice).to_string();
    assert!(
        a.remote_addr.contains(&nat_b),
        "alice reaches bob at nat-b: {a:?}"
    );
    assert!(
        b.remote_addr.contains(&nat_a),
        "bob reaches alice at nat-a: {b:?}"
    );
    let (mut circuits, mut punched, mut asked) = (0, 0, 0);
    for (host, other) in [(Host::Alice, &pair.bob_id), (Host::Bob, &pair.alice_id)] {
        let listed = cli::peer_entry(&lab, host, other).await.unwrap();
        assert_eq!(listed["connection"], "direct", "{host}: {listed}");
        assert_eq!(listed["transport"], transport, "{host}: {listed}");
        assert_eq!(listed["nat"], true, "{host}: {listed}");
        let status = cli::json(&lab, host, &["status"]).await.unwrap();
        // The punched connection may reach one of them inbound: still no stranger's.
        assert_eq!(status["nat"]["status"], "private", "{host}: {status}");
        let counts = &status["counts"];
        circuits += counts["circuit_dials"].as_u64().unwrap();
        punched += counts["hole_punches_succeeded"].as_u64().unwrap();
        asked += counts["introductions_asked"].as_u64().unwrap();
    }
    match path {
        Path::RelayThenDcutr => assert!(circuits >= 1, "one of them dialed the circuit"),
        Path::Introduction => {
            assert_eq!(
                circuits, 0,
                "no circuit: the introduction carried the punch"
            );
            assert_eq!(asked, 1, "one of them asked for the introduction");
        }
    }
    assert!(punched >= 1, "and a punch succeeded");

    pair.stop(&mut boot).await;
}

#[tokio::test]
async fn lab_alice_and_bob_behind_nats_punch_a_hole_over_tcp() {
    alice_and_bob_punch_a_hole("tcp", Path::RelayThenDcutr).await;
}

#[tokio::test]
async fn lab_alice_and_bob_behind_nats_punch_a_hole_over_quic() {
    alice_and_bob_punch_a_hole("quic", Path::RelayThenDcutr).await;
}

#[tokio::test]
async fn lab_alice_and_bob_behind_nats_punch_through_the_introduction_over_tcp() {
    alice_and_bob_punch_a_hole("tcp", Path::Introduction).await;
}

#[tokio::test]
async fn lab_alice_and_bob_behind_nats_punch_through_the_introduction_over_quic() {
    alice_and_bob_punch_a_hole("quic", Path::Introduction).await;
}

/// Alice and Bob on one LAN behind one router that does not hairpin: their records name the
/// same public IP, which neither can reach the other at. The introduction carries the
/// asker's LAN address (the bootnode sees both at one IP), and they connect over the LAN, no
/// circuit dialed.
async fn peers_behind_one_nat_meet_over_their_lan(transport: &str) {
    let lab = Lab::up(Topology::shared_lan(NatMode::EndpointIndependent).with_hairpin(false))
        .expect("lab");
    let (mut boot, enr) = bootnode(&lab, &[transport]).await.unwrap();
    let mut pair = alice_then_bob(&lab, &boot, &enr, transport, &[]).await;
    let (alice_lan, bob_lan) = (
        lab.ip(Host::Alice).to_string(),
        lab.ip(Host::Bob).to_string(),
    );
    let a = direct_connection_opened(&mut pair.alice, &pair.bob_id).await;
    let b = direct_connection_opened(&mut pair.bob, &pair.alice_id).await;
    assert!(
        a.remote_addr.contains(&format!("/{bob_lan}/")),
        "alice reaches bob on the LAN: {a:?}"
    );
    assert!(
        b.remote_addr.contains(&format!("/{alice_lan}/")),
        "bob reaches alice on the LAN: {b:?}"
    );
    let mut circuits = 0;
    for host in [Host::Alice, Host::Bob] {
        let status = cli::json(&lab, host, &["status"]).await.unwrap();
        assert_eq!(status["nat"]["status"], "private", "{host}: {status}");
        circuits += status["counts"]["circuit_dials"].as_u64().unwrap();
    }
    assert_eq!(circuits, 0, "no circuit: they met over the LAN");
    pair.stop(&mut boot).await;
}

#[tokio::test]
async fn lab_peers_behind_one_nat_without_hairpinning_meet_over_their_lan_over_tcp() {
    peers_behind_one_nat_meet_over_their_lan("tcp").await;
}

#[tokio::test]
async fn lab_peers_behind_one_nat_without_hairpinning_meet_over_their_lan_over_quic() {
    peers_behind_one_nat_meet_over_their_lan("quic").await;
}

/// Alice behind a symmetric NAT, Bob behind an endpoint-independent one: no punch can work
/// (Alice's NAT picks a new port per destination), so the relayed connection stays, is
/// reported as relayed (logs, watchers, `peerfind peers`), and carries traffic both ways
/// (pings answered on both sides).
#[tokio::test]
async fn lab_behind_a_symmetric_nat_the_relayed_connection_holds() {
    let lab = Lab::up(Topology::new(Placement::BehindNat(NatMode::Symmetric), EIM)).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    let mut pair = alice_then_bob(&lab, &boot, &enr, "tcp", &[]).await;

    let punch = punch_event(&mut pair).await;
    assert_eq!(punch["succeeded"], false, "{punch}");
    assert!(punch["error"].is_string(), "{punch}");
    // A ping answered on the relayed connection, on each side.
    for (node, other) in [
        (&mut pair.alice, pair.bob_id.clone()),
        (&mut pair.bob, pair.alice_id.clone()),
    ] {
        node.until("a ping answered over the relayed connection", WAIT, |s| {
            s.events
                .alive_with(&other)
                .iter()
                .any(|a| a.relayed)
                .then_some(())
        })
        .await
        .expect("pings answered both ways");
    }

    // Nothing direct between them, ever (their APIs were watched from before Bob started),
    // and the relayed connection still open.
    for (node, other) in [
        (&mut pair.alice, pair.bob_id.clone()),
        (&mut pair.bob, pair.alice_id.clone()),
    ] {
        let state = node.state().await.unwrap();
        assert_eq!(state.events.missed(), 0);
        let changes = state.events.connection_changes_with(&other);
        assert!(
            changes
                .iter()
                .all(|c| c.connection() != pb::ConnectionState::Direct),
            "no direct connection: {changes:?}"
        );
        let now = state.peer(&other).map(pb::Peer::connection);
        assert_eq!(
            now,
            Some(pb::ConnectionState::Relayed),
            "a relayed connection is still open"
        );
    }
    for (host, other) in [(Host::Alice, &pair.bob_id), (Host::Bob, &pair.alice_id)] {
        let listed = cli::peer_entry(&lab, host, other).await.unwrap();
        assert_eq!(listed["connection"], "relayed", "{host}: {listed}");
        let status = cli::json(&lab, host, &["status"]).await.unwrap();
        let counts = &status["counts"];
        assert!(
            counts["relayed_connections"].as_u64() >= Some(1),
            "{host}: {status}"
        );
        assert_eq!(status["nat"]["status"], "private", "{host}: {status}");
    }

    pair.stop(&mut boot).await;
}
