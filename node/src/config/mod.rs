//! The node's settings: every flag, its environment variable and its default. The doc
//! comments are the `--help` text. Also what kind of node runs ([`Mode`]) and a bootnode's
//! relay limits as flags (`relay_limits`). Uses the defaults other modules own
//! (`crate::api`, `crate::mesh`, `crate::reach`), nothing else.

pub mod bootnode;
pub mod dnsaddr;
pub mod file;
pub mod relay_limits;

pub use bootnode::{Bootnode, BootnodeError, BootnodeSource};

use std::path::PathBuf;

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use peerfind_behaviours::table;

/// Default port for TCP and QUIC when no `--listen` is given.
pub const DEFAULT_PORT: u16 = 9000;

/// Settings shared by `peerfind run` and `peerfind bootnode`.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Directory for the node's key and record [default: ./peerfind-data for a peer,
    /// ./peerfind-bootnode-data for a bootnode]. Created on first start; the key in it is
    /// the node's identity, so keep it to keep the node id and PeerId across restarts.
    #[arg(long, env = "PEERFIND_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Read the node's key from this file instead of the data directory (made with `peerfind
    /// key generate`; 64 hex digits). It is only read, so it may be a read-only secret; the
    /// record still lives in the data directory.
    #[arg(long, env = "PEERFIND_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// Address to listen on, as a multiaddr (repeatable, or comma-separated in the
    /// environment). Default: TCP and QUIC on `--port` on all IPv4 interfaces.
    #[arg(
        long,
        env = "PEERFIND_LISTEN",
        value_name = "MULTIADDR",
        value_delimiter = ','
    )]
    pub listen: Vec<Multiaddr>,

    /// Port for TCP and QUIC (UDP) when no `--listen` is given.
    #[arg(long, env = "PEERFIND_PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,

    /// A bootnode to join through (repeatable, or comma-separated in the environment): its
    /// `enr:…` text, a multiaddr ending in `/p2p/<PeerId>` such as
    /// `/ip4/198.51.100.10/tcp/9000/p2p/16Uiu2…` or `/ip4/…/udp/9000/quic-v1/p2p/…`, or the
    /// URL of its record, `http://HOST:PORT/enr` (its `--metrics` server; a service name in
    /// compose or Kubernetes), fetched at start and retried until it answers.
    /// Bootnodes tell us our public address and introduce us to other peers.
    #[arg(
        long = "bootnode",
        env = "PEERFIND_BOOTNODES",
        value_name = "ENR|MULTIADDR|URL",
        value_delimiter = ','
    )]
    pub bootnode: Vec<BootnodeSource>,

    /// The bootnodes to dial: `--bootnode`'s, with those named by URL once fetched
    /// ([`Config::resolve_bootnodes`], which the node's start calls).
    #[arg(skip)]
    pub bootnodes: Vec<Bootnode>,

    /// Our public address, set by hand (repeatable): `/ip4/IP/tcp/PORT` or
    /// `/ip4/IP/udp/PORT/quic-v1`. Use it behind port forwarding or in a container whose
    /// mapped port differs from the listen port. It goes into the record at start, and
    /// observed addresses never replace it.
    #[arg(
        long,
        env = "PEERFIND_EXTERNAL_ADDRS",
        value_name = "MULTIADDR",
        value_delimiter = ','
    )]
    pub external_addr: Vec<Multiaddr>,

    /// How many observers in distinct networks (an IPv4 /24, an IPv6 /48; every peer on this
    /// host is one) must report the same observed address before it goes into our record.
    /// A configured bootnode's report alone is always enough.
    #[arg(long, env = "PEERFIND_CONFIRMATIONS", default_value_t = crate::reach::confirm::DEFAULT_THRESHOLD, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub confirmations: usize,

    /// Most peers we chose to connect to: a peer counts while our dial to it is under way or a
    /// connection we dialed to it is open. Once it is reached, no more learned peers are
    /// dialed, introduced or relayed to. Connections peers open to us and bootnodes do not
    /// count against it (inbound connections have their own caps: `--max-inbound`,
    /// `--max-inbound-per-subnet`), so strangers that connect cannot stop us from dialing.
    #[arg(long, env = "PEERFIND_MAX_PEERS", default_value_t = 50)]
    pub max_peers: usize,

    /// Most records kept. When full, a new record evicts one: a record whose owner is not
    /// connected goes before one whose owner is, one naming no IP before one naming an IP,
    /// one of the largest address block (see `--table-per-group`) before others, and the
    /// least recently refreshed first.
    #[arg(long, env = "PEERFIND_TABLE_SIZE", default_value_t = table::DEFAULT_CAPACITY)]
    pub table_size: usize,

    /// Most records kept from one address block: an IPv4 /24 or IPv6 /64 of the IP a record
    /// names, or for a record naming none, of the connection that announced it (records of
    /// no known address share one block). A new record beyond it is refused and counted
    /// (`group_full` among the rejected inputs in `peerfind status` and `/metrics`). The
    /// default, 64, leaves room for the many honest peers one carrier-grade NAT or cloud
    /// range puts behind one /24, while a flood of records from one block can hold at most
    /// 1/32 of the default table. Simulations of hundreds of peers on one loopback address
    /// need it raised: they all share one block.
    #[arg(long, env = "PEERFIND_TABLE_PER_GROUP", value_name = "N", default_value_t = table::DEFAULT_MAX_PER_GROUP, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub table_per_group: usize,

    /// Record announcements and requests one address block (an IPv4 /24 or IPv6 /64) may send
    /// us a minute, counted before any record is decoded or signature checked; beyond, they
    /// are refused and counted (`rate_limited`). One peer may send 60. The default leaves
    /// room for thousands of peers behind one carrier-grade NAT joining at once; simulations
    /// of thousands of peers on one loopback address need it raised.
    #[arg(long, env = "PEERFIND_GOSSIP_RATE_PER_SUBNET", value_name = "N", default_value_t = peerfind_behaviours::gossip::DEFAULT_PER_GROUP.count, value_parser = clap::value_parser!(u32).range(1..))]
    pub gossip_rate_per_subnet: u32,

    /// Bootnodes: how many peers each new or updated record is gossiped to (all of them
    /// when fewer are connected).
    #[arg(long, env = "PEERFIND_GOSSIP_FANOUT", default_value_t = peerfind_behaviours::gossip::DEFAULT_FANOUT)]
    pub gossip_fanout: usize,

    /// Bootnodes: the gossipsub topic on which the bootnodes of one network share every
    /// record. Bootnodes that should share records must agree on it, and be members of each
    /// other's mesh (see `--mesh-secret-file`).
    #[arg(long, env = "PEERFIND_MESH_TOPIC", default_value = crate::mesh::DEFAULT_TOPIC)]
    pub mesh_topic: String,

    /// Bootnodes: a file holding the network's mesh secret, 32 random bytes as 64 hex digits
    /// (make one with `openssl rand -hex 32 > mesh.secret; chmod 600 mesh.secret`, and give
    /// every bootnode of the network a copy). Only members share records over the mesh: the
    /// bootnodes a bootnode is configured with (`--bootnode`), and any node that proves it
    /// holds this secret. So bootnodes that share the secret mesh as soon as one of them
    /// dials another (a new bootnode needs `--bootnode` with one in the mesh, and the mesh
    /// needs to be told nothing of it); without a secret, two bootnodes mesh only if each is
    /// configured with the other. A node without the secret, such as a peer posing as a
    /// bootnode, gets no record from the mesh and puts none in it.
    #[arg(long, env = "PEERFIND_MESH_SECRET_FILE", value_name = "FILE")]
    pub mesh_secret_file: Option<PathBuf>,

    /// NAT detection's heuristic: a node that no stranger reached within this time after
    /// meeting its first bootnode believes it is behind a NAT and sets the `nat` flag in its
    /// record. A duration such as `90s` or `2m`.
    #[arg(long, env = "PEERFIND_NAT_WINDOW", default_value = "120s", value_parser = humantime::parse_duration)]
    pub nat_window: std::time::Duration,

    /// Ask AutoNAT servers (bootnodes, public peers) to dial us back at each candidate
    /// address: confirms "public" or "behind a NAT" within seconds, where the window above
    /// takes minutes.
    #[arg(long, env = "PEERFIND_AUTONAT", default_value_t = true, action = clap::ArgAction::Set)]
    pub autonat: bool,

    /// Ask the router to forward our listen ports to us (UPnP-IGD) [default: true for a
    /// peer, false for a bootnode]. A mapping the router grants goes into the record, and
    /// makes the node public, only once an AutoNAT dial-back reached it there; it is renewed
    /// while the node runs and removed when it stops. Without a gateway on the LAN nothing
    /// changes. A bootnode is public by design and has no router to ask.
    #[arg(long, env = "PEERFIND_PORT_MAPPING", value_name = "BOOL", action = clap::ArgAction::Set)]
    pub port_mapping: Option<bool>,

    /// Between two NAT'd peerfind nodes, punch through the introduction: one asks a bootnode
    /// to introduce it and sends towards the other at once, and the other dials back through
    /// the opened NAT (about two round trips). Off: they meet over the bootnode's relay and
    /// DCUtR punches (about twice as long), which is also the fallback when this punch fails
    /// and the way to peers that are not peerfind.
    #[arg(long, env = "PEERFIND_INTRO_PUNCH", default_value_t = true, action = clap::ArgAction::Set)]
    pub intro_punch: bool,

    /// Guess ports where one NAT'd peer's NAT maps a new port per destination and the
    /// other's one port for all (both records say so, which takes two bootnodes): the first
    /// sends from 512 ports towards the second, and the second, asked through the
    /// introduction, dials 1,020 random ports at the first's IP (at most once per 30 s) until
    /// one meets an opening. Off: such peers stay on the bootnode's relay; a request to spray
    /// is then ignored too.
    #[arg(long, env = "PEERFIND_PORT_GUESSING", default_value_t = true, action = clap::ArgAction::Set)]
    pub port_guessing: bool,

    /// Address of the status API (gRPC, `peerfind.v1.Node`). Loopback only by default: the
    /// API has no authentication, so binding another address exposes the node's state to
    /// whoever can reach it.
    #[arg(long, env = "PEERFIND_API", default_value = "127.0.0.1:5052")]
    pub api: std::net::SocketAddr,

    /// Most connections the status API keeps open at once. A connection beyond it closes the
    /// one idle the longest (one warning is logged). Never more than a quarter of the
    /// open-file limit (`ulimit -n`), so API clients cannot take the descriptors peers need.
    /// At most half as many watches (`peerfind watch`, gRPC health watches) run at once, and
    /// never more than 64, so `peerfind status` always finds a connection.
    #[arg(long, env = "PEERFIND_API_MAX_CONNECTIONS", default_value_t = crate::api::server::DEFAULT_MAX_CONNECTIONS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub api_max_connections: usize,

    /// How long a status API connection may stay open without a call (a running `watch` is a
    /// call). Also closes connections that never send anything. A duration such as `60s`.
    #[arg(long, env = "PEERFIND_API_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub api_idle_timeout: std::time::Duration,

    /// Most established inbound connections; beyond it new ones are refused [default: 256 for
    /// a peer, 4096 for a bootnode]. A peer is dialed by bootnodes' dial-backs, introduced and
    /// learned peers; a bootnode holds two connections (TCP and QUIC) per peer, so 4096 serves
    /// about 2,000 peers. Mind `ulimit -n`: each connection is a descriptor.
    #[arg(long, env = "PEERFIND_MAX_INBOUND", value_name = "N")]
    pub max_inbound: Option<u32>,

    /// Most inbound connections from one subnet (an IPv4 /24 or an IPv6 /64), in their
    /// handshake and established together; beyond it new ones are refused before their
    /// handshake and counted (`inbound_denied_per_subnet` in `peerfind status` and
    /// `/metrics`) [default: an eighth of `--max-inbound` for a peer (32), a quarter for a
    /// bootnode (1024)]. One machine or one provider's block of addresses then cannot take
    /// every inbound slot. A bootnode gets the larger share because many of its peers may
    /// share one address: behind a carrier-grade NAT, hundreds of subscribers leave from a
    /// few public IPv4 addresses, and all of them meet at the bootnode. Circuits through a
    /// relay and configured bootnodes' connections do not count.
    #[arg(long, env = "PEERFIND_MAX_INBOUND_PER_SUBNET", value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<u32>::new().range(1..))]
    pub max_inbound_per_subnet: Option<u32>,

    /// Most established outbound connections [default: 256 for a peer, 512 for a bootnode].
    /// A peer dials up to `--max-peers` peers over TCP and QUIC, plus bootnodes and relays; a
    /// bootnode dials only back (AutoNAT) and for introductions. Configured bootnodes do not
    /// count against it.
    #[arg(long, env = "PEERFIND_MAX_OUTBOUND", value_name = "N")]
    pub max_outbound: Option<u32>,

    /// Most inbound connections in their handshake at once [default: 64 for a peer, 512 for a
    /// bootnode]: a bootnode restarting sees all its peers come back together; more than
    /// this at once is a flood, refused before it costs a handshake.
    #[arg(long, env = "PEERFIND_MAX_PENDING_INBOUND", value_name = "N")]
    pub max_pending_inbound: Option<u32>,

    /// Most outbound connections being dialed at once.
    #[arg(long, env = "PEERFIND_MAX_PENDING_OUTBOUND", value_name = "N", default_value_t = DEFAULT_MAX_PENDING_OUTBOUND)]
    pub max_pending_outbound: u32,

    /// Most connections to one peer. Two peers may hold TCP, QUIC, a relayed circuit, a punched
    /// connection and AutoNAT dial-backs at once, and simultaneous dials add duplicates for a
    /// moment; more than this is a peer wasting our descriptors.
    #[arg(long, env = "PEERFIND_MAX_CONNECTIONS_PER_PEER", value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_PEER)]
    pub max_connections_per_peer: u32,

    /// New connections are refused while the process's resident memory is above this many
    /// MiB (open ones keep working). An idle bootnode uses a few tens of MiB; far more means
    /// something is piling up, and refusing newcomers keeps the node alive for those it has.
    #[arg(long, env = "PEERFIND_MAX_MEMORY_MIB", value_name = "MIB", default_value_t = DEFAULT_MAX_MEMORY_MIB, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_memory_mib: usize,

    /// Address to serve Prometheus metrics on (`/metrics`), e.g. 127.0.0.1:9100. Off when
    /// not given.
    #[arg(long, env = "PEERFIND_METRICS")]
    pub metrics: Option<std::net::SocketAddr>,

    /// Limits of a bootnode's circuit relay (`--relay-…`).
    #[command(flatten)]
    pub relay: crate::config::relay_limits::RelayLimits,
}

/// Default of `--max-pending-outbound`: the strategy dials at most `--max-peers` learned
/// peers, over two transports, plus bootnodes and dial-backs.
pub const DEFAULT_MAX_PENDING_OUTBOUND: u32 = 128;

/// Default of `--max-connections-per-peer` (see its help).
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: u32 = 8;

/// Default of `--max-memory-mib`: 1 GiB, over ten times what a busy bootnode needs.
pub const DEFAULT_MAX_MEMORY_MIB: usize = 1024;

/// The defaults that differ between a peer and a bootnode: (inbound, outbound, pending
/// inbound). The flags' help says why each.
const PEER_LIMITS: (u32, u32, u32) = (256, 256, 64);
const BOOTNODE_LIMITS: (u32, u32, u32) = (4096, 512, 512);

/// Default of `--max-inbound-per-subnet` for a peer: this share (1 / n) of its inbound total.
/// A peer is dialed by bootnodes' dial-backs and by the peers that learn of it, few of which
/// share a subnet: 32 of 256 holds 16 peers over TCP and QUIC from one /24, and an attacker
/// needs addresses in eight subnets to fill the total.
const PEER_SUBNET_SHARE: u32 = 8;

/// Default of `--max-inbound-per-subnet` for a bootnode: this share (1 / n) of its inbound
/// total. Every peer behind one carrier-grade NAT comes to the bootnode from the same few
/// addresses, so a subnet may hold many honest peers: 1024 of 4096 is about 500 of them over
/// TCP and QUIC, while an attacker still needs four subnets to fill the total.
const BOOTNODE_SUBNET_SHARE: u32 = 4;

/// The swarm's connection limits, as the flags and the node's role set them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Established inbound connections.
    pub max_inbound: u32,
    /// Inbound connections, pending and established, from one subnet.
    pub max_inbound_per_subnet: u32,
    /// Established outbound connections.
    pub max_outbound: u32,
    /// Inbound connections in their handshake.
    pub max_pending_inbound: u32,
    /// Outbound connections being dialed.
    pub max_pending_outbound: u32,
    /// Established connections per peer.
    pub max_per_peer: u32,
    /// Resident memory above which new connections are refused.
    pub max_memory_bytes: usize,
    /// Peers the counts do not stop: the configured bootnodes.
    pub exempt: Vec<PeerId>,
}

impl Config {
    /// The connection limits of a bootnode (`bootnode`) or a peer: each flag, or its default
    /// for that role.
    pub fn connection_limits(&self, bootnode: bool) -> ConnectionLimits {
        let (inbound, outbound, pending) = if bootnode {
            BOOTNODE_LIMITS
        } else {
            PEER_LIMITS
        };
        let max_inbound = self.max_inbound.unwrap_or(inbound);
        let share = if bootnode {
            BOOTNODE_SUBNET_SHARE
        } else {
            PEER_SUBNET_SHARE
        };
        ConnectionLimits {
            max_inbound,
            max_inbound_per_subnet: self
                .max_inbound_per_subnet
                .unwrap_or((max_inbound / share).max(1)),
            max_outbound: self.max_outbound.unwrap_or(outbound),
            max_pending_inbound: self.max_pending_inbound.unwrap_or(pending),
            max_pending_outbound: self.max_pending_outbound,
            max_per_peer: self.max_connections_per_peer,
            max_memory_bytes: self.max_memory_mib.saturating_mul(1024 * 1024),
            exempt: self.bootnodes.iter().map(|b| b.peer_id).collect(),
        }
    }

    /// Whether a bootnode (`bootnode`) or a peer asks its router for port mappings:
    /// `--port-mapping`, or on for a peer and off for a bootnode.
    pub fn port_mapping(&self, bootnode: bool) -> bool {
        self.port_mapping.unwrap_or(!bootnode)
    }

    /// The listen addresses: `--listen`, or TCP and QUIC on `--port`.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        if !self.listen.is_empty() {
            return self.listen.clone();
        }
        let any = Multiaddr::empty().with(Protocol::Ip4(std::net::Ipv4Addr::UNSPECIFIED));
        vec![
            any.clone().with(Protocol::Tcp(self.port)),
            any.with(Protocol::Udp(self.port)).with(Protocol::QuicV1),
        ]
    }
}

/// What kind of node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An ordinary peer.
    Peer,
    /// A bootnode: a meeting point that gossips records.
    Bootnode,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    fn parse(args: &[&str]) -> Config {
        Cli::try_parse_from(std::iter::once("peerfind").chain(args.iter().copied()))
            .unwrap()
            .config
    }

    #[test]
    fn connection_limits_default_by_role_and_each_flag_overrides_its_own() {
        let config = parse(&[]);
        let peer = config.connection_limits(false);
        let boot = config.connection_limits(true);
        assert_eq!(
            (
                peer.max_inbound,
                peer.max_outbound,
                peer.max_pending_inbound
            ),
            PEER_LIMITS
        );
        assert_eq!(
            (
                boot.max_inbound,
                boot.max_outbound,
                boot.max_pending_inbound
            ),
            BOOTNODE_LIMITS
        );
        assert_eq!(peer.max_per_peer, DEFAULT_MAX_CONNECTIONS_PER_PEER);
        assert_eq!(peer.max_memory_bytes, DEFAULT_MAX_MEMORY_MIB * 1024 * 1024);

        assert_eq!(peer.max_inbound_per_subnet, 32);
        assert_eq!(boot.max_inbound_per_subnet, 1024);

        let config = parse(&["--max-inbound", "10", "--max-memory-mib", "64"]);
        let boot = config.connection_limits(true);
        assert_eq!(boot.max_inbound, 10);
        assert_eq!(
            boot.max_inbound_per_subnet, 2,
            "a share of the inbound total given"
        );
        assert_eq!(config.connection_limits(false).max_inbound_per_subnet, 1);
        let config = parse(&["--max-inbound-per-subnet", "3"]);
        assert_eq!(config.connection_limits(true).max_inbound_per_subnet, 3);
        assert!(
            Cli::try_parse_from(["peerfind", "--max-inbound-per-subnet", "0"]).is_err(),
            "a cap of 0 would refuse every inbound connection"
        );
        assert_eq!(boot.max_outbound, BOOTNODE_LIMITS.1);
        assert_eq!(boot.max_memory_bytes, 64 * 1024 * 1024);
    }

    #[test]
    fn the_api_defaults_in_the_help_are_the_named_constants() {
        let config = parse(&[]);
        assert_eq!(
            config.api_idle_timeout,
            crate::api::server::DEFAULT_IDLE_TIMEOUT
        );
        assert_eq!(
            config.api_max_connections,
            crate::api::server::DEFAULT_MAX_CONNECTIONS
        );
        assert!(
            parse(&["--api-idle-timeout", "5s"]).api_idle_timeout
                == std::time::Duration::from_secs(5)
        );
    }

    #[test]
    fn port_mapping_is_on_for_peers_off_for_bootnodes_and_the_flag_decides_for_both() {
        assert!(parse(&[]).port_mapping(false));
        assert!(!parse(&[]).port_mapping(true));
        assert!(!parse(&["--port-mapping", "false"]).port_mapping(false));
        assert!(parse(&["--port-mapping=true"]).port_mapping(true));
    }

    #[test]
    fn the_table_per_group_defaults_to_the_tables_constant_and_is_never_zero() {
        assert_eq!(parse(&[]).table_per_group, table::DEFAULT_MAX_PER_GROUP);
        assert_eq!(parse(&["--table-per-group", "2048"]).table_per_group, 2048);
        assert!(
            Cli::try_parse_from(["peerfind", "--table-per-group", "0"]).is_err(),
            "a cap of 0 would refuse every record"
        );
    }
}
