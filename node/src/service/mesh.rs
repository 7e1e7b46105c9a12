//! Wiring of the bootnodes' record mesh ([`crate::mesh`]): who is a member (the admission
//! protocol's verdicts reach the gossipsub gate), records from the mesh through the table and
//! out to it, the join push and the periodic sync.

use std::time::{Instant, SystemTime};

use libp2p::PeerId;
use libp2p::gossipsub;
use peerfind_behaviours::enr_ext::Enr;

use super::Node;
use crate::mesh::members::Verdict;
use crate::mesh::{admission, message};

impl Node {
    /// Mesh rule 2: every record new or newer in our table goes to the other bootnodes, but
    /// for one the mesh just brought.
    pub(super) fn publish_to_mesh(&mut self, enr: &Enr) {
        if let Some(mesh) = self.swarm.behaviour_mut().mesh.as_mut() {
            let round = message::round(SystemTime::now());
            let topic = &self.config.mesh_topic;
            crate::mesh::publish(mesh, &self.mesh_delivered, topic, enr, round);
        }
    }

    /// Whether `peer` is a member of our mesh (members rules 1 to 3).
    fn is_mesh_member(&self, peer: &PeerId) -> bool {
        self.swarm
            .behaviour()
            .mesh_admission
            .as_ref()
            .is_some_and(|a| a.rules().members().contains(peer))
    }

    /// A peer's proof of the mesh secret, and the answer to ours (members rules 2 and 5).
    pub(super) fn on_mesh_admission(&mut self, event: admission::Event) {
        match event {
            admission::Event::Admitted { peer } => {
                tracing::info!(%peer, "bootnode proved the mesh secret; admitted to the record mesh");
                let behaviour = self.swarm.behaviour_mut();
                if let Some(mesh) = behaviour.mesh.as_mut() {
                    mesh.admit(peer);
                }
                // Gossip admission rule 4: its table push when it joins (mesh rule 6) is
                // taken like a configured bootnode's.
                behaviour.gossip.trust_while_connected(peer);
            }
            // Counted; an intruder could send these as fast as it likes, so no more than debug.
            admission::Event::Refused { peer, verdict } => {
                tracing::debug!(%peer, ?verdict, "mesh proof refused");
            }
            admission::Event::Answered { peer, verdict } => match verdict {
                Verdict::Admitted => {
                    tracing::debug!(%peer, "bootnode took our mesh proof");
                }
                Verdict::Refused => tracing::warn!(
                    %peer,
                    "bootnode refused our mesh proof: it holds another mesh secret; it shares its record mesh with us only if it is configured with us"
                ),
                Verdict::NoSecret => tracing::info!(
                    %peer,
                    "bootnode holds no mesh secret; it shares its record mesh with us only if it is configured with us"
                ),
            },
        }
    }

    /// Mesh rules 3 to 5 and 8: a record from a member goes through our table like a pushed
    /// one, and gossipsub forwards it only if the table took it or holds it; a non-member's
    /// is rejected unread. Rule 6: a member that joins gets our table.
    pub(super) fn on_mesh(&mut self, event: gossipsub::Event) {
        let (propagation_source, message_id, message) = match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => (propagation_source, message_id, message),
            gossipsub::Event::Subscribed { peer_id, .. } if self.is_mesh_member(&peer_id) => {
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
        self.mesh_delivered
            .delivered(message_id.clone(), Instant::now());
        let behaviour = self.swarm.behaviour_mut();
        let member = behaviour.mesh_admission.as_mut().is_some_and(|a| {
            a.rules_mut()
                .members_mut()
                .admits_message_from(&propagation_source)
        });
        let gossip = &mut behaviour.gossip;
        let acceptance = crate::mesh::judge(member, || {
            let offered = message::record(&message.data)
                .and_then(|record| gossip.offer(&record, propagation_source));
            if let Err(e) = &offered {
                tracing::debug!(peer = %propagation_source, reason = %e, "record from the bootnode mesh not taken");
            }
            offered
        });
        if !member {
            tracing::debug!(peer = %propagation_source, "mesh message from a non-member rejected");
        }
        if let Some(mesh) = behaviour.mesh.as_mut() {
            mesh.report_message_validation_result(&message_id, &propagation_source, acceptance);
        }
    }

    /// Mesh rule 7: the records we vouch for (their owner is connected to us) go to the
    /// members again.
    pub(super) fn sync_mesh(&mut self) {
        let swarm = &self.swarm;
        let table = swarm.behaviour().gossip.table();
        let records: Vec<Enr> =
            crate::mesh::vouched(table.iter().map(|e| (&e.peer_id, &e.enr)), |p| {
                swarm.is_connected(p)
            })
            .cloned()
            .collect();
        let Some(mesh) = self.swarm.behaviour_mut().mesh.as_mut() else {
            return;
        };
        self.mesh_delivered.prune(Instant::now());
        let round = message::round(SystemTime::now());
        let (delivered, topic) = (&self.mesh_delivered, &self.config.mesh_topic);
        let published = records
            .iter()
            .filter(|enr| crate::mesh::publish(mesh, delivered, topic, enr, round))
            .count();
        tracing::debug!(
            vouched = records.len(),
            published,
            "published again the records we vouch for to the bootnode mesh"
        );
    }

    /// The mesh's counts, by label, for the API's rejected inputs: proofs of the mesh secret
    /// refused (members rule 5), gossipsub streams of peers not admitted dropped unread (the
    /// gate's rule 5), mesh messages from non-members rejected (mesh rule 8).
    pub(super) fn mesh_counts(&self) -> [(&'static str, u64); 3] {
        let behaviour = self.swarm.behaviour();
        let members = behaviour
            .mesh_admission
            .as_ref()
            .map(|a| a.rules().members());
        [
            ("mesh_proof_refused", members.map_or(0, |m| m.refused())),
            (
                "mesh_unadmitted",
                behaviour.mesh.as_ref().map_or(0, |m| m.unadmitted()),
            ),
            ("mesh_not_member", members.map_or(0, |m| m.not_member())),
        ]
    }
}
