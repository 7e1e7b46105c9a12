//! The guard's eyes in the swarm: a `NetworkBehaviour` with no handler that tells the guard
//! of the node's listen addresses (rule 3) and direct connections (rule 5), and through
//! which the node vouches for the records it took (rule 4). It emits nothing and refuses
//! nothing: the refusing is the transports' ([`super::Guarded`]).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::{
    ConnectionClosed, FromSwarm, NetworkBehaviour, NewListenAddr, THandlerInEvent, ToSwarm, dummy,
};

use peerfind_behaviours::ip_group::ip_of;

use super::Shared;

/// See the module doc.
pub struct Behaviour {
    guard: Shared,
}

impl Behaviour {
    /// Feeds `guard`, which the transports check.
    pub fn new(guard: Shared) -> Self {
        Self { guard }
    }

    /// Rule 4: `peer`'s record, taken with proof, names `ips`.
    pub fn vouch(&mut self, peer: PeerId, ips: Vec<IpAddr>) {
        self.guard.lock().vouch(peer, ips);
    }

    /// Dials refused so far, by label (`dial_*`).
    pub fn refused(&self) -> BTreeMap<&'static str, u64> {
        self.guard.lock().refused().clone()
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    peerfind_behaviours::no_handler!();

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished { endpoint, .. }) => {
                if let Some(ip) = ip_of(endpoint.get_remote_address()) {
                    self.guard.lock().connected(ip);
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { endpoint, .. }) => {
                if let Some(ip) = ip_of(endpoint.get_remote_address()) {
                    self.guard.lock().disconnected(ip);
                }
            }
            FromSwarm::NewListenAddr(NewListenAddr { addr, .. }) => {
                self.guard.lock().listening_on(addr);
            }
            _ => {}
        }
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
