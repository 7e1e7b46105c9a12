//! The stand-in for the node's event loop that the API tests serve over, and the servers and
//! clients they use.
// Each test binary uses part of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use libp2p::PeerId;
use peerfind::api::server::{Limits, Listener, ServeError};
use peerfind::diag::ping::{PingAnswer, PingPath};
use peerfind::reach::nat;
use peerfind::status::{self, Hub, Query};
use peerfind_behaviours::enr_ext::Transport;
use peerfind_proto::v1 as pb;
use peerfind_proto::v1::node_client::NodeClient;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Bound on every wait; everything here is in-process and takes milliseconds.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// What the test asks of the stand-in node: publish `n` events, then acknowledge.
pub(crate) type Publish = (u64, oneshot::Sender<()>);

/// The stand-in node: answers queries from fixed state and publishes on request. It stops,
/// as the node does, when the test drops its sender: the hub goes with it.
pub(crate) struct FakeNode {
    publish: mpsc::Sender<Publish>,
    task: JoinHandle<()>,
    pub(crate) peer: PeerId,
}

impl FakeNode {
    pub(crate) fn start() -> (Self, status::Handle) {
        let mut hub = Hub::new();
        let handle = hub.handle();
        let peer = some_peer_id();
        let (publish, mut requests) = mpsc::channel::<Publish>(4);
        let task = tokio::spawn(async move {
            let mut pings = 0;
            loop {
                tokio::select! {
                    Some(query) = hub.next_query() => match query {
                        Query::Status(reply) => { let _ = reply.send(sample_status()); }
                        Query::Peers(reply) => { let _ = reply.send(Vec::new()); }
                        Query::Ping(to, reply) => {
                            pings += 1;
                            let _ = reply.send(scripted_ping(pings));
                            if pings == 1 {
                                // Not connected at first; a relayed connection opens next.
                                hub.publish(status::Event::ConnectionOpened {
                                    peer_id: to,
                                    direction: status::Direction::Outbound,
                                    remote_addr: "/ip4/198.51.100.10/tcp/9000/p2p-circuit".parse().unwrap(),
                                    relayed: true,
                                    bootnode: false,
                                });
                            }
                        }
                        Query::Netcheck(reply) => {
                            let _ = reply.send(peerfind::diag::netcheck::check(vec![], &[], &[]));
                        }
                    },
                    request = requests.recv() => {
                        let Some((n, done)) = request else { return };
                        for seq in 0..n {
                            hub.publish(status::Event::RecordLearned { peer_id: peer, seq, nat: false, from: peer });
                        }
                        let _ = done.send(());
                    }
                }
            }
        });
        (
            Self {
                publish,
                task,
                peer,
            },
            handle,
        )
    }

    pub(crate) async fn publish(&self, n: u64) {
        let (done, published) = oneshot::channel();
        self.publish.send((n, done)).await.unwrap();
        published.await.unwrap();
    }

    /// Stops the stand-in node and waits until it is gone.
    pub(crate) async fn stop(self) {
        drop(self.publish);
        tokio::time::timeout(WAIT, self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// The stand-in's answers to `ping`: not connected, then relayed, then direct.
pub(crate) fn scripted_ping(n: u32) -> PingAnswer {
    let path = |relayed| PingPath {
        relayed,
        transport: Some(Transport::Tcp),
        remote: "/ip4/198.51.100.10/tcp/9000".parse().unwrap(),
    };
    match n {
        1 => PingAnswer::NotConnected,
        2 => PingAnswer::Round {
            path: path(true),
            rtt: Ok(Duration::from_millis(160)),
        },
        _ => PingAnswer::Round {
            path: path(false),
            rtt: Ok(Duration::from_millis(80)),
        },
    }
}

pub(crate) fn some_peer_id() -> PeerId {
    libp2p::identity::Keypair::generate_secp256k1()
        .public()
        .to_peer_id()
}

pub(crate) fn sample_status() -> status::Status {
    status::Status {
        peer_id: some_peer_id(),
        node_id: "ab".repeat(32),
        enr: "enr:-stand-in".into(),
        seq: 1,
        listen_addrs: vec![],
        observed_addrs: vec![],
        external_addrs: vec![],
        nat: status::NatState {
            status: nat::Status::Unknown,
            reason: "no evidence yet".into(),
            since: SystemTime::now(),
            mappings: status::NatMappings::default(),
        },
        port_mapping: status::PortMappingState {
            state: peerfind::reach::mapping::State::Off,
            detail: String::new(),
            mapped: vec![],
            verified: vec![],
        },
        bootnodes: vec![],
        records: 0,
        direct_connections: 0,
        relayed_connections: 0,
        chosen_peers: 0,
        counters: status::Counters::default(),
    }
}

/// A server on a free loopback port over `handle`; sending on the returned sender stops it.
pub(crate) async fn serve(
    handle: status::Handle,
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    JoinHandle<Result<(), ServeError>>,
) {
    serve_with(handle, Limits::default()).await
}

/// [`serve`] keeping its connections within `limits`.
pub(crate) async fn serve_with(
    handle: status::Handle,
    limits: Limits,
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    JoinHandle<Result<(), ServeError>>,
) {
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .with_limits(limits);
    let addr = listener.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(listener.serve(handle, async {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

pub(crate) async fn client(addr: SocketAddr) -> NodeClient<Channel> {
    tokio::time::timeout(WAIT, NodeClient::connect(format!("http://{addr}")))
        .await
        .unwrap()
        .unwrap()
}

pub(crate) async fn watch(
    api: &mut NodeClient<Channel>,
) -> Result<tonic::Streaming<pb::Event>, tonic::Status> {
    tokio::time::timeout(WAIT, api.watch_events(pb::WatchEventsRequest {}))
        .await
        .unwrap()
        .map(tonic::Response::into_inner)
}

pub(crate) async fn channel(addr: SocketAddr) -> Channel {
    tokio::time::timeout(
        WAIT,
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect(),
    )
    .await
    .unwrap()
    .unwrap()
}
