//! The guard in a transport: [`Guarded`] wraps TCP's or QUIC's raw transport and asks the
//! guard before each dial it would make. Below every behaviour and above the socket, it is
//! the one place every outbound connection passes. A `NetworkBehaviour` could only refuse a
//! dial whole (`handle_pending_outbound_connection`), not one of its addresses, and never sees
//! the addresses DCUtR asks for.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use libp2p::Multiaddr;
use libp2p::core::transport::{DialOpts, ListenerId, Transport, TransportError, TransportEvent};

use super::Shared;

/// A transport whose dials the guard vets. `handles` says which addresses the inner transport
/// dials (TCP's or QUIC's): the others go to it unvetted, for it to decline, so that the
/// transport after it in the swarm's chain gets them and the guard counts each dial once.
pub struct Guarded<T> {
    inner: T,
    guard: Shared,
    handles: fn(&Multiaddr) -> bool,
}

impl<T> Guarded<T> {
    /// `inner`, vetted by `guard` for the addresses `handles` accepts.
    pub fn new(inner: T, guard: Shared, handles: fn(&Multiaddr) -> bool) -> Self {
        Self {
            inner,
            guard,
            handles,
        }
    }
}

impl<T> Transport for Guarded<T>
where
    T: Transport + Unpin,
    T::Error: From<io::Error>,
{
    type Output = T::Output;
    type Error = T::Error;
    type ListenerUpgrade = T::ListenerUpgrade;
    type Dial = T::Dial;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        self.inner.listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.inner.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        if (self.handles)(&addr)
            && let Err(refusal) = self.guard.lock().check(&addr, Instant::now())
        {
            let error = io::Error::new(io::ErrorKind::PermissionDenied, refusal);
            return Err(TransportError::Other(error.into()));
        }
        self.inner.dial(addr, opts)
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// Whether `addr` is a TCP address (`/ip4|ip6/…/tcp/…`, nothing but `/p2p` after).
pub fn tcp(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    let mut iter = addr.iter();
    matches!(iter.next(), Some(Protocol::Ip4(_) | Protocol::Ip6(_)))
        && matches!(iter.next(), Some(Protocol::Tcp(_)))
        && iter.all(|p| matches!(p, Protocol::P2p(_)))
}

/// Whether `addr` is a QUIC address (`/ip4|ip6/…/udp/…/quic-v1`, nothing but `/p2p` after).
pub fn quic(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    let mut iter = addr.iter();
    matches!(iter.next(), Some(Protocol::Ip4(_) | Protocol::Ip6(_)))
        && matches!(iter.next(), Some(Protocol::Udp(_)))
        && matches!(iter.next(), Some(Protocol::QuicV1))
        && iter.all(|p| matches!(p, Protocol::P2p(_)))
}
