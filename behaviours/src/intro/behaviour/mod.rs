//! Swarm-wide state of introductions: pending asks, forwarded introductions, rate limits.
//!
//! Built on the shared `request_response` skeleton ([`crate::exchange`]); the three roles
//! (requester, bootnode, target) share one protocol and one set of [`Intro`] rules.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use enr::NodeId;
use libp2p::request_response::{
    InboundFailure, OutboundFailure, OutboundRequestId, ResponseChannel,
};
use libp2p::{Multiaddr, PeerId};

use super::protocol::{Codec, MAX_LAN_ADDRS, Outcome, PROTOCOL, Request, Response};
use super::refusal::{BadRecord, Refusal, WarnGate};
use crate::enr_ext::{self, Enr};
use crate::exchange::{self, Exchange, Inbound, Io, Rules};
use crate::ip_group::Group;
use crate::limiter::{Limit, MAX_TRACKED, RateLimiter};

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

/// Settings of introductions.
#[derive(Debug, Clone)]
pub struct Config {
    /// Forward introductions (bootnodes). Default: off.
    pub serve: bool,
    /// Introductions one requester may ask for. Default: 10 a minute.
    pub per_requester: Limit,
    /// Introductions the requesters of one IP group (an IPv4 /24, an IPv6 /64) may ask for
    /// together, counted before any signature is checked (rule 3). Default: 120 a minute,
    /// twelve requesters at their full rate: room for a subnet of honest peers, and all that
    /// one host gets however many keys it makes.
    pub per_ip_group: Limit,
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
            per_ip_group: Limit {
                count: 120,
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
        /// The requester's LAN addresses, which the bootnode passed on because it sees us
        /// behind the same NAT (rule 6): dial them only where they are on one of our own
        /// networks.
        lan: Vec<Multiaddr>,
        /// The requester asks us to spray its IP's ports (port guessing): it opened many
        /// towards our address. Only a claim: the node checks both records first.
        spray: bool,
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
    /// Bootnode or target: a request was refused without forwarding (answered with
    /// [`Refusal::outcome`]).
    Refused {
        /// Who asked.
        peer: PeerId,
        /// Why.
        refusal: Refusal,
    },
}

/// The introduction behaviour: the shared skeleton with [`Intro`]'s rules. See the module
/// doc.
pub type Behaviour = Exchange<Intro>;

/// The introductions' rules and state.
pub struct Intro {
    config: Config,
    local: Enr,
    /// Target: the configured bootnodes, the only peers whose introductions are taken (rule
    /// 1). Bounded by the node's configuration.
    bootnodes: HashSet<PeerId>,
    /// Bootnode: node ids of connected peers (secp256k1 PeerIds name their node id).
    connected: HashMap<NodeId, PeerId>,
    /// Bootnode: node ids with a known record.
    known: HashSet<NodeId>,
    known_order: VecDeque<NodeId>,
    /// Bootnode: asks per requester IP group, then per requester (rule 3).
    groups: RateLimiter<Group>,
    requesters: RateLimiter<PeerId>,
    /// Bootnode: introductions per target.
    targets: RateLimiter<PeerId>,
    /// Target: introductions taken per bootnode (rule 3).
    introducers: RateLimiter<PeerId>,
    /// Requester: our asks by request id.
    asks: HashMap<OutboundRequestId, (NodeId, PeerId)>,
    /// Bootnode: forwarded introductions waiting for the target's answer.
    forwards: HashMap<OutboundRequestId, (ResponseChannel<Response>, PeerId, PeerId)>,
    /// Requests refused for breaking a rule, by [`Refusal::label`]: a fixed set of labels.
    rejected: BTreeMap<&'static str, u64>,
    /// Which refusals are logged at warn (rule 5).
    warn: WarnGate,
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
            groups: RateLimiter::new(config.per_ip_group),
            requesters: RateLimiter::new(config.per_requester),
            targets: RateLimiter::new(config.per_target),
            introducers: RateLimiter::new(config.per_target),
            config,
            local,
            bootnodes: HashSet::new(),
            connected: HashMap::new(),
            known: HashSet::new(),
            known_order: VecDeque::new(),
            asks: HashMap::new(),
            forwards: HashMap::new(),
            rejected: BTreeMap::new(),
            warn: WarnGate::default(),
        };
        Exchange::with_rules(settings, rules)
    }

    /// Replaces the record sent with asks.
    pub fn set_local_record(&mut self, enr: Enr) {
        self.rules_mut().local = enr;
    }

    /// The node's configured bootnodes: the only peers whose introductions it takes (rule
    /// 1). Until told, it takes none.
    pub fn set_bootnodes(&mut self, bootnodes: impl IntoIterator<Item = PeerId>) {
        self.rules_mut().bootnodes = bootnodes.into_iter().collect();
    }

    /// Requests refused for breaking a rule so far, by [`Refusal::label`] (an ask for a
    /// target the bootnode does not hold is not counted: see [`Refusal::is_rejection`]).
    pub fn rejected(&self) -> &BTreeMap<&'static str, u64> {
        &self.rules().rejected
    }

    /// Asks `bootnode` to introduce us to `target`, handing it our `lan` addresses for a
    /// target behind the same NAT (rule 6; at most [`MAX_LAN_ADDRS`] that
    /// [`super::protocol::lan_addr`] takes are sent); with `spray`, asking the target to spray
    /// our IP's ports (port guessing: we sent towards it from many).
    pub fn ask(&mut self, bootnode: PeerId, target: NodeId, lan: Vec<Multiaddr>, spray: bool) {
        let lan: Vec<Multiaddr> = lan
            .into_iter()
            .filter(super::protocol::lan_addr)
            .take(MAX_LAN_ADDRS)
            .collect();
        self.with(|r, io| {
            let record = enr_ext::encode_bytes(&r.local);
            let id = io.send_request(
                &bootnode,
                Request::Ask {
                    target,
                    record,
                    lan,
                    spray,
                },
            );
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
    /// Answers a refused request with its outcome, counts it, reports it, and logs it: at
    /// debug, and at warn at most once a minute per reason (rule 5).
    fn refuse(
        &mut self,
        io: &mut Io<'_, Self>,
        channel: ResponseChannel<Response>,
        peer: PeerId,
        refusal: Refusal,
    ) {
        let label = refusal.label();
        let warn = refusal.is_rejection();
        if warn {
            *self.rejected.entry(label).or_default() += 1;
        }
        match self.warn.pass(label, Instant::now()).filter(|_| warn) {
            Some(quiet) => tracing::warn!(
                %peer, reason = label, detail = %refusal, more_since_last_warning = quiet,
                "refused introduction request (warned once a minute per reason)"
            ),
            None => {
                tracing::debug!(%peer, reason = label, detail = %refusal, "refused introduction request")
            }
        }
        let response = Response {
            outcome: refusal.outcome(),
            detail: refusal.to_string(),
        };
        io.send_response(channel, response);
        io.report(Event::Refused { peer, refusal });
    }

    /// Bootnode: a requester's ask. Refused (with why) or forwarded to the target.
    fn on_ask(
        &mut self,
        io: &mut Io<'_, Self>,
        peer: PeerId,
        (target, record, lan, spray): (NodeId, Vec<u8>, Vec<Multiaddr>, bool),
        channel: ResponseChannel<Response>,
    ) {
        let now = Instant::now();
        if !self.config.serve {
            return self.refuse(io, channel, peer, Refusal::NotServing);
        }
        // Rule 3: counted before anything in the ask is decoded or verified.
        let seen: Vec<IpAddr> = io.remotes().ips(&peer).collect();
        if !self.groups.allow(
            seen.first().map_or(Group::NoAddress, |ip| Group::of(*ip)),
            now,
        ) {
            return self.refuse(io, channel, peer, Refusal::IpGroupLimited);
        }
        if !self.requesters.allow(peer, now) {
            return self.refuse(io, channel, peer, Refusal::RequesterLimited);
        }
        // Rules 4 and 2.
        if let Err(e) = check_record(&record, Some(peer)).and_then(|(enr, _)| vouch(&enr, &seen)) {
            return self.refuse(io, channel, peer, e.into());
        }
        let Some(target_peer) = self.connected.get(&target).copied() else {
            let id = hex::encode(target.raw());
            let refusal = if self.known.contains(&target) {
                Refusal::TargetNotConnected(id)
            } else {
                Refusal::UnknownTarget(id)
            };
            return self.refuse(io, channel, peer, refusal);
        };
        if target_peer == peer {
            return self.refuse(io, channel, peer, Refusal::AskedForItself);
        }
        if self.forwards.len() >= MAX_PENDING_FORWARDS || !self.targets.allow(target_peer, now) {
            return self.refuse(io, channel, peer, Refusal::TargetBusy);
        }
        // Rule 6: LAN addresses only to a target behind the requester's NAT.
        let target_seen: Vec<IpAddr> = io.remotes().ips(&target_peer).collect();
        let lan = if behind_one_nat(&seen, &target_seen) {
            lan
        } else {
            Vec::new()
        };
        tracing::info!(
            requester = %peer, target_peer = %target_peer, lan_addrs = lan.len(), spray,
            "forwarding introduction"
        );
        let id = io.send_request(&target_peer, Request::Introduce { record, lan, spray });
        self.forwards.insert(id, (channel, peer, target_peer));
    }

    /// Target: a bootnode introduces a requester ("Hello Charlie").
    fn on_introduce(
        &mut self,
        io: &mut Io<'_, Self>,
        peer: PeerId,
        (record, lan, spray): (Vec<u8>, Vec<Multiaddr>, bool),
        channel: ResponseChannel<Response>,
    ) {
        // Rule 1, then rule 3: before anything in the request is decoded or verified.
        if !self.bootnodes.contains(&peer) {
            return self.refuse(io, channel, peer, Refusal::NotFromBootnode);
        }
        if !self.introducers.allow(peer, Instant::now()) {
            return self.refuse(io, channel, peer, Refusal::IntroducerLimited);
        }
        let (requester, requester_peer) = match check_record(&record, None) {
            Ok(r) => r,
            Err(e) => return self.refuse(io, channel, peer, e.into()),
        };
        let response = Response {
            outcome: Outcome::Dialing,
            detail: String::new(),
        };
        io.send_response(channel, response);
        io.report(Event::Introduced {
            requester,
            requester_peer,
            via: peer,
            lan,
            spray,
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
            Request::Invalid(e) => self.refuse(io, channel, peer, e.into()),
            Request::Ask {
                target,
                record,
                lan,
                spray,
            } => self.on_ask(io, peer, (target, record, lan, spray), channel),
            Request::Introduce { record, lan, spray } => {
                self.on_introduce(io, peer, (record, lan, spray), channel)
            }
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

/// Rule 4: a record from a request is valid, has an address to dial, and (for an ask) is the
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

/// Rule 6: whether the requester (seen at `requester`) and the target (at `target`) come
/// from one IP: behind one NAT. Nobody seen at no IP (a relayed connection) is.
fn behind_one_nat(requester: &[IpAddr], target: &[IpAddr]) -> bool {
    requester
        .iter()
        .any(|r| target.iter().any(|t| r.to_canonical() == t.to_canonical()))
}

/// Rule 2: every IP `enr` names is one of `seen`, the IPs the requester's direct connections
/// come from. A record naming no IP passes, and rule 4 refuses it (nothing to dial).
fn vouch(enr: &Enr, seen: &[IpAddr]) -> Result<(), BadRecord> {
    let named = enr.ip4().map(IpAddr::V4).into_iter();
    for ip in named.chain(enr.ip6().map(IpAddr::V6)) {
        let ip = ip.to_canonical();
        if !seen.iter().any(|s| s.to_canonical() == ip) {
            return Err(BadRecord::NotObserved { named: ip });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
