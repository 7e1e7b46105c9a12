//! The API server and the metrics endpoint run beside the node: bound before it starts (so a
//! taken address stops the start with a clear error), stopped when it returns.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::metrics::{self, MetricsError};
use super::server::{self, ServeError, stopped};
use crate::config::Mode;
use crate::status;

/// Why the API or the metrics endpoint stopped the node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The status API.
    #[error(transparent)]
    Api(#[from] ServeError),
    /// The metrics endpoint.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A server task panicked.
    #[error("an API task ended unexpectedly: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The running servers.
#[derive(Debug)]
pub struct Services {
    stop: watch::Sender<bool>,
    tasks: JoinSet<Result<(), Error>>,
}

impl Services {
    /// Binds the API on `api` (keeping its connections within `limits`) and, when given, the
    /// metrics endpoint (with its probes, ready as a node of `mode` is) with the registry the
    /// node records into, then serves both over `handle` on the current runtime.
    pub async fn start(
        api: SocketAddr,
        limits: server::Limits,
        metrics: Option<(SocketAddr, libp2p::metrics::Registry)>,
        handle: status::Handle,
        mode: Mode,
    ) -> Result<Self, Error> {
        let mut api = server::Listener::bind(api).await?.with_limits(limits);
        let metrics = match metrics {
            Some((addr, registry)) => Some((metrics::Listener::bind(addr).await?, registry)),
            None => None,
        };
        if let Some((listener, _)) = &metrics {
            api = api.with_metrics_addr(listener.local_addr());
        }
        let (stop, stopping) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let api = api.serve(handle.clone(), stopped(stopping.clone()));
        tasks.spawn(async move { api.await.map_err(Error::from) });
        if let Some((listener, registry)) = metrics {
            let metrics = listener.serve(Arc::new(registry), handle, mode, stopped(stopping));
            tasks.spawn(async move { metrics.await.map_err(Error::from) });
        }
        Ok(Self { stop, tasks })
    }

    /// Resolves only when a server stopped by itself: with its error (they run until
    /// [`Services::stop`] otherwise).
    pub async fn failed(&mut self) -> Error {
        loop {
            match self.tasks.join_next().await {
                Some(Ok(Err(e))) => return e,
                Some(Err(e)) => return Error::Task(e),
                // A server that ended without error was told to stop: none is, yet.
                Some(Ok(Ok(()))) => continue,
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Stops both servers and waits for them (each within its own grace period).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while let Some(done) = self.tasks.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "API server stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "API task ended unexpectedly"),
            }
        }
    }
}
