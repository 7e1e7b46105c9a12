#![allow(clippy::unwrap_used)]

use libp2p::swarm::behaviour::ConnectionClosed;

use super::*;
use crate::mesh::{self, DEFAULT_TOPIC};

/// A gate that admits `always` from the start.
fn gate_admitting(always: &[PeerId]) -> Gated {
    Gated::new(
        mesh::behaviour(DEFAULT_TOPIC).unwrap(),
        always.iter().copied(),
    )
}

fn gate() -> Gated {
    gate_admitting(&[])
}

const SPEAKS: [StreamProtocol; 1] = [StreamProtocol::new("/meshsub/1.1.0")];

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
    let (peer, bootnode) = (PeerId::random(), PeerId::random());
    let mut gate = gate_admitting(&[peer, bootnode]);
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
    gate.identified(bootnode, SPEAKS.iter());
    assert!(!gate.is_waiting(&bootnode, other), "rules 2 and 4");
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
        "rule 4: released, it opens its stream"
    );
}

#[test]
fn the_gate_releases_a_handler_once_its_peer_speaks_gossipsub_and_is_admitted() {
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
    gate.identified(peer, SPEAKS.iter());
    assert!(
        releases(&mut gate, &mut cx).is_empty(),
        "rule 3: speaking is not enough"
    );
    gate.admit(peer);
    assert_eq!(releases(&mut gate, &mut cx), [(peer, id)], "rule 4");
}

#[test]
fn a_non_member_is_never_passed_on_and_an_admission_lasts_one_connection_run() {
    let mut gate = gate();
    let (intruder, member) = (PeerId::random(), PeerId::random());
    let theirs = open(&mut gate, intruder, 1, 0);
    let first = open(&mut gate, member, 2, 0);
    // Rule 2: both open a gossipsub stream (their held handlers report it).
    for (peer, id) in [(intruder, theirs), (member, first)] {
        gate.on_connection_handler_event(peer, id, Either::Right(HeldEvent::Opened));
    }
    gate.admit(member);
    assert!(gate.is_waiting(&intruder, theirs), "rule 1: never admitted");
    assert!(!gate.told.contains_key(&intruder));
    assert_eq!(gate.told[&member], HashSet::from([first]), "rule 4");
    gate.on_connection_handler_event(intruder, theirs, Either::Right(HeldEvent::Dropped));
    assert_eq!(gate.unadmitted(), 1, "rule 5");

    close(&mut gate, member, first, 0);
    assert!(!gate.is_admitted(&member), "rule 3: until the last close");
    let again = open(&mut gate, member, 3, 0);
    gate.identified(member, SPEAKS.iter());
    assert!(
        gate.is_waiting(&member, again),
        "rule 3: proves itself again"
    );
    gate.admit(PeerId::random());
    assert!(
        gate.admitted.is_empty(),
        "rule 3: a peer with no connection is not admitted"
    );
}

#[test]
fn every_close_reaches_gossipsub_and_leaves_nothing_behind() {
    let mut gate = gate();
    let (peer, bootnode) = (PeerId::random(), PeerId::random());
    let waiting = open(&mut gate, peer, 1, 0);
    let told = open(&mut gate, bootnode, 2, 0);
    gate.identified(bootnode, [StreamProtocol::new("/meshsub/1.2.0")].iter());
    gate.admit(bootnode);
    assert!(gate.is_told(&bootnode, told));
    // Rule 6: gossipsub forgets both peers; it would panic on a close it cannot place.
    close(&mut gate, peer, waiting, 0);
    close(&mut gate, bootnode, told, 0);
    assert!(gate.waiting.is_empty() && gate.told.is_empty() && gate.speaking.is_empty());
    assert!(gate.admitted.is_empty());
    assert_eq!(gate.all_peers().count(), 0);
}

/// Canary: what [`Held`] exists for. If libp2p-gossipsub stops opening a stream to a peer
/// the moment it makes the connection's handler, the held handler may no longer be needed.
#[test]
fn upstream_gossipsub_still_opens_a_stream_to_every_new_peer_at_handler_creation() {
    let mut gossipsub = mesh::behaviour(DEFAULT_TOPIC).unwrap();
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
