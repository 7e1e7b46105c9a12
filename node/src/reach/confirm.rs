//! Which observed address the node believes is its own: the first diagram's "Hi, I notice
//! your address is <IP2>:<PORT2>".
//!
//! Peers tell us, through identify, the address they see our connection come from. Rules:
//! 1. Only a plain `ip:port` over TCP or QUIC counts, with an IP a stranger could use
//!    (not unspecified or multicast), and only when it was seen on a connection of the same
//!    transport (some implementations report a QUIC connection's address as `/tcp`).
//! 2. A report from a configured bootnode confirms the address at once: the operator trusts
//!    the bootnodes it configured.
//! 3. Any other address is confirmed once [`Confirmations::threshold`] distinct peers report
//!    it (default 2), so one stranger alone can never rewrite our record.
//! 4. Each peer has one vote per transport: its latest report replaces its earlier one.
//! 5. At most [`MAX_VOTERS`] peers' votes are kept per transport; the oldest go first.
//! 6. A confirmation is reported only when it differs from the address confirmed last for
//!    that transport.
//! 7. Only a connection that left from our listen port shows our address ([`Leg`]). A peer
//!    that sees a connection from another port (a dial from a fresh port, an AutoNAT
//!    dial-back, or a second TCP connection to a peer we already had one to: port reuse
//!    cannot bind the same address pair twice and falls back to an ephemeral port) sees a
//!    port nobody can reach us at. Such a report neither votes nor confirms, whoever sends it.
//! 8. An address on one of our own IPs (nothing translated it on the way) must carry a port
//!    we listen on for that transport: any other port is an ephemeral one our connection
//!    fell back to, even if we believed it left from the listen port (a fallback is silent).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use libp2p::core::ConnectedPoint;
use libp2p::core::transport::PortUse;
use libp2p::{Multiaddr, PeerId};
use peerfind_behaviours::enr_ext::{self, Transport};

/// Votes kept per transport: a bound on what strangers can make us remember.
pub const MAX_VOTERS: usize = 64;

/// Default [`Confirmations::threshold`]: two independent witnesses.
pub const DEFAULT_THRESHOLD: usize = 2;

/// A newly confirmed external address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmed {
    /// The address strangers can use.
    pub socket: SocketAddr,
    /// Its transport.
    pub transport: Transport,
    /// Why: a bootnode's report (rule 2) or how many peers agreed (rule 3).
    pub by: Witness,
}

/// Why an observed address was not taken: told to the status API's watchers, since a
/// report a node ignores leaves no other trace in its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotTaken {
    /// Rule 1: not a plain `ip:port` of the connection's transport with a usable IP.
    #[error("it cannot be our address")]
    CannotBeOurs,
    /// Rules 7 and 8: seen on a connection that did not leave from the listen port.
    #[error("the connection did not leave from the listen port")]
    OtherPort,
}

/// Who vouched for a confirmed address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Witness {
    /// A configured bootnode.
    Bootnode(PeerId),
    /// This many distinct peers.
    Peers(usize),
}

/// Which local port a connection left from (rule 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// The listen port: what the peer observes is the address strangers can use. An inbound
    /// connection arrived at it, so it counts too.
    ListenPort,
    /// Any other port.
    OtherPort,
}

impl Leg {
    /// The leg of a direct connection of `transport` at `endpoint`. `twin` says whether
    /// another direct connection to the same remote address was already open: a TCP dial
    /// then cannot have left from the listen port (same address pair), whatever it asked for.
    /// QUIC dials all leave from the listener's one socket.
    pub fn of(endpoint: &ConnectedPoint, transport: Transport, twin: bool) -> Leg {
        match endpoint {
            ConnectedPoint::Listener { .. } => Leg::ListenPort,
            ConnectedPoint::Dialer {
                port_use: PortUse::New,
                ..
            } => Leg::OtherPort,
            ConnectedPoint::Dialer { .. } if twin && transport == Transport::Tcp => Leg::OtherPort,
            ConnectedPoint::Dialer { .. } => Leg::ListenPort,
        }
    }
}

/// What we know of our own sockets, for rule 8.
#[derive(Debug, Clone, Copy)]
pub struct Own<'a> {
    /// Every address we listen on, wildcards resolved to each interface's.
    pub listen: &'a [Multiaddr],
}

impl Own<'_> {
    /// Whether `ip` is the IP of one of our listen addresses: nothing translated it.
    pub fn has_ip(&self, ip: IpAddr) -> bool {
        self.listen
            .iter()
            .filter_map(enr_ext::socket_of)
            .any(|(own, ..)| own == ip)
    }

    /// Rule 8: whether `socket` of `transport` is on one of our IPs but not on a port we
    /// listen on there.
    fn is_ephemeral(&self, socket: SocketAddr, transport: Transport) -> bool {
        let ours: Vec<(IpAddr, u16)> = self
            .listen
            .iter()
            .filter_map(enr_ext::socket_of)
            .filter(|(_, _, t)| *t == transport)
            .map(|(ip, port, _)| (ip, port))
            .collect();
        ours.iter().any(|(ip, _)| *ip == socket.ip())
            && !ours.iter().any(|(_, port)| *port == socket.port())
    }
}

/// The address-confirmation state machine. See the module doc for its rules.
#[derive(Debug)]
pub struct Confirmations {
    threshold: usize,
    votes: HashMap<Transport, VecDeque<(PeerId, SocketAddr)>>,
    confirmed: HashMap<Transport, SocketAddr>,
}

impl Confirmations {
    /// A state machine confirming an address once `threshold` peers agree (at least 1).
    pub fn new(threshold: usize) -> Self {
        Self {
            threshold: threshold.max(1),
            votes: HashMap::new(),
            confirmed: HashMap::new(),
        }
    }

    /// `peer` (a bootnode or not) saw our connection of `transport`, which left from `leg`,
    /// come from `observed`. A newly confirmed address, nothing new (a vote, or the address
    /// confirmed already), or why the report was not taken at all.
    pub fn observe(
        &mut self,
        peer: PeerId,
        is_bootnode: bool,
        (connection, leg): (Transport, Leg),
        observed: &Multiaddr,
        own: Own<'_>,
    ) -> Result<Option<Confirmed>, NotTaken> {
        let usable = enr_ext::socket_of(observed)
            .filter(|(ip, _, transport)| *transport == connection && !enr_ext::is_unusable(ip));
        let Some((ip, port, transport)) = usable else {
            tracing::debug!(%peer, %observed, "ignored an observed address that cannot be ours");
            return Err(NotTaken::CannotBeOurs);
        };
        let socket = SocketAddr::new(ip, port);
        if leg == Leg::OtherPort || own.is_ephemeral(socket, transport) {
            // Once per connection at most (identify reports once, and again only when our
            // listen addresses change): worth seeing.
            tracing::info!(
                %peer, %observed, ?leg,
                "observed address not taken: the connection did not leave from the listen port"
            );
            return Err(NotTaken::OtherPort);
        }
        let votes = self.votes.entry(transport).or_default();
        votes.retain(|(p, _)| *p != peer);
        if votes.len() >= MAX_VOTERS {
            votes.pop_front();
        }
        votes.push_back((peer, socket));

        let by = if is_bootnode {
            Witness::Bootnode(peer)
        } else {
            let agree = votes.iter().filter(|(_, s)| *s == socket).count();
            if agree < self.threshold {
                return Ok(None);
            }
            Witness::Peers(agree)
        };
        if self.confirmed.insert(transport, socket) == Some(socket) {
            return Ok(None);
        }
        Ok(Some(Confirmed {
            socket,
            transport,
            by,
        }))
    }

    /// The address confirmed last for each transport.
    pub fn confirmed(&self) -> impl Iterator<Item = (Transport, SocketAddr)> + '_ {
        self.confirmed.iter().map(|(t, s)| (*t, *s))
    }

    /// Whether `ip` is among the confirmed addresses.
    pub fn is_confirmed_ip(&self, ip: &IpAddr) -> bool {
        self.confirmed.values().any(|s| s.ip() == *ip)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    /// No listen address known: rule 8 never applies.
    const NOBODY: Own<'static> = Own { listen: &[] };

    #[test]
    fn a_bootnode_report_confirms_at_once() {
        let mut c = Confirmations::new(2);
        let boot = PeerId::random();
        let got = c.observe(
            boot,
            true,
            (Transport::Tcp, Leg::ListenPort),
            &addr("/ip4/198.51.100.2/tcp/9000"),
            NOBODY,
        );
        assert_eq!(
            got,
            Ok(Some(Confirmed {
                socket: "198.51.100.2:9000".parse().unwrap(),
                transport: Transport::Tcp,
                by: Witness::Bootnode(boot),
            }))
        );
        // The same again is no news (rule 6).
        assert_eq!(
            c.observe(
                boot,
                true,
                (Transport::Tcp, Leg::ListenPort),
                &addr("/ip4/198.51.100.2/tcp/9000"),
                NOBODY
            ),
            Ok(None)
        );
    }

    #[test]
    fn one_stranger_alone_never_confirms_but_two_agreeing_do() {
        let mut c = Confirmations::new(2);
        let a = addr("/ip4/198.51.100.2/udp/9000/quic-v1");
        let stranger = PeerId::random();
        assert_eq!(
            c.observe(
                stranger,
                false,
                (Transport::Quic, Leg::ListenPort),
                &a,
                NOBODY
            ),
            Ok(None)
        );
        // The same stranger again is still one vote (rule 4).
        assert_eq!(
            c.observe(
                stranger,
                false,
                (Transport::Quic, Leg::ListenPort),
                &a,
                NOBODY
            ),
            Ok(None)
        );
        let got = c
            .observe(
                PeerId::random(),
                false,
                (Transport::Quic, Leg::ListenPort),
                &a,
                NOBODY,
            )
            .unwrap()
            .unwrap();
        assert_eq!(got.by, Witness::Peers(2));
    }

    #[test]
    fn an_address_of_the_wrong_transport_or_shape_is_ignored() {
        let mut c = Confirmations::new(1);
        let p = PeerId::random();
        assert_eq!(
            c.observe(
                p,
                true,
                (Transport::Quic, Leg::ListenPort),
                &addr("/ip4/198.51.100.2/tcp/1"),
                NOBODY
            ),
            Err(NotTaken::CannotBeOurs)
        );
        assert_eq!(
            c.observe(
                p,
                true,
                (Transport::Tcp, Leg::ListenPort),
                &addr("/ip4/0.0.0.0/tcp/1"),
                NOBODY
            ),
            Err(NotTaken::CannotBeOurs)
        );
        assert_eq!(
            c.observe(
                p,
                true,
                (Transport::Tcp, Leg::ListenPort),
                &addr("/dns4/x.example/tcp/1"),
                NOBODY
            ),
            Err(NotTaken::CannotBeOurs)
        );
    }

    #[test]
    fn votes_are_bounded() {
        let mut c = Confirmations::new(3);
        for i in 0..(MAX_VOTERS * 2) {
            let a = addr(&format!("/ip4/198.51.100.2/tcp/{}", 1000 + i));
            c.observe(
                PeerId::random(),
                false,
                (Transport::Tcp, Leg::ListenPort),
                &a,
                NOBODY,
            )
            .unwrap();
        }
        assert_eq!(c.votes[&Transport::Tcp].len(), MAX_VOTERS);
    }

    #[test]
    fn a_connection_that_did_not_leave_from_the_listen_port_never_confirms() {
        let mut c = Confirmations::new(1);
        let boot = PeerId::random();
        let ephemeral = addr("/ip4/198.51.100.2/tcp/40123");
        let other = (Transport::Tcp, Leg::OtherPort);
        assert_eq!(
            c.observe(boot, true, other, &ephemeral, NOBODY),
            Err(NotTaken::OtherPort)
        );
        assert_eq!(
            c.observe(PeerId::random(), false, other, &ephemeral, NOBODY),
            Err(NotTaken::OtherPort),
            "nor does it vote"
        );
        assert_eq!(c.confirmed().count(), 0);
    }

    #[test]
    fn on_our_own_ip_only_a_listen_port_is_ours() {
        let mut c = Confirmations::new(1);
        let boot = PeerId::random();
        let listen = [
            addr("/ip4/127.0.0.1/tcp/9000"),
            addr("/ip4/127.0.0.1/udp/9001/quic-v1"),
        ];
        let own = Own { listen: &listen };
        let leg = (Transport::Tcp, Leg::ListenPort);
        // A silent port-reuse fallback: our IP, a port we do not listen on.
        assert_eq!(
            c.observe(boot, true, leg, &addr("/ip4/127.0.0.1/tcp/40123"), own),
            Err(NotTaken::OtherPort)
        );
        // The QUIC port is no TCP listen port.
        assert_eq!(
            c.observe(boot, true, leg, &addr("/ip4/127.0.0.1/tcp/9001"), own),
            Err(NotTaken::OtherPort)
        );
        assert!(
            c.observe(boot, true, leg, &addr("/ip4/127.0.0.1/tcp/9000"), own)
                .is_ok_and(|c| c.is_some())
        );
        // Behind a NAT the port may change: another IP is not judged by our ports.
        assert!(
            c.observe(boot, true, leg, &addr("/ip4/198.51.100.101/tcp/1024"), own)
                .is_ok_and(|c| c.is_some())
        );
    }

    #[test]
    fn which_connections_left_from_the_listen_port() {
        use libp2p::core::Endpoint;
        let dialer = |port_use| ConnectedPoint::Dialer {
            address: addr("/ip4/198.51.100.10/tcp/9000"),
            role_override: Endpoint::Dialer,
            port_use,
        };
        let listener = ConnectedPoint::Listener {
            local_addr: addr("/ip4/0.0.0.0/tcp/9000"),
            send_back_addr: addr("/ip4/198.51.100.20/tcp/1234"),
        };
        let reuse = dialer(PortUse::Reuse);
        assert_eq!(Leg::of(&reuse, Transport::Tcp, false), Leg::ListenPort);
        assert_eq!(
            Leg::of(&reuse, Transport::Tcp, true),
            Leg::OtherPort,
            "a second TCP connection to the same address cannot reuse the port"
        );
        assert_eq!(Leg::of(&reuse, Transport::Quic, true), Leg::ListenPort);
        assert_eq!(
            Leg::of(&dialer(PortUse::New), Transport::Tcp, false),
            Leg::OtherPort
        );
        assert_eq!(Leg::of(&listener, Transport::Tcp, true), Leg::ListenPort);
    }
}
