//! A wrapper behaviour that owns an inner libp2p behaviour and only watches or filters its
//! events still has to hand every connection to it: [`forward_connection_handling!`] writes
//! those methods once, [`forward_pending_connections!`] the two for connections not yet
//! established; [`forward_handler_events!`] and [`forward_poll!`] pass on the rest unchanged.
//! A behaviour with no handler of its own (it only watches the swarm) writes its handler
//! methods with [`no_handler!`].

/// Inside `impl NetworkBehaviour for Wrapper`, whose `ConnectionHandler` is the one of the
/// inner behaviour in field `$inner`: the five connection-handling methods, each passed on
/// to `self.$inner` unchanged.
#[macro_export]
macro_rules! forward_connection_handling {
    ($inner:ident) => {
        $crate::forward_pending_connections!($inner);

        fn handle_established_inbound_connection(
            &mut self,
            connection_id: ::libp2p::swarm::ConnectionId,
            peer: ::libp2p::PeerId,
            local_addr: &::libp2p::Multiaddr,
            remote_addr: &::libp2p::Multiaddr,
        ) -> ::std::result::Result<::libp2p::swarm::THandler<Self>, ::libp2p::swarm::ConnectionDenied>
        {
            self.$inner.handle_established_inbound_connection(
                connection_id,
                peer,
                local_addr,
                remote_addr,
            )
        }

        fn handle_established_outbound_connection(
            &mut self,
            connection_id: ::libp2p::swarm::ConnectionId,
            peer: ::libp2p::PeerId,
            addr: &::libp2p::Multiaddr,
            role_override: ::libp2p::core::Endpoint,
            port_use: ::libp2p::core::transport::PortUse,
        ) -> ::std::result::Result<::libp2p::swarm::THandler<Self>, ::libp2p::swarm::ConnectionDenied>
        {
            self.$inner.handle_established_outbound_connection(
                connection_id,
                peer,
                addr,
                role_override,
                port_use,
            )
        }
    };
}

/// Inside `impl NetworkBehaviour for Wrapper`: the two methods for connections not yet
/// established, passed on to `self.$inner` unchanged. For a wrapper that changes what its
/// inner behaviour hears of established connections and writes those two itself.
#[macro_export]
macro_rules! forward_pending_connections {
    ($inner:ident) => {
        fn handle_pending_inbound_connection(
            &mut self,
            connection_id: ::libp2p::swarm::ConnectionId,
            local_addr: &::libp2p::Multiaddr,
            remote_addr: &::libp2p::Multiaddr,
        ) -> ::std::result::Result<(), ::libp2p::swarm::ConnectionDenied> {
            self.$inner
                .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
        }

        fn handle_pending_outbound_connection(
            &mut self,
            connection_id: ::libp2p::swarm::ConnectionId,
            maybe_peer: ::std::option::Option<::libp2p::PeerId>,
            addresses: &[::libp2p::Multiaddr],
            effective_role: ::libp2p::core::Endpoint,
        ) -> ::std::result::Result<
            ::std::vec::Vec<::libp2p::Multiaddr>,
            ::libp2p::swarm::ConnectionDenied,
        > {
            self.$inner.handle_pending_outbound_connection(
                connection_id,
                maybe_peer,
                addresses,
                effective_role,
            )
        }
    };
}

/// Inside `impl NetworkBehaviour for Wrapper`: the inner behaviour's handler events passed on
/// to `self.$inner` unchanged, for a wrapper that changes only what connections it is given.
#[macro_export]
macro_rules! forward_handler_events {
    ($inner:ident) => {
        fn on_connection_handler_event(
            &mut self,
            peer_id: ::libp2p::PeerId,
            connection_id: ::libp2p::swarm::ConnectionId,
            event: ::libp2p::swarm::THandlerOutEvent<Self>,
        ) {
            self.$inner
                .on_connection_handler_event(peer_id, connection_id, event);
        }
    };
}

/// Inside `impl NetworkBehaviour for Wrapper`, whose `ToSwarm` is the inner behaviour's: its
/// `poll`, the inner behaviour's unchanged.
#[macro_export]
macro_rules! forward_poll {
    ($inner:ident) => {
        fn poll(
            &mut self,
            cx: &mut ::std::task::Context<'_>,
        ) -> ::std::task::Poll<
            ::libp2p::swarm::ToSwarm<Self::ToSwarm, ::libp2p::swarm::THandlerInEvent<Self>>,
        > {
            self.$inner.poll(cx)
        }
    };
}

/// Inside `impl NetworkBehaviour for Watcher`, whose `ConnectionHandler` is libp2p's
/// `dummy::ConnectionHandler` (a behaviour that only watches the swarm, or only says no
/// before a handshake): a dummy handler for every established connection, and
/// `on_connection_handler_event`, which a dummy handler never calls.
#[macro_export]
macro_rules! no_handler {
    () => {
        fn handle_established_inbound_connection(
            &mut self,
            _: ::libp2p::swarm::ConnectionId,
            _: ::libp2p::PeerId,
            _: &::libp2p::Multiaddr,
            _: &::libp2p::Multiaddr,
        ) -> ::std::result::Result<::libp2p::swarm::THandler<Self>, ::libp2p::swarm::ConnectionDenied>
        {
            Ok(::libp2p::swarm::dummy::ConnectionHandler)
        }

        fn handle_established_outbound_connection(
            &mut self,
            _: ::libp2p::swarm::ConnectionId,
            _: ::libp2p::PeerId,
            _: &::libp2p::Multiaddr,
            _: ::libp2p::core::Endpoint,
            _: ::libp2p::core::transport::PortUse,
        ) -> ::std::result::Result<::libp2p::swarm::THandler<Self>, ::libp2p::swarm::ConnectionDenied>
        {
            Ok(::libp2p::swarm::dummy::ConnectionHandler)
        }

        fn on_connection_handler_event(
            &mut self,
            _: ::libp2p::PeerId,
            _: ::libp2p::swarm::ConnectionId,
            event: ::libp2p::swarm::THandlerOutEvent<Self>,
        ) {
            ::libp2p::core::util::unreachable(event)
        }
    };
}
