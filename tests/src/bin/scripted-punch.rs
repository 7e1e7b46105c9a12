//! Plain rust-libp2p's hole punch, scripted with everything known in advance: the yardstick
//! `peerfind-labbench` holds peerfind's own punch against.
//!
//! Two roles, each one process in a lab host:
//! - `listen`: listens, connects to the relay, reserves a slot on it and waits for a punch;
//! - `dial`: listens, connects to the relay, and once the relay told it its observed address
//!   (identify), dials the listener through the relay's circuit; DCUtR then punches.
//!
//! Nothing is found out: the relay's address and the listener's PeerId are given. Each step
//! is printed to stdout as one JSON object with the wall-clock time (`t_ms`, milliseconds
//! since the Unix epoch), so the bench can time it from the process's start.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, dcutr, identify, multiaddr::Protocol, noise, relay, tcp, yamux};

/// What this process does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Reserve a slot on the relay and wait to be dialed.
    Listen,
    /// Dial the listener through the relay.
    Dial,
}

/// One side of a scripted rust-libp2p hole punch.
#[derive(Parser)]
struct Cli {
    /// The side to play.
    #[arg(long, value_enum)]
    role: Role,
    /// The local address to listen on, and so to dial from (`/ip4/0.0.0.0/tcp/PORT` or
    /// `/ip4/0.0.0.0/udp/PORT/quic-v1`).
    #[arg(long)]
    listen: Multiaddr,
    /// The relay, ending in `/p2p/<its PeerId>`.
    #[arg(long)]
    relay: Multiaddr,
    /// The listener's PeerId (for `dial`).
    #[arg(long)]
    target: Option<PeerId>,
    /// Give up after this long.
    #[arg(long, default_value = "30s", value_parser = humantime_secs)]
    timeout: Duration,
}

/// Parses `30s` or `30`.
fn humantime_secs(s: &str) -> Result<Duration, String> {
    s.trim_end_matches('s')
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|e| e.to_string())
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    relay: relay::client::Behaviour,
    dcutr: dcutr::Behaviour,
    identify: identify::Behaviour,
}

/// Prints one step.
fn say(event: &str, extra: serde_json::Value) {
    let t_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let mut line = serde_json::json!({ "event": event, "t_ms": t_ms });
    if let (Some(line), serde_json::Value::Object(extra)) = (line.as_object_mut(), extra) {
        line.extend(extra);
    }
    println!("{line}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let relay_peer = match cli.relay.iter().last() {
        Some(Protocol::P2p(peer)) => peer,
        _ => bail!("--relay must end in /p2p/<PeerId>"),
    };
    let target = match (cli.role, cli.target) {
        (Role::Dial, None) => bail!("--target is needed to dial"),
        (_, target) => target,
    };
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_quic()
        .with_relay_client(noise::Config::new, yamux::Config::default)?
        .with_behaviour(|key, relay| Behaviour {
            relay,
            dcutr: dcutr::Behaviour::new(key.public().to_peer_id()),
            identify: identify::Behaviour::new(identify::Config::new(
                "/scripted-punch/1.0.0".into(),
                key.public(),
            )),
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    say(
        "started",
        serde_json::json!({ "peer_id": swarm.local_peer_id().to_string() }),
    );
    swarm.listen_on(cli.listen.clone()).context("listen")?;

    let deadline = tokio::time::sleep(cli.timeout);
    tokio::pin!(deadline);
    let mut dialing_relay = false;
    let mut circuit_asked = false;
    loop {
        let event = tokio::select! {
            event = swarm.select_next_some() => event,
            _ = &mut deadline => {
                say("timeout", serde_json::json!({}));
                return Ok(());
            }
        };
        match event {
            // Listening first, so the dial to the relay leaves from the listen port.
            SwarmEvent::NewListenAddr { .. } if !dialing_relay => {
                dialing_relay = true;
                swarm.dial(cli.relay.clone()).context("dial the relay")?;
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == relay_peer => {
                say("relay connected", serde_json::json!({}));
                if cli.role == Role::Listen && !circuit_asked {
                    circuit_asked = true;
                    swarm
                        .listen_on(cli.relay.clone().with(Protocol::P2pCircuit))
                        .context("reserve")?;
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Relay(
                relay::client::Event::ReservationReqAccepted { .. },
            )) => say("reserved", serde_json::json!({})),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) if peer_id == relay_peer => {
                say(
                    "observed",
                    serde_json::json!({ "addr": info.observed_addr.to_string() }),
                );
                if let (Role::Dial, Some(target), false) = (cli.role, target, circuit_asked) {
                    circuit_asked = true;
                    let circuit = cli
                        .relay
                        .clone()
                        .with(Protocol::P2pCircuit)
                        .with(Protocol::P2p(target));
                    swarm.dial(circuit).context("dial the circuit")?;
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(event)) => say(
                "dcutr",
                serde_json::json!({
                    "peer": event.remote_peer_id.to_string(),
                    "ok": event.result.is_ok(),
                    "error": event.result.err().map(|e| e.to_string()),
                }),
            ),
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                let relayed = endpoint.is_relayed();
                say(
                    if relayed { "relayed" } else { "direct" },
                    serde_json::json!({
                        "peer": peer_id.to_string(),
                        "remote_addr": endpoint.get_remote_address().to_string(),
                    }),
                );
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => say(
                "dial failed",
                serde_json::json!({
                    "peer": peer_id.map(|p| p.to_string()),
                    "error": error.to_string(),
                }),
            ),
            _ => {}
        }
    }
}
