//! Port mapping over UPnP-IGD: peerfind's own small client, on `igd-next`.
//!
//! A node behind a home router asks the router's UPnP-IGD gateway to forward each of its TCP
//! and QUIC listen ports on a private IPv4 address to it; a port the router maps is a
//! candidate address that AutoNAT's client tests like any other (its dial-back is the
//! proof), never an address the swarm takes unseen. The rules of what a mapping changes are
//! in `crate::reach::mapping`; the wiring is `crate::service` (`mapping.rs`). Built as a
//! libp2p behaviour without connections: [`Behaviour`] hears the swarm's listen addresses and
//! hands them to one task per node ([`gateway`]), which owns the gateway and every mapping.
//!
//! **Why hand-written.** libp2p's `upnp` (libp2p-upnp 0.7, in libp2p 0.57) refuses every
//! gateway whose external IP is not global by its own hard-coded check (`is_addr_global` in
//! its `tokio.rs`: documentation, benchmarking and shared ranges all count as not global, and
//! it reports `NonRoutableGateway`), with no way to configure it; it also confirms a mapped
//! address as external without any dial-back, and removes a mapping only when its listener
//! closes. This client is a few hundred lines on `igd-next`, the crate libp2p-upnp itself
//! uses for the protocol.
//!
//! **Which gateways it refuses.** Only one whose external IP is private (RFC 1918), shared
//! (100.64.0.0/10, a carrier-grade NAT), loopback, link-local or unspecified
//! ([`gateway::behind_another_nat`]): such a gateway sits behind another NAT, and its mapping
//! would open only the inner one. Documentation and benchmarking ranges are not refused: an
//! AutoNAT dial-back verifies every mapping anyway, so this check is only a shortcut that
//! saves asking for a mapping that cannot work, and the project's lab (whose public segment
//! is on a documentation range) depends on it.
//!
//! **Bounds.** The gateway is a device on our LAN, not a peer, but its answers are still
//! bounded: the search takes at most [`gateway::SEARCH_TIMEOUT`]; every control request
//! ([`http`]) at most [`http::REQUEST_TIMEOUT`], and its answer at most
//! [`http::MAX_RESPONSE`] bytes; the gateway's URLs at most [`gateway::MAX_URL`] bytes;
//! at most [`MAX_MAPPINGS`] mappings and as many queued commands and reports. One
//! shortcut: the search's own description fetches are `igd-next`'s, bounded in time (the
//! search timeout) but not in size.
//!
//! Leases are [`gateway::LEASE`] long and renewed at half of it; a renewal the gateway
//! refuses loses the mapping ([`Event::ExpiredExternalAddr`]). [`Behaviour::unmap_all`]
//! removes every mapping, for the node's shutdown; a node killed without it leaves them
//! until their lease ends. IPv4 and UPnP-IGD only (no NAT-PMP or PCP).

mod behaviour;
pub mod gateway;
pub mod http;

pub use behaviour::{Behaviour, Event, MAX_MAPPINGS};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// The candidate AutoNAT tests for a mapped `external` address: the address with our
/// `/p2p/<local>` appended, so that it is tested as an address of its own, after the router
/// mapped it. Under an endpoint-independent NAT the router's own translation of our listen
/// port is the same `ip:port`, which identify's observers may have had tested (and failed)
/// before the router forwarded the port, and AutoNAT never tests an address twice. The
/// wiring knows the tested address is the mapped one by that suffix ([`mapped`]).
pub fn candidate(external: &Multiaddr, local: PeerId) -> Multiaddr {
    external.clone().with(Protocol::P2p(local))
}

/// The mapped address `tested` stands for, when it is a [`candidate`] of ours: `tested`
/// without its trailing `/p2p/<local>`.
pub fn mapped(tested: &Multiaddr, local: PeerId) -> Option<Multiaddr> {
    let mut addr = tested.clone();
    match addr.pop() {
        Some(Protocol::P2p(peer)) if peer == local => Some(addr),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_address_is_tested_as_a_candidate_of_its_own_and_read_back() {
        let local = PeerId::random();
        let external: Multiaddr = "/ip4/198.51.100.101/udp/9000/quic-v1".parse().unwrap();
        let tested = candidate(&external, local);
        assert_ne!(tested, external, "not the NAT's own translation");
        assert_eq!(mapped(&tested, local), Some(external.clone()));
        assert_eq!(mapped(&external, local), None, "a plain address");
        assert_eq!(
            mapped(&candidate(&external, PeerId::random()), local),
            None,
            "another node's"
        );
    }
}
