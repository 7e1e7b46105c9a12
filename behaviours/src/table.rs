//! The record table: every ENR this node knows, one per node id.
//!
//! Rules, in the order [`Table::insert`] applies them:
//! 1. Records arrive here already decoded, so their signature is verified and they are at most
//!    300 bytes (EIP-778); see [`crate::enr_ext::decode_bytes`].
//! 2. The node's own record is never stored.
//! 3. A record with a higher `seq` than the stored one replaces it (EIP-778: the newer record
//!    wins).
//! 4. The same `seq` with the same content only refreshes the entry; the same `seq` with other
//!    content is refused as a conflict (a key holder signed two different records with one seq:
//!    keep the first), and a lower `seq` is refused as stale.
//! 5. The table holds at most [`Config::capacity`] records: inserting into a full table evicts
//!    the least recently refreshed one.
//! 6. A record not refreshed within [`Config::ttl`] expires ([`Table::expire`]).
//! 7. Bytes equal to a held record's refresh it without being decoded again
//!    ([`Table::refresh_exact`]): its signature was verified when it came in. A bootnode asks
//!    every new peer for up to 32 records, which it mostly holds already; verifying each
//!    again took 29% of a bootnode's CPU while 1,000 peers joined.
//!
//! Whether a peer may announce a record at all (its key must be the connection's key) is the
//! gossip behaviour's rule, not the table's: the table does not know where a record came from
//! beyond the [`Source`] it is told.
//!
//! Time is passed in, never read, so the rules are tested without waiting.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use enr::NodeId;
use libp2p::PeerId;
use rand::seq::IteratorRandom;

use crate::enr_ext::{self, Enr};

/// Default [`Config::capacity`]: far more than the peers one node talks to, small enough that a
/// full table costs well under a megabyte (300 bytes a record).
pub const DEFAULT_CAPACITY: usize = 2048;

/// Default [`Config::ttl`]: peers re-announce every few minutes, so a record unheard of for
/// half an hour belongs to a node that is gone.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 60);

/// Limits of the table.
#[derive(Debug, Clone)]
pub struct Config {
    /// Most records held. Default: [`DEFAULT_CAPACITY`].
    pub capacity: usize,
    /// How long a record lives without a refresh. Default: [`DEFAULT_TTL`].
    pub ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            ttl: DEFAULT_TTL,
        }
    }
}

/// How this node first got a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The record's owner announced it on a connection with us.
    Announced,
    /// Another peer (usually a bootnode) passed it on.
    Gossip {
        /// The peer that passed it on.
        from: PeerId,
    },
}

/// One known record.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The record itself.
    pub enr: Enr,
    /// The PeerId of the record's key.
    pub peer_id: PeerId,
    /// How we first got it.
    pub source: Source,
    /// When the record (any seq of it) first arrived.
    pub first_seen: Instant,
    /// When the record was last inserted or refreshed.
    pub refreshed: Instant,
    /// The record's bytes (rule 7).
    raw: Vec<u8>,
}

/// What an accepted insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A node we did not know.
    New,
    /// A newer record replaced an older one (rule 3).
    Updated {
        /// The seq of the record it replaced.
        old_seq: u64,
    },
    /// The same record again: only the refresh time moved (rule 4).
    Refreshed,
}

/// Why an insert was refused; the table is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The record is this node's own (rule 2).
    #[error("the record is our own")]
    Own,
    /// A lower seq than the record held (rule 4).
    #[error("stale record: seq {got} is older than the held seq {held}")]
    Stale {
        /// The seq held.
        held: u64,
        /// The seq offered.
        got: u64,
    },
    /// Same seq, other content (rule 4).
    #[error("conflicting record: seq {seq} is held with other content")]
    Conflict {
        /// The seq both records carry.
        seq: u64,
    },
}

/// Known records by node id. See the module doc for its rules.
#[derive(Debug)]
pub struct Table {
    config: Config,
    local: NodeId,
    entries: HashMap<NodeId, Entry>,
    by_peer: HashMap<PeerId, NodeId>,
    /// Rule 7: a hash of each held record's bytes. Keyed per table, so a remote peer cannot
    /// aim collisions; one would only cost the fast path, as the bytes are compared.
    by_raw: HashMap<u64, NodeId>,
    hasher: RandomState,
}

impl Table {
    /// An empty table for the node `local`, whose own record it never stores.
    pub fn new(config: Config, local: NodeId) -> Self {
        Self {
            config,
            local,
            entries: HashMap::new(),
            by_peer: HashMap::new(),
            by_raw: HashMap::new(),
            hasher: RandomState::new(),
        }
    }

    /// Rule 7: when `raw` are exactly a held record's bytes, refreshes it and says so; the
    /// caller then need not decode them.
    pub fn refresh_exact(&mut self, raw: &[u8], now: Instant) -> bool {
        let Some(id) = self.by_raw.get(&self.hasher.hash_one(raw)) else {
            return false;
        };
        match self.entries.get_mut(id) {
            Some(entry) if entry.raw == raw => {
                entry.refreshed = now;
                true
            }
            _ => false,
        }
    }

    /// Applies rules 2-5 to a decoded record whose key belongs to `peer_id`.
    pub fn insert(
        &mut self,
        enr: Enr,
        peer_id: PeerId,
        source: Source,
        now: Instant,
    ) -> Result<Inserted, Refused> {
        let id = enr.node_id();
        if id == self.local {
            return Err(Refused::Own);
        }
        if let Some(held) = self.entries.get_mut(&id) {
            let (held_seq, got) = (held.enr.seq(), enr.seq());
            return match got.cmp(&held_seq) {
                std::cmp::Ordering::Less => Err(Refused::Stale {
                    held: held_seq,
                    got,
                }),
                std::cmp::Ordering::Equal if held.enr.compare_content(&enr) => {
                    held.refreshed = now;
                    Ok(Inserted::Refreshed)
                }
                std::cmp::Ordering::Equal => Err(Refused::Conflict { seq: got }),
                std::cmp::Ordering::Greater => {
                    let old = self.hasher.hash_one(&held.raw);
                    if self.by_raw.get(&old) == Some(&id) {
                        self.by_raw.remove(&old);
                    }
                    held.raw = enr_ext::encode_bytes(&enr);
                    self.by_raw.insert(self.hasher.hash_one(&held.raw), id);
                    held.enr = enr;
                    held.refreshed = now;
                    Ok(Inserted::Updated { old_seq: held_seq })
                }
            };
        }
        if self.entries.len() >= self.config.capacity {
            self.evict_stalest();
        }
        self.by_peer.insert(peer_id, id);
        let raw = enr_ext::encode_bytes(&enr);
        self.by_raw.insert(self.hasher.hash_one(&raw), id);
        self.entries.insert(
            id,
            Entry {
                enr,
                peer_id,
                source,
                first_seen: now,
                refreshed: now,
                raw,
            },
        );
        Ok(Inserted::New)
    }

    /// Rule 6: removes the records not refreshed within the TTL, returning their node ids.
    pub fn expire(&mut self, now: Instant) -> Vec<NodeId> {
        let ttl = self.config.ttl;
        let expired: Vec<NodeId> = self
            .entries
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.refreshed) >= ttl)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            self.remove(id);
        }
        expired
    }

    /// The record of a node id.
    pub fn get(&self, id: &NodeId) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// The record whose key is `peer`'s.
    pub fn get_by_peer(&self, peer: &PeerId) -> Option<&Entry> {
        self.by_peer.get(peer).and_then(|id| self.entries.get(id))
    }

    /// Up to `n` records chosen at random, for answers to record requests.
    pub fn sample(&self, n: usize) -> Vec<&Entry> {
        self.entries
            .values()
            .choose_multiple(&mut rand::thread_rng(), n)
    }

    /// Every record, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// How many records are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn remove(&mut self, id: &NodeId) {
        if let Some(entry) = self.entries.remove(id) {
            self.by_peer.remove(&entry.peer_id);
            let hash = self.hasher.hash_one(&entry.raw);
            if self.by_raw.get(&hash) == Some(id) {
                self.by_raw.remove(&hash);
            }
        }
    }

    fn evict_stalest(&mut self) {
        let stalest = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.refreshed)
            .map(|(id, _)| *id);
        if let Some(id) = stalest {
            self.remove(&id);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::enr_ext::{SigningKey, peer_id};

    fn key() -> SigningKey {
        SigningKey::from_slice(&libp2p::identity::secp256k1::SecretKey::generate().to_bytes())
            .unwrap()
    }

    fn record(key: &SigningKey, seq: u64, port: u16) -> (Enr, PeerId) {
        let enr = Enr::builder()
            .seq(seq)
            .ip4(Ipv4Addr::LOCALHOST)
            .tcp4(port)
            .build(key)
            .unwrap();
        let peer = peer_id(&enr).unwrap();
        (enr, peer)
    }

    fn table(capacity: usize) -> Table {
        let local = Enr::builder().build(&key()).unwrap().node_id();
        Table::new(
            Config {
                capacity,
                ttl: Duration::from_secs(60),
            },
            local,
        )
    }

    #[test]
    fn a_newer_seq_replaces_the_held_record() {
        let (mut t, k, now) = (table(8), key(), Instant::now());
        let (old, peer) = record(&k, 1, 1000);
        let (new, _) = record(&k, 2, 2000);
        assert_eq!(
            t.insert(old, peer, Source::Announced, now),
            Ok(Inserted::New)
        );
        assert_eq!(
            t.insert(new, peer, Source::Announced, now),
            Ok(Inserted::Updated { old_seq: 1 })
        );
        assert_eq!(t.get_by_peer(&peer).unwrap().enr.tcp4(), Some(2000));
    }

    #[test]
    fn an_older_seq_is_refused_as_stale_and_changes_nothing() {
        let (mut t, k, now) = (table(8), key(), Instant::now());
        let (new, peer) = record(&k, 5, 5000);
        let (old, _) = record(&k, 4, 4000);
        t.insert(new, peer, Source::Announced, now).unwrap();
        assert_eq!(
            t.insert(old, peer, Source::Announced, now),
            Err(Refused::Stale { held: 5, got: 4 })
        );
        assert_eq!(t.get_by_peer(&peer).unwrap().enr.tcp4(), Some(5000));
    }

    #[test]
    fn the_same_seq_with_other_content_is_a_conflict_and_the_first_is_kept() {
        let (mut t, k, now) = (table(8), key(), Instant::now());
        let (first, peer) = record(&k, 3, 3000);
        let (other, _) = record(&k, 3, 3001);
        t.insert(first.clone(), peer, Source::Announced, now)
            .unwrap();
        assert_eq!(
            t.insert(other, peer, Source::Announced, now),
            Err(Refused::Conflict { seq: 3 })
        );
        // The same record again (re-signed, so other bytes) only refreshes.
        let later = now + Duration::from_secs(10);
        assert_eq!(
            t.insert(first, peer, Source::Announced, later),
            Ok(Inserted::Refreshed)
        );
        assert_eq!(t.get_by_peer(&peer).unwrap().refreshed, later);
        assert_eq!(t.get_by_peer(&peer).unwrap().enr.tcp4(), Some(3000));
    }

    #[test]
    fn the_own_record_is_never_stored() {
        let k = key();
        let own = Enr::builder().build(&k).unwrap();
        let mut t = Table::new(Config::default(), own.node_id());
        let peer = peer_id(&own).unwrap();
        assert_eq!(
            t.insert(own, peer, Source::Announced, Instant::now()),
            Err(Refused::Own)
        );
        assert!(t.is_empty());
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_refreshed_record() {
        let (mut t, now) = (table(2), Instant::now());
        let (a, b, c) = (key(), key(), key());
        let (ra, pa) = record(&a, 1, 1);
        let (rb, pb) = record(&b, 1, 2);
        let (rc, pc) = record(&c, 1, 3);
        t.insert(ra.clone(), pa, Source::Announced, now).unwrap();
        t.insert(rb, pb, Source::Announced, now + Duration::from_secs(1))
            .unwrap();
        // Refresh a: now b is the stalest.
        t.insert(ra, pa, Source::Announced, now + Duration::from_secs(2))
            .unwrap();
        t.insert(rc, pc, Source::Announced, now + Duration::from_secs(3))
            .unwrap();
        assert_eq!(t.len(), 2);
        assert!(t.get_by_peer(&pa).is_some());
        assert!(t.get_by_peer(&pb).is_none());
        assert!(t.get_by_peer(&pc).is_some());
    }

    #[test]
    fn records_expire_when_not_refreshed_within_the_ttl() {
        let (mut t, now) = (table(8), Instant::now());
        let (a, b) = (key(), key());
        let (ra, pa) = record(&a, 1, 1);
        let (rb, pb) = record(&b, 1, 2);
        t.insert(ra.clone(), pa, Source::Announced, now).unwrap();
        t.insert(rb, pb, Source::Announced, now).unwrap();
        t.insert(ra, pa, Source::Announced, now + Duration::from_secs(30))
            .unwrap();
        let expired = t.expire(now + Duration::from_secs(60));
        assert_eq!(expired.len(), 1);
        assert!(t.get_by_peer(&pa).is_some());
        assert!(t.get_by_peer(&pb).is_none());
    }

    #[test]
    fn held_bytes_refresh_without_decoding_and_only_while_held() {
        let (mut t, k, now) = (table(8), key(), Instant::now());
        let (old, peer) = record(&k, 1, 1000);
        let (new, _) = record(&k, 2, 2000);
        let (old_raw, new_raw) = (enr_ext::encode_bytes(&old), enr_ext::encode_bytes(&new));
        assert!(!t.refresh_exact(&old_raw, now), "nothing held");
        t.insert(old, peer, Source::Announced, now).unwrap();
        let later = now + Duration::from_secs(30);
        assert!(t.refresh_exact(&old_raw, later));
        assert_eq!(t.get_by_peer(&peer).unwrap().refreshed, later);
        let mut flipped = old_raw.clone();
        if let Some(last) = flipped.last_mut() {
            *last ^= 1;
        }
        assert!(!t.refresh_exact(&flipped, later), "other bytes");
        assert!(!t.refresh_exact(&new_raw, later), "not held yet");
        t.insert(new, peer, Source::Announced, later).unwrap();
        assert!(t.refresh_exact(&new_raw, later));
        assert!(!t.refresh_exact(&old_raw, later), "replaced");
        t.expire(later + Duration::from_secs(60));
        assert!(!t.refresh_exact(&new_raw, later), "expired");
        assert!(t.by_raw.is_empty());
    }
}
