//! Table flood: an attacker announces the records of thousands of fresh keys, each on its own
//! connection from one of its address blocks (here sixteen /24s of loopback, half the flood
//! from one of them), hoping to push every honest record out of a bootnode's table and out of
//! the tables of the peers the bootnode gossips them to.
//!
//! The tables are small (`--table-size 256`) so that the flood is many times a table in a few
//! seconds. Measured before the table had per-group caps: 3,000 records taken by the bootnode,
//! which evicted all 6 honest records (the two peers' at the bootnode, the bootnode's and the
//! other peer's at each peer). Now every honest record stays.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Instant;

use futures::StreamExt;
use libp2p::Multiaddr;
use peerfind_behaviours::enr_ext::Enr;
use peerfind_tests::hostile::table::{Naming, announce};
use peerfind_tests::local::{self, LISTEN, WAIT};
use peerfind_tests::process::Peerfind;

/// Fresh keys the attacker announces, as in the report.
const FLOOD: usize = 3_000;

/// The attacker's address blocks: 127.0.1.0/24 to 127.0.16.0/24, none the honest nodes' own
/// (127.0.0.0/24). Half the flood comes from the first, the rest from the other fifteen.
const BLOCKS: usize = 16;

/// Announcements under way at once.
const AT_ONCE: usize = 32;

/// `--table-size` of every node: the flood is about twelve tables.
const TABLE_SIZE: &str = "256";

/// The default `--table-per-group`.
const PER_GROUP: usize = peerfind_behaviours::table::DEFAULT_MAX_PER_GROUP;

/// A bootnode with two honest peers joined, connected to each other, each holding the
/// other's record and the bootnode's.
struct Net {
    boot: Peerfind,
    boot_id: String,
    boot_enr: String,
    boot_tcp: Multiaddr,
    alice: Peerfind,
    alice_id: String,
    bob: Peerfind,
    bob_id: String,
}

impl Net {
    async fn new() -> Self {
        let args = ["bootnode", "--table-size", TABLE_SIZE]
            .into_iter()
            .chain(LISTEN);
        let (mut boot, ready) = local::bootnode_named("bootnode", args).await.unwrap();
        let boot_tcp = ready
            .addrs
            .iter()
            .find(|a| a.contains("/tcp/"))
            .unwrap()
            .parse()
            .unwrap();
        let boot_id = boot.peer_id().await.unwrap();
        let mut alice = peer("alice", &ready.enr);
        let mut bob = peer("bob", &ready.enr);
        let alice_id = alice.peer_id().await.unwrap();
        let bob_id = bob.peer_id().await.unwrap();
        for (node, other) in [(&mut alice, &bob_id), (&mut bob, &alice_id)] {
            node.until(
                "the other honest peer's record and a connection to it",
                WAIT,
                |s| {
                    (s.holds_record_of(other) && s.holds_record_of(&boot_id) && s.direct_to(other))
                        .then_some(())
                },
            )
            .await
            .unwrap();
        }
        Self {
            boot,
            boot_id,
            boot_enr: ready.enr,
            boot_tcp,
            alice,
            alice_id,
            bob,
            bob_id,
        }
    }

    /// A barrier after the flood: a new honest peer joins, and the others hear of its record
    /// through the bootnode, whose pushes to each peer go in order: whatever it would have
    /// passed on of the flood has been delivered by then.
    async fn carol_heard_of(&mut self) -> (Peerfind, String) {
        let mut carol = peer("carol", &self.boot_enr);
        let carol_id = carol.peer_id().await.unwrap();
        for node in [&mut self.boot, &mut self.alice, &mut self.bob] {
            node.until("carol's record, gossiped after the flood", WAIT, |s| {
                s.holds_record_of(&carol_id).then_some(())
            })
            .await
            .unwrap();
        }
        (carol, carol_id)
    }

    async fn stop(mut self, mut carol: Peerfind) {
        for node in [&mut self.alice, &mut self.bob, &mut carol, &mut self.boot] {
            node.stop().await.unwrap();
        }
    }
}

fn peer(name: &str, boot_enr: &str) -> Peerfind {
    let args = ["run", "--bootnode", boot_enr, "--table-size", TABLE_SIZE]
        .into_iter()
        .chain(LISTEN);
    Peerfind::start(name, Peerfind::command(args)).unwrap()
}

/// The attacker's `i`th connection: every other one from its first block (which hits the
/// group cap), the rest spread over the others (which fill the table); a different address of
/// the block each time.
fn source(i: usize) -> Ipv4Addr {
    let block = if i.is_multiple_of(2) {
        1
    } else {
        2 + (i / 2) % (BLOCKS - 1)
    };
    let host = 1 + (i / BLOCKS) % 250;
    Ipv4Addr::new(127, 0, block as u8, host as u8)
}

/// What one node holds: how many records, which of `honest` are missing, the records per
/// /24 their IPs name (records without an IP under "none"), and its `group_full` count.
struct Held {
    records: usize,
    missing: Vec<String>,
    per_block: BTreeMap<String, usize>,
    group_full: u64,
}

async fn held(node: &mut Peerfind, honest: &[&str]) -> Held {
    let state = node.state().await.unwrap();
    let own = state.peer_id().to_owned();
    let with_record: Vec<_> = state.peers.iter().filter(|p| p.has_record).collect();
    let missing = honest
        .iter()
        .filter(|h| **h != own && !with_record.iter().any(|p| p.peer_id == **h))
        .map(|h| (*h).to_owned())
        .collect();
    let mut per_block = BTreeMap::new();
    for p in &with_record {
        let enr: Enr = p.enr.parse().unwrap();
        let block = enr.ip4().map_or("none".to_owned(), |ip| {
            let [a, b, c, _] = ip.octets();
            format!("{a}.{b}.{c}.0/24")
        });
        *per_block.entry(block).or_default() += 1;
    }
    let group_full = state
        .counts()
        .inputs_rejected
        .get("group_full")
        .copied()
        .unwrap_or(0);
    Held {
        records: with_record.len(),
        missing,
        per_block,
        group_full,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_fresh_keys_evicts_no_honest_record_from_a_bootnode_or_its_peers() {
    let mut net = Net::new().await;

    let started = Instant::now();
    let boot_tcp = net.boot_tcp.clone();
    let answers: Vec<anyhow::Result<bool>> = futures::stream::iter(0..FLOOD)
        .map(|i| {
            // Each block announces records naming its address and records naming none.
            let naming = if (i / 2).is_multiple_of(2) {
                Naming::SourceIp
            } else {
                Naming::NoIp
            };
            let boot_tcp = boot_tcp.clone();
            async move { announce(&boot_tcp, source(i), naming).await }
        })
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    let flood_secs = started.elapsed().as_secs_f64();
    let failed: Vec<String> = answers
        .iter()
        .filter_map(|a| a.as_ref().err().map(|e| format!("{e:#}")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {FLOOD} announcements failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    let taken = answers.iter().filter(|a| matches!(a, Ok(true))).count();

    let (carol, carol_id) = net.carol_heard_of().await;
    let honest = [
        net.boot_id.clone(),
        net.alice_id.clone(),
        net.bob_id.clone(),
        carol_id,
    ];
    let honest: Vec<&str> = honest.iter().map(String::as_str).collect();
    // The three honest nodes of before the flood, as each of the others holds them.
    let before_flood = &honest[..3];
    let mut report = Vec::new();
    let mut missing = 0;
    let mut views = Vec::new();
    for (name, node) in [
        ("bootnode", &mut net.boot),
        ("alice", &mut net.alice),
        ("bob", &mut net.bob),
    ] {
        let view = held(node, before_flood).await;
        missing += view.missing.len();
        report.push(format!(
            "{name}: {} records, missing {:?}, group_full {}, per /24 {:?}",
            view.records, view.missing, view.group_full, view.per_block
        ));
        views.push((name, view));
    }
    let report = report.join("\n  ");
    eprintln!(
        "flood: {FLOOD} announcements in {flood_secs:.1} s, {taken} taken by the bootnode; \
         honest records missing: {missing} of 6\n  {report}"
    );
    assert_eq!(
        missing, 0,
        "honest records evicted by the flood:\n  {report}"
    );
    for (name, view) in &views {
        for (block, n) in &view.per_block {
            assert!(
                *n <= PER_GROUP,
                "{name} holds {n} records naming {block}, more than a group's {PER_GROUP}:\n  {report}"
            );
        }
    }
    assert!(
        views[0].1.group_full > 0,
        "the bootnode refused no record for its group being full:\n  {report}"
    );
    net.stop(carol).await;
}
