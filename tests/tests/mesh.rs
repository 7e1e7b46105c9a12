//! Many bootnodes on loopback, with the real binary: bootnodes share every record over their
//! gossipsub mesh, so peers joined to different bootnodes find and reach each other, and
//! losing a bootnode loses no record. Everything is read through the nodes' status API.
//!
//! The bootnodes mesh as operators start them: each new one is told (`--bootnode`) of some
//! that run already, none is told of those that come later, and all hold the network's mesh
//! secret (`--mesh-secret-file`), which is what admits a bootnode the others were not told of.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use peerfind_proto::v1 as pb;
use peerfind_tests::local::{self, Bootnode, LISTEN, MeshSecret, WAIT};
use peerfind_tests::process::Peerfind;

/// A node and its PeerId.
struct Api {
    node: Peerfind,
    peer_id: String,
}

impl Api {
    async fn of(mut node: Peerfind) -> Self {
        let peer_id = node.peer_id().await.unwrap();
        Self { node, peer_id }
    }

    /// The record this node holds of `peer`, if any.
    async fn record_of(&mut self, peer: &str) -> Option<pb::Peer> {
        let state = self.node.state().await.unwrap();
        state.peer(peer).filter(|p| p.has_record).cloned()
    }

    /// Waits until this node holds a record of `peer` that `check` accepts, checking again
    /// on each of its events; fails after [`WAIT`] with what it holds.
    async fn wait_for_record(&mut self, peer: &str, check: impl Fn(&pb::Peer) -> bool) -> pb::Peer {
        let what = format!("{} holds a fitting record of {peer}", self.peer_id);
        self.node
            .until(&what, WAIT, |s| {
                s.peer(peer).filter(|p| p.has_record && check(p)).cloned()
            })
            .await
            .unwrap()
    }
}

/// A bootnode of the mesh of `secret`, joined to the bootnodes `others` (their records), with
/// room for a crowd of simulated peers on loopback ([`local::CROWD`]).
async fn bootnode_joined_to(
    name: &str,
    secret: &MeshSecret,
    others: &[&Bootnode],
) -> (Peerfind, Bootnode) {
    let mut args: Vec<String> = ["bootnode"]
        .iter()
        .chain(&LISTEN)
        .chain(&local::CROWD)
        .map(|s| (*s).to_owned())
        .collect();
    args.extend(secret.args());
    for other in others {
        args.push("--bootnode".into());
        args.push(other.enr.clone());
    }
    local::bootnode_named(name, args).await.unwrap()
}

fn connected_directly(peer: &pb::Peer) -> bool {
    peer.connection == pb::ConnectionState::Direct as i32
}

#[tokio::test]
async fn peers_joined_to_different_bootnodes_find_and_reach_each_other() {
    let secret = MeshSecret::new().unwrap();
    let (b1, boot1) = bootnode_joined_to("bootnode", &secret, &[]).await;
    let (b2, boot2) = bootnode_joined_to("bootnode-2", &secret, &[&boot1]).await;
    let mut b1 = Api::of(b1).await;
    let mut b2 = Api::of(b2).await;

    let mut alice = Api::of(local::peer("alice", &boot1.enr).unwrap()).await;
    let mut charlie = Api::of(local::peer("charlie", &boot2.enr).unwrap()).await;

    // Each bootnode learns the other's peer over the mesh, with its address.
    b2.wait_for_record(&alice.peer_id, |p| !p.addrs.is_empty())
        .await;
    b1.wait_for_record(&charlie.peer_id, |p| !p.addrs.is_empty())
        .await;
    // And each peer reaches the other directly, though they share no bootnode.
    let charlie_id = charlie.peer_id.clone();
    let alice_id = alice.peer_id.clone();
    alice.wait_for_record(&charlie_id, connected_directly).await;
    charlie.wait_for_record(&alice_id, connected_directly).await;

    for api in [&mut alice, &mut charlie, &mut b2, &mut b1] {
        api.node.stop().await.unwrap();
    }
}

#[tokio::test]
async fn losing_a_bootnode_loses_no_record() {
    let secret = MeshSecret::new().unwrap();
    let (b1, boot1) = bootnode_joined_to("bootnode", &secret, &[]).await;
    let (b2, boot2) = bootnode_joined_to("bootnode-2", &secret, &[&boot1]).await;
    let (b3, _) = bootnode_joined_to("bootnode-3", &secret, &[&boot1, &boot2]).await;
    let mut b1 = Api::of(b1).await;
    let mut b2 = Api::of(b2).await;
    let mut b3 = Api::of(b3).await;

    // Alice and Bob know only the first bootnode.
    let mut alice = Api::of(local::peer("alice", &boot1.enr).unwrap()).await;
    let mut bob = Api::of(local::peer("bob", &boot1.enr).unwrap()).await;
    let alice_record = b1
        .wait_for_record(&alice.peer_id, |p| !p.addrs.is_empty())
        .await;
    let bob_record = b1
        .wait_for_record(&bob.peer_id, |p| !p.addrs.is_empty())
        .await;
    for other in [&mut b2, &mut b3] {
        other
            .wait_for_record(&alice.peer_id, |p| p.seq >= alice_record.seq)
            .await;
        other
            .wait_for_record(&bob.peer_id, |p| p.seq >= bob_record.seq)
            .await;
    }

    // The first bootnode dies without a word.
    b1.node.kill().await.unwrap();

    // The others still hold both records, at the seq the first one last held.
    for other in [&mut b2, &mut b3] {
        let a = other
            .record_of(&alice.peer_id)
            .await
            .expect("alice's record kept");
        assert!(a.seq >= alice_record.seq && !a.addrs.is_empty());
        let b = other
            .record_of(&bob.peer_id)
            .await
            .expect("bob's record kept");
        assert!(b.seq >= bob_record.seq && !b.addrs.is_empty());
    }
    // And a newcomer joined to a surviving bootnode gets them from it.
    let mut newcomer = Api::of(local::peer("newcomer", &boot2.enr).unwrap()).await;
    newcomer
        .wait_for_record(&alice.peer_id, |p| !p.addrs.is_empty())
        .await;
    newcomer
        .wait_for_record(&bob.peer_id, |p| !p.addrs.is_empty())
        .await;

    for api in [&mut newcomer, &mut alice, &mut bob, &mut b3, &mut b2] {
        api.node.stop().await.unwrap();
    }
}

/// Waits, event by event, until `api` holds a record with an address of every peer in
/// `peers`; fails after `wait` with what it holds.
async fn wait_for_all(api: &mut Api, peers: &[String], wait: std::time::Duration) {
    let what = format!(
        "{} holds a record with an address of each of {} peers",
        api.peer_id,
        peers.len()
    );
    api.node
        .until(&what, wait, |s| {
            peers
                .iter()
                .all(|p| {
                    s.peer(p)
                        .is_some_and(|h| h.has_record && !h.addrs.is_empty())
                })
                .then_some(())
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootnode_that_joins_late_gets_every_record_published_before() {
    use std::sync::Arc;

    use libp2p::identity;
    use libp2p::multiaddr::Protocol;
    use peerfind_tests::sim::{Order, World, simulated_peer};
    use tokio::sync::{broadcast, mpsc};

    // More peers than one answer to a record request carries (32): only the mesh's own sync
    // brings them all.
    const CROWD: usize = 80;
    let secret = MeshSecret::new().unwrap();
    let (b1, boot1) = bootnode_joined_to("bootnode", &secret, &[]).await;
    let mut b1 = Api::of(b1).await;
    let tcp: libp2p::Multiaddr = boot1
        .addrs
        .iter()
        .find(|a| a.contains("/tcp/"))
        .unwrap()
        .parse()
        .unwrap();
    let Some(Protocol::P2p(boot_id)) = tcp.iter().last() else {
        panic!("no /p2p/ in {tcp}")
    };
    let (orders, _) = broadcast::channel(4);
    let (reports, _reported) = mpsc::channel(CROWD * 2);
    let world = World {
        bootnodes: vec![(tcp, boot_id)],
        orders: orders.clone(),
        reports,
        node_ids: Arc::new(Vec::new()),
        sim_table: 16,
    };
    let mut crowd = Vec::new();
    for index in 0..CROWD {
        let key = identity::secp256k1::Keypair::generate();
        crowd.push(
            identity::PublicKey::from(key.public().clone())
                .to_peer_id()
                .to_string(),
        );
        tokio::spawn(simulated_peer(index, key, world.clone()));
    }
    // The first bootnode, alone in its mesh, holds them all: their publications reached
    // nobody.
    wait_for_all(&mut b1, &crowd, std::time::Duration::from_secs(120)).await;

    // A second bootnode joins; it gets every record, each with its address.
    let (b2, _) = bootnode_joined_to("bootnode-2", &secret, &[&boot1]).await;
    let mut b2 = Api::of(b2).await;
    wait_for_all(&mut b2, &crowd, WAIT).await;

    let _ = orders.send(Order::Stop);
    for api in [&mut b2, &mut b1] {
        api.node.stop().await.unwrap();
    }
}
