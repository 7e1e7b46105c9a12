//! The task that owns the gateway: it searches for it once, asks for its external IP, maps
//! each listen address the behaviour hands it, renews every lease at half its length, and
//! removes mappings when told. Requests go one at a time, each bounded
//! ([`super::http`]); the task talks to [`super::Behaviour`] over two bounded channels.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use igd_next::aio::Gateway;
use igd_next::{PortMappingProtocol, SearchOptions};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use super::http::Bounded;

/// How long the search for a gateway waits for answers: a gateway answers an SSDP search
/// within its `MX` of a few seconds; none by then is a LAN without one.
pub const SEARCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The lease asked for each mapping: an hour, as most clients ask, so a node killed without
/// its shutdown leaves a mapping behind for at most that long. Renewed at half.
pub const LEASE: Duration = Duration::from_secs(3600);

/// The longest gateway URL taken (its root and control URLs): a real one is under 100 bytes.
pub const MAX_URL: usize = 512;

/// What the description of each mapping says on the router's page.
const DESCRIPTION: &str = "peerfind";

/// What the behaviour asks of the task.
#[derive(Debug)]
pub(super) enum Command {
    /// Map this listen address (a private IPv4 with a TCP or UDP port).
    Map(Multiaddr),
    /// The listener closed: remove its mapping.
    Unmap(Multiaddr),
    /// Remove every mapping, then answer (the node stops).
    UnmapAll(oneshot::Sender<()>),
}

/// What the task tells the behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Report {
    /// No gateway answered the search, or it did not tell its external IP.
    NotFound,
    /// The gateway is behind another NAT ([`behind_another_nat`]).
    NotRoutable,
    /// The gateway maps `external` to `local`.
    Mapped {
        local: Multiaddr,
        external: Multiaddr,
    },
    /// The gateway refused to renew the mapping of `local` to `external`.
    Expired {
        local: Multiaddr,
        external: Multiaddr,
    },
}

/// Whether a gateway whose external IP is `ip` sits behind another NAT: private (RFC 1918),
/// shared (100.64.0.0/10), loopback, link-local or unspecified. Not documentation or
/// benchmarking ranges: see the module doc of `crate::igd`.
pub fn behind_another_nat(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    ip.is_private() || shared || ip.is_loopback() || ip.is_link_local() || ip.is_unspecified()
}

/// The socket and protocol of a listen address the gateway can map: a private IPv4 address
/// with a TCP or UDP port (QUIC's is UDP).
pub(super) fn mappable(addr: &Multiaddr) -> Option<(SocketAddr, PortMappingProtocol)> {
    let mut parts = addr.iter();
    let Some(Protocol::Ip4(ip)) = parts.next() else {
        return None;
    };
    if !ip.is_private() {
        return None;
    }
    let (port, protocol) = match parts.next()? {
        Protocol::Tcp(port) => (port, PortMappingProtocol::TCP),
        Protocol::Udp(port) => (port, PortMappingProtocol::UDP),
        _ => return None,
    };
    (port != 0).then_some((SocketAddr::new(ip.into(), port), protocol))
}

/// `local` with the gateway's external IP and port in place of its own.
fn external_addr(local: &Multiaddr, ip: Ipv4Addr, port: u16) -> Multiaddr {
    local
        .iter()
        .map(|p| match p {
            Protocol::Ip4(_) => Protocol::Ip4(ip),
            Protocol::Tcp(_) => Protocol::Tcp(port),
            Protocol::Udp(_) => Protocol::Udp(port),
            other => other,
        })
        .collect()
}

/// One mapping the gateway granted.
struct Mapping {
    local: Multiaddr,
    socket: SocketAddr,
    protocol: PortMappingProtocol,
    external: Multiaddr,
    port: u16,
}

/// The task: see the module doc. Ends when the behaviour is gone or after
/// [`Command::UnmapAll`].
pub(super) async fn run(mut commands: mpsc::Receiver<Command>, reports: mpsc::Sender<Report>) {
    let Some((gateway, ip)) = find(&reports).await else {
        // Nothing mapped: answer a stop at once.
        while let Some(command) = commands.recv().await {
            if let Command::UnmapAll(done) = command {
                let _ = done.send(());
                return;
            }
        }
        return;
    };
    serve(&gateway, ip, LEASE, commands, reports).await;
}

/// Maps, renews (every half `lease`) and removes through `gateway`, whose external IP is
/// `ip`, until the behaviour is gone or after [`Command::UnmapAll`].
async fn serve(
    gateway: &Gateway<Bounded>,
    ip: Ipv4Addr,
    lease: Duration,
    mut commands: mpsc::Receiver<Command>,
    reports: mpsc::Sender<Report>,
) {
    let mut mappings: Vec<Mapping> = Vec::new();
    let mut renew_at = Instant::now() + lease / 2;
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Map(local)) => {
                    if mappings.len() >= super::MAX_MAPPINGS || mappings.iter().any(|m| m.local == local) {
                        continue;
                    }
                    if let Some(mapping) = map(gateway, ip, lease, local).await {
                        let report = Report::Mapped { local: mapping.local.clone(), external: mapping.external.clone() };
                        mappings.push(mapping);
                        let _ = reports.send(report).await;
                    }
                }
                Some(Command::Unmap(local)) => {
                    if let Some(i) = mappings.iter().position(|m| m.local == local) {
                        let mapping = mappings.swap_remove(i);
                        remove(gateway, &mapping).await;
                    }
                }
                Some(Command::UnmapAll(done)) => {
                    for mapping in mappings.drain(..) {
                        remove(gateway, &mapping).await;
                    }
                    let _ = done.send(());
                    return;
                }
                None => return,
            },
            () = sleep_until(renew_at) => {
                renew_at = Instant::now() + lease / 2;
                let mut kept = Vec::with_capacity(mappings.len());
                for mapping in mappings.drain(..) {
                    if renew(gateway, lease, &mapping).await {
                        kept.push(mapping);
                    } else {
                        let _ = reports.send(Report::Expired { local: mapping.local, external: mapping.external }).await;
                    }
                }
                mappings = kept;
            }
        }
    }
}

/// Searches for the gateway and asks its external IP; reports why when there is none to use.
async fn find(reports: &mpsc::Sender<Report>) -> Option<(Gateway<Bounded>, Ipv4Addr)> {
    let options = SearchOptions {
        timeout: Some(SEARCH_TIMEOUT),
        single_search_timeout: Some(SEARCH_TIMEOUT),
        ..SearchOptions::default()
    };
    let search = igd_next::aio::tokio::search_gateway(options);
    let found = match tokio::time::timeout(SEARCH_TIMEOUT, search).await {
        Ok(Ok(found)) => found,
        Ok(Err(error)) => {
            tracing::debug!(%error, "UPnP gateway search failed");
            let _ = reports.send(Report::NotFound).await;
            return None;
        }
        Err(_) => {
            let _ = reports.send(Report::NotFound).await;
            return None;
        }
    };
    if found.root_url.len() > MAX_URL || found.control_url.len() > MAX_URL {
        tracing::info!(gateway = %found.addr, "the UPnP gateway's URLs are too long: not used");
        let _ = reports.send(Report::NotFound).await;
        return None;
    }
    // The same gateway, its control requests bounded.
    let gateway = Gateway {
        addr: found.addr,
        root_url: found.root_url,
        control_url: found.control_url,
        control_schema_url: found.control_schema_url,
        control_schema: found.control_schema,
        provider: Bounded,
    };
    let ip = match gateway.get_external_ip().await {
        Ok(IpAddr::V4(ip)) => ip,
        Ok(IpAddr::V6(ip)) => {
            tracing::info!(gateway = %gateway.addr, %ip, "the UPnP gateway names an IPv6 external address: no port mapping");
            let _ = reports.send(Report::NotFound).await;
            return None;
        }
        Err(error) => {
            tracing::info!(gateway = %gateway.addr, %error, "the UPnP gateway did not tell its external address");
            let _ = reports.send(Report::NotFound).await;
            return None;
        }
    };
    if behind_another_nat(ip) {
        tracing::info!(gateway = %gateway.addr, external = %ip, "the UPnP gateway is behind another NAT");
        let _ = reports.send(Report::NotRoutable).await;
        return None;
    }
    tracing::info!(gateway = %gateway.addr, external = %ip, "UPnP gateway found");
    Some((gateway, ip))
}

/// Asks for `local`'s own port first (the record then keeps the port peers know), then for
/// any port the gateway picks.
async fn map(
    gateway: &Gateway<Bounded>,
    ip: Ipv4Addr,
    lease: Duration,
    local: Multiaddr,
) -> Option<Mapping> {
    let (socket, protocol) = mappable(&local)?;
    let lease = secs(lease);
    let port = match gateway
        .add_port(protocol, socket.port(), socket, lease, DESCRIPTION)
        .await
    {
        Ok(()) => socket.port(),
        Err(error) => {
            tracing::debug!(%local, %error, "the UPnP gateway refused our own port; asking for any");
            match gateway
                .add_any_port(protocol, socket, lease, DESCRIPTION)
                .await
            {
                Ok(port) => port,
                Err(error) => {
                    tracing::info!(%local, %error, "the UPnP gateway refused a mapping");
                    return None;
                }
            }
        }
    };
    Some(Mapping {
        external: external_addr(&local, ip, port),
        local,
        socket,
        protocol,
        port,
    })
}

/// Asks for the same mapping again, for another lease.
async fn renew(gateway: &Gateway<Bounded>, lease: Duration, m: &Mapping) -> bool {
    let result = gateway
        .add_port(m.protocol, m.port, m.socket, secs(lease), DESCRIPTION)
        .await;
    if let Err(error) = &result {
        tracing::info!(external = %m.external, %error, "the UPnP gateway refused to renew a mapping");
    }
    result.is_ok()
}

async fn remove(gateway: &Gateway<Bounded>, m: &Mapping) {
    match gateway.remove_port(m.protocol, m.port).await {
        Ok(()) => tracing::info!(external = %m.external, "port mapping removed"),
        Err(error) => {
            tracing::info!(external = %m.external, %error, "the UPnP gateway did not remove a mapping")
        }
    }
}

fn secs(lease: Duration) -> u32 {
    u32::try_from(lease.as_secs()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
