//! The connection book: every open connection with what the node needs to know of it, and the
//! dials in flight that matter to that knowledge. One owner for all per-connection state, so
//! that a connection's facts are added and removed together.
//!
//! Rules:
//! 1. A connection's kind is fixed when it opens: direct over TCP or QUIC (its remote address
//!    is a plain socket), or relayed (a circuit). Anything else is not kept.
//! 2. A peer counts as dialed from our first dial to it until its last connection closes: an
//!    inbound connection from it then proves nothing about our reachability.
//! 3. A direct connection's [`Leg`] is which local port it left from (confirm rule 8): a
//!    dial from a fresh port (strategy rule 4) or a second TCP connection to the same
//!    address (a twin: the address pair is taken) did not leave from the listen port.
//! 4. What a peer observes on a direct connection is weighed with its leg (confirm rule 8);
//!    on a fresh-port dial it is not even looked at ([`Observation::FreshPort`]).
//! 5. The stranger test (NAT rule 1): an inbound, direct connection from a peer we did not
//!    dial and are not relayed to, nor were within [`PUNCH_GRACE`] (a hole punch's direct
//!    connection may arrive inbound just after the relayed one closed).
//! 6. A relayed connection's close is remembered for [`PUNCH_GRACE`]; older ones are
//!    forgotten whenever another closes, so the memory is bounded by the relayed
//!    connections closed in that time.
//! 7. The best connection to a peer: direct over QUIC, then over TCP, then relayed.
//! 8. Every connection is watched for liveness ([`crate::upkeep::liveness`]) from its opening to its
//!    close; a close says whether liveness found it dead.
//! 9. A peer we chose is one we are dialing (a dial of ours under way) or hold a connection to
//!    that a dial of ours opened; `--max-peers` counts these ([`ConnectionBook::chosen_peers`]).
//!    A connection a peer opened to us is its choice, and counts for none, so strangers that
//!    connect cannot stop our dials.
//! 10. A direct connection keeps the IP it comes from (the observer's group, confirm rule 4)
//!     and the first address its peer reported on it ([`ConnectionBook::reported`]): a later
//!     report that names another is a changed story (confirm rule 10).
//! 11. A dial to a peer's record addresses (strategy rule 4) is told apart from a punch's
//!     or a relay's ([`ConnectionBook::record_dial_pending`]): one may start while a punch's
//!     dial still hangs, and at most one is under way per peer.
//!
//! The state is one entry per open connection and one per dial of ours in flight (removed
//! when it fails or opens): bounded by the swarm's connections and dials.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use libp2p::core::ConnectedPoint;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use peerfind_behaviours::enr_ext::{self, Transport};
use tokio::time::Instant;

use crate::reach::confirm::Leg;
use crate::status;
use crate::upkeep::liveness::{Liveness, Verdict};

/// How long after its relayed connection closed an inbound connection from a peer is still
/// taken for the hole punch's (rule 5): DCUtR's attempts end well within it.
pub(crate) const PUNCH_GRACE: Duration = Duration::from_secs(60);

/// The kind of one connection (rule 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// Straight to the peer.
    Direct(Transport),
    /// Through a relay's circuit.
    Relayed,
}

/// What an address a peer observed on a connection is worth (rule 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Observation {
    /// Not a direct connection we know: nothing to learn.
    Unknown,
    /// A dial from a fresh port (strategy rule 4): not our address.
    FreshPort,
    /// A direct connection over this transport, which left from this port.
    Direct(Transport, Leg),
}

/// A dial of ours in flight.
#[derive(Debug, Clone, Copy)]
struct Dial {
    peer: PeerId,
    /// From a fresh port (rule 3).
    fresh: bool,
    /// To the peer's record addresses (rule 11).
    record: bool,
}

/// One open connection.
#[derive(Debug, Clone, Copy)]
struct Entry {
    peer: PeerId,
    link: Link,
    /// Where a direct connection we dialed went, and over which transport: TCP and QUIC to
    /// the same ip:port are different sockets, so only the same transport makes a twin.
    dialed_to: Option<(SocketAddr, Transport)>,
    /// Which port it left from (direct connections only).
    leg: Leg,
    /// Dialed from a fresh port (rule 3).
    fresh: bool,
    /// Opened by a dial of ours (rule 9).
    chosen: bool,
    /// Whether it answered a ping yet.
    pinged: bool,
    /// The round trip of its last answered ping.
    rtt: Option<Duration>,
}

/// What the node learns when a connection opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opened {
    /// Its kind, when it is one we keep.
    pub(crate) link: Option<Link>,
    /// The best connection to the peer before it.
    pub(crate) before: status::Connection,
}

/// What the node learns when a connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed {
    /// The best connection to the peer before the close.
    pub(crate) before: status::Connection,
    /// Liveness had found it dead (rule 8): the loss is to be acted on.
    pub(crate) lost: bool,
}

/// The connection book. See the module doc.
#[derive(Debug)]
pub(crate) struct ConnectionBook {
    open: HashMap<ConnectionId, Entry>,
    /// Rule 2. Bounded by the dials we make.
    dialed: HashSet<PeerId>,
    /// Our dials in flight (rules 3 and 9).
    dials: HashMap<ConnectionId, Dial>,
    /// Rule 6.
    relay_closed: HashMap<PeerId, Instant>,
    /// Rule 8.
    liveness: Liveness,
    /// Rule 10: each direct connection's remote IP and first report. Bounded like `open`.
    observers: HashMap<ConnectionId, Observer>,
}

/// What a direct connection shows of the peer that reports our address on it (rule 10).
#[derive(Debug, Clone)]
struct Observer {
    /// The IP the connection comes from.
    ip: IpAddr,
    /// The first address the peer reported on it.
    first: Option<Multiaddr>,
}

/// A report on a direct connection, as the book knows it (rule 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reported {
    /// The IP the connection comes from.
    pub(crate) from: IpAddr,
    /// Whether an earlier report on it named another address.
    pub(crate) changed: bool,
}

impl ConnectionBook {
    pub(crate) fn new() -> Self {
        Self {
            open: HashMap::new(),
            dialed: HashSet::new(),
            dials: HashMap::new(),
            relay_closed: HashMap::new(),
            liveness: Liveness::new(),
            observers: HashMap::new(),
        }
    }

    /// We started a dial to `peer` (rules 2 and 9); `fresh` when it leaves from a fresh port
    /// (rule 3).
    pub(crate) fn dialing(&mut self, peer: PeerId, id: ConnectionId, fresh: bool) {
        self.dialed.insert(peer);
        let record = false;
        self.dials.insert(
            id,
            Dial {
                peer,
                fresh,
                record,
            },
        );
    }

    /// The dial `id` just booked by [`Self::dialing`] goes to its peer's record addresses
    /// (rule 11).
    pub(crate) fn is_record_dial(&mut self, id: ConnectionId) {
        if let Some(dial) = self.dials.get_mut(&id) {
            dial.record = true;
        }
    }

    /// Whether a dial to `peer`'s record addresses is under way (rule 11).
    pub(crate) fn record_dial_pending(&self, peer: &PeerId) -> bool {
        self.dials.values().any(|d| d.peer == *peer && d.record)
    }

    /// A dial failed.
    pub(crate) fn dial_failed(&mut self, id: ConnectionId) {
        self.dials.remove(&id);
    }

    /// A connection opened (rules 1, 3 and 8).
    pub(crate) fn opened(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        endpoint: &ConnectedPoint,
        now: Instant,
    ) -> Opened {
        let before = self.best(&peer);
        let dial = self.dials.remove(&id);
        let (chosen, fresh) = (dial.is_some(), dial.is_some_and(|d| d.fresh));
        self.liveness.opened(id, now);
        let link = if endpoint.is_relayed() {
            Some(Link::Relayed)
        } else {
            enr_ext::socket_of(endpoint.get_remote_address()).map(|(_, _, t)| Link::Direct(t))
        };
        if let (Some(Link::Direct(_)), Some((ip, ..))) =
            (link, enr_ext::socket_of(endpoint.get_remote_address()))
        {
            self.observers.insert(id, Observer { ip, first: None });
        }
        if let Some(link) = link {
            let dialed_to = endpoint
                .is_dialer()
                .then(|| enr_ext::socket_of(endpoint.get_remote_address()))
                .flatten()
                .map(|(ip, port, t)| (SocketAddr::new(ip, port), t));
            let twin = dialed_to.is_some()
                && self
                    .open
                    .values()
                    .any(|e| e.link != Link::Relayed && e.dialed_to == dialed_to);
            let leg = match link {
                Link::Direct(_) if fresh => Leg::OtherPort,
                Link::Direct(transport) => Leg::of(endpoint, transport, twin),
                Link::Relayed => Leg::OtherPort,
            };
            let entry = Entry {
                peer,
                link,
                dialed_to,
                leg,
                fresh,
                chosen,
                pinged: false,
                rtt: None,
            };
            self.open.insert(id, entry);
        }
        Opened { link, before }
    }

    /// A connection closed; `remaining` connections to its peer stay open.
    pub(crate) fn closed(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        remaining: u32,
        now: Instant,
    ) -> Closed {
        let before = self.best(&peer);
        self.observers.remove(&id);
        if let Some(Entry {
            link: Link::Relayed,
            ..
        }) = self.open.remove(&id)
        {
            self.relay_closed
                .retain(|_, at| now.duration_since(*at) < PUNCH_GRACE);
            self.relay_closed.insert(peer, now);
        }
        self.dials.remove(&id);
        if remaining == 0 {
            self.dialed.remove(&peer);
        }
        let lost = self.liveness.closed(id);
        Closed { before, lost }
    }

    /// What an address observed on `id` is worth (rule 4).
    pub(crate) fn observation(&self, id: ConnectionId) -> Observation {
        match self.open.get(&id) {
            Some(Entry {
                link: Link::Direct(_),
                fresh: true,
                ..
            }) => Observation::FreshPort,
            Some(Entry {
                link: Link::Direct(transport),
                leg,
                ..
            }) => Observation::Direct(*transport, *leg),
            _ => Observation::Unknown,
        }
    }

    /// The peer on direct connection `id` reported `observed` (rule 10): where the connection
    /// comes from, and whether it reported another address before. The first report is kept.
    /// `None` for a connection that is not direct or not open.
    pub(crate) fn reported(&mut self, id: ConnectionId, observed: &Multiaddr) -> Option<Reported> {
        let observer = self.observers.get_mut(&id)?;
        let first = observer.first.get_or_insert_with(|| observed.clone());
        Some(Reported {
            from: observer.ip,
            changed: first != observed,
        })
    }

    /// The stranger test (rule 5) for a connection that just opened.
    pub(crate) fn is_stranger(
        &self,
        peer: &PeerId,
        endpoint: &ConnectedPoint,
        now: Instant,
    ) -> bool {
        let relayed_to = self
            .open
            .values()
            .any(|e| e.peer == *peer && e.link == Link::Relayed)
            || self
                .relay_closed
                .get(peer)
                .is_some_and(|at| now.duration_since(*at) < PUNCH_GRACE);
        !endpoint.is_dialer()
            && !endpoint.is_relayed()
            && !relayed_to
            && !self.dialed.contains(peer)
    }

    /// How many peers we chose (rule 9), leaving out those `except` names (the bootnodes):
    /// what `--max-peers` counts.
    pub(crate) fn chosen_peers(&self, except: impl Fn(&PeerId) -> bool) -> usize {
        let dialing = self.dials.values().map(|d| d.peer);
        let connected = self.open.values().filter(|e| e.chosen).map(|e| e.peer);
        dialing
            .chain(connected)
            .filter(|p| !except(p))
            .collect::<HashSet<_>>()
            .len()
    }

    /// Whether we dialed `peer` and are still connected or dialing (rule 2).
    pub(crate) fn was_dialed(&self, peer: &PeerId) -> bool {
        self.dialed.contains(peer)
    }

    /// The peer and kind of an open connection.
    pub(crate) fn get(&self, id: ConnectionId) -> Option<(PeerId, Link)> {
        self.open.get(&id).map(|e| (e.peer, e.link))
    }

    /// The relayed connections to `peer`, but `except`.
    pub(crate) fn relayed_to(&self, peer: &PeerId, except: ConnectionId) -> Vec<ConnectionId> {
        self.open
            .iter()
            .filter(|(id, e)| e.peer == *peer && e.link == Link::Relayed && **id != except)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The best connection to `peer` (rule 7).
    pub(crate) fn best(&self, peer: &PeerId) -> status::Connection {
        let mut best = status::Connection::None;
        for e in self.open.values().filter(|e| e.peer == *peer) {
            match e.link {
                Link::Direct(Transport::Quic) => {
                    return status::Connection::Direct { transport: "quic" };
                }
                Link::Direct(Transport::Tcp) => {
                    best = status::Connection::Direct { transport: "tcp" }
                }
                Link::Relayed if best == status::Connection::None => {
                    best = status::Connection::Relayed
                }
                Link::Relayed => {}
            }
        }
        best
    }

    /// The transports of the open direct connections to `peer`, QUIC first.
    pub(crate) fn transports_of(&self, peer: &PeerId) -> Vec<&'static str> {
        let has = |t: Transport| {
            self.open
                .values()
                .any(|e| e.peer == *peer && e.link == Link::Direct(t))
        };
        [(Transport::Quic, "quic"), (Transport::Tcp, "tcp")]
            .into_iter()
            .filter(|(t, _)| has(*t))
            .map(|(_, name)| name)
            .collect()
    }

    /// `peer`'s direct connections: each one's transport, and for those that left from our
    /// listen port the first address `peer` reported on it (netcheck rule 1).
    pub(crate) fn reports_of(&self, peer: &PeerId) -> Vec<(Transport, Option<Multiaddr>)> {
        self.open
            .iter()
            .filter(|(_, e)| e.peer == *peer)
            .filter_map(|(id, e)| match e.link {
                Link::Direct(t) => Some((
                    t,
                    (e.leg == Leg::ListenPort && !e.fresh)
                        .then(|| self.observers.get(id).and_then(|o| o.first.clone()))
                        .flatten(),
                )),
                Link::Relayed => None,
            })
            .collect()
    }

    /// Whether a direct connection to `peer` from our listen port has not yet told us the
    /// address it sees (its identify is on its way): the report [`Self::reports_of`] would
    /// list. Ends with the report or the connection.
    pub(crate) fn report_pending(&self, peer: &PeerId) -> bool {
        self.open.iter().any(|(id, e)| {
            e.peer == *peer
                && matches!(e.link, Link::Direct(_))
                && e.leg == Leg::ListenPort
                && !e.fresh
                && self.observers.get(id).is_some_and(|o| o.first.is_none())
        })
    }

    /// Open connections: (direct, relayed).
    pub(crate) fn counts(&self) -> (u64, u64) {
        let relayed = self
            .open
            .values()
            .filter(|e| e.link == Link::Relayed)
            .count() as u64;
        (self.open.len() as u64 - relayed, relayed)
    }

    /// Every peer with an open connection, once each.
    pub(crate) fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        let mut seen = HashSet::new();
        self.open
            .values()
            .map(|e| e.peer)
            .filter(move |p| seen.insert(*p))
    }

    /// A ping on `id` was answered after `rtt` (rule 8). Says whether it is the connection's
    /// first: data flows both ways on it.
    pub(crate) fn ping_answered(&mut self, id: ConnectionId, now: Instant, rtt: Duration) -> bool {
        self.liveness.answered(id, now);
        self.open.get_mut(&id).is_some_and(|e| {
            e.rtt = Some(rtt);
            !std::mem::replace(&mut e.pinged, true)
        })
    }

    /// The round trip of the last answered ping on the fastest open connection to `peer`.
    pub(crate) fn rtt_of(&self, peer: &PeerId) -> Option<Duration> {
        self.open
            .values()
            .filter(|e| e.peer == *peer)
            .filter_map(|e| e.rtt)
            .min()
    }

    /// libp2p reported a failed ping on `id`: whether to close it now.
    pub(crate) fn ping_failed(&mut self, id: ConnectionId) -> Option<Verdict> {
        self.liveness.failed(id)
    }

    /// The peer on `id` does not speak ping: it is no longer watched.
    pub(crate) fn ping_unsupported(&mut self, id: ConnectionId) {
        self.liveness.unsupported(id);
    }

    /// When the next connection runs out of its liveness budget.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.liveness.next_deadline()
    }

    /// The connections found dead by `now`, with their peers; the caller closes them.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<(ConnectionId, Option<PeerId>)> {
        self.liveness
            .expired(now)
            .into_iter()
            .map(|id| (id, self.open.get(&id).map(|e| e.peer)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
