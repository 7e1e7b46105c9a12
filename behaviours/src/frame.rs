//! Length-prefixed protobuf frames, the wire format of every peerfind protocol: an unsigned
//! varint length, then that many bytes of one protobuf message. The cap is checked before
//! anything is allocated, so a peer can never make us buffer more than a protocol allows.

use std::fmt;
use std::io;
use std::marker::PhantomData;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

/// A frame or message that breaks a protocol's rules. A request that does is answered with a
/// refusal that says why (see [`Codec`]); a response that does fails its stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The length prefix announces more than the protocol's cap.
    #[error("message of {len} bytes exceeds the {cap}-byte cap")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The protocol's cap.
        cap: usize,
    },
    /// The frame is not the expected protobuf message.
    #[error("malformed protobuf: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// The message has no content (an empty `oneof`) or misses a required field.
    #[error("message without content")]
    Empty,
    /// A field holds a value that cannot be what it names (a node id of the wrong length).
    #[error("invalid {field}")]
    InvalidField {
        /// The field.
        field: &'static str,
    },
    /// An enum field holds a value this version does not know.
    #[error("unknown {field} value {value}")]
    UnknownValue {
        /// The field.
        field: &'static str,
        /// The value.
        value: i32,
    },
    /// More records than the protocol allows in one message.
    #[error("{count} records exceed the cap of {cap} per message")]
    TooManyRecords {
        /// How many records the message held.
        count: usize,
        /// The protocol's cap.
        cap: usize,
    },
}

impl From<ProtocolError> for io::Error {
    fn from(e: ProtocolError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// The [`ProtocolError`] inside an I/O error from a codec, if that is what it carries.
pub fn protocol_error(e: &io::Error) -> Option<&ProtocolError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<ProtocolError>())
}

/// Reads one frame of at most `cap` bytes and decodes it as `M`.
pub(crate) async fn read_frame<T, M>(io: &mut T, cap: usize) -> io::Result<M>
where
    T: AsyncRead + Unpin + Send,
    M: prost::Message + Default,
{
    let len = read_length(io, cap).await?;
    if len > cap as u64 {
        return Err(ProtocolError::TooLarge { len, cap }.into());
    }
    let mut buf = vec![0u8; len as usize];
    io.read_exact(&mut buf).await?;
    Ok(M::decode(buf.as_slice()).map_err(ProtocolError::from)?)
}

/// Reads one request frame of at most `cap` bytes as `R`. A protocol violation comes back as
/// `Ok(Err(violation))` rather than as an I/O error: libp2p's request-response drops a failed
/// inbound read without telling the behaviour, so codecs hand violations up as requests
/// instead, to be answered, logged and counted.
async fn read_request_frame<T, M, R>(io: &mut T, cap: usize) -> io::Result<Result<R, ProtocolError>>
where
    T: AsyncRead + Unpin + Send,
    M: prost::Message + Default,
    R: TryFrom<M, Error = ProtocolError>,
{
    match read_frame::<_, M>(io, cap).await {
        Ok(msg) => Ok(R::try_from(msg)),
        Err(e) => match protocol_error(&e) {
            Some(violation) => Ok(Err(violation.clone())),
            None => Err(e),
        },
    }
}

/// Reads an unsigned varint of at most 4 bytes: enough for any cap peerfind uses, and a
/// longer one announces at least 2^28 bytes, far over any cap.
async fn read_length<T: AsyncRead + Unpin + Send>(io: &mut T, cap: usize) -> io::Result<u64> {
    let mut value = 0u64;
    for i in 0..4 {
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await?;
        value |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ProtocolError::TooLarge { len: value, cap }.into())
}

/// Writes `msg` as one frame and closes the writing side; refuses to send over `cap`.
pub(crate) async fn write_frame<T, M>(io: &mut T, msg: &M, cap: usize) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
    M: prost::Message,
{
    let len = msg.encoded_len();
    if len > cap {
        return Err(ProtocolError::TooLarge {
            len: len as u64,
            cap,
        }
        .into());
    }
    let mut buf = Vec::with_capacity(len + 3);
    prost::encoding::encode_varint(len as u64, &mut buf);
    msg.encode(&mut buf)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    io.write_all(&buf).await?;
    io.close().await
}

/// The `request_response` codec of a peerfind protocol: requests and responses travel as
/// frames of at most `MAX` bytes holding the wire messages `WReq` and `WResp`.
///
/// Each side converts from its wire message with `TryFrom` (failing with a
/// [`ProtocolError`]) and into it with `From`. A request that breaks the protocol reaches the
/// behaviour as `Req::from(violation)`, so it is answered, logged and counted there (libp2p
/// would drop it without a word); a response that does, fails the outbound request.
pub struct Codec<Req, Resp, WReq, WResp, const MAX: usize>(
    PhantomData<Messages<Req, Resp, WReq, WResp>>,
);

/// The message types a [`Codec`] carries, as a type that owns none of them (so the codec is
/// `Send`, `Sync` and `Copy`-cheap whatever they are).
type Messages<Req, Resp, WReq, WResp> = fn() -> (Req, Resp, WReq, WResp);

impl<Req, Resp, WReq, WResp, const MAX: usize> Default for Codec<Req, Resp, WReq, WResp, MAX> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<Req, Resp, WReq, WResp, const MAX: usize> Clone for Codec<Req, Resp, WReq, WResp, MAX> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<Req, Resp, WReq, WResp, const MAX: usize> fmt::Debug for Codec<Req, Resp, WReq, WResp, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Codec(frames of at most {MAX} bytes)")
    }
}

impl<Req, Resp, WReq, WResp, const MAX: usize> libp2p::request_response::Codec
    for Codec<Req, Resp, WReq, WResp, MAX>
where
    Req: TryFrom<WReq, Error = ProtocolError> + From<ProtocolError> + Send,
    Resp: TryFrom<WResp, Error = ProtocolError> + Send,
    WReq: prost::Message + Default + From<Req>,
    WResp: prost::Message + Default + From<Resp>,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        let request = read_request_frame::<_, WReq, Req>(io, MAX).await?;
        Ok(request.unwrap_or_else(Req::from))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        let msg: WResp = read_frame(io, MAX).await?;
        Ok(Resp::try_from(msg)?)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Req) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &WReq::from(req), MAX).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Resp,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &WResp::from(res), MAX).await
    }
}
