//! How much work a stranger can make the ENR exchange do: every announcement costs a record
//! decode and a signature check, every `Find` a table sample. Counted before either, per peer
//! (a PeerId costs nothing, so this only stops one connection from hammering) and per IP
//! group (an IPv4 /24 or IPv6 /64, which does cost an address block), with
//! [`crate::limiter`]'s bounded state; a request beyond either is answered with a refusal and
//! counted (`rate_limited`). Peers whose records we take passed on (configured bootnodes,
//! vouched mesh members) are not counted: they push tables, and the operator named them.
//!
//! The defaults leave honest peers far below them (a peer announces on connect, every 5
//! minutes and when its record changes, and asks a bootnode once on connect), while a flood
//! costs a node at most a few hundred signature checks a second per address block.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use crate::ip_group::Group;
use crate::limiter::{Limit, RateLimiter};

/// Default [`Rates::per_peer`]: 60 requests a minute from one peer.
pub const DEFAULT_PER_PEER: Limit = Limit {
    count: 60,
    window: Duration::from_secs(60),
};

/// Default [`Rates::per_group`]: 6,000 requests a minute from one address block, room for a
/// carrier-grade NAT's thousands of peers joining at once.
pub const DEFAULT_PER_GROUP: Limit = Limit {
    count: 6000,
    window: Duration::from_secs(60),
};

/// The limits, as [`super::Config`] holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    /// Requests one peer may send per window.
    pub per_peer: Limit,
    /// Requests one address block may send per window.
    pub per_group: Limit,
}

impl Default for Rates {
    fn default() -> Self {
        Self {
            per_peer: DEFAULT_PER_PEER,
            per_group: DEFAULT_PER_GROUP,
        }
    }
}

/// The counts.
#[derive(Debug)]
pub(super) struct Counts {
    per_peer: RateLimiter<PeerId>,
    per_group: RateLimiter<Group>,
}

impl Counts {
    pub(super) fn new(rates: Rates) -> Self {
        Self {
            per_peer: RateLimiter::new(rates.per_peer),
            per_group: RateLimiter::new(rates.per_group),
        }
    }

    /// Whether one more request from `peer`, seen at `ip` (none over a relayed circuit),
    /// fits; the block first, so a flood of fresh keys spends its block's count.
    pub(super) fn allow(&mut self, peer: PeerId, ip: Option<IpAddr>, now: Instant) -> bool {
        let group = ip.map_or(Group::NoAddress, Group::of);
        self.per_group.allow(group, now) && self.per_peer.allow(peer, now)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_peer_and_a_block_each_get_their_count() {
        let minute = Duration::from_secs(60);
        let mut counts = Counts::new(Rates {
            per_peer: Limit {
                count: 2,
                window: minute,
            },
            per_group: Limit {
                count: 3,
                window: minute,
            },
        });
        let now = Instant::now();
        let ip = Some("198.51.100.7".parse().unwrap());
        let peer = PeerId::random();
        assert!(counts.allow(peer, ip, now));
        assert!(counts.allow(peer, ip, now));
        assert!(!counts.allow(peer, ip, now), "the peer's count");
        assert!(
            !counts.allow(PeerId::random(), ip, now),
            "the block's count"
        );
        let elsewhere = Some("198.51.101.7".parse().unwrap());
        assert!(counts.allow(PeerId::random(), elsewhere, now));
        assert!(counts.allow(peer, ip, now + minute), "the next window");
    }
}
