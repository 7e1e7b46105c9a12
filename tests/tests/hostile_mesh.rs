//! An intruder in the bootnodes' record mesh: a node that is no bootnode of the network dials
//! a bootnode of a two-bootnode mesh, subscribes to the mesh topic and publishes records it
//! made, hoping both bootnodes take them (and gossip them to their peers), and that the
//! bootnode takes it for another bootnode and hands it every record it holds.
//!
//! Measured before the mesh had members (the same two bootnodes, meshed with one-way
//! `--bootnode` and no secret): both bootnodes held the 3 records the intruder that signs its
//! messages published (gossipsub's strict validation refused the unsigned ones), both
//! bootnodes subscribed towards their intruder, which got 5 and 2 records over gossipsub and
//! 3 pushed over the ENR exchange, 2 of them each bootnode's table as it stood. Now only
//! members share the mesh: the configured bootnodes and those that prove the mesh secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use libp2p::PeerId;
use peerfind_tests::hostile::gossip::record_naming;
use peerfind_tests::hostile::mesh::{Intruder, Seen, Signing};
use peerfind_tests::local::{self, Bootnode, MeshSecret, WAIT};
use peerfind_tests::process::Peerfind;

/// Records each intruder makes up and publishes.
const RECORDS: usize = 3;

/// A node and its PeerId.
struct Node {
    node: Peerfind,
    id: String,
}

impl Node {
    async fn of(mut node: Peerfind) -> Self {
        let id = node.peer_id().await.unwrap();
        Self { node, id }
    }

    async fn wait_for_record_of(&mut self, peer: &str) {
        let what = format!("{} holds a record with an address of {peer}", self.id);
        self.node
            .until(&what, WAIT, |s| {
                s.peer(peer)
                    .filter(|p| p.has_record && !p.addrs.is_empty())
                    .map(|_| ())
            })
            .await
            .unwrap();
    }

    /// The records it holds: owner and seq.
    async fn table(&mut self) -> HashMap<PeerId, u64> {
        let state = self.node.state().await.unwrap();
        state
            .peers
            .iter()
            .filter(|p| p.has_record)
            .map(|p| (p.peer_id.parse().unwrap(), p.seq))
            .collect()
    }

    /// Waits until the node counts at least one rejected input `label`; returns the count.
    async fn counted(&mut self, label: &str) -> u64 {
        let what = format!("{} counts {label}", self.id);
        self.node
            .until_polled(&what, WAIT, |s| {
                s.counts()
                    .inputs_rejected
                    .get(label)
                    .copied()
                    .filter(|n| *n > 0)
            })
            .await
            .unwrap()
    }

    async fn tcp_addr(&mut self) -> String {
        let state = self.node.state().await.unwrap();
        let addr = state
            .status
            .listen_addrs
            .iter()
            .find(|a| a.contains("/tcp/"))
            .unwrap()
            .clone();
        format!("{addr}/p2p/{}", self.id)
    }
}

/// Two bootnodes meshed as an operator meshes them (the second told of the first, both
/// holding the mesh secret), each with an honest peer whose record the other bootnode got
/// over the mesh.
struct Mesh {
    b1: Node,
    b2: Node,
    alice: Node,
    bob: Node,
    boot1: Bootnode,
    _secret: MeshSecret,
}

impl Mesh {
    async fn new() -> Self {
        let secret = MeshSecret::new().unwrap();
        let (b1, boot1) = local::bootnode_in_mesh("bootnode", &secret, &[])
            .await
            .unwrap();
        let (b2, boot2) = local::bootnode_in_mesh("bootnode-2", &secret, &[&boot1])
            .await
            .unwrap();
        let (mut b1, mut b2) = (Node::of(b1).await, Node::of(b2).await);
        let alice = Node::of(local::peer("alice", &boot1.enr).unwrap()).await;
        let bob = Node::of(local::peer("bob", &boot2.enr).unwrap()).await;
        b1.wait_for_record_of(&bob.id).await;
        b2.wait_for_record_of(&alice.id).await;
        Self {
            b1,
            b2,
            alice,
            bob,
            boot1,
            _secret: secret,
        }
    }

    /// Stops `others`, then the mesh.
    async fn stop(self, others: Vec<Node>) {
        let Self {
            b1, b2, alice, bob, ..
        } = self;
        for mut n in others.into_iter().chain([alice, bob, b2, b1]) {
            n.node.stop().await.unwrap();
        }
    }
}

/// Records of `table` (owner, seq as the bootnode held them before the intruder came) that
/// were pushed to the intruder: a bootnode's table handed over, not a record it learned after
/// (which every peer of a bootnode is told of).
fn handed_over(seen: &Seen, table: &HashMap<PeerId, u64>) -> usize {
    seen.pushed
        .iter()
        .filter(|(peer, seq)| table.get(peer) == Some(seq))
        .count()
}

#[tokio::test]
async fn an_intruder_in_the_mesh_topic_plants_no_record_and_gets_none() {
    let mut mesh = Mesh::new().await;
    let tables = (mesh.b1.table().await, mesh.b2.table().await);

    // One intruder at each bootnode, one publishing unsigned, the other signed: whatever a
    // bootnode takes, one of them speaks it.
    let mut planted = Vec::new();
    let mut intruders = Vec::new();
    for (target, signing) in [(1, Signing::Anonymous), (2, Signing::Signed)] {
        let records: Vec<_> = (0..RECORDS)
            .map(|_| record_naming(std::net::Ipv4Addr::LOCALHOST, 9).unwrap())
            .collect();
        planted.extend(
            records
                .iter()
                .map(|r| peerfind_behaviours::enr_ext::peer_id(r).unwrap()),
        );
        let addr = match target {
            1 => mesh.b1.tcp_addr().await,
            _ => mesh.b2.tcp_addr().await,
        };
        let (intruder, attack) = Intruder::attack(&addr, signing, records).await.unwrap();
        println!("intruder at bootnode-{target} ({signing:?}): {attack:?}");
        intruders.push(intruder);
    }

    // A barrier: an honest peer joins the first bootnode after the attack and the second one
    // hears of it over the mesh, so whatever the mesh carried before has arrived by then.
    let carol = Node::of(local::peer("carol", &mesh.boot1.enr).unwrap()).await;
    mesh.b2.wait_for_record_of(&carol.id).await;

    let seen: Vec<Seen> = intruders.iter().map(Intruder::seen).collect();
    let handed = (
        handed_over(&seen[0], &tables.0),
        handed_over(&seen[1], &tables.1),
    );
    let mut held_planted = Vec::new();
    for (name, node) in [("bootnode-1", &mut mesh.b1), ("bootnode-2", &mut mesh.b2)] {
        let table = node.table().await;
        let n = planted.iter().filter(|p| table.contains_key(p)).count();
        held_planted.push(n);
        println!("{name} holds {n} of the {} planted records", planted.len());
    }
    for (i, s) in seen.iter().enumerate() {
        println!(
            "intruder {}: subscribed to by the bootnode: {}, gossipsub deliveries: {}, records pushed: {}",
            i + 1,
            s.subscribed,
            s.delivered,
            s.pushed.len()
        );
    }
    println!("tables handed over: {handed:?}");

    assert_eq!(
        held_planted,
        [0, 0],
        "planted records in the bootnodes' tables"
    );
    assert!(
        seen.iter().all(|s| !s.subscribed && s.delivered == 0),
        "the mesh took an intruder in: {seen:?}"
    );
    assert_eq!(handed, (0, 0), "bootnodes handed their tables to intruders");
    // What each bootnode saw of its intruder: a gossipsub stream, held unread, then dropped
    // (the gate's rule 5); no message ever reached the mesh's own check (mesh rule 8).
    for node in [&mut mesh.b1, &mut mesh.b2] {
        let dropped = node.counted("mesh_unadmitted").await;
        let counts = node.node.state().await.unwrap().counts().inputs_rejected;
        println!("{}: mesh_unadmitted {dropped}, all: {counts:?}", node.id);
        assert_eq!(counts.get("mesh_not_member"), None);
    }
    drop(intruders);
    mesh.stop(vec![carol]).await;
}

#[tokio::test]
async fn a_bootnode_with_another_secret_is_refused_and_told_why() {
    let mut mesh = Mesh::new().await;
    // A third bootnode, told of the first, holding a secret of its own.
    let other = MeshSecret::new().unwrap();
    let (b3, _) = local::bootnode_in_mesh("bootnode-3", &other, &[&mesh.boot1])
        .await
        .unwrap();
    let mut b3 = Node::of(b3).await;

    // The first bootnode refuses the third's proof, and drops its gossipsub stream unread.
    mesh.b1.counted("mesh_proof_refused").await;
    mesh.b1.counted("mesh_unadmitted").await;
    // The third one's operator is told why (and the third refuses the first's proof too).
    b3.counted("mesh_proof_refused").await;
    let message = "bootnode refused our mesh proof: it holds another mesh secret; it shares its \
                   record mesh with us only if it is configured with us";
    let refused = b3
        .node
        .wait_for(message, WAIT, |l| l["peer"] == mesh.b1.id.as_str())
        .await;
    assert!(refused.is_ok(), "{refused:?}");
    mesh.stop(vec![b3]).await;
}
