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

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

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

/// Who vouched for a confirmed address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Witness {
    /// A configured bootnode.
    Bootnode(PeerId),
    /// This many distinct peers.
    Peers(usize),
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

    /// `peer` (a bootnode or not) saw our connection of `transport` come from `observed`.
    pub fn observe(
        &mut self,
        peer: PeerId,
        is_bootnode: bool,
        connection: Transport,
        observed: &Multiaddr,
    ) -> Option<Confirmed> {
        let (ip, port, transport) = enr_ext::socket_of(observed)?;
        if transport != connection || enr_ext::is_unusable(&ip) {
            tracing::debug!(%peer, %observed, "ignored an observed address that cannot be ours");
            return None;
        }
        let socket = SocketAddr::new(ip, port);
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
                return None;
            }
            Witness::Peers(agree)
        };
        if self.confirmed.insert(transport, socket) == Some(socket) {
            return None;
        }
        Some(Confirmed {
            socket,
            transport,
            by,
        })
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

    #[test]
    fn a_bootnode_report_confirms_at_once() {
        let mut c = Confirmations::new(2);
        let boot = PeerId::random();
        let got = c.observe(
            boot,
            true,
            Transport::Tcp,
            &addr("/ip4/198.51.100.2/tcp/9000"),
        );
        assert_eq!(
            got,
            Some(Confirmed {
                socket: "198.51.100.2:9000".parse().unwrap(),
                transport: Transport::Tcp,
                by: Witness::Bootnode(boot),
            })
        );
        // The same again is no news (rule 6).
        assert_eq!(
            c.observe(
                boot,
                true,
                Transport::Tcp,
                &addr("/ip4/198.51.100.2/tcp/9000")
            ),
            None
        );
    }

    #[test]
    fn one_stranger_alone_never_confirms_but_two_agreeing_do() {
        let mut c = Confirmations::new(2);
        let a = addr("/ip4/198.51.100.2/udp/9000/quic-v1");
        let stranger = PeerId::random();
        assert_eq!(c.observe(stranger, false, Transport::Quic, &a), None);
        // The same stranger again is still one vote (rule 4).
        assert_eq!(c.observe(stranger, false, Transport::Quic, &a), None);
        let got = c
            .observe(PeerId::random(), false, Transport::Quic, &a)
            .unwrap();
        assert_eq!(got.by, Witness::Peers(2));
    }

    #[test]
    fn an_address_of_the_wrong_transport_or_shape_is_ignored() {
        let mut c = Confirmations::new(1);
        let p = PeerId::random();
        assert_eq!(
            c.observe(p, true, Transport::Quic, &addr("/ip4/198.51.100.2/tcp/1")),
            None
        );
        assert_eq!(
            c.observe(p, true, Transport::Tcp, &addr("/ip4/0.0.0.0/tcp/1")),
            None
        );
        assert_eq!(
            c.observe(p, true, Transport::Tcp, &addr("/dns4/x.example/tcp/1")),
            None
        );
    }

    #[test]
    fn votes_are_bounded() {
        let mut c = Confirmations::new(3);
        for i in 0..(MAX_VOTERS * 2) {
            let a = addr(&format!("/ip4/198.51.100.2/tcp/{}", 1000 + i));
            c.observe(PeerId::random(), false, Transport::Tcp, &a);
        }
        assert_eq!(c.votes[&Transport::Tcp].len(), MAX_VOTERS);
    }
}
