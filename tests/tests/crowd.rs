//! Many peers joining one bootnode at once, on loopback: 200 simulated peers (real libp2p
//! swarms in this process, see `peerfind_tests::sim`) and a few real `peerfind run` peers
//! started in the same instant. Every peer gets its address, and the load alone never makes a
//! real peer conclude it is behind a NAT. Read through the status API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::identity;
use libp2p::multiaddr::Protocol;
use peerfind_proto::v1 as pb;
use peerfind_tests::local;
use peerfind_tests::sim::{Order, Report, World, simulated_peer};
use tokio::sync::{broadcast, mpsc};

/// Simulated peers that join at once.
const CROWD: usize = 200;

/// Real peers started in the same instant.
const REAL: usize = 3;

/// Bound on the whole crowd's join: a loaded loopback takes seconds, this only stops a broken
/// run from hanging.
const JOIN_WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_peers_joining_at_once_all_get_their_address_and_no_false_private_verdict() {
    let (mut boot, ready) = local::crowd_bootnode().await.unwrap();
    let tcp: libp2p::Multiaddr = ready
        .addrs
        .iter()
        .find(|a| a.contains("/tcp/"))
        .unwrap()
        .parse()
        .unwrap();
    let Some(Protocol::P2p(boot_id)) = tcp.iter().last() else {
        panic!("no /p2p/ in {tcp}")
    };
    let boot_api = boot.api_addr().await.unwrap();
    let mut boot_client = local::api_client(boot_api).await.unwrap();

    // The real peers first, each with a watcher on its events from its first moment.
    let mut real = Vec::new();
    for i in 0..REAL {
        let mut node = local::peer(&format!("real-{i}"), &ready.enr).unwrap();
        let api = node.api_addr().await.unwrap();
        let mut client = local::api_client(api).await.unwrap();
        let events = client
            .watch_events(pb::WatchEventsRequest {})
            .await
            .unwrap()
            .into_inner();
        real.push((node, client, events));
    }

    // Then the crowd, all at once.
    let keys: Vec<_> = (0..CROWD)
        .map(|_| identity::secp256k1::Keypair::generate())
        .collect();
    let (orders, _) = broadcast::channel(4);
    let (reports, mut reported) = mpsc::channel(CROWD * 2);
    let world = World {
        bootnodes: vec![(tcp, boot_id)],
        orders: orders.clone(),
        reports,
        node_ids: Arc::new(Vec::new()),
        sim_table: 16,
    };
    let mut crowd = Vec::new();
    for (index, key) in keys.into_iter().enumerate() {
        crowd.push(
            identity::PublicKey::from(key.public().clone())
                .to_peer_id()
                .to_string(),
        );
        tokio::spawn(simulated_peer(index, key, world.clone()));
    }

    // Every simulated peer's record reaches the bootnode with the address it observed.
    let deadline = tokio::time::Instant::now() + JOIN_WAIT;
    let (missing, held) = loop {
        let peers = boot_client
            .list_peers(pb::ListPeersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .peers;
        let with_address: std::collections::HashSet<_> = peers
            .iter()
            .filter(|p| !p.addrs.is_empty())
            .map(|p| p.peer_id.clone())
            .collect();
        let missing: Vec<String> = crowd
            .iter()
            .filter(|p| !with_address.contains(*p))
            .cloned()
            .collect();
        if missing.is_empty() || tokio::time::Instant::now() >= deadline {
            // What the bootnode holds of the ones missing, for the failure message.
            let held: Vec<_> = peers
                .iter()
                .filter(|p| missing.contains(&p.peer_id))
                .map(|p| (p.peer_id.clone(), p.seq, p.connection))
                .collect();
            break (missing.len(), held);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut retried = Vec::new();
    while let Ok(report) = reported.try_recv() {
        match report {
            Report::Failed { reason } => panic!("a simulated peer failed: {reason}"),
            Report::Retried { reason } => retried.push(reason),
            Report::Dialing { .. } | Report::Answered { .. } => {}
        }
    }
    assert_eq!(
        missing, 0,
        "simulated peers without an address at the bootnode (of those, held without one: \
         {held:?}; first identify retried: {retried:?})"
    );

    // Each real peer learned its address too, and never concluded it is behind a NAT: no
    // event says so, and its status does not.
    for (i, (node, client, events)) in real.iter_mut().enumerate() {
        let deadline = tokio::time::Instant::now() + JOIN_WAIT;
        let status = loop {
            let status = local::status(client).await.unwrap();
            let nat = status.nat.clone().unwrap_or_default();
            if (!status.observed_addrs.is_empty() && nat.status != pb::NatStatus::Unknown as i32)
                || tokio::time::Instant::now() >= deadline
            {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            !status.observed_addrs.is_empty(),
            "real-{i} has no address in its record"
        );
        let nat = status.nat.unwrap_or_default();
        assert_eq!(
            nat.status,
            pb::NatStatus::Public as i32,
            "real-{i} on loopback: {}",
            nat.reason
        );
        // Every event delivered so far: none turned the peer private.
        while let Ok(Some(Ok(event))) =
            tokio::time::timeout(Duration::from_millis(10), events.next()).await
        {
            if let Some(pb::event::Kind::NatStatusChanged(change)) = event.kind {
                assert_ne!(
                    change.to,
                    pb::NatStatus::Private as i32,
                    "real-{i} was told private: {}",
                    change.reason
                );
            }
        }
        node.stop().await.unwrap();
    }
    let _ = orders.send(Order::Stop);
    boot.stop().await.unwrap();
}
