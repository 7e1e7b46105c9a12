//! Limits under attack, with the real binary on loopback: a crowd of strangers connecting to a
//! node does not stop it from dialing the peers it chooses (`--max-peers` counts only those),
//! and gets no more than its share of inbound connections from one subnet
//! (`--max-inbound-per-subnet`); a flood of gRPC health watches does not starve the status API
//! (`peerfind status`, the container's health check, still answers); and text a peer chose
//! reaches the terminal escaped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use libp2p::Multiaddr;
use peerfind_proto::v1 as pb;
use peerfind_tests::api::State;
use peerfind_tests::hostile::limits::{HealthWatches, Strangers, one_subnet, subnets};
use peerfind_tests::hostile::relay::Reservations;
use peerfind_tests::local::{self, Bootnode, LISTEN, WAIT, bootnode, bootnode_with};
use peerfind_tests::process::Peerfind;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// The node's TCP listen address, once it has one.
fn tcp_listen_addr(s: &State) -> Option<Multiaddr> {
    s.status
        .listen_addrs
        .iter()
        .find(|a| a.contains("/tcp/"))
        .and_then(|a| a.parse().ok())
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

#[tokio::test]
async fn fifty_inbound_strangers_do_not_stop_a_node_with_max_peers_2_from_dialing_a_peer_it_learns_of()
 {
    let (_boot, Bootnode { enr: boot_enr, .. }) = bootnode().await.unwrap();
    let args = ["run", "--bootnode", &boot_enr, "--max-peers", "2"];
    let mut victim =
        Peerfind::start("victim", Peerfind::command(args.iter().chain(&LISTEN))).unwrap();
    let target = victim
        .until_polled("the victim joined its bootnode", WAIT, |s| {
            tcp_listen_addr(s).filter(|_| s.bootnode_connected())
        })
        .await
        .unwrap();

    // Fifty strangers, each from a subnet of its own (no per-subnet cap is reached), connect
    // and stay.
    let mut strangers = Strangers::connect(&target, subnets(100, 50), "stranger/1.0").unwrap();
    assert_eq!(strangers.settled(WAIT).await.unwrap(), (50, 0));
    victim
        .until_polled("the victim holds the fifty strangers", WAIT, |s| {
            (s.peers.iter().filter(|p| !p.has_record).count() >= 50).then_some(())
        })
        .await
        .unwrap();

    // Alice joins the same bootnode, which tells the victim of her; she dials no one.
    let alice_args = ["run", "--bootnode", &boot_enr, "--max-peers", "0"];
    let mut alice =
        Peerfind::start("alice", Peerfind::command(alice_args.iter().chain(&LISTEN))).unwrap();
    let alice_id = alice.peer_id().await.unwrap();
    let dialed = victim
        .until("the victim dialed alice", WAIT, |s| {
            s.events
                .connection_opened(&alice_id, pb::Direction::Outbound)
        })
        .await;
    let state = victim.state().await.unwrap();
    eprintln!(
        "victim: {} strangers connected, direct dials {}",
        strangers.connected(),
        state.counts().direct_dials
    );
    dialed.expect("the strangers do not count against --max-peers");
    assert!(
        state.counts().chosen_peers <= 2,
        "the peers it chose: {:?}",
        state.counts()
    );
    assert_eq!(
        strangers.connected(),
        50,
        "the strangers are still connected"
    );
}

#[tokio::test]
async fn inbound_connections_from_one_subnet_beyond_its_cap_are_refused_and_counted_while_another_subnet_gets_in()
 {
    let mut cmd = Peerfind::command(["bootnode"].iter().chain(&LISTEN));
    cmd.env("PEERFIND_MAX_INBOUND_PER_SUBNET", "8");
    let (mut boot, Bootnode { addrs, .. }) = bootnode_with(cmd).await.unwrap();
    let target: Multiaddr = addrs
        .iter()
        .find(|a| a.contains("/tcp/"))
        .unwrap()
        .parse()
        .unwrap();

    // Twenty strangers from twenty addresses of one /24.
    let mut crowd = Strangers::connect(&target, one_subnet(77, 20), "stranger/1.0").unwrap();
    let (connected, refused) = crowd.settled(WAIT).await.unwrap();
    eprintln!("one subnet: {connected} connected, {refused} refused");
    assert_eq!(
        (connected, refused),
        (8, 12),
        "the cap holds the subnet to 8"
    );
    boot.until_polled("the bootnode counted the refusals", WAIT, |s| {
        (s.counts().inbound_denied_per_subnet == 12).then_some(())
    })
    .await
    .unwrap();

    // Another subnet is not held back by the full one.
    let mut other = Strangers::connect(&target, one_subnet(78, 1), "stranger/1.0").unwrap();
    assert_eq!(other.settled(WAIT).await.unwrap(), (1, 0));
    assert_eq!(crowd.connected(), 8, "the admitted ones stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_reservations_from_one_subnet_beyond_its_cap_are_refused_while_another_subnet_gets_one()
 {
    // Eight slots in all, two per subnet.
    let mut cmd = Peerfind::command(
        ["bootnode", "--relay-max-reservations", "8"]
            .iter()
            .chain(&LISTEN),
    );
    cmd.env("PEERFIND_RELAY_MAX_RESERVATIONS_PER_SUBNET", "2");
    let (mut boot, Bootnode { addrs, .. }) = bootnode_with(cmd).await.unwrap();
    let relay: Multiaddr = addrs
        .iter()
        .find(|a| a.contains("/tcp/"))
        .unwrap()
        .parse()
        .unwrap();

    // Eight strangers from eight addresses of one /24, one after the other.
    let crowd = Reservations::ask(&relay, one_subnet(81, 8), WAIT)
        .await
        .unwrap();
    eprintln!(
        "one subnet: {} reservations accepted, {} refused",
        crowd.accepted(),
        crowd.refused()
    );
    assert_eq!(
        (crowd.accepted(), crowd.refused()),
        (2, 6),
        "the cap holds the subnet to 2"
    );
    boot.until_polled("the bootnode counted the refusals", WAIT, |s| {
        (s.counts().inputs_rejected.get("relay_subnet_full") == Some(&6)).then_some(())
    })
    .await
    .unwrap();

    // A NAT'd peer in another subnet still gets a slot.
    let other = Reservations::ask(&relay, one_subnet(82, 1), WAIT)
        .await
        .unwrap();
    assert_eq!((other.accepted(), other.refused()), (1, 0));
    drop(crowd);
    boot.stop().await.unwrap();
}

#[tokio::test]
async fn two_hundred_health_watches_leave_status_and_the_health_check_answering() {
    let args = ["bootnode", "--api-max-connections", "128"];
    let (mut boot, _) = bootnode_with(Peerfind::command(args.iter().chain(&LISTEN)))
        .await
        .unwrap();
    let api: SocketAddr = boot.api_addr().await.unwrap();

    let watches = HealthWatches::open(api, 200, WAIT).await.unwrap();
    eprintln!(
        "health watches: {} accepted, {} refused (first: {:?})",
        watches.accepted(),
        watches.refused().len(),
        watches.refused().first()
    );

    // `GetStatus` on a connection of its own, as any client would.
    let status = async {
        let mut client = local::api_client(api).await?;
        local::status(&mut client).await
    };
    let status = tokio::time::timeout(WAIT, status).await;
    // The container's health check: `peerfind status`.
    let out = cli(&["status", "--api", &api.to_string()]).await;
    // The gRPC health check, on a new connection.
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{api}"))?
            .connect()
            .await?;
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        anyhow::Ok(answer.into_inner().status())
    };
    let check = tokio::time::timeout(WAIT, check).await;
    eprintln!(
        "under the flood: GetStatus {:?}, peerfind status {:?}, health check {:?}",
        status
            .as_ref()
            .map(|s| s.as_ref().map(|s| s.peer_id.clone())),
        out.status,
        check
    );

    let status = status.expect("GetStatus answers in time").unwrap();
    assert!(!status.peer_id.is_empty());
    assert!(
        out.status.success(),
        "peerfind status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(check.unwrap().unwrap(), ServingStatus::Serving);
    assert!(
        watches.accepted() <= 64,
        "health watches count among the 64 watchers: {} accepted",
        watches.accepted()
    );
}

#[tokio::test]
async fn an_agent_string_with_escape_sequences_reaches_the_peers_table_escaped() {
    let (mut boot, Bootnode { addrs, .. }) = bootnode().await.unwrap();
    let target: Multiaddr = addrs
        .iter()
        .find(|a| a.contains("/tcp/"))
        .unwrap()
        .parse()
        .unwrap();
    let agent = "evil/1.0 \x1b[2J\x1b]0;pwned\x07";
    let mut stranger = Strangers::connect(&target, subnets(60, 1), agent).unwrap();
    assert_eq!(stranger.settled(WAIT).await.unwrap(), (1, 0));
    let stranger_id = stranger.peer_ids()[0].to_string();
    boot.until_polled("the bootnode lists the stranger's agent", WAIT, |s| {
        s.peer(&stranger_id)
            .and_then(|p| p.identify.as_ref())
            .filter(|i| i.agent == agent)
            .map(|_| ())
    })
    .await
    .unwrap();

    let api = boot.api_addr().await.unwrap().to_string();
    let out = cli(&["peers", "--api", &api]).await;
    assert!(out.status.success(), "{out:?}");
    let raw = |b: &u8| *b == 0x1b || *b == 0x07;
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "peers table: {} raw ESC/BEL bytes in {} bytes",
        out.stdout.iter().filter(|b| raw(b)).count(),
        out.stdout.len()
    );
    assert!(text.contains(&stranger_id), "{text}");
    assert!(!out.stdout.iter().any(raw), "raw control bytes in {text:?}");
    assert!(text.contains(r"evil/1.0 \u{1b}[2J"), "{text}");

    // Scripts get the agent as the peer sent it, escaped by JSON.
    let out = cli(&["peers", "--json", "--api", &api]).await;
    let peers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer_id"] == stranger_id.as_str())
        .unwrap();
    assert_eq!(listed["identify"]["agent"], agent);
    assert!(!out.stdout.iter().any(raw));
}
