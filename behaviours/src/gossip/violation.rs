//! The rules a peer's ENR message can break, each with a stable label for counters.
//!
//! Separate from `behaviour.rs`: these are the exchange's error type, reported in
//! [`super::Event::InputRejected`] and counted by label, apart from the rules that find them.

use libp2p::PeerId;

use crate::enr_ext::RecordError;
use crate::frame::ProtocolError;
use crate::table::Refused;

/// A rule a peer's message broke. Each is logged once, counted, and the message dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The frame broke the wire format (garbage, oversized, too many records).
    #[error("{0}")]
    Wire(#[from] ProtocolError),
    /// A record in the message is not a valid record.
    #[error("invalid record: {0}")]
    Record(#[from] RecordError),
    /// An announcement carried a record of another key than the connection's.
    #[error("announced a record of {record_peer}, not its own")]
    Forged {
        /// Whose record it was.
        record_peer: PeerId,
    },
    /// The table refused the record (stale or conflicting seq, or its group full).
    #[error("{0}")]
    Refused(#[from] Refused),
}

impl Violation {
    /// A short stable label, for counters and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Violation::Wire(_) => "wire",
            Violation::Record(RecordError::InvalidSignature) => "bad_signature",
            Violation::Record(RecordError::TooLarge { .. }) => "oversized_record",
            Violation::Record(_) => "malformed_record",
            Violation::Forged { .. } => "forged",
            Violation::Refused(Refused::Stale { .. }) => "stale",
            Violation::Refused(Refused::Conflict { .. }) => "conflict",
            Violation::Refused(Refused::Own) => "own",
            Violation::Refused(Refused::GroupFull { .. }) => "group_full",
        }
    }
}
