//! The lab's shape: its hosts, where Alice and Bob sit, and what their routers do.
//!
//! The addresses live here too: every host's address follows from its place alone.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::{Impairment, LabError};

/// The public segment, a documentation range (RFC 5737) that routes nowhere outside the lab.
pub const PUBLIC_NET: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 0);

/// The prefix length of every network in the lab.
pub const PREFIX_LEN: u8 = 24;

/// How a router maps and filters, in the terms of RFC 4787.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatMode {
    /// Endpoint-independent mapping (the public port is kept for every destination, and is the
    /// host's own port when free) with address-and-port-dependent filtering (only replies from
    /// the exact address and port the host sent to come in). What hole punching expects.
    EndpointIndependent,
    /// Symmetric: a new public port for each destination, so a port learned from one peer is
    /// useless to another. Hole punching fails; peerfind must fall back to a relay.
    Symmetric,
    /// Symmetric with sequential ports: each new mapping (a new destination) takes the public
    /// port after the previous mapping's, whichever host made it. A peer that knows the last
    /// port can guess the next one, which port prediction relies on.
    SymmetricSequential,
    /// Port-preserving symmetric: the first destination a host's port sends to sees that
    /// same port, every further destination a new random one. An observer cannot tell it from
    /// [`NatMode::EndpointIndependent`]; a second observer can.
    SymmetricPreserving,
    /// Full cone: endpoint-independent mapping and everything arriving on the router's public
    /// address goes to the one LAN host. The control where every host is reachable.
    FullCone,
    /// Address-restricted cone: endpoint-independent mapping, and what arrives from an address
    /// the LAN host sent to, from any port, goes to it (address-dependent filtering).
    AddressRestricted,
    /// Endpoint-independent mapping as [`NatMode::EndpointIndependent`] for TCP, and no UDP
    /// out at all: a network that blocks QUIC.
    UdpBlocked,
    /// [`NatMode::EndpointIndependent`] with a UPnP-IGD gateway (miniupnpd, NAT-PMP too) on
    /// its LAN that maps ports for the LAN host only: a home router. Its WAN is on the public
    /// segment like every router's (the lab's `upnp` module says how miniupnpd is made to
    /// serve a documentation address); behind a carrier-grade NAT its WAN is a carrier
    /// address, and clients refuse it.
    Upnp,
}

/// The mode of a carrier-grade NAT: endpoint-independent mapping, which RFC 6888 asks of a
/// carrier, with the filtering of the lab's eim router.
pub const CARRIER_MODE: NatMode = NatMode::EndpointIndependent;

/// Where Alice or Bob sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placement {
    /// Directly on the public segment (Alice at .30, Bob at .40); the host's router is not made.
    Public,
    /// On a LAN behind the host's own router, which works in the given mode.
    BehindNat(NatMode),
    /// On a LAN behind a home router in the given mode, whose own uplink is a carrier's
    /// network (100.64.0.0/10) behind a carrier-grade NAT ([`CARRIER_MODE`]): two NATs in a
    /// row, and the public address is the carrier's. The carrier's router is nat-a (nat-b),
    /// the home router home-a (home-b).
    BehindCgnat(NatMode),
    /// Bob only: on Alice's LAN (at .3), behind her router or routers, so that both share one
    /// public address; nat-b is not made. Whether their router hairpins is the topology's
    /// ([`Topology::with_hairpin`]). Alice must be behind a router.
    SameLan,
}

/// The shape of a lab: where Alice and Bob sit, whether their routers hairpin, and which
/// links are slow or lossy. The bootnode and Charlie are always public.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Topology {
    /// Alice's place; behind nat-a when NAT'd.
    pub alice: Placement,
    /// Bob's place; behind nat-b when NAT'd, or beside Alice.
    pub bob: Placement,
    /// Whether every router hairpins (see [`Topology::with_hairpin`]).
    hairpin: bool,
    /// Each host's uplink impairment, indexed like [`Host::ALL`].
    uplinks: [Option<Impairment>; Host::ALL.len()],
}

impl Default for Topology {
    /// Both behind endpoint-independent NATs: the case hole punching is made for.
    fn default() -> Self {
        Self::new(
            Placement::BehindNat(NatMode::EndpointIndependent),
            Placement::BehindNat(NatMode::EndpointIndependent),
        )
    }
}

impl Topology {
    /// Alice and Bob placed as given; routers that do not hairpin.
    pub fn new(alice: Placement, bob: Placement) -> Self {
        Self {
            alice,
            bob,
            hairpin: false,
            uplinks: [None; Host::ALL.len()],
        }
    }

    /// Alice and Bob on one LAN behind nat-a, which works in `mode` and does not hairpin
    /// (add [`Topology::with_hairpin`]): two peers that share a public address.
    pub fn shared_lan(mode: NatMode) -> Self {
        Self::new(Placement::BehindNat(mode), Placement::SameLan)
    }

    /// This topology with every router hairpinning (`on`) or not. A router that hairpins
    /// takes a packet from its LAN to its own public address and a port it mapped for one of
    /// its LAN hosts to that host, from the sender's public address and port, as a packet
    /// from outside would arrive; one that does not drops it. It matters when two hosts
    /// share a LAN ([`Placement::SameLan`]) and one dials the other's public address.
    pub fn with_hairpin(mut self, on: bool) -> Self {
        self.hairpin = on;
        self
    }

    /// Whether the routers hairpin.
    pub fn hairpin(&self) -> bool {
        self.hairpin
    }

    /// This topology with `host`'s uplink impaired: the link from the host towards the public
    /// segment, which is the link to its router for a NAT'd host and the WAN link for a
    /// router. Emulated in this process; see [`Impairment`].
    pub fn with_uplink(mut self, host: Host, impairment: Impairment) -> Self {
        self.uplinks[host as usize] = Some(impairment);
        self
    }

    /// The impairment of `host`'s uplink, if any.
    pub fn uplink(&self, host: Host) -> Option<Impairment> {
        self.uplinks[host as usize]
    }

    /// Refuses the placements that describe no network: Alice beside herself, or Bob on the
    /// LAN of a public Alice.
    pub(super) fn check(&self) -> Result<(), LabError> {
        let reason = match (self.alice, self.bob) {
            (Placement::SameLan, _) => "Alice cannot be on her own LAN: only Bob sits beside her",
            (Placement::Public, Placement::SameLan) => {
                "Bob cannot share Alice's LAN when she is on the public segment"
            }
            _ => return Ok(()),
        };
        Err(LabError::Topology(reason))
    }

    /// The hosts that exist in this topology: a router only when a host is behind it.
    pub fn hosts(&self) -> Vec<Host> {
        Host::ALL
            .into_iter()
            .filter(|&host| match host {
                Host::Bootnode | Host::Charlie | Host::Alice | Host::Bob => true,
                router => self.mode(router).is_some(),
            })
            .collect()
    }

    /// Where the router's host sits: Alice for nat-a and home-a, Bob for nat-b and home-b.
    fn owner(&self, router: Host) -> Placement {
        match router {
            Host::NatA | Host::HomeA => self.alice,
            _ => self.bob,
        }
    }

    /// The mode `router` works in, when it exists in this topology.
    pub(super) fn mode(&self, router: Host) -> Option<NatMode> {
        match (router, self.owner(router)) {
            (Host::NatA | Host::NatB, Placement::BehindNat(mode)) => Some(mode),
            (Host::NatA | Host::NatB, Placement::BehindCgnat(_)) => Some(CARRIER_MODE),
            (Host::HomeA | Host::HomeB, Placement::BehindCgnat(mode)) => Some(mode),
            _ => None,
        }
    }

    /// The router whose LAN `host` sits on, or `None` for a host on the public segment.
    pub(super) fn upstream(&self, host: Host) -> Option<Host> {
        let behind = |placement, nat, home| match placement {
            Placement::BehindNat(_) => Some(nat),
            Placement::BehindCgnat(_) => Some(home),
            Placement::Public | Placement::SameLan => None,
        };
        match host {
            Host::Alice => behind(self.alice, Host::NatA, Host::HomeA),
            Host::Bob if self.bob == Placement::SameLan => self.upstream(Host::Alice),
            Host::Bob => behind(self.bob, Host::NatB, Host::HomeB),
            Host::HomeA if self.mode(host).is_some() => Some(Host::NatA),
            Host::HomeB if self.mode(host).is_some() => Some(Host::NatB),
            _ => None,
        }
    }

    /// The hosts on `router`'s LAN, in [`Host::ALL`]'s order (Alice before Bob).
    pub(super) fn lan_hosts(&self, router: Host) -> Vec<Host> {
        Host::ALL
            .into_iter()
            .filter(|&host| self.upstream(host) == Some(router))
            .collect()
    }

    /// The first three octets of `router`'s LAN: a private range for a home LAN, the shared
    /// address space (RFC 6598) for a carrier's network.
    fn lan_net(&self, router: Host) -> [u8; 3] {
        let n = match router {
            Host::NatA | Host::HomeA => 1,
            _ => 2,
        };
        match (router, self.owner(router)) {
            (Host::NatA | Host::NatB, Placement::BehindCgnat(_)) => [100, 64, n],
            _ => [192, 168, n],
        }
    }

    /// The router's address on its LAN, which is its LAN hosts' gateway.
    pub(super) fn lan_gateway(&self, router: Host) -> Ipv4Addr {
        let [a, b, c] = self.lan_net(router);
        Ipv4Addr::new(a, b, c, 1)
    }

    /// The host's own address: on the public segment, on the LAN it sits on, or for a router
    /// the address of its WAN.
    pub(super) fn address(&self, host: Host) -> Ipv4Addr {
        let Some(router) = self.upstream(host) else {
            return host.public_address();
        };
        let last = if host == Host::Bob && self.bob == Placement::SameLan {
            3
        } else {
            2
        };
        let [a, b, c] = self.lan_net(router);
        Ipv4Addr::new(a, b, c, last)
    }

    /// The address strangers on the public segment see the host as: the outermost router's
    /// for a host behind routers, its own otherwise.
    pub(super) fn public_address(&self, host: Host) -> Ipv4Addr {
        match self.upstream(host) {
            Some(router) => self.public_address(router),
            None => host.public_address(),
        }
    }
}

/// A machine in the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// The well-known public peer every node starts from.
    Bootnode,
    /// A second public peer: a stranger to Alice and Bob, and a second observer.
    Charlie,
    /// A peer behind nat-a, or public at .30.
    Alice,
    /// A peer behind nat-b, or public at .40.
    Bob,
    /// Alice's router (and Bob's when he shares her LAN); the carrier's when Alice is behind
    /// a CGNAT.
    NatA,
    /// Bob's router; the carrier's when Bob is behind a CGNAT.
    NatB,
    /// Alice's home router behind a CGNAT ([`Placement::BehindCgnat`]).
    HomeA,
    /// Bob's home router behind a CGNAT.
    HomeB,
}

impl Host {
    /// Every host, in a fixed order.
    pub const ALL: [Host; 8] = [
        Host::Bootnode,
        Host::Charlie,
        Host::Alice,
        Host::Bob,
        Host::NatA,
        Host::NatB,
        Host::HomeA,
        Host::HomeB,
    ];

    /// The host's name: the suffix of its namespace and its bridge port's name.
    pub fn name(self) -> &'static str {
        match self {
            Host::Bootnode => "bootnode",
            Host::Charlie => "charlie",
            Host::Alice => "alice",
            Host::Bob => "bob",
            Host::NatA => "nat-a",
            Host::NatB => "nat-b",
            Host::HomeA => "home-a",
            Host::HomeB => "home-b",
        }
    }

    /// The address on the public segment, when the host is (or, for a router, its WAN is) there.
    /// A home router's WAN is on its carrier's network instead: .201 and .202 only keep this
    /// total, and no interface gets them.
    pub(super) fn public_address(self) -> Ipv4Addr {
        let last = match self {
            Host::Bootnode => 10,
            Host::Charlie => 20,
            Host::Alice => 30,
            Host::Bob => 40,
            Host::NatA => 101,
            Host::NatB => 102,
            Host::HomeA => 201,
            Host::HomeB => 202,
        };
        let [a, b, c, _] = PUBLIC_NET.octets();
        Ipv4Addr::new(a, b, c, last)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Host {
    type Err = LabError;

    /// Parses a host's [`name`](Host::name), also without the dash (`nata`) or as `boot`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.to_ascii_lowercase().replace('-', "");
        Host::ALL
            .into_iter()
            .find(|host| {
                host.name().replace('-', "") == wanted
                    || (wanted == "boot" && *host == Host::Bootnode)
            })
            .ok_or_else(|| LabError::UnknownHost(s.to_owned()))
    }
}
