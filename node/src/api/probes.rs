//! Probes for orchestrators, on the metrics endpoint beside `/metrics`, since Kubernetes,
//! compose and load balancers probe over HTTP:
//! - `/healthz`: 200 when the node's event loop answers within [`PROBE_TIMEOUT`]; 503 when it
//!   is stuck or stopped (a liveness probe: restart it).
//! - `/readyz`: 200 when the node does what it is for: a peer has a bootnode connected and an
//!   address in its record; a bootnode listens and has its addresses in its record. 503,
//!   with what is missing, otherwise (a readiness probe: send no one to it yet).
//! - `/enr`: the node's record and the multiaddrs it names, one per line, as `bootnode.txt`
//!   has them, so a peer can fetch its bootnode's record over HTTP.
//!
//! Each asks the node the way a scrape does, within the scrapes' limit.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::metrics::Scrape;
use crate::config::Mode;
use crate::status;

/// The liveness probe's path.
pub const HEALTHZ: &str = "/healthz";
/// The readiness probe's path.
pub const READYZ: &str = "/readyz";
/// The record's path.
pub const ENR: &str = "/enr";

/// Longest wait for the node's answer: a loop that does not answer within it is stuck.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The node's status, or the response that says why there is none.
async fn status(scrape: &Scrape) -> Result<status::Status, Response> {
    let Ok(_permit) = scrape.running.try_acquire() else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests at once\n",
        )
            .into_response());
    };
    match tokio::time::timeout(PROBE_TIMEOUT, scrape.handle.status()).await {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(status::Stopped)) => {
            Err((StatusCode::SERVICE_UNAVAILABLE, "the node has stopped\n").into_response())
        }
        Err(_) => {
            Err((StatusCode::SERVICE_UNAVAILABLE, "the node did not answer\n").into_response())
        }
    }
}

pub(super) async fn healthz(State(scrape): State<Arc<Scrape>>) -> Response {
    match status(&scrape).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(response) => response,
    }
}

pub(super) async fn readyz(State(scrape): State<Arc<Scrape>>) -> Response {
    let status = match status(&scrape).await {
        Ok(status) => status,
        Err(response) => return response,
    };
    let missing = missing(scrape.mode, &status);
    if missing.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let text = format!("not ready: {}\n", missing.join("; "));
        (StatusCode::SERVICE_UNAVAILABLE, text).into_response()
    }
}

pub(super) async fn enr(State(scrape): State<Arc<Scrape>>) -> Response {
    let status = match status(&scrape).await {
        Ok(status) => status,
        Err(response) => return response,
    };
    let mut lines = vec![status.enr.clone()];
    lines.extend(
        status
            .observed_addrs
            .iter()
            .map(|a| format!("{a}/p2p/{}", status.peer_id)),
    );
    (StatusCode::OK, lines.join("\n") + "\n").into_response()
}

/// What a node of `mode` still lacks to be ready, in plain words; none when ready.
fn missing(mode: Mode, status: &status::Status) -> Vec<&'static str> {
    let mut missing = Vec::new();
    match mode {
        Mode::Peer => {
            if !status.bootnodes.iter().any(|b| b.connected) {
                missing.push("no bootnode connected");
            }
            if status.observed_addrs.is_empty() {
                missing.push("no address in the record yet");
            }
        }
        Mode::Bootnode => {
            if status.listen_addrs.is_empty() {
                missing.push("not listening");
            }
            if status.observed_addrs.is_empty() {
                missing.push("no address in the record yet");
            }
        }
    }
    missing
}
