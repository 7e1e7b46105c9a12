//! The probes orchestrators use, on the metrics endpoint of the real binary on loopback:
//! `/readyz` says 503 until a peer's bootnode is reachable and 200 after, `/healthz` fails
//! while the node is stopped, and `/enr` gives the node's record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use peerfind_tests::http::get;
use peerfind_tests::local::{Bootnode, LISTEN, WAIT, bootnode};
use peerfind_tests::process::Peerfind;

/// A probe's answer on loopback comes in milliseconds; a stopped node gives none.
const ANSWER: Duration = Duration::from_secs(3);

/// Asks `path` until it answers `code`, within `WAIT`; returns the body.
async fn until_code(addr: SocketAddr, path: &str, code: u16) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok((got, body)) = get(addr, path, ANSWER).await
                && got == code
            {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{path} never answered {code}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_bootnode_healthz_fails_while_stopped_and_enr_is_the_record() {
    let (mut boot, Bootnode { addrs, .. }) = bootnode().await.unwrap();
    let boot_tcp = addrs.iter().find(|a| a.contains("/tcp/")).unwrap().clone();
    // The peer starts while the bootnode is held still: it cannot be ready yet.
    boot.pause().unwrap();
    let args = ["run", "--bootnode", &boot_tcp, "--metrics", "127.0.0.1:0"]
        .into_iter()
        .chain(LISTEN);
    let mut peer = Peerfind::start("peer", Peerfind::command(args)).unwrap();
    let metrics = peer.metrics_addr().await.unwrap();
    let (code, body) = get(metrics, "/readyz", ANSWER).await.unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("no bootnode connected"), "{body}");
    assert_eq!(get(metrics, "/healthz", ANSWER).await.unwrap().0, 200);

    boot.resume().unwrap();
    until_code(metrics, "/readyz", 200).await;

    // The record, as `bootnode.txt` has it: the record, then its multiaddrs.
    let body = until_code(metrics, "/enr", 200).await;
    let state = peer.state().await.unwrap();
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some(state.status.enr.as_str()));
    let peer_id = state.peer_id().to_owned();
    assert!(
        lines.clone().count() > 0 && lines.all(|l| l.ends_with(&format!("/p2p/{peer_id}"))),
        "{body}"
    );

    // Stopped, the node answers nothing: the liveness probe fails.
    peer.pause().unwrap();
    let stopped = get(metrics, "/healthz", ANSWER).await;
    peer.resume().unwrap();
    assert!(stopped.is_err(), "a stopped node answered: {stopped:?}");
    assert_eq!(get(metrics, "/healthz", ANSWER).await.unwrap().0, 200);

    peer.stop().await.unwrap();
    boot.stop().await.unwrap();
}
