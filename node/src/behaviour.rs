//! The node's libp2p behaviours, composed into one swarm. One line of doc per field; each
//! behaviour's own module says what it does.

use std::time::Duration;

use libp2p::autonat::v2 as autonat;
use libp2p::swarm::{NetworkBehaviour, behaviour::toggle::Toggle};
use libp2p::{dcutr, gossipsub, identify, identity::Keypair, ping, relay};
use peerfind_behaviours::{gossip, intro};

use crate::enr::LocalRecord;
use crate::mesh::{self, MeshError};

/// Identify's protocol version: peers of other versions are still talked to, this only
/// tells them who we are.
const IDENTIFY_PROTOCOL: &str = "/peerfind/1.0.0";

/// Ping interval: traffic every 15 s keeps every NAT mapping on the path alive (common UDP
/// mapping timeouts are 30 s and more), and detects dead connections.
pub const PING_INTERVAL: Duration = Duration::from_secs(15);

/// How long one relayed circuit may last. Relay v2's default (2 minutes) is enough to
/// coordinate a hole punch but not to keep two peers behind hard NATs in touch, which is what
/// the relayed fallback is for; when a circuit ends, the peers dial a new one.
pub const RELAY_MAX_CIRCUIT_DURATION: Duration = Duration::from_secs(60 * 60);

/// How many bytes one relayed circuit may carry (relay v2's default: 128 KiB). Enough for
/// records, pings and a light application for the hour a circuit lasts.
pub const RELAY_MAX_CIRCUIT_BYTES: u64 = 64 * 1024 * 1024;

/// Circuits a bootnode relays at once, and per peer. Each costs two streams and buffers.
pub const RELAY_MAX_CIRCUITS: usize = 256;
const RELAY_MAX_CIRCUITS_PER_PEER: usize = 16;

/// Reservations a bootnode holds (one per NAT'd peer and bootnode).
pub const RELAY_MAX_RESERVATIONS: usize = 1024;

/// Every behaviour of a peerfind node.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Tells peers what address we see them at, and tells us ours (observed addresses).
    pub identify: identify::Behaviour,
    /// Keeps connections and the NAT mappings under them alive.
    pub ping: ping::Behaviour,
    /// Exchanges and gossips ENRs (`/peerfind/enr/1.0.0`).
    pub gossip: gossip::Behaviour,
    /// Introductions through a bootnode (`/peerfind/intro/1.0.0`).
    pub intro: intro::Behaviour,
    /// Bootnodes: relays circuits between NAT'd peers (circuit relay v2 server).
    pub relay: Toggle<relay::Behaviour>,
    /// Reserves a slot on a relay and dials peers through one (circuit relay v2 client).
    pub relay_client: relay::client::Behaviour,
    /// Upgrades a relayed connection to a direct one by a coordinated hole punch.
    pub dcutr: dcutr::Behaviour,
    /// Asks servers we dialed to dial us back at each candidate address (NAT detection, fast
    /// signal). Off with `--autonat false`.
    pub autonat_client: Toggle<autonat::client::Behaviour>,
    /// Dials back peers that ask, from a fresh port: every node serves, since the dial-back
    /// is an outbound connection that works from behind a NAT too.
    pub autonat_server: autonat::server::Behaviour,
    /// Bootnodes: shares every record with the other bootnodes over a gossipsub topic
    /// (`crate::mesh`).
    pub mesh: Toggle<gossipsub::Behaviour>,
}

impl Behaviour {
    /// The behaviours of a node whose key is `key` and whose record is `record`; a bootnode
    /// gives the topic of its record mesh.
    pub fn new(
        key: &Keypair,
        relay_client: relay::client::Behaviour,
        record: &LocalRecord,
        gossip: gossip::Config,
        autonat_client: bool,
        mesh_topic: Option<&str>,
    ) -> Result<Self, MeshError> {
        let mesh = mesh_topic
            .map(|topic| mesh::behaviour(key, topic))
            .transpose()?;
        let bootnode = gossip.gossip;
        let peer_id = key.public().to_peer_id();
        let relay = bootnode.then(|| {
            relay::Behaviour::new(
                peer_id,
                relay::Config {
                    max_reservations: RELAY_MAX_RESERVATIONS,
                    max_circuits: RELAY_MAX_CIRCUITS,
                    max_circuits_per_peer: RELAY_MAX_CIRCUITS_PER_PEER,
                    max_circuit_duration: RELAY_MAX_CIRCUIT_DURATION,
                    max_circuit_bytes: RELAY_MAX_CIRCUIT_BYTES,
                    ..Default::default()
                },
            )
        });
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
                .with_agent_version(format!("peerfind/{}", env!("CARGO_PKG_VERSION"))),
        );
        Ok(Self {
            identify,
            ping: ping::Behaviour::new(ping::Config::new().with_interval(PING_INTERVAL)),
            gossip: gossip::Behaviour::new(record.enr().clone(), gossip),
            intro: intro::Behaviour::new(
                record.enr().clone(),
                intro::Config {
                    serve: bootnode,
                    ..Default::default()
                },
            ),
            relay: relay.into(),
            relay_client,
            dcutr: dcutr::Behaviour::new(peer_id),
            autonat_client: autonat_client
                .then(autonat::client::Behaviour::default)
                .into(),
            autonat_server: autonat::server::Behaviour::default(),
            mesh: mesh.into(),
        })
    }
}
