//! Length-prefixed protobuf frames, the wire format of every peerfind protocol: an unsigned
//! varint length, then that many bytes of one protobuf message. The cap is checked before
//! anything is allocated, so a peer can never make us buffer more than a protocol allows.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A frame or message that breaks a protocol's rules. The stream carrying it is dropped.
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
pub(crate) async fn read_request_frame<T, M, R>(
    io: &mut T,
    cap: usize,
) -> io::Result<Result<R, ProtocolError>>
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
