//! The node's own types ([`crate::status`]) as the API's wire types: the one place that knows
//! both. Nothing here can fail: every field of the node's state has a wire form.

use libp2p::Multiaddr;
use peerfind_behaviours::enr_ext;
use peerfind_proto::v1 as pb;

use crate::reach::{mapping, nat};
use crate::status;

mod events;

pub(crate) use events::{event, lagged};

/// The node's own state.
pub(crate) fn status(s: &status::Status) -> pb::NodeStatus {
    let c = &s.counters;
    pb::NodeStatus {
        node_id: s.node_id.clone(),
        peer_id: s.peer_id.to_string(),
        enr: s.enr.clone(),
        seq: s.seq,
        listen_addrs: addrs(&s.listen_addrs),
        observed_addrs: addrs(&s.observed_addrs),
        external_addrs: addrs(&s.external_addrs),
        // The node does not know it: the API server fills it in.
        metrics_addr: String::new(),
        nat: Some(pb::Nat {
            status: nat_status(s.nat.status).into(),
            reason: s.nat.reason.clone(),
            since: Some(s.nat.since.into()),
            tcp_mapping: nat_mapping(s.nat.mappings.tcp).into(),
            quic_mapping: nat_mapping(s.nat.mappings.quic).into(),
        }),
        port_mapping: Some(pb::PortMapping {
            state: mapping_state(s.port_mapping.state).into(),
            detail: s.port_mapping.detail.clone(),
            mapped_addrs: addrs(&s.port_mapping.mapped),
            verified_addrs: addrs(&s.port_mapping.verified),
        }),
        bootnodes: s
            .bootnodes
            .iter()
            .map(|b| pb::Bootnode {
                peer_id: b.peer_id.to_string(),
                addrs: addrs(&b.addrs),
                connected: b.connected,
                transports: b.transports.iter().map(|t| (*t).to_owned()).collect(),
                agent: b.agent.clone(),
                lacks: b.lacks.clone(),
                relay_reserved: b.relay_reserved,
            })
            .collect(),
        counts: Some(pb::Counts {
            records: s.records,
            direct_connections: s.direct_connections,
            relayed_connections: s.relayed_connections,
            introductions_asked: c.introductions_asked,
            introductions_served: c.introductions_served,
            hole_punches_tried: c.punches_tried,
            hole_punches_succeeded: c.punches_succeeded,
            hole_punches_failed: c.punches_failed,
            direct_dials: c.direct_dials,
            circuit_dials: c.circuit_dials,
            inbound_denied_per_subnet: c.inbound_denied_per_subnet,
            chosen_peers: s.chosen_peers,
            inputs_rejected: c
                .inputs_rejected
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }),
    }
}

/// A known peer.
pub(crate) fn peer(p: &status::Peer) -> pb::Peer {
    let (connection, transport) = connection(&p.connection);
    pb::Peer {
        node_id: p.node_id.clone(),
        peer_id: p.peer_id.to_string(),
        enr: p.enr.clone(),
        seq: p.seq,
        addrs: addrs(&p.addrs),
        nat: p.nat,
        tcp_mapping: nat_mapping(p.mappings.tcp).into(),
        quic_mapping: nat_mapping(p.mappings.quic).into(),
        last_seen: Some(p.last_seen.into()),
        met: met(p.met).into(),
        connection: connection.into(),
        transport,
        transports: p.transports.iter().map(|t| (*t).to_owned()).collect(),
        rtt_ms: p.rtt.map(|d| d.as_secs_f64() * 1000.0),
        has_record: p.has_record,
        identify: p.identify.as_ref().map(|i| pb::PeerIdentify {
            agent: i.agent.clone(),
            protocol_version: i.protocol_version.clone(),
            protocols: i.protocols.clone(),
            listen_addrs: addrs(&i.listen_addrs),
            observed_addr: i
                .observed_addr
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        }),
    }
}

/// A record's NAT mapping as the API names it.
fn nat_mapping(m: Option<enr_ext::NatMapping>) -> pb::NatMapping {
    match m {
        None => pb::NatMapping::Unspecified,
        Some(enr_ext::NatMapping::EndpointIndependent) => pb::NatMapping::EndpointIndependent,
        Some(enr_ext::NatMapping::VariesByDestination) => pb::NatMapping::VariesByDestination,
    }
}

pub(super) fn addrs(list: &[Multiaddr]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

pub(super) fn mapping_state(s: mapping::State) -> pb::PortMappingState {
    use pb::PortMappingState as P;
    match s {
        mapping::State::Off => P::Off,
        mapping::State::Searching => P::Searching,
        mapping::State::NoGateway => P::NoGateway,
        mapping::State::GatewayNotRoutable => P::GatewayNotRoutable,
        mapping::State::Mapped => P::Mapped,
        mapping::State::Verified => P::Verified,
        mapping::State::Failed => P::Failed,
    }
}

pub(super) fn nat_status(s: nat::Status) -> pb::NatStatus {
    match s {
        nat::Status::Unknown => pb::NatStatus::Unknown,
        nat::Status::Public => pb::NatStatus::Public,
        nat::Status::Private => pb::NatStatus::Private,
    }
}

fn met(m: status::Met) -> pb::Met {
    match m {
        status::Met::Gossip => pb::Met::Gossip,
        status::Met::Announced => pb::Met::Announced,
        status::Met::Inbound => pb::Met::Inbound,
        status::Met::Connected => pb::Met::Connected,
    }
}

/// The connection state and, for a direct connection, its transport.
pub(super) fn connection(c: &status::Connection) -> (pb::ConnectionState, String) {
    match c {
        status::Connection::None => (pb::ConnectionState::None, String::new()),
        status::Connection::Direct { transport } => {
            (pb::ConnectionState::Direct, (*transport).to_owned())
        }
        status::Connection::Relayed => (pb::ConnectionState::Relayed, String::new()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::api::some_peer_id;

    fn sample_status() -> status::Status {
        let boot = some_peer_id();
        status::Status {
            peer_id: some_peer_id(),
            node_id: "ab".repeat(32),
            enr: "enr:-abc".into(),
            seq: 7,
            listen_addrs: vec!["/ip4/0.0.0.0/tcp/9000".parse().unwrap()],
            observed_addrs: vec!["/ip4/198.51.100.30/tcp/9000".parse().unwrap()],
            external_addrs: vec![],
            nat: status::NatState {
                status: nat::Status::Private,
                reason: "AutoNAT server x could not reach us at y".into(),
                since: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
                mappings: status::NatMappings {
                    tcp: None,
                    quic: Some(enr_ext::NatMapping::VariesByDestination),
                },
            },
            port_mapping: status::PortMappingState {
                state: mapping::State::Verified,
                detail: "a dial-back reached us at /ip4/198.51.100.101/tcp/9000".into(),
                mapped: vec!["/ip4/198.51.100.101/tcp/9000".parse().unwrap()],
                verified: vec!["/ip4/198.51.100.101/tcp/9000".parse().unwrap()],
            },
            bootnodes: vec![status::BootnodeState {
                peer_id: boot,
                addrs: vec![
                    format!("/ip4/198.51.100.10/tcp/9000/p2p/{boot}")
                        .parse()
                        .unwrap(),
                ],
                connected: true,
                transports: vec!["tcp"],
                agent: "js-libp2p/3.3.11".into(),
                lacks: vec!["no record gossip".into()],
                relay_reserved: true,
            }],
            records: 3,
            direct_connections: 2,
            relayed_connections: 1,
            chosen_peers: 11,
            counters: status::Counters {
                direct_dials: 7,
                circuit_dials: 8,
                introductions_asked: 4,
                introductions_served: 5,
                punches_tried: 6,
                punches_succeeded: 2,
                punches_failed: 4,
                inputs_rejected: BTreeMap::from([("bad_signature".to_owned(), 9)]),
                inbound_denied_per_subnet: 10,
                port_mapping: BTreeMap::from([("verified".to_owned(), 1)]),
            },
        }
    }

    #[test]
    fn every_field_of_the_status_reaches_the_wire() {
        let s = sample_status();
        let w = status(&s);
        assert_eq!(w.peer_id, s.peer_id.to_string());
        assert_eq!(
            (w.node_id.as_str(), w.enr.as_str(), w.seq),
            ("ab".repeat(32).as_str(), "enr:-abc", 7)
        );
        assert_eq!(w.listen_addrs, ["/ip4/0.0.0.0/tcp/9000"]);
        assert_eq!(w.observed_addrs, ["/ip4/198.51.100.30/tcp/9000"]);
        assert!(w.external_addrs.is_empty());
        let nat = w.nat.unwrap();
        assert_eq!(nat.status(), pb::NatStatus::Private);
        assert!(nat.reason.contains("AutoNAT"));
        assert_eq!(
            (nat.tcp_mapping(), nat.quic_mapping()),
            (
                pb::NatMapping::Unspecified,
                pb::NatMapping::VariesByDestination
            )
        );
        let since = nat.since.unwrap();
        assert_eq!((since.seconds, since.nanos), (1_700_000_000, 123_000_000));
        let mapping = w.port_mapping.unwrap();
        assert_eq!(mapping.state(), pb::PortMappingState::Verified);
        assert_eq!(mapping.verified_addrs, ["/ip4/198.51.100.101/tcp/9000"]);
        assert_eq!(w.bootnodes.len(), 1);
        assert!(w.bootnodes[0].connected);
        assert_eq!(w.bootnodes[0].agent, "js-libp2p/3.3.11");
        assert_eq!(w.bootnodes[0].lacks, ["no record gossip"]);
        assert!(w.bootnodes[0].relay_reserved);
        assert_eq!(w.bootnodes[0].peer_id, s.bootnodes[0].peer_id.to_string());
        let c = w.counts.unwrap();
        assert_eq!(
            (c.records, c.direct_connections, c.relayed_connections),
            (3, 2, 1)
        );
        assert_eq!((c.introductions_asked, c.introductions_served), (4, 5));
        assert_eq!(
            (
                c.hole_punches_tried,
                c.hole_punches_succeeded,
                c.hole_punches_failed
            ),
            (6, 2, 4)
        );
        assert_eq!((c.direct_dials, c.circuit_dials), (7, 8));
        assert_eq!(c.inputs_rejected.get("bad_signature"), Some(&9));
        assert_eq!(c.inbound_denied_per_subnet, 10);
        assert_eq!(c.chosen_peers, 11);
    }

    #[test]
    fn a_peer_carries_its_connection_state_and_transport() {
        let id = some_peer_id();
        let mut p = status::Peer {
            node_id: "cd".repeat(32),
            peer_id: id,
            enr: "enr:-xyz".into(),
            seq: 2,
            addrs: vec![
                format!("/ip4/127.0.0.1/udp/4000/quic-v1/p2p/{id}")
                    .parse()
                    .unwrap(),
            ],
            nat: true,
            mappings: status::NatMappings::default(),
            last_seen: SystemTime::UNIX_EPOCH + Duration::from_secs(5),
            met: status::Met::Inbound,
            connection: status::Connection::Direct { transport: "quic" },
            transports: vec!["quic", "tcp"],
            rtt: Some(Duration::from_micros(12_500)),
            has_record: true,
            identify: None,
        };
        let w = peer(&p);
        assert_eq!(w.transports, vec!["quic", "tcp"]);
        assert_eq!(w.rtt_ms, Some(12.5));
        assert_eq!(w.peer_id, id.to_string());
        assert_eq!((w.seq, w.nat), (2, true));
        assert_eq!(w.met(), pb::Met::Inbound);
        assert_eq!(w.connection(), pb::ConnectionState::Direct);
        assert_eq!(w.transport, "quic");
        assert_eq!(w.last_seen.unwrap().seconds, 5);
        assert!(w.addrs[0].ends_with(&id.to_string()));

        p.connection = status::Connection::Relayed;
        let w = peer(&p);
        assert_eq!(
            (w.connection(), w.transport.as_str()),
            (pb::ConnectionState::Relayed, "")
        );
        p.connection = status::Connection::None;
        assert_eq!(peer(&p).connection(), pb::ConnectionState::None);
    }
}
