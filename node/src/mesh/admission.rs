//! Admission to the bootnodes' mesh, `/peerfind/mesh/1.0.0`: bootnodes that hold the mesh
//! secret prove it to each other, one request each way per connection run, and the
//! [`Members`] they keep decide who shares records over the mesh.
//!
//! Built on the `request_response` skeleton the ENR exchange and introductions share
//! (`peerfind_behaviours::exchange`), with a prost codec ([`super::protocol`]); [`Admission`]
//! is its rules. It runs on bootnodes only (a peer's swarm does not have it, so it does not
//! list the protocol either); a bootnode without a secret answers proofs with
//! [`Verdict::NoSecret`], which tells the other operator why it is not admitted.

use std::time::Duration;

use libp2p::request_response::{InboundFailure, OutboundFailure, OutboundRequestId};
use libp2p::{PeerId, StreamProtocol};
use peerfind_behaviours::exchange::{self, Exchange, Inbound, Io, Rules};

use super::members::{Members, Verdict};
use super::protocol::{Codec, PROTOCOL, Request};

/// A proof not answered within this time fails; the peer stays outside the mesh until its
/// next connection run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Streams one peer may have open with us at once: a proof each way is all an honest
/// bootnode ever sends.
const MAX_CONCURRENT_STREAMS: usize = 2;

/// What the node acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `peer` proved it holds our mesh secret: a member until its last connection closes.
    Admitted {
        /// The new member.
        peer: PeerId,
    },
    /// `peer`'s proof did not hold, or we hold no secret.
    Refused {
        /// The peer.
        peer: PeerId,
        /// Why.
        verdict: Verdict,
    },
    /// `peer` answered our proof.
    Answered {
        /// The peer.
        peer: PeerId,
        /// Its verdict on us.
        verdict: Verdict,
    },
}

/// The admission behaviour: the shared skeleton with [`Admission`]'s rules.
pub type Behaviour = Exchange<Admission>;

/// The admission protocol's rules and the mesh's [`Members`].
#[derive(Debug)]
pub struct Admission {
    members: Members,
}

/// A bootnode's admission behaviour, keeping `members`.
pub fn behaviour(members: Members) -> Behaviour {
    let settings = exchange::Settings {
        protocol: PROTOCOL,
        request_timeout: REQUEST_TIMEOUT,
        max_concurrent_streams: MAX_CONCURRENT_STREAMS,
    };
    Exchange::with_rules(settings, Admission { members })
}

impl Admission {
    /// The mesh's members.
    pub fn members(&self) -> &Members {
        &self.members
    }

    /// The mesh's members, to count what non-members send.
    pub fn members_mut(&mut self) -> &mut Members {
        &mut self.members
    }

    /// Identify told us `peer`'s protocols: a bootnode that speaks ours gets our proof, once
    /// per connection run (members rule 4).
    pub fn identified<'a>(
        &mut self,
        io: &mut Io<'_, Self>,
        peer: PeerId,
        mut protocols: impl Iterator<Item = &'a StreamProtocol>,
    ) {
        if protocols.any(|p| *p == PROTOCOL)
            && let Some(proof) = self.members.proof_for(peer)
        {
            io.send_request(&peer, Request::Prove(proof));
        }
    }
}

impl Rules for Admission {
    type Codec = Codec;
    type Event = Event;

    fn on_request(&mut self, io: &mut Io<'_, Self>, inbound: Inbound<Self>) {
        let Inbound {
            peer,
            request,
            channel,
        } = inbound;
        let verdict = match request {
            Request::Prove(proof) => self.members.verify(peer, &proof),
            Request::Invalid(violation) => {
                tracing::debug!(%peer, %violation, "malformed mesh proof");
                self.members.verify(peer, &[])
            }
        };
        io.send_response(channel, verdict);
        io.report(match verdict {
            Verdict::Admitted => Event::Admitted { peer },
            verdict => Event::Refused { peer, verdict },
        });
    }

    fn on_response(
        &mut self,
        io: &mut Io<'_, Self>,
        peer: PeerId,
        _id: OutboundRequestId,
        verdict: Verdict,
    ) {
        io.report(Event::Answered { peer, verdict });
    }

    fn on_outbound_failure(
        &mut self,
        _io: &mut Io<'_, Self>,
        peer: PeerId,
        _id: OutboundRequestId,
        error: OutboundFailure,
    ) {
        tracing::debug!(%peer, %error, "mesh proof not answered");
    }

    fn on_inbound_failure(&mut self, _io: &mut Io<'_, Self>, peer: PeerId, error: InboundFailure) {
        tracing::debug!(%peer, %error, "mesh proof not read");
    }

    fn on_disconnected(&mut self, peer: PeerId) {
        self.members.disconnected(&peer);
    }
}
