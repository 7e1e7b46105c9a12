//! Strangers that take relay slots: each a plain rust-libp2p swarm with a relay client that
//! connects to a bootnode from a loopback address the test picks (over
//! [`super::limits::BoundTcp`], so the bootnode sees it in that address's /24) and asks for a
//! reservation, as a NAT'd peer would. What any libp2p node can do, many times over.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use libp2p::core::{Transport, upgrade};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, Swarm, identity, noise, ping, relay, yamux};
use tokio::task::JoinHandle;

use super::limits::BoundTcp;

/// What a reserver runs.
#[derive(NetworkBehaviour)]
struct Reserver {
    relay_client: relay::client::Behaviour,
    ping: ping::Behaviour,
}

/// How a reservation request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Accepted,
    Refused,
}

/// Reservers holding what they got, until dropped.
pub struct Reservations {
    accepted: usize,
    refused: usize,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Reservations {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Reservations {
    /// One reserver per address of `from`, each asking `relay` (its TCP multiaddr, ending in
    /// `/p2p/<relay>`) for a slot, one after the other; returns once each was answered (or
    /// `within` passed for it, an error).
    pub async fn ask(
        relay: &Multiaddr,
        from: impl IntoIterator<Item = Ipv4Addr>,
        within: Duration,
    ) -> anyhow::Result<Self> {
        let mut this = Self {
            accepted: 0,
            refused: 0,
            tasks: Vec::new(),
        };
        for ip in from {
            let mut swarm = reserver(ip)?;
            swarm.listen_on(relay.clone().with(Protocol::P2pCircuit))?;
            let answer = tokio::time::timeout(within, async {
                loop {
                    match swarm.select_next_some().await {
                        SwarmEvent::Behaviour(ReserverEvent::RelayClient(
                            relay::client::Event::ReservationReqAccepted { .. },
                        )) => return Answer::Accepted,
                        SwarmEvent::ListenerClosed { .. } | SwarmEvent::ListenerError { .. } => {
                            return Answer::Refused;
                        }
                        _ => {}
                    }
                }
            })
            .await
            .with_context(|| format!("the relay's answer to {ip}"))?;
            match answer {
                Answer::Accepted => this.accepted += 1,
                Answer::Refused => this.refused += 1,
            }
            this.tasks.push(tokio::spawn(async move {
                loop {
                    swarm.select_next_some().await;
                }
            }));
        }
        Ok(this)
    }

    /// Reservations the relay accepted.
    pub fn accepted(&self) -> usize {
        self.accepted
    }

    /// Reservations the relay refused.
    pub fn refused(&self) -> usize {
        self.refused
    }
}

fn reserver(from: Ipv4Addr) -> anyhow::Result<Swarm<Reserver>> {
    let key = identity::Keypair::generate_ed25519();
    let peer_id = key.public().to_peer_id();
    let (relay_transport, relay_client) = relay::client::new(peer_id);
    // The relay's transport first: it takes only circuit addresses, which `BoundTcp` would
    // dial as TCP to the relay.
    let transport = relay_transport
        .or_transport(BoundTcp::new(from.into()))
        .upgrade(upgrade::Version::V1)
        .authenticate(noise::Config::new(&key)?)
        .multiplex(yamux::Config::default())
        .boxed();
    let behaviour = Reserver {
        relay_client,
        ping: ping::Behaviour::default(),
    };
    let config = libp2p::swarm::Config::with_tokio_executor()
        .with_idle_connection_timeout(Duration::from_secs(600));
    Ok(Swarm::new(transport, behaviour, peer_id, config))
}
