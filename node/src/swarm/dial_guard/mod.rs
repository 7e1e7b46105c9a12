//! The dial guard: one check in front of every outbound dial, whoever asked for it (the
//! strategy, an introduction, a hole punch, an AutoNAT dial-back, a relay reservation).
//!
//! A node that dials an address a stranger handed it is a reflector: DCUtR dials every
//! address a relayed peer sends in its CONNECT (a 4 KiB message holds hundreds, 3 attempts
//! each), and any address that slips past the record and introduction rules would do the
//! same. So the dial itself is vetted, below every behaviour, in the transports
//! ([`Guarded`]): whatever a behaviour asks, nothing leaves unvetted. The swarm names the peer
//! it dials in the address (`/p2p/<peer>`), which is how rules 3 and 5 know whose address it
//! is.
//!
//! Rules, for each address the swarm dials, first match wins:
//! 1. A relayed circuit is not vetted here (its relay is dialed on its own). A DNS name is
//!    resolved only for a configured bootnode ([`Refusal::Name`] otherwise): a name in a
//!    stranger's DCUtR candidates would have us query a resolver, and dial whatever it
//!    answers, for anyone. The IP a bootnode's name resolves to is vetted in turn.
//! 2. An unroutable destination (unspecified, multicast, broadcast, reserved, port 0) is
//!    refused ([`Refusal::Unroutable`]).
//! 3. A dial to a configured bootnode passes, at whatever IP its address or name gives: the
//!    operator named it.
//! 4. A destination in a special-purpose range (loopback, private, shared, link-local,
//!    documentation, benchmarking, unique-local: [`ranges`]) is refused unless the node is on
//!    that range: an address it was told to listen on, an address an interface got when it
//!    listens on all (never loopback: every host has one), or a configured bootnode's is in it
//!    ([`Refusal::NotOurNetwork`]). So compose, Kubernetes and the lab work with no flag,
//!    and a node on the internet dials nothing on a LAN it is not on, its own host included.
//! 5. A destination proven for the peer the dial names passes: an IP of a record the node
//!    took with proof (gossip admission, an introduction its bootnode vouched for;
//!    [`Guard::vouch`]).
//! 6. A destination one of the node's direct connections comes from passes: the peer there
//!    proved it by connecting (an AutoNAT dial-back goes to the asker's own IP).
//! 7. Any other destination was proven by nobody (DCUtR's candidates beside a peer's record,
//!    a dial that names no peer): it counts against its block's budget, [`BUDGET_PER_BLOCK`]
//!    dials per [`BUDGET_WINDOW`] to one IPv4 /24 or IPv6 /64 ([`Group`]), and all such dials
//!    against [`BUDGET_TOTAL`]; beyond either, refused ([`Refusal::OverBudget`]).
//!
//! Each refusal is counted by label ([`Guard::refused`]); the first of each kind is logged at
//! info, the rest at debug, so a flood writes one line.
//!
//! The state is bounded: vouched peers at most [`MAX_VOUCHED`] (the least recently vouched
//! go), connected IPs by the connections, the budgets by [`peerfind_behaviours::limiter`]'s
//! bound, the ranges by their count.

mod behaviour;
pub mod ranges;
pub mod transport;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hashlink::LruCache;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use peerfind_behaviours::ip_group::{Group, ip_of};
use peerfind_behaviours::limiter::{Limit, RateLimiter};

pub use behaviour::Behaviour;
use ranges::Range;
pub use transport::Guarded;

/// Rule 7: unproven dials to one address block per window. A hole punch to a peer whose
/// record we do not hold tries each candidate up to 3 times, TCP and QUIC: 8 lets one through
/// and keeps a victim's block at 8 connection attempts a minute from each node.
pub const BUDGET_PER_BLOCK: u32 = 8;

/// Rule 7: unproven dials in all per window, whatever their block: a stranger's list of
/// a thousand victims gets 64 of them dialed a minute, at most.
pub const BUDGET_TOTAL: u32 = 64;

/// Rule 7: the budgets' window.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(60);

/// Rule 5: most peers whose proven IPs are kept, twice the default table: a peer the table
/// forgot is dialed from its record no more.
pub const MAX_VOUCHED: usize = 4096;

/// Why a dial was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Rule 1.
    #[error("a name is resolved only for a configured bootnode")]
    Name,
    /// Rule 2.
    #[error("no one can be reached at {0}")]
    Unroutable(IpAddr),
    /// Rule 4.
    #[error("{0} is in a special-purpose range ({1:?}) this node is not on")]
    NotOurNetwork(IpAddr, Range),
    /// Rule 7.
    #[error("{0} was proven by no one, and this node's dials to such addresses are over budget")]
    OverBudget(IpAddr),
}

impl Refusal {
    /// A short stable label, for counters and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Name => "dial_name",
            Refusal::Unroutable(_) => "dial_unroutable",
            Refusal::NotOurNetwork(..) => "dial_not_our_network",
            Refusal::OverBudget(_) => "dial_over_budget",
        }
    }
}

/// The guard's state and rules; see the module doc. Time is passed in.
#[derive(Debug)]
pub struct Guard {
    /// Rule 4: the special ranges this node is on.
    ours: HashSet<Range>,
    /// Rule 3: the configured bootnodes; for as long as the node runs.
    bootnodes: HashSet<PeerId>,
    /// Rule 5: IPs of records taken with proof, per peer; the least recently vouched go first.
    vouched: LruCache<PeerId, Vec<IpAddr>>,
    /// Rule 6: how many direct connections come from each IP.
    connected: HashMap<IpAddr, usize>,
    /// Rule 7.
    per_block: RateLimiter<Group>,
    total: RateLimiter<()>,
    /// Refusals by [`Refusal::label`].
    refused: BTreeMap<&'static str, u64>,
}

impl Guard {
    /// A guard for a node told to listen on `listen` and configured with bootnodes at
    /// `bootnodes` (each address ending in `/p2p/<peer>`).
    pub fn new<'a>(
        listen: impl IntoIterator<Item = &'a Multiaddr>,
        bootnodes: impl IntoIterator<Item = (PeerId, &'a Multiaddr)>,
    ) -> Self {
        let mut guard = Guard {
            ours: HashSet::new(),
            bootnodes: HashSet::new(),
            vouched: LruCache::new(MAX_VOUCHED),
            connected: HashMap::new(),
            per_block: RateLimiter::new(Limit {
                count: BUDGET_PER_BLOCK,
                window: BUDGET_WINDOW,
            }),
            total: RateLimiter::new(Limit {
                count: BUDGET_TOTAL,
                window: BUDGET_WINDOW,
            }),
            refused: BTreeMap::new(),
        };
        for ip in listen.into_iter().filter_map(ip_of) {
            guard.ours.extend(ranges::range_of(ip));
        }
        for (peer, addr) in bootnodes {
            guard.bootnodes.insert(peer);
            if let Some(ip) = ip_of(addr) {
                guard.ours.extend(ranges::range_of(ip));
            }
        }
        guard
    }

    /// Rule 4: an interface's address the swarm listens on (listening on all interfaces). A
    /// loopback one makes no range ours: every host has one.
    pub fn listening_on(&mut self, addr: &Multiaddr) {
        if let Some(range) = ip_of(addr).and_then(ranges::range_of)
            && range != Range::Loopback
        {
            self.ours.insert(range);
        }
    }

    /// Rule 5: `ips` are proven for `peer` (its record was taken with proof); replaces what
    /// was vouched for it before.
    pub fn vouch(&mut self, peer: PeerId, ips: Vec<IpAddr>) {
        let ips = ips.into_iter().map(|ip| ip.to_canonical()).collect();
        self.vouched.insert(peer, ips);
    }

    /// Rule 6: a direct connection from `ip` came up.
    pub fn connected(&mut self, ip: IpAddr) {
        *self.connected.entry(ip.to_canonical()).or_default() += 1;
    }

    /// Rule 6: a direct connection from `ip` closed.
    pub fn disconnected(&mut self, ip: IpAddr) {
        let ip = ip.to_canonical();
        if let Some(n) = self.connected.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.connected.remove(&ip);
            }
        }
    }

    /// Refusals so far, by [`Refusal::label`].
    pub fn refused(&self) -> &BTreeMap<&'static str, u64> {
        &self.refused
    }

    /// Whether `addr` may be dialed now (rules 1 to 7), counting a refusal.
    pub fn check(&mut self, addr: &Multiaddr, now: Instant) -> Result<(), Refusal> {
        let result = self.rules(addr, now);
        if let Err(refusal) = &result {
            let n = self.refused.entry(refusal.label()).or_default();
            *n += 1;
            if *n == 1 {
                tracing::info!(%addr, reason = %refusal, "dial refused (the next such are logged at debug and counted as {})", refusal.label());
            } else {
                tracing::debug!(%addr, reason = %refusal, "dial refused");
            }
        }
        result
    }

    fn rules(&mut self, addr: &Multiaddr, now: Instant) -> Result<(), Refusal> {
        // Rule 1.
        if transport::name(addr) {
            return match peer_of(addr) {
                Some(p) if self.bootnodes.contains(&p) => Ok(()),
                _ => Err(Refusal::Name),
            };
        }
        let Some(ip) = ip_of(addr) else {
            return Ok(());
        };
        // Rule 2.
        if ranges::unroutable(ip) || port_of(addr) == Some(0) {
            return Err(Refusal::Unroutable(ip));
        }
        let peer = peer_of(addr);
        // Rule 3.
        if peer.is_some_and(|p| self.bootnodes.contains(&p)) {
            return Ok(());
        }
        // Rule 4.
        if let Some(range) = ranges::range_of(ip)
            && !self.ours.contains(&range)
        {
            return Err(Refusal::NotOurNetwork(ip, range));
        }
        // Rule 5.
        if let Some(peer) = peer
            && self.vouched.get(&peer).is_some_and(|ips| ips.contains(&ip))
        {
            return Ok(());
        }
        // Rule 6.
        if self.connected.contains_key(&ip) {
            return Ok(());
        }
        // Rule 7: the block first, so a flood at one victim spends none of the total.
        if self.per_block.allow(Group::of(ip), now) && self.total.allow((), now) {
            Ok(())
        } else {
            Err(Refusal::OverBudget(ip))
        }
    }
}

/// The guard as the swarm's parts share it: the transports check, the behaviour feeds it.
#[derive(Debug, Clone)]
pub struct Shared(Arc<Mutex<Guard>>);

impl Shared {
    /// Shares `guard`.
    pub fn new(guard: Guard) -> Self {
        Self(Arc::new(Mutex::new(guard)))
    }

    /// The guard, locked. Every holder only reads or counts, so a panic elsewhere leaves it
    /// consistent: a poisoned lock is taken as is.
    pub fn lock(&self) -> MutexGuard<'_, Guard> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The TCP or UDP port an address dials.
fn port_of(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        Protocol::Tcp(port) | Protocol::Udp(port) => Some(port),
        _ => None,
    })
}

/// The peer an address names last (`/p2p/<peer>`).
fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last()? {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
