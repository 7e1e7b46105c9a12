//! What `peerfind watch` prints of each event: one line for people, one JSON object for
//! scripts.

use peerfind_proto::v1 as pb;
use serde_json::{Value, json};

use super::{connection, flag, nat_status, time};

/// `peerfind watch --json`: one object per event.
pub(crate) fn event_json(e: &pb::Event) -> Value {
    use pb::event::Kind;
    let mut v = match &e.kind {
        Some(Kind::RecordLearned(k)) => {
            json!({"kind": "record_learned", "peer_id": k.peer_id, "seq": k.seq, "nat": k.nat})
        }
        Some(Kind::RecordUpdated(k)) => {
            json!({"kind": "record_updated", "peer_id": k.peer_id, "seq": k.seq, "nat": k.nat})
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
        None => json!({"kind": "unknown"}),
    };
    v["time"] = time(e.time.as_ref());
    v
}

/// `peerfind watch`: one line per event.
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
        None => "unknown event (a newer node?)".into(),
    };
    let at = time(e.time.as_ref());
    format!("{}  {what}", at.as_str().unwrap_or("-"))
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
        ];
        let names = [
            "record_learned",
            "nat_status_changed",
            "connection_changed",
            "lagged",
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
}
