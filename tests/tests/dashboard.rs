//! The Grafana dashboard (`container/grafana/peerfind.json`) shows only what nodes serve:
//! every metric name its queries use is in the `/metrics` of a running bootnode or peer
//! (the real binary on loopback, the peer joined, pinged and holding a relay slot).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use peerfind_tests::hostile::gossip::{Stranger, record_naming};
use peerfind_tests::http::get;
use peerfind_tests::local::{Bootnode, LISTEN, WAIT, bootnode_with};
use peerfind_tests::process::Peerfind;

/// The metric names a PromQL query uses: words starting as peerfind's, libp2p's and the
/// process metrics do (label names, functions and numbers never do).
fn names_in(query: &str) -> impl Iterator<Item = String> + '_ {
    query
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| {
            ["peerfind_", "libp2p_", "process_"]
                .iter()
                .any(|p| w.starts_with(p))
        })
        .map(str::to_owned)
}

/// The names a scrape serves: those of its samples, and those its families declare
/// (`# TYPE`), which a family with no sample yet (no input rejected so far) still does.
async fn served(addr: SocketAddr) -> BTreeSet<String> {
    let Ok((200, body)) = get(addr, "/metrics", Duration::from_secs(3)).await else {
        return BTreeSet::new();
    };
    let mut names = BTreeSet::new();
    for line in body.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut words = declared.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#')
            && let Some(name) = line.split(['{', ' ']).next()
        {
            names.insert(name.to_owned());
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_served_by_a_bootnode_or_a_peer() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../container/grafana/peerfind.json"
    ))
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let queried: BTreeSet<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .flat_map(|q| names_in(&q).collect::<Vec<_>>())
        .collect();
    assert!(queried.len() > 10, "{queried:?}");

    let args = ["bootnode", "--metrics", "127.0.0.1:0"]
        .into_iter()
        .chain(LISTEN);
    let (mut boot, Bootnode { addrs, .. }) = bootnode_with(Peerfind::command(args)).await.unwrap();
    let boot_metrics = boot.metrics_addr().await.unwrap();
    let boot_tcp = addrs.iter().find(|a| a.contains("/tcp/")).unwrap();
    let args = ["run", "--bootnode", boot_tcp, "--metrics", "127.0.0.1:0"]
        .into_iter()
        .chain(LISTEN);
    let mut peer = Peerfind::start("peer", Peerfind::command(args)).unwrap();
    let peer_metrics = peer.metrics_addr().await.unwrap();
    // A stranger pushes the peer a record, which it refuses: the rejected-inputs series
    // exists only once something was rejected.
    let peer_tcp = peer
        .until_polled("the peer's TCP listener", WAIT, |s| {
            s.status
                .listen_addrs
                .iter()
                .find(|a| a.contains("/tcp/") && !a.contains("p2p-circuit"))
                .map(|a| format!("{a}/p2p/{}", s.peer_id()))
        })
        .await
        .unwrap();
    let mut stranger = Stranger::new().unwrap();
    let peer_id = stranger.connect(&peer_tcp).await.unwrap();
    let record = record_naming(std::net::Ipv4Addr::new(127, 0, 0, 2), 9).unwrap();
    stranger.push(peer_id, &[record]).await.unwrap();

    // Some series appear with their first event (a ping answered, bytes carried, a relay
    // slot): asked again until all are there.
    let missing = tokio::time::timeout(WAIT, async {
        loop {
            let mut have = served(boot_metrics).await;
            have.extend(served(peer_metrics).await);
            let missing: Vec<_> = queried.iter().filter(|n| !have.contains(*n)).collect();
            if missing.is_empty() {
                return Vec::new();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if peer.state().await.is_err() {
                return missing.into_iter().cloned().collect();
            }
        }
    })
    .await;
    match missing {
        Ok(none) => assert!(none.is_empty(), "not served: {none:?}"),
        Err(_) => {
            let mut have = served(boot_metrics).await;
            have.extend(served(peer_metrics).await);
            let missing: Vec<_> = queried.iter().filter(|n| !have.contains(*n)).collect();
            panic!("the dashboard queries metrics no node serves: {missing:?}");
        }
    }
    peer.stop().await.unwrap();
    boot.stop().await.unwrap();
}
