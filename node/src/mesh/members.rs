//! Who is a member of the bootnodes' mesh: who may publish records on it, receive them from
//! it, and get a bootnode's table pushed (`crate::mesh` rules 1, 6 to 8).
//!
//! # Rules
//!
//! 1. A configured bootnode (`--bootnode`) is a member, with or without a mesh secret: the
//!    operator named it.
//! 2. Any other peer is a member only once it proved, on a connection, that it holds our
//!    mesh secret ([`super::secret`]); a node without a secret admits nobody that way.
//! 3. A proof holds until the peer's last connection closes: the next connection run proves
//!    again.
//! 4. With a secret, we prove ourselves once per connection run to each peer that shows (in
//!    identify) that it speaks the admission protocol: only bootnodes do, so peers get nothing.
//! 5. A proof that does not hold, or one sent to a node without a secret, is refused and
//!    counted; the peer stays connected as any peer, outside the mesh. So is a mesh message
//!    a non-member passed on (`crate::mesh` rule 8).
//!
//! The state is one entry per connected peer that proved itself or that we proved ourselves
//! to: bounded by the connections.

use std::collections::HashSet;

use libp2p::PeerId;

use super::secret::{Proof, Secret};

/// What a peer's proof earned it (rules 2 and 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The proof holds: a member until its last connection closes.
    Admitted,
    /// The proof does not: another secret.
    Refused,
    /// We hold no secret, so no proof can hold.
    NoSecret,
}

/// The mesh's members, as this bootnode sees them. See the module doc.
#[derive(Debug)]
pub struct Members {
    local: PeerId,
    secret: Option<Secret>,
    /// Rule 1.
    configured: HashSet<PeerId>,
    /// Rules 2 and 3: connected peers that proved they hold the secret.
    proven: HashSet<PeerId>,
    /// Rule 4: connected peers we proved ourselves to in this connection run.
    proved_to: HashSet<PeerId>,
    /// Rule 5: proofs refused so far.
    refused: u64,
    /// Rule 5: mesh messages from non-members so far.
    not_member: u64,
}

impl Members {
    /// The members of `local`'s mesh: `configured` bootnodes, and with `secret` whoever proves
    /// it holds it.
    pub fn new(local: PeerId, configured: HashSet<PeerId>, secret: Option<Secret>) -> Self {
        Self {
            local,
            secret,
            configured,
            proven: HashSet::new(),
            proved_to: HashSet::new(),
            refused: 0,
            not_member: 0,
        }
    }

    /// Whether `peer` is a member now (rules 1 to 3).
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.configured.contains(peer) || self.proven.contains(peer)
    }

    /// Whether `peer` is a configured bootnode (rule 1).
    pub fn is_configured(&self, peer: &PeerId) -> bool {
        self.configured.contains(peer)
    }

    /// The configured bootnodes (rule 1).
    pub fn configured(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.configured.iter().copied()
    }

    /// Whether a mesh message `peer` passed on is taken: from a member only, the others
    /// counted (rule 5).
    pub fn admits_message_from(&mut self, peer: &PeerId) -> bool {
        let member = self.contains(peer);
        if !member {
            self.not_member += 1;
        }
        member
    }

    /// Rule 4: our proof for `peer`, the first time in its connection run, when we hold a
    /// secret.
    pub fn proof_for(&mut self, peer: PeerId) -> Option<Proof> {
        let secret = self.secret.as_ref()?;
        self.proved_to
            .insert(peer)
            .then(|| secret.prove(&self.local, &peer))
    }

    /// Rules 2 and 5: `peer` offers `proof`.
    pub fn verify(&mut self, peer: PeerId, proof: &[u8]) -> Verdict {
        let verdict = match &self.secret {
            None => Verdict::NoSecret,
            Some(secret) if secret.verify(&peer, &self.local, proof) => Verdict::Admitted,
            Some(_) => Verdict::Refused,
        };
        match verdict {
            Verdict::Admitted => {
                self.proven.insert(peer);
            }
            Verdict::Refused | Verdict::NoSecret => self.refused += 1,
        }
        verdict
    }

    /// Rule 3: `peer`'s last connection closed.
    pub fn disconnected(&mut self, peer: &PeerId) {
        self.proven.remove(peer);
        self.proved_to.remove(peer);
    }

    /// Rule 5: proofs refused so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Rule 5: mesh messages from non-members so far.
    pub fn not_member(&self) -> u64 {
        self.not_member
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secret(byte: &str) -> Secret {
        Secret::from_hex(&byte.repeat(32)).unwrap()
    }

    /// Two bootnodes' views, each with `secret`, the first configured with the second.
    fn pair(secrets: (Option<Secret>, Option<Secret>)) -> (Members, Members) {
        let (a, b) = (PeerId::random(), PeerId::random());
        (
            Members::new(a, HashSet::from([b]), secrets.0),
            Members::new(b, HashSet::new(), secrets.1),
        )
    }

    #[test]
    fn a_configured_bootnode_is_a_member_without_any_secret() {
        let (a, b) = pair((None, None));
        assert!(a.contains(&b.local), "rule 1");
        assert!(!b.contains(&a.local), "rule 2: b was told nothing of a");
        assert!(a.is_configured(&b.local) && !b.is_configured(&a.local));
    }

    #[test]
    fn a_bootnode_known_to_one_side_only_is_admitted_by_the_shared_secret() {
        let (mut a, mut b) = pair((Some(secret("ab")), Some(secret("ab"))));
        let proof = a.proof_for(b.local).unwrap();
        assert_eq!(b.verify(a.local, &proof), Verdict::Admitted, "rule 2");
        assert!(b.contains(&a.local));
        assert_eq!(
            a.proof_for(b.local),
            None,
            "rule 4: once per connection run"
        );
        b.disconnected(&a.local);
        assert!(!b.contains(&a.local), "rule 3");
        a.disconnected(&b.local);
        assert!(
            a.proof_for(b.local).is_some(),
            "rule 4: the next run proves again"
        );
        assert!(a.contains(&b.local), "rule 1 outlives connections");
    }

    #[test]
    fn another_secret_a_missing_one_or_a_replayed_proof_admits_nobody() {
        let (mut a, mut b) = pair((Some(secret("ab")), Some(secret("cd"))));
        let proof = a.proof_for(b.local).unwrap();
        assert_eq!(b.verify(a.local, &proof), Verdict::Refused, "rule 5");
        assert!(!b.contains(&a.local));

        let (mut a, mut b) = pair((Some(secret("ab")), None));
        let proof = a.proof_for(b.local).unwrap();
        assert_eq!(b.verify(a.local, &proof), Verdict::NoSecret, "rule 2");
        let (_, mut c) = pair((None, None));
        assert_eq!(c.proof_for(a.local), None, "rule 4: no secret, no proof");

        // A proof a member gave out, offered by someone else or back to its giver.
        let (mut a, mut b) = pair((Some(secret("ab")), Some(secret("ab"))));
        let proof = a.proof_for(b.local).unwrap();
        let intruder = PeerId::random();
        assert_eq!(b.verify(intruder, &proof), Verdict::Refused);
        assert_eq!(a.verify(b.local, &proof), Verdict::Refused, "reflected");
        assert_eq!((a.refused(), b.refused()), (1, 1));
    }

    #[test]
    fn only_a_members_mesh_messages_are_taken_and_the_others_counted() {
        let (mut a, mut b) = pair((Some(secret("ab")), Some(secret("ab"))));
        assert!(!b.admits_message_from(&a.local), "rule 5: not proven yet");
        let proof = a.proof_for(b.local).unwrap();
        b.verify(a.local, &proof);
        assert!(b.admits_message_from(&a.local));
        assert!(a.admits_message_from(&b.local), "rule 1");
        assert!(!a.admits_message_from(&PeerId::random()));
        assert_eq!((a.not_member(), b.not_member()), (1, 1));
    }
}
