//! The status API on loopback, with the real binary: every RPC of `peerfind.v1.Node` over a real
//! gRPC connection, the health and reflection services, bad input, and the `peerfind status`,
//! `peers` and `watch` commands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use peerfind_proto::v1 as pb;
use peerfind_proto::v1::node_client::NodeClient;
use peerfind_tests::api::Record;
use peerfind_tests::local::{Bootnode, LISTEN, WAIT, bootnode, peer};
use peerfind_tests::process::{Peerfind, decode_enr, field};
use serde_json::Value;
use tonic::transport::Channel;

/// A PeerId and a node id that are well formed and belong to no node of these tests.
const STRANGER_PEER_ID: &str = "16Uiu2HAmF5dBK6ui3mmH8XnXzuDSDA8Jtcu3kEQwj7ydSafi7hkx";
const STRANGER_NODE_ID: &str = "a3043af19d7b4b21745ef061f5a2ed90667579f55f68a4c2815d1194dc10be25";

/// The node's "starting" line: its PeerId, node id and first record, as it logged them.
async fn started(node: &mut Peerfind) -> Value {
    node.wait_for("starting", WAIT, |_| true).await.unwrap()
}

/// Waits until the node's record holds its TCP and QUIC addresses (on loopback, its last
/// address change) and returns its status then.
async fn settled_record(node: &mut Peerfind) -> pb::NodeStatus {
    node.until("a record with tcp and quic", WAIT, |s| {
        s.record().has(&["tcp", "quic"]).then(|| s.status.clone())
    })
    .await
    .expect("record with tcp and quic")
}

/// A gRPC client of the node's status API.
async fn api(node: &mut Peerfind) -> NodeClient<Channel> {
    let addr = node.api_addr().await.unwrap();
    tokio::time::timeout(WAIT, NodeClient::connect(format!("http://{addr}")))
        .await
        .expect("connect within the bound")
        .expect("the API accepts connections")
}

async fn channel(node: &mut Peerfind) -> Channel {
    let addr = node.api_addr().await.unwrap();
    tokio::time::timeout(
        WAIT,
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect(),
    )
    .await
    .unwrap()
    .unwrap()
}

async fn get_status(api: &mut NodeClient<Channel>) -> pb::NodeStatus {
    tokio::time::timeout(WAIT, api.get_status(pb::GetStatusRequest {}))
        .await
        .unwrap()
        .unwrap()
        .into_inner()
        .status
        .expect("a status")
}

async fn list_peers(
    api: &mut NodeClient<Channel>,
    peer_id: &str,
    node_id: &str,
) -> Result<Vec<pb::Peer>, tonic::Status> {
    let request = pb::ListPeersRequest {
        peer_id: peer_id.into(),
        node_id: node_id.into(),
    };
    tokio::time::timeout(WAIT, api.list_peers(request))
        .await
        .unwrap()
        .map(|r| r.into_inner().peers)
}

/// Runs `peerfind ARGS` to its end, within the bound.
async fn cli(args: &[&str]) -> std::process::Output {
    let mut cmd = Peerfind::command(args);
    cmd.kill_on_drop(true);
    tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("the command ends within the bound")
        .unwrap()
}

/// A loopback port with nothing listening on it.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn get_status_reports_the_ids_record_and_connected_bootnode_the_node_logged() {
    let (mut boot, Bootnode { enr: boot_enr, .. }) = bootnode().await.unwrap();
    let boot_id = boot.peer_id().await.unwrap();
    let mut alice = peer("alice", &boot_enr).unwrap();
    let settled = settled_record(&mut alice).await;
    alice
        .until("alice holds the bootnode's record", WAIT, |s| {
            s.holds_record_of(&boot_id).then_some(())
        })
        .await
        .expect("alice holds the bootnode's record");

    let mut api = api(&mut alice).await;
    let status = get_status(&mut api).await;
    // What the API reports is what the node logged: the ids it started with, and the record
    // it logged with the reported seq.
    let start = started(&mut alice).await;
    assert_eq!(status.peer_id, field(&start, "peer_id"));
    assert_eq!(status.node_id, field(&start, "node_id"));
    // The record reported is one the node logged, at or after the one with both addresses.
    assert!(status.seq >= settled.seq, "{status:?}");
    let logged = alice
        .wait_for("local record updated", WAIT, |l| {
            l["seq"].as_u64() == Some(status.seq)
        })
        .await
        .expect("the reported seq was logged");
    assert_eq!(status.enr, field(&logged, "enr"));
    assert_eq!(field(&logged, "ip"), "Some(127.0.0.1)");
    let record = decode_enr(&status.enr).await.unwrap();
    assert_eq!(record["peer_id"], status.peer_id);
    assert_eq!(record["node_id"], status.node_id);
    assert_eq!(record["ip"], "127.0.0.1");

    assert_eq!(status.observed_addrs.len(), 2, "{status:?}");
    for addr in &status.observed_addrs {
        assert!(addr.starts_with("/ip4/127.0.0.1/"), "{addr}");
    }
    assert!(status.listen_addrs.iter().any(|a| a.contains("/tcp/")));
    assert!(status.listen_addrs.iter().any(|a| a.ends_with("/quic-v1")));
    assert_eq!(status.bootnodes.len(), 1);
    assert_eq!(status.bootnodes[0].peer_id, boot_id);
    assert!(status.bootnodes[0].connected, "{status:?}");
    let nat = status.nat.expect("a NAT status");
    assert!(!nat.reason.is_empty() && nat.since.is_some(), "{nat:?}");
    let counts = status.counts.expect("counts");
    assert!(counts.records >= 1, "{counts:?}");
    assert!(counts.direct_connections >= 1, "{counts:?}");
    assert_eq!(counts.relayed_connections, 0);

    alice.stop().await.unwrap();
    boot.stop().await.unwrap();
}

#[tokio::test]
async fn list_peers_on_the_bootnode_shows_the_peer_connected_directly_and_finds_it_by_either_id() {
    let (mut boot, Bootnode { enr: boot_enr, .. }) = bootnode().await.unwrap();
    let mut alice = peer("alice", &boot_enr).unwrap();
    let alice_status = alice.state().await.unwrap().status;
    let (alice_id, alice_node) = (alice_status.peer_id.as_str(), alice_status.node_id.as_str());
    boot.until("the bootnode holds alice's record", WAIT, |s| {
        s.holds_record_of(alice_id).then_some(())
    })
    .await
    .expect("the bootnode learns alice's record");

    let mut api = api(&mut boot).await;
    let peers = list_peers(&mut api, "", "").await.unwrap();
    let listed = peers
        .iter()
        .find(|p| p.peer_id == alice_id)
        .unwrap_or_else(|| panic!("alice in {peers:?}"));
    assert_eq!(listed.node_id, alice_node);
    assert_eq!(listed.connection(), pb::ConnectionState::Direct);
    assert!(
        ["tcp", "quic"].contains(&listed.transport.as_str()),
        "{listed:?}"
    );
    // Alice dialed the bootnode and announced herself on that connection.
    assert_eq!(listed.met(), pb::Met::Inbound);
    assert!(listed.last_seen.is_some());
    // The bootnode's copy is one of alice's records, signed with her key, with its seq.
    let copy = Record::decode(&listed.enr).unwrap();
    assert_eq!(copy.seq, listed.seq, "{listed:?}");
    assert_eq!(
        decode_enr(&listed.enr).await.unwrap()["peer_id"],
        alice_id,
        "{listed:?}"
    );
    assert!(copy.seq <= alice.state().await.unwrap().status.seq);

    // Alice's record may have changed since (seq, transport): the filter finds her anyway.
    let by_peer = list_peers(&mut api, alice_id, "").await.unwrap();
    assert_eq!(by_peer.len(), 1);
    assert_eq!(
        (by_peer[0].peer_id.as_str(), by_peer[0].node_id.as_str()),
        (alice_id, alice_node)
    );
    let by_node = list_peers(&mut api, "", &alice_node.to_uppercase())
        .await
        .unwrap();
    assert_eq!(by_node.len(), 1);
    assert_eq!(by_node[0].peer_id, alice_id);
    let by_both = list_peers(&mut api, alice_id, alice_node).await.unwrap();
    assert_eq!(by_both.len(), 1);

    alice.stop().await.unwrap();
    boot.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_filters_are_invalid_arguments_unknown_peers_are_not_found_and_the_node_keeps_serving()
 {
    let (mut boot, _) = bootnode().await.unwrap();
    let mut api = api(&mut boot).await;

    for (peer_id, node_id, mentions) in [
        ("not-a-peer-id", "", "peer_id"),
        ("16Uiu2HAm", "", "peer_id"),
        ("", "abc", "node_id"),
        ("", &"zz".repeat(32), "node_id"),
        ("", &"ab".repeat(33), "node_id"),
    ] {
        let refused = list_peers(&mut api, peer_id, node_id).await.unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::InvalidArgument,
            "{peer_id:?} {node_id:?}: {refused:?}"
        );
        assert!(refused.message().contains(mentions), "{refused:?}");
    }
    for (peer_id, node_id) in [
        (STRANGER_PEER_ID, ""),
        ("", STRANGER_NODE_ID),
        (STRANGER_PEER_ID, STRANGER_NODE_ID),
    ] {
        let missing = list_peers(&mut api, peer_id, node_id).await.unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
    }

    let status = get_status(&mut api).await;
    assert!(status.enr.starts_with("enr:"));
    assert!(list_peers(&mut api, "", "").await.is_ok());
    let exit = boot.stop().await.unwrap();
    assert!(
        exit.success(),
        "the node was still running and stopped cleanly: {exit}"
    );
}

#[tokio::test]
async fn watch_events_delivers_a_third_node_joining_as_a_learned_record_and_a_direct_connection() {
    let (mut boot, Bootnode { enr: boot_enr, .. }) = bootnode().await.unwrap();
    let mut alice = peer("alice", &boot_enr).unwrap();
    settled_record(&mut alice).await;
    let mut api = api(&mut alice).await;
    // The node subscribes the watcher before it answers: nothing after this is missed.
    let mut events = tokio::time::timeout(WAIT, api.watch_events(pb::WatchEventsRequest {}))
        .await
        .unwrap()
        .unwrap()
        .into_inner();

    let mut charlie = peer("charlie", &boot_enr).unwrap();
    let charlie_id = charlie.peer_id().await.unwrap();
    let (mut learned, mut connected) = (false, false);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(learned && connected) {
        let event = tokio::time::timeout_at(deadline, events.message())
            .await
            .unwrap_or_else(|_| panic!("learned {learned}, connected {connected}"))
            .unwrap()
            .expect("the stream stays open");
        assert!(event.time.is_some());
        match event.kind.expect("a kind") {
            pb::event::Kind::RecordLearned(e) if e.peer_id == charlie_id => {
                assert!(e.seq >= 1 && !e.nat, "{e:?}");
                learned = true;
            }
            pb::event::Kind::ConnectionChanged(e)
                if e.peer_id == charlie_id && e.connection() == pb::ConnectionState::Direct =>
            {
                assert!(["tcp", "quic"].contains(&e.transport.as_str()), "{e:?}");
                connected = true;
            }
            pb::event::Kind::Lagged(e) => panic!("a watcher that reads at once lagged: {e:?}"),
            _ => {}
        }
    }

    for node in [&mut charlie, &mut alice, &mut boot] {
        node.stop().await.unwrap();
    }
}

#[tokio::test]
async fn health_says_serving_and_reflection_lists_the_node_service() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

    let (mut boot, _) = bootnode().await.unwrap();
    let channel = channel(&mut boot).await;

    let mut health = HealthClient::new(channel.clone());
    for service in ["peerfind.v1.Node", ""] {
        let answer = tokio::time::timeout(
            WAIT,
            health.check(HealthCheckRequest {
                service: service.into(),
            }),
        )
        .await
        .unwrap()
        .unwrap()
        .into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }

    let ask = |request: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let requests = futures::stream::iter([
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "peerfind.v1.Node".into(),
        )),
    ]);
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let mut answers = tokio::time::timeout(WAIT, reflection.server_reflection_info(requests))
        .await
        .unwrap()
        .unwrap()
        .into_inner();
    let mut next = async || -> ServerReflectionResponse {
        tokio::time::timeout(WAIT, answers.message())
            .await
            .unwrap()
            .unwrap()
            .expect("an answer per request")
    };
    let Some(MessageResponse::ListServicesResponse(list)) = next().await.message_response else {
        panic!("a service list first");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for want in [
        "peerfind.v1.Node",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let Some(MessageResponse::FileDescriptorResponse(files)) = next().await.message_response else {
        panic!("the file that defines peerfind.v1.Node");
    };
    assert!(!files.file_descriptor_proto.is_empty());

    // Tools that only speak reflection v1alpha see the same services.
    use tonic_reflection::pb::v1alpha as alpha;
    let request = alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut alpha_client =
        alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let mut answers = tokio::time::timeout(
        WAIT,
        alpha_client.server_reflection_info(futures::stream::iter([request])),
    )
    .await
    .unwrap()
    .unwrap()
    .into_inner();
    let answer = tokio::time::timeout(WAIT, answers.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Some(alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("a service list");
    };
    assert!(list.service.iter().any(|s| s.name == "peerfind.v1.Node"));

    boot.stop().await.unwrap();
}

#[tokio::test]
async fn status_and_peers_json_from_the_cli_carry_ids_records_nat_status_and_connection_states() {
    let (mut boot, Bootnode { enr: boot_enr, .. }) = bootnode().await.unwrap();
    let mut alice = peer("alice", &boot_enr).unwrap();
    let settled = settled_record(&mut alice).await;
    let (alice_id, alice_node) = (settled.peer_id.as_str(), settled.node_id.as_str());
    boot.until("the bootnode holds alice's record", WAIT, |s| {
        s.holds_record_of(alice_id).then_some(())
    })
    .await
    .unwrap();
    let alice_api = alice.api_addr().await.unwrap().to_string();
    let boot_api = boot.api_addr().await.unwrap().to_string();

    let out = cli(&["status", "--json", "--api", &alice_api]).await;
    assert!(out.status.success(), "{out:?}");
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["peer_id"], alice_id);
    assert_eq!(status["node_id"], alice_node);
    let enr = status["enr"].as_str().unwrap();
    assert_eq!(decode_enr(enr).await.unwrap()["peer_id"], alice_id);
    assert!(
        ["unknown", "public", "private"].contains(&status["nat"]["status"].as_str().unwrap()),
        "{status}"
    );
    assert!(
        status["nat"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert_eq!(status["bootnodes"][0]["connected"], true);

    let out = cli(&["peers", "--json", "--api", &boot_api]).await;
    assert!(out.status.success(), "{out:?}");
    let peers: Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer_id"] == alice_id)
        .unwrap_or_else(|| panic!("alice in {peers}"));
    assert_eq!(listed["node_id"], alice_node);
    assert_eq!(listed["connection"], "direct");
    assert!(listed["enr"].as_str().unwrap().starts_with("enr:"));
    assert_eq!(
        decode_enr(listed["enr"].as_str().unwrap()).await.unwrap()["node_id"],
        alice_node
    );

    // The same, for people.
    let out = cli(&["status", "--api", &alice_api]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains(alice_id), "{text}");
    let out = cli(&["peers", "--api", &boot_api, "--peer-id", alice_id]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(alice_id) && text.contains("direct"),
        "{text}"
    );
    let out = cli(&["peers", "--api", &boot_api, "--node-id", "nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("node_id"));

    alice.stop().await.unwrap();
    boot.stop().await.unwrap();
}

#[tokio::test]
async fn the_cli_against_a_closed_port_exits_1_with_one_clear_line() {
    let addr = closed_port();
    let api = addr.to_string();
    for args in [
        vec!["status", "--api", &api],
        vec!["status", "--json", "--api", &api],
        vec!["peers", "--json", "--api", &api],
        vec!["watch", "--api", &api],
    ] {
        let out = cli(&args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("no peerfind node answers at {addr}: is it running? (set --api)\n"),
            "{args:?}"
        );
    }
}

#[tokio::test]
async fn a_node_whose_api_address_is_taken_refuses_to_start_and_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data_dir = tempfile::tempdir().unwrap();
    let mut cmd = Peerfind::command(["bootnode", "--api", &addr].into_iter().chain(LISTEN));
    cmd.env("PEERFIND_DATA_DIR", data_dir.path())
        .kill_on_drop(true);
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot bind the status API to {addr}")) && err.contains("--api"),
        "{err}"
    );
}
