//! Which records the ENR exchange takes, and from whom: a record travels only with proof.
//!
//! A record is signed, so nobody can change another's record; but anyone can make a key and
//! sign a record naming any `ip:port`, and a node that took such records would dial that
//! address, as would every peer a bootnode gossiped them to: a reflector, many times the
//! bytes the attacker sent. So what a record says of its address counts only with proof.
//!
//! Rules, first match wins, for each record that arrives:
//! 1. An announcement must carry the announcer's own record (its key is the connection's
//!    key): otherwise it is forged ([`super::Violation::Forged`]).
//! 2. An announced record naming no IP is taken: the design note's "Hello (ENR with no IP)"
//!    makes nobody dial anything.
//! 3. An announced record naming an IP is taken only when every IP it names (its IPv4 and
//!    its IPv6 address) is one the announcer's direct connections come from
//!    ([`crate::remotes`]): the connection proves the address, and one proven IP must not
//!    carry another nobody proved (a record with its owner's IPv4 and a victim's IPv6). A
//!    dual-stack node is gossiped once it is connected to us over both families. The port is
//!    not checked: a dial to the owner's own IP reaches the owner or nobody else we could
//!    harm more than by dialing the owner. The table counts the record against its IPv4's
//!    group (`table/` rule 8; its IPv6's when it names no IPv4), an IP-less one against
//!    its connection's.
//! 4. A record passed on by someone other than its owner (a push, an answer to our request,
//!    the bootnodes' mesh) is taken only from a trusted peer ([`Trust`]): a node's
//!    configured bootnodes, which took it under rules 1–3 themselves, and, while connected,
//!    a bootnode that proved it holds the mesh secret the operator gave this one (vouched
//!    for by the node: `Exchange::<Gossip>::trust_while_connected`). Trust is the node's to
//!    give, from its configuration; nothing a peer says earns it.
//!
//! A record dropped under rule 3 or 4 is counted by label (`unverified`, `untrusted`) and
//! logged at debug: an honest peer meets rule 3 over a relayed circuit or a LAN (where the
//! connection shows another IP than the record) and rule 4 when a foreign node pushes, and
//! its bootnode brings the record the proper way.

use std::collections::HashSet;
use std::net::IpAddr;

use libp2p::PeerId;

use crate::enr_ext::Enr;
use crate::remotes::Remotes;

/// Whose passed-on records a node takes (rule 4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Trust {
    /// Only these peers' (the configured bootnodes'). Default: nobody, so a node takes only
    /// records announced by their owners until it is told whom to trust.
    #[default]
    Nobody,
    /// These peers.
    Peers(HashSet<PeerId>),
    /// Anyone: for simulations and tests whose peers all are honest, never for a node.
    Anyone,
}

impl Trust {
    /// Whether records passed on by `peer` are taken.
    pub fn trusts(&self, peer: &PeerId) -> bool {
        match self {
            Trust::Nobody => false,
            Trust::Peers(peers) => peers.contains(peer),
            Trust::Anyone => true,
        }
    }
}

/// Why a record was not taken, beside the protocol's violations: not the peer's fault
/// necessarily, so these are counted and logged at debug, not as violations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unproven {
    /// Rule 3: the record names an IP that no direct connection of the announcer comes from.
    #[error("the record names an address its connection does not come from")]
    Unverified,
    /// Rule 4: passed on by a peer this node does not take records from.
    #[error("records are taken only from the configured bootnodes")]
    Untrusted,
    /// Not a matter of proof, but handled alike (counted, answered, logged at debug): the
    /// peer, or its address block, sent more requests this minute than `rate.rs` allows.
    #[error("too many requests from this peer or its network; try again in a minute")]
    RateLimited,
}

impl Unproven {
    /// A short stable label, for counters and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Unproven::Unverified => "unverified",
            Unproven::Untrusted => "untrusted",
            Unproven::RateLimited => "rate_limited",
        }
    }
}

/// Rules 2 and 3: whether `enr`, announced by its owner `peer`, names only where it is; when
/// it names an IP, the one a connection proved (the table groups the record by it).
pub(crate) fn check_announced(
    enr: &Enr,
    peer: &PeerId,
    remotes: &Remotes,
) -> Result<Option<IpAddr>, Unproven> {
    let ips: Vec<IpAddr> = [enr.ip4().map(IpAddr::V4), enr.ip6().map(IpAddr::V6)]
        .into_iter()
        .flatten()
        .collect();
    if ips.is_empty() {
        return Ok(None);
    }
    if ips.iter().all(|ip| remotes.has_ip(peer, *ip)) {
        Ok(ips.first().copied())
    } else {
        Err(Unproven::Unverified)
    }
}

/// Rule 4: whether records passed on by `from` are taken, given the configured `trust` and
/// the peers the node `vouched` for while they are connected.
pub(crate) fn check_passed_on(
    trust: &Trust,
    vouched: &HashSet<PeerId>,
    from: &PeerId,
) -> Result<(), Unproven> {
    if trust.trusts(from) || vouched.contains(from) {
        Ok(())
    } else {
        Err(Unproven::Untrusted)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::Ipv4Addr;

    use enr::k256::ecdsa::SigningKey;
    use libp2p::core::transport::PortUse;
    use libp2p::core::{ConnectedPoint, Endpoint};
    use libp2p::swarm::ConnectionId;

    use super::*;
    use crate::enr_ext;

    fn record(ip: Option<Ipv4Addr>) -> (Enr, PeerId) {
        let secret = libp2p::identity::secp256k1::SecretKey::generate();
        let key = SigningKey::from_slice(&secret.to_bytes()).unwrap();
        let mut builder = Enr::builder();
        if let Some(ip) = ip {
            builder.ip4(ip).tcp4(4001);
        }
        let enr = builder.build(&key).unwrap();
        let peer = enr_ext::peer_id(&enr).unwrap();
        (enr, peer)
    }

    fn connected_from(peer: PeerId, addr: &str) -> Remotes {
        let mut remotes = Remotes::default();
        remotes.established(
            peer,
            ConnectionId::new_unchecked(1),
            &ConnectedPoint::Dialer {
                address: addr.parse().unwrap(),
                role_override: Endpoint::Dialer,
                port_use: PortUse::Reuse,
            },
        );
        remotes
    }

    #[test]
    fn rule_2_a_record_without_an_ip_is_taken_from_its_owner() {
        let (enr, peer) = record(None);
        assert_eq!(check_announced(&enr, &peer, &Remotes::default()), Ok(None));
    }

    #[test]
    fn rule_3_a_record_naming_the_ip_its_connection_comes_from_is_taken() {
        let (enr, peer) = record(Some(Ipv4Addr::new(198, 51, 100, 7)));
        let remotes = connected_from(peer, "/ip4/198.51.100.7/tcp/5555");
        assert_eq!(
            check_announced(&enr, &peer, &remotes),
            Ok(Some(Ipv4Addr::new(198, 51, 100, 7).into()))
        );
    }

    #[test]
    fn rule_3_a_record_naming_another_ip_than_its_connection_is_unverified() {
        let (enr, peer) = record(Some(Ipv4Addr::new(203, 0, 113, 9)));
        let remotes = connected_from(peer, "/ip4/198.51.100.7/tcp/5555");
        assert_eq!(
            check_announced(&enr, &peer, &remotes),
            Err(Unproven::Unverified)
        );
    }

    #[test]
    fn rule_3_every_ip_a_record_names_must_be_proven() {
        let secret = libp2p::identity::secp256k1::SecretKey::generate();
        let key = SigningKey::from_slice(&secret.to_bytes()).unwrap();
        let enr = Enr::builder()
            .ip4(Ipv4Addr::new(198, 51, 100, 7))
            .tcp4(4001)
            .ip6("2001:db8::9".parse().unwrap())
            .tcp6(4001)
            .build(&key)
            .unwrap();
        let peer = enr_ext::peer_id(&enr).unwrap();
        let mut remotes = connected_from(peer, "/ip4/198.51.100.7/tcp/5555");
        assert_eq!(
            check_announced(&enr, &peer, &remotes),
            Err(Unproven::Unverified),
            "the owner's IPv4 proves nothing of the IPv6 beside it"
        );
        remotes.established(
            peer,
            ConnectionId::new_unchecked(2),
            &ConnectedPoint::Dialer {
                address: "/ip6/2001:db8::9/udp/5555/quic-v1".parse().unwrap(),
                role_override: Endpoint::Dialer,
                port_use: PortUse::Reuse,
            },
        );
        assert_eq!(
            check_announced(&enr, &peer, &remotes),
            Ok(Some(Ipv4Addr::new(198, 51, 100, 7).into())),
            "connected over both families, both are proven; grouped by its IPv4"
        );
    }

    #[test]
    fn rule_3_a_relayed_connection_proves_no_address() {
        let (enr, peer) = record(Some(Ipv4Addr::new(198, 51, 100, 1)));
        let relayed = format!(
            "/ip4/198.51.100.1/tcp/4001/p2p/{}/p2p-circuit",
            PeerId::random()
        );
        let remotes = connected_from(peer, &relayed);
        assert_eq!(
            check_announced(&enr, &peer, &remotes),
            Err(Unproven::Unverified)
        );
    }

    #[test]
    fn rule_4_passed_on_records_are_taken_only_from_trusted_peers() {
        let bootnode = PeerId::random();
        let stranger = PeerId::random();
        let trust = Trust::Peers([bootnode].into());
        let none = HashSet::new();
        assert_eq!(check_passed_on(&trust, &none, &bootnode), Ok(()));
        assert_eq!(
            check_passed_on(&trust, &none, &stranger),
            Err(Unproven::Untrusted)
        );
        assert_eq!(
            check_passed_on(&Trust::default(), &none, &bootnode),
            Err(Unproven::Untrusted),
            "a node trusts nobody until told"
        );
        assert_eq!(check_passed_on(&Trust::Anyone, &none, &stranger), Ok(()));
        let member = PeerId::random();
        assert_eq!(
            check_passed_on(&trust, &[member].into(), &member),
            Ok(()),
            "a member the node vouched for"
        );
    }
}
