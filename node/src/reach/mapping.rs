//! The ports our router forwards to us (UPnP-IGD, through our client `crate::igd`), and whether a
//! dial-back proved each. Rules, applied on every input:
//!
//! 1. With `--port-mapping` off the state is **Off** and stays so; on, it starts
//!    **Searching** (the IGD client looks for the gateway as the swarm is built).
//! 2. No gateway answered the search: **NoGateway**, which is normal operation (most hosts
//!    have none, or it has UPnP off). A gateway whose own public address is private, shared,
//!    loopback or link-local (it is itself behind a NAT, `crate::igd`): **GatewayNotRoutable**;
//!    a mapping there would not let strangers in, and the IGD client asks for none.
//! 3. The router granted a mapping: **Mapped**; the address is kept, per transport, until a
//!    dial-back to it tells whether it works. Not in the record yet.
//! 4. A dial-back reached the mapped address: **Verified**. The record takes the address for
//!    its transport and NAT rule 6 makes the node Public. A later observation of our address
//!    (identify) does not move that transport's record address away from it.
//! 5. A dial-back did not reach the mapped address, or its renewal failed (the router forgot
//!    it): **Failed**, with why; the address is dropped. Another transport's mapping may still
//!    be verified, and then the state stays Verified.
//!
//! The IGD client renews each lease itself (one hour, renewed every half hour), and keeps
//! renewing a mapping no dial-back reached; the node's shutdown asks it to delete every
//! mapping whenever the router granted one ([`PortMappings::granted`]), a failed one included.
//! A mapping the gateway refuses at first is told only in the client's log: the state then
//! stays Searching.

use std::fmt;

use libp2p::Multiaddr;
use peerfind_behaviours::enr_ext::{self, Transport};

/// Where port mapping stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// `--port-mapping false` (rule 1).
    Off,
    /// Looking for the gateway, or waiting for its answer (rule 1).
    Searching,
    /// No gateway answered (rule 2).
    NoGateway,
    /// The gateway's public address is not routable (rule 2).
    GatewayNotRoutable,
    /// A mapping granted, not yet tested (rule 3).
    Mapped,
    /// A dial-back reached a mapping (rule 4).
    Verified,
    /// A mapping did not work or was lost (rule 5).
    Failed,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Off => "off",
            State::Searching => "searching",
            State::NoGateway => "no_gateway",
            State::GatewayNotRoutable => "gateway_not_routable",
            State::Mapped => "mapped",
            State::Verified => "verified",
            State::Failed => "failed",
        })
    }
}

/// The port-mapping state machine. See the module doc for its rules.
#[derive(Debug)]
pub struct PortMappings {
    state: State,
    /// Why the last change happened, for people.
    detail: String,
    /// Granted mappings per transport, with whether a dial-back reached them. At most one
    /// per transport (the listen port's), so bounded by the two transports.
    mapped: Vec<(Transport, Multiaddr, bool)>,
    /// Whether the router ever granted a mapping: the IGD client then holds it (and renews it)
    /// until the node stops, even one no dial-back reached.
    granted: bool,
}

impl PortMappings {
    /// Rule 1.
    pub fn new(on: bool) -> Self {
        Self {
            state: if on { State::Searching } else { State::Off },
            detail: String::new(),
            mapped: Vec::new(),
            granted: false,
        }
    }

    /// The state and why.
    pub fn state(&self) -> (State, &str) {
        (self.state, &self.detail)
    }

    /// The mapped addresses, and those of them a dial-back reached.
    pub fn addrs(&self) -> (Vec<Multiaddr>, Vec<Multiaddr>) {
        let all = self.mapped.iter().map(|(_, a, _)| a.clone()).collect();
        let verified = self
            .mapped
            .iter()
            .filter(|(.., v)| *v)
            .map(|(_, a, _)| a.clone())
            .collect();
        (all, verified)
    }

    /// Whether the router granted a mapping since the start, which the node's shutdown then
    /// removes (the module doc).
    pub fn granted(&self) -> bool {
        self.granted
    }

    /// Whether the record's address for `transport` is a verified mapping (rule 4).
    pub fn holds(&self, transport: Transport) -> bool {
        self.mapped.iter().any(|(t, _, v)| *t == transport && *v)
    }

    /// Whether `addr` is a granted mapping.
    pub fn is_mapped(&self, addr: &Multiaddr) -> bool {
        self.mapped.iter().any(|(_, a, _)| a == addr)
    }

    /// Rule 2: no gateway.
    pub fn no_gateway(&mut self) -> Option<State> {
        self.set(
            State::NoGateway,
            "no UPnP gateway answered on the LAN, or it named no external IPv4 address".into(),
        )
    }

    /// Rule 2: the gateway is itself behind a NAT.
    pub fn not_routable(&mut self) -> Option<State> {
        self.set(
            State::GatewayNotRoutable,
            "the UPnP gateway's public address is private or shared: it is behind another NAT"
                .into(),
        )
    }

    /// Rule 3: the router mapped `external` for us.
    pub fn mapped(&mut self, external: Multiaddr) -> Option<State> {
        let transport = enr_ext::socket_of(&external)?.2;
        self.granted = true;
        self.mapped.retain(|(t, ..)| *t != transport);
        self.mapped.push((transport, external.clone(), false));
        if self.state == State::Verified {
            return None;
        }
        self.set(State::Mapped, format!("the router maps {external} to us"))
    }

    /// Rule 4: a dial-back reached `external`.
    pub fn verified(&mut self, external: &Multiaddr) -> Option<State> {
        let entry = self.mapped.iter_mut().find(|(_, a, _)| a == external)?;
        entry.2 = true;
        self.set(
            State::Verified,
            format!("a dial-back reached us at {external}"),
        )
    }

    /// Rule 5: `external` did not work, or was lost, because of `why`.
    pub fn failed(&mut self, external: &Multiaddr, why: String) -> Option<State> {
        self.mapped.retain(|(_, a, _)| a != external);
        if self.mapped.iter().any(|(.., v)| *v) {
            return None;
        }
        self.set(State::Failed, format!("{external}: {why}"))
    }

    fn set(&mut self, to: State, detail: String) -> Option<State> {
        if self.state == State::Off {
            return None;
        }
        self.detail = detail;
        (std::mem::replace(&mut self.state, to) != to).then_some(to)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tcp() -> Multiaddr {
        "/ip4/198.51.100.101/tcp/9000".parse().unwrap()
    }

    fn quic() -> Multiaddr {
        "/ip4/198.51.100.101/udp/9000/quic-v1".parse().unwrap()
    }

    #[test]
    fn off_stays_off_whatever_happens() {
        let mut m = PortMappings::new(false);
        assert_eq!(m.no_gateway(), None);
        assert_eq!(m.mapped(tcp()), None);
        assert_eq!(m.state().0, State::Off);
    }

    #[test]
    fn a_mapping_is_held_for_its_transport_only_once_a_dial_back_reached_it() {
        let mut m = PortMappings::new(true);
        assert_eq!(m.state().0, State::Searching);
        assert!(!m.granted());
        assert_eq!(m.mapped(tcp()), Some(State::Mapped));
        assert_eq!(m.mapped(quic()), None, "still Mapped");
        assert!(!m.holds(Transport::Tcp), "not before the dial-back");
        assert!(m.is_mapped(&tcp()));
        assert_eq!(m.verified(&tcp()), Some(State::Verified));
        assert!(m.holds(Transport::Tcp) && !m.holds(Transport::Quic));
        assert_eq!(m.addrs(), (vec![tcp(), quic()], vec![tcp()]));
        assert_eq!(
            m.failed(&quic(), "dial-back failed".into()),
            None,
            "TCP's still works"
        );
        assert_eq!(m.state().0, State::Verified);
        assert_eq!(
            m.failed(&tcp(), "renewal failed".into()),
            Some(State::Failed)
        );
        assert!(!m.holds(Transport::Tcp));
        assert!(m.state().1.contains("renewal failed"));
        assert!(
            m.granted(),
            "the shutdown still removes what the router may hold"
        );
    }

    #[test]
    fn no_gateway_and_an_unroutable_one_say_why() {
        let mut m = PortMappings::new(true);
        assert_eq!(m.no_gateway(), Some(State::NoGateway));
        assert!(m.state().1.contains("no UPnP gateway"));
        let mut m = PortMappings::new(true);
        assert_eq!(m.not_routable(), Some(State::GatewayNotRoutable));
        assert_eq!(m.verified(&tcp()), None, "nothing mapped, nothing verified");
    }
}
