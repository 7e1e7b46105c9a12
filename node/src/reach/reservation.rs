//! Relay reservations: taken by a node not known to be public (before its NAT verdict, too),
//! given back when it finds it is public (rule 4), and retried when they end. A bootnode
//! (peerfind or not) may refuse a reservation (full, rate-limited, no relay at all) or drop it
//! (restart, lost connection). Each ends the reservation's listener; the slot is asked for
//! again with backoff, unless the bootnode said through identify that it has no relay.
//!
//! Rules, in order:
//! 1. A listener that is not a reservation is none of this module's business.
//! 2. A bootnode whose identify lists no relay v2 (HOP) is not asked again: it cannot say yes.
//!    This is logged once, in plain words.
//! 3. Otherwise the reservation is asked for again after a wait that starts at
//!    [`RETRY_FIRST`] and doubles up to [`RETRY_MAX`]; an accepted reservation resets it.
//! 4. A node found public gives back every reservation and forgets every retry (and the
//!    relay client stops hearing those relays, `crate::upstream::relay_client`).
//! 5. A reservation is held (the status API's `Bootnode.relay_reserved`) from the bootnode's
//!    acceptance until its listener closes or it is given back; an acceptance for a bootnode
//!    with no reservation listener open (one given back a moment ago) holds nothing.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use libp2p::PeerId;
use libp2p::core::transport::ListenerId;
use tokio::time::Instant;

/// First wait before asking a bootnode for a relay slot again: a refusal for load or rate
/// usually clears within this, and a restarted bootnode is back.
pub(crate) const RETRY_FIRST: Duration = Duration::from_secs(5);

/// Longest wait between reservation attempts: a bootnode that keeps refusing is asked only
/// this often.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(5 * 60);

/// What to do when a reservation's listener closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Rule 1: not a reservation.
    NotOurs,
    /// Rule 2: the bootnode has no relay.
    GiveUp,
    /// Rule 3: ask again after this wait.
    Retry(Duration),
}

/// The reservations in flight and the retries waiting. Bounded by `--bootnode`.
#[derive(Debug, Default)]
pub(crate) struct Reservations {
    listeners: HashMap<ListenerId, PeerId>,
    /// Bootnodes whose relay accepted the reservation of an open listener (rule 5).
    accepted: HashSet<PeerId>,
    backoff: HashMap<PeerId, Duration>,
    due: HashMap<PeerId, Instant>,
}

impl Reservations {
    /// A reservation on `bootnode` started as `listener`.
    pub(crate) fn started(&mut self, listener: ListenerId, bootnode: PeerId) {
        self.listeners.insert(listener, bootnode);
        self.due.remove(&bootnode);
    }

    /// Whether a reservation on `bootnode` is in flight or held.
    pub(crate) fn holds(&self, bootnode: &PeerId) -> bool {
        self.listeners.values().any(|b| b == bootnode)
    }

    /// The bootnode accepted: the next failure waits [`RETRY_FIRST`] again, and the slot is
    /// held while its listener is open (rule 5).
    pub(crate) fn accepted(&mut self, bootnode: &PeerId) {
        self.backoff.remove(bootnode);
        if self.holds(bootnode) {
            self.accepted.insert(*bootnode);
        }
    }

    /// Whether the bootnode's relay accepted a reservation that is still open (rule 5).
    pub(crate) fn reserved(&self, bootnode: &PeerId) -> bool {
        self.accepted.contains(bootnode)
    }

    /// `listener` closed; `has_relay` says whether the bootnode's identify lists relay v2
    /// (None: not identified yet). Returns the bootnode and what to do.
    pub(crate) fn closed(
        &mut self,
        listener: ListenerId,
        has_relay: impl FnOnce(&PeerId) -> Option<bool>,
        now: Instant,
    ) -> (Option<PeerId>, Decision) {
        let Some(bootnode) = self.listeners.remove(&listener) else {
            return (None, Decision::NotOurs);
        };
        if !self.holds(&bootnode) {
            self.accepted.remove(&bootnode);
        }
        if has_relay(&bootnode) == Some(false) {
            return (Some(bootnode), Decision::GiveUp);
        }
        let wait = self
            .backoff
            .get(&bootnode)
            .map_or(RETRY_FIRST, |b| (*b * 2).min(RETRY_MAX));
        self.backoff.insert(bootnode, wait);
        self.due.insert(bootnode, now + wait);
        (Some(bootnode), Decision::Retry(wait))
    }

    /// Ends every reservation and retry (a public node needs none): returns the listeners to
    /// close, each with its bootnode.
    pub(crate) fn release_all(&mut self) -> Vec<(ListenerId, PeerId)> {
        self.due.clear();
        self.backoff.clear();
        self.accepted.clear();
        self.listeners.drain().collect()
    }

    /// When the next retry is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// Takes the bootnodes whose retry is due.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<PeerId> {
        let due: Vec<PeerId> = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in &due {
            self.due.remove(p);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> ListenerId {
        ListenerId::next()
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_reservation_is_retried_with_doubling_backoff() {
        let mut r = Reservations::default();
        let boot = PeerId::random();
        let mut waits = Vec::new();
        for _ in 0..8 {
            let l = listener();
            r.started(l, boot);
            let (who, d) = r.closed(l, |_| Some(true), Instant::now());
            assert_eq!(who, Some(boot));
            let Decision::Retry(w) = d else {
                panic!("{d:?}")
            };
            waits.push(w.as_secs());
            assert_eq!(r.next_due(), Some(Instant::now() + w));
            assert!(r.take_due(Instant::now()).is_empty(), "not due yet");
            tokio::time::advance(w).await;
            assert_eq!(r.take_due(Instant::now()), vec![boot]);
        }
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300]);
        r.accepted(&boot);
        let l = listener();
        r.started(l, boot);
        assert_eq!(
            r.closed(l, |_| None, Instant::now()).1,
            Decision::Retry(RETRY_FIRST),
            "rule 3: an accepted reservation resets the backoff; not identified yet still retries"
        );
    }

    #[test]
    fn a_bootnode_without_relay_is_not_asked_again() {
        let mut r = Reservations::default();
        let boot = PeerId::random();
        let l = listener();
        r.started(l, boot);
        assert!(r.holds(&boot), "in flight");
        assert_eq!(
            r.closed(l, |_| Some(false), Instant::now()),
            (Some(boot), Decision::GiveUp)
        );
        assert!(!r.holds(&boot));
        assert_eq!(r.next_due(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_public_node_gives_every_slot_back() {
        let mut r = Reservations::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let (la, lb) = (listener(), listener());
        r.started(la, a);
        r.started(lb, b);
        r.closed(lb, |_| Some(true), Instant::now());
        let mut released = r.release_all();
        released.sort_by_key(|(_, p)| *p == b);
        assert_eq!(released, [(la, a)]);
        assert!(!r.holds(&a) && !r.holds(&b));
        assert_eq!(r.next_due(), None, "no retry either");
        assert_eq!(
            r.closed(la, |_| Some(true), Instant::now()).1,
            Decision::NotOurs
        );
    }

    #[test]
    fn a_slot_is_held_from_its_acceptance_until_its_listener_closes() {
        let mut r = Reservations::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        r.accepted(&a);
        assert!(!r.reserved(&a), "rule 5: no listener, nothing held");
        let la = listener();
        r.started(la, a);
        assert!(!r.reserved(&a), "in flight, not accepted yet");
        r.accepted(&a);
        assert!(r.reserved(&a));
        assert!(!r.reserved(&b));
        r.closed(la, |_| Some(true), Instant::now());
        assert!(!r.reserved(&a), "lost with its listener");
        let la = listener();
        r.started(la, a);
        r.accepted(&a);
        r.release_all();
        assert!(!r.reserved(&a), "given back");
    }

    #[test]
    fn another_listener_is_not_ours() {
        let mut r = Reservations::default();
        assert_eq!(
            r.closed(listener(), |_| Some(true), Instant::now()),
            (None, Decision::NotOurs)
        );
    }
}
