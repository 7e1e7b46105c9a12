//! What the command line prints of an API answer: aligned text for people, JSON for scripts.
//!
//! It prints what the node said, as the node said it: JSON keys are the `.proto` field names,
//! enum values their names without the type prefix, lowercased (`NAT_STATUS_PRIVATE` →
//! `"private"`), times RFC 3339 in UTC. A value this version does not know (a newer node) is
//! printed as its number rather than refused.
//!
//! The text for people goes through [`terminal::escape`] cell by cell, since much of it is
//! what remote peers chose (agents, protocol names, reasons); JSON is escaped by serde.

use std::fmt::Write as _;
use std::time::SystemTime;

use peerfind_proto::v1 as pb;
use serde_json::{Value, json};

mod events;
mod terminal;

pub(crate) use events::{event_json, event_line};
pub(crate) use terminal::escape;

/// `peerfind status --json`.
pub(crate) fn status_json(s: &pb::NodeStatus) -> Value {
    let nat = s.nat.clone().unwrap_or_default();
    let counts = s.counts.clone().unwrap_or_default();
    json!({
        "node_id": s.node_id,
        "peer_id": s.peer_id,
        "enr": s.enr,
        "seq": s.seq,
        "listen_addrs": s.listen_addrs,
        "observed_addrs": s.observed_addrs,
        "external_addrs": s.external_addrs,
        "metrics_addr": (!s.metrics_addr.is_empty()).then_some(&s.metrics_addr),
        "nat": {
            "status": nat_status(nat.status),
            "reason": nat.reason,
            "since": time(nat.since.as_ref()),
        },
        "bootnodes": s.bootnodes.iter().map(|b| json!({
            "peer_id": b.peer_id,
            "addrs": b.addrs,
            "connected": b.connected,
            "transports": b.transports,
            "agent": (!b.agent.is_empty()).then_some(&b.agent),
            "lacks": b.lacks,
            "relay_reserved": b.relay_reserved,
        })).collect::<Vec<_>>(),
        "counts": {
            "records": counts.records,
            "direct_connections": counts.direct_connections,
            "relayed_connections": counts.relayed_connections,
            "chosen_peers": counts.chosen_peers,
            "introductions_asked": counts.introductions_asked,
            "introductions_served": counts.introductions_served,
            "hole_punches_tried": counts.hole_punches_tried,
            "hole_punches_succeeded": counts.hole_punches_succeeded,
            "hole_punches_failed": counts.hole_punches_failed,
            "direct_dials": counts.direct_dials,
            "circuit_dials": counts.circuit_dials,
            "inbound_denied_per_subnet": counts.inbound_denied_per_subnet,
            "inputs_rejected": counts.inputs_rejected.iter().collect::<std::collections::BTreeMap<_, _>>(),
        },
    })
}

/// `peerfind status`.
pub(crate) fn status_table(s: &pb::NodeStatus) -> String {
    let nat = s.nat.clone().unwrap_or_default();
    let c = s.counts.clone().unwrap_or_default();
    let mut rows: Vec<(&str, String)> = vec![
        ("node id", s.node_id.clone()),
        ("peer id", s.peer_id.clone()),
        ("record", format!("seq {}  {}", s.seq, s.enr)),
        (
            "nat",
            format!(
                "{} since {}: {}",
                nat_status(nat.status),
                time(nat.since.as_ref()).as_str().unwrap_or("-"),
                nat.reason
            ),
        ),
        ("listening", list(&s.listen_addrs)),
        ("observed", list(&s.observed_addrs)),
        ("external", list(&s.external_addrs)),
    ];
    if !s.metrics_addr.is_empty() {
        rows.push(("metrics", format!("http://{}/metrics", s.metrics_addr)));
    }
    if s.bootnodes.is_empty() {
        rows.push(("bootnodes", "-".into()));
    }
    for b in &s.bootnodes {
        let state = if b.connected {
            "connected"
        } else {
            "not connected"
        };
        let mut row = format!("{} {state}", b.peer_id);
        if !b.agent.is_empty() {
            let _ = write!(row, " ({})", b.agent);
        }
        if b.relay_reserved {
            row.push_str("; relay slot held");
        }
        if !b.lacks.is_empty() {
            let _ = write!(row, "; lacks: {}", b.lacks.join(", "));
        }
        rows.push(("bootnode", row));
    }
    rows.extend([
        ("records", c.records.to_string()),
        (
            "connections",
            format!(
                "{} direct, {} relayed",
                c.direct_connections, c.relayed_connections
            ),
        ),
        (
            "chosen peers",
            format!("{} (dialed by us; --max-peers caps them)", c.chosen_peers),
        ),
        (
            "introductions",
            format!(
                "{} asked, {} served",
                c.introductions_asked, c.introductions_served
            ),
        ),
        (
            "dials",
            format!(
                "{} direct, {} through a relay",
                c.direct_dials, c.circuit_dials
            ),
        ),
        (
            "hole punches",
            format!(
                "{} tried, {} succeeded, {} failed",
                c.hole_punches_tried, c.hole_punches_succeeded, c.hole_punches_failed
            ),
        ),
    ]);
    let mut rejected: Vec<_> = c.inputs_rejected.iter().collect();
    rejected.sort();
    let rejected: Vec<String> = rejected.iter().map(|(k, v)| format!("{k} {v}")).collect();
    rows.push(("rejected inputs", list(&rejected)));
    rows.push((
        "inbound refused",
        format!("{} (subnet full)", c.inbound_denied_per_subnet),
    ));

    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter().fold(String::new(), |mut out, (k, v)| {
        let _ = writeln!(out, "{k:<width$}  {}", escape(v));
        out
    })
}

/// `peerfind peers --json`.
pub(crate) fn peers_json(peers: &[pb::Peer]) -> Value {
    Value::Array(
        peers
            .iter()
            .map(|p| {
                json!({
                    "node_id": p.node_id,
                    "peer_id": p.peer_id,
                    "enr": p.enr,
                    "seq": p.seq,
                    "addrs": p.addrs,
                    "nat": p.nat,
                    "last_seen": time(p.last_seen.as_ref()),
                    "met": name(pb::Met::try_from(p.met).map(|m| m.as_str_name()), "MET_", p.met),
                    "connection": connection(p.connection),
                    "transport": (!p.transport.is_empty()).then_some(&p.transport),
                    "transports": p.transports,
                    "has_record": p.has_record,
                    "identify": p.identify.as_ref().map(|i| json!({
                        "agent": i.agent,
                        "protocol_version": i.protocol_version,
                        "protocols": i.protocols,
                        "listen_addrs": i.listen_addrs,
                        "observed_addr": (!i.observed_addr.is_empty()).then_some(&i.observed_addr),
                    })),
                })
            })
            .collect(),
    )
}

/// `peerfind peers`: one row per peer; `now` dates "last seen".
pub(crate) fn peers_table(peers: &[pb::Peer], now: SystemTime) -> String {
    if peers.is_empty() {
        return "no known peers\n".into();
    }
    let header = [
        "PEER ID",
        "NODE ID",
        "SEQ",
        "NAT",
        "MET",
        "CONNECTION",
        "LAST SEEN",
        "AGENT",
        "ADDRESSES",
    ];
    let rows: Vec<[String; 9]> = peers
        .iter()
        .map(|p| {
            let conn = match connection(p.connection) {
                c if p.transport.is_empty() => c,
                c => format!("{c} ({})", p.transport),
            };
            let agent = p.identify.as_ref().map(|i| i.agent.as_str());
            if !p.has_record {
                // A peer without a record: what its identify says is all there is.
                let listen = p.identify.as_ref().map(|i| i.listen_addrs.clone());
                return [
                    p.peer_id.clone(),
                    "(no record)".into(),
                    "-".into(),
                    "-".into(),
                    "connected".into(),
                    conn,
                    "-".into(),
                    agent.unwrap_or("-").into(),
                    list(&listen.unwrap_or_default()),
                ];
            }
            [
                p.peer_id.clone(),
                // The first 8 bytes tell peers apart; `--json` has the whole id.
                format!("{}…", p.node_id.get(..16).unwrap_or(&p.node_id)),
                p.seq.to_string(),
                if p.nat { "yes" } else { "no" }.into(),
                name(
                    pb::Met::try_from(p.met).map(|m| m.as_str_name()),
                    "MET_",
                    p.met,
                ),
                conn,
                ago(p.last_seen.as_ref(), now),
                agent.unwrap_or("-").into(),
                list(&p.addrs),
            ]
        })
        .map(|row| row.map(|cell| escape(&cell).into_owned()))
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let last = cells.len() - 1;
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == last {
                let _ = writeln!(out, "{cell}");
            } else {
                let pad = w.saturating_sub(cell.chars().count());
                let _ = write!(out, "{cell}{:pad$}  ", "");
            }
        }
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

fn flag(nat: bool) -> &'static str {
    if nat { " nat" } else { "" }
}

fn nat_status(raw: i32) -> String {
    match pb::NatStatus::try_from(raw) {
        // The .proto says: read "unspecified" as unknown.
        Ok(pb::NatStatus::Unspecified) => "unknown".into(),
        known => name(known.map(|s| s.as_str_name()), "NAT_STATUS_", raw),
    }
}

fn connection(raw: i32) -> String {
    name(
        pb::ConnectionState::try_from(raw).map(|c| c.as_str_name()),
        "CONNECTION_STATE_",
        raw,
    )
}

/// An enum value's name without `prefix`, lowercased; its number when unknown.
fn name<E>(known: Result<&'static str, E>, prefix: &str, raw: i32) -> String {
    match known {
        Ok(n) => n.strip_prefix(prefix).unwrap_or(n).to_ascii_lowercase(),
        Err(_) => raw.to_string(),
    }
}

/// A timestamp as RFC 3339 (UTC, milliseconds); null when absent or out of range.
fn time(t: Option<&prost_types::Timestamp>) -> Value {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .map(|t| Value::String(humantime::format_rfc3339_millis(t).to_string()))
        .unwrap_or(Value::Null)
}

/// How long before `now`, in whole seconds.
fn ago(t: Option<&prost_types::Timestamp>, now: SystemTime) -> String {
    let Some(t) = t.and_then(|t| SystemTime::try_from(*t).ok()) else {
        return "-".into();
    };
    let secs = now.duration_since(t).unwrap_or_default().as_secs();
    format!(
        "{} ago",
        humantime::format_duration(std::time::Duration::from_secs(secs))
    )
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> Option<prost_types::Timestamp> {
        Some((SystemTime::UNIX_EPOCH + Duration::from_secs(secs)).into())
    }

    fn sample_peer() -> pb::Peer {
        pb::Peer {
            node_id: "ab".repeat(32),
            peer_id: "16Uiu2HAmAlice".into(),
            enr: "enr:-alice".into(),
            seq: 3,
            addrs: vec!["/ip4/127.0.0.1/tcp/4000/p2p/16Uiu2HAmAlice".into()],
            nat: false,
            last_seen: at(1_700_000_000),
            met: pb::Met::Gossip.into(),
            connection: pb::ConnectionState::Direct.into(),
            transport: "tcp".into(),
            transports: vec!["tcp".into()],
            has_record: true,
            identify: None,
        }
    }

    #[test]
    fn status_json_has_the_own_record_ids_and_nat_status() {
        let s = pb::NodeStatus {
            node_id: "cd".repeat(32),
            peer_id: "16Uiu2HAmSelf".into(),
            enr: "enr:-self".into(),
            seq: 5,
            metrics_addr: "127.0.0.1:9464".into(),
            nat: Some(pb::Nat {
                status: pb::NatStatus::Private.into(),
                reason: "AutoNAT server x could not reach us at y".into(),
                since: at(0),
            }),
            counts: Some(pb::Counts {
                records: 2,
                inputs_rejected: [("stale".to_owned(), 1)].into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = status_json(&s);
        assert_eq!(v["enr"], "enr:-self");
        assert_eq!(v["node_id"], "cd".repeat(32));
        assert_eq!(v["peer_id"], "16Uiu2HAmSelf");
        assert_eq!(v["seq"], 5);
        assert_eq!(v["metrics_addr"], "127.0.0.1:9464");
        assert_eq!(v["nat"]["status"], "private");
        assert_eq!(v["nat"]["since"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["counts"]["records"], 2);
        assert_eq!(v["counts"]["inputs_rejected"]["stale"], 1);
        let table = status_table(&s);
        assert!(
            table.contains("private since 1970-01-01T00:00:00.000Z: AutoNAT"),
            "{table}"
        );
        assert!(table.contains("stale 1"), "{table}");
        assert!(table.contains("http://127.0.0.1:9464/metrics"), "{table}");
    }

    #[test]
    fn a_missing_nat_status_reads_as_unknown() {
        let v = status_json(&pb::NodeStatus::default());
        assert_eq!(v["metrics_addr"], Value::Null, "no metrics endpoint");
        assert_eq!(v["nat"]["status"], "unknown");
        assert_eq!(v["nat"]["since"], Value::Null);
    }

    #[test]
    fn peers_json_names_the_connection_state_and_transport() {
        let mut p = sample_peer();
        let v = peers_json(std::slice::from_ref(&p));
        assert_eq!(v[0]["connection"], "direct");
        assert_eq!(v[0]["transport"], "tcp");
        assert_eq!(v[0]["met"], "gossip");
        assert_eq!(v[0]["enr"], "enr:-alice");
        assert_eq!(v[0]["last_seen"], "2023-11-14T22:13:20.000Z");
        p.connection = pb::ConnectionState::None.into();
        p.transport.clear();
        let v = peers_json(&[p]);
        assert_eq!(v[0]["connection"], "none");
        assert_eq!(v[0]["transport"], Value::Null);
    }

    #[test]
    fn an_enum_value_this_version_does_not_know_is_printed_as_its_number() {
        let mut p = sample_peer();
        p.connection = 42;
        assert_eq!(peers_json(&[p])[0]["connection"], "42");
    }

    #[test]
    fn a_peer_without_a_record_shows_what_its_identify_said() {
        let mut p = sample_peer();
        p.has_record = false;
        p.node_id.clear();
        p.enr.clear();
        p.addrs.clear();
        p.met = pb::Met::Connected.into();
        p.identify = Some(pb::PeerIdentify {
            agent: "js-libp2p/3.3.11".into(),
            protocol_version: "ipfs/0.1.0".into(),
            protocols: vec!["/ipfs/ping/1.0.0".into()],
            listen_addrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            observed_addr: "/ip4/127.0.0.1/tcp/9000".into(),
        });
        let v = peers_json(std::slice::from_ref(&p));
        assert_eq!(v[0]["has_record"], false);
        assert_eq!(v[0]["met"], "connected");
        assert_eq!(v[0]["identify"]["agent"], "js-libp2p/3.3.11");
        assert_eq!(v[0]["identify"]["observed_addr"], "/ip4/127.0.0.1/tcp/9000");
        let table = peers_table(&[p], SystemTime::UNIX_EPOCH);
        assert!(
            table.contains("(no record)") && table.contains("js-libp2p/3.3.11"),
            "{table}"
        );
        assert!(table.contains("/ip4/127.0.0.1/tcp/4001"), "{table}");
    }

    /// What a hostile peer puts in its identify agent: clear the screen, retitle the window.
    const HOSTILE: &str = "evil/1.0 \x1b[2J\x1b]0;pwned\x07";

    fn has_raw_controls(text: &str) -> bool {
        text.chars().any(|c| c.is_control() && c != '\n')
    }

    #[test]
    fn what_peers_chose_reaches_the_tables_escaped_and_the_json_as_sent() {
        let mut p = sample_peer();
        p.has_record = false;
        p.identify = Some(pb::PeerIdentify {
            agent: HOSTILE.into(),
            protocol_version: "/x/\u{9b}1A".into(),
            listen_addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
            ..Default::default()
        });
        let table = peers_table(std::slice::from_ref(&p), SystemTime::UNIX_EPOCH);
        assert!(!has_raw_controls(&table), "{table:?}");
        assert!(
            table.contains(r"evil/1.0 \u{1b}[2J\u{1b}]0;pwned\u{7}"),
            "{table}"
        );
        assert_eq!(peers_json(&[p])[0]["identify"]["agent"], HOSTILE);

        let s = pb::NodeStatus {
            nat: Some(pb::Nat {
                reason: "dial-back failed: \x1b[31mred".into(),
                ..Default::default()
            }),
            bootnodes: vec![pb::Bootnode {
                peer_id: "16Uiu2HAmBoot".into(),
                agent: HOSTILE.into(),
                lacks: vec!["no relay\r\nfake line".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let table = status_table(&s);
        assert!(!has_raw_controls(&table), "{table:?}");
        assert!(table.contains(r"(evil/1.0 \u{1b}[2J"), "{table}");
        assert!(table.contains(r"no relay\r\nfake line"), "{table}");
        assert_eq!(status_json(&s)["bootnodes"][0]["agent"], HOSTILE);
    }

    #[test]
    fn the_status_table_shows_the_refused_inbound_connections_and_the_chosen_peers() {
        let s = pb::NodeStatus {
            counts: Some(pb::Counts {
                inbound_denied_per_subnet: 12,
                chosen_peers: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        let table = status_table(&s);
        assert!(table.contains("12 (subnet full)"), "{table}");
        assert!(table.contains("2 (dialed by us"), "{table}");
        assert_eq!(status_json(&s)["counts"]["inbound_denied_per_subnet"], 12);
        assert_eq!(status_json(&s)["counts"]["chosen_peers"], 2);
    }

    #[test]
    fn the_peers_table_aligns_its_columns() {
        let mut other = sample_peer();
        other.peer_id = "16Uiu2HAmBobWithALongerId".into();
        let table = peers_table(
            &[sample_peer(), other],
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_012),
        );
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        let column = |l: &str| l.find("NODE ID").or_else(|| l.find("abab"));
        assert_eq!(column(lines[0]), column(lines[1]), "{table}");
        assert_eq!(column(lines[1]), column(lines[2]), "{table}");
        assert!(
            lines[1].contains("direct (tcp)") && lines[1].contains("12s ago"),
            "{table}"
        );
        assert_eq!(peers_table(&[], SystemTime::now()), "no known peers\n");
    }
}
