//! The skeleton both peerfind protocols share: a libp2p `request_response` behaviour (one
//! stream per message), the protocol's rules beside it, and a bounded queue of the rules'
//! events for the swarm.
//!
//! [`crate::gossip`] and [`crate::intro`] each write only their [`Rules`]: what to do with a
//! request, a response, a failure, a peer that comes or goes, and (gossip) a timer. Accepting
//! connections, handing handler events on and driving the inner behaviour is written once,
//! here, in [`Exchange`]'s `NetworkBehaviour`.

use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::request_response::{
    self, Codec, InboundFailure, OutboundFailure, OutboundRequestId, ProtocolSupport,
    ResponseChannel,
};
use libp2p::swarm::{FromSwarm, NetworkBehaviour, THandlerInEvent, ToSwarm};
use libp2p::{PeerId, StreamProtocol};

use crate::queue::{Bounded, MAX_QUEUED_EVENTS};
use crate::remotes::Remotes;

/// A protocol's request type.
pub type Request<R> = <<R as Rules>::Codec as Codec>::Request;
/// A protocol's response type.
pub type Response<R> = <<R as Rules>::Codec as Codec>::Response;

/// How one protocol's streams are set up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The protocol's name.
    pub protocol: StreamProtocol,
    /// A request not answered within this time fails.
    pub request_timeout: Duration,
    /// Streams one peer may have open with us at once.
    pub max_concurrent_streams: usize,
}

/// What a protocol adds to the skeleton. Each method gets [`Io`] to send and to report.
pub trait Rules: Send + 'static {
    /// The protocol's codec.
    type Codec: Codec<Protocol = StreamProtocol> + Default + Clone + Send + 'static;
    /// What the protocol reports to the swarm.
    type Event: Send + 'static;

    /// A peer's request.
    fn on_request(&mut self, io: &mut Io<'_, Self>, inbound: Inbound<Self>);

    /// The answer to our request `id`.
    fn on_response(
        &mut self,
        io: &mut Io<'_, Self>,
        peer: PeerId,
        id: OutboundRequestId,
        response: Response<Self>,
    );

    /// Our request `id` failed.
    fn on_outbound_failure(
        &mut self,
        io: &mut Io<'_, Self>,
        peer: PeerId,
        id: OutboundRequestId,
        error: OutboundFailure,
    );

    /// A peer's request could not be read or answered.
    fn on_inbound_failure(&mut self, io: &mut Io<'_, Self>, peer: PeerId, error: InboundFailure);

    /// `peer`'s first connection opened.
    fn on_connected(&mut self, _io: &mut Io<'_, Self>, _peer: PeerId) {}

    /// `peer`'s last connection closed.
    fn on_disconnected(&mut self, _peer: PeerId) {}

    /// Polled before the inner behaviour: timers. Says whether it did something.
    fn poll_timers(&mut self, _io: &mut Io<'_, Self>, _cx: &mut Context<'_>) -> bool {
        false
    }
}

/// A peer's request, with the channel to answer it on.
pub struct Inbound<R: Rules + ?Sized> {
    /// Who asks.
    pub peer: PeerId,
    /// What.
    pub request: Request<R>,
    /// Where the answer goes.
    pub channel: ResponseChannel<Response<R>>,
}

/// What the rules may do: send requests and responses, and report events.
pub struct Io<'a, R: Rules + ?Sized> {
    inner: &'a mut request_response::Behaviour<R::Codec>,
    events: &'a mut Bounded<R::Event>,
    remotes: &'a Remotes,
}

impl<R: Rules + ?Sized> Io<'_, R> {
    /// Sends `request` to `peer` (dialing it if needed).
    pub fn send_request(&mut self, peer: &PeerId, request: Request<R>) -> OutboundRequestId {
        self.inner.send_request(peer, request)
    }

    /// Answers a request. It fails only when the peer already closed the stream, so nothing
    /// is lost by ignoring that.
    pub fn send_response(&mut self, channel: ResponseChannel<Response<R>>, response: Response<R>) {
        let _ = self.inner.send_response(channel, response);
    }

    /// Reports `event` to the swarm; at most [`MAX_QUEUED_EVENTS`] wait, the oldest dropped
    /// beyond.
    pub fn report(&mut self, event: R::Event) {
        self.events.push_back(event);
    }

    /// What we see of each connected peer's address ([`crate::remotes`]).
    pub fn remotes(&self) -> &Remotes {
        self.remotes
    }
}

/// A protocol's behaviour: `request_response` driven by `rules`. See the module doc.
pub struct Exchange<R: Rules> {
    inner: request_response::Behaviour<R::Codec>,
    events: Bounded<R::Event>,
    remotes: Remotes,
    rules: R,
}

impl<R: Rules> Exchange<R> {
    /// A behaviour speaking the protocol of `settings`, with `rules`.
    pub fn with_rules(settings: Settings, rules: R) -> Self {
        let config = request_response::Config::default()
            .with_request_timeout(settings.request_timeout)
            .with_max_concurrent_streams(settings.max_concurrent_streams);
        Self {
            inner: request_response::Behaviour::with_codec(
                R::Codec::default(),
                [(settings.protocol, ProtocolSupport::Full)],
                config,
            ),
            events: Bounded::new(MAX_QUEUED_EVENTS),
            remotes: Remotes::default(),
            rules,
        }
    }

    /// What we see of each connected peer's address.
    pub fn remotes(&self) -> &Remotes {
        &self.remotes
    }

    /// The rules.
    pub fn rules(&self) -> &R {
        &self.rules
    }

    /// The rules, to change their state.
    pub fn rules_mut(&mut self) -> &mut R {
        &mut self.rules
    }

    /// Runs `f` with the rules and what they may do.
    pub fn with<T>(&mut self, f: impl FnOnce(&mut R, &mut Io<'_, R>) -> T) -> T {
        let mut io = Io {
            inner: &mut self.inner,
            events: &mut self.events,
            remotes: &self.remotes,
        };
        f(&mut self.rules, &mut io)
    }

    fn on_inner_event(&mut self, event: request_response::Event<Request<R>, Response<R>>) {
        use request_response::{Event as E, Message};
        match event {
            E::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let inbound = Inbound {
                    peer,
                    request,
                    channel,
                };
                self.with(|r, io| r.on_request(io, inbound))
            }
            E::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => self.with(|r, io| r.on_response(io, peer, request_id, response)),
            E::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => self.with(|r, io| r.on_outbound_failure(io, peer, request_id, error)),
            E::InboundFailure { peer, error, .. } => {
                self.with(|r, io| r.on_inbound_failure(io, peer, error))
            }
            E::ResponseSent { .. } => {}
        }
    }
}

impl<R: Rules> NetworkBehaviour for Exchange<R> {
    type ConnectionHandler =
        <request_response::Behaviour<R::Codec> as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = R::Event;

    crate::forward_connection_handling!(inner);

    crate::forward_handler_events!(inner);

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                self.remotes
                    .established(e.peer_id, e.connection_id, e.endpoint);
                if e.other_established == 0 {
                    self.with(|r, io| r.on_connected(io, e.peer_id));
                }
            }
            FromSwarm::ConnectionClosed(e) => {
                self.remotes.closed(&e.peer_id, e.connection_id);
                if e.remaining_established == 0 {
                    self.rules.on_disconnected(e.peer_id);
                }
            }
            _ => {}
        }
        self.inner.on_swarm_event(event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<R::Event, THandlerInEvent<Self>>> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Poll::Ready(ToSwarm::GenerateEvent(event));
            }
            if self.with(|r, io| r.poll_timers(io, cx)) {
                continue;
            }
            match self.inner.poll(cx) {
                Poll::Ready(ToSwarm::GenerateEvent(event)) => self.on_inner_event(event),
                Poll::Ready(other) => {
                    return Poll::Ready(other.map_out(|_| unreachable!("handled above")));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
