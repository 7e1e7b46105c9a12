//! Simulated peers: many real libp2p swarms in one process, each speaking what a `peerfind run`
//! speaks on a plain TCP connection (identify, ping, and peerfind's own gossip and intro
//! behaviours), so that one machine can offer bootnodes thousands of peers. Used by
//! `peerfind-load` (capacity and simulation figures) and by the tests of many peers joining at
//! once.
//!
//! A simulated peer does not listen: its bootnode observes its dialing port, which is what it
//! puts into its record (seq + 1) and announces, like a real peer does with the address it
//! learns. It runs QUIC, relay, DCUtR and AutoNAT not at all.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, identify, identity, noise, ping, tcp, yamux};
use peerfind_behaviours::enr_ext::{Enr, SigningKey};
use peerfind_behaviours::{gossip, intro, table};
use tokio::sync::{broadcast, mpsc};

/// What one simulated peer runs: what a `peerfind run` speaks on a plain TCP connection.
#[derive(NetworkBehaviour)]
struct Sim {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossip: gossip::Behaviour,
    intro: intro::Behaviour,
}

/// Orders the driver gives every simulated peer at once.
#[derive(Debug, Clone, Copy)]
pub enum Order {
    /// Sign the record anew with seq + 1 and announce it.
    Update,
    /// Ask the bootnode to introduce us to the simulated peer this many places after us.
    Introduce(usize),
    /// Close everything.
    Stop,
}

/// What the simulated peers tell the driver.
#[derive(Debug)]
pub enum Report {
    /// Dialing the bootnode now.
    Dialing {
        /// The simulated peer.
        peer: PeerId,
        /// When.
        at: Instant,
    },
    /// The bootnode could not be reached.
    Failed {
        /// What went wrong.
        reason: String,
    },
    /// The first identify exchange with the bootnode failed; redialing it.
    Retried {
        /// Why it failed.
        reason: String,
    },
    /// The bootnode answered an introduction we asked for.
    Answered {
        /// The answer.
        outcome: intro::Outcome,
    },
}

/// The shared parts every simulated peer needs.
#[derive(Clone)]
pub struct World {
    /// Every bootnode: where to dial it, and who it is. Peer `i` dials bootnode `i % len`.
    pub bootnodes: Vec<(Multiaddr, PeerId)>,
    /// Orders to every simulated peer at once.
    pub orders: broadcast::Sender<Order>,
    /// What the simulated peers report.
    pub reports: mpsc::Sender<Report>,
    /// Every simulated peer's node id, by index (for introductions).
    pub node_ids: Arc<Vec<enr::NodeId>>,
    /// Records a simulated peer keeps.
    pub sim_table: usize,
}

/// One simulated peer: dial the bootnode, put the address it observed into the record (seq + 1)
/// and announce it, then follow the driver's orders.
pub async fn simulated_peer(index: usize, key: identity::secp256k1::Keypair, world: World) {
    if let Err(e) = run_simulated_peer(index, key, &world).await {
        let _ = world
            .reports
            .send(Report::Failed {
                reason: format!("peer {index}: {e:#}"),
            })
            .await;
    }
}

async fn run_simulated_peer(
    index: usize,
    key: identity::secp256k1::Keypair,
    world: &World,
) -> anyhow::Result<()> {
    let signing_key = SigningKey::from_slice(&key.secret().to_bytes())?;
    let keypair = identity::Keypair::from(key);
    let mut seq = 1;
    let mut address: Option<(Ipv4Addr, u16)> = None;
    let record = |seq: u64, address: Option<(Ipv4Addr, u16)>| -> anyhow::Result<Enr> {
        let mut builder = Enr::builder();
        builder.seq(seq);
        if let Some((ip, port)) = address {
            builder.ip4(ip).tcp4(port);
        }
        Ok(builder.build(&signing_key)?)
    };
    let local = record(seq, address)?;
    let gossip_config = gossip::Config {
        // Simulated peers meet only the bootnodes under load.
        trust: gossip::Trust::Anyone,
        table: table::Config {
            capacity: world.sim_table,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| Sim {
            identify: identify::Behaviour::new(identify::Config::new(
                "/peerfind/1.0.0".into(),
                key.public(),
            )),
            ping: ping::Behaviour::default(),
            gossip: gossip::Behaviour::new(local.clone(), gossip_config),
            intro: intro::Behaviour::new(local.clone(), intro::Config::default()),
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build();
    let (bootnode, bootnode_id) = world.bootnodes[index % world.bootnodes.len()].clone();
    // As a real peer: introductions are taken from its bootnode only (intro rule 1).
    swarm.behaviour_mut().intro.set_bootnodes([bootnode_id]);
    let mut orders = world.orders.subscribe();
    let _ = world
        .reports
        .send(Report::Dialing {
            peer: *swarm.local_peer_id(),
            at: Instant::now(),
        })
        .await;
    swarm.dial(bootnode.clone())?;
    let mut redialing = false;
    loop {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(SimEvent::Identify(identify::Event::Received {
                    peer_id, info, ..
                })) if peer_id == bootnode_id => {
                    let observed = observed_tcp(&info.observed_addr);
                    if observed.is_some() && observed != address {
                        address = observed;
                        seq += 1;
                        let enr = record(seq, address)?;
                        swarm.behaviour_mut().intro.set_local_record(enr.clone());
                        swarm.behaviour_mut().gossip.set_local_record(enr);
                    }
                }
                SwarmEvent::Behaviour(SimEvent::Intro(intro::Event::Answered { outcome, .. })) => {
                    let _ = world.reports.send(Report::Answered { outcome }).await;
                }
                SwarmEvent::Behaviour(SimEvent::Identify(identify::Event::Error {
                    peer_id, connection_id, error, ..
                })) if peer_id == bootnode_id && address.is_none() => {
                    // As a real peer does: a first identify that failed would be asked again
                    // only in 5 minutes; a new connection asks at once.
                    let _ = world.reports.send(Report::Retried { reason: error.to_string() }).await;
                    redialing = true;
                    swarm.close_connection(connection_id);
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    bail!("dial failed: {error}");
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. }
                    if peer_id == bootnode_id && redialing => {
                    redialing = false;
                    swarm.dial(bootnode.clone())?;
                }
                SwarmEvent::ConnectionClosed { peer_id, cause, num_established: 0, .. }
                    if peer_id == bootnode_id => {
                    bail!("the bootnode closed the connection: {cause:?}");
                }
                _ => {}
            },
            order = orders.recv() => match order {
                Ok(Order::Update) => {
                    seq += 1;
                    let enr = record(seq, address)?;
                    swarm.behaviour_mut().intro.set_local_record(enr.clone());
                    swarm.behaviour_mut().gossip.set_local_record(enr);
                }
                Ok(Order::Introduce(offset)) => {
                    let target = world.node_ids[(index + offset) % world.node_ids.len()];
                    swarm.behaviour_mut().intro.ask(bootnode_id, target, Vec::new(), false);
                }
                Ok(Order::Stop) | Err(broadcast::error::RecvError::Closed) => return Ok(()),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
            },
        }
    }
}

/// The IPv4 and TCP port of an observed `/ip4/…/tcp/…` address.
fn observed_tcp(addr: &Multiaddr) -> Option<(Ipv4Addr, u16)> {
    let mut parts = addr.iter();
    match (parts.next(), parts.next()) {
        (Some(Protocol::Ip4(ip)), Some(Protocol::Tcp(port))) => Some((ip, port)),
        _ => None,
    }
}
