//! When a gossip node that waits for identify greets a peer: as soon as the peer is connected
//! when it is known to speak the protocol (a bootnode named by its record), else once identify
//! lists the protocol. Two real swarms over libp2p's in-memory transport, no identify
//! behaviour: nothing but these calls can start the exchange.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{identity, listen, record, swarm};
use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{PeerId, Swarm};
use peerfind_behaviours::gossip::{self, protocol::PROTOCOL};

fn waiting_node() -> (Swarm<gossip::Behaviour>, PeerId) {
    let (key, signing) = identity();
    let id = key.public().to_peer_id();
    let config = gossip::Config {
        await_identify: true,
        ..Default::default()
    };
    (
        swarm(key, gossip::Behaviour::new(record(&signing, 1), config)),
        id,
    )
}

/// `dialer` connects to `listener`; `greet` is called on the dialer once it is connected;
/// returns once the listener learned the dialer's record.
async fn greeted(greet: impl FnOnce(&mut gossip::Behaviour, PeerId)) {
    let (mut listener, listener_id) = waiting_node();
    let (mut dialer, dialer_id) = waiting_node();
    let addr = listen(&mut listener);
    dialer.dial(addr).unwrap();
    let mut greet = Some(greet);
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::select! {
                e = dialer.select_next_some() => {
                    if let SwarmEvent::ConnectionEstablished { peer_id, .. } = e
                        && let Some(greet) = greet.take()
                    {
                        greet(dialer.behaviour_mut(), peer_id);
                    }
                }
                e = listener.select_next_some() => {
                    if let SwarmEvent::Behaviour(gossip::Event::RecordLearned { peer_id, .. }) = e
                        && peer_id == dialer_id
                    {
                        return;
                    }
                }
            }
        }
    })
    .await
    .expect("the listener learns the dialer's record within 10 s");
    assert!(dialer.is_connected(&listener_id));
}

#[tokio::test]
async fn a_known_speaker_is_greeted_as_soon_as_it_is_connected() {
    greeted(|g, peer| g.on_known_speaker(peer)).await;
}

#[tokio::test]
async fn a_peer_whose_identify_lists_the_protocol_is_greeted() {
    greeted(|g, peer| g.on_identified(peer, [&PROTOCOL])).await;
}

/// A peer that greeted us speaks the protocol: a change of our record reaches it even though
/// no identify of it ever told us so (before, only identify put it among those we gossip to,
/// and a record that changed in between never reached it).
#[tokio::test]
async fn a_peer_that_greets_us_gets_our_gossip_without_its_identify() {
    let (key, signing) = identity();
    let listener_id = key.public().to_peer_id();
    let config = gossip::Config {
        await_identify: true,
        ..Default::default()
    };
    let mut listener = swarm(key, gossip::Behaviour::new(record(&signing, 1), config));
    let (mut dialer, dialer_id) = waiting_node();
    let addr = listen(&mut listener);
    dialer.dial(addr).unwrap();
    let mut changed = false;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::select! {
                e = dialer.select_next_some() => match e {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                        dialer.behaviour_mut().on_known_speaker(peer_id);
                    }
                    SwarmEvent::Behaviour(gossip::Event::RecordUpdated { peer_id, .. })
                        if peer_id == listener_id => return,
                    _ => {}
                },
                e = listener.select_next_some() => {
                    if let SwarmEvent::Behaviour(gossip::Event::RecordLearned { peer_id, .. }) = e
                        && peer_id == dialer_id
                        && !changed
                    {
                        changed = true;
                        listener.behaviour_mut().set_local_record(record(&signing, 2));
                    }
                }
            }
        }
    })
    .await
    .expect("the dialer hears of the listener's new record within 10 s");
}
