//! Caps the relay reservations a bootnode holds for one subnet, below the total
//! (`--relay-max-reservations-per-subnet`), so that one machine or one provider's block cannot
//! take every slot and leave NAT'd peers elsewhere unreachable.
//!
//! Hand-written around libp2p's relay server: libp2p-relay 0.22 caps reservations in total and
//! per peer, and rate-limits them per peer and per IP, but never counts how many one subnet
//! holds at once (a PeerId costs an attacker nothing; an IP's rate refills). Its `Config` takes
//! extra rate limiters, asked for each reservation request with the requester's address: ours
//! answers from the count it keeps, and this wrapper keeps the count from the relay's events.
//!
//! Rules:
//! 1. A reservation's subnet is the /24 (IPv4) or /64 (IPv6) of the IP its connection comes
//!    from ([`Group`]); requests over no IP (relayed) share one.
//! 2. A request from a peer that holds a reservation (a renewal) passes.
//! 3. A new one from a subnet that already holds the cap is refused (the relay answers
//!    RESOURCE_LIMIT_EXCEEDED) and counted ([`Behaviour::refused`]); otherwise it counts
//!    against its subnet from then on.
//! 4. It stops counting when the relay reports it denied (by another limit), closed or timed
//!    out.
//!
//! The state is one entry per reservation held or being answered, and one per subnet holding
//! any: bounded by the relay's own total.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use libp2p::swarm::{FromSwarm, NetworkBehaviour, THandlerInEvent, ToSwarm};
use libp2p::{Multiaddr, PeerId, relay};
use peerfind_behaviours::ip_group::Group;

use crate::config::relay_limits::RelayLimits;

/// The count the limiter and the wrapper share.
#[derive(Debug, Default)]
struct Count {
    cap: usize,
    holders: HashMap<PeerId, Group>,
    per_subnet: HashMap<Group, usize>,
    refused: u64,
}

impl Count {
    /// Rules 1 to 3.
    fn request(&mut self, peer: PeerId, addr: &Multiaddr) -> bool {
        if self.holders.contains_key(&peer) {
            return true;
        }
        let group = Group::of_addr(addr).unwrap_or(Group::NoAddress);
        let held = self.per_subnet.entry(group).or_default();
        if *held >= self.cap {
            self.refused += 1;
            if self.refused == 1 {
                tracing::info!(%peer, subnet = %group, cap = self.cap, "relay reservation refused: its subnet holds the most allowed (the next such are logged at debug and counted)");
            } else {
                tracing::debug!(%peer, subnet = %group, "relay reservation refused: subnet full");
            }
            return false;
        }
        *held += 1;
        self.holders.insert(peer, group);
        true
    }

    /// Rule 4.
    fn release(&mut self, peer: &PeerId) {
        if let Some(group) = self.holders.remove(peer)
            && let Some(held) = self.per_subnet.get_mut(&group)
        {
            *held -= 1;
            if *held == 0 {
                self.per_subnet.remove(&group);
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Shared(Arc<Mutex<Count>>);

impl Shared {
    /// The count; only ever read or counted under the lock, so a poisoned one is taken as is.
    fn lock(&self) -> MutexGuard<'_, Count> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// libp2p's relay server with the per-subnet cap. See the module doc.
pub struct Behaviour {
    inner: relay::Behaviour,
    count: Shared,
}

impl Behaviour {
    /// The relay server of a bootnode whose key is `local`, with `limits`.
    pub fn new(local: PeerId, limits: &RelayLimits) -> Self {
        let count = Shared::default();
        count.lock().cap = limits.max_reservations_per_subnet();
        let mut config = limits.relay_config();
        let limiter = count.clone();
        // Last, so the relay's own limits deny first and this one counts only what passes them.
        config
            .reservation_rate_limiters
            .push(Box::new(move |peer, addr: &Multiaddr, _| {
                limiter.lock().request(peer, addr)
            }));
        Self {
            inner: relay::Behaviour::new(local, config),
            count,
        }
    }

    /// Reservations refused because their subnet held the cap.
    pub fn refused(&self) -> u64 {
        self.count.lock().refused
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = <relay::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = relay::Event;

    peerfind_behaviours::forward_connection_handling!(inner);
    peerfind_behaviours::forward_handler_events!(inner);

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        let polled = self.inner.poll(cx);
        #[allow(deprecated)] // ReservationReqAcceptFailed: still emitted by 0.22
        if let Poll::Ready(ToSwarm::GenerateEvent(
            relay::Event::ReservationReqDenied { src_peer_id, .. }
            | relay::Event::ReservationReqAcceptFailed { src_peer_id, .. }
            | relay::Event::ReservationClosed { src_peer_id }
            | relay::Event::ReservationTimedOut { src_peer_id },
        )) = &polled
        {
            self.count.lock().release(src_peer_id);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn count(cap: usize) -> Count {
        Count {
            cap,
            ..Default::default()
        }
    }

    fn from(ip: &str) -> Multiaddr {
        format!("/ip4/{ip}/tcp/4001").parse().unwrap()
    }

    #[test]
    fn rule_3_a_subnet_holds_at_most_the_cap_and_another_subnet_is_not_affected() {
        let mut c = count(2);
        assert!(c.request(PeerId::random(), &from("198.51.100.1")));
        assert!(c.request(PeerId::random(), &from("198.51.100.2")));
        assert!(!c.request(PeerId::random(), &from("198.51.100.3")));
        assert_eq!(c.refused, 1);
        assert!(c.request(PeerId::random(), &from("198.51.101.1")));
    }

    #[test]
    fn rule_2_a_holder_renews_even_at_the_cap() {
        let mut c = count(1);
        let peer = PeerId::random();
        assert!(c.request(peer, &from("198.51.100.1")));
        assert!(c.request(peer, &from("198.51.100.1")));
        assert_eq!(c.per_subnet.len(), 1);
        assert_eq!(c.per_subnet[&Group::of("198.51.100.1".parse().unwrap())], 1);
    }

    #[test]
    fn rule_4_a_released_reservation_frees_its_place() {
        let mut c = count(1);
        let peer = PeerId::random();
        assert!(c.request(peer, &from("198.51.100.1")));
        assert!(!c.request(PeerId::random(), &from("198.51.100.2")));
        c.release(&peer);
        assert!(c.per_subnet.is_empty() && c.holders.is_empty());
        assert!(c.request(PeerId::random(), &from("198.51.100.2")));
    }
}
