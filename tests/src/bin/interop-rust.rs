//! A plain rust-libp2p peer (no peerfind code): identify, ping, relay v2 (client, and server
//! with `listen --relay`) and DCUtR, with an ed25519 key as most libp2p nodes have. The
//! interop tests run it against the real peerfind binary, the same way as the js-libp2p and
//! py-libp2p probes under `tests/interop/`: it prints one JSON object per line for each thing
//! it observed (`listening`, `reserved`, `connected`, `disconnected`, `identify`, `ping`,
//! `hole_punch`, `error`, `done`).
//!
//! ```text
//! interop-rust dial /ip4/127.0.0.1/tcp/9000/p2p/16Uiu2…        identify + ping, then exit
//! interop-rust listen --listen /ip4/127.0.0.1/tcp/0 --relay    a plain relay / bootnode
//! interop-rust reserve /ip4/127.0.0.1/tcp/9000/p2p/16Uiu2…     reserve, then answer circuits
//! interop-rust reservations /ip4/…/p2p/… --count 100           N peers from one IP reserve
//! interop-rust punch /ip4/…/p2p/RELAY --target 16Uiu2… --listen /ip4/0.0.0.0/tcp/9000
//!                                            circuit to the target, DCUtR, pings; until killed
//! ```

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, dcutr, identify, noise, ping, relay, tcp, yamux};
use serde_json::json;

/// How long one command may take before it reports failure and exits with 1.
const DEADLINE: Duration = Duration::from_secs(30);

/// Ping interval: short, so a dial sees its first ping at once and a held connection stays
/// alive.
const PING_INTERVAL: Duration = Duration::from_secs(5);

/// A plain rust-libp2p peer for interop tests.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Dial ADDR (a `/p2p/` multiaddr, possibly through `/p2p-circuit`), wait for the peer's
    /// identify and a ping, print both and exit; 1 when either did not come within 30 s.
    Dial {
        addr: Multiaddr,
        /// Stay connected after success (print `done` and keep running).
        #[arg(long)]
        hold: bool,
    },
    /// Listen and print what every peer that connects says; run until killed.
    Listen {
        /// Listen addresses (repeatable).
        #[arg(long, required = true)]
        listen: Vec<Multiaddr>,
        /// Serve circuit relay v2 (HOP), as a bootnode of a plain libp2p network does.
        #[arg(long)]
        relay: bool,
    },
    /// Reserve a slot on the relay at ADDR and answer peers that come through it; run until
    /// killed. Listens on `--listen` too (for DCUtR's direct addresses).
    Reserve {
        addr: Multiaddr,
        #[arg(long)]
        listen: Vec<Multiaddr>,
    },
    /// Listen on `--listen`, connect to the relay at RELAY from that port and, once the relay
    /// told us our observed address (identify), dial TARGET through its circuit: DCUtR then
    /// punches a direct connection. Prints each connection (`relayed` or not, with its id),
    /// the `hole_punch` and every ping with the connection it went over; runs until killed.
    /// Listening first makes every dial leave from the listen port, which a punch through
    /// endpoint-independent NATs needs.
    Punch {
        relay: Multiaddr,
        #[arg(long)]
        target: PeerId,
        /// One routable listen address (`/ip4/0.0.0.0/tcp/PORT` or `…/udp/PORT/quic-v1`).
        #[arg(long)]
        listen: Multiaddr,
    },
    /// COUNT peers (one swarm each, all from this host) reserve on the relay at ADDR; prints
    /// how many got a reservation and how many were refused, then exits.
    Reservations {
        addr: Multiaddr,
        #[arg(long, default_value_t = 100)]
        count: usize,
    },
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    relay_client: relay::client::Behaviour,
    relay: Toggle<relay::Behaviour>,
    dcutr: dcutr::Behaviour,
}

fn swarm(relay_server: bool) -> anyhow::Result<Swarm<Behaviour>> {
    Ok(libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_quic()
        .with_relay_client(noise::Config::new, yamux::Config::default)?
        .with_behaviour(|key, relay_client| {
            let peer_id = key.public().to_peer_id();
            Behaviour {
                identify: identify::Behaviour::new(
                    identify::Config::new("/ipfs/0.1.0".into(), key.public()).with_agent_version(
                        format!("rust-libp2p-interop/{}", env!("CARGO_PKG_VERSION")),
                    ),
                ),
                ping: ping::Behaviour::new(ping::Config::new().with_interval(PING_INTERVAL)),
                relay_client,
                relay: relay_server
                    .then(|| relay::Behaviour::new(peer_id, relay::Config::default()))
                    .into(),
                dcutr: dcutr::Behaviour::new(peer_id),
            }
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build())
}

fn emit(value: serde_json::Value) {
    println!("{value}");
}

/// Prints what one swarm event tells a test; returns the peer of a received identify or a
/// successful ping, for `dial` to count.
fn report(event: &SwarmEvent<BehaviourEvent>) -> Option<(&'static str, PeerId)> {
    match event {
        SwarmEvent::NewListenAddr { address, .. } => {
            if address.iter().any(|p| p == Protocol::P2pCircuit) {
                emit(json!({"event": "reserved", "addr": address.to_string()}));
            } else {
                emit(json!({"event": "listening", "addr": address.to_string()}));
            }
        }
        SwarmEvent::ConnectionEstablished {
            peer_id,
            endpoint,
            connection_id,
            ..
        } => emit(json!({
            "event": "connected", "peer": peer_id.to_string(),
            "addr": endpoint.get_remote_address().to_string(), "relayed": endpoint.is_relayed(),
            "connection": connection_id.to_string(),
        })),
        SwarmEvent::ConnectionClosed {
            peer_id,
            endpoint,
            connection_id,
            ..
        } => emit(json!({
            "event": "disconnected", "peer": peer_id.to_string(),
            "relayed": endpoint.is_relayed(), "connection": connection_id.to_string(),
        })),
        SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
            peer_id,
            info,
            ..
        })) => {
            emit(json!({
                "event": "identify", "peer": peer_id.to_string(),
                "agent": info.agent_version, "protocol_version": info.protocol_version,
                "protocols": info.protocols.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "listen_addrs": info.listen_addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "observed_addr": info.observed_addr.to_string(),
            }));
            return Some(("identify", *peer_id));
        }
        SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Error {
            peer_id,
            error,
            ..
        })) => emit(
            json!({"event": "error", "what": "identify", "peer": peer_id.to_string(), "error": error.to_string()}),
        ),
        SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
            peer,
            connection,
            result,
        })) => match result {
            Ok(rtt) => {
                emit(json!({
                    "event": "ping", "peer": peer.to_string(), "rtt_us": rtt.as_micros() as u64,
                    "connection": connection.to_string(),
                }));
                return Some(("ping", *peer));
            }
            Err(e) => emit(
                json!({"event": "error", "what": "ping", "peer": peer.to_string(), "error": e.to_string()}),
            ),
        },
        SwarmEvent::Behaviour(BehaviourEvent::Dcutr(dcutr::Event {
            remote_peer_id,
            result,
        })) => emit(json!({
            "event": "hole_punch", "peer": remote_peer_id.to_string(), "ok": result.is_ok(),
            "error": result.as_ref().err().map(ToString::to_string),
        })),
        SwarmEvent::Behaviour(BehaviourEvent::RelayClient(
            relay::client::Event::ReservationReqAccepted { relay_peer_id, .. },
        )) => emit(json!({"event": "reservation_accepted", "relay": relay_peer_id.to_string()})),
        SwarmEvent::ListenerClosed {
            reason, addresses, ..
        } => emit(json!({
            "event": "listener_closed",
            "addrs": addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "error": reason.as_ref().err().map(ToString::to_string),
        })),
        SwarmEvent::ListenerError { error, .. } => {
            emit(json!({"event": "error", "what": "listener", "error": error.to_string()}))
        }
        SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => emit(json!({
            "event": "error", "what": "dial", "peer": peer_id.map(|p| p.to_string()),
            "error": error.to_string(),
        })),
        _ => {}
    }
    None
}

fn target_of(addr: &Multiaddr) -> anyhow::Result<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Ok(peer),
        _ => bail!("{addr} does not end in /p2p/<PeerId>"),
    }
}

async fn dial(addr: Multiaddr, hold: bool) -> anyhow::Result<()> {
    let target = target_of(&addr)?;
    let mut swarm = swarm(false)?;
    emit(json!({"event": "started", "peer": swarm.local_peer_id().to_string()}));
    // A circuit dial needs no listener; a direct one works without one too.
    swarm.dial(addr.clone()).context("dial")?;
    let mut seen = HashSet::new();
    let result = tokio::time::timeout(DEADLINE, async {
        loop {
            let event = swarm.select_next_some().await;
            if let Some((what, peer)) = report(&event)
                && peer == target
            {
                seen.insert(what);
                if seen.len() == 2 {
                    return;
                }
            }
        }
    })
    .await;
    if result.is_err() {
        emit(json!({"event": "done", "ok": false, "seen": seen.into_iter().collect::<Vec<_>>()}));
        std::process::exit(1);
    }
    emit(json!({"event": "done", "ok": true}));
    if hold {
        loop {
            report(&swarm.select_next_some().await);
        }
    }
    Ok(())
}

async fn listen(addrs: Vec<Multiaddr>, relay: bool) -> anyhow::Result<()> {
    let mut swarm = swarm(relay)?;
    emit(json!({"event": "started", "peer": swarm.local_peer_id().to_string()}));
    for addr in addrs {
        swarm.listen_on(addr)?;
    }
    loop {
        let event = swarm.select_next_some().await;
        // rust-libp2p's relay server accepts reservations only once the node has a confirmed
        // external address; on loopback the listen address is it.
        if relay && let SwarmEvent::NewListenAddr { address, .. } = &event {
            swarm.add_external_address(address.clone());
        }
        report(&event);
    }
}

async fn reserve(relay: Multiaddr, addrs: Vec<Multiaddr>) -> anyhow::Result<()> {
    let mut swarm = swarm(false)?;
    emit(json!({"event": "started", "peer": swarm.local_peer_id().to_string()}));
    for addr in addrs {
        swarm.listen_on(addr)?;
    }
    swarm.listen_on(relay.with(Protocol::P2pCircuit))?;
    loop {
        report(&swarm.select_next_some().await);
    }
}

async fn punch(relay: Multiaddr, target: PeerId, listen: Multiaddr) -> anyhow::Result<()> {
    let relay_peer = target_of(&relay)?;
    let mut swarm = swarm(false)?;
    emit(json!({"event": "started", "peer": swarm.local_peer_id().to_string()}));
    swarm.listen_on(listen)?;
    let (mut dialed_relay, mut dialed_circuit) = (false, false);
    loop {
        let event = swarm.select_next_some().await;
        report(&event);
        match &event {
            // A wildcard listener reports loopback too; port reuse knows the interface that
            // reaches the relay only once its own address is reported.
            SwarmEvent::NewListenAddr { address, .. } if !dialed_relay && !is_loopback(address) => {
                dialed_relay = true;
                swarm.dial(relay.clone()).context("dial the relay")?;
            }
            // The relay's identify told us our observed address, DCUtR's candidate.
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                ..
            })) if *peer_id == relay_peer && !dialed_circuit => {
                dialed_circuit = true;
                let circuit = relay
                    .clone()
                    .with(Protocol::P2pCircuit)
                    .with(Protocol::P2p(target));
                swarm.dial(circuit).context("dial the circuit")?;
            }
            _ => {}
        }
    }
}

fn is_loopback(addr: &Multiaddr) -> bool {
    matches!(addr.iter().next(), Some(Protocol::Ip4(ip)) if ip.is_loopback())
        || matches!(addr.iter().next(), Some(Protocol::Ip6(ip)) if ip.is_loopback())
}

/// One swarm per peer, each reserving once; counts the outcomes.
async fn reservations(relay: Multiaddr, count: usize) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for _ in 0..count {
        let relay = relay.clone();
        tasks.push(tokio::spawn(async move {
            let mut swarm = swarm(false)?;
            swarm.listen_on(relay.with(Protocol::P2pCircuit))?;
            let outcome = tokio::time::timeout(DEADLINE, async {
                loop {
                    match swarm.select_next_some().await {
                        SwarmEvent::Behaviour(BehaviourEvent::RelayClient(
                            relay::client::Event::ReservationReqAccepted { .. },
                        )) => return Ok(swarm),
                        SwarmEvent::ListenerClosed { reason, .. } => {
                            return Err(format!("{reason:?}"));
                        }
                        SwarmEvent::OutgoingConnectionError { error, .. } => {
                            return Err(error.to_string());
                        }
                        _ => {}
                    }
                }
            })
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
            anyhow::Ok(outcome)
        }));
    }
    let mut held = Vec::new();
    let mut refused = Vec::new();
    for task in tasks {
        match task.await?? {
            Ok(swarm) => held.push(swarm),
            Err(e) => refused.push(e),
        }
    }
    emit(
        json!({"event": "reservations", "accepted": held.len(), "refused": refused.len(), "errors": refused.iter().take(3).collect::<Vec<_>>()}),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Dial { addr, hold } => dial(addr, hold).await,
        Command::Listen {
            listen: addrs,
            relay,
        } => listen(addrs, relay).await,
        Command::Reserve {
            addr,
            listen: addrs,
        } => reserve(addr, addrs).await,
        Command::Punch {
            relay,
            target,
            listen,
        } => punch(relay, target, listen).await,
        Command::Reservations { addr, count } => reservations(addr, count).await,
    }
}
