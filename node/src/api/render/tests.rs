#![allow(clippy::unwrap_used)]

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
        rtt_ms: Some(12.5),
        has_record: true,
        identify: None,
        tcp_mapping: pb::NatMapping::Unspecified.into(),
        quic_mapping: pb::NatMapping::EndpointIndependent.into(),
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
            tcp_mapping: pb::NatMapping::Unspecified.into(),
            quic_mapping: pb::NatMapping::VariesByDestination.into(),
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
    assert_eq!(v["nat"]["mapping"]["tcp"], Value::Null, "unknown");
    assert_eq!(v["nat"]["mapping"]["quic"], "varies_by_destination");
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
    assert_eq!(v[0]["rtt_ms"], 12.5);
    assert_eq!(v[0]["nat_mapping"]["quic"], "endpoint_independent");
    assert_eq!(v[0]["nat_mapping"]["tcp"], Value::Null);
    let table = peers_table(std::slice::from_ref(&p), SystemTime::UNIX_EPOCH);
    assert!(
        table.contains("RTT") && table.contains("12.5 ms"),
        "{table}"
    );
    p.connection = pb::ConnectionState::None.into();
    p.rtt_ms = None;
    p.transport.clear();
    let v = peers_json(&[p]);
    assert_eq!(v[0]["connection"], "none");
    assert_eq!(v[0]["transport"], Value::Null);
    assert_eq!(v[0]["rtt_ms"], Value::Null);
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
