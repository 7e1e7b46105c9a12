//! Carrying out the connection strategy: direct dials, introductions (the fourth diagram),
//! relay reservations and circuits, hole punches and their retries. What to do is decided in
//! [`crate::reach::strategy`]; this is how it is done and what the node logs and counts.

use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, dcutr, multiaddr::Protocol};
use peerfind_behaviours::enr_ext::{self, Enr};
use peerfind_behaviours::{intro, ip_group, table};
use std::time::Duration;

use tokio::time::Instant;

use super::punch::is_direct;
use super::{Mode, Node};
use crate::reach::nat;
use crate::reach::strategy::{self, Action, Port, Situation};
use crate::status;

impl Node {
    /// Applies the connection strategy to a peer we learned of.
    pub(super) fn reach(&mut self, enr: &Enr, peer: PeerId) {
        let now = Instant::now();
        let situation = Situation {
            // Without our record the strategy does not punch (rule 9).
            own: self.config.intro_punch.then(|| self.record.enr()),
            asked_recently: self.reach.asked_recently(&peer, now),
            guessed_recently: self.reach.guessed_recently(&peer, now),
            punching: self.reach.punching(&peer),
            local: *self.swarm.local_peer_id(),
            bootnode: self.mode == Mode::Bootnode,
            connection: self.connections.best(&peer),
            peers: self
                .connections
                .chosen_peers(|p| self.bootnodes.contains(p)),
            max_peers: self.config.max_peers,
            nat: self.nat.status().0,
            translated: self.nat.translated(),
            report_pending: self.report_pending(),
            bootnode_via: self.bootnode_via(&peer),
            port_guessing: self.config.port_guessing,
        };
        let action = strategy::decide(enr, peer, situation);
        match action {
            Action::Dial { addrs, port } => self.dial_record(peer, addrs, port),
            Action::Introduce { via } => self.ask_introduction(peer, via),
            Action::Punch { via, addrs } => {
                let lan = self.lan_addrs_for(enr);
                self.punch_introduced(peer, via, (addrs, lan), false)
            }
            Action::Guess { via, addrs } => {
                let lan = self.lan_addrs_for(enr);
                self.guess_introduced(peer, via, addrs, lan)
            }
            Action::Relay { via } => self.dial_relayed(peer, via),
            Action::Keep(reason) => tracing::debug!(%peer, ?reason, "not dialing peer"),
        }
    }

    /// Our situation changed (NAT status): every known peer is considered again.
    pub(super) fn reach_all(&mut self) {
        let known: Vec<(Enr, PeerId)> = self
            .swarm
            .behaviour()
            .gossip
            .table()
            .iter()
            .map(|e| (e.enr.clone(), e.peer_id))
            .collect();
        for (enr, peer) in known {
            self.reach(&enr, peer);
        }
    }

    /// Strategy rule 4: dials `peer` at its record's `addrs`, unless such a dial is under way
    /// (connections rule 11). Another dial may be: a TCP punch whose packets met the peer's
    /// listener (a full-cone NAT, or a port its router forwards) takes the listener's role
    /// on both ends and hangs until its upgrade times out, long after the punch's wait; a
    /// record that turned public meanwhile (a verified port mapping) must not wait for it.
    fn dial_record(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, port: Port) {
        if self.connections.record_dial_pending(&peer) {
            return tracing::debug!(%peer, "a dial to the peer's record is under way");
        }
        tracing::info!(%peer, addrs = ?addrs, ?port, "dialing peer at its record's addresses");
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::Disconnected);
        let opts = match port {
            Port::Listen => opts.build(),
            Port::Fresh => opts.allocate_new_port().build(),
        };
        let id = opts.connection_id();
        // What the peer observes of a fresh-port dial is not our listen address.
        if self.dial(opts, peer, port == Port::Fresh) {
            self.connections.is_record_dial(id);
            self.counters.direct_dials += 1;
        }
    }

    /// Starts a dial; says whether it started. One that did not start reports nothing more,
    /// so nothing may be kept for it.
    pub(super) fn dial(&mut self, opts: DialOpts, peer: PeerId, fresh: bool) -> bool {
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.connections.dialing(peer, id, fresh);
                true
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "dial not started");
                false
            }
        }
    }

    /// The connected bootnode that told us of `peer`, or else any connected bootnode.
    fn bootnode_via(&self, peer: &PeerId) -> Option<PeerId> {
        let told = self
            .swarm
            .behaviour()
            .gossip
            .table()
            .get_by_peer(peer)
            .and_then(|e| match e.source {
                table::Source::Gossip { from } => Some(from),
                table::Source::Announced => None,
            });
        self.bootnodes.via(told, |p| self.swarm.is_connected(p))
    }

    /// Rule 6 of the strategy: "Hello Alice (From Charlie ENR(<charlie>))" via a bootnode.
    fn ask_introduction(&mut self, peer: PeerId, via: PeerId) {
        let Some(target) = enr_ext::node_id(&peer) else {
            return;
        };
        if !self.reach.may_ask(peer, Instant::now()) {
            return;
        }
        tracing::info!(%peer, bootnode = %via, "asking for an introduction");
        self.counters.introductions_asked += 1;
        self.hub
            .publish(status::Event::IntroductionAsked { target: peer, via });
        self.swarm
            .behaviour_mut()
            .intro
            .ask(via, target, Vec::new(), false);
    }

    /// Rule 9 of the strategy: a relayed connection through `via`, which DCUtR then tries to
    /// upgrade to a direct one.
    pub(super) fn dial_relayed(&mut self, peer: PeerId, via: PeerId) {
        let Some(bootnode) = self.bootnodes.get(&via) else {
            return;
        };
        if self.reach.circuit_in_flight(&peer) {
            tracing::debug!(%peer, "a circuit dial to the peer is already in flight");
            return;
        }
        let addrs = strategy::circuit_addrs(&bootnode.addrs, peer);
        tracing::info!(%peer, bootnode = %via, "dialing peer through the relay");
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::Always)
            .build();
        let id = opts.connection_id();
        if self.dial(opts, peer, false) {
            self.counters.circuit_dials += 1;
            self.reach.circuit_dialing(id, peer, via);
        }
    }

    /// A dial failed: when it was a circuit, it is dialed again later (reach-state rule 4).
    pub(super) fn on_dial_failed(
        &mut self,
        peer_id: Option<PeerId>,
        id: libp2p::swarm::ConnectionId,
        error: &libp2p::swarm::DialError,
    ) {
        self.connections.dial_failed(id);
        let now = Instant::now();
        if let Some(((bootnode, transport), wait)) = self.bootnodes.redial.outgoing_error(id, now) {
            tracing::debug!(%bootnode, ?transport, ?wait, "bootnode dial failed; redialing later");
        }
        let connections = &self.connections;
        let punch = self
            .reach
            .punch_dial_failed(id, |p| is_direct(connections.best(p)));
        // Most of a spray's ports meet nothing (guess rule 2): its error lists 255 of them.
        if self.guesses.spray_ended(id) {
            tracing::debug!(peer = ?peer_id, "spray dial ended without a connection");
            if let Some(end) = punch {
                self.on_punch_end(end, Some("no sprayed port answered".to_owned()));
            }
            return;
        }
        if let Some(end) = punch {
            self.on_punch_end(end, Some(error.to_string()));
        } else if let Some((peer, wait)) = self.reach.circuit_failed(id, now) {
            tracing::info!(%peer, retry_in = ?wait, "circuit dial failed; dialing a new one later");
        }
        // A bootnode we cannot reach is the operator's to know of; a peer's dial failing
        // (gone, behind a NAT, a hole punch's candidates, the dial guard) is everyday, and a
        // stranger can cause it at will: not a warning.
        if peer_id.is_some_and(|p| self.bootnodes.contains(&p)) {
            tracing::warn!(peer = ?peer_id, %error, "dial failed");
        } else {
            tracing::info!(peer = ?peer_id, %error, "dial failed");
        }
        self.hub.publish(status::Event::DialFailed {
            peer_id,
            error: error.to_string(),
        });
    }

    /// The NAT verdict changed: a node not known to be public holds relay slots (taken
    /// before the verdict, at its bootnodes' identify), a public one gives them back; every
    /// known peer is considered again.
    pub(super) fn on_nat_status(&mut self, status: nat::Status) {
        if self.mode == Mode::Peer {
            if status == nat::Status::Public {
                self.release_relay_slots();
            } else {
                self.reserve_relay_slots();
            }
        }
        self.reach_all();
    }

    pub(super) fn on_intro(&mut self, event: intro::Event) {
        match event {
            intro::Event::Answered {
                target,
                via,
                outcome,
                detail,
            } => {
                let target_node_id = hex::encode(target.raw());
                if outcome == intro::Outcome::Dialing {
                    tracing::info!(%target_node_id, bootnode = %via, "introduced: the peer is dialing us");
                } else {
                    tracing::warn!(%target_node_id, bootnode = %via, outcome = outcome.label(), %detail, "introduction failed");
                }
                self.hub.publish(status::Event::IntroductionAnswered {
                    target_node_id,
                    via,
                    outcome,
                    detail,
                });
            }
            intro::Event::Introduced {
                requester,
                requester_peer,
                via,
                lan,
                spray,
            } => {
                if spray && self.spray(&requester, requester_peer, via) {
                    return;
                }
                // "Hello Charlie": our outgoing connection opens our NAT for him. It leaves
                // from the listen port, so he sees our advertised address. He asked because
                // he knows he is public (strategy rule 6), or, NAT'd too, he punches towards
                // us at this moment (rule 8): then we dial the one transport he punches on,
                // and our packets find his NAT open.
                let punch = enr_ext::is_natted(&requester);
                let mut addrs = if punch {
                    strategy::punch_addrs(self.record.enr(), &requester, requester_peer)
                } else {
                    enr_ext::multiaddrs(&requester, requester_peer)
                };
                // Behind one NAT (intro rule 6), its LAN addresses too, where they are on
                // one of our own networks: a NAT that does not hairpin drops what we send
                // to its public side.
                let ours: Vec<ip_group::Group> = self
                    .swarm
                    .listeners()
                    .filter_map(ip_group::Group::of_addr)
                    .collect();
                let on_link = lan
                    .into_iter()
                    .filter(|a| ip_group::Group::of_addr(a).is_some_and(|g| ours.contains(&g)))
                    .map(|a| a.with(Protocol::P2p(requester_peer)));
                addrs.extend(on_link);
                // The behaviour takes no record without an address (intro rule 4); were one
                // to come, a dial without addresses would go wherever another behaviour
                // knows the peer at, which the bootnode vouched for nowhere.
                if addrs.is_empty() {
                    tracing::debug!(peer = %requester_peer, bootnode = %via, "introduced to a peer with no address; not dialing");
                    return;
                }
                tracing::info!(peer = %requester_peer, bootnode = %via, addrs = ?addrs, "introduced to a peer; dialing it");
                self.vouch(&requester, requester_peer);
                self.hub.publish(status::Event::Introduced {
                    peer_id: requester_peer,
                    via,
                });
                let opts = DialOpts::peer_id(requester_peer).addresses(addrs).build();
                let id = opts.connection_id();
                if self.dial(opts, requester_peer, false) && punch {
                    self.counters.punches_tried += 1;
                    self.reach
                        .punch_dialing(id, requester_peer, None, Instant::now());
                }
            }
            intro::Event::Served {
                requester,
                target,
                outcome,
            } => {
                tracing::info!(%requester, target_peer = %target, outcome = outcome.label(), "introduction served");
                self.counters.introductions_served += 1;
                self.hub
                    .publish(status::Event::IntroductionServed { requester, target });
            }
            intro::Event::Refused { .. } => {}
        }
    }

    pub(super) fn on_dcutr(&mut self, event: dcutr::Event) {
        let peer = event.remote_peer_id;
        self.counters.punches_tried += 1;
        match event.result {
            Ok(connection) => {
                self.counters.punches_succeeded += 1;
                self.reach.punch_done(&peer);
                tracing::info!(%peer, "hole punch succeeded");
                self.hub.publish(status::Event::HolePunch {
                    peer_id: peer,
                    succeeded: true,
                    error: None,
                });
                // The direct connection replaces the relayed one, which would otherwise hold
                // a circuit on the bootnode for nothing.
                for id in self.connections.relayed_to(&peer, connection) {
                    self.swarm.close_connection(id);
                }
            }
            Err(e) => {
                self.counters.punches_failed += 1;
                let error = e.to_string();
                let retry = self.schedule_punch_retry(peer);
                // Info, not a warning: punches fail often in the wild (about 3 in 10), the
                // relayed connection stays, and a stranger can fail one at will.
                tracing::info!(%peer, %error, retry_in = ?retry, "hole punch failed; keeping the relayed connection");
                self.hub.publish(status::Event::HolePunch {
                    peer_id: peer,
                    succeeded: false,
                    error: Some(error),
                });
            }
        }
    }

    /// Schedules a new circuit (and so a new punch) to `peer` with exponential backoff, when
    /// we are the side that dials circuits (reach-state rule 2). Returns the wait.
    fn schedule_punch_retry(&mut self, peer: PeerId) -> Option<Duration> {
        let via = self.bootnode_via(&peer)?;
        Some(self.reach.punch_failed(peer, via, Instant::now()))
    }

    /// Dials a new circuit to every peer whose retry is due and that is still only relayed
    /// (reach-state rule 3); one we hold no connection to is reached anew, which dials the
    /// circuit again while the strategy still says so (reach-state rule 4).
    pub(super) fn on_punch_retries_due(&mut self) {
        for (peer, via) in self.reach.take_due_punches(Instant::now()) {
            match self.connections.best(&peer) {
                status::Connection::Relayed => {
                    tracing::info!(%peer, "retrying the hole punch over a new circuit");
                    self.dial_relayed(peer, via);
                }
                status::Connection::None => match self.held_record(&peer) {
                    Some(enr) => self.reach(&enr, peer),
                    None => self.reach.punch_done(&peer),
                },
                status::Connection::Direct { .. } => self.reach.punch_done(&peer),
            }
        }
    }

    /// The last connection to a peer we hold a record of was found dead: the strategy
    /// decides anew how to reach it (the path may be back, or another way may work).
    pub(super) fn reach_again(&mut self, peer: PeerId) {
        if let Some(enr) = self.held_record(&peer) {
            tracing::info!(%peer, "connection to peer lost; reaching it anew");
            self.reach(&enr, peer);
        }
    }

    /// The record we hold of `peer`, if any.
    fn held_record(&self, peer: &PeerId) -> Option<Enr> {
        self.swarm
            .behaviour()
            .gossip
            .table()
            .get_by_peer(peer)
            .map(|e| e.enr.clone())
    }
}
