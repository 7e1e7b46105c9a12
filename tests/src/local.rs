//! The cast on loopback: a bootnode and peers, each the real binary listening on 127.0.0.1
//! (TCP and QUIC, free ports). Shared by the tests that need no lab.

use std::time::Duration;

use crate::process::{Peerfind, field};

/// Bound on every wait: things on loopback happen in milliseconds; this only stops a broken
/// run from hanging.
pub const WAIT: Duration = Duration::from_secs(20);

/// Listen flags: TCP and QUIC on loopback, on ports the system picks.
pub const LISTEN: [&str; 4] = [
    "--listen",
    "/ip4/127.0.0.1/tcp/0",
    "--listen",
    "/ip4/127.0.0.1/udp/0/quic-v1",
];

/// What a ready bootnode says of itself.
#[derive(Debug, Clone)]
pub struct Bootnode {
    /// Its record, `enr:…`.
    pub enr: String,
    /// Its multiaddrs, each ending in `/p2p/<its PeerId>`.
    pub addrs: Vec<String>,
}

/// Starts a bootnode and waits until it is ready.
pub async fn bootnode() -> anyhow::Result<(Peerfind, Bootnode)> {
    bootnode_with(Peerfind::command(["bootnode"].iter().chain(&LISTEN))).await
}

/// Starts a bootnode called `name` with the command line `args` (which starts with
/// `bootnode`) and waits until it is ready.
pub async fn bootnode_named<I, S>(name: &str, args: I) -> anyhow::Result<(Peerfind, Bootnode)>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    ready(Peerfind::start(name, Peerfind::command(args))?).await
}

/// Starts `cmd`, a bootnode command line (with [`LISTEN`] or other flags), and waits until it
/// is ready.
pub async fn bootnode_with(cmd: tokio::process::Command) -> anyhow::Result<(Peerfind, Bootnode)> {
    ready(Peerfind::start("bootnode", cmd)?).await
}

/// Waits until the bootnode `boot` says it is ready, and what it says of itself.
async fn ready(mut boot: Peerfind) -> anyhow::Result<(Peerfind, Bootnode)> {
    let ready = boot.wait_for("bootnode ready", WAIT, |_| true).await?;
    // `addrs` is logged as a debug list: ["/ip4/…", "/ip4/…"].
    let addrs = field(&ready, "addrs")
        .trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .map(|s| s.trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let enr = field(&ready, "enr").to_owned();
    Ok((boot, Bootnode { enr, addrs }))
}

/// Starts `peerfind run` called `name`, joined through `bootnode` (a record or a multiaddr).
pub fn peer(name: &str, bootnode: &str) -> anyhow::Result<Peerfind> {
    let args = ["run", "--bootnode", bootnode].into_iter().chain(LISTEN);
    Peerfind::start(name, Peerfind::command(args))
}

/// A gRPC client of the status API at `addr`.
pub async fn api_client(
    addr: std::net::SocketAddr,
) -> anyhow::Result<peerfind_proto::v1::node_client::NodeClient<tonic::transport::Channel>> {
    Ok(peerfind_proto::v1::node_client::NodeClient::connect(format!("http://{addr}")).await?)
}

/// The node's status, through `GetStatus`.
pub async fn status(
    client: &mut peerfind_proto::v1::node_client::NodeClient<tonic::transport::Channel>,
) -> anyhow::Result<peerfind_proto::v1::NodeStatus> {
    client
        .get_status(peerfind_proto::v1::GetStatusRequest {})
        .await?
        .into_inner()
        .status
        .ok_or_else(|| anyhow::anyhow!("GetStatus answered without a status"))
}
