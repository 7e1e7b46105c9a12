//! The ENR exchange's answers to what the skeleton hands it: a request, a response, a
//! failure, a peer that comes or goes, the timer. Beside `mod.rs`, which holds the state and
//! the rules these apply; a child module, so it reads that state without widening it.

use super::*;

impl Rules for Gossip {
    type Codec = Codec;
    type Event = Event;

    fn on_request(&mut self, io: &mut Io<'_, Self>, inbound: Inbound<Self>) {
        let Inbound {
            peer,
            request,
            channel,
        } = inbound;
        // Rate limits (`rate.rs`), before anything is decoded or sampled; peers whose
        // passed-on records we take are not counted.
        if matches!(request, Request::Announce(_) | Request::Find(_))
            && !self.config.trust.trusts(&peer)
            && !self.vouched.contains(&peer)
            && !self
                .rates
                .allow(peer, io.remotes().ips(&peer).next(), Instant::now())
        {
            return self.unproven(io, peer, Unproven::RateLimited, Some(channel));
        }
        // A peer that announces its record or asks for ours speaks the protocol, whatever its
        // identify will say: it gets our gossip from now on. Waiting for identify lost every
        // record that changed in between (a NAT'd peer's flag and address, one round trip
        // after it connected, never reached a peer that had just greeted the bootnode).
        if self.config.await_identify
            && !self.connected.contains(&peer)
            && matches!(request, Request::Announce(_) | Request::Find(_))
        {
            self.greet(io, peer);
        }
        let accepted = match request {
            Request::Announce(bytes) => match Self::check_announced(&bytes, peer) {
                Ok(enr) => match admission::check_announced(&enr, &peer, io.remotes()) {
                    Ok(proven) => {
                        // Table rule 8: the IP its connection proved, or for a record naming
                        // none, the IP its connection comes from.
                        let group = proven
                            .or_else(|| io.remotes().ips(&peer).next())
                            .map_or(Group::NoAddress, Group::of);
                        self.accept(io, enr, peer, Source::Announced, group, peer)
                            .map(|_| ())
                    }
                    Err(unproven) => return self.unproven(io, peer, unproven, Some(channel)),
                },
                Err(v) => Err(v),
            },
            // Rule 4 before any record is decoded: an untrusted push costs no signature check.
            Request::Push(records) => {
                match admission::check_passed_on(&self.config.trust, &self.vouched, &peer) {
                    Ok(()) => self.accept_all(io, peer, records),
                    Err(unproven) => return self.unproven(io, peer, unproven, Some(channel)),
                }
            }
            Request::Invalid(violation) => Err(Violation::Wire(violation)),
            Request::Find(max) => {
                let n = (max as usize).min(MAX_RECORDS_PER_MESSAGE);
                let records = self
                    .table
                    .sample(n + 1)
                    .into_iter()
                    .filter(|e| e.peer_id != peer)
                    .take(n)
                    .map(|e| enr_ext::encode_bytes(&e.enr))
                    .collect();
                io.send_response(channel, Response::Records(records));
                return;
            }
        };
        match accepted {
            Ok(()) => io.send_response(channel, Response::Ack),
            // Counted and logged by `accept`: not the peer's fault.
            Err(v @ Violation::Refused(Refused::GroupFull { .. })) => {
                io.send_response(channel, Response::Reject(v.to_string()));
            }
            Err(v) => self.reject(io, peer, v, Some(channel)),
        }
    }

    fn on_response(
        &mut self,
        io: &mut Io<'_, Self>,
        peer: PeerId,
        id: OutboundRequestId,
        response: Response,
    ) {
        self.announcing.remove(&id);
        if let Some(peer) = self.outboxes.done(&id) {
            self.flush(io, peer);
        }
        match response {
            Response::Ack => {}
            Response::Records(records) => {
                if let Err(unproven) =
                    admission::check_passed_on(&self.config.trust, &self.vouched, &peer)
                {
                    self.unproven(io, peer, unproven, None);
                } else if let Err(v) = self.accept_all(io, peer, records) {
                    self.reject(io, peer, v, None);
                }
            }
            Response::Reject(reason) => {
                tracing::debug!(%peer, %reason, "peer refused our ENR message");
            }
        }
    }

    fn on_outbound_failure(
        &mut self,
        io: &mut Io<'_, Self>,
        peer: PeerId,
        id: OutboundRequestId,
        error: OutboundFailure,
    ) {
        self.on_announce_failed(io, id, &error);
        if let Some(peer) = self.outboxes.done(&id) {
            self.flush(io, peer);
        }
        match &error {
            OutboundFailure::Io(e) => self.on_stream_error(io, peer, e),
            _ => tracing::debug!(%peer, %error, "outbound ENR request failed"),
        }
    }

    fn on_inbound_failure(&mut self, io: &mut Io<'_, Self>, peer: PeerId, error: InboundFailure) {
        match &error {
            InboundFailure::Io(e) => self.on_stream_error(io, peer, e),
            _ => tracing::debug!(%peer, %error, "inbound ENR request failed"),
        }
    }

    fn on_connected(&mut self, io: &mut Io<'_, Self>, peer: PeerId) {
        self.table.connected(peer, Instant::now());
        if !self.config.await_identify {
            self.greet(io, peer);
        }
    }

    fn on_disconnected(&mut self, peer: PeerId) {
        self.table.disconnected(&peer, Instant::now());
        self.connected.remove(&peer);
        self.skipped.remove(&peer);
        self.vouched.remove(&peer);
        self.outboxes.forget(&peer);
    }

    /// Every [`Config::announce_interval`]: expired records go, and our record is announced
    /// again to every connected peer.
    fn poll_timers(&mut self, io: &mut Io<'_, Self>, cx: &mut Context<'_>) -> bool {
        if self.tick.poll_unpin(cx).is_pending() {
            return false;
        }
        self.tick.reset(self.config.announce_interval);
        for id in self.table.expire(Instant::now()) {
            tracing::debug!(node_id = %hex::encode(id.raw()), "record expired");
        }
        self.announce_all(io);
        true
    }
}
