//! Strategy rule 10 carried out: port guessing ([`crate::reach::guess`] has its rules). The
//! opening side opens its ports and asks for the introduction with `spray`; the introduced
//! side sprays; a hit becomes a listener that takes the sprayer's connection.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId};
use peerfind_behaviours::enr_ext::{self, Enr, Transport};
use tokio::time::Instant;

use super::Node;
use crate::reach::guess::{self, GUESS_WAIT};
use crate::reach::strategy::{self, GuessRole};
use crate::status;

impl Node {
    /// Rule 10 on the opening side: our ports towards the peer's first IPv4 QUIC address in
    /// `addrs`, then rule 8's punch with an introduction that asks for the spray. Without
    /// such an address, or while another guess is under way (guess rule 4), or when no port
    /// opens, rule 8's plain punch.
    pub(super) fn guess_introduced(
        &mut self,
        peer: PeerId,
        via: PeerId,
        addrs: Vec<Multiaddr>,
        lan: Vec<Multiaddr>,
    ) {
        let target = addrs.iter().find_map(|a| match enr_ext::socket_of(a) {
            Some((IpAddr::V4(ip), port, Transport::Quic)) => Some(SocketAddrV4::new(ip, port)),
            _ => None,
        });
        let Some(target) = target.filter(|_| self.guesses.may_open()) else {
            return self.punch_introduced(peer, via, (addrs, lan), false);
        };
        let local = self.guess_ip();
        let count = guess::sockets_within(crate::api::server::open_file_limit());
        match guess::open(local, target, count) {
            Ok(sockets) => {
                tracing::info!(%peer, %target, ports = sockets.len(), "guessing ports: opened ours towards the peer");
                self.guesses.opened(peer, sockets, *target.ip());
                self.punch_introduced(peer, via, (addrs, lan), true);
            }
            Err(error) => {
                tracing::info!(%peer, %error, "cannot open ports to guess; punching without");
                self.punch_introduced(peer, via, (addrs, lan), false);
            }
        }
    }

    /// The IPv4 address our QUIC listener was told to listen on, where the guessing ports
    /// and their listener go: the unspecified address when it listens on all.
    fn guess_ip(&self) -> Ipv4Addr {
        self.config
            .listen_addrs()
            .iter()
            .filter_map(enr_ext::socket_of)
            .find_map(|(ip, _, t)| match ip {
                IpAddr::V4(ip) if t == Transport::Quic => Some(ip),
                _ => None,
            })
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// Guess rule 3: our ports' wait for `peer`'s spray ended, at `port` when one was hit:
    /// a QUIC listener takes it, for the peer's client to complete its handshake on.
    pub(super) fn on_guess_end(&mut self, peer: PeerId, port: Option<u16>) {
        let Some(port) = port else {
            tracing::info!(%peer, "no port guessed: the peer's spray met none of ours");
            return;
        };
        let addr = Multiaddr::from(self.guess_ip())
            .with(Protocol::Udp(port))
            .with(Protocol::QuicV1);
        match self.swarm.listen_on(addr) {
            Ok(id) => {
                tracing::info!(%peer, port, "port guessed: listening there for the peer's connection");
                self.guesses.listening(id, peer, port);
            }
            Err(error) => {
                tracing::info!(%peer, port, %error, "port guessed, but cannot listen on it");
            }
        }
    }

    /// Guess rule 5: `peer`'s guessed listeners close (its guess failed, or its last
    /// connection closed).
    pub(super) fn close_guessed_listeners(&mut self, peer: PeerId) {
        for id in self.guesses.forget(&peer) {
            self.swarm.remove_listener(id);
        }
    }

    /// Guess rule 2 on the introduced side: sprays `requester`'s IP when both records say
    /// rule 10 applies, we may guess, and guess rule 4's interval allows. Whether it did;
    /// if not, the introduction is answered as any other.
    pub(super) fn spray(&mut self, requester: &Enr, peer: PeerId, via: PeerId) -> bool {
        let ours = strategy::guess_role(self.record.enr(), requester);
        let Some(ip) = requester.ip4() else {
            return false;
        };
        if !self.config.port_guessing
            || ours != Some(GuessRole::Spray)
            || !self.guesses.may_spray(Instant::now())
        {
            tracing::debug!(%peer, bootnode = %via, role = ?ours, "asked to spray; not spraying");
            return false;
        }
        tracing::info!(%peer, bootnode = %via, %ip, probes = guess::PROBES, "introduced to a peer that guesses ports; spraying its IP");
        // Intro rule 2: the bootnode saw the requester at this IP.
        self.vouch(requester, peer);
        self.hub
            .publish(status::Event::Introduced { peer_id: peer, via });
        let batches = guess::spray_addrs(ip, peer, &mut rand::thread_rng());
        let now = Instant::now();
        let mut first = true;
        for addrs in batches {
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::Always)
                .override_dial_concurrency_factor(guess::BATCH_WIDTH)
                .build();
            let id = opts.connection_id();
            if self.dial(opts, peer, false) {
                self.guesses.spraying(id);
                if std::mem::take(&mut first) {
                    self.counters.punches_tried += 1;
                    self.reach
                        .punch_dialing_until(id, peer, None, now + GUESS_WAIT);
                }
            }
        }
        true
    }
}
