//! The address block a record counts against (table rule 8): what one network can fill.

use std::fmt;
use std::net::IpAddr;

use crate::enr_ext::Enr;

/// The address block a record counts against (rule 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// An IPv4 /24: the first three octets.
    V4([u8; 3]),
    /// An IPv6 /64: the first eight octets.
    V6([u8; 8]),
    /// No address known: a record passed on naming no IP, or announced naming none over a
    /// relayed circuit only.
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
