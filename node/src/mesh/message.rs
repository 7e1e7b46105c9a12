//! What a message on the mesh topic carries: a record and the round it was published in
//! (`MeshRecord` in `proto/peerfind/v1/mesh.proto`), its id, and the ids gossipsub delivered
//! lately (mesh rules 2 and 10).

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use libp2p::gossipsub::{self, MessageId};
use peerfind_behaviours::enr_ext::{self, Enr};
use peerfind_behaviours::frame::ProtocolError;
use peerfind_behaviours::gossip::Violation;
use peerfind_proto::v1 as pb;
use prost::Message as _;

use super::{DUPLICATE_CACHE, SYNC_INTERVAL};

/// Most ids [`Delivered`] keeps: far more than the messages of one [`DUPLICATE_CACHE`] (a
/// table's 2,048 records, each in two rounds), 32 bytes and an instant each, under 1 MiB.
const MAX_DELIVERED: usize = 16 * 1024;

/// Rule 10: the round of `now`, in whole [`SYNC_INTERVAL`]s since the Unix epoch.
pub fn round(now: SystemTime) -> u64 {
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    since.as_secs() / SYNC_INTERVAL.as_secs()
}

/// The message data for `enr` published in `round`.
pub fn encode(enr: &Enr, round: u64) -> Vec<u8> {
    pb::MeshRecord {
        record: enr_ext::encode_bytes(enr),
        round,
    }
    .encode_to_vec()
}

/// The record bytes in a message's `data`; not checked yet (the table does, rule 5).
pub fn record(data: &[u8]) -> Result<Vec<u8>, Violation> {
    pb::MeshRecord::decode(data)
        .map(|m| m.record)
        .map_err(|e| Violation::Wire(ProtocolError::Malformed(e)))
}

/// Rule 10: a message's id is its data hashed: one per record version and round.
pub fn id(data: &[u8]) -> MessageId {
    use sha2::Digest;
    MessageId::from(sha2::Sha256::digest(data).to_vec())
}

/// gossipsub's `message_id_fn` (rule 10).
pub(super) fn message_id(message: &gossipsub::Message) -> MessageId {
    id(&message.data)
}

/// The ids gossipsub delivered within [`DUPLICATE_CACHE`] (rule 2): the mesh already carried
/// those messages, and gossipsub would refuse to publish one again, with a warning each.
#[derive(Debug, Default)]
pub struct Delivered {
    ids: HashMap<MessageId, Instant>,
}

impl Delivered {
    /// gossipsub delivered `id` at `now`. Beyond [`MAX_DELIVERED`] ids the old ones go, and
    /// all of them if that is not enough: forgetting one costs only gossipsub's warning.
    pub fn delivered(&mut self, id: MessageId, now: Instant) {
        if self.ids.len() >= MAX_DELIVERED {
            self.prune(now);
            if self.ids.len() >= MAX_DELIVERED {
                self.ids.clear();
            }
        }
        self.ids.entry(id).or_insert(now);
    }

    /// Whether gossipsub delivered `id` lately.
    pub fn contains(&self, id: &MessageId) -> bool {
        self.ids.contains_key(id)
    }

    /// Forgets the ids older than [`DUPLICATE_CACHE`].
    pub fn prune(&mut self, now: Instant) {
        self.ids
            .retain(|_, at| now.saturating_duration_since(*at) < DUPLICATE_CACHE);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use peerfind_behaviours::enr_ext::SigningKey;

    use super::*;

    fn enr() -> Enr {
        let secret = libp2p::identity::secp256k1::SecretKey::generate();
        let key = SigningKey::from_slice(&secret.to_bytes()).unwrap();
        Enr::builder()
            .ip4(Ipv4Addr::LOCALHOST)
            .tcp4(9000)
            .build(&key)
            .unwrap()
    }

    #[test]
    fn one_record_version_is_one_message_per_round() {
        let (a, b) = (enr(), enr());
        assert_eq!(id(&encode(&a, 7)), id(&encode(&a, 7)), "two publishers");
        assert_ne!(id(&encode(&a, 7)), id(&encode(&a, 8)), "the next round");
        assert_ne!(id(&encode(&a, 7)), id(&encode(&b, 7)));
        assert_eq!(record(&encode(&a, 7)).unwrap(), enr_ext::encode_bytes(&a));
        assert!(record(b"\xff\xff garbage").is_err());
        let minute = SystemTime::UNIX_EPOCH + Duration::from_secs(60 * 1000);
        assert_eq!(round(minute), 1000);
        assert_eq!(round(minute + Duration::from_secs(59)), 1000);
        assert_eq!(round(minute + SYNC_INTERVAL), 1001);
    }

    #[test]
    fn delivered_ids_are_kept_for_gossipsubs_duplicate_cache_only() {
        let (mut delivered, now) = (Delivered::default(), Instant::now());
        let id = id(b"message");
        delivered.delivered(id.clone(), now);
        assert!(delivered.contains(&id));
        delivered.prune(now + DUPLICATE_CACHE - Duration::from_secs(1));
        assert!(delivered.contains(&id));
        delivered.prune(now + DUPLICATE_CACHE);
        assert!(!delivered.contains(&id));
    }
}
