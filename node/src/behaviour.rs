//! The node's libp2p behaviours, composed into one swarm. One line of doc per field; each
//! behaviour's own module says what it does.

use std::time::Duration;

use libp2p::autonat::v2 as autonat;
use libp2p::swarm::{NetworkBehaviour, behaviour::toggle::Toggle};
use libp2p::{dcutr, identify, identity::Keypair, ping, relay};
use peerfind_behaviours::{gossip, intro};

use crate::enr::LocalRecord;
use crate::relay_limits::RelayLimits;

/// Identify's protocol version: peers of other versions are still talked to, this only
/// tells them who we are.
const IDENTIFY_PROTOCOL: &str = "/peerfind/1.0.0";

/// Ping interval: traffic every 15 s keeps every NAT mapping on the path alive (common UDP
/// mapping timeouts are 30 s and more), and detects dead connections.
pub const PING_INTERVAL: Duration = Duration::from_secs(15);

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
}

impl Behaviour {
    /// The behaviours of a node whose key is `key` and whose record is `record`.
    pub fn new(
        key: &Keypair,
        relay_client: relay::client::Behaviour,
        record: &LocalRecord,
        gossip: gossip::Config,
        autonat_client: bool,
        relay_limits: &RelayLimits,
    ) -> Self {
        let bootnode = gossip.gossip;
        let peer_id = key.public().to_peer_id();
        let relay = bootnode.then(|| relay_limits.server(peer_id));
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
                .with_agent_version(format!("peerfind/{}", env!("CARGO_PKG_VERSION"))),
        );
        Self {
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
        }
    }
}
