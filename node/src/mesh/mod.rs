//! Bootnodes of one network share every record over a gossipsub topic: libp2p's own
//! publish/subscribe engine carries the records between bootnodes, so that a peer joined to one
//! bootnode finds peers joined to another, and losing a bootnode loses no record.
//!
//! Within one bootnode's reach, records still travel as before ("Meet Alice": the gossip
//! protocol pushes each new or updated record to a bounded fanout of the bootnode's peers).
//! The mesh is only between bootnodes: each keeps about [`MESH_DEGREE`] mesh links whatever
//! the number of bootnodes, so a record costs each bootnode a bounded number of messages,
//! and gossipsub's own deduplication (a message id per record version) stops echoes.
//!
//! # Rules
//!
//! 1. Only bootnodes join the mesh (subscribe to the topic). Peers learn records from their
//!    bootnodes, as before.
//! 2. A bootnode publishes every record that entered its table as new or newer, whatever told
//!    it. A record that arrived through the mesh is the same message (same bytes, same id), so
//!    gossipsub refuses it as a duplicate and forwarding is left to gossipsub.
//! 3. A message from the mesh is accepted, and so forwarded to the rest of the mesh, when its
//!    record entered the table as new or newer.
//! 4. It is ignored (not forwarded, nobody penalised) when the table already holds that seq
//!    or a newer one, or refuses it as a conflict: two paths racing is normal.
//! 5. It is rejected (not forwarded, the sender penalised by gossipsub's scoring) when it is
//!    not a valid record: garbage, a bad signature, an oversized record.
//! 6. When a bootnode joins the mesh (subscribes, on every new connection to it), each side
//!    pushes it every record it holds, batched by the ENR exchange's outbox, and from then on
//!    leaves it out of the exchange's own pushes. A publication made while nobody else was in
//!    the mesh, or while that bootnode was away or restarting, is never carried by gossipsub
//!    again (it keeps messages for a few heartbeats only), so without this the mesh would
//!    never converge after a bootnode starts late or restarts. Records new to it are then
//!    published on by it (rule 2) and ignored as known by the others (rule 4).
//! 7. Every [`SYNC_INTERVAL`] each bootnode does the same for every bootnode in the mesh: a
//!    publication gossipsub dropped (its send queues give up on a message that waited
//!    [`PUBLISH_QUEUE_WAIT`], as on a starved machine) is repaired within one interval.
//!    Records the other side holds already cost one check each and are not passed on.
//!
//! The topic is `--mesh-topic`; bootnodes of one network must agree on it, and a different
//! topic keeps two networks' records apart on shared bootnodes.

pub mod admission;
pub mod members;
pub mod protocol;
pub mod secret;

use std::time::Duration;

use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId};
use libp2p::identity::Keypair;
use peerfind_behaviours::enr_ext::{self, Enr};
use peerfind_behaviours::gossip::{Offered, Violation};

/// Default `--mesh-topic`: the records of a peerfind network, version 1 of the message (one
/// ENR, as EIP-778 encodes it, per message).
pub const DEFAULT_TOPIC: &str = "/peerfind/records/1";

/// Mesh links each bootnode keeps (gossipsub's D). With a few bootnodes every one is a link;
/// with many, a record reaches all of them in about log_D(bootnodes) hops.
pub const MESH_DEGREE: usize = 6;

/// Largest gossipsub frame (its `max_transmit_size`). The limit is on a whole frame, and a
/// frame batches every message and control queued for one bootnode: at 1,200 bytes (one
/// record and its envelope) a burst of updates made frames of 2 to 5 records, which the
/// receiver dropped whole, stream and all, so each update waited for rule 7's minute. 64 KiB
/// is gossipsub's own default; a single record is still at most [`enr_ext::MAX_RECORD_SIZE`] bytes, or
/// rejected by rule 5.
const MAX_FRAME_SIZE: usize = 64 * 1024;

/// How often gossipsub maintains its mesh and gossips message ids: its default, 1 s, is what
/// bounds how fast a record lost on one link is recovered from another.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Rule 7: how often a bootnode pushes its table to the bootnodes in the mesh. A record
/// costs each link one 32-record batch slot per interval: 1,000 records to 9 bootnodes are
/// about 280 pushes a minute.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(60);

/// How long a publication may wait in gossipsub's send queue to a bootnode before it is
/// dropped (gossipsub: 5 s, and 1 s for a forwarded message). A record that arrives late is
/// still news; one dropped waits for rule 7.
const PUBLISH_QUEUE_WAIT: Duration = Duration::from_secs(30);

/// Why the mesh could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// gossipsub refused the configuration.
    #[error("cannot configure the record mesh: {0}")]
    Config(#[from] gossipsub::ConfigBuilderError),
    /// gossipsub refused to start.
    #[error("cannot start the record mesh: {0}")]
    Start(&'static str),
    /// gossipsub refused the topic.
    #[error("cannot subscribe to the record mesh topic: {0}")]
    Subscribe(#[from] gossipsub::SubscriptionError),
}

/// A bootnode's gossipsub, subscribed to `topic` (rule 1).
pub fn behaviour(key: &Keypair, topic: &str) -> Result<gossipsub::Behaviour, MeshError> {
    let config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(HEARTBEAT)
        .mesh_n(MESH_DEGREE)
        .max_transmit_size(MAX_FRAME_SIZE)
        .publish_queue_duration(PUBLISH_QUEUE_WAIT)
        .forward_queue_duration(PUBLISH_QUEUE_WAIT)
        .validation_mode(gossipsub::ValidationMode::Strict)
        // Nothing is forwarded before the table has checked it (rules 3 to 5).
        .validate_messages()
        .message_id_fn(message_id)
        .build()?;
    let mut behaviour = gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), config)
        .map_err(MeshError::Start)?;
    behaviour.subscribe(&IdentTopic::new(topic))?;
    Ok(behaviour)
}

/// One id per record version: the record's own bytes, hashed. A record's bytes carry its
/// node id, seq and signature, so the same version published by two bootnodes is one
/// message, and any other content is another.
fn message_id(message: &gossipsub::Message) -> MessageId {
    use sha2::Digest;
    MessageId::from(sha2::Sha256::digest(&message.data).to_vec())
}

/// Publishes `enr` on the mesh (rule 2). A record the mesh already carried, or a mesh with
/// nobody in it yet, is not an error: the first is gossipsub's deduplication, the second a
/// bootnode alone.
pub fn publish(behaviour: &mut gossipsub::Behaviour, topic: &str, enr: &Enr) {
    let bytes = enr_ext::encode_bytes(enr);
    match behaviour.publish(IdentTopic::new(topic), bytes) {
        Ok(_) => tracing::debug!(seq = enr.seq(), "record published to the bootnode mesh"),
        Err(
            gossipsub::PublishError::Duplicate | gossipsub::PublishError::NoPeersSubscribedToTopic,
        ) => {}
        Err(e) => tracing::warn!(error = %e, "cannot publish a record to the bootnode mesh"),
    }
}

/// What gossipsub is told of a message, from what the table made of its record (rules 3–5).
pub fn acceptance(offered: &Result<Offered, Violation>) -> MessageAcceptance {
    match offered {
        Ok(Offered::New | Offered::Updated) => MessageAcceptance::Accept,
        Ok(Offered::Known) | Err(Violation::Refused(_)) => MessageAcceptance::Ignore,
        Err(_) => MessageAcceptance::Reject,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use peerfind_behaviours::enr_ext::RecordError;
    use peerfind_behaviours::table::Refused;

    use super::*;

    #[test]
    fn a_new_or_newer_record_is_passed_on_and_a_known_one_is_not() {
        assert_eq!(acceptance(&Ok(Offered::New)), MessageAcceptance::Accept);
        assert_eq!(acceptance(&Ok(Offered::Updated)), MessageAcceptance::Accept);
        assert_eq!(acceptance(&Ok(Offered::Known)), MessageAcceptance::Ignore);
    }

    #[test]
    fn a_stale_record_is_ignored_and_an_invalid_one_rejected() {
        let stale = Err(Violation::Refused(Refused::Stale { held: 5, got: 3 }));
        assert_eq!(acceptance(&stale), MessageAcceptance::Ignore);
        let bad = Err(Violation::Record(RecordError::InvalidSignature));
        assert_eq!(acceptance(&bad), MessageAcceptance::Reject);
    }

    #[test]
    fn the_same_record_bytes_are_one_message_wherever_they_come_from() {
        let message = |data: &[u8]| gossipsub::Message {
            source: None,
            data: data.to_vec(),
            sequence_number: None,
            topic: IdentTopic::new(DEFAULT_TOPIC).hash(),
        };
        assert_eq!(
            message_id(&message(b"record")),
            message_id(&message(b"record"))
        );
        assert_ne!(
            message_id(&message(b"record")),
            message_id(&message(b"other"))
        );
    }

    #[test]
    fn a_bootnode_mesh_starts_subscribed() {
        let key = Keypair::generate_secp256k1();
        let mesh = behaviour(&key, DEFAULT_TOPIC).unwrap();
        assert_eq!(mesh.topics().count(), 1);
    }
}
