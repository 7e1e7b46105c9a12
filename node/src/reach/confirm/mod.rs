//! Which observed address the node believes is its own: the first diagram's "Hi, I notice
//! your address is <IP2>:<PORT2>".
//!
//! Peers tell us, through identify, the address they see our connection come from. Anyone can
//! make a fresh identity and tell us anything, so what counts is who could have seen it: a
//! configured bootnode, or observers in enough different networks. Rules:
//! 1. Only a plain `ip:port` over TCP or QUIC counts, with an IP a stranger could use
//!    (not unspecified or multicast), and only when it was seen on a connection of the same
//!    transport (some implementations report a QUIC connection's address as `/tcp`).
//! 2. A report from a configured bootnode confirms the address at once: the operator trusts
//!    the bootnodes it configured.
//! 3. Any other address is confirmed once observers in [`Confirmations::threshold`] distinct
//!    groups (rule 4) report it (default [`DEFAULT_THRESHOLD`], 4, go-libp2p's
//!    `ActivationThresh`), so no one network alone can rewrite our record.
//! 4. An observer's group is the IP its connection comes from, as the connection shows it
//!    (never what the peer says): its IPv4 /24 or its IPv6 /48 ([`Group`]); an IPv4-mapped
//!    IPv6 address is its IPv4 address. Loopback and our own IPs are one group, this host:
//!    every peer on our machine is one observer. A fresh PeerId is free, an address in another
//!    network is not. A relayed connection carries no report (identify tells none over a
//!    circuit, and the connection book has no address for it).
//! 5. Each group has one vote per transport: the latest report from anyone in it replaces
//!    the group's earlier one.
//! 6. At most [`MAX_VOTERS`] groups' votes are kept per transport; the oldest go first.
//! 7. A confirmation is reported only when it differs from the address confirmed last for
//!    that transport (or the one waiting, rule 11).
//! 8. Only a connection that left from our listen port shows our address ([`Leg`]). A peer
//!    that sees a connection from another port (a dial from a fresh port, an AutoNAT
//!    dial-back, or a second TCP connection to a peer we already had one to: port reuse
//!    cannot bind the same address pair twice and falls back to an ephemeral port) sees a
//!    port nobody can reach us at. Such a report neither votes nor confirms, whoever sends it.
//! 9. An address on one of our own IPs (nothing translated it on the way) must carry a port
//!    we listen on for that transport: any other port is an ephemeral one our connection
//!    fell back to, even if we believed it left from the listen port (a fallback is silent).
//! 10. One story per connection: a peer that is not a configured bootnode votes with the first
//!     address it reports on a connection; a later report on the same connection (an identify
//!     push, or identify's periodic question) naming another address is dropped and counted
//!     ([`Outcome::Changed`]). The address a connection comes from does not change while it is
//!     open. A configured bootnode's later report is taken: a QUIC connection survives a NAT
//!     rebinding our port, and the bootnode is trusted.
//! 11. The record moves at most [`MAX_MOVES`] times per transport within [`MOVE_WINDOW`]: an
//!     address confirmed beyond that waits ([`Outcome::Deferred`]) until the oldest move
//!     leaves the window ([`Confirmations::next_due`], [`Confirmations::due`]). Only the
//!     latest such address waits; one the record holds already ends the wait. Every move
//!     signs, stores and announces a new record (seq + 1) to every peer, so no stream of
//!     confirmations, honest or not, can churn it.
//! 12. A bootnode that listens on a routable IP for a transport advertises it (listeners rule
//!     3) and keeps it: only a configured bootnode (a member of its mesh) moves it, never
//!     observers however many their groups. Nothing translates an address an interface has.
//!
//! The NAT verdict takes only what configured bootnodes saw (NAT rules 3 and 5):
//! [`Confirmations::bootnode_saw`] and [`Witness`].

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use libp2p::core::ConnectedPoint;
use libp2p::core::transport::PortUse;
use libp2p::{Multiaddr, PeerId};
use peerfind_behaviours::enr_ext::{self, Transport};
use tokio::time::Instant;

/// Groups whose votes are kept per transport (rule 6): a bound on what strangers can make us
/// remember.
pub const MAX_VOTERS: usize = 64;

/// Default [`Confirmations::threshold`] (rule 3): go-libp2p's `ActivationThresh`. Observers
/// in four networks: with two, two cheap machines with addresses in different /24s moved a
/// record; a node joined through a bootnode never needs the threshold (rule 2).
pub const DEFAULT_THRESHOLD: usize = 4;

/// Rule 4: an IPv4 observer's group is its /24, the smallest block a provider routes on its
/// own, and what one host or one small network holds.
pub const IPV4_GROUP_BITS: u8 = 24;

/// Rule 4: an IPv6 observer's group is its /48. A site gets a /48 or a /56 (a tunnel broker
/// gives anyone a /48 for free), so any longer prefix would hand one site hundreds of votes.
pub const IPV6_GROUP_BITS: u8 = 48;

/// Rule 11: most record moves per transport within [`MOVE_WINDOW`]. The first confirmation,
/// a NAT that remaps us and remaps us back, and a change of network fit; a flood gets four
/// records per transport in ten minutes, not one per report.
pub const MAX_MOVES: usize = 4;

/// Rule 11: the window [`MAX_MOVES`] counts in.
pub const MOVE_WINDOW: Duration = Duration::from_secs(10 * 60);

/// A newly confirmed external address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmed {
    /// The address strangers can use.
    pub socket: SocketAddr,
    /// Its transport.
    pub transport: Transport,
    /// Why: a bootnode's report (rule 2) or how many groups agreed (rule 3).
    pub by: Witness,
}

/// Why an observed address was not taken: told to the status API's watchers, since a
/// report a node ignores leaves no other trace in its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotTaken {
    /// Rule 1: not a plain `ip:port` of the connection's transport with a usable IP.
    #[error("it cannot be our address")]
    CannotBeOurs,
    /// Rules 8 and 9: seen on a connection that did not leave from the listen port.
    #[error("the connection did not leave from the listen port")]
    OtherPort,
}

/// What became of one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A newly confirmed address: the record takes it now.
    Confirmed(Confirmed),
    /// A vote, or an address confirmed (or waiting) already: nothing to do.
    Counted,
    /// Rule 11: confirmed, but the record moved [`MAX_MOVES`] times lately; it takes the
    /// address at this instant ([`Confirmations::due`]) unless another comes first.
    Deferred(Instant),
    /// Rule 10: a later report on the same connection naming another address: dropped.
    Changed,
    /// Not taken at all (rules 1, 8, 9): told to the API's watchers.
    NotTaken(NotTaken),
}

/// Who vouched for a confirmed address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Witness {
    /// A configured bootnode.
    Bootnode(PeerId),
    /// Observers in this many distinct groups (rule 4).
    Groups(usize),
}

/// An observer's network (rule 4): whose votes count as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// Loopback or one of our own IPs: every peer on this machine.
    ThisHost,
    /// An IPv4 /24, by its first three bytes.
    V4([u8; 3]),
    /// An IPv6 /48, by its first six bytes.
    V6([u8; 6]),
}

impl Group {
    /// The group of an observer whose connection comes from `ip` (rule 4).
    pub fn of(ip: IpAddr, own: Own<'_>) -> Group {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if ip.is_loopback() || own.has_ip(ip) {
            return Group::ThisHost;
        }
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                Group::V4([a, b, c])
            }
            IpAddr::V6(v6) => {
                let o = v6.octets();
                Group::V6([o[0], o[1], o[2], o[3], o[4], o[5]])
            }
        }
    }
}

/// Who reported an address, and on what connection: what the connection book and the
/// configuration know, never what the peer says.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    /// The peer.
    pub peer: PeerId,
    /// Whether it is a configured bootnode (rules 2 and 10).
    pub bootnode: bool,
    /// The connection's transport (rule 1).
    pub transport: Transport,
    /// Which local port the connection left from (rule 8).
    pub leg: Leg,
    /// The IP the connection comes from: the observer's group (rule 4).
    pub from: IpAddr,
    /// Whether an earlier report on the same connection named another address (rule 10).
    pub changed: bool,
}

/// Which local port a connection left from (rule 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// The listen port: what the peer observes is the address strangers can use. An inbound
    /// connection arrived at it, so it counts too.
    ListenPort,
    /// Any other port.
    OtherPort,
}

impl Leg {
    /// The leg of a direct connection of `transport` at `endpoint`. `twin` says whether
    /// another direct connection to the same remote address was already open: a TCP dial
    /// then cannot have left from the listen port (same address pair), whatever it asked for.
    /// QUIC dials all leave from the listener's one socket.
    pub fn of(endpoint: &ConnectedPoint, transport: Transport, twin: bool) -> Leg {
        match endpoint {
            ConnectedPoint::Listener { .. } => Leg::ListenPort,
            ConnectedPoint::Dialer {
                port_use: PortUse::New,
                ..
            } => Leg::OtherPort,
            ConnectedPoint::Dialer { .. } if twin && transport == Transport::Tcp => Leg::OtherPort,
            ConnectedPoint::Dialer { .. } => Leg::ListenPort,
        }
    }
}

/// What we know of our own sockets, for rules 4, 9 and 12.
#[derive(Debug, Clone, Copy)]
pub struct Own<'a> {
    /// Every address we listen on, wildcards resolved to each interface's.
    pub listen: &'a [Multiaddr],
    /// Whether we are a bootnode (rule 12).
    pub bootnode: bool,
}

impl Own<'_> {
    /// Whether `ip` is the IP of one of our listen addresses: nothing translated it.
    pub fn has_ip(&self, ip: IpAddr) -> bool {
        self.listen
            .iter()
            .filter_map(enr_ext::socket_of)
            .any(|(own, ..)| own == ip)
    }

    /// Rule 9: whether `socket` of `transport` is on one of our IPs but not on a port we
    /// listen on there.
    fn is_ephemeral(&self, socket: SocketAddr, transport: Transport) -> bool {
        let ours: Vec<(IpAddr, u16)> = self
            .listen
            .iter()
            .filter_map(enr_ext::socket_of)
            .filter(|(_, _, t)| *t == transport)
            .map(|(ip, port, _)| (ip, port))
            .collect();
        ours.iter().any(|(ip, _)| *ip == socket.ip())
            && !ours.iter().any(|(_, port)| *port == socket.port())
    }

    /// Rule 12: whether we are a bootnode listening on a routable IP for `transport`.
    fn keeps_listen(&self, transport: Transport) -> bool {
        self.bootnode
            && self
                .listen
                .iter()
                .filter_map(enr_ext::socket_of)
                .any(|(ip, _, t)| t == transport && is_routable(ip))
    }
}

/// Whether strangers elsewhere could reach `ip` with nothing translating it: not loopback,
/// link-local, private (RFC 1918, IPv6 unique local) or shared (carrier-grade NAT) space.
pub fn is_routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let shared = v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64;
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || shared
                || v4 == Ipv4Addr::BROADCAST)
        }
        IpAddr::V6(v6) => {
            let segment = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (segment & 0xfe00) == 0xfc00
                || (segment & 0xffc0) == 0xfe80)
        }
    }
}

/// Reports dropped or held back, for the status API's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rule 10: later reports on a connection that named another address.
    pub changed: u64,
    /// Rule 11: confirmations that had to wait.
    pub deferred: u64,
}

/// The address-confirmation state machine. See the module doc for its rules.
#[derive(Debug)]
pub struct Confirmations {
    threshold: usize,
    /// Rules 5 and 6: each group's latest vote, oldest first.
    votes: HashMap<Transport, VecDeque<(Group, SocketAddr)>>,
    confirmed: HashMap<Transport, SocketAddr>,
    /// Rule 11: when the record last moved, at most [`MAX_MOVES`] per transport.
    moves: HashMap<Transport, VecDeque<Instant>>,
    /// Rule 11: the latest confirmation waiting for the window, per transport.
    waiting: HashMap<Transport, Confirmed>,
    /// The IP a configured bootnode last saw us at, per transport.
    bootnode_seen: HashMap<Transport, IpAddr>,
    counts: Counts,
}

impl Confirmations {
    /// A state machine confirming an address once `threshold` groups agree (at least 1).
    pub fn new(threshold: usize) -> Self {
        Self {
            threshold: threshold.max(1),
            votes: HashMap::new(),
            confirmed: HashMap::new(),
            moves: HashMap::new(),
            waiting: HashMap::new(),
            bootnode_seen: HashMap::new(),
            counts: Counts::default(),
        }
    }

    /// How many groups must agree (rule 3).
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// `seen` tells us that our connection came from `observed`: a newly confirmed address,
    /// nothing new, a confirmation that waits, or why the report was dropped or not taken.
    pub fn observe(
        &mut self,
        seen: Seen,
        observed: &Multiaddr,
        own: Own<'_>,
        now: Instant,
    ) -> Outcome {
        let peer = seen.peer;
        let usable = enr_ext::socket_of(observed)
            .filter(|(ip, _, transport)| *transport == seen.transport && !enr_ext::is_unusable(ip));
        let Some((ip, port, transport)) = usable else {
            tracing::debug!(%peer, %observed, "ignored an observed address that cannot be ours");
            return Outcome::NotTaken(NotTaken::CannotBeOurs);
        };
        let socket = SocketAddr::new(ip, port);
        if seen.leg == Leg::OtherPort || own.is_ephemeral(socket, transport) {
            // Once per connection at most (identify reports once, and again only when our
            // listen addresses change): worth seeing.
            tracing::info!(
                %peer, %observed, leg = ?seen.leg,
                "observed address not taken: the connection did not leave from the listen port"
            );
            return Outcome::NotTaken(NotTaken::OtherPort);
        }
        if seen.changed && !seen.bootnode {
            self.counts.changed += 1;
            tracing::debug!(%peer, %observed, "dropped an observed address: the connection told another before");
            return Outcome::Changed;
        }
        let group = Group::of(seen.from, own);
        let votes = self.votes.entry(transport).or_default();
        votes.retain(|(g, _)| *g != group);
        if votes.len() >= MAX_VOTERS {
            votes.pop_front();
        }
        votes.push_back((group, socket));

        let by = if seen.bootnode {
            self.bootnode_seen.insert(transport, ip);
            Witness::Bootnode(peer)
        } else {
            let agree = votes.iter().filter(|(_, s)| *s == socket).count();
            if agree < self.threshold || own.keeps_listen(transport) {
                return Outcome::Counted;
            }
            Witness::Groups(agree)
        };
        self.decide(
            Confirmed {
                socket,
                transport,
                by,
            },
            now,
        )
    }

    /// Rules 7 and 11 for an address confirmed just now.
    fn decide(&mut self, confirmed: Confirmed, now: Instant) -> Outcome {
        let transport = confirmed.transport;
        if self.confirmed.get(&transport) == Some(&confirmed.socket) {
            self.waiting.remove(&transport);
            return Outcome::Counted;
        }
        let waits_already = self
            .waiting
            .get(&transport)
            .is_some_and(|w| w.socket == confirmed.socket);
        match self.free_at(transport, now) {
            None => {
                self.take(confirmed, now);
                Outcome::Confirmed(confirmed)
            }
            Some(at) if waits_already => {
                tracing::trace!(socket = %confirmed.socket, ?at, "confirmation waits already");
                Outcome::Counted
            }
            Some(at) => {
                self.waiting.insert(transport, confirmed);
                self.counts.deferred += 1;
                Outcome::Deferred(at)
            }
        }
    }

    /// Rule 11: when the record may move next for `transport`; `None` when it may now.
    fn free_at(&self, transport: Transport, now: Instant) -> Option<Instant> {
        let moves = self.moves.get(&transport)?;
        if moves.len() < MAX_MOVES {
            return None;
        }
        let at = *moves.front()? + MOVE_WINDOW;
        (at > now).then_some(at)
    }

    fn take(&mut self, confirmed: Confirmed, now: Instant) {
        let transport = confirmed.transport;
        self.waiting.remove(&transport);
        self.confirmed.insert(transport, confirmed.socket);
        let moves = self.moves.entry(transport).or_default();
        moves.push_back(now);
        while moves.len() > MAX_MOVES {
            moves.pop_front();
        }
    }

    /// Rule 11: when the next waiting confirmation is due, if one waits.
    pub fn next_due(&self) -> Option<Instant> {
        self.waiting
            .keys()
            .filter_map(|t| self.moves.get(t)?.front().map(|at| *at + MOVE_WINDOW))
            .min()
    }

    /// Rule 11: the waiting confirmations whose time came, now confirmed.
    pub fn due(&mut self, now: Instant) -> Vec<Confirmed> {
        let ready: Vec<Confirmed> = self
            .waiting
            .iter()
            .filter(|(t, _)| self.free_at(**t, now).is_none())
            .map(|(_, c)| *c)
            .collect();
        for confirmed in &ready {
            self.take(*confirmed, now);
        }
        ready
    }

    /// The address confirmed last for each transport.
    pub fn confirmed(&self) -> impl Iterator<Item = (Transport, SocketAddr)> + '_ {
        self.confirmed.iter().map(|(t, s)| (*t, *s))
    }

    /// Whether `ip` is among the confirmed addresses.
    pub fn is_confirmed_ip(&self, ip: &IpAddr) -> bool {
        self.confirmed.values().any(|s| s.ip() == *ip)
    }

    /// Whether a configured bootnode last saw us at `ip`, over either transport: the only
    /// observations the NAT verdict weighs (NAT rule 3).
    pub fn bootnode_saw(&self, ip: IpAddr) -> bool {
        self.bootnode_seen.values().any(|seen| *seen == ip)
    }

    /// Reports dropped (rule 10) and confirmations held back (rule 11) so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }
}

#[cfg(test)]
mod tests;
