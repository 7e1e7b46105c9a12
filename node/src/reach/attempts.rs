//! What the node remembers of its attempts to reach peers: introductions asked and hole
//! punches to try again. What to try is decided in [`crate::reach::strategy`]; relay slots are
//! [`super::reservation`]'s.
//!
//! Rules:
//! 1. An introduction to the same peer is asked for at most once per [`INTRO_INTERVAL`]:
//!    the target dials us within a round trip when it can, and asking again sooner only
//!    loads the bootnode. One that asks for port guessing's spray (strategy rule 10) counts
//!    apart: it may follow a plain one asked before the peer's record told us to guess.
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
//! 5. A punch through an introduction (strategy rule 8) is one dial on each side: ours, in
//!    the listener's role, and the introduced peer's. Ours succeeded when its connection
//!    opens, or when by its end (it failed, or [`INTRO_PUNCH_WAIT`] passed) we are
//!    connected directly to the peer anyway (its connection may have come in apart from our
//!    dial). Otherwise it failed, and the caller falls back to the relay at once (strategy
//!    rule 9). The introduced peer's dial succeeded when it opens, and failed when the swarm
//!    says so or at [`INTRO_PUNCH_WAIT`]; that side has no fallback, since the asker has.
//!    Each punch is reported once; a report that comes later (our dial opening after its
//!    wait) is not one.
//!
//! The state is one entry per peer asked about within [`INTRO_INTERVAL`] (older ones go at
//! each ask), one per peer whose punch or circuit failed, one per circuit dial in flight
//! (gone when the swarm reports it), and one per punch dial in flight (gone at its end, at
//! the latest [`INTRO_PUNCH_WAIT`] after it started): bounded by the peers in the table.

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

/// Rule 5: how long a punch through an introduction may take. The introduction takes a
/// round trip through the bootnode and the peer's connection one more: at 80 ms a few
/// hundred milliseconds. Two seconds leave room for one lost packet (a retransmitted QUIC
/// Initial or TCP SYN leaves after about a second) before the relay takes over.
pub(crate) const INTRO_PUNCH_WAIT: Duration = Duration::from_secs(2);

/// Rule 5: a punch dial in flight.
#[derive(Debug, Clone, Copy)]
struct PunchDial {
    peer: PeerId,
    /// The bootnode that introduced us, on the asking side: where the fallback goes.
    via: Option<PeerId>,
    deadline: Instant,
}

/// Rule 5: how a punch through an introduction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PunchEnd {
    /// The peer.
    pub(crate) peer: PeerId,
    /// Whether we are connected directly to it.
    pub(crate) succeeded: bool,
    /// On the asking side, a failed punch's fallback: dial through this bootnode's relay.
    pub(crate) fall_back_via: Option<PeerId>,
}

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
    /// Rule 1: per peer and whether the ask was for a spray.
    asked: HashMap<(PeerId, bool), Instant>,
    punch_retries: HashMap<PeerId, Retry>,
    circuits: HashMap<ConnectionId, (PeerId, PeerId)>,
    punches: HashMap<ConnectionId, PunchDial>,
}

impl Attempts {
    /// Whether an introduction to `peer` may be asked for now (rule 1); if so, it counts as
    /// asked.
    pub(crate) fn may_ask(&mut self, peer: PeerId, now: Instant) -> bool {
        self.may_ask_for(peer, false, now)
    }

    /// [`Attempts::may_ask`] for an ask with port guessing's `spray` or without (rule 1).
    pub(crate) fn may_ask_for(&mut self, peer: PeerId, spray: bool, now: Instant) -> bool {
        if self.asked_lately((peer, spray), now) {
            return false;
        }
        self.asked
            .retain(|_, at| now.duration_since(*at) < INTRO_INTERVAL);
        self.asked.insert((peer, spray), now);
        true
    }

    /// Whether an introduction to `peer` was asked for within [`INTRO_INTERVAL`] (strategy
    /// rule 9).
    pub(crate) fn asked_recently(&self, peer: &PeerId, now: Instant) -> bool {
        self.asked_lately((*peer, false), now) || self.asked_lately((*peer, true), now)
    }

    /// Whether an introduction to `peer` asking for a spray was asked for within
    /// [`INTRO_INTERVAL`] (strategy rule 10).
    pub(crate) fn guessed_recently(&self, peer: &PeerId, now: Instant) -> bool {
        self.asked_lately((*peer, true), now)
    }

    fn asked_lately(&self, key: (PeerId, bool), now: Instant) -> bool {
        self.asked
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < INTRO_INTERVAL)
    }

    /// Whether a punch dial to `peer` is in flight (rule 5).
    pub(crate) fn punching(&self, peer: &PeerId) -> bool {
        self.punches.values().any(|p| p.peer == *peer)
    }

    /// Rule 5: our punch dial `id` to `peer`, introduced through `via` (the asking side), or
    /// the introduced side's dial (`via` none), started.
    pub(crate) fn punch_dialing(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        via: Option<PeerId>,
        now: Instant,
    ) {
        self.punch_dialing_until(id, peer, via, now + INTRO_PUNCH_WAIT);
    }

    /// [`Attempts::punch_dialing`] with its own end: a guess (strategy rule 10) takes
    /// longer than a punch.
    pub(crate) fn punch_dialing_until(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        via: Option<PeerId>,
        deadline: Instant,
    ) {
        self.punches.insert(
            id,
            PunchDial {
                peer,
                via,
                deadline,
            },
        );
    }

    /// Rule 5: connection `id` opened; when it is a punch dial, the punch succeeded.
    pub(crate) fn punch_opened(&mut self, id: ConnectionId) -> Option<PunchEnd> {
        let dial = self.punches.remove(&id)?;
        Some(PunchEnd {
            peer: dial.peer,
            succeeded: true,
            fall_back_via: None,
        })
    }

    /// Rule 5: dial `id` failed; when it is a punch dial, the punch ended, and succeeded only
    /// if `direct` says we are connected directly to its peer anyway.
    pub(crate) fn punch_dial_failed(
        &mut self,
        id: ConnectionId,
        direct: impl Fn(&PeerId) -> bool,
    ) -> Option<PunchEnd> {
        let dial = self.punches.remove(&id)?;
        Some(Self::ended(dial, &direct))
    }

    /// When the next punch dial's wait ends (rule 5).
    pub(crate) fn next_punch_deadline(&self) -> Option<Instant> {
        self.punches.values().map(|p| p.deadline).min()
    }

    /// Rule 5: the punches whose wait ended by `now`; each succeeded only if `direct` says we
    /// are connected directly to its peer.
    pub(crate) fn take_expired_punches(
        &mut self,
        now: Instant,
        direct: impl Fn(&PeerId) -> bool,
    ) -> Vec<PunchEnd> {
        let expired: Vec<ConnectionId> = self
            .punches
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        expired
            .into_iter()
            .filter_map(|id| self.punches.remove(&id))
            .map(|dial| Self::ended(dial, &direct))
            .collect()
    }

    fn ended(dial: PunchDial, direct: &impl Fn(&PeerId) -> bool) -> PunchEnd {
        let succeeded = direct(&dial.peer);
        PunchEnd {
            peer: dial.peer,
            succeeded,
            fall_back_via: if succeeded { None } else { dial.via },
        }
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

    /// Whether a circuit dial to `peer` is in flight: one is enough.
    pub(crate) fn circuit_in_flight(&self, peer: &PeerId) -> bool {
        self.circuits.values().any(|(p, _)| p == peer)
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
    async fn an_ask_for_a_spray_counts_apart_from_a_plain_one() {
        let mut state = Attempts::default();
        let alice = PeerId::random();
        assert!(state.may_ask(alice, Instant::now()));
        assert!(state.asked_recently(&alice, Instant::now()));
        assert!(!state.guessed_recently(&alice, Instant::now()));
        assert!(
            state.may_ask_for(alice, true, Instant::now()),
            "rule 1: apart"
        );
        assert!(state.guessed_recently(&alice, Instant::now()));
        assert!(!state.may_ask_for(alice, true, Instant::now()));
        tokio::time::advance(INTRO_INTERVAL).await;
        assert!(!state.asked_recently(&alice, Instant::now()));
        assert!(!state.guessed_recently(&alice, Instant::now()));
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
    async fn a_punch_through_an_introduction_ends_once_and_falls_back_only_on_the_asking_side() {
        let mut state = Attempts::default();
        let (alice, bob, boot) = (PeerId::random(), PeerId::random(), PeerId::random());
        let (ours, theirs, other) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
            ConnectionId::new_unchecked(3),
        );
        let never = |_: &PeerId| false;
        state.punch_dialing(ours, alice, Some(boot), Instant::now());
        state.punch_dialing(theirs, bob, None, Instant::now());
        assert!(state.punching(&alice) && state.punching(&bob));
        assert_eq!(state.punch_opened(other), None, "not a punch");
        assert_eq!(
            state.next_punch_deadline(),
            Some(Instant::now() + INTRO_PUNCH_WAIT)
        );
        tokio::time::advance(INTRO_PUNCH_WAIT - Duration::from_millis(1)).await;
        assert!(state.take_expired_punches(Instant::now(), never).is_empty());
        assert_eq!(
            state.punch_opened(theirs),
            Some(PunchEnd {
                peer: bob,
                succeeded: true,
                fall_back_via: None
            })
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(
            state.take_expired_punches(Instant::now(), never),
            [PunchEnd {
                peer: alice,
                succeeded: false,
                fall_back_via: Some(boot)
            }],
            "the asking side falls back to the relay"
        );
        assert_eq!(state.punch_opened(ours), None, "reported once");
        assert!(!state.punching(&alice));

        // A dial that fails early while the peer's connection came in apart from it.
        state.punch_dialing(ours, alice, Some(boot), Instant::now());
        assert_eq!(
            state.punch_dial_failed(ours, |p| *p == alice),
            Some(PunchEnd {
                peer: alice,
                succeeded: true,
                fall_back_via: None
            })
        );
        // The introduced side's dial fails: no fallback there.
        state.punch_dialing(theirs, bob, None, Instant::now());
        assert_eq!(
            state.punch_dial_failed(theirs, never),
            Some(PunchEnd {
                peer: bob,
                succeeded: false,
                fall_back_via: None
            })
        );
        assert_eq!(state.next_punch_deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn asked_recently_is_rule_1s_interval() {
        let mut state = Attempts::default();
        let alice = PeerId::random();
        assert!(!state.asked_recently(&alice, Instant::now()));
        assert!(state.may_ask(alice, Instant::now()));
        assert!(state.asked_recently(&alice, Instant::now()));
        tokio::time::advance(INTRO_INTERVAL).await;
        assert!(!state.asked_recently(&alice, Instant::now()));
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
