//! Which destinations are special (dial guard rules 2 and 3): unroutable ones, and the
//! special-purpose ranges (IANA's registries, RFC 6890) a node may dial only when it is on
//! that network itself.
//!
//! Written here: `std`'s `Ipv4Addr::is_global`, `is_shared` and `is_benchmarking` are still
//! unstable, and no kept crate names the ranges a node can be *on*, which is what rule 3
//! asks; where `std` has a stable test, it is used.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A special-purpose range. A node is on one when one of its listen addresses or a configured
/// bootnode is in it; only then does it dial into it (rule 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Range {
    /// 127.0.0.0/8, ::1: this host.
    Loopback,
    /// 10.0.0.0/8 (RFC 1918): Kubernetes pods and services, many LANs.
    Private10,
    /// 172.16.0.0/12 (RFC 1918): container bridges, compose.
    Private172,
    /// 192.168.0.0/16 (RFC 1918): home LANs.
    Private192,
    /// 100.64.0.0/10 (RFC 6598): carrier-grade NAT's inside.
    Shared,
    /// 169.254.0.0/16, fe80::/10: one link.
    LinkLocal,
    /// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 (RFC 5737), 2001:db8::/32 (RFC 3849):
    /// examples and labs; one range, since a lab spans several of them.
    Documentation,
    /// 198.18.0.0/15 (RFC 2544): benchmarking networks.
    Benchmarking,
    /// fc00::/7 (RFC 4193): IPv6's private addresses.
    UniqueLocal,
}

/// Whether nobody can be reached at `ip`: unspecified, "this network" (0.0.0.0/8),
/// multicast, the broadcast address, or the reserved 240.0.0.0/4 (rule 2).
pub fn unroutable(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            v4.octets()[0] == 0 || v4.is_multicast() || v4.is_broadcast() || v4.octets()[0] >= 240
        }
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    }
}

/// The special-purpose range `ip` is in, if any (an IPv4-mapped address counts as its IPv4
/// one).
pub fn range_of(ip: IpAddr) -> Option<Range> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => range_v4(v4),
        IpAddr::V6(v6) => range_v6(v6),
    }
}

fn range_v4(ip: Ipv4Addr) -> Option<Range> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (127, _, _) => Range::Loopback,
        (10, _, _) => Range::Private10,
        (172, 16..=31, _) => Range::Private172,
        (192, 168, _) => Range::Private192,
        (100, 64..=127, _) => Range::Shared,
        (169, 254, _) => Range::LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Range::Documentation,
        (198, 18..=19, _) => Range::Benchmarking,
        _ => return None,
    })
}

fn range_v6(ip: Ipv6Addr) -> Option<Range> {
    let s = ip.segments();
    if ip.is_loopback() {
        Some(Range::Loopback)
    } else if ip.is_unicast_link_local() {
        Some(Range::LinkLocal)
    } else if ip.is_unique_local() {
        Some(Range::UniqueLocal)
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        Some(Range::Documentation)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn range(s: &str) -> Option<Range> {
        range_of(s.parse().unwrap())
    }

    #[test]
    fn special_ranges_are_named_and_public_addresses_are_none() {
        assert_eq!(range("127.0.0.2"), Some(Range::Loopback));
        assert_eq!(range("::1"), Some(Range::Loopback));
        assert_eq!(range("10.1.2.3"), Some(Range::Private10));
        assert_eq!(range("172.31.0.1"), Some(Range::Private172));
        assert_eq!(range("172.32.0.1"), None);
        assert_eq!(range("192.168.1.1"), Some(Range::Private192));
        assert_eq!(range("100.127.255.1"), Some(Range::Shared));
        assert_eq!(range("100.128.0.1"), None);
        assert_eq!(range("169.254.9.9"), Some(Range::LinkLocal));
        assert_eq!(range("fe80::1"), Some(Range::LinkLocal));
        assert_eq!(range("198.51.100.7"), Some(Range::Documentation));
        assert_eq!(range("203.0.113.7"), Some(Range::Documentation));
        assert_eq!(range("2001:db8::7"), Some(Range::Documentation));
        assert_eq!(range("198.19.0.1"), Some(Range::Benchmarking));
        assert_eq!(range("fd00::1"), Some(Range::UniqueLocal));
        assert_eq!(
            range("::ffff:10.0.0.1"),
            Some(Range::Private10),
            "v4-mapped"
        );
        assert_eq!(range("8.8.8.8"), None);
        assert_eq!(range("2a00::1"), None);
    }

    #[test]
    fn unroutable_destinations() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "ff02::1",
        ] {
            assert!(unroutable(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "127.0.0.1", "2a00::1"] {
            assert!(!unroutable(ip.parse().unwrap()), "{ip}");
        }
    }
}
