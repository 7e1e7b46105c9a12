//! Swarm-wide state of the ENR exchange: the record table, who is connected, and the gossip.
//!
//! Built on libp2p's `request_response` (one stream per message), which it wraps and drives;
//! everything peerfind decides about records happens here, in [`Behaviour::on_request`] and
//! [`Behaviour::on_response`].

use std::collections::{HashMap, HashSet};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use enr::NodeId;
use futures::FutureExt;
use libp2p::PeerId;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{FromSwarm, NetworkBehaviour, THandlerInEvent, ToSwarm};
use rand::seq::IteratorRandom;

use super::protocol::{self, Codec, MAX_RECORDS_PER_MESSAGE, PROTOCOL, Request, Response};
use crate::enr_ext::{self, Enr, RecordError};
use crate::queue::{Bounded, MAX_QUEUED_EVENTS};
use crate::table::{self, Inserted, Refused, Source, Table};

/// Default [`Config::fanout`]: every connected peer when a bootnode has few, a random 16 when
/// it has many; with a few hops that reaches thousands of peers without a storm.
pub const DEFAULT_FANOUT: usize = 16;

/// Default [`Config::find_max`]: one full message of records.
pub const DEFAULT_FIND_MAX: u32 = MAX_RECORDS_PER_MESSAGE as u32;

/// Default [`Config::announce_interval`]: well inside the table TTL (30 min), so a live peer's
/// record never expires at the peers it is connected to.
pub const DEFAULT_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Streams a single peer may have open with us at once; more waits or fails.
const MAX_CONCURRENT_STREAMS: usize = 16;

/// Tries of one announcement of our own record to one peer. A lost announcement would
/// otherwise be repaired only by the next periodic one, minutes later, leaving the peer (a
/// bootnode, typically) without our address meanwhile; a peer that failed three times in a
/// row (each try bounded by [`REQUEST_TIMEOUT`]) is left to the periodic announcement.
const MAX_ANNOUNCE_TRIES: u32 = 3;

/// A peer that does not answer within this time loses its stream.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the ENR exchange.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pass every new or updated record on to connected peers ("Meet Alice"). Bootnodes do;
    /// ordinary peers only answer requests. Default: off.
    pub gossip: bool,
    /// Peers each gossiped record goes to. Default: [`DEFAULT_FANOUT`].
    pub fanout: usize,
    /// Records asked of each newly connected peer. Default: [`DEFAULT_FIND_MAX`].
    pub find_max: u32,
    /// How often the own record is announced again. Default: [`DEFAULT_ANNOUNCE_INTERVAL`].
    pub announce_interval: Duration,
    /// Limits of the record table.
    pub table: table::Config,
    /// Greet a peer (announce, find) only once its identify lists [`PROTOCOL`], reported
    /// through [`Behaviour::on_identified`], and gossip only to such peers; off: greet every
    /// peer on connect. Default: off (a swarm without identify). A node turns it on: peers
    /// that are not peerfind never get streams they would refuse, and a peer's first streams
    /// are identify and ping, as from any libp2p node (py-libp2p's QUIC fails when four
    /// streams, two of them refused, arrive the instant the connection is up).
    pub await_identify: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            gossip: false,
            fanout: DEFAULT_FANOUT,
            find_max: DEFAULT_FIND_MAX,
            announce_interval: DEFAULT_ANNOUNCE_INTERVAL,
            table: table::Config::default(),
            await_identify: false,
        }
    }
}

/// What the rest of the node acts on.
#[derive(Debug, Clone)]
pub enum Event {
    /// A record of a node we did not know entered the table.
    RecordLearned {
        /// The record.
        enr: Enr,
        /// Its key's PeerId.
        peer_id: PeerId,
        /// The peer it came from (the owner itself when announced).
        from: PeerId,
    },
    /// A newer record of a known node replaced the old one.
    RecordUpdated {
        /// The new record.
        enr: Enr,
        /// Its key's PeerId.
        peer_id: PeerId,
        /// The seq it replaced.
        old_seq: u64,
        /// The peer it came from.
        from: PeerId,
    },
    /// A peer sent something that breaks the protocol's rules; it was dropped.
    InputRejected {
        /// The sender.
        peer: PeerId,
        /// What was wrong.
        violation: Violation,
    },
}

/// What the table made of a record offered from outside this protocol ([`Behaviour::offer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// A node we did not know: kept, and passed on like a pushed record.
    New,
    /// A newer record of a known node: kept, and passed on.
    Updated,
    /// That seq (or a newer one) was already held, or it is our own record: nothing changed.
    Known,
}

/// A rule a peer's message broke. Each is logged once, counted, and the message dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The frame broke the wire format (garbage, oversized, too many records).
    #[error("{0}")]
    Wire(String),
    /// A record in the message is not a valid record.
    #[error("invalid record: {0}")]
    Record(#[from] RecordError),
    /// An announcement carried a record of another key than the connection's.
    #[error("announced a record of {record_peer}, not its own")]
    Forged {
        /// Whose record it was.
        record_peer: PeerId,
    },
    /// The table refused the record (stale or conflicting seq).
    #[error("{0}")]
    Refused(#[from] Refused),
}

impl Violation {
    /// A short stable label, for counters and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Violation::Wire(_) => "wire",
            Violation::Record(RecordError::InvalidSignature) => "bad_signature",
            Violation::Record(RecordError::TooLarge { .. }) => "oversized_record",
            Violation::Record(_) => "malformed_record",
            Violation::Forged { .. } => "forged",
            Violation::Refused(Refused::Stale { .. }) => "stale",
            Violation::Refused(Refused::Conflict { .. }) => "conflict",
            Violation::Refused(Refused::Own) => "own",
        }
    }
}

/// The ENR exchange behaviour. See the module doc.
pub struct Behaviour {
    inner: request_response::Behaviour<Codec>,
    config: Config,
    local: Enr,
    table: Table,
    /// Connected peers we greeted: they get our announcements and gossip. Bounded by the
    /// swarm's connections.
    connected: HashSet<PeerId>,
    /// Connected peers that get records another way (other bootnodes, over the bootnodes'
    /// record mesh): "Meet Alice" skips them. A subset of `connected`.
    skipped: HashSet<PeerId>,
    /// Our announcements in flight, with their peer and how many tries this is. Each entry
    /// ends with the answer or the failure, so the map is bounded by the streams in flight.
    announcing: HashMap<OutboundRequestId, (PeerId, u32)>,
    /// For the swarm; at most [`MAX_QUEUED_EVENTS`], the oldest dropped beyond.
    events: Bounded<Event>,
    rejected: std::collections::BTreeMap<&'static str, u64>,
    tick: futures_timer::Delay,
}

impl Behaviour {
    /// A behaviour that announces `local`, the node's own record.
    pub fn new(local: Enr, config: Config) -> Self {
        let rr_config = request_response::Config::default()
            .with_request_timeout(REQUEST_TIMEOUT)
            .with_max_concurrent_streams(MAX_CONCURRENT_STREAMS);
        let inner = request_response::Behaviour::with_codec(
            Codec::default(),
            [(PROTOCOL, ProtocolSupport::Full)],
            rr_config,
        );
        let table = Table::new(config.table.clone(), local.node_id());
        Self {
            inner,
            tick: futures_timer::Delay::new(config.announce_interval),
            config,
            local,
            table,
            connected: HashSet::new(),
            skipped: HashSet::new(),
            announcing: HashMap::new(),
            events: Bounded::new(MAX_QUEUED_EVENTS),
            rejected: Default::default(),
        }
    }

    /// Replaces the own record and announces it to every connected peer ("Update: …").
    pub fn set_local_record(&mut self, enr: Enr) {
        self.local = enr;
        let peers: Vec<PeerId> = self.connected.iter().copied().collect();
        for peer in peers {
            self.announce(peer);
        }
    }

    /// Identify told us the protocols of `peer` (connected): with
    /// [`Config::await_identify`], a peer that speaks [`PROTOCOL`] is greeted now, once per
    /// connection run (until its last connection closes).
    pub fn on_identified<'a>(
        &mut self,
        peer: PeerId,
        protocols: impl IntoIterator<Item = &'a libp2p::StreamProtocol>,
    ) {
        if self.config.await_identify
            && !self.connected.contains(&peer)
            && protocols.into_iter().any(|p| *p == PROTOCOL)
        {
            self.greet(peer);
        }
    }

    /// "Hello (ENR …)", and ask what it knows; from now on it gets our gossip.
    fn greet(&mut self, peer: PeerId) {
        self.connected.insert(peer);
        self.announce(peer);
        self.inner
            .send_request(&peer, Request::Find(self.config.find_max));
    }

    /// A record that reached us by other means than this protocol (the bootnodes' record
    /// mesh), `from` the peer that passed it on: checked and kept exactly like a pushed
    /// record, passed on to connected peers when new or newer, and reported like one.
    pub fn offer(&mut self, bytes: &[u8], from: PeerId) -> Result<Offered, Violation> {
        let enr = enr_ext::decode_bytes(bytes)?;
        let owner = enr_ext::peer_id(&enr)?;
        self.accept(enr, owner, Source::Gossip { from }, from)
    }

    /// Stops pushing records to `peer` while it stays connected: it gets them another way
    /// (a bootnode in the bootnodes' record mesh). It still gets our own record, and answers
    /// and asks as before.
    pub fn skip_pushes_to(&mut self, peer: PeerId) {
        self.skipped.insert(peer);
    }

    /// The known records.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The record of a node id.
    pub fn record(&self, id: &NodeId) -> Option<&table::Entry> {
        self.table.get(id)
    }

    /// Messages dropped so far, by [`Violation::label`].
    pub fn rejected(&self) -> &std::collections::BTreeMap<&'static str, u64> {
        &self.rejected
    }

    fn announce(&mut self, peer: PeerId) {
        self.announce_try(peer, 1);
    }

    fn announce_try(&mut self, peer: PeerId, tries: u32) {
        let record = enr_ext::encode_bytes(&self.local);
        let id = self.inner.send_request(&peer, Request::Announce(record));
        self.announcing.insert(id, (peer, tries));
    }

    /// An announcement of ours failed: try again while the peer stays connected, with the
    /// record we hold now, up to [`MAX_ANNOUNCE_TRIES`] tries.
    fn on_announce_failed(
        &mut self,
        id: OutboundRequestId,
        error: &request_response::OutboundFailure,
    ) {
        let Some((peer, tries)) = self.announcing.remove(&id) else {
            return;
        };
        let unsupported = matches!(
            error,
            request_response::OutboundFailure::UnsupportedProtocols
        );
        if unsupported || tries >= MAX_ANNOUNCE_TRIES || !self.connected.contains(&peer) {
            return;
        }
        tracing::debug!(%peer, %error, tries, "announcing our record failed; trying again");
        self.announce_try(peer, tries + 1);
    }

    fn reject(&mut self, peer: PeerId, violation: Violation) {
        tracing::warn!(%peer, reason = %violation, kind = violation.label(), "dropped ENR message");
        *self.rejected.entry(violation.label()).or_default() += 1;
        self.events
            .push_back(Event::InputRejected { peer, violation });
    }

    fn respond(&mut self, channel: ResponseChannel<Response>, response: Response) {
        // Fails only when the peer already closed the stream; nothing is lost then.
        let _ = self.inner.send_response(channel, response);
    }

    fn on_request(&mut self, peer: PeerId, request: Request, channel: ResponseChannel<Response>) {
        match request {
            Request::Announce(bytes) => {
                let checked = enr_ext::decode_bytes(&bytes)
                    .map_err(Violation::from)
                    .and_then(|enr| match enr_ext::peer_id(&enr) {
                        Ok(owner) if owner == peer => Ok(enr),
                        Ok(owner) => Err(Violation::Forged { record_peer: owner }),
                        Err(e) => Err(e.into()),
                    });
                match checked {
                    Ok(enr) => match self.accept(enr, peer, Source::Announced, peer) {
                        Ok(_) => self.respond(channel, Response::Ack),
                        Err(v) => {
                            self.respond(channel, Response::Reject(v.to_string()));
                            self.reject(peer, v);
                        }
                    },
                    Err(v) => {
                        self.respond(channel, Response::Reject(v.to_string()));
                        self.reject(peer, v);
                    }
                }
            }
            Request::Push(records) => match self.accept_all(peer, records) {
                Ok(()) => self.respond(channel, Response::Ack),
                Err(v) => {
                    self.respond(channel, Response::Reject(v.to_string()));
                    self.reject(peer, v);
                }
            },
            Request::Invalid(violation) => {
                let v = Violation::Wire(violation.to_string());
                self.respond(channel, Response::Reject(v.to_string()));
                self.reject(peer, v);
            }
            Request::Find(max) => {
                let n = (max as usize).min(MAX_RECORDS_PER_MESSAGE);
                let records = self
                    .table
                    .sample(n + 1)
                    .into_iter()
                    .filter(|e| e.peer_id != peer)
                    .take(n)
                    .map(|e| enr_ext::encode_bytes(&e.enr))
                    .collect();
                self.respond(channel, Response::Records(records));
            }
        }
    }

    fn on_response(&mut self, peer: PeerId, response: Response) {
        match response {
            Response::Ack => {}
            Response::Records(records) => {
                if let Err(v) = self.accept_all(peer, records) {
                    self.reject(peer, v);
                }
            }
            Response::Reject(reason) => {
                tracing::debug!(%peer, %reason, "peer refused our ENR message");
            }
        }
    }

    /// Pushed or returned records: every record must decode before any is kept, so a message
    /// with one bad record is dropped whole. Seq races between gossip paths are normal, so a
    /// stale record in a batch is skipped, not held against the sender.
    fn accept_all(&mut self, from: PeerId, records: Vec<Vec<u8>>) -> Result<(), Violation> {
        let mut decoded = Vec::with_capacity(records.len());
        for bytes in &records {
            let enr = enr_ext::decode_bytes(bytes)?;
            let owner = enr_ext::peer_id(&enr)?;
            decoded.push((enr, owner));
        }
        for (enr, owner) in decoded {
            if let Err(v) = self.accept(enr, owner, Source::Gossip { from }, from) {
                tracing::debug!(peer = %from, record = %owner, reason = %v, "skipped record");
            }
        }
        Ok(())
    }

    fn accept(
        &mut self,
        enr: Enr,
        owner: PeerId,
        source: Source,
        from: PeerId,
    ) -> Result<Offered, Violation> {
        match self
            .table
            .insert(enr.clone(), owner, source, Instant::now())
        {
            Ok(Inserted::New) => {
                tracing::info!(
                    node_id = %hex::encode(enr.node_id().raw()), peer = %owner, seq = enr.seq(),
                    nat = enr_ext::is_natted(&enr), %from, enr = %enr.to_base64(),
                    "record learned"
                );
                self.gossip(&enr, owner, from);
                self.events.push_back(Event::RecordLearned {
                    enr,
                    peer_id: owner,
                    from,
                });
                Ok(Offered::New)
            }
            Ok(Inserted::Updated { old_seq }) => {
                tracing::info!(
                    node_id = %hex::encode(enr.node_id().raw()), peer = %owner, old_seq,
                    seq = enr.seq(), nat = enr_ext::is_natted(&enr), %from,
                    enr = %enr.to_base64(), "record updated"
                );
                self.gossip(&enr, owner, from);
                self.events.push_back(Event::RecordUpdated {
                    enr,
                    peer_id: owner,
                    old_seq,
                    from,
                });
                Ok(Offered::Updated)
            }
            Ok(Inserted::Refreshed) | Err(Refused::Own) => Ok(Offered::Known),
            Err(refused) => Err(refused.into()),
        }
    }

    /// "Meet Alice": passes a new or updated record on to up to `fanout` connected peers,
    /// never back to the peer it came from nor to its owner.
    fn gossip(&mut self, enr: &Enr, owner: PeerId, from: PeerId) {
        if !self.config.gossip {
            return;
        }
        let targets = self
            .connected
            .iter()
            .filter(|p| **p != owner && **p != from && !self.skipped.contains(*p))
            .copied()
            .choose_multiple(&mut rand::thread_rng(), self.config.fanout);
        let bytes = enr_ext::encode_bytes(enr);
        for peer in targets {
            self.inner
                .send_request(&peer, Request::Push(vec![bytes.clone()]));
        }
    }

    fn on_tick(&mut self) {
        for id in self.table.expire(Instant::now()) {
            tracing::debug!(node_id = %hex::encode(id.raw()), "record expired");
        }
        let peers: Vec<PeerId> = self.connected.iter().copied().collect();
        for peer in peers {
            self.announce(peer);
        }
    }

    fn on_inner_event(&mut self, event: request_response::Event<Request, Response>) {
        use request_response::{Event as E, Message};
        match &event {
            E::Message {
                message: Message::Response { request_id, .. },
                ..
            } => {
                self.announcing.remove(request_id);
            }
            E::OutboundFailure {
                request_id, error, ..
            } => self.on_announce_failed(*request_id, error),
            _ => {}
        }
        match event {
            E::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.on_request(peer, request, channel),
            E::Message {
                peer,
                message: Message::Response { response, .. },
                ..
            } => self.on_response(peer, response),
            E::InboundFailure {
                peer,
                error: request_response::InboundFailure::Io(e),
                ..
            }
            | E::OutboundFailure {
                peer,
                error: request_response::OutboundFailure::Io(e),
                ..
            } => match protocol::protocol_error(&e) {
                Some(p) => self.reject(peer, Violation::Wire(p.to_string())),
                None => tracing::debug!(%peer, error = %e, "ENR stream failed"),
            },
            E::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound ENR request failed")
            }
            E::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "outbound ENR request failed")
            }
            E::ResponseSent { .. } => {}
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler =
        <request_response::Behaviour<Codec> as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = Event;

    crate::delegate::to_inner!();

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e)
                if e.other_established == 0 && !self.config.await_identify =>
            {
                self.greet(e.peer_id);
            }
            FromSwarm::ConnectionClosed(e) if e.remaining_established == 0 => {
                self.connected.remove(&e.peer_id);
                self.skipped.remove(&e.peer_id);
            }
            _ => {}
        }
        self.inner.on_swarm_event(event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Poll::Ready(ToSwarm::GenerateEvent(event));
            }
            if self.tick.poll_unpin(cx).is_ready() {
                self.tick.reset(self.config.announce_interval);
                self.on_tick();
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
