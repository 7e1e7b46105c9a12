//! What the node tells the API: its status, its peers, its connections' kinds, and libp2p's
//! metrics.

use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use peerfind_behaviours::enr_ext::{self, Transport};
use peerfind_behaviours::table;

use super::{Link, Node};
use crate::behaviour::BehaviourEvent;
use crate::status::{self, Query};

impl Node {
    pub(super) fn answer(&self, query: Query) {
        // A caller that gave up is no error.
        match query {
            Query::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Query::Peers(reply) => {
                let _ = reply.send(self.peers());
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
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        let count = |want: fn(&Link) -> bool| {
            self.connections.values().filter(|(_, l)| want(l)).count() as u64
        };
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
                since: to_system_time(since),
            },
            bootnodes: self
                .bootnodes
                .values()
                .map(|b| status::BootnodeState {
                    peer_id: b.peer_id,
                    addrs: b.addrs.clone(),
                    connected: self.swarm.is_connected(&b.peer_id),
                })
                .collect(),
            records: self.swarm.behaviour().gossip.table().len() as u64,
            direct_connections: count(|l| matches!(l, Link::Direct(_))),
            relayed_connections: count(|l| *l == Link::Relayed),
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
                last_seen: to_system_time(e.refreshed.into()),
                met: match e.source {
                    table::Source::Gossip { .. } => status::Met::Gossip,
                    table::Source::Announced if self.dialed.contains(&e.peer_id) => {
                        status::Met::Announced
                    }
                    table::Source::Announced => status::Met::Inbound,
                },
                connection: self.connection_of(&e.peer_id),
            })
            .collect()
    }

    /// The best connection to `peer`: direct (QUIC before TCP) over relayed over none.
    pub(super) fn connection_of(&self, peer: &PeerId) -> status::Connection {
        let mut best = status::Connection::None;
        for (p, link) in self.connections.values() {
            if p != peer {
                continue;
            }
            match link {
                Link::Direct(Transport::Quic) => {
                    return status::Connection::Direct { transport: "quic" };
                }
                Link::Direct(Transport::Tcp) => {
                    best = status::Connection::Direct { transport: "tcp" }
                }
                Link::Relayed if best == status::Connection::None => {
                    best = status::Connection::Relayed
                }
                Link::Relayed => {}
            }
        }
        best
    }

    pub(super) fn publish_connection_change(
        &mut self,
        peer_id: PeerId,
        before: status::Connection,
    ) {
        let connection = self.connection_of(&peer_id);
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
            other => metrics.record(other),
        }
    }
}

/// A tokio instant as wall-clock time, for people reading the API.
pub(super) fn to_system_time(at: tokio::time::Instant) -> std::time::SystemTime {
    let ago = tokio::time::Instant::now().saturating_duration_since(at);
    std::time::SystemTime::now() - ago
}

/// `addr` without a trailing `/p2p/…`.
pub(super) fn strip_p2p(mut addr: Multiaddr) -> Multiaddr {
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.pop();
    }
    addr
}
