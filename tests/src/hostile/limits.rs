//! Hostile helpers for the limits suite (`tests/tests/hostile_limits.rs`): a crowd of
//! strangers that connect to a node and hold their connections, each from a loopback address
//! the test picks, with an identify agent of the test's choosing; and a flood of gRPC health
//! `Watch` streams on a node's status API, one connection each.
//!
//! A stranger is a plain rust-libp2p swarm (TCP, noise, yamux, identify, ping): what any
//! libp2p node can run. It dials over [`BoundTcp`], whose sockets leave from the stranger's own
//! address, since libp2p's TCP transport lets the kernel pick the source address and on
//! loopback that is always 127.0.0.1: with its own address in `127.0.0.0/8`, each stranger is
//! in the /24 the test chose for it.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::StreamExt;
use futures::future::BoxFuture;
use libp2p::core::transport::{DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::core::{Transport, upgrade};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, identity, noise, ping, yamux};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// How long a stranger keeps a connection with no stream open: longer than any test.
const HOLD: Duration = Duration::from_secs(600);

/// A TCP transport that only dials, each socket bound to `from` first (port chosen by the
/// system), so the node sees the connection come from `from`.
#[derive(Debug, Clone, Copy)]
pub struct BoundTcp {
    from: IpAddr,
}

impl BoundTcp {
    /// A transport whose connections come from `from`.
    pub fn new(from: IpAddr) -> Self {
        Self { from }
    }
}

impl Transport for BoundTcp {
    type Output = libp2p::tcp::tokio::TcpStream;
    type Error = std::io::Error;
    type ListenerUpgrade = futures::future::Pending<Result<Self::Output, Self::Error>>;
    type Dial = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn listen_on(
        &mut self,
        _id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        Err(TransportError::MultiaddrNotSupported(addr))
    }

    fn remove_listener(&mut self, _id: ListenerId) -> bool {
        false
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        let Some(to) = tcp_socket(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let from = SocketAddr::new(self.from, 0);
        Ok(Box::pin(async move {
            let socket = match from {
                SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            socket.bind(from)?;
            let stream = socket.connect(to).await?;
            stream.set_nodelay(true)?;
            Ok(libp2p::tcp::tokio::TcpStream(stream))
        }))
    }

    fn poll(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Poll::Pending
    }
}

/// `ip:port` of `/ip4|ip6/…/tcp/…` (a trailing `/p2p/…` allowed).
fn tcp_socket(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut parts = addr.iter();
    let ip: IpAddr = match parts.next()? {
        Protocol::Ip4(ip) => ip.into(),
        Protocol::Ip6(ip) => ip.into(),
        _ => return None,
    };
    match parts.next()? {
        Protocol::Tcp(port) => Some(SocketAddr::new(ip, port)),
        _ => None,
    }
}

/// What a stranger runs: what any libp2p node answers with.
#[derive(NetworkBehaviour)]
struct Plain {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// What the strangers of one crowd saw so far.
#[derive(Debug, Default)]
struct Tally {
    /// Connections established (and not closed since).
    connected: AtomicUsize,
    /// Dials that ended without a connection: the node refused (or never answered).
    refused: AtomicUsize,
    /// Connections the node closed after they were established.
    closed: AtomicUsize,
}

/// A crowd of strangers connected (or trying to be) to one node; they hang up when dropped.
pub struct Strangers {
    peer_ids: Vec<PeerId>,
    tally: Arc<Tally>,
    changed: watch::Receiver<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Strangers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Strangers {
    /// One stranger per address of `from`, each dialing `target` (a TCP multiaddr) once from
    /// that address and telling `agent` as its identify agent version.
    pub fn connect(
        target: &Multiaddr,
        from: impl IntoIterator<Item = Ipv4Addr>,
        agent: &str,
    ) -> anyhow::Result<Self> {
        let tally = Arc::new(Tally::default());
        let (tx, changed) = watch::channel(());
        let tx = Arc::new(tx);
        let mut peer_ids = Vec::new();
        let mut tasks = Vec::new();
        for ip in from {
            let key = identity::Keypair::generate_ed25519();
            let peer_id = key.public().to_peer_id();
            let mut swarm = stranger(&key, ip.into(), agent)?;
            swarm
                .dial(target.clone())
                .with_context(|| format!("stranger {ip} dialing {target}"))?;
            peer_ids.push(peer_id);
            let (tally, tx) = (tally.clone(), tx.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let counter = match swarm.select_next_some().await {
                        SwarmEvent::ConnectionEstablished { .. } => {
                            tally.connected.fetch_add(1, Ordering::SeqCst);
                            None
                        }
                        SwarmEvent::OutgoingConnectionError { .. } => Some(&tally.refused),
                        SwarmEvent::ConnectionClosed { .. } => {
                            tally.connected.fetch_sub(1, Ordering::SeqCst);
                            Some(&tally.closed)
                        }
                        _ => continue,
                    };
                    if let Some(counter) = counter {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    tx.send_replace(());
                }
            }));
        }
        Ok(Self {
            peer_ids,
            tally,
            changed,
            tasks,
        })
    }

    /// The strangers' PeerIds, in the order of their addresses.
    pub fn peer_ids(&self) -> &[PeerId] {
        &self.peer_ids
    }

    /// Connections open now.
    pub fn connected(&self) -> usize {
        self.tally.connected.load(Ordering::SeqCst)
    }

    /// Dials that got no connection.
    pub fn refused(&self) -> usize {
        self.tally.refused.load(Ordering::SeqCst)
    }

    /// Connections the node closed after accepting them.
    pub fn closed(&self) -> usize {
        self.tally.closed.load(Ordering::SeqCst)
    }

    /// Waits up to `within` until every stranger's dial has ended, connected or refused, and
    /// returns `(connected, refused)`.
    pub async fn settled(&mut self, within: Duration) -> anyhow::Result<(usize, usize)> {
        let all = self.peer_ids.len();
        let done = |s: &Self| s.connected() + s.closed() + s.refused() >= all;
        let wait = async {
            while !done(self) {
                self.changed.changed().await?;
            }
            anyhow::Ok(())
        };
        if tokio::time::timeout(within, wait).await.is_err() {
            bail!(
                "strangers not settled within {within:?}: {} connected, {} refused, {} closed of {all}",
                self.connected(),
                self.refused(),
                self.closed()
            );
        }
        Ok((self.connected(), self.refused()))
    }
}

/// A stranger's swarm: dials from `from`, identifies as `agent`, holds its connections.
fn stranger(key: &identity::Keypair, from: IpAddr, agent: &str) -> anyhow::Result<Swarm<Plain>> {
    let transport = BoundTcp { from }
        .upgrade(upgrade::Version::V1)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .boxed();
    let behaviour = Plain {
        identify: identify::Behaviour::new(
            identify::Config::new("/hostile/1.0.0".into(), key.public())
                .with_agent_version(agent.to_owned()),
        ),
        ping: ping::Behaviour::default(),
    };
    let config = libp2p::swarm::Config::with_tokio_executor().with_idle_connection_timeout(HOLD);
    Ok(Swarm::new(
        transport,
        behaviour,
        key.public().to_peer_id(),
        config,
    ))
}

/// `count` addresses of loopback, one in each /24 from `127.0.first.0` on: strangers that no
/// per-subnet cap groups together.
pub fn subnets(first: u8, count: u8) -> impl Iterator<Item = Ipv4Addr> {
    (0..count).map(move |i| Ipv4Addr::new(127, 0, first.saturating_add(i), 1))
}

/// `count` addresses of loopback in the one /24 `127.0.subnet.0`.
pub fn one_subnet(subnet: u8, count: u8) -> impl Iterator<Item = Ipv4Addr> {
    (1..=count).map(move |i| Ipv4Addr::new(127, 0, subnet, i))
}

/// gRPC health `Watch` streams held open on a node's status API, each on its own connection.
pub struct HealthWatches {
    accepted: usize,
    refused: Vec<String>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for HealthWatches {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl HealthWatches {
    /// Opens `count` connections to the API at `api`, starts a health `Watch` (the server's
    /// overall health, service "") on each, and returns once each has been answered with a
    /// first status or refused, within `within`. The accepted ones stay open until this is
    /// dropped.
    pub async fn open(api: SocketAddr, count: usize, within: Duration) -> anyhow::Result<Self> {
        let attempts = (0..count).map(|_| watch_health(api));
        let outcomes = tokio::time::timeout(within, futures::future::join_all(attempts))
            .await
            .with_context(|| format!("{count} health watches not answered within {within:?}"))?;
        let mut watches = Self {
            accepted: 0,
            refused: Vec::new(),
            tasks: Vec::new(),
        };
        for outcome in outcomes {
            match outcome {
                Ok(task) => {
                    watches.accepted += 1;
                    watches.tasks.push(task);
                }
                Err(e) => watches.refused.push(format!("{e:#}")),
            }
        }
        Ok(watches)
    }

    /// How many streams the node accepted (and still holds).
    pub fn accepted(&self) -> usize {
        self.accepted
    }

    /// Why each of the others failed.
    pub fn refused(&self) -> &[String] {
        &self.refused
    }
}

/// One health watch on a connection of its own: the task that keeps reading it, once the
/// first status arrived.
async fn watch_health(api: SocketAddr) -> anyhow::Result<JoinHandle<()>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{api}"))?
        .connect()
        .await
        .context("connect")?;
    let mut stream = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .context("watch")?
        .into_inner();
    stream
        .message()
        .await
        .context("first status")?
        .context("the stream ended at once")?;
    Ok(tokio::spawn(async move {
        while let Ok(Some(_)) = stream.message().await {}
    }))
}

/// Runs `fut` within `within`, naming `what` when it does not end.
pub async fn within<T>(
    what: &str,
    within: Duration,
    fut: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(within, fut)
        .await
        .with_context(|| format!("{what}: no answer within {within:?}"))?
}
