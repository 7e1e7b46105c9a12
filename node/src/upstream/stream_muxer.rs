//! The stream muxer the QUIC wrappers share: it wraps each stream of a connection in `W`,
//! told whether the other side opened it; `quic_fin` and `quic_wake` each write only their
//! stream.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};

/// A stream wrapper: `S` with something changed.
pub trait Wrap<S> {
    /// `inner`, wrapped; `inbound` when the other side opened it.
    fn wrap(inner: S, inbound: bool) -> Self;
}

/// A stream muxer whose streams are wrapped in `W`.
pub struct Muxer<M, W> {
    inner: M,
    wrap: PhantomData<fn() -> W>,
}

impl<M, W> Muxer<M, W> {
    /// `inner`, with its streams wrapped.
    pub fn new(inner: M) -> Self {
        Self {
            inner,
            wrap: PhantomData,
        }
    }
}

impl<M, W> StreamMuxer for Muxer<M, W>
where
    M: StreamMuxer + Unpin,
    M::Substream: Unpin,
    W: Wrap<M::Substream> + AsyncRead + AsyncWrite,
{
    type Substream = W;
    type Error = M::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        Pin::new(&mut self.get_mut().inner)
            .poll_inbound(cx)
            .map_ok(|stream| W::wrap(stream, true))
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        Pin::new(&mut self.get_mut().inner)
            .poll_outbound(cx)
            .map_ok(|stream| W::wrap(stream, false))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}
