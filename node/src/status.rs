//! What a running node can tell about itself, and how others ask: the seam between the node's
//! event loop and its API.
//!
//! The API never touches the swarm. It holds a [`Handle`]: queries go to the event loop over a
//! bounded channel and are answered from live state through a oneshot; events are broadcast
//! to every watcher (a slow watcher loses the oldest events and is told how many).

use std::collections::BTreeMap;
use std::time::SystemTime;

use libp2p::{Multiaddr, PeerId};
use peerfind_behaviours::enr_ext::{self, Enr, NatMapping, Transport};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::reach::{mapping, nat};

/// Queries waiting for the event loop; more wait in the sender.
pub const QUERY_QUEUE: usize = 64;

/// Events kept for each watcher that has not read them yet.
pub const EVENT_BUFFER: usize = 1024;

/// The node's own state.
#[derive(Debug, Clone)]
pub struct Status {
    /// libp2p identity.
    pub peer_id: PeerId,
    /// ENR node id, hex.
    pub node_id: String,
    /// The own record, `enr:…`.
    pub enr: String,
    /// Its seq.
    pub seq: u64,
    /// Addresses we listen on.
    pub listen_addrs: Vec<Multiaddr>,
    /// Addresses peers observed and we confirmed (what the record holds).
    pub observed_addrs: Vec<Multiaddr>,
    /// Addresses verified reachable (AutoNAT, `--external-addr`, or a bootnode's listen
    /// address).
    pub external_addrs: Vec<Multiaddr>,
    /// NAT status.
    pub nat: NatState,
    /// The ports our router forwards to us.
    pub port_mapping: PortMappingState,
    /// Configured bootnodes.
    pub bootnodes: Vec<BootnodeState>,
    /// Records in the table.
    pub records: u64,
    /// Open connections by kind.
    pub direct_connections: u64,
    /// Open relayed connections.
    pub relayed_connections: u64,
    /// Peers we chose to connect to, bootnodes aside: what `--max-peers` caps
    /// (`upkeep::connections` rule 9).
    pub chosen_peers: u64,
    /// Running totals.
    pub counters: Counters,
}

/// NAT status with its reason.
#[derive(Debug, Clone)]
pub struct NatState {
    /// Unknown, public or private.
    pub status: nat::Status,
    /// The evidence.
    pub reason: String,
    /// Since when.
    pub since: SystemTime,
    /// How our NAT maps our ports, as our record says.
    pub mappings: NatMappings,
}

/// How a NAT maps each transport's port, as a record says (`nat-tcp`, `nat-quic`): unknown
/// until two bootnodes saw it, and only beside the `nat` flag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatMappings {
    /// The TCP port's.
    pub tcp: Option<NatMapping>,
    /// The QUIC port's.
    pub quic: Option<NatMapping>,
}

impl NatMappings {
    /// What `enr` says.
    pub fn of(enr: &Enr) -> Self {
        Self {
            tcp: enr_ext::nat_mapping(enr, Transport::Tcp),
            quic: enr_ext::nat_mapping(enr, Transport::Quic),
        }
    }
}

/// Port mapping (UPnP-IGD): where it stands, and the addresses the router maps to us.
#[derive(Debug, Clone)]
pub struct PortMappingState {
    /// Where it stands (`crate::reach::mapping`'s rules).
    pub state: mapping::State,
    /// Why, for people.
    pub detail: String,
    /// The addresses the router maps to us.
    pub mapped: Vec<Multiaddr>,
    /// Those of them a dial-back reached: the ones the record may hold.
    pub verified: Vec<Multiaddr>,
}

/// A configured bootnode.
#[derive(Debug, Clone)]
pub struct BootnodeState {
    /// Its PeerId.
    pub peer_id: PeerId,
    /// Where it is dialed.
    pub addrs: Vec<Multiaddr>,
    /// Whether a connection is open.
    pub connected: bool,
    /// Transports of the open direct connections ("quic" before "tcp").
    pub transports: Vec<&'static str>,
    /// Its identify agent ("" until it identified).
    pub agent: String,
    /// What peerfind would use it for and it does not offer, in plain words (empty for a
    /// peerfind bootnode, or until it identified).
    pub lacks: Vec<String>,
    /// Whether its relay holds a reservation for us now.
    pub relay_reserved: bool,
}

/// Running totals since start.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Peers dialed at their record's addresses (strategy rule 4).
    pub direct_dials: u64,
    /// Peers dialed through a bootnode's relay (strategy rule 7, and punch retries).
    pub circuit_dials: u64,
    /// Introductions we asked a bootnode for.
    pub introductions_asked: u64,
    /// Introductions we forwarded as a bootnode.
    pub introductions_served: u64,
    /// Hole punches started.
    pub punches_tried: u64,
    /// Hole punches that gave a direct connection.
    pub punches_succeeded: u64,
    /// Hole punches that failed.
    pub punches_failed: u64,
    /// Messages dropped for breaking the protocol, by reason.
    pub inputs_rejected: BTreeMap<String, u64>,
    /// Inbound connections refused because their subnet held `--max-inbound-per-subnet`.
    pub inbound_denied_per_subnet: u64,
    /// Port-mapping changes, by the state each led to.
    pub port_mapping: BTreeMap<String, u64>,
}

/// A known peer.
#[derive(Debug, Clone)]
pub struct Peer {
    /// ENR node id, hex.
    pub node_id: String,
    /// libp2p identity.
    pub peer_id: PeerId,
    /// Its record, `enr:…`.
    pub enr: String,
    /// Its seq.
    pub seq: u64,
    /// Addresses from its record.
    pub addrs: Vec<Multiaddr>,
    /// The `nat` flag of its record.
    pub nat: bool,
    /// How its NAT maps its ports, as its record says.
    pub mappings: NatMappings,
    /// When its record was last received.
    pub last_seen: SystemTime,
    /// How we first got its record.
    pub met: Met,
    /// Our connection to it now.
    pub connection: Connection,
    /// Transports of the open direct connections to it ("quic" before "tcp").
    pub transports: Vec<&'static str>,
    /// The round trip of the last ping answered on the fastest open connection to it.
    pub rtt: Option<std::time::Duration>,
    /// Whether we hold its record. A peer without one (a libp2p node that is not peerfind)
    /// is listed while connected, with what its identify said; its record fields are empty.
    pub has_record: bool,
    /// What its identify said on the connection, while connected.
    pub identify: Option<Identify>,
}

/// What a connected peer said of itself through identify. Bounded: see
/// `upkeep::identities::MAX_PROTOCOLS` and `MAX_LISTEN_ADDRS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identify {
    /// Its agent, e.g. `js-libp2p/3.3.11` or `peerfind/0.1.0`.
    pub agent: String,
    /// Its protocol version, e.g. `/ipfs/0.1.0`.
    pub protocol_version: String,
    /// The protocols it speaks.
    pub protocols: Vec<String>,
    /// The addresses it says it listens on.
    pub listen_addrs: Vec<Multiaddr>,
    /// The address it says it sees us at.
    pub observed_addr: Option<Multiaddr>,
}

/// How we first got a peer's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Met {
    /// A peer (usually a bootnode) gossiped it.
    Gossip,
    /// The peer announced it on a connection we dialed (and one we dialed is still open).
    Announced,
    /// The peer announced it on a connection it opened to us.
    Inbound,
    /// No record: we know it only from a connection (a libp2p node that is not peerfind).
    Connected,
}

/// The best connection we have to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// None.
    None,
    /// A direct connection over this transport ("tcp" or "quic").
    Direct {
        /// "tcp" or "quic".
        transport: &'static str,
    },
    /// Only a relayed connection (through a bootnode's circuit).
    Relayed,
}

/// Something that happened, for watchers.
#[derive(Debug, Clone)]
pub enum Event {
    /// A record of a node we did not know.
    RecordLearned {
        /// Its PeerId.
        peer_id: PeerId,
        /// Its seq.
        seq: u64,
        /// Its `nat` flag.
        nat: bool,
        /// Who sent it: the peer itself, or a node that passed it on.
        from: PeerId,
    },
    /// A newer record of a known node.
    RecordUpdated {
        /// Its PeerId.
        peer_id: PeerId,
        /// Its seq.
        seq: u64,
        /// Its `nat` flag.
        nat: bool,
        /// Who sent it: the peer itself, or a node that passed it on.
        from: PeerId,
    },
    /// Our NAT status changed.
    NatStatusChanged {
        /// Before.
        from: nat::Status,
        /// Now.
        to: nat::Status,
        /// Why.
        reason: String,
    },
    /// We asked a bootnode to introduce us to a peer.
    IntroductionAsked {
        /// The peer.
        target: PeerId,
        /// The bootnode.
        via: PeerId,
    },
    /// As a bootnode, we forwarded an introduction.
    IntroductionServed {
        /// Who asked.
        requester: PeerId,
        /// Who was introduced.
        target: PeerId,
    },
    /// A hole punch ended.
    HolePunch {
        /// The peer.
        peer_id: PeerId,
        /// Whether it gave a direct connection.
        succeeded: bool,
        /// Why not, when it failed.
        error: Option<String>,
    },
    /// Our best connection to a peer changed.
    ConnectionChanged {
        /// The peer.
        peer_id: PeerId,
        /// Now.
        connection: Connection,
    },
    /// A connection opened (any, not only a new best one): who dialed, and at which address.
    ConnectionOpened {
        /// The peer.
        peer_id: PeerId,
        /// Who dialed.
        direction: Direction,
        /// The peer's address on the connection.
        remote_addr: Multiaddr,
        /// Whether it runs through a relay's circuit.
        relayed: bool,
        /// Whether the peer is a configured bootnode.
        bootnode: bool,
    },
    /// A dial we started failed.
    DialFailed {
        /// The peer dialed, when the dial named one.
        peer_id: Option<PeerId>,
        /// Why.
        error: String,
    },
    /// Our own record changed: every record we announce, in order, which the status (the
    /// record now) cannot tell.
    OwnRecordChanged {
        /// Its seq.
        seq: u64,
        /// The record, `enr:…`.
        enr: String,
        /// Its addresses, without `/p2p/`.
        addrs: Vec<Multiaddr>,
        /// Its `nat` flag.
        nat: bool,
        /// What changed it.
        reason: String,
    },
    /// Port mapping changed state: a gateway found none, a mapping granted, reached by a
    /// dial-back, or lost.
    PortMapping {
        /// The state now.
        state: mapping::State,
        /// The mapped address concerned, when one is.
        addr: Option<Multiaddr>,
        /// Why, for people.
        detail: String,
    },
    /// An AutoNAT test of one of our (non-relayed) addresses ended: the single tests the
    /// verdict is made of.
    AutonatTested {
        /// The address tested.
        addr: Multiaddr,
        /// The server that tested it.
        server: PeerId,
        /// Whether its dial-back reached us.
        reachable: bool,
        /// Why not, when unreachable.
        error: Option<String>,
    },
    /// A bootnode introduced us to a peer that asked for it; we dial it.
    Introduced {
        /// The peer that asked.
        peer_id: PeerId,
        /// The bootnode.
        via: PeerId,
    },
    /// A bootnode answered an introduction we asked for.
    IntroductionAnswered {
        /// The target's ENR node id, hex (the request names it by node id).
        target_node_id: String,
        /// The bootnode.
        via: PeerId,
        /// What it answered.
        outcome: peerfind_behaviours::intro::Outcome,
        /// Its explanation.
        detail: String,
    },
    /// A relay reservation was accepted (not its renewals), or refused or lost.
    RelayReservation {
        /// The bootnode.
        relay: PeerId,
        /// Accepted, or refused or lost.
        accepted: bool,
        /// Why it was refused or lost.
        reason: Option<String>,
    },
    /// A peer told us an address it sees us at that we did not take for our own: the status
    /// (the addresses taken) cannot show it.
    ObservedAddressIgnored {
        /// The peer.
        peer_id: PeerId,
        /// The address it reported.
        addr: Multiaddr,
        /// Why it was not taken.
        reason: crate::reach::confirm::NotTaken,
    },
    /// The first ping answered on a connection: data flows both ways on it.
    ConnectionAlive {
        /// The peer.
        peer_id: PeerId,
        /// Whether the connection is relayed.
        relayed: bool,
        /// The ping's round trip.
        rtt: std::time::Duration,
    },
}

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The peer dialed us.
    Inbound,
    /// We dialed the peer.
    Outbound,
}

/// A question for the event loop.
#[derive(Debug)]
pub enum Query {
    /// The node's own state.
    Status(oneshot::Sender<Status>),
    /// Every known peer.
    Peers(oneshot::Sender<Vec<Peer>>),
    /// One round trip to a peer (`peerfind ping`).
    Ping(PeerId, oneshot::Sender<crate::diag::ping::PingAnswer>),
    /// What the configured bootnodes see of us (`peerfind netcheck`).
    Netcheck(oneshot::Sender<crate::diag::netcheck::Netcheck>),
}

/// The node stopped; nobody answers any more.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the node has stopped")]
pub struct Stopped;

/// What the API holds to ask the node and watch it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Handle {
    queries: mpsc::Sender<Query>,
    events: broadcast::Sender<Event>,
}

impl Handle {
    /// The node's own state.
    pub async fn status(&self) -> Result<Status, Stopped> {
        self.ask(Query::Status).await
    }

    /// Every known peer.
    pub async fn peers(&self) -> Result<Vec<Peer>, Stopped> {
        self.ask(Query::Peers).await
    }

    /// One round trip to `peer` over its best connection, ended (answered or failed).
    pub async fn ping(&self, peer: PeerId) -> Result<crate::diag::ping::PingAnswer, Stopped> {
        self.ask(|tx| Query::Ping(peer, tx)).await
    }

    /// What the configured bootnodes see of us.
    pub async fn netcheck(&self) -> Result<crate::diag::netcheck::Netcheck, Stopped> {
        self.ask(Query::Netcheck).await
    }

    async fn ask<T>(&self, query: impl FnOnce(oneshot::Sender<T>) -> Query) -> Result<T, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.queries.send(query(tx)).await.map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

/// The event loop's side of a [`Handle`].
#[derive(Debug)]
pub struct Hub {
    queries: mpsc::Receiver<Query>,
    events: broadcast::Sender<Event>,
    handle: Handle,
}

impl Hub {
    /// A hub and the handle that talks to it.
    pub fn new() -> Self {
        let (qtx, queries) = mpsc::channel(QUERY_QUEUE);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let handle = Handle {
            queries: qtx,
            events: events.clone(),
        };
        Self {
            queries,
            events,
            handle,
        }
    }

    /// A handle for the API.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The next query.
    pub async fn next_query(&mut self) -> Option<Query> {
        self.queries.recv().await
    }

    /// Tells every watcher (none listening is fine).
    pub fn publish(&self, event: Event) {
        let _ = self.events.send(event);
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}
