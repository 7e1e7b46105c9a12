//! `peerfind netcheck`: what the configured bootnodes see of us, and what it says about our
//! NAT, per transport.
//!
//! Each bootnode's identify tells the address it sees our connection come from. With two or
//! more bootnodes, the addresses seen for the same local socket show the NAT's mapping: the
//! same everywhere (endpoint-independent: a peer that learns it can reach us there once we
//! punched towards it) or one per destination (a symmetric NAT: what one bootnode sees is no
//! use to anyone else, so only a relay or port guessing gets through).
//!
//! Rules:
//! 1. Only a configured bootnode's report on a direct connection that left from our listen
//!    port counts: a connection from another port shows that port's mapping, and a stranger's
//!    report could say anything.
//! 2. Per transport, two or more bootnodes reporting the same ip:port: **endpoint
//!    independent**; any two reporting different ones: **varies by destination**.
//! 3. Fewer than two reports: **unknown**, with how many there were.
//! 4. A transport **gets out** when a configured bootnode holds a direct connection to us
//!    over it.
//! 5. A transport **gets in** at each address of it that AutoNAT (or the operator's
//!    `--external-addr`) confirmed reachable.

use std::net::IpAddr;

use libp2p::{Multiaddr, PeerId};
use peerfind_behaviours::enr_ext::{self, Transport};

/// One bootnode's report (rule 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The bootnode.
    pub bootnode: PeerId,
    /// The connection's transport.
    pub transport: Transport,
    /// The address it sees us at.
    pub observed: Multiaddr,
}

/// The NAT's mapping, as the reports show it (rules 2 and 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// Every bootnode sees us at this ip:port.
    EndpointIndependent(IpAddr, u16),
    /// The bootnodes see us at these different ip:ports.
    VariesByDestination(Vec<(IpAddr, u16)>),
    /// Fewer than two bootnodes reported: this many did.
    Unknown(usize),
}

/// What netcheck finds for one transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportCheck {
    /// Which transport.
    pub transport: Transport,
    /// Rule 4: the configured bootnodes holding a direct connection to us over it.
    pub bootnodes_reached: usize,
    /// Rules 2 and 3.
    pub mapping: Mapping,
    /// Rule 5: its addresses confirmed reachable.
    pub reachable_at: Vec<Multiaddr>,
}

/// The whole finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netcheck {
    /// Every report counted (rule 1).
    pub seen: Vec<Seen>,
    /// UDP (QUIC), then TCP.
    pub transports: Vec<TransportCheck>,
}

/// Applies the rules to the bootnodes' reports (`seen`, rule 1 already applied by the
/// caller, which alone knows the connections' ports), the direct connections to configured
/// bootnodes (`reached`: one entry per bootnode and transport) and the confirmed addresses.
pub fn check(
    seen: Vec<Seen>,
    reached: &[(PeerId, Transport)],
    confirmed: &[Multiaddr],
) -> Netcheck {
    let transports = [Transport::Quic, Transport::Tcp]
        .into_iter()
        .map(|transport| {
            let mut sockets: Vec<(PeerId, (IpAddr, u16))> = Vec::new();
            for s in seen.iter().filter(|s| s.transport == transport) {
                if let Some((ip, port, t)) = enr_ext::socket_of(&s.observed)
                    && t == transport
                    && !sockets.iter().any(|(b, _)| *b == s.bootnode)
                {
                    sockets.push((s.bootnode, (ip, port)));
                }
            }
            let mut distinct: Vec<(IpAddr, u16)> = sockets.iter().map(|(_, s)| *s).collect();
            distinct.sort();
            distinct.dedup();
            let mapping = match (sockets.len(), distinct.as_slice()) {
                (n, _) if n < 2 => Mapping::Unknown(n),
                (_, [(ip, port)]) => Mapping::EndpointIndependent(*ip, *port),
                _ => Mapping::VariesByDestination(distinct),
            };
            let mut bootnodes: Vec<&PeerId> = reached
                .iter()
                .filter(|(_, t)| *t == transport)
                .map(|(b, _)| b)
                .collect();
            bootnodes.sort();
            bootnodes.dedup();
            TransportCheck {
                transport,
                bootnodes_reached: bootnodes.len(),
                mapping,
                reachable_at: confirmed
                    .iter()
                    .filter(|a| enr_ext::socket_of(a).is_some_and(|(_, _, t)| t == transport))
                    .cloned()
                    .collect(),
            }
        })
        .collect();
    Netcheck { seen, transports }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn seen(bootnode: PeerId, addr: &str) -> Seen {
        let observed: Multiaddr = addr.parse().unwrap();
        let transport = enr_ext::socket_of(&observed).unwrap().2;
        Seen {
            bootnode,
            transport,
            observed,
        }
    }

    fn of(n: &Netcheck, t: Transport) -> &TransportCheck {
        n.transports.iter().find(|c| c.transport == t).unwrap()
    }

    #[test]
    fn rule_2_the_same_address_everywhere_is_endpoint_independent() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let n = check(
            vec![
                seen(a, "/ip4/203.0.113.7/udp/4242/quic-v1"),
                seen(b, "/ip4/203.0.113.7/udp/4242/quic-v1"),
                seen(a, "/ip4/203.0.113.7/tcp/4242"),
            ],
            &[
                (a, Transport::Quic),
                (b, Transport::Quic),
                (a, Transport::Tcp),
            ],
            &[],
        );
        assert_eq!(
            of(&n, Transport::Quic).mapping,
            Mapping::EndpointIndependent("203.0.113.7".parse().unwrap(), 4242)
        );
        assert_eq!(of(&n, Transport::Quic).bootnodes_reached, 2);
        // Rule 3: one report over TCP says nothing of its mapping; it still gets out (rule 4).
        assert_eq!(of(&n, Transport::Tcp).mapping, Mapping::Unknown(1));
        assert_eq!(of(&n, Transport::Tcp).bootnodes_reached, 1);
    }

    #[test]
    fn rule_2_another_port_or_ip_per_bootnode_varies_by_destination() {
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let n = check(
            vec![
                seen(a, "/ip4/203.0.113.7/udp/40001/quic-v1"),
                seen(b, "/ip4/203.0.113.7/udp/40002/quic-v1"),
                seen(a, "/ip4/203.0.113.7/tcp/50001"),
                seen(c, "/ip4/203.0.113.8/tcp/50001"),
            ],
            &[],
            &[],
        );
        for t in [Transport::Quic, Transport::Tcp] {
            assert!(
                matches!(&of(&n, t).mapping, Mapping::VariesByDestination(v) if v.len() == 2),
                "{t:?}: {:?}",
                of(&n, t).mapping
            );
            assert_eq!(of(&n, t).bootnodes_reached, 0, "rule 4: none reached now");
        }
    }

    #[test]
    fn rule_3_one_bootnode_twice_is_one_report_and_rule_5_sorts_confirmed_addresses() {
        let a = PeerId::random();
        let n = check(
            vec![
                seen(a, "/ip4/203.0.113.7/udp/1/quic-v1"),
                seen(a, "/ip4/203.0.113.7/udp/2/quic-v1"),
            ],
            &[],
            &[
                "/ip4/203.0.113.7/tcp/9000".parse().unwrap(),
                "/ip4/203.0.113.7/udp/9000/quic-v1".parse().unwrap(),
            ],
        );
        assert_eq!(of(&n, Transport::Quic).mapping, Mapping::Unknown(1));
        assert_eq!(of(&n, Transport::Tcp).reachable_at.len(), 1);
        assert_eq!(of(&n, Transport::Quic).reachable_at.len(), 1);
    }
}
