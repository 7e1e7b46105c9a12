//! What `peerfind watch` prints of each event: one line for people, one JSON object for
//! scripts.

use peerfind_proto::v1 as pb;
use serde_json::{Value, json};

use super::{connection, escape, flag, mapping_state, name, nat_status, time};

/// `peerfind watch --json`: one object per event.
pub(crate) fn event_json(e: &pb::Event) -> Value {
    use pb::event::Kind;
    let mut v = match &e.kind {
        Some(Kind::RecordLearned(k)) => {
            json!({"kind": "record_learned", "peer_id": k.peer_id, "seq": k.seq, "nat": k.nat, "from": k.from})
        }
        Some(Kind::RecordUpdated(k)) => {
            json!({"kind": "record_updated", "peer_id": k.peer_id, "seq": k.seq, "nat": k.nat, "from": k.from})
        }
        Some(Kind::NatStatusChanged(k)) => json!({
            "kind": "nat_status_changed",
            "from": nat_status(k.from),
            "to": nat_status(k.to),
            "reason": k.reason,
        }),
        Some(Kind::IntroductionAsked(k)) => {
            json!({"kind": "introduction_asked", "target": k.target, "via": k.via})
        }
        Some(Kind::IntroductionServed(k)) => json!({
            "kind": "introduction_served", "requester": k.requester, "target": k.target,
        }),
        Some(Kind::HolePunch(k)) => json!({
            "kind": "hole_punch",
            "peer_id": k.peer_id,
            "succeeded": k.succeeded,
            "error": (!k.error.is_empty()).then_some(&k.error),
        }),
        Some(Kind::ConnectionChanged(k)) => json!({
            "kind": "connection_changed",
            "peer_id": k.peer_id,
            "connection": connection(k.connection),
            "transport": (!k.transport.is_empty()).then_some(&k.transport),
        }),
        Some(Kind::Lagged(k)) => json!({"kind": "lagged", "missed": k.missed}),
        Some(Kind::ConnectionOpened(k)) => json!({
            "kind": "connection_opened",
            "peer_id": k.peer_id,
            "direction": direction(k.direction),
            "remote_addr": k.remote_addr,
            "relayed": k.relayed,
            "bootnode": k.bootnode,
        }),
        Some(Kind::DialFailed(k)) => json!({
            "kind": "dial_failed",
            "peer_id": (!k.peer_id.is_empty()).then_some(&k.peer_id),
            "error": k.error,
        }),
        Some(Kind::OwnRecordChanged(k)) => json!({
            "kind": "own_record_changed",
            "seq": k.seq,
            "enr": k.enr,
            "addrs": k.addrs,
            "nat": k.nat,
            "reason": k.reason,
        }),
        Some(Kind::PortMappingChanged(k)) => json!({
            "kind": "port_mapping_changed",
            "state": mapping_state(k.state),
            "addr": (!k.addr.is_empty()).then_some(&k.addr),
            "detail": k.detail,
        }),
        Some(Kind::AutonatTested(k)) => json!({
            "kind": "autonat_tested",
            "addr": k.addr,
            "server": k.server,
            "reachable": k.reachable,
            "error": (!k.error.is_empty()).then_some(&k.error),
        }),
        Some(Kind::Introduced(k)) => {
            json!({"kind": "introduced", "peer_id": k.peer_id, "via": k.via})
        }
        Some(Kind::IntroductionAnswered(k)) => json!({
            "kind": "introduction_answered",
            "target_node_id": k.target_node_id,
            "via": k.via,
            "outcome": outcome(k.outcome),
            "detail": (!k.detail.is_empty()).then_some(&k.detail),
        }),
        Some(Kind::RelayReservation(k)) => json!({
            "kind": "relay_reservation",
            "relay": k.relay,
            "accepted": k.accepted,
            "reason": (!k.reason.is_empty()).then_some(&k.reason),
        }),
        Some(Kind::ConnectionAlive(k)) => json!({
            "kind": "connection_alive",
            "peer_id": k.peer_id,
            "relayed": k.relayed,
            "rtt_ms": k.rtt_ms,
        }),
        Some(Kind::ObservedAddressIgnored(k)) => json!({
            "kind": "observed_address_ignored",
            "peer_id": k.peer_id,
            "addr": k.addr,
            "reason": ignored_because(k.reason),
        }),
        None => json!({"kind": "unknown"}),
    };
    v["time"] = time(e.time.as_ref());
    v
}

/// `peerfind watch`: one line per event, escaped for the terminal (an introduction's detail,
/// a dial's error, a relay's reason are the remote side's words).
pub(crate) fn event_line(e: &pb::Event) -> String {
    use pb::event::Kind;
    let what = match &e.kind {
        Some(Kind::RecordLearned(k)) => {
            format!(
                "record learned    {} seq {}{}",
                k.peer_id,
                k.seq,
                flag(k.nat)
            )
        }
        Some(Kind::RecordUpdated(k)) => {
            format!(
                "record updated    {} seq {}{}",
                k.peer_id,
                k.seq,
                flag(k.nat)
            )
        }
        Some(Kind::NatStatusChanged(k)) => format!(
            "NAT status        {} -> {}: {}",
            nat_status(k.from),
            nat_status(k.to),
            k.reason
        ),
        Some(Kind::IntroductionAsked(k)) => {
            format!("introduction      asked for {} via {}", k.target, k.via)
        }
        Some(Kind::IntroductionServed(k)) => {
            format!("introduction      served {} to {}", k.requester, k.target)
        }
        Some(Kind::HolePunch(k)) if k.succeeded => {
            format!("hole punch        {} succeeded", k.peer_id)
        }
        Some(Kind::HolePunch(k)) => format!("hole punch        {} failed: {}", k.peer_id, k.error),
        Some(Kind::ConnectionChanged(k)) => {
            let mut state = connection(k.connection);
            if !k.transport.is_empty() {
                state = format!("{state} ({})", k.transport);
            }
            format!("connection        {} {state}", k.peer_id)
        }
        Some(Kind::Lagged(k)) => format!("lagged            missed {} events", k.missed),
        Some(Kind::ConnectionOpened(k)) => format!(
            "connected         {} {} {}{}{}",
            k.peer_id,
            direction(k.direction),
            k.remote_addr,
            if k.relayed { " relayed" } else { "" },
            if k.bootnode { " bootnode" } else { "" },
        ),
        Some(Kind::DialFailed(k)) => {
            let peer = if k.peer_id.is_empty() {
                "-"
            } else {
                &k.peer_id
            };
            format!("dial failed       {peer}: {}", k.error)
        }
        Some(Kind::OwnRecordChanged(k)) => format!(
            "own record        seq {} [{}]{}: {}",
            k.seq,
            k.addrs.join(", "),
            flag(k.nat),
            k.reason
        ),
        Some(Kind::PortMappingChanged(k)) => {
            format!("port mapping      {}: {}", mapping_state(k.state), k.detail)
        }
        Some(Kind::AutonatTested(k)) if k.reachable => {
            format!(
                "AutoNAT test      {} reachable (server {})",
                k.addr, k.server
            )
        }
        Some(Kind::AutonatTested(k)) => format!(
            "AutoNAT test      {} unreachable (server {}): {}",
            k.addr, k.server, k.error
        ),
        Some(Kind::Introduced(k)) => {
            format!(
                "introduced        to {} via {}; dialing it",
                k.peer_id, k.via
            )
        }
        Some(Kind::IntroductionAnswered(k)) => {
            let mut line = format!(
                "introduction      answered for {} via {}: {}",
                k.target_node_id,
                k.via,
                outcome(k.outcome)
            );
            if !k.detail.is_empty() {
                line = format!("{line} ({})", k.detail);
            }
            line
        }
        Some(Kind::RelayReservation(k)) if k.accepted => {
            format!("relay slot        accepted by {}", k.relay)
        }
        Some(Kind::RelayReservation(k)) => {
            format!("relay slot        lost on {}: {}", k.relay, k.reason)
        }
        Some(Kind::ConnectionAlive(k)) => format!(
            "alive             {}{} rtt {} ms",
            k.peer_id,
            if k.relayed { " relayed" } else { "" },
            k.rtt_ms
        ),
        Some(Kind::ObservedAddressIgnored(k)) => format!(
            "observed address  {} from {} not taken: {}",
            k.addr,
            k.peer_id,
            ignored_because(k.reason)
        ),
        None => "unknown event (a newer node?)".into(),
    };
    let at = time(e.time.as_ref());
    format!("{}  {}", at.as_str().unwrap_or("-"), escape(&what))
}

/// A connection's direction: "inbound" or "outbound" (its number when unknown).
fn direction(raw: i32) -> String {
    name(
        pb::Direction::try_from(raw).map(|d| d.as_str_name()),
        "DIRECTION_",
        raw,
    )
}

/// An introduction's outcome: "dialing", "rate_limited", … (its number when unknown).
fn outcome(raw: i32) -> String {
    name(
        pb::IntroductionOutcome::try_from(raw).map(|o| o.as_str_name()),
        "INTRODUCTION_OUTCOME_",
        raw,
    )
}

/// Why an observed address was not taken: "cannot_be_ours", "other_port" (its number when
/// unknown).
fn ignored_because(raw: i32) -> String {
    name(
        pb::IgnoredBecause::try_from(raw).map(|r| r.as_str_name()),
        "IGNORED_BECAUSE_",
        raw,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn at(secs: u64) -> Option<prost_types::Timestamp> {
        Some((SystemTime::UNIX_EPOCH + Duration::from_secs(secs)).into())
    }

    #[test]
    fn every_event_prints_as_one_line_and_one_json_object_with_its_kind() {
        use pb::event::Kind;
        let kinds = [
            Kind::RecordLearned(pb::RecordLearned {
                peer_id: "a".into(),
                seq: 1,
                nat: true,
                from: "b".into(),
            }),
            Kind::NatStatusChanged(pb::NatStatusChanged {
                from: pb::NatStatus::Unknown.into(),
                to: pb::NatStatus::Private.into(),
                reason: "AutoNAT".into(),
            }),
            Kind::ConnectionChanged(pb::ConnectionChanged {
                peer_id: "a".into(),
                connection: pb::ConnectionState::Relayed.into(),
                transport: String::new(),
            }),
            Kind::Lagged(pb::Lagged { missed: 3 }),
            Kind::ConnectionOpened(pb::ConnectionOpened {
                peer_id: "a".into(),
                direction: pb::Direction::Outbound.into(),
                remote_addr: "/ip4/198.51.100.7/tcp/4001".into(),
                relayed: false,
                bootnode: false,
            }),
            Kind::DialFailed(pb::DialFailed {
                peer_id: String::new(),
                error: "refused".into(),
            }),
            Kind::OwnRecordChanged(pb::OwnRecordChanged {
                seq: 2,
                enr: "enr:-x".into(),
                addrs: vec!["/ip4/198.51.100.8/tcp/9000".into()],
                nat: false,
                reason: "address confirmed".into(),
            }),
            Kind::AutonatTested(pb::AutonatTested {
                addr: "/ip4/198.51.100.8/tcp/9000".into(),
                server: "s".into(),
                reachable: true,
                error: String::new(),
            }),
            Kind::Introduced(pb::Introduced {
                peer_id: "a".into(),
                via: "b".into(),
            }),
            Kind::IntroductionAnswered(pb::IntroductionAnswered {
                target_node_id: "ef".repeat(32),
                via: "b".into(),
                outcome: pb::IntroductionOutcome::Dialing.into(),
                detail: String::new(),
            }),
            Kind::RelayReservation(pb::RelayReservation {
                relay: "b".into(),
                accepted: true,
                reason: String::new(),
            }),
            Kind::ConnectionAlive(pb::ConnectionAlive {
                peer_id: "a".into(),
                relayed: true,
                rtt_ms: 4,
            }),
            Kind::ObservedAddressIgnored(pb::ObservedAddressIgnored {
                peer_id: "a".into(),
                addr: "/ip4/198.51.100.8/tcp/40123".into(),
                reason: pb::IgnoredBecause::OtherPort.into(),
            }),
        ];
        let names = [
            "record_learned",
            "nat_status_changed",
            "connection_changed",
            "lagged",
            "connection_opened",
            "dial_failed",
            "own_record_changed",
            "autonat_tested",
            "introduced",
            "introduction_answered",
            "relay_reservation",
            "connection_alive",
            "observed_address_ignored",
        ];
        for (kind, want) in kinds.into_iter().zip(names) {
            let e = pb::Event {
                time: at(0),
                kind: Some(kind),
            };
            let line = event_line(&e);
            assert!(!line.contains('\n') && line.starts_with("1970-"), "{line}");
            let v = event_json(&e);
            assert_eq!(v["kind"], want);
            assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
            assert!(!v.to_string().contains('\n'));
        }
        let nat = event_json(&pb::Event {
            time: None,
            kind: Some(Kind::NatStatusChanged(pb::NatStatusChanged {
                from: pb::NatStatus::Unknown.into(),
                to: pb::NatStatus::Private.into(),
                reason: "r".into(),
            })),
        });
        assert_eq!(
            (nat["from"].as_str(), nat["to"].as_str()),
            (Some("unknown"), Some("private"))
        );
    }

    #[test]
    fn an_introduction_detail_or_a_reason_from_a_peer_prints_escaped_on_one_line() {
        use pb::event::Kind;
        let detail = "refused\n1970-01-01T00:00:00.000Z  record learned fake \x1b[2J\x07";
        let kinds = [
            Kind::IntroductionAnswered(pb::IntroductionAnswered {
                outcome: pb::IntroductionOutcome::TargetUnreachable.into(),
                detail: detail.into(),
                ..Default::default()
            }),
            Kind::RelayReservation(pb::RelayReservation {
                reason: detail.into(),
                ..Default::default()
            }),
            Kind::DialFailed(pb::DialFailed {
                error: detail.into(),
                ..Default::default()
            }),
        ];
        for kind in kinds {
            let e = pb::Event {
                time: at(0),
                kind: Some(kind),
            };
            let line = event_line(&e);
            assert!(!line.chars().any(char::is_control), "{line:?}");
            assert!(line.contains(r"refused\n1970-"), "{line}");
            assert!(line.contains(r"fake \u{1b}[2J\u{7}"), "{line}");
            assert!(event_json(&e).to_string().contains(r"\u001b[2J"));
        }
    }

    #[test]
    fn enum_fields_print_as_lower_case_names() {
        use pb::event::Kind;
        let opened = event_json(&pb::Event {
            time: None,
            kind: Some(Kind::ConnectionOpened(pb::ConnectionOpened {
                peer_id: "a".into(),
                direction: pb::Direction::Inbound.into(),
                remote_addr: "/ip4/198.51.100.7/udp/4001/quic-v1".into(),
                relayed: true,
                bootnode: false,
            })),
        });
        assert_eq!(opened["direction"], "inbound");
        assert_eq!(opened["remote_addr"], "/ip4/198.51.100.7/udp/4001/quic-v1");
        let answered = event_json(&pb::Event {
            time: None,
            kind: Some(Kind::IntroductionAnswered(pb::IntroductionAnswered {
                target_node_id: "ef".repeat(32),
                via: "b".into(),
                outcome: pb::IntroductionOutcome::TargetNotConnected.into(),
                detail: String::new(),
            })),
        });
        assert_eq!(answered["outcome"], "target_not_connected");
        assert_eq!(answered["detail"], Value::Null);
        let unknown = event_json(&pb::Event {
            time: None,
            kind: Some(Kind::ConnectionOpened(pb::ConnectionOpened {
                direction: 9,
                ..Default::default()
            })),
        });
        assert_eq!(unknown["direction"], "9");
        let ignored = event_json(&pb::Event {
            time: None,
            kind: Some(Kind::ObservedAddressIgnored(pb::ObservedAddressIgnored {
                reason: pb::IgnoredBecause::OtherPort.into(),
                ..Default::default()
            })),
        });
        assert_eq!(ignored["reason"], "other_port");
    }
}
