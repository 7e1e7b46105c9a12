//! Reflection through gossip: a stranger makes up records naming a victim's `ip:port` (or
//! names the victim in its own record) and hands them to a bootnode or a peer, hoping that
//! they and every peer the bootnode gossips to dial the victim. Measured before the records
//! had to come with proof: 100 pushed records made a bootnode's 5 peers open 500 TCP
//! connections and send 3,500 QUIC datagrams to the victim within 5 s, 291 times the bytes the
//! attacker sent. Now the victim receives nothing, and every table holds only honest records.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use peerfind_tests::hostile::gossip::{Stranger, record_naming};
use peerfind_tests::hostile::victim::{VICTIM_IP, Victim};
use peerfind_tests::local::{Bootnode, WAIT, bootnode, peer};
use peerfind_tests::process::Peerfind;

/// Records a stranger makes up in one attack, as measured.
const RECORDS: usize = 100;

/// A bootnode with two honest peers joined, each holding the other's record.
struct Net {
    boot: Peerfind,
    boot_id: String,
    boot_addr: String,
    boot_tcp: String,
    alice: Peerfind,
    alice_id: String,
    bob: Peerfind,
    bob_id: String,
}

impl Net {
    async fn new() -> Self {
        let (mut boot, Bootnode { enr, addrs }) = bootnode().await.unwrap();
        let boot_tcp = addrs.iter().find(|a| a.contains("/tcp/")).unwrap().clone();
        let mut alice = peer("alice", &enr).unwrap();
        let mut bob = peer("bob", &enr).unwrap();
        let alice_id = alice.peer_id().await.unwrap();
        let bob_id = bob.peer_id().await.unwrap();
        for (node, other) in [(&mut alice, &bob_id), (&mut bob, &alice_id)] {
            node.until("the other honest peer's record", WAIT, |s| {
                s.holds_record_of(other).then_some(())
            })
            .await
            .unwrap();
        }
        let boot_id = boot.peer_id().await.unwrap();
        Self {
            boot,
            boot_id,
            boot_addr: enr,
            boot_tcp,
            alice,
            alice_id,
            bob,
            bob_id,
        }
    }

    /// A barrier after the attack: a new honest peer joins, and the others hear of its record
    /// through the bootnode, so whatever the bootnode would have gossiped before has been
    /// delivered (and dialed) by then.
    async fn carol_heard_of(&mut self) -> (Peerfind, String) {
        let mut carol = peer("carol", &self.boot_addr).unwrap();
        let carol_id = carol.peer_id().await.unwrap();
        for node in [&mut self.alice, &mut self.bob] {
            node.until("carol's record, gossiped after the attack", WAIT, |s| {
                s.holds_record_of(&carol_id).then_some(())
            })
            .await
            .unwrap();
        }
        (carol, carol_id)
    }

    /// Every record the bootnode and the honest peers hold is an honest node's.
    async fn assert_only_honest_records(&mut self, honest: &[&str]) {
        for node in [&mut self.boot, &mut self.alice, &mut self.bob] {
            let state = node.state().await.unwrap();
            let held: Vec<&str> = state
                .peers
                .iter()
                .filter(|p| p.has_record)
                .map(|p| p.peer_id.as_str())
                .collect();
            assert!(
                held.iter().all(|p| honest.contains(p)),
                "{} holds records of strangers: {held:?}",
                state.peer_id()
            );
        }
    }

    async fn rejected(node: &mut Peerfind, label: &str) -> u64 {
        let state = node.state().await.unwrap();
        state
            .counts()
            .inputs_rejected
            .get(label)
            .copied()
            .unwrap_or(0)
    }

    async fn stop(mut self, mut carol: Peerfind) {
        for node in [&mut self.alice, &mut self.bob, &mut carol, &mut self.boot] {
            node.stop().await.unwrap();
        }
    }
}

#[tokio::test]
async fn records_a_stranger_pushes_naming_a_victim_make_no_one_dial_it() {
    let mut net = Net::new().await;
    let victim = Victim::start().await.unwrap();
    let port = victim.addr().port();
    let records: Vec<_> = (0..RECORDS)
        .map(|_| record_naming(VICTIM_IP, port).unwrap())
        .collect();

    // To the bootnode, which would gossip them to its peers.
    let mut stranger = Stranger::new().unwrap();
    let boot_id = stranger.connect(&net.boot_tcp).await.unwrap();
    let taken_by_boot = stranger.push(boot_id, &records).await.unwrap();
    // And straight to a peer.
    let alice_tcp = {
        let state = net.alice.state().await.unwrap();
        let addr = state
            .status
            .listen_addrs
            .iter()
            // Her own listener, not the relay slot she may hold (also a TCP address).
            .find(|a| a.contains("/tcp/") && !a.contains("p2p-circuit"))
            .unwrap()
            .clone();
        format!("{addr}/p2p/{}", net.alice_id)
    };
    let mut stranger_2 = Stranger::new().unwrap();
    let alice_id = stranger_2.connect(&alice_tcp).await.unwrap();
    let taken_by_alice = stranger_2.push(alice_id, &records).await.unwrap();

    let (carol, carol_id) = net.carol_heard_of().await;

    assert_eq!(
        (victim.tcp_connections(), victim.udp_datagrams()),
        (0, 0),
        "the victim received {}",
        victim.summary()
    );
    assert_eq!(
        (taken_by_boot, taken_by_alice),
        (0, 0),
        "pushes acknowledged by the bootnode and by alice"
    );
    let honest = [
        net.boot_id.clone(),
        net.alice_id.clone(),
        net.bob_id.clone(),
        carol_id,
    ];
    let honest: Vec<&str> = honest.iter().map(String::as_str).collect();
    net.assert_only_honest_records(&honest).await;
    let pushes = RECORDS.div_ceil(32) as u64;
    assert_eq!(Net::rejected(&mut net.boot, "untrusted").await, pushes);
    assert_eq!(Net::rejected(&mut net.alice, "untrusted").await, pushes);
    net.stop(carol).await;
}

#[tokio::test]
async fn a_stranger_naming_a_victim_in_its_own_record_is_not_gossiped() {
    let mut net = Net::new().await;
    let victim = Victim::start().await.unwrap();
    let port = victim.addr().port();

    let mut stranger = Stranger::new().unwrap();
    let boot_id = stranger.connect(&net.boot_tcp).await.unwrap();
    let taken = stranger
        .announce_naming(boot_id, VICTIM_IP, port)
        .await
        .unwrap();

    let (carol, carol_id) = net.carol_heard_of().await;
    assert_eq!(
        (victim.tcp_connections(), victim.udp_datagrams()),
        (0, 0),
        "the victim received {}",
        victim.summary()
    );
    assert!(
        !taken,
        "the bootnode took a record its connection does not prove"
    );
    let honest = [
        net.boot_id.clone(),
        net.alice_id.clone(),
        net.bob_id.clone(),
        carol_id,
    ];
    let honest: Vec<&str> = honest.iter().map(String::as_str).collect();
    net.assert_only_honest_records(&honest).await;
    assert_eq!(Net::rejected(&mut net.boot, "unverified").await, 1);
    net.stop(carol).await;
}
