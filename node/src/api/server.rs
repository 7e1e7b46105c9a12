//! The gRPC server: `peerfind.v1.Node` over a [`status::Handle`], with the standard health
//! service and server reflection beside it.
//!
//! Every answer comes from the node's event loop through the handle; the server keeps no state
//! of its own but the watchers' permits and its connections ([`super::conn`]: at most
//! [`Limits::max_connections`] open, each closed after [`Limits::idle_timeout`] without a call,
//! and a dead peer noticed by HTTP/2 keep-alive pings). Each unary call waits at most [`QUERY_TIMEOUT`] for the
//! node; at most [`MAX_WATCHERS`] watches (event streams and gRPC health watches together,
//! [`super::health`]) run at once, and never more than half the connections allowed, so a
//! unary call always finds a connection; on shutdown the health service says NOT_SERVING,
//! event streams end with UNAVAILABLE, and calls still running get [`SHUTDOWN_GRACE`] before
//! their connections are dropped.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::Stream;
use peerfind_proto::v1 as pb;
use peerfind_proto::v1::diagnostics_server::DiagnosticsServer;
use peerfind_proto::v1::node_server::{Node, NodeServer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};
use tonic::{Request, Response, Status};

use super::calls::TrackCalls;
use super::conn::Connections;
use super::convert;
use super::filter::Filter;
use super::health::Health;
use crate::status;

/// The service's full name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = peerfind_proto::v1::node_server::SERVICE_NAME;

/// Longest wait for the node's event loop to answer one query. It answers between two swarm
/// events, so this is only reached when the loop is stuck; the caller then hears UNAVAILABLE
/// rather than waiting forever.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Watches served at once, event streams and gRPC health watches together: an event stream
/// holds a receiver of up to [`status::EVENT_BUFFER`] events, so their number is what bounds
/// the memory watchers take, and any watch holds its connection busy for as long as it runs
/// ([`super::conn`] rule 1). Lowered to [`max_watchers`] when few connections are allowed.
pub const MAX_WATCHERS: usize = 64;

/// Watches served at once when at most `max_connections` API connections are open:
/// [`MAX_WATCHERS`], but never more than half the connections (and at least 1). Watches
/// then never hold every connection busy, so a unary call (`peerfind status`, the container's
/// health check) always finds an idle connection to take the place of ([`super::conn`] rule 3).
pub fn max_watchers(max_connections: usize) -> usize {
    (max_connections / 2).clamp(1, MAX_WATCHERS)
}

/// The permits of the watches running, one each, shared by `WatchEvents` and health's
/// `Watch`.
#[derive(Debug, Clone)]
pub(crate) struct Watchers {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl Watchers {
    /// At most `limit` watches at once.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// A permit for one more watch, held until it ends; RESOURCE_EXHAUSTED when all are taken.
    pub(crate) fn permit(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{} watchers already (event and health watches): close one first",
                self.limit
            ))
        })
    }
}

/// HTTP/2 streams one client connection may have open at once.
const MAX_STREAMS_PER_CONNECTION: u32 = 128;

/// How often an idle connection is pinged: a watcher whose machine vanished without closing
/// its connection would otherwise hold its place among [`MAX_WATCHERS`] until TCP gives up,
/// which takes many minutes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// How long a ping may go unanswered before the connection is dropped.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long calls still running at shutdown may take to finish. Event streams end at once, so
/// only unary calls (answered within [`QUERY_TIMEOUT`]) and other services' streams (a health
/// watch) wait; the latter are cut after this.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Default cap on open API connections. `peerfind status` opens one per call and a watcher
/// holds one for as long as it runs, so a few dozen are plenty for people and scripts; 256
/// leaves room for monitoring that polls in parallel while keeping descriptors for the swarm.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// Default time a connection may stay open without a call: long enough for a client that reuses
/// one connection for calls a few seconds apart (a dashboard polling every 15 or 30 s), short
/// enough that forgotten or hostile connections give their descriptors back within a minute.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The API may hold at most this fraction (1 / n) of the process's open-file limit, whatever
/// `--api-max-connections` says: the rest stays for the swarm's connections, listeners and
/// dial sockets and the node's own files, so a flood of API connections cannot keep peers out.
pub const FD_SHARE: u64 = 4;

/// How many connections the API keeps and for how long ([`super::conn`]'s rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most connections open at once; a new one beyond closes the longest-idle one.
    pub max_connections: usize,
    /// A connection without a call in flight for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl Limits {
    /// These limits with the connection cap lowered to a [`FD_SHARE`]th of the open-file
    /// limit `nofile`, when that is lower (and at least 1).
    pub fn within_fd_limit(self, nofile: Option<u64>) -> Self {
        let Some(nofile) = nofile else { return self };
        let share = usize::try_from(nofile / FD_SHARE)
            .unwrap_or(usize::MAX)
            .max(1);
        Self {
            max_connections: self.max_connections.min(share),
            ..self
        }
    }
}

/// The process's soft limit on open files, when it has one.
pub fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Why the API could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error(
        "cannot bind the status API to {addr}: {source} (is another node using it? choose another address with --api)"
    )]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The bound socket has no local address (does not happen with TCP).
    #[error("cannot read the status API's bound address: {0}")]
    LocalAddr(std::io::Error),
    /// The reflection service could not read the descriptors built into the binary.
    #[error("cannot set up gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server stopped with an error.
    #[error("the status API failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A bound API address, not serving yet: binding first lets the caller refuse to start when
/// the address is taken, before the node does anything.
#[derive(Debug)]
pub struct Listener {
    listener: TcpListener,
    addr: SocketAddr,
    limits: Limits,
    /// Where `/metrics` is served, for `GetStatus` (the node itself does not know).
    metrics: Option<SocketAddr>,
}

impl Listener {
    /// Binds `addr` and logs "API listening" with the address actually bound (port 0 picks a
    /// free one).
    pub async fn bind(addr: SocketAddr) -> Result<Self, ServeError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(ServeError::LocalAddr)?;
        tracing::info!(address = %addr, "API listening");
        Ok(Self {
            listener,
            addr,
            limits: Limits::default().within_fd_limit(open_file_limit()),
            metrics: None,
        })
    }

    /// Serves with `limits` instead of the defaults, the connection cap lowered to what the
    /// open-file limit allows ([`Limits::within_fd_limit`]).
    pub fn with_limits(self, limits: Limits) -> Self {
        let fitted = limits.within_fd_limit(open_file_limit());
        if fitted != limits {
            tracing::info!(
                asked = limits.max_connections,
                kept = fitted.max_connections,
                "API connection cap lowered to a quarter of the open-file limit"
            );
        }
        Self {
            limits: fitted,
            ..self
        }
    }

    /// Reports `addr` as the metrics endpoint's address in `GetStatus`.
    pub fn with_metrics_addr(self, addr: SocketAddr) -> Self {
        Self {
            metrics: Some(addr),
            ..self
        }
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves the API until `shutdown` resolves, then stops as the module doc says.
    pub async fn serve(
        self,
        handle: status::Handle,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let reporter = tonic_health::server::HealthReporter::new();
        reporter.set_serving::<NodeServer<NodeService>>().await;
        let watchers = Watchers::new(max_watchers(self.limits.max_connections));
        let health = Health::server(&reporter, watchers.clone());
        // Reflection v1, and v1alpha for the tools that still only speak it (older grpcurl,
        // grpcio's descriptor database).
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(peerfind_proto::API_DESCRIPTORS)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;
        let (stop, stopping) = watch::channel(false);
        let diagnostics = super::diag::DiagService {
            handle: handle.clone(),
            watchers: watchers.clone(),
            stopping: stopping.clone(),
        };
        let service = NodeService {
            handle,
            metrics: self.metrics,
            watchers,
            stopping: stopping.clone(),
        };
        let connections = Connections::new(self.limits.max_connections, self.limits.idle_timeout);
        let server = tonic::transport::Server::builder()
            .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .layer(TrackCalls)
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(NodeServer::new(service))
            .add_service(DiagnosticsServer::new(diagnostics))
            .serve_with_incoming_shutdown(connections.incoming(self.listener), stopped(stopping));
        tokio::pin!(server);
        tokio::pin!(shutdown);
        tokio::select! {
            result = &mut server => return result.map_err(ServeError::from),
            () = &mut shutdown => {}
        }
        reporter.set_not_serving::<NodeServer<NodeService>>().await;
        reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        let _ = stop.send(true);
        match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
            Ok(result) => result.map_err(ServeError::from),
            Err(_) => {
                tracing::debug!("API calls still running at shutdown were cut");
                Ok(())
            }
        }
    }
}

/// Binds `addr` and serves the API over `handle` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    handle: status::Handle,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    Listener::bind(addr).await?.serve(handle, shutdown).await
}

/// Resolves once `stopping` says so (or its sender is gone).
pub(super) async fn stopped(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// `peerfind.v1.Node`.
#[derive(Debug, Clone)]
struct NodeService {
    handle: status::Handle,
    /// Where `/metrics` is served, when it is.
    metrics: Option<SocketAddr>,
    /// One permit per running watch, shared with the health service.
    watchers: Watchers,
    /// Set when the server stops: event streams end.
    stopping: watch::Receiver<bool>,
}

/// What a `WatchEvents` stream yields.
type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl Node for NodeService {
    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let status = ask(self.handle.status()).await?;
        let mut status = convert::status(&status);
        status.metrics_addr = self.metrics.map(|a| a.to_string()).unwrap_or_default();
        Ok(Response::new(pb::GetStatusResponse {
            status: Some(status),
        }))
    }

    async fn list_peers(
        &self,
        request: Request<pb::ListPeersRequest>,
    ) -> Result<Response<pb::ListPeersResponse>, Status> {
        let request = request.into_inner();
        let filter = Filter::parse(&request.peer_id, &request.node_id)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let peers: Vec<pb::Peer> = ask(self.handle.peers())
            .await?
            .iter()
            .filter(|p| filter.matches(&p.peer_id, &p.node_id))
            .map(convert::peer)
            .collect();
        if peers.is_empty() && !filter.is_empty() {
            return Err(Status::not_found(format!("no known peer has {filter}")));
        }
        Ok(Response::new(pb::ListPeersResponse { peers }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        _request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let permit = self.watchers.permit()?;
        // Subscribed before answering, so every event after the call is delivered.
        let events = self.handle.subscribe();
        // A node that has stopped says so now rather than never sending anything.
        ask(self.handle.status()).await?;
        Ok(Response::new(watch_stream(
            events,
            self.stopping.clone(),
            permit,
        )))
    }
}

/// The events of one watcher, until the server stops: each converted as it comes, a gap
/// reported as a `lagged` event.
fn watch_stream(
    events: broadcast::Receiver<status::Event>,
    stopping: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) -> EventStream {
    let state = Some((events, stopping, permit));
    Box::pin(futures::stream::unfold(state, |state| async move {
        let (mut events, mut stopping, permit) = state?;
        let next = tokio::select! {
            _ = stopping.wait_for(|stop| *stop) => None,
            next = events.recv() => Some(next),
        };
        let now = SystemTime::now();
        let item = match next {
            Some(Ok(event)) => Ok(convert::event(&event, now)),
            Some(Err(broadcast::error::RecvError::Lagged(missed))) => {
                Ok(convert::lagged(missed, now))
            }
            // The node is gone (its hub closed) or the server is stopping: say so, then end.
            Some(Err(broadcast::error::RecvError::Closed)) | None => {
                return Some((Err(Status::unavailable("the node is stopping")), None));
            }
        };
        Some((item, Some((events, stopping, permit))))
    }))
}

/// Asks the node, within [`QUERY_TIMEOUT`].
pub(crate) async fn ask<T>(
    query: impl Future<Output = Result<T, status::Stopped>>,
) -> Result<T, Status> {
    match tokio::time::timeout(QUERY_TIMEOUT, query).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(status::Stopped)) => Err(Status::unavailable("the node has stopped")),
        Err(_) => Err(Status::unavailable(format!(
            "the node did not answer within {} s",
            QUERY_TIMEOUT.as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_keeps_three_quarters_of_the_fd_limit_for_the_swarm() {
        let asked = Limits::default();
        assert_eq!(asked.within_fd_limit(None), asked);
        assert_eq!(asked.within_fd_limit(Some(1 << 20)), asked);
        assert_eq!(asked.within_fd_limit(Some(1024)).max_connections, 256);
        assert_eq!(asked.within_fd_limit(Some(400)).max_connections, 100);
        assert_eq!(asked.within_fd_limit(Some(2)).max_connections, 1);
        assert_eq!(
            asked.within_fd_limit(Some(400)).idle_timeout,
            asked.idle_timeout
        );
    }

    #[test]
    fn watches_never_take_more_than_half_the_connections() {
        assert_eq!(max_watchers(DEFAULT_MAX_CONNECTIONS), MAX_WATCHERS);
        assert_eq!(max_watchers(128), 64);
        assert_eq!(max_watchers(100), 50);
        assert_eq!(max_watchers(3), 1);
        assert_eq!(
            max_watchers(1),
            1,
            "one watch still works on a single connection"
        );
    }
}
