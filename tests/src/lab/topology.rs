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
    /// its LAN that maps ports for the LAN host only: a home router. Its WAN address is a
    /// routable one, not the public segment's documentation range, which UPnP gateways and
    /// clients refuse (see the lab's `upnp` module).
    Upnp,
}

/// Where Alice or Bob sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placement {
    /// Directly on the public segment (Alice at .30, Bob at .40); the host's router is not made.
    Public,
    /// On a LAN behind the host's own router, which works in the given mode.
    BehindNat(NatMode),
}

/// The shape of a lab: where Alice and Bob sit, and which links are slow or lossy. The bootnode
/// and Charlie are always public.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Topology {
    /// Alice's place; behind nat-a when NAT'd.
    pub alice: Placement,
    /// Bob's place; behind nat-b when NAT'd.
    pub bob: Placement,
    /// Each host's uplink impairment, indexed like [`Host::ALL`].
    uplinks: [Option<Impairment>; 6],
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
    /// Alice and Bob placed as given.
    pub fn new(alice: Placement, bob: Placement) -> Self {
        Self {
            alice,
            bob,
            uplinks: [None; 6],
        }
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

    /// The hosts that exist in this topology: a router only when its host is behind it.
    pub fn hosts(&self) -> Vec<Host> {
        Host::ALL
            .into_iter()
            .filter(|host| match host {
                Host::NatA => matches!(self.alice, Placement::BehindNat(_)),
                Host::NatB => matches!(self.bob, Placement::BehindNat(_)),
                Host::Bootnode | Host::Charlie | Host::Alice | Host::Bob => true,
            })
            .collect()
    }

    /// The mode of `host`'s router, when `host` is Alice or Bob behind one.
    pub(super) fn nat(&self, host: Host) -> Option<NatMode> {
        match (host, self.alice, self.bob) {
            (Host::Alice | Host::NatA, Placement::BehindNat(mode), _)
            | (Host::Bob | Host::NatB, _, Placement::BehindNat(mode)) => Some(mode),
            _ => None,
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
    /// Alice's router.
    NatA,
    /// Bob's router.
    NatB,
}

impl Host {
    /// Every host, in a fixed order.
    pub const ALL: [Host; 6] = [
        Host::Bootnode,
        Host::Charlie,
        Host::Alice,
        Host::Bob,
        Host::NatA,
        Host::NatB,
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
        }
    }

    /// The host's router, for Alice and Bob.
    pub(super) fn router(self) -> Option<Host> {
        match self {
            Host::Alice => Some(Host::NatA),
            Host::Bob => Some(Host::NatB),
            Host::Bootnode | Host::Charlie | Host::NatA | Host::NatB => None,
        }
    }

    /// The host behind a router.
    pub(super) fn lan_host(self) -> Option<Host> {
        match self {
            Host::NatA => Some(Host::Alice),
            Host::NatB => Some(Host::Bob),
            Host::Bootnode | Host::Charlie | Host::Alice | Host::Bob => None,
        }
    }

    /// The address on the public segment, when the host is (or, for a router, its WAN is) there.
    pub(super) fn public_address(self) -> Ipv4Addr {
        let last = match self {
            Host::Bootnode => 10,
            Host::Charlie => 20,
            Host::Alice => 30,
            Host::Bob => 40,
            Host::NatA => 101,
            Host::NatB => 102,
        };
        let [a, b, c, _] = PUBLIC_NET.octets();
        Ipv4Addr::new(a, b, c, last)
    }

    /// The LAN behind a router, or around a NAT'd host: its third octet.
    fn lan_octet(self) -> u8 {
        match self {
            Host::Alice | Host::NatA => 1,
            Host::Bob | Host::NatB | Host::Bootnode | Host::Charlie => 2,
        }
    }

    /// The router's address on its LAN, which is the NAT'd host's gateway.
    pub(super) fn lan_gateway(self) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, self.lan_octet(), 1)
    }

    /// The NAT'd host's address on its LAN.
    pub(super) fn lan_address(self) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, self.lan_octet(), 2)
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
