//! The root `compose.yaml`, run as a user runs it with the pinned `podman-compose`: the design
//! note's topology on the engine's bridge networks, with the NAT routers of the compose file.
//! Every assertion on a node reads its own API through `peerfind status|peers|probe` run inside
//! its container (`podman exec`), never its log. One test: the scenarios (both routers
//! endpoint-independent with every node on TCP, then on QUIC, then Bob's router symmetric) use
//! the same addresses, so they run one after the other; each is brought down with `down -v`,
//! which must leave nothing of the project.
//!
//! Needs root, podman, the base images and the `podman-compose` virtualenv the test command
//! makes. Prints how long bring-up and each outcome took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::Value;

use peerfind_tests::container::compose::Project;
use peerfind_tests::container::{self, Container};

/// The test's own project name: a user's `peerfind` project is left alone.
const PROJECT: &str = "peerfind-test";

/// Bring-up: eight containers start, peers fetch the bootnode's record, every node gets its
/// address; seconds of work each on a loaded 2-core machine.
const UP_WAIT: Duration = Duration::from_secs(120);

/// A hole punch needs both NAT verdicts, a relay reservation, a circuit and DCUtR's attempts.
const PUNCH_WAIT: Duration = Duration::from_secs(120);

/// Anything else: one exchange or a restart.
const WAIT: Duration = Duration::from_secs(60);

/// The services that run a node.
const NODES: [&str; 4] = ["bootnode", "charlie", "alice", "bob"];

/// Seconds since `from`, for the report.
fn secs(from: Instant) -> f64 {
    from.elapsed().as_secs_f64()
}

/// The nodes' containers once each is ready (`peerfind probe --ready`: a bootnode connected
/// and an address in the record; for the bootnode, its addresses).
async fn ready(project: &Project) -> Vec<Container> {
    ready_of(project, &NODES).await
}

/// [`ready`] for `services` only.
async fn ready_of(project: &Project, services: &[&str]) -> Vec<Container> {
    let mut nodes = Vec::new();
    for service in services.iter().copied() {
        let node = project.service(service).await.unwrap();
        node.wait_for("readiness", UP_WAIT, || node.probe(true))
            .await
            .unwrap();
        nodes.push(node);
    }
    nodes
}

/// The node's PeerId, from its status.
async fn peer_id(node: &Container) -> String {
    let status = node.status().await.unwrap();
    status["peer_id"].as_str().unwrap().to_owned()
}

/// Waits until `node` lists `other` with `connection` ("direct" or "relayed"); the entry.
async fn connected(node: &Container, other: &str, connection: &str, within: Duration) -> Value {
    node.wait_for(&format!("{connection} connection"), within, || async {
        Ok(match node.peer(other).await? {
            Some(e) if e["connection"] == connection => Ok(e),
            other => Err(format!("{other:?}")),
        })
    })
    .await
    .unwrap()
}

fn count(status: &Value, name: &str) -> u64 {
    status["counts"][name].as_u64().unwrap_or_default()
}

/// What `LISTEN` (every node's listen address) is for `transport`.
fn listen(transport: &str) -> &'static str {
    match transport {
        "tcp" => "/ip4/0.0.0.0/tcp/9000",
        _ => "/ip4/0.0.0.0/udp/9000/quic-v1",
    }
}

/// Both routers endpoint-independent, every node on `transport`: Charlie (public) reaches the
/// flagged Alice directly, and Bob reaches her directly through the hole punch; with
/// `restart`, a restarted Alice then keeps her PeerId.
async fn both_eim(project: &Project, transport: &str, restart: bool) {
    let started = Instant::now();
    let env = [
        ("ALICE_NAT", "eim"),
        ("BOB_NAT", "eim"),
        ("LISTEN", listen(transport)),
    ];
    project.up(&env).await.unwrap();
    let nodes = ready(project).await;
    let [_boot, charlie, alice, bob] = nodes.as_slice() else {
        unreachable!()
    };
    let scenario = format!("eim {transport}");
    println!(
        "compose {scenario}: bring-up (every node ready) {:.1} s",
        secs(started)
    );

    let alice_id = peer_id(alice).await;
    let at_charlie = connected(charlie, &alice_id, "direct", WAIT).await;
    assert_eq!(
        at_charlie["nat"], true,
        "Alice's record is flagged: {at_charlie}"
    );
    assert_eq!(at_charlie["transport"], transport, "{at_charlie}");
    let status = alice.status().await.unwrap();
    assert_eq!(status["nat"]["status"], "private", "{status}");
    println!(
        "compose {scenario}: Charlie direct to Alice after {:.1} s",
        secs(started)
    );

    let at_bob = connected(bob, &alice_id, "direct", PUNCH_WAIT).await;
    assert_eq!(at_bob["transport"], transport, "{at_bob}");
    println!(
        "compose {scenario}: Bob direct to Alice after {:.1} s",
        secs(started)
    );
    let mut punched = 0;
    for node in [alice, bob] {
        let status = node.status().await.unwrap();
        assert_eq!(status["nat"]["status"], "private", "{status}");
        punched += count(&status, "hole_punches_succeeded");
    }
    assert!(punched >= 1, "a hole punch connected Alice and Bob");
    if !restart {
        return;
    }

    // A restart keeps the node's data volume, hence its key and PeerId.
    let before = alice.record().await.unwrap();
    let restarted = Instant::now();
    project.compose(&["restart", "alice"], &env).await.unwrap();
    let after = alice
        .wait_for("record after the restart", WAIT, || async {
            let record = alice.record().await?;
            Ok(if record["seq"].as_u64() > before["seq"].as_u64() {
                Ok(record)
            } else {
                Err(record.to_string())
            })
        })
        .await
        .unwrap();
    assert_eq!(after["peer_id"], before["peer_id"], "same identity");
    alice
        .wait_for("readiness after the restart", WAIT, || alice.probe(true))
        .await
        .unwrap();
    println!(
        "compose {scenario}: Alice restarted with the same PeerId, ready after {:.1} s",
        secs(restarted)
    );
}

/// Bob's router symmetric: no punch can work, and Alice and Bob stay relayed. Charlie is
/// left out: a punch between him (public) and either of them succeeds, and would blur their
/// counts, which here must be about Alice and Bob alone.
async fn bob_symmetric(project: &Project) {
    let started = Instant::now();
    project
        .up_only(
            &[("ALICE_NAT", "eim"), ("BOB_NAT", "symmetric")],
            &["bootnode", "alice", "bob"],
        )
        .await
        .unwrap();
    let nodes = ready_of(project, &["bootnode", "alice", "bob"]).await;
    let [_boot, alice, bob] = nodes.as_slice() else {
        unreachable!()
    };
    println!(
        "compose symmetric: bring-up (every node ready) {:.1} s",
        secs(started)
    );
    let (alice_id, bob_id) = (peer_id(alice).await, peer_id(bob).await);
    connected(bob, &alice_id, "relayed", PUNCH_WAIT).await;
    connected(alice, &bob_id, "relayed", WAIT).await;
    println!(
        "compose symmetric: Bob relayed to Alice after {:.1} s",
        secs(started)
    );
    // The punch is tried and fails; the relayed connection outlives it.
    bob.wait_for("failed hole punch", PUNCH_WAIT, || async {
        let mut failed = 0;
        for node in [alice, bob] {
            failed += count(&node.status().await?, "hole_punches_failed");
        }
        Ok(if failed >= 1 {
            Ok(())
        } else {
            Err("none yet".into())
        })
    })
    .await
    .unwrap();
    for (node, other) in [(alice, &bob_id), (bob, &alice_id)] {
        let entry = node.peer(other).await.unwrap().expect("still known");
        assert_eq!(entry["connection"], "relayed", "{entry}");
        let status = node.status().await.unwrap();
        assert_eq!(count(&status, "hole_punches_succeeded"), 0, "{status}");
    }
    println!(
        "compose symmetric: a punch failed, still relayed after {:.1} s",
        secs(started)
    );
}

/// `down -v`, timed; nothing of the project may remain.
async fn down(project: &Project, scenario: &str) {
    let started = Instant::now();
    project.down().await.unwrap();
    assert_eq!(project.leftovers().await.unwrap(), Vec::<String>::new());
    println!(
        "compose {scenario}: down -v {:.1} s, nothing left",
        secs(started)
    );
}

#[tokio::test]
async fn lab_compose_runs_the_design_notes_topology_and_down_leaves_nothing() {
    let image = container::image().expect("the image builds from the root Dockerfile");
    let router = container::router_image().expect("the router image builds");
    let started = Instant::now();
    let project = Project::new(PROJECT, &image.image, &router).await.unwrap();
    both_eim(&project, "tcp", true).await;
    down(&project, "eim tcp").await;
    both_eim(&project, "quic", false).await;
    down(&project, "eim quic").await;
    bob_symmetric(&project).await;
    down(&project, "symmetric").await;
    println!(
        "compose: every scenario in {:.1} s (images built before)",
        secs(started)
    );
}
