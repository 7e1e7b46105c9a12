//! What both protocol behaviours hand to the `request_response` behaviour they wrap.
//!
//! [`crate::gossip`] and [`crate::intro`] each keep an `inner: request_response::Behaviour<_>`
//! and add their own rules only where connections come and go (`on_swarm_event`) and where
//! messages arrive (`poll`). Accepting connections and passing handler events along is the
//! inner behaviour's business, unchanged: this macro writes those methods once.

/// Expands, inside an `impl NetworkBehaviour for …` whose type has an `inner` field that is a
/// `request_response::Behaviour`, to the methods that forward to it unchanged.
macro_rules! to_inner {
    () => {
        fn handle_established_inbound_connection(
            &mut self,
            connection_id: libp2p::swarm::ConnectionId,
            peer: libp2p::PeerId,
            local_addr: &libp2p::Multiaddr,
            remote_addr: &libp2p::Multiaddr,
        ) -> Result<libp2p::swarm::THandler<Self>, libp2p::swarm::ConnectionDenied> {
            self.inner.handle_established_inbound_connection(
                connection_id,
                peer,
                local_addr,
                remote_addr,
            )
        }

        fn handle_pending_outbound_connection(
            &mut self,
            connection_id: libp2p::swarm::ConnectionId,
            maybe_peer: Option<libp2p::PeerId>,
            addresses: &[libp2p::Multiaddr],
            effective_role: libp2p::core::Endpoint,
        ) -> Result<Vec<libp2p::Multiaddr>, libp2p::swarm::ConnectionDenied> {
            self.inner.handle_pending_outbound_connection(
                connection_id,
                maybe_peer,
                addresses,
                effective_role,
            )
        }

        fn handle_established_outbound_connection(
            &mut self,
            connection_id: libp2p::swarm::ConnectionId,
            peer: libp2p::PeerId,
            addr: &libp2p::Multiaddr,
            role_override: libp2p::core::Endpoint,
            port_use: libp2p::core::transport::PortUse,
        ) -> Result<libp2p::swarm::THandler<Self>, libp2p::swarm::ConnectionDenied> {
            self.inner.handle_established_outbound_connection(
                connection_id,
                peer,
                addr,
                role_override,
                port_use,
            )
        }

        fn on_connection_handler_event(
            &mut self,
            peer_id: libp2p::PeerId,
            connection_id: libp2p::swarm::ConnectionId,
            event: libp2p::swarm::THandlerOutEvent<Self>,
        ) {
            self.inner
                .on_connection_handler_event(peer_id, connection_id, event);
        }
    };
}

pub(crate) use to_inner;
