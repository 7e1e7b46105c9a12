//! An intruder in the bootnodes' record mesh: a libp2p node that is no bootnode of the network
//! but speaks what a bootnode speaks (identify, ping, gossipsub on the mesh topic, the ENR
//! exchange). It subscribes to the topic (both versions of it), publishes records it made
//! (fresh keys cost nothing) as soon as the bootnode it dialed subscribes towards it, and
//! counts every record the mesh gives it: gossipsub's deliveries and the ENR exchange's
//! pushes.
//!
//! It runs in its own task from [`Intruder::attack`] on, so that it keeps counting while the
//! test waits on the nodes' status APIs.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, identify, identity, noise, ping, tcp, yamux};
use peerfind_behaviours::enr_ext::{self, Enr};
use peerfind_behaviours::gossip::protocol::{Codec, PROTOCOL, Request, Response};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The mesh topics of a peerfind network with the default `--mesh-topic`, and what a record
/// published on each looks like: `/peerfind/records/1` carried a bare record (before the mesh
/// had members), `/peerfind/records/2` carries a `MeshRecord` (the record and its round).
pub const TOPICS: [&str; 2] = ["/peerfind/records/1", "/peerfind/records/2"];

/// The data of a publication of `enr` on `topic` (one of [`TOPICS`]).
fn data(topic: &str, enr: &Enr) -> Vec<u8> {
    let record = enr_ext::encode_bytes(enr);
    if topic == TOPICS[0] {
        return record;
    }
    let round = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        / 60;
    prost::Message::encode_to_vec(&peerfind_proto::v1::MeshRecord { record, round })
}

/// How long the intruder waits, after the bootnode greeted it (its record announced over the
/// ENR exchange, which a bootnode does once identify told it what the intruder speaks), for
/// the bootnode's subscription before it publishes anyway. A bootnode that takes the intruder
/// into its mesh subscribes towards it at the same moment it greets, so this is only the
/// window an attacker tries in, not a wait for anything the test checks.
pub const ATTACK_WINDOW: Duration = Duration::from_secs(2);

/// How the intruder's publications are authenticated: gossipsub's signature (the source, a
/// seqno and a signature with the intruder's key) or none. A bootnode takes one of the two
/// forms, so an attack is tried in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// gossipsub's `MessageAuthenticity::Signed`.
    Signed,
    /// gossipsub's `MessageAuthenticity::Anonymous`.
    Anonymous,
}

/// What the intruder got from the mesh so far.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Whether the bootnode told the intruder it subscribes to the topic (took it as a mesh
    /// peer).
    pub subscribed: bool,
    /// gossipsub messages delivered to the intruder, on any topic.
    pub delivered: usize,
    /// Every record pushed to the intruder over the ENR exchange: its owner and seq.
    pub pushed: Vec<(PeerId, u64)>,
}

/// The attack's outcome as the intruder saw it.
#[derive(Debug, Clone, Copy)]
pub struct Attack {
    /// The bootnode's PeerId.
    pub bootnode: PeerId,
    /// Publications gossipsub sent out, on both topics (a publication nobody subscribed to is
    /// not sent).
    pub published: usize,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
    enr: request_response::Behaviour<Codec>,
}

/// The intruder, running. Stops when dropped.
pub struct Intruder {
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl Intruder {
    /// Dials `addr` (a TCP multiaddr ending in `/p2p/<id>`), joins the topic and publishes
    /// `records` once the bootnode subscribed towards it, or after [`ATTACK_WINDOW`] from its
    /// greeting; returns when the publications went out or were refused, and keeps counting
    /// what reaches it until dropped.
    pub async fn attack(
        addr: &str,
        signing: Signing,
        records: Vec<Enr>,
    ) -> anyhow::Result<(Self, Attack)> {
        let addr: Multiaddr = addr.parse()?;
        let mut swarm = swarm(signing)?;
        for topic in TOPICS {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&IdentTopic::new(topic))?;
        }
        swarm.dial(addr)?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (done, outcome) = oneshot::channel();
        let task = tokio::spawn(run(swarm, records, seen.clone(), done));
        let attack = tokio::time::timeout(Duration::from_secs(20), outcome).await???;
        Ok((Self { seen, task }, attack))
    }

    /// What reached the intruder so far.
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Intruder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn swarm(signing: Signing) -> anyhow::Result<libp2p::Swarm<Behaviour>> {
    let keypair = identity::Keypair::generate_secp256k1();
    let authenticity = match signing {
        Signing::Signed => MessageAuthenticity::Signed(keypair.clone()),
        Signing::Anonymous => MessageAuthenticity::Anonymous,
    };
    let config = gossipsub::ConfigBuilder::default()
        // Counts whatever arrives, signed or not.
        .validation_mode(ValidationMode::None)
        .message_id_fn(|m| {
            let mut h = DefaultHasher::new();
            m.data.hash(&mut h);
            gossipsub::MessageId::from(h.finish().to_be_bytes().to_vec())
        })
        .build()?;
    let gossipsub = gossipsub::Behaviour::new(authenticity, config).map_err(anyhow::Error::msg)?;
    Ok(libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| Behaviour {
            // What a peerfind bootnode says of itself.
            identify: identify::Behaviour::new(
                identify::Config::new("/peerfind/1.0.0".into(), key.public())
                    .with_agent_version("peerfind/0.1.0".into()),
            ),
            ping: ping::Behaviour::default(),
            gossipsub,
            enr: request_response::Behaviour::with_codec(
                Codec::default(),
                [(PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default(),
            ),
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build())
}

/// The intruder's loop: publishes once it may, then counts.
async fn run(
    mut swarm: libp2p::Swarm<Behaviour>,
    records: Vec<Enr>,
    seen: Arc<Mutex<Seen>>,
    done: oneshot::Sender<anyhow::Result<Attack>>,
) {
    let topics = TOPICS.map(IdentTopic::new);
    let mut done = Some(done);
    let mut bootnode = None;
    let mut window: Option<tokio::time::Instant> = None;
    let count =
        |f: &mut dyn FnMut(&mut Seen)| f(&mut seen.lock().unwrap_or_else(|e| e.into_inner()));
    loop {
        let due = async {
            match window {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let publish_now = tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    bootnode.get_or_insert(peer_id);
                    false
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    if let Some(done) = done.take() {
                        let _ = done.send(Err(anyhow::anyhow!("dial failed: {error}")));
                    }
                    false
                }
                SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => match event {
                    gossipsub::Event::Subscribed { topic, .. }
                        if topics.iter().any(|t| t.hash() == topic) =>
                    {
                        count(&mut |s| s.subscribed = true);
                        true
                    }
                    gossipsub::Event::Message { .. } => {
                        count(&mut |s| s.delivered += 1);
                        false
                    }
                    _ => false,
                },
                SwarmEvent::Behaviour(BehaviourEvent::Enr(request_response::Event::Message {
                    message: request_response::Message::Request { request, channel, .. },
                    ..
                })) => {
                    let response = match request {
                        Request::Announce(_) => {
                            // The bootnode greeted us: it knows what we speak.
                            window.get_or_insert(tokio::time::Instant::now() + ATTACK_WINDOW);
                            Response::Ack
                        }
                        Request::Push(pushed) => {
                            let owners: Vec<(PeerId, u64)> = pushed
                                .iter()
                                .filter_map(|bytes| enr_ext::decode_bytes(bytes).ok())
                                .filter_map(|enr| Some((enr_ext::peer_id(&enr).ok()?, enr.seq())))
                                .collect();
                            count(&mut |s| s.pushed.extend(owners.iter().copied()));
                            Response::Ack
                        }
                        Request::Find(_) => Response::Records(Vec::new()),
                        Request::Invalid(_) => Response::Ack,
                    };
                    let _ = swarm.behaviour_mut().enr.send_response(channel, response);
                    false
                }
                _ => false,
            },
            _ = due => true,
        };
        if publish_now && let Some(done) = done.take() {
            window = None;
            let mut published = 0;
            for enr in &records {
                for topic in TOPICS {
                    let data = data(topic, enr);
                    if swarm
                        .behaviour_mut()
                        .gossipsub
                        .publish(IdentTopic::new(topic), data)
                        .is_ok()
                    {
                        published += 1;
                    }
                }
            }
            let outcome = bootnode
                .map(|bootnode| Attack {
                    bootnode,
                    published,
                })
                .ok_or_else(|| anyhow::anyhow!("no connection to the bootnode"));
            let _ = done.send(outcome);
        }
    }
}
