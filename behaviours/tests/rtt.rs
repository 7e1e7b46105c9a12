//! `/peerfind/ping/1.0.0` between two swarms: rounds answered and reused streams, a peer that
//! does not speak it, the busy bound, and the answer pace.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::{SwarmEvent, dummy};
use libp2p::{PeerId, Swarm};
use peerfind_behaviours::rtt::{self, ANSWER_PACE, Failure, MAX_QUEUED};

async fn connected<B: libp2p::swarm::NetworkBehaviour>(
    a: &mut Swarm<rtt::Behaviour>,
    b: &mut Swarm<B>,
) -> PeerId
where
    B::ToSwarm: std::fmt::Debug,
{
    let addr = common::listen(b);
    let peer = *b.local_peer_id();
    a.dial(addr).unwrap();
    loop {
        tokio::select! {
            e = a.select_next_some() => if let SwarmEvent::ConnectionEstablished { .. } = e { return peer },
            _ = b.select_next_some() => {}
        }
    }
}

async fn next_round<B: libp2p::swarm::NetworkBehaviour>(
    a: &mut Swarm<rtt::Behaviour>,
    b: &mut Swarm<B>,
) -> rtt::Event {
    loop {
        tokio::select! {
            e = a.select_next_some() => if let SwarmEvent::Behaviour(e) = e { return e },
            _ = b.select_next_some() => {}
        }
    }
}

#[tokio::test]
async fn rounds_are_answered_one_after_another_over_the_best_connection() {
    let mut a = common::swarm(common::identity().0, rtt::Behaviour::new());
    let mut b = common::swarm(common::identity().0, rtt::Behaviour::new());
    let peer = connected(&mut a, &mut b).await;
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let (round, path) = a.behaviour_mut().ping(peer).unwrap();
        assert!(!path.relayed);
        let event = next_round(&mut a, &mut b).await;
        assert_eq!((event.round, event.peer), (round, peer));
        rounds.push(event.result.unwrap());
    }
    // Rule 4: the second and third answers waited for the pace.
    assert!(
        rounds[1] >= ANSWER_PACE - Duration::from_millis(5),
        "{rounds:?}"
    );
    assert_eq!(a.behaviour().in_flight(), 0);
}

#[tokio::test]
async fn a_peer_that_does_not_speak_it_fails_every_round_as_unsupported() {
    let mut a = common::swarm(common::identity().0, rtt::Behaviour::new());
    let mut b = common::swarm(common::identity().0, dummy::Behaviour);
    let peer = connected(&mut a, &mut b).await;
    for _ in 0..2 {
        a.behaviour_mut().ping(peer).unwrap();
        let event = next_round(&mut a, &mut b).await;
        assert_eq!(event.result, Err(Failure::Unsupported));
    }
}

#[tokio::test]
async fn rounds_beyond_the_queue_fail_at_once_as_busy() {
    let mut a = common::swarm(common::identity().0, rtt::Behaviour::new());
    let mut b = common::swarm(common::identity().0, rtt::Behaviour::new());
    let peer = connected(&mut a, &mut b).await;
    let asked = MAX_QUEUED + 3;
    for _ in 0..asked {
        a.behaviour_mut().ping(peer).unwrap();
    }
    let (mut answered, mut busy) = (0, 0);
    for _ in 0..asked {
        match next_round(&mut a, &mut b).await.result {
            Ok(_) => answered += 1,
            Err(Failure::Busy) => busy += 1,
            Err(e) => panic!("{e}"),
        }
    }
    // One in flight may not have left the queue when the rest arrived: at most MAX_QUEUED + 1.
    assert!(
        (MAX_QUEUED..=MAX_QUEUED + 1).contains(&answered),
        "{answered} answered"
    );
    assert_eq!(answered + busy, asked);
}
