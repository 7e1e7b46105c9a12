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
//! # Members
//!
//! The mesh has members, and only they share records over it ([`members`] numbers who):
//! a bootnode's configured bootnodes (`--bootnode`), and any node that proves, on its
//! connection, that it holds the network's mesh secret (`--mesh-secret-file`, [`secret`]),
//! over the small admission protocol `/peerfind/mesh/1.0.0` ([`admission`], [`protocol`]).
//! The secret is what lets bootnodes mesh with one-way configuration, as operators start them:
//! a new bootnode names an existing one with `--bootnode`, and the existing one, told nothing
//! of it, admits it because it proves the secret (Tailscale's derper meshes the same way, with
//! `--mesh-psk-file`). Membership is enforced where gossipsub hears of connections
//! (`crate::upstream::gossipsub_gate`): gossipsub is told only of members' connections, so a
//! non-member gets no subscription, no record and no table push, and nothing it sends over
//! gossipsub is read. gossipsub's peer scoring would only penalise a non-member after the fact,
//! and explicit peers must be known in advance, so neither is the gate.
//!
//! # Rules
//!
//! 1. Only bootnodes join the mesh (subscribe to the topic), and a bootnode shares it only with
//!    members. Peers learn records from their bootnodes, as before.
//! 2. A bootnode publishes every record that entered its table as new or newer, whatever told
//!    it, except one that arrived through the mesh: gossipsub forwards that message itself,
//!    and would refuse to publish it again (with a warning each), so the ids it delivered
//!    lately are remembered ([`message::Delivered`]).
//! 3. A message from the mesh is accepted, and so forwarded to the rest of the mesh, when its
//!    record entered the table as new or newer, or the table holds that very record already
//!    (a sync, rule 7, which bootnodes beyond the publisher's links need as well; a message
//!    is forwarded once per round all the same, rule 10).
//! 4. It is ignored (not forwarded, nobody penalised) when the table holds a newer seq, or
//!    refuses it otherwise (a conflict): two paths racing is normal.
//! 5. It is rejected (not forwarded, the sender penalised by gossipsub's scoring) when it is
//!    not a valid record: garbage, a bad signature, an oversized record.
//! 6. When a member joins the mesh (subscribes, on every new connection to it), each side
//!    pushes it the records of its table (`gossip::Behaviour::push_table_to` says which),
//!    batched by the ENR exchange's outbox, and from then on leaves it out of the exchange's
//!    own pushes. A publication made while nobody else was in the mesh, or while that
//!    bootnode was away or restarting, is never carried by gossipsub again (it keeps messages
//!    for a few heartbeats only), so without this a bootnode that starts late would wait for
//!    rule 7 to learn the others' records. Records new to it are then published on by it
//!    (rule 2). A push goes only to a member, and the receiver takes it only from a bootnode
//!    it is configured with (the ENR exchange's trust); from a member it was not told of, it
//!    gets the records within one [`SYNC_INTERVAL`] from rule 7.
//! 7. Every [`SYNC_INTERVAL`] each bootnode publishes again the records it vouches for: those
//!    whose owner holds a connection to it now ([`vouched`]). Every member then renews them
//!    in its table and passes them on (rule 3), so a live record never expires anywhere, and
//!    a publication gossipsub dropped (its send queues give up on a message that waited
//!    [`PUBLISH_QUEUE_WAIT`], as on a starved machine) is repaired within one interval. A
//!    record whose owner left every bootnode is published by none, so the mesh renews it
//!    nowhere, and it expires at each bootnode within the table's TTL. (Rule 7 used to push
//!    every table to every member each minute, which renewed each record at the others, and
//!    theirs at the first, forever once two bootnodes meshed.)
//! 8. A message whose propagation source is not a member is rejected and counted
//!    (`mesh_not_member`), its record not even decoded. gossipsub never hears of a
//!    non-member's connection (rule 1), so this is the second lock.
//! 9. Messages carry no gossipsub signature ([`MessageAuthenticity::Anonymous`]): a record
//!    is signed by its owner (EIP-778) and checked by the table (rule 5), and who passed a
//!    message on is the connection's peer, authenticated by noise and a member (rule 8).
//!    Signing added about 120 bytes to each message (the source's PeerId, a seqno, a
//!    signature) and a signature to make and to check, and proved nothing more.
//! 10. A message is a record and the round it was published in (the publisher's clock in
//!     [`SYNC_INTERVAL`]s, [`message`]), and its id is its hash: one per record version and
//!     round. The same version published by two bootnodes in one round is one message, so
//!     gossipsub stops echoes as before; the next round's publication (rule 7) is a new
//!     message, which gossipsub would otherwise refuse for as long as its duplicate cache
//!     holds the id (it forgets ids only when it adds one, so in a quiet mesh never).
//!     Bootnodes of an older version sign messages, check signatures and send bare records,
//!     so the bootnodes of one mesh are upgraded together; the default topic's version went
//!     from 1 to 2 with this.
//!
//! The topic is `--mesh-topic`; bootnodes of one network must agree on it, and a different
//! topic keeps two networks' records apart on shared bootnodes.

pub mod admission;
pub mod members;
pub mod message;
pub mod protocol;
pub mod secret;

use std::time::Duration;

use libp2p::PeerId;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity};
use peerfind_behaviours::enr_ext::Enr;
use peerfind_behaviours::gossip::{Offered, Violation};

use self::message::Delivered;

/// Default `--mesh-topic`: the records of a peerfind network, version 2 of the message (one
/// record and its round, unsigned: rules 9 and 10; version 1 was a bare record, signed).
pub const DEFAULT_TOPIC: &str = "/peerfind/records/2";

/// Mesh links each bootnode keeps (gossipsub's D). With a few bootnodes every one is a link;
/// with many, a record reaches all of them in about log_D(bootnodes) hops.
pub const MESH_DEGREE: usize = 6;

/// Largest gossipsub frame (its `max_transmit_size`). The limit is on a whole frame, and a
/// frame batches every message and control queued for one bootnode: at 1,200 bytes (one
/// record and its envelope) a burst of updates made frames of 2 to 5 records, which the
/// receiver dropped whole, stream and all, so each update waited for rule 7's minute. 64 KiB
/// is gossipsub's own default; a single record is still at most
/// [`peerfind_behaviours::enr_ext::MAX_RECORD_SIZE`] bytes, or rejected by rule 5.
const MAX_FRAME_SIZE: usize = 64 * 1024;

/// How often gossipsub maintains its mesh and gossips message ids: its default, 1 s, is what
/// bounds how fast a record lost on one link is recovered from another.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Rule 7: how often a bootnode publishes again the records it vouches for, and rule 10's
/// round. Each such record then crosses each mesh link about once per interval: with 1,000
/// records among 10 bootnodes each bootnode sends about 1,000 messages of 250–350 bytes a
/// minute to each of its links, where pushing every table to every member was 1,000 records to
/// each of the 9 others (in batches of 32). Well inside the table's 30-minute TTL, so a lost
/// interval costs nothing.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(60);

/// How long gossipsub remembers a message id to refuse it as a duplicate (its default, set
/// here because [`message::Delivered`] mirrors it): longer than a message may wait in a send
/// queue ([`PUBLISH_QUEUE_WAIT`]), so a message late on one path is still a duplicate.
const DUPLICATE_CACHE: Duration = Duration::from_secs(60);

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

/// A bootnode's gossipsub, subscribed to `topic` (rule 1), its messages unsigned (rule 9).
pub fn behaviour(topic: &str) -> Result<gossipsub::Behaviour, MeshError> {
    let config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(HEARTBEAT)
        .mesh_n(MESH_DEGREE)
        .max_transmit_size(MAX_FRAME_SIZE)
        .publish_queue_duration(PUBLISH_QUEUE_WAIT)
        .forward_queue_duration(PUBLISH_QUEUE_WAIT)
        .duplicate_cache_time(DUPLICATE_CACHE)
        // Rule 9: a message with a source, a seqno or a signature is invalid.
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        // Nothing is forwarded before the table has checked it (rules 3 to 5).
        .validate_messages()
        .message_id_fn(message::message_id)
        .build()?;
    let mut behaviour = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config)
        .map_err(MeshError::Start)?;
    behaviour.subscribe(&IdentTopic::new(topic))?;
    Ok(behaviour)
}

/// Publishes `enr` on the mesh in `round` (rules 2, 7 and 10), which reaches members only
/// (rule 1), unless gossipsub `delivered` that very message lately. A mesh with nobody in it
/// yet is not an error: a bootnode alone. Says whether it went out.
pub fn publish(
    behaviour: &mut gossipsub::Behaviour,
    delivered: &Delivered,
    topic: &str,
    enr: &Enr,
    round: u64,
) -> bool {
    let data = message::encode(enr, round);
    if delivered.contains(&message::id(&data)) {
        return false;
    }
    match behaviour.publish(IdentTopic::new(topic), data) {
        Ok(_) => {
            tracing::debug!(seq = enr.seq(), "record published to the bootnode mesh");
            true
        }
        Err(
            gossipsub::PublishError::Duplicate | gossipsub::PublishError::NoPeersSubscribedToTopic,
        ) => false,
        Err(e) => {
            tracing::warn!(error = %e, "cannot publish a record to the bootnode mesh");
            false
        }
    }
}

/// Rule 7: of `records` (each with its owner's PeerId), those a bootnode vouches for: their
/// owner is `connected` to it now.
pub fn vouched<'a>(
    records: impl Iterator<Item = (&'a PeerId, &'a Enr)>,
    connected: impl Fn(&PeerId) -> bool,
) -> impl Iterator<Item = &'a Enr> {
    records
        .filter(move |(owner, _)| connected(owner))
        .map(|(_, enr)| enr)
}

/// What gossipsub is told of a message: from a non-member, a rejection before its record is
/// offered to the table (rule 8); from a member, what the table made of it (rules 3–5).
pub fn judge(
    member: bool,
    offer: impl FnOnce() -> Result<Offered, Violation>,
) -> MessageAcceptance {
    if !member {
        return MessageAcceptance::Reject;
    }
    match offer() {
        Ok(Offered::New | Offered::Updated | Offered::Known) => MessageAcceptance::Accept,
        Err(Violation::Refused(_)) => MessageAcceptance::Ignore,
        Err(_) => MessageAcceptance::Reject,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;

    use peerfind_behaviours::enr_ext::{self, RecordError, SigningKey};
    use peerfind_behaviours::table::Refused;

    use super::*;

    fn from_member(offered: Result<Offered, Violation>) -> MessageAcceptance {
        judge(true, || offered)
    }

    #[test]
    fn a_new_newer_or_held_record_is_passed_on() {
        assert_eq!(from_member(Ok(Offered::New)), MessageAcceptance::Accept);
        assert_eq!(from_member(Ok(Offered::Updated)), MessageAcceptance::Accept);
        assert_eq!(
            from_member(Ok(Offered::Known)),
            MessageAcceptance::Accept,
            "rule 3: a sync reaches bootnodes beyond the publisher's links"
        );
    }

    #[test]
    fn a_stale_record_is_ignored_and_an_invalid_one_rejected() {
        let stale = Err(Violation::Refused(Refused::Stale { held: 5, got: 3 }));
        assert_eq!(from_member(stale), MessageAcceptance::Ignore);
        let bad = Err(Violation::Record(RecordError::InvalidSignature));
        assert_eq!(from_member(bad), MessageAcceptance::Reject);
    }

    #[test]
    fn a_non_members_message_is_rejected_before_its_record_is_read() {
        let acceptance = judge(false, || {
            panic!("rule 8: a non-member's record was offered")
        });
        assert_eq!(acceptance, MessageAcceptance::Reject);
    }

    #[test]
    fn a_bootnode_mesh_starts_subscribed() {
        let mesh = behaviour(DEFAULT_TOPIC).unwrap();
        assert_eq!(mesh.topics().count(), 1);
    }

    fn record() -> (PeerId, Enr) {
        let secret = libp2p::identity::secp256k1::SecretKey::generate();
        let key = SigningKey::from_slice(&secret.to_bytes()).unwrap();
        let enr = Enr::builder()
            .ip4(Ipv4Addr::LOCALHOST)
            .tcp4(9000)
            .build(&key)
            .unwrap();
        (enr_ext::peer_id(&enr).unwrap(), enr)
    }

    fn vouched_by<'a>(held: &[&'a (PeerId, Enr)], connected: &[PeerId]) -> Vec<&'a Enr> {
        vouched(held.iter().map(|(p, e)| (p, e)), |p| connected.contains(p)).collect()
    }

    #[test]
    fn a_bootnode_vouches_only_for_records_whose_owner_is_connected_to_it() {
        let (alice, bob, carol) = (record(), record(), record());
        let held = [&alice, &bob, &carol];
        assert_eq!(
            vouched_by(&held, &[alice.0, carol.0, PeerId::random()]),
            [&alice.1, &carol.1],
            "rule 7"
        );
        // Once alice left, nobody here publishes her record again, and it expires.
        assert_eq!(vouched_by(&held, &[carol.0]), [&carol.1]);
    }
}
