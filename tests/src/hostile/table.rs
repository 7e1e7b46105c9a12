//! A table flood: an attacker makes fresh keys (they cost nothing) and announces one record
//! per key, each on its own connection, hoping that the records of the keys it made push every
//! honest record out of a bootnode's table, and out of the tables of the peers the bootnode
//! gossips them to.
//!
//! A record is taken only when its owner announces it on a connection whose IP it names, or
//! names none (`admission.rs`), so each key needs a connection, and the connections come from
//! the attacker's own addresses. On Linux all of 127.0.0.0/8 is loopback, so one machine plays
//! an attacker holding several address blocks: each connection leaves from the source address
//! [`announce`] is given (127.0.1.1, 127.0.2.1, …: another /24 each), over
//! [`super::limits::BoundTcp`].

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use enr::k256::ecdsa::SigningKey;
use futures::StreamExt;
use libp2p::core::upgrade;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Transport, identity, noise, yamux};
use peerfind_behaviours::enr_ext::{self, Enr};
use peerfind_behaviours::gossip::protocol::{Codec, PROTOCOL, Request, Response};

use super::limits::BoundTcp;

/// Bound on one key's connection and announcement: on loopback both take milliseconds.
const ANNOUNCE_WAIT: Duration = Duration::from_secs(10);

/// What one fresh key's record says of its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// The IP its connection comes from (which the node can check), no port: nobody dials it.
    SourceIp,
    /// No IP: "Hello (ENR with no IP)", which a node takes from anyone.
    NoIp,
}

/// Makes a fresh key and its record, connects to `node` (a TCP multiaddr ending in
/// `/p2p/<id>`) from `from`, announces the record and closes the connection; returns whether
/// the node took it.
pub async fn announce(node: &Multiaddr, from: Ipv4Addr, naming: Naming) -> anyhow::Result<bool> {
    let secret = identity::secp256k1::SecretKey::generate();
    let key = SigningKey::from_slice(&secret.to_bytes())?;
    let mut builder = Enr::builder();
    if naming == Naming::SourceIp {
        builder.ip4(from);
    }
    let record = enr_ext::encode_bytes(&builder.build(&key)?);
    let keypair = identity::Keypair::from(identity::secp256k1::Keypair::from(secret));
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(
            |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                Ok(BoundTcp::new(IpAddr::V4(from))
                    .upgrade(upgrade::Version::V1Lazy)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default()))
            },
        )?
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                Codec::default(),
                [(PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default(),
            )
        })?
        .build();
    swarm.dial(node.clone())?;
    tokio::time::timeout(ANNOUNCE_WAIT, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    swarm
                        .behaviour_mut()
                        .send_request(&peer_id, Request::Announce(record.clone()));
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    anyhow::bail!("dial from {from} failed: {error}");
                }
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                }) => return Ok(matches!(response, Response::Ack)),
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                    error, ..
                }) => anyhow::bail!("announcing from {from} failed: {error}"),
                _ => {}
            }
        }
    })
    .await?
}
