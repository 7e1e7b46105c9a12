//! The node's own types ([`crate::status`]) as the API's wire types: the one place that knows
//! both. Nothing here can fail: every field of the node's state has a wire form.

use std::time::SystemTime;

use libp2p::Multiaddr;
use peerfind_proto::v1 as pb;

use crate::{nat, status};

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
        last_seen: Some(p.last_seen.into()),
        met: met(p.met).into(),
        connection: connection.into(),
        transport,
        transports: p.transports.iter().map(|t| (*t).to_owned()).collect(),
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

/// An event, stamped with the time the API took it from the node.
pub(crate) fn event(e: &status::Event, time: SystemTime) -> pb::Event {
    use pb::event::Kind;
    use status::Event as E;
    let kind = match e {
        E::RecordLearned {
            peer_id,
            seq,
            nat,
            from,
        } => Kind::RecordLearned(pb::RecordLearned {
            peer_id: peer_id.to_string(),
            seq: *seq,
            nat: *nat,
            from: from.to_string(),
        }),
        E::RecordUpdated {
            peer_id,
            seq,
            nat,
            from,
        } => Kind::RecordUpdated(pb::RecordUpdated {
            peer_id: peer_id.to_string(),
            seq: *seq,
            nat: *nat,
            from: from.to_string(),
        }),
        E::NatStatusChanged { from, to, reason } => Kind::NatStatusChanged(pb::NatStatusChanged {
            from: nat_status(*from).into(),
            to: nat_status(*to).into(),
            reason: reason.clone(),
        }),
        E::IntroductionAsked { target, via } => Kind::IntroductionAsked(pb::IntroductionAsked {
            target: target.to_string(),
            via: via.to_string(),
        }),
        E::IntroductionServed { requester, target } => {
            Kind::IntroductionServed(pb::IntroductionServed {
                requester: requester.to_string(),
                target: target.to_string(),
            })
        }
        E::HolePunch {
            peer_id,
            succeeded,
            error,
        } => Kind::HolePunch(pb::HolePunch {
            peer_id: peer_id.to_string(),
            succeeded: *succeeded,
            error: error.clone().unwrap_or_default(),
        }),
        E::ConnectionChanged {
            peer_id,
            connection: c,
        } => {
            let (connection, transport) = connection(c);
            Kind::ConnectionChanged(pb::ConnectionChanged {
                peer_id: peer_id.to_string(),
                connection: connection.into(),
                transport,
            })
        }
        E::ConnectionOpened {
            peer_id,
            direction,
            remote_addr,
            relayed,
            bootnode,
        } => Kind::ConnectionOpened(pb::ConnectionOpened {
            peer_id: peer_id.to_string(),
            direction: match direction {
                status::Direction::Inbound => pb::Direction::Inbound,
                status::Direction::Outbound => pb::Direction::Outbound,
            }
            .into(),
            remote_addr: remote_addr.to_string(),
            relayed: *relayed,
            bootnode: *bootnode,
        }),
        E::DialFailed { peer_id, error } => Kind::DialFailed(pb::DialFailed {
            peer_id: peer_id.map(|p| p.to_string()).unwrap_or_default(),
            error: error.clone(),
        }),
        E::OwnRecordChanged {
            seq,
            enr,
            addrs: a,
            nat,
            reason,
        } => Kind::OwnRecordChanged(pb::OwnRecordChanged {
            seq: *seq,
            enr: enr.clone(),
            addrs: addrs(a),
            nat: *nat,
            reason: reason.clone(),
        }),
        E::AutonatTested {
            addr,
            server,
            reachable,
            error,
        } => Kind::AutonatTested(pb::AutonatTested {
            addr: addr.to_string(),
            server: server.to_string(),
            reachable: *reachable,
            error: error.clone().unwrap_or_default(),
        }),
        E::Introduced { peer_id, via } => Kind::Introduced(pb::Introduced {
            peer_id: peer_id.to_string(),
            via: via.to_string(),
        }),
        E::IntroductionAnswered {
            target_node_id,
            via,
            outcome,
            detail,
        } => Kind::IntroductionAnswered(pb::IntroductionAnswered {
            target_node_id: target_node_id.clone(),
            via: via.to_string(),
            outcome: introduction_outcome(*outcome).into(),
            detail: detail.clone(),
        }),
        E::RelayReservation {
            relay,
            accepted,
            reason,
        } => Kind::RelayReservation(pb::RelayReservation {
            relay: relay.to_string(),
            accepted: *accepted,
            reason: reason.clone().unwrap_or_default(),
        }),
        E::ObservedAddressIgnored {
            peer_id,
            addr,
            reason,
        } => Kind::ObservedAddressIgnored(pb::ObservedAddressIgnored {
            peer_id: peer_id.to_string(),
            addr: addr.to_string(),
            reason: match reason {
                crate::confirm::NotTaken::CannotBeOurs => pb::IgnoredBecause::CannotBeOurs,
                crate::confirm::NotTaken::OtherPort => pb::IgnoredBecause::OtherPort,
            }
            .into(),
        }),
        E::ConnectionAlive {
            peer_id,
            relayed,
            rtt,
        } => Kind::ConnectionAlive(pb::ConnectionAlive {
            peer_id: peer_id.to_string(),
            relayed: *relayed,
            rtt_ms: u64::try_from(rtt.as_millis()).unwrap_or(u64::MAX),
        }),
    };
    pb::Event {
        time: Some(time.into()),
        kind: Some(kind),
    }
}

/// The event that tells a slow watcher it missed `missed` events.
pub(crate) fn lagged(missed: u64, time: SystemTime) -> pb::Event {
    pb::Event {
        time: Some(time.into()),
        kind: Some(pb::event::Kind::Lagged(pb::Lagged { missed })),
    }
}

fn addrs(list: &[Multiaddr]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

fn nat_status(s: nat::Status) -> pb::NatStatus {
    match s {
        nat::Status::Unknown => pb::NatStatus::Unknown,
        nat::Status::Public => pb::NatStatus::Public,
        nat::Status::Private => pb::NatStatus::Private,
    }
}

fn introduction_outcome(o: peerfind_behaviours::intro::Outcome) -> pb::IntroductionOutcome {
    use peerfind_behaviours::intro::Outcome;
    match o {
        Outcome::Dialing => pb::IntroductionOutcome::Dialing,
        Outcome::UnknownTarget => pb::IntroductionOutcome::UnknownTarget,
        Outcome::TargetNotConnected => pb::IntroductionOutcome::TargetNotConnected,
        Outcome::RateLimited => pb::IntroductionOutcome::RateLimited,
        Outcome::BadRecord => pb::IntroductionOutcome::BadRecord,
        Outcome::TargetUnreachable => pb::IntroductionOutcome::TargetUnreachable,
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
fn connection(c: &status::Connection) -> (pb::ConnectionState, String) {
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
    use std::time::Duration;

    use libp2p::PeerId;

    use super::*;

    fn some_peer_id() -> PeerId {
        libp2p::identity::Keypair::generate_secp256k1()
            .public()
            .to_peer_id()
    }

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
            counters: status::Counters {
                direct_dials: 7,
                circuit_dials: 8,
                introductions_asked: 4,
                introductions_served: 5,
                punches_tried: 6,
                punches_succeeded: 2,
                punches_failed: 4,
                inputs_rejected: BTreeMap::from([("bad_signature".to_owned(), 9)]),
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
        let since = nat.since.unwrap();
        assert_eq!((since.seconds, since.nanos), (1_700_000_000, 123_000_000));
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
            last_seen: SystemTime::UNIX_EPOCH + Duration::from_secs(5),
            met: status::Met::Inbound,
            connection: status::Connection::Direct { transport: "quic" },
            transports: vec!["quic", "tcp"],
            has_record: true,
            identify: None,
        };
        let w = peer(&p);
        assert_eq!(w.transports, vec!["quic", "tcp"]);
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

    #[test]
    fn every_event_has_its_own_kind_and_a_time() {
        use pb::event::Kind;
        let a = some_peer_id();
        let b = some_peer_id();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(42);
        let cases = [
            status::Event::RecordLearned {
                peer_id: a,
                seq: 1,
                nat: false,
                from: b,
            },
            status::Event::RecordUpdated {
                peer_id: a,
                seq: 2,
                nat: true,
                from: a,
            },
            status::Event::NatStatusChanged {
                from: nat::Status::Unknown,
                to: nat::Status::Public,
                reason: "r".into(),
            },
            status::Event::IntroductionAsked { target: a, via: b },
            status::Event::IntroductionServed {
                requester: a,
                target: b,
            },
            status::Event::HolePunch {
                peer_id: a,
                succeeded: false,
                error: Some("timeout".into()),
            },
            status::Event::ConnectionChanged {
                peer_id: a,
                connection: status::Connection::Direct { transport: "tcp" },
            },
            status::Event::ConnectionOpened {
                peer_id: a,
                direction: status::Direction::Inbound,
                remote_addr: "/ip4/198.51.100.7/tcp/4001".parse().unwrap(),
                relayed: false,
                bootnode: true,
            },
            status::Event::DialFailed {
                peer_id: None,
                error: "refused".into(),
            },
            status::Event::OwnRecordChanged {
                seq: 3,
                enr: "enr:-own".into(),
                addrs: vec!["/ip4/198.51.100.8/udp/9000/quic-v1".parse().unwrap()],
                nat: true,
                reason: "why".into(),
            },
            status::Event::AutonatTested {
                addr: "/ip4/198.51.100.8/tcp/9000".parse().unwrap(),
                server: b,
                reachable: false,
                error: Some("no dial-back".into()),
            },
            status::Event::Introduced { peer_id: a, via: b },
            status::Event::IntroductionAnswered {
                target_node_id: "ef".repeat(32),
                via: b,
                outcome: peerfind_behaviours::intro::Outcome::RateLimited,
                detail: "slow down".into(),
            },
            status::Event::RelayReservation {
                relay: b,
                accepted: false,
                reason: Some("lost".into()),
            },
            status::Event::ConnectionAlive {
                peer_id: a,
                relayed: true,
                rtt: Duration::from_micros(12_900),
            },
            status::Event::ObservedAddressIgnored {
                peer_id: b,
                addr: "/ip4/198.51.100.8/tcp/40123".parse().unwrap(),
                reason: crate::confirm::NotTaken::OtherPort,
            },
        ];
        for case in &cases {
            let w = event(case, at);
            assert_eq!(w.time.unwrap().seconds, 42);
            let ok = match (case, w.kind.unwrap()) {
                (status::Event::RecordLearned { .. }, Kind::RecordLearned(k)) => {
                    k.peer_id == a.to_string() && k.seq == 1 && !k.nat && k.from == b.to_string()
                }
                (status::Event::RecordUpdated { .. }, Kind::RecordUpdated(k)) => {
                    k.seq == 2 && k.nat && k.from == a.to_string()
                }
                (status::Event::NatStatusChanged { .. }, Kind::NatStatusChanged(k)) => {
                    k.from() == pb::NatStatus::Unknown
                        && k.to() == pb::NatStatus::Public
                        && k.reason == "r"
                }
                (status::Event::IntroductionAsked { .. }, Kind::IntroductionAsked(k)) => {
                    k.target == a.to_string() && k.via == b.to_string()
                }
                (status::Event::IntroductionServed { .. }, Kind::IntroductionServed(k)) => {
                    k.requester == a.to_string() && k.target == b.to_string()
                }
                (status::Event::HolePunch { .. }, Kind::HolePunch(k)) => {
                    !k.succeeded && k.error == "timeout"
                }
                (status::Event::ConnectionChanged { .. }, Kind::ConnectionChanged(k)) => {
                    k.connection() == pb::ConnectionState::Direct && k.transport == "tcp"
                }
                (status::Event::ConnectionOpened { .. }, Kind::ConnectionOpened(k)) => {
                    k.peer_id == a.to_string()
                        && k.direction() == pb::Direction::Inbound
                        && k.remote_addr == "/ip4/198.51.100.7/tcp/4001"
                        && !k.relayed
                        && k.bootnode
                }
                (status::Event::DialFailed { .. }, Kind::DialFailed(k)) => {
                    k.peer_id.is_empty() && k.error == "refused"
                }
                (status::Event::OwnRecordChanged { .. }, Kind::OwnRecordChanged(k)) => {
                    k.seq == 3
                        && k.enr == "enr:-own"
                        && k.addrs == ["/ip4/198.51.100.8/udp/9000/quic-v1"]
                        && k.nat
                        && k.reason == "why"
                }
                (status::Event::AutonatTested { .. }, Kind::AutonatTested(k)) => {
                    k.addr == "/ip4/198.51.100.8/tcp/9000"
                        && k.server == b.to_string()
                        && !k.reachable
                        && k.error == "no dial-back"
                }
                (status::Event::Introduced { .. }, Kind::Introduced(k)) => {
                    k.peer_id == a.to_string() && k.via == b.to_string()
                }
                (status::Event::IntroductionAnswered { .. }, Kind::IntroductionAnswered(k)) => {
                    k.target_node_id == "ef".repeat(32)
                        && k.via == b.to_string()
                        && k.outcome() == pb::IntroductionOutcome::RateLimited
                        && k.detail == "slow down"
                }
                (status::Event::RelayReservation { .. }, Kind::RelayReservation(k)) => {
                    k.relay == b.to_string() && !k.accepted && k.reason == "lost"
                }
                (status::Event::ConnectionAlive { .. }, Kind::ConnectionAlive(k)) => {
                    k.peer_id == a.to_string() && k.relayed && k.rtt_ms == 12
                }
                (status::Event::ObservedAddressIgnored { .. }, Kind::ObservedAddressIgnored(k)) => {
                    k.peer_id == b.to_string()
                        && k.addr == "/ip4/198.51.100.8/tcp/40123"
                        && k.reason() == pb::IgnoredBecause::OtherPort
                }
                _ => false,
            };
            assert!(ok, "{case:?}");
        }
        let lag = lagged(17, at);
        assert!(matches!(
            lag.kind,
            Some(Kind::Lagged(pb::Lagged { missed: 17 }))
        ));
    }
}
