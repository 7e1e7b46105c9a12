//! Port guessing (strategy rule 10): a punch between a peer behind a NAT that maps a new
//! public port per destination ("symmetric", `nat-quic` 2) and one behind a NAT that maps
//! one port for all (`nat-quic` 1).
//!
//! The second one's address is known (its record); the first one's port towards it is not,
//! and no bootnode can tell it, since the NAT picks it only when the first packet leaves. So
//! the first side makes many such ports at once and the second tries many ports until one
//! matches: with `n` ports opened among the 64,512 above 1023 and `m` tried, a hit is missed
//! with probability `(1 − n/64512)^m` (the birthday paradox): 1 in 3,300 for 512 and 1,020,
//! 1.7% for 256.
//!
//! Rules:
//! 1. The opening side binds [`SOCKETS`] UDP sockets (fewer when the open-file limit is
//!    low: an eighth of it at most, [`sockets_within`]) on its QUIC listener's IPv4 address
//!    and sends one byte from each towards the peer's record QUIC address: its NAT makes as
//!    many mappings, each open to that one address. They cost the opening side only: 512
//!    bytes, and descriptors for [`OPEN_WAIT`]. The byte is dropped at the peer's NAT (or, if
//!    its NAT lets it in, by its QUIC endpoint: too short to be a packet).
//! 2. The introduction asks the peer to spray ([`Request::Ask`]'s `spray`). It dials
//!    [`PROBES`] distinct random ports above 1023 at the IP the bootnode saw us at (intro
//!    rule 2 vouched for it), from its listen port, in [`BATCHES`] dials of
//!    [`BATCH_WIDTH`] addresses all at once ([`spray_addrs`]). Each QUIC Initial opens the
//!    peer's NAT for the port it goes to.
//! 3. The first datagram from the peer's IP on any of our sockets is a hit ([`first_hit`]):
//!    every socket closes, and a QUIC listener takes the hit socket's port, whose mapping
//!    in our NAT is the one the peer's packet came through. The peer's QUIC client sends its
//!    Initial again at its first probe timeout (about a second) and the handshake completes
//!    on that listener: we are the server, the introduced peer the client, as in rule 8.
//!    No hit within [`OPEN_WAIT`]: the sockets close and nothing listens.
//! 4. Bounds: at most one opening at a time, at most one spray per
//!    [`SPRAY_INTERVAL`] (a spray is up to 1,020 Initials of 1,200 bytes and their resends
//!    until the handshake timeout, to the requester's own IP only), and only where both
//!    records say so and the operator did not turn guessing off (`--port-guessing`).
//! 5. A guessed listener closes when the guess failed, or when the peer's last connection
//!    closed (closing a QUIC listener closes its connections, so not before). While it is
//!    open, our other QUIC dials may leave from it: behind a NAT that maps a port per
//!    destination that changes nothing a peer sees.
//!
//! The state is bounded: one opening at a time, the listeners of guesses that connected
//! (closed with the peer's last connection), and a spray's [`BATCHES`] dials until each
//! ends, connected or failed.
//!
//! Written by hand: libp2p-quic dials and listens on sockets it binds itself and offers no
//! way to send from a chosen port, so the opening side holds its ports as plain sockets and
//! hands the one that hit to a listener; no crate guesses ports for libp2p.
//!
//! [`Request::Ask`]: peerfind_behaviours::intro::protocol::Request::Ask

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::num::NonZeroU8;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use rand::seq::SliceRandom;
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Rule 1: ports the opening side opens. Each is a descriptor for at most [`OPEN_WAIT`].
pub const SOCKETS: usize = 512;

/// Rule 1: the ports to open under the open-file limit `nofile`: [`SOCKETS`], or an eighth
/// of the limit when that is less, so the node's connections keep their descriptors.
pub fn sockets_within(nofile: Option<u64>) -> usize {
    nofile.map_or(SOCKETS, |n| {
        usize::try_from(n / 8)
            .unwrap_or(usize::MAX)
            .clamp(1, SOCKETS)
    })
}

/// Rule 2: addresses in one spray dial, all dialed at once (libp2p's cap on one dial's
/// concurrency is 255).
pub const BATCH_WIDTH: NonZeroU8 = NonZeroU8::MAX;

/// Rule 2: dials in one spray.
pub const BATCHES: usize = 4;

/// Rule 2: ports one spray tries.
pub const PROBES: usize = BATCHES * BATCH_WIDTH.get() as usize;

/// Rule 3: how long the opening side's ports wait for the spray: the introduction's round
/// trip through the bootnode and the spray's, with room for a slow bootnode.
pub const OPEN_WAIT: Duration = Duration::from_secs(3);

/// How long a guess may take before its fallback, the relay (strategy rule 8's end): rule
/// 3's hit, then the peer's Initial sent again at its probe timeout (about 1 s, or 3 s when
/// that one is lost too), then the handshake.
pub const GUESS_WAIT: Duration = Duration::from_secs(4);

/// Rule 4: at most one spray this often.
pub const SPRAY_INTERVAL: Duration = Duration::from_secs(30);

/// The lowest port a spray tries: NATs allocate above the well-known ports.
const FIRST_PORT: u16 = 1024;

/// Rule 1: binds up to `count` sockets on `local` and sends one byte from each to `peer`.
/// Fails only when not one socket could be bound; at the first that cannot, the ones bound
/// so far are used.
pub fn open(local: Ipv4Addr, peer: SocketAddrV4, count: usize) -> io::Result<Vec<UdpSocket>> {
    let mut sockets = Vec::with_capacity(count);
    let mut first_error = None;
    for _ in 0..count {
        let bound = std::net::UdpSocket::bind((local, 0)).and_then(|s| {
            s.set_nonblocking(true)?;
            s.send_to(&[0], peer)?;
            UdpSocket::from_std(s)
        });
        match bound {
            Ok(s) => sockets.push(s),
            // Out of descriptors or ports: the ones we have still count.
            Err(e) => {
                first_error.get_or_insert(e);
                break;
            }
        }
    }
    match (sockets.is_empty(), first_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(sockets),
    }
}

/// Rule 3: the local port of the first of `sockets` a datagram from `from` reaches within
/// `wait`; datagrams from anyone else are ignored. Every socket is closed when it returns.
pub async fn first_hit(sockets: Vec<UdpSocket>, from: Ipv4Addr, wait: Duration) -> Option<u16> {
    let hit = async {
        let mut waits: FuturesUnordered<_> = sockets
            .iter()
            .map(|socket| async move {
                // Only the sender matters: a longer datagram is cut, which is fine.
                let mut buf = [0u8; 16];
                loop {
                    match socket.recv_from(&mut buf).await {
                        Ok((_, SocketAddr::V4(sender))) if *sender.ip() == from => {
                            return socket.local_addr().ok().map(|a| a.port());
                        }
                        Ok(_) => continue,
                        Err(_) => return None,
                    }
                }
            })
            .collect();
        while let Some(found) = waits.next().await {
            if found.is_some() {
                return found;
            }
        }
        None
    };
    tokio::time::timeout(wait, hit).await.ok().flatten()
}

/// Rule 2: [`BATCHES`] lists of [`BATCH_WIDTH`] addresses of `peer` at `ip`, each on a
/// distinct random port above 1023.
pub fn spray_addrs(ip: Ipv4Addr, peer: PeerId, rng: &mut impl rand::Rng) -> Vec<Vec<Multiaddr>> {
    let mut ports: Vec<u16> = (FIRST_PORT..=u16::MAX).collect();
    let (chosen, _) = ports.partial_shuffle(rng, PROBES);
    chosen
        .chunks(usize::from(BATCH_WIDTH.get()))
        .map(|ports| {
            ports
                .iter()
                .map(|port| {
                    Multiaddr::from(ip)
                        .with(Protocol::Udp(*port))
                        .with(Protocol::QuicV1)
                        .with(Protocol::P2p(peer))
                })
                .collect()
        })
        .collect()
}

/// What port guessing has under way: the opening side's ports waiting for a hit, the
/// listeners hits made, the sprayer's dials and when it last sprayed.
#[derive(Default)]
pub struct Guesses {
    /// Rule 3: at most one (rule 4), each ending in the peer and its hit port, if any.
    opening: JoinSet<(PeerId, Option<u16>)>,
    /// Rule 5: guessed listeners and the peer each is for.
    listeners: HashMap<ListenerId, (PeerId, u16)>,
    /// Rule 2: spray dials in flight, whose failures are expected.
    sprays: HashSet<ConnectionId>,
    /// Rule 4.
    last_spray: Option<Instant>,
}

impl Guesses {
    /// Rule 4: whether ports may be opened now.
    pub fn may_open(&self) -> bool {
        self.opening.is_empty()
    }

    /// Rule 3: `sockets`, opened towards `peer`, wait for a hit from `from`.
    pub fn opened(&mut self, peer: PeerId, sockets: Vec<UdpSocket>, from: Ipv4Addr) {
        self.opening
            .spawn(async move { (peer, first_hit(sockets, from, OPEN_WAIT).await) });
    }

    /// The next opening to end: its peer and hit port. Pending while none is under way.
    pub async fn next_end(&mut self) -> (PeerId, Option<u16>) {
        loop {
            match self.opening.join_next().await {
                Some(Ok(end)) => return end,
                // A wait cannot panic; were it cancelled, there is nothing to report.
                Some(Err(_)) => continue,
                None => std::future::pending().await,
            }
        }
    }

    /// Rule 4: whether a spray may go now; if so, it counts as sent.
    pub fn may_spray(&mut self, now: Instant) -> bool {
        if self.last_spray.is_some_and(|t| now < t + SPRAY_INTERVAL) {
            return false;
        }
        self.last_spray = Some(now);
        true
    }

    /// Rule 2: the spray dial `id` started.
    pub fn spraying(&mut self, id: ConnectionId) {
        self.sprays.insert(id);
    }

    /// A dial ended, failed or connected: whether it was a spray dial (whose failure is
    /// expected).
    pub fn spray_ended(&mut self, id: ConnectionId) -> bool {
        self.sprays.remove(&id)
    }

    /// Rule 3: `id` listens on the hit `port` for `peer`.
    pub fn listening(&mut self, id: ListenerId, peer: PeerId, port: u16) {
        self.listeners.insert(id, (peer, port));
    }

    /// Rule 5: the guessed listeners for `peer` (its guess failed, or its last connection
    /// closed), forgotten, to be closed.
    pub fn forget(&mut self, peer: &PeerId) -> Vec<ListenerId> {
        let ids: Vec<ListenerId> = self
            .listeners
            .iter()
            .filter_map(|(id, (p, _))| (p == peer).then_some(*id))
            .collect();
        for id in &ids {
            self.listeners.remove(id);
        }
        ids
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

    #[test]
    fn a_spray_tries_distinct_ports_above_the_well_known_ones_in_full_batches() {
        let peer = PeerId::random();
        let batches = spray_addrs(Ipv4Addr::new(203, 0, 113, 7), peer, &mut rand::thread_rng());
        assert_eq!(batches.len(), BATCHES);
        assert!(batches.iter().all(|b| b.len() == 255));
        let ports: HashSet<u16> = batches
            .iter()
            .flatten()
            .map(|a| match peerfind_behaviours::enr_ext::socket_of(a) {
                Some((ip, port, _)) => {
                    assert_eq!(ip, Ipv4Addr::new(203, 0, 113, 7));
                    port
                }
                None => panic!("not a QUIC address: {a}"),
            })
            .collect();
        assert_eq!(ports.len(), PROBES, "rule 2: distinct ports");
        assert!(ports.iter().all(|p| *p >= FIRST_PORT));
    }

    #[tokio::test]
    async fn the_first_datagram_from_the_peer_names_the_port_it_reached() {
        let peer = std::net::UdpSocket::bind((LOOPBACK, 0)).unwrap();
        let SocketAddr::V4(peer_addr) = peer.local_addr().unwrap() else {
            panic!("IPv4 expected")
        };
        let sockets = open(LOOPBACK, peer_addr, SOCKETS).unwrap();
        assert_eq!(sockets.len(), SOCKETS);
        // Rule 1: one byte from each reached the peer's address.
        let mut buf = [0u8; 4];
        let (len, _) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(len, 1);
        let ports: Vec<u16> = sockets
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        // A stranger's datagram (another loopback IP) is not a hit; the peer's is.
        let stranger = std::net::UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0)).unwrap();
        stranger.send_to(b"x", (LOOPBACK, ports[7])).unwrap();
        peer.send_to(b"hello", (LOOPBACK, ports[42])).unwrap();
        let hit = first_hit(sockets, LOOPBACK, Duration::from_secs(5)).await;
        assert_eq!(hit, Some(ports[42]));
        // Rule 3: every socket is closed, so a listener can take the port.
        std::net::UdpSocket::bind((LOOPBACK, ports[42])).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn no_hit_within_the_wait_is_none() {
        let sockets = open(LOOPBACK, SocketAddrV4::new(LOOPBACK, 9), 4).unwrap();
        assert_eq!(first_hit(sockets, LOOPBACK, OPEN_WAIT).await, None);
    }

    #[test]
    fn the_ports_opened_leave_seven_eighths_of_the_open_file_limit() {
        assert_eq!(sockets_within(None), SOCKETS);
        assert_eq!(sockets_within(Some(1_048_576)), SOCKETS);
        assert_eq!(sockets_within(Some(1024)), 128);
        assert_eq!(sockets_within(Some(4)), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn one_spray_per_interval() {
        let mut guesses = Guesses::default();
        assert!(guesses.may_spray(Instant::now()));
        tokio::time::advance(SPRAY_INTERVAL - Duration::from_millis(1)).await;
        assert!(!guesses.may_spray(Instant::now()), "rule 4");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(guesses.may_spray(Instant::now()));
    }

    #[test]
    fn a_spray_dial_is_forgotten_when_it_ends() {
        let mut guesses = Guesses::default();
        let id = ConnectionId::new_unchecked(7);
        guesses.spraying(id);
        assert!(guesses.spray_ended(id));
        assert!(!guesses.spray_ended(id), "once");
        assert!(guesses.sprays.is_empty());
    }

    #[test]
    fn a_guessed_listener_is_forgotten_with_its_peer() {
        let mut guesses = Guesses::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let (la, lb) = (ListenerId::next(), ListenerId::next());
        guesses.listening(la, a, 4000);
        guesses.listening(lb, b, 5000);
        assert_eq!(guesses.forget(&b), vec![lb]);
        assert!(guesses.forget(&b).is_empty());
        assert_eq!(guesses.forget(&a), vec![la]);
    }
}
