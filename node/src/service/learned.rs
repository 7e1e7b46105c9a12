//! Records from others: the ENR exchange's news ("Meet Alice": a record learned or updated,
//! which the strategy then acts on) and, on bootnodes, the record mesh shared with the other
//! bootnodes ([`crate::mesh`]).

use peerfind_behaviours::enr_ext;
use peerfind_behaviours::gossip;

use super::Node;
use crate::status;

impl Node {
    pub(super) fn on_gossip(&mut self, event: gossip::Event) {
        match event {
            gossip::Event::RecordLearned { enr, peer_id, from } => {
                self.publish_to_mesh(&enr);
                self.swarm.behaviour_mut().intro.remember(enr.node_id());
                self.hub.publish(status::Event::RecordLearned {
                    peer_id,
                    seq: enr.seq(),
                    nat: enr_ext::is_natted(&enr),
                    from,
                });
                self.reach(&enr, peer_id)
            }
            gossip::Event::RecordUpdated {
                enr, peer_id, from, ..
            } => {
                self.publish_to_mesh(&enr);
                self.hub.publish(status::Event::RecordUpdated {
                    peer_id,
                    seq: enr.seq(),
                    nat: enr_ext::is_natted(&enr),
                    from,
                });
                self.reach(&enr, peer_id)
            }
            gossip::Event::InputRejected { .. } => {}
        }
    }

    /// Mesh rule 2: every record new or newer in our table goes to the other bootnodes.
    fn publish_to_mesh(&mut self, enr: &peerfind_behaviours::enr_ext::Enr) {
        if let Some(mesh) = self.swarm.behaviour_mut().mesh.as_mut() {
            crate::mesh::publish(mesh, &self.config.mesh_topic, enr);
        }
    }

    /// Mesh rules 3 to 5: a record from another bootnode goes through our table like a pushed
    /// one, and gossipsub forwards it only if the table took it as new or newer.
    pub(super) fn on_mesh(&mut self, event: libp2p::gossipsub::Event) {
        let (propagation_source, message_id, message) = match event {
            libp2p::gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => (propagation_source, message_id, message),
            libp2p::gossipsub::Event::Subscribed { peer_id, .. } => {
                // Mesh rule 6: a bootnode in the mesh gets every new record from it, so no
                // pushes to it too; what was published before it was there, it gets now.
                let records = self.swarm.behaviour().gossip.table().len();
                tracing::info!(peer = %peer_id, records, "bootnode joined the record mesh; sending it our records");
                let gossip = &mut self.swarm.behaviour_mut().gossip;
                gossip.skip_pushes_to(peer_id);
                gossip.push_table_to(peer_id);
                return;
            }
            _ => return,
        };
        let behaviour = self.swarm.behaviour_mut();
        let offered = behaviour.gossip.offer(&message.data, propagation_source);
        if let Err(e) = &offered {
            tracing::debug!(peer = %propagation_source, reason = %e, "record from the bootnode mesh not taken");
        }
        let acceptance = crate::mesh::acceptance(&offered);
        if let Some(mesh) = behaviour.mesh.as_mut() {
            mesh.report_message_validation_result(&message_id, &propagation_source, acceptance);
        }
    }

    /// Mesh rule 7: every bootnode in the mesh gets our table again.
    pub(super) fn sync_mesh(&mut self) {
        let behaviour = self.swarm.behaviour_mut();
        let Some(mesh) = behaviour.mesh.as_ref() else {
            return;
        };
        let peers: Vec<_> = mesh
            .all_peers()
            .filter(|(_, topics)| !topics.is_empty())
            .map(|(peer, _)| *peer)
            .collect();
        tracing::debug!(
            bootnodes = peers.len(),
            records = behaviour.gossip.table().len(),
            "pushing our records to the bootnode mesh"
        );
        for peer in peers {
            behaviour.gossip.push_table_to(peer);
        }
    }
}
