//! gossipsub, told of a connection only once its peer is known to speak gossipsub.
//!
//! Works around: libp2p-gossipsub 0.50.1 (Cargo.lock). `Behaviour::
//! handle_established_inbound_connection` and `handle_established_outbound_connection`
//! (`src/behaviour.rs`) queue an `RpcOut::Extensions` message for a peer's first connection
//! the moment they make its handler, whatever the peer speaks, and `Handler::poll`
//! (`src/handler.rs`) asks for an outbound stream as soon as its queue holds a message;
//! `Behaviour::on_connection_established` then queues our subscriptions (`SubscribeMany`).
//! The extensions message came with rust-libp2p PR #6275 (partial messages, libp2p-gossipsub
//! 0.50.0) and is still on rust-libp2p's master of 2026-08-04; in the review of the earlier
//! PR #6119 (gossipsub 1.3, closed) a reviewer pointed out that this same code sends the
//! message to every peer that connects, even those that do not support it. No upstream issue
//! found; behaviour in `src/behaviour.rs`: `Behaviour::handle_established_outbound_connection`.
//! Remove when: gossipsub sends nothing to a peer before the peer shows it speaks gossipsub,
//! neither the extensions at handler creation (once that stops,
//! `upstream_gossipsub_still_opens_a_stream_to_every_new_peer_at_handler_creation` fails and
//! [`Held`] can go) nor the subscriptions when told of the connection (then rules 1 and 2 can
//! go).
//!
//! gossipsub greets every new connection with our subscriptions, on a stream it opens at
//! once. A bootnode's connections are mostly to peers (peerfind peers run no gossipsub, nor
//! do most foreign peers), so each of them got a stream the peer refused, beside identify and
//! ping, the instant it came up: a wasted negotiation per joining peer. This gate holds the connection back from gossipsub
//! until the peer shows it speaks gossipsub.
//!
//! Holding back the swarm's news of the connection is not enough: gossipsub (0.50) queues an
//! extensions message for a peer the moment it makes the connection's handler, and the
//! handler opens a stream for it at once. So the gate also wraps each handler in [`Held`],
//! which is not polled (opens no stream, sends nothing) until the gate releases it.
//!
//! Rules:
//! 1. A new connection waits, unless its peer already showed it speaks gossipsub: gossipsub
//!    is not told of it and its handler is held.
//! 2. A peer shows it by listing a gossipsub protocol in identify ([`Gated::identified`]) or
//!    by any gossipsub event from one of its connections (it opened a gossipsub stream to us):
//!    every connection of it that waits is then passed on, in order, with the count of its
//!    connections gossipsub was told of before it, and its handler released. A held handler
//!    releases itself when the peer opens a gossipsub stream, so that the stream is read.
//! 3. A closed connection is always passed on: gossipsub registers a connection when it
//!    makes its handler, whether told of it or not, and forgets it only at its close.
//!
//! The state is one entry per waiting connection, one per connected peer that speaks
//! gossipsub and one per release not yet sent, each gone at the connection's or the peer's
//! last close or once sent: bounded by the connections.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::{Deref, DerefMut};
use std::task::{Context, Poll};

use either::Either;
use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::handler::{ConnectionEvent, ConnectionHandler, ConnectionHandlerEvent};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler, SubstreamProtocol,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, StreamProtocol, gossipsub};

/// gossipsub's own connection handler.
type Inner = <gossipsub::Behaviour as NetworkBehaviour>::ConnectionHandler;

/// The protocol ids gossipsub speaks (v1.0 to v1.2).
fn is_gossipsub(protocol: &StreamProtocol) -> bool {
    protocol.as_ref().starts_with("/meshsub/")
}

/// gossipsub behind the gate. See the module doc.
pub struct Gated {
    inner: gossipsub::Behaviour,
    /// Rule 1: connections gossipsub was not told of yet, oldest first per peer.
    waiting: HashMap<PeerId, Vec<(ConnectionId, ConnectedPoint)>>,
    /// Rule 2: connections gossipsub was told of, per peer.
    told: HashMap<PeerId, HashSet<ConnectionId>>,
    /// Rule 2: connected peers that showed they speak gossipsub.
    speaking: HashSet<PeerId>,
    /// Rule 2: handlers to release; at most one per connection passed on.
    releases: VecDeque<(PeerId, ConnectionId)>,
}

impl Gated {
    /// `inner` behind the gate.
    pub fn new(inner: gossipsub::Behaviour) -> Self {
        Self {
            inner,
            waiting: HashMap::new(),
            told: HashMap::new(),
            speaking: HashSet::new(),
            releases: VecDeque::new(),
        }
    }

    /// Identify told us `peer`'s protocols (rule 2).
    pub fn identified<'a>(
        &mut self,
        peer: PeerId,
        mut protocols: impl Iterator<Item = &'a StreamProtocol>,
    ) {
        if protocols.any(is_gossipsub) {
            self.speaks(peer);
        }
    }

    /// Rule 2: `peer` speaks gossipsub; gossipsub is told of its waiting connections.
    fn speaks(&mut self, peer: PeerId) {
        self.speaking.insert(peer);
        for (connection, endpoint) in self.waiting.remove(&peer).unwrap_or_default() {
            self.tell(peer, connection, &endpoint);
        }
    }

    fn tell(&mut self, peer: PeerId, connection: ConnectionId, endpoint: &ConnectedPoint) {
        let told = self.told.entry(peer).or_default();
        let other_established = told.len();
        told.insert(connection);
        self.releases.push_back((peer, connection));
        self.inner
            .on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id: peer,
                connection_id: connection,
                endpoint,
                failed_addresses: &[],
                other_established,
            }));
    }

    fn is_waiting(&self, peer: &PeerId, connection: ConnectionId) -> bool {
        self.waiting
            .get(peer)
            .is_some_and(|w| w.iter().any(|(id, _)| *id == connection))
    }
}

impl Deref for Gated {
    type Target = gossipsub::Behaviour;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl DerefMut for Gated {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl NetworkBehaviour for Gated {
    type ConnectionHandler = Held;
    type ToSwarm = gossipsub::Event;

    peerfind_behaviours::forward_pending_connections!(inner);

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
            .map(Held::new)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_outbound_connection(
                connection_id,
                peer,
                addr,
                role_override,
                port_use,
            )
            .map(Held::new)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                if self.speaking.contains(&e.peer_id) {
                    self.tell(e.peer_id, e.connection_id, e.endpoint);
                } else {
                    self.waiting
                        .entry(e.peer_id)
                        .or_default()
                        .push((e.connection_id, e.endpoint.clone()));
                }
            }
            FromSwarm::ConnectionClosed(e) => {
                if let Some(waiting) = self.waiting.get_mut(&e.peer_id) {
                    waiting.retain(|(id, _)| *id != e.connection_id);
                    if waiting.is_empty() {
                        self.waiting.remove(&e.peer_id);
                    }
                }
                if let Some(told) = self.told.get_mut(&e.peer_id) {
                    told.remove(&e.connection_id);
                    if told.is_empty() {
                        self.told.remove(&e.peer_id);
                    }
                }
                if e.remaining_established == 0 {
                    self.speaking.remove(&e.peer_id);
                }
                self.inner.on_swarm_event(FromSwarm::ConnectionClosed(e));
            }
            FromSwarm::AddressChange(ref e) if self.is_waiting(&e.peer_id, e.connection_id) => {
                if let Some(waiting) = self.waiting.get_mut(&e.peer_id) {
                    for (id, endpoint) in waiting.iter_mut() {
                        if *id == e.connection_id {
                            *endpoint = e.new.clone();
                        }
                    }
                }
            }
            other => self.inner.on_swarm_event(other),
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        if self.is_waiting(&peer_id, connection_id) {
            // Rule 2: a held handler opens no stream and is polled only once the peer opened
            // a gossipsub stream, so its event comes from that stream.
            self.speaks(peer_id);
        }
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        while let Some((peer_id, connection)) = self.releases.pop_front() {
            // A connection closed meanwhile has no handler to release.
            if self
                .told
                .get(&peer_id)
                .is_some_and(|t| t.contains(&connection))
            {
                return Poll::Ready(ToSwarm::NotifyHandler {
                    peer_id,
                    handler: NotifyHandler::One(connection),
                    event: Either::Right(Release),
                });
            }
        }
        self.inner.poll(cx).map(|event| event.map_in(Either::Left))
    }
}

/// The gate's word to a held handler: the peer speaks gossipsub.
#[derive(Debug, Clone, Copy)]
pub struct Release;

/// gossipsub's handler, not polled until released (rule 1): it opens no stream and sends
/// nothing while held. Everything else is the inner handler's.
pub struct Held {
    inner: Inner,
    released: bool,
}

impl Held {
    fn new(inner: Inner) -> Self {
        Self {
            inner,
            released: false,
        }
    }
}

impl ConnectionHandler for Held {
    type FromBehaviour = Either<<Inner as ConnectionHandler>::FromBehaviour, Release>;
    type ToBehaviour = <Inner as ConnectionHandler>::ToBehaviour;
    type InboundProtocol = <Inner as ConnectionHandler>::InboundProtocol;
    type OutboundProtocol = <Inner as ConnectionHandler>::OutboundProtocol;
    type InboundOpenInfo = <Inner as ConnectionHandler>::InboundOpenInfo;
    type OutboundOpenInfo = <Inner as ConnectionHandler>::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.inner.listen_protocol()
    }

    fn connection_keep_alive(&self) -> bool {
        self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        if !self.released {
            // Released by an event, after which the connection polls its handler again.
            return Poll::Pending;
        }
        self.inner.poll(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.inner.poll_close(cx)
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        match event {
            Either::Left(event) => self.inner.on_behaviour_event(event),
            Either::Right(Release) => self.released = true,
        }
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        if matches!(event, ConnectionEvent::FullyNegotiatedInbound(_)) {
            // Rule 2: the peer opened a gossipsub stream; the inner handler reads it.
            self.released = true;
        }
        self.inner.on_connection_event(event);
    }
}

#[cfg(test)]
mod tests;
