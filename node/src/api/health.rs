//! The standard gRPC health service (`grpc.health.v1.Health`), its `Watch` streams counted
//! among the API's watchers.
//!
//! tonic-health's service answers both calls; this wraps it so that each `Watch` holds one of
//! the permits event streams hold ([`Watchers`], at most [`super::server::max_watchers`]) for
//! as long as it runs. A
//! health watch is a stream like an event watch and keeps its connection busy the same way
//! ([`super::conn`] rule 1): uncounted, a few hundred of them held every API connection, and
//! `peerfind status` (the container's health check) found none to take over. Beyond the limit a
//! `Watch` is refused with RESOURCE_EXHAUSTED, as an event watch is. `Check` is a unary call
//! and takes no permit.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::OwnedSemaphorePermit;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_server::{self, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};

use super::server::Watchers;

/// The health service, its watches holding `watchers`' permits.
#[derive(Debug)]
pub(crate) struct Health {
    inner: HealthService,
    watchers: Watchers,
}

impl Health {
    /// The service reporting what `reporter` is told, as a server; each `Watch` takes a
    /// permit of `watchers` (refused when none is left).
    pub(crate) fn server(reporter: &HealthReporter, watchers: Watchers) -> HealthServer<Self> {
        HealthServer::new(Self {
            inner: HealthService::from_health_reporter(reporter.clone()),
            watchers,
        })
    }
}

#[tonic::async_trait]
impl health_server::Health for Health {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        health_server::Health::check(&self.inner, request).await
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let permit = self.watchers.permit()?;
        let inner = health_server::Health::watch(&self.inner, request)
            .await?
            .into_inner();
        Ok(Response::new(WatchStream {
            inner,
            _permit: permit,
        }))
    }
}

/// A health watch: tonic-health's stream, and the watcher permit it holds until it ends.
pub(crate) struct WatchStream {
    inner: tonic_health::server::WatchStream,
    _permit: OwnedSemaphorePermit,
}

impl Stream for WatchStream {
    type Item = Result<HealthCheckResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}
