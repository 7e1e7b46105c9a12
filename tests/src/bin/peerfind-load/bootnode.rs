//! The bootnodes under load: the real binary started on loopback, and what this tool reads
//! of each (its status over the API, its metrics, its memory, CPU and I/O from /proc).

use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use peerfind_proto::v1 as pb;
use peerfind_proto::v1::node_client::NodeClient;
use peerfind_tests::local;
use peerfind_tests::process::Peerfind;

use crate::tally::Tally;

/// A bootnode under load: the real binary, its API client and where its metrics are.
pub(crate) struct UnderTest {
    pub(crate) process: Peerfind,
    pub(crate) enr: String,
    pub(crate) tcp: Multiaddr,
    pub(crate) peer_id: PeerId,
    pub(crate) pid: u32,
    pub(crate) client: NodeClient<tonic::transport::Channel>,
    pub(crate) metrics: SocketAddr,
}

impl UnderTest {
    /// Starts bootnode `index`, joined to every bootnode in `before`, in the mesh of
    /// `secret`, and feeds its events to `tally`.
    pub(crate) async fn start(
        index: usize,
        before: &[UnderTest],
        secret: &local::MeshSecret,
        tally: &Tally,
    ) -> anyhow::Result<Self> {
        let metrics = free_port()?;
        let mut args: Vec<String> = ["bootnode"]
            .iter()
            .chain(&local::LISTEN)
            .chain(&local::CROWD)
            .map(|s| (*s).to_owned())
            .collect();
        args.extend(["--metrics".to_owned(), metrics.to_string()]);
        args.extend(secret.args());
        for other in before {
            args.extend(["--bootnode".to_owned(), other.enr.clone()]);
        }
        let (mut process, ready) =
            local::bootnode_named(&format!("bootnode-{index}"), args).await?;
        let tcp: Multiaddr = ready
            .addrs
            .iter()
            .find(|a| a.contains("/tcp/"))
            .context("the bootnode's TCP address")?
            .parse()?;
        let peer_id = match tcp.iter().last() {
            Some(Protocol::P2p(id)) => id,
            _ => bail!("no /p2p/ in {tcp}"),
        };
        let pid = process.pid().context("the bootnode's pid")?;
        let api = process.api_addr().await?;
        let mut client = NodeClient::connect(format!("http://{api}")).await?;
        let events = client
            .watch_events(pb::WatchEventsRequest {})
            .await?
            .into_inner();
        tokio::spawn(tally.clone().follow(events));
        Ok(Self {
            process,
            enr: ready.enr,
            tcp,
            peer_id,
            pid,
            client,
            metrics,
        })
    }
}

/// The counts of `GetStatus` this tool reads.
pub(crate) struct Counts {
    pub(crate) direct: u64,
    pub(crate) records: u64,
}

pub(crate) async fn status(
    client: &mut NodeClient<tonic::transport::Channel>,
) -> anyhow::Result<Counts> {
    let status = client
        .get_status(pb::GetStatusRequest {})
        .await?
        .into_inner()
        .status
        .context("GetStatus without a status")?;
    let counts = status.counts.unwrap_or_default();
    Ok(Counts {
        direct: counts.direct_connections,
        records: counts.records,
    })
}

/// A free loopback port, for a bootnode's metrics endpoint.
fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The value of a counter on a Prometheus endpoint, `None` when it cannot be read.
pub(crate) async fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await.ok()?;
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|a, b| a + b)
}

/// Bytes a process read and wrote through system calls (sockets, mostly), 0 when unreadable.
pub(crate) fn io_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .map(|s| {
            s.lines()
                .filter(|l| l.starts_with("rchar:") || l.starts_with("wchar:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

/// CPU time (user and system) the bootnodes used so far, in ms: what a phase costs them,
/// apart from the simulated peers that share the machine. `/proc/<pid>/stat` counts in
/// USER_HZ, which Linux fixes at 100 per second for every architecture's /proc.
pub(crate) fn cpu_ms(bootnodes: &[UnderTest]) -> u64 {
    bootnodes
        .iter()
        .filter_map(|b| {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", b.pid)).ok()?;
            // The command name may hold spaces and parentheses: count from the last ')'.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some(ticks * 10)
        })
        .sum()
}

/// Resident memory of a process, in KiB (0 when unreadable).
pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
