//! What the node remembers of its attempts to reach peers: introductions asked and hole
//! punches to try again. What to try is decided in [`crate::reach::strategy`]; relay slots are
//! [`super::reservation`]'s.
//!
//! Rules:
//! 1. An introduction to the same peer is asked for at most once per [`INTRO_INTERVAL`]:
//!    the target dials us within a round trip when it can, and asking again sooner only
//!    loads the bootnode.
//! 2. A failed hole punch is tried again over a new circuit through the bootnode that
//!    carried it, after [`PUNCH_RETRY_FIRST`], doubling up to [`PUNCH_RETRY_MAX`]: NAT
//!    mappings and peers change, so a later punch can succeed, but a symmetric NAT never
//!    lets one through, so the relay is not hammered.
//! 3. A retry that came due is parked (never due twice) until its punch reports; a punch
//!    that succeeded, or a peer no longer only relayed, ends the retries.
//! 4. A circuit dial that fails is tried again after [`CIRCUIT_RETRY_FIRST`], doubling up
//!    to [`PUNCH_RETRY_MAX`], while the strategy still says to dial one: a NAT'd peer's
//!    record reaches us about as fast as its reservation reaches the relay, so our first
//!    circuit can find no reservation yet (NO_RESERVATION); nothing else would ever dial
//!    again. A circuit that opens ends these retries; its punch then has rule 2's.
//!
//! The state is one entry per peer asked about within [`INTRO_INTERVAL`] (older ones go at
//! each ask), one per peer whose punch or circuit failed, and one per circuit dial in
//! flight (gone when the swarm reports it): bounded by the peers in the table.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::PeerId;
use libp2p::swarm::ConnectionId;
use tokio::time::Instant;

/// Rule 1.
pub(crate) const INTRO_INTERVAL: Duration = Duration::from_secs(30);

/// Rule 2: the first wait.
pub(crate) const PUNCH_RETRY_FIRST: Duration = Duration::from_secs(30);

/// Rule 2: the longest wait.
pub(crate) const PUNCH_RETRY_MAX: Duration = Duration::from_secs(10 * 60);

/// Rule 4: the first wait.
pub(crate) const CIRCUIT_RETRY_FIRST: Duration = Duration::from_secs(1);

/// What failed, and so what a retry starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failed {
    /// Rule 2.
    Punch,
    /// Rule 4.
    Circuit,
}

/// A scheduled retry of a failed hole punch or circuit dial.
#[derive(Debug, Clone, Copy)]
struct Retry {
    due: Instant,
    backoff: Duration,
    via: PeerId,
    failed: Failed,
}

/// Introductions asked, circuits dialed and punches to retry. See the module doc.
#[derive(Debug, Default)]
pub(crate) struct Attempts {
    asked: HashMap<PeerId, Instant>,
    punch_retries: HashMap<PeerId, Retry>,
    circuits: HashMap<ConnectionId, (PeerId, PeerId)>,
}

impl Attempts {
    /// Whether an introduction to `peer` may be asked for now (rule 1); if so, it counts as
    /// asked.
    pub(crate) fn may_ask(&mut self, peer: PeerId, now: Instant) -> bool {
        if self
            .asked
            .get(&peer)
            .is_some_and(|at| now.duration_since(*at) < INTRO_INTERVAL)
        {
            return false;
        }
        self.asked
            .retain(|_, at| now.duration_since(*at) < INTRO_INTERVAL);
        self.asked.insert(peer, now);
        true
    }

    /// A punch to `peer`, relayed through `via`, failed: schedules the next try (rule 2) and
    /// returns its wait.
    pub(crate) fn punch_failed(&mut self, peer: PeerId, via: PeerId, now: Instant) -> Duration {
        self.schedule(peer, via, Failed::Punch, now)
    }

    /// A circuit to `peer` through `via` is being dialed as `id` (rule 4).
    pub(crate) fn circuit_dialing(&mut self, id: ConnectionId, peer: PeerId, via: PeerId) {
        self.circuits.insert(id, (peer, via));
    }

    /// Connection `id` opened: when it is a circuit we dialed, its retries end (rule 4).
    pub(crate) fn circuit_opened(&mut self, id: ConnectionId) {
        if let Some((peer, _)) = self.circuits.remove(&id)
            && self
                .punch_retries
                .get(&peer)
                .is_some_and(|r| r.failed == Failed::Circuit)
        {
            self.punch_retries.remove(&peer);
        }
    }

    /// Dial `id` failed: when it was a circuit, schedules the next one (rule 4) and returns
    /// the peer and the wait.
    pub(crate) fn circuit_failed(
        &mut self,
        id: ConnectionId,
        now: Instant,
    ) -> Option<(PeerId, Duration)> {
        let (peer, via) = self.circuits.remove(&id)?;
        Some((peer, self.schedule(peer, via, Failed::Circuit, now)))
    }

    /// Rules 2 and 4: the first wait for a new kind of failure, else double the last one.
    fn schedule(&mut self, peer: PeerId, via: PeerId, failed: Failed, now: Instant) -> Duration {
        let backoff = match self.punch_retries.get(&peer) {
            Some(r) if r.failed == failed => (r.backoff * 2).min(PUNCH_RETRY_MAX),
            _ => match failed {
                Failed::Punch => PUNCH_RETRY_FIRST,
                Failed::Circuit => CIRCUIT_RETRY_FIRST,
            },
        };
        let due = now + backoff;
        self.punch_retries.insert(
            peer,
            Retry {
                due,
                backoff,
                via,
                failed,
            },
        );
        backoff
    }

    /// A punch to `peer` succeeded, or it is no longer only relayed (rule 3).
    pub(crate) fn punch_done(&mut self, peer: &PeerId) {
        self.punch_retries.remove(peer);
    }

    /// When the next punch retry is due.
    pub(crate) fn next_punch_retry(&self) -> Option<Instant> {
        self.punch_retries.values().map(|r| r.due).min()
    }

    /// The retries due by `now`, each with its bootnode, parked until they report (rule 3).
    pub(crate) fn take_due_punches(&mut self, now: Instant) -> Vec<(PeerId, PeerId)> {
        let mut due = Vec::new();
        for (peer, r) in &mut self.punch_retries {
            if r.due <= now {
                r.due = now + PUNCH_RETRY_MAX;
                due.push((*peer, r.via));
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_introduction_is_asked_at_most_once_per_interval() {
        let mut state = Attempts::default();
        let (alice, bob) = (PeerId::random(), PeerId::random());
        assert!(state.may_ask(alice, Instant::now()));
        assert!(!state.may_ask(alice, Instant::now()));
        assert!(state.may_ask(bob, Instant::now()), "per peer");
        tokio::time::advance(INTRO_INTERVAL).await;
        assert!(state.may_ask(alice, Instant::now()));
        assert_eq!(state.asked.len(), 1, "bob's ask aged out");
    }

    #[tokio::test(start_paused = true)]
    async fn failed_punches_back_off_and_park_until_they_report() {
        let mut state = Attempts::default();
        let (alice, boot) = (PeerId::random(), PeerId::random());
        assert_eq!(state.next_punch_retry(), None);
        assert_eq!(
            state.punch_failed(alice, boot, Instant::now()),
            PUNCH_RETRY_FIRST
        );
        tokio::time::advance(PUNCH_RETRY_FIRST - Duration::from_millis(1)).await;
        assert!(state.take_due_punches(Instant::now()).is_empty());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(state.take_due_punches(Instant::now()), [(alice, boot)]);
        assert!(state.take_due_punches(Instant::now()).is_empty(), "parked");
        let mut waits = vec![];
        for _ in 0..6 {
            waits.push(state.punch_failed(alice, boot, Instant::now()).as_secs());
        }
        assert_eq!(waits, [60, 120, 240, 480, 600, 600]);
        state.punch_done(&alice);
        assert_eq!(state.next_punch_retry(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_circuit_is_dialed_again_soon_until_one_opens() {
        let mut state = Attempts::default();
        let (alice, bob, boot) = (PeerId::random(), PeerId::random(), PeerId::random());
        let (first, second, other) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
            ConnectionId::new_unchecked(3),
        );
        assert_eq!(
            state.circuit_failed(other, Instant::now()),
            None,
            "not a circuit"
        );
        state.circuit_dialing(first, alice, boot);
        assert_eq!(
            state.circuit_failed(first, Instant::now()),
            Some((alice, CIRCUIT_RETRY_FIRST))
        );
        assert_eq!(
            state.circuit_failed(first, Instant::now()),
            None,
            "reported once"
        );
        tokio::time::advance(CIRCUIT_RETRY_FIRST).await;
        assert_eq!(state.take_due_punches(Instant::now()), [(alice, boot)]);
        state.circuit_dialing(second, alice, boot);
        assert_eq!(
            state.circuit_failed(second, Instant::now()),
            Some((alice, 2 * CIRCUIT_RETRY_FIRST)),
            "doubles"
        );
        state.circuit_dialing(first, alice, boot);
        state.circuit_opened(first);
        assert_eq!(state.next_punch_retry(), None, "an open circuit ends them");
        assert!(state.circuits.is_empty());
        assert_eq!(
            state.punch_failed(alice, boot, Instant::now()),
            PUNCH_RETRY_FIRST,
            "its punch starts from rule 2's first wait"
        );
        state.circuit_dialing(second, bob, boot);
        state.circuit_opened(second);
        assert!(
            state.next_punch_retry().is_some(),
            "bob's circuit is not alice's"
        );
    }
}
