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
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn only_a_gateway_behind_another_nat_is_refused() {
        for ip in [
            "192.168.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "169.254.1.1",
            "0.0.0.0",
        ] {
            assert!(behind_another_nat(ip.parse().unwrap()), "{ip}");
        }
        // Documentation and benchmarking ranges are the lab's: an AutoNAT dial-back decides.
        for ip in [
            "198.51.100.101",
            "203.0.113.7",
            "198.18.0.1",
            "100.128.0.1",
            "8.8.8.8",
        ] {
            assert!(!behind_another_nat(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn only_private_ipv4_tcp_and_udp_listen_addresses_are_mapped() {
        let tcp = mappable(&"/ip4/192.168.1.2/tcp/9000".parse().unwrap()).unwrap();
        assert_eq!(
            tcp,
            (
                "192.168.1.2:9000".parse().unwrap(),
                PortMappingProtocol::TCP
            )
        );
        let quic = mappable(&"/ip4/10.0.0.2/udp/9001/quic-v1".parse().unwrap()).unwrap();
        assert_eq!(quic.1, PortMappingProtocol::UDP);
        for no in [
            "/ip4/127.0.0.1/tcp/9000",
            "/ip4/198.51.100.30/tcp/9000",
            "/ip4/192.168.1.2/tcp/0",
            "/ip6/fd00::2/tcp/9000",
            "/ip4/198.51.100.10/tcp/9000/p2p/16Uiu2HAmQNmemJeVgD5TsgxLYjhrFAKDuS5w4qMwvs4BMPXxVXFy/p2p-circuit",
        ] {
            assert!(mappable(&no.parse().unwrap()).is_none(), "{no}");
        }
    }

    /// A gateway on loopback that answers every control request and records its action; it
    /// refuses `AddPortMapping` with 718 (ConflictInMappingEntry) while `refuse` is set.
    async fn fake_gateway(refuse: Arc<AtomicBool>) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let actions = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&actions);
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let request = read_request(&mut stream).await;
                let action = request
                    .lines()
                    .find_map(|l| l.strip_prefix("SOAPAction: "))
                    .and_then(|a| a.split('#').nth(1))
                    .unwrap_or_default()
                    .trim_end_matches('"')
                    .to_owned();
                seen.lock().unwrap().push(action.clone());
                let refused = action == "AddPortMapping" && refuse.load(Ordering::Relaxed);
                let (status, body) = if refused {
                    ("500 Internal Server Error", FAULT.to_owned())
                } else {
                    ("200 OK", ok(&action))
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        (addr, actions)
    }

    async fn read_request(stream: &mut TcpStream) -> String {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|l| l.parse().ok())
                    .unwrap_or_default();
                if body.len() >= len || n == 0 {
                    return text;
                }
            }
        }
    }

    const ENVELOPE: &str = r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>BODY</s:Body></s:Envelope>"#;

    const FAULT: &str = r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>"#;

    fn ok(action: &str) -> String {
        let answer = format!(
            r#"<u:{action}Response xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"></u:{action}Response>"#
        );
        ENVELOPE.replace("BODY", &answer)
    }

    fn gateway_at(addr: SocketAddr) -> Gateway<Bounded> {
        let args = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let schema = HashMap::from([
            (
                "AddPortMapping".to_owned(),
                args(&[
                    "NewRemoteHost",
                    "NewExternalPort",
                    "NewProtocol",
                    "NewInternalPort",
                    "NewInternalClient",
                    "NewEnabled",
                    "NewPortMappingDescription",
                    "NewLeaseDuration",
                ]),
            ),
            (
                "DeletePortMapping".to_owned(),
                args(&["NewRemoteHost", "NewExternalPort", "NewProtocol"]),
            ),
        ]);
        Gateway {
            addr,
            root_url: "/rootDesc.xml".into(),
            control_url: "/ctl/IPConn".into(),
            control_schema_url: "/WANIPCn.xml".into(),
            control_schema: schema,
            provider: Bounded,
        }
    }

    async fn next(reports: &mut mpsc::Receiver<Report>) -> Report {
        tokio::time::timeout(Duration::from_secs(10), reports.recv())
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn a_mapping_is_renewed_at_half_the_lease_lost_when_refused_and_removed_at_the_stop() {
        let refuse = Arc::new(AtomicBool::new(false));
        let (addr, actions) = fake_gateway(Arc::clone(&refuse)).await;
        let gateway = gateway_at(addr);
        let ip = Ipv4Addr::new(198, 51, 100, 101);
        let (commands, commands_rx) = mpsc::channel(4);
        let (reports_tx, mut reports) = mpsc::channel(4);
        let lease = Duration::from_secs(2);
        let task = tokio::spawn(async move {
            serve(&gateway, ip, lease, commands_rx, reports_tx).await;
        });

        let tcp: Multiaddr = "/ip4/192.168.1.2/tcp/9000".parse().unwrap();
        commands.send(Command::Map(tcp.clone())).await.unwrap();
        let external: Multiaddr = "/ip4/198.51.100.101/tcp/9000".parse().unwrap();
        assert_eq!(
            next(&mut reports).await,
            Report::Mapped {
                local: tcp.clone(),
                external: external.clone()
            }
        );
        // The renewals (every 1 s) are granted, a later one refused: the mapping is lost.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        {
            let actions = actions.lock().unwrap();
            assert!(actions.len() >= 2, "{actions:?}");
            assert!(actions.iter().all(|a| a == "AddPortMapping"), "{actions:?}");
        }
        refuse.store(true, Ordering::Relaxed);
        assert_eq!(
            next(&mut reports).await,
            Report::Expired {
                local: tcp,
                external
            }
        );
        refuse.store(false, Ordering::Relaxed);

        let quic: Multiaddr = "/ip4/192.168.1.2/udp/9001/quic-v1".parse().unwrap();
        commands.send(Command::Map(quic)).await.unwrap();
        assert!(matches!(next(&mut reports).await, Report::Mapped { .. }));
        let (done, removed) = oneshot::channel();
        commands.send(Command::UnmapAll(done)).await.unwrap();
        removed.await.unwrap();
        task.await.unwrap();
        let actions = actions.lock().unwrap();
        assert_eq!(
            actions.iter().filter(|a| *a == "DeletePortMapping").count(),
            1,
            "only the mapping still held: {actions:?}"
        );
        assert_eq!(
            actions.last().map(String::as_str),
            Some("DeletePortMapping")
        );
    }

    #[test]
    fn the_external_address_keeps_the_transport() {
        let local: Multiaddr = "/ip4/192.168.1.2/udp/9001/quic-v1".parse().unwrap();
        let external = external_addr(&local, Ipv4Addr::new(198, 51, 100, 101), 41000);
        assert_eq!(
            external.to_string(),
            "/ip4/198.51.100.101/udp/41000/quic-v1"
        );
    }
}
