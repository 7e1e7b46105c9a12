//! A stranger who speaks peerfind's record exchange only to abuse it: it pushes records it
//! made (fresh keys cost nothing) naming a victim's `ip:port`, or announces its own record
//! naming the victim, hoping that the node and every peer it gossips to dial the victim.

use std::net::Ipv4Addr;
use std::time::Duration;

use enr::k256::ecdsa::SigningKey;
use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, identity, noise, tcp, yamux};
use peerfind_behaviours::enr_ext::{self, Enr, QUIC_KEY};
use peerfind_behaviours::gossip::protocol::{Codec, PROTOCOL, Request, Response};

/// A record of a fresh key naming `ip:port` for TCP and QUIC.
pub fn record_naming(ip: Ipv4Addr, port: u16) -> anyhow::Result<Enr> {
    let secret = identity::secp256k1::SecretKey::generate();
    record_of(&secret, ip, port)
}

/// A record of `secret`'s key naming `ip:port` for TCP and QUIC.
fn record_of(
    secret: &identity::secp256k1::SecretKey,
    ip: Ipv4Addr,
    port: u16,
) -> anyhow::Result<Enr> {
    let key = SigningKey::from_slice(&secret.to_bytes())?;
    let mut builder = Enr::builder();
    builder.ip4(ip).tcp4(port).add_value(QUIC_KEY, &port);
    Ok(builder.build(&key)?)
}

/// The stranger: a TCP-only libp2p swarm with nothing but the record exchange.
pub struct Stranger {
    swarm: Swarm<request_response::Behaviour<Codec>>,
    secret: identity::secp256k1::SecretKey,
}

impl Stranger {
    /// A stranger with a fresh key.
    pub fn new() -> anyhow::Result<Self> {
        let secret = identity::secp256k1::SecretKey::generate();
        let keypair = identity::Keypair::from(identity::secp256k1::Keypair::from(secret.clone()));
        let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|_| {
                request_response::Behaviour::with_codec(
                    Codec::default(),
                    [(PROTOCOL, ProtocolSupport::Full)],
                    request_response::Config::default(),
                )
            })?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        Ok(Self { swarm, secret })
    }

    /// Connects to `addr` (a TCP multiaddr ending in `/p2p/<id>`); returns the node's PeerId.
    pub async fn connect(&mut self, addr: &str) -> anyhow::Result<PeerId> {
        let addr: Multiaddr = addr.parse()?;
        self.swarm.dial(addr)?;
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match self.swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } => return Ok(peer_id),
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        return Err(anyhow::anyhow!("dial failed: {error}"));
                    }
                    _ => {}
                }
            }
        })
        .await?
    }

    /// Pushes `records` to `node` in messages of at most 32 (the protocol's cap) and waits for
    /// every answer; returns how many messages the node acknowledged (took).
    pub async fn push(&mut self, node: PeerId, records: &[Enr]) -> anyhow::Result<usize> {
        let mut ids = Vec::new();
        for chunk in records.chunks(32) {
            let bytes = chunk.iter().map(enr_ext::encode_bytes).collect();
            ids.push(
                self.swarm
                    .behaviour_mut()
                    .send_request(&node, Request::Push(bytes)),
            );
        }
        self.answers(ids.len()).await
    }

    /// Announces its own record naming `ip:port` to `node`; returns whether the node took it.
    pub async fn announce_naming(
        &mut self,
        node: PeerId,
        ip: Ipv4Addr,
        port: u16,
    ) -> anyhow::Result<bool> {
        let record = record_of(&self.secret, ip, port)?;
        self.swarm
            .behaviour_mut()
            .send_request(&node, Request::Announce(enr_ext::encode_bytes(&record)));
        Ok(self.answers(1).await? == 1)
    }

    /// Waits for `n` answers (answering the node's own requests meanwhile); returns how many
    /// were acknowledgements.
    async fn answers(&mut self, n: usize) -> anyhow::Result<usize> {
        let (mut answered, mut acks) = (0, 0);
        tokio::time::timeout(Duration::from_secs(10), async {
            while answered < n {
                match self.swarm.select_next_some().await {
                    SwarmEvent::Behaviour(request_response::Event::Message { message, .. }) => {
                        match message {
                            request_response::Message::Response { response, .. } => {
                                answered += 1;
                                acks += usize::from(matches!(response, Response::Ack));
                            }
                            request_response::Message::Request { channel, .. } => {
                                let _ = self
                                    .swarm
                                    .behaviour_mut()
                                    .send_response(channel, Response::Ack);
                            }
                        }
                    }
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                        error,
                        ..
                    }) => {
                        return Err(anyhow::anyhow!("a request failed: {error}"));
                    }
                    _ => {}
                }
            }
            Ok(())
        })
        .await??;
        Ok(acks)
    }
}
