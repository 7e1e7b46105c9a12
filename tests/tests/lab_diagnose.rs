//! The diagnostics across real NATs, as an operator runs them: `peerfind netcheck` behind the
//! endpoint-independent and the symmetric router, with two bootnodes to compare; `peerfind
//! ping --until-direct` from Bob to Alice, both NAT'd, started before Alice is: it waits,
//! measures over the relay, then direct after the hole punch. And what the two bootnodes
//! see goes into the record: its NAT mapping, shown by the node and by the bootnodes' copies,
//! and two symmetric peers who read it in each other's records relay up front.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use peerfind_proto::v1 as pb;
use peerfind_tests::cli::{self, API, api_args};
use peerfind_tests::lab::{Host, Lab, NatMode, Placement, Topology};
use peerfind_tests::process::{Peerfind, binary};
use peerfind_tests::scenario::{self, WAIT, bootnode, bootnode_in, listen, peer, peer_id};

fn nat(mode: NatMode) -> Placement {
    Placement::BehindNat(mode)
}

/// Waits until the node's own record carries the `nat` flag.
async fn flagged(node: &mut Peerfind) {
    node.until("the nat flag in the record", WAIT, |s| {
        s.record().nat.then_some(())
    })
    .await
    .expect("nat flag");
}

/// What Alice's own record and a bootnode's copy of it say of her NAT's mapping, once both
/// transports' are known: (tcp, quic), as the API names them.
type RecordMappings = [(String, String); 2];

/// Alice behind a router of `mode`, with two bootnodes (the bootnode's host and Charlie's)
/// over TCP and QUIC: `peerfind netcheck --json` once both report over both transports, and
/// the mapping her record carries (her status, and the second bootnode's copy).
async fn netcheck_behind(mode: NatMode) -> (Value, RecordMappings) {
    let lab = Lab::up(Topology::new(nat(mode), Placement::Public)).expect("lab");
    let (mut one, enr_one) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    let (mut two, enr_two) = bootnode_in(&lab, Host::Charlie, &["tcp", "quic"], &[])
        .await
        .unwrap();
    let mut args = listen("tcp");
    args.extend(listen("quic"));
    args.extend(api_args());
    args.extend(["--bootnode".to_owned(), enr_two]);
    let mut alice = peer(&lab, Host::Alice, &enr_one, &args).unwrap();
    let reported = |n: &Value| {
        n["transports"]
            .as_array()
            .is_some_and(|ts| ts.iter().all(|t| t["reports"] == 2))
    };
    let check = cli::json_until(&lab, Host::Alice, &["netcheck"], WAIT, reported)
        .await
        .unwrap();
    println!("netcheck behind {mode:?}: {check:#}");
    // The addresses seen are the router's.
    let public = lab.public_ip(Host::Alice).to_string();
    for t in check["transports"].as_array().unwrap() {
        assert_eq!(t["bootnodes_reached"], 2, "{t}");
        for seen in t["mapped"].as_array().unwrap() {
            assert!(seen.as_str().unwrap().starts_with(&public), "{t}");
        }
        assert_eq!(
            t["reachable_addrs"],
            serde_json::json!([]),
            "behind a NAT: {t}"
        );
    }
    // The record carries the verdict beside the `nat` flag, and the bootnodes hold it.
    flagged(&mut alice).await;
    let own = alice
        .until("the mapping in alice's record", WAIT, |s| {
            let nat = s.status.nat.as_ref()?;
            let known = |m: pb::NatMapping| (m != pb::NatMapping::Unspecified).then_some(m);
            Some((known(nat.tcp_mapping())?, known(nat.quic_mapping())?))
        })
        .await
        .expect("alice's record says how her NAT maps");
    let alice_id = peer_id(&mut alice).await.unwrap();
    let seen = two
        .until("alice's mapping in the second bootnode's copy", WAIT, |s| {
            let p = s.peer(&alice_id)?;
            (p.tcp_mapping() == own.0 && p.quic_mapping() == own.1).then_some(())
        })
        .await;
    assert!(seen.is_ok(), "the bootnode holds alice's record with it");
    let name = |m: pb::NatMapping| {
        m.as_str_name()
            .trim_start_matches("NAT_MAPPING_")
            .to_ascii_lowercase()
    };
    let record = [
        ("tcp".to_owned(), name(own.0)),
        ("quic".to_owned(), name(own.1)),
    ];
    scenario::stop_all(&mut [&mut alice, &mut one, &mut two]).await;
    (check, record)
}

fn mappings(check: &Value) -> Vec<(String, String)> {
    check["transports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["transport"].as_str().unwrap().to_owned(),
                t["mapping"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn lab_netcheck_and_the_record_behind_the_eim_router_say_endpoint_independent() {
    let (check, record) = netcheck_behind(NatMode::EndpointIndependent).await;
    for (transport, mapping) in mappings(&check).into_iter().chain(record) {
        assert_eq!(mapping, "endpoint_independent", "{transport}: {check:#}");
    }
}

#[tokio::test]
async fn lab_netcheck_and_the_record_behind_the_symmetric_router_say_varies_by_destination() {
    let (check, record) = netcheck_behind(NatMode::Symmetric).await;
    for (transport, mapping) in mappings(&check).into_iter().chain(record) {
        assert_eq!(mapping, "varies_by_destination", "{transport}: {check:#}");
    }
    assert_eq!(check["nat"]["status"], "private", "{check:#}");
}

/// Bob (NAT'd, flagged) pings Alice by the PeerId of a key made ahead, before she starts:
/// the ping says it waits; Alice joins behind her own NAT, the two meet over the bootnode's
/// relay and punch a hole (relay + DCUtR: the punch through the introduction, which goes
/// direct with no relayed round, is off here). The rounds show the relay, then a direct
/// answer, and the command ends there with success.
#[tokio::test]
async fn lab_ping_until_direct_shows_relayed_rounds_then_direct_between_two_natd_peers() {
    let eim = nat(NatMode::EndpointIndependent);
    let lab = Lab::up(Topology::new(eim, eim)).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &["quic"]).await.unwrap();
    let mut args = listen("quic");
    args.extend(api_args());
    args.extend(["--intro-punch".to_owned(), "false".to_owned()]);
    let mut bob = peer(&lab, Host::Bob, &enr, &args).unwrap();
    flagged(&mut bob).await;

    let keys = tempfile::tempdir().unwrap();
    let [(key, alice_id), _] = scenario::ordered_keys(keys.path()).await.unwrap();

    let mut cmd = lab.tokio_command(Host::Bob, binary());
    cmd.args(["ping", &alice_id, "--until-direct", "--json", "--api", API])
        .args(["--count", "60", "--interval", "500ms", "--wait", "60s"])
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    let mut ping = cmd.spawn().unwrap();
    let mut lines = BufReader::new(ping.stdout.take().unwrap()).lines();
    let mut next_round = async || -> Option<Value> {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .ok()?
            .ok()??;
        Some(serde_json::from_str(&line).unwrap())
    };
    let waiting = next_round().await.expect("the ping's first line");
    assert_eq!(waiting["path"], "none", "{waiting}");

    args.extend(["--key-file".to_owned(), key.display().to_string()]);
    let mut alice = peer(&lab, Host::Alice, &enr, &args).unwrap();
    assert_eq!(peer_id(&mut alice).await.unwrap(), alice_id);
    let mut rounds = vec![waiting];
    while let Some(round) = next_round().await {
        rounds.push(round);
    }
    let exit = ping.wait().await.unwrap();
    let shown: Vec<String> = rounds.iter().map(Value::to_string).collect();
    println!("ping rounds:\n{}", shown.join("\n"));
    assert!(exit.success(), "--until-direct ends with success: {exit:?}");
    let last = rounds.last().unwrap();
    assert_eq!(last["path"], "direct", "the last round is direct: {last}");
    assert!(last["rtt_ms"].is_f64(), "and answered: {last}");
    let nat_a = lab.public_ip(Host::Alice).to_string();
    assert!(
        last["remote_addr"].as_str().unwrap().contains(&nat_a),
        "at Alice's router: {last}"
    );
    let relayed: Vec<&Value> = rounds.iter().filter(|r| r["path"] == "relayed").collect();
    assert!(!relayed.is_empty(), "a relayed round before: {shown:#?}");
    assert!(
        relayed
            .iter()
            .all(|r| r["remote_addr"].as_str().unwrap().contains("p2p-circuit")),
        "{relayed:?}"
    );
    scenario::stop_all(&mut [&mut alice, &mut bob, &mut boot]).await;
}

/// Alice and Bob behind symmetric NATs, each seen by two bootnodes: both records say their
/// NAT's mapping varies by destination, so the one that acts (Bob: keys made ahead give him
/// the smaller PeerId, strategy rule 7) dials through the relay up front (rule 8). Neither
/// asks for an introduction, which would only start a punch that cannot meet, and the
/// relayed connection holds.
async fn two_symmetric_nats_relay_up_front(transport: &str) {
    let symmetric = nat(NatMode::Symmetric);
    let lab = Lab::up(Topology::new(symmetric, symmetric)).expect("lab");
    let (mut one, enr_one) = bootnode(&lab, &[transport]).await.unwrap();
    let (mut two, enr_two) = bootnode_in(&lab, Host::Charlie, &[transport], &[])
        .await
        .unwrap();
    let keys = tempfile::tempdir().unwrap();
    let [bob_key, alice_key] = scenario::ordered_keys(keys.path()).await.unwrap();
    let node_args = |key: &std::path::Path| {
        let mut args = listen(transport);
        args.extend(api_args());
        args.extend(["--bootnode".to_owned(), enr_two.clone()]);
        args.extend(["--key-file".to_owned(), key.display().to_string()]);
        args
    };
    let varies = |s: &peerfind_tests::api::State| {
        let nat = s.status.nat.as_ref()?;
        let mapping = match transport {
            "tcp" => nat.tcp_mapping(),
            _ => nat.quic_mapping(),
        };
        (mapping == pb::NatMapping::VariesByDestination).then_some(())
    };
    let mut alice = peer(&lab, Host::Alice, &enr_one, &node_args(&alice_key.0)).unwrap();
    alice
        .until("alice's record: her mapping varies", WAIT, varies)
        .await
        .expect("alice's record says how her NAT maps");
    let mut bob = peer(&lab, Host::Bob, &enr_one, &node_args(&bob_key.0)).unwrap();
    let alice_id = alice_key.1.clone();
    bob.until("bob relayed to alice", WAIT, |s| {
        let relayed = s.peer(&alice_id)?.connection() == pb::ConnectionState::Relayed;
        relayed.then_some(())
    })
    .await
    .expect("bob reaches alice through the relay");
    bob.until("bob's record: his mapping varies", WAIT, varies)
        .await
        .expect("bob's record says how his NAT maps");
    for (host, node) in [(Host::Alice, &mut alice), (Host::Bob, &mut bob)] {
        let state = node.state().await.unwrap();
        assert_eq!(
            state.counts().introductions_asked,
            0,
            "{host} asked no introduction: {:?}",
            state.counts()
        );
    }
    scenario::stop_all(&mut [&mut alice, &mut bob, &mut one, &mut two]).await;
}

#[tokio::test]
async fn lab_two_symmetric_nats_seen_by_two_bootnodes_relay_up_front_without_a_punch_over_tcp() {
    two_symmetric_nats_relay_up_front("tcp").await;
}

#[tokio::test]
async fn lab_two_symmetric_nats_seen_by_two_bootnodes_relay_up_front_without_a_punch_over_quic() {
    two_symmetric_nats_relay_up_front("quic").await;
}

/// Alice behind an endpoint-independent NAT, Bob behind a symmetric one, each seen by two
/// bootnodes, over QUIC: their records say so, and Bob, whose port towards Alice no one can
/// know, guesses it (strategy rule 10): he opens many ports towards her, and the
/// introduction makes her spray his IP's ports until one meets an opening. With guessing
/// off they stay on the relay, as every punch fails.
async fn one_symmetric_nat_guessed(guessing: bool) {
    let lab = Lab::up(Topology::new(
        nat(NatMode::EndpointIndependent),
        nat(NatMode::Symmetric),
    ))
    .expect("lab");
    let (mut one, enr_one) = bootnode(&lab, &["quic"]).await.unwrap();
    let (mut two, enr_two) = bootnode_in(&lab, Host::Charlie, &["quic"], &[])
        .await
        .unwrap();
    let mut args = listen("quic");
    args.extend(api_args());
    args.extend(["--bootnode".to_owned(), enr_two]);
    let mapping = |wanted: pb::NatMapping| {
        move |s: &peerfind_tests::api::State| {
            let nat = s.status.nat.as_ref()?;
            (nat.quic_mapping() == wanted).then_some(())
        }
    };
    let mut alice = peer(&lab, Host::Alice, &enr_one, &args).unwrap();
    alice
        .until(
            "alice's record: one port for all",
            WAIT,
            mapping(pb::NatMapping::EndpointIndependent),
        )
        .await
        .expect("alice's record says how her NAT maps");
    let alice_id = peer_id(&mut alice).await.unwrap();
    args.extend(["--port-guessing".to_owned(), guessing.to_string()]);
    let mut bob = peer(&lab, Host::Bob, &enr_one, &args).unwrap();
    bob.until(
        "bob's record: a port per destination",
        WAIT,
        mapping(pb::NatMapping::VariesByDestination),
    )
    .await
    .expect("bob's record says how his NAT maps");
    let wanted = if guessing {
        pb::ConnectionState::Direct
    } else {
        pb::ConnectionState::Relayed
    };
    let reached = bob
        .until("bob reaches alice", WAIT, |s| {
            let p = s.peer(&alice_id)?;
            (p.connection() == wanted).then(|| p.transports.clone())
        })
        .await
        .expect("bob reaches alice");
    if guessing {
        assert_eq!(reached, ["quic"], "a guessed port is a QUIC one");
    } else {
        // The punch's wait and the relay's DCUtR both end before this settles.
        let state = bob
            .until("bob's punches ended", WAIT, |s| {
                let c = s.counts();
                (c.hole_punches_failed > 0).then_some(c)
            })
            .await
            .expect("bob's punch through the introduction failed");
        let still = bob.state().await.unwrap();
        assert_eq!(
            still.peer(&alice_id).map(|p| p.connection()),
            Some(pb::ConnectionState::Relayed),
            "without guessing no punch meets: {state:?}"
        );
    }
    scenario::stop_all(&mut [&mut alice, &mut bob, &mut one, &mut two]).await;
}

#[tokio::test]
async fn lab_a_symmetric_nat_and_an_endpoint_independent_one_meet_directly_by_guessing_ports() {
    one_symmetric_nat_guessed(true).await;
}

#[tokio::test]
async fn lab_without_port_guessing_a_symmetric_nat_and_an_endpoint_independent_one_stay_relayed() {
    one_symmetric_nat_guessed(false).await;
}
