//! How the node reaches a peer it learned of: the connection strategy, in one place.
//!
//! Rules, first match wins:
//! 1. A bootnode does not dial the peers it gossips about: it is a meeting point, and its
//!    peers come to it.
//! 2. A peer we have a direct connection to needs nothing; one we reach only through a relay
//!    is left to the hole punch (DCUtR) and its retries.
//! 3. At `--max-peers` connected peers we dial no more.
//! 4. A public record (no `nat` flag) is dialed directly at every address it gives; without
//!    an address it is kept only. Unless we know strangers can reach us, the dial leaves from
//!    a fresh port, not the listen port: a record without the flag may still belong to a
//!    node behind a NAT that has not found out yet, and a dial to it that is never answered
//!    leaves an entry in our own NAT for the listen port and that peer. A later hole punch
//!    between the two must use exactly that pair of ports, and a TCP one then fails: the NAT
//!    judges the punch's packets against the dead dial's sequence numbers and drops them.
//!    The dial does not wait for another one to the peer (a punch's, which may hang while
//!    the record turns public through a port mapping); one such dial at a time.
//! 5. A NAT'd record cannot be dialed: strangers' connections die at its NAT ("Hmm Alice
//!    didn't respond"). Without a connected bootnode to help, it is kept only.
//! 6. A NAT'd record while we know we are public: ask a bootnode to introduce us; the peer
//!    dials us back from its listen port (connection reversal). While our own status is not
//!    known yet we ask only if a bootnode saw our address untranslated (NAT rule 5: no NAT
//!    between us and it; AutoNAT's dial-back, which makes us Public, takes a few round trips
//!    more). Otherwise we wait: if we are behind a NAT too, the peer's dial back would die at
//!    our NAT and leave the entry rule 4 avoids in its NAT.
//! 7. A NAT'd record while we are behind a NAT too: the one of the two with the smaller
//!    PeerId acts, the other waits for it (two at once would start two hole punches racing
//!    for the same ports). Where rule 10 applies, its guessing side acts instead.
//! 8. Rule 7's actor punches through the introduction when both records give an address on
//!    a transport both speak ([`punch_addrs`]: QUIC first, since UDP punches more reliably
//!    and both sides must pick the same one): it asks a bootnode for an introduction and at
//!    once sends towards the peer's address (a dial in the listener's role, which opens our
//!    NAT for the peer and waits for its connection); the peer, introduced, dials our
//!    address from its listen port and finds our NAT open. One round trip through the
//!    bootnode and one direct, where a relayed connection first needs a circuit, its
//!    security handshake and DCUtR's exchange. QUIC's roles are settled by the
//!    introduction: the introduced peer is the QUIC client. While the punch is in flight
//!    nothing more is done; while our record has no address yet though a bootnode saw us
//!    translated (NAT rule 5 gives the verdict just before the address goes in), we wait
//!    for it. A transport on which both records say their NAT maps a port per destination
//!    (`nat-quic`, `nat-tcp`: two bootnodes saw different ports) is not punched: each side's
//!    packets leave from a port the other never learns, so neither the introduction's punch
//!    nor DCUtR's can meet, and rule 9 relays up front instead of after the punch's wait.
//!    While a configured bootnode connected from our listen port has not yet told us the
//!    address it sees (one identify round trip), or, for a second after our first
//!    translated address, one has told us nothing yet (it may still be connecting), our own
//!    mapping may be about to be known: we wait for it. A punch already in flight when the peer's record comes to say so (its
//!    mapping arrived just after its `nat` flag) gives way to rule 9 at once.
//! 9. Otherwise rule 7's actor dials the peer through the bootnode's relay: no common
//!    transport, or a punch through the introduction asked within the last
//!    [`crate::reach::attempts::INTRO_INTERVAL`] (it failed: its fallback, attempts rule 5,
//!    brought us here). The relayed connection is then upgraded by DCUtR's hole punch, or
//!    kept as the fallback.
//! 10. Port guessing ([`guess_role`]): when both records give a QUIC address and ours says
//!     our NAT maps a port per destination while the peer's says its own maps one port for
//!     all (`nat-quic` 2 and 1), the punch of rule 8 cannot meet: the port our NAT gives
//!     the peer is one it never learns. So we act whatever our PeerIds (the peer waits),
//!     and, unless the operator turned guessing off, rule 8's punch becomes a guess
//!     ([`crate::reach::guess`]): we send towards the peer from many ports and the
//!     introduction asks it to spray our IP's ports until one meets an opening. Its end
//!     and fallback are rule 8's. A punch started before both records said how their NATs
//!     map (rule 7 then made the smaller PeerId act, on either side) does not hold the guess
//!     back: that punch cannot meet. A guess is asked at most once per
//!     [`crate::reach::attempts::INTRO_INTERVAL`], apart from plain punches.

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use peerfind_behaviours::enr_ext::{self, Enr, NatMapping};

use crate::reach::nat;
use crate::status::Connection;

/// What to do about a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Dial these addresses from this local port (rule 4).
    Dial {
        /// The record's addresses.
        addrs: Vec<Multiaddr>,
        /// Where the dial leaves from.
        port: Port,
    },
    /// Ask this bootnode for an introduction (rule 6).
    Introduce {
        /// The bootnode.
        via: PeerId,
    },
    /// Ask this bootnode for an introduction and punch towards these addresses (rule 8).
    Punch {
        /// The bootnode.
        via: PeerId,
        /// The peer's addresses on the one transport the punch uses.
        addrs: Vec<Multiaddr>,
    },
    /// Open many ports towards these addresses, then ask this bootnode for an introduction
    /// that makes the peer spray our IP's ports (rule 10).
    Guess {
        /// The bootnode.
        via: PeerId,
        /// The peer's QUIC addresses.
        addrs: Vec<Multiaddr>,
    },
    /// Dial through this bootnode's relay (rule 9).
    Relay {
        /// The bootnode.
        via: PeerId,
    },
    /// Do nothing now, for this reason.
    Keep(Reason),
}

/// The local port a direct dial leaves from (rule 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// The listen port: the peer sees the address we advertise.
    Listen,
    /// A new one, so a dial that fails leaves nothing behind for the listen port.
    Fresh,
}

/// Why a peer is not dialed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Rule 1.
    Bootnode,
    /// Rule 2, a direct connection.
    Connected,
    /// Rule 2, a relayed one.
    Relayed,
    /// Rule 3.
    PeerLimit,
    /// Rule 4.
    NoAddress,
    /// Rule 5.
    NoBootnode,
    /// Rule 6: our own NAT status is not known yet, nor whether our address is translated.
    Undecided,
    /// Rule 7: the peer acts.
    PeerDials,
    /// Rule 8: a punch to the peer is in flight.
    Punching,
}

/// What the strategy needs to know about the node and the peer.
#[derive(Debug, Clone, Copy)]
pub struct Situation<'a> {
    /// Our own record, whose addresses a punch needs (rule 8).
    pub own: Option<&'a Enr>,
    /// Whether we asked for an introduction to the peer within the last
    /// [`crate::reach::attempts::INTRO_INTERVAL`] (rule 9).
    pub asked_recently: bool,
    /// Whether a punch to the peer is in flight (rule 8).
    pub punching: bool,
    /// Whether we asked for an introduction with port guessing's spray within the last
    /// [`crate::reach::attempts::INTRO_INTERVAL`] (rule 10).
    pub guessed_recently: bool,
    /// Our own PeerId.
    pub local: PeerId,
    /// Whether this node is a bootnode.
    pub bootnode: bool,
    /// Our connection to the peer now.
    pub connection: Connection,
    /// Peers we chose: dials under way and connections we dialed (bootnodes and peers that
    /// connected to us not counted), what `--max-peers` caps.
    pub peers: usize,
    /// `--max-peers`.
    pub max_peers: usize,
    /// Our own NAT status.
    pub nat: nat::Status,
    /// Whether a NAT translates our address, once a bootnode saw it (NAT rule 5).
    pub translated: Option<bool>,
    /// Whether a configured bootnode's report of our address is on its way (rule 8).
    pub report_pending: bool,
    /// A connected bootnode to ask or relay through, preferably the one that told us of the
    /// peer.
    pub bootnode_via: Option<PeerId>,
    /// Whether the operator lets us guess ports (rule 10).
    pub port_guessing: bool,
}

/// Our side in port guessing (rule 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuessRole {
    /// Our NAT maps a port per destination: we open many ports and ask for the spray.
    Open,
    /// Our NAT maps one port for all: we spray when the peer asks.
    Spray,
}

/// Our side in port guessing between our record `ours` and the peer's `theirs` (rule 10):
/// both give a QUIC address, and one says its NAT maps a port per destination while the
/// other says one port for all. Both sides compute it from the same two records.
pub fn guess_role(ours: &Enr, theirs: &Enr) -> Option<GuessRole> {
    use enr_ext::Transport::Quic;
    // Port guessing is IPv4's: an IPv6 address is seldom translated.
    let quic = |enr: &Enr| enr.ip4().is_some() && enr_ext::quic4(enr).is_some();
    if !quic(ours) || !quic(theirs) {
        return None;
    }
    match (
        enr_ext::nat_mapping(ours, Quic)?,
        enr_ext::nat_mapping(theirs, Quic)?,
    ) {
        (NatMapping::VariesByDestination, NatMapping::EndpointIndependent) => Some(GuessRole::Open),
        (NatMapping::EndpointIndependent, NatMapping::VariesByDestination) => {
            Some(GuessRole::Spray)
        }
        _ => None,
    }
}

/// Applies the rules (see the module doc) to `enr`, whose key is `peer`'s.
pub fn decide(enr: &Enr, peer: PeerId, now: Situation<'_>) -> Action {
    if now.bootnode {
        return Action::Keep(Reason::Bootnode);
    }
    match now.connection {
        Connection::Direct { .. } => return Action::Keep(Reason::Connected),
        Connection::Relayed => return Action::Keep(Reason::Relayed),
        Connection::None => {}
    }
    if now.peers >= now.max_peers {
        return Action::Keep(Reason::PeerLimit);
    }
    if !enr_ext::is_natted(enr) {
        let addrs = enr_ext::multiaddrs(enr, peer);
        if addrs.is_empty() {
            return Action::Keep(Reason::NoAddress);
        }
        let port = match now.nat {
            nat::Status::Public => Port::Listen,
            nat::Status::Unknown | nat::Status::Private => Port::Fresh,
        };
        return Action::Dial { addrs, port };
    }
    let Some(via) = now.bootnode_via else {
        return Action::Keep(Reason::NoBootnode);
    };
    // Rules 7 and 10: who acts.
    let role = now.own.and_then(|own| guess_role(own, enr));
    let we_act = match role {
        Some(GuessRole::Open) => true,
        Some(GuessRole::Spray) => false,
        None => now.local < peer,
    };
    let guessing = role == Some(GuessRole::Open) && now.port_guessing && !now.guessed_recently;
    match now.nat {
        nat::Status::Public => Action::Introduce { via },
        nat::Status::Unknown if now.translated == Some(false) => Action::Introduce { via },
        nat::Status::Unknown => Action::Keep(Reason::Undecided),
        nat::Status::Private if !we_act => Action::Keep(Reason::PeerDials),
        // Rule 10: a punch started before both records told how their NATs map (ours, or
        // the peer's after its introduction) does not stop a guess; a guess asked lately does.
        nat::Status::Private if now.punching && !guessing => match now.own {
            // The peer's record, updated while we punch, says no punch can meet: relay now
            // rather than at the punch's end.
            Some(own) if punch_addrs(own, enr, peer).is_empty() => Action::Relay { via },
            _ => Action::Keep(Reason::Punching),
        },
        nat::Status::Private => {
            let addrs = match now.own {
                Some(own)
                    if now.translated == Some(true)
                        && enr_ext::multiaddrs(own, now.local).is_empty() =>
                {
                    return Action::Keep(Reason::Undecided);
                }
                Some(_) if now.report_pending && !now.asked_recently => {
                    return Action::Keep(Reason::Undecided);
                }
                Some(own) if guessing || !now.asked_recently => punch_addrs(own, enr, peer),
                _ => Vec::new(),
            };
            if addrs.is_empty() {
                Action::Relay { via }
            } else if guessing {
                Action::Guess { via, addrs }
            } else {
                Action::Punch { via, addrs }
            }
        }
    }
}

/// The addresses of `theirs` (whose key is `peer`'s) a punch between two NAT'd nodes goes to
/// (rule 8): those of QUIC when both records give a QUIC address, else of TCP when both give
/// a TCP one, else none; a transport both records say varies by destination does not count.
/// Both sides compute it from the same two records, so they punch on the same transport;
/// one connection, not one per transport.
pub fn punch_addrs(ours: &Enr, theirs: &Enr, peer: PeerId) -> Vec<Multiaddr> {
    let transports = |enr: &Enr| -> Vec<(enr_ext::Transport, Multiaddr)> {
        enr_ext::multiaddrs(enr, peer)
            .into_iter()
            .filter_map(|a| enr_ext::socket_of(&a).map(|(_, _, t)| (t, a)))
            .collect()
    };
    let (ours_enr, theirs_enr) = (ours, theirs);
    let (ours, theirs) = (transports(ours), transports(theirs));
    for transport in [enr_ext::Transport::Quic, enr_ext::Transport::Tcp] {
        if !ours.iter().any(|(t, _)| *t == transport) {
            continue;
        }
        let varies = |enr: &Enr| {
            enr_ext::nat_mapping(enr, transport) == Some(NatMapping::VariesByDestination)
        };
        if varies(ours_enr) && varies(theirs_enr) {
            continue;
        }
        let addrs: Vec<Multiaddr> = theirs
            .iter()
            .filter(|(t, _)| *t == transport)
            .map(|(_, a)| a.clone())
            .collect();
        if !addrs.is_empty() {
            return addrs;
        }
    }
    Vec::new()
}

/// The addresses of `target` through the relay at each of `relay_addrs` (which end in the
/// relay's `/p2p/…`): `<relay>/p2p-circuit/p2p/<target>`.
pub fn circuit_addrs(relay_addrs: &[Multiaddr], target: PeerId) -> Vec<Multiaddr> {
    relay_addrs
        .iter()
        .map(|a| {
            a.clone()
                .with(Protocol::P2pCircuit)
                .with(Protocol::P2p(target))
        })
        .collect()
}

#[cfg(test)]
mod tests;
