//! The guard's eyes in the swarm: a `NetworkBehaviour` with no handler that tells the guard
//! of the node's listen addresses (rule 3) and direct connections (rule 5), and through
//! which the node vouches for the records it took (rule 4). It emits nothing and refuses
//! nothing: the refusing is the transports' ([`super::Guarded`]).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NewListenAddr,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

use super::{Shared, ip_of};

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

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

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

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        libp2p::core::util::unreachable(event)
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
