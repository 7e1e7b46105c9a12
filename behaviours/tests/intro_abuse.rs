//! Abuse of introductions: unknown targets, floods, forged records, records naming another
//! IP than the requester's, fresh keys, and introductions from peers that are not bootnodes
//! are refused with the right outcome and counted, and the bootnode goes on serving.
//!
//! Real swarms over TCP on 127.0.0.1 (plaintext, yamux): a bootnode vouches for a requester's
//! address with the IP its connection comes from (intro rule 2), which the in-memory
//! transport does not show. A bootnode, Alice (the target, whose configured bootnode it is),
//! Mallory (the abuser) and Charlie (an honest requester).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use libp2p::core::transport::{Transport as _, upgrade::Version};
use libp2p::identity::{Keypair, secp256k1};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, plaintext, tcp, yamux};
use peerfind_behaviours::enr_ext::{self, Enr, SigningKey};
use peerfind_behaviours::intro::protocol::{Codec, PROTOCOL, Request, Response};
use peerfind_behaviours::intro::{self, Limit, Outcome};

/// Bound on every wait: everything here happens in milliseconds on loopback.
const WAIT: Duration = Duration::from_secs(10);

/// One secp256k1 key as a node has it: the libp2p identity and the record's signer.
fn identity() -> (Keypair, SigningKey) {
    let secret = secp256k1::SecretKey::generate();
    let signing = SigningKey::from_slice(&secret.to_bytes()).unwrap();
    (Keypair::from(secp256k1::Keypair::from(secret)), signing)
}

/// A swarm of `behaviour` over TCP on loopback; connections stay open for a minute without
/// traffic, longer than any test.
fn swarm<B: NetworkBehaviour>(key: Keypair, behaviour: B) -> Swarm<B> {
    libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|k| {
            tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                .upgrade(Version::V1)
                .authenticate(plaintext::Config::new(k))
                .multiplex(yamux::Config::default())
        })
        .unwrap()
        .with_behaviour(|_| behaviour)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Makes `swarm` listen on a free port of 127.0.0.1 and returns the address once bound.
async fn listen<B: NetworkBehaviour>(swarm: &mut Swarm<B>) -> Multiaddr {
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                return address;
            }
        }
    })
    .await
    .expect("a listen address")
}

/// A record of `key` at `ip`, TCP port 9000.
fn record_at(key: &SigningKey, ip: [u8; 4]) -> Enr {
    Enr::builder().ip4(ip.into()).tcp4(9000).build(key).unwrap()
}

/// A record of `key` at the address its connections come from, 127.0.0.1: an honest one.
fn record(key: &SigningKey) -> Enr {
    record_at(key, [127, 0, 0, 1])
}

/// A requester asking the bootnode (Mallory, Charlie, or one of many fresh ones).
struct Requester {
    swarm: Swarm<intro::Behaviour>,
}

struct Net {
    boot: Swarm<intro::Behaviour>,
    boot_addr: Multiaddr,
    alice: Swarm<intro::Behaviour>,
    mallory: Swarm<intro::Behaviour>,
    charlie: Swarm<intro::Behaviour>,
    alice_enr: Enr,
}

impl Net {
    /// Everyone connected to the bootnode. Mallory presents `mallory_record` (her own, or a
    /// forged one) when she asks.
    async fn new(mallory_record: impl FnOnce(&SigningKey) -> Enr) -> Self {
        Self::with(intro::Config::default(), mallory_record).await
    }

    /// [`Net::new`] with the bootnode's limits of `config`.
    async fn with(config: intro::Config, mallory_record: impl FnOnce(&SigningKey) -> Enr) -> Self {
        let (bk, bs) = identity();
        let (ak, as_) = identity();
        let (mk, ms) = identity();
        let (ck, cs) = identity();
        let boot_id = bk.public().to_peer_id();
        let serve = intro::Config {
            serve: true,
            ..config
        };
        let mut boot = swarm(bk, intro::Behaviour::new(record(&bs), serve));
        let alice_enr = record(&as_);
        let mut alice = swarm(
            ak,
            intro::Behaviour::new(alice_enr.clone(), Default::default()),
        );
        alice.behaviour_mut().set_bootnodes([boot_id]);
        let mallory = swarm(
            mk,
            intro::Behaviour::new(mallory_record(&ms), Default::default()),
        );
        let charlie = swarm(ck, intro::Behaviour::new(record(&cs), Default::default()));
        let boot_addr = listen(&mut boot).await;
        let mut net = Net {
            boot,
            boot_addr,
            alice,
            mallory,
            charlie,
            alice_enr,
        };
        for s in [&mut net.alice, &mut net.mallory, &mut net.charlie] {
            s.dial(net.boot_addr.clone()).unwrap();
        }
        let peers = [
            *net.alice.local_peer_id(),
            *net.mallory.local_peer_id(),
            *net.charlie.local_peer_id(),
        ];
        tokio::time::timeout(WAIT, async {
            // Both ends must have seen each connection, or a request dials anew.
            while !peers.iter().all(|p| net.boot.is_connected(p))
                || ![&net.alice, &net.mallory, &net.charlie]
                    .iter()
                    .all(|s| s.is_connected(&boot_id))
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
        tokio::time::timeout(WAIT, async {
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

    fn boot_id(&self) -> PeerId {
        *self.boot.local_peer_id()
    }

    /// How many of the bootnode's refusals were counted as `label`.
    fn counted(&self, label: &str) -> u64 {
        self.boot
            .behaviour()
            .rejected()
            .get(label)
            .copied()
            .unwrap_or(0)
    }

    /// A fresh requester with an honest record, connected to the bootnode.
    async fn requester(&mut self) -> Requester {
        let (key, signing) = identity();
        let mut swarm = swarm(
            key,
            intro::Behaviour::new(record(&signing), Default::default()),
        );
        let id = *swarm.local_peer_id();
        let boot = self.boot_id();
        swarm.dial(self.boot_addr.clone()).unwrap();
        tokio::time::timeout(WAIT, async {
            while !(self.boot.is_connected(&id) && swarm.is_connected(&boot)) {
                tokio::select! {
                    _ = swarm.select_next_some() => {}
                    _ = self.step() => {}
                }
            }
        })
        .await
        .expect("connected");
        Requester { swarm }
    }

    /// The outcome `requester` gets for asking the bootnode about Alice.
    async fn ask_as(&mut self, requester: &mut Requester) -> Outcome {
        let (boot, alice) = (self.boot_id(), self.alice_enr.node_id());
        requester
            .swarm
            .behaviour_mut()
            .ask(boot, alice, vec![], false);
        tokio::time::timeout(WAIT, async {
            loop {
                tokio::select! {
                    e = requester.swarm.select_next_some() => {
                        if let SwarmEvent::Behaviour(intro::Event::Answered { outcome, .. }) = e {
                            return outcome;
                        }
                    }
                    _ = self.step() => {}
                }
            }
        })
        .await
        .expect("an answer within 10 s")
    }

    /// Charlie, honest, is still introduced to Alice: the bootnode is unaffected.
    async fn assert_bootnode_still_serves(&mut self) {
        let (boot, alice) = (self.boot_id(), self.alice_enr.node_id());
        self.charlie.behaviour_mut().ask(boot, alice, vec![], false);
        assert_eq!(self.answer("charlie").await, Outcome::Dialing);
    }
}

#[tokio::test]
async fn an_ask_for_an_unknown_target_is_refused_as_unknown() {
    let mut net = Net::new(record).await;
    let boot = net.boot_id();
    let stranger = record(&identity().1).node_id();
    net.mallory
        .behaviour_mut()
        .ask(boot, stranger, vec![], false);
    assert_eq!(net.answer("mallory").await, Outcome::UnknownTarget);

    // Known to the bootnode but not connected to it: a different answer.
    net.boot.behaviour_mut().remember(stranger);
    net.mallory
        .behaviour_mut()
        .ask(boot, stranger, vec![], false);
    assert_eq!(net.answer("mallory").await, Outcome::TargetNotConnected);
    assert!(
        net.boot.behaviour().rejected().is_empty(),
        "honest misses are not counted as rejected input"
    );
    net.assert_bootnode_still_serves().await;
}

#[tokio::test]
async fn a_flood_from_one_requester_is_rate_limited_and_others_are_still_served() {
    let mut net = Net::new(record).await;
    let (boot, alice) = (net.boot_id(), net.alice_enr.node_id());
    let limit = intro::Config::default().per_requester.count as usize;
    let mut outcomes = Vec::new();
    for _ in 0..limit + 5 {
        net.mallory.behaviour_mut().ask(boot, alice, vec![], false);
        outcomes.push(net.answer("mallory").await);
    }
    let served = outcomes.iter().filter(|o| **o == Outcome::Dialing).count();
    let limited = outcomes
        .iter()
        .filter(|o| **o == Outcome::RateLimited)
        .count();
    assert_eq!((served, limited), (limit, 5), "{outcomes:?}");
    assert_eq!(net.counted("intro_rate_limited_requester"), 5);
    net.assert_bootnode_still_serves().await;
}

#[tokio::test]
async fn a_forged_record_in_an_ask_is_refused_as_a_bad_record() {
    // Mallory presents Charlie-like record signed by another key: not hers.
    let mut net = Net::new(|_| record(&identity().1)).await;
    let (boot, alice) = (net.boot_id(), net.alice_enr.node_id());
    net.mallory.behaviour_mut().ask(boot, alice, vec![], false);
    assert_eq!(net.answer("mallory").await, Outcome::BadRecord);
    assert_eq!(net.counted("intro_forged"), 1);
    net.assert_bootnode_still_serves().await;
}

#[tokio::test]
async fn a_record_without_an_address_is_refused_as_a_bad_record() {
    let mut net = Net::new(|k| Enr::builder().build(k).unwrap()).await;
    let (boot, alice) = (net.boot_id(), net.alice_enr.node_id());
    net.mallory.behaviour_mut().ask(boot, alice, vec![], false);
    assert_eq!(net.answer("mallory").await, Outcome::BadRecord);
    assert_eq!(net.counted("intro_no_address"), 1);
    net.assert_bootnode_still_serves().await;
}

#[tokio::test]
async fn an_ask_whose_record_names_another_ip_than_the_requesters_is_refused() {
    // Her own record, validly signed, naming a victim: her connection comes from 127.0.0.1.
    let mut net = Net::new(|k| record_at(k, [127, 0, 0, 2])).await;
    let (boot, alice) = (net.boot_id(), net.alice_enr.node_id());
    net.mallory.behaviour_mut().ask(boot, alice, vec![], false);
    assert_eq!(net.answer("mallory").await, Outcome::BadRecord);
    assert_eq!(net.counted("intro_address_not_observed"), 1);
    net.assert_bootnode_still_serves().await;
}

#[tokio::test]
async fn asks_are_rate_limited_before_their_record_is_checked() {
    // Every ask carries a record she cannot use: past her count, the bootnode refuses
    // without reading it, so a flood costs it no signature checks.
    let mut net = Net::new(|_| record(&identity().1)).await;
    let (boot, alice) = (net.boot_id(), net.alice_enr.node_id());
    let limit = intro::Config::default().per_requester.count as usize;
    for _ in 0..limit + 3 {
        net.mallory.behaviour_mut().ask(boot, alice, vec![], false);
        net.answer("mallory").await;
    }
    assert_eq!(net.counted("intro_forged"), limit as u64, "checked");
    assert_eq!(net.counted("intro_rate_limited_requester"), 3, "not read");
    net.assert_bootnode_still_serves().await;
}

#[tokio::test]
async fn fresh_keys_from_one_ip_group_share_its_count() {
    let group = Limit {
        count: 3,
        window: Duration::from_secs(60),
    };
    let config = intro::Config {
        per_ip_group: group,
        ..Default::default()
    };
    let mut net = Net::with(config, record).await;
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        // Each a new key, asking once: far under its own count.
        let mut fresh = net.requester().await;
        outcomes.push(net.ask_as(&mut fresh).await);
    }
    let served = outcomes.iter().filter(|o| **o == Outcome::Dialing).count();
    assert_eq!(served, 3, "{outcomes:?}");
    assert_eq!(net.counted("intro_rate_limited_ip_group"), 2);
}

/// A swarm that sends introduction requests as it likes: a bootnode, or someone posing as one.
fn raw() -> Swarm<request_response::Behaviour<Codec>> {
    let behaviour = request_response::Behaviour::with_codec(
        Codec::default(),
        [(PROTOCOL, ProtocolSupport::Full)],
        request_response::Config::default(),
    );
    swarm(identity().0, behaviour)
}

/// Sends `Introduce` with `record` from `from` to Alice; returns her answer and whether she
/// reported the introduction.
async fn introduce(
    from: &mut Swarm<request_response::Behaviour<Codec>>,
    alice: &mut Swarm<intro::Behaviour>,
    record: Vec<u8>,
) -> (Response, bool) {
    let alice_id = *alice.local_peer_id();
    let id = from.behaviour_mut().send_request(
        &alice_id,
        Request::Introduce {
            record,
            lan: vec![],
            spray: false,
        },
    );
    let mut introduced = false;
    let answer = tokio::time::timeout(WAIT, async {
        loop {
            tokio::select! {
                e = from.select_next_some() => match e {
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message: request_response::Message::Response { request_id, response },
                        ..
                    }) if request_id == id => return response,
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                        request_id, error, ..
                    }) if request_id == id => panic!("no answer: {error}"),
                    _ => {}
                },
                e = alice.select_next_some() => {
                    if let SwarmEvent::Behaviour(intro::Event::Introduced { .. }) = e {
                        introduced = true;
                    }
                }
            }
        }
    })
    .await
    .expect("an answer within 10 s");
    // The event comes with the answer, in the same poll of Alice.
    while let Some(e) = alice.select_next_some().now_or_never() {
        if let SwarmEvent::Behaviour(intro::Event::Introduced { .. }) = e {
            introduced = true;
        }
    }
    (answer, introduced)
}

#[tokio::test]
async fn an_introduction_from_a_peer_that_is_not_a_configured_bootnode_is_refused_unread() {
    let (ak, as_) = identity();
    let mut alice = swarm(ak, intro::Behaviour::new(record(&as_), Default::default()));
    let mut bootnode = raw();
    let mut stranger = raw();
    alice
        .behaviour_mut()
        .set_bootnodes([*bootnode.local_peer_id()]);
    let alice_addr = listen(&mut alice).await;
    let alice_id = *alice.local_peer_id();
    for s in [&mut bootnode, &mut stranger] {
        s.dial(alice_addr.clone()).unwrap();
        tokio::time::timeout(WAIT, async {
            while !(s.is_connected(&alice_id) && alice.is_connected(s.local_peer_id())) {
                tokio::select! {
                    _ = s.select_next_some() => {}
                    _ = alice.select_next_some() => {}
                }
            }
        })
        .await
        .expect("connected");
    }
    let victim = enr_ext::encode_bytes(&record_at(&identity().1, [127, 0, 0, 2]));
    let mut bad_signature = victim.clone();
    bad_signature[10] ^= 1;

    let (answer, introduced) = introduce(&mut stranger, &mut alice, victim.clone()).await;
    assert_eq!(answer.outcome, Outcome::TargetUnreachable, "{answer:?}");
    assert!(!introduced);
    let (answer, introduced) = introduce(&mut stranger, &mut alice, bad_signature.clone()).await;
    assert_eq!(answer.outcome, Outcome::TargetUnreachable, "refused unread");
    assert!(!introduced);
    let rejected = alice.behaviour().rejected().clone();
    assert_eq!(rejected.get("intro_not_from_bootnode"), Some(&2));
    assert_eq!(
        rejected.get("intro_bad_signature"),
        None,
        "no signature checked"
    );

    // From the configured bootnode, the same record is read, and taken: the bootnode
    // vouched for it (rule 2 is the bootnode's).
    let (answer, introduced) = introduce(&mut bootnode, &mut alice, bad_signature).await;
    assert_eq!(answer.outcome, Outcome::BadRecord);
    assert!(!introduced);
    let (answer, introduced) = introduce(&mut bootnode, &mut alice, victim).await;
    assert_eq!(answer.outcome, Outcome::Dialing);
    assert!(introduced);
}
