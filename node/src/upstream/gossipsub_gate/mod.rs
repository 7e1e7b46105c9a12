//! gossipsub, told of a connection only once its peer is known to speak gossipsub, and is
//! admitted to the record mesh.
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
//! [`Held`] could go, were it not also what keeps a non-member's stream unread) nor the
//! subscriptions when told of the connection (then rule 2 can go; rules 1 and 3 to 5 are the
//! mesh's).
//!
//! Why it matters: a bootnode's connections are mostly to peers that run no gossipsub
//! (peerfind peers, most foreign ones), and each got a stream it refused, beside identify and
//! ping, the instant it came up. So the gate holds the connection back from gossipsub until
//! the peer shows it speaks gossipsub, and wraps each handler in [`Held`], not polled (no
//! stream, nothing sent) until the gate releases it.
//!
//! The gate is also where the record mesh keeps non-members out (`crate::mesh` rule 1; not an
//! upstream workaround, but this is where gossipsub hears of connections): gossipsub hears
//! only of the connections of peers the node admitted ([`Gated::admit`], or admitted from
//! the start), so it never sends a non-member a subscription, a message or a table push's
//! trigger, and never reads one from it. A peer's gossipsub stream that arrives before its
//! admission (the proof of membership runs beside identify, so an honest bootnode's stream
//! may come first) is kept unread; one that is still not admitted [`ADMISSION_WAIT`] after
//! its connection came up is dropped, and the peer's gossipsub streams are refused from then
//! on, so a non-member cannot make us buffer more than one stream's window per connection.
//!
//! Rules:
//! 1. A new connection waits, unless its peer is admitted and already showed it speaks
//!    gossipsub: gossipsub is not told of it and its handler is held.
//! 2. A peer shows it speaks gossipsub by listing a gossipsub protocol in identify
//!    ([`Gated::identified`]) or by opening a gossipsub stream to us (its held handler
//!    reports it).
//! 3. A peer is admitted by [`Gated::admit`] until its last connection closes, or from the
//!    start for the peers [`Gated::new`] is given (the configured bootnodes).
//! 4. Once a peer is admitted and speaks gossipsub, every connection of it that waits is
//!    passed on, in order, with the count of its connections gossipsub was told of before
//!    it, and its handler released, with the stream the peer opened meanwhile, unread till
//!    then.
//! 5. A held handler keeps at most one stream the peer opened (the newest; gossipsub's own
//!    handler keeps one too), unread. Still held [`ADMISSION_WAIT`] after the connection came
//!    up, it drops that stream (counted: [`Gated::unadmitted`]) and refuses the peer's
//!    gossipsub streams on that connection until released.
//! 6. A closed connection is always passed on: gossipsub registers a connection when it
//!    makes its handler, whether told of it or not, and forgets it only at its close.
//!
//! The state is one entry per waiting connection, one per connected peer that speaks
//! gossipsub or was admitted, and one per release not yet sent, each gone at the
//! connection's or the peer's last close or once sent: bounded by the connections.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use either::Either;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::DeniedUpgrade;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::handler::{
    ConnectionEvent, ConnectionHandler, ConnectionHandlerEvent, FullyNegotiatedInbound,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler, SubstreamProtocol,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, StreamProtocol, gossipsub};
use tokio::time::{Instant, Sleep};

mod held;
pub use held::{Held, HeldEvent, Release};

/// gossipsub's own connection handler.
type Inner = <gossipsub::Behaviour as NetworkBehaviour>::ConnectionHandler;

/// A gossipsub stream the peer opened, as the connection hands it to a handler.
type InboundStream = FullyNegotiatedInbound<
    <Inner as ConnectionHandler>::InboundProtocol,
    <Inner as ConnectionHandler>::InboundOpenInfo,
>;

/// Rule 5: how long after a connection came up a stream its peer opened waits, unread, for
/// the peer's admission. An honest bootnode is admitted at once (a configured one) or one
/// round trip after identify (a proof of the mesh secret); a peer that is neither by then is
/// no member, and what it sent is dropped.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(10);

/// The protocol ids gossipsub speaks (v1.0 to v1.2).
fn is_gossipsub(protocol: &StreamProtocol) -> bool {
    protocol.as_ref().starts_with("/meshsub/")
}

/// gossipsub behind the gate. See the module doc.
pub struct Gated {
    inner: gossipsub::Behaviour,
    /// Rule 1: connections gossipsub was not told of yet, oldest first per peer.
    waiting: HashMap<PeerId, Vec<(ConnectionId, ConnectedPoint)>>,
    /// Rule 4: connections gossipsub was told of, per peer.
    told: HashMap<PeerId, HashSet<ConnectionId>>,
    /// Rule 2: connected peers that showed they speak gossipsub.
    speaking: HashSet<PeerId>,
    /// Rule 3: connected peers admitted until their last connection closes.
    admitted: HashSet<PeerId>,
    /// Rule 3: peers admitted from the start.
    always: HashSet<PeerId>,
    /// Rule 4: handlers to release; at most one per connection passed on.
    releases: VecDeque<(PeerId, ConnectionId)>,
    /// Rule 5: streams dropped unread, their peer not admitted in time.
    unadmitted: u64,
}

impl Gated {
    /// `inner` behind the gate, with `always` admitted from the start.
    pub fn new(inner: gossipsub::Behaviour, always: impl IntoIterator<Item = PeerId>) -> Self {
        Self {
            inner,
            waiting: HashMap::new(),
            told: HashMap::new(),
            speaking: HashSet::new(),
            admitted: HashSet::new(),
            always: always.into_iter().collect(),
            releases: VecDeque::new(),
            unadmitted: 0,
        }
    }

    /// Identify told us `peer`'s protocols (rule 2).
    pub fn identified<'a>(
        &mut self,
        peer: PeerId,
        mut protocols: impl Iterator<Item = &'a StreamProtocol>,
    ) {
        if protocols.any(is_gossipsub) {
            self.speaking.insert(peer);
            self.pass_on(peer);
        }
    }

    /// Rule 3: `peer`, connected, is admitted until its last connection closes. A peer with
    /// no connection is not (there would be no close to forget it at).
    pub fn admit(&mut self, peer: PeerId) {
        if self.waiting.contains_key(&peer) || self.told.contains_key(&peer) {
            self.admitted.insert(peer);
            self.pass_on(peer);
        }
    }

    /// Whether `peer` is admitted (rule 3).
    pub fn is_admitted(&self, peer: &PeerId) -> bool {
        self.always.contains(peer) || self.admitted.contains(peer)
    }

    /// Rule 5: streams dropped unread so far, their peer not admitted in time.
    pub fn unadmitted(&self) -> u64 {
        self.unadmitted
    }

    /// Rule 4: once `peer` is admitted and speaks gossipsub, gossipsub is told of its waiting
    /// connections.
    fn pass_on(&mut self, peer: PeerId) {
        if !(self.speaking.contains(&peer) && self.is_admitted(&peer)) {
            return;
        }
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

    fn is_told(&self, peer: &PeerId, connection: ConnectionId) -> bool {
        self.told.get(peer).is_some_and(|t| t.contains(&connection))
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
                if self.speaking.contains(&e.peer_id) && self.is_admitted(&e.peer_id) {
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
                    self.admitted.remove(&e.peer_id);
                }
                // Rule 6.
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
        match event {
            Either::Left(event) if self.is_told(&peer_id, connection_id) => self
                .inner
                .on_connection_handler_event(peer_id, connection_id, event),
            // Only a released handler, whose connection gossipsub was told of, polls
            // gossipsub's; nothing else may reach gossipsub.
            Either::Left(_) => {}
            Either::Right(HeldEvent::Opened) => {
                // Rule 2.
                self.speaking.insert(peer_id);
                self.pass_on(peer_id);
            }
            Either::Right(HeldEvent::Dropped) => {
                // Rule 5.
                self.unadmitted += 1;
                tracing::debug!(peer = %peer_id, "dropped the gossipsub stream of a peer not admitted to the record mesh");
            }
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        while let Some((peer_id, connection)) = self.releases.pop_front() {
            // A connection closed meanwhile has no handler to release.
            if self.is_told(&peer_id, connection) {
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

#[cfg(test)]
mod tests;
