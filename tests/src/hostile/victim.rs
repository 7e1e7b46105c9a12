//! A victim: a TCP listener and a UDP socket on one loopback port that count what reaches
//! them, so a test can say "the victim received nothing" of a reflection attack.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, UdpSocket};

/// The victims' address: another loopback address than the nodes' 127.0.0.1, so that a record
/// naming it is not proven by an attacker's own loopback connection.
pub const VICTIM_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
use tokio::task::JoinHandle;

/// What reached the victim so far.
#[derive(Debug, Default)]
struct Counts {
    tcp_connections: AtomicU64,
    udp_datagrams: AtomicU64,
    udp_bytes: AtomicU64,
}

/// A loopback address that counts TCP connections and UDP datagrams; stops when dropped.
pub struct Victim {
    addr: SocketAddr,
    counts: Arc<Counts>,
    tasks: Vec<JoinHandle<()>>,
}

impl Victim {
    /// Binds a TCP listener and a UDP socket on one free port of [`VICTIM_IP`].
    pub async fn start() -> anyhow::Result<Self> {
        // The same port for both, so a record naming it for TCP and QUIC aims at one victim.
        for _ in 0..32 {
            let tcp = TcpListener::bind((VICTIM_IP, 0)).await?;
            let addr = tcp.local_addr()?;
            let Ok(udp) = UdpSocket::bind(addr).await else {
                continue;
            };
            let counts = Arc::new(Counts::default());
            let c = counts.clone();
            let accept = tokio::spawn(async move {
                while let Ok((stream, _)) = tcp.accept().await {
                    c.tcp_connections.fetch_add(1, Ordering::Relaxed);
                    drop(stream);
                }
            });
            let c = counts.clone();
            let receive = tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                while let Ok((n, _)) = udp.recv_from(&mut buf).await {
                    c.udp_datagrams.fetch_add(1, Ordering::Relaxed);
                    c.udp_bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
            });
            return Ok(Self {
                addr,
                counts,
                tasks: vec![accept, receive],
            });
        }
        anyhow::bail!("no loopback port free for both TCP and UDP")
    }

    /// The victim's `ip:port` (TCP and UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far.
    pub fn tcp_connections(&self) -> u64 {
        self.counts.tcp_connections.load(Ordering::Relaxed)
    }

    /// UDP datagrams received so far.
    pub fn udp_datagrams(&self) -> u64 {
        self.counts.udp_datagrams.load(Ordering::Relaxed)
    }

    /// UDP bytes received so far.
    pub fn udp_bytes(&self) -> u64 {
        self.counts.udp_bytes.load(Ordering::Relaxed)
    }

    /// Everything that reached the victim, for a failure message.
    pub fn summary(&self) -> String {
        format!(
            "{} TCP connections, {} UDP datagrams ({} bytes)",
            self.tcp_connections(),
            self.udp_datagrams(),
            self.udp_bytes()
        )
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
