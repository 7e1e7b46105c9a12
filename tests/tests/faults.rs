//! Faults a node must come through on loopback, with the real binary: a lost or garbled record
//! file, and a flood of idle connections to the status API under a small open-file limit.
//! Everything is read through the API (`peerfind status|peers --json` and gRPC).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use peerfind_proto::v1 as pb;
use peerfind_proto::v1::node_client::NodeClient;
use peerfind_tests::local::{Bootnode, LISTEN, WAIT, bootnode, bootnode_with, peer};
use peerfind_tests::process::{Peerfind, binary};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// `peerfind ARGS --json --api API`, parsed; `None` when it says no (e.g. no such peer yet).
async fn cli_try(args: &[&str], api: SocketAddr) -> Option<Value> {
    let api = api.to_string();
    let mut cmd = Peerfind::command(args.iter().chain(&["--json", "--api", &api]));
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("the command ends within the bound")
        .unwrap();
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// `peerfind ARGS --json --api API`, parsed; it must succeed.
async fn cli_json(args: &[&str], api: SocketAddr) -> Value {
    cli_try(args, api)
        .await
        .unwrap_or_else(|| panic!("peerfind {args:?} failed"))
}

/// Polls `probe` until it gives a value, within [`WAIT`].
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "not within {WAIT:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The TCP port in a record's or a status's addresses.
fn tcp_port(addrs: &Value) -> Option<String> {
    addrs.as_array()?.iter().find_map(|a| {
        // A relay slot is listed among the listen addresses while held, and carries the
        // relay's TCP port, not ours.
        let a = a.as_str().filter(|a| !a.contains("/p2p-circuit"))?;
        let (_, rest) = a.split_once("/tcp/")?;
        Some(rest.split('/').next()?.to_owned())
    })
}

/// Alice on a data directory of her own, joined through `boot`.
fn alice(boot: &Bootnode, data_dir: &Path) -> Peerfind {
    let dir = data_dir.display().to_string();
    let args = ["run", "--bootnode", &boot.enr, "--data-dir", &dir];
    Peerfind::start("alice", Peerfind::command(args.iter().chain(&LISTEN))).unwrap()
}

/// Waits until alice's record holds her TCP and QUIC addresses and the bootnode holds that
/// very record; returns her status.
async fn settled(alice_api: SocketAddr, boot_api: SocketAddr) -> Value {
    eventually(
        "alice's record settled and held by the bootnode",
        || async {
            let status = cli_json(&["status"], alice_api).await;
            let enr = status["enr"].as_str()?.to_owned();
            let record = peerfind_tests::process::decode_enr(&enr).await.ok()?;
            (record["tcp"].is_u64() && record["quic"].is_u64()).then_some(())?;
            let peer_id = status["peer_id"].as_str()?;
            let listed = cli_json(&["peers", "--peer-id", peer_id], boot_api).await;
            (listed[0]["seq"] == status["seq"]).then_some(status)
        },
    )
    .await
}

#[tokio::test]
async fn a_node_whose_record_file_is_lost_or_garbled_restarts_above_every_seq_it_published_and_the_bootnode_takes_it_at_once()
 {
    let (mut boot, boot_info) = bootnode().await.unwrap();
    let boot_api = boot.api_addr().await.unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let record_file = data_dir.path().join("enr");

    let mut published = 0;
    let mut peer_id = None;
    let faults: [(&str, Option<&[u8]>); 3] = [
        ("deleted", None),
        (
            "binary garbage",
            Some(&[0xff, 0xfe, 0x00, 0x9c, 0x80, 0x01]),
        ),
        ("text garbage", Some(b"enr:this-is-not-a-record")),
    ];
    // A first run, then one restart per fault.
    for fault in [None].into_iter().chain(faults.map(Some)) {
        if let Some((what, garbage)) = fault {
            match garbage {
                None => std::fs::remove_file(&record_file).unwrap(),
                Some(bytes) => std::fs::write(&record_file, bytes).unwrap(),
            }
            eprintln!("restarting alice with her record file {what}");
        }
        let mut alice = alice(&boot_info, data_dir.path());
        let alice_api = alice.api_addr().await.unwrap();
        let first = cli_json(&["status"], alice_api).await;
        let seq = first["seq"].as_u64().unwrap();
        if let Some((what, _)) = fault {
            assert!(
                seq > published,
                "{what}: restarted at seq {seq}, had published {published}"
            );
            assert_eq!(
                first["peer_id"],
                peer_id.clone().unwrap(),
                "the key is the identity"
            );
        }
        // The bootnode takes the new record at once: it holds her new seq and new port.
        let status = settled(alice_api, boot_api).await;
        let listed = cli_json(
            &["peers", "--peer-id", status["peer_id"].as_str().unwrap()],
            boot_api,
        )
        .await;
        assert_eq!(listed[0]["enr"], status["enr"]);
        assert_eq!(
            tcp_port(&listed[0]["addrs"]),
            tcp_port(&status["listen_addrs"]),
            "{listed}"
        );
        published = status["seq"].as_u64().unwrap();
        peer_id = Some(status["peer_id"].clone());
        alice.stop().await.unwrap();
    }
    boot.stop().await.unwrap();
}

/// Idle timeout of the bootnode's API in the flood test: short, to keep the test short.
const API_IDLE: Duration = Duration::from_secs(5);

/// Open-file limit of the bootnode in the flood test, as `ulimit -n 1024` sets it.
const NOFILE: u64 = 1024;

/// API connections the flood opens: half never send a byte, half open HTTP/2 and stay idle.
const FLOOD: usize = 2_000;

/// Slack on top of [`API_IDLE`] for a connection to be closed: the accept, the timer firing and
/// the close travelling back, on a loaded machine.
const CLOSE_SLACK: Duration = Duration::from_secs(5);

/// The HTTP/2 client preface and an empty SETTINGS frame: an HTTP/2 client that then says
/// nothing.
const H2_HELLO: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Lets this test process hold the flood's sockets: the soft open-file limit up to the hard one
/// (raised too when it is small, which root may do).
fn raise_own_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let want = 8 * 1024;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < want {
        let hard = hard.max(want);
        setrlimit(Resource::RLIMIT_NOFILE, want, hard).expect("raise the open-file limit");
    }
}

/// Reads `stream` until the other side closes it; returns when that was.
async fn closed_at(mut stream: TcpStream) -> Instant {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return Instant::now(),
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn two_thousand_idle_api_connections_are_closed_within_the_idle_timeout_and_under_ulimit_1024_status_and_peers_keep_working()
 {
    raise_own_fd_limit();
    let idle = format!("{}s", API_IDLE.as_secs());
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {NOFILE} && exec \"$0\" \"$@\""))
        .arg(binary())
        .args(["bootnode", "--api-idle-timeout", &idle])
        .args(LISTEN);
    let (mut boot, boot_info) = bootnode_with(cmd).await.unwrap();
    let api = boot.api_addr().await.unwrap();

    // The flood: every connection stays open on our side until the bootnode closes it.
    let mut open = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        let mut stream = TcpStream::connect(api).await.unwrap();
        if i % 2 == 1 {
            // The bootnode may already have closed it to make room: that is fine.
            let _ = stream.write_all(H2_HELLO).await;
        }
        let opened = Instant::now();
        open.push(tokio::spawn(
            async move { closed_at(stream).await - opened },
        ));
    }

    // While the flood's last connections are still open: GetStatus answers...
    let mut client = tokio::time::timeout(WAIT, NodeClient::connect(format!("http://{api}")))
        .await
        .expect("connect within the bound")
        .expect("the API accepts a new connection");
    let status = tokio::time::timeout(WAIT, client.get_status(pb::GetStatusRequest {}))
        .await
        .expect("GetStatus within the bound")
        .expect("GetStatus answers")
        .into_inner()
        .status
        .unwrap();
    // ... and a new peer joins over the swarm.
    let mut alice = peer("alice", &boot_info.enr).unwrap();
    let alice_api = alice.api_addr().await.unwrap();
    let alice_id = cli_json(&["status"], alice_api).await["peer_id"].clone();
    eventually("alice connected to the bootnode", || {
        let mut client = client.clone();
        let alice_id = alice_id.as_str().unwrap_or_default().to_owned();
        async move {
            let request = pb::ListPeersRequest {
                peer_id: alice_id,
                node_id: String::new(),
            };
            let peers = client.list_peers(request).await.ok()?.into_inner().peers;
            let direct = pb::ConnectionState::Direct as i32;
            peers.iter().any(|p| p.connection == direct).then_some(())
        }
    })
    .await;

    // Every flood connection was closed within the idle timeout (and the slack).
    let mut longest = Duration::ZERO;
    for lived in open {
        let lived = tokio::time::timeout(API_IDLE + CLOSE_SLACK + WAIT, lived)
            .await
            .expect("every flood connection is closed")
            .unwrap();
        longest = longest.max(lived);
    }
    eprintln!("the longest-lived of {FLOOD} idle API connections lived {longest:?}");
    assert!(longest <= API_IDLE + CLOSE_SLACK, "one lived {longest:?}");
    // One warning for the whole flood, not one per connection.
    assert_eq!(boot.lines_with("the status API reached its connection cap: closing the longest-idle connections to admit new ones (--api-max-connections)").len(), 1);
    assert!(!status.peer_id.is_empty());

    alice.stop().await.unwrap();
    boot.stop().await.unwrap();
}
