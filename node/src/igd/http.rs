//! The control requests' transport: one HTTP/1.0 POST per request on a fresh TCP connection,
//! bounded in time and size. `igd-next` formats each SOAP request and parses its answer; this
//! is the [`Provider`] it sends them through, in place of its own hyper client, which reads
//! an answer of any size and waits for it without end.

use std::future::Future;
use std::io;
use std::time::Duration;

use igd_next::RequestError;
use igd_next::aio::Provider;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one control request may take, connection included: the gateway is on our LAN
/// and answers in milliseconds; a router busy with a slow flash write still answers in well
/// under a second.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer read, headers included: a SOAP answer (an external IP, a port, a fault)
/// is under 1 KiB; this leaves room for verbose gateways.
pub const MAX_RESPONSE: usize = 16 * 1024;

/// The [`Provider`] `igd-next`'s gateway sends its control requests through.
#[derive(Debug, Clone, Copy)]
pub struct Bounded;

impl Provider for Bounded {
    fn send_async(
        url: &str,
        action: &str,
        body: &str,
    ) -> impl Future<Output = Result<String, RequestError>> + Send {
        let request = request(url, action, body);
        async move {
            let (host, bytes) = request?;
            tokio::time::timeout(REQUEST_TIMEOUT, exchange(host, bytes)).await?
        }
    }
}

/// The request's bytes for `url` (`http://IP:PORT/PATH`, as `igd-next` writes a gateway's
/// control URL), and the address to send them to.
fn request(url: &str, action: &str, body: &str) -> Result<(String, Vec<u8>), RequestError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid(format!("not an http:// control URL: {url}")))?;
    let (host, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let text = format!(
        "POST {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n\
         SOAPAction: {action}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    Ok((host.to_owned(), text.into_bytes()))
}

/// Sends `request` to `host` and reads the answer's body, at most [`MAX_RESPONSE`] bytes of
/// answer in all. A SOAP fault comes with status 500 and is `igd-next`'s to read, so any
/// status passes.
async fn exchange(host: String, request: Vec<u8>) -> Result<String, RequestError> {
    let mut stream = TcpStream::connect(host.as_str()).await?;
    stream.write_all(&request).await?;
    let mut answer = Vec::new();
    let limit = u64::try_from(MAX_RESPONSE).unwrap_or(u64::MAX) + 1;
    stream.take(limit).read_to_end(&mut answer).await?;
    if answer.len() > MAX_RESPONSE {
        return Err(invalid(format!("answer over {MAX_RESPONSE} bytes")));
    }
    body(answer)
}

/// The body of an HTTP answer, which must not be chunked (we asked in HTTP/1.0).
fn body(answer: Vec<u8>) -> Result<String, RequestError> {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("an answer without the end of its headers".into()))?;
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    if !head.starts_with("http/1.") {
        return Err(invalid("not an HTTP answer".into()));
    }
    if head.contains("transfer-encoding: chunked") {
        return Err(invalid("a chunked answer to an HTTP/1.0 request".into()));
    }
    Ok(String::from_utf8(answer[end + 4..].to_vec())?)
}

fn invalid(why: String) -> RequestError {
    RequestError::IoError(io::Error::new(io::ErrorKind::InvalidData, why))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn a_request_names_the_control_path_host_and_action() {
        let (host, bytes) = request(
            "http://192.168.1.1:5000/ctl/IPConn",
            "\"urn:x#Get\"",
            "<x/>",
        )
        .unwrap();
        assert_eq!(host, "192.168.1.1:5000");
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("POST /ctl/IPConn HTTP/1.0\r\nHost: 192.168.1.1:5000\r\n"));
        assert!(text.contains("SOAPAction: \"urn:x#Get\"\r\nContent-Length: 4\r\n"));
        assert!(text.ends_with("\r\n\r\n<x/>"));
        assert!(request("https://192.168.1.1/ctl", "a", "").is_err());
    }

    #[test]
    fn the_body_follows_the_headers_and_a_chunked_answer_is_refused() {
        let ok = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\n\r\n<f>".to_vec();
        assert_eq!(body(ok).unwrap(), "<f>");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n<f>\r\n".to_vec();
        assert!(body(chunked).is_err());
        assert!(body(b"HTTP/1.1 200 OK\r\n".to_vec()).is_err());
    }

    #[tokio::test]
    async fn an_answer_over_the_bound_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let mut answer = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
            answer.resize(MAX_RESPONSE * 4, b'x');
            let _ = s.write_all(&answer).await;
        });
        let url = format!("http://{addr}/ctl");
        let err = Bounded::send_async(&url, "a", "b").await.unwrap_err();
        assert!(err.to_string().contains("bytes"), "{err}");
    }
}
