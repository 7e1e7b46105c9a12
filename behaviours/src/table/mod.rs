//! The record table: every ENR this node knows, one per node id.
//!
//! Rules; [`Table::insert`] applies 2, 3–4, 8 and 5, in that order:
//! 1. Records arrive here already decoded, so their signature is verified and they are at most
//!    300 bytes (EIP-778); see [`crate::enr_ext::decode_bytes`].
//! 2. The node's own record is never stored.
//! 3. A record with a higher `seq` than the stored one replaces it (EIP-778: the newer record
//!    wins), whoever brings it, even into a full group (rule 8): the node is already counted.
//! 4. The same `seq` with the same content is refreshed only when its owner announces it
//!    ([`Source::Announced`]); the same record passed on again by anyone else changes nothing
//!    ([`Inserted::Known`]), or two bootnodes pushing their tables to each other would keep a
//!    record alive forever after its owner left. One exception: the bootnodes' mesh, whose
//!    members publish a record only when it is new or newer to them or its owner is
//!    connected to them, so a held record arriving there is renewed ([`Table::renew`]). The
//!    same `seq` with other content is refused as a conflict (a key holder signed two
//!    different records with one seq: keep the first), and a lower `seq` is refused as stale.
//! 5. The table holds at most [`Config::capacity`] records: inserting into a full table evicts
//!    one, the first of these in turn: a record whose owner has no connection with us before
//!    one whose owner has; one naming no IP before one naming an IP (which its owner's
//!    connection proved, or a trusted bootnode that did passed on); one of the largest group
//!    (rule 8), so that a flood evicts its own records first; the least recently refreshed.
//! 6. A record not refreshed within [`Config::ttl`] expires ([`Table::expire`]). Only its
//!    owner refreshes it: by announcing it (rule 4), by a newer record (rule 3), by being
//!    connected to us (a record whose owner is connected does not expire, and the
//!    connection's close counts as a refresh: [`Table::connected`], [`Table::disconnected`]),
//!    or by being connected to a bootnode of the mesh that vouches for it (rule 4).
//! 7. Bytes equal to a held record's are known without being decoded again
//!    ([`Table::holds`]): its signature was verified when it came in. A bootnode asks every
//!    new peer for up to 32 records, which it mostly holds already; verifying each again took
//!    29% of a bootnode's CPU while 1,000 peers joined. Such bytes come from others than the
//!    owner (a push, an answer), so they refresh nothing (rule 4).
//! 8. At most [`Config::max_per_group`] records of one [`Group`] are held: the /24 of an IPv4
//!    address, the /64 of an IPv6 one. The caller names the group: the record's IP that the
//!    announcing connection proved, or, for a record naming no IP, the IP that connection
//!    comes from; a record passed on by others is grouped by its own IP. Records of no known
//!    address (passed on naming no IP, announced over a relayed circuit only) are capped
//!    together as [`Group::NoAddress`]. A record of a node not held, beyond its group's
//!    cap, is refused ([`Refused::GroupFull`]); a cap of at least the capacity is none.
//!
//! What each node holds, and for how long, follows. A bootnode holds its peers' records from
//! their announcements, renewed every 5 minutes and while they stay connected. A peer holds
//! what its bootnodes passed on as new or newer, for [`Config::ttl`] from then, and as long as
//! the owner stays connected (peers dial the records they learn, and a connected owner also
//! announces every 5 minutes); a record passed on whose owner it never reached lives one TTL,
//! and comes back with its bootnode's next answer or push of it as new. Bootnodes push each
//! other only the records they hold first-hand ([`Entry::owner_seen`]): a record passed on
//! lives one TTL at each other bootnode (longer when the mesh renews it) and is pushed again,
//! as new, while a bootnode holds it first-hand; once its owner left, nobody holds it
//! first-hand after one TTL, and every copy expires within another.
//!
//! Whether a peer may announce a record at all (its key must be the connection's key) is the
//! gossip behaviour's rule, not the table's: the table does not know where a record came from
//! beyond the [`Source`] and [`Group`] it is told.
//!
//! Time is passed in, never read, so the rules are tested without waiting.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use enr::NodeId;
use libp2p::PeerId;
use rand::seq::IteratorRandom;

use crate::enr_ext::{self, Enr};
use crate::ip_group::Group;

/// Default [`Config::capacity`]: far more than the peers one node talks to, small enough that a
/// full table costs well under a megabyte (300 bytes a record).
pub const DEFAULT_CAPACITY: usize = 2048;

/// Default [`Config::ttl`]: peers re-announce every few minutes, so a record unheard of for
/// half an hour belongs to a node that is gone.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 60);

/// Default [`Config::max_per_group`] (rule 8): a thirty-second of the default table. Honest
/// peers do share a /24: behind a carrier-grade NAT many subscribers leave from a few public
/// addresses, and one cloud provider's range holds many servers; 64 leaves them room. A flood
/// from one /24 (or /64) then holds at most 1/32 of the table, and an attacker needs 32
/// address blocks, each with a connection per record, to fill it.
pub const DEFAULT_MAX_PER_GROUP: usize = 64;

/// Limits of the table.
#[derive(Debug, Clone)]
pub struct Config {
    /// Most records held (rule 5). Default: [`DEFAULT_CAPACITY`].
    pub capacity: usize,
    /// How long a record lives without a refresh (rule 6). Default: [`DEFAULT_TTL`].
    pub ttl: Duration,
    /// Most records of one [`Group`] (rule 8); at least the capacity means no cap. Default:
    /// [`DEFAULT_MAX_PER_GROUP`].
    pub max_per_group: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            ttl: DEFAULT_TTL,
            max_per_group: DEFAULT_MAX_PER_GROUP,
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
    /// When the record was last inserted or refreshed (rule 6).
    pub refreshed: Instant,
    /// When its owner last announced it to us or was last seen connected to us; `None` while
    /// only others passed it on. Within the TTL, we hold it first-hand ([`Table::first_hand`]).
    pub owner_seen: Option<Instant>,
    /// The group it counts against (rule 8).
    pub group: Group,
    /// The record's bytes (rule 7).
    raw: Vec<u8>,
}

impl Entry {
    /// Whether the record names an IP (rule 5).
    fn names_ip(&self) -> bool {
        self.enr.ip4().is_some() || self.enr.ip6().is_some()
    }
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
    /// The same record again from its owner: only the refresh time moved (rule 4).
    Refreshed,
    /// The same record again from another than its owner: nothing changed (rule 4).
    Known,
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
    /// Its group holds [`Config::max_per_group`] records already (rule 8).
    #[error("the table holds the most records it keeps from {group}")]
    GroupFull {
        /// The record's group.
        group: Group,
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
    /// Rule 8: records held per group; a group holding none has no entry. Bounded by the
    /// entries.
    groups: HashMap<Group, usize>,
    /// Rules 5 and 6: the peers connected to us now, whether we hold their record or not.
    /// Bounded by the swarm's connections.
    live: HashSet<PeerId>,
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
            groups: HashMap::new(),
            live: HashSet::new(),
        }
    }

    /// Rule 7: whether `raw` are exactly a held record's bytes; the caller then need not
    /// decode them. Refreshes nothing.
    pub fn holds(&self, raw: &[u8]) -> bool {
        self.by_raw
            .get(&self.hasher.hash_one(raw))
            .and_then(|id| self.entries.get(id))
            .is_some_and(|entry| entry.raw == raw)
    }

    /// Rule 4: when `raw` are exactly a held record's bytes, arriving over the bootnodes'
    /// mesh, renews it (its refresh time moves) and says so; the caller then need not decode
    /// them.
    pub fn renew(&mut self, raw: &[u8], now: Instant) -> bool {
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

    /// Applies rules 2-5 and 8 to a decoded record whose key belongs to `peer_id`, which
    /// counts against `group` when it is new.
    pub fn insert(
        &mut self,
        enr: Enr,
        peer_id: PeerId,
        source: Source,
        group: Group,
        now: Instant,
    ) -> Result<Inserted, Refused> {
        let id = enr.node_id();
        if id == self.local {
            return Err(Refused::Own);
        }
        let announced = source == Source::Announced;
        if let Some(held) = self.entries.get_mut(&id) {
            let (held_seq, got) = (held.enr.seq(), enr.seq());
            return match got.cmp(&held_seq) {
                std::cmp::Ordering::Less => Err(Refused::Stale {
                    held: held_seq,
                    got,
                }),
                std::cmp::Ordering::Equal if held.enr.compare_content(&enr) => {
                    if !announced {
                        return Ok(Inserted::Known);
                    }
                    held.refreshed = now;
                    held.owner_seen = Some(now);
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
                    if announced {
                        held.owner_seen = Some(now);
                    }
                    let moved = std::mem::replace(&mut held.group, group);
                    if moved != group {
                        self.uncount(moved);
                        *self.groups.entry(group).or_default() += 1;
                    }
                    Ok(Inserted::Updated { old_seq: held_seq })
                }
            };
        }
        let cap = self.config.max_per_group;
        if cap < self.config.capacity && self.in_group(&group) >= cap {
            return Err(Refused::GroupFull { group });
        }
        if self.entries.len() >= self.config.capacity {
            self.evict();
        }
        self.by_peer.insert(peer_id, id);
        let raw = enr_ext::encode_bytes(&enr);
        self.by_raw.insert(self.hasher.hash_one(&raw), id);
        *self.groups.entry(group).or_default() += 1;
        let owner_seen = (announced || self.live.contains(&peer_id)).then_some(now);
        self.entries.insert(
            id,
            Entry {
                enr,
                peer_id,
                source,
                first_seen: now,
                refreshed: now,
                owner_seen,
                group,
                raw,
            },
        );
        Ok(Inserted::New)
    }

    /// Rules 5 and 6: `peer` is connected to us (its first connection opened).
    pub fn connected(&mut self, peer: PeerId, now: Instant) {
        self.live.insert(peer);
        self.owner_seen_now(&peer, now);
    }

    /// Rules 5 and 6: `peer`'s last connection closed; it was there until `now`.
    pub fn disconnected(&mut self, peer: &PeerId, now: Instant) {
        self.live.remove(peer);
        self.owner_seen_now(peer, now);
    }

    /// Rule 6: removes the records not refreshed within the TTL, returning their node ids; a
    /// record whose owner is connected is refreshed instead.
    pub fn expire(&mut self, now: Instant) -> Vec<NodeId> {
        let ttl = self.config.ttl;
        let live: Vec<PeerId> = self.live.iter().copied().collect();
        for peer in &live {
            self.owner_seen_now(peer, now);
        }
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

    /// The records we hold first-hand: their owner is connected to us, or announced them or
    /// was connected within the TTL. What a bootnode pushes to the others of the mesh.
    pub fn first_hand(&self, now: Instant) -> impl Iterator<Item = &Entry> {
        let ttl = self.config.ttl;
        self.entries.values().filter(move |e| {
            self.live.contains(&e.peer_id)
                || e.owner_seen
                    .is_some_and(|seen| now.saturating_duration_since(seen) < ttl)
        })
    }

    /// How many records of `group` are held (rule 8).
    pub fn in_group(&self, group: &Group) -> usize {
        self.groups.get(group).copied().unwrap_or(0)
    }

    /// Rule 6: the owner `peer` is seen now, so its record is refreshed.
    fn owner_seen_now(&mut self, peer: &PeerId, now: Instant) {
        if let Some(entry) = self
            .by_peer
            .get(peer)
            .and_then(|id| self.entries.get_mut(id))
        {
            entry.refreshed = now;
            entry.owner_seen = Some(now);
        }
    }

    fn uncount(&mut self, group: Group) {
        if let Some(n) = self.groups.get_mut(&group) {
            *n -= 1;
            if *n == 0 {
                self.groups.remove(&group);
            }
        }
    }

    fn remove(&mut self, id: &NodeId) {
        if let Some(entry) = self.entries.remove(id) {
            self.by_peer.remove(&entry.peer_id);
            let hash = self.hasher.hash_one(&entry.raw);
            if self.by_raw.get(&hash) == Some(id) {
                self.by_raw.remove(&hash);
            }
            self.uncount(entry.group);
        }
    }

    /// Rule 5: one scan of the table, as before the groups (a full table of 2,048 costs
    /// microseconds per insert).
    fn evict(&mut self) {
        let victim = self
            .entries
            .iter()
            .min_by_key(|(_, e)| {
                (
                    self.live.contains(&e.peer_id),
                    e.names_ip(),
                    Reverse(self.in_group(&e.group)),
                    e.refreshed,
                )
            })
            .map(|(id, _)| *id);
        if let Some(id) = victim {
            self.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests;
