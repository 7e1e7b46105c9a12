//! Keeping the bootnodes connected, one connection per bootnode and transport.
//!
//! A node learns its address for a transport only from a connection of that transport
//! (confirm rule 1), and peers reach it over both: a live TCP connection to a bootnode does
//! not stand in for a lost QUIC one, nor the other way round. Each bootnode and transport is
//! a slot of its own. Rules:
//! 1. A slot is one configured bootnode and one transport, with every address the
//!    configuration gives for that pair (TCP: `…/tcp/N`; QUIC: `…/udp/N/quic-v1`).
//! 2. A slot with an open direct connection that we dialed (to that bootnode, over that
//!    transport) is satisfied: nothing is dialed. Connections the bootnode dialed (AutoNAT's
//!    dial-backs) leave from another port and do not count.
//! 3. A slot with a dial in flight is not dialed again: a second connection could not reuse
//!    the listen port and would be observed at another port.
//! 4. Any other slot is dialed when it is due: at once when the node is ready, and
//!    [`Backoff`]'s wait after its last connection closed or its last dial failed. The wait
//!    starts at [`REDIAL_FIRST`] and doubles after each failed dial, up to [`REDIAL_MAX`].
//! 5. A connection that stayed open for [`REDIAL_MAX`] or longer resets the wait to
//!    [`REDIAL_FIRST`]; one that closed sooner keeps it growing, so a bootnode that drops us
//!    at once is not hammered.
//! 6. A slot's connection whose first identify exchange failed is given up (the caller closes
//!    it, and rule 4 redials): identify would ask again only after its interval (5 minutes),
//!    and until a bootnode answers, the node does not know its address for that transport.
//!
//! So a lost connection is redialed within [`REDIAL_FIRST`] and, while the bootnode stays
//! unreachable, at least every [`REDIAL_MAX`] plus one dial timeout. The state is one slot
//! per configured bootnode address, with its open connections.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use peerfind_behaviours::enr_ext::Transport;
use tokio::time::Instant;

use crate::config::Bootnode;

/// First wait before a slot is dialed again: a lost connection comes back at once when the
/// bootnode is there (a restarted NAT, a reset connection), without a busy loop when not.
pub const REDIAL_FIRST: Duration = Duration::from_secs(1);

/// Longest wait between two dials of a slot: a bootnode that comes back is reached within
/// this (plus one dial), well within the 30 s the fault tests allow; dials to an absent
/// bootnode stay rare.
pub const REDIAL_MAX: Duration = Duration::from_secs(10);

/// One bootnode and one transport.
pub type SlotKey = (PeerId, Transport);

/// The wait before a slot's next dial (rules 4 and 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(REDIAL_FIRST)
    }
}

impl Backoff {
    /// The wait now, and doubles the next (up to [`REDIAL_MAX`]).
    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(REDIAL_MAX);
        wait
    }
}

#[derive(Debug)]
struct Slot {
    addrs: Vec<Multiaddr>,
    /// When the slot is due, when it has neither a connection nor a dial.
    due: Option<Instant>,
    /// The dial in flight.
    dialing: Option<ConnectionId>,
    /// Open connections of this slot, with when they opened and whether identify answered.
    connections: HashMap<ConnectionId, (Instant, bool)>,
    backoff: Backoff,
}

/// The redial state machine. See the module doc for its rules.
#[derive(Debug, Default)]
pub struct Redial {
    slots: HashMap<SlotKey, Slot>,
    /// Which slot each dial or connection belongs to.
    owner: HashMap<ConnectionId, SlotKey>,
}

/// The transport an address dials, when it is TCP or QUIC (DNS names included).
pub fn transport_of(addr: &Multiaddr) -> Option<Transport> {
    let mut tcp = false;
    for p in addr.iter() {
        match p {
            Protocol::QuicV1 => return Some(Transport::Quic),
            Protocol::Tcp(_) => tcp = true,
            Protocol::P2pCircuit => return None,
            _ => {}
        }
    }
    tcp.then_some(Transport::Tcp)
}

impl Redial {
    /// Slots for `bootnodes` (rule 1), all due at once.
    pub fn new(bootnodes: &[Bootnode], now: Instant) -> Self {
        let mut slots: HashMap<SlotKey, Slot> = HashMap::new();
        for b in bootnodes {
            for addr in &b.addrs {
                let Some(transport) = transport_of(addr) else {
                    tracing::warn!(peer = %b.peer_id, %addr, "bootnode address is neither TCP nor QUIC; not dialed");
                    continue;
                };
                let slot = slots.entry((b.peer_id, transport)).or_insert_with(|| Slot {
                    addrs: Vec::new(),
                    due: Some(now),
                    dialing: None,
                    connections: HashMap::new(),
                    backoff: Backoff::default(),
                });
                if !slot.addrs.contains(addr) {
                    slot.addrs.push(addr.clone());
                }
            }
        }
        Self {
            slots,
            owner: HashMap::new(),
        }
    }

    /// When the next slot is due (rule 4).
    pub fn next_due(&self) -> Option<Instant> {
        self.slots.values().filter_map(|s| s.due).min()
    }

    /// The slots due by `now`, with the addresses to dial. Each must be answered with
    /// [`Redial::dial_started`] or [`Redial::dial_failed`].
    pub fn due(&self, now: Instant) -> Vec<(SlotKey, Vec<Multiaddr>)> {
        self.slots
            .iter()
            .filter(|(_, s)| s.due.is_some_and(|d| d <= now))
            .map(|(k, s)| (*k, s.addrs.clone()))
            .collect()
    }

    /// The dial `id` of `slot` started (rule 3).
    pub fn dial_started(&mut self, slot: SlotKey, id: ConnectionId) {
        if let Some(s) = self.slots.get_mut(&slot) {
            s.due = None;
            s.dialing = Some(id);
            self.owner.insert(id, slot);
        }
    }

    /// The dial of `slot` did not start, or dial `id` failed (rule 4). Returns the wait
    /// before the next one.
    pub fn dial_failed(
        &mut self,
        slot: SlotKey,
        id: Option<ConnectionId>,
        now: Instant,
    ) -> Option<Duration> {
        if let Some(id) = id {
            self.owner.remove(&id);
        }
        let s = self.slots.get_mut(&slot)?;
        if id.is_some() && s.dialing != id {
            return None;
        }
        s.dialing = None;
        if !s.connections.is_empty() {
            return None;
        }
        let wait = s.backoff.next();
        s.due = Some(now + wait);
        Some(wait)
    }

    /// The outgoing connection `id` failed: when it was a slot's dial, that slot waits
    /// (rule 4). Returns the slot and the wait.
    pub fn outgoing_error(
        &mut self,
        id: ConnectionId,
        now: Instant,
    ) -> Option<(SlotKey, Duration)> {
        let slot = *self.owner.get(&id)?;
        self.dial_failed(slot, Some(id), now).map(|w| (slot, w))
    }

    /// A connection opened: when it is one we dialed to a bootnode, directly, its slot is
    /// satisfied (rule 2).
    pub fn established(
        &mut self,
        peer: PeerId,
        transport: Transport,
        id: ConnectionId,
        dialer: bool,
        now: Instant,
    ) {
        let key = (peer, transport);
        let Some(s) = self.slots.get_mut(&key) else {
            return;
        };
        if s.dialing == Some(id) {
            s.dialing = None;
        }
        if !dialer {
            return;
        }
        s.due = None;
        s.connections.insert(id, (now, false));
        self.owner.insert(id, key);
    }

    /// A connection closed: a slot left without one is due after its wait (rules 4 and 5).
    /// Returns the slot and the wait when it is to be redialed.
    pub fn closed(&mut self, id: ConnectionId, now: Instant) -> Option<(SlotKey, Duration)> {
        let key = self.owner.remove(&id)?;
        let s = self.slots.get_mut(&key)?;
        let (opened, _) = s.connections.remove(&id)?;
        if now.duration_since(opened) >= REDIAL_MAX {
            s.backoff = Backoff::default();
        }
        if !s.connections.is_empty() || s.dialing.is_some() {
            return None;
        }
        let wait = s.backoff.next();
        s.due = Some(now + wait);
        Some((key, wait))
    }

    /// Identify answered on `id`.
    pub fn identified(&mut self, id: ConnectionId) {
        if let Some(key) = self.owner.get(&id)
            && let Some((_, identified)) = self
                .slots
                .get_mut(key)
                .and_then(|s| s.connections.get_mut(&id))
        {
            *identified = true;
        }
    }

    /// Identify failed on `id`: whether it is a slot's connection that identify never
    /// answered, which the caller should close (rule 6).
    pub fn identify_failed(&self, id: ConnectionId) -> bool {
        self.owner
            .get(&id)
            .and_then(|key| self.slots.get(key))
            .and_then(|s| s.connections.get(&id))
            .is_some_and(|(_, identified)| !identified)
    }

    /// The transports over which `peer` (a bootnode) is connected through its slots.
    pub fn connected_transports(&self, peer: &PeerId) -> Vec<Transport> {
        let mut out: Vec<Transport> = self
            .slots
            .iter()
            .filter(|((p, _), s)| p == peer && !s.connections.is_empty())
            .map(|((_, t), _)| *t)
            .collect();
        out.sort_by_key(|t| matches!(t, Transport::Tcp));
        out
    }

    /// Every connection id a slot holds or dials: for checks that nothing leaks.
    #[cfg(test)]
    fn tracked(&self) -> std::collections::HashSet<ConnectionId> {
        self.owner.keys().copied().collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn conn() -> ConnectionId {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        ConnectionId::new_unchecked(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    fn bootnode() -> Bootnode {
        let peer_id = PeerId::random();
        Bootnode {
            peer_id,
            addrs: vec![
                format!("/ip4/198.51.100.10/tcp/9000/p2p/{peer_id}")
                    .parse()
                    .unwrap(),
                format!("/ip4/198.51.100.10/udp/9000/quic-v1/p2p/{peer_id}")
                    .parse()
                    .unwrap(),
            ],
            from_record: false,
        }
    }

    /// Dials every due slot; returns the dial ids by transport.
    fn dial_due(r: &mut Redial) -> HashMap<Transport, ConnectionId> {
        let mut out = HashMap::new();
        for (key, addrs) in r.due(Instant::now()) {
            assert_eq!(addrs.len(), 1);
            let id = conn();
            r.dial_started(key, id);
            out.insert(key.1, id);
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn each_transport_is_dialed_at_once_and_not_again_while_dialing_or_connected() {
        let b = bootnode();
        let mut r = Redial::new(std::slice::from_ref(&b), Instant::now());
        let dials = dial_due(&mut r);
        assert_eq!(dials.len(), 2, "one dial per transport (rule 1)");
        assert!(r.due(Instant::now()).is_empty(), "rule 3");
        assert_eq!(r.next_due(), None);
        for (t, id) in &dials {
            r.established(b.peer_id, *t, *id, true, Instant::now());
        }
        tokio::time::advance(REDIAL_MAX * 10).await;
        assert!(r.due(Instant::now()).is_empty(), "rule 2");
        assert_eq!(
            r.connected_transports(&b.peer_id),
            vec![Transport::Quic, Transport::Tcp]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_quic_connection_is_redialed_while_tcp_lives() {
        let b = bootnode();
        let mut r = Redial::new(std::slice::from_ref(&b), Instant::now());
        let dials = dial_due(&mut r);
        for (t, id) in &dials {
            r.established(b.peer_id, *t, *id, true, Instant::now());
        }
        tokio::time::advance(Duration::from_secs(60)).await;
        let lost = r.closed(dials[&Transport::Quic], Instant::now());
        assert_eq!(lost, Some(((b.peer_id, Transport::Quic), REDIAL_FIRST)));
        assert_eq!(r.connected_transports(&b.peer_id), vec![Transport::Tcp]);
        tokio::time::advance(REDIAL_FIRST).await;
        let due = r.due(Instant::now());
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, (b.peer_id, Transport::Quic));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_dials_back_off_doubling_up_to_the_bound() {
        let b = bootnode();
        let mut r = Redial::new(std::slice::from_ref(&b), Instant::now());
        let mut waits = Vec::new();
        for _ in 0..8 {
            let due = r.next_due().unwrap();
            tokio::time::advance(due.saturating_duration_since(Instant::now())).await;
            let dials = dial_due(&mut r);
            let (_, wait) = r
                .outgoing_error(dials[&Transport::Tcp], Instant::now())
                .unwrap();
            r.outgoing_error(dials[&Transport::Quic], Instant::now());
            waits.push(wait.as_secs());
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 10, 10, 10, 10]);
        // A connection that lasts resets the wait (rule 5).
        let due = r.next_due().unwrap();
        tokio::time::advance(due.saturating_duration_since(Instant::now())).await;
        let dials = dial_due(&mut r);
        let tcp = dials[&Transport::Tcp];
        r.established(b.peer_id, Transport::Tcp, tcp, true, Instant::now());
        tokio::time::advance(REDIAL_MAX).await;
        assert_eq!(
            r.closed(tcp, Instant::now()),
            Some(((b.peer_id, Transport::Tcp), REDIAL_FIRST))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_bootnode_that_drops_us_at_once_is_not_hammered() {
        let b = bootnode();
        let mut r = Redial::new(std::slice::from_ref(&b), Instant::now());
        let mut waits = Vec::new();
        for _ in 0..6 {
            let due = r.next_due().unwrap();
            tokio::time::advance(due.saturating_duration_since(Instant::now())).await;
            let dials = dial_due(&mut r);
            let tcp = dials[&Transport::Tcp];
            r.established(b.peer_id, Transport::Tcp, tcp, true, Instant::now());
            r.outgoing_error(dials[&Transport::Quic], Instant::now());
            let (_, wait) = r.closed(tcp, Instant::now()).unwrap();
            waits.push(wait.as_secs());
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 10, 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn connections_the_bootnode_dialed_do_not_satisfy_a_slot() {
        let b = bootnode();
        let mut r = Redial::new(std::slice::from_ref(&b), Instant::now());
        let dials = dial_due(&mut r);
        r.outgoing_error(dials[&Transport::Tcp], Instant::now());
        let inbound = conn();
        r.established(b.peer_id, Transport::Tcp, inbound, false, Instant::now());
        assert!(r.connected_transports(&b.peer_id).is_empty());
        assert_eq!(r.closed(inbound, Instant::now()), None);
        tokio::time::advance(REDIAL_FIRST).await;
        assert_eq!(r.due(Instant::now()).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_whose_first_identify_failed_is_given_up_but_not_an_identified_one() {
        let b = bootnode();
        let mut r = Redial::new(std::slice::from_ref(&b), Instant::now());
        let dials = dial_due(&mut r);
        let (tcp, quic) = (dials[&Transport::Tcp], dials[&Transport::Quic]);
        r.established(b.peer_id, Transport::Tcp, tcp, true, Instant::now());
        r.established(b.peer_id, Transport::Quic, quic, true, Instant::now());
        r.identified(quic);
        assert!(r.identify_failed(tcp), "rule 6");
        assert!(!r.identify_failed(quic));
        assert!(!r.identify_failed(conn()), "not a slot's connection");
        // The caller closes it; the slot is redialed.
        assert!(r.closed(tcp, Instant::now()).is_some());
        assert!(!r.tracked().contains(&tcp));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dial_that_did_not_start_waits_like_a_failed_one() {
        let b = bootnode();
        let mut r = Redial::new(std::slice::from_ref(&b), Instant::now());
        for (key, _) in r.due(Instant::now()) {
            r.dial_failed(key, None, Instant::now());
        }
        assert!(r.due(Instant::now()).is_empty());
        assert_eq!(r.next_due(), Some(Instant::now() + REDIAL_FIRST));
        assert!(r.tracked().is_empty());
    }

    #[test]
    fn addresses_are_sorted_into_transports() {
        let tcp: Multiaddr = "/dns4/boot.example/tcp/9000".parse().unwrap();
        let quic: Multiaddr = "/ip4/198.51.100.10/udp/9000/quic-v1".parse().unwrap();
        let relayed: Multiaddr = "/ip4/198.51.100.10/tcp/9000/p2p-circuit".parse().unwrap();
        assert_eq!(transport_of(&tcp), Some(Transport::Tcp));
        assert_eq!(transport_of(&quic), Some(Transport::Quic));
        assert_eq!(transport_of(&relayed), None);
    }
}
