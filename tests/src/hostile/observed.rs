//! A liar about observed addresses: a fresh libp2p identity whose identify tells one target
//! peer that it sees the target at an address of the liar's choosing.
//!
//! How: libp2p-identify's handler tells the remote, as its observed address, the connection's
//! remote address it was built with (`Behaviour::handle_established_*_connection` hands it to
//! `Handler::new`). [`Forging`] wraps `identify::Behaviour` and hands it, for the target's
//! connections only, that address with the IP replaced by the claimed one (the port kept, so
//! on a connection that left from the target's listen port the lie names its listen port on
//! another IP). Other peers (the bootnode the liar announces itself to) hear the truth.
//!
//! A liar speaks identify and ping, and peerfind's record exchange: it can announce a record
//! of its own (its listen addresses, TCP only or both transports) to a bootnode, which
//! passes it on, so that a peerfind node learns of it and dials it (the issue's "the same
//! when the peer dialed them").

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::StreamExt;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, multiaddr::Protocol};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, SwarmEvent, THandler,
};
use libp2p::{Multiaddr, PeerId, identify, identity, noise, ping, tcp, yamux};
use peerfind_behaviours::enr_ext::{Enr, SigningKey};
use peerfind_behaviours::gossip;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Identify's protocol version as a peerfind node sends it: the liar looks like one.
const IDENTIFY_PROTOCOL: &str = "/peerfind/1.0.0";

/// Connections stay open longer than any test; the target's pings keep them alive too.
const IDLE: Duration = Duration::from_secs(600);

/// Bound on the liar's own listeners coming up (milliseconds on loopback).
const LISTEN_WAIT: Duration = Duration::from_secs(10);

/// `addr` with its IP replaced by `ip`: what the liar claims to see.
pub fn forge(addr: &Multiaddr, ip: IpAddr) -> Multiaddr {
    addr.iter()
        .map(|p| match (p, ip) {
            (Protocol::Ip4(_) | Protocol::Ip6(_), IpAddr::V4(v4)) => Protocol::Ip4(v4),
            (Protocol::Ip4(_) | Protocol::Ip6(_), IpAddr::V6(v6)) => Protocol::Ip6(v6),
            (other, _) => other,
        })
        .collect()
}

/// libp2p's identify, lying to one peer about the address it sees it at. See the module doc.
pub struct Forging {
    inner: identify::Behaviour,
    target: PeerId,
    claim: IpAddr,
}

impl Forging {
    fn observed(&self, peer: PeerId, remote: &Multiaddr) -> Multiaddr {
        if peer == self.target {
            forge(remote, self.claim)
        } else {
            remote.clone()
        }
    }
}

impl NetworkBehaviour for Forging {
    type ConnectionHandler = <identify::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = identify::Event;

    peerfind_behaviours::forward_pending_connections!(inner);

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let observed = self.observed(peer, remote_addr);
        self.inner
            .handle_established_inbound_connection(connection_id, peer, local_addr, &observed)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let observed = self.observed(peer, addr);
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            &observed,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event);
    }

    peerfind_behaviours::forward_handler_events!(inner);

    peerfind_behaviours::forward_poll!(inner);
}

/// What a liar runs.
#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: Forging,
    ping: ping::Behaviour,
    gossip: gossip::Behaviour,
}

/// Which of its listen addresses a liar's record names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// None: a record without an IP, announced to nobody in particular.
    Bare,
    /// Its TCP listen address only: a node that learns it dials it over TCP.
    Tcp,
}

/// Orders to a liar's swarm.
enum Order {
    /// Dial `peer` at `addr`; answer when the connection is up or the dial failed.
    Dial {
        peer: PeerId,
        addr: Multiaddr,
        done: oneshot::Sender<anyhow::Result<()>>,
    },
}

/// A running liar; stops when dropped.
pub struct Liar {
    peer_id: PeerId,
    orders: mpsc::Sender<Order>,
    task: JoinHandle<()>,
}

impl Drop for Liar {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Liar {
    /// A fresh identity listening on loopback (TCP and QUIC) that tells `target`, whenever
    /// they are connected, that it sees it at `claim` (the connection's port kept). Its
    /// record names what `record` says; it announces it to every peer it connects to.
    pub async fn start(target: PeerId, claim: IpAddr, record: Record) -> anyhow::Result<Self> {
        let key = identity::secp256k1::Keypair::generate();
        let signing_key = SigningKey::from_slice(&key.secret().to_bytes())?;
        let bare = Enr::builder().build(&signing_key)?;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity::Keypair::from(key))
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_quic()
            .with_behaviour(|key| Behaviour {
                identify: Forging {
                    inner: identify::Behaviour::new(identify::Config::new(
                        IDENTIFY_PROTOCOL.into(),
                        key.public(),
                    )),
                    target,
                    claim,
                },
                ping: ping::Behaviour::default(),
                gossip: gossip::Behaviour::new(bare.clone(), gossip::Config::default()),
            })?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE))
            .build();
        let peer_id = *swarm.local_peer_id();
        let loopback = Multiaddr::empty().with(Protocol::Ip4(Ipv4Addr::LOCALHOST));
        swarm.listen_on(loopback.clone().with(Protocol::Tcp(0)))?;
        swarm.listen_on(loopback.with(Protocol::Udp(0)).with(Protocol::QuicV1))?;
        let mut tcp_port = None;
        let mut quic = false;
        tokio::time::timeout(LISTEN_WAIT, async {
            while tcp_port.is_none() || !quic {
                if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                    for p in address.iter() {
                        match p {
                            Protocol::Tcp(port) => tcp_port = Some(port),
                            Protocol::QuicV1 => quic = true,
                            _ => {}
                        }
                    }
                }
            }
        })
        .await
        .context("the liar's listeners")?;
        if record == Record::Tcp {
            let port = tcp_port.context("a TCP listener")?;
            let enr = Enr::builder()
                .seq(2)
                .ip4(Ipv4Addr::LOCALHOST)
                .tcp4(port)
                .build(&signing_key)?;
            swarm.behaviour_mut().gossip.set_local_record(enr);
        }
        let (orders, mut rx) = mpsc::channel(16);
        let task = tokio::spawn(async move {
            let mut dials: HashMap<ConnectionId, oneshot::Sender<anyhow::Result<()>>> =
                HashMap::new();
            loop {
                tokio::select! {
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::ConnectionEstablished { connection_id, .. } => {
                            if let Some(done) = dials.remove(&connection_id) {
                                let _ = done.send(Ok(()));
                            }
                        }
                        SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                            if let Some(done) = dials.remove(&connection_id) {
                                let _ = done.send(Err(anyhow::anyhow!("dial failed: {error}")));
                            }
                        }
                        _ => {}
                    },
                    order = rx.recv() => match order {
                        Some(Order::Dial { peer, addr, done }) => {
                            let opts = DialOpts::peer_id(peer)
                                .addresses(vec![addr])
                                .condition(PeerCondition::Always)
                                .build();
                            let id = opts.connection_id();
                            match swarm.dial(opts) {
                                Ok(()) => {
                                    dials.insert(id, done);
                                }
                                Err(e) => {
                                    let _ = done.send(Err(anyhow::anyhow!("dial not started: {e}")));
                                }
                            }
                        }
                        None => return,
                    },
                }
            }
        });
        Ok(Self {
            peer_id,
            orders,
            task,
        })
    }

    /// The liar's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Dials `peer` at `addr` (a new connection even if one is open); returns once it is up.
    pub async fn dial(&self, peer: PeerId, addr: Multiaddr) -> anyhow::Result<()> {
        let (done, answer) = oneshot::channel();
        self.orders
            .send(Order::Dial { peer, addr, done })
            .await
            .context("the liar stopped")?;
        match tokio::time::timeout(LISTEN_WAIT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => bail!("the liar stopped"),
            Err(_) => bail!("the dial took longer than {LISTEN_WAIT:?}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_address_keeps_everything_but_the_ip() {
        let claim: IpAddr = "127.0.0.2".parse().unwrap();
        let real: Multiaddr = "/ip4/127.0.0.1/udp/4242/quic-v1".parse().unwrap();
        assert_eq!(
            forge(&real, claim),
            "/ip4/127.0.0.2/udp/4242/quic-v1"
                .parse::<Multiaddr>()
                .unwrap()
        );
    }
}
