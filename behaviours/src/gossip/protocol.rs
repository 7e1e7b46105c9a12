//! The wire side of `/peerfind/enr/1.0.0`: message types and the request-response codec.
//!
//! Each stream carries one request and one response, each a frame: an unsigned-varint length,
//! then that many bytes of protobuf (`peerfind.v1.EnrRequest` / `EnrResponse`). The codec
//! enforces the size caps before it allocates, so a peer cannot make us buffer more than
//! [`MAX_MESSAGE_SIZE`] bytes per stream.

use libp2p::StreamProtocol;
use peerfind_proto::v1 as pb;

use crate::frame;
pub use crate::frame::{ProtocolError, protocol_error};

/// The protocol id; the version is bumped on any incompatible change.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/peerfind/enr/1.0.0");

/// Largest frame accepted or sent: 64 KiB holds [`MAX_RECORDS_PER_MESSAGE`] records of 300
/// bytes with room to spare, and bounds what one stream can make us buffer.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// Most records in one message. Enough for a useful sample; more is a flood.
pub const MAX_RECORDS_PER_MESSAGE: usize = 32;

/// A request, in peerfind's own terms. Records travel as raw RLP bytes and are decoded (and
/// verified) by the behaviour, which knows who sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// "Hello (ENR …)": the sender's own record.
    Announce(Vec<u8>),
    /// "Meet Alice (ENR …)": records of other nodes.
    Push(Vec<Vec<u8>>),
    /// A request for up to this many records.
    Find(u32),
    /// A request that broke the wire rules. The codec hands it up instead of failing the
    /// stream, so the behaviour can log, count and answer it with a refusal; libp2p's
    /// request-response would otherwise drop a failed read without telling anyone.
    Invalid(ProtocolError),
}

/// A response, in peerfind's own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The request was taken.
    Ack,
    /// Records answering [`Request::Find`].
    Records(Vec<Vec<u8>>),
    /// The request was refused, with a reason for the sender's logs.
    Reject(String),
}

/// The codec for libp2p's request-response behaviour: [`frame::Codec`] with this protocol's
/// messages and cap.
pub type Codec = frame::Codec<Request, Response, pb::EnrRequest, pb::EnrResponse, MAX_MESSAGE_SIZE>;

impl From<ProtocolError> for Request {
    fn from(violation: ProtocolError) -> Self {
        Request::Invalid(violation)
    }
}

fn check_count(records: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, ProtocolError> {
    if records.len() > MAX_RECORDS_PER_MESSAGE {
        return Err(ProtocolError::TooManyRecords {
            count: records.len(),
            cap: MAX_RECORDS_PER_MESSAGE,
        });
    }
    Ok(records)
}

impl TryFrom<pb::EnrRequest> for Request {
    type Error = ProtocolError;

    fn try_from(msg: pb::EnrRequest) -> Result<Self, Self::Error> {
        use pb::enr_request::Kind;
        match msg.kind.ok_or(ProtocolError::Empty)? {
            Kind::Announce(a) => Ok(Request::Announce(a.record)),
            Kind::Push(p) => Ok(Request::Push(check_count(p.records)?)),
            Kind::Find(f) => Ok(Request::Find(f.max)),
        }
    }
}

impl From<Request> for pb::EnrRequest {
    fn from(req: Request) -> Self {
        use pb::enr_request::Kind;
        let kind = match req {
            Request::Announce(record) => Kind::Announce(pb::Announce { record }),
            Request::Push(records) => Kind::Push(pb::Push { records }),
            Request::Find(max) => Kind::Find(pb::FindRecords { max }),
            // Never sent: an invalid request only exists on the receiving side.
            Request::Invalid(_) => return pb::EnrRequest { kind: None },
        };
        pb::EnrRequest { kind: Some(kind) }
    }
}

impl TryFrom<pb::EnrResponse> for Response {
    type Error = ProtocolError;

    fn try_from(msg: pb::EnrResponse) -> Result<Self, Self::Error> {
        use pb::enr_response::Kind;
        match msg.kind.ok_or(ProtocolError::Empty)? {
            Kind::Ack(_) => Ok(Response::Ack),
            Kind::Records(r) => Ok(Response::Records(check_count(r.records)?)),
            Kind::Reject(r) => Ok(Response::Reject(r.reason)),
        }
    }
}

impl From<Response> for pb::EnrResponse {
    fn from(res: Response) -> Self {
        use pb::enr_response::Kind;
        let kind = match res {
            Response::Ack => Kind::Ack(pb::Ack {}),
            Response::Records(records) => Kind::Records(pb::Records { records }),
            Response::Reject(reason) => Kind::Reject(pb::Reject { reason }),
        };
        pb::EnrResponse { kind: Some(kind) }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use futures::io::Cursor;
    use libp2p::request_response::Codec as _;

    use super::*;

    fn frame(body: &[u8], len: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        prost::encoding::encode_varint(len, &mut buf);
        buf.extend_from_slice(body);
        buf
    }

    async fn read(bytes: Vec<u8>) -> Result<Request, ProtocolError> {
        match Codec::default()
            .read_request(&PROTOCOL, &mut Cursor::new(bytes))
            .await
            .unwrap()
        {
            Request::Invalid(e) => Err(e),
            other => Ok(other),
        }
    }

    #[tokio::test]
    async fn a_truncated_stream_is_an_io_error_not_a_violation() {
        let mut bytes = frame(&[0x0a, 0x00], 5);
        bytes.truncate(3);
        assert!(
            Codec::default()
                .read_request(&PROTOCOL, &mut Cursor::new(bytes))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_request_survives_the_round_trip() {
        let req = Request::Push(vec![vec![1, 2, 3]; 3]);
        let mut buf = Cursor::new(Vec::new());
        Codec::default()
            .write_request(&PROTOCOL, &mut buf, req.clone())
            .await
            .unwrap();
        assert_eq!(read(buf.into_inner()).await.unwrap(), req);
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused_before_reading_the_body() {
        let err = read(frame(&[], MAX_MESSAGE_SIZE as u64 + 1))
            .await
            .unwrap_err();
        assert!(matches!(err, ProtocolError::TooLarge { .. }));
        let err = read(vec![0xff; 8]).await.unwrap_err();
        assert!(matches!(err, ProtocolError::TooLarge { .. }));
    }

    #[tokio::test]
    async fn garbage_is_a_malformed_message() {
        let err = read(frame(&[0xff; 10], 10)).await.unwrap_err();
        assert!(matches!(err, ProtocolError::Malformed(_)));
        let err = read(frame(&[], 0)).await.unwrap_err();
        assert_eq!(err, ProtocolError::Empty);
    }

    #[tokio::test]
    async fn too_many_records_are_refused() {
        let msg = pb::EnrRequest::from(Request::Push(vec![vec![0]; MAX_RECORDS_PER_MESSAGE + 1]));
        let body = prost::Message::encode_to_vec(&msg);
        let err = read(frame(&body, body.len() as u64)).await.unwrap_err();
        assert_eq!(
            err,
            ProtocolError::TooManyRecords {
                count: 33,
                cap: MAX_RECORDS_PER_MESSAGE
            }
        );
    }
}
