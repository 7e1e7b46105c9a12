//! The own record and what changes it: the first diagram (a peer tells us the address it
//! sees, and the record takes it with seq + 1), the third (the NAT verdict sets or clears the
//! `nat` flag), and a bootnode's own listen addresses.

use std::collections::HashMap;

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol, swarm::ConnectionId};
use peerfind_behaviours::enr_ext::{self, NatMapping, Transport};

use super::{Mode, Node};
use crate::diag::netcheck::Mapping;
use crate::reach::confirm::{Confirmed, Outcome, Own, Seen, Witness};
use crate::reach::nat;
use crate::record::data_dir::BOOTNODE_FILE;
use crate::record::enr::Content;
use crate::status;
use crate::upkeep::connections::Observation;
use crate::upkeep::listeners;

/// How long strategy rule 8 waits, after our first translated address, for the other
/// configured bootnodes' reports (one may still be connecting): they tell our NAT's mapping.
/// Bounded, so a bootnode that is down delays a punch once, by this much.
const REPORT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl Node {
    /// Whether strategy rule 8 waits for a report of our address: a configured bootnode
    /// connected from our listen port has not sent it yet (one identify round trip), or,
    /// within [`REPORT_WAIT`] of our first translated address, a configured bootnode has
    /// sent none at all.
    pub(super) fn report_pending(&self) -> bool {
        let bootnodes: Vec<PeerId> = self.bootnodes.iter().map(|b| b.peer_id).collect();
        if bootnodes.iter().any(|b| self.connections.report_pending(b)) {
            return true;
        }
        let waiting = self
            .report_wait
            .is_some_and(|t| tokio::time::Instant::now() < t);
        waiting
            && bootnodes.iter().any(|b| {
                !self
                    .connections
                    .reports_of(b)
                    .iter()
                    .any(|(_, seen)| seen.is_some())
            })
    }

    /// A peer told us, through identify, the address it sees our connection come from.
    pub(super) fn on_observed(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        observed: &Multiaddr,
    ) {
        let (transport, leg) = match self.connections.observation(connection) {
            Observation::Unknown => return,
            Observation::FreshPort => {
                tracing::debug!(%peer, %observed, "ignoring the address seen on a connection from a fresh port");
                return;
            }
            Observation::Direct(transport, leg) => (transport, leg),
        };
        let Some(reported) = self.connections.reported(connection, observed) else {
            return;
        };
        let bootnode = self.bootnodes.contains(&peer);
        tracing::debug!(%peer, %observed, bootnode, "peer reported our address");
        if bootnode {
            self.take_nat_mapping();
            // Strategy rule 8 waits while a bootnode's report is pending: this one may have
            // been the last (a verdict it gives considers every peer again in `take_confirmed`
            // too; a second circuit dial is not started).
            if self.nat.status().0 == nat::Status::Private {
                self.reach_all();
            }
        }
        if self.fixed_external() {
            return;
        }
        let seen = Seen {
            peer,
            bootnode,
            transport,
            leg,
            from: reported.from,
            changed: reported.changed,
        };
        let listen: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
        let own = Own {
            listen: &listen,
            bootnode: self.mode == Mode::Bootnode,
        };
        let now = tokio::time::Instant::now();
        match self.confirmations.observe(seen, observed, own, now) {
            Outcome::Confirmed(confirmed) => self.take_confirmed(confirmed),
            Outcome::Counted | Outcome::Changed => {}
            Outcome::Deferred(at) => tracing::info!(
                %peer, %observed, wait = ?at.saturating_duration_since(now),
                "observed address confirmed, but the record moved often lately: it waits"
            ),
            Outcome::NotTaken(reason) => {
                self.hub.publish(status::Event::ObservedAddressIgnored {
                    peer_id: peer,
                    addr: observed.clone(),
                    reason,
                });
            }
        }
    }

    /// What the configured bootnodes saw of our listen ports (netcheck's rules 1 to 3) tells
    /// how our NAT maps them; the record carries it beside the `nat` flag, so a peer picks
    /// punch or relay up front (strategy rule 8). Fewer than two reports leave the last
    /// verdict as it was: a bootnode that went away does not make the NAT unknown again.
    fn take_nat_mapping(&mut self) {
        if self.mode != Mode::Peer {
            return;
        }
        let found: Vec<(Transport, NatMapping)> = self
            .netcheck()
            .transports
            .into_iter()
            .filter_map(|t| match t.mapping {
                Mapping::EndpointIndependent(..) => {
                    Some((t.transport, NatMapping::EndpointIndependent))
                }
                Mapping::VariesByDestination(_) => {
                    Some((t.transport, NatMapping::VariesByDestination))
                }
                Mapping::Unknown(_) => None,
            })
            .collect();
        if found.is_empty() {
            return;
        }
        let said: Vec<String> = found
            .iter()
            .map(|(t, m)| format!("{} {m}", t.name()))
            .collect();
        let reason = format!("bootnodes saw how our NAT maps: {}", said.join(", "));
        self.change_record(&reason, |c| {
            for (transport, mapping) in found {
                *c.mapping_mut(transport) = Some(mapping);
            }
        });
    }

    /// Confirmations that waited for the record's move budget (confirm rule 11) are due.
    pub(super) fn on_confirmations_due(&mut self) {
        for confirmed in self.confirmations.due(tokio::time::Instant::now()) {
            self.take_confirmed(confirmed);
        }
    }

    /// A newly confirmed address goes into the record (seq + 1), with the NAT verdict it may
    /// give (NAT rule 5) in the same update.
    fn take_confirmed(&mut self, confirmed: Confirmed) {
        let mut addr = Multiaddr::from(confirmed.socket.ip());
        match confirmed.transport {
            Transport::Tcp => addr.push(Protocol::Tcp(confirmed.socket.port())),
            Transport::Quic => {
                addr.push(Protocol::Udp(confirmed.socket.port()));
                addr.push(Protocol::QuicV1);
            }
        }
        let reason = match confirmed.by {
            Witness::Bootnode(p) => format!("observed address confirmed by bootnode {p}"),
            Witness::Groups(n) => {
                format!("observed address confirmed by peers in {n} networks")
            }
        };
        tracing::info!(address = %addr, %reason, "external address confirmed");
        // NAT rule 5 (a fast signal, off with AutoNAT): a translated address is the verdict,
        // set with the address, so peers never see it unflagged. Only
        // a configured bootnode's word gives it.
        let listen: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
        let own = Own {
            listen: &listen,
            bootnode: self.mode == Mode::Bootnode,
        };
        let translated = !own.has_ip(confirmed.socket.ip());
        let fast = self.mode == Mode::Peer && self.config.autonat;
        let verdict = fast && matches!(confirmed.by, Witness::Bootnode(_));
        if verdict && translated && self.report_wait.is_none() {
            self.report_wait = Some(tokio::time::Instant::now() + REPORT_WAIT);
        }
        let change = if verdict {
            let now = tokio::time::Instant::now();
            self.nat
                .address_confirmed(addr.clone(), confirmed.by, translated, now)
        } else {
            None
        };
        // The record takes the observed address at once (the first diagram). The swarm's
        // external addresses mean "verified reachable": with AutoNAT on, its dial-back
        // confirms them (an address added here would never be tested, since the swarm
        // drops candidates it already holds); without it, we trust the observation.
        if !self.config.autonat {
            self.swarm.add_external_address(addr);
        }
        let (ip, port) = (confirmed.socket.ip(), confirmed.socket.port());
        // The verdict and the address go into one update: peers never see the address
        // unflagged, nor the flag without the address a punch needs (strategy rule 8).
        let natted = change.as_ref().map(|c| c.to == nat::Status::Private);
        let reason = match &change {
            Some(change) => {
                self.report_nat_change(change);
                format!("{reason}; {}", change.reason)
            }
            None => reason,
        };
        // Mapping rule 4: a verified port mapping keeps its transport's record address.
        let keep_address = self.port_mapping.holds(confirmed.transport);
        self.change_record(&reason, |c| {
            if !keep_address {
                c.set_socket(ip, port, confirmed.transport);
            }
            if let Some(natted) = natted {
                c.nat = natted;
            }
        });
        match change {
            Some(change) => self.on_nat_status(change.to),
            // Strategy rules 6 and 8 may now ask for introductions (and punch), with this
            // address in our record.
            None if verdict => self.reach_all(),
            None => {}
        }
    }

    /// An AutoNAT dial-back's result: NAT detection's fast signal.
    pub(super) fn on_autonat(&mut self, event: libp2p::autonat::v2::client::Event) {
        let reachable = event.result.is_ok();
        // A relayed address (`…/p2p-circuit`) is reachable through the relay by design; it
        // says nothing about our own address, so it is no NAT verdict.
        if enr_ext::socket_of(&event.tested_addr).is_none() {
            tracing::debug!(addr = %event.tested_addr, reachable, "ignored AutoNAT test of a relayed address");
            return;
        }
        tracing::info!(
            addr = %event.tested_addr, server = %event.server, reachable,
            error = ?event.result.as_ref().err().map(|e| e.to_string()), "AutoNAT test done"
        );
        self.hub.publish(status::Event::AutonatTested {
            addr: event.tested_addr.clone(),
            server: event.server,
            reachable,
            error: event.result.err().map(|e| e.to_string()),
        });
        if self.on_mapping_tested(&event.tested_addr, event.server, reachable) {
            return;
        }
        // NAT rule 3 weighs a failure only on an IP a configured bootnode saw us at.
        let vouched = enr_ext::socket_of(&event.tested_addr)
            .is_some_and(|(ip, ..)| self.confirmations.bootnode_saw(ip));
        let change = self.nat.autonat_result(
            event.tested_addr,
            event.server,
            nat::Tested { reachable, vouched },
            tokio::time::Instant::now(),
        );
        self.on_nat_change(change);
    }

    /// Logs a NAT status change once, and sets or clears the `nat` flag ("Update: NAT").
    pub(super) fn on_nat_change(&mut self, change: Option<nat::Change>) {
        let Some(change) = change else { return };
        self.report_nat_change(&change);
        let natted = change.to == nat::Status::Private;
        self.change_record(&change.reason.to_string(), |c| c.nat = natted);
        self.on_nat_status(change.to);
    }

    /// Logs a NAT status change and tells the API's watchers.
    fn report_nat_change(&self, change: &nat::Change) {
        tracing::info!(
            from = %change.from, to = %change.to, reason = %change.reason, "NAT status changed"
        );
        self.hub.publish(status::Event::NatStatusChanged {
            from: change.from,
            to: change.to,
            reason: change.reason.to_string(),
        });
    }

    /// Changes the own record and, when it changed, announces it ("Update: …").
    pub(super) fn change_record(&mut self, reason: &str, change: impl FnOnce(&mut Content)) {
        match self.record.update(change) {
            Ok(true) => {
                let enr = self.record.enr().clone();
                tracing::info!(
                    seq = enr.seq(), ip = ?enr.ip4(), tcp = ?enr.tcp4(), quic = ?enr_ext::quic4(&enr),
                    ip6 = ?enr.ip6(), nat = enr_ext::is_natted(&enr), reason, enr = %enr.to_base64(),
                    "local record updated"
                );
                let local = *self.swarm.local_peer_id();
                self.hub.publish(status::Event::OwnRecordChanged {
                    seq: enr.seq(),
                    enr: enr.to_base64(),
                    addrs: enr_ext::multiaddrs(&enr, local)
                        .into_iter()
                        .map(super::report::strip_p2p)
                        .collect(),
                    nat: enr_ext::is_natted(&enr),
                    reason: reason.to_owned(),
                });
                self.swarm
                    .behaviour_mut()
                    .intro
                    .set_local_record(enr.clone());
                self.swarm.behaviour_mut().gossip.set_local_record(enr);
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, reason, "cannot update the local record"),
        }
    }

    /// Addresses set by `--external-addr`: observed ones never replace them.
    fn fixed_external(&self) -> bool {
        !self.config.external_addr.is_empty()
    }

    /// A bootnode has nobody to tell it its address: unless `--external-addr` says, it
    /// advertises the address it listens on (listeners rule 3). Prints and stores its record
    /// and addresses whenever they change (listeners rule 4).
    pub(super) fn advertise_listen_addrs(&mut self) {
        if !self.fixed_external() {
            let listen: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
            let chosen: HashMap<Transport, Multiaddr> = listeners::advertised(&listen);
            let sockets: Vec<_> = chosen.values().filter_map(enr_ext::socket_of).collect();
            let replaced: Vec<Multiaddr> = self
                .swarm
                .external_addresses()
                .filter(|a| !chosen.values().any(|c| c == *a))
                .cloned()
                .collect();
            for addr in replaced {
                self.swarm.remove_external_address(&addr);
            }
            for addr in chosen.into_values() {
                self.swarm.add_external_address(addr);
            }
            self.change_record("bootnode advertises its listen addresses", |c| {
                for (ip, port, transport) in sockets {
                    c.set_socket(ip, port, transport);
                }
            });
        }
        if !self.listeners.advertise(self.record.enr().seq()) {
            return;
        }
        let enr = self.record.enr();
        let peer = *self.swarm.local_peer_id();
        let mut lines = vec![enr.to_base64()];
        lines.extend(
            enr_ext::multiaddrs(enr, peer)
                .iter()
                .map(ToString::to_string),
        );
        let text = lines.join("\n") + "\n";
        print!("{text}");
        if let Err(e) = self
            .data_dir
            .write_atomic(BOOTNODE_FILE, text.as_bytes(), 0o644)
        {
            tracing::warn!(error = %e, "cannot write the bootnode file");
        }
        tracing::info!(
            enr = %enr.to_base64(), addrs = ?lines[1..].to_vec(),
            file = %self.data_dir.path().join(BOOTNODE_FILE).display(), "bootnode ready"
        );
    }
}
