//! Whether a connection is still alive: a dead one is closed, so that its loss is acted on
//! (bootnodes redialed, the strategy run again, the observed address confirmed anew).
//!
//! A connection through a NAT that stopped forwarding, or over a link that went down, looks
//! open for as long as nothing is sent: TCP retransmits unacknowledged data for about 15
//! minutes before it gives up, and libp2p-tcp exposes neither keepalive nor
//! `TCP_USER_TIMEOUT`. QUIC ends such a connection itself (its idle timeout), TCP does not,
//! so ping is the signal: every [`PING_INTERVAL`] each side pings each connection and waits
//! [`PING_TIMEOUT`] for the answer. libp2p's ping keeps the connection open when a ping
//! fails, and stays silent about a connection's first failure (for peers that open a stream
//! per ping), so its own report comes about two intervals and two timeouts late; this
//! machine watches the successes instead.
//!
//! Rules:
//! 1. A connection is watched from the moment it opens; it is due an answered ping within
//!    [`budget`] (one interval, one timeout and [`GRACE`]) of opening.
//! 2. Each answered ping moves its deadline to [`budget`] after that answer.
//! 3. A ping failure that libp2p reports makes it dead at once.
//! 4. A connection whose peer does not speak ping is no longer watched: nothing would tell.
//! 5. A connection past its deadline is dead. A dead connection is reported once, then no
//!    longer watched; the caller closes it.
//! 6. A closed connection is forgotten; closing says whether it was found dead, so the
//!    caller reaches its peer anew only after a loss, never after a close the peer chose
//!    (which could loop).
//!
//! The bound: a connection that stops carrying packets at time `t` answered its last ping at
//! or before `t`, so it is reported dead by `t` + [`budget`] = `t` + 27 s, within two ping
//! intervals (30 s), which is also within common NAT keep-alive budgets (UDP mappings of 30 s
//! and more).
//!
//! The state is one deadline per open connection, and the dead ones until they close: both
//! bounded by the connections the swarm holds.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use libp2p::swarm::ConnectionId;
use tokio::time::Instant;

/// Ping interval: traffic every 15 s keeps every NAT mapping on the path alive (common UDP
/// mapping timeouts are 30 s and more), and detects dead connections.
pub const PING_INTERVAL: Duration = Duration::from_secs(15);

/// How long a ping's answer is awaited (libp2p's default: 20 s). Short enough that a dead
/// connection is noticed within two ping intervals (the budget below), long enough
/// for a relayed circuit's round trip on a loaded machine, which takes well under a second.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Slack on top of one ping interval and one timeout: the ping handler restarts its interval
/// when it reads an answer, a moment before the node hears of it, and a loaded event loop
/// adds its own delay. A ping answered just inside its timeout must not count as missing.
pub const GRACE: Duration = Duration::from_secs(2);

/// How long a connection may go without an answered ping (rules 1 and 2): the next ping is
/// sent one interval after the last answer and fails one timeout later.
pub const fn budget() -> Duration {
    PING_INTERVAL
        .saturating_add(PING_TIMEOUT)
        .saturating_add(GRACE)
}

/// Why a connection is taken for dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No ping was answered within [`budget`] (rule 5).
    Silent,
    /// libp2p reported a ping failure (rule 3).
    Failed,
}

/// The liveness state machine. See the module doc for its rules.
#[derive(Debug, Default)]
pub struct Liveness {
    /// Each watched connection's deadline.
    deadlines: HashMap<ConnectionId, Instant>,
    /// The same, ordered by deadline, so the next one is found without a scan.
    by_deadline: BTreeSet<(Instant, ConnectionId)>,
    /// Connections found dead and not closed yet.
    dead: HashSet<ConnectionId>,
}

impl Liveness {
    /// A machine watching no connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rule 1: `id` opened at `now`.
    pub fn opened(&mut self, id: ConnectionId, now: Instant) {
        self.set(id, now + budget());
    }

    /// Rule 2: a ping on `id` was answered at `now`.
    pub fn answered(&mut self, id: ConnectionId, now: Instant) {
        if self.deadlines.contains_key(&id) {
            self.set(id, now + budget());
        }
    }

    /// Rule 3: libp2p reported a failed ping on `id`. Returns the verdict when `id` was
    /// watched (and is no longer), `None` when it was reported already or is not watched.
    pub fn failed(&mut self, id: ConnectionId) -> Option<Verdict> {
        if !self.forget(id) {
            return None;
        }
        self.dead.insert(id);
        Some(Verdict::Failed)
    }

    /// Rule 4: the peer on `id` does not speak ping.
    pub fn unsupported(&mut self, id: ConnectionId) {
        self.forget(id);
    }

    /// Rule 6: `id` closed. Returns whether it had been found dead.
    pub fn closed(&mut self, id: ConnectionId) -> bool {
        self.forget(id);
        self.dead.remove(&id)
    }

    /// The earliest deadline of a watched connection.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(at, _)| *at)
    }

    /// Rule 5: the connections whose deadline passed by `now`; each is reported once.
    pub fn expired(&mut self, now: Instant) -> Vec<ConnectionId> {
        let mut dead = Vec::new();
        while let Some(&(at, id)) = self.by_deadline.first() {
            if at > now {
                break;
            }
            self.forget(id);
            self.dead.insert(id);
            dead.push(id);
        }
        dead
    }

    /// How many connections are watched.
    pub fn len(&self) -> usize {
        self.deadlines.len()
    }

    /// Whether no connection is watched.
    pub fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }

    fn set(&mut self, id: ConnectionId, deadline: Instant) {
        if let Some(old) = self.deadlines.insert(id, deadline) {
            self.by_deadline.remove(&(old, id));
        }
        self.by_deadline.insert((deadline, id));
    }

    /// Stops watching `id`; says whether it was watched.
    fn forget(&mut self, id: ConnectionId) -> bool {
        match self.deadlines.remove(&id) {
            Some(at) => {
                self.by_deadline.remove(&(at, id));
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> ConnectionId {
        ConnectionId::new_unchecked(rand_id())
    }

    fn rand_id() -> usize {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    #[test]
    fn the_budget_is_within_two_ping_intervals() {
        assert!(budget() <= PING_INTERVAL * 2, "{:?}", budget());
        assert!(budget() > PING_INTERVAL + PING_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_whose_pings_are_answered_stays_alive() {
        let mut l = Liveness::new();
        let c = id();
        l.opened(c, Instant::now());
        for _ in 0..20 {
            tokio::time::advance(PING_INTERVAL).await;
            l.answered(c, Instant::now());
            assert!(l.expired(Instant::now()).is_empty());
        }
        assert_eq!(l.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_dead_one_budget_after_its_last_answer_and_reported_once() {
        let mut l = Liveness::new();
        let c = id();
        l.opened(c, Instant::now());
        tokio::time::advance(Duration::from_secs(1)).await;
        l.answered(c, Instant::now());
        let last = Instant::now();
        assert_eq!(l.next_deadline(), Some(last + budget()));
        tokio::time::advance(budget() - Duration::from_millis(1)).await;
        assert!(l.expired(Instant::now()).is_empty(), "not yet");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(l.expired(Instant::now()), vec![c]);
        assert_eq!(l.dead.len(), 1);
        // Reported once (rule 5): later answers or checks do not bring it back.
        l.answered(c, Instant::now());
        tokio::time::advance(budget() * 2).await;
        assert!(l.expired(Instant::now()).is_empty());
        assert!(l.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_answers_is_dead_one_budget_after_it_opened() {
        let mut l = Liveness::new();
        let (a, b) = (id(), id());
        l.opened(a, Instant::now());
        tokio::time::advance(Duration::from_secs(5)).await;
        l.opened(b, Instant::now());
        tokio::time::advance(budget() - Duration::from_secs(5)).await;
        assert_eq!(l.expired(Instant::now()), vec![a]);
        assert_eq!(
            l.next_deadline(),
            Some(Instant::now() + Duration::from_secs(5))
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(l.expired(Instant::now()), vec![b]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reported_failure_is_a_verdict_at_once_and_only_once() {
        let mut l = Liveness::new();
        let c = id();
        l.opened(c, Instant::now());
        assert_eq!(l.failed(c), Some(Verdict::Failed));
        assert_eq!(l.failed(c), None);
        assert_eq!(l.next_deadline(), None);
        assert!(l.closed(c), "closed after it was found dead (rule 6)");
        assert!(!l.closed(c));
    }

    #[tokio::test(start_paused = true)]
    async fn peers_without_ping_and_closed_connections_are_not_watched() {
        let mut l = Liveness::new();
        let (quiet, gone) = (id(), id());
        l.opened(quiet, Instant::now());
        l.opened(gone, Instant::now());
        l.unsupported(quiet);
        assert!(!l.closed(gone), "a close the peer chose is no loss");
        tokio::time::advance(budget() * 3).await;
        assert!(l.expired(Instant::now()).is_empty());
        assert!(l.is_empty());
        // An answer on a connection not watched does not start watching it.
        l.answered(quiet, Instant::now());
        assert!(l.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_connection_is_noticed_within_two_ping_intervals_of_the_fault() {
        // Pings answered every interval until a fault at a random point between two pings.
        for fault_after in [0u64, 1, 7, 14] {
            let mut l = Liveness::new();
            let c = id();
            l.opened(c, Instant::now());
            l.answered(c, Instant::now());
            tokio::time::advance(Duration::from_secs(fault_after)).await;
            let fault = Instant::now();
            let mut noticed = None;
            for _ in 0..60 {
                tokio::time::advance(Duration::from_secs(1)).await;
                if !l.expired(Instant::now()).is_empty() {
                    noticed = Some(Instant::now());
                    break;
                }
            }
            let noticed = noticed.expect("noticed");
            assert!(
                noticed - fault <= PING_INTERVAL * 2,
                "fault {fault_after} s after a ping: noticed after {:?}",
                noticed - fault
            );
        }
    }
}
