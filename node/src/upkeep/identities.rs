//! What identify tells the node of each connected peer, peerfind or not: the ENR exchange
//! starts only with peers that speak it, `peers` lists connected peers without a record, and
//! a bootnode that is not peerfind is told apart and its gaps logged once and reported.

use std::collections::HashMap;

use libp2p::{PeerId, identify};

use crate::status;

/// Protocols kept per peer. A peer chooses how many it lists; real nodes list 5 to 20
/// (peerfind 13), so this keeps them all and bounds what a hostile peer can make us hold.
pub(crate) const MAX_PROTOCOLS: usize = 128;

/// Listen addresses kept per peer: a node has a few per interface and transport.
pub(crate) const MAX_LISTEN_ADDRS: usize = 32;

/// Longest agent or protocol version kept, in bytes.
const MAX_TEXT: usize = 256;

/// Relay v2's reservation protocol: a node offering it can relay for us.
const RELAY_HOP: &str = "/libp2p/circuit/relay/0.2.0/hop";

/// DCUtR: a node offering it can coordinate a hole punch with us (over a circuit only; a
/// bootnode needs none, since punches run between peers).
#[cfg(test)]
const DCUTR: &str = "/libp2p/dcutr";

/// AutoNAT v2's request protocol: a node offering it can dial us back.
const AUTONAT_V2: &str = "/libp2p/autonat/2/dial-request";

/// peerfind's record exchange (`gossip::protocol::PROTOCOL`).
const ENR: &str = "/peerfind/enr/1.0.0";

/// What a peer uses a bootnode for, the protocol that provides it, and how its lack is said:
/// only what the user loses. DCUtR is not among them: a hole punch runs between two peers
/// over a circuit, never with the bootnode, and libp2p lists DCUtR only on relayed
/// connections, so every bootnode seemed to lack it.
const BOOTNODE_USES: [(&str, &str); 3] = [
    (
        ENR,
        "no record gossip or introductions (not a peerfind node)",
    ),
    (
        RELAY_HOP,
        "no circuit relay v2: peers behind a NAT cannot reach us through it",
    ),
    (
        AUTONAT_V2,
        "no AutoNAT v2: NAT status comes from the window alone",
    ),
];

/// What one connected peer's last identify said.
#[derive(Debug, Clone, Default)]
pub(crate) struct Identified(pub(crate) status::Identify);

impl Identified {
    /// Keeps what `info` says, within the bounds above.
    pub(crate) fn new(info: &identify::Info) -> Self {
        Self(status::Identify {
            agent: truncate(&info.agent_version),
            protocol_version: truncate(&info.protocol_version),
            protocols: info
                .protocols
                .iter()
                .take(MAX_PROTOCOLS)
                .map(ToString::to_string)
                .collect(),
            listen_addrs: info
                .listen_addrs
                .iter()
                .take(MAX_LISTEN_ADDRS)
                .cloned()
                .collect(),
            observed_addr: Some(info.observed_addr.clone()).filter(|a| !a.is_empty()),
        })
    }

    /// Whether the peer says it speaks `protocol`.
    fn speaks(&self, protocol: &str) -> bool {
        self.0.protocols.iter().any(|p| p == protocol)
    }

    /// Whether, as a bootnode, it tells strangers of us: it gossips records (NAT rule 4).
    pub(crate) fn tells_strangers(&self) -> bool {
        self.speaks(ENR)
    }

    /// Whether it offers circuit relay v2.
    pub(crate) fn has_relay(&self) -> bool {
        self.speaks(RELAY_HOP)
    }

    /// What a bootnode like this one lacks, in plain words.
    pub(crate) fn lacks(&self) -> Vec<String> {
        BOOTNODE_USES
            .iter()
            .filter(|(protocol, _)| !self.speaks(protocol))
            .map(|(_, lack)| (*lack).to_owned())
            .collect()
    }
}

/// What each connected peer's last identify said. Bounded by the connected peers: a peer's
/// entry goes when its last connection closes.
#[derive(Debug, Default)]
pub(crate) struct Identities(HashMap<PeerId, Identified>);

impl Identities {
    /// `peer` identified itself.
    pub(crate) fn insert(&mut self, peer: PeerId, identified: Identified) {
        self.0.insert(peer, identified);
    }

    /// Its last connection closed: forget what it said.
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.0.remove(peer);
    }

    /// What the last identify of `peer` said, while connected.
    pub(crate) fn get(&self, peer: &PeerId) -> Option<status::Identify> {
        self.0.get(peer).map(|i| i.0.clone())
    }

    /// Whether `peer` offers circuit relay v2 (None: not identified).
    pub(crate) fn has_relay(&self, peer: &PeerId) -> Option<bool> {
        self.0.get(peer).map(Identified::has_relay)
    }

    /// A bootnode's agent and what it lacks ("" and none until it identified).
    pub(crate) fn bootnode(&self, peer: &PeerId) -> (String, Vec<String>) {
        self.0
            .get(peer)
            .map(|i| (i.0.agent.clone(), i.lacks()))
            .unwrap_or_default()
    }
}

fn truncate(s: &str) -> String {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use libp2p::{Multiaddr, StreamProtocol};

    use super::*;

    fn info(protocols: &[&'static str]) -> identify::Info {
        identify::Info {
            public_key: Keypair::generate_ed25519().public(),
            protocol_version: "/ipfs/0.1.0".into(),
            agent_version: "js-libp2p/3.3.11".into(),
            listen_addrs: vec![],
            protocols: protocols.iter().map(|p| StreamProtocol::new(p)).collect(),
            observed_addr: Multiaddr::empty(),
            signed_peer_record: None,
        }
    }

    #[test]
    fn a_bootnode_that_is_not_peerfind_lacks_gossip_and_what_it_does_not_list() {
        let plain = Identified::new(&info(&["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", RELAY_HOP]));
        let lacks = plain.lacks();
        assert_eq!(lacks.len(), 2, "{lacks:?}");
        assert!(lacks[0].contains("not a peerfind node"));
        assert!(lacks.iter().all(|l| !l.contains("relay")), "{lacks:?}");
        assert_eq!(plain.0.observed_addr, None);
    }

    #[test]
    fn the_record_exchange_is_named_as_gossip_names_it() {
        assert_eq!(
            ENR,
            peerfind_behaviours::gossip::protocol::PROTOCOL.as_ref()
        );
    }

    #[test]
    fn only_a_bootnode_that_gossips_records_tells_strangers_of_us() {
        let plain = Identified::new(&info(&["/ipfs/id/1.0.0", RELAY_HOP]));
        assert!(!plain.tells_strangers() && plain.has_relay());
        let full = Identified::new(&info(&[ENR, DCUTR]));
        assert!(full.tells_strangers() && !full.has_relay());
    }

    #[test]
    fn a_full_peerfind_bootnode_lacks_nothing() {
        // As a peerfind bootnode lists them on a direct connection: no DCUtR.
        let full = Identified::new(&info(&["/peerfind/enr/1.0.0", RELAY_HOP, AUTONAT_V2]));
        assert!(full.lacks().is_empty());
    }

    #[test]
    fn what_a_peer_says_is_bounded() {
        let mut i = info(&[]);
        i.agent_version = "é".repeat(MAX_TEXT);
        i.protocols = (0..MAX_PROTOCOLS + 10)
            .map(|n| {
                StreamProtocol::try_from_owned(format!("/p/{n}"))
                    .unwrap_or_else(|_| StreamProtocol::new("/p"))
            })
            .collect();
        let kept = Identified::new(&i);
        assert_eq!(kept.0.protocols.len(), MAX_PROTOCOLS);
        assert!(kept.0.agent.len() <= MAX_TEXT);
    }
}
