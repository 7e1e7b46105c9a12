//! The wire side of `/peerfind/intro/1.0.0`: message types and the request-response codec.

use enr::NodeId;
use libp2p::StreamProtocol;
use peerfind_proto::v1 as pb;

use libp2p::Multiaddr;

use crate::enr_ext;
use crate::frame::{self, ProtocolError};

/// The protocol id; the version is bumped on any incompatible change.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/peerfind/intro/1.0.0");

/// Largest frame: a 300-byte record, a 32-byte id and the framing fit in far less.
pub const MAX_MESSAGE_SIZE: usize = 1024;

/// The most LAN addresses a request may carry: one per transport and IP version.
pub const MAX_LAN_ADDRS: usize = 4;

/// A request, in peerfind's own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Requester to bootnode: "introduce me to `target`"; `record` is the requester's own.
    Ask {
        /// The target's node id.
        target: NodeId,
        /// The requester's record (RLP).
        record: Vec<u8>,
        /// The requester's LAN addresses ([`lan_addr`]), for a target behind the same NAT.
        lan: Vec<Multiaddr>,
        /// Port guessing: the requester opened many ports towards the target; spray it.
        spray: bool,
    },
    /// Bootnode to target: "Hello Alice, from Charlie (his record)".
    Introduce {
        /// The requester's record (RLP).
        record: Vec<u8>,
        /// The requester's LAN addresses: only to a target behind the same NAT.
        lan: Vec<Multiaddr>,
        /// The requester's [`Request::Ask`] `spray`.
        spray: bool,
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
            Request::Ask {
                target,
                record,
                lan,
                spray,
            } => Kind::Ask(pb::Ask {
                target_node_id: target.raw().to_vec(),
                requester_record: record,
                lan_addrs: lan.iter().map(Multiaddr::to_vec).collect(),
                spray,
            }),
            Request::Introduce { record, lan, spray } => Kind::Introduce(pb::Introduce {
                requester_record: record,
                lan_addrs: lan.iter().map(Multiaddr::to_vec).collect(),
                spray,
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
                    lan: lan_addrs(ask.lan_addrs)?,
                    spray: ask.spray,
                })
            }
            Kind::Introduce(i) => Ok(Request::Introduce {
                record: i.requester_record,
                lan: lan_addrs(i.lan_addrs)?,
                spray: i.spray,
            }),
        }
    }
}

/// Whether `addr` may travel as a LAN address: a plain TCP or QUIC address (no `/p2p`) on a
/// private IPv4 (RFC 1918) or unique-local IPv6 address. Anything else would let a requester
/// point the target's dial at the public internet, at the target's own host, or at a link
/// no one else shares.
pub fn lan_addr(addr: &Multiaddr) -> bool {
    let Some((ip, _, _)) = enr_ext::socket_of(addr) else {
        return false;
    };
    let plain = !addr
        .iter()
        .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2p(_)));
    plain
        && match ip {
            std::net::IpAddr::V4(ip) => ip.is_private(),
            std::net::IpAddr::V6(ip) => ip.is_unique_local(),
        }
}

/// The LAN addresses of a request: at most [`MAX_LAN_ADDRS`], each one [`lan_addr`] takes.
fn lan_addrs(raw: Vec<Vec<u8>>) -> Result<Vec<Multiaddr>, ProtocolError> {
    let invalid = ProtocolError::InvalidField { field: "lan_addrs" };
    if raw.len() > MAX_LAN_ADDRS {
        return Err(invalid);
    }
    raw.into_iter()
        .map(|bytes| {
            Multiaddr::try_from(bytes)
                .ok()
                .filter(lan_addr)
                .ok_or_else(|| invalid.clone())
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_field_is_named_in_the_refusal() {
        let ask = pb::IntroRequest {
            kind: Some(pb::intro_request::Kind::Ask(pb::Ask {
                target_node_id: vec![1, 2, 3],
                requester_record: vec![],
                lan_addrs: vec![],
                spray: false,
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

    #[test]
    fn only_a_few_private_plain_addresses_pass_as_lan_addresses() {
        let ok: Vec<Multiaddr> = [
            "/ip4/192.168.1.3/tcp/9000",
            "/ip4/10.0.0.7/udp/9000/quic-v1",
            "/ip6/fd00::3/tcp/9000",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let raw = |addrs: &[Multiaddr]| addrs.iter().map(Multiaddr::to_vec).collect::<Vec<_>>();
        assert_eq!(lan_addrs(raw(&ok)), Ok(ok.clone()));
        let invalid = Err(ProtocolError::InvalidField { field: "lan_addrs" });
        for bad in [
            "/ip4/198.51.100.7/tcp/9000",
            "/ip4/127.0.0.1/tcp/9000",
            "/ip4/169.254.1.1/tcp/9000",
            "/ip4/192.168.1.3/tcp/9000/p2p/12D3KooWPjceQrSwdWXPyLLeABRXmuqt69Rg3sBYbU1Nft9HyQ6X",
            "/ip4/192.168.1.3/udp/9000",
            "/dns4/lan.example/tcp/9000",
        ] {
            let bad: Multiaddr = bad.parse().unwrap();
            assert_eq!(lan_addrs(raw(std::slice::from_ref(&bad))), invalid, "{bad}");
        }
        assert_eq!(
            lan_addrs(vec![vec![0xff, 0x01]]),
            invalid,
            "not a multiaddr"
        );
        let five = vec![ok[0].clone(); MAX_LAN_ADDRS + 1];
        assert_eq!(lan_addrs(raw(&five)), invalid, "too many");
    }
}
