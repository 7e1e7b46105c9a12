//! What the node remembers of its attempts to reach peers: introductions asked and hole
//! punches to try again. What to try is decided in [`crate::strategy`]; relay slots are
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
//!
//! The state is one entry per peer asked about within [`INTRO_INTERVAL`] (older ones go at
//! each ask) and one per peer whose punch failed: bounded by the peers in the table.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::PeerId;
use tokio::time::Instant;

/// Rule 1.
pub(super) const INTRO_INTERVAL: Duration = Duration::from_secs(30);

/// Rule 2: the first wait.
pub(super) const PUNCH_RETRY_FIRST: Duration = Duration::from_secs(30);

/// Rule 2: the longest wait.
pub(super) const PUNCH_RETRY_MAX: Duration = Duration::from_secs(10 * 60);

/// A scheduled retry of a failed hole punch.
#[derive(Debug, Clone, Copy)]
struct Retry {
    due: Instant,
    backoff: Duration,
    via: PeerId,
}

/// Introductions asked and punches to retry. See the module doc.
#[derive(Debug, Default)]
pub(super) struct ReachState {
    asked: HashMap<PeerId, Instant>,
    punch_retries: HashMap<PeerId, Retry>,
}

impl ReachState {
    /// Whether an introduction to `peer` may be asked for now (rule 1); if so, it counts as
    /// asked.
    pub(super) fn may_ask(&mut self, peer: PeerId, now: Instant) -> bool {
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
    pub(super) fn punch_failed(&mut self, peer: PeerId, via: PeerId, now: Instant) -> Duration {
        let backoff = self
            .punch_retries
            .get(&peer)
            .map_or(PUNCH_RETRY_FIRST, |r| (r.backoff * 2).min(PUNCH_RETRY_MAX));
        let due = now + backoff;
        self.punch_retries.insert(peer, Retry { due, backoff, via });
        backoff
    }

    /// A punch to `peer` succeeded, or it is no longer only relayed (rule 3).
    pub(super) fn punch_done(&mut self, peer: &PeerId) {
        self.punch_retries.remove(peer);
    }

    /// When the next punch retry is due.
    pub(super) fn next_punch_retry(&self) -> Option<Instant> {
        self.punch_retries.values().map(|r| r.due).min()
    }

    /// The retries due by `now`, each with its bootnode, parked until they report (rule 3).
    pub(super) fn take_due_punches(&mut self, now: Instant) -> Vec<(PeerId, PeerId)> {
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
        let mut state = ReachState::default();
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
        let mut state = ReachState::default();
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
}
