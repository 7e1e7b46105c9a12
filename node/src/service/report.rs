//! What the node tells the API: its status, its peers, its connections' kinds, and libp2p's
//! metrics.

use std::time::SystemTime;

use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use peerfind_behaviours::enr_ext;
use peerfind_behaviours::table;

use super::Node;
use crate::status::{self, Query};
use crate::swarm::behaviour::BehaviourEvent;

impl Node {
    pub(super) fn answer(&mut self, query: Query) {
        // A caller that gave up is no error.
        match query {
            Query::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Query::Peers(reply) => {
                let _ = reply.send(self.peers());
            }
            Query::Ping(peer, reply) => self.start_ping(peer, reply),
            Query::Netcheck(reply) => {
                let _ = reply.send(self.netcheck());
            }
        }
    }

    fn status(&self) -> status::Status {
        let enr = self.record.enr();
        let (nat_status, reason, since) = self.nat.status();
        let mut counters = self.counters.clone();
        counters.inputs_rejected = self
            .swarm
            .behaviour()
            .gossip
            .rejected()
            .iter()
            .chain(self.swarm.behaviour().intro.rejected())
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        // Observed addresses a peer told after another on the same connection (confirm rule
        // 10), and confirmations that waited for the record's move budget (rule 11).
        let observed = self.confirmations.counts();
        for (reason, n) in [
            ("observed_addr_changed", observed.changed),
            ("observed_addr_deferred", observed.deferred),
        ] {
            if n > 0 {
                counters.inputs_rejected.insert(reason.to_owned(), n);
            }
        }
        // Dials the guard refused: what a peer handed us to dial that nobody proved.
        for (reason, n) in self.swarm.behaviour().dial_guard.refused() {
            counters.inputs_rejected.insert(reason.to_owned(), n);
        }
        // Relay reservations refused for their subnet holding the cap (bootnodes).
        if let Some(relay) = self.swarm.behaviour().relay.as_ref()
            && relay.refused() > 0
        {
            counters
                .inputs_rejected
                .insert("relay_subnet_full".to_owned(), relay.refused());
        }
        // The record mesh's refusals (bootnodes): proofs, non-members' streams and messages.
        for (reason, n) in self.mesh_counts() {
            if n > 0 {
                counters.inputs_rejected.insert(reason.to_owned(), n);
            }
        }
        counters.inbound_denied_per_subnet = self.swarm.behaviour().subnets.denied();
        let (direct_connections, relayed_connections) = self.connections.counts();
        status::Status {
            peer_id: *self.swarm.local_peer_id(),
            node_id: hex::encode(enr.node_id().raw()),
            enr: enr.to_base64(),
            seq: enr.seq(),
            listen_addrs: self.swarm.listeners().cloned().collect(),
            observed_addrs: enr_ext::multiaddrs(enr, *self.swarm.local_peer_id())
                .into_iter()
                .map(strip_p2p)
                .collect(),
            external_addrs: self.swarm.external_addresses().cloned().collect(),
            nat: status::NatState {
                status: nat_status,
                reason: reason.to_string(),
                since: self.clock.at(since),
                mappings: status::NatMappings::of(enr),
            },
            port_mapping: self.port_mapping_status(),
            bootnodes: self
                .bootnodes
                .iter()
                .map(|b| {
                    let (agent, lacks) = self.identified.bootnode(&b.peer_id);
                    status::BootnodeState {
                        peer_id: b.peer_id,
                        addrs: b.addrs.clone(),
                        connected: self.swarm.is_connected(&b.peer_id),
                        transports: self.connections.transports_of(&b.peer_id),
                        agent,
                        lacks,
                        relay_reserved: self.relay_slots.reserved(&b.peer_id),
                    }
                })
                .collect(),
            records: self.swarm.behaviour().gossip.table().len() as u64,
            direct_connections,
            relayed_connections,
            chosen_peers: self
                .connections
                .chosen_peers(|p| self.bootnodes.contains(p)) as u64,
            counters,
        }
    }

    fn peers(&self) -> Vec<status::Peer> {
        self.swarm
            .behaviour()
            .gossip
            .table()
            .iter()
            .map(|e| status::Peer {
                node_id: hex::encode(e.enr.node_id().raw()),
                peer_id: e.peer_id,
                enr: e.enr.to_base64(),
                seq: e.enr.seq(),
                addrs: enr_ext::multiaddrs(&e.enr, e.peer_id),
                nat: enr_ext::is_natted(&e.enr),
                mappings: status::NatMappings::of(&e.enr),
                last_seen: self.clock.at(e.refreshed.into()),
                met: match e.source {
                    table::Source::Gossip { .. } => status::Met::Gossip,
                    table::Source::Announced if self.connections.was_dialed(&e.peer_id) => {
                        status::Met::Announced
                    }
                    table::Source::Announced => status::Met::Inbound,
                },
                connection: self.connections.best(&e.peer_id),
                transports: self.connections.transports_of(&e.peer_id),
                rtt: self.connections.rtt_of(&e.peer_id),
                has_record: true,
                identify: self.identified.get(&e.peer_id),
            })
            .chain(self.peers_without_record())
            .collect()
    }

    /// Tells watchers when the best connection to `peer_id` changed from `before`.
    pub(super) fn publish_connection_change(
        &mut self,
        peer_id: PeerId,
        before: status::Connection,
    ) {
        let connection = self.connections.best(&peer_id);
        if connection != before {
            tracing::debug!(peer = %peer_id, ?connection, "connection state changed");
            self.hub.publish(status::Event::ConnectionChanged {
                peer_id,
                connection,
            });
        }
    }

    pub(super) fn record_metrics(&self, event: &SwarmEvent<BehaviourEvent>) {
        use libp2p::metrics::Recorder;
        let Some(metrics) = &self.metrics else { return };
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => metrics.record(e),
            // libp2p's recorder sees only the events it is handed: without these two arms no
            // `libp2p_relay_*` or `libp2p_dcutr_*` series ever appear.
            SwarmEvent::Behaviour(BehaviourEvent::Relay(e)) => metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(e)) => metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Mesh(e)) => metrics.record(e),
            other => metrics.record(other),
        }
    }
}

/// Turns the node's instants (monotonic, for its timers) into wall-clock times for people
/// reading the API. The pair is read once, when the node starts, so an instant reads as the
/// same time at every query; reading both clocks at each query would shift it a little every
/// time.
#[derive(Debug, Clone, Copy)]
pub(super) struct WallClock {
    instant: tokio::time::Instant,
    system: SystemTime,
}

impl WallClock {
    /// Both clocks now.
    pub(super) fn now() -> Self {
        Self {
            instant: tokio::time::Instant::now(),
            system: SystemTime::now(),
        }
    }

    /// The wall-clock time of `at`.
    pub(super) fn at(&self, at: tokio::time::Instant) -> SystemTime {
        if at >= self.instant {
            self.system + (at - self.instant)
        } else {
            self.system - (self.instant - at)
        }
    }
}

/// `addr` without a trailing `/p2p/…`.
pub(super) fn strip_p2p(mut addr: Multiaddr) -> Multiaddr {
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.pop();
    }
    addr
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::WallClock;

    #[tokio::test(start_paused = true)]
    async fn an_instant_reads_as_the_same_wall_clock_time_at_every_query() {
        let clock = WallClock::now();
        let seen = tokio::time::Instant::now();
        let first = clock.at(seen);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.at(seen), first, "no drift between queries");
        let later = clock.at(tokio::time::Instant::now());
        assert_eq!(
            later.duration_since(first).ok(),
            Some(Duration::from_secs(90))
        );
        let before = clock.at(seen - Duration::from_secs(5));
        assert_eq!(
            first.duration_since(before).ok(),
            Some(Duration::from_secs(5))
        );
    }
}
