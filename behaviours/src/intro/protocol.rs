//! The wire side of `/peerfind/intro/1.0.0`: message types and the request-response codec.

use enr::NodeId;
use libp2p::StreamProtocol;
use peerfind_proto::v1 as pb;

use crate::frame::{self, ProtocolError};

/// The protocol id; the version is bumped on any incompatible change.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/peerfind/intro/1.0.0");

/// Largest frame: a 300-byte record, a 32-byte id and the framing fit in far less.
pub const MAX_MESSAGE_SIZE: usize = 1024;

/// A request, in peerfind's own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Requester to bootnode: "introduce me to `target`"; `record` is the requester's own.
    Ask {
        /// The target's node id.
        target: NodeId,
        /// The requester's record (RLP).
        record: Vec<u8>,
    },
    /// Bootnode to target: "Hello Alice, from Charlie (his record)".
    Introduce {
        /// The requester's record (RLP).
        record: Vec<u8>,
    },
    /// A request that broke the wire rules, handed up so it is answered and counted (see the
    /// gossip codec for why).
    Invalid(ProtocolError),
}

/// How an introduction ended, as the requester learns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Outcome {
    /// The target accepted and is dialing the requester.
    #[error("the target is dialing us")]
    Dialing,
    /// The bootnode knows no node with that id.
    #[error("unknown target")]
    UnknownTarget,
    /// The bootnode knows the target but is not connected to it.
    #[error("target not connected to the bootnode")]
    TargetNotConnected,
    /// Too many introductions from this requester or to this target lately.
    #[error("rate limited")]
    RateLimited,
    /// The requester's record is invalid, not its own, has no address, or names an IP the
    /// bootnode does not see the requester at.
    #[error("bad record")]
    BadRecord,
    /// The target did not answer the bootnode, or takes no introductions from it (not one of
    /// its configured bootnodes).
    #[error("target unreachable")]
    TargetUnreachable,
}

impl Outcome {
    /// A short stable label, for counters and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Dialing => "dialing",
            Outcome::UnknownTarget => "unknown_target",
            Outcome::TargetNotConnected => "target_not_connected",
            Outcome::RateLimited => "rate_limited",
            Outcome::BadRecord => "bad_record",
            Outcome::TargetUnreachable => "target_unreachable",
        }
    }
}

/// A response: the outcome and a free-text detail for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// How it ended.
    pub outcome: Outcome,
    /// Why, for people.
    pub detail: String,
}

/// The codec for libp2p's request-response behaviour: [`frame::Codec`] with this protocol's
/// messages and cap.
pub type Codec =
    frame::Codec<Request, Response, pb::IntroRequest, pb::IntroResponse, MAX_MESSAGE_SIZE>;

impl From<ProtocolError> for Request {
    fn from(violation: ProtocolError) -> Self {
        Request::Invalid(violation)
    }
}

impl From<Request> for pb::IntroRequest {
    fn from(req: Request) -> Self {
        use pb::intro_request::Kind;
        let kind = match req {
            Request::Ask { target, record } => Kind::Ask(pb::Ask {
                target_node_id: target.raw().to_vec(),
                requester_record: record,
            }),
            Request::Introduce { record } => Kind::Introduce(pb::Introduce {
                requester_record: record,
            }),
            // Never sent: an invalid request only exists on the receiving side.
            Request::Invalid(_) => return pb::IntroRequest { kind: None },
        };
        pb::IntroRequest { kind: Some(kind) }
    }
}

impl TryFrom<pb::IntroResponse> for Response {
    type Error = ProtocolError;

    fn try_from(msg: pb::IntroResponse) -> Result<Self, Self::Error> {
        let outcome = match pb::Outcome::try_from(msg.outcome) {
            Ok(pb::Outcome::Dialing) => Outcome::Dialing,
            Ok(pb::Outcome::UnknownTarget) => Outcome::UnknownTarget,
            Ok(pb::Outcome::TargetNotConnected) => Outcome::TargetNotConnected,
            Ok(pb::Outcome::RateLimited) => Outcome::RateLimited,
            Ok(pb::Outcome::BadRecord) => Outcome::BadRecord,
            Ok(pb::Outcome::TargetUnreachable) => Outcome::TargetUnreachable,
            Err(_) => {
                return Err(ProtocolError::UnknownValue {
                    field: "outcome",
                    value: msg.outcome,
                });
            }
        };
        Ok(Response {
            outcome,
            detail: msg.detail,
        })
    }
}

impl From<Response> for pb::IntroResponse {
    fn from(res: Response) -> Self {
        let outcome = match res.outcome {
            Outcome::Dialing => pb::Outcome::Dialing,
            Outcome::UnknownTarget => pb::Outcome::UnknownTarget,
            Outcome::TargetNotConnected => pb::Outcome::TargetNotConnected,
            Outcome::RateLimited => pb::Outcome::RateLimited,
            Outcome::BadRecord => pb::Outcome::BadRecord,
            Outcome::TargetUnreachable => pb::Outcome::TargetUnreachable,
        };
        pb::IntroResponse {
            outcome: outcome as i32,
            detail: res.detail,
        }
    }
}

impl TryFrom<pb::IntroRequest> for Request {
    type Error = ProtocolError;

    fn try_from(msg: pb::IntroRequest) -> Result<Self, Self::Error> {
        use pb::intro_request::Kind;
        match msg.kind.ok_or(ProtocolError::Empty)? {
            Kind::Ask(ask) => {
                // Exactly 32 bytes: `NodeId::parse` would pad a shorter id with zeros.
                let raw = <[u8; 32]>::try_from(ask.target_node_id.as_slice()).map_err(|_| {
                    ProtocolError::InvalidField {
                        field: "target_node_id",
                    }
                })?;
                let target = NodeId::new(&raw);
                Ok(Request::Ask {
                    target,
                    record: ask.requester_record,
                })
            }
            Kind::Introduce(i) => Ok(Request::Introduce {
                record: i.requester_record,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_field_is_named_in_the_refusal() {
        let ask = pb::IntroRequest {
            kind: Some(pb::intro_request::Kind::Ask(pb::Ask {
                target_node_id: vec![1, 2, 3],
                requester_record: vec![],
            })),
        };
        assert_eq!(
            Request::try_from(ask),
            Err(ProtocolError::InvalidField {
                field: "target_node_id"
            })
        );
        let answer = pb::IntroResponse {
            outcome: 99,
            detail: String::new(),
        };
        let err = Response::try_from(answer).err();
        assert_eq!(
            err,
            Some(ProtocolError::UnknownValue {
                field: "outcome",
                value: 99
            })
        );
        assert_eq!(
            Request::try_from(pb::IntroRequest { kind: None }),
            Err(ProtocolError::Empty)
        );
    }
}
