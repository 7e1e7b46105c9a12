//! A plain HTTP/1.0 GET, for the node's metrics endpoint and probes: what `curl` or an
//! orchestrator's probe sends, with nothing to install.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` on `addr`; the status code and body, or an error if no whole answer came
/// within `within`.
pub async fn get(addr: SocketAddr, path: &str, within: Duration) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        anyhow::Ok(answer)
    };
    let answer = tokio::time::timeout(within, exchange)
        .await
        .with_context(|| format!("no answer to GET {path} from {addr} within {within:?}"))??;
    let Some((head, body)) = answer.split_once("\r\n\r\n") else {
        bail!("not an HTTP answer: {answer:?}");
    };
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status code in {head:?}"))?;
    Ok((code, body.to_owned()))
}
