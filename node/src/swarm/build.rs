//! Building the swarm: transports (TCP; QUIC, whose answers finish after them and poll their
//! connection once more, see `crate::upstream::quic_fin` and `quic_wake`; relayed circuits), the
//! behaviours for this node's role and flags, and the connection settings.

use std::time::Duration;

use libp2p::core::Transport as _;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::upgrade;
use libp2p::{Swarm, noise, quic, tcp, yamux};
use peerfind_behaviours::limiter::Limit;
use peerfind_behaviours::{gossip, table};

use crate::config::Config;
use crate::config::Mode;
use crate::mesh::members::Members;
use crate::mesh::secret::{Secret, SecretError};
use crate::record::enr::LocalRecord;
use crate::record::identity::Identity;
use crate::swarm::behaviour::{Behaviour, Settings};
use crate::swarm::dial_guard::{self, Guarded};
use crate::upstream::{quic_fin, quic_wake};

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

/// How the streams we open choose their protocol: when we propose one protocol only, we send
/// the request with the proposal instead of waiting a round trip for the other side to accept
/// it (multistream-select's "lazy" V1, the same wire messages; the transport upgrades already
/// do this). Every request a stream carries (a record announcement, an introduction and its
/// forward, a relay reservation or circuit, a hole punch's CONNECT) is a round trip sooner.
/// A peer that does not speak the protocol refuses it as before; the request is then lost
/// with the stream, which fails as it would have.
const STREAM_NEGOTIATION: upgrade::Version = upgrade::Version::V1Lazy;

/// Why the swarm could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The noise handshake could not be set up with our key.
    #[error("noise: {0}")]
    Noise(#[from] noise::Error),
    /// The system's resolver configuration could not be read.
    #[error("DNS: cannot read the system's resolver configuration (/etc/resolv.conf): {0}")]
    Dns(std::io::Error),
    /// A behaviour could not be built (the record mesh's gossipsub settings).
    #[error("behaviours: {0}")]
    Behaviour(#[from] libp2p::BehaviourBuilderError),
    /// The mesh secret could not be loaded.
    #[error(transparent)]
    MeshSecret(#[from] SecretError),
}

/// The swarm of a node of `mode` with `config`, presenting `record`; with a `registry`, the
/// bytes each connection carries are counted into it (libp2p's bandwidth metrics).
pub(crate) fn build(
    identity: &Identity,
    record: &LocalRecord,
    mode: Mode,
    config: &Config,
    registry: Option<&mut libp2p::metrics::Registry>,
) -> Result<Swarm<Behaviour>, SwarmError> {
    let bootnode = mode == Mode::Bootnode;
    let gossip = gossip::Config {
        pass_on: bootnode,
        // Records passed on by others come only from the configured bootnodes (for a
        // bootnode: the other bootnodes it is told of), which took them with proof.
        trust: gossip::Trust::Peers(config.bootnodes.iter().map(|b| b.peer_id).collect()),
        fanout: config.gossip_fanout,
        table: table::Config {
            capacity: config.table_size,
            max_per_group: config.table_per_group,
            ..Default::default()
        },
        rates: gossip::Rates {
            per_group: Limit {
                count: config.gossip_rate_per_subnet,
                ..gossip::DEFAULT_PER_GROUP
            },
            ..Default::default()
        },
        await_identify: true,
        ..Default::default()
    };
    let limits = config.connection_limits(bootnode);
    let mesh = match (&config.mesh_secret_file, bootnode) {
        (secret, true) => {
            let secret = secret.as_deref().map(Secret::load).transpose()?;
            let configured = config.bootnodes.iter().map(|b| b.peer_id).collect();
            let local = identity.keypair.public().to_peer_id();
            let members = Members::new(local, configured, secret);
            Some((config.mesh_topic.as_str(), members))
        }
        (Some(path), false) => {
            tracing::warn!(path = %path.display(), "--mesh-secret-file is for bootnodes; a peer joins no mesh, so it is ignored");
            None
        }
        (None, false) => None,
    };
    let listen = config.listen_addrs();
    let guard = dial_guard::Shared::new(dial_guard::Guard::new(
        &listen,
        config
            .bootnodes
            .iter()
            .flat_map(|b| b.addrs.iter().map(move |a| (b.peer_id, a))),
    ));
    let settings = Settings {
        autonat_client: config.autonat,
        port_mapping: config.port_mapping(bootnode),
        limits: &limits,
        relay_limits: &config.relay,
        mesh,
        dial_guard: guard.clone(),
    };
    // Without a registry the counts go to one nobody reads: the builder counts or it does not
    // by its type, and one swarm type serves both.
    let mut unread = libp2p::metrics::Registry::default();
    let registry = registry.unwrap_or(&mut unread);
    let transports = transports(&identity.keypair, &guard)?;
    Ok(
        libp2p::SwarmBuilder::with_existing_identity(identity.keypair.clone())
            .with_tokio()
            .with_other_transport(|_| transports)
            .map_err(|never| -> SwarmError { match never {} })?
            .with_relay_client(noise::Config::new, yamux::Config::default)?
            .with_bandwidth_metrics(registry)
            .with_behaviour(|key, relay_client| {
                Behaviour::new(key, relay_client, record, gossip, settings).map_err(Box::from)
            })?
            .with_swarm_config(|c| {
                c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT)
                    .with_substream_upgrade_protocol_override(STREAM_NEGOTIATION)
            })
            .with_connection_timeout(CONNECTION_TIMEOUT)
            .build(),
    )
}

/// TCP and QUIC as `with_tcp` and `with_quic` build them, each behind the dial guard, under
/// libp2p's DNS transport (`/dns4`, `/dns6`, `/dns`, `/dnsaddr`, resolved with the system's
/// resolver and hosts file), itself behind the guard: a name is resolved only for a
/// configured bootnode, and the IP it resolves to is vetted by the guard below. Built here
/// rather than with the builder's `with_dns`, which leaves no way to put the guard above it.
fn transports(
    key: &libp2p::identity::Keypair,
    guard: &dial_guard::Shared,
) -> Result<
    impl libp2p::core::Transport<
        Output = (libp2p::PeerId, StreamMuxerBox),
        Error = impl std::error::Error + Send + Sync + 'static,
        Dial = impl Send,
        ListenerUpgrade = impl Send,
    > + Send
    + Unpin
    + 'static,
    SwarmError,
> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().linger(Some(TCP_LINGER)));
    let tcp = Guarded::new(tcp, guard.clone(), dial_guard::transport::tcp, |e| e)
        .upgrade(upgrade::Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
    let quic = quic::tokio::Transport::new(quic::Config::new(key));
    let quic = Guarded::new(
        quic,
        guard.clone(),
        dial_guard::transport::quic,
        quic::Error::Io,
    )
    .map(|(peer, c), _| {
        let c = quic_fin::Muxer::new(quic_wake::Muxer::new(c));
        (peer, StreamMuxerBox::new(c))
    });
    let ip = tcp
        .or_transport(quic)
        .map(|either, _| either.into_inner())
        .map_err(std::io::Error::other);
    let dns = libp2p::dns::tokio::Transport::system(ip).map_err(SwarmError::Dns)?;
    Ok(Guarded::new(
        dns,
        guard.clone(),
        dial_guard::transport::name,
        libp2p::dns::Error::Transport,
    ))
}
