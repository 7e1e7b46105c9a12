//! The address block an IP belongs to: what one network (one customer, one host, one NAT's
//! public side) typically holds, an IPv4 /24 or an IPv6 /64. A PeerId costs an attacker
//! nothing, an address block does, so whatever a stranger can repeat is counted by block:
//! the records of one block in the table (table rule 8), the introductions asked from one
//! (intro rule 3), the dials to one.

use std::fmt;
use std::net::IpAddr;

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

use crate::enr_ext::Enr;

/// The IP a direct connection's or a dial's address starts with, canonical (an IPv4-mapped
/// IPv6 address as its IPv4 one); none for a relayed circuit, whose address names the
/// relay, not the peer, or for a name not resolved yet.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    if addr.iter().any(|p| p == Protocol::P2pCircuit) {
        return None;
    }
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip).to_canonical()),
        _ => None,
    }
}

/// The address block of an IP; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// An IPv4 /24: the first three octets.
    V4([u8; 3]),
    /// An IPv6 /64: the first eight octets.
    V6([u8; 8]),
    /// No address known (a record passed on naming no IP, or announced naming none over a
    /// relayed circuit only; a requester seen over no direct connection): all share one.
    NoAddress,
}

impl Group {
    /// The group of `ip` (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                Group::V4([a, b, c])
            }
            IpAddr::V6(v6) => {
                let o = v6.octets();
                Group::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
            }
        }
    }

    /// The group of the IP `addr` starts with ([`ip_of`]), if any.
    pub fn of_addr(addr: &Multiaddr) -> Option<Self> {
        ip_of(addr).map(Self::of)
    }

    /// The group of the IP a record names (its IPv4 one when it names both), or
    /// [`Group::NoAddress`]: for records passed on by others, whose connection we never saw.
    pub fn of_record(enr: &Enr) -> Self {
        match (enr.ip4(), enr.ip6()) {
            (Some(ip), _) => Group::of(IpAddr::V4(ip)),
            (None, Some(ip)) => Group::of(IpAddr::V6(ip)),
            (None, None) => Group::NoAddress,
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Group::V4([a, b, c]) => write!(f, "{a}.{b}.{c}.0/24"),
            Group::V6(o) => {
                let mut full = [0u8; 16];
                full[..8].copy_from_slice(o);
                write!(f, "{}/64", std::net::Ipv6Addr::from(full))
            }
            Group::NoAddress => f.write_str("no address"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ips_are_grouped_by_slash_24_and_slash_64() {
        let group = |s: &str| Group::of(s.parse().unwrap());
        assert_eq!(group("198.51.100.7"), group("198.51.100.200"));
        assert_ne!(group("198.51.100.7"), group("198.51.101.7"));
        assert_eq!(group("2001:db8:1:2::1"), group("2001:db8:1:2:ffff::9"));
        assert_ne!(group("2001:db8:1:2::1"), group("2001:db8:1:3::1"));
        assert_eq!(
            group("::ffff:198.51.100.9"),
            group("198.51.100.7"),
            "v4-mapped"
        );
        assert_eq!(group("198.51.100.7").to_string(), "198.51.100.0/24");
        assert_eq!(group("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn a_circuit_or_a_name_has_no_ip() {
        let addr = |s: &str| s.parse::<Multiaddr>().unwrap();
        let relay = libp2p::PeerId::random();
        assert_eq!(
            ip_of(&addr(&format!(
                "/ip4/198.51.100.1/tcp/1/p2p/{relay}/p2p-circuit"
            ))),
            None
        );
        assert_eq!(ip_of(&addr("/dns4/example.com/tcp/1")), None);
        assert_eq!(
            Group::of_addr(&addr("/ip4/198.51.100.1/udp/1/quic-v1")),
            Some(Group::of("198.51.100.9".parse().unwrap()))
        );
    }
}
