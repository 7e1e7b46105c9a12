//! The command-line side of the API: `peerfind status`, `peers`, `watch`, `ping` and
//! `netcheck` connect to a running node's `--api`, ask, and print what it says (see
//! [`super::render`]).
//!
//! Every wait is bounded: connecting by [`CONNECT_TIMEOUT`], each answer by [`CALL_TIMEOUT`];
//! only `watch` waits for events as long as the node runs, and `ping` as long as its rounds.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use peerfind_proto::v1 as pb;
use peerfind_proto::v1::diagnostics_client::DiagnosticsClient;
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
    channel(addr).await.map(NodeClient::new)
}

/// A channel to the API at `addr`.
async fn channel(addr: SocketAddr) -> Result<Channel, ClientError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|_| ClientError::Unreachable { addr })?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    let channel = endpoint
        .connect()
        .await
        .map_err(|_| ClientError::Unreachable { addr })?;
    Ok(channel)
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

/// What `peerfind ping` asks for.
#[derive(Debug, Clone)]
pub struct PingArgs {
    /// The peer's PeerId.
    pub peer_id: String,
    /// Rounds (0: the node's default, 10).
    pub count: u32,
    /// Stop at the first direct answer.
    pub until_direct: bool,
    /// Between rounds.
    pub interval: Duration,
    /// How long to wait for a connection.
    pub wait: Duration,
}

/// `peerfind ping`: one line per round as it ends. Fails (exit 1) when no round was answered,
/// or with `until_direct` when none was answered directly.
pub async fn ping(
    addr: SocketAddr,
    args: PingArgs,
    format: Format,
    mut out: impl Write,
) -> Result<(), ClientError> {
    let mut client = DiagnosticsClient::new(channel(addr).await?);
    let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
    let request = pb::PingRequest {
        peer_id: args.peer_id.clone(),
        count: args.count,
        until_direct: args.until_direct,
        interval_ms: ms(args.interval),
        wait_ms: ms(args.wait),
    };
    let mut rounds = call(addr, client.ping(request)).await?;
    let peer = render::escape(&args.peer_id).into_owned();
    let (mut answered, mut direct) = (0, false);
    loop {
        match rounds.message().await {
            Ok(Some(round)) => {
                if round.rtt_ms.is_some() {
                    answered += 1;
                    direct |= round.path == pb::PingPath::Direct as i32;
                }
                match format {
                    Format::Table => writeln!(out, "{}", render::round_line(&peer, &round))?,
                    Format::Json => writeln!(out, "{}", render::round_json(&round))?,
                }
                out.flush()?;
            }
            Ok(None) => break,
            Err(status) => return Err(refused(addr, status)),
        }
    }
    match (answered, args.until_direct && !direct) {
        (0, _) => Err(ClientError::Refused {
            code: tonic::Code::Unavailable,
            message: format!("no answer from {peer}"),
        }),
        (_, true) => Err(ClientError::Refused {
            code: tonic::Code::DeadlineExceeded,
            message: format!("{peer} answered only through a relay"),
        }),
        _ => Ok(()),
    }
}

/// `peerfind netcheck`: what the configured bootnodes see of the node.
pub async fn netcheck(
    addr: SocketAddr,
    format: Format,
    mut out: impl Write,
) -> Result<(), ClientError> {
    let mut client = DiagnosticsClient::new(channel(addr).await?);
    let answer = call(addr, client.netcheck(pb::NetcheckRequest {})).await?;
    match format {
        Format::Table => write!(out, "{}", render::netcheck_text(&answer))?,
        Format::Json => writeln!(out, "{:#}", render::netcheck_json(&answer))?,
    }
    Ok(())
}
