//! Why a node could not start, or stopped with an error.

use libp2p::Multiaddr;

use crate::record::enr::LocalRecordError;
use crate::record::identity::IdentityError;

use crate::swarm::build as swarm;

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
    /// The swarm could not be built.
    #[error("cannot set up the swarm: {0}")]
    Swarm(#[from] swarm::SwarmError),
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
