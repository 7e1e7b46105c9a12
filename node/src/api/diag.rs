//! The gRPC side of the diagnostics, `peerfind.v1.Diagnostics` (`proto/peerfind/v1/diag.proto`):
//! `Ping`'s rounds paced here, each asked of the node ([`crate::status::Handle::ping`]), and
//! `Netcheck` converted.
//!
//! Bounds: a ping takes a watcher's permit for as long as it runs (shared with event watches,
//! [`super::server::Watchers`]), sends at most [`MAX_COUNT`] rounds no closer than
//! [`MIN_INTERVAL`], and waits at most [`MAX_WAIT`] for a connection; it ends when its caller
//! hangs up or the server stops.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use libp2p::PeerId;
use peerfind_behaviours::enr_ext::Transport;
use peerfind_proto::v1 as pb;
use peerfind_proto::v1::diagnostics_server::Diagnostics;
use tokio::sync::{broadcast, mpsc, watch};
use tonic::{Request, Response, Status};

use super::server::{Watchers, ask};
use crate::diag::netcheck::{Mapping, Netcheck};
use crate::diag::ping::{PingAnswer, PingPath};
use crate::status;

/// Rounds when the request says 0.
pub(crate) const DEFAULT_COUNT: u32 = 10;
/// Most rounds one call sends.
pub(crate) const MAX_COUNT: u32 = 1000;
/// Between rounds when the request says 0.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// The shortest time between rounds: the peer answers at most ten a second anyway.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The wait for a connection when the request says 0.
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(10);
/// The longest wait for a connection.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(120);

type Rounds = Pin<Box<dyn Stream<Item = Result<pb::PingRound, Status>> + Send>>;

/// The service.
#[derive(Debug, Clone)]
pub(crate) struct DiagService {
    pub(crate) handle: status::Handle,
    pub(crate) watchers: Watchers,
    pub(crate) stopping: watch::Receiver<bool>,
}

/// One `Ping` call's settings, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    peer: PeerId,
    count: u32,
    until_direct: bool,
    interval: Duration,
    wait: Duration,
}

impl Plan {
    fn of(r: &pb::PingRequest) -> Result<Self, Status> {
        let peer = r
            .peer_id
            .parse()
            .map_err(|_| Status::invalid_argument("peer_id is not a PeerId"))?;
        let or = |v: u32, default: Duration| match v {
            0 => default,
            ms => Duration::from_millis(ms.into()),
        };
        Ok(Self {
            peer,
            count: match r.count {
                0 => DEFAULT_COUNT,
                n => n.min(MAX_COUNT),
            },
            until_direct: r.until_direct,
            interval: or(r.interval_ms, DEFAULT_INTERVAL).max(MIN_INTERVAL),
            wait: or(r.wait_ms, DEFAULT_WAIT).min(MAX_WAIT),
        })
    }
}

#[tonic::async_trait]
impl Diagnostics for DiagService {
    type PingStream = Rounds;

    async fn ping(&self, request: Request<pb::PingRequest>) -> Result<Response<Rounds>, Status> {
        let plan = Plan::of(request.get_ref())?;
        let permit = self.watchers.permit()?;
        // Subscribed before the first round, so a connection that opens while it is asked
        // for is not missed.
        let events = self.handle.subscribe();
        let (tx, rx) = mpsc::channel(4);
        let (handle, stopping) = (self.handle.clone(), self.stopping.clone());
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                () = rounds(plan, handle, events, tx.clone()) => {}
                _ = wait_stop(stopping) => {
                    let _ = tx.send(Err(Status::unavailable("the node is stopping"))).await;
                }
                () = tx.closed() => {}
            }
        });
        Ok(Response::new(Box::pin(futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
        ))))
    }

    async fn netcheck(
        &self,
        _: Request<pb::NetcheckRequest>,
    ) -> Result<Response<pb::NetcheckResponse>, Status> {
        let found = ask(self.handle.netcheck()).await?;
        let status = ask(self.handle.status()).await?;
        Ok(Response::new(netcheck(
            &found,
            super::convert::status(&status).nat,
        )))
    }
}

async fn wait_stop(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// Sends `plan`'s rounds into `tx`, one per interval, until done.
async fn rounds(
    plan: Plan,
    handle: status::Handle,
    mut events: broadcast::Receiver<status::Event>,
    tx: mpsc::Sender<Result<pb::PingRound, Status>>,
) {
    let mut next = tokio::time::Instant::now();
    // Rounds are numbered as sent; a wait for a connection is told as a round of its own.
    let mut seq = 0;
    for _ in 0..plan.count {
        tokio::time::sleep_until(next).await;
        next += plan.interval;
        seq += 1;
        let mut answer = handle.ping(plan.peer).await;
        if matches!(answer, Ok(PingAnswer::NotConnected)) {
            // Said at once, so the caller knows the ping runs; then the wait for a connection
            // (the node reaches known peers by itself), and a round at once when one opens,
            // so a relayed connection's first moments are measured too.
            let waiting = format!(
                "not connected; waiting up to {} s for a connection",
                plan.wait.as_secs()
            );
            if tx.send(Ok(no_path(seq, waiting))).await.is_err() {
                return;
            }
            seq += 1;
            let opened = connected(&mut events, plan.peer);
            if tokio::time::timeout(plan.wait, opened).await.is_ok() {
                answer = handle.ping(plan.peer).await;
                next = tokio::time::Instant::now() + plan.interval;
            }
        }
        let round = match answer {
            Err(status::Stopped) => {
                let _ = tx
                    .send(Err(Status::unavailable("the node has stopped")))
                    .await;
                return;
            }
            Ok(PingAnswer::NotConnected) => {
                let error = format!("no connection to the peer within {} s", plan.wait.as_secs());
                let _ = tx.send(Ok(no_path(seq, error))).await;
                return;
            }
            Ok(PingAnswer::Busy) => no_path(seq, "too many pings at once: try again".into()),
            Ok(PingAnswer::Round { path, rtt }) => round(seq, &path, rtt),
        };
        let direct = round.path == pb::PingPath::Direct as i32 && round.rtt_ms.is_some();
        if tx.send(Ok(round)).await.is_err() || (direct && plan.until_direct) {
            return;
        }
    }
}

/// Resolves when a connection to `peer` opens (or the events lag: then one may have).
async fn connected(events: &mut broadcast::Receiver<status::Event>, peer: PeerId) {
    loop {
        match events.recv().await {
            Ok(status::Event::ConnectionOpened { peer_id, .. }) if peer_id == peer => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

fn transport_name(t: Option<Transport>) -> String {
    match t {
        Some(Transport::Quic) => "quic".into(),
        Some(Transport::Tcp) => "tcp".into(),
        None => String::new(),
    }
}

fn no_path(seq: u32, error: String) -> pb::PingRound {
    pb::PingRound {
        seq,
        path: pb::PingPath::None.into(),
        error,
        ..Default::default()
    }
}

fn round(seq: u32, path: &PingPath, rtt: Result<Duration, String>) -> pb::PingRound {
    let (rtt_ms, error) = match rtt {
        Ok(rtt) => (Some(rtt.as_secs_f64() * 1e3), String::new()),
        Err(e) => (None, e),
    };
    pb::PingRound {
        seq,
        path: if path.relayed {
            pb::PingPath::Relayed
        } else {
            pb::PingPath::Direct
        }
        .into(),
        transport: transport_name(path.transport),
        remote_addr: path.remote.to_string(),
        rtt_ms,
        error,
    }
}

fn socket(ip: std::net::IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

fn netcheck(n: &Netcheck, nat: Option<pb::Nat>) -> pb::NetcheckResponse {
    pb::NetcheckResponse {
        reports: n
            .seen
            .iter()
            .map(|s| pb::BootnodeReport {
                peer_id: s.bootnode.to_string(),
                transport: transport_name(Some(s.transport)),
                observed_addr: s.observed.to_string(),
            })
            .collect(),
        transports: n
            .transports
            .iter()
            .map(|t| {
                let (mapping, mapped, reports) = match &t.mapping {
                    Mapping::Unknown(n) => (pb::Mapping::Unknown, vec![], *n),
                    Mapping::EndpointIndependent(ip, port) => (
                        pb::Mapping::EndpointIndependent,
                        vec![socket(*ip, *port)],
                        n.seen.iter().filter(|s| s.transport == t.transport).count(),
                    ),
                    Mapping::VariesByDestination(all) => (
                        pb::Mapping::VariesByDestination,
                        all.iter().map(|(ip, port)| socket(*ip, *port)).collect(),
                        n.seen.iter().filter(|s| s.transport == t.transport).count(),
                    ),
                };
                pb::TransportCheck {
                    transport: transport_name(Some(t.transport)),
                    bootnodes_reached: u32::try_from(t.bootnodes_reached).unwrap_or(u32::MAX),
                    mapping: mapping.into(),
                    mapped,
                    reports: u32::try_from(reports).unwrap_or(u32::MAX),
                    reachable_addrs: t.reachable_at.iter().map(|a| a.to_string()).collect(),
                }
            })
            .collect(),
        nat,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_plan_fills_defaults_and_keeps_within_bounds() {
        let peer = super::super::some_peer_id();
        let plan = Plan::of(&pb::PingRequest {
            peer_id: peer.to_string(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            (plan.count, plan.interval, plan.wait),
            (DEFAULT_COUNT, DEFAULT_INTERVAL, DEFAULT_WAIT)
        );
        let plan = Plan::of(&pb::PingRequest {
            peer_id: peer.to_string(),
            count: 1_000_000,
            interval_ms: 1,
            wait_ms: u32::MAX,
            until_direct: true,
        })
        .unwrap();
        assert_eq!(
            (plan.count, plan.interval, plan.wait, plan.until_direct),
            (MAX_COUNT, MIN_INTERVAL, MAX_WAIT, true)
        );
        let bad = Plan::of(&pb::PingRequest {
            peer_id: "nobody".into(),
            ..Default::default()
        });
        assert_eq!(bad.unwrap_err().code(), tonic::Code::InvalidArgument);
    }
}
