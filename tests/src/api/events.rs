//! The events a node delivered to an [`super::Api`]'s watcher, and the questions tests ask of
//! them (which records of a peer arrived, which hole punches ended, ...).
//!
//! Separate from `mod.rs`, which connects, keeps the events and waits: this is only what is read
//! out of them, one method per kind of event a test looks for.

use peerfind_proto::v1 as pb;

/// Every event a watcher delivered, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Events(pub Vec<pb::Event>);

impl Events {
    /// Every event's kind, oldest first.
    pub fn kinds(&self) -> impl Iterator<Item = &pb::event::Kind> {
        self.0.iter().filter_map(|e| e.kind.as_ref())
    }

    /// Every NAT status change delivered, oldest first.
    pub fn nat_changes(&self) -> Vec<&pb::NatStatusChanged> {
        self.kinds()
            .filter_map(|k| match k {
                pb::event::Kind::NatStatusChanged(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    /// Every record of `peer_id` delivered (learned or updated) as `(seq, nat)`, oldest first.
    pub fn records_heard_of(&self, peer_id: &str) -> Vec<(u64, bool)> {
        self.kinds()
            .filter_map(|k| match k {
                pb::event::Kind::RecordLearned(r) if r.peer_id == peer_id => Some((r.seq, r.nat)),
                pb::event::Kind::RecordUpdated(r) if r.peer_id == peer_id => Some((r.seq, r.nat)),
                _ => None,
            })
            .collect()
    }

    /// Every hole punch with `peer_id` that ended, oldest first.
    pub fn hole_punches_with(&self, peer_id: &str) -> Vec<&pb::HolePunch> {
        self.kinds()
            .filter_map(|k| match k {
                pb::event::Kind::HolePunch(h) if h.peer_id == peer_id => Some(h),
                _ => None,
            })
            .collect()
    }

    /// Every change of the best connection to `peer_id`, oldest first.
    pub fn connection_changes_with(&self, peer_id: &str) -> Vec<&pb::ConnectionChanged> {
        self.kinds()
            .filter_map(|k| match k {
                pb::event::Kind::ConnectionChanged(c) if c.peer_id == peer_id => Some(c),
                _ => None,
            })
            .collect()
    }

    /// Every record of `peer_id` delivered (learned or updated) as `(seq, nat, from)`: `from`
    /// is the PeerId of the node that sent it. Oldest first.
    pub fn records_of_with_sender(&self, peer_id: &str) -> Vec<(u64, bool, &str)> {
        self.kinds()
            .filter_map(|k| match k {
                pb::event::Kind::RecordLearned(r) if r.peer_id == peer_id => {
                    Some((r.seq, r.nat, r.from.as_str()))
                }
                pb::event::Kind::RecordUpdated(r) if r.peer_id == peer_id => {
                    Some((r.seq, r.nat, r.from.as_str()))
                }
                _ => None,
            })
            .collect()
    }

    /// Every connection to or from `peer_id` that opened, oldest first.
    pub fn connections_opened_with(&self, peer_id: &str) -> Vec<&pb::ConnectionOpened> {
        self.kinds()
            .filter_map(|k| match k {
                pb::event::Kind::ConnectionOpened(c) if c.peer_id == peer_id => Some(c),
                _ => None,
            })
            .collect()
    }

    /// The first connection with `peer_id` that opened in `direction`.
    pub fn connection_opened(
        &self,
        peer_id: &str,
        direction: pb::Direction,
    ) -> Option<pb::ConnectionOpened> {
        self.connections_opened_with(peer_id)
            .into_iter()
            .find(|c| c.direction() == direction)
            .cloned()
    }

    /// Every dial that failed, oldest first.
    pub fn dials_failed(&self) -> Vec<&pb::DialFailed> {
        self.kinds()
            .filter_map(|k| match k {
                pb::event::Kind::DialFailed(d) => Some(d),
                _ => None,
            })
            .collect()
    }

    /// Every change of the node's own record, oldest first.
    pub fn own_records(&self) -> Vec<&pb::OwnRecordChanged> {
        self.kinds()
            .filter_map(|k| match k {
                pb::event::Kind::OwnRecordChanged(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// Every AutoNAT test of the node's addresses that ended, oldest first.
    pub fn autonat_tests(&self) -> Vec<&pb::AutonatTested> {
        self.kinds()
            .filter_map(|k| match k {
                pb::event::Kind::AutonatTested(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    /// Every change of the node's port mapping, oldest first.
    pub fn port_mapping_changes(&self) -> Vec<&pb::PortMappingChanged> {
        self.kinds()
            .filter_map(|k| match k {
                pb::event::Kind::PortMappingChanged(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    /// Every relay reservation accepted or lost, oldest first.
    pub fn relay_reservations(&self) -> Vec<&pb::RelayReservation> {
        self.kinds()
            .filter_map(|k| match k {
                pb::event::Kind::RelayReservation(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// Every connection to `peer_id` whose first ping was answered, as whether it is relayed,
    /// oldest first.
    pub fn alive_with(&self, peer_id: &str) -> Vec<&pb::ConnectionAlive> {
        self.kinds()
            .filter_map(|k| match k {
                pb::event::Kind::ConnectionAlive(a) if a.peer_id == peer_id => Some(a),
                _ => None,
            })
            .collect()
    }

    /// How many events the watcher missed by reading too slowly (it reads at once, so 0).
    pub fn missed(&self) -> u64 {
        self.kinds()
            .map(|k| match k {
                pb::event::Kind::Lagged(l) => l.missed,
                _ => 0,
            })
            .sum()
    }
}
