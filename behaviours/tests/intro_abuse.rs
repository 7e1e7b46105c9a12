//! Abuse of a bootnode's introductions: unknown targets, floods from one requester and
//! forged records are refused with the right outcome, and the bootnode goes on serving.
//!
//! Four real swarms over libp2p's in-memory transport: a bootnode, Alice (the target),
//! Mallory (the abuser) and Charlie (an honest requester).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{identity, listen, swarm};
use futures::StreamExt;
use libp2p::Swarm;
use libp2p::swarm::SwarmEvent;
use peerfind_behaviours::enr_ext::{Enr, SigningKey};
use peerfind_behaviours::intro::{self, Outcome};

fn record(key: &SigningKey) -> Enr {
    common::record_at(key, 1)
}

struct Net {
    boot: Swarm<intro::Behaviour>,
    alice: Swarm<intro::Behaviour>,
    mallory: Swarm<intro::Behaviour>,
    charlie: Swarm<intro::Behaviour>,
    alice_enr: Enr,
}

impl Net {
    /// Everyone connected to the bootnode. Mallory presents `mallory_record` (her own, or a
    /// forged one) when she asks.
    async fn new(mallory_record: impl FnOnce(&SigningKey) -> Enr) -> Self {
        let (bk, bs) = identity();
        let (ak, as_) = identity();
        let (mk, ms) = identity();
        let (ck, cs) = identity();
        let serve = intro::Config {
            serve: true,
            ..Default::default()
        };
        let mut boot = swarm(bk, intro::Behaviour::new(record(&bs), serve));
        let alice_enr = record(&as_);
        let alice = swarm(
            ak,
            intro::Behaviour::new(alice_enr.clone(), Default::default()),
        );
        let mallory = swarm(
            mk,
            intro::Behaviour::new(mallory_record(&ms), Default::default()),
        );
        let charlie = swarm(ck, intro::Behaviour::new(record(&cs), Default::default()));
        let addr = listen(&mut boot);
        let mut net = Net {
            boot,
            alice,
            mallory,
            charlie,
            alice_enr,
        };
        for s in [&mut net.alice, &mut net.mallory, &mut net.charlie] {
            s.dial(addr.clone()).unwrap();
        }
        let peers = [
            *net.alice.local_peer_id(),
            *net.mallory.local_peer_id(),
            *net.charlie.local_peer_id(),
        ];
        tokio::time::timeout(Duration::from_secs(10), async {
            // Both ends must have seen each connection, or a request dials anew.
            let boot = *net.boot.local_peer_id();
            while !peers.iter().all(|p| net.boot.is_connected(p))
                || ![&net.alice, &net.mallory, &net.charlie]
                    .iter()
                    .all(|s| s.is_connected(&boot))
            {
                net.step().await;
            }
        })
        .await
        .expect("all connected");
        net
    }

    /// Polls every swarm once; returns an intro event of a requester (Mallory or Charlie).
    async fn step(&mut self) -> Option<(&'static str, intro::Event)> {
        tokio::select! {
            _ = self.boot.select_next_some() => None,
            _ = self.alice.select_next_some() => None,
            e = self.mallory.select_next_some() => match e {
                SwarmEvent::Behaviour(e) => Some(("mallory", e)),
                _ => None,
            },
            e = self.charlie.select_next_some() => match e {
                SwarmEvent::Behaviour(e) => Some(("charlie", e)),
                _ => None,
            },
        }
    }

    /// The outcome `who` gets for its next ask.
    async fn answer(&mut self, who: &'static str) -> Outcome {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some((
                    w,
                    intro::Event::Answered {
                        outcome, detail, ..
                    },
                )) = self.step().await
                    && w == who
                {
                    eprintln!("{who}: {outcome:?} ({detail})");
                    return outcome;
                }
            }
        })
        .await
        .expect("an answer within 10 s")
    }

    fn boot_id(&self) -> libp2p::PeerId {
        *self.boot.local_peer_id()
    }

    /// Charlie, honest, is still introduced to Alice: the bootnode is unaffected.
    async fn assert_bootnode_still_serves(&mut self) {
        let (boot, alice) = (self.boot_id(), self.alice_enr.node_id());
        self.charlie.behaviour_mut().ask(boot, alice);
        assert_eq!(self.answer("charlie").await, Outcome::Dialing);
    }
}

#[tokio::test]
async fn an_ask_for_an_unknown_target_is_refused_as_unknown() {
    let mut net = Net::new(record).await;
    let boot = net.boot_id();
    let stranger = record(&identity().1).node_id();
    net.mallory.behaviour_mut().ask(boot, stranger);
    assert_eq!(net.answer("mallory").await, Outcome::UnknownTarget);

    // Known to the bootnode but not connected to it: a different answer.
    net.boot.behaviour_mut().remember(stranger);
    net.mallory.behaviour_mut().ask(boot, stranger);
    assert_eq!(net.answer("mallory").await, Outcome::TargetNotConnected);
    net.assert_bootnode_still_serves().await;
}

#[tokio::test]
async fn a_flood_from_one_requester_is_rate_limited_and_others_are_still_served() {
    let mut net = Net::new(record).await;
    let (boot, alice) = (net.boot_id(), net.alice_enr.node_id());
    let limit = intro::Config::default().per_requester.count as usize;
    let mut outcomes = Vec::new();
    for _ in 0..limit + 5 {
        net.mallory.behaviour_mut().ask(boot, alice);
        outcomes.push(net.answer("mallory").await);
    }
    let served = outcomes.iter().filter(|o| **o == Outcome::Dialing).count();
    let limited = outcomes
        .iter()
        .filter(|o| **o == Outcome::RateLimited)
        .count();
    assert_eq!((served, limited), (limit, 5), "{outcomes:?}");
    net.assert_bootnode_still_serves().await;
}

#[tokio::test]
async fn a_forged_record_in_an_ask_is_refused_as_a_bad_record() {
    // Mallory presents Charlie-like record signed by another key: not hers.
    let mut net = Net::new(|_| record(&identity().1)).await;
    let (boot, alice) = (net.boot_id(), net.alice_enr.node_id());
    net.mallory.behaviour_mut().ask(boot, alice);
    assert_eq!(net.answer("mallory").await, Outcome::BadRecord);
    net.assert_bootnode_still_serves().await;
}

#[tokio::test]
async fn a_record_without_an_address_is_refused_as_a_bad_record() {
    let mut net = Net::new(|k| Enr::builder().build(k).unwrap()).await;
    let (boot, alice) = (net.boot_id(), net.alice_enr.node_id());
    net.mallory.behaviour_mut().ask(boot, alice);
    assert_eq!(net.answer("mallory").await, Outcome::BadRecord);
    net.assert_bootnode_still_serves().await;
}
