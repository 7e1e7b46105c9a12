//! Swarm-wide state of introductions: pending asks, forwarded introductions, rate limits.
//!
//! Built on the shared `request_response` skeleton ([`crate::exchange`]); the three roles
//! (requester, bootnode, target) share one protocol and one set of [`Intro`] rules.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use enr::NodeId;
use libp2p::PeerId;
use libp2p::request_response::{
    InboundFailure, OutboundFailure, OutboundRequestId, ResponseChannel,
};

use super::protocol::{Codec, Outcome, PROTOCOL, Request, Response};
use crate::enr_ext::{self, Enr, RecordError};
use crate::exchange::{self, Exchange, Inbound, Io, Rules};

/// How long the bootnode waits for a target's answer, and a requester for the bootnode's.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Streams a single peer may have open with us at once.
const MAX_CONCURRENT_STREAMS: usize = 8;

/// Introductions a bootnode has forwarded and not yet heard back about; more are refused as
/// rate limited. Each is a response channel and an outbound request, a few hundred bytes and
/// one stream on each side, answered within a round trip: as many as the rate limiters track
/// requesters, so a crowd asking at once (a thousand peers after a bootnode restart) is
/// forwarded, not refused. At 256 the load run refused 520 of 1,000 such asks.
const MAX_PENDING_FORWARDS: usize = MAX_TRACKED;

/// Node ids a bootnode remembers as known (for "unknown" versus "not connected").
const MAX_KNOWN: usize = 4096;

/// Peers tracked by one rate limiter; when full and nothing has expired, new peers wait.
const MAX_TRACKED: usize = 4096;

/// A limit of `count` events per `window`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Events allowed per window.
    pub count: u32,
    /// The window.
    pub window: Duration,
}

/// Settings of introductions.
#[derive(Debug, Clone)]
pub struct Config {
    /// Forward introductions (bootnodes). Default: off.
    pub serve: bool,
    /// Introductions one requester may ask for. Default: 10 a minute.
    pub per_requester: Limit,
    /// Introductions one target may receive; also what a target accepts from one
    /// introducer. Default: 30 a minute. Together these bound what anyone can make a
    /// bootnode send: it can never be used as an amplifier.
    pub per_target: Limit,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            serve: false,
            per_requester: Limit {
                count: 10,
                window: Duration::from_secs(60),
            },
            per_target: Limit {
                count: 30,
                window: Duration::from_secs(60),
            },
        }
    }
}

/// What the rest of the node acts on.
#[derive(Debug, Clone)]
pub enum Event {
    /// Requester: the bootnode answered our ask.
    Answered {
        /// Whom we asked about.
        target: NodeId,
        /// The bootnode.
        via: PeerId,
        /// How it ended.
        outcome: Outcome,
        /// Why, for logs.
        detail: String,
    },
    /// Target: a bootnode introduced a requester; dial it ("Hello Charlie").
    Introduced {
        /// The requester's record, verified.
        requester: Enr,
        /// Its PeerId.
        requester_peer: PeerId,
        /// The bootnode that introduced it.
        via: PeerId,
    },
    /// Bootnode: an introduction was forwarded and the target answered.
    Served {
        /// Who asked.
        requester: PeerId,
        /// Who was introduced.
        target: PeerId,
        /// The target's answer.
        outcome: Outcome,
    },
    /// Bootnode or target: a request was refused without forwarding.
    Refused {
        /// Who asked.
        peer: PeerId,
        /// Why.
        outcome: Outcome,
        /// Detail for logs.
        detail: String,
    },
}

/// Counts events per peer in fixed windows.
#[derive(Debug)]
struct RateLimiter {
    limit: Limit,
    seen: HashMap<PeerId, (Instant, u32)>,
}

impl RateLimiter {
    fn new(limit: Limit) -> Self {
        Self {
            limit,
            seen: HashMap::new(),
        }
    }

    /// Whether one more event from `peer` fits, counting it if so.
    fn allow(&mut self, peer: PeerId, now: Instant) -> bool {
        let window = self.limit.window;
        if self.seen.len() >= MAX_TRACKED {
            self.seen
                .retain(|_, (start, _)| now.saturating_duration_since(*start) < window);
            if self.seen.len() >= MAX_TRACKED && !self.seen.contains_key(&peer) {
                return false;
            }
        }
        let (start, n) = self.seen.entry(peer).or_insert((now, 0));
        if now.saturating_duration_since(*start) >= window {
            (*start, *n) = (now, 0);
        }
        if *n >= self.limit.count {
            return false;
        }
        *n += 1;
        true
    }
}

/// The introduction behaviour: the shared skeleton with [`Intro`]'s rules. See the module
/// doc.
pub type Behaviour = Exchange<Intro>;

/// Why a record in a request was refused ([`Outcome::BadRecord`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRecord {
    /// Not a valid record.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// An ask carried another node's record than the requester's.
    #[error("the record is {record_peer}'s, not the requester's")]
    NotTheRequesters {
        /// Whose record it is.
        record_peer: PeerId,
    },
    /// Nothing in the record can be dialed.
    #[error("the record has no address to dial")]
    NoAddress,
}

/// The introductions' rules and state.
pub struct Intro {
    config: Config,
    local: Enr,
    /// Bootnode: node ids of connected peers (secp256k1 PeerIds name their node id).
    connected: HashMap<NodeId, PeerId>,
    /// Bootnode: node ids with a known record.
    known: HashSet<NodeId>,
    known_order: VecDeque<NodeId>,
    requesters: RateLimiter,
    targets: RateLimiter,
    /// Target side: introductions accepted per introducer.
    introducers: RateLimiter,
    /// Requester: our asks by request id.
    asks: HashMap<OutboundRequestId, (NodeId, PeerId)>,
    /// Bootnode: forwarded introductions waiting for the target's answer.
    forwards: HashMap<OutboundRequestId, (ResponseChannel<Response>, PeerId, PeerId)>,
}

impl Exchange<Intro> {
    /// A behaviour that presents `local` as the node's record when asking.
    pub fn new(local: Enr, config: Config) -> Self {
        let settings = exchange::Settings {
            protocol: PROTOCOL,
            request_timeout: REQUEST_TIMEOUT,
            max_concurrent_streams: MAX_CONCURRENT_STREAMS,
        };
        let rules = Intro {
            requesters: RateLimiter::new(config.per_requester),
            targets: RateLimiter::new(config.per_target),
            introducers: RateLimiter::new(config.per_target),
            config,
            local,
            connected: HashMap::new(),
            known: HashSet::new(),
            known_order: VecDeque::new(),
            asks: HashMap::new(),
            forwards: HashMap::new(),
        };
        Exchange::with_rules(settings, rules)
    }

    /// Replaces the record sent with asks.
    pub fn set_local_record(&mut self, enr: Enr) {
        self.rules_mut().local = enr;
    }

    /// Asks `bootnode` to introduce us to `target`.
    pub fn ask(&mut self, bootnode: PeerId, target: NodeId) {
        self.with(|r, io| {
            let record = enr_ext::encode_bytes(&r.local);
            let id = io.send_request(&bootnode, Request::Ask { target, record });
            r.asks.insert(id, (target, bootnode));
        });
    }

    /// Bootnode: a record of `id` is known (so an ask for it, unconnected, is "not connected"
    /// rather than "unknown"). Bounded: the oldest is forgotten first.
    pub fn remember(&mut self, id: NodeId) {
        let r = self.rules_mut();
        if r.known.insert(id) {
            r.known_order.push_back(id);
            if r.known_order.len() > MAX_KNOWN
                && let Some(old) = r.known_order.pop_front()
            {
                r.known.remove(&old);
            }
        }
    }
}

impl Intro {
    fn refuse(
        io: &mut Io<'_, Self>,
        channel: ResponseChannel<Response>,
        peer: PeerId,
        outcome: Outcome,
        detail: String,
    ) {
        tracing::warn!(%peer, outcome = outcome.label(), %detail, "refused introduction request");
        let response = Response {
            outcome,
            detail: detail.clone(),
        };
        io.send_response(channel, response);
        io.report(Event::Refused {
            peer,
            outcome,
            detail,
        });
    }

    /// Bootnode: a requester's ask. Refused (with why) or forwarded to the target.
    fn on_ask(
        &mut self,
        io: &mut Io<'_, Self>,
        peer: PeerId,
        target: NodeId,
        record: Vec<u8>,
        channel: ResponseChannel<Response>,
    ) {
        let now = Instant::now();
        if !self.config.serve {
            let detail = "not a bootnode".into();
            return Self::refuse(io, channel, peer, Outcome::UnknownTarget, detail);
        }
        if let Err(e) = check_record(&record, Some(peer)) {
            return Self::refuse(io, channel, peer, Outcome::BadRecord, e.to_string());
        }
        if !self.requesters.allow(peer, now) {
            let detail = "too many asks".into();
            return Self::refuse(io, channel, peer, Outcome::RateLimited, detail);
        }
        let Some(target_peer) = self.connected.get(&target).copied() else {
            let outcome = if self.known.contains(&target) {
                Outcome::TargetNotConnected
            } else {
                Outcome::UnknownTarget
            };
            return Self::refuse(io, channel, peer, outcome, hex::encode(target.raw()));
        };
        if target_peer == peer {
            let detail = "asked for itself".into();
            return Self::refuse(io, channel, peer, Outcome::BadRecord, detail);
        }
        if self.forwards.len() >= MAX_PENDING_FORWARDS || !self.targets.allow(target_peer, now) {
            let detail = "target busy".into();
            return Self::refuse(io, channel, peer, Outcome::RateLimited, detail);
        }
        tracing::info!(requester = %peer, target_peer = %target_peer, "forwarding introduction");
        let id = io.send_request(&target_peer, Request::Introduce { record });
        self.forwards.insert(id, (channel, peer, target_peer));
    }

    /// Target: a bootnode introduces a requester ("Hello Charlie").
    fn on_introduce(
        &mut self,
        io: &mut Io<'_, Self>,
        peer: PeerId,
        record: Vec<u8>,
        channel: ResponseChannel<Response>,
    ) {
        let (requester, requester_peer) = match check_record(&record, None) {
            Ok(r) => r,
            Err(e) => return Self::refuse(io, channel, peer, Outcome::BadRecord, e.to_string()),
        };
        if !self.introducers.allow(peer, Instant::now()) {
            let detail = "too many introductions".into();
            return Self::refuse(io, channel, peer, Outcome::RateLimited, detail);
        }
        let response = Response {
            outcome: Outcome::Dialing,
            detail: String::new(),
        };
        io.send_response(channel, response);
        io.report(Event::Introduced {
            requester,
            requester_peer,
            via: peer,
        });
    }
}

impl Rules for Intro {
    type Event = Event;
    type Codec = Codec;

    fn on_connected(&mut self, _io: &mut Io<'_, Self>, peer: PeerId) {
        if let Some(id) = enr_ext::node_id(&peer) {
            self.connected.insert(id, peer);
        }
    }

    fn on_disconnected(&mut self, peer: PeerId) {
        if let Some(id) = enr_ext::node_id(&peer) {
            self.connected.remove(&id);
        }
    }

    fn on_request(
        &mut self,
        io: &mut Io<'_, Self>,
        Inbound {
            peer,
            request,
            channel,
        }: Inbound<Self>,
    ) {
        match request {
            Request::Invalid(e) => {
                Self::refuse(io, channel, peer, Outcome::BadRecord, e.to_string())
            }
            Request::Ask { target, record } => self.on_ask(io, peer, target, record, channel),
            Request::Introduce { record } => self.on_introduce(io, peer, record, channel),
        }
    }

    fn on_response(
        &mut self,
        io: &mut Io<'_, Self>,
        _peer: PeerId,
        id: OutboundRequestId,
        response: Response,
    ) {
        if let Some((target, via)) = self.asks.remove(&id) {
            io.report(Event::Answered {
                target,
                via,
                outcome: response.outcome,
                detail: response.detail,
            });
        } else if let Some((channel, requester, target)) = self.forwards.remove(&id) {
            let outcome = response.outcome;
            io.send_response(channel, response);
            io.report(Event::Served {
                requester,
                target,
                outcome,
            });
        }
    }

    fn on_outbound_failure(
        &mut self,
        io: &mut Io<'_, Self>,
        _peer: PeerId,
        id: OutboundRequestId,
        error: OutboundFailure,
    ) {
        if let Some((target, via)) = self.asks.remove(&id) {
            io.report(Event::Answered {
                target,
                via,
                outcome: Outcome::TargetUnreachable,
                detail: format!("the bootnode did not answer: {error}"),
            });
        } else if let Some((channel, requester, target)) = self.forwards.remove(&id) {
            let response = Response {
                outcome: Outcome::TargetUnreachable,
                detail: format!("the target did not answer: {error}"),
            };
            io.send_response(channel, response);
            io.report(Event::Served {
                requester,
                target,
                outcome: Outcome::TargetUnreachable,
            });
        }
    }

    fn on_inbound_failure(&mut self, _io: &mut Io<'_, Self>, peer: PeerId, error: InboundFailure) {
        tracing::debug!(%peer, %error, "inbound introduction stream failed");
    }
}

/// A record from a request: valid, with an address to dial, and (for an ask) the
/// requester's own. Returns it with its PeerId, or why not.
fn check_record(bytes: &[u8], owner: Option<PeerId>) -> Result<(Enr, PeerId), BadRecord> {
    let enr = enr_ext::decode_bytes(bytes)?;
    let peer = enr_ext::peer_id(&enr)?;
    if owner.is_some_and(|o| o != peer) {
        return Err(BadRecord::NotTheRequesters { record_peer: peer });
    }
    if enr_ext::multiaddrs(&enr, peer).is_empty() {
        return Err(BadRecord::NoAddress);
    }
    Ok((enr, peer))
}
