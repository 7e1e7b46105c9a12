//! The diagnostics service over the stand-in node: `Ping`'s wait, rounds and stop at the
//! first direct answer; `Netcheck` answered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake;

use fake::*;
use peerfind_proto::v1 as pb;
use peerfind_proto::v1::diagnostics_client::DiagnosticsClient;

#[tokio::test]
async fn ping_says_it_waits_for_a_connection_then_rounds_until_direct() {
    let (node, handle) = FakeNode::start();
    let (addr, stop, server) = serve(handle).await;
    let mut client = DiagnosticsClient::new(channel(addr).await);
    let mut rounds = client
        .ping(pb::PingRequest {
            peer_id: node.peer.to_string(),
            count: 10,
            until_direct: true,
            interval_ms: 100,
            wait_ms: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(round) = tokio::time::timeout(WAIT, rounds.message())
        .await
        .unwrap()
        .unwrap()
    {
        got.push((round.seq, round.path(), round.rtt_ms));
    }
    assert_eq!(
        got,
        vec![
            (1, pb::PingPath::None, None),
            (2, pb::PingPath::Relayed, Some(160.0)),
            (3, pb::PingPath::Direct, Some(80.0)),
        ],
        "a wait, a relayed round, a direct one, then the end (until_direct)"
    );
    let bad = client
        .ping(pb::PingRequest {
            peer_id: "nobody".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let check = client
        .netcheck(pb::NetcheckRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(check.transports.len(), 2);
    assert!(
        check
            .transports
            .iter()
            .all(|t| t.mapping() == pb::Mapping::Unknown)
    );
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    node.stop().await;
}
