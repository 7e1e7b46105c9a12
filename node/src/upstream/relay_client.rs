//! libp2p's relay client (circuit relay v2), kept from one panic of its own.
//!
//! Works around: libp2p-relay 0.22.0 (Cargo.lock). Its client's
//! `Behaviour::on_connection_handler_event` (`src/priv_client.rs`) looks up the reservation of
//! the connection a `ReservationReqAccepted` came from with `.expect("Relay connection exist")`,
//! and `Behaviour::on_listener_closed` (same file) forgets that reservation when its listener
//! closes, so an acceptance (or renewal) already on its way then panics. The `expect` came with
//! rust-libp2p PR #4809 (libp2p-relay 0.17.1) and is still on rust-libp2p's master of
//! 2026-08-04; PR #6461 (in 0.22.0) resets the handler's reservation when the listener closes,
//! which does not stop an answer already in flight. No upstream issue found for this panic;
//! behaviour in `src/priv_client.rs`: `Behaviour::on_connection_handler_event`. Remove when:
//! libp2p-relay's client takes an answer for a reservation it no longer knows without
//! panicking; `upstream_relay_client_still_panics_on_a_late_answer_to_a_slot_given_back` then
//! fails.
//!
//! A node gives back its relay slot when it finds it is public (`reach/reservation.rs` rule 4):
//! it removes the reservation's listener, and the relay client forgets the reservation. If the
//! relay's answer to that reservation is still on its way (the verdict often comes within a
//! round trip of asking, and a renewal may be in flight at any time), libp2p-relay 0.22's
//! client gets an acceptance for a reservation it no longer knows and panics ("Relay
//! connection exist"), taking the node down. So the events of a relay's connection handlers
//! reach the client only while the node has not given back its slot on that relay.
//!
//! Rules:
//! 1. After the node gives back its slot on a relay, that relay's handler events are dropped:
//!    the late answer to the reservation, and what the client would only have reported (a
//!    circuit through that relay opened); circuits themselves are not affected.
//! 2. Asking that relay for a slot again, or losing the last connection to it, ends rule 1.
//!
//! The state is one entry per relay given back: bounded by the bootnodes.

use std::collections::HashSet;

use libp2p::swarm::{ConnectionId, FromSwarm, NetworkBehaviour, THandlerOutEvent};
use libp2p::{PeerId, relay};

/// The relay client behind rule 1. See the module doc.
pub struct RelayClient {
    inner: relay::client::Behaviour,
    /// Relays whose slot the node gave back (rule 1).
    given_back: HashSet<PeerId>,
}

impl RelayClient {
    /// `inner`, passing everything on until a slot is given back.
    pub fn new(inner: relay::client::Behaviour) -> Self {
        Self {
            inner,
            given_back: HashSet::new(),
        }
    }

    /// The node removed its reservation listener on `relay` (rule 1).
    pub fn gave_back(&mut self, relay: PeerId) {
        self.given_back.insert(relay);
    }

    /// The node asks `relay` for a slot (rule 2).
    pub fn asking(&mut self, relay: PeerId) {
        self.given_back.remove(&relay);
    }

    /// Whether the handler events of `relay`'s connections reach the client.
    fn passes(&self, relay: &PeerId) -> bool {
        !self.given_back.contains(relay)
    }
}

impl NetworkBehaviour for RelayClient {
    type ConnectionHandler = <relay::client::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = relay::client::Event;

    peerfind_behaviours::forward_connection_handling!(inner);

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(closed) = &event
            && closed.remaining_established == 0
        {
            // Rule 2: with no connection left, no answer can come.
            self.given_back.remove(&closed.peer_id);
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        if !self.passes(&peer_id) {
            tracing::debug!(relay = %peer_id, "dropped a relay handler event: the slot on this relay was given back");
            return;
        }
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    peerfind_behaviours::forward_poll!(inner);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use either::Either;
    use libp2p::core::multiaddr::Protocol;
    use libp2p::core::transport::{ListenerId, Transport as _};
    use libp2p::core::{ConnectedPoint, Endpoint, transport::PortUse};
    use libp2p::swarm::behaviour::{ConnectionClosed, ConnectionEstablished, ListenerClosed};
    use libp2p::swarm::{NotifyHandler, ToSwarm};

    use super::*;

    fn client() -> RelayClient {
        let (_, inner) = relay::client::new(PeerId::random());
        RelayClient::new(inner)
    }

    fn endpoint() -> ConnectedPoint {
        ConnectedPoint::Dialer {
            address: "/ip4/198.51.100.10/tcp/9000".parse().expect("an address"),
            role_override: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        }
    }

    fn established(client: &mut RelayClient, peer: PeerId, id: usize, others: usize) {
        client.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: peer,
            connection_id: ConnectionId::new_unchecked(id),
            endpoint: &endpoint(),
            failed_addresses: &[],
            other_established: others,
        }));
    }

    fn closed(client: &mut RelayClient, peer: PeerId, id: usize, remaining: usize) {
        client.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: peer,
            connection_id: ConnectionId::new_unchecked(id),
            endpoint: &endpoint(),
            cause: None,
            remaining_established: remaining,
        }));
    }

    #[test]
    fn a_relay_whose_slot_was_given_back_is_not_heard_until_asked_again() {
        let mut client = client();
        let (relay, other) = (PeerId::random(), PeerId::random());
        assert!(client.passes(&relay));
        client.gave_back(relay);
        assert!(!client.passes(&relay), "rule 1");
        assert!(client.passes(&other), "rule 1 is per relay");
        client.asking(relay);
        assert!(client.passes(&relay), "rule 2: asked again");
    }

    #[test]
    fn losing_the_last_connection_to_a_relay_forgets_it() {
        let mut client = client();
        let relay = PeerId::random();
        established(&mut client, relay, 1, 0);
        established(&mut client, relay, 2, 1);
        client.gave_back(relay);
        closed(&mut client, relay, 1, 1);
        assert!(!client.passes(&relay), "one connection is left");
        closed(&mut client, relay, 2, 0);
        assert!(client.passes(&relay), "rule 2: no connection left");
        assert!(client.given_back.is_empty());
    }

    /// Names the left side of an `Either`: libp2p-relay does not export its client handler's
    /// event by name, only as the left side of the behaviour's handler event.
    trait LeftOf {
        type Left;
    }

    impl<L, R> LeftOf for Either<L, R> {
        type Left = L;
    }

    /// The relay client's connection handler's event.
    type HandlerEvent = <THandlerOutEvent<relay::client::Behaviour> as LeftOf>::Left;

    /// The relay's acceptance of a reservation, as the connection handler reports it.
    fn accepted() -> THandlerOutEvent<relay::client::Behaviour> {
        Either::Left(HandlerEvent::ReservationReqAccepted {
            renewal: false,
            limit: None,
        })
    }

    /// libp2p-relay's client at the moment of the bug: it asked a relay for a slot on
    /// connection 1, then the node removed the reservation's listener (gave the slot back)
    /// before the relay's answer came. Returns the client and the relay.
    fn slot_given_back_before_the_answer() -> (relay::client::Behaviour, PeerId) {
        let (mut transport, mut behaviour) = relay::client::new(PeerId::random());
        let relay = PeerId::random();
        behaviour.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: relay,
            connection_id: ConnectionId::new_unchecked(1),
            endpoint: &endpoint(),
            failed_addresses: &[],
            other_established: 0,
        }));
        let listener = ListenerId::next();
        let circuit = endpoint()
            .get_remote_address()
            .clone()
            .with(Protocol::P2p(relay))
            .with(Protocol::P2pCircuit);
        transport.listen_on(listener, circuit).unwrap();
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        // The transport hands the listener's request to the behaviour, which asks the relay.
        let _ = Pin::new(&mut transport).poll(&mut cx);
        assert!(
            matches!(
                behaviour.poll(&mut cx),
                Poll::Ready(ToSwarm::NotifyHandler {
                    peer_id,
                    handler: NotifyHandler::One(_),
                    ..
                }) if peer_id == relay
            ),
            "the client asks the relay for a slot"
        );
        behaviour.on_swarm_event(FromSwarm::ListenerClosed(ListenerClosed {
            listener_id: listener,
            reason: Ok(()),
        }));
        (behaviour, relay)
    }

    /// Canary: the panic this wrapper exists for. (The test prints libp2p-relay's panic
    /// message; that is the expected outcome.)
    #[test]
    fn upstream_relay_client_still_panics_on_a_late_answer_to_a_slot_given_back() {
        let (mut upstream, relay) = slot_given_back_before_the_answer();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            upstream.on_connection_handler_event(relay, ConnectionId::new_unchecked(1), accepted());
        }));
        let Err(panic) = outcome else {
            panic!(
                "libp2p-relay's client took a late answer to a reservation whose listener closed \
                 without panicking: RelayClient may no longer be needed (see its module doc)"
            );
        };
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        assert!(
            message.contains("Relay connection exist"),
            "libp2p-relay's client panics on a late answer for another reason ({message:?}): \
             check that RelayClient still covers it"
        );
    }

    #[test]
    fn a_late_answer_to_a_slot_given_back_does_not_reach_the_client() {
        let (upstream, relay) = slot_given_back_before_the_answer();
        let mut client = RelayClient::new(upstream);
        client.gave_back(relay);
        // Rule 1: dropped, where libp2p-relay's client panics (the canary above).
        client.on_connection_handler_event(relay, ConnectionId::new_unchecked(1), accepted());
    }
}
