//! The node's listeners: when they are ready for the node to dial, and which of their
//! addresses a bootnode advertises.
//!
//! Rules:
//! 1. Dialing waits until every listener is ready, so that dials reuse the listen ports and
//!    peers observe the ports we listen on. A listener is ready once it reported an address;
//!    a wildcard one (0.0.0.0, ::) once it reported a routable (not loopback) one: port
//!    reuse knows an interface only after its address is reported, and a dial to a routable
//!    address through a listener known only on loopback would leave from a new port.
//! 2. A host with only loopback never reports a routable address: after [`LISTEN_GRACE`]
//!    the node is ready anyway.
//! 3. A bootnode has nobody to tell it its address: it advertises, per transport, the first
//!    address it listens on, a routable one before loopback.
//! 4. A bootnode prints and stores its record and addresses once per record seq.
//!
//! The state is one entry per listener not ready yet: bounded by `--listen`.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::core::transport::ListenerId;
use libp2p::{Multiaddr, multiaddr::Protocol};
use peerfind_behaviours::enr_ext::{self, Transport};

/// Rule 2: the longest wait for listeners to report a routable address.
pub(crate) const LISTEN_GRACE: Duration = Duration::from_secs(2);

/// The listeners' readiness and what was advertised. See the module doc.
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    /// Listeners not ready yet, with the address asked for.
    pending: HashMap<ListenerId, Multiaddr>,
    ready: bool,
    /// Rule 4: the seq of the record last printed and stored.
    advertised: Option<u64>,
}

impl Listeners {
    /// A listener was asked for at `addr`.
    pub(crate) fn requested(&mut self, id: ListenerId, addr: Multiaddr) {
        self.pending.insert(id, addr);
    }

    /// Listener `id` reported `address`. Says whether the node became ready with it (rule 1).
    pub(crate) fn reported(&mut self, id: ListenerId, address: &Multiaddr) -> bool {
        let done = self.pending.get(&id).is_some_and(|requested| {
            !is_wildcard(requested)
                || enr_ext::socket_of(address).is_some_and(|(ip, ..)| !ip.is_loopback())
        });
        if done {
            self.pending.remove(&id);
        }
        !self.ready && self.pending.is_empty() && self.set_ready()
    }

    /// Listener `id` closed: it is waited for no longer.
    pub(crate) fn closed(&mut self, id: ListenerId) {
        self.pending.remove(&id);
    }

    /// Makes the node ready (rule 1, or rule 2 after the grace); says whether it was not yet.
    pub(crate) fn set_ready(&mut self) -> bool {
        !std::mem::replace(&mut self.ready, true)
    }

    /// Whether the node is ready to dial.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready
    }

    /// The addresses asked for of the listeners not ready yet.
    pub(crate) fn pending(&self) -> Vec<&Multiaddr> {
        self.pending.values().collect()
    }

    /// Whether the record of `seq` is to be printed and stored now (rule 4).
    pub(crate) fn advertise(&mut self, seq: u64) -> bool {
        self.advertised.replace(seq) != Some(seq)
    }
}

/// Rule 3: the address a bootnode advertises for each transport, from those it listens on.
pub(crate) fn advertised(listen: &[Multiaddr]) -> HashMap<Transport, Multiaddr> {
    let mut chosen: HashMap<Transport, Multiaddr> = HashMap::new();
    for addr in listen {
        let Some((ip, _, transport)) = enr_ext::socket_of(addr) else {
            continue;
        };
        let better = chosen
            .get(&transport)
            .and_then(enr_ext::socket_of)
            .is_none_or(|(held, _, _)| held.is_loopback() && !ip.is_loopback());
        if better {
            chosen.insert(transport, addr.clone());
        }
    }
    chosen
}

/// Whether a listen address is on all interfaces (0.0.0.0 or ::).
fn is_wildcard(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_unspecified(),
        Some(Protocol::Ip6(ip)) => ip.is_unspecified(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("test address")
    }

    fn id() -> ListenerId {
        ListenerId::next()
    }

    #[test]
    fn a_wildcard_listener_is_ready_only_with_a_routable_address() {
        let mut l = Listeners::default();
        let (any, local) = (id(), id());
        l.requested(any, addr("/ip4/0.0.0.0/tcp/9000"));
        l.requested(local, addr("/ip4/127.0.0.1/udp/9000/quic-v1"));
        assert!(!l.reported(local, &addr("/ip4/127.0.0.1/udp/9000/quic-v1")));
        assert!(
            !l.reported(any, &addr("/ip4/127.0.0.1/tcp/9000")),
            "loopback only"
        );
        assert!(!l.is_ready());
        assert_eq!(l.pending(), [&addr("/ip4/0.0.0.0/tcp/9000")]);
        assert!(
            l.reported(any, &addr("/ip4/198.51.100.20/tcp/9000")),
            "ready now"
        );
        assert!(l.is_ready());
        assert!(
            !l.reported(any, &addr("/ip4/10.0.0.1/tcp/9000")),
            "only once"
        );
    }

    #[test]
    fn the_grace_or_a_closed_listener_ends_the_wait() {
        let mut l = Listeners::default();
        let (a, b) = (id(), id());
        l.requested(a, addr("/ip4/0.0.0.0/tcp/9000"));
        l.requested(b, addr("/ip4/0.0.0.0/tcp/9001"));
        l.closed(a);
        assert!(l.reported(b, &addr("/ip4/198.51.100.20/tcp/9001")));
        let mut slow = Listeners::default();
        slow.requested(a, addr("/ip4/0.0.0.0/tcp/9000"));
        assert!(slow.set_ready(), "rule 2");
        assert!(!slow.set_ready());
    }

    #[test]
    fn a_bootnode_advertises_a_routable_address_per_transport() {
        let chosen = advertised(&[
            addr("/ip4/127.0.0.1/tcp/9000"),
            addr("/ip4/198.51.100.10/tcp/9000"),
            addr("/ip4/10.0.0.1/tcp/9000"),
            addr("/ip4/127.0.0.1/udp/9000/quic-v1"),
            addr("/ip4/198.51.100.10/tcp/9000/p2p-circuit"),
        ]);
        assert_eq!(chosen[&Transport::Tcp], addr("/ip4/198.51.100.10/tcp/9000"));
        assert_eq!(
            chosen[&Transport::Quic],
            addr("/ip4/127.0.0.1/udp/9000/quic-v1"),
            "loopback when nothing else"
        );
        assert_eq!(chosen.len(), 2);
    }

    #[test]
    fn printed_once_per_seq() {
        let mut l = Listeners::default();
        assert!(l.advertise(1));
        assert!(!l.advertise(1));
        assert!(l.advertise(2));
    }
}
