//! `/metrics` for Prometheus, on `--metrics`: libp2p's own metrics (connections, identify,
//! ping, relay, DCUtR…, recorded by the node into the registry it was built with) followed by
//! peerfind's own, read from [`status::Handle::status`] at each scrape.
//!
//! peerfind's numbers are not kept twice: the node already counts them for the status API, so
//! a scrape asks it and writes what it says (a counter the node resets only by restarting is a
//! Prometheus counter; a size now is a gauge). The output is OpenMetrics text, which Prometheus
//! reads.
//!
//! A plain axum router on hyper's HTTP/1: `/metrics` and the probes (`super::probes`:
//! `/healthz`, `/readyz`, `/enr`), at most [`MAX_SCRAPES`] answered at once.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{probes, process_metrics};
use crate::config::Mode;
use crate::reach::nat;
use crate::status;

/// The path Prometheus scrapes.
pub const PATH: &str = "/metrics";

/// The OpenMetrics text format's content type.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Scrapes answered at once; more get 503. Prometheus scrapes one at a time, so this only
/// stops a runaway client from queueing work on the node's event loop.
pub const MAX_SCRAPES: usize = 8;

/// Longest wait for the node's numbers; a stuck node gets a failed scrape, not a hung one.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long scrapes still running at shutdown may take to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Why the metrics could not be served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound.
    #[error(
        "cannot bind the metrics endpoint to {addr}: {source} (choose another address with --metrics)"
    )]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The bound socket has no local address (does not happen with TCP).
    #[error("cannot read the metrics endpoint's bound address: {0}")]
    LocalAddr(std::io::Error),
    /// The server stopped with an error.
    #[error("the metrics endpoint failed: {0}")]
    Serve(std::io::Error),
}

/// A bound metrics address, not serving yet.
#[derive(Debug)]
pub struct Listener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Listener {
    /// Binds `addr` and logs "metrics listening" with the address actually bound.
    pub async fn bind(addr: SocketAddr) -> Result<Self, MetricsError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(MetricsError::LocalAddr)?;
        tracing::info!(address = %addr, path = PATH, probes = "/healthz /readyz /enr", "metrics listening");
        Ok(Self { listener, addr })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `/metrics` and the probes until `shutdown` resolves: `libp2p` is the registry
    /// the node records into, `handle` asks the node for peerfind's numbers, `mode` says what
    /// readiness means.
    pub async fn serve(
        self,
        libp2p: Arc<Registry>,
        handle: status::Handle,
        mode: Mode,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), MetricsError> {
        let scrape = Arc::new(Scrape {
            libp2p,
            handle,
            running: Semaphore::new(MAX_SCRAPES),
            mode,
        });
        let app = axum::Router::new()
            .route(PATH, axum::routing::get(answer))
            .route(probes::HEALTHZ, axum::routing::get(probes::healthz))
            .route(probes::READYZ, axum::routing::get(probes::readyz))
            .route(probes::ENR, axum::routing::get(probes::enr))
            .with_state(scrape);
        let (stop, stopping) = tokio::sync::oneshot::channel::<()>();
        let server = axum::serve(self.listener, app).with_graceful_shutdown(async move {
            let _ = stopping.await;
        });
        let server = std::future::IntoFuture::into_future(server);
        tokio::pin!(server);
        tokio::pin!(shutdown);
        tokio::select! {
            result = &mut server => return result.map_err(MetricsError::Serve),
            () = &mut shutdown => {}
        }
        let _ = stop.send(());
        match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
            Ok(result) => result.map_err(MetricsError::Serve),
            Err(_) => Ok(()),
        }
    }
}

/// What a scrape (and a probe, `super::probes`) reads.
pub(super) struct Scrape {
    libp2p: Arc<Registry>,
    pub(super) handle: status::Handle,
    /// One permit per scrape or probe being answered.
    pub(super) running: Semaphore,
    /// What readiness means for this node (`/readyz`).
    pub(super) mode: Mode,
}

async fn answer(State(scrape): State<Arc<Scrape>>) -> Response {
    let Ok(_permit) = scrape.running.try_acquire() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many scrapes at once\n",
        )
            .into_response();
    };
    let status = match tokio::time::timeout(SCRAPE_TIMEOUT, scrape.handle.status()).await {
        Ok(Ok(status)) => status,
        Ok(Err(status::Stopped)) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "the node has stopped\n").into_response();
        }
        Err(_) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "the node did not answer\n").into_response();
        }
    };
    match render(&scrape.libp2p, &status) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(std::fmt::Error) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
}

/// libp2p's registry, then peerfind's numbers from `status`, in OpenMetrics text.
fn render(libp2p: &Registry, status: &status::Status) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    encode_registry(&mut text, libp2p)?;
    encode_registry(&mut text, &peerfind_registry(status))?;
    encode_registry(&mut text, &process_metrics::registry())?;
    encode_eof(&mut text)?;
    Ok(text)
}

/// Labels of one sample.
type Labels = Vec<(&'static str, String)>;

/// peerfind's numbers as a registry made for one scrape.
fn peerfind_registry(s: &status::Status) -> Registry {
    let mut r = Registry::with_prefix("peerfind");
    r.register("records", "Records in the record table", gauge(s.records));
    r.register(
        "record_seq",
        "Sequence number of the own record",
        gauge(s.seq),
    );

    let connections = Family::<Labels, Gauge>::default();
    for (kind, n) in [
        ("direct", s.direct_connections),
        ("relayed", s.relayed_connections),
    ] {
        connections
            .get_or_create(&vec![("kind", kind.to_owned())])
            .set(as_i64(n));
    }
    r.register("connections", "Open connections, by kind", connections);
    r.register(
        "chosen_peers",
        "Peers this node is dialing or holds a connection it dialed to, bootnodes aside: what \
         --max-peers caps",
        gauge(s.chosen_peers),
    );

    let bootnodes = s.bootnodes.iter().filter(|b| b.connected).count() as u64;
    r.register(
        "bootnodes_connected",
        "Configured bootnodes with an open connection",
        gauge(bootnodes),
    );

    let nat_status = Family::<Labels, Gauge>::default();
    for candidate in [
        nat::Status::Unknown,
        nat::Status::Public,
        nat::Status::Private,
    ] {
        nat_status
            .get_or_create(&vec![("status", candidate.to_string())])
            .set(i64::from(candidate == s.nat.status));
    }
    r.register(
        "nat_status",
        "NAT status: 1 for the current one (unknown, public or private), 0 for the others",
        nat_status,
    );

    let c = &s.counters;
    r.register(
        "direct_dials",
        "Peers dialed at their record's addresses",
        counter(c.direct_dials),
    );
    r.register(
        "circuit_dials",
        "Peers dialed through a bootnode's relay, hole punch retries included",
        counter(c.circuit_dials),
    );
    r.register(
        "introductions_asked",
        "Introductions asked of a bootnode",
        counter(c.introductions_asked),
    );
    r.register(
        "introductions_served",
        "Introductions forwarded as a bootnode",
        counter(c.introductions_served),
    );
    r.register(
        "hole_punches_tried",
        "Hole punches started",
        counter(c.punches_tried),
    );
    r.register(
        "hole_punches_succeeded",
        "Hole punches that gave a direct connection",
        counter(c.punches_succeeded),
    );
    r.register(
        "hole_punches_failed",
        "Hole punches that failed",
        counter(c.punches_failed),
    );
    r.register(
        "inbound_denied_per_subnet",
        "Inbound connections refused because their subnet (IPv4 /24, IPv6 /64) held \
         --max-inbound-per-subnet",
        counter(c.inbound_denied_per_subnet),
    );
    let port_mapping = Family::<Labels, Counter>::default();
    for (state, n) in &c.port_mapping {
        port_mapping
            .get_or_create(&vec![("state", state.clone())])
            .inc_by(*n);
    }
    r.register(
        "port_mapping_changes",
        "Port-mapping (UPnP-IGD) changes, by the state each led to: no_gateway, \
         gateway_not_routable, mapped, verified, failed",
        port_mapping,
    );
    let rejected = Family::<Labels, Counter>::default();
    for (reason, n) in &c.inputs_rejected {
        rejected
            .get_or_create(&vec![("reason", reason.clone())])
            .inc_by(*n);
    }
    r.register(
        "inputs_rejected",
        "Messages from peers dropped for breaking the protocol, by reason",
        rejected,
    );
    r
}

fn gauge(value: u64) -> Gauge {
    let g = Gauge::default();
    g.set(as_i64(value));
    g
}

fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

/// Gauges are signed; no count of ours gets near the limit, but saturate rather than wrap.
fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use super::*;

    fn sample() -> status::Status {
        let key = libp2p::identity::Keypair::generate_secp256k1();
        status::Status {
            peer_id: key.public().to_peer_id(),
            node_id: "ab".repeat(32),
            enr: "enr:-abc".into(),
            seq: 4,
            listen_addrs: vec![],
            observed_addrs: vec![],
            external_addrs: vec![],
            nat: status::NatState {
                status: nat::Status::Private,
                reason: "r".into(),
                since: SystemTime::now(),
                mappings: status::NatMappings::default(),
            },
            port_mapping: status::PortMappingState {
                state: crate::reach::mapping::State::Off,
                detail: String::new(),
                mapped: vec![],
                verified: vec![],
            },
            bootnodes: vec![],
            records: 3,
            direct_connections: 2,
            relayed_connections: 1,
            chosen_peers: 4,
            counters: status::Counters {
                punches_tried: 5,
                circuit_dials: 2,
                inputs_rejected: BTreeMap::from([("bad_signature".to_owned(), 7)]),
                inbound_denied_per_subnet: 3,
                port_mapping: BTreeMap::from([("no_gateway".to_owned(), 1)]),
                ..Default::default()
            },
        }
    }

    /// One scrape's text, with libp2p's metrics registered as the node registers them.
    fn scrape_text(status: &status::Status) -> String {
        let mut libp2p = Registry::default();
        let _metrics = libp2p::metrics::Metrics::new(&mut libp2p);
        render(&libp2p, status).unwrap()
    }

    #[test]
    fn a_scrape_has_libp2p_metrics_and_peerfind_numbers_from_the_status() {
        let text = scrape_text(&sample());
        assert!(text.contains("libp2p_"), "{text}");
        for line in [
            "peerfind_records 3",
            "peerfind_record_seq 4",
            "peerfind_connections{kind=\"direct\"} 2",
            "peerfind_connections{kind=\"relayed\"} 1",
            "peerfind_nat_status{status=\"private\"} 1",
            "peerfind_port_mapping_changes_total{state=\"no_gateway\"} 1",
            "peerfind_nat_status{status=\"public\"} 0",
            "peerfind_hole_punches_tried_total 5",
            "peerfind_circuit_dials_total 2",
            "peerfind_inputs_rejected_total{reason=\"bad_signature\"} 7",
            "peerfind_inbound_denied_per_subnet_total 3",
            "peerfind_chosen_peers 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert_eq!(text.matches("# EOF").count(), 1, "one end marker");
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
