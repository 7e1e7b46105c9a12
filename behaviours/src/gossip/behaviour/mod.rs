//! Swarm-wide state of the ENR exchange: the record table, who is connected, and the gossip.
//!
//! Built on the shared `request_response` skeleton ([`crate::exchange`]); everything
//! peerfind decides about records happens here, in [`Gossip`]'s rules: what a request or a
//! response does to the table, and what is passed on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::task::Context;
use std::time::{Duration, Instant};

use enr::NodeId;
use futures::FutureExt;
use libp2p::PeerId;
use libp2p::request_response::{
    InboundFailure, OutboundFailure, OutboundRequestId, ResponseChannel,
};
use rand::seq::IteratorRandom;

use super::admission::{self, Unproven};
use super::config::Config;
use super::outbox::Outboxes;
use super::protocol::{self, Codec, MAX_RECORDS_PER_MESSAGE, PROTOCOL, Request, Response};
use super::violation::Violation;
use crate::enr_ext::{self, Enr};
use crate::exchange::{self, Exchange, Inbound, Io, Rules};
use crate::ip_group::Group;
use crate::limiter::{Limit, RateLimiter};
use crate::table::{self, Inserted, Refused, Source, Table};

mod rules;

/// Streams a single peer may have open with us at once; more waits or fails.
const MAX_CONCURRENT_STREAMS: usize = 16;

/// Tries of one announcement of our own record to one peer. A lost announcement would
/// otherwise be repaired only by the next periodic one, minutes later, leaving the peer (a
/// bootnode, typically) without our address meanwhile; a peer that failed three times in a
/// row (each try bounded by [`REQUEST_TIMEOUT`]) is left to the periodic announcement.
const MAX_ANNOUNCE_TRIES: u32 = 3;

/// A peer that does not answer within this time loses its stream.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The ENR exchange behaviour: the shared skeleton with [`Gossip`]'s rules. See the module
/// doc.
pub type Behaviour = Exchange<Gossip>;

/// The ENR exchange's rules and state.
pub struct Gossip {
    config: Config,
    local: Enr,
    table: Table,
    /// Connected peers we greeted: they get our announcements and gossip. Bounded by the
    /// swarm's connections.
    connected: HashSet<PeerId>,
    /// Connected peers that get records another way (other bootnodes, over the bootnodes'
    /// record mesh): "Meet Alice" skips them. A subset of `connected`.
    skipped: HashSet<PeerId>,
    /// Connected peers whose passed-on records we take beside the configured ones
    /// (admission rule 4): mesh members admitted on proof. A subset of the connected peers,
    /// each gone at its last connection's close.
    vouched: HashSet<PeerId>,
    /// Our announcements in flight, with their peer and how many tries this is. Each entry
    /// ends with the answer or the failure, so the map is bounded by the streams in flight.
    announcing: HashMap<OutboundRequestId, (PeerId, u32)>,
    /// Records waiting to be pushed to each peer, sent in batches (see `outbox.rs`).
    outboxes: Outboxes,
    /// Messages dropped, by [`Violation::label`]: a fixed set of labels.
    rejected: BTreeMap<&'static str, u64>,
    /// Requests counted per peer and address block before any work (`rate.rs`).
    rates: super::rate::Counts,
    /// When each kind of violation was last logged at warn: once a minute each, the rest at
    /// debug, so a flood of bad messages writes a line a minute, not a line a message.
    logged: RateLimiter<&'static str>,
    tick: futures_timer::Delay,
}

impl Exchange<Gossip> {
    /// A behaviour that announces `local`, the node's own record.
    pub fn new(local: Enr, config: Config) -> Self {
        let settings = exchange::Settings {
            protocol: PROTOCOL,
            request_timeout: REQUEST_TIMEOUT,
            max_concurrent_streams: MAX_CONCURRENT_STREAMS,
        };
        let table = Table::new(config.table.clone(), local.node_id());
        let rates = super::rate::Counts::new(config.rates);
        let rules = Gossip {
            outboxes: Outboxes::new(config.table.capacity),
            tick: futures_timer::Delay::new(config.announce_interval),
            config,
            local,
            table,
            connected: HashSet::new(),
            skipped: HashSet::new(),
            vouched: HashSet::new(),
            announcing: HashMap::new(),
            rejected: BTreeMap::new(),
            rates,
            logged: RateLimiter::new(Limit {
                count: 1,
                window: Duration::from_secs(60),
            }),
        };
        Exchange::with_rules(settings, rules)
    }

    /// Replaces the own record and announces it to every connected peer ("Update: …").
    pub fn set_local_record(&mut self, enr: Enr) {
        self.with(|g, io| {
            g.local = enr;
            g.announce_all(io);
        });
    }

    /// Identify told us the protocols of `peer` (connected): with
    /// [`Config::await_identify`], a peer that speaks [`PROTOCOL`] is greeted now, once per
    /// connection run (until its last connection closes).
    pub fn on_identified<'a>(
        &mut self,
        peer: PeerId,
        protocols: impl IntoIterator<Item = &'a libp2p::StreamProtocol>,
    ) {
        self.with(|g, io| {
            if g.config.await_identify
                && !g.connected.contains(&peer)
                && protocols.into_iter().any(|p| *p == PROTOCOL)
            {
                g.greet(io, peer);
            }
        });
    }

    /// `peer` (connected) is known to speak [`PROTOCOL`] without its identify (a bootnode
    /// named by its record): with [`Config::await_identify`] it is greeted now instead of a
    /// round trip later, once per connection run.
    pub fn on_known_speaker(&mut self, peer: PeerId) {
        self.with(|g, io| {
            if g.config.await_identify && !g.connected.contains(&peer) {
                g.greet(io, peer);
            }
        });
    }

    /// A record that reached us by other means than this protocol (the bootnodes' record
    /// mesh), `from` the peer that passed it on: checked and kept exactly like a pushed
    /// record, passed on to connected peers when new or newer, and reported like one.
    /// Admission rule 4 is not applied here: who may publish on the mesh is the mesh's to
    /// decide (SECURITY.md says what it checks today).
    pub fn offer(&mut self, bytes: &[u8], from: PeerId) -> Result<Offered, Violation> {
        // Table rule 4: a record the mesh brings again is renewed, and not verified again.
        if self.rules_mut().table.renew(bytes, Instant::now()) {
            return Ok(Offered::Known);
        }
        let enr = enr_ext::decode_bytes(bytes)?;
        let owner = enr_ext::peer_id(&enr)?;
        let group = Group::of_record(&enr);
        self.with(|g, io| g.accept(io, enr, owner, Source::Gossip { from }, group, from))
    }

    /// Stops pushing records to `peer` while it stays connected: it gets them another way
    /// (a bootnode in the bootnodes' record mesh). It still gets our own record, and answers
    /// and asks as before.
    pub fn skip_pushes_to(&mut self, peer: PeerId) {
        self.rules_mut().skipped.insert(peer);
    }

    /// Takes records `peer` passes on until its last connection closes (admission rule 4): a
    /// bootnode that proved it holds our mesh secret, which the operator gave both of us.
    pub fn trust_while_connected(&mut self, peer: PeerId) {
        self.rules_mut().vouched.insert(peer);
    }

    /// Pushes every record we hold first-hand ([`Table::first_hand`]: its owner is connected
    /// to us, or announced it or was connected within the TTL) to `peer` (not its own),
    /// batched like gossip: a bootnode that just joined the bootnodes' record mesh gets what
    /// was published before it was there. A record others passed on to us is left to the
    /// bootnodes that hold it first-hand: pushed on, it would come back to them as new once
    /// theirs expired, and live on after its owner left (table rule 6).
    pub fn push_table_to(&mut self, peer: PeerId) {
        self.with(|g, io| {
            let now = Instant::now();
            for e in g.table.first_hand(now).filter(|e| e.peer_id != peer) {
                g.outboxes
                    .put(peer, e.enr.node_id(), enr_ext::encode_bytes(&e.enr));
            }
            g.flush(io, peer);
        });
    }

    /// The known records.
    pub fn table(&self) -> &Table {
        &self.rules().table
    }

    /// The record of a node id.
    pub fn record(&self, id: &NodeId) -> Option<&table::Entry> {
        self.rules().table.get(id)
    }

    /// Messages (and records refused for their group being full: `group_full`) dropped so far,
    /// by [`Violation::label`].
    pub fn rejected(&self) -> &BTreeMap<&'static str, u64> {
        &self.rules().rejected
    }
}

impl Gossip {
    /// "Hello (ENR …)", and ask what it knows; from now on it gets our gossip.
    fn greet(&mut self, io: &mut Io<'_, Self>, peer: PeerId) {
        self.connected.insert(peer);
        self.announce(io, peer, 1);
        // Admission rule 4: only a trusted peer's answer would be taken.
        if self.config.trust.trusts(&peer) {
            io.send_request(&peer, Request::Find(self.config.find_max));
        }
    }

    fn announce_all(&mut self, io: &mut Io<'_, Self>) {
        let peers: Vec<PeerId> = self.connected.iter().copied().collect();
        for peer in peers {
            self.announce(io, peer, 1);
        }
    }

    /// Try number `tries` of announcing our record to `peer`.
    fn announce(&mut self, io: &mut Io<'_, Self>, peer: PeerId, tries: u32) {
        let record = enr_ext::encode_bytes(&self.local);
        let id = io.send_request(&peer, Request::Announce(record));
        self.announcing.insert(id, (peer, tries));
    }

    /// An announcement of ours failed: try again while the peer stays connected, with the
    /// record we hold now, up to [`MAX_ANNOUNCE_TRIES`] tries.
    fn on_announce_failed(
        &mut self,
        io: &mut Io<'_, Self>,
        id: OutboundRequestId,
        error: &OutboundFailure,
    ) {
        let Some((peer, tries)) = self.announcing.remove(&id) else {
            return;
        };
        let unsupported = matches!(error, OutboundFailure::UnsupportedProtocols);
        if unsupported || tries >= MAX_ANNOUNCE_TRIES || !self.connected.contains(&peer) {
            return;
        }
        tracing::debug!(%peer, %error, tries, "announcing our record failed; trying again");
        self.announce(io, peer, tries + 1);
    }

    /// Drops a peer's message that broke a rule: logged, counted, answered with the reason
    /// when there is a stream to answer on, and reported.
    fn reject(
        &mut self,
        io: &mut Io<'_, Self>,
        peer: PeerId,
        violation: Violation,
        channel: Option<ResponseChannel<Response>>,
    ) {
        if self.logged.allow(violation.label(), Instant::now()) {
            tracing::warn!(%peer, reason = %violation, kind = violation.label(), "dropped ENR message (the next of this kind within a minute are logged at debug, all counted)");
        } else {
            tracing::debug!(%peer, reason = %violation, kind = violation.label(), "dropped ENR message");
        }
        if let Some(channel) = channel {
            io.send_response(channel, Response::Reject(violation.to_string()));
        }
        *self.rejected.entry(violation.label()).or_default() += 1;
        io.report(Event::InputRejected { peer, violation });
    }

    /// Drops a message whose records come without proof (admission rules 3 and 4): counted,
    /// answered with the reason, logged at debug only, since honest peers meet these rules
    /// too (an announcement over a relayed circuit, a push from a foreign node).
    fn unproven(
        &mut self,
        io: &mut Io<'_, Self>,
        peer: PeerId,
        unproven: Unproven,
        channel: Option<ResponseChannel<Response>>,
    ) {
        tracing::debug!(%peer, reason = %unproven, kind = unproven.label(), "ENR message not taken");
        if let Some(channel) = channel {
            io.send_response(channel, Response::Reject(unproven.to_string()));
        }
        *self.rejected.entry(unproven.label()).or_default() += 1;
    }

    /// An announced record: it must be the announcer's own.
    fn check_announced(bytes: &[u8], peer: PeerId) -> Result<Enr, Violation> {
        let enr = enr_ext::decode_bytes(bytes)?;
        match enr_ext::peer_id(&enr)? {
            owner if owner == peer => Ok(enr),
            owner => Err(Violation::Forged { record_peer: owner }),
        }
    }

    /// Pushed or returned records: every record must decode before any is kept, so a message
    /// with one bad record is dropped whole. Seq races between gossip paths are normal, so a
    /// stale record in a batch is skipped, not held against the sender.
    fn accept_all(
        &mut self,
        io: &mut Io<'_, Self>,
        from: PeerId,
        records: Vec<Vec<u8>>,
    ) -> Result<(), Violation> {
        let mut decoded = Vec::with_capacity(records.len());
        for bytes in &records {
            // Table rule 7: a record held byte for byte is not verified again, and since it
            // comes from another than its owner, it refreshes nothing (rule 4).
            if self.table.holds(bytes) {
                continue;
            }
            let enr = enr_ext::decode_bytes(bytes)?;
            let owner = enr_ext::peer_id(&enr)?;
            decoded.push((enr, owner));
        }
        for (enr, owner) in decoded {
            let group = Group::of_record(&enr);
            if let Err(v) = self.accept(io, enr, owner, Source::Gossip { from }, group, from) {
                tracing::debug!(peer = %from, record = %owner, reason = %v, "skipped record");
            }
        }
        Ok(())
    }

    /// Puts a record into the table, counting it against `group` when new (table rule 8).
    /// A record refused for its group being full is counted (`group_full`) and logged at
    /// debug here, not as a violation: honest peers behind one NAT share a group.
    fn accept(
        &mut self,
        io: &mut Io<'_, Self>,
        enr: Enr,
        owner: PeerId,
        source: Source,
        group: Group,
        from: PeerId,
    ) -> Result<Offered, Violation> {
        match self
            .table
            .insert(enr.clone(), owner, source, group, Instant::now())
        {
            Ok(Inserted::New) => {
                tracing::info!(
                    node_id = %hex::encode(enr.node_id().raw()), peer = %owner, seq = enr.seq(),
                    nat = enr_ext::is_natted(&enr), %from, enr = %enr.to_base64(),
                    "record learned"
                );
                self.pass_on(io, &enr, owner, from);
                io.report(Event::RecordLearned {
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
                self.pass_on(io, &enr, owner, from);
                io.report(Event::RecordUpdated {
                    enr,
                    peer_id: owner,
                    old_seq,
                    from,
                });
                Ok(Offered::Updated)
            }
            Ok(Inserted::Refreshed | Inserted::Known) | Err(Refused::Own) => Ok(Offered::Known),
            Err(refused @ Refused::GroupFull { .. }) => {
                let refused = Violation::Refused(refused);
                tracing::debug!(peer = %owner, %from, reason = %refused, "record not taken");
                *self.rejected.entry(refused.label()).or_default() += 1;
                Err(refused)
            }
            Err(refused) => Err(refused.into()),
        }
    }

    /// "Meet Alice": passes a new or updated record on to up to `fanout` connected peers,
    /// never back to the peer it came from nor to its owner.
    fn pass_on(&mut self, io: &mut Io<'_, Self>, enr: &Enr, owner: PeerId, from: PeerId) {
        if !self.config.pass_on {
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
            self.outboxes.put(peer, enr.node_id(), bytes.clone());
            self.flush(io, peer);
        }
    }

    /// Sends `peer` what waits in its outbox, as far as its free slots allow.
    fn flush(&mut self, io: &mut Io<'_, Self>, peer: PeerId) {
        while let Some(batch) = self.outboxes.next_batch(&peer) {
            let id = io.send_request(&peer, Request::Push(batch));
            self.outboxes.sent(peer, id);
        }
    }

    /// A stream failed: one that broke the wire format is a violation, anything else (a
    /// peer gone, a timeout) is not the peer's fault.
    fn on_stream_error(&mut self, io: &mut Io<'_, Self>, peer: PeerId, e: &std::io::Error) {
        match protocol::protocol_error(e) {
            Some(p) => self.reject(io, peer, Violation::Wire(p.clone()), None),
            None => tracing::debug!(%peer, error = %e, "ENR stream failed"),
        }
    }
}
