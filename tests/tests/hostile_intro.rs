//! Reflection through introductions, against the real binary on loopback: a hostile swarm
//! (`peerfind_tests::hostile::intro`, on 127.0.0.1 like the nodes) tries to make a peerfind
//! peer dial a victim (`peerfind_tests::hostile::victim`, on 127.0.0.2), which counts every
//! TCP connection and UDP datagram that reaches it.
//!
//! Each test waits until the node has settled every attempt, one way or the other: refused
//! (its status API counts the refusal by reason) or taken (the peer reports the introduction
//! and then the end of its dial). Only then does it look at the victim, so a node that
//! misbehaves has had the time to, and no test sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use libp2p::{Multiaddr, PeerId};
use peerfind_behaviours::enr_ext;
use peerfind_behaviours::intro::Outcome;
use peerfind_proto::v1 as pb;
use peerfind_tests::api::State;
use peerfind_tests::hostile::intro::{Hostile, stranger_record_naming};
use peerfind_tests::hostile::victim::Victim;
use peerfind_tests::local::{self, Bootnode, WAIT};
use peerfind_tests::process::Peerfind;

/// Attempts per test: the report was "5 of 5".
const ATTEMPTS: usize = 5;

/// A bootnode and a peer joined through it, each connected to the other.
struct Cast {
    boot: Peerfind,
    boot_id: PeerId,
    boot_tcp: Multiaddr,
    peer: Peerfind,
    peer_id: PeerId,
}

impl Cast {
    async fn start() -> Self {
        let (mut boot, Bootnode { addrs, .. }) = local::bootnode().await.unwrap();
        let boot_tcp = addrs.iter().find(|a| a.contains("/tcp/")).unwrap();
        let boot_id: PeerId = boot.peer_id().await.unwrap().parse().unwrap();
        let mut peer = local::peer("peer", boot_tcp).unwrap();
        let peer_id: PeerId = peer.peer_id().await.unwrap().parse().unwrap();
        let peer_text = peer_id.to_string();
        boot.until("the peer connected to the bootnode", WAIT, |s| {
            s.direct_to(&peer_text).then_some(())
        })
        .await
        .unwrap();
        peer.until("the bootnode connected", WAIT, |s| {
            s.bootnode_connected().then_some(())
        })
        .await
        .unwrap();
        Self {
            boot,
            boot_id,
            boot_tcp: boot_tcp.parse().unwrap(),
            peer,
            peer_id,
        }
    }

    /// The peer's TCP listen address, with `/p2p/<peer>`.
    async fn peer_tcp(&mut self) -> Multiaddr {
        let addr = self
            .peer
            .until_polled("the peer's TCP listener", WAIT, |s| {
                s.status
                    .listen_addrs
                    .iter()
                    .find(|a| a.contains("/tcp/") && !a.contains("p2p-circuit"))
                    .cloned()
            })
            .await
            .unwrap();
        format!("{addr}/p2p/{}", self.peer_id).parse().unwrap()
    }

    async fn stop(mut self) {
        self.peer.stop().await.unwrap();
        self.boot.stop().await.unwrap();
    }
}

/// How many of a node's inputs were rejected for `reason`.
fn rejected(s: &State, reason: &str) -> u64 {
    s.counts().inputs_rejected.get(reason).copied().unwrap_or(0)
}

/// How many introductions to `requester` the node took (and so dialed it).
fn introduced(s: &State, requester: &str) -> usize {
    s.events
        .kinds()
        .filter(|k| matches!(k, pb::event::Kind::Introduced(i) if i.peer_id == requester))
        .count()
}

/// How many dials to `requester` ended (failed, or connected).
fn dials_ended(s: &State, requester: &str) -> usize {
    let failed = s
        .events
        .dials_failed()
        .iter()
        .filter(|d| d.peer_id == requester)
        .count();
    failed + s.events.connections_opened_with(requester).len()
}

/// Waits until the node has taken `requester`'s last introduction and its dial ended, if it
/// took it; returns whether it did.
async fn settle_dial(node: &mut Peerfind, requester: &str) -> bool {
    let taken = node
        .state()
        .await
        .map(|s| introduced(&s, requester))
        .unwrap();
    if taken == 0 {
        return false;
    }
    node.until("the dial to the introduced requester ended", WAIT, |s| {
        (dials_ended(s, requester) >= introduced(s, requester)).then_some(())
    })
    .await
    .unwrap();
    true
}

#[tokio::test]
async fn an_introduction_sent_straight_to_a_peer_makes_it_dial_no_victim() {
    let mut cast = Cast::start().await;
    let victim = Victim::start().await.unwrap();
    let mut hostile = Hostile::new().unwrap();
    let peer_addr = cast.peer_tcp().await;
    let peer = hostile.connect(&peer_addr).await.unwrap();

    let mut answers = Vec::new();
    let mut strangers = Vec::new();
    for _ in 0..ATTEMPTS {
        // Each from a fresh key, which costs the attacker nothing.
        let record = stranger_record_naming(victim.addr()).unwrap();
        let stranger = enr_ext::peer_id(&record).unwrap().to_string();
        answers.push(hostile.introduce(peer, &record).await.unwrap());
        // Settled before the next: refused (counted) or taken and dialed.
        let refused = cast
            .peer
            .until("the introduction refused, or taken", WAIT, |s| {
                let refused = rejected(s, "intro_not_from_bootnode") as usize;
                (refused > strangers.len() || introduced(s, &stranger) > 0).then_some(refused)
            })
            .await
            .unwrap();
        if refused <= strangers.len() {
            settle_dial(&mut cast.peer, &stranger).await;
        }
        strangers.push(stranger);
    }
    let state = cast.peer.state().await.unwrap();
    let taken: usize = strangers.iter().map(|s| introduced(&state, s)).sum();
    eprintln!(
        "straight introductions: {taken} of {ATTEMPTS} taken; answers {:?}; victim got {}",
        answers.iter().map(|a| a.outcome).collect::<Vec<_>>(),
        victim.summary()
    );
    assert_eq!(
        (victim.tcp_connections(), victim.udp_datagrams()),
        (0, 0),
        "the victim was reached: {}",
        victim.summary()
    );
    assert_eq!(taken, 0, "the peer took introductions from a non-bootnode");
    assert_eq!(rejected(&state, "intro_not_from_bootnode"), ATTEMPTS as u64);
    assert!(answers.iter().all(|a| a.outcome != Outcome::Dialing));
    cast.stop().await;
}

#[tokio::test]
async fn an_ask_whose_record_names_another_ip_makes_no_target_dial_the_victim() {
    let mut cast = Cast::start().await;
    let victim = Victim::start().await.unwrap();
    let mut hostile = Hostile::new().unwrap();
    let boot_addr = cast.boot_tcp.clone().with_p2p(cast.boot_id).unwrap();
    let bootnode = hostile.connect(&boot_addr).await.unwrap();
    let target = enr_ext::node_id(&cast.peer_id).unwrap();
    // Its own record, so it is the requester's; but it names the victim's IP, not its own.
    let record = hostile.own_record_naming(victim.addr()).unwrap();
    let requester = hostile.peer_id().to_string();

    let mut answers = Vec::new();
    for _ in 0..ATTEMPTS {
        let answer = hostile.ask(bootnode, target, &record).await.unwrap();
        // Dialing: the target took it; its dial ends before the next ask (a dial to a peer
        // already being dialed would not start).
        if answer.outcome == Outcome::Dialing {
            settle_dial(&mut cast.peer, &requester).await;
        }
        answers.push(answer);
    }
    let refused = cast
        .boot
        .until_polled("the bootnode counted its refusals", WAIT, |s| {
            let n = rejected(s, "intro_address_not_observed");
            let dialing = answers
                .iter()
                .filter(|a| a.outcome == Outcome::Dialing)
                .count();
            (n as usize + dialing >= ATTEMPTS).then_some(n)
        })
        .await
        .unwrap();
    let state = cast.peer.state().await.unwrap();
    let taken = introduced(&state, &requester);
    eprintln!(
        "asks naming the victim: {taken} of {ATTEMPTS} introduced; answers {:?}; victim got {}",
        answers
            .iter()
            .map(|a| (a.outcome, a.detail.as_str()))
            .collect::<Vec<_>>(),
        victim.summary()
    );
    assert_eq!(
        (victim.tcp_connections(), victim.udp_datagrams()),
        (0, 0),
        "the victim was reached: {}",
        victim.summary()
    );
    assert_eq!(
        taken, 0,
        "the target was introduced to the victim's address"
    );
    assert_eq!(refused, ATTEMPTS as u64);
    assert!(answers.iter().all(|a| a.outcome == Outcome::BadRecord));

    // The control: the same requester, its record naming its own IP (a closed port), is
    // introduced. The refusals were about the address, nothing else.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let own = hostile.own_record_naming(closed).unwrap();
    let answer = hostile.ask(bootnode, target, &own).await.unwrap();
    assert_eq!(answer.outcome, Outcome::Dialing, "{answer:?}");
    cast.stop().await;
}
