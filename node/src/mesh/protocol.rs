//! The wire side of `/peerfind/mesh/1.0.0`, admission to the bootnodes' mesh: one proof per
//! stream, answered with a verdict (`proto/peerfind/v1/mesh.proto`).

use libp2p::StreamProtocol;
use peerfind_behaviours::frame::{self, ProtocolError};
use peerfind_proto::v1 as pb;

use super::members::Verdict;
use super::secret::{Proof, SECRET_LEN};

/// The protocol id; the version is bumped on any incompatible change.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/peerfind/mesh/1.0.0");

/// Largest frame: a 32-byte proof or a verdict, with the framing, fit in far less.
pub const MAX_MESSAGE_SIZE: usize = 128;

/// A request, in peerfind's own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// "I hold the mesh secret": the sender's proof for the receiver.
    Prove(Proof),
    /// A request that broke the wire rules, handed up so it is answered and counted.
    Invalid(ProtocolError),
}

/// The codec for libp2p's request-response behaviour: [`frame::Codec`] with this protocol's
/// messages and cap.
pub type Codec = frame::Codec<Request, Verdict, pb::MeshProof, pb::MeshAnswer, MAX_MESSAGE_SIZE>;

impl From<ProtocolError> for Request {
    fn from(violation: ProtocolError) -> Self {
        Request::Invalid(violation)
    }
}

impl TryFrom<pb::MeshProof> for Request {
    type Error = ProtocolError;

    fn try_from(msg: pb::MeshProof) -> Result<Self, Self::Error> {
        <[u8; SECRET_LEN]>::try_from(msg.mac.as_slice())
            .map(Request::Prove)
            .map_err(|_| ProtocolError::InvalidField { field: "mac" })
    }
}

impl From<Request> for pb::MeshProof {
    fn from(req: Request) -> Self {
        match req {
            Request::Prove(mac) => pb::MeshProof { mac: mac.to_vec() },
            // Never sent: an invalid request only exists on the receiving side.
            Request::Invalid(_) => pb::MeshProof { mac: Vec::new() },
        }
    }
}

impl TryFrom<pb::MeshAnswer> for Verdict {
    type Error = ProtocolError;

    fn try_from(msg: pb::MeshAnswer) -> Result<Self, Self::Error> {
        match pb::MeshVerdict::try_from(msg.verdict) {
            Ok(pb::MeshVerdict::Admitted) => Ok(Verdict::Admitted),
            Ok(pb::MeshVerdict::Refused) => Ok(Verdict::Refused),
            Ok(pb::MeshVerdict::NoSecret) => Ok(Verdict::NoSecret),
            Ok(pb::MeshVerdict::Unspecified) | Err(_) => Err(ProtocolError::UnknownValue {
                field: "verdict",
                value: msg.verdict,
            }),
        }
    }
}

impl From<Verdict> for pb::MeshAnswer {
    fn from(verdict: Verdict) -> Self {
        let verdict = match verdict {
            Verdict::Admitted => pb::MeshVerdict::Admitted,
            Verdict::Refused => pb::MeshVerdict::Refused,
            Verdict::NoSecret => pb::MeshVerdict::NoSecret,
        };
        pb::MeshAnswer {
            verdict: verdict as i32,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_is_32_bytes_and_a_verdict_never_defaults() {
        let proof = Request::Prove([7; SECRET_LEN]);
        assert_eq!(
            Request::try_from(pb::MeshProof::from(proof.clone())),
            Ok(proof)
        );
        assert_eq!(
            Request::try_from(pb::MeshProof { mac: vec![7; 31] }),
            Err(ProtocolError::InvalidField { field: "mac" })
        );
        for verdict in [Verdict::Admitted, Verdict::Refused, Verdict::NoSecret] {
            assert_eq!(
                Verdict::try_from(pb::MeshAnswer::from(verdict)),
                Ok(verdict)
            );
        }
        // An empty answer is no admission.
        assert!(Verdict::try_from(pb::MeshAnswer::default()).is_err());
    }
}
