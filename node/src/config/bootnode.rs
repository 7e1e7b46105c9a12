//! A configured bootnode (`--bootnode`): its record, a multiaddr naming its PeerId, or the URL
//! of its record (`http://HOST:PORT/enr`, the `/enr` probe of its metrics server).
//!
//! A URL lets compose or Kubernetes name a bootnode by its service, whose record (its key,
//! hence its PeerId) is not known before it first starts. The node fetches it before it
//! starts ([`Config::resolve_bootnodes`]): rules, in order:
//! 1. each URL is asked over HTTP/1.0 (`crate::probe::get`: the name resolved with the
//!    system's resolver and hosts file, at most [`probe::TIMEOUT`] and [`probe::MAX_ANSWER`]
//!    bytes an attempt);
//! 2. the first line of a 200 answer that is a record naming an address to dial is the
//!    bootnode (a bootnode that has not learned its address yet answers a record without
//!    one, or 503: asked again);
//! 3. anything else is asked again after a backoff, [`FIRST_RETRY`] doubling to
//!    [`MAX_RETRY`], for as long as it takes: a bootnode may start after its peers. What the
//!    node waits for is logged at info once each time it changes.
//!
//! A `/dnsaddr/NAME/p2p/ID` address is expanded at start too, into the addresses its TXT
//! records list (`super::dnsaddr`), and asked again like a URL while the lookup fails.

use std::str::FromStr;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use peerfind_behaviours::enr_ext;

use super::{Config, dnsaddr};
use crate::probe;

/// Wait before asking a URL again the first time: a bootnode starting beside us (compose)
/// has its address within a second.
pub const FIRST_RETRY: Duration = Duration::from_millis(250);

/// Longest wait between two attempts: a bootnode that is down is noticed back within it,
/// while a peer asks it at most a few times a minute.
pub const MAX_RETRY: Duration = Duration::from_secs(5);

/// Longest URL taken: far above any host and path, and a bound on what we send.
const MAX_URL: usize = 2048;

/// A bootnode as configured: who it is and where to dial it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootnode {
    /// Its PeerId.
    pub peer_id: PeerId,
    /// Where to dial it, each ending in `/p2p/<peer_id>`.
    pub addrs: Vec<Multiaddr>,
    /// Named by its record: a node with a record speaks peerfind's record exchange, so it is
    /// greeted the moment it is connected rather than a round trip later, once its identify
    /// says so. A multiaddr may name any libp2p node, which identify is waited for.
    pub from_record: bool,
}

/// Why a `--bootnode` value was refused.
#[derive(Debug, thiserror::Error)]
pub enum BootnodeError {
    /// The `enr:` text is not a valid record.
    #[error("invalid bootnode ENR: {0}")]
    Enr(#[from] enr_ext::RecordError),
    /// The record has no TCP or QUIC address to dial.
    #[error("the bootnode ENR has no ip with a tcp or quic port to dial")]
    NoAddress,
    /// Not a multiaddr.
    #[error("invalid bootnode multiaddr: {0}")]
    Multiaddr(#[from] libp2p::multiaddr::Error),
    /// The multiaddr does not say whose it is.
    #[error(
        "a bootnode multiaddr must end in /p2p/<PeerId>, so the connection can be authenticated"
    )]
    NoPeerId,
    /// An `http://` URL we cannot ask.
    #[error("invalid bootnode URL: {0}")]
    Url(&'static str),
}

impl FromStr for Bootnode {
    type Err = BootnodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.starts_with("enr:") {
            let enr = enr_ext::decode_text(s)?;
            let peer_id = enr_ext::peer_id(&enr)?;
            let addrs = enr_ext::multiaddrs(&enr, peer_id);
            if addrs.is_empty() {
                return Err(BootnodeError::NoAddress);
            }
            return Ok(Self {
                peer_id,
                addrs,
                from_record: true,
            });
        }
        let addr: Multiaddr = s.parse()?;
        match addr.iter().last() {
            Some(Protocol::P2p(peer_id)) => Ok(Self {
                peer_id,
                addrs: vec![addr],
                from_record: false,
            }),
            _ => Err(BootnodeError::NoPeerId),
        }
    }
}

/// A `--bootnode` value: the bootnode itself, or where to fetch its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootnodeSource {
    /// Named by its record or a multiaddr.
    Given(Bootnode),
    /// Named by the URL of its record, fetched at start.
    Url(BootnodeUrl),
}

impl FromStr for BootnodeSource {
    type Err = BootnodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().starts_with("http://") {
            s.parse().map(Self::Url)
        } else {
            s.parse().map(Self::Given)
        }
    }
}

/// `http://HOST[:PORT][/PATH]`: where a bootnode's record is served. The port defaults to 80
/// and the path to `/enr`. No TLS: the record is signed, so a record that was tampered
/// with fails its check, and the connection to the bootnode authenticates its PeerId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootnodeUrl {
    /// `HOST:PORT`, to resolve and to send as `Host`.
    authority: String,
    /// The path asked.
    path: String,
}

impl std::fmt::Display for BootnodeUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)
    }
}

impl FromStr for BootnodeUrl {
    type Err = BootnodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() > MAX_URL {
            return Err(BootnodeError::Url("longer than 2048 bytes"));
        }
        let rest = s
            .strip_prefix("http://")
            .ok_or(BootnodeError::Url("only http:// is fetched"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let host_char = |c: char| c.is_ascii_alphanumeric() || "-._:[]".contains(c);
        if authority.is_empty() || !authority.chars().all(host_char) {
            return Err(BootnodeError::Url("the host must be a name or an address"));
        }
        // Sent as the request line: no spaces or control characters.
        if !path.chars().all(|c| c.is_ascii_graphic()) {
            return Err(BootnodeError::Url(
                "the path must be printable, without spaces",
            ));
        }
        let has_port = match authority.rfind(']') {
            Some(end) => authority[end..].contains(':'),
            None => authority.contains(':'),
        };
        let authority = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let path = if path.is_empty() { "/enr" } else { path };
        Ok(Self {
            authority,
            path: path.to_owned(),
        })
    }
}

impl BootnodeUrl {
    /// Asks once (rule 1); the bootnode (rule 2), or what we still wait for.
    pub async fn fetch(&self) -> Result<Bootnode, String> {
        let answer = probe::get(&self.authority, &self.path)
            .await
            .map_err(|e| e.to_string())?;
        if answer.code != 200 {
            return Err(format!("{}: {}", answer.code, answer.first_line()));
        }
        let first = answer.first_line();
        if !first.starts_with("enr:") {
            return Err("the answer is not a record".into());
        }
        first.parse::<Bootnode>().map_err(|e| e.to_string())
    }

    /// Asks until the bootnode's record comes (rule 3).
    pub async fn resolve(&self) -> Bootnode {
        let url = self.to_string();
        until_answered(&url, "waiting for the bootnode's record", || self.fetch()).await
    }
}

/// Tries `attempt` until it gives the bootnode, waiting between tries as rule 3 says, and
/// logs `waiting` at info each time the reason changes.
async fn until_answered<F, Fut>(what: &str, waiting: &str, mut attempt: F) -> Bootnode
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Bootnode, String>>,
{
    let mut wait = FIRST_RETRY;
    let mut last = String::new();
    loop {
        match attempt().await {
            Ok(bootnode) => {
                tracing::info!(source = %what, peer_id = %bootnode.peer_id, addrs = ?bootnode.addrs, "bootnode found");
                return bootnode;
            }
            Err(reason) if reason != last => {
                tracing::info!(source = %what, %reason, "{waiting}");
                last = reason;
            }
            Err(_) => {}
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_RETRY);
    }
}

/// `bootnode` with each `/dnsaddr` address replaced by the addresses its list names, asked
/// again while a lookup fails (rule 3); as given when it has none.
async fn expand_dnsaddrs(bootnode: Bootnode) -> Bootnode {
    if !bootnode.addrs.iter().any(dnsaddr::is_dnsaddr) {
        return bootnode;
    }
    let names: Vec<String> = bootnode.addrs.iter().map(|a| a.to_string()).collect();
    let attempt = || async {
        let system = dnsaddr::System::new().map_err(|e| e.to_string())?;
        let mut addrs = Vec::new();
        for addr in &bootnode.addrs {
            for a in dnsaddr::expand(&system, addr, bootnode.peer_id)
                .await
                .map_err(|e| e.to_string())?
            {
                if !addrs.contains(&a) {
                    addrs.push(a);
                }
            }
        }
        Ok(Bootnode {
            addrs,
            ..bootnode.clone()
        })
    };
    until_answered(
        &names.join(" "),
        "waiting for the bootnode's dnsaddr list",
        attempt,
    )
    .await
}

impl Config {
    /// Fills [`Config::bootnodes`] from `--bootnode`: the given ones (their `/dnsaddr` lists
    /// read), and each URL's record once it is fetched (all at once; waits as long as one
    /// does not answer).
    pub async fn resolve_bootnodes(&mut self) {
        let fetched = self.bootnode.iter().map(|source| async move {
            match source {
                BootnodeSource::Given(bootnode) => expand_dnsaddrs(bootnode.clone()).await,
                BootnodeSource::Url(url) => url.resolve().await,
            }
        });
        self.bootnodes = futures::future::join_all(fetched).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;

    use enr_ext::SigningKey;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[test]
    fn a_bootnode_is_an_enr_or_a_multiaddr_with_its_peer_id() {
        let key = libp2p::identity::Keypair::generate_secp256k1();
        let peer = key.public().to_peer_id();
        let m: Bootnode = format!("/ip4/198.51.100.10/udp/9000/quic-v1/p2p/{peer}")
            .parse()
            .unwrap();
        assert_eq!(m.peer_id, peer);
        assert!(matches!(
            "/ip4/198.51.100.10/tcp/9000".parse::<Bootnode>(),
            Err(BootnodeError::NoPeerId)
        ));
        assert!(matches!(
            "enr:xyz".parse::<Bootnode>(),
            Err(BootnodeError::Enr(_))
        ));
    }

    #[test]
    fn a_url_defaults_to_port_80_and_the_enr_path_and_refuses_what_it_cannot_send() {
        let url: BootnodeUrl = "http://bootnode".parse().unwrap();
        assert_eq!(url.to_string(), "http://bootnode:80/enr");
        let url: BootnodeUrl = "http://[::1]:9100/enr".parse().unwrap();
        assert_eq!(url.to_string(), "http://[::1]:9100/enr");
        for bad in [
            "https://bootnode:9100/enr",
            "http:///enr",
            "http://user@bootnode/enr",
            "http://bootnode:9100/enr x",
        ] {
            assert!(bad.parse::<BootnodeUrl>().is_err(), "{bad}");
        }
        assert!(matches!(
            "http://bootnode:9100/enr".parse::<BootnodeSource>(),
            Ok(BootnodeSource::Url(_))
        ));
    }

    /// A record of a fresh key, with an address when `ip` is given.
    fn record(ip: bool) -> (PeerId, String) {
        let secret = libp2p::identity::secp256k1::SecretKey::generate();
        let key = SigningKey::from_slice(&secret.to_bytes()).unwrap();
        let mut builder = enr_ext::Enr::builder();
        if ip {
            builder.ip4(Ipv4Addr::LOCALHOST).tcp4(9000);
        }
        let enr = builder.build(&key).unwrap();
        (enr_ext::peer_id(&enr).unwrap(), enr.to_base64())
    }

    /// A bootnode that is not ready, then has no address in its record, then has one: the
    /// URL is asked until the record names an address.
    #[tokio::test]
    async fn a_url_is_asked_until_the_record_names_an_address() {
        let (_, bare) = record(false);
        let (peer, full) = record(true);
        let answers = [
            "HTTP/1.0 503 Service Unavailable\r\n\r\nnot ready\n".to_owned(),
            format!("HTTP/1.0 200 OK\r\n\r\n{bare}\n"),
            format!("HTTP/1.0 200 OK\r\n\r\n{full}\n/ip4/127.0.0.1/tcp/9000/p2p/{peer}\n"),
        ];
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for answer in answers {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = [0u8; 1024];
                let n = stream.read(&mut request).await.unwrap();
                assert!(request[..n].starts_with(b"GET /enr HTTP/1.0\r\n"));
                stream.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let mut config = <Cli as clap::Parser>::try_parse_from([
            "peerfind".to_owned(),
            "--bootnode".to_owned(),
            format!("http://localhost:{port}/enr"),
        ])
        .unwrap()
        .config;
        assert!(config.bootnodes.is_empty(), "nothing fetched yet");
        tokio::time::timeout(Duration::from_secs(10), config.resolve_bootnodes())
            .await
            .unwrap();
        server.await.unwrap();
        assert_eq!(config.bootnodes.len(), 1);
        assert_eq!(config.bootnodes[0].peer_id, peer);
        assert!(config.bootnodes[0].from_record);
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }
}
