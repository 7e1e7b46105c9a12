//! The running node: builds the swarm, then turns swarm events into decisions and record
//! updates, until it is told to stop.
//!
//! `Node` owns the swarm, the own record and one component per piece of state; this file is
//! the event loop and the wiring between them. The components live in the concern folders
//! below this one and never touch the swarm; each is a small state machine with its numbered
//! rules and tests beside it:
//!
//! | state | owner |
//! |---|---|
//! | open connections, their kind and leg, dials, pings, relay closes, the stranger test | [`crate::upkeep::connections`] |
//! | the configured bootnodes and their redial | [`crate::upkeep::bootnodes`] (with [`crate::upkeep::redial`]) |
//! | listeners' readiness, a bootnode's advertised addresses | [`crate::upkeep::listeners`] |
//! | what each connected peer's identify said | [`crate::upkeep::identities`] |
//! | introductions asked, hole punches and circuits to retry | [`crate::reach::attempts`] |
//! | relay reservations and their retries | [`crate::reach::reservation`] |
//! | observed-address votes | [`crate::reach::confirm`] |
//! | the NAT verdict | [`crate::reach::nat`] |
//!
//! The wiring is split by what it carries out, one file each: `own_record` (an observed
//! address or a NAT verdict changes the own record), `learned` (records learned from the
//! exchange), `mesh` (the bootnodes' record mesh: its members, its records in and out, its
//! sync), `reach` (carrying out the strategy: dials, introductions, circuits, punches, relay
//! slots), `identified` (identify's answer), `pings` (liveness closes dead connections),
//! `mapping` (port mapping and its proof), `report` (answering the API); `shutdown` holds
//! the signals that stop the node.
//!
//! One event's path, wire to record: identify's `Received` carries the address a peer sees us
//! at → [`crate::reach::confirm`] decides whether that is our address →
//! [`crate::record::enr`] signs the record anew with seq + 1 and stores it (`own_record`) →
//! the gossip behaviour announces it to every connected peer → a bootnode passes it on
//! ("Meet Alice", `learned` and `peerfind_behaviours::gossip`).

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{PeerId, Swarm, identify};
use peerfind_behaviours::enr_ext;

use crate::config::Config;
use crate::reach::confirm::Confirmations;
use crate::reach::mapping::PortMappings;
use crate::reach::nat::{self, Detector};
use crate::record::data_dir::DataDir;
use crate::record::enr::{Content, LocalRecord};
use crate::record::identity::Identity;
use crate::status::{self, Hub};
use crate::swarm::behaviour::{Behaviour, BehaviourEvent};

mod diag;
mod error;
mod guess;
mod identified;
mod learned;
mod mapping;
mod mesh;
mod own_record;
mod pings;
mod punch;
mod reach;
mod report;
mod shutdown;
mod slots;

use shutdown::Shutdown;

pub use crate::config::Mode;
use crate::reach::attempts::Attempts;
use crate::reach::reservation;
use crate::upkeep::bootnodes::Bootnodes;
use crate::upkeep::connections::{ConnectionBook, Link};
use crate::upkeep::identities;
use crate::upkeep::listeners::{LISTEN_GRACE, Listeners};
pub use error::NodeError;

/// A node between start and stop.
pub struct Node {
    mode: Mode,
    config: Config,
    swarm: Swarm<Behaviour>,
    record: LocalRecord,
    data_dir: DataDir,
    /// Observed-address votes.
    confirmations: Confirmations,
    /// Until when strategy rule 8 waits for the other bootnodes' reports of our address,
    /// set once, at our first translated address (see `own_record.rs`).
    report_wait: Option<tokio::time::Instant>,
    /// NAT detection.
    nat: Detector,
    /// The ports our router forwards to us.
    port_mapping: PortMappings,
    connections: ConnectionBook,
    bootnodes: Bootnodes,
    listeners: Listeners,
    reach: Attempts,
    /// Relay reservations in flight, and when to ask again for those that ended.
    relay_slots: reservation::Reservations,
    /// What each connected peer's identify said (removed when its last connection closes).
    identified: identities::Identities,
    /// Queries from the API and events for its watchers.
    hub: Hub,
    /// Running totals reported by the API.
    counters: status::Counters,
    /// libp2p's own metrics, when `--metrics` is on.
    metrics: Option<libp2p::metrics::Metrics>,
    /// Converts instants into the wall-clock times the API reports.
    clock: report::WallClock,
    /// Bootnodes: the mesh messages gossipsub delivered lately (mesh rule 2).
    mesh_delivered: crate::mesh::message::Delivered,
    /// `peerfind ping`'s rounds in flight.
    rounds: crate::diag::ping::Rounds,
    /// Port guessing under way (strategy rule 10).
    guesses: crate::reach::guess::Guesses,
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
        let identity = match &config.key_file {
            Some(path) => Identity::load(path)?,
            None => Identity::load_or_create(&data_dir)?,
        };

        let mut content = Content::default();
        for addr in &config.external_addr {
            let (ip, port, transport) =
                enr_ext::socket_of(addr).ok_or_else(|| NodeError::ExternalAddr(addr.clone()))?;
            content.set_socket(ip, port, transport);
        }
        let record = LocalRecord::open(data_dir.clone(), identity.signing_key.clone(), content)?;
        let mut registry = registry;
        let mut swarm =
            crate::swarm::build::build(&identity, &record, mode, &config, registry.as_deref_mut())?;
        // Introductions are taken only from the configured bootnodes (intro rule 1).
        swarm
            .behaviour_mut()
            .intro
            .set_bootnodes(config.bootnodes.iter().map(|b| b.peer_id));
        let now = tokio::time::Instant::now();
        Ok(Self {
            mode,
            confirmations: Confirmations::new(config.confirmations),
            report_wait: None,
            nat: Detector::new(
                nat::Config {
                    window: config.nat_window,
                },
                now,
            ),
            port_mapping: PortMappings::new(config.port_mapping(mode == Mode::Bootnode)),
            bootnodes: Bootnodes::new(&config.bootnodes, now),
            config,
            swarm,
            record,
            data_dir,
            connections: ConnectionBook::new(),
            listeners: Listeners::default(),
            reach: Attempts::default(),
            relay_slots: reservation::Reservations::default(),
            identified: identities::Identities::default(),
            hub: Hub::new(),
            counters: status::Counters::default(),
            metrics: registry.map(libp2p::metrics::Metrics::new),
            clock: report::WallClock::now(),
            mesh_delivered: Default::default(),
            rounds: Default::default(),
            guesses: Default::default(),
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
            self.listeners.requested(id, addr);
        }

        // Listeners rule 2: do not wait for a routable address longer than this.
        let listen_grace = tokio::time::sleep(LISTEN_GRACE);
        tokio::pin!(listen_grace);
        let mut mesh_sync = tokio::time::interval(crate::mesh::SYNC_INTERVAL);
        mesh_sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let ready = self.listeners.is_ready();
            let report_wait = self
                .report_wait
                .filter(|t| *t > tokio::time::Instant::now());
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event)?,
                _ = sleep_until(self.bootnodes.redial.next_due()), if ready => self.dial_bootnodes(),
                _ = &mut listen_grace, if !ready => {
                    tracing::debug!(pending = ?self.listeners.pending(), "listeners took long to report a routable address");
                    if self.listeners.set_ready() {
                        self.on_ready();
                    }
                }
                _ = sleep_until(self.nat.deadline()) => {
                    let change = self.nat.on_deadline(tokio::time::Instant::now());
                    self.on_nat_change(change);
                }
                Some(query) = self.hub.next_query() => self.answer(query),
                _ = mesh_sync.tick(), if self.mode == Mode::Bootnode => self.sync_mesh(),
                _ = sleep_until(self.reach.next_punch_retry()) => self.on_punch_retries_due(),
                _ = sleep_until(self.reach.next_punch_deadline()) => self.on_punch_deadlines(),
                _ = sleep_until(self.connections.next_deadline()) => self.on_silent_connections(),
                _ = sleep_until(self.relay_slots.next_due()) => self.on_reservation_retries_due(),
                _ = sleep_until(self.confirmations.next_due()) => self.on_confirmations_due(),
                _ = sleep_until(report_wait), if report_wait.is_some() => self.reach_all(),
                (peer, port) = self.guesses.next_end() => self.on_guess_end(peer, port),
                signal = shutdown.recv() => {
                    tracing::info!(signal, "shutting down");
                    self.unmap_ports().await;
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
                if self.listeners.reported(listener_id, &address) {
                    self.on_ready();
                } else if self.listeners.is_ready() && self.mode == Mode::Bootnode {
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
                // Closed on purpose (a relay slot given back once we are public) is normal
                // operation; closed by an error (a relay lost, a socket failed) is worth a look.
                match &reason {
                    Ok(()) => tracing::info!(?addresses, "listener closed"),
                    Err(error) => tracing::warn!(?addresses, %error, "listener closed"),
                }
                self.listeners.closed(listener_id);
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
            } => self.on_connection_established(peer_id, connection_id, &endpoint),
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                cause,
                num_established,
                endpoint,
                ..
            } => {
                let now = tokio::time::Instant::now();
                let closed = self
                    .connections
                    .closed(connection_id, peer_id, num_established, now);
                if let Some(((bootnode, transport), wait)) =
                    self.bootnodes.redial.closed(connection_id, now)
                {
                    tracing::info!(%bootnode, ?transport, ?wait, "bootnode connection lost; redialing");
                }
                self.publish_connection_change(peer_id, closed.before);
                if num_established == 0 {
                    self.identified.forget(&peer_id);
                    self.close_guessed_listeners(peer_id);
                }
                if closed.lost && num_established == 0 && !self.bootnodes.contains(&peer_id) {
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
            } => self.on_dial_failed(peer_id, connection_id, &error),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                connection_id,
                info,
            })) => {
                self.bootnodes.redial.identified(connection_id);
                self.on_identify(peer_id, connection_id, &info)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Error {
                peer_id,
                connection_id,
                error,
            })) if self.bootnodes.redial.identify_failed(connection_id) => {
                // Redial rule 6: identify would ask again only in 5 minutes; a new
                // connection asks at once.
                tracing::warn!(bootnode = %peer_id, %error, "identify failed on a new bootnode connection; closing it to redial");
                self.swarm.close_connection(connection_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Mesh(event)) => self.on_mesh(event),
            SwarmEvent::Behaviour(BehaviourEvent::MeshAdmission(event)) => {
                self.on_mesh_admission(event)
            }
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
            SwarmEvent::Behaviour(BehaviourEvent::AutonatClient(event)) => self.on_autonat(event),
            SwarmEvent::Behaviour(BehaviourEvent::PortMapping(e)) => self.on_port_mapping(e),
            SwarmEvent::Behaviour(BehaviourEvent::Rtt(event)) => self.on_rtt(event),
            _ => {}
        }
        Ok(())
    }

    fn on_connection_established(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        endpoint: &ConnectedPoint,
    ) {
        let now = tokio::time::Instant::now();
        self.reach.circuit_opened(connection_id);
        self.guesses.spray_ended(connection_id);
        self.on_punch_opened(connection_id);
        // The stranger test looks at the book before this connection is in it.
        let stranger = self.connections.is_stranger(&peer_id, endpoint, now);
        let opened = self
            .connections
            .opened(connection_id, peer_id, endpoint, now);
        if let Some(Link::Direct(transport)) = opened.link {
            self.bootnodes.redial.established(
                peer_id,
                transport,
                connection_id,
                endpoint.is_dialer(),
                now,
            );
        }
        self.publish_connection_change(peer_id, opened.before);
        let bootnode = self.bootnodes.contains(&peer_id);
        if self.bootnodes.greet_on_connect(&peer_id) {
            self.swarm.behaviour_mut().gossip.on_known_speaker(peer_id);
        }
        if stranger && !bootnode && self.mode == Mode::Peer {
            // NAT rule 1: a stranger's unsolicited connection proves we are reachable.
            let change = self.nat.stranger_connected(peer_id, now);
            self.on_nat_change(change);
        }
        self.hub.publish(status::Event::ConnectionOpened {
            peer_id,
            direction: if endpoint.is_dialer() {
                status::Direction::Outbound
            } else {
                status::Direction::Inbound
            },
            remote_addr: endpoint.get_remote_address().clone(),
            relayed: endpoint.is_relayed(),
            bootnode,
        });
        tracing::info!(
            peer = %peer_id, remote_addr = %endpoint.get_remote_address(),
            direction = if endpoint.is_dialer() { "outbound" } else { "inbound" },
            relayed = endpoint.is_relayed(), bootnode, "connected"
        );
    }

    /// All listeners are up: a bootnode now knows its addresses; everyone dials bootnodes.
    fn on_ready(&mut self) {
        if self.mode == Mode::Bootnode {
            self.advertise_listen_addrs();
        }
        self.dial_bootnodes();
    }

    /// Dials every bootnode slot that is due: each bootnode over each transport it has and
    /// we hold no connection of (redial rules 2 to 4), so each transport gets its own
    /// connection and its own observed address.
    fn dial_bootnodes(&mut self) {
        let now = tokio::time::Instant::now();
        for ((peer, transport), addrs) in self.bootnodes.redial.due(now) {
            tracing::debug!(%peer, ?transport, addrs = ?addrs, "dialing bootnode");
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::Always)
                .build();
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    self.bootnodes.redial.dial_started((peer, transport), id);
                    self.connections.dialing(peer, id, false);
                }
                Err(e) => {
                    let wait = self
                        .bootnodes
                        .redial
                        .dial_failed((peer, transport), None, now);
                    tracing::warn!(%peer, ?transport, error = %e, retry_in = ?wait, "cannot dial bootnode")
                }
            }
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
