//! Round trips on demand, for `peerfind ping`: `/peerfind/ping/1.0.0`.
//!
//! libp2p's ping runs on its own schedule (every 15 s here, for liveness) and takes no
//! requests, so a diagnostic that wants a round trip now, over a connection it picks, needs
//! its own pinger. It cannot speak `/ipfs/ping/1.0.0`: a rust-libp2p peer answers one inbound
//! ping stream per connection and drops the older one when another arrives, so each of our
//! rounds would break the stream our regular ping uses; two such breaks in a row and libp2p
//! reports a failure, which liveness takes for a dead connection. The wire format is ping's
//! (32 random bytes, echoed), under a protocol name of its own, so the two never meet.
//!
//! Rules:
//! 1. A round goes over the peer's best open connection: direct over relayed, QUIC over TCP,
//!    the newest first. No connection: no round.
//! 2. A connection carries one round at a time over one stream, reused while it works;
//!    [`MAX_QUEUED`] more may wait, beyond that a round fails at once as busy.
//! 3. A round not answered within [`ROUND_TIMEOUT`] fails, and so do the rounds of a connection
//!    that closes.
//! 4. Answering: one inbound stream per connection (a newer one replaces it), at most one
//!    answer per [`ANSWER_PACE`]: a stranger cannot make us echo at line rate.
//!
//! Every round ends in exactly one event. State: the open connections of each peer and the
//! rounds in flight, both bounded by the swarm's connections (and rule 2).

mod handler;

use std::collections::{HashMap, VecDeque};
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::core::{Endpoint, transport::PortUse};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, StreamProtocol};

use crate::enr_ext::{self, Transport};

pub use handler::Handler;

/// The protocol's name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/peerfind/ping/1.0.0");

/// How long a round may take (rule 3): a relayed circuit's round trip on a loaded link is
/// well under a second; this leaves room for opening the stream first.
pub const ROUND_TIMEOUT: Duration = Duration::from_secs(10);

/// Rounds that may wait behind the one in flight on a connection (rule 2).
pub const MAX_QUEUED: usize = 8;

/// The shortest time between two answers on one connection (rule 4): ten a second is more
/// than any person or script needs, and at most 320 bytes a second of echo.
pub const ANSWER_PACE: Duration = Duration::from_millis(100);

/// Names one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoundId(u64);

/// The connection a round goes over (rule 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// The connection.
    pub connection: ConnectionId,
    /// Its remote address; for a relayed one, the relay's address with `/p2p-circuit`.
    pub remote: Multiaddr,
    /// Through a relay's circuit.
    pub relayed: bool,
    /// Its transport (for a relayed one, the transport to the relay), when known.
    pub transport: Option<Transport>,
}

/// Why a round failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No answer within [`ROUND_TIMEOUT`].
    #[error("no answer within {}s", ROUND_TIMEOUT.as_secs())]
    Timeout,
    /// The peer does not speak [`PROTOCOL`] (a peer that is not peerfind).
    #[error("the peer does not speak {PROTOCOL}")]
    Unsupported,
    /// Too many rounds wait on the connection (rule 2).
    #[error("{MAX_QUEUED} rounds already wait on this connection")]
    Busy,
    /// The connection closed before the answer (rule 3).
    #[error("the connection closed")]
    Closed,
    /// The stream failed, or the answer was not the echo.
    #[error("{0}")]
    Stream(String),
}

/// The end of one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Which round.
    pub round: RoundId,
    /// The peer.
    pub peer: PeerId,
    /// The connection it went over.
    pub connection: ConnectionId,
    /// Its round trip, or why there is none.
    pub result: Result<Duration, Failure>,
}

/// One open connection of a peer.
#[derive(Debug, Clone)]
struct Conn {
    path: Path,
    /// Order of opening: the newest wins ties (rule 1).
    opened: u64,
}

impl Conn {
    /// Rule 1's order: direct first, then QUIC, then the newest.
    fn rank(&self) -> (bool, bool, u64) {
        (
            !self.path.relayed,
            self.path.transport == Some(Transport::Quic),
            self.opened,
        )
    }
}

/// The behaviour. See the module doc.
#[derive(Debug, Default)]
pub struct Behaviour {
    connections: HashMap<PeerId, Vec<Conn>>,
    /// Rounds sent to a handler and not ended, by connection (rule 3).
    in_flight: HashMap<RoundId, (PeerId, ConnectionId)>,
    events: VecDeque<ToSwarm<Event, RoundId>>,
    next_round: u64,
    opened: u64,
}

impl Behaviour {
    /// A pinger with no connection yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a round to `peer` over its best connection (rule 1): the round and the path it
    /// takes, `None` when no connection to `peer` is open. Its end comes as an [`Event`].
    pub fn ping(&mut self, peer: PeerId) -> Option<(RoundId, Path)> {
        let best = self
            .connections
            .get(&peer)?
            .iter()
            .max_by_key(|c| c.rank())?;
        let path = best.path.clone();
        self.next_round += 1;
        let round = RoundId(self.next_round);
        self.in_flight.insert(round, (peer, path.connection));
        self.events.push_back(ToSwarm::NotifyHandler {
            peer_id: peer,
            handler: NotifyHandler::One(path.connection),
            event: round,
        });
        Some((round, path))
    }

    /// Rounds not ended yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// A connection opened; `via` is the address that tells how: the remote address of one
    /// we dialed, the local (listen) address of one we accepted, since an accepted circuit's
    /// remote address is only the peer's `/p2p/…`.
    fn opened(&mut self, peer: PeerId, connection: ConnectionId, via: &Multiaddr) {
        self.opened += 1;
        let relayed = via.iter().any(|p| p == Protocol::P2pCircuit);
        let remote = via;
        let plain: Multiaddr = remote
            .iter()
            .take_while(|p| !matches!(p, Protocol::P2p(_) | Protocol::P2pCircuit))
            .collect();
        let path = Path {
            connection,
            remote: remote.clone(),
            relayed,
            transport: enr_ext::socket_of(&plain).map(|(_, _, t)| t),
        };
        self.connections.entry(peer).or_default().push(Conn {
            path,
            opened: self.opened,
        });
    }

    fn closed(&mut self, peer: PeerId, connection: ConnectionId) {
        if let Some(conns) = self.connections.get_mut(&peer) {
            conns.retain(|c| c.path.connection != connection);
            if conns.is_empty() {
                self.connections.remove(&peer);
            }
        }
        // Rule 3: its rounds end now; the handler that would have answered is gone.
        let ended: Vec<RoundId> = self
            .in_flight
            .iter()
            .filter(|(_, (_, c))| *c == connection)
            .map(|(r, _)| *r)
            .collect();
        for round in ended {
            self.in_flight.remove(&round);
            self.events.push_back(ToSwarm::GenerateEvent(Event {
                round,
                peer,
                connection,
                result: Err(Failure::Closed),
            }));
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let relayed = local.iter().any(|p| p == Protocol::P2pCircuit);
        self.opened(peer, connection, if relayed { local } else { remote });
        Ok(Handler::new())
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        remote: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.opened(peer, connection, remote);
        Ok(Handler::new())
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id,
            connection_id,
            ..
        }) = event
        {
            self.closed(peer_id, connection_id);
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        (round, result): THandlerOutEvent<Self>,
    ) {
        // A round the behaviour no longer knows ended already (rule 3): once is enough.
        if self.in_flight.remove(&round).is_some() {
            self.events.push_back(ToSwarm::GenerateEvent(Event {
                round,
                peer,
                connection,
                result,
            }));
        }
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        match self.events.pop_front() {
            Some(event) => Poll::Ready(event),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests;
