//! A hostile hole puncher: a libp2p swarm that reaches a NAT'd node through its relay and,
//! in DCUtR's CONNECT, hands it victims' addresses as its own (reflection through hole
//! punches).
//!
//! It is rust-libp2p's own DCUtR with false address candidates: a small behaviour
//! ([`Claims`]) reports each victim address as an external address candidate before the
//! circuit opens, which is what DCUtR sends. The node (the circuit's listener) starts the
//! punch and dials whatever the puncher sent, up to three attempts. The puncher never dials
//! the node directly: a direct connection would end the punch, and with it the attack.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use libp2p::core::Endpoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, SwarmEvent, THandlerInEvent,
    ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId, dcutr, noise, ping, relay, tcp, yamux};
use tokio::task::JoinHandle;

/// Bound on the circuit's coming up through a relay on loopback.
const CIRCUIT_WAIT: Duration = Duration::from_secs(15);

/// What the hostile swarm runs.
#[derive(NetworkBehaviour)]
struct Puncher {
    relay_client: relay::client::Behaviour,
    dcutr: dcutr::Behaviour,
    ping: ping::Behaviour,
    claims: Claims,
}

/// The false candidates, and the one dial the puncher must not make (see the module doc).
struct Claims {
    unsaid: VecDeque<Multiaddr>,
    target: PeerId,
}

impl NetworkBehaviour for Claims {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let relayed = addresses
            .iter()
            .any(|a| a.iter().any(|p| p == Protocol::P2pCircuit));
        if peer == Some(self.target) && !relayed {
            return Err(ConnectionDenied::new(std::io::Error::other(
                "the puncher never dials its target directly",
            )));
        }
        Ok(Vec::new())
    }

    peerfind_behaviours::no_handler!();

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        match self.unsaid.pop_front() {
            Some(addr) => Poll::Ready(ToSwarm::NewExternalAddrCandidate(addr)),
            None => Poll::Pending,
        }
    }
}

/// The puncher, running until dropped.
pub struct HolePuncher {
    task: JoinHandle<()>,
}

impl HolePuncher {
    /// Opens a circuit to `target` through `relay` (its TCP address, ending in
    /// `/p2p/<relay>`), claiming `claims` as its addresses, and keeps the swarm running (the
    /// punch's attempts come after) until dropped. Returns once the circuit is up.
    pub async fn start(
        relay: &Multiaddr,
        target: PeerId,
        claims: Vec<Multiaddr>,
    ) -> anyhow::Result<Self> {
        let claims = Claims {
            unsaid: claims.into(),
            target,
        };
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_relay_client(noise::Config::new, yamux::Config::default)?
            .with_behaviour(|key, relay_client| Puncher {
                relay_client,
                dcutr: dcutr::Behaviour::new(key.public().to_peer_id()),
                ping: ping::Behaviour::default(),
                claims,
            })?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        let circuit = relay
            .clone()
            .with(Protocol::P2pCircuit)
            .with(Protocol::P2p(target));
        swarm.dial(circuit.clone())?;
        tokio::time::timeout(CIRCUIT_WAIT, async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished {
                        peer_id, endpoint, ..
                    } if peer_id == target && endpoint.is_relayed() => return Ok(()),
                    SwarmEvent::OutgoingConnectionError {
                        peer_id: Some(peer),
                        error,
                        ..
                    } if peer == target => anyhow::bail!("the circuit {circuit}: {error}"),
                    _ => {}
                }
            }
        })
        .await
        .context("the circuit to the target")??;
        let task = tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        Ok(Self { task })
    }
}

impl Drop for HolePuncher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
