//! Swarm-wide state of introductions: pending asks, forwarded introductions, rate limits.
//!
//! Built on libp2p's `request_response`, which it wraps; the three roles (requester,
//! bootnode, target) share one protocol and one behaviour.

use std::collections::{HashMap, HashSet, VecDeque};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use enr::NodeId;
use libp2p::PeerId;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{FromSwarm, NetworkBehaviour, THandlerInEvent, ToSwarm};

use super::protocol::{Codec, Outcome, PROTOCOL, Request, Response};
use crate::enr_ext::{self, Enr};
use crate::queue::{Bounded, MAX_QUEUED_EVENTS};

/// How long the bootnode waits for a target's answer, and a requester for the bootnode's.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Streams a single peer may have open with us at once.
const MAX_CONCURRENT_STREAMS: usize = 8;

/// Introductions a bootnode has forwarded and not yet heard back about; more are refused as
/// rate limited.
const MAX_PENDING_FORWARDS: usize = 256;

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

/// The introduction behaviour. See the module doc.
pub struct Behaviour {
    inner: request_response::Behaviour<Codec>,
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
    /// For the swarm; at most [`MAX_QUEUED_EVENTS`], the oldest dropped beyond.
    events: Bounded<Event>,
}

impl Behaviour {
    /// A behaviour that presents `local` as the node's record when asking.
    pub fn new(local: Enr, config: Config) -> Self {
        let rr = request_response::Config::default()
            .with_request_timeout(REQUEST_TIMEOUT)
            .with_max_concurrent_streams(MAX_CONCURRENT_STREAMS);
        Self {
            inner: request_response::Behaviour::with_codec(
                Codec::default(),
                [(PROTOCOL, ProtocolSupport::Full)],
                rr,
            ),
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
            events: Bounded::new(MAX_QUEUED_EVENTS),
        }
    }

    /// Replaces the record sent with asks.
    pub fn set_local_record(&mut self, enr: Enr) {
        self.local = enr;
    }

    /// Asks `bootnode` to introduce us to `target`.
    pub fn ask(&mut self, bootnode: PeerId, target: NodeId) {
        let record = enr_ext::encode_bytes(&self.local);
        let id = self
            .inner
            .send_request(&bootnode, Request::Ask { target, record });
        self.asks.insert(id, (target, bootnode));
    }

    /// Bootnode: a record of `id` is known (so an ask for it, unconnected, is "not connected"
    /// rather than "unknown"). Bounded: the oldest is forgotten first.
    pub fn remember(&mut self, id: NodeId) {
        if self.known.insert(id) {
            self.known_order.push_back(id);
            if self.known_order.len() > MAX_KNOWN
                && let Some(old) = self.known_order.pop_front()
            {
                self.known.remove(&old);
            }
        }
    }

    fn refuse(
        &mut self,
        channel: ResponseChannel<Response>,
        peer: PeerId,
        outcome: Outcome,
        detail: String,
    ) {
        tracing::warn!(%peer, outcome = outcome.label(), %detail, "refused introduction request");
        let _ = self.inner.send_response(
            channel,
            Response {
                outcome,
                detail: detail.clone(),
            },
        );
        self.events.push_back(Event::Refused {
            peer,
            outcome,
            detail,
        });
    }

    fn on_request(&mut self, peer: PeerId, request: Request, channel: ResponseChannel<Response>) {
        let now = Instant::now();
        match request {
            Request::Invalid(e) => self.refuse(channel, peer, Outcome::BadRecord, e.to_string()),
            Request::Ask { .. } if !self.config.serve => self.refuse(
                channel,
                peer,
                Outcome::UnknownTarget,
                "not a bootnode".into(),
            ),
            Request::Ask { target, record } => {
                if let Err(detail) = check_record(&record, Some(peer)) {
                    return self.refuse(channel, peer, Outcome::BadRecord, detail);
                }
                if !self.requesters.allow(peer, now) {
                    return self.refuse(
                        channel,
                        peer,
                        Outcome::RateLimited,
                        "too many asks".into(),
                    );
                }
                let Some(target_peer) = self.connected.get(&target).copied() else {
                    let outcome = if self.known.contains(&target) {
                        Outcome::TargetNotConnected
                    } else {
                        Outcome::UnknownTarget
                    };
                    return self.refuse(channel, peer, outcome, hex::encode(target.raw()));
                };
                if target_peer == peer {
                    return self.refuse(
                        channel,
                        peer,
                        Outcome::BadRecord,
                        "asked for itself".into(),
                    );
                }
                if self.forwards.len() >= MAX_PENDING_FORWARDS
                    || !self.targets.allow(target_peer, now)
                {
                    return self.refuse(channel, peer, Outcome::RateLimited, "target busy".into());
                }
                tracing::info!(requester = %peer, target_peer = %target_peer, "forwarding introduction");
                let id = self
                    .inner
                    .send_request(&target_peer, Request::Introduce { record });
                self.forwards.insert(id, (channel, peer, target_peer));
            }
            Request::Introduce { record } => {
                let requester = match check_record(&record, None) {
                    Ok(r) => r,
                    Err(detail) => return self.refuse(channel, peer, Outcome::BadRecord, detail),
                };
                if !self.introducers.allow(peer, now) {
                    return self.refuse(
                        channel,
                        peer,
                        Outcome::RateLimited,
                        "too many introductions".into(),
                    );
                }
                let (requester, requester_peer) = requester;
                let response = Response {
                    outcome: Outcome::Dialing,
                    detail: String::new(),
                };
                let _ = self.inner.send_response(channel, response);
                self.events.push_back(Event::Introduced {
                    requester,
                    requester_peer,
                    via: peer,
                });
            }
        }
    }

    fn on_response(&mut self, id: OutboundRequestId, response: Response) {
        if let Some((target, via)) = self.asks.remove(&id) {
            self.events.push_back(Event::Answered {
                target,
                via,
                outcome: response.outcome,
                detail: response.detail,
            });
        } else if let Some((channel, requester, target)) = self.forwards.remove(&id) {
            let outcome = response.outcome;
            let _ = self.inner.send_response(channel, response);
            self.events.push_back(Event::Served {
                requester,
                target,
                outcome,
            });
        }
    }

    fn on_failure(&mut self, id: OutboundRequestId, error: String) {
        if let Some((target, via)) = self.asks.remove(&id) {
            self.events.push_back(Event::Answered {
                target,
                via,
                outcome: Outcome::TargetUnreachable,
                detail: format!("the bootnode did not answer: {error}"),
            });
        } else if let Some((channel, requester, target)) = self.forwards.remove(&id) {
            let detail = format!("the target did not answer: {error}");
            let _ = self.inner.send_response(
                channel,
                Response {
                    outcome: Outcome::TargetUnreachable,
                    detail,
                },
            );
            self.events.push_back(Event::Served {
                requester,
                target,
                outcome: Outcome::TargetUnreachable,
            });
        }
    }

    fn on_inner_event(&mut self, event: request_response::Event<Request, Response>) {
        use request_response::{Event as E, Message};
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
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => self.on_response(request_id, response),
            E::OutboundFailure {
                request_id, error, ..
            } => self.on_failure(request_id, error.to_string()),
            E::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound introduction stream failed")
            }
            E::ResponseSent { .. } => {}
        }
    }
}

/// A record from a request: valid, with an address to dial, and (for an ask) the
/// requester's own. Returns it with its PeerId, or why not.
fn check_record(bytes: &[u8], owner: Option<PeerId>) -> Result<(Enr, PeerId), String> {
    let enr = enr_ext::decode_bytes(bytes).map_err(|e| e.to_string())?;
    let peer = enr_ext::peer_id(&enr).map_err(|e| e.to_string())?;
    if owner.is_some_and(|o| o != peer) {
        return Err(format!("the record is {peer}'s, not the requester's"));
    }
    if enr_ext::multiaddrs(&enr, peer).is_empty() {
        return Err("the record has no address to dial".into());
    }
    Ok((enr, peer))
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler =
        <request_response::Behaviour<Codec> as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = Event;

    crate::delegate::to_inner!();

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) if e.other_established == 0 => {
                if let Some(id) = enr_ext::node_id(&e.peer_id) {
                    self.connected.insert(id, e.peer_id);
                }
            }
            FromSwarm::ConnectionClosed(e) if e.remaining_established == 0 => {
                if let Some(id) = enr_ext::node_id(&e.peer_id) {
                    self.connected.remove(&id);
                }
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
