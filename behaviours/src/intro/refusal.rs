//! Why an introduction request was refused, each reason with a stable label for counters and
//! the [`Outcome`] the refusal is answered with; and how refusals are logged without a log
//! line per message.
//!
//! Separate from `behaviour.rs`, as the ENR exchange's violations are: these are the
//! protocol's refusals, reported in [`super::Event::Refused`] and counted by label, apart from
//! the rules that find them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::protocol::Outcome;
use crate::enr_ext::RecordError;
use crate::frame::ProtocolError;

/// Why a record in a request was refused ([`Outcome::BadRecord`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRecord {
    /// Not a valid record.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// An ask carried another node's record than the requester's.
    #[error("the record is {record_peer}'s, not the requester's")]
    NotTheRequesters {
        /// Whose record it was.
        record_peer: PeerId,
    },
    /// Nothing in the record can be dialed.
    #[error("the record has no address to dial")]
    NoAddress,
    /// An ask's record names an IP that none of the requester's direct connections comes
    /// from (intro rule 2): the bootnode cannot vouch for it.
    #[error("the record names {named}, which the bootnode does not see the requester at")]
    NotObserved {
        /// The IP the record names.
        named: IpAddr,
    },
}

/// Why a request was refused. Each is answered with its [`Refusal::outcome`], reported, and
/// counted by [`Refusal::label`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// An ask to a node that does not serve introductions (not a bootnode).
    #[error("not a bootnode")]
    NotServing,
    /// An `Introduce` from a peer that is not one of our configured bootnodes (rule 1).
    #[error("introductions are taken only from the configured bootnodes")]
    NotFromBootnode,
    /// The request broke the wire format.
    #[error("{0}")]
    Wire(#[from] ProtocolError),
    /// Too many asks from the requester's IP group (rule 3).
    #[error("too many asks from the requester's network")]
    IpGroupLimited,
    /// Too many asks from the requester (rule 3).
    #[error("too many asks")]
    RequesterLimited,
    /// Too many introductions from this bootnode (rule 3).
    #[error("too many introductions")]
    IntroducerLimited,
    /// Too many introductions to the target lately, or too many in flight.
    #[error("target busy")]
    TargetBusy,
    /// The requester's record (rules 2 and 4).
    #[error("{0}")]
    BadRecord(#[from] BadRecord),
    /// The requester asked to be introduced to itself.
    #[error("asked for itself")]
    AskedForItself,
    /// The bootnode knows no node with that id.
    #[error("unknown target {0}")]
    UnknownTarget(String),
    /// The bootnode knows the target but is not connected to it.
    #[error("target {0} not connected")]
    TargetNotConnected(String),
}

impl Refusal {
    /// A short stable label, for counters and metrics; prefixed `intro_`, since the node
    /// counts them beside the ENR exchange's.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::NotServing => "intro_not_serving",
            Refusal::NotFromBootnode => "intro_not_from_bootnode",
            Refusal::Wire(_) => "intro_wire",
            Refusal::IpGroupLimited => "intro_rate_limited_ip_group",
            Refusal::RequesterLimited => "intro_rate_limited_requester",
            Refusal::IntroducerLimited => "intro_rate_limited_introducer",
            Refusal::TargetBusy => "intro_target_busy",
            Refusal::BadRecord(BadRecord::Record(RecordError::InvalidSignature)) => {
                "intro_bad_signature"
            }
            Refusal::BadRecord(BadRecord::Record(RecordError::TooLarge { .. })) => {
                "intro_oversized_record"
            }
            Refusal::BadRecord(BadRecord::Record(_)) => "intro_malformed_record",
            Refusal::BadRecord(BadRecord::NotTheRequesters { .. }) => "intro_forged",
            Refusal::BadRecord(BadRecord::NoAddress) => "intro_no_address",
            Refusal::BadRecord(BadRecord::NotObserved { .. }) => "intro_address_not_observed",
            Refusal::AskedForItself => "intro_asked_for_itself",
            Refusal::UnknownTarget(_) => "intro_unknown_target",
            Refusal::TargetNotConnected(_) => "intro_target_not_connected",
        }
    }

    /// What the refusal is answered with. The wire has no outcome for "not from a bootnode";
    /// its nearest, "target unreachable", tells a requester whose bootnode the target does
    /// not take introductions from what it needs to know: this way does not reach it.
    pub fn outcome(&self) -> Outcome {
        match self {
            Refusal::NotServing | Refusal::UnknownTarget(_) => Outcome::UnknownTarget,
            Refusal::TargetNotConnected(_) => Outcome::TargetNotConnected,
            Refusal::NotFromBootnode => Outcome::TargetUnreachable,
            Refusal::IpGroupLimited
            | Refusal::RequesterLimited
            | Refusal::IntroducerLimited
            | Refusal::TargetBusy => Outcome::RateLimited,
            Refusal::Wire(_) | Refusal::BadRecord(_) | Refusal::AskedForItself => {
                Outcome::BadRecord
            }
        }
    }

    /// Whether the request broke a rule, and so counts as a rejected input. An ask for a
    /// target the bootnode does not hold is an honest miss (records travel by gossip, and
    /// may be gone by the time one is asked for), not counted.
    pub fn is_rejection(&self) -> bool {
        !matches!(
            self,
            Refusal::UnknownTarget(_) | Refusal::TargetNotConnected(_)
        )
    }
}

/// How often one reason is logged at warn; the others in between only at debug.
pub(super) const WARN_EVERY: Duration = Duration::from_secs(60);

/// Which refusals get a warn line: at most one per label per [`WARN_EVERY`], carrying how many
/// of that label came since the last one. Bounded by the fixed set of labels.
#[derive(Debug, Default)]
pub(super) struct WarnGate {
    /// Per label: when it was last logged at warn, and how many came since.
    last: HashMap<&'static str, (Instant, u64)>,
}

impl WarnGate {
    /// Whether a refusal with `label` is logged at warn now; if so, with how many of that
    /// label were logged only at debug since the last warn.
    pub(super) fn pass(&mut self, label: &'static str, now: Instant) -> Option<u64> {
        match self.last.get_mut(label) {
            Some((at, quiet)) if now.saturating_duration_since(*at) < WARN_EVERY => {
                *quiet += 1;
                None
            }
            Some((at, quiet)) => {
                let since = *quiet;
                (*at, *quiet) = (now, 0);
                Some(since)
            }
            None => {
                self.last.insert(label, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_warned_about_once_a_minute_with_the_count_in_between() {
        let t0 = Instant::now();
        let mut gate = WarnGate::default();
        assert_eq!(gate.pass("intro_not_from_bootnode", t0), Some(0));
        for s in 1..=5 {
            let now = t0 + Duration::from_secs(s);
            assert_eq!(gate.pass("intro_not_from_bootnode", now), None);
        }
        assert_eq!(gate.pass("intro_wire", t0), Some(0), "per label");
        assert_eq!(
            gate.pass("intro_not_from_bootnode", t0 + WARN_EVERY),
            Some(5)
        );
        assert_eq!(gate.pass("intro_not_from_bootnode", t0 + WARN_EVERY), None);
    }

    #[test]
    fn only_honest_misses_are_not_counted_as_rejections() {
        assert!(!Refusal::UnknownTarget("ab".into()).is_rejection());
        assert!(!Refusal::TargetNotConnected("ab".into()).is_rejection());
        assert!(Refusal::NotFromBootnode.is_rejection());
        assert_eq!(
            Refusal::BadRecord(BadRecord::NotObserved {
                named: [127, 0, 0, 2].into()
            })
            .label(),
            "intro_address_not_observed"
        );
        assert_eq!(
            Refusal::NotFromBootnode.outcome(),
            Outcome::TargetUnreachable
        );
    }
}
