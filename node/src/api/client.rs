//! The command-line side of the API: `peerfind status`, `peerfind peers` and `peerfind watch`
//! connect to a running node's `--api`, ask, and print what it says (see [`super::render`]).
//!
//! Every wait is bounded: connecting by [`CONNECT_TIMEOUT`], each answer by [`CALL_TIMEOUT`];
//! only `watch` waits for events as long as the node runs.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use peerfind_proto::v1 as pb;
use peerfind_proto::v1::node_client::NodeClient;
use tonic::transport::{Channel, Endpoint};

use super::render;

/// Longest wait for the TCP connection to the API. A node on this machine answers in well
/// under a millisecond; nothing listening is refused at once.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest wait for one answer: above the server's own wait for the node
/// ([`super::server::QUERY_TIMEOUT`]), so its UNAVAILABLE arrives before we give up.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How to print answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text for people.
    Table,
    /// JSON for scripts: one document, or one object per line for `watch`.
    Json,
}

/// Why a command could not print its answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the address (refused, unreachable or too slow to connect).
    #[error("no peerfind node answers at {addr}: is it running? (set --api)")]
    Unreachable {
        /// The address tried.
        addr: SocketAddr,
    },
    /// Something answers, but not the peerfind API.
    #[error("the server at {addr} is not a peerfind node: {message}")]
    NotPeerfind {
        /// The address.
        addr: SocketAddr,
        /// What it said.
        message: String,
    },
    /// The node took longer than [`CALL_TIMEOUT`].
    #[error("the node at {addr} did not answer within {} s", CALL_TIMEOUT.as_secs())]
    Timeout {
        /// The address.
        addr: SocketAddr,
    },
    /// The node is stopping, or the connection broke.
    #[error("the node at {addr} is unavailable: {message}")]
    Unavailable {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        message: String,
    },
    /// The node refused the request (a malformed filter, no such peer, too many watchers).
    #[error("{message}")]
    Refused {
        /// The gRPC status code.
        code: tonic::Code,
        /// The node's explanation.
        message: String,
    },
    /// The answer lacks a field the node always sends.
    #[error("the node at {addr} sent an answer without {field}")]
    Incomplete {
        /// The address.
        addr: SocketAddr,
        /// The missing field.
        field: &'static str,
    },
    /// Printing failed (a closed pipe, a full disk).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Connects to the API at `addr`.
async fn connect(addr: SocketAddr) -> Result<NodeClient<Channel>, ClientError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|_| ClientError::Unreachable { addr })?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    let channel = endpoint
        .connect()
        .await
        .map_err(|_| ClientError::Unreachable { addr })?;
    Ok(NodeClient::new(channel))
}

/// Waits for `call` to the node at `addr` within [`CALL_TIMEOUT`] and unwraps its answer.
async fn call<T>(
    addr: SocketAddr,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(refused(addr, status)),
        Err(_) => Err(ClientError::Timeout { addr }),
    }
}

/// The error for a call the server refused. Its message goes to the terminal, escaped: the
/// server at `--api` may not be a peerfind node, and a node's message may quote a peer.
fn refused(addr: SocketAddr, status: tonic::Status) -> ClientError {
    let message = render::escape(status.message()).into_owned();
    match status.code() {
        tonic::Code::Unavailable => ClientError::Unavailable { addr, message },
        tonic::Code::Unimplemented => ClientError::NotPeerfind { addr, message },
        code => ClientError::Refused { code, message },
    }
}

/// `peerfind status`: the node's own state.
pub async fn status(
    addr: SocketAddr,
    format: Format,
    mut out: impl Write,
) -> Result<(), ClientError> {
    let mut client = connect(addr).await?;
    let answer = call(addr, client.get_status(pb::GetStatusRequest {})).await?;
    let status = answer.status.ok_or(ClientError::Incomplete {
        addr,
        field: "status",
    })?;
    match format {
        Format::Table => write!(out, "{}", render::status_table(&status))?,
        Format::Json => writeln!(out, "{:#}", render::status_json(&status))?,
    }
    Ok(())
}

/// `peerfind peers`: the node's known peers, optionally only the one with `peer_id` and/or
/// `node_id`.
pub async fn peers(
    addr: SocketAddr,
    peer_id: Option<String>,
    node_id: Option<String>,
    format: Format,
    mut out: impl Write,
) -> Result<(), ClientError> {
    let mut client = connect(addr).await?;
    let request = pb::ListPeersRequest {
        peer_id: peer_id.unwrap_or_default(),
        node_id: node_id.unwrap_or_default(),
    };
    let answer = call(addr, client.list_peers(request)).await?;
    match format {
        Format::Table => write!(
            out,
            "{}",
            render::peers_table(&answer.peers, std::time::SystemTime::now())
        )?,
        Format::Json => writeln!(out, "{:#}", render::peers_json(&answer.peers))?,
    }
    Ok(())
}

/// `peerfind watch`: one line per event as it happens, until the node stops (an error, so a
/// script notices) or the command is interrupted.
pub async fn watch(
    addr: SocketAddr,
    format: Format,
    mut out: impl Write,
) -> Result<(), ClientError> {
    let mut client = connect(addr).await?;
    let mut events = call(addr, client.watch_events(pb::WatchEventsRequest {})).await?;
    // The node subscribed us before answering: from here on nothing is missed. Said on
    // stderr, so stdout holds events only.
    eprintln!("watching the node at {addr}: one line per event, Ctrl-C to stop");
    loop {
        match events.message().await {
            Ok(Some(event)) => {
                match format {
                    Format::Table => writeln!(out, "{}", render::event_line(&event))?,
                    Format::Json => writeln!(out, "{}", render::event_json(&event))?,
                }
                out.flush()?;
            }
            Ok(None) => {
                return Err(ClientError::Unavailable {
                    addr,
                    message: "the node ended the stream".into(),
                });
            }
            Err(status) => return Err(refused(addr, status)),
        }
    }
}
