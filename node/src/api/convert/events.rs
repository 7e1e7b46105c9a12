//! The node's events ([`crate::status::Event`]) as the API's wire events.

use std::time::SystemTime;

use peerfind_proto::v1 as pb;

use super::{addrs, connection, mapping_state, nat_status};
use crate::status;

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
        E::PortMapping {
            state,
            addr,
            detail,
        } => Kind::PortMappingChanged(pb::PortMappingChanged {
            state: mapping_state(*state).into(),
            addr: addr.as_ref().map(ToString::to_string).unwrap_or_default(),
            detail: detail.clone(),
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
                crate::reach::confirm::NotTaken::CannotBeOurs => pb::IgnoredBecause::CannotBeOurs,
                crate::reach::confirm::NotTaken::OtherPort => pb::IgnoredBecause::OtherPort,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use crate::reach::nat;

    use super::*;
    use crate::api::some_peer_id;

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
                reason: crate::reach::confirm::NotTaken::OtherPort,
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
