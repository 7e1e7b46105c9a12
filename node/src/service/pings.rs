//! Wiring: what a ping's outcome and the liveness budget do to a connection ([`crate::upkeep::liveness`]
//! has the rules, the connection book keeps each connection's pings).

use std::time::Duration;

use libp2p::PeerId;
use libp2p::swarm::ConnectionId;

use super::Node;
use crate::status;
use crate::upkeep::connections::Link;
use crate::upkeep::liveness;

impl Node {
    /// A ping's outcome. An answer keeps the connection alive (liveness rule 2), and the
    /// first one proves that data flows both ways on it, relayed or not; a failure libp2p
    /// reports closes it (liveness rule 3).
    pub(super) fn on_ping(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        result: Result<Duration, libp2p::ping::Failure>,
    ) {
        match result {
            Ok(rtt) => {
                if self
                    .connections
                    .ping_answered(connection, tokio::time::Instant::now(), rtt)
                {
                    let relayed = self
                        .connections
                        .get(connection)
                        .is_some_and(|(_, l)| l == Link::Relayed);
                    tracing::info!(%peer, rtt_ms = rtt.as_millis() as u64, relayed, "connection alive");
                    self.hub.publish(status::Event::ConnectionAlive {
                        peer_id: peer,
                        relayed,
                        rtt,
                    });
                }
            }
            Err(libp2p::ping::Failure::Unsupported) => {
                tracing::debug!(%peer, "peer does not answer pings; its connection is not watched");
                self.connections.ping_unsupported(connection);
            }
            Err(error) => {
                if self.connections.ping_failed(connection).is_some() {
                    tracing::warn!(%peer, %error, "ping failed; closing the connection");
                    self.swarm.close_connection(connection);
                }
            }
        }
    }

    /// Closes every connection that answered no ping within the liveness budget (liveness
    /// rule 5): its peer or the path to it is gone, and only the close lets the node act on
    /// the loss (redial a bootnode, reach the peer anew, learn its address again).
    pub(super) fn on_silent_connections(&mut self) {
        for (connection, peer) in self.connections.expired(tokio::time::Instant::now()) {
            tracing::warn!(
                peer = ?peer, budget_s = liveness::budget().as_secs(),
                "no ping answered within the budget; closing the connection"
            );
            self.swarm.close_connection(connection);
        }
    }
}
