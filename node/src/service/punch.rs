//! Strategy rule 8 carried out: the punch through an introduction between two NAT'd nodes
//! (the asker's dial in the listener's role, the introduced node's dial back, how each ends,
//! and the relay as the asker's fallback), and the LAN addresses it carries behind one NAT.
//! The introduced side's dial starts in [`super::reach`]'s `on_intro`.

use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId};
use peerfind_behaviours::enr_ext::{self, Enr};
use peerfind_behaviours::intro;
use tokio::time::Instant;

use super::Node;
use crate::reach::attempts::{INTRO_PUNCH_WAIT, PunchEnd};
use crate::reach::guess::GUESS_WAIT;
use crate::status;

impl Node {
    /// Our LAN addresses, for a peer whose record names our public IP (behind our NAT): the
    /// introduction carries them, and the bootnode passes them on only when it sees us both
    /// at that IP (intro rule 6). Nobody else ever gets them.
    pub(super) fn lan_addrs_for(&self, enr: &Enr) -> Vec<Multiaddr> {
        let own = self.record.enr();
        let same_ip = (enr.ip4().is_some() && enr.ip4() == own.ip4())
            || (enr.ip6().is_some() && enr.ip6() == own.ip6());
        if !same_ip {
            return Vec::new();
        }
        self.swarm
            .listeners()
            .filter(|a| intro::protocol::lan_addr(a))
            .cloned()
            .collect()
    }

    /// Rule 8 of the strategy: asks `via` to introduce us to `peer` and at once punches
    /// towards its `addrs`: a dial in the listener's role opens our NAT for the peer and
    /// waits for its connection, which the introduction makes it dial (see `on_intro`).
    /// With `spray` (rule 10, our ports opened), the introduction asks it to spray them.
    pub(super) fn punch_introduced(
        &mut self,
        peer: PeerId,
        via: PeerId,
        (addrs, lan): (Vec<Multiaddr>, Vec<Multiaddr>),
        spray: bool,
    ) {
        let Some(target) = enr_ext::node_id(&peer) else {
            return;
        };
        let now = Instant::now();
        if !self.reach.may_ask_for(peer, spray, now) {
            return self.dial_relayed(peer, via);
        }
        tracing::info!(%peer, bootnode = %via, addrs = ?addrs, lan_addrs = lan.len(), spray, "punching through an introduction");
        self.counters.introductions_asked += 1;
        self.hub
            .publish(status::Event::IntroductionAsked { target: peer, via });
        self.swarm
            .behaviour_mut()
            .intro
            .ask(via, target, lan, spray);
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .override_role()
            .condition(PeerCondition::Always)
            .build();
        let id = opts.connection_id();
        if self.dial(opts, peer, false) {
            self.counters.punches_tried += 1;
            let wait = if spray { GUESS_WAIT } else { INTRO_PUNCH_WAIT };
            self.reach
                .punch_dialing_until(id, peer, Some(via), now + wait);
        } else {
            self.dial_relayed(peer, via);
        }
    }

    /// Strategy rule 8's punch (attempts rule 5) ended: reported like DCUtR's, and on the
    /// asking side a failed one falls back to the relay at once (strategy rule 9).
    pub(super) fn on_punch_end(&mut self, end: PunchEnd, error: Option<String>) {
        let peer = end.peer;
        let error = (!end.succeeded).then(|| {
            error.unwrap_or_else(|| "no direct connection within the punch's wait".to_owned())
        });
        if end.succeeded {
            self.counters.punches_succeeded += 1;
            tracing::info!(%peer, "hole punch through the introduction succeeded");
        } else {
            self.counters.punches_failed += 1;
            // Info, as DCUtR's: punches fail often in the wild, and the relay takes over.
            tracing::info!(
                %peer, error = error.as_deref().unwrap_or_default(),
                fallback = end.fall_back_via.is_some(),
                "hole punch through the introduction failed"
            );
        }
        // Guess rule 5, unless a guess is still in flight (this was the plain punch before it).
        if !end.succeeded && !self.reach.punching(&peer) {
            self.close_guessed_listeners(peer);
        }
        self.hub.publish(status::Event::HolePunch {
            peer_id: peer,
            succeeded: end.succeeded,
            error,
        });
        // A guess that followed this punch (strategy rule 10) falls back at its own end.
        if let Some(via) = end.fall_back_via
            && matches!(self.connections.best(&peer), status::Connection::None)
            && !self.reach.punching(&peer)
        {
            self.dial_relayed(peer, via);
        }
    }

    /// Connection `id` opened: when it is a punch dial, its punch succeeded.
    pub(super) fn on_punch_opened(&mut self, id: libp2p::swarm::ConnectionId) {
        if let Some(end) = self.reach.punch_opened(id) {
            self.on_punch_end(end, None);
        }
    }

    /// Punch dials whose wait ended (attempts rule 5).
    pub(super) fn on_punch_deadlines(&mut self) {
        let connections = &self.connections;
        let ends = self
            .reach
            .take_expired_punches(Instant::now(), |p| is_direct(connections.best(p)));
        for end in ends {
            self.on_punch_end(end, None);
        }
    }
}

/// Whether `connection` is a direct one.
pub(super) fn is_direct(connection: status::Connection) -> bool {
    matches!(connection, status::Connection::Direct { .. })
}
