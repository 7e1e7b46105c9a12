#![allow(clippy::unwrap_used)]

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
