//! A hostile speaker of `/peerfind/intro/1.0.0`: a libp2p swarm that tries to make a peerfind
//! node dial a victim's address (reflection through introductions):
//! - [`Hostile::introduce`] sends `Introduce` straight to a peer, as if it were a bootnode,
//!   with a record naming the victim;
//! - [`Hostile::ask`] asks a bootnode to introduce it to a peer, presenting its own record
//!   naming the victim.
//!
//! It speaks the protocol through libp2p's `request_response` with peerfind's own codec, so it
//! sends whatever request it likes, and answers pings (a node closes a connection that answers
//! none) but nothing else: no identify, no record exchange. It dials from the nodes' loopback
//! address, 127.0.0.1, so a node sees it at another IP than the victim's
//! ([`super::victim::VICTIM_IP`]): attacker and victim are different hosts, as on the internet.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use enr::NodeId;
use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identity, multiaddr::Protocol, noise, ping, tcp, yamux};
use peerfind_behaviours::enr_ext::{self, Enr, QUIC_KEY, SigningKey};
use peerfind_behaviours::intro::protocol::{Codec, PROTOCOL, Request, Response};

/// Bound on one exchange: a node answers on loopback in milliseconds, a bootnode within its
/// own wait for the target (10 s).
const ANSWER_WAIT: Duration = Duration::from_secs(15);

/// What the hostile swarm runs.
#[derive(NetworkBehaviour)]
struct Speaker {
    intro: request_response::Behaviour<Codec>,
    ping: ping::Behaviour,
}

/// The hostile swarm. See the module doc.
pub struct Hostile {
    swarm: Swarm<Speaker>,
    key: SigningKey,
}

impl Hostile {
    /// A swarm with a fresh secp256k1 key (so it has a node id, as a peerfind node does).
    pub fn new() -> anyhow::Result<Self> {
        let (keypair, key) = fresh_key()?;
        let behaviour = Speaker {
            intro: request_response::Behaviour::with_codec(
                Codec::default(),
                [(PROTOCOL, ProtocolSupport::Outbound)],
                request_response::Config::default().with_request_timeout(ANSWER_WAIT),
            ),
            ping: ping::Behaviour::default(),
        };
        let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|_| behaviour)?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        Ok(Self { swarm, key })
    }

    /// Its PeerId.
    pub fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Its own record (signed with its own key, so a bootnode takes it as the requester's),
    /// naming `victim` for TCP and QUIC.
    pub fn own_record_naming(&self, victim: SocketAddr) -> anyhow::Result<Enr> {
        record_naming(&self.key, victim)
    }

    /// Connects to `addr` (ending in `/p2p/<peer>`) and returns the peer, once connected.
    pub async fn connect(&mut self, addr: &Multiaddr) -> anyhow::Result<PeerId> {
        let Some(Protocol::P2p(peer)) = addr.iter().last() else {
            bail!("{addr} does not end in /p2p/<peer>");
        };
        self.swarm.dial(addr.clone())?;
        tokio::time::timeout(ANSWER_WAIT, async {
            loop {
                match self.swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == peer => {
                        return Ok(());
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        bail!("dialing {addr}: {error}")
                    }
                    _ => {}
                }
            }
        })
        .await
        .with_context(|| format!("connecting to {addr}"))??;
        Ok(peer)
    }

    /// Sends `Introduce` with `record` straight to `peer` (connected), as only a bootnode
    /// should, and returns its answer.
    pub async fn introduce(&mut self, peer: PeerId, record: &Enr) -> anyhow::Result<Response> {
        let record = enr_ext::encode_bytes(record);
        self.exchange(
            peer,
            Request::Introduce {
                record,
                lan: Vec::new(),
                spray: false,
            },
        )
        .await
    }

    /// Asks `bootnode` (connected) to introduce us to `target`, presenting `record` as ours.
    pub async fn ask(
        &mut self,
        bootnode: PeerId,
        target: NodeId,
        record: &Enr,
    ) -> anyhow::Result<Response> {
        let record = enr_ext::encode_bytes(record);
        self.exchange(
            bootnode,
            Request::Ask {
                target,
                record,
                lan: Vec::new(),
                spray: false,
            },
        )
        .await
    }

    async fn exchange(&mut self, peer: PeerId, request: Request) -> anyhow::Result<Response> {
        use request_response::{Event, Message};
        let id = self
            .swarm
            .behaviour_mut()
            .intro
            .send_request(&peer, request);
        tokio::time::timeout(ANSWER_WAIT, async {
            loop {
                match self.swarm.select_next_some().await {
                    SwarmEvent::Behaviour(SpeakerEvent::Intro(Event::Message {
                        message:
                            Message::Response {
                                request_id,
                                response,
                            },
                        ..
                    })) if request_id == id => return Ok(response),
                    SwarmEvent::Behaviour(SpeakerEvent::Intro(Event::OutboundFailure {
                        request_id,
                        error,
                        ..
                    })) if request_id == id => bail!("no answer from {peer}: {error}"),
                    _ => {}
                }
            }
        })
        .await
        .with_context(|| format!("an answer from {peer}"))?
    }
}

/// A record of a fresh secp256k1 key (a stranger's, which costs nothing to make) naming
/// `victim` for TCP and QUIC.
pub fn stranger_record_naming(victim: SocketAddr) -> anyhow::Result<Enr> {
    record_naming(&fresh_key()?.1, victim)
}

/// A record of `key` naming `victim` (IPv4) for TCP and QUIC, the same port for both (the
/// victim counts TCP connections and UDP datagrams on one port).
fn record_naming(key: &SigningKey, victim: SocketAddr) -> anyhow::Result<Enr> {
    let std::net::IpAddr::V4(ip) = victim.ip() else {
        bail!("the victim must be on IPv4: {victim}");
    };
    let mut builder = Enr::builder();
    builder.ip4(ip).tcp4(victim.port());
    builder.add_value(QUIC_KEY, &victim.port());
    Ok(builder.build(key)?)
}

/// A fresh secp256k1 key as libp2p and the record signer each hold it.
fn fresh_key() -> anyhow::Result<(identity::Keypair, SigningKey)> {
    let secret = identity::secp256k1::SecretKey::generate();
    let signing = SigningKey::from_slice(&secret.to_bytes())?;
    Ok((
        identity::Keypair::from(identity::secp256k1::Keypair::from(secret)),
        signing,
    ))
}
