//! Whether the node is behind a NAT: the third diagram, "Hmm no strangers. Must be a NAT."
//!
//! Two signals, combined by these rules (first match wins, applied on every input):
//! 1. A stranger reached us: an inbound connection, not relayed, from a peer that is not a
//!    configured bootnode, that we had not dialed, and that we are not (or were not a moment
//!    ago) relayed to, since a hole punch's connection may arrive inbound. Nobody can do that
//!    to a node behind a NAT, so the node is **Public**, whatever was believed before.
//! 2. AutoNAT confirmed one of our addresses: a server dialed us back there, and no NAT
//!    translates our address (rule 5 saw it untranslated, or has not spoken yet). **Public**.
//!    Behind a translating NAT a dial-back proves nothing about strangers: it comes from a
//!    server we are connected to, so from an IP we sent to, and an address-restricted NAT
//!    lets anything from such an IP in, from any port. It cannot tell a full cone from that,
//!    and a node judged public behind one is dialed straight by peers whose packets its NAT
//!    drops. So under translation only rule 1 (a stranger reached us) or rule 6 (a verified
//!    port mapping) makes us Public, and a Public verdict rule 2 gave before the translation
//!    was seen is taken back by rule 5.
//! 3. AutoNAT found one of our addresses unreachable, and no address has been confirmed:
//!    **Private**. This is the fast signal (seconds); a confirmed address (rule 2) outranks it,
//!    since a node with one reachable address is reachable. Only an address on an IP a
//!    configured bootnode saw us at counts ([`crate::reach::confirm::Confirmations::bootnode_saw`]):
//!    AutoNAT tests every address any peer names (identify hands each observed address to the
//!    swarm as a candidate), so a stranger naming an address nobody can reach would otherwise
//!    make us private; and a bootnode, which has no configured bootnodes unless meshed, never
//!    flags itself from what strangers say.
//! 4. The design note's heuristic: [`Config::window`] (default 120 s) after the first
//!    bootnode that tells strangers of us connected, a node still Unknown (no stranger, no
//!    AutoNAT verdict) becomes **Private**. It needs no one's help, and so is the fallback
//!    when AutoNAT has no server or gives no verdict (as for NAT'd TCP addresses with some
//!    servers). A bootnode tells strangers of us when it gossips records (its identify lists
//!    peerfind's record exchange); one that does not (a plain libp2p bootnode) opens no
//!    window: no stranger would come whatever our NAT, so silence would prove nothing, and
//!    the node stays Unknown unless another rule decides.
//! 5. A NAT translated our address: a configured bootnode's confirmed observation (on a
//!    connection from our listen port) puts us on an IP that none of our interfaces has. An
//!    address confirmed by observers' groups alone ([`Witness::Groups`]) is no verdict, nor
//!    does it say whether we are translated: strangers in a few networks could claim any IP,
//!    and the verdict would flag a public node. **Private**,
//!    one identify round trip after the first bootnode connection, unless an address was
//!    confirmed reachable (rule 2) or we are Public (rule 1). Loss and delay only postpone
//!    the observation; they cannot fake a translation. A translating NAT that still lets
//!    strangers in (full cone, a forwarded port, a 1:1 NAT) is revised to Public by rule 1,
//!    when a stranger reaches us, or by rule 6 for a port it mapped for us; not by rule 2
//!    (see there), and rule 5 never undoes those two. An untranslated observation is no
//!    verdict (a firewall may still drop strangers): only AutoNAT's dial-back makes that node
//!    Public, but the strategy may act on it ([`Detector::translated`]).
//! 6. A port mapping the router granted, and that a dial-back reached, makes the node
//!    **Public** at the mapped address ([`Detector::mapping_verified`]), whatever was believed
//!    before, translation included. A forwarded port is not a filter state: unlike a dial-back
//!    to the NAT's own mapping of our listen port, which an address-restricted NAT lets
//!    through from any IP we sent to, it lets in whoever comes, so the dial-back proves
//!    strangers reach us. The caller decides that the tested address is the mapped one (the
//!    port-mapping wiring tests it as an address of its own, `crate::igd::candidate`); rule 2
//!    is not asked.
//! 7. Otherwise the status stays as it is; it starts **Unknown**.
//!
//! Each change is reported once, with the signal that caused it and when. The `nat` flag in
//! the record follows the status: set when Private, removed when Public.
//!
//! Time is passed in, and the window's deadline is read by the caller, so the rules are
//! tested with tokio's paused clock.

use std::fmt;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::time::Instant;

use crate::reach::confirm::Witness;

/// Default [`Config::window`]: the design note's 2 minutes.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(120);

/// Settings of NAT detection.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// How long after the first bootnode connection a stranger has to reach us before we
    /// suspect a NAT (rule 4). Default: [`DEFAULT_WINDOW`].
    pub window: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            window: DEFAULT_WINDOW,
        }
    }
}

/// What the node believes about its reachability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// No evidence yet.
    Unknown,
    /// Strangers can reach us at our advertised address.
    Public,
    /// Strangers cannot reach us: we are behind a NAT (or a firewall).
    Private,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Unknown => "unknown",
            Status::Public => "public",
            Status::Private => "private",
        })
    }
}

/// The evidence behind a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Nothing happened yet.
    Start,
    /// Rule 1.
    StrangerReachedUs {
        /// The stranger.
        peer: PeerId,
    },
    /// Rule 2.
    AutonatReachable {
        /// The address a server dialed us back at.
        addr: Multiaddr,
        /// The server.
        server: PeerId,
    },
    /// Rule 3.
    AutonatUnreachable {
        /// The address the server could not reach.
        addr: Multiaddr,
        /// The server.
        server: PeerId,
    },
    /// Rule 4.
    NoStrangerWithin {
        /// The window that passed.
        window: Duration,
    },
    /// Rule 6.
    PortMappingVerified {
        /// The mapped address the server dialed us back at.
        addr: Multiaddr,
        /// The server.
        server: PeerId,
    },
    /// Rule 5.
    AddressTranslated {
        /// Our address as the peer saw it.
        addr: Multiaddr,
        /// The peer that saw it.
        seen_by: PeerId,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Start => write!(f, "no evidence yet"),
            Reason::StrangerReachedUs { peer } => {
                write!(f, "stranger {peer} connected to us unsolicited")
            }
            Reason::AutonatReachable { addr, server } => {
                write!(f, "AutoNAT server {server} reached us at {addr}")
            }
            Reason::AutonatUnreachable { addr, server } => {
                write!(f, "AutoNAT server {server} could not reach us at {addr}")
            }
            Reason::PortMappingVerified { addr, server } => write!(
                f,
                "our router forwards {addr} to us, and AutoNAT server {server} reached us there"
            ),
            Reason::AddressTranslated { addr, seen_by } => write!(
                f,
                "a NAT translated our address: {seen_by} sees us at {addr}, an IP none of our interfaces has"
            ),
            Reason::NoStrangerWithin { window } => write!(
                f,
                "no stranger reached us within {} s of meeting a bootnode",
                window.as_secs()
            ),
        }
    }
}

/// A status change, to log and act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The status before.
    pub from: Status,
    /// The status now.
    pub to: Status,
    /// Why.
    pub reason: Reason,
}

/// How an AutoNAT test of one of our addresses ended (rules 2 and 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tested {
    /// The server's dial-back reached us.
    pub reachable: bool,
    /// A configured bootnode saw us on the tested address's IP (rule 3).
    pub vouched: bool,
}

/// The NAT-detection state machine. See the module doc for its rules.
#[derive(Debug)]
pub struct Detector {
    config: Config,
    status: Status,
    reason: Reason,
    since: Instant,
    /// When the window of rule 4 closes; set by the first bootnode connection.
    deadline: Option<Instant>,
    /// Whether AutoNAT ever confirmed an address (rules 3 and 5 defer to it).
    reachable_addr: bool,
    /// Whether the last confirmed observation of our address was translated (rule 5); `None`
    /// before the first.
    translated: Option<bool>,
    /// Whether a dial-back reached a port our router mapped for us (rule 6): rule 5 never
    /// takes that back.
    mapped: bool,
}

impl Detector {
    /// A detector that knows nothing yet.
    pub fn new(config: Config, now: Instant) -> Self {
        Self {
            config,
            status: Status::Unknown,
            reason: Reason::Start,
            since: now,
            deadline: None,
            reachable_addr: false,
            translated: None,
            mapped: false,
        }
    }

    /// Whether a NAT translates our address, from the last confirmed observation (rule 5):
    /// `Some(false)` says nothing stands between us and the peers that saw us but perhaps a
    /// firewall; `None` that nobody has seen us yet.
    pub fn translated(&self) -> Option<bool> {
        self.translated
    }

    /// Rule 5: `by` confirmed that we come from `addr`, which is (`translated`) or is not an
    /// IP of one of our interfaces. Only a configured bootnode's word counts.
    pub fn address_confirmed(
        &mut self,
        addr: Multiaddr,
        by: Witness,
        translated: bool,
        now: Instant,
    ) -> Option<Change> {
        let Witness::Bootnode(seen_by) = by else {
            return None;
        };
        self.translated = Some(translated);
        if translated && self.reachable_addr && !self.mapped {
            // Rule 2 spoke before we knew of the NAT: its dial-back is no proof behind one.
            // A verified mapping's is (rule 6).
            self.reachable_addr = false;
        }
        let public_by_stranger = matches!(self.reason, Reason::StrangerReachedUs { .. });
        if !translated || public_by_stranger || self.mapped {
            return None;
        }
        self.set(
            Status::Private,
            Reason::AddressTranslated { addr, seen_by },
            now,
        )
    }

    /// The current status, its reason and since when.
    pub fn status(&self) -> (Status, &Reason, Instant) {
        (self.status, &self.reason, self.since)
    }

    /// When [`Detector::on_deadline`] is due, if a window is open.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// A bootnode that tells strangers of us (it gossips records) is connected: the first one
    /// opens the window (rule 4).
    pub fn bootnode_connected(&mut self, now: Instant) {
        if self.deadline.is_none() && self.status == Status::Unknown {
            self.deadline = Some(now + self.config.window);
        }
    }

    /// Rule 1.
    pub fn stranger_connected(&mut self, peer: PeerId, now: Instant) -> Option<Change> {
        self.deadline = None;
        self.set(Status::Public, Reason::StrangerReachedUs { peer }, now)
    }

    /// Rules 2 and 3: an AutoNAT test of `addr` by `server` ended.
    pub fn autonat_result(
        &mut self,
        addr: Multiaddr,
        server: PeerId,
        Tested { reachable, vouched }: Tested,
        now: Instant,
    ) -> Option<Change> {
        if reachable {
            if self.translated == Some(true) {
                // Rule 2: behind a translating NAT a dial-back is no proof.
                return None;
            }
            self.reachable_addr = true;
            self.deadline = None;
            return self.set(
                Status::Public,
                Reason::AutonatReachable { addr, server },
                now,
            );
        }
        if !vouched || self.reachable_addr || self.status == Status::Public {
            return None;
        }
        self.deadline = None;
        self.set(
            Status::Private,
            Reason::AutonatUnreachable { addr, server },
            now,
        )
    }

    /// Rule 6: `server`'s dial-back reached us at `addr`, a port our router mapped for us.
    /// Counts as a reachable address for rule 3, and rule 5 never takes it back.
    pub fn mapping_verified(
        &mut self,
        addr: Multiaddr,
        server: PeerId,
        now: Instant,
    ) -> Option<Change> {
        self.reachable_addr = true;
        self.mapped = true;
        self.deadline = None;
        self.set(
            Status::Public,
            Reason::PortMappingVerified { addr, server },
            now,
        )
    }

    /// Rule 4: the window closed. Call at [`Detector::deadline`].
    pub fn on_deadline(&mut self, now: Instant) -> Option<Change> {
        let due = self.deadline.is_some_and(|d| d <= now);
        if !due {
            return None;
        }
        self.deadline = None;
        if self.status != Status::Unknown {
            return None;
        }
        self.set(
            Status::Private,
            Reason::NoStrangerWithin {
                window: self.config.window,
            },
            now,
        )
    }

    fn set(&mut self, to: Status, reason: Reason, now: Instant) -> Option<Change> {
        if to == self.status {
            return None;
        }
        let from = std::mem::replace(&mut self.status, to);
        self.reason = reason.clone();
        self.since = now;
        Some(Change { from, to, reason })
    }
}

#[cfg(test)]
mod tests;
