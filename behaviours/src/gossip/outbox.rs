//! Records waiting to be pushed to each peer ("Meet Alice"), sent in batches.
//!
//! A bootnode that learns many records at once (a crowd joining, or another bootnode's whole
//! table) would otherwise open one stream per record and peer: past the connection's stream
//! limit the rest fail ("max sub-streams reached") and those records never arrive, and each
//! stream costs a negotiation for one record. An outbox per peer keeps them instead.
//!
//! Rules:
//! 1. Records for a peer wait in its outbox, in the order they came. A record of a node whose
//!    record already waits replaces it in place: only the newest is worth sending.
//! 2. At most [`MAX_IN_FLIGHT`] pushes to one peer are in flight, each with up to
//!    [`MAX_RECORDS_PER_MESSAGE`] waiting records: an idle peer gets a record at once, a busy
//!    one gets them batched.
//! 3. An answered or failed push frees its slot, and the next batch goes at once. A failed
//!    push is not sent again: the peer asks for records when it connects anew, and newer
//!    records come with later pushes.
//! 4. An outbox holds at most `capacity` records (the table's capacity: the whole table fits);
//!    beyond, the oldest waiting record goes.
//! 5. A peer's outbox goes when its last connection closes.
//!
//! The state is bounded by the peers we gossip to times `capacity`, and the pushes in flight.

use std::collections::{HashMap, VecDeque};

use enr::NodeId;
use libp2p::PeerId;
use libp2p::request_response::OutboundRequestId;

use super::protocol::MAX_RECORDS_PER_MESSAGE;

/// Rule 2: pushes in flight per peer, well under the connection's stream limit, which the
/// announcements and record requests share.
pub(crate) const MAX_IN_FLIGHT: usize = 4;

#[derive(Debug, Default)]
struct Outbox {
    waiting: VecDeque<(NodeId, Vec<u8>)>,
    in_flight: usize,
}

/// Every peer's outbox. See the module doc.
#[derive(Debug)]
pub(crate) struct Outboxes {
    capacity: usize,
    boxes: HashMap<PeerId, Outbox>,
    pushes: HashMap<OutboundRequestId, PeerId>,
}

impl Outboxes {
    /// Outboxes of at most `capacity` records each (rule 4).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            boxes: HashMap::new(),
            pushes: HashMap::new(),
        }
    }

    /// `bytes`, the record of `node`, waits for `peer` (rules 1 and 4).
    pub(crate) fn put(&mut self, peer: PeerId, node: NodeId, bytes: Vec<u8>) {
        let outbox = self.boxes.entry(peer).or_default();
        if let Some(slot) = outbox.waiting.iter_mut().find(|(n, _)| *n == node) {
            slot.1 = bytes;
            return;
        }
        if outbox.waiting.len() >= self.capacity {
            outbox.waiting.pop_front();
        }
        outbox.waiting.push_back((node, bytes));
    }

    /// The next batch for `peer`, when a slot is free and records wait (rule 2). The caller
    /// sends it and reports the request with [`Outboxes::sent`].
    pub(crate) fn next_batch(&mut self, peer: &PeerId) -> Option<Vec<Vec<u8>>> {
        let outbox = self.boxes.get_mut(peer)?;
        if outbox.in_flight >= MAX_IN_FLIGHT || outbox.waiting.is_empty() {
            return None;
        }
        let n = outbox.waiting.len().min(MAX_RECORDS_PER_MESSAGE);
        Some(outbox.waiting.drain(..n).map(|(_, b)| b).collect())
    }

    /// The batch taken for `peer` went out as request `id`.
    pub(crate) fn sent(&mut self, peer: PeerId, id: OutboundRequestId) {
        if let Some(outbox) = self.boxes.get_mut(&peer) {
            outbox.in_flight += 1;
            self.pushes.insert(id, peer);
        }
    }

    /// Request `id` was answered or failed: when it was a push, its slot is free (rule 3) and
    /// its peer is returned, to send the next batch.
    pub(crate) fn done(&mut self, id: &OutboundRequestId) -> Option<PeerId> {
        let peer = self.pushes.remove(id)?;
        let outbox = self.boxes.get_mut(&peer)?;
        outbox.in_flight = outbox.in_flight.saturating_sub(1);
        Some(peer)
    }

    /// `peer`'s last connection closed (rule 5). Its pushes in flight end as failures, which
    /// [`Outboxes::done`] then ignores.
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.boxes.remove(peer);
        self.pushes.retain(|_, p| p != peer);
    }

    /// Records waiting for `peer`.
    #[cfg(test)]
    fn waiting(&self, peer: &PeerId) -> usize {
        self.boxes.get(peer).map_or(0, |o| o.waiting.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: u8) -> NodeId {
        NodeId::new(&[n; 32])
    }

    use libp2p::request_response::{self, ProtocolSupport};

    use crate::gossip::protocol::{Codec, PROTOCOL, Request};

    /// Request ids are opaque and counted per behaviour: one behaviour hands them out, for
    /// requests to nobody (queued, never sent).
    struct Ids(request_response::Behaviour<Codec>);

    impl Ids {
        fn new() -> Self {
            Self(request_response::Behaviour::with_codec(
                Codec::default(),
                [(PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default(),
            ))
        }

        fn next(&mut self) -> OutboundRequestId {
            self.0.send_request(&PeerId::random(), Request::Find(1))
        }
    }

    #[test]
    fn an_idle_peer_gets_a_record_at_once_and_a_busy_one_gets_batches() {
        let (mut o, mut ids) = (Outboxes::new(2048), Ids::new());
        let peer = PeerId::random();
        o.put(peer, node(0), vec![0]);
        assert_eq!(o.next_batch(&peer), Some(vec![vec![0]]));
        o.sent(peer, ids.next());
        for n in 1..=100 {
            o.put(peer, node(n), vec![n]);
        }
        let mut sizes = vec![];
        while let Some(batch) = o.next_batch(&peer) {
            sizes.push(batch.len());
            o.sent(peer, ids.next());
        }
        assert_eq!(
            sizes,
            [32, 32, 32],
            "rule 2: three more slots, full batches"
        );
        assert_eq!(o.waiting(&peer), 4);
    }

    #[test]
    fn an_answer_frees_a_slot_for_the_next_batch() {
        let (mut o, mut ids) = (Outboxes::new(2048), Ids::new());
        let peer = PeerId::random();
        let mut sent = vec![];
        for n in 0..10 {
            o.put(peer, node(n), vec![n]);
            if o.next_batch(&peer).is_some() {
                let id = ids.next();
                o.sent(peer, id);
                sent.push(id);
            }
        }
        assert_eq!(sent.len(), MAX_IN_FLIGHT);
        assert_eq!(o.next_batch(&peer), None, "every slot taken");
        assert_eq!(o.done(&sent[0]), Some(peer));
        assert_eq!(o.next_batch(&peer).map(|b| b.len()), Some(6), "rule 3");
        assert_eq!(o.done(&ids.next()), None, "not a push");
    }

    #[test]
    fn a_newer_record_replaces_a_waiting_one_and_the_oldest_goes_when_full() {
        let mut o = Outboxes::new(3);
        let peer = PeerId::random();
        o.put(peer, node(1), vec![1]);
        o.put(peer, node(2), vec![2]);
        o.put(peer, node(1), vec![11]);
        o.put(peer, node(3), vec![3]);
        o.put(peer, node(4), vec![4]);
        assert_eq!(
            o.next_batch(&peer),
            Some(vec![vec![2], vec![3], vec![4]]),
            "rule 1 kept node 1 in place with its newer bytes; rule 4 then dropped it"
        );
    }

    #[test]
    fn a_gone_peer_is_forgotten() {
        let (mut o, mut ids) = (Outboxes::new(8), Ids::new());
        let peer = PeerId::random();
        o.put(peer, node(1), vec![1]);
        let id = ids.next();
        o.next_batch(&peer);
        o.sent(peer, id);
        o.put(peer, node(2), vec![2]);
        o.forget(&peer);
        assert_eq!(o.waiting(&peer), 0);
        assert_eq!(o.done(&id), None);
        assert_eq!(o.next_batch(&peer), None);
    }
}
