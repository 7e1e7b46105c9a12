//! The guard in a transport: [`Guarded`] wraps TCP's or QUIC's raw transport and asks the
//! guard before each dial it would make, and the DNS transport above them before it resolves
//! a name. Below every behaviour and above the socket, it is
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
/// dials (TCP's, QUIC's, or names for DNS): the others go to it unvetted, for it to decline or
/// pass down, so that the guard counts each dial once.
pub struct Guarded<T: Transport> {
    inner: T,
    guard: Shared,
    handles: fn(&Multiaddr) -> bool,
    /// A refusal as the inner transport's error.
    refused: fn(io::Error) -> T::Error,
}

impl<T: Transport> Guarded<T> {
    /// `inner`, vetted by `guard` for the addresses `handles` accepts; a refusal is reported
    /// as `refused` makes it.
    pub fn new(
        inner: T,
        guard: Shared,
        handles: fn(&Multiaddr) -> bool,
        refused: fn(io::Error) -> T::Error,
    ) -> Self {
        Self {
            inner,
            guard,
            handles,
            refused,
        }
    }
}

impl<T> Transport for Guarded<T>
where
    T: Transport + Unpin,
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
            return Err(TransportError::Other((self.refused)(error)));
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

/// Whether `addr` starts with a DNS name (`/dns`, `/dns4`, `/dns6`, `/dnsaddr`) and is not
/// relayed: what the DNS transport resolves.
pub fn name(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    matches!(
        addr.iter().next(),
        Some(Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) | Protocol::Dnsaddr(_))
    ) && !addr.iter().any(|p| p == Protocol::P2pCircuit)
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
