//! `peerfind ping` and `peerfind netcheck` printed: a line per round, a short report.
//! Everything a node or a peer chose (addresses, errors) is escaped for the terminal.

use std::fmt::Write as _;

use peerfind_proto::v1 as pb;
use serde_json::{Value, json};

use super::{escape, name, nat_status};

fn path(raw: i32) -> String {
    name(
        pb::PingPath::try_from(raw).map(|p| p.as_str_name()),
        "PING_PATH_",
        raw,
    )
}

fn mapping(raw: i32) -> String {
    name(
        pb::Mapping::try_from(raw).map(|m| m.as_str_name()),
        "MAPPING_",
        raw,
    )
}

/// One round for people: `seq 3: pong via relay … (tcp) in 162.4 ms`.
pub(crate) fn round_line(peer: &str, r: &pb::PingRound) -> String {
    let over = match pb::PingPath::try_from(r.path) {
        Ok(pb::PingPath::Direct) => {
            format!("direct over {} {}", r.transport, escape(&r.remote_addr))
        }
        Ok(pb::PingPath::Relayed) => {
            format!(
                "relayed ({} to the relay) {}",
                r.transport,
                escape(&r.remote_addr)
            )
        }
        _ => "no path".into(),
    };
    match r.rtt_ms {
        Some(ms) => format!("seq {}: pong from {peer} {over} in {ms:.1} ms", r.seq),
        None => format!(
            "seq {}: no pong from {peer} {over}: {}",
            r.seq,
            escape(&r.error)
        ),
    }
}

/// One round for scripts: one object per line.
pub(crate) fn round_json(r: &pb::PingRound) -> Value {
    json!({
        "seq": r.seq,
        "path": path(r.path),
        "transport": r.transport,
        "remote_addr": r.remote_addr,
        "rtt_ms": r.rtt_ms,
        "error": r.error,
    })
}

/// What a mapping means, in words.
fn mapping_words(raw: i32) -> &'static str {
    match pb::Mapping::try_from(raw) {
        Ok(pb::Mapping::EndpointIndependent) => {
            "endpoint independent (every bootnode sees the same address: hole punching works)"
        }
        Ok(pb::Mapping::VariesByDestination) => {
            "varies by destination (a new port per peer: peers reach this node only by relay)"
        }
        _ => "unknown (needs reports from two bootnodes)",
    }
}

/// The netcheck report for people.
pub(crate) fn netcheck_text(n: &pb::NetcheckResponse) -> String {
    let mut out = String::new();
    for t in &n.transports {
        let name = if t.transport == "quic" {
            "UDP (QUIC)"
        } else {
            "TCP"
        };
        let _ = writeln!(out, "{name}:");
        let _ = writeln!(
            out,
            "  out:      {} bootnode(s) reached",
            t.bootnodes_reached
        );
        let _ = writeln!(out, "  mapping:  {}", mapping_words(t.mapping));
        if !t.mapped.is_empty() {
            let seen: Vec<_> = t.mapped.iter().map(|m| escape(m).into_owned()).collect();
            let _ = writeln!(
                out,
                "  seen at:  {} ({} report(s))",
                seen.join(", "),
                t.reports
            );
        }
        let inbound = if t.reachable_addrs.is_empty() {
            "no address confirmed reachable".to_owned()
        } else {
            t.reachable_addrs
                .iter()
                .map(|a| escape(a).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "  in:       {inbound}");
    }
    if let Some(nat) = &n.nat {
        let _ = writeln!(
            out,
            "NAT: {} ({})",
            nat_status(nat.status),
            escape(&nat.reason)
        );
    }
    for r in &n.reports {
        let _ = writeln!(
            out,
            "  bootnode {} sees {} ({})",
            r.peer_id,
            escape(&r.observed_addr),
            r.transport
        );
    }
    out
}

/// The netcheck report for scripts.
pub(crate) fn netcheck_json(n: &pb::NetcheckResponse) -> Value {
    json!({
        "transports": n.transports.iter().map(|t| json!({
            "transport": t.transport,
            "bootnodes_reached": t.bootnodes_reached,
            "mapping": mapping(t.mapping),
            "mapped": t.mapped,
            "reports": t.reports,
            "reachable_addrs": t.reachable_addrs,
        })).collect::<Vec<_>>(),
        "nat": n.nat.as_ref().map(|nat| json!({"status": nat_status(nat.status), "reason": nat.reason})),
        "reports": n.reports.iter().map(|r| json!({
            "peer_id": r.peer_id,
            "transport": r.transport,
            "observed_addr": r.observed_addr,
        })).collect::<Vec<_>>(),
    })
}
