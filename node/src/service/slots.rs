//! The relay slots a NAT'd node holds on its bootnodes (`crate::reach::reservation` decides,
//! this applies): reserved before the NAT verdict, given back once public, asked again after
//! a refusal or a loss.

use libp2p::core::transport::ListenerId;
use libp2p::{PeerId, multiaddr::Protocol, relay};
use tokio::time::Instant;

use super::{Mode, Node};
use crate::reach::reservation::Decision;
use crate::status;

impl Node {
    /// Behind a NAT, strangers reach us only through a relay: reserve a slot on every
    /// bootnode, so peers can dial `<bootnode>/p2p-circuit/p2p/<us>`. Done before the verdict
    /// too, so that a NAT'd node is reachable through the relay as soon as it can be.
    pub(super) fn reserve_relay_slots(&mut self) {
        if self.mode != Mode::Peer {
            return;
        }
        let todo: Vec<(PeerId, libp2p::Multiaddr)> = self
            .bootnodes
            .iter()
            .filter(|b| !self.relay_slots.holds(&b.peer_id))
            .filter_map(|b| b.addrs.first().map(|a| (b.peer_id, a.clone())))
            .collect();
        for (bootnode, addr) in todo {
            let circuit = addr.with(Protocol::P2pCircuit);
            match self.swarm.listen_on(circuit.clone()) {
                Ok(listener) => {
                    tracing::info!(%bootnode, address = %circuit, "reserving a relay slot");
                    self.relay_slots.started(listener, bootnode);
                    self.swarm.behaviour_mut().relay_client.asking(bootnode);
                }
                Err(e) => tracing::warn!(%bootnode, error = %e, "cannot reserve a relay slot"),
            }
        }
    }

    /// A public node needs no relay slot: give back those held or asked for.
    pub(super) fn release_relay_slots(&mut self) {
        for (listener, bootnode) in self.relay_slots.release_all() {
            tracing::info!(%bootnode, "public: giving back the relay slot");
            self.swarm.remove_listener(listener);
            self.swarm.behaviour_mut().relay_client.gave_back(bootnode);
        }
    }

    /// The relay client's events: a slot accepted (the first time told to the API).
    pub(super) fn on_relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            } => {
                self.relay_slots.accepted(&relay_peer_id);
                if !renewal {
                    tracing::info!(bootnode = %relay_peer_id, "relay reservation accepted");
                    self.hub.publish(status::Event::RelayReservation {
                        relay: relay_peer_id,
                        accepted: true,
                        reason: None,
                    });
                }
            }
            relay::client::Event::OutboundCircuitEstablished { relay_peer_id, .. } => {
                tracing::debug!(bootnode = %relay_peer_id, "outbound circuit established")
            }
            relay::client::Event::InboundCircuitEstablished { src_peer_id, .. } => {
                tracing::debug!(peer = %src_peer_id, "inbound circuit established")
            }
        }
    }

    /// A listener closed: when it was a relay reservation, decide whether and when to ask
    /// for it again (see the module doc).
    pub(super) fn on_reservation_closed(
        &mut self,
        listener: ListenerId,
        reason: &Result<(), std::io::Error>,
    ) {
        let identified = &self.identified;
        let (bootnode, decision) =
            self.relay_slots
                .closed(listener, |p| identified.has_relay(p), Instant::now());
        let Some(bootnode) = bootnode else { return };
        let why = match reason {
            Ok(()) => "closed".to_owned(),
            Err(e) => e.to_string(),
        };
        if !matches!(decision, Decision::NotOurs) {
            self.hub.publish(status::Event::RelayReservation {
                relay: bootnode,
                accepted: false,
                reason: Some(why.clone()),
            });
        }
        match decision {
            Decision::NotOurs => {}
            Decision::GiveUp => tracing::info!(
                %bootnode, reason = %why,
                "bootnode offers no relay (its identify lists no circuit relay v2); not asking it for a relay slot again"
            ),
            Decision::Retry(wait) => tracing::info!(
                %bootnode, reason = %why, retry_in = ?wait,
                "relay reservation refused or lost; asking again later"
            ),
        }
    }

    /// Asks again the bootnodes whose reservation retry is due, while we may need a slot (not
    /// known to be public).
    pub(super) fn on_reservation_retries_due(&mut self) {
        let due = self.relay_slots.take_due(Instant::now());
        if due.is_empty() || self.nat.status().0 == crate::reach::nat::Status::Public {
            return;
        }
        self.reserve_relay_slots();
    }
}
