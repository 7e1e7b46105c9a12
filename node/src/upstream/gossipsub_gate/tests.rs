#![allow(clippy::unwrap_used)]

use libp2p::identity::Keypair;
use libp2p::swarm::behaviour::ConnectionClosed;

use super::*;
use crate::mesh::{self, DEFAULT_TOPIC};

fn gate() -> Gated {
    Gated::new(mesh::behaviour(&Keypair::generate_secp256k1(), DEFAULT_TOPIC).unwrap())
}

fn endpoint() -> ConnectedPoint {
    ConnectedPoint::Dialer {
        address: "/ip4/198.51.100.7/tcp/9000".parse().unwrap(),
        role_override: Endpoint::Dialer,
        port_use: PortUse::Reuse,
    }
}

/// The swarm's side of a connection: gossipsub makes its handler, then hears of it.
fn open(gate: &mut Gated, peer: PeerId, id: usize, others: usize) -> ConnectionId {
    let id = ConnectionId::new_unchecked(id);
    let endpoint = endpoint();
    let addr = endpoint.get_remote_address().clone();
    gate.handle_established_outbound_connection(id, peer, &addr, Endpoint::Dialer, PortUse::Reuse)
        .unwrap();
    gate.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
        peer_id: peer,
        connection_id: id,
        endpoint: &endpoint,
        failed_addresses: &[],
        other_established: others,
    }));
    id
}

fn close(gate: &mut Gated, peer: PeerId, id: ConnectionId, remaining: usize) {
    gate.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
        peer_id: peer,
        connection_id: id,
        endpoint: &endpoint(),
        cause: None,
        remaining_established: remaining,
    }));
}

#[test]
fn a_connection_waits_until_identify_lists_gossipsub() {
    let mut gate = gate();
    let (peer, bootnode) = (PeerId::random(), PeerId::random());
    let first = open(&mut gate, peer, 1, 0);
    let other = open(&mut gate, bootnode, 2, 0);
    assert!(gate.is_waiting(&peer, first) && gate.is_waiting(&bootnode, other));
    let plain = [
        StreamProtocol::new("/ipfs/id/1.0.0"),
        StreamProtocol::new("/ipfs/ping/1.0.0"),
    ];
    gate.identified(peer, plain.iter());
    assert!(
        gate.is_waiting(&peer, first),
        "rule 1: no gossipsub, no greeting"
    );
    let speaks = [StreamProtocol::new("/meshsub/1.1.0")];
    gate.identified(bootnode, speaks.iter());
    assert!(!gate.is_waiting(&bootnode, other), "rule 2");
    assert_eq!(gate.told[&bootnode], HashSet::from([other]));
    let second = open(&mut gate, bootnode, 3, 1);
    assert_eq!(
        gate.told[&bootnode].len(),
        2,
        "rule 1: a speaking peer's next connection"
    );
    assert!(!gate.is_waiting(&bootnode, second));
}

fn handler(gate: &mut Gated, peer: PeerId, id: usize) -> Held {
    let addr = endpoint().get_remote_address().clone();
    gate.handle_established_outbound_connection(
        ConnectionId::new_unchecked(id),
        peer,
        &addr,
        Endpoint::Dialer,
        PortUse::Reuse,
    )
    .unwrap()
}

fn poll_handler(handler: &mut Held) -> Poll<bool> {
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    handler.poll(&mut cx).map(|event| {
        matches!(
            event,
            ConnectionHandlerEvent::OutboundSubstreamRequest { .. }
        )
    })
}

#[test]
fn a_held_handler_opens_no_stream_until_released() {
    let mut gate = gate();
    let peer = PeerId::random();
    // gossipsub has queued its extensions message for the new peer.
    let mut held = handler(&mut gate, peer, 1);
    assert!(poll_handler(&mut held).is_pending(), "rule 1");
    held.on_behaviour_event(Either::Right(Release));
    assert_eq!(
        poll_handler(&mut held),
        Poll::Ready(true),
        "rule 2: released, it opens its stream"
    );
}

#[test]
fn the_gate_releases_a_handler_when_its_peer_speaks_gossipsub() {
    let mut gate = gate();
    let peer = PeerId::random();
    let id = open(&mut gate, peer, 1, 0);
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    let releases = |gate: &mut Gated, cx: &mut Context<'_>| {
        let mut seen = Vec::new();
        while let Poll::Ready(event) = gate.poll(cx) {
            if let ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::One(connection),
                event: Either::Right(Release),
            } = event
            {
                seen.push((peer_id, connection));
            }
        }
        seen
    };
    assert!(releases(&mut gate, &mut cx).is_empty(), "rule 1");
    gate.identified(peer, [StreamProtocol::new("/meshsub/1.1.0")].iter());
    assert_eq!(releases(&mut gate, &mut cx), [(peer, id)], "rule 2");
}

#[test]
fn every_close_reaches_gossipsub_and_leaves_nothing_behind() {
    let mut gate = gate();
    let (peer, bootnode) = (PeerId::random(), PeerId::random());
    let waiting = open(&mut gate, peer, 1, 0);
    let told = open(&mut gate, bootnode, 2, 0);
    gate.identified(bootnode, [StreamProtocol::new("/meshsub/1.2.0")].iter());
    // Rule 3: gossipsub forgets both peers; it would panic on a close it cannot place.
    close(&mut gate, peer, waiting, 0);
    close(&mut gate, bootnode, told, 0);
    assert!(gate.waiting.is_empty() && gate.told.is_empty() && gate.speaking.is_empty());
    assert_eq!(gate.all_peers().count(), 0);
}

/// Canary: what [`Held`] exists for. If libp2p-gossipsub stops opening a stream to a peer
/// the moment it makes the connection's handler, the held handler may no longer be needed.
#[test]
fn upstream_gossipsub_still_opens_a_stream_to_every_new_peer_at_handler_creation() {
    let mut gossipsub = mesh::behaviour(&Keypair::generate_secp256k1(), DEFAULT_TOPIC).unwrap();
    let addr = endpoint().get_remote_address().clone();
    // Two peers nothing is known of, one connection each; the swarm has not even told
    // gossipsub of them yet.
    let outbound = gossipsub
        .handle_established_outbound_connection(
            ConnectionId::new_unchecked(1),
            PeerId::random(),
            &addr,
            Endpoint::Dialer,
            PortUse::Reuse,
        )
        .unwrap();
    let inbound = gossipsub
        .handle_established_inbound_connection(
            ConnectionId::new_unchecked(2),
            PeerId::random(),
            &"/ip4/0.0.0.0/tcp/9000".parse().unwrap(),
            &addr,
        )
        .unwrap();
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    for (direction, mut handler) in [("outbound", outbound), ("inbound", inbound)] {
        assert!(
            matches!(
                handler.poll(&mut cx),
                Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest { .. })
            ),
            "libp2p-gossipsub's handler of a new {direction} connection no longer opens a \
             stream at once: the gate's Held handler may no longer be needed (see the \
             module doc)"
        );
    }
}
