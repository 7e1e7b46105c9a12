//! The cast on loopback: a bootnode and peers, each the real binary listening on 127.0.0.1
//! (TCP and QUIC, free ports). Shared by the tests that need no lab.

use std::time::Duration;

use crate::process::Peerfind;

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

/// Flags of a bootnode that a crowd of simulated peers joins on loopback: they all come from
/// 127.0.0.1, one address block, of which a bootnode keeps 64 records by default
/// (`--table-per-group`) and from which it takes 6,000 record messages a minute
/// (`--gossip-rate-per-subnet`); this lifts both caps, so it keeps them all.
/// The node has no loopback exemption instead: behind a local proxy or port forwarder, every
/// remote peer would reach a bootnode from loopback, and a flood with them.
pub const CROWD: [&str; 4] = [
    "--table-per-group",
    "2048",
    "--gossip-rate-per-subnet",
    "1000000",
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

/// Starts a bootnode for a crowd of simulated peers ([`CROWD`]) and waits until it is ready.
pub async fn crowd_bootnode() -> anyhow::Result<(Peerfind, Bootnode)> {
    bootnode_with(Peerfind::command(
        ["bootnode"].iter().chain(&LISTEN).chain(&CROWD),
    ))
    .await
}

/// A mesh secret (`--mesh-secret-file`) for the bootnodes of one test's network: 32 random
/// bytes as hex in a file of its own directory, removed when dropped.
pub struct MeshSecret {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl MeshSecret {
    /// A fresh secret.
    pub fn new() -> anyhow::Result<Self> {
        use std::io::Read as _;
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("mesh.secret");
        std::fs::write(&path, text + "\n")?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(Self { _dir: dir, path })
    }

    /// The flag that gives a bootnode this secret.
    pub fn args(&self) -> [String; 2] {
        [
            "--mesh-secret-file".to_owned(),
            self.path.display().to_string(),
        ]
    }
}

/// Starts a bootnode called `name` holding `secret`, joined to the bootnodes `others` (their
/// records), and waits until it is ready: the bootnodes of one mesh as an operator starts
/// them, each new one told of some that run already, none told of those that come later.
pub async fn bootnode_in_mesh(
    name: &str,
    secret: &MeshSecret,
    others: &[&Bootnode],
) -> anyhow::Result<(Peerfind, Bootnode)> {
    let mut args: Vec<String> = ["bootnode"]
        .iter()
        .chain(&LISTEN)
        .map(|s| (*s).to_owned())
        .collect();
    args.extend(secret.args());
    for other in others {
        args.extend(["--bootnode".to_owned(), other.enr.clone()]);
    }
    bootnode_named(name, args).await
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

/// Waits until the bootnode `boot` is ready: its record holds an address for every
/// transport it listens on (a bootnode advertises its listen addresses once all its
/// listeners are up). Its listen addresses change without an event, so this polls the API.
async fn ready(mut boot: Peerfind) -> anyhow::Result<(Peerfind, Bootnode)> {
    let (enr, addrs) = boot
        .until_polled(
            "the bootnode's record with its listen addresses",
            WAIT,
            |s| {
                let transports = transports_of(&s.status.listen_addrs);
                let record = s.record();
                (!transports.is_empty() && record.has(&transports))
                    .then(|| (s.status.enr.clone(), record.multiaddrs))
            },
        )
        .await?;
    Ok((boot, Bootnode { enr, addrs }))
}

/// The transports ("tcp", "quic") of `addrs`.
pub fn transports_of(addrs: &[String]) -> Vec<&'static str> {
    let mut out = Vec::new();
    if addrs.iter().any(|a| a.contains("/tcp/")) {
        out.push("tcp");
    }
    if addrs.iter().any(|a| a.contains("/quic-v1")) {
        out.push("quic");
    }
    out
}

/// Starts `peerfind run` called `name`, joined through `bootnode` (a record or a multiaddr).
pub fn peer(name: &str, bootnode: &str) -> anyhow::Result<Peerfind> {
    let args = ["run", "--bootnode", bootnode].into_iter().chain(LISTEN);
    Peerfind::start(name, Peerfind::command(args))
}

/// Starts a node with `start` while the bootnode `boot` is held still (SIGSTOP), and
/// subscribes the node's API watcher before the bootnode runs on: the node meets no one
/// before its watcher, so the events its API delivers are every one since its start (its
/// first record, first connections and first records learned included).
pub async fn watched(
    boot: &Peerfind,
    start: impl FnOnce() -> anyhow::Result<Peerfind>,
) -> anyhow::Result<Peerfind> {
    boot.pause()?;
    let started = async {
        let mut node = start()?;
        node.api().await?;
        anyhow::Ok(node)
    }
    .await;
    boot.resume()?;
    started
}

/// [`peer`], [`watched`] while the bootnode `boot` is held still.
pub async fn peer_watched(name: &str, boot: &Peerfind, bootnode: &str) -> anyhow::Result<Peerfind> {
    watched(boot, || peer(name, bootnode)).await
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
