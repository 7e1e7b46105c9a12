//! The probes' client side: a small HTTP/1.0 GET, bounded in time and size, for
//! `peerfind probe` (a container's HEALTHCHECK, which has no `curl` to call) and for fetching a
//! bootnode's record from its `/enr` (a `--bootnode http://HOST:PORT/enr`).
//!
//! The server side is `api::probes`, on the node's `--metrics` address. HTTP/1.0 with no
//! keep-alive is all either needs: one request, an answer delimited by the connection's close.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Where `peerfind probe` asks when not told: the port the image serves its metrics on.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9100";

/// Longest wait for one whole answer: a probe answers within its own 2 s limit, and a
/// bootnode's record is a few hundred bytes, so this only ends a wedged exchange.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Largest answer read: a record and its addresses fit many times over; a host that sends
/// more is not a peerfind node, and we stop reading.
pub const MAX_ANSWER: u64 = 64 * 1024;

/// An HTTP answer: the status code and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code (200 when the probe passed).
    pub code: u16,
    /// The body, as text (lossy: probes answer in ASCII).
    pub body: String,
}

impl Answer {
    /// The body's first line, for a one-line report.
    pub fn first_line(&self) -> &str {
        self.body.lines().next().unwrap_or("").trim()
    }
}

/// Why a GET gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// `host:port` as given.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// The host name resolved to no address.
    #[error("{0} resolves to no address")]
    NoAddress(String),
    /// Connecting, sending or reading failed.
    #[error("{addr}: {source}")]
    Io {
        /// The address asked.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// No whole answer came within [`TIMEOUT`].
    #[error("no answer from {0} within {TIMEOUT:?}")]
    Timeout(String),
    /// The answer was larger than [`MAX_ANSWER`].
    #[error("the answer from {0} is larger than {MAX_ANSWER} bytes")]
    TooLarge(SocketAddr),
    /// The answer was not HTTP.
    #[error("{0} did not answer in HTTP")]
    NotHttp(SocketAddr),
}

/// `GET path` from `host` (`HOST:PORT`, a name or an address), trying each address the name
/// resolves to in turn, within [`TIMEOUT`] for all of them.
pub async fn get(host: &str, path: &str) -> Result<Answer, GetError> {
    let exchange = async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(host)
            .await
            .map_err(|source| GetError::Resolve {
                host: host.to_owned(),
                source,
            })?
            .collect();
        let mut last = GetError::NoAddress(host.to_owned());
        for addr in addrs {
            match get_from(addr, host, path).await {
                Ok(answer) => return Ok(answer),
                Err(error) => last = error,
            }
        }
        Err(last)
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| GetError::Timeout(host.to_owned()))?
}

async fn get_from(addr: SocketAddr, host: &str, path: &str) -> Result<Answer, GetError> {
    let io = |source| GetError::Io { addr, source };
    let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER + 1)
        .read_to_end(&mut answer)
        .await
        .map_err(io)?;
    if answer.len() as u64 > MAX_ANSWER {
        return Err(GetError::TooLarge(addr));
    }
    parse(&answer).ok_or(GetError::NotHttp(addr))
}

/// The status code and body of a whole HTTP/1.x answer.
fn parse(answer: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut status = head.lines().next()?.split_whitespace();
    if !status.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = status.next()?.parse().ok()?;
    Some(Answer {
        code,
        body: body.to_owned(),
    })
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The node did not answer.
    #[error("no answer: {0}")]
    Get(#[from] GetError),
    /// The node answered that it is not healthy or not ready, and why.
    #[error("{code}: {reason}")]
    Failed {
        /// The status code (503 from the node).
        code: u16,
        /// The node's reason, its answer's first line.
        reason: String,
    },
}

/// Asks the node whose metrics server is at `addr` whether it is alive (`/healthz`), or with
/// `ready` whether it is ready (`/readyz`); its one-line answer when it is. An unspecified
/// address (the `0.0.0.0:9100` a node listens on) means this host's loopback.
pub async fn check(addr: SocketAddr, ready: bool) -> Result<String, ProbeError> {
    let addr = loopback_if_unspecified(addr);
    let path = if ready { "/readyz" } else { "/healthz" };
    let answer = get(&addr.to_string(), path).await?;
    if answer.code == 200 {
        Ok(answer.first_line().to_owned())
    } else {
        Err(ProbeError::Failed {
            code: answer.code,
            reason: answer.first_line().to_owned(),
        })
    }
}

fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// A one-shot server on loopback that sends `answer` to the first request; its address.
    async fn serve(answer: Vec<u8>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(&answer).await;
        });
        addr
    }

    #[tokio::test]
    async fn a_probe_passes_on_200_and_fails_with_the_nodes_reason_otherwise() {
        let ok = serve(b"HTTP/1.0 200 OK\r\ncontent-length: 6\r\n\r\nready\n".to_vec()).await;
        assert_eq!(check(ok, true).await.unwrap(), "ready");
        let not = b"HTTP/1.0 503 Service Unavailable\r\n\r\nnot ready: no bootnode connected\n";
        let not = serve(not.to_vec()).await;
        let error = check(not, true).await.unwrap_err().to_string();
        assert_eq!(error, "503: not ready: no bootnode connected");
    }

    #[tokio::test]
    async fn nothing_listening_too_large_and_not_http_are_errors() {
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        assert!(matches!(
            check(addr, false).await,
            Err(ProbeError::Get(GetError::Io { .. }))
        ));
        let mut huge = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
        huge.resize(MAX_ANSWER as usize + 10, b'x');
        let huge = serve(huge).await;
        assert!(matches!(
            get(&huge.to_string(), "/enr").await,
            Err(GetError::TooLarge(_))
        ));
        let junk = serve(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()).await;
        assert!(matches!(
            get(&junk.to_string(), "/enr").await,
            Err(GetError::NotHttp(_))
        ));
    }

    #[tokio::test]
    async fn an_unspecified_address_is_asked_on_loopback() {
        let ok = serve(b"HTTP/1.1 200 OK\r\n\r\nok\n".to_vec()).await;
        let any = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), ok.port());
        assert_eq!(check(any, false).await.unwrap(), "ok");
    }
}
