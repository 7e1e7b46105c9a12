//! The running node: builds the swarm, then turns swarm events into decisions and record
//! updates, until it is told to stop.
//!
//! One event's path, wire to record: identify's `Received` carries the address a peer sees us
//! at → [`crate::confirm`] decides whether that is our address → [`crate::enr`] signs the
//! record anew with seq + 1 and stores it → the gossip behaviour announces it to every
//! connected peer → a bootnode gossips it on ("Meet Alice").

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, multiaddr::Protocol, noise, tcp, yamux};
use peerfind_behaviours::enr_ext::{self, Transport};
use peerfind_behaviours::{gossip, table};

use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::config::{Bootnode, Config};
use crate::confirm::{Confirmations, Leg, Legs, Own, Witness};
use crate::data_dir::{BOOTNODE_FILE, DataDir};
use crate::enr::{Content, LocalRecord, LocalRecordError};
use crate::identity::{Identity, IdentityError};
use crate::liveness::{self, Liveness};
use crate::nat::{self, Detector};
use crate::redial::Redial;
use crate::status::{self, Hub};

mod foreign;
mod reach;
mod report;
mod reservation;

/// A connection with no stream open for this long is closed. Gossip re-announces every
/// 5 minutes and ping runs every 15 s, so connections to live peers never get there.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Bound on establishing any connection, AutoNAT dial-backs included: it must stay below
/// AutoNAT's 10 s per-request limit, or a dial-back to an unreachable address never ends in
/// a verdict.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// How long closing a TCP socket waits for its unsent or unacknowledged data: not at all,
/// the kernel resets the connection. A dead connection (liveness) closed the usual way stays
/// in the kernel for minutes, retransmitting, and keeps its ports: the redial from the listen
/// port to the same bootnode would then fail, or leave from another port that the bootnode
/// observes and the record would take, and a peer whose NAT mapping moved back could not
/// reach us from it again. libp2p closes a connection only once its protocols are done with
/// it (or it is dead), so nothing is lost.
const TCP_LINGER: Duration = Duration::ZERO;

/// Longest wait for listeners to report a routable address before dialing anyway.
const LISTEN_GRACE: Duration = Duration::from_secs(2);

/// What kind of node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An ordinary peer.
    Peer,
    /// A bootnode: a meeting point that gossips records.
    Bootnode,
}

/// Why the node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data directory is not usable.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The key could not be loaded or created.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The own record could not be built or stored.
    #[error(transparent)]
    Record(#[from] LocalRecordError),
    /// The transport could not be set up.
    #[error("cannot set up the transport: {0}")]
    Transport(String),
    /// A listen address was refused.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        source: libp2p::TransportError<std::io::Error>,
    },
    /// An `--external-addr` is not a plain TCP or QUIC address.
    #[error("--external-addr {0} is not /ip4|ip6/…/tcp/PORT or /ip4|ip6/…/udp/PORT/quic-v1")]
    ExternalAddr(Multiaddr),
    /// The signal handlers could not be installed.
    #[error("cannot watch SIGINT/SIGTERM: {0}")]
    Signals(std::io::Error),
    /// Every listener closed.
    #[error("no listener left")]
    NoListener,
}

/// A node between start and stop.
pub struct Node {
    mode: Mode,
    config: Config,
    swarm: Swarm<Behaviour>,
    record: LocalRecord,
    confirmations: Confirmations,
    data_dir: DataDir,
    bootnodes: HashMap<PeerId, Bootnode>,
    /// Every open connection: its peer and kind (direct over a transport, or relayed). The
    /// transport is what observed addresses are checked against (confirm rule 1).
    connections: HashMap<ConnectionId, (PeerId, Link)>,
    /// Listeners not ready yet; dialing waits for them so that dials reuse the listen ports
    /// and peers observe the ports we listen on. A listener is ready once it reported an
    /// address, and a wildcard one (0.0.0.0) once it reported a routable one: port reuse
    /// only knows an interface after its address is reported, and a dial to a routable
    /// address through a listener known only on loopback would leave from a new port.
    pending_listeners: HashMap<ListenerId, Multiaddr>,
    ready: bool,
    /// Each bootnode's connection per transport: which to dial, and when (see
    /// [`crate::redial`]).
    redial: Redial,
    /// The seq of the record a bootnode last printed and stored for its users.
    advertised: Option<u64>,
    /// Addresses set by `--external-addr`: observed ones never replace them.
    fixed_external: bool,
    /// NAT detection.
    nat: Detector,
    /// Peers we dialed and are still connected to or dialing: an inbound connection from
    /// one of them proves nothing about our reachability. Bounded by the dials we make.
    dialed: HashSet<PeerId>,
    /// Queries from the API and events for its watchers.
    hub: Hub,
    /// Running totals reported by the API.
    counters: status::Counters,
    /// libp2p's own metrics, when `--metrics` is on.
    metrics: Option<libp2p::metrics::Metrics>,
    /// Dials and connections from a fresh local port (strategy rule 4): the address a peer
    /// observes on them is not ours to confirm. Removed when they fail or close.
    fresh_port: HashSet<ConnectionId>,
    /// Which local port each open direct connection left from (confirm rule 7).
    legs: Legs,
    /// Connections that have answered a ping (removed when they close).
    pinged: HashSet<ConnectionId>,
    /// When each open connection is due an answered ping; a dead one is closed.
    liveness: Liveness,
    /// When we last asked for an introduction to each peer.
    asked: HashMap<PeerId, tokio::time::Instant>,
    /// Bootnodes we asked for a relay slot.
    reservations: HashSet<PeerId>,
    /// Failed hole punches to try again, by peer.
    punch_retries: HashMap<PeerId, reach::Retry>,
    /// When our last relayed connection to each peer closed, kept for [`PUNCH_GRACE`]: a
    /// successful punch closes the relayed connection, and the punched one may reach us
    /// inbound a moment later. Bounded by the relayed connections we had in that time.
    relay_closed: HashMap<PeerId, tokio::time::Instant>,
    /// Converts instants into the wall-clock times the API reports.
    clock: report::WallClock,
    /// What each connected peer's identify said (removed when its last connection closes).
    identified: HashMap<PeerId, foreign::Identified>,
    /// Relay reservations in flight, and when to ask again for those that ended.
    relay_slots: reservation::Reservations,
    /// Bootnodes whose gaps were logged, so each is logged once. Bounded by `--bootnode`.
    told_lacks: HashSet<PeerId>,
}

/// How long after its relayed connection closed an inbound connection from a peer is still
/// taken for the hole punch's: DCUtR's attempts end well within it.
const PUNCH_GRACE: Duration = Duration::from_secs(60);

/// The kind of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Straight to the peer.
    Direct(Transport),
    /// Through a relay's circuit.
    Relayed,
}

impl Node {
    /// Loads the identity and record from the data directory and builds the swarm.
    ///
    /// With a `registry`, libp2p's own metrics (connections, identify, ping, relay, DCUtR…)
    /// are recorded into it.
    pub fn new(
        mode: Mode,
        config: Config,
        registry: Option<&mut libp2p::metrics::Registry>,
    ) -> Result<Self, NodeError> {
        let path = config.data_dir.clone().unwrap_or_else(|| {
            match mode {
                Mode::Peer => "peerfind-data",
                Mode::Bootnode => "peerfind-bootnode-data",
            }
            .into()
        });
        let data_dir = DataDir::open(&path).map_err(|source| NodeError::DataDir {
            path: path.display().to_string(),
            source,
        })?;
        let identity = Identity::load_or_create(&data_dir)?;

        let mut content = Content::default();
        for addr in &config.external_addr {
            let (ip, port, transport) =
                enr_ext::socket_of(addr).ok_or_else(|| NodeError::ExternalAddr(addr.clone()))?;
            content.set_socket(ip, port, transport);
        }
        let record = LocalRecord::open(data_dir.clone(), identity.signing_key.clone(), content)?;

        let gossip_config = gossip::Config {
            gossip: mode == Mode::Bootnode,
            fanout: config.gossip_fanout,
            table: table::Config {
                capacity: config.table_size,
                ..Default::default()
            },
            await_identify: true,
            ..Default::default()
        };
        let limits = config.connection_limits(mode == Mode::Bootnode);
        let mesh_topic = (mode == Mode::Bootnode).then(|| config.mesh_topic.clone());
        let settings = crate::behaviour::Settings {
            autonat_client: config.autonat,
            limits: &limits,
            relay_limits: &config.relay,
            mesh_topic: mesh_topic.as_deref(),
        };
        let swarm = build_swarm(&identity, &record, gossip_config, settings)?;
        let nat_window = config.nat_window;
        let redial = Redial::new(&config.bootnodes, tokio::time::Instant::now());
        let bootnodes = config
            .bootnodes
            .iter()
            .map(|b| (b.peer_id, b.clone()))
            .collect();
        Ok(Self {
            mode,
            confirmations: Confirmations::new(config.confirmations),
            fixed_external: !config.external_addr.is_empty(),
            config,
            swarm,
            record,
            data_dir,
            bootnodes,
            connections: HashMap::new(),
            pending_listeners: HashMap::new(),
            ready: false,
            redial,
            advertised: None,
            nat: Detector::new(
                nat::Config { window: nat_window },
                tokio::time::Instant::now(),
            ),
            dialed: HashSet::new(),
            hub: Hub::new(),
            counters: status::Counters::default(),
            metrics: registry.map(libp2p::metrics::Metrics::new),
            asked: HashMap::new(),
            pinged: HashSet::new(),
            liveness: Liveness::new(),
            fresh_port: HashSet::new(),
            legs: Legs::default(),
            relay_closed: HashMap::new(),
            clock: report::WallClock::now(),
            identified: HashMap::new(),
            told_lacks: HashSet::new(),
            relay_slots: reservation::Reservations::default(),
            reservations: HashSet::new(),
            punch_retries: HashMap::new(),
        })
    }

    /// Runs until SIGINT or SIGTERM, or a fatal error.
    pub async fn run(mut self) -> Result<(), NodeError> {
        // Registered before anything is logged, so a signal sent as soon as the node says
        // it is up is never missed.
        let mut shutdown = Shutdown::new().map_err(NodeError::Signals)?;
        let enr = self.record.enr();
        tracing::info!(
            mode = ?self.mode, peer_id = %self.swarm.local_peer_id(),
            node_id = %hex::encode(enr.node_id().raw()), seq = enr.seq(), enr = %enr.to_base64(),
            "starting"
        );
        for addr in self.config.external_addr.clone() {
            self.swarm.add_external_address(addr);
        }
        for addr in self.config.listen_addrs() {
            let id = self
                .swarm
                .listen_on(addr.clone())
                .map_err(|source| NodeError::Listen {
                    addr: addr.clone(),
                    source,
                })?;
            self.pending_listeners.insert(id, addr);
        }

        // A host with nothing but loopback never reports a routable address: do not wait
        // for one longer than this.
        let listen_grace = tokio::time::sleep(LISTEN_GRACE);
        tokio::pin!(listen_grace);
        loop {
            let punch_due = self.next_punch_retry();
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event)?,
                _ = sleep_until(self.redial.next_due()), if self.ready => self.dial_bootnodes(),
                _ = &mut listen_grace, if !self.ready => {
                    tracing::debug!(pending = ?self.pending_listeners.values().collect::<Vec<_>>(), "listeners took long to report a routable address");
                    self.on_ready();
                }
                _ = sleep_until(self.nat.deadline()) => {
                    let change = self.nat.on_deadline(tokio::time::Instant::now());
                    self.on_nat_change(change);
                }
                Some(query) = self.hub.next_query() => self.answer(query),
                _ = sleep_until(punch_due) => self.on_punch_retries_due(),
                _ = sleep_until(self.liveness.next_deadline()) => self.on_silent_connections(),
                _ = sleep_until(self.relay_slots.next_due()) => self.on_reservation_retries_due(),
                signal = shutdown.recv() => {
                    tracing::info!(signal, "shutting down");
                    return Ok(());
                }
            }
        }
    }

    /// A handle for the API: queries and events.
    pub fn handle(&self) -> status::Handle {
        self.hub.handle()
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) -> Result<(), NodeError> {
        self.record_metrics(&event);
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                tracing::info!(%address, "listening");
                let done = self
                    .pending_listeners
                    .get(&listener_id)
                    .is_some_and(|requested| {
                        !is_wildcard(requested)
                            || enr_ext::socket_of(&address)
                                .is_some_and(|(ip, ..)| !ip.is_loopback())
                    });
                if done {
                    self.pending_listeners.remove(&listener_id);
                }
                if !self.ready && self.pending_listeners.is_empty() {
                    self.on_ready();
                } else if self.ready && self.mode == Mode::Bootnode {
                    // Interfaces of a wildcard listener report one by one: a better address
                    // than the one advertised may come later.
                    self.advertise_listen_addrs();
                }
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                addresses,
            } => {
                tracing::warn!(?addresses, ?reason, "listener closed");
                self.pending_listeners.remove(&listener_id);
                self.on_reservation_closed(listener_id, &reason);
                if self.swarm.listeners().next().is_none() {
                    return Err(NodeError::NoListener);
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                let remote = endpoint.get_remote_address();
                let link = if endpoint.is_relayed() {
                    Some(Link::Relayed)
                } else {
                    enr_ext::socket_of(remote).map(|(_, _, t)| Link::Direct(t))
                };
                let before = self.connection_of(&peer_id);
                if let Some(link) = link {
                    self.connections.insert(connection_id, (peer_id, link));
                }
                self.liveness
                    .opened(connection_id, tokio::time::Instant::now());
                if let Some(Link::Direct(transport)) = link {
                    self.legs.established(connection_id, &endpoint, transport);
                    self.redial.established(
                        peer_id,
                        transport,
                        connection_id,
                        endpoint.is_dialer(),
                        tokio::time::Instant::now(),
                    );
                }
                self.publish_connection_change(peer_id, before);
                self.on_connected_for_nat(peer_id, &endpoint);
                tracing::info!(
                    peer = %peer_id, remote_addr = %remote, direction = direction(&endpoint),
                    relayed = endpoint.is_relayed(),
                    bootnode = self.bootnodes.contains_key(&peer_id), "connected"
                );
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                cause,
                num_established,
                endpoint,
                ..
            } => {
                let before = self.connection_of(&peer_id);
                if let Some((_, Link::Relayed)) = self.connections.remove(&connection_id) {
                    let now = tokio::time::Instant::now();
                    self.relay_closed
                        .retain(|_, at| now.duration_since(*at) < PUNCH_GRACE);
                    self.relay_closed.insert(peer_id, now);
                }
                self.pinged.remove(&connection_id);
                let lost = self.liveness.closed(connection_id);
                if let Some(((bootnode, transport), wait)) = self
                    .redial
                    .closed(connection_id, tokio::time::Instant::now())
                {
                    tracing::info!(%bootnode, ?transport, ?wait, "bootnode connection lost; redialing");
                }
                self.fresh_port.remove(&connection_id);
                self.legs.closed(connection_id);
                self.publish_connection_change(peer_id, before);
                if num_established == 0 {
                    self.dialed.remove(&peer_id);
                    self.forget_identify(&peer_id);
                }
                if lost && num_established == 0 && !self.bootnodes.contains_key(&peer_id) {
                    self.reach_again(peer_id);
                }
                let cause = cause
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "closed".into());
                let remote = endpoint.get_remote_address();
                tracing::info!(
                    peer = %peer_id, remote_addr = %remote, relayed = endpoint.is_relayed(), %cause,
                    "disconnected"
                );
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id,
                connection_id,
                error,
            } => {
                self.fresh_port.remove(&connection_id);
                if let Some(((bootnode, transport), wait)) = self
                    .redial
                    .outgoing_error(connection_id, tokio::time::Instant::now())
                {
                    tracing::debug!(%bootnode, ?transport, ?wait, "bootnode dial failed; redialing later");
                }
                tracing::warn!(peer = ?peer_id, %error, "dial failed");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                connection_id,
                info,
            })) => {
                self.redial.identified(connection_id);
                self.on_identify(peer_id, connection_id, &info)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Error {
                peer_id,
                connection_id,
                error,
            })) if self.redial.identify_failed(connection_id) => {
                // Redial rule 6: identify would ask again only in 5 minutes; a new
                // connection asks at once.
                tracing::warn!(bootnode = %peer_id, %error, "identify failed on a new bootnode connection; closing it to redial");
                self.swarm.close_connection(connection_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Mesh(event)) => self.on_mesh(event),
            SwarmEvent::Behaviour(BehaviourEvent::Intro(event)) => self.on_intro(event),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(event)) => {
                self.on_relay_client(event)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(event)) => self.on_dcutr(event),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(libp2p::ping::Event {
                peer,
                connection,
                result,
            })) => self.on_ping(peer, connection, result),
            SwarmEvent::Behaviour(BehaviourEvent::AutonatClient(event)) => {
                let reachable = event.result.is_ok();
                // A relayed address (`…/p2p-circuit`) is reachable through the relay by
                // design; it says nothing about our own address, so it is no NAT verdict.
                if enr_ext::socket_of(&event.tested_addr).is_none() {
                    tracing::debug!(addr = %event.tested_addr, reachable, "ignored AutoNAT test of a relayed address");
                    return Ok(());
                }
                tracing::info!(
                    addr = %event.tested_addr, server = %event.server, reachable,
                    error = ?event.result.err().map(|e| e.to_string()), "AutoNAT test done"
                );
                let change = self.nat.autonat_result(
                    event.tested_addr,
                    event.server,
                    reachable,
                    tokio::time::Instant::now(),
                );
                self.on_nat_change(change);
            }
            _ => {}
        }
        Ok(())
    }

    /// All listeners are up: a bootnode now knows its addresses; everyone dials bootnodes.
    fn on_ready(&mut self) {
        if self.ready {
            return;
        }
        self.ready = true;
        if self.mode == Mode::Bootnode {
            self.advertise_listen_addrs();
        }
        self.dial_bootnodes();
    }

    /// A bootnode has nobody to tell it its address: unless `--external-addr` says, it
    /// advertises the address it listens on, preferring one that is not loopback. Prints
    /// and stores its record and addresses whenever they change.
    fn advertise_listen_addrs(&mut self) {
        if !self.fixed_external {
            let listen: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
            let mut chosen: HashMap<Transport, Multiaddr> = HashMap::new();
            for addr in listen {
                let Some((ip, _, transport)) = enr_ext::socket_of(&addr) else {
                    continue;
                };
                let better = chosen
                    .get(&transport)
                    .and_then(enr_ext::socket_of)
                    .is_none_or(|(held, _, _)| held.is_loopback() && !ip.is_loopback());
                if better {
                    chosen.insert(transport, addr);
                }
            }
            let sockets: Vec<_> = chosen.values().filter_map(enr_ext::socket_of).collect();
            let replaced: Vec<Multiaddr> = self
                .swarm
                .external_addresses()
                .filter(|a| !chosen.values().any(|c| c == *a))
                .cloned()
                .collect();
            for addr in replaced {
                self.swarm.remove_external_address(&addr);
            }
            for addr in chosen.into_values() {
                self.swarm.add_external_address(addr);
            }
            self.change_record("bootnode advertises its listen addresses", |c| {
                for (ip, port, transport) in sockets {
                    c.set_socket(ip, port, transport);
                }
            });
        }
        if self.advertised == Some(self.record.enr().seq()) {
            return;
        }
        self.advertised = Some(self.record.enr().seq());
        let enr = self.record.enr();
        let peer = *self.swarm.local_peer_id();
        let mut lines = vec![enr.to_base64()];
        lines.extend(
            enr_ext::multiaddrs(enr, peer)
                .iter()
                .map(ToString::to_string),
        );
        let text = lines.join("\n") + "\n";
        print!("{text}");
        if let Err(e) = self
            .data_dir
            .write_atomic(BOOTNODE_FILE, text.as_bytes(), 0o644)
        {
            tracing::warn!(error = %e, "cannot write the bootnode file");
        }
        tracing::info!(
            enr = %enr.to_base64(), addrs = ?lines[1..].to_vec(),
            file = %self.data_dir.path().join(BOOTNODE_FILE).display(), "bootnode ready"
        );
    }

    /// Dials every bootnode slot that is due: each bootnode over each transport it has and
    /// we hold no connection of (redial rules 2 to 4), so each transport gets its own
    /// connection and its own observed address.
    fn dial_bootnodes(&mut self) {
        let now = tokio::time::Instant::now();
        for ((peer, transport), addrs) in self.redial.due(now) {
            tracing::debug!(%peer, ?transport, addrs = ?addrs, "dialing bootnode");
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::Always)
                .build();
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    self.redial.dial_started((peer, transport), id);
                    self.dialed.insert(peer);
                }
                Err(e) => {
                    let wait = self.redial.dial_failed((peer, transport), None, now);
                    tracing::warn!(%peer, ?transport, error = %e, retry_in = ?wait, "cannot dial bootnode")
                }
            }
        }
    }

    fn on_observed(&mut self, peer: PeerId, connection: ConnectionId, observed: &Multiaddr) {
        let Some((_, Link::Direct(transport))) = self.connections.get(&connection).copied() else {
            return;
        };
        if self.fresh_port.contains(&connection) {
            tracing::debug!(%peer, %observed, "ignoring the address seen on a connection from a fresh port");
            return;
        }
        let is_bootnode = self.bootnodes.contains_key(&peer);
        tracing::debug!(%peer, %observed, is_bootnode, "peer reported our address");
        if self.fixed_external {
            return;
        }
        let leg = self.legs.get(connection).unwrap_or(Leg::OtherPort);
        let listen: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
        let own = Own { listen: &listen };
        let Some(confirmed) =
            self.confirmations
                .observe(peer, is_bootnode, (transport, leg), observed, own)
        else {
            return;
        };
        let mut addr = Multiaddr::from(confirmed.socket.ip());
        match confirmed.transport {
            Transport::Tcp => addr.push(Protocol::Tcp(confirmed.socket.port())),
            Transport::Quic => {
                addr.push(Protocol::Udp(confirmed.socket.port()));
                addr.push(Protocol::QuicV1);
            }
        }
        let reason = match confirmed.by {
            Witness::Bootnode(p) => format!("observed address confirmed by bootnode {p}"),
            Witness::Peers(n) => format!("observed address confirmed by {n} peers"),
        };
        tracing::info!(address = %addr, %reason, "external address confirmed");
        // NAT rule 5 (a fast signal, off with AutoNAT): a translated address is the verdict,
        // set before the address goes into the record, so peers never see it unflagged.
        let translated = !own.has_ip(confirmed.socket.ip());
        let fast = self.mode == Mode::Peer && self.config.autonat;
        if fast {
            let now = tokio::time::Instant::now();
            let change = self
                .nat
                .address_confirmed(addr.clone(), peer, translated, now);
            self.on_nat_change(change);
        }
        // The record takes the observed address at once (the first diagram). The swarm's
        // external addresses mean "verified reachable": with AutoNAT on, its dial-back
        // confirms them (an address added here would never be tested, since the swarm
        // drops candidates it already holds); without it, we trust the observation.
        if !self.config.autonat {
            self.swarm.add_external_address(addr);
        }
        let (ip, port) = (confirmed.socket.ip(), confirmed.socket.port());
        self.change_record(&reason, |c| {
            c.set_socket(ip, port, confirmed.transport);
        });
        if fast && !translated {
            // Strategy rule 6 may now ask for introductions, with this address in our record.
            self.reach_all();
        }
    }

    /// Feeds a new connection to NAT detection: the first bootnode opens the window, a
    /// stranger's unsolicited connection proves we are reachable.
    fn on_connected_for_nat(&mut self, peer: PeerId, endpoint: &ConnectedPoint) {
        let now = tokio::time::Instant::now();
        if self.bootnodes.contains_key(&peer) {
            self.nat.bootnode_connected(now);
            return;
        }
        // A hole punch's direct connection may arrive inbound: it proves nothing, so a peer
        // we are relayed to, or were until a moment ago (the other side closes the relayed
        // connection as soon as its end of the punch succeeds), is no stranger.
        let relayed_to = self
            .connections
            .values()
            .any(|(p, l)| *p == peer && *l == Link::Relayed)
            || self
                .relay_closed
                .get(&peer)
                .is_some_and(|at| now.duration_since(*at) < PUNCH_GRACE);
        let stranger = !endpoint.is_dialer()
            && !endpoint.is_relayed()
            && !relayed_to
            && !self.dialed.contains(&peer)
            && self.mode == Mode::Peer;
        if stranger {
            let change = self.nat.stranger_connected(peer, now);
            self.on_nat_change(change);
        }
    }

    /// A ping's outcome. An answer keeps the connection alive (liveness rule 2), and the
    /// first one proves that data flows both ways on it, relayed or not; a failure libp2p
    /// reports closes it (liveness rule 3).
    fn on_ping(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        result: Result<Duration, libp2p::ping::Failure>,
    ) {
        let rtt = match result {
            Ok(rtt) => rtt,
            Err(libp2p::ping::Failure::Unsupported) => {
                tracing::debug!(%peer, "peer does not answer pings; its connection is not watched");
                self.liveness.unsupported(connection);
                return;
            }
            Err(error) => {
                if self.liveness.failed(connection).is_some() {
                    tracing::warn!(%peer, %error, "ping failed; closing the connection");
                    self.swarm.close_connection(connection);
                }
                return;
            }
        };
        self.liveness
            .answered(connection, tokio::time::Instant::now());
        if self.pinged.insert(connection) {
            let relayed = self
                .connections
                .get(&connection)
                .is_some_and(|(_, l)| *l == Link::Relayed);
            tracing::info!(%peer, rtt_ms = rtt.as_millis() as u64, relayed, "connection alive");
        }
    }

    /// Closes every connection that answered no ping within the liveness budget (liveness
    /// rule 5): its peer or the path to it is gone, and only the close lets the node act on
    /// the loss (redial a bootnode, reach the peer anew, learn its address again).
    fn on_silent_connections(&mut self) {
        for connection in self.liveness.expired(tokio::time::Instant::now()) {
            let peer = self.connections.get(&connection).map(|(p, _)| *p);
            tracing::warn!(
                peer = ?peer, budget_s = liveness::budget().as_secs(),
                "no ping answered within the budget; closing the connection"
            );
            self.swarm.close_connection(connection);
        }
    }

    /// The last connection to a peer we hold a record of was found dead: the strategy
    /// decides anew how to reach it (the path may be back, or another way may work).
    fn reach_again(&mut self, peer: PeerId) {
        let enr = self
            .swarm
            .behaviour()
            .gossip
            .table()
            .get_by_peer(&peer)
            .map(|e| e.enr.clone());
        if let Some(enr) = enr {
            tracing::info!(%peer, "connection to peer lost; reaching it anew");
            self.reach(&enr, peer);
        }
    }

    /// Logs a NAT status change once, and sets or clears the `nat` flag ("Update: NAT").
    fn on_nat_change(&mut self, change: Option<nat::Change>) {
        let Some(change) = change else { return };
        tracing::info!(
            from = %change.from, to = %change.to, reason = %change.reason, "NAT status changed"
        );
        self.hub.publish(status::Event::NatStatusChanged {
            from: change.from,
            to: change.to,
            reason: change.reason.to_string(),
        });
        let natted = change.to == nat::Status::Private;
        self.change_record(&change.reason.to_string(), |c| c.nat = natted);
        self.on_nat_status(change.to);
    }

    /// Changes the own record and, when it changed, announces it ("Update: …").
    fn change_record(&mut self, reason: &str, change: impl FnOnce(&mut Content)) {
        match self.record.update(change) {
            Ok(true) => {
                let enr = self.record.enr().clone();
                tracing::info!(
                    seq = enr.seq(), ip = ?enr.ip4(), tcp = ?enr.tcp4(), quic = ?enr_ext::quic4(&enr),
                    ip6 = ?enr.ip6(), nat = enr_ext::is_natted(&enr), reason, enr = %enr.to_base64(),
                    "local record updated"
                );
                self.swarm
                    .behaviour_mut()
                    .intro
                    .set_local_record(enr.clone());
                self.swarm.behaviour_mut().gossip.set_local_record(enr);
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, reason, "cannot update the local record"),
        }
    }

    fn on_gossip(&mut self, event: gossip::Event) {
        match event {
            gossip::Event::RecordLearned { enr, peer_id, .. } => {
                self.publish_to_mesh(&enr);
                self.swarm.behaviour_mut().intro.remember(enr.node_id());
                self.hub.publish(status::Event::RecordLearned {
                    peer_id,
                    seq: enr.seq(),
                    nat: enr_ext::is_natted(&enr),
                });
                self.reach(&enr, peer_id)
            }
            gossip::Event::RecordUpdated { enr, peer_id, .. } => {
                self.publish_to_mesh(&enr);
                self.hub.publish(status::Event::RecordUpdated {
                    peer_id,
                    seq: enr.seq(),
                    nat: enr_ext::is_natted(&enr),
                });
                self.reach(&enr, peer_id)
            }
            gossip::Event::InputRejected { .. } => {}
        }
    }

    /// Mesh rule 2: every record new or newer in our table goes to the other bootnodes.
    fn publish_to_mesh(&mut self, enr: &peerfind_behaviours::enr_ext::Enr) {
        if let Some(mesh) = self.swarm.behaviour_mut().mesh.as_mut() {
            crate::mesh::publish(mesh, &self.config.mesh_topic, enr);
        }
    }

    /// Mesh rules 3 to 5: a record from another bootnode goes through our table like a pushed
    /// one, and gossipsub forwards it only if the table took it as new or newer.
    fn on_mesh(&mut self, event: libp2p::gossipsub::Event) {
        let (propagation_source, message_id, message) = match event {
            libp2p::gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => (propagation_source, message_id, message),
            libp2p::gossipsub::Event::Subscribed { peer_id, .. } => {
                // A bootnode in the mesh gets every record from it: no pushes to it too.
                tracing::info!(peer = %peer_id, "bootnode joined the record mesh");
                self.swarm.behaviour_mut().gossip.skip_pushes_to(peer_id);
                return;
            }
            _ => return,
        };
        let behaviour = self.swarm.behaviour_mut();
        let offered = behaviour.gossip.offer(&message.data, propagation_source);
        if let Err(e) = &offered {
            tracing::debug!(peer = %propagation_source, reason = %e, "record from the bootnode mesh not taken");
        }
        let acceptance = crate::mesh::acceptance(&offered);
        if let Some(mesh) = behaviour.mesh.as_mut() {
            mesh.report_message_validation_result(&message_id, &propagation_source, acceptance);
        }
    }
}

fn build_swarm(
    identity: &Identity,
    record: &LocalRecord,
    gossip: gossip::Config,
    settings: crate::behaviour::Settings<'_>,
) -> Result<Swarm<Behaviour>, NodeError> {
    let transport = |e: &dyn std::fmt::Display| NodeError::Transport(e.to_string());
    Ok(
        libp2p::SwarmBuilder::with_existing_identity(identity.keypair.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().linger(Some(TCP_LINGER)),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| transport(&e))?
            .with_quic()
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| transport(&e))?
            .with_behaviour(|key, relay_client| {
                Behaviour::new(key, relay_client, record, gossip, settings).map_err(Box::from)
            })
            .map_err(|e| transport(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
            .with_connection_timeout(CONNECTION_TIMEOUT)
            .build(),
    )
}

/// Whether a listen address is on all interfaces (0.0.0.0 or ::).
fn is_wildcard(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_unspecified(),
        Some(Protocol::Ip6(ip)) => ip.is_unspecified(),
        _ => false,
    }
}

fn direction(endpoint: &ConnectedPoint) -> &'static str {
    if endpoint.is_dialer() {
        "outbound"
    } else {
        "inbound"
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// SIGINT and SIGTERM, watched from the node's start.
struct Shutdown {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Shutdown {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves with the name of the first signal received.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}
