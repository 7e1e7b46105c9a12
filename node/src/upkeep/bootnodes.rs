//! The configured bootnodes: who they are, keeping them connected ([`crate::upkeep::redial`]), which
//! one to go through for a peer, and what each lacks, told once.
//!
//! Rules:
//! 1. The bootnodes are the ones `--bootnode` names, fixed for the node's life; one named
//!    twice is one, with the addresses of both.
//! 2. Each bootnode and transport is kept connected by [`Redial`]'s rules.
//! 3. To reach a peer through a bootnode (an introduction, a circuit), the node goes through
//!    the bootnode that told it of the peer when that one is connected, or else the first
//!    connected one in the configured order: the teller holds the peer's connection.
//! 4. What a bootnode lacks (it is not peerfind, or has no relay) is told once per run, at
//!    its first identify.
//! 5. A bootnode named by its record speaks the record exchange: it is greeted as soon as it
//!    is connected. One named by a multiaddr only, which may be any libp2p node, is greeted
//!    once its identify lists the protocol. A bootnode named both ways counts as named by its
//!    record.
//!
//! The state is bounded by `--bootnode`.

use std::collections::HashSet;

use libp2p::PeerId;
use tokio::time::Instant;

use crate::config::Bootnode;
use crate::upkeep::redial::Redial;

/// The configured bootnodes. See the module doc.
#[derive(Debug)]
pub(crate) struct Bootnodes {
    /// Rule 1, in the configured order.
    known: Vec<Bootnode>,
    /// Rule 2.
    pub(crate) redial: Redial,
    /// Rule 4: the bootnodes whose first identify was read.
    told: HashSet<PeerId>,
}

impl Bootnodes {
    pub(crate) fn new(bootnodes: &[Bootnode], now: Instant) -> Self {
        let mut known: Vec<Bootnode> = Vec::with_capacity(bootnodes.len());
        for b in bootnodes {
            match known.iter_mut().find(|k| k.peer_id == b.peer_id) {
                // One bootnode named twice (say once per transport) is one, with both addresses.
                Some(k) => {
                    k.from_record |= b.from_record;
                    for a in &b.addrs {
                        if !k.addrs.contains(a) {
                            k.addrs.push(a.clone());
                        }
                    }
                }
                None => known.push(b.clone()),
            }
        }
        Self {
            known,
            redial: Redial::new(bootnodes, now),
            told: HashSet::new(),
        }
    }

    /// Whether `peer` is a configured bootnode.
    pub(crate) fn contains(&self, peer: &PeerId) -> bool {
        self.known.iter().any(|b| b.peer_id == *peer)
    }

    /// Whether `peer` is a bootnode to greet as soon as it is connected (rule 5).
    pub(crate) fn greet_on_connect(&self, peer: &PeerId) -> bool {
        self.get(peer).is_some_and(|b| b.from_record)
    }

    /// A configured bootnode.
    pub(crate) fn get(&self, peer: &PeerId) -> Option<&Bootnode> {
        self.known.iter().find(|b| b.peer_id == *peer)
    }

    /// Every configured bootnode, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Bootnode> {
        self.known.iter()
    }

    /// The bootnode to reach a peer through (rule 3): `told`, the one that told us of it,
    /// when connected, or else the first connected one.
    pub(crate) fn via(
        &self,
        told: Option<PeerId>,
        connected: impl Fn(&PeerId) -> bool,
    ) -> Option<PeerId> {
        told.filter(|p| self.contains(p) && connected(p))
            .or_else(|| self.known.iter().map(|b| b.peer_id).find(|p| connected(p)))
    }

    /// Whether this identify of `peer` is a bootnode's first (rule 4): what it lacks is told
    /// now, and never again.
    pub(crate) fn first_identify(&mut self, peer: PeerId) -> bool {
        self.contains(&peer) && self.told.insert(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bootnode(peer: PeerId) -> Bootnode {
        Bootnode {
            peer_id: peer,
            addrs: vec![
                format!("/ip4/198.51.100.10/tcp/9000/p2p/{peer}")
                    .parse()
                    .expect("test address"),
            ],
            from_record: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn through_the_teller_when_connected_else_the_first_connected() {
        let (a, b, stranger) = (PeerId::random(), PeerId::random(), PeerId::random());
        let boots = Bootnodes::new(&[bootnode(a), bootnode(b)], Instant::now());
        assert_eq!(boots.via(Some(b), |_| true), Some(b), "the teller");
        assert_eq!(boots.via(Some(b), |p| *p == a), Some(a), "teller gone");
        assert_eq!(boots.via(None, |_| true), Some(a), "configured order");
        assert_eq!(
            boots.via(Some(stranger), |_| true),
            Some(a),
            "not a bootnode"
        );
        assert_eq!(boots.via(Some(a), |_| false), None);
    }

    #[tokio::test(start_paused = true)]
    async fn configured_once_told_once() {
        let (a, peer) = (PeerId::random(), PeerId::random());
        let mut boots = Bootnodes::new(&[bootnode(a), bootnode(a)], Instant::now());
        assert_eq!(boots.iter().count(), 1, "a bootnode named twice is one");
        assert!(boots.contains(&a) && !boots.contains(&peer));
        assert!(boots.first_identify(a));
        assert!(!boots.first_identify(a), "rule 4: once");
        assert!(!boots.first_identify(peer), "not a bootnode");
        assert!(!boots.greet_on_connect(&a), "rule 5: named by a multiaddr");
        let mut by_record = bootnode(a);
        by_record.from_record = true;
        let boots = Bootnodes::new(&[bootnode(a), by_record], Instant::now());
        assert!(boots.greet_on_connect(&a), "rule 5: named both ways");
        assert!(!boots.greet_on_connect(&peer), "rule 5: not a bootnode");
        assert_eq!(
            boots.redial.next_due(),
            Some(Instant::now()),
            "rule 2: due at once"
        );
    }
}
