//! A running node's status API as the tests wait on it: typed state and events instead of log
//! lines.
//!
//! [`Api`] holds a gRPC client of one node and a watcher subscribed to its event stream from
//! the moment the `Api` was made; a task reads that stream at once and keeps every event.
//! [`Api::until`] then checks a predicate against the node's [`State`] (its `GetStatus`, its
//! `ListPeers` and every event so far), and checks again each time an event arrives, until the
//! predicate holds or the bound passes. Because the watcher subscribes before the first check,
//! no change between the check and the wait can slip by.
//!
//! Some of what a node reports changes without an event: its listen and external addresses,
//! the transports of a connection beyond the best one, what a peer's identify said, and the
//! dial counters. (Its own record has one: `own_record_changed`.)
//! [`Api::until_polled`] is for predicates on those: it checks again on every event and, in
//! between, every [`POLL_EVERY`].
//!
//! A node in a lab host serves its API on that host's loopback; an `Api` reaches it through a
//! forwarder that connects from inside the host (see [`crate::lab::HostDialer`]).

mod events;

pub use events::Events;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use peerfind_behaviours::enr_ext;
use peerfind_proto::v1 as pb;
use peerfind_proto::v1::node_client::NodeClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::lab::HostDialer;

/// How often [`Api::until_polled`] looks again when no event came.
pub const POLL_EVERY: Duration = Duration::from_millis(20);

/// Bound on connecting to an API and on one call: a node answers within milliseconds; this
/// only stops a stuck node from hanging a test.
const CALL_WAIT: Duration = Duration::from_secs(10);

/// What a node reports at one moment, and every event it delivered since the [`Api`] was made.
#[derive(Debug, Clone)]
pub struct State {
    /// `GetStatus`.
    pub status: pb::NodeStatus,
    /// `ListPeers` without filters.
    pub peers: Vec<pb::Peer>,
    /// Every event since the watcher subscribed.
    pub events: Events,
}

impl State {
    /// The node's PeerId.
    pub fn peer_id(&self) -> &str {
        &self.status.peer_id
    }

    /// The node's own record, decoded.
    ///
    /// # Panics
    ///
    /// When the node reports a record that does not decode: a bug the test should show.
    pub fn record(&self) -> Record {
        Record::decode(&self.status.enr)
            .unwrap_or_else(|e| panic!("the node reports an invalid record: {e:#}"))
    }

    /// The node's NAT status.
    pub fn nat(&self) -> pb::NatStatus {
        self.status
            .nat
            .as_ref()
            .map_or(pb::NatStatus::Unspecified, pb::Nat::status)
    }

    /// The reason the node gives for its NAT status.
    pub fn nat_reason(&self) -> &str {
        self.status.nat.as_ref().map_or("", |n| n.reason.as_str())
    }

    /// The node's port mapping (a default one from a node that reports none).
    pub fn port_mapping(&self) -> pb::PortMapping {
        self.status.port_mapping.clone().unwrap_or_default()
    }

    /// The node's counts.
    pub fn counts(&self) -> pb::Counts {
        self.status.counts.clone().unwrap_or_default()
    }

    /// The entry of `peer_id` in `ListPeers`.
    pub fn peer(&self, peer_id: &str) -> Option<&pb::Peer> {
        self.peers.iter().find(|p| p.peer_id == peer_id)
    }

    /// Whether the node holds `peer_id`'s record.
    pub fn holds_record_of(&self, peer_id: &str) -> bool {
        self.peer(peer_id).is_some_and(|p| p.has_record)
    }

    /// Whether the node's best connection to `peer_id` is direct.
    pub fn direct_to(&self, peer_id: &str) -> bool {
        self.peer(peer_id)
            .is_some_and(|p| p.connection() == pb::ConnectionState::Direct)
    }

    /// The configured bootnode `peer_id`, or the first one when `None`.
    pub fn bootnode(&self, peer_id: Option<&str>) -> Option<&pb::Bootnode> {
        self.status
            .bootnodes
            .iter()
            .find(|b| peer_id.is_none_or(|id| b.peer_id == id))
    }

    /// Whether a connection to a configured bootnode is open.
    pub fn bootnode_connected(&self) -> bool {
        self.status.bootnodes.iter().any(|b| b.connected)
    }

    /// The state in a few lines, for failure messages.
    fn describe(&self) -> String {
        let mut out = format!("status: {:?}\npeers:\n", self.status);
        for p in &self.peers {
            out.push_str(&format!("  {p:?}\n"));
        }
        out.push_str("events:\n");
        for e in &self.events.0 {
            out.push_str(&format!("  {:?}\n", e.kind));
        }
        out
    }
}

/// A record's fields that the tests look at, decoded in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number.
    pub seq: u64,
    /// Its IPv4 address.
    pub ip: Option<Ipv4Addr>,
    /// Its TCP port.
    pub tcp: Option<u16>,
    /// Its QUIC port.
    pub quic: Option<u16>,
    /// Its `nat` flag.
    pub nat: bool,
    /// Its addresses as multiaddrs, each ending in `/p2p/<its PeerId>`.
    pub multiaddrs: Vec<String>,
}

impl Record {
    /// Decodes a record's text form, `enr:…`.
    pub fn decode(text: &str) -> anyhow::Result<Self> {
        let enr = enr_ext::decode_text(text).with_context(|| format!("decoding {text}"))?;
        let peer = enr_ext::peer_id(&enr)?;
        Ok(Self {
            seq: enr.seq(),
            ip: enr.ip4(),
            tcp: enr.tcp4(),
            quic: enr_ext::quic4(&enr),
            nat: enr_ext::is_natted(&enr),
            multiaddrs: enr_ext::multiaddrs(&enr, peer)
                .iter()
                .map(ToString::to_string)
                .collect(),
        })
    }

    /// The port for `transport` ("tcp" or "quic").
    pub fn port(&self, transport: &str) -> Option<u16> {
        match transport {
            "tcp" => self.tcp,
            _ => self.quic,
        }
    }

    /// Whether it holds an IPv4 address and a port for each of `transports`.
    pub fn has(&self, transports: &[&str]) -> bool {
        self.ip.is_some() && transports.iter().all(|t| self.port(t).is_some())
    }
}

/// The events a watcher read, and whether its stream ended.
#[derive(Debug, Default)]
struct Delivered {
    events: Vec<pb::Event>,
    ended: Option<String>,
}

/// A client of one node's status API with a watcher subscribed since it was made.
pub struct Api {
    name: String,
    client: NodeClient<Channel>,
    delivered: Arc<Mutex<Delivered>>,
    seen: watch::Receiver<usize>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Api {
    /// Connects to the API at `addr` (reached from inside a lab host through `dialer` when
    /// given) and subscribes to its events; returns once subscribed. `name` labels errors.
    pub async fn connect(
        name: &str,
        addr: SocketAddr,
        dialer: Option<HostDialer>,
    ) -> anyhow::Result<Self> {
        let mut tasks = Vec::new();
        let addr = match dialer {
            None => addr,
            Some(dialer) => {
                let (local, task) = forward(dialer, addr).await?;
                tasks.push(task);
                local
            }
        };
        let mut client =
            tokio::time::timeout(CALL_WAIT, NodeClient::connect(format!("http://{addr}")))
                .await
                .with_context(|| format!("{name}: connecting to the API at {addr}"))?
                .with_context(|| format!("{name}: connecting to the API at {addr}"))?;
        // The node subscribes the watcher before it answers the call.
        let mut stream =
            tokio::time::timeout(CALL_WAIT, client.watch_events(pb::WatchEventsRequest {}))
                .await
                .with_context(|| format!("{name}: subscribing to events"))??
                .into_inner();
        let delivered = Arc::new(Mutex::new(Delivered::default()));
        let (tx, seen) = watch::channel(0usize);
        let sink = delivered.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let next = stream.message().await;
                let mut d = sink.lock().unwrap_or_else(|e| e.into_inner());
                match next {
                    Ok(Some(event)) => d.events.push(event),
                    Ok(None) => d.ended = Some("the event stream ended".into()),
                    Err(status) => d.ended = Some(format!("the event stream failed: {status}")),
                }
                let (n, ended) = (d.events.len(), d.ended.is_some());
                drop(d);
                let _ = tx.send(n);
                if ended {
                    return;
                }
            }
        }));
        Ok(Self {
            name: name.to_owned(),
            client,
            delivered,
            seen,
            tasks,
        })
    }

    /// `GetStatus`.
    pub async fn status(&mut self) -> anyhow::Result<pb::NodeStatus> {
        tokio::time::timeout(CALL_WAIT, self.client.get_status(pb::GetStatusRequest {}))
            .await
            .with_context(|| format!("{}: GetStatus did not answer", self.name))??
            .into_inner()
            .status
            .with_context(|| format!("{}: GetStatus answered without a status", self.name))
    }

    /// `ListPeers` without filters.
    pub async fn peers(&mut self) -> anyhow::Result<Vec<pb::Peer>> {
        let request = pb::ListPeersRequest::default();
        Ok(
            tokio::time::timeout(CALL_WAIT, self.client.list_peers(request))
                .await
                .with_context(|| format!("{}: ListPeers did not answer", self.name))??
                .into_inner()
                .peers,
        )
    }

    /// The node's PeerId.
    pub async fn peer_id(&mut self) -> anyhow::Result<String> {
        Ok(self.status().await?.peer_id)
    }

    /// The gRPC client, for calls of a test's own.
    pub fn client(&mut self) -> &mut NodeClient<Channel> {
        &mut self.client
    }

    /// Every event delivered so far: since this `Api` was made, also after the node stopped.
    pub fn events(&self) -> Events {
        let d = self.delivered.lock().unwrap_or_else(|e| e.into_inner());
        Events(d.events.clone())
    }

    /// The node's state now.
    pub async fn state(&mut self) -> anyhow::Result<State> {
        let status = self.status().await?;
        let peers = self.peers().await?;
        Ok(State {
            status,
            peers,
            events: self.events(),
        })
    }

    /// Waits up to `within` until `check` gives a value for the node's state: checks now, then
    /// again on every event. For what changes with an event (records of peers, connections,
    /// the NAT status, introductions, hole punches). `what` names the wait in its error.
    pub async fn until<T>(
        &mut self,
        what: &str,
        within: Duration,
        check: impl FnMut(&State) -> Option<T>,
    ) -> anyhow::Result<T> {
        self.wait(what, within, None, check).await
    }

    /// [`Api::until`] for what changes without an event (see the module's doc): also checks
    /// every [`POLL_EVERY`].
    pub async fn until_polled<T>(
        &mut self,
        what: &str,
        within: Duration,
        check: impl FnMut(&State) -> Option<T>,
    ) -> anyhow::Result<T> {
        self.wait(what, within, Some(POLL_EVERY), check).await
    }

    async fn wait<T>(
        &mut self,
        what: &str,
        within: Duration,
        poll: Option<Duration>,
        mut check: impl FnMut(&State) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = tokio::time::Instant::now() + within;
        let mut last = None;
        let mut stream_over = false;
        loop {
            // Events that arrive from here on wake the next round.
            self.seen.borrow_and_update();
            let state = match self.state().await {
                Ok(state) => state,
                Err(error) => {
                    let ended = self.ended();
                    let last = last.as_ref().map_or(String::new(), State::describe);
                    bail!(
                        "{}: {what}: the API stopped answering ({error:#}; {ended})\nlast state:\n{last}",
                        self.name
                    );
                }
            };
            if let Some(value) = check(&state) {
                return Ok(value);
            }
            if stream_over {
                let ended = self.ended();
                let last = state.describe();
                bail!("{}: {what}: {ended}\nlast state:\n{last}", self.name);
            }
            last = Some(state);
            let tick = async {
                match poll {
                    Some(every) => tokio::time::sleep(every).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = self.seen.changed() => stream_over = changed.is_err(),
                () = tick => {}
                () = tokio::time::sleep_until(deadline) => {
                    let last = last.as_ref().map_or(String::new(), State::describe);
                    bail!("{}: {what}: not within {within:?}\nlast state:\n{last}", self.name);
                }
            }
        }
    }

    fn ended(&self) -> String {
        let d = self.delivered.lock().unwrap_or_else(|e| e.into_inner());
        d.ended
            .clone()
            .unwrap_or_else(|| "events still flowing".into())
    }
}

/// Forwards connections to a port on this host's loopback to `target` as `dialer` reaches it
/// (from inside a lab host); returns that port's address and the accepting task.
async fn forward(
    dialer: HostDialer,
    target: SocketAddr,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let dialer = dialer.clone();
            tokio::spawn(async move {
                let Ok(Ok(outbound)) =
                    tokio::task::spawn_blocking(move || dialer.connect(target)).await
                else {
                    return;
                };
                // gRPC writes small frames: without TCP_NODELAY, Nagle's algorithm holds
                // them for the peer's delayed ACK (tens of milliseconds per call).
                if outbound.set_nonblocking(true).is_err()
                    || outbound.set_nodelay(true).is_err()
                    || inbound.set_nodelay(true).is_err()
                {
                    return;
                }
                let Ok(mut outbound) = tokio::net::TcpStream::from_std(outbound) else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    Ok((local, task))
}
