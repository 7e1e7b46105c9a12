//! The API server over a stand-in for the node's event loop: a stopped node, a watcher that
//! falls behind, too many watchers (event and health watches together), shutdown, and a taken
//! address. The stand-in is in `fake/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use peerfind::api::server::{Limits, Listener, MAX_WATCHERS, ServeError};
use peerfind::status;
use peerfind_proto::v1 as pb;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

mod fake;

use fake::*;

#[tokio::test]
async fn a_stopped_node_answers_unavailable_to_every_call() {
    let (node, handle) = FakeNode::start();
    let (addr, _stop, _server) = serve(handle).await;
    let mut api = client(addr).await;
    assert!(api.get_status(pb::GetStatusRequest {}).await.is_ok());
    node.stop().await;

    let status = api.get_status(pb::GetStatusRequest {}).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let peers = api
        .list_peers(pb::ListPeersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(peers.code(), tonic::Code::Unavailable, "{peers:?}");
    let events = watch(&mut api).await.unwrap_err();
    assert_eq!(events.code(), tonic::Code::Unavailable, "{events:?}");
}

#[tokio::test]
async fn a_watcher_that_falls_behind_is_told_how_many_events_it_missed_and_keeps_watching() {
    // Far more than the event buffer and what HTTP/2 flow control lets through unread.
    const PUBLISHED: u64 = 20 * status::EVENT_BUFFER as u64;
    let (node, handle) = FakeNode::start();
    let (addr, _stop, _server) = serve(handle).await;
    let mut api = client(addr).await;
    let mut events = watch(&mut api).await.unwrap();
    node.publish(PUBLISHED).await;

    let (mut received, mut missed, mut lags, mut last_seq) = (0, 0, 0, None);
    while received + missed < PUBLISHED {
        let event = tokio::time::timeout(WAIT, events.message())
            .await
            .expect("the rest of the events")
            .unwrap()
            .expect("the stream stays open");
        match event.kind.unwrap() {
            pb::event::Kind::RecordLearned(e) => {
                assert_eq!(e.peer_id, node.peer.to_string());
                received += 1;
                last_seq = Some(e.seq);
            }
            pb::event::Kind::Lagged(lag) => {
                assert!(lag.missed > 0);
                missed += lag.missed;
                lags += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(lags >= 1, "the watcher was told it lagged");
    assert_eq!(
        received + missed,
        PUBLISHED,
        "every event delivered or counted"
    );
    assert_eq!(last_seq, Some(PUBLISHED - 1), "the newest events arrive");

    // Still watching: the next event comes through.
    node.publish(1).await;
    let next = tokio::time::timeout(WAIT, events.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(
        next.kind,
        Some(pb::event::Kind::RecordLearned(pb::RecordLearned {
            seq: 0,
            ..
        }))
    ));
}

#[tokio::test]
async fn watchers_beyond_the_limit_are_refused_with_resource_exhausted() {
    let (_node, handle) = FakeNode::start();
    let (addr, _stop, _server) = serve(handle).await;
    let mut api = client(addr).await;
    let mut open = Vec::new();
    for _ in 0..MAX_WATCHERS {
        open.push(watch(&mut api).await.unwrap());
    }
    let refused = watch(&mut api).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    // Unary calls are not watchers.
    assert!(api.get_status(pb::GetStatusRequest {}).await.is_ok());
}

/// A health watch of the server's overall health on `channel`, answered with its first status.
async fn health_watch(
    channel: Channel,
) -> Result<tonic::Streaming<HealthCheckResponse>, tonic::Status> {
    let mut stream = tokio::time::timeout(
        WAIT,
        HealthClient::new(channel).watch(HealthCheckRequest {
            service: String::new(),
        }),
    )
    .await
    .unwrap()?
    .into_inner();
    stream.message().await?;
    Ok(stream)
}

#[tokio::test]
async fn health_watches_and_event_watches_share_the_watcher_limit() {
    let (_node, handle) = FakeNode::start();
    let (addr, _stop, _server) = serve(handle).await;
    let mut api = client(addr).await;
    let mut events = Vec::new();
    for _ in 1..MAX_WATCHERS {
        events.push(watch(&mut api).await.unwrap());
    }
    let health = health_watch(channel(addr).await).await.unwrap();
    let refused = watch(&mut api).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    let refused = health_watch(channel(addr).await).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );

    // A health watch that ends gives its place back.
    drop(health);
    let reopened = async {
        loop {
            match watch(&mut api).await {
                Ok(stream) => return stream,
                Err(_) => tokio::task::yield_now().await,
            }
        }
    };
    tokio::time::timeout(WAIT, reopened)
        .await
        .expect("a place came free");
    // Check is a unary call: no watcher.
    let check = HealthClient::new(channel(addr).await)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        check.into_inner().status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}

#[tokio::test]
async fn health_watches_on_every_connection_leave_room_for_a_status_call() {
    const MAX_CONNECTIONS: usize = 8;
    let (_node, handle) = FakeNode::start();
    let limits = Limits {
        max_connections: MAX_CONNECTIONS,
        ..Limits::default()
    };
    let (addr, _stop, _server) = serve_with(handle, limits).await;
    // One connection per watch, twice as many as the server keeps.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..2 * MAX_CONNECTIONS {
        match health_watch(channel(addr).await).await {
            Ok(stream) => held.push(stream),
            Err(_) => refused += 1,
        }
    }
    assert_eq!(
        held.len(),
        MAX_CONNECTIONS / 2,
        "watches take half the connections"
    );
    assert_eq!(refused, 2 * MAX_CONNECTIONS - MAX_CONNECTIONS / 2);
    let mut api = client(addr).await;
    let status = tokio::time::timeout(WAIT, api.get_status(pb::GetStatusRequest {}))
        .await
        .expect("GetStatus answers under the watches")
        .unwrap();
    assert!(status.into_inner().status.is_some());
}

#[tokio::test]
async fn shutdown_ends_every_watch_with_unavailable_and_the_server_returns() {
    let (_node, handle) = FakeNode::start();
    let (addr, stop, server) = serve(handle).await;
    let mut api = client(addr).await;
    let mut events = watch(&mut api).await.unwrap();
    stop.send(()).unwrap();
    let ended = tokio::time::timeout(WAIT, events.message())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(ended.code(), tonic::Code::Unavailable, "{ended:?}");
    tokio::time::timeout(WAIT, server)
        .await
        .expect("the server stops within its grace period")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn binding_a_taken_address_names_it_and_suggests_the_flag() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let err = Listener::bind(addr).await.unwrap_err();
    assert!(matches!(err, ServeError::Bind { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&addr.to_string()) && text.contains("--api"),
        "{text}"
    );
}

#[tokio::test]
async fn get_status_tells_where_metrics_are_served_only_when_they_are() {
    let (_node, handle) = FakeNode::start();
    let (addr, _stop, _server) = serve(handle.clone()).await;
    let status = client(addr)
        .await
        .get_status(pb::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(status.metrics_addr, "", "no --metrics");

    let metrics: SocketAddr = "127.0.0.1:9464".parse().unwrap();
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .with_metrics_addr(metrics);
    let addr = listener.local_addr();
    let _server = tokio::spawn(listener.serve(handle, std::future::pending()));
    let status = client(addr)
        .await
        .get_status(pb::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(status.metrics_addr, "127.0.0.1:9464");
}
