//! The swarm's side of port mapping: hands the gateway task the listen addresses it can map,
//! and turns the task's reports into events and AutoNAT candidates.

use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use super::gateway::{self, Command, Report};

/// Most mappings held at once, and the bound of the channels to and from the gateway task: a
/// node listens on a handful of addresses (TCP and QUIC, per private interface).
pub const MAX_MAPPINGS: usize = 16;

/// What port mapping found (the events libp2p-upnp had, which the wiring was written for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The gateway maps `external_addr` to our `local_addr`; AutoNAT tests it next.
    NewExternalAddr {
        /// Our listen address.
        local_addr: Multiaddr,
        /// The router's public address and the port it forwards.
        external_addr: Multiaddr,
    },
    /// The gateway refused to renew a mapping: it is gone.
    ExpiredExternalAddr {
        /// Our listen address.
        local_addr: Multiaddr,
        /// The address that was mapped.
        external_addr: Multiaddr,
    },
    /// No gateway answered, or it did not tell its external address.
    GatewayNotFound,
    /// The gateway is behind another NAT: no mapping asked.
    NonRoutableGateway,
}

/// Port mapping over UPnP-IGD (see `crate::igd`).
pub struct Behaviour {
    local: PeerId,
    /// To the gateway task (bounded by [`MAX_MAPPINGS`]).
    commands: mpsc::Sender<Command>,
    /// From the gateway task (bounded by [`MAX_MAPPINGS`]).
    reports: mpsc::Receiver<Report>,
    /// The candidate for AutoNAT of a report whose event went out first.
    candidate: Option<Multiaddr>,
}

impl Behaviour {
    /// Starts the gateway task (it searches at once, on the tokio runtime) for node `local`.
    pub fn new(local: PeerId) -> Self {
        let (commands, commands_rx) = mpsc::channel(MAX_MAPPINGS);
        let (reports_tx, reports) = mpsc::channel(MAX_MAPPINGS);
        tokio::spawn(gateway::run(commands_rx, reports_tx));
        Self {
            local,
            commands,
            reports,
            candidate: None,
        }
    }

    /// Asks the task to remove every mapping; the receiver hears when it has (each request
    /// bounded in time, so a caller waits with a timeout of its own).
    pub fn unmap_all(&self) -> oneshot::Receiver<()> {
        let (done, rx) = oneshot::channel();
        if self.commands.try_send(Command::UnmapAll(done)).is_err() {
            tracing::info!("the port-mapping task is busy or gone: mappings left to their lease");
        }
        rx
    }

    fn send(&self, command: Command) {
        if let Err(error) = self.commands.try_send(command) {
            tracing::debug!(%error, "port-mapping command dropped");
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Event;

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
            FromSwarm::NewListenAddr(e) if gateway::mappable(e.addr).is_some() => {
                self.send(Command::Map(e.addr.clone()));
            }
            FromSwarm::ExpiredListenAddr(e) if gateway::mappable(e.addr).is_some() => {
                self.send(Command::Unmap(e.addr.clone()));
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
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        if let Some(candidate) = self.candidate.take() {
            return Poll::Ready(ToSwarm::NewExternalAddrCandidate(candidate));
        }
        let Poll::Ready(Some(report)) = self.reports.poll_recv(cx) else {
            return Poll::Pending;
        };
        let event = match report {
            Report::NotFound => Event::GatewayNotFound,
            Report::NotRoutable => Event::NonRoutableGateway,
            Report::Mapped { local, external } => {
                self.candidate = Some(super::candidate(&external, self.local));
                cx.waker().wake_by_ref();
                Event::NewExternalAddr {
                    local_addr: local,
                    external_addr: external,
                }
            }
            Report::Expired { local, external } => Event::ExpiredExternalAddr {
                local_addr: local,
                external_addr: external,
            },
        };
        Poll::Ready(ToSwarm::GenerateEvent(event))
    }
}
