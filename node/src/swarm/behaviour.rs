//! The node's libp2p behaviours, composed into one swarm. One line of doc per field; each
//! behaviour's own module says what it does.

use std::time::Duration;

use libp2p::autonat::v2 as autonat;
use libp2p::swarm::{NetworkBehaviour, behaviour::toggle::Toggle};
use libp2p::{
    connection_limits, dcutr, identify, identity::Keypair, memory_connection_limits, ping, relay,
};
use peerfind_behaviours::{gossip, intro};

use crate::config::ConnectionLimits;
use crate::config::relay_limits::RelayLimits;
use crate::mesh::members::Members;
use crate::mesh::{self, MeshError};
use crate::record::enr::LocalRecord;
use crate::swarm::{dial_guard, relay_per_subnet, subnet_limits};
use crate::upkeep::liveness::{PING_INTERVAL, PING_TIMEOUT};
use crate::upstream::gossipsub_gate;

/// Identify's protocol version: peers of other versions are still talked to, this only
/// tells them who we are.
const IDENTIFY_PROTOCOL: &str = "/peerfind/1.0.0";

/// How often AutoNAT's client looks for addresses to test (its default: 5 s, and the first
/// look only 5 s after the start). An observed address then waits at most this long for its
/// test, so the NAT verdict comes within round trips of the first bootnode connection. A
/// look costs nothing when nothing is untested; each address is tested once (and again only
/// after a failed exchange with the server), so at most 10 requests a second go out.
pub const AUTONAT_PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// Every behaviour of a peerfind node. The limits come first: a connection they refuse is
/// refused before any other behaviour spends anything on it.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Refuses connections beyond the counts of [`ConnectionLimits`] (inbound, outbound,
    /// pending, per peer); configured bootnodes are exempt.
    pub limits: connection_limits::Behaviour,
    /// Refuses inbound connections beyond [`ConnectionLimits::max_inbound_per_subnet`] from one
    /// IPv4 /24 or IPv6 /64, and counts them (`crate::swarm::subnet_limits`).
    pub subnets: subnet_limits::Behaviour,
    /// Refuses new connections while the process uses more memory than allowed.
    pub memory: memory_connection_limits::Behaviour,
    /// Tells the dial guard our listen addresses and connections, and takes the records we
    /// vouch for; the transports refuse the dials it vets (`crate::swarm::dial_guard`).
    pub dial_guard: dial_guard::Behaviour,
    /// Tells peers what address we see them at, and tells us ours (observed addresses); over a
    /// circuit, none (`crate::upstream::identify`).
    pub identify: crate::upstream::identify::Identify,
    /// Keeps connections and the NAT mappings under them alive.
    pub ping: ping::Behaviour,
    /// Round trips on demand over a connection of our choice, for `peerfind ping`
    /// (`/peerfind/ping/1.0.0`).
    pub rtt: peerfind_behaviours::rtt::Behaviour,
    /// Exchanges and gossips ENRs (`/peerfind/enr/1.0.0`).
    pub gossip: gossip::Behaviour,
    /// Introductions through a bootnode (`/peerfind/intro/1.0.0`).
    pub intro: intro::Behaviour,
    /// Bootnodes: relays circuits between NAT'd peers (circuit relay v2 server), with at most
    /// `--relay-max-reservations-per-subnet` reservations per subnet.
    pub relay: Toggle<relay_per_subnet::Behaviour>,
    /// Reserves a slot on a relay and dials peers through one (circuit relay v2 client).
    pub relay_client: crate::upstream::relay_client::RelayClient,
    /// Upgrades a relayed connection to a direct one by a coordinated hole punch.
    pub dcutr: dcutr::Behaviour,
    /// Asks servers we dialed to dial us back at each candidate address (NAT detection, fast
    /// signal). Off with `--autonat false`.
    pub autonat_client: Toggle<autonat::client::Behaviour>,
    /// Dials back peers that ask, from a fresh port: every node serves, since the dial-back
    /// is an outbound connection that works from behind a NAT too.
    pub autonat_server: autonat::server::Behaviour,
    /// Asks the router to forward our listen ports (UPnP-IGD); a mapped address is a
    /// candidate AutoNAT's client tests (`crate::igd`). Off with `--port-mapping false`, and
    /// by default on bootnodes.
    pub port_mapping: Toggle<crate::igd::Behaviour>,
    /// Bootnodes: shares every record with the other bootnodes over a gossipsub topic
    /// (`crate::mesh`), with members only.
    pub mesh: Toggle<gossipsub_gate::Gated>,
    /// Bootnodes: who is a member of the record mesh, and the proofs of the mesh secret
    /// (`/peerfind/mesh/1.0.0`, `crate::mesh::admission`).
    pub mesh_admission: Toggle<mesh::admission::Behaviour>,
}

/// What the node's flags and role decide about its behaviours.
#[derive(Debug)]
pub struct Settings<'a> {
    /// Ask AutoNAT servers to dial us back (`--autonat`).
    pub autonat_client: bool,
    /// Ask the router for port mappings (`--port-mapping`).
    pub port_mapping: bool,
    /// Connection and memory limits.
    pub limits: &'a ConnectionLimits,
    /// Bootnodes: the relay server's limits.
    pub relay_limits: &'a RelayLimits,
    /// Bootnodes: the topic of the record mesh and its members; `None` for a peer.
    pub mesh: Option<(&'a str, Members)>,
    /// The dial guard the transports check.
    pub dial_guard: dial_guard::Shared,
}

impl Behaviour {
    /// The behaviours of a node whose key is `key` and whose record is `record`.
    pub fn new(
        key: &Keypair,
        relay_client: relay::client::Behaviour,
        record: &LocalRecord,
        gossip: gossip::Config,
        settings: Settings<'_>,
    ) -> Result<Self, MeshError> {
        let Settings {
            autonat_client,
            port_mapping,
            limits,
            relay_limits,
            mesh,
            dial_guard,
        } = settings;
        let (mesh, mesh_admission) = match mesh {
            Some((topic, members)) => {
                // Members rule 1: the configured bootnodes are admitted from the start.
                let gate =
                    gossipsub_gate::Gated::new(mesh::behaviour(topic)?, members.configured());
                (Some(gate), Some(mesh::admission::behaviour(members)))
            }
            None => (None, None),
        };
        let bootnode = gossip.pass_on;
        let peer_id = key.public().to_peer_id();
        let relay = bootnode.then(|| relay_per_subnet::Behaviour::new(peer_id, relay_limits));
        let identify = crate::upstream::identify::Identify::new(
            identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
                .with_agent_version(format!("peerfind/{}", env!("CARGO_PKG_VERSION"))),
        );
        let mut counts = connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established_incoming(Some(limits.max_inbound))
                .with_max_established_outgoing(Some(limits.max_outbound))
                .with_max_pending_incoming(Some(limits.max_pending_inbound))
                .with_max_pending_outgoing(Some(limits.max_pending_outbound))
                .with_max_established_per_peer(Some(limits.max_per_peer)),
        );
        for peer in &limits.exempt {
            counts.bypass_peer_id(peer);
        }
        Ok(Self {
            limits: counts,
            subnets: subnet_limits::Behaviour::new(
                limits.max_inbound_per_subnet,
                limits.exempt.iter().copied(),
            ),
            memory: memory_connection_limits::Behaviour::with_max_bytes(limits.max_memory_bytes),
            dial_guard: dial_guard::Behaviour::new(dial_guard),
            identify,
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(PING_INTERVAL)
                    .with_timeout(PING_TIMEOUT),
            ),
            rtt: peerfind_behaviours::rtt::Behaviour::new(),
            gossip: gossip::Behaviour::new(record.enr().clone(), gossip),
            intro: intro::Behaviour::new(
                record.enr().clone(),
                intro::Config {
                    serve: bootnode,
                    ..Default::default()
                },
            ),
            relay: relay.into(),
            relay_client: crate::upstream::relay_client::RelayClient::new(relay_client),
            dcutr: dcutr::Behaviour::new(peer_id),
            autonat_client: autonat_client
                .then(|| {
                    autonat::client::Behaviour::new(
                        rand_autonat::make_rng::<rand_autonat::rngs::StdRng>(),
                        autonat::client::Config::default()
                            .with_probe_interval(AUTONAT_PROBE_INTERVAL),
                    )
                })
                .into(),
            autonat_server: autonat::server::Behaviour::default(),
            port_mapping: port_mapping
                .then(|| crate::igd::Behaviour::new(peer_id))
                .into(),
            mesh: mesh.into(),
            mesh_admission: mesh_admission.into(),
        })
    }
}
