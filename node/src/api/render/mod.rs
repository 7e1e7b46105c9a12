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

mod diag;
mod events;
mod terminal;

pub(crate) use diag::{netcheck_json, netcheck_text, round_json, round_line};
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
            "mapping": {"tcp": nat_mapping(nat.tcp_mapping), "quic": nat_mapping(nat.quic_mapping)},
        },
        "port_mapping": s.port_mapping.as_ref().map(|m| json!({
            "state": mapping_state(m.state),
            "detail": m.detail,
            "mapped_addrs": m.mapped_addrs,
            "verified_addrs": m.verified_addrs,
        })),
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
    if let Some(m) = &s.port_mapping {
        rows.push((
            "port mapping",
            format!("{}: {}", mapping_state(m.state), m.detail),
        ));
    }
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
                    "nat_mapping": {"tcp": nat_mapping(p.tcp_mapping), "quic": nat_mapping(p.quic_mapping)},
                    "last_seen": time(p.last_seen.as_ref()),
                    "met": name(pb::Met::try_from(p.met).map(|m| m.as_str_name()), "MET_", p.met),
                    "connection": connection(p.connection),
                    "transport": (!p.transport.is_empty()).then_some(&p.transport),
                    "transports": p.transports,
                    "rtt_ms": p.rtt_ms,
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
        "RTT",
        "LAST SEEN",
        "AGENT",
        "ADDRESSES",
    ];
    let rows: Vec<[String; 10]> = peers
        .iter()
        .map(|p| {
            let conn = match connection(p.connection) {
                c if p.transport.is_empty() => c,
                c => format!("{c} ({})", p.transport),
            };
            let agent = p.identify.as_ref().map(|i| i.agent.as_str());
            let rtt = p
                .rtt_ms
                .map_or_else(|| "-".into(), |ms| format!("{ms:.1} ms"));
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
                    rtt,
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
                rtt,
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

/// A NAT mapping by its short name (`endpoint_independent`, `varies_by_destination`), or
/// none when unknown.
fn nat_mapping(raw: i32) -> Option<String> {
    match pb::NatMapping::try_from(raw) {
        Ok(pb::NatMapping::Unspecified) => None,
        known => Some(name(known.map(|m| m.as_str_name()), "NAT_MAPPING_", raw)),
    }
}

fn mapping_state(raw: i32) -> String {
    name(
        pb::PortMappingState::try_from(raw).map(|s| s.as_str_name()),
        "PORT_MAPPING_STATE_",
        raw,
    )
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
mod tests;
